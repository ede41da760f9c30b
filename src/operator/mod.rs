//! The operator's commands on a data directory: export, purge, status.
//!
//! They work whether or not the gateway is running. The store admits one process at a time (sled
//! holds a lock), so when the gateway has it, these commands talk to the gateway over a Unix
//! socket in the data directory ([`socket`]), which only the data directory's owner (and root) can
//! reach. Either way the same store code does the work.
//!
//! Export is delivered, not just written: the bundle goes to a temporary file next to `--out`,
//! is synced, read back and verified entry by entry against its manifest, and only then renamed
//! into place and reported to the store as delivered. A crash anywhere before that leaves the
//! batch undelivered, and the next export writes the same batch again, so no submission is lost
//! and none appears in two different batches.

pub mod socket;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use std::collections::HashSet;

use crate::bundle::{self, receipt, BundleError, BundleManifest};
use crate::store::{PurgeReport, StoreError, StoreOptions, StoreStatus, SubmissionStore};
use crate::submission::{BatchId, SubmissionId};

/// Name of the admin socket inside the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

/// Why an operator command (export, purge, status) failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The store itself failed or refused (opened here, not through the socket).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bundle file (just written by export, or given to purge) fails verification.
    #[error("bundle {path}: {source}")]
    Bundle {
        /// The bundle file (for export, the temporary file beside `--out`).
        path: PathBuf,
        /// What is wrong with it.
        source: BundleError,
    },
    /// A file or folder cannot be read, written, synced or renamed; also a data directory
    /// that is not a Resguardo one.
    #[error("{path}: {source}")]
    File {
        /// The file or folder concerned.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// `--out` already exists: export never overwrites a file.
    #[error("{0} already exists; choose another --out or move it away")]
    OutputExists(PathBuf),
    /// The running gateway's admin socket cannot be used (connect, I/O, or a reply that is
    /// not what was asked for).
    #[error("the running gateway did not answer on {path}: {reason}")]
    Socket {
        /// The socket, `<data dir>/admin.sock`.
        path: PathBuf,
        /// The underlying error, as text.
        reason: String,
    },
    /// The running gateway got the request but failed it; holds its error message.
    #[error("the running gateway refused: {0}")]
    Remote(String),
    /// The open receipt cannot be read or fails its checks.
    #[error("receipt {path}: {source}")]
    Receipt {
        /// The receipt file given to purge.
        path: PathBuf,
        /// What is wrong with it.
        source: crate::bundle::receipt::ReceiptError,
    },
    #[error(
        "receipt {path} is for bundle {receipt_batch}, not for this bundle ({bundle_batch}); \
         use the receipt `resguardo-review open` wrote for this bundle"
    )]
    /// The receipt is for another bundle: its batch id differs from the bundle's.
    ReceiptMismatch {
        /// The receipt file given to purge.
        path: PathBuf,
        /// The batch the receipt names.
        receipt_batch: BatchId,
        /// The batch of the bundle given to purge.
        bundle_batch: BatchId,
    },
}

/// What an export did.
#[derive(Debug, Clone)]
pub struct ExportOutcome {
    /// None if there was nothing to export.
    pub manifest: Option<BundleManifest>,
    /// True if this repeated an interrupted batch rather than starting a new one.
    pub resumed: bool,
    /// Size of the bundle file written, in bytes; 0 if there was nothing to export.
    pub bytes: u64,
}

/// Writes every submission not yet exported (or an interrupted batch) into `out`.
pub fn export(data_dir: &Path, out: &Path) -> Result<ExportOutcome, OperatorError> {
    if out.exists() {
        return Err(OperatorError::OutputExists(out.to_path_buf()));
    }
    match open_store(data_dir)? {
        Some(store) => export_local(&store, out),
        None => socket::Client::new(data_dir).export(out),
    }
}

/// Verifies a bundle file completely and reads the reviewers' receipt for it (written by
/// `resguardo-review open`), then deletes from the store the submissions the receipt lists as
/// opened. A bundle nobody opened cannot be purged by mistake: without its receipt nothing goes.
pub fn purge(
    data_dir: &Path,
    bundle_path: &Path,
    receipt_path: &Path,
) -> Result<(BundleManifest, PurgeReport), OperatorError> {
    let manifest = verify_bundle_file(bundle_path)?;
    let receipt = receipt::read(receipt_path).map_err(|source| OperatorError::Receipt {
        path: receipt_path.to_path_buf(),
        source,
    })?;
    if receipt.batch != manifest.batch {
        return Err(OperatorError::ReceiptMismatch {
            path: receipt_path.to_path_buf(),
            receipt_batch: receipt.batch,
            bundle_batch: manifest.batch,
        });
    }
    let opened: HashSet<SubmissionId> = receipt.opened.into_iter().collect();
    let report = match open_store(data_dir)? {
        Some(store) => store.purge(&manifest, &opened)?,
        None => socket::Client::new(data_dir).purge(&manifest, &opened)?,
    };
    Ok((manifest, report))
}

/// What importing one reply of an outbox did.
#[derive(Debug)]
pub struct ImportedReply {
    /// Its conversation.
    pub conversation: crate::replies::Locator,
    /// Its number there and whether it was stored before, or why it was refused.
    pub outcome: Result<(u32, bool), String>,
}

/// Imports an outbox into the store (`resguardo-gateway replies import`): each reply whose
/// signature is by a current signing subkey of `reviewers` and whose conversation exists is
/// stored; the others are refused with the reason. Through the running gateway if it holds the
/// store.
pub fn import_replies(
    data_dir: &Path,
    outbox: &crate::replies::Outbox,
    reviewers: &crate::keyring::ReviewerKeyring,
) -> Result<Vec<ImportedReply>, OperatorError> {
    let store = open_store(data_dir)?;
    let client = socket::Client::new(data_dir);
    let mut done = Vec::new();
    for reply in &outbox.replies {
        let outcome = (|| {
            let message = reply.message_bytes().map_err(|e| e.to_string())?;
            let signature = reply.signature_bytes().map_err(|e| e.to_string())?;
            reviewers
                .verify_document(
                    &signature,
                    &crate::replies::outbox::push_signed_text(&reply.conversation, &message),
                    std::time::SystemTime::now(),
                )
                .map_err(|e| format!("not signed by a current reviewer key ({e})"))?;
            match &store {
                Some(store) => store
                    .add_reply(&reply.conversation, &message)
                    .map(socket::added_pair)
                    .map_err(|e| e.to_string()),
                None => client
                    .add_reply(&reply.conversation, &message)
                    .map_err(|e| e.to_string()),
            }
        })();
        done.push(ImportedReply {
            conversation: reply.conversation,
            outcome,
        });
    }
    Ok(done)
}

/// The store's counts, asked of the running gateway if it holds the store.
pub fn status(data_dir: &Path) -> Result<StoreStatus, OperatorError> {
    match open_store(data_dir)? {
        Some(store) => Ok(store.status()?),
        None => socket::Client::new(data_dir).status(),
    }
}

/// Opens the store, or `None` if a running gateway holds it.
fn open_store(data_dir: &Path) -> Result<Option<SubmissionStore>, OperatorError> {
    if !SubmissionStore::exists(data_dir) {
        return Err(OperatorError::File {
            path: data_dir.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotFound, "not a Resguardo data directory"),
        });
    }
    match SubmissionStore::open(data_dir, StoreOptions::default()) {
        Ok(_) if data_dir.join(crate::store::object::MARKER_FILE).exists() => {
            Err(OperatorError::File {
                path: data_dir.to_path_buf(),
                source: io::Error::other(
                    "its submissions are in the object store ([store] backend = \"s3\"); \
                     start the gateway and run this again (it goes through the running gateway)",
                ),
            })
        }
        Ok((store, _)) => Ok(Some(store)),
        Err(StoreError::Locked(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn export_local(store: &SubmissionStore, out: &Path) -> Result<ExportOutcome, OperatorError> {
    let Some(batch) = store.begin_export()? else {
        return Ok(ExportOutcome {
            manifest: None,
            resumed: false,
            bytes: 0,
        });
    };
    let bytes = deliver(out, |writer| {
        store
            .write_export(&batch, writer)
            .map(|_| ())
            .map_err(|e| io::Error::other(e.to_string()))
    })?;
    store.complete_export(&batch.manifest.batch)?;
    Ok(ExportOutcome {
        manifest: Some(batch.manifest),
        resumed: batch.resumed,
        bytes,
    })
}

/// Writes a bundle through `write` into a temporary file beside `out`, syncs it, verifies it by
/// reading it back, and renames it into place. Returns its size.
pub(crate) fn deliver(
    out: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<u64, OperatorError> {
    let file_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OperatorError::File { path, source }
    };
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let tmp = dir.join(format!(".{name}.partial"));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(file_error(&tmp))?;
    let cleanup = TempFile(tmp.clone());
    let mut writer = BufWriter::with_capacity(1024 * 1024, file);
    write(&mut writer).map_err(file_error(&tmp))?;
    let file = writer
        .into_inner()
        .map_err(|e| file_error(&tmp)(e.into_error()))?;
    file.sync_all().map_err(file_error(&tmp))?;
    let size = file.metadata().map_err(file_error(&tmp))?.len();
    drop(file);
    verify_bundle_file(&tmp)?;
    if out.exists() {
        return Err(OperatorError::OutputExists(out.to_path_buf()));
    }
    fs::rename(&tmp, out).map_err(file_error(out))?;
    std::mem::forget(cleanup);
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(file_error(&dir))?;
    Ok(size)
}

/// Reads a whole bundle file and checks every entry against the manifest.
pub fn verify_bundle_file(path: &Path) -> Result<BundleManifest, OperatorError> {
    let bundle_error = |source| OperatorError::Bundle {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| OperatorError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let mut first_bad = None;
    let manifest = bundle::read_bundle(BufReader::new(file), |_, _, entry| {
        if let Err(e) = entry.finish() {
            first_bad.get_or_insert(e);
        }
    })
    .map_err(bundle_error)?;
    match first_bad {
        Some(e) => Err(bundle_error(e)),
        None => Ok(manifest),
    }
}

/// Removes a temporary file unless forgotten.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests;
