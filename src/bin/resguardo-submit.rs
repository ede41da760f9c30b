//! `resguardo-submit`: send a report from a terminal, encrypted before it leaves this computer.
#![forbid(unsafe_code)]

// Freed memory is zeroed: plaintext does not outlive the buffers that held it.
#[global_allocator]
static ALLOCATOR: resguardo::process::ZeroingAllocator = resguardo::process::ZEROING_ALLOCATOR;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use resguardo::cli::{finish, Failure};
use resguardo::submit::{self, GatewayClient, ReportInput, SubmitError, Trust};

const PROGRAM: &str = "resguardo-submit";

/// Send a report to a Resguardo gateway, encrypted on this computer to the reviewers' keys.
///
/// The report is a text file (--message) plus optional attachments. It is packed as payload v1,
/// padded, and encrypted to every reviewer key the gateway publishes, whose fingerprints are
/// printed so you can compare them with ones you got from the reviewers another way. Only
/// ciphertext leaves this computer. To send something you encrypted yourself with gpg or sq,
/// use --sealed FILE instead of --message.
#[derive(Parser)]
#[command(name = PROGRAM, version, max_term_width = 100)]
struct Cli {
    /// The gateway, e.g. https://reportes.example.org/ or http://xyz….onion/
    #[arg(long, value_name = "URL")]
    server: String,
    /// Trust only this CA or self-signed certificate (PEM) for the gateway.
    #[arg(long, value_name = "PEM", conflicts_with = "insecure_self_signed")]
    ca_cert: Option<PathBuf>,
    /// Accept any TLS certificate. Only for a test gateway with a self-signed certificate.
    #[arg(long)]
    insecure_self_signed: bool,
    /// Connect through this proxy, e.g. socks5h://127.0.0.1:9050 for Tor.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// The account of what happened: a UTF-8 text file.
    #[arg(long, value_name = "FILE", required_unless_present = "sealed")]
    message: Option<PathBuf>,
    /// A file to attach (repeat for several).
    #[arg(long = "attach", value_name = "FILE", conflicts_with = "sealed")]
    attachments: Vec<PathBuf>,
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
    /// Submit a message already encrypted to the reviewers (gpg --encrypt or sq encrypt).
    #[arg(long, value_name = "FILE", conflicts_with = "message")]
    sealed: Option<PathBuf>,
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
        SubmitError::Input { .. } | SubmitError::TooLarge { .. } | SubmitError::Refused { .. } => {
            Failure::bad_input(e)
        }
        other => Failure::environment(other),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let trust = match (&cli.ca_cert, cli.insecure_self_signed) {
        (Some(pem), _) => Trust::CaCert(pem.clone()),
        (None, true) => {
            eprintln!("warning: --insecure-self-signed: the gateway's identity is not checked");
            Trust::InsecureAnyCertificate
        }
        (None, false) => Trust::WebPki,
    };
    let client = GatewayClient::new(&cli.server, trust, cli.proxy.as_deref()).map_err(failure)?;
    let keys = client.reviewer_keys().map_err(failure)?;
    let (sealed, triage) = match (&cli.sealed, &cli.message) {
        // A message sealed elsewhere goes without a triage envelope: its content is unknown here.
        (Some(path), _) => (
            submit::open_sealed_file(path, keys.max_submission_bytes).map_err(failure)?,
            None,
        ),
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
            };
            let sealed = submit::seal_report(&keys, &input).map_err(failure)?;
            eprintln!("Sealed report: {} bytes. Uploading…", sealed.size);
            (sealed.file, sealed.triage)
        }
        (None, None) => return Err(Failure::usage("give --message FILE or --sealed FILE")),
    };
    let id = client
        .submit_sealed(sealed, triage.as_deref())
        .map_err(failure)?;
    println!("{id}");
    eprintln!("Received by the gateway. Keep this id if you may want to refer to the report; it is not needed otherwise.");
    Ok(())
}
