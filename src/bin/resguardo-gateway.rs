//! `resguardo-gateway`: the server and the operator's commands on its data directory.
#![forbid(unsafe_code)]

// Freed memory is zeroed: plaintext does not outlive the buffers that held it.
#[global_allocator]
static ALLOCATOR: resguardo::process::ZeroingAllocator = resguardo::process::ZEROING_ALLOCATOR;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use resguardo::cli::{finish, Failure, EXIT_PARTIAL};
use resguardo::config::GatewayConfig;
use resguardo::gateway::{self, StartupInfo};
use resguardo::operator;
use resguardo::submission::UtcDay;

const PROGRAM: &str = "resguardo-gateway";

/// Resguardo's gateway: accepts sealed reports and stores only ciphertext.
///
/// Reports arrive already encrypted to the reviewers' OpenPGP keys; the gateway checks their
/// structure without any secret key, stores them durably, and hands them to reviewers as bundles.
#[derive(Parser)]
#[command(name = PROGRAM, version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (HTTPS, or plain HTTP on loopback behind an onion service).
    ///
    /// Without --config it runs the embedded default: HTTPS on 127.0.0.1:8443 with a self-signed
    /// certificate kept in the data directory, data in ./resguardo-data, and the DEMO reviewer
    /// keys from ./keys-example (public test material: never for real reports).
    Serve {
        /// TOML configuration file (see deploy/gateway.toml for every setting).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Listen on this address instead of the configured one.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// Keep data in this directory instead of the configured one.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Check a configuration file and exit: one line per problem.
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Write every submission not yet exported into one bundle file for the reviewers.
    ///
    /// Works while the gateway runs (through its admin socket) or while it is stopped. An
    /// interrupted export is repeated with the same submissions the next time.
    Export {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The bundle file to create (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Delete from the gateway exactly the submissions in a bundle the reviewers have opened.
    ///
    /// Needs the receipt `resguardo-review open` wrote next to the opened reports
    /// (open-receipt-<batch>.json): only submissions it lists as opened are deleted, so a bundle
    /// that was lost or damaged on its way to the offline machine is never purged by mistake. The
    /// bundle is verified first; a submission is deleted only if the gateway's copy is
    /// byte-for-byte the one in the bundle.
    Purge {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        #[arg(long, value_name = "FILE")]
        bundle: PathBuf,
        /// The reviewers' receipt for this bundle, from `resguardo-review open`.
        #[arg(long, value_name = "FILE")]
        receipt: PathBuf,
    },
    /// Show how many submissions wait for export, since when, and how many are exported.
    Status {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// The reporters' conversations (docs/replies-v1.md).
    #[command(subcommand)]
    Replies(RepliesCommand),
    /// Print the page this build serves (its release, Content-Security-Policy and the SHA-256 of
    /// every file), as JSON for `resguardo-review sign-keys --page-manifest`.
    PageManifest,
}

#[derive(Subcommand)]
enum RepliesCommand {
    /// Store the answers of an outbox from `resguardo-review reply` (the local form of the
    /// courier's `push`): each must be signed by a reviewer key of the configuration and
    /// addressed to an existing conversation.
    Import {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The gateway's configuration: its reviewer keys check the signatures.
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "embedded_default"
        )]
        config: Option<PathBuf>,
        /// Check with the embedded default's reviewer keys instead: the demo keys, whose secret
        /// parts are public (for `scripts/run` only, never on a real gateway).
        #[arg(long, conflicts_with = "config")]
        embedded_default: bool,
        /// The outbox.
        outbox: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    finish(PROGRAM, run(cli.command))
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => serve(config.as_deref(), listen, data_dir),
        Command::CheckConfig { config } => {
            let validated = GatewayConfig::load(&config)?.validate(false)?;
            if let Some(fingerprint) = gateway::check_tls(&validated.config)? {
                println!("TLS certificate SHA-256: {fingerprint}");
            }
            println!(
                "{}: OK ({} reviewer keys, listening on {})",
                config.display(),
                validated.keyring.reviewers().len(),
                validated.config.listen
            );
            if let Some(list) = &validated.key_list {
                println!(
                    "key list version {} from the organisation key {}, valid until {}",
                    list.verified.version,
                    resguardo::trust::keylist::grouped(&list.verified.organisation),
                    list.verified.expires
                );
            }
            Ok(())
        }
        Command::Export { data_dir, out } => {
            let outcome = operator::export(&data_dir, &out)?;
            match outcome.manifest {
                None => println!("Nothing to export: every submission is already exported."),
                Some(manifest) => {
                    if outcome.resumed {
                        println!(
                            "Resumed an export that was interrupted earlier (batch {}).",
                            manifest.batch
                        );
                    }
                    println!(
                        "Exported {} submissions ({} bytes) to {} (batch {}).",
                        manifest.submissions.len(),
                        outcome.bytes,
                        out.display(),
                        manifest.batch
                    );
                    println!(
                        "Carry it to the reviewers' offline machine. Once they have opened it, bring \
                         back the receipt `resguardo-review open` writes (open-receipt-{}.json) and run:",
                        manifest.batch
                    );
                    println!(
                        "  {PROGRAM} purge --data-dir {} --bundle {} --receipt open-receipt-{}.json",
                        data_dir.display(),
                        out.display(),
                        manifest.batch
                    );
                }
            }
            Ok(())
        }
        Command::Purge {
            data_dir,
            bundle,
            receipt,
        } => {
            let (_, report) = operator::purge(&data_dir, &bundle, &receipt)?;
            println!(
                "Purged {} submissions; {} were already gone; {} refused.",
                report.purged.len(),
                report.already_gone.len(),
                report.refused.len()
            );
            for (id, reason) in &report.refused {
                println!("  kept {id}: {}", resguardo::terminal::clean_line(reason));
            }
            if report.refused.is_empty() {
                Ok(())
            } else {
                Err(Failure::new(
                    EXIT_PARTIAL,
                    format!("{} submissions were not purged", report.refused.len()),
                ))
            }
        }
        Command::Replies(RepliesCommand::Import {
            data_dir,
            config,
            embedded_default: _,
            outbox,
        }) => {
            // Never the demo keys by omission: their secret parts are in the repository.
            let (config, embedded) = match config {
                Some(path) => (GatewayConfig::load(&path)?, false),
                None => (GatewayConfig::embedded_default(), true),
            };
            let validated = config.validate(embedded)?;
            let outbox = resguardo::replies::outbox::read(&outbox)
                .map_err(|e| Failure::bad_input(e.to_string()))?;
            let imported = operator::import_replies(&data_dir, &outbox, &validated.keyring)?;
            let mut refused = 0;
            for reply in &imported {
                let short = &reply.conversation.to_string()[..16];
                match &reply.outcome {
                    Ok((n, true)) => println!("{short}…  already stored as answer {n}"),
                    Ok((n, false)) => println!("{short}…  stored as answer {n}"),
                    Err(reason) => {
                        refused += 1;
                        println!(
                            "{short}…  refused: {}",
                            resguardo::terminal::clean_line(reason)
                        );
                    }
                }
            }
            if refused > 0 {
                return Err(Failure::new(
                    EXIT_PARTIAL,
                    format!("{refused} answers were not stored"),
                ));
            }
            Ok(())
        }
        Command::PageManifest => {
            println!(
                "{}",
                resguardo::trust::keylist::PageManifest::embedded().to_json()
            );
            Ok(())
        }
        Command::Status { data_dir } => {
            let status = operator::status(&data_dir)?;
            println!("waiting for export: {}", status.stored);
            if let Some(day) = status.oldest_waiting {
                let waited = UtcDay::today().days_since_epoch() - day.days_since_epoch();
                println!("oldest waiting since: {day} ({waited} days)");
            }
            println!("exported, not purged: {}", status.exported);
            println!("ciphertext bytes: {}", status.bytes);
            if status.undelivered_batches > 0 {
                println!(
                    "interrupted exports: {} (the next export repeats them)",
                    status.undelivered_batches
                );
            }
            Ok(())
        }
    }
}

fn serve(
    config_path: Option<&Path>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
) -> Result<(), Failure> {
    let (mut config, embedded) = match config_path {
        Some(path) => (GatewayConfig::load(path)?, false),
        None => (GatewayConfig::embedded_default(), true),
    };
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    let validated = config.validate(embedded).map_err(|e| {
        if embedded {
            Failure::usage(format!(
                "{e}\nThe embedded default reads the demo keys from ./keys-example: run it from \
                 the repository root, or pass --config"
            ))
        } else {
            e.into()
        }
    })?;
    resguardo::logging::init();
    resguardo::process::forbid_dumps()
        .map_err(|e| Failure::environment(format!("cannot forbid core dumps: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::environment)?;
    runtime.block_on(gateway::serve(validated, print_banner))?;
    Ok(())
}

fn print_banner(info: &StartupInfo) {
    println!("Resguardo gateway {}", env!("CARGO_PKG_VERSION"));
    if info.demo_keys {
        println!();
        println!("  WARNING: running with the public DEMO reviewer keys from keys-example/.");
        println!("  Anyone can decrypt what is submitted here. For testing only.");
        println!();
    }
    println!("Reviewer keys (every submission is encrypted to all of them):");
    for (fingerprint, name) in &info.reviewers {
        println!("  {fingerprint}  {name}");
    }
    println!(
        "Data directory: {} ({} submissions stored)",
        info.data_dir.display(),
        info.stored
    );
    let r = &info.recovery;
    if r.spool_files_removed > 0 || r.purges_finished > 0 || !r.orphans_adopted.is_empty() {
        println!(
            "Recovered from an interruption: {} partial uploads discarded, {} purges finished, {} submissions re-indexed",
            r.spool_files_removed,
            r.purges_finished,
            r.orphans_adopted.len()
        );
    }
    if let Some(fingerprint) = &info.tls_fingerprint {
        println!("TLS certificate SHA-256: {fingerprint}");
    }
    match &info.key_list {
        Some(list) if list.demo => println!(
            "Organisation key (DEMO, its secret is public: this key list vouches for nothing): {}\n\
             Key list version {} signed at start with keys-example/demo-org.sec.asc, valid until {}",
            list.organisation, list.version, list.expires
        ),
        Some(list) => println!(
            "Organisation key: {} (key list version {}, valid until {}; the page shows this \
             fingerprint: it must be the one on the printed card)",
            list.organisation, list.version, list.expires
        ),
        None => {}
    }
    println!("Listening on {}", info.url);
}
