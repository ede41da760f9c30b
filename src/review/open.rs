//! `resguardo-review open`: every submission of a bundle, decrypted, checked and written out.
//!
//! Two kinds of process share the work, so that attacker-controlled payloads are never parsed
//! next to the unlocked key:
//!
//! - the **opener** (this module, in the process the reviewer started) holds the key. For each
//!   submission, in order, it spools the sealed bytes into `--out` and checks them against the
//!   bundle manifest's SHA-256 *before* anything is decrypted; then sequoia decrypts them
//!   (integrity protection, MDC or AEAD, verified by the end of the message; messages under
//!   25 MiB are verified before the first byte is released). It streams the plaintext over a
//!   pipe, counting every byte against the bounds and watching the free space on `--out`.
//! - a **parser** ([`super::worker`]) is this program started again for that one submission,
//!   with an empty environment, locked to its own staging directory. It never sees the key or the
//!   ciphertext; it parses payload v1 with the strict reader, writes the report into the staging
//!   directory and answers with a small JSON object.
//!
//! The opener renames the staging directory to `<id>/` only if the decryption ended without an
//! integrity error, the parser answered success, and the folder holds exactly what a report may
//! hold ([`super::output::check_report_tree`]). Otherwise nothing of the submission remains, and
//! it is reported by id with a short reason; the others still open. Running the same bundle
//! again skips what is already open.
//!
//! Bounds: each submission's plaintext (`--max-plaintext`), the whole bundle's plaintext kept in
//! `--out` by one run (`--max-bundle-plaintext`, by default the larger of 1 GiB and 8 times the
//! bundle's size: payloads are not compressed, so only a bomb comes near it), and free space: the
//! run stops cleanly, with the reason, before `--out` has less than [`DISK_RESERVE`] free. Memory
//! stays bounded whatever the input: nothing is held whole.
//!
//! After the last submission the opener wipes the key and only then reads report folders (which
//! parsers wrote): the urgency of reports opened by earlier runs, the index ([`super::index`]),
//! and writes the receipt ([`crate::bundle::receipt`]) the operator needs to purge.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sequoia_openpgp as openpgp;

use openpgp::parse::stream::DecryptorBuilder;
use openpgp::parse::Parse;
use ring::digest;

use super::index;
use super::opened;
use super::output::{check_report_tree, OutputDir, Staging, TreeKind};
use super::secret_key::{KeyPair, UnlockedKey};
use super::worker::{self, Answer, Job};
use crate::bundle::receipt::{self, FailedOpen, OpenReceipt, OpenedCiphertext, ReceiptError};
use crate::bundle::{self, BundleEntry, BundleEntryReader, BundleError, BundleManifest};
use crate::payload::Urgency;
use crate::submission::SubmissionId;

const MIB: u64 = 1024 * 1024;

/// Default bound on one submission's plaintext: well above the gateway's limit, far below what
/// would fill an offline machine's disk if a compressed message tried to expand.
pub const DEFAULT_MAX_PLAINTEXT: u64 = 2 * 1024 * MIB;

/// The smallest default bound on a bundle's plaintext.
pub const MIN_DEFAULT_BUNDLE_PLAINTEXT: u64 = 1024 * MIB;

/// The default bound on a bundle's plaintext, as a multiple of the bundle file's size.
pub const BUNDLE_PLAINTEXT_FACTOR: u64 = 8;

/// Space `open` leaves free on `--out`: it stops before there is less.
pub const DISK_RESERVE: u64 = 64 * MIB;

/// How long a parser may go without taking input or answering.
const PARSER_SILENCE: Duration = Duration::from_secs(120);

/// Plaintext the decryptor holds back until it has checked the message's integrity: a message
/// no larger is verified before the parser sees its first byte. (Larger ones stream; the parser's
/// work is discarded if the check fails at the end.)
const DECRYPT_BUFFER: usize = 4 * 1024 * 1024;

/// How often free space is checked while the plaintext streams.
const DISK_CHECK_EVERY: u64 = MIB;

/// The default `--max-bundle-plaintext` for a bundle file of `bundle_size` bytes.
pub fn default_max_bundle_plaintext(bundle_size: u64) -> u64 {
    bundle_size
        .saturating_mul(BUNDLE_PLAINTEXT_FACTOR)
        .max(MIN_DEFAULT_BUNDLE_PLAINTEXT)
}

/// The bounds of one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of plaintext one submission may have (`--max-plaintext`).
    pub max_plaintext: u64,
    /// Bytes of plaintext the whole run may keep in `--out` (`--max-bundle-plaintext`).
    pub max_bundle_plaintext: u64,
    /// Bytes of free space to leave on `--out`; the run stops before going below it.
    pub disk_reserve: u64,
}

/// How to start a parser: this program, and whether its sandbox is required.
#[derive(Debug, Clone)]
pub struct ParserProgram {
    /// The executable to start as a parser (this program, run with [`worker::SUBCOMMAND`]).
    pub program: PathBuf,
    /// Passed on as `--require-sandbox`: the parser refuses to parse unless its sandbox is
    /// fully in force.
    pub require_sandbox: bool,
    /// The reviewer's language, passed on as `--lang` (labels of reports in other languages).
    pub lang: super::lang::Lang,
}

/// What happened to one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Opened by this run (for `unpack`: written as `<id>.pgp`).
    Opened {
        /// The report's urgency; `Unanswered` for a raw message and for `unpack`.
        urgency: Urgency,
    },
    /// Opened by an earlier run; its urgency as that run wrote it (`None` if unreadable).
    AlreadyOpen {
        /// Read from the report folder after the key is wiped; always `None` for `unpack`.
        urgency: Option<Urgency>,
    },
    /// Not opened; nothing of it was kept.
    Failed {
        /// A stable English reason, one of [`super::lang::REASONS`].
        reason: &'static str,
        /// Specifics for people: cleaned to one line, at most 400 characters.
        detail: String,
    },
}

impl Outcome {
    /// True for a report (opened now or before) whose reporter answered that it is urgent.
    pub fn is_urgent(&self) -> bool {
        matches!(
            self,
            Outcome::Opened {
                urgency: Urgency::Yes
            } | Outcome::AlreadyOpen {
                urgency: Some(Urgency::Yes)
            }
        )
    }
}

/// Why a run stopped before the end of the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// `--out` is down to its reserve.
    DiskLow {
        /// Bytes still free for an unprivileged writer.
        available: u64,
        /// Bytes the run leaves free ([`Limits::disk_reserve`]).
        reserve: u64,
    },
    /// No parser could be started.
    Parser(String),
}

/// What happened to a bundle.
#[derive(Debug, Default)]
pub struct OpenSummary {
    /// The bundle's manifest; `None` if the bundle broke off before it could be read.
    pub manifest: Option<BundleManifest>,
    /// Each submission reached, in bundle order.
    pub outcomes: Vec<(SubmissionId, Outcome)>,
    /// The bundle itself was unreadable, or broke off (then later submissions were not reached).
    pub bundle_error: Option<BundleError>,
    /// The run stopped early (later submissions were not reached).
    pub stopped: Option<Stop>,
    /// Plaintext bytes this run kept in `--out`.
    pub kept_bytes: u64,
    /// The bound on them.
    pub max_bundle_plaintext: u64,
    /// Where the receipt was written, or why not (`None`: no manifest, so no receipt).
    pub receipt: Option<Result<WrittenReceipt, ReceiptError>>,
    /// How many reports the index lists, or why it could not be written.
    pub index: Option<Result<usize, String>>,
    /// What the registry recorded (`docs/registry-v1.md`), or why it could not.
    pub registry: Option<Result<crate::registry::Recorded, String>>,
    /// What the bundle's part of the gateway's chain showed (`docs/trust-v1.md`), or why it
    /// could not be checked; `None` when no manifest was read.
    pub chain: Option<Result<crate::registry::chain::ChainReport, String>>,
}

impl OpenSummary {
    /// How many submissions reached ended as [`Outcome::Failed`].
    pub fn failed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed { .. }))
            .count()
    }

    /// Submissions the manifest announced but the run never reached.
    pub fn unreached(&self) -> usize {
        self.manifest.as_ref().map_or(0, |m| {
            m.submissions.len().saturating_sub(self.outcomes.len())
        })
    }

    /// True if some submission failed only because the bundle's bound was spent.
    pub fn hit_bundle_bound(&self) -> bool {
        self.outcomes.iter().any(
            |(_, o)| matches!(o, Outcome::Failed { reason, .. } if *reason == BUNDLE_BOUND_REASON),
        )
    }
}

const BUNDLE_BOUND_REASON: &str = "bundle plaintext bound reached";
const ITEM_BOUND_REASON: &str = "payload over its bound";
const DISK_REASON: &str = "disk almost full";
const PARSER_REASON: &str = "parser failed";

fn failed(reason: &'static str, detail: impl ToString) -> Outcome {
    let detail: String = crate::terminal::clean_line(&detail.to_string())
        .chars()
        .take(400)
        .collect();
    Outcome::Failed { reason, detail }
}

/// Free space on `--out`, read through a descriptor opened once.
pub struct DiskGuard {
    dir: File,
    reserve: u64,
}

impl DiskGuard {
    /// Opens `out` once; `reserve` is the number of bytes to keep free.
    pub fn new(out: &Path, reserve: u64) -> io::Result<DiskGuard> {
        Ok(DiskGuard {
            dir: File::open(out)?,
            reserve,
        })
    }

    /// Bytes an unprivileged writer may still use.
    pub fn available(&self) -> io::Result<u64> {
        let s = rustix::fs::fstatvfs(&self.dir)?;
        Ok(s.f_bavail.saturating_mul(s.f_frsize))
    }

    /// `Err` once the free space is down to the reserve.
    pub fn check(&self) -> Result<(), Stop> {
        match self.available() {
            Ok(available) if available < self.reserve => Err(Stop::DiskLow {
                available,
                reserve: self.reserve,
            }),
            // If the file system cannot say, the write errors will.
            _ => Ok(()),
        }
    }
}

/// The receipt a run wrote.
#[derive(Debug)]
pub struct WrittenReceipt {
    /// `open-receipt-<batch>.json` in `--out`.
    pub path: PathBuf,
    /// Whether its signature (`.sig` beside it) was written: the key has a signing subkey.
    pub signed: bool,
}

/// Opens every submission of `bundle` with `key` into `out`; `progress` is called after each.
/// The key is wiped before anything a parser wrote is read; then the urgency of earlier runs'
/// reports is read, the index rebuilt and the receipt written.
pub fn open_bundle(
    bundle: File,
    key: UnlockedKey,
    out: &OutputDir,
    limits: &Limits,
    parser: &ParserProgram,
    progress: &mut dyn FnMut(&BundleManifest, usize),
) -> OpenSummary {
    let mut summary = OpenSummary {
        max_bundle_plaintext: limits.max_bundle_plaintext,
        ..OpenSummary::default()
    };
    let disk = match DiskGuard::new(out.root(), limits.disk_reserve) {
        Ok(disk) => disk,
        Err(e) => {
            summary.bundle_error = Some(BundleError::Io(e));
            return summary;
        }
    };
    let mut run = Run {
        key,
        out,
        limits,
        parser,
        disk,
        kept: 0,
        stop: None,
    };
    if let Err(stop) = run.disk.check() {
        run.stop = Some(stop);
    }
    let result = bundle::read_bundle(BufReader::new(bundle), |manifest, entry, data| {
        if summary.manifest.is_none() {
            summary.manifest = Some(manifest.clone());
        }
        if run.stop.is_some() {
            return;
        }
        let outcome = run.open_one(entry, data);
        summary.outcomes.push((entry.id, outcome));
        progress(manifest, summary.outcomes.len());
    });
    match result {
        Ok(manifest) => summary.manifest = Some(manifest),
        Err(e) => summary.bundle_error = Some(e),
    }
    summary.kept_bytes = run.kept;
    summary.stopped = run.stop.take();
    // The decryption keys go first (their secrets are zeroed on drop). The signing subkey signs
    // the receipt, which is made of the manifest and of which report folders exist, and goes
    // too: only then is parser output read.
    let mut signer = run.key.take_signer();
    drop(run);
    write_receipt(&mut summary, out, signer.as_mut());
    drop(signer);
    after_the_key(&mut summary, out);
    summary
}

/// The receipt: which submissions of the bundle are open in `out`, signed with `signer`.
fn write_receipt(summary: &mut OpenSummary, out: &OutputDir, signer: Option<&mut KeyPair>) {
    if let Some(manifest) = &summary.manifest {
        // What was opened, by the ciphertext each folder was opened from (a folder without its
        // entry is left out: its submission is then kept on the server).
        let opened: Vec<OpenedCiphertext> = manifest
            .submissions
            .iter()
            .filter(|e| out.is_open(&e.id))
            .filter_map(|e| opened::opened_entry(&out.root().join(e.id.to_string())))
            .filter(|entry| manifest.submissions.iter().any(|e| e.id == entry.id))
            .map(|entry| OpenedCiphertext {
                id: entry.id,
                size: entry.size,
                sha256: entry.sha256,
            })
            .collect();
        let failed = summary
            .outcomes
            .iter()
            .filter_map(|(id, o)| match o {
                Outcome::Failed { reason, .. } if !out.is_open(id) => Some(FailedOpen {
                    id: *id,
                    reason: (*reason).to_string(),
                }),
                _ => None,
            })
            .collect();
        let path = out.root().join(OpenReceipt::file_name(&manifest.batch));
        let receipt = OpenReceipt::new(manifest.batch, opened, failed);
        summary.receipt = Some(
            receipt::write(&path, &receipt, signer).map(|signed| WrittenReceipt { path, signed }),
        );
    }
}

/// Urgency of earlier runs' reports, the index.
fn after_the_key(summary: &mut OpenSummary, out: &OutputDir) {
    for (id, outcome) in &mut summary.outcomes {
        if let Outcome::AlreadyOpen { urgency } = outcome {
            *urgency = opened::urgency_in(&out.root().join(id.to_string()));
        }
    }
    summary.index = Some(index::rebuild(out.root()).map_err(|e| e.to_string()));
    // Threads are a convenience: a failure here costs no report (the next run writes them).
    let _ = super::thread::rebuild(out.root());
    // Every report is written before the registry is touched: a damaged registry costs no
    // report, and the next run records what this one could not.
    let opened: Vec<SubmissionId> = summary
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Opened { .. }))
        .map(|(id, _)| *id)
        .collect();
    summary.registry = Some(
        crate::registry::Registry::record_opened(out.root(), &opened).map_err(|e| e.to_string()),
    );
    // Only what this run read (its ciphertext checked against the manifest) or what is open
    // already counts as arrived: a bundle that broke off delivered less than it lists.
    let reached: std::collections::HashSet<SubmissionId> = summary
        .outcomes
        .iter()
        .filter(|(_, o)| match o {
            Outcome::Failed { reason, .. } => {
                ![BUNDLE_BOUND_REASON, DISK_REASON, PARSER_REASON].contains(reason)
            }
            _ => true,
        })
        .map(|(id, _)| *id)
        .collect();
    summary.chain = summary.manifest.as_ref().map(|manifest| {
        crate::registry::Registry::in_folder(out.root())
            .and_then(|mut registry| {
                registry.check_chain(
                    &manifest.batch,
                    manifest.chain.as_ref(),
                    &manifest.submissions,
                    &reached,
                )
            })
            .map_err(|e| e.to_string())
    });
}

/// Adds a chain head a courier's `watch` verified (`open --seen-head`) to what the registry
/// knows, after the bundle's own check: the bundles must meet it, and what it covers that no
/// bundle carried is a gap. Its problems join the summary's.
pub fn add_seen_head(
    summary: &mut OpenSummary,
    out: &OutputDir,
    seen: &crate::trust::chain::ChainPoint,
) {
    let checked = crate::registry::Registry::in_folder(out.root()).and_then(|mut registry| {
        let problems = registry.record_seen_head(seen)?;
        let status = registry.chain_status()?;
        Ok((problems, status))
    });
    match (checked, &mut summary.chain) {
        (Ok((problems, status)), Some(Ok(report))) => {
            report.problems.extend(problems);
            report.known_through = status.known_through;
            report.gaps = status.gaps;
        }
        (Ok((problems, mut status)), slot) => {
            status.problems = problems;
            *slot = Some(Ok(status));
        }
        (Err(e), slot) => *slot = Some(Err(e.to_string())),
    }
}

/// One run's state.
struct Run<'a> {
    key: UnlockedKey,
    out: &'a OutputDir,
    limits: &'a Limits,
    parser: &'a ParserProgram,
    disk: DiskGuard,
    kept: u64,
    stop: Option<Stop>,
}

impl Run<'_> {
    fn open_one(&mut self, entry: &BundleEntry, data: &mut BundleEntryReader<'_>) -> Outcome {
        if self.out.is_open(&entry.id) {
            return Outcome::AlreadyOpen { urgency: None };
        }
        let budget = self.limits.max_bundle_plaintext.saturating_sub(self.kept);
        let (limit, bound_reason) = if budget < self.limits.max_plaintext {
            (budget, BUNDLE_BOUND_REASON)
        } else {
            (self.limits.max_plaintext, ITEM_BOUND_REASON)
        };
        if limit == 0 {
            return failed(
                BUNDLE_BOUND_REASON,
                format!(
                    "this run already kept {} bytes, the bound for the bundle",
                    self.kept
                ),
            );
        }
        if let Err(stop) = self.disk.check() {
            let outcome = failed(DISK_REASON, describe_stop(&stop));
            self.stop = Some(stop);
            return outcome;
        }
        // 1. The sealed bytes, verified against the manifest before any decryption.
        let staging = match stage_verified(entry, data, self.out) {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        let sealed = match File::open(staging.spool()) {
            Ok(f) => f,
            Err(e) => return failed("write error", e),
        };
        // 2. Decrypt.
        let addressed_to_us = Arc::new(AtomicBool::new(false));
        let helper = self.key.helper(addressed_to_us.clone());
        let mut plaintext = match DecryptorBuilder::from_reader(sealed)
            .map(|b| b.buffer_size(DECRYPT_BUFFER))
            .and_then(|b| b.with_policy(&crate::keyring::POLICY, None, helper))
        {
            Ok(d) => d,
            Err(e) => {
                return if addressed_to_us.load(Ordering::Relaxed) {
                    failed("cannot be decrypted (damaged or tampered)", e)
                } else {
                    failed(
                        "not encrypted to this key",
                        "no session key is for this key",
                    )
                };
            }
        };
        // 3. Parse, in a parser process fed through a pipe.
        let job = Job {
            dir: staging.path().to_path_buf(),
            entry: entry.clone(),
            max_plaintext: limit,
            require_sandbox: self.parser.require_sandbox,
            lang: self.parser.lang,
        };
        let mut parser = match Parser::start(&self.parser.program, &job, &self.disk) {
            Ok(p) => p,
            Err(e) => {
                let detail = format!("cannot start {}: {e}", self.parser.program.display());
                self.stop = Some(Stop::Parser(detail.clone()));
                return failed(PARSER_REASON, detail);
            }
        };
        let mut buf = vec![0u8; 256 * 1024];
        let mut fed = 0u64;
        let mut next_check = DISK_CHECK_EVERY;
        let mut whole = false;
        loop {
            let n = match plaintext.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    // Once decryption has begun, an error means the ciphertext failed its
                    // integrity check (or the spool under it failed).
                    parser.abandon();
                    return failed("integrity check failed (tampered or damaged)", e);
                }
            };
            if n == 0 {
                whole = true;
                break;
            }
            if fed + n as u64 > limit {
                parser.abandon();
                return failed(
                    bound_reason,
                    format!("the plaintext is larger than {limit} bytes"),
                );
            }
            fed += n as u64;
            if fed >= next_check {
                next_check = fed + DISK_CHECK_EVERY;
                if let Err(stop) = self.disk.check() {
                    parser.abandon();
                    let outcome = failed(DISK_REASON, describe_stop(&stop));
                    self.stop = Some(stop);
                    return outcome;
                }
            }
            if !parser.feed(&buf[..n]) {
                // The parser stopped reading: it refused the payload (its answer says why).
                break;
            }
        }
        drop(plaintext);
        let end = parser.finish();
        if let Some(stop) = end.disk_low {
            let outcome = failed(DISK_REASON, describe_stop(&stop));
            self.stop = Some(stop);
            return outcome;
        }
        let kind = match end.answer {
            Err(detail) => return failed(PARSER_REASON, detail),
            Ok(Answer::Failed { reason, detail }) => {
                let reason = super::lang::known_reason(&reason).unwrap_or(PARSER_REASON);
                return failed(reason, detail);
            }
            Ok(_) if !whole => {
                return failed(
                    PARSER_REASON,
                    "the parser answered before the end of the plaintext",
                )
            }
            Ok(Answer::Report { urgency, .. }) => (TreeKind::Report, urgency),
            Ok(Answer::Raw { .. }) => (TreeKind::Raw, Urgency::Unanswered),
        };
        // 4. Check what the parser wrote, then commit.
        let size = match check_report_tree(staging.path(), kind.0) {
            Ok(size) => size,
            Err(problem) => return failed(PARSER_REASON, problem),
        };
        if self.kept + size > self.limits.max_bundle_plaintext {
            return failed(
                BUNDLE_BOUND_REASON,
                format!("the report holds {size} bytes"),
            );
        }
        let entry_json = serde_json::to_vec_pretty(entry).unwrap_or_default();
        let committed = staging
            .write("bundle-entry.json", &entry_json)
            .and_then(|()| staging.commit());
        match committed {
            Ok(()) => {
                self.kept += size;
                Outcome::Opened { urgency: kind.1 }
            }
            Err(e) => failed("write error", e),
        }
    }
}

/// The reason a run stopped, for people.
pub fn describe_stop(stop: &Stop) -> String {
    match stop {
        Stop::DiskLow { available, reserve } => format!(
            "only {} MiB free on --out; open stops before less than {} MiB is left",
            available / MIB,
            reserve / MIB
        ),
        Stop::Parser(detail) => detail.clone(),
    }
}

/// A running parser: its stdin, a thread reading its answer, and a watchdog that kills it if
/// `--out` runs out of space or it goes silent.
struct Parser {
    child: Arc<Mutex<Child>>,
    stdin: Option<ChildStdin>,
    stderr_text: Arc<Mutex<Vec<u8>>>,
    answer: Receiver<io::Result<Vec<u8>>>,
    /// Dropped (or sent on) to stop the watchdog at once.
    stop_watching: Option<mpsc::Sender<()>>,
    progress: Arc<AtomicU64>,
    watchdog: Option<std::thread::JoinHandle<Option<Stop>>>,
}

/// How a parser ended.
struct ParserEnd {
    answer: Result<Answer, String>,
    disk_low: Option<Stop>,
}

impl Parser {
    fn start(program: &Path, job: &Job, disk: &DiskGuard) -> io::Result<Parser> {
        let mut child = Command::new(program)
            .args(job.args())
            .env_clear()
            .current_dir(&job.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        // What a parser prints (a panic message, at worst) is kept, bounded, for the failure's
        // detail; it never reaches the terminal as such.
        let stderr_text = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut err) = child.stderr.take() {
            let keep = stderr_text.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut kept) = keep.lock() {
                        let room = 1024usize.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            });
        }
        let (tx, answer) = mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let result = match stdout {
                Some(out) => out
                    .take(worker::MAX_ANSWER_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map(|_| bytes),
                None => Err(io::Error::other("no pipe from the parser")),
            };
            let _ = tx.send(result);
        });
        let child = Arc::new(Mutex::new(child));
        let (stop_watching, stop) = mpsc::channel();
        let progress = Arc::new(AtomicU64::new(0));
        let watchdog = {
            let (child, progress) = (child.clone(), progress.clone());
            let disk = DiskGuard {
                dir: disk.dir.try_clone()?,
                reserve: disk.reserve,
            };
            std::thread::spawn(move || watch(&child, &stop, &progress, &disk))
        };
        Ok(Parser {
            child,
            stdin,
            stderr_text,
            answer,
            stop_watching: Some(stop_watching),
            progress,
            watchdog: Some(watchdog),
        })
    }

    /// Passes plaintext on; false once the parser no longer reads.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        let Some(stdin) = self.stdin.as_mut() else {
            return false;
        };
        match stdin.write_all(bytes) {
            Ok(()) => {
                self.progress
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.stdin = None;
                false
            }
        }
    }

    /// Ends the input, waits for the answer (or the watchdog), reaps the process.
    fn finish(mut self) -> ParserEnd {
        self.stdin = None;
        let deadline = Instant::now() + PARSER_SILENCE + Duration::from_secs(5);
        let received = loop {
            match self.answer.recv_timeout(Duration::from_millis(200)) {
                Ok(r) => break Some(r),
                Err(RecvTimeoutError::Disconnected) => break None,
                Err(RecvTimeoutError::Timeout) if Instant::now() > deadline => break None,
                Err(RecvTimeoutError::Timeout) => {}
            }
        };
        let disk_low = self.reap();
        let answer = match received {
            Some(Ok(bytes)) => worker::receive(&bytes),
            Some(Err(e)) => Err(format!("no answer from the parser: {e}")),
            None => Err("the parser did not answer in time".into()),
        };
        // A parser killed by a signal (a crash, or a resource limit) did not finish its work.
        let answer = match (answer, self.exit_signal()) {
            (Err(e), Some(signal)) => Err(format!("{e} (stopped by signal {signal})")),
            (Ok(_), Some(signal)) => Err(format!("the parser was stopped by signal {signal}")),
            (answer, None) => answer,
        };
        let answer = answer.map_err(|e| {
            let printed = self
                .stderr_text
                .lock()
                .map(|t| String::from_utf8_lossy(&t).trim().to_string())
                .unwrap_or_default();
            if printed.is_empty() {
                e
            } else {
                format!("{e}; it said: {printed}")
            }
        });
        ParserEnd { answer, disk_low }
    }

    /// Stops the parser without waiting for an answer.
    fn abandon(mut self) {
        self.stdin = None;
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
        }
        self.reap();
    }

    /// Stops the watchdog and waits for the process; returns what the watchdog saw.
    fn reap(&mut self) -> Option<Stop> {
        self.stop_watching = None;
        let seen = self.watchdog.take().and_then(|w| w.join().ok().flatten());
        if let Ok(mut child) = self.child.lock() {
            if seen.is_some() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        seen
    }

    fn exit_signal(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let mut child = self.child.lock().ok()?;
        child.try_wait().ok().flatten().and_then(|s| s.signal())
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        if self.watchdog.is_some() {
            self.stdin = None;
            if let Ok(mut child) = self.child.lock() {
                let _ = child.kill();
            }
            self.reap();
        }
    }
}

/// Kills the parser if `--out` gets down to its reserve or the parser makes no progress for
/// [`PARSER_SILENCE`]; returns the disk shortage it saw, if any.
fn watch(
    child: &Mutex<Child>,
    stop: &Receiver<()>,
    progress: &AtomicU64,
    disk: &DiskGuard,
) -> Option<Stop> {
    let mut last = (progress.load(Ordering::Relaxed), Instant::now());
    // Wakes every 50 ms, or at once when the opener is done with the parser.
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(Duration::from_millis(50)) {
        let now = progress.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
        let shortage = disk.check().err();
        if shortage.is_some() || last.1.elapsed() > PARSER_SILENCE {
            if let Ok(mut child) = child.lock() {
                let _ = child.kill();
            }
            return shortage;
        }
    }
    None
}

/// Copies a submission's sealed bytes into a fresh spool file beside a fresh staging directory
/// and checks them against the bundle manifest (size and SHA-256).
fn stage_verified(
    entry: &BundleEntry,
    data: &mut BundleEntryReader<'_>,
    out: &OutputDir,
) -> Result<Staging, Outcome> {
    let staging = out.stage(&entry.id).map_err(|e| failed("write error", e))?;
    let spooled = super::output::create_private(staging.spool())
        .and_then(|mut file| io::copy(data, &mut file).and_then(|_| file.flush()));
    spooled.map_err(|e| failed("write error", e))?;
    data.finish()
        .map_err(|e| failed("damaged in the bundle", e))?;
    Ok(staging)
}

/// `unpack`: writes every sealed submission as `<id>.pgp`, verified, for use with gpg or sq.
pub fn unpack_bundle(bundle: File, out: &OutputDir) -> OpenSummary {
    let mut summary = OpenSummary::default();
    let result = bundle::read_bundle(BufReader::new(bundle), |manifest, entry, data| {
        if summary.manifest.is_none() {
            summary.manifest = Some(manifest.clone());
        }
        let outcome = unpack_one(entry, data, out);
        summary.outcomes.push((entry.id, outcome));
    });
    match result {
        Ok(manifest) => summary.manifest = Some(manifest),
        Err(e) => summary.bundle_error = Some(e),
    }
    summary
}

fn unpack_one(entry: &BundleEntry, data: &mut BundleEntryReader<'_>, out: &OutputDir) -> Outcome {
    let target = out.root().join(format!("{}.pgp", entry.id));
    if let Ok(existing) = std::fs::read(&target) {
        let same = hex::encode(digest::digest(&digest::SHA256, &existing)) == entry.sha256;
        return if same {
            Outcome::AlreadyOpen { urgency: None }
        } else {
            failed("a different file is already there", target.display())
        };
    }
    let staging = match stage_verified(entry, data, out) {
        Ok(s) => s,
        Err(outcome) => return outcome,
    };
    let placed = File::open(staging.spool())
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::hard_link(staging.spool(), &target))
        .and_then(|()| File::open(out.root())?.sync_all());
    match placed {
        Ok(()) => Outcome::Opened {
            urgency: Urgency::Unanswered,
        },
        Err(e) => failed("write error", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_bundle_bound_follows_the_bundle_size() {
        assert_eq!(
            default_max_bundle_plaintext(0),
            MIN_DEFAULT_BUNDLE_PLAINTEXT
        );
        assert_eq!(
            default_max_bundle_plaintext(8 * MIB),
            MIN_DEFAULT_BUNDLE_PLAINTEXT,
            "an 8 MB bundle of bombs stops at 1 GiB, not 6 GB"
        );
        assert_eq!(default_max_bundle_plaintext(1024 * MIB), 8 * 1024 * MIB);
        assert_eq!(default_max_bundle_plaintext(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_disk_guard_reads_free_space() {
        let dir = tempfile::tempdir().expect("tempdir");
        let guard = DiskGuard::new(dir.path(), 0).expect("guard");
        assert!(guard.available().expect("statvfs") > 0);
        assert!(guard.check().is_ok());
        let greedy = DiskGuard::new(dir.path(), u64::MAX).expect("guard");
        match greedy.check() {
            Err(Stop::DiskLow { reserve, .. }) => assert_eq!(reserve, u64::MAX),
            other => panic!("{other:?}"),
        }
    }
}
