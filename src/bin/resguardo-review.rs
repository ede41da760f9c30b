//! `resguardo-review`: the reviewers' tool. It speaks Spanish or English (`RESGUARDO_LANG`, else
//! the locale); see `resguardo::review::lang`.
#![forbid(unsafe_code)]

// Freed memory is zeroed: plaintext does not outlive the buffers that held it.
#[global_allocator]
static ALLOCATOR: resguardo::process::ZeroingAllocator = resguardo::process::ZEROING_ALLOCATOR;

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Arg, ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use resguardo::bundle;
use resguardo::cli::{finish, Failure};
use resguardo::keyring::{KeyProfile, KeyRole, ReviewerKeyOptions};
use resguardo::review::lang::Lang;
use resguardo::review::messages::{self, Localized, Verb};
use resguardo::review::open::{self, Limits, ParserProgram, DEFAULT_MAX_PLAINTEXT, DISK_RESERVE};
use resguardo::review::output::OutputDir;
use resguardo::review::secret_key::LockedKey;
use resguardo::review::transfer::FetchWhat;
use resguardo::review::{courier, index, keygen, passphrase, sandbox, transfer, watch, worker};
use resguardo::submit::{GatewayClient, Trust};
use resguardo::terminal::clean_line;

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
    /// offline) and NAME.rev.asc (revocation; keep apart) into --out, and prints the fingerprint
    /// in groups of four.
    Keygen {
        /// The reviewer's name or role, as it will appear in the key (e.g. "Reviewer 1 – Lima").
        #[arg(long)]
        name: String,
        /// Directory to write the key files into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// compatible: v4 key, SEIPD v1 only (opens in GnuPG 2.2 too); rfc9580: v6 key allowing
        /// SEIPD v2 (AEAD), for sequoia-based tools only.
        #[arg(long, value_enum, default_value_t = Profile::Compatible)]
        profile: Profile,
        /// Read the passphrase from the first line of this file instead of the terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Days until the key expires; 0 for never. Expiry forces a planned key rotation.
        #[arg(long, value_name = "DAYS", default_value_t = 730)]
        validity_days: u64,
        /// Print only the fingerprint as bare hex on stdout (for scripts).
        #[arg(long)]
        fingerprint_only: bool,
        /// Make a courier key instead, for an on-call device: it reads triage envelopes and
        /// signs requests to the gateway, and can never open a report.
        #[arg(long)]
        courier: bool,
        /// Make the organisation key instead (org.pub.asc, org.sec.asc, org.rev.asc): an Ed25519
        /// key that only signs key lists (sign-keys), kept offline; its fingerprint goes on the
        /// printed fingerprint card.
        #[arg(long, conflicts_with = "courier")]
        org: bool,
    },
    /// Sign the key list with the organisation key (run it offline): the reviewers and couriers
    /// the organisation vouches for now, and the page it released (docs/trust-v1.md).
    ///
    /// The certificates are checked as the gateway checks them, and the list is verified before
    /// it is written. Give the file to the gateway operator (key_list in gateway.toml).
    SignKeys {
        /// The organisation's secret key (org.sec.asc from `keygen --org`).
        #[arg(long, value_name = "FILE")]
        org_key: PathBuf,
        /// The reviewers' public certificates.
        #[arg(long, value_name = "FILE", num_args = 1.., required = true)]
        reviewers: Vec<PathBuf>,
        /// The couriers' public certificates.
        #[arg(long, value_name = "FILE", num_args = 1..)]
        couriers: Vec<PathBuf>,
        /// The list's version: 1 for the first, higher than the last one for every new list.
        #[arg(long, value_name = "N")]
        version: u64,
        /// Days the list stays valid (1 to 730); sign a new one before then.
        #[arg(long, value_name = "DAYS")]
        valid_days: u64,
        /// The page the gateway serves, from `resguardo-gateway page-manifest` of the release
        /// being deployed [default: the page of this build].
        #[arg(long, value_name = "FILE")]
        page_manifest: Option<PathBuf>,
        /// The signed key list to write (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Read the key's passphrase from the first line of this file instead of the terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Give a reviewer key made before version 0.2 the signing subkey that signs open receipts
    /// (run it offline).
    ///
    /// Writes NAME.pub.asc and NAME.sec.asc into --out: the same key (same fingerprint, same
    /// passphrase) with a new Ed25519 signing subkey. Replace the old secret key with the new one,
    /// and give the new public key to the gateway operator.
    AddSigningKey {
        /// The reviewer's secret key.
        #[arg(long, value_name = "SECRET_KEY_FILE")]
        key: PathBuf,
        /// Directory to write the new key files into (not over existing files).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Read the key's passphrase from the first line of this file instead of the terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Decrypt and check every submission of a bundle into DIR/<id>/ (run it offline).
    ///
    /// Each report gets report.json, a readable report.txt (urgent ones say so on the first
    /// line) and its attachments under files/. A submission that fails (damaged, not for this
    /// key, bad content, over a bound) is reported with the reason and nothing of it is written;
    /// the others still open. Running it again skips what is already open. Before the first
    /// ciphertext is read the process locks itself in (Landlock, seccomp, a new network
    /// namespace); each submission is parsed by a separate, stricter process that never sees the
    /// key. Afterwards DIR holds index.csv and index.txt (every opened report) and
    /// open-receipt-<batch>.json, which the operator needs to purge the bundle from the server.
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
        /// Refuse to run unless the sandbox restricts files, network and system calls (Landlock
        /// and seccomp), in this process and in every parser.
        #[arg(long)]
        require_sandbox: bool,
        /// Largest plaintext accepted per submission, in bytes (guards against expansion bombs).
        #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_PLAINTEXT)]
        max_plaintext: u64,
        /// Most plaintext one run keeps from the whole bundle, in bytes [default: 1 GiB or 8 times
        /// the bundle's size, whichever is larger].
        #[arg(long, value_name = "BYTES")]
        max_bundle_plaintext: Option<u64>,
        /// A head of the gateway's log that a courier's `watch` verified, as NUMBER:HASH, or the
        /// watch's state file (STATE/watch-state.json) carried over with the bundle: the
        /// bundles must meet it, so a history shown to the watch and another put in bundles is
        /// named (docs/trust-v1.md).
        #[arg(long, value_name = "NUMBER:HASH|FILE")]
        seen_head: Option<String>,
    },
    /// Write each sealed submission of a bundle as DIR/<id>.pgp, to open with gpg or sq.
    Unpack {
        /// The bundle.
        bundle: PathBuf,
        /// Where to write the sealed submissions.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Show a bundle's submissions (id, day, size) without decrypting anything, or the reports
    /// already opened in a folder (urgent first).
    List {
        /// A bundle, or the --out folder of `open`.
        path: PathBuf,
        /// Only urgent reports (with a folder of opened reports).
        #[arg(long)]
        urgent: bool,
    },
    /// Watch the gateway for new reports and ring for urgent ones (on an on-call device, with a
    /// courier key).
    ///
    /// Polls every --every seconds, the same whether or not anything is urgent; prints one line
    /// per new report (urgent first: day, id, incident types, region; never anything the
    /// reporter wrote) and, for an urgent one, rings: a terminal bell, a desktop notification
    /// where notify-send exists, and --on-alert run with RESGUARDO_ID, RESGUARDO_URGENT,
    /// RESGUARDO_TYPES, RESGUARDO_REGION, RESGUARDO_DAY and RESGUARDO_SUMMARY. Each urgent
    /// report rings exactly once, across restarts and kill -9 (state in --state).
    ///
    /// At every poll it also checks that the gateway's log of accepted submissions extends the
    /// one it saw before; with --org, that the served key list verifies under the organisation
    /// key, offers its keys and goes not back in version, and that the page is the release it
    /// vouches for (docs/trust-v1.md). A problem rings like an urgent report, once, with
    /// RESGUARDO_ALARM (chain, keys or page) and RESGUARDO_SUMMARY naming the number or file.
    Watch {
        #[command(flatten)]
        connection: Connection,
        /// Seconds between polls (1 to 3600; below 10 only for tests).
        #[arg(long, value_name = "SECONDS", default_value_t = 30,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        every: u64,
        /// A shell command run for each urgent report (forward it with signal-cli, SMS, email).
        #[arg(long, value_name = "CMD")]
        on_alert: Option<String>,
        /// Where the watch keeps what it has seen and which alerts have rung.
        #[arg(long, value_name = "DIR", default_value = "resguardo-watch")]
        state: PathBuf,
        /// Poll once and stop.
        #[arg(long)]
        once: bool,
        /// The organisation key's fingerprint (from its card: 40 hex digits for a v4 key, 64 for
        /// a v6 key, spaces allowed): also check the key list and the page at every poll, on a
        /// thread of their own (docs/early-alerts.md).
        #[arg(long, value_name = "FINGERPRINT")]
        org: Option<String>,
    },
    /// Download the next export bundle from the gateway (with a courier key), resuming an
    /// interrupted download.
    ///
    /// The same batches and bundle bytes as the operator's local `export`; the bundle is checked
    /// against the size the gateway announced and entry by entry against its manifest before it
    /// is written to --out and the batch is marked delivered.
    Fetch {
        #[command(flatten)]
        connection: Connection,
        /// Where to write the bundle (must not exist).
        #[arg(long, value_name = "BUNDLE", required_unless_present = "list")]
        out: Option<PathBuf>,
        /// A copy of only this submission, at once (an urgent report to carry to the offline
        /// machine; repeatable, up to 20). Nothing on the server records it: the submission goes
        /// out again with the next batch, and only that batch's receipt purges it.
        #[arg(long, value_name = "ID", conflicts_with = "batch")]
        id: Vec<String>,
        /// That batch again (one the gateway still holds, delivered or not).
        #[arg(long, value_name = "BATCH")]
        batch: Option<String>,
        /// List the batches the gateway still holds instead (a delivered batch that never
        /// reached the reviewers shows up here).
        #[arg(long, conflicts_with_all = ["id", "batch", "out"])]
        list: bool,
    },
    /// Answer the reporter of an opened report (run it offline; docs/replies-v1.md).
    ///
    /// The answer is signed with your key's signing subkey and encrypted to the reporter's reply
    /// key and to every reviewer key (yours and each --team certificate), appended to OUTBOX
    /// (carry it to a networked machine and `push` it), and a readable copy is kept in the
    /// report's conversation/ folder.
    Reply {
        /// The opened report's folder (DIR/<id> of `open`).
        #[arg(long, value_name = "DIR")]
        report: PathBuf,
        /// The answer: a UTF-8 text file.
        #[arg(long, value_name = "FILE")]
        message: PathBuf,
        /// A file for the reporter (repeatable; 8 MiB in all).
        #[arg(long = "attach", value_name = "FILE")]
        attachments: Vec<PathBuf>,
        /// Your secret key (it signs the answer).
        #[arg(long, value_name = "SECRET_KEY_FILE")]
        key: PathBuf,
        /// Read the key's passphrase from the first line of this file instead of the terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Another reviewer's public certificate, who gets a copy (repeatable).
        #[arg(long = "team", value_name = "CERT")]
        team: Vec<PathBuf>,
        /// Language of the answer (BCP 47 tag).
        #[arg(long, default_value = "es", value_name = "TAG")]
        language: String,
        /// The outbox file to append to (made if missing).
        #[arg(long, value_name = "OUTBOX")]
        out: PathBuf,
    },
    /// Send an outbox of answers to the gateway (with a courier key).
    Push {
        #[command(flatten)]
        connection: Connection,
        /// The outbox `reply` wrote.
        outbox: PathBuf,
    },
    /// Delete from the gateway what the reviewers opened from a fetched bundle (with a courier
    /// key), with the same checks as the operator's local `purge`.
    Purge {
        #[command(flatten)]
        connection: Connection,
        /// The bundle that was opened.
        #[arg(long, value_name = "BUNDLE")]
        bundle: PathBuf,
        /// The receipt `open` wrote for it (open-receipt-<batch>.json in its --out folder).
        #[arg(long, value_name = "FILE")]
        receipt: PathBuf,
    },
    /// Internal: ring once for one urgent report (started by `watch`).
    #[command(hide = true)]
    Ring {
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        on_alert: Option<String>,
    },
    /// The incident registry beside the opened reports (docs/registry-v1.md): cases, their
    /// workflow, statistics, the report and what may be published.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Internal: parse one decrypted submission (started by `open`).
    #[command(name = worker::SUBCOMMAND, hide = true)]
    OpenWorker {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        entry: String,
        #[arg(long)]
        max_plaintext: u64,
        #[arg(long)]
        require_sandbox: bool,
        #[arg(long)]
        lang: String,
    },
}

/// `registry …` (every one takes --reports, the folder `open` writes to).
#[derive(Subcommand)]
enum RegistryCommand {
    /// What the opened bundles showed of the gateway's log of accepted submissions
    /// (docs/trust-v1.md): numbers checked, gaps, and every problem found so far. Exit 5 if
    /// there is a problem.
    Chain {
        #[command(flatten)]
        folder: RegistryFolder,
        /// The gateway started a new log (a new data directory, after a seizure or a move):
        /// forget what the bundles showed of the old one, and its problems, after printing them.
        #[arg(long)]
        start_new_log: bool,
    },
    /// List cases, newest first.
    List {
        #[command(flatten)]
        folder: RegistryFolder,
        /// Only cases with this status (recibido, evaluacion_riesgo, medida_solicitada,
        /// medida_otorgada, medida_denegada, cerrado; English names too).
        #[arg(long)]
        status: Option<String>,
        /// Only cases in this region (the form's id, e.g. puno).
        #[arg(long)]
        region: Option<String>,
        /// Only cases of this incident type (the form's id, e.g. threat).
        #[arg(long = "type")]
        incident_type: Option<String>,
        /// Only cases received on or after this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Only early alerts (someone at imminent risk).
        #[arg(long)]
        urgent: bool,
    },
    /// Show one case and its history.
    Show {
        #[command(flatten)]
        folder: RegistryFolder,
        /// The case number.
        case: i64,
    },
    /// Move a case forward in the workflow, assess its risk, assign it, note what was done.
    Case {
        #[command(flatten)]
        folder: RegistryFolder,
        /// The case number.
        case: i64,
        /// The new status.
        #[arg(long)]
        status: Option<String>,
        /// The risk: bajo, medio, alto, extremo (low, medium, high, extreme).
        #[arg(long)]
        risk: Option<String>,
        /// Who follows the case.
        #[arg(long)]
        assign: Option<String>,
        /// A note kept in the case's history.
        #[arg(long)]
        note: Option<String>,
    },
    /// Add cases recorded before Resguardo from a CSV file (docs/registry-v1.md): all rows or
    /// none; a bad row is named with its line number.
    Import {
        #[command(flatten)]
        folder: RegistryFolder,
        /// The CSV file.
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
    },
    /// Count incidents (linked cases once), cross-tabulated.
    Stats {
        #[command(flatten)]
        folder: RegistryFolder,
        /// Up to three of: type, region, perpetrator, month, year, affected, defender_field,
        /// urgent, status (comma-separated).
        #[arg(long, default_value = "")]
        by: String,
        /// Only cases received on or after this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// table, csv or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Write the registry's report: one self-contained HTML page (Spanish and English) with
    /// incidents per month, by type, by perpetrator, a map of the regions, early alerts and
    /// how long they waited, open cases by status.
    Report {
        #[command(flatten)]
        folder: RegistryFolder,
        /// The HTML file to write (a new file).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write aggregates safe to publish (CSV): no free text, no places, nothing finer than a
    /// month, every cell below k suppressed with complementary suppression.
    Publish {
        #[command(flatten)]
        folder: RegistryFolder,
        /// The smallest count published (at least 2).
        #[arg(long, default_value_t = 5)]
        k: u64,
        /// The CSV file to write (a new file).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Two cases about the same incident: they count once in statistics.
    Link {
        #[command(flatten)]
        folder: RegistryFolder,
        /// A case number.
        a: i64,
        /// Another case number.
        b: i64,
    },
}

/// Where the registry is.
#[derive(clap::Args)]
struct RegistryFolder {
    /// The folder `open` writes to (its --out; the registry is its registry.sqlite3).
    #[arg(long, value_name = "DIR", default_value = "reports")]
    reports: PathBuf,
}

impl RegistryFolder {
    fn open(&self) -> Result<resguardo::registry::Registry, Failure> {
        if !self.reports.is_dir() {
            return Err(Failure::usage(format!(
                "{}: no such folder (give --reports, the --out folder of open)",
                self.reports.display()
            )));
        }
        resguardo::registry::Registry::in_folder(&self.reports).map_err(registry_failure)
    }
}

/// A registry error as a one-line failure: the file itself is bad input (3), an unknown case or
/// name is usage (2), SQLite failing is the environment (4).
fn registry_failure(e: resguardo::registry::RegistryError) -> Failure {
    use resguardo::registry::RegistryError as E;
    match e {
        E::Sqlite(_) | E::Io(_) => Failure::environment(e.to_string()),
        E::Unknown(_) | E::UnknownCase(_) | E::BadTransition { .. } => {
            Failure::usage(e.to_string())
        }
        _ => Failure::bad_input(e.to_string()),
    }
}

/// New passphrases must have at least this many characters.
const MIN_PASSPHRASE: usize = 8;

fn main() -> ExitCode {
    let lang = Lang::from_env();
    let matches = localized_command(lang).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Command::OpenWorker {
        dir,
        entry,
        max_plaintext,
        require_sandbox,
        lang,
    } = cli.command
    {
        return run_worker(dir, &entry, max_plaintext, require_sandbox, &lang);
    }
    finish(PROGRAM, run(cli.command, lang))
}

fn run(command: Command, lang: Lang) -> Result<(), Failure> {
    match command {
        Command::Keygen {
            name,
            out,
            profile,
            passphrase_file,
            validity_days,
            fingerprint_only,
            courier,
            org,
        } => {
            let usage = |e: passphrase::PassphraseError| Failure::usage(e.message(lang));
            if org {
                return keygen_org(
                    lang,
                    name,
                    &out,
                    passphrase_file.as_deref(),
                    validity_days,
                    fingerprint_only,
                );
            }
            let passphrase = match passphrase_file {
                Some(path) => {
                    let p = passphrase::from_file(&path).map_err(usage)?;
                    passphrase::check_length(&p, MIN_PASSPHRASE).map_err(usage)?;
                    p
                }
                None => passphrase::ask_new(
                    MIN_PASSPHRASE,
                    (
                        match courier {
                            false => lang.pick(
                                "New passphrase for the reviewer key: ",
                                "Nueva frase de contraseña para la clave de revisor: ",
                            ),
                            true => lang.pick(
                                "New passphrase for the courier key: ",
                                "Nueva frase de contraseña para la clave de enlace: ",
                            ),
                        },
                        lang.pick("Repeat the passphrase: ", "Repite la frase de contraseña: "),
                    ),
                )
                .map_err(usage)?,
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
                role: if courier {
                    KeyRole::Courier
                } else {
                    KeyRole::Reviewer
                },
            };
            let outcome = keygen::keygen(options, &out).map_err(|e| match e {
                keygen::KeygenError::Write { .. } => Failure::environment(e.message(lang)),
                other => Failure::usage(other.message(lang)),
            })?;
            if fingerprint_only {
                println!("{}", outcome.fingerprint.to_hex());
                return Ok(());
            }
            let (stdout, stderr) = messages::keygen_lines(
                lang,
                courier,
                &outcome.fingerprint,
                &outcome.public,
                &outcome.secret,
                &outcome.revocation,
            );
            print!("{stdout}");
            eprint!("{stderr}");
            Ok(())
        }
        Command::SignKeys {
            org_key,
            reviewers,
            couriers,
            version,
            valid_days,
            page_manifest,
            out,
            passphrase_file,
        } => sign_keys_command(
            lang,
            &org_key,
            &reviewers,
            &couriers,
            version,
            valid_days,
            page_manifest.as_deref(),
            &out,
            passphrase_file.as_deref(),
        ),
        Command::AddSigningKey {
            key,
            out,
            passphrase_file,
        } => {
            let (locked, passphrase) = load_reviewer_key(&key, passphrase_file.as_deref(), lang)?;
            if locked.can_sign(passphrase.as_ref()) {
                return Err(Failure::usage(lang.pick(
                    "this key has a signing subkey already; nothing to do",
                    "esta clave ya tiene una subclave de firma; no hay nada que hacer",
                )));
            }
            let upgraded = keygen::add_signing_key(locked.cert(), passphrase.as_ref(), &out)
                .map_err(|e| match e {
                    keygen::KeygenError::Write { .. } => Failure::environment(e.message(lang)),
                    other => Failure::bad_input(other.message(lang)),
                })?;
            println!(
                "{}: {}",
                lang.pick("Fingerprint", "Huella digital"),
                messages::grouped_fingerprint(&upgraded.fingerprint)
            );
            eprintln!(
                "  {}: {}\n  {}: {}",
                lang.pick(
                    "new public key (give to the gateway operator)",
                    "nueva clave pública (para quien opera el servidor)"
                ),
                upgraded.public.display(),
                lang.pick(
                    "new secret key (replaces the old one, offline)",
                    "nueva clave secreta (reemplaza a la anterior, sin red)"
                ),
                upgraded.secret.display()
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
            max_bundle_plaintext,
            seen_head,
        } => {
            // Read before the sandbox: it may name a file beside the bundle.
            let seen_head = seen_head.as_deref().map(parse_seen_head).transpose()?;
            open_command(
                lang,
                &bundle,
                &key,
                &out,
                passphrase_file.as_deref(),
                require_sandbox,
                max_plaintext,
                max_bundle_plaintext,
                seen_head,
            )
        }
        Command::Unpack { bundle, out } => {
            let file = open_file(&bundle)?;
            let out_dir = prepare_out(&out)?;
            let summary = open::unpack_bundle(file, &out_dir);
            print_summary(&summary, Verb::Unpacked, &out, lang)
        }
        Command::List { path, urgent } if path.is_dir() => list_reports(&path, urgent, lang),
        Command::List { urgent: true, .. } => Err(Failure::usage(lang.pick(
            "--urgent lists opened reports: give the --out folder of open, not a bundle",
            "--urgent lista reportes abiertos: indica la carpeta --out de open, no un paquete",
        ))),
        Command::List { path, .. } => {
            let manifest = bundle::read_manifest(std::io::BufReader::new(open_file(&path)?))
                .map_err(|e| bundle_failure(e, lang))?;
            println!(
                "{} {}  {} {}  {} {}",
                lang.pick("bundle", "paquete"),
                manifest.batch,
                lang.pick("created", "creado el"),
                manifest.created,
                manifest.submissions.len(),
                lang.pick("submissions", "envíos")
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
        Command::Watch {
            connection,
            every,
            on_alert,
            state,
            once,
            org,
        } => {
            let trust = match &org {
                Some(org) => Some(watch::TrustOptions {
                    pin: resguardo::submit::verify_page::parse_pin(org).map_err(Failure::usage)?,
                    page: resguardo::submit::verify_page::PageClient::new(
                        &connection.server,
                        match (&connection.ca_cert, connection.insecure_self_signed) {
                            (Some(pem), _) => Trust::CaCert(pem.clone()),
                            (None, true) => Trust::InsecureAnyCertificate,
                            (None, false) => Trust::WebPki,
                        },
                        connection.proxy.as_deref(),
                    )
                    .map_err(|e| Failure::usage(e.to_string()))?,
                }),
                None => None,
            };
            let mut courier = connection.courier(lang, true)?;
            let options = watch::WatchOptions {
                every: Duration::from_secs(every),
                state_dir: state,
                on_alert,
                polls: once.then_some(1),
                trust,
            };
            watch::watch(&mut courier, &options, &mut std::io::stdout())
                .map_err(|e| Failure::environment(e.to_string()))
        }
        Command::Fetch {
            connection,
            out,
            id,
            batch,
            list,
        } => {
            let what = match (batch, id.is_empty()) {
                (Some(batch), _) => FetchWhat::Batch(
                    batch
                        .parse()
                        .map_err(|e: resguardo::submission::BadId| Failure::usage(e.to_string()))?,
                ),
                (None, true) => FetchWhat::Next,
                (None, false) if id.len() > resguardo::courier::MAX_COPY_IDS => {
                    return Err(Failure::usage(lang.pick(
                        "--id: at most 20 submissions at once",
                        "--id: como mucho 20 envíos a la vez",
                    )))
                }
                (None, false) => FetchWhat::Copy(
                    id.iter()
                        .map(|i| i.parse())
                        .collect::<Result<_, _>>()
                        .map_err(|e: resguardo::submission::BadId| Failure::usage(e.to_string()))?,
                ),
            };
            let mut courier = connection.courier(lang, false)?;
            if list {
                let listed = courier.batches().map_err(transfer_failure)?;
                if listed.batches.is_empty() {
                    println!(
                        "{}",
                        lang.pick("no batches on the gateway", "no hay lotes en el servidor")
                    );
                }
                for b in listed.batches {
                    println!(
                        "{}  {}  {} {}  {}",
                        b.batch,
                        b.created,
                        b.submissions,
                        lang.pick("submissions", "envíos"),
                        match b.delivered {
                            true =>
                                lang.pick("delivered, not yet purged", "entregado, aún sin purgar"),
                            false => lang.pick("not yet delivered", "aún sin entregar"),
                        }
                    );
                }
                return Ok(());
            }
            let out = out.unwrap_or_default();
            let fetched = courier.fetch(&out, &what).map_err(transfer_failure)?;
            match fetched.batch {
                None => println!("{}", lang.pick("nothing to fetch", "nada que descargar")),
                Some(batch) => println!(
                    "{} {batch}: {} {}, {} bytes{} -> {}",
                    lang.pick("bundle", "paquete"),
                    fetched.submissions,
                    lang.pick("submissions", "envíos"),
                    fetched.size,
                    if fetched.resumed_from > 0 {
                        format!(
                            " ({} {})",
                            lang.pick("resumed from byte", "retomado desde el byte"),
                            fetched.resumed_from
                        )
                    } else {
                        String::new()
                    },
                    clean_line(&out.display().to_string())
                ),
            }
            Ok(())
        }
        Command::Purge {
            connection,
            bundle,
            receipt,
        } => {
            let mut courier = connection.courier(lang, false)?;
            let purged = courier.purge(&bundle, &receipt).map_err(transfer_failure)?;
            println!(
                "{}: {}  {}: {}  {}: {}",
                lang.pick("purged", "eliminados"),
                purged.purged.len(),
                lang.pick("already gone", "ya no estaban"),
                purged.already_gone.len(),
                lang.pick("kept", "conservados"),
                purged.refused.len()
            );
            for (id, reason) in &purged.refused {
                println!("  {id}  {}", clean_line(reason));
            }
            Ok(())
        }
        Command::Reply {
            report,
            message,
            attachments,
            key,
            passphrase_file,
            team,
            language,
            out,
        } => {
            let (locked, passphrase) = load_reviewer_key(&key, passphrase_file.as_deref(), lang)?;
            let signer = locked
                .signing_key(passphrase.as_ref())
                .map_err(|e| Failure::bad_input(e.message(lang)))?;
            let mut certs = vec![locked.cert().clone().strip_secret_key_material()];
            for path in &team {
                let cert = std::fs::read(path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        use sequoia_openpgp::parse::Parse;
                        sequoia_openpgp::Cert::from_bytes(&b).map_err(|e| e.to_string())
                    })
                    .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
                certs.push(cert.strip_secret_key_material());
            }
            let written = resguardo::review::reply::reply(resguardo::review::reply::ReplyRequest {
                report: &report,
                message: &message,
                attachments: &attachments,
                language: &language,
                signer,
                team: &certs,
                outbox: &out,
            })
            .map_err(|e| match e {
                resguardo::review::reply::ReplyCommandError::Write(_) => {
                    Failure::environment(e.to_string())
                }
                other => Failure::bad_input(other.to_string()),
            })?;
            println!(
                "{} ({} {}): {}",
                lang.pick("answer written", "respuesta escrita"),
                written.in_outbox,
                lang.pick("in the outbox", "en la bandeja de salida"),
                clean_line(&out.display().to_string())
            );
            println!(
                "  {}: {}",
                lang.pick("copy kept in", "copia guardada en"),
                clean_line(&written.copy.display().to_string())
            );
            Ok(())
        }
        Command::Push {
            connection,
            outbox: path,
        } => {
            let outbox = resguardo::replies::outbox::read(&path)
                .map_err(|e| Failure::bad_input(e.to_string()))?;
            let mut courier = connection.courier(lang, false)?;
            let mut failed = 0;
            for pushed in courier.push(&outbox) {
                let short = &pushed.conversation.to_string()[..16];
                match pushed.outcome {
                    Ok(answer) if answer.already_stored => println!(
                        "{short}…  {} {}",
                        lang.pick("already stored as answer", "ya guardada como respuesta"),
                        answer.n
                    ),
                    Ok(answer) => println!(
                        "{short}…  {} {}",
                        lang.pick("stored as answer", "guardada como respuesta"),
                        answer.n
                    ),
                    Err(e) => {
                        failed += 1;
                        println!("{short}…  {}", clean_line(&e.to_string()));
                    }
                }
            }
            if failed > 0 {
                return Err(Failure::new(1, format!("{failed} answers were not stored")));
            }
            // The outbox holds ciphertext only, but on a networked machine it still says that
            // these conversations were answered, and when.
            println!(
                "{}: {}",
                lang.pick(
                    "every answer is stored; delete the outbox from this machine",
                    "todas las respuestas están guardadas; borre la bandeja de salida de esta máquina"
                ),
                clean_line(&path.display().to_string())
            );
            Ok(())
        }
        Command::Ring {
            state,
            id,
            on_alert,
        } => {
            let id = id
                .parse()
                .map_err(|e: resguardo::submission::BadId| Failure::usage(e.to_string()))?;
            watch::ring(&state, id, on_alert.as_deref())
                .map(drop)
                .map_err(|e| Failure::environment(e.to_string()))
        }
        Command::Registry(command) => registry_command(command, lang),
        Command::OpenWorker { .. } => Err(Failure::usage("internal command")),
    }
}

/// `registry …`.
fn registry_command(command: RegistryCommand, lang: Lang) -> Result<(), Failure> {
    use resguardo::registry::{CaseFilter, CaseUpdate, Risk, Status};
    let status = |s: Option<String>| s.as_deref().map(Status::parse).transpose();
    match command {
        RegistryCommand::List {
            folder,
            status: wanted,
            region,
            incident_type,
            since,
            urgent,
        } => {
            let registry = folder.open()?;
            let filter = CaseFilter {
                status: status(wanted).map_err(registry_failure)?,
                region,
                incident_type,
                since: since
                    .map(|d| {
                        d.parse().map_err(|_| {
                            Failure::usage(format!("--since {d:?}: not a day (YYYY-MM-DD)"))
                        })
                    })
                    .transpose()?,
                urgent_only: urgent,
            };
            let rows = registry.list(&filter).map_err(registry_failure)?;
            println!(
                "{}",
                resguardo::registry::workflow::table(&rows, lang.pick("en", "es"))
            );
            Ok(())
        }
        RegistryCommand::Show { folder, case } => {
            let registry = folder.open()?;
            let row = registry.case(case).map_err(registry_failure)?;
            let history = registry.history(case).map_err(registry_failure)?;
            print!(
                "{}",
                resguardo::registry::workflow::describe(&row, &history, lang.pick("en", "es"))
            );
            Ok(())
        }
        RegistryCommand::Case {
            folder,
            case,
            status: wanted,
            risk,
            assign,
            note,
        } => {
            let update = CaseUpdate {
                status: status(wanted).map_err(registry_failure)?,
                risk: risk
                    .as_deref()
                    .map(Risk::parse)
                    .transpose()
                    .map_err(registry_failure)?,
                assign,
                note,
            };
            if update.status.is_none()
                && update.risk.is_none()
                && update.assign.is_none()
                && update.note.is_none()
            {
                return Err(Failure::usage(
                    "give at least one of --status, --risk, --assign, --note",
                ));
            }
            let mut registry = folder.open()?;
            registry
                .update_case(case, &update)
                .map_err(registry_failure)?;
            let row = registry.case(case).map_err(registry_failure)?;
            println!(
                "{} {case}: {}",
                lang.pick("case", "caso"),
                clean_line(&row.status)
            );
            Ok(())
        }
        RegistryCommand::Import { folder, csv } => {
            let mut registry = folder.open()?;
            let imported = registry.import_csv(&csv).map_err(registry_failure)?;
            println!(
                "{imported} {}",
                lang.pick("cases imported", "casos importados")
            );
            Ok(())
        }
        RegistryCommand::Stats {
            folder,
            by,
            since,
            format,
        } => {
            use resguardo::registry::stats::Dimension;
            let by = Dimension::parse_list(&by).map_err(registry_failure)?;
            let since = since
                .map(|d| {
                    d.parse().map_err(|_| {
                        Failure::usage(format!("--since {d:?}: not a day (YYYY-MM-DD)"))
                    })
                })
                .transpose()?;
            let stats = folder.open()?.stats(&by, since).map_err(registry_failure)?;
            match format.as_str() {
                "table" => println!("{}", stats.table()),
                "csv" => print!("{}", stats.csv()),
                "json" => println!("{}", stats.json()),
                other => {
                    return Err(Failure::usage(format!(
                        "--format {:?}: one of table, csv, json",
                        clean_line(other)
                    )))
                }
            }
            Ok(())
        }
        RegistryCommand::Report { folder, out } => {
            let html = folder
                .open()?
                .report_html(resguardo::submission::UtcDay::today())
                .map_err(registry_failure)?;
            write_new_file(&out, html.as_bytes())?;
            println!(
                "{}: {}",
                lang.pick("Report", "Informe"),
                clean_line(&out.display().to_string())
            );
            Ok(())
        }
        RegistryCommand::Publish { folder, k, out } => {
            let csv = folder.open()?.publish(k).map_err(registry_failure)?;
            write_new_file(&out, csv.as_bytes())?;
            println!(
                "{}: {}",
                lang.pick("Aggregates to publish", "Agregados para publicar"),
                clean_line(&out.display().to_string())
            );
            Ok(())
        }
        RegistryCommand::Chain {
            folder,
            start_new_log: true,
        } => {
            let forgotten = folder.open()?.start_new_log().map_err(registry_failure)?;
            print_chain_problems(lang.pick("forgotten", "olvidado"), &forgotten, lang);
            println!(
                "{}",
                lang.pick(
                    "The registry now waits for a new log, from number 1.",
                    "El registro espera ahora un registro nuevo del servidor, desde el número 1."
                )
            );
            Ok(())
        }
        RegistryCommand::Chain { folder, .. } => {
            let mut registry = folder.open()?;
            let status = registry.chain_status().map_err(registry_failure)?;
            let problems = registry.chain_problems().map_err(registry_failure)?;
            use resguardo::registry::chain::ranges;
            println!(
                "{} 1–{}: {} {}; {}: {}",
                lang.pick("numbers", "números"),
                status.known_through,
                status.arrived,
                lang.pick("arrived", "llegaron"),
                lang.pick("not yet covered", "aún sin cubrir"),
                if status.gaps.is_empty() {
                    "-".to_string()
                } else {
                    ranges(&status.gaps, 20)
                }
            );
            print_chain_problems(lang.pick("PROBLEM", "PROBLEMA"), &problems, lang);
            if problems.is_empty() {
                Ok(())
            } else {
                Err(Failure::new(
                    resguardo::cli::EXIT_UNTRUSTED,
                    lang.pick(
                        "the gateway's log shows problems (listed above)",
                        "el registro del servidor muestra problemas (arriba)",
                    ),
                ))
            }
        }
        RegistryCommand::Link { folder, a, b } => {
            let mut registry = folder.open()?;
            let incident = registry.link(a, b).map_err(registry_failure)?;
            println!(
                "{} {a}, {b}: {} {incident}",
                lang.pick("cases", "casos"),
                lang.pick("one incident, counted as", "un incidente, contado como")
            );
            Ok(())
        }
    }
}

/// Writes `bytes` to a new file (never over an existing one: a report or a published file is
/// not replaced by accident), synced.
fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Failure::usage(format!(
                "{}: exists already; give another --out (nothing was written)",
                path.display()
            )))
        }
        Err(e) => return Err(Failure::environment(format!("{}: {e}", path.display()))),
    };
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::environment(format!("{}: {e}", path.display())))
}

/// The Spanish help of [`Connection`]'s options.
const CONNECTION_HELP: &[(&str, &str)] = &[
    ("server", "El servidor, p. ej. http://xyz….onion/ o https://reportes.example.org/"),
    ("courier_key", "Tu clave de enlace (de `keygen --courier`)."),
    ("passphrase_file", "Leer la frase de contraseña de la clave de la primera línea de este archivo en vez de la terminal."),
    ("proxy", "Conectar a través de este proxy, p. ej. socks5h://127.0.0.1:9050 para Tor."),
    ("ca_cert", "Confiar solo en este certificado de CA o autofirmado (PEM) para el servidor."),
    ("insecure_self_signed", "Aceptar cualquier certificado TLS. Solo para un servidor de prueba."),
];

/// How a courier command reaches the gateway, and with which key (`watch`, `fetch`, `purge`).
#[derive(clap::Args)]
struct Connection {
    /// The gateway, e.g. http://xyz….onion/ or https://reportes.example.org/
    #[arg(long, value_name = "URL")]
    server: String,
    /// Your courier key (from `keygen --courier`).
    #[arg(long, value_name = "FILE")]
    courier_key: PathBuf,
    /// Read the key's passphrase from the first line of this file instead of the terminal.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Connect through this proxy, e.g. socks5h://127.0.0.1:9050 for Tor.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// Trust only this CA or self-signed certificate (PEM) for the gateway.
    #[arg(long, value_name = "PEM", conflicts_with = "insecure_self_signed")]
    ca_cert: Option<PathBuf>,
    /// Accept any TLS certificate. Only for a test gateway with a self-signed certificate.
    #[arg(long)]
    insecure_self_signed: bool,
}

impl Connection {
    /// Connects with the courier key; `reads_triage` also unlocks its encryption subkey.
    fn courier(self, lang: Lang, reads_triage: bool) -> Result<courier::Courier, Failure> {
        let trust = match (self.ca_cert, self.insecure_self_signed) {
            (Some(pem), _) => Trust::CaCert(pem),
            (None, true) => Trust::InsecureAnyCertificate,
            (None, false) => Trust::WebPki,
        };
        let client = GatewayClient::new(&self.server, trust, self.proxy.as_deref())
            .map_err(|e| Failure::usage(e.to_string()))?;
        let (signer, key) = unlock_courier(
            lang,
            &self.courier_key,
            self.passphrase_file.as_deref(),
            reads_triage,
        )?;
        Ok(courier::Courier {
            client,
            signer,
            key,
        })
    }
}

fn transfer_failure(e: transfer::TransferError) -> Failure {
    match e {
        transfer::TransferError::OutputExists(_) | transfer::TransferError::Invalid(_) => {
            Failure::bad_input(e.to_string())
        }
        other => Failure::environment(other.to_string()),
    }
}

/// Loads a courier key and unlocks its authentication subkey (and, to read triage, its
/// encryption subkey).
fn unlock_courier(
    lang: Lang,
    key_path: &Path,
    passphrase_file: Option<&Path>,
    reads_triage: bool,
) -> Result<
    (
        resguardo::review::secret_key::KeyPair,
        Option<resguardo::review::secret_key::UnlockedKey>,
    ),
    Failure,
> {
    let locked = LockedKey::load(key_path).map_err(|e| Failure::bad_input(e.message(lang)))?;
    let prompt = lang.pick(
        "Passphrase for courier key",
        "Frase de contraseña de la clave de enlace",
    );
    let passphrase = read_key_passphrase(&locked, passphrase_file, prompt, lang)?;
    let signer = locked
        .authentication_signer(passphrase.as_ref())
        .map_err(|e| Failure::bad_input(e.message(lang)))?;
    let key = if reads_triage {
        let key = locked
            .unlock(passphrase.as_ref())
            .map_err(|e| Failure::bad_input(e.message(lang)))?;
        Some(key)
    } else {
        None
    };
    Ok((signer, key))
}

/// The parser process: answers on stdout whatever happens.
fn run_worker(
    dir: PathBuf,
    entry: &str,
    max_plaintext: u64,
    require_sandbox: bool,
    lang: &str,
) -> ExitCode {
    let answer = if worker::is_acceptable_dir(&dir) {
        match worker::Job::from_args(dir, entry, max_plaintext, require_sandbox, lang) {
            Ok(job) => worker::run(&job, std::io::stdin().lock()),
            Err(e) => worker::Answer::Failed {
                reason: "parser failed".into(),
                detail: clean_line(&e),
            },
        }
    } else {
        worker::Answer::Failed {
            reason: "parser failed".into(),
            detail: "not an absolute staging directory".into(),
        }
    };
    match worker::send(&answer, std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(resguardo::cli::EXIT_ENVIRONMENT),
    }
}

fn open_file(path: &Path) -> Result<File, Failure> {
    File::open(path).map_err(|e| {
        Failure::bad_input(format!("{}: {e}", clean_line(&path.display().to_string())))
    })
}

fn prepare_out(out: &Path) -> Result<OutputDir, Failure> {
    OutputDir::prepare(out).map_err(|e| Failure::environment(format!("{}: {e}", out.display())))
}

fn bundle_failure(e: bundle::BundleError, lang: Lang) -> Failure {
    let message = e.message(lang);
    match e {
        bundle::BundleError::Io(_) => Failure::environment(message),
        _ => Failure::bad_input(message),
    }
}

/// `keygen --org`: the organisation key, and its fingerprint for the printed card.
fn keygen_org(
    lang: Lang,
    name: String,
    out: &Path,
    passphrase_file: Option<&Path>,
    validity_days: u64,
    fingerprint_only: bool,
) -> Result<(), Failure> {
    let usage = |e: passphrase::PassphraseError| Failure::usage(e.message(lang));
    let passphrase = match passphrase_file {
        Some(path) => {
            let p = passphrase::from_file(path).map_err(usage)?;
            passphrase::check_length(&p, MIN_PASSPHRASE).map_err(usage)?;
            p
        }
        None => passphrase::ask_new(
            MIN_PASSPHRASE,
            (
                lang.pick(
                    "New passphrase for the organisation key: ",
                    "Nueva frase de contraseña para la clave de la organización: ",
                ),
                lang.pick("Repeat the passphrase: ", "Repite la frase de contraseña: "),
            ),
        )
        .map_err(usage)?,
    };
    let options = resguardo::keyring::OrgKeyOptions {
        name,
        passphrase,
        validity: (validity_days > 0)
            .then(|| Duration::from_secs(validity_days.saturating_mul(86_400))),
    };
    let outcome = keygen::keygen_org(options, out).map_err(|e| match e {
        keygen::KeygenError::Write { .. } => Failure::environment(e.message(lang)),
        other => Failure::usage(other.message(lang)),
    })?;
    if fingerprint_only {
        println!("{}", outcome.fingerprint.to_hex());
        return Ok(());
    }
    println!(
        "{}: {}",
        lang.pick(
            "Organisation key fingerprint",
            "Huella digital de la clave de la organización"
        ),
        messages::grouped_fingerprint(&outcome.fingerprint)
    );
    println!(
        "{}",
        lang.pick(
            "Print this fingerprint on the fingerprint card (laminated, posted where defenders meet, handed over in person): reporters compare it with the one the page and resguardo-submit show.",
            "Imprime esta huella en la tarjeta de huella digital (plastificada, en los lugares donde se reúnen las defensoras y defensores, entregada en persona): quienes reportan la comparan con la que muestran la página y resguardo-submit."
        )
    );
    for (label, path) in [
        (
            lang.pick(
                "public key (for the gateway operator and everyone who checks key lists)",
                "clave pública (para quien opera el servidor y quien compruebe listas de claves)",
            ),
            &outcome.public,
        ),
        (
            lang.pick(
                "secret key (keep on the offline machine; it signs key lists)",
                "clave secreta (se queda en la máquina sin red; firma las listas de claves)",
            ),
            &outcome.secret,
        ),
        (
            lang.pick(
                "revocation (keep apart, publish if the key is lost)",
                "revocación (guárdala aparte; publícala si pierdes la clave)",
            ),
            &outcome.revocation,
        ),
    ] {
        eprintln!("{label}: {}", clean_line(&path.display().to_string()));
    }
    Ok(())
}

/// `sign-keys`: the organisation's signed key list.
#[allow(clippy::too_many_arguments)]
fn sign_keys_command(
    lang: Lang,
    org_key: &Path,
    reviewers: &[PathBuf],
    couriers: &[PathBuf],
    version: u64,
    valid_days: u64,
    page_manifest: Option<&Path>,
    out: &Path,
    passphrase_file: Option<&Path>,
) -> Result<(), Failure> {
    use resguardo::review::sign_keys::{self, SignKeysError};
    let failure = |e: SignKeysError| match e {
        SignKeysError::OutputExists(_) | SignKeysError::ValidDays | SignKeysError::VersionZero => {
            Failure::usage(e.message(lang))
        }
        SignKeysError::Write { .. } => Failure::environment(e.message(lang)),
        _ => Failure::bad_input(e.message(lang)),
    };
    // Refused before the passphrase is asked for.
    sign_keys::check_arguments(out, version, valid_days).map_err(failure)?;
    let locked = LockedKey::load(org_key).map_err(|e| Failure::bad_input(e.message(lang)))?;
    sign_keys::check_org_key(locked.cert(), org_key, lang).map_err(failure)?;
    let passphrase = if sign_keys::org_key_needs_passphrase(locked.cert()) {
        let usage = |e: passphrase::PassphraseError| Failure::usage(e.message(lang));
        Some(match passphrase_file {
            Some(path) => passphrase::from_file(path).map_err(usage)?,
            None => passphrase::ask(&format!(
                "{} {}: ",
                lang.pick(
                    "Passphrase for the organisation key",
                    "Frase de contraseña de la clave de la organización"
                ),
                locked.fingerprint()
            ))
            .map_err(usage)?,
        })
    } else {
        None
    };
    let verified = sign_keys::sign_keys(&sign_keys::SignKeysOptions {
        org_key: locked.cert(),
        passphrase: passphrase.as_ref(),
        reviewers,
        couriers,
        version,
        valid_days,
        page_manifest,
        out,
        today: resguardo::submission::UtcDay::today(),
    })
    .map_err(failure)?;
    print!("{}", sign_keys::summary(&verified, out, lang));
    Ok(())
}

/// A reviewer's secret key and its passphrase (from `file` or the terminal).
fn load_reviewer_key(
    key: &Path,
    passphrase_file: Option<&Path>,
    lang: Lang,
) -> Result<(LockedKey, Option<sequoia_openpgp::crypto::Password>), Failure> {
    let locked = LockedKey::load(key).map_err(|e| Failure::bad_input(e.message(lang)))?;
    let passphrase = read_key_passphrase(
        &locked,
        passphrase_file,
        lang.pick("Passphrase for key", "Frase de contraseña de la clave"),
        lang,
    )?;
    Ok((locked, passphrase))
}

/// The key's passphrase from `file` or the terminal; `None` for a key without one.
fn read_key_passphrase(
    locked: &LockedKey,
    file: Option<&Path>,
    prompt: &str,
    lang: Lang,
) -> Result<Option<sequoia_openpgp::crypto::Password>, Failure> {
    if !locked.needs_passphrase() {
        return Ok(None);
    }
    let usage = |e: passphrase::PassphraseError| Failure::usage(e.message(lang));
    match file {
        Some(path) => passphrase::from_file(path).map(Some).map_err(usage),
        None => passphrase::ask(&format!("{prompt} {}: ", locked.fingerprint()))
            .map(Some)
            .map_err(usage),
    }
}

#[allow(clippy::too_many_arguments)]
fn open_command(
    lang: Lang,
    bundle_path: &Path,
    key_path: &Path,
    out: &Path,
    passphrase_file: Option<&Path>,
    require_sandbox: bool,
    max_plaintext: u64,
    max_bundle_plaintext: Option<u64>,
    seen_head: Option<resguardo::trust::chain::ChainPoint>,
) -> Result<(), Failure> {
    let bundle = open_file(bundle_path)?;
    let bundle_size = bundle.metadata().map(|m| m.len()).unwrap_or(0);
    let (locked, passphrase) = load_reviewer_key(key_path, passphrase_file, lang)?;
    let key = locked
        .unlock(passphrase.as_ref())
        .map_err(|e| Failure::bad_input(e.message(lang)))?;
    drop(passphrase);
    if key.unprotected {
        eprintln!(
            "{}",
            lang.pick(
                "warning: this secret key has no passphrase; anyone who copies it can read every report",
                "aviso: esta clave secreta no tiene frase de contraseña; quien la copie puede leer todos los reportes"
            )
        );
    }
    // Nothing more is read from the terminal: input on stdin can no longer reach this process.
    sandbox::detach_stdin().map_err(|e| Failure::environment(format!("/dev/null: {e}")))?;
    let out_dir = prepare_out(out)?;
    let executable =
        sandbox::Executable::current().map_err(|e| Failure::environment(e.message(lang)))?;
    let network_namespace = sandbox::new_network_namespace();
    let status = sandbox::enter_opener(
        &sandbox::OpenerPolicy {
            readable: &[bundle_path],
            writable: out_dir.root(),
            executable: &executable,
        },
        network_namespace,
    )
    .map_err(|e| Failure::environment(e.message(lang)))?;
    eprintln!(
        "{}: {}",
        lang.pick("Sandbox", "Aislamiento"),
        clean_line(&status.summary(lang))
    );
    if require_sandbox && !status.is_sufficient() {
        return Err(Failure::environment(match lang {
            Lang::En => format!(
                "--require-sandbox: the sandbox is not fully active ({}); refusing to open the bundle",
                status.summary(lang)
            ),
            Lang::Es => format!(
                "--require-sandbox: el aislamiento no está del todo activo ({}); no se abre el paquete",
                status.summary(lang)
            ),
        }));
    }
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{bar:40}} {{pos}}/{{len}} {}",
                lang.pick("submissions", "envíos")
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let limits = Limits {
        max_plaintext,
        max_bundle_plaintext: max_bundle_plaintext
            .unwrap_or_else(|| open::default_max_bundle_plaintext(bundle_size)),
        disk_reserve: DISK_RESERVE,
    };
    let parser = ParserProgram {
        program: executable.program.clone(),
        require_sandbox,
        lang,
    };
    let mut summary = open::open_bundle(
        bundle,
        key,
        &out_dir,
        &limits,
        &parser,
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
    if let Some(seen) = &seen_head {
        open::add_seen_head(&mut summary, &out_dir, seen);
    }
    print_summary(&summary, Verb::Opened, out, lang)
}

/// One line per recorded chain problem: `LABEL: detail (batch B, when)`.
fn print_chain_problems(label: &str, problems: &[(String, String, String)], lang: Lang) {
    for (batch, detail, at) in problems {
        println!(
            "{label}: {} ({} {}, {})",
            clean_line(detail),
            lang.pick("batch", "lote"),
            clean_line(batch),
            clean_line(at)
        );
    }
}

/// `--seen-head`: NUMBER:HASH, or a watch's state file holding `chain_head`.
fn parse_seen_head(text: &str) -> Result<resguardo::trust::chain::ChainPoint, Failure> {
    use resguardo::trust::chain::{parse_digest, ChainPoint};
    if let Some((number, hash)) = text.split_once(':') {
        if let (Ok(sequence), Some(hash)) =
            (number.trim().parse::<u64>(), parse_digest(hash.trim()))
        {
            return Ok(ChainPoint { sequence, hash });
        }
    }
    let path = Path::new(text);
    let bytes = match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() <= 16 * 1024 * 1024 => std::fs::read(path)
            .map_err(|e| Failure::bad_input(format!("--seen-head {}: {e}", path.display())))?,
        Ok(_) => {
            return Err(Failure::bad_input(format!(
                "--seen-head {}: not a watch state file (a regular file of at most 16 MiB)",
                path.display()
            )))
        }
        Err(_) => {
            return Err(Failure::usage(
                "--seen-head: give NUMBER:HASH (64 lowercase hex digits) or the watch's state \
                 file watch-state.json",
            ))
        }
    };
    #[derive(serde::Deserialize)]
    struct State {
        chain_head: Option<ChainPoint>,
    }
    let state: State = serde_json::from_slice(&bytes).map_err(|e| {
        Failure::bad_input(format!(
            "--seen-head {}: not a watch state file: {e}",
            path.display()
        ))
    })?;
    state.chain_head.ok_or_else(|| {
        Failure::bad_input(format!(
            "--seen-head {}: the watch has not verified a head yet",
            path.display()
        ))
    })
}

fn print_summary(
    summary: &open::OpenSummary,
    verb: Verb,
    out: &Path,
    lang: Lang,
) -> Result<(), Failure> {
    let printed = messages::summary(summary, verb, out, lang);
    print!("{}", printed.stdout);
    let _ = std::io::stdout().flush();
    eprint!("{}", printed.stderr);
    messages::outcome(summary, lang)
}

/// `list DIR`: the opened reports in a folder, urgent first.
fn list_reports(dir: &Path, urgent_only: bool, lang: Lang) -> Result<(), Failure> {
    let rows =
        index::scan(dir).map_err(|e| Failure::environment(format!("{}: {e}", dir.display())))?;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| !urgent_only || r.urgency == resguardo::payload::Urgency::Yes)
        .collect();
    if rows.is_empty() {
        let none = match (urgent_only, lang) {
            (false, Lang::En) => "No opened reports in",
            (false, Lang::Es) => "No hay reportes abiertos en",
            (true, Lang::En) => "No urgent reports in",
            (true, Lang::Es) => "No hay reportes urgentes en",
        };
        println!("{none} {}", clean_line(&dir.display().to_string()));
        return Ok(());
    }
    print!("{}", index::table(&rows, lang));
    Ok(())
}

/// The command line, with help in the reviewer's language.
fn localized_command(lang: Lang) -> clap::Command {
    let cmd = Cli::command();
    if lang == Lang::En {
        return cmd;
    }
    let spanish = |cmd: clap::Command, about: &'static str, long: Option<&'static str>| {
        let cmd = cmd
            .about(about)
            .long_about(long)
            .help_template(
                "{before-help}{about-with-newline}\nUso: {usage}\n\n{all-args}{after-help}",
            )
            .disable_help_flag(true)
            .arg(
                Arg::new("help")
                    .short('h')
                    .long("help")
                    .action(ArgAction::Help)
                    .help("Mostrar esta ayuda"),
            );
        cmd.mut_args(|a| {
            let heading = if a.is_positional() {
                "Argumentos"
            } else {
                "Opciones"
            };
            a.help_heading(heading)
        })
    };
    let arg_help = |cmd: clap::Command, helps: &[(&str, &'static str)]| {
        helps.iter().fold(cmd, |cmd, (id, help)| {
            cmd.mut_arg(*id, |a| a.help(*help).long_help(None::<&'static str>))
        })
    };
    let root = spanish(
        cmd.disable_help_subcommand(true)
            .disable_version_flag(true)
            .arg(
                Arg::new("version")
                    .short('V')
                    .long("version")
                    .action(ArgAction::Version)
                    .help("Mostrar la versión"),
            )
            .subcommand_help_heading("Comandos"),
        "Herramienta de revisión de Resguardo: crear claves y abrir paquetes sellados en una \
         máquina sin red.",
        None,
    );
    root.mut_subcommand("keygen", |c| {
        arg_help(
            spanish(
                c,
                "Crear un par de claves de revisor (Curve25519, subclave de cifrado aparte, \
                 protegida con frase de contraseña).",
                Some(
                    "Crear un par de claves de revisor (Curve25519, subclave de cifrado aparte, \
                     protegida con frase de contraseña).\n\nEjecútalo en la máquina sin red. \
                     Escribe NOMBRE.pub.asc (para el servidor), NOMBRE.sec.asc (se queda sin \
                     red) y NOMBRE.rev.asc (revocación; guárdala aparte) en --out, e imprime la \
                     huella digital en grupos de cuatro.",
                ),
            ),
            &[
                ("name", "El nombre o rol del revisor, tal como aparecerá en la clave (p. ej. \"Revisor 1 – Lima\")."),
                ("out", "Carpeta donde escribir los archivos de la clave."),
                ("profile", "compatible: clave v4 solo con SEIPD v1 (también se abre con GnuPG 2.2); rfc9580: clave v6 que permite SEIPD v2 (AEAD), solo para herramientas basadas en sequoia."),
                ("passphrase_file", "Leer la frase de contraseña de la primera línea de este archivo en vez de la terminal."),
                ("validity_days", "Días hasta que la clave caduque; 0 para nunca. La caducidad obliga a planificar el cambio de claves."),
                ("fingerprint_only", "Imprimir solo la huella digital en hexadecimal, sin espacios (para scripts)."),
                ("courier", "Crear una clave de enlace para un dispositivo de guardia: lee los sobres de triaje y firma pedidos al servidor; nunca puede abrir un reporte."),
                ("org", "Crear la clave de la organización (org.pub.asc, org.sec.asc, org.rev.asc): una clave Ed25519 que solo firma listas de claves (sign-keys), guardada sin red; su huella va en la tarjeta de huella digital impresa."),
            ],
        )
    })
    .mut_subcommand("sign-keys", |c| {
        arg_help(
            spanish(
                c,
                "Firmar la lista de claves con la clave de la organización (ejecútalo sin red): \
                 los revisores y enlaces que la organización respalda ahora, y la página que \
                 publicó (docs/trust-v1.md).",
                None,
            ),
            &[
                ("org_key", "La clave secreta de la organización (org.sec.asc de `keygen --org`)."),
                ("reviewers", "Los certificados públicos de los revisores."),
                ("couriers", "Los certificados públicos de los enlaces."),
                ("version", "La versión de la lista: 1 la primera, mayor que la anterior en cada lista nueva."),
                ("valid_days", "Días que la lista es válida (1 a 730); firma una nueva antes."),
                ("page_manifest", "La página que sirve el servidor, de `resguardo-gateway page-manifest` de la versión que se instala [por defecto: la página de esta versión]."),
                ("out", "La lista firmada a escribir (no debe existir)."),
                ("passphrase_file", "Leer la frase de contraseña de la clave de la primera línea de este archivo en vez de la terminal."),
            ],
        )
    })
    .mut_subcommand("open", |c| {
        arg_help(
            spanish(
                c,
                "Descifrar y comprobar cada envío de un paquete en DIR/<id>/ (ejecútalo sin red).",
                Some(
                    "Descifrar y comprobar cada envío de un paquete en DIR/<id>/ (ejecútalo sin \
                     red).\n\nCada reporte recibe report.json, un report.txt legible (los \
                     urgentes lo dicen en la primera línea) y sus adjuntos en files/. Un envío \
                     que falla (dañado, no cifrado para esta clave, contenido inválido, por \
                     encima de un límite) se informa con el motivo y no se escribe nada de él; \
                     los demás se abren igual. Si se vuelve a ejecutar, omite lo ya abierto. \
                     Antes de leer el primer texto cifrado el proceso se aísla (Landlock, \
                     seccomp, un espacio de red nuevo); cada envío lo lee un proceso aparte, más \
                     restringido, que nunca ve la clave. Después, DIR contiene index.csv e \
                     index.txt (todos los reportes abiertos) y open-receipt-<lote>.json, que \
                     quien opera el servidor necesita para borrar el paquete del servidor.",
                ),
            ),
            &[
                ("bundle", "El paquete creado por `resguardo-gateway export`."),
                ("key", "Tu clave secreta (de `keygen`, o exportada de gpg o sq)."),
                ("out", "Dónde escribir los reportes."),
                ("passphrase_file", "Leer la frase de contraseña de la clave de la primera línea de este archivo en vez de la terminal."),
                ("require_sandbox", "No abrir nada si el aislamiento no restringe archivos, red y llamadas al sistema (Landlock y seccomp), en este proceso y en cada proceso lector."),
                ("max_plaintext", "Máximo de contenido descifrado por envío, en bytes (contra bombas de expansión)."),
                ("max_bundle_plaintext", "Máximo de contenido descifrado que una ejecución guarda de todo el paquete, en bytes [por defecto: 1 GiB u 8 veces el tamaño del paquete, lo que sea mayor]."),
                ("seen_head", "Una cabeza del registro del servidor que `watch` de una persona de guardia verificó, como NÚMERO:HASH, o el archivo de estado de watch (ESTADO/watch-state.json) traído con el paquete: los paquetes deben coincidir con ella."),
            ],
        )
    })
    .mut_subcommand("unpack", |c| {
        arg_help(
            spanish(
                c,
                "Escribir cada envío sellado de un paquete como DIR/<id>.pgp, para abrirlo con \
                 gpg o sq.",
                None,
            ),
            &[
                ("bundle", "El paquete."),
                ("out", "Dónde escribir los envíos sellados."),
            ],
        )
    })
    .mut_subcommand("watch", |c| {
        let c = arg_help(c, CONNECTION_HELP);
        arg_help(
            spanish(
                c,
                "Vigilar el servidor por reportes nuevos y sonar la alarma por los urgentes (en un \
                 dispositivo de guardia, con una clave de enlace).",
                None,
            ),
            &[
                ("every", "Segundos entre consultas (1 a 3600; menos de 10 solo para pruebas)."),
                ("on_alert", "Una orden de shell que se ejecuta por cada reporte urgente (para reenviarlo por signal-cli, SMS o correo)."),
                ("state", "Dónde guarda la vigilancia lo que ya vio y qué alarmas sonaron."),
                ("once", "Consultar una vez y terminar."),
                ("org", "La huella de la clave de la organización (de su tarjeta): revisar también la lista de claves y la página en cada consulta."),
            ],
        )
    })
    .mut_subcommand("fetch", |c| {
        let c = arg_help(c, CONNECTION_HELP);
        arg_help(
            spanish(
                c,
                "Descargar el siguiente paquete de exportación del servidor (con una clave de \
                 enlace), retomando una descarga interrumpida.",
                None,
            ),
            &[
                ("out", "Dónde escribir el paquete (no debe existir)."),
                ("id", "Solo este envío, en un lote propio (un reporte urgente para llevar de inmediato; se puede repetir)."),
            ],
        )
    })
    .mut_subcommand("purge", |c| {
        let c = arg_help(c, CONNECTION_HELP);
        arg_help(
            spanish(
                c,
                "Borrar del servidor lo que los revisores abrieron de un paquete descargado (con \
                 una clave de enlace), con los mismos controles que `purge` local.",
                None,
            ),
            &[
                ("bundle", "El paquete que se abrió."),
                ("receipt", "El recibo que escribió `open` (open-receipt-<lote>.json en su carpeta --out)."),
            ],
        )
    })
    .mut_subcommand("list", |c| {
        arg_help(
            spanish(
                c,
                "Mostrar los envíos de un paquete (id, día, tamaño) sin descifrar nada, o los \
                 reportes ya abiertos en una carpeta (urgentes primero).",
                None,
            ),
            &[
                ("path", "Un paquete, o la carpeta --out de `open`."),
                ("urgent", "Solo los reportes urgentes (con una carpeta de reportes abiertos)."),
            ],
        )
    })
    .mut_subcommand("registry", |c| {
        spanish(
            c,
            "El registro de incidentes junto a los reportes abiertos (docs/registry-v1.md): \
             casos, su seguimiento, estadísticas, el informe y lo que se puede publicar.",
            None,
        )
    })
}
