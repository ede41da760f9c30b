//! `resguardo-review`: the reviewers' tool.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use resguardo::cli::{finish, Failure};
use resguardo::keyring::{KeyProfile, ReviewerKeyOptions};
use resguardo::review::{keygen, passphrase};

const PROGRAM: &str = "resguardo-review";

/// Resguardo's reviewer tool: make keys, and open sealed bundles on an offline machine.
#[derive(Parser)]
#[command(name = PROGRAM, version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Profile {
    /// v4 key, SEIPD v1 only: what browsers and sequoia encrypt to it opens in GnuPG 2.2 too.
    Compatible,
    /// v6 key (RFC 9580) that allows SEIPD v2 (AEAD): faster, but only for sequoia-based tools.
    Rfc9580,
}

#[derive(Subcommand)]
enum Command {
    /// Make a reviewer key pair (Curve25519, separate encryption subkey, passphrase-protected).
    ///
    /// Run it on the offline machine. Writes NAME.pub.asc (for the gateway), NAME.sec.asc (keep
    /// offline) and NAME.rev.asc (revocation; keep apart) into --out, and prints the fingerprint.
    Keygen {
        /// The reviewer's name or role, as it will appear in the key (e.g. "Reviewer 1 – Lima").
        #[arg(long)]
        name: String,
        /// Directory to write the key files into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = Profile::Compatible)]
        profile: Profile,
        /// Read the passphrase from the first line of this file instead of the terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Days until the key expires; 0 for never. Expiry forces a planned key rotation.
        #[arg(long, value_name = "DAYS", default_value_t = 730)]
        validity_days: u64,
    },
}

/// New passphrases must have at least this many characters.
const MIN_PASSPHRASE: usize = 8;

fn main() -> ExitCode {
    let cli = Cli::parse();
    finish(PROGRAM, run(cli.command))
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Keygen {
            name,
            out,
            profile,
            passphrase_file,
            validity_days,
        } => {
            let passphrase = match passphrase_file {
                Some(path) => {
                    let p = passphrase::from_file(&path).map_err(Failure::usage)?;
                    passphrase::check_length(&p, MIN_PASSPHRASE).map_err(Failure::usage)?;
                    p
                }
                None => passphrase::ask_new(MIN_PASSPHRASE).map_err(Failure::usage)?,
            };
            let options = ReviewerKeyOptions {
                name,
                profile: match profile {
                    Profile::Compatible => KeyProfile::Compatible,
                    Profile::Rfc9580 => KeyProfile::Rfc9580,
                },
                passphrase,
                validity: (validity_days > 0)
                    .then(|| Duration::from_secs(validity_days.saturating_mul(86_400))),
            };
            let outcome = keygen::keygen(options, &out).map_err(|e| match e {
                keygen::KeygenError::Write { .. } => Failure::environment(e),
                other => Failure::usage(other),
            })?;
            println!("{}", outcome.fingerprint.to_hex());
            eprintln!(
                "public key (give to the gateway operator): {}",
                outcome.public.display()
            );
            eprintln!(
                "secret key (keep on the offline machine):   {}",
                outcome.secret.display()
            );
            eprintln!(
                "revocation (keep apart, publish if the key is lost): {}",
                outcome.revocation.display()
            );
            Ok(())
        }
    }
}
