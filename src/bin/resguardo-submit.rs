//! `resguardo-submit`: send a report from a terminal, encrypted before it leaves this computer.
#![forbid(unsafe_code)]

// Freed memory is zeroed: plaintext does not outlive the buffers that held it.
#[global_allocator]
static ALLOCATOR: resguardo::process::ZeroingAllocator = resguardo::process::ZEROING_ALLOCATOR;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use resguardo::cli::{finish, Failure};
use resguardo::replies::Receipt;
use resguardo::submit::{
    self, Conversation, GatewayClient, KeyListSeen, ReportInput, SubmitError, Trust,
};
use resguardo::terminal::{clean_line, clean_text};
use resguardo::trust::keylist::grouped;
use sequoia_openpgp::Fingerprint;

const PROGRAM: &str = "resguardo-submit";

/// Send a report to a Resguardo gateway, encrypted on this computer to the reviewers' keys.
///
/// The report is a text file (--message) plus optional attachments. It is packed as payload v1,
/// padded, and encrypted to every reviewer key the gateway publishes, whose fingerprints are
/// printed so you can compare them with ones you got from the reviewers another way. Only
/// ciphertext leaves this computer. To send something you encrypted yourself with gpg or sq,
/// use --sealed FILE instead of --message.
///
/// Seal now, send later: with --save-sealed FILE the report is sealed and written to FILE (a
/// sealed report file, docs/uploads-v1.md) instead of being sent; anyone can send it later, from
/// any device, with --sealed FILE or the page's "send a sealed report". Whoever carries it learns
/// its size and that it is a report, not what it says.
///
/// A sealed report over 1 MiB is uploaded in a way that resumes: if the connection breaks, the
/// upload continues from the last byte that arrived, for up to --retry-for seconds without
/// progress.
///
/// With --pin FINGERPRINT (the organisation key's, from the fingerprint card) the report is
/// encrypted only to keys in a key list signed by that key (docs/trust-v1.md); without it the
/// organisation fingerprint the gateway shows is printed, to compare with the card.
///
/// Exit codes: 0 sent (or saved, with --save-sealed); 2 usage (also: the --save-sealed file
/// exists); 3 bad input (an attachment that would go with its metadata, not named with
/// --send-with-metadata, included; a damaged --sealed file, nothing sent) or refused by the
/// gateway; 4 the network or the gateway failed (also: busy, or still failing after
/// --retry-for); 5 the gateway offers keys the organisation has not vouched for (nothing was
/// sent).
#[derive(Parser)]
#[command(
    name = PROGRAM,
    version,
    max_term_width = 100,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    connection: Connection,
    /// The account of what happened: a UTF-8 text file.
    #[arg(long, value_name = "FILE", required_unless_present = "sealed")]
    message: Option<PathBuf>,
    /// A file to attach (repeat for several). JPEG, PNG and WebP pictures are sent as a copy
    /// cleaned of metadata (place, date, device; the orientation is kept); plain text as it is.
    /// Any other file (HEIC, video, audio, PDF, office documents, a damaged picture) is refused
    /// unless also named with --send-with-metadata.
    #[arg(long = "attach", value_name = "FILE", conflicts_with = "sealed")]
    attachments: Vec<PathBuf>,
    /// Send this attached FILE as it is, with whatever hidden data it holds (the place, the date,
    /// the device, the author…): for a file that cannot be cleaned, or a picture whose metadata
    /// you want the team to see. Give the same path as with --attach (repeatable).
    #[arg(
        long = "send-with-metadata",
        value_name = "FILE",
        conflicts_with = "sealed"
    )]
    send_with_metadata: Vec<PathBuf>,
    /// Someone is at imminent risk to life or physical integrity.
    #[arg(long, conflicts_with = "sealed")]
    urgent: bool,
    /// Language of the report (BCP 47 tag).
    #[arg(
        long,
        default_value = "es",
        value_name = "TAG",
        conflicts_with = "sealed"
    )]
    language: String,
    /// A form answer as key=value, e.g. --field what=threat --field region=Cusco (repeatable).
    #[arg(long = "field", value_name = "KEY=VALUE", value_parser = parse_field, conflicts_with = "sealed")]
    fields: Vec<(String, String)>,
    /// Send a sealed report file (written by --save-sealed or by the page's "save sealed
    /// report"), or a message already encrypted to the reviewers (gpg --encrypt or sq encrypt).
    /// A damaged file is refused (exit 3) before anything is sent.
    #[arg(long, value_name = "FILE", conflicts_with = "message")]
    sealed: Option<PathBuf>,
    /// Seal the report and write it to FILE, a new file (e.g. sealed-1a2b3c4d.bin: a name that
    /// says nothing), instead of sending it. Send it later with --sealed FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "sealed")]
    save_sealed: Option<PathBuf>,
    /// How long to keep retrying an upload over 1 MiB whose bytes stopped moving (a broken
    /// connection, a restarting gateway), in seconds; each retry continues where the last one
    /// stopped.
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    retry_for: u64,
    /// Write the receipt (the 12 words that read the team's answers) to FILE, a new file of
    /// mode 0600, instead of showing it here.
    #[arg(long, value_name = "FILE", conflicts_with = "sealed")]
    receipt_out: Option<PathBuf>,
    /// Send without a receipt: the team will have no way to answer.
    #[arg(long, conflicts_with_all = ["sealed", "receipt_out", "follow_up"])]
    no_replies: bool,
    /// This report adds to the conversation of the receipt in FILE (a follow-up).
    #[arg(long, value_name = "RECEIPT_FILE", conflicts_with_all = ["sealed", "receipt_out"])]
    follow_up: Option<PathBuf>,
    /// The organisation key's fingerprint, from the card or poster you got in person (40 hex
    /// digits, 64 for a v6 key; spaces allowed): send only to the keys its signed key list
    /// vouches for, and refuse (exit 5, nothing sent) anything else.
    #[arg(long, value_name = "FINGERPRINT", value_parser = resguardo::submit::verify_page::parse_pin)]
    pin: Option<Fingerprint>,
    /// With --pin: refuse a key list older than version N (the version on the card, or the last
    /// one you saw). An old list still verifies until it expires, and may name a reviewer the
    /// organisation has since removed.
    #[arg(long, value_name = "N", requires = "pin")]
    min_version: Option<u64>,
}

/// Where the gateway is and how to reach it.
#[derive(Args, Clone)]
struct Connection {
    /// The gateway, e.g. https://reportes.example.org/ or http://xyz….onion/ (required).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Trust only this CA or self-signed certificate (PEM) for the gateway.
    #[arg(long, value_name = "PEM", conflicts_with = "insecure_self_signed")]
    ca_cert: Option<PathBuf>,
    /// Accept any TLS certificate. Only for a test gateway with a self-signed certificate.
    #[arg(long)]
    insecure_self_signed: bool,
    /// Connect through this proxy, e.g. socks5h://127.0.0.1:9050 for Tor.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
}

#[derive(Subcommand)]
enum Sub {
    /// Read the team's answers to a report, with its receipt (docs/replies-v1.md).
    ///
    /// Each answer is decrypted on this computer and checked against the reviewer keys the report
    /// was sent to; one that cannot be verified is shown with a warning, never as the team's.
    Check {
        #[command(flatten)]
        connection: Connection,
        /// A file holding the 12 words of the receipt.
        #[arg(long, value_name = "FILE")]
        receipt_file: PathBuf,
        /// Save the answers' attachments into this directory (created if missing).
        #[arg(long, value_name = "DIR")]
        save: Option<PathBuf>,
    },
    /// Check that a gateway serves the page and keys its organisation vouched for
    /// (docs/trust-v1.md), fetching the page as a browser does.
    ///
    /// Opens the page as a browser does (/, what it loads, /api/v1/keys, the release's other
    /// pages), verifies the served key list with the organisation key (--pin), checks that the
    /// served reviewer and courier keys are the list's, and compares every page and file with
    /// what the list vouches for (SHA-256, what each page loads, its headers, its links and
    /// forms); then, in a second session, every other file of the release. Run it just before
    /// using the page in a browser.
    ///
    /// Exit codes: 0 the page and keys are the ones vouched for; 2 usage (no --pin, a bad URL
    /// or certificate); 4 could not verify this page (the network, the gateway answering
    /// something else than the page and its keys, or the 90-second deadline): do not rely on
    /// it; 5 the key list does not verify under --pin, is older than --min-version, or the keys
    /// differ from it; 6 the page differs from the release (each difference is listed).
    VerifyPage {
        /// The gateway, e.g. https://reportes.example.org/ or http://xyz….onion/
        #[arg(value_name = "URL")]
        url: String,
        /// The organisation key's fingerprint, from the card or poster you got in person: 40
        /// hex digits (a v4 key) or 64 (a v6 key), spaces allowed.
        #[arg(long, value_name = "FINGERPRINT")]
        pin: Option<String>,
        /// Refuse (exit 5) a key list older than version N (the version on the card, or the last
        /// one you saw): an old list still verifies until it expires.
        #[arg(long, value_name = "N", requires = "pin")]
        min_version: Option<u64>,
        /// Trust only this CA or self-signed certificate (PEM) for the gateway.
        #[arg(long, value_name = "PEM", conflicts_with = "insecure_self_signed")]
        ca_cert: Option<PathBuf>,
        /// Accept any TLS certificate. Only for a test gateway with a self-signed certificate.
        #[arg(long)]
        insecure_self_signed: bool,
        /// Connect through this proxy, e.g. socks5h://127.0.0.1:9050 for Tor.
        #[arg(long, value_name = "URL")]
        proxy: Option<String>,
    },
}

fn parse_field(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    finish(PROGRAM, run(cli))
}

fn failure(e: SubmitError) -> Failure {
    match e {
        SubmitError::BadUrl(_) | SubmitError::InsecureUrl(_) | SubmitError::CaCert { .. } => {
            Failure::usage(e)
        }
        // A busy, rate-limiting or failing gateway is the environment, not the input.
        SubmitError::Refused { status, .. } if status == 429 || status >= 500 => {
            Failure::environment(e)
        }
        SubmitError::Input { .. }
        | SubmitError::TooLarge { .. }
        | SubmitError::Refused { .. }
        | SubmitError::NoConversation => Failure::bad_input(e),
        SubmitError::Untrusted { .. } => Failure::new(resguardo::cli::EXIT_UNTRUSTED, e),
        other => Failure::environment(other),
    }
}

impl Connection {
    fn client(&self) -> Result<GatewayClient, Failure> {
        let trust = match (&self.ca_cert, self.insecure_self_signed) {
            (Some(pem), _) => Trust::CaCert(pem.clone()),
            (None, true) => {
                eprintln!("warning: --insecure-self-signed: the gateway's identity is not checked");
                Trust::InsecureAnyCertificate
            }
            (None, false) => Trust::WebPki,
        };
        let server = self
            .server
            .as_deref()
            .ok_or_else(|| Failure::usage("give the gateway with --server URL"))?;
        GatewayClient::new(server, trust, self.proxy.as_deref()).map_err(failure)
    }
}

/// Reads a receipt file (at most 4 KiB).
fn read_receipt(path: &Path) -> Result<Receipt, Failure> {
    let bad = |reason: String| Failure::bad_input(format!("{}: {reason}", path.display()));
    let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if text.len() > 4096 {
        return Err(bad("larger than a receipt".into()));
    }
    Receipt::parse(&String::from_utf8_lossy(&text)).map_err(|e| bad(e.to_string()))
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Some(Sub::Check {
            connection,
            receipt_file,
            save,
        }) => check(&connection, &receipt_file, save.as_deref()),
        Some(Sub::VerifyPage {
            url,
            pin,
            min_version,
            ca_cert,
            insecure_self_signed,
            proxy,
        }) => verify_page(
            &url,
            pin.as_deref(),
            min_version,
            ca_cert,
            insecure_self_signed,
            proxy.as_deref(),
        ),
        None => send(cli),
    }
}

fn send(cli: Cli) -> Result<(), Failure> {
    // The attachments are read and cleaned first: a file that would go with its metadata and was
    // not named with --send-with-metadata stops everything before the gateway is contacted.
    let prepared = submit::prepare_attachments(
        &cli.attachments,
        submit::Consent::Named(&cli.send_with_metadata),
    )
    .map_err(failure)?;
    // So is a damaged --sealed file: nothing is sent, not even a request for the keys.
    let carried = cli
        .sealed
        .as_deref()
        .map(|path| submit::open_sealed_input(path, u64::MAX))
        .transpose()
        .map_err(failure)?;
    let client = cli.connection.client()?;
    let keys = client.pinned_keys(cli.pin.as_ref()).map_err(failure)?;
    if let (Some(min), KeyListSeen::Verified(list)) = (cli.min_version, &keys.key_list) {
        list.at_least(min).map_err(|e| {
            failure(SubmitError::Untrusted {
                organisation: cli.pin.as_ref().map(resguardo::trust::keylist::grouped),
                reason: e.to_string(),
            })
        })?;
    }
    say_key_list(&keys.key_list, cli.pin.is_some());
    let follow_up = cli.follow_up.as_deref().map(read_receipt).transpose()?;
    let started = match (&cli.sealed, cli.no_replies, &follow_up) {
        (None, false, None) => Some(submit::start_conversation(&keys.keyring).map_err(failure)?),
        _ => None,
    };
    // Written or shown before anything is sent: a report is never accepted with its receipt
    // lost, even when the gateway's answer is.
    match (&cli.receipt_out, &started) {
        (Some(path), Some(started)) => write_receipt(path, &started.receipt)?,
        (None, Some(started)) => {
            eprintln!("Your receipt: write these 12 words on paper now, before the report is sent. Whoever has them can read the team's answers; do not keep them on this computer.");
            for line in started.receipt.display_lines() {
                eprintln!("    {line}");
            }
        }
        _ => {}
    }
    let conversation = match (&started, &follow_up) {
        (Some(started), _) => Conversation::Start(started.start.clone()),
        (None, Some(receipt)) => Conversation::FollowUp(receipt.locator()),
        (None, None) => Conversation::None,
    };
    let reference = match (&started, &follow_up) {
        (Some(started), _) => Some(started.reference.clone()),
        (None, Some(receipt)) => Some(resguardo::payload::ConversationRef {
            locator: receipt.locator(),
            reply_key: None,
            token: Some(receipt.follow_up_token()),
        }),
        (None, None) => None,
    };
    let outgoing = match (carried, &cli.message) {
        // A sealed report file carries its triage envelope and conversation; a message sealed
        // elsewhere goes without (its content is unknown here).
        (Some(outgoing), _) => {
            if outgoing.len > keys.max_submission_bytes {
                return Err(failure(SubmitError::TooLarge {
                    size: outgoing.len,
                    limit: keys.max_submission_bytes,
                }));
            }
            eprintln!("Sealed report: {} bytes. Uploading…", outgoing.len);
            outgoing
        }
        (None, Some(message)) => {
            eprintln!("Encrypting to these reviewer keys (compare them with what the reviewers gave you):");
            for reviewer in keys.keyring.reviewers() {
                eprintln!("  {}  {}", reviewer.fingerprint().to_hex(), reviewer.name());
            }
            let input = ReportInput {
                message: message.clone(),
                attachments: cli.attachments.clone(),
                language: cli.language.clone(),
                urgent: cli.urgent,
                fields: cli.fields.clone(),
                conversation: reference.clone(),
            };
            for attachment in &prepared {
                eprintln!("{}", attachment.note());
            }
            let sealed = submit::seal_prepared(&keys, &input, &prepared).map_err(failure)?;
            if let Some(out) = &cli.save_sealed {
                save_sealed(out, &sealed, &conversation)?;
                if started.is_some() {
                    say_receipt(cli.receipt_out.as_deref());
                }
                return Ok(());
            }
            eprintln!("Sealed report: {} bytes. Uploading…", sealed.size);
            submit::Outgoing {
                len: sealed.size,
                file: sealed.file,
                offset: 0,
                triage: sealed.triage,
                conversation: conversation.clone(),
                from_report_file: false,
            }
        }
        (None, None) => return Err(Failure::usage("give --message FILE or --sealed FILE")),
    };
    let accepted = client
        .send_message(
            outgoing.message(),
            outgoing.triage.as_deref(),
            &outgoing.conversation,
            std::time::Duration::from_secs(cli.retry_for),
            &mut |line| eprintln!("{}", clean_line(line)),
        )
        .map_err(failure)?
        .accepted;
    println!("{}", accepted.id);
    eprintln!("Received by the gateway. Keep this id if you may want to refer to the report; it is not needed otherwise.");
    if let Some(n) = accepted.sequence {
        eprintln!("It is number {n} in the gateway's log. If you later want to confirm it arrived, ask the team about this number.");
    }
    if started.is_some() {
        say_receipt(cli.receipt_out.as_deref());
    }
    if outgoing.from_report_file && matches!(outgoing.conversation, Conversation::Start(_)) {
        eprintln!("The answers to this report are read with the receipt shown when it was sealed.");
    }
    Ok(())
}

/// Where the receipt is, and how it reads the answers.
fn say_receipt(receipt_out: Option<&Path>) {
    match receipt_out {
        Some(path) => eprintln!(
            "Your receipt is in {} (keep it safe, off this computer if you can): it reads the team's answers with `{PROGRAM} check --server URL --receipt-file {}`.",
            path.display(),
            path.display()
        ),
        None => eprintln!(
            "Your receipt is the 12 words shown above. Read the answers later with `{PROGRAM} check --server URL --receipt-file FILE` (FILE holding the words)."
        ),
    }
}

/// `--save-sealed`: the sealed report written to a new file instead of sent.
fn save_sealed(
    out: &Path,
    sealed: &submit::SealedReport,
    conversation: &Conversation,
) -> Result<(), Failure> {
    let size = submit::save_sealed(out, sealed, conversation).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::usage(format!(
                "{}: already exists; give a new file",
                out.display()
            ))
        } else {
            Failure::environment(format!("{}: {e}", out.display()))
        }
    })?;
    println!("{}", out.display());
    eprintln!(
        "Sealed report saved in {} ({size} bytes). Nothing was sent. Send it later, from any device, with `{PROGRAM} --server URL --sealed {}` or the page's \"send a sealed report\".",
        out.display(),
        out.display()
    );
    eprintln!("Whoever carries the file learns its size and that it is a report for this gateway, not what it says. It does not hold the receipt, but whoever keeps a copy can ask the gateway whether the team answered (never read the answers).");
    Ok(())
}

/// Says what the organisation's key list showed (to stderr): with a pin it verified; without,
/// the fingerprint to compare with the card, or why there is nothing to compare.
fn say_key_list(seen: &KeyListSeen, pinned: bool) {
    match seen {
        KeyListSeen::Verified(list) if pinned => eprintln!(
            "The keys are the ones the organisation {} vouched for (key list {}, valid until {}).",
            grouped(&list.organisation),
            list.version,
            list.expires
        ),
        KeyListSeen::Verified(list) => {
            eprintln!(
                "The gateway's keys are vouched for by the organisation key\n    {}\nCompare it with the fingerprint on the card or poster you got from the organisation in person; if they differ, stop. Next time use --pin with the card's fingerprint.",
                grouped(&list.organisation)
            );
        }
        KeyListSeen::Unverified(why) => eprintln!(
            "WARNING: the gateway's key list does not verify ({}). With --pin this report would be refused.",
            clean_line(why)
        ),
        KeyListSeen::Absent => eprintln!(
            "The gateway serves no key list signed by its organisation: nothing vouches for its keys but the gateway."
        ),
    }
}

/// Writes the receipt's words to a new file of mode 0600.
fn write_receipt(path: &Path, receipt: &Receipt) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Failure::environment(format!("{}: {e}", path.display())))?;
    let text = format!("{}\n", receipt.display_lines().join("\n"));
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::environment(format!("{}: {e}", path.display())))
}

/// `check`: the answers, each verified or marked as not.
fn check(connection: &Connection, receipt_file: &Path, save: Option<&Path>) -> Result<(), Failure> {
    let receipt = read_receipt(receipt_file)?;
    let client = connection.client()?;
    let conversation = client.check_in(&receipt).map_err(failure)?;
    if conversation.replies.is_empty() {
        println!("No answers yet.");
        return Ok(());
    }
    for checked in &conversation.replies {
        let number = checked.number();
        let Some(reply) = &checked.read.reply else {
            println!(
                "Answer {number} ({}): WARNING: it could not be read ({}).",
                checked.day,
                clean_line(
                    checked
                        .read
                        .verified
                        .as_ref()
                        .err()
                        .map_or("", |e| e.as_str())
                )
            );
            continue;
        };
        let verified = match &checked.read.verified {
            Ok(fingerprint) => {
                println!(
                    "Answer {number} (written {}), from the team (signed by {}):",
                    reply.day,
                    fingerprint.to_hex()
                );
                true
            }
            Err(why) => {
                println!(
                    "Answer {number} ({}): WARNING: this message could not be verified as coming from the team ({}). Do not trust it.",
                    checked.day,
                    clean_line(why)
                );
                false
            }
        };
        println!("{}", clean_text(&reply.message));
        for (i, attachment) in reply.attachments.iter().enumerate() {
            let name = clean_line(&attachment.name);
            match save {
                None => println!("  attachment: {name} (use --save DIR to keep it)"),
                // A file nobody can vouch for is not written to the reporter's disk.
                Some(_) if !verified => println!("  attachment: {name} (not saved: not verified)"),
                Some(dir) => match save_attachment(dir, number, i, attachment)? {
                    Some(saved) => println!("  attachment: {name} -> {}", saved.display()),
                    None => println!("  attachment: {name} (already saved in {})", dir.display()),
                },
            }
        }
    }
    if !conversation.missing.is_empty() {
        let list: Vec<String> = conversation.missing.iter().map(u32::to_string).collect();
        println!(
            "WARNING: the team numbered answers that did not arrive: {}. Check again later; if \
             they never come, the gateway may be holding them back.",
            list.join(", ")
        );
    }
    Ok(())
}

/// Saves an answer's attachment under a name we make (`DIR/<answer>-<n>-<cleaned name>`).
fn save_attachment(
    dir: &Path,
    answer: u32,
    index: usize,
    attachment: &resguardo::replies::ReplyAttachment,
) -> Result<Option<PathBuf>, Failure> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&attachment.data)
        .map_err(|_| Failure::bad_input("an attachment is not base64"))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::environment(format!("{}: {e}", dir.display())))?;
    let safe: String = attachment
        .name
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(80)
        .collect();
    let path = dir.join(format!(
        "{answer:03}-{:02}-{}",
        index + 1,
        safe.trim_start_matches('.')
    ));
    // Named by the team's sequence number: the same answer saved twice is the same file.
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(Failure::environment(format!("{}: {e}", path.display()))),
    };
    std::io::Write::write_all(&mut file, &bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::environment(format!("{}: {e}", path.display())))?;
    Ok(Some(path))
}

/// `verify-page`: the key list under the pin, the served keys, the page against the release.
fn verify_page(
    url: &str,
    pin: Option<&str>,
    min_version: Option<u64>,
    ca_cert: Option<PathBuf>,
    insecure_self_signed: bool,
    proxy: Option<&str>,
) -> Result<(), Failure> {
    use resguardo::submit::verify_page::{self as vp, KeyProblem};
    let pin = pin.ok_or_else(|| {
        Failure::usage(
            "give the organisation key's fingerprint with --pin FINGERPRINT: copy it from the \
             organisation's fingerprint card or poster, which you got in person (not from the \
             page or the gateway)",
        )
    })?;
    let pin = vp::parse_pin(pin).map_err(Failure::usage)?;
    let trust = match (ca_cert, insecure_self_signed) {
        (Some(pem), _) => Trust::CaCert(pem),
        (None, true) => {
            eprintln!("warning: --insecure-self-signed: the gateway's identity is not checked");
            Trust::InsecureAnyCertificate
        }
        (None, false) => Trust::WebPki,
    };
    let client = vp::PageClient::new(url, trust, proxy).map_err(failure)?;
    let not_verified = |e: &dyn std::fmt::Display| {
        Failure::new(
            vp::EXIT_NOT_VERIFIED,
            format!("could not verify this page: do not rely on it ({e})"),
        )
    };
    let verdict = vp::check_gateway(
        &client,
        &pin,
        resguardo::submission::UtcDay::today(),
        min_version,
    )
    .map_err(|e| not_verified(&e))?;
    if !verdict.key_problems.is_empty() {
        let mut message = format!(
            "The gateway offers keys that the organisation you trust ({}) has not vouched for. \
             Do not use this gateway; tell the organisation through another channel.",
            resguardo::trust::keylist::grouped(&pin)
        );
        for problem in &verdict.key_problems {
            message.push('\n');
            message.push_str(&match problem {
                KeyProblem::NoKeyList => "the gateway serves no key list".to_string(),
                other => other.to_string(),
            });
        }
        return Err(Failure::new(resguardo::cli::EXIT_UNTRUSTED, message));
    }
    let (Some(list), Some(page)) = (&verdict.key_list, &verdict.page) else {
        return Err(not_verified(&"the page was not checked"));
    };
    let mut report = page.clone();
    let rest =
        vp::check_rest_files(&client, &list.page, &report.checked).map_err(|e| not_verified(&e))?;
    report.merge(rest);
    if !report.is_genuine() {
        let mut message = format!(
            "The page at {} is NOT the release the organisation {} vouched for (key list {}). \
             Do not use it in a browser; tell the organisation through another channel.",
            client.server(),
            resguardo::trust::keylist::grouped(&list.organisation),
            list.version
        );
        for d in &report.differences {
            message.push('\n');
            message.push_str(&d.to_string());
        }
        if report.more > 0 {
            message.push_str(&format!("\nand {} more differences", report.more));
        }
        return Err(Failure::new(vp::EXIT_PAGE_DIFFERS, message));
    }
    println!(
        "{}",
        clean_line(&vp::genuine_sentence(client.server(), list))
    );
    eprintln!("{} files checked.", report.files_checked);
    Ok(())
}
