//! `resguardo-review`: the reviewers' tool.
#![forbid(unsafe_code)]

// Freed memory is zeroed: plaintext does not outlive the buffers that held it.
#[global_allocator]
static ALLOCATOR: resguardo::process::ZeroingAllocator = resguardo::process::ZEROING_ALLOCATOR;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use resguardo::bundle::{self, BundleError};
use resguardo::cli::{finish, Failure, EXIT_PARTIAL};
use resguardo::keyring::{KeyProfile, ReviewerKeyOptions};
use resguardo::review::open::{self, OpenSummary, Outcome, DEFAULT_MAX_PLAINTEXT};
use resguardo::review::output::OutputDir;
use resguardo::review::secret_key::LockedKey;
use resguardo::review::{keygen, passphrase, sandbox};

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
    /// Decrypt and check every submission of a bundle into DIR/<id>/ (run it offline).
    ///
    /// Each report gets report.json, a readable report.txt (urgent ones say so on the first
    /// line) and its attachments under files/. A submission that fails (damaged, not for this
    /// key, bad content) is reported with the reason and nothing of it is written; the others
    /// still open. Running it again skips what is already open. Before the first ciphertext is
    /// read the process locks itself in a Landlock sandbox: no network, writes only under --out.
    Open {
        /// The bundle made by `resguardo-gateway export`.
        bundle: PathBuf,
        /// Your secret key (from `keygen`, or exported from gpg or sq).
        #[arg(long, value_name = "SECRET_KEY_FILE")]
        key: PathBuf,
        /// Where to write the reports.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Read the key's passphrase from the first line of this file instead of the terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Refuse to run unless the sandbox restricts both files and network.
        #[arg(long)]
        require_sandbox: bool,
        /// Largest plaintext accepted per submission, in bytes (guards against expansion bombs).
        #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_PLAINTEXT)]
        max_plaintext: u64,
    },
    /// Write each sealed submission of a bundle as DIR/<id>.pgp, to open with gpg or sq.
    Unpack {
        bundle: PathBuf,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Show the submissions in a bundle (id, day, size) without decrypting anything.
    List { bundle: PathBuf },
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
        Command::Open {
            bundle,
            key,
            out,
            passphrase_file,
            require_sandbox,
            max_plaintext,
        } => open_command(
            &bundle,
            &key,
            &out,
            passphrase_file.as_deref(),
            require_sandbox,
            max_plaintext,
        ),
        Command::Unpack { bundle, out } => {
            let file = open_file(&bundle)?;
            let out_dir = OutputDir::prepare(&out)
                .map_err(|e| Failure::environment(format!("{}: {e}", out.display())))?;
            let summary = open::unpack_bundle(file, &out_dir);
            report_summary(&summary, "unpacked", &out)
        }
        Command::List { bundle } => {
            let manifest = bundle::read_manifest(std::io::BufReader::new(open_file(&bundle)?))?;
            println!(
                "bundle {}  created {}  {} submissions",
                manifest.batch,
                manifest.created,
                manifest.submissions.len()
            );
            for entry in &manifest.submissions {
                println!(
                    "{}  {}  {:>12} bytes  {}",
                    entry.id,
                    entry.day,
                    entry.size,
                    entry.sealing.as_str()
                );
            }
            Ok(())
        }
    }
}

fn open_file(path: &Path) -> Result<File, Failure> {
    File::open(path).map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))
}

fn open_command(
    bundle_path: &Path,
    key_path: &Path,
    out: &Path,
    passphrase_file: Option<&Path>,
    require_sandbox: bool,
    max_plaintext: u64,
) -> Result<(), Failure> {
    let bundle = open_file(bundle_path)?;
    let locked = LockedKey::load(key_path).map_err(Failure::bad_input)?;
    let passphrase = if locked.needs_passphrase() {
        Some(match passphrase_file {
            Some(path) => passphrase::from_file(path).map_err(Failure::usage)?,
            None => passphrase::ask(&format!("Passphrase for key {}: ", locked.fingerprint()))
                .map_err(Failure::usage)?,
        })
    } else {
        None
    };
    let mut key = locked
        .unlock(passphrase.as_ref())
        .map_err(Failure::bad_input)?;
    if key.unprotected {
        eprintln!(
            "warning: this secret key has no passphrase; anyone who copies it can read every report"
        );
    }
    let out_dir = OutputDir::prepare(out)
        .map_err(|e| Failure::environment(format!("{}: {e}", out.display())))?;
    let status =
        sandbox::enter(&[bundle_path, key_path], out_dir.root()).map_err(Failure::environment)?;
    eprintln!("Sandbox: {}", status.summary);
    if require_sandbox && !status.is_sufficient() {
        return Err(Failure::environment(format!(
            "--require-sandbox: the sandbox is not fully active ({}); refusing to open the bundle",
            status.summary
        )));
    }
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} submissions")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let summary = open::open_bundle(
        bundle,
        &mut key,
        &out_dir,
        max_plaintext,
        &mut |manifest, done| {
            if let Some(bar) = &bar {
                bar.set_length(manifest.submissions.len() as u64);
                bar.set_position(done as u64);
            }
        },
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    report_summary(&summary, "opened", out)
}

/// Prints the summary table and decides the exit status.
fn report_summary(summary: &OpenSummary, verb: &str, out: &Path) -> Result<(), Failure> {
    if let Some(manifest) = &summary.manifest {
        println!(
            "Bundle {} (created {}): {} submissions",
            manifest.batch,
            manifest.created,
            manifest.submissions.len()
        );
        let mut done = 0;
        let mut already = 0;
        let mut urgent = Vec::new();
        let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
        for (id, outcome) in &summary.outcomes {
            match outcome {
                Outcome::Opened { urgent: u } => {
                    done += 1;
                    if *u {
                        urgent.push(id);
                    }
                }
                Outcome::AlreadyOpen => already += 1,
                Outcome::Failed { reason, .. } => *failures.entry(reason).or_default() += 1,
            }
        }
        println!("  {verb:<14}{done:>6}");
        println!("  {:<14}{already:>6}", "already there");
        println!("  {:<14}{:>6}", "failed", summary.failed());
        for (reason, count) in &failures {
            println!("    {count:>4}  {reason}");
        }
        if summary.unreached() > 0 {
            println!("  {:<14}{:>6}", "not reached", summary.unreached());
        }
        if verb == "opened" {
            println!("  {:<14}{:>6}", "urgent", urgent.len());
            for id in &urgent {
                println!(
                    "    {id}  read first: {}",
                    out.join(id.to_string()).join("report.txt").display()
                );
            }
        }
    }
    for (id, outcome) in &summary.outcomes {
        if let Outcome::Failed { reason, detail } = outcome {
            eprintln!("{id}: {reason}: {detail}");
        }
    }
    if let Some(e) = &summary.bundle_error {
        let message = format!("bundle: {e}");
        return Err(match e {
            BundleError::Truncated(_) => Failure::new(EXIT_PARTIAL, message),
            BundleError::Io(_) => Failure::environment(message),
            _ => Failure::bad_input(message),
        });
    }
    if summary.failed() > 0 {
        return Err(Failure::new(
            EXIT_PARTIAL,
            format!(
                "{} of {} submissions failed",
                summary.failed(),
                summary.outcomes.len()
            ),
        ));
    }
    Ok(())
}
