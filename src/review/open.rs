//! `resguardo-review open`: every submission of a bundle, decrypted, checked and written out.
//!
//! For each submission, in order: the sealed bytes are copied into a staging directory and checked
//! against the bundle manifest's SHA-256 *before* anything is decrypted; then sequoia decrypts
//! them (integrity protection, MDC or AEAD, is verified by the time the plaintext is fully read);
//! the plaintext is parsed as payload v1 by the strict reader, attachments checked against
//! `report.json`; and only then is the staging directory renamed to `<id>/`. A submission that
//! fails at any step leaves nothing behind and is reported by id with the reason; the others still
//! open. Running the same bundle again skips what is already open.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sequoia_openpgp as openpgp;

use openpgp::parse::stream::DecryptorBuilder;
use openpgp::parse::Parse;
use ring::digest;

use super::opened::OpenedReport;
use super::output::{attachment_file_name, OutputDir, Staging};
use super::render::{self, Labels, WrittenFile};
use super::secret_key::UnlockedKey;
use crate::bundle::{self, BundleEntry, BundleEntryReader, BundleError, BundleManifest};
use crate::payload::read::{read_plaintext, AttachmentSink, Plaintext};
use crate::payload::Attachment;
use crate::submission::SubmissionId;

/// Default bound on one submission's plaintext: well above the gateway's limit, far below what
/// would fill an offline machine's disk if a compressed message tried to expand.
pub const DEFAULT_MAX_PLAINTEXT: u64 = 2 * 1024 * 1024 * 1024;

/// What happened to one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Opened {
        urgent: bool,
    },
    AlreadyOpen,
    Failed {
        reason: &'static str,
        detail: String,
    },
}

/// What happened to a bundle.
#[derive(Debug, Default)]
pub struct OpenSummary {
    pub manifest: Option<BundleManifest>,
    pub outcomes: Vec<(SubmissionId, Outcome)>,
    /// The bundle itself was unreadable, or broke off (then later submissions were not reached).
    pub bundle_error: Option<BundleError>,
}

impl OpenSummary {
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
}

/// Opens every submission of `bundle` with `key` into `out`. `progress` is called after each.
pub fn open_bundle(
    bundle: File,
    key: &mut UnlockedKey,
    out: &OutputDir,
    max_plaintext: u64,
    progress: &mut dyn FnMut(&BundleManifest, usize),
) -> OpenSummary {
    let labels = Labels::embedded();
    let mut summary = OpenSummary::default();
    let result = bundle::read_bundle(BufReader::new(bundle), |manifest, entry, data| {
        if summary.manifest.is_none() {
            summary.manifest = Some(manifest.clone());
        }
        let outcome = open_one(entry, data, key, out, &labels, max_plaintext);
        summary.outcomes.push((entry.id, outcome));
        progress(manifest, summary.outcomes.len());
    });
    match result {
        Ok(manifest) => summary.manifest = Some(manifest),
        Err(e) => summary.bundle_error = Some(e),
    }
    summary
}

fn failed(reason: &'static str, detail: impl ToString) -> Outcome {
    Outcome::Failed {
        reason,
        detail: render::clean(&detail.to_string()).replace('\n', " "),
    }
}

fn open_one(
    entry: &BundleEntry,
    data: &mut BundleEntryReader<'_>,
    key: &mut UnlockedKey,
    out: &OutputDir,
    labels: &Labels,
    max_plaintext: u64,
) -> Outcome {
    if out.is_open(&entry.id) {
        return Outcome::AlreadyOpen;
    }
    // 1. The sealed bytes, verified against the manifest before any decryption.
    let staging = match stage_verified(entry, data, out) {
        Ok(s) => s,
        Err(outcome) => return outcome,
    };
    let sealed = match File::open(staging.path().join(SEALED_NAME)) {
        Ok(f) => f,
        Err(e) => return failed("write error", e),
    };
    // 2. Decrypt and 3. parse, streaming.
    let addressed_to_us = Arc::new(AtomicBool::new(false));
    let helper = key.helper(addressed_to_us.clone());
    let decryptor = match DecryptorBuilder::from_reader(sealed)
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
    let integrity_failed = Arc::new(AtomicBool::new(false));
    let plaintext = Watched {
        inner: decryptor,
        failed: integrity_failed.clone(),
    };
    let mut sink = FilesSink {
        staging: &staging,
        written: Vec::new(),
    };
    let parsed = read_plaintext(plaintext, max_plaintext, &mut sink);
    if integrity_failed.load(Ordering::Relaxed) {
        return failed(
            "integrity check failed (tampered or damaged)",
            match parsed {
                Err(e) => e.to_string(),
                Ok(_) => "decryption error".into(),
            },
        );
    }
    let written = std::mem::take(&mut sink.written);
    let outcome = match parsed {
        Err(e) => return failed(e.reason(), e),
        Ok(Plaintext::Report(report)) => {
            let text = render::render(&report, entry, &written, labels);
            // report.json points at the attachments as saved, not at the archive's names.
            let saved: Vec<String> = written
                .iter()
                .map(|f| format!("files/{}", f.file_name))
                .collect();
            let json =
                serde_json::to_vec_pretty(&OpenedReport::new(&report, &saved)).unwrap_or_default();
            if let Err(e) = staging
                .write("report.json", &json)
                .and_then(|()| staging.write("report.txt", text.as_bytes()))
            {
                return failed("write error", e);
            }
            Outcome::Opened {
                urgent: report.urgency() == crate::payload::Urgency::Yes,
            }
        }
        Ok(Plaintext::Raw { size }) => {
            // message.bin was streamed by the sink, never held in memory.
            let text = render::render_raw(entry, size);
            if let Err(e) = staging.write("report.txt", text.as_bytes()) {
                return failed("write error", e);
            }
            Outcome::Opened { urgent: false }
        }
    };
    let entry_json = serde_json::to_vec_pretty(entry).unwrap_or_default();
    let committed = staging
        .remove(SEALED_NAME)
        .and_then(|()| staging.write("bundle-entry.json", &entry_json))
        .and_then(|()| staging.commit());
    match committed {
        Ok(()) => outcome,
        Err(e) => failed("write error", e),
    }
}

/// Where the sealed bytes wait in the staging directory while they are checked and decrypted.
const SEALED_NAME: &str = "sealed.pgp";

/// Copies a submission's sealed bytes into a fresh staging directory and checks them against
/// the bundle manifest (size and SHA-256).
fn stage_verified(
    entry: &BundleEntry,
    data: &mut BundleEntryReader<'_>,
    out: &OutputDir,
) -> Result<Staging, Outcome> {
    let staging = out.stage(&entry.id).map_err(|e| failed("write error", e))?;
    let spooled = staging
        .create(SEALED_NAME)
        .and_then(|mut file| io::copy(data, &mut file).and_then(|_| file.flush()));
    spooled.map_err(|e| failed("write error", e))?;
    data.finish()
        .map_err(|e| failed("damaged in the bundle", e))?;
    Ok(staging)
}

/// Notes any error from the decryptor: once the message started decrypting, an error means the
/// ciphertext failed its integrity check (or the store under it failed).
struct Watched<R> {
    inner: R,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| {
            self.failed.store(true, Ordering::Relaxed);
        })
    }
}

/// Writes attachments into the staging directory under safe names, hashing what it writes.
struct FilesSink<'a> {
    staging: &'a Staging,
    written: Vec<WrittenFile>,
}

impl AttachmentSink for FilesSink<'_> {
    fn open(&mut self, index: usize, attachment: &Attachment) -> io::Result<Box<dyn Write + '_>> {
        let file_name = attachment_file_name(index, &attachment.name);
        let file = self.staging.create(&format!("files/{file_name}"))?;
        self.written.push(WrittenFile {
            file_name,
            original_name: attachment.name.clone(),
            size: attachment.size,
            media_type: attachment.media_type.clone(),
            sha256: attachment.sha256.clone(),
        });
        Ok(Box::new(io::BufWriter::with_capacity(256 * 1024, file)))
    }

    fn raw(&mut self) -> io::Result<Box<dyn Write + '_>> {
        let file = self.staging.create("message.bin")?;
        Ok(Box::new(io::BufWriter::with_capacity(256 * 1024, file)))
    }
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
            Outcome::AlreadyOpen
        } else {
            failed("a different file is already there", target.display())
        };
    }
    let staging = match stage_verified(entry, data, out) {
        Ok(s) => s,
        Err(outcome) => return outcome,
    };
    let placed = File::open(staging.path().join(SEALED_NAME))
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::hard_link(staging.path().join(SEALED_NAME), &target))
        .and_then(|()| File::open(out.root())?.sync_all());
    match placed {
        Ok(()) => Outcome::Opened { urgent: false },
        Err(e) => failed("write error", e),
    }
}
