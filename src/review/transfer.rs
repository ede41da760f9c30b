//! `resguardo-review fetch` and `purge --server`: the courier moves ciphertext over the network
//! without a shell on the server (`docs/early-alerts.md`). Same batches, same bundle bytes and
//! same purge checks as the operator's local `export` and `purge`.
//!
//! A download goes to `OUT.<batch>.part`, resumes from that file's length after a broken
//! connection (Tor circuits break), is checked against the size the gateway announced and entry
//! by entry against the bundle's manifest (size and SHA-256 of each), synced, renamed to `OUT`, and only then
//! reported delivered. A crash anywhere before leaves the batch undelivered: the next `fetch`
//! gets the same batch again and resumes the same part file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::courier::Courier;
use crate::bundle::receipt;
use base64::Engine as _;

use crate::courier::{
    copy_query, BatchAnswer, BatchList, BatchRequest, CopyRequest, PurgeAnswer, PurgeRequest,
};
use crate::submission::{BatchId, SubmissionId};
use crate::submit::SubmitError;

/// Attempts at one download before giving up (each resumes where the last stopped).
const ATTEMPTS: usize = 8;

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The gateway refused or could not be reached.
    #[error(transparent)]
    Gateway(#[from] SubmitError),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// `--out` exists already.
    #[error("{0} already exists; choose another --out or move it away")]
    OutputExists(PathBuf),
    /// The download is not the bundle the gateway announced (it is deleted; fetch again).
    #[error("the downloaded bundle does not have its announced size or does not match its own manifest; it was deleted, fetch again")]
    Mismatch,
    /// The bundle or the receipt is not valid.
    #[error("{0}")]
    Invalid(String),
}

fn file_error(path: &Path) -> impl FnOnce(io::Error) -> TransferError + '_ {
    move |source| TransferError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// What `fetch` did.
#[derive(Debug)]
pub struct Fetched {
    /// The batch written to `--out`, or `None` when there was nothing to fetch.
    pub batch: Option<BatchId>,
    /// Submissions in it.
    pub submissions: usize,
    /// Bytes of the bundle.
    pub size: u64,
    /// Bytes that an earlier, interrupted run had already downloaded.
    pub resumed_from: u64,
}

/// What `fetch` brings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchWhat {
    /// The next export batch (or the one an interrupted fetch left undelivered).
    Next,
    /// A batch the gateway still holds, again (delivered or not).
    Batch(BatchId),
    /// A copy of these submissions, at once (an urgent report): recorded nowhere on the server;
    /// they go out again with their batch, which is what purge works from.
    Copy(Vec<SubmissionId>),
}

impl Courier {
    /// Fetches `what` into `out`.
    pub fn fetch(&mut self, out: &Path, what: &FetchWhat) -> Result<Fetched, TransferError> {
        if out.exists() {
            return Err(TransferError::OutputExists(out.to_path_buf()));
        }
        let (path, request) = match what {
            FetchWhat::Next => ("api/v1/courier/batches", json(&BatchRequest::default())),
            FetchWhat::Batch(batch) => (
                "api/v1/courier/batches",
                json(&BatchRequest {
                    batch: Some(*batch),
                }),
            ),
            FetchWhat::Copy(ids) => (
                "api/v1/courier/copies",
                json(&CopyRequest { ids: ids.clone() }),
            ),
        };
        let answer: BatchAnswer =
            self.signed(|client, sign| client.courier_post(path, &request, sign, 4096))?;
        let Some(batch) = answer.batch else {
            return Ok(Fetched {
                batch: None,
                submissions: 0,
                size: 0,
                resumed_from: 0,
            });
        };
        let download = |have: u64| match what {
            FetchWhat::Copy(ids) => format!("api/v1/courier/copies?{}", copy_query(ids, have)),
            _ => format!("api/v1/courier/batches/{batch}?offset={have}"),
        };
        let part = part_path(out, &batch);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&part)
            .map_err(file_error(&part))?;
        let resumed_from = file.metadata().map_err(file_error(&part))?.len();
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            let have = file.seek(SeekFrom::End(0)).map_err(file_error(&part))?;
            if have >= answer.size {
                break;
            }
            let path = download(have);
            let rest = answer.size - have;
            match self.signed(|client, sign| client.courier_download(&path, sign, &mut file, rest))
            {
                Ok(_) => last_error = None,
                Err(e) => last_error = Some(e),
            }
        }
        file.sync_all().map_err(file_error(&part))?;
        let have = file.metadata().map_err(file_error(&part))?.len();
        if have < answer.size {
            return Err(last_error
                .map(TransferError::Gateway)
                .unwrap_or(TransferError::Mismatch));
        }
        // Every entry against the manifest's size and SHA-256, and the manifest against the batch
        // announced: what a partial, mixed-up or substituted download cannot pass.
        let verified = crate::operator::verify_bundle_file(&part);
        if have != answer.size || !verified.is_ok_and(|m| m.batch == batch) {
            let _ = fs::remove_file(&part);
            return Err(TransferError::Mismatch);
        }
        fs::rename(&part, out).map_err(file_error(out))?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(file_error(dir))?;
        }
        if !matches!(what, FetchWhat::Copy(_)) {
            let path = format!("api/v1/courier/batches/{batch}/delivered");
            self.signed(|client, sign| {
                client.courier_post::<serde_json::Value>(&path, b"{}", sign, 4096)
            })?;
        }
        Ok(Fetched {
            batch: Some(batch),
            submissions: answer.submissions,
            size: answer.size,
            resumed_from,
        })
    }

    /// The batches the gateway still holds, oldest first.
    pub fn batches(&mut self) -> Result<BatchList, TransferError> {
        Ok(self.signed(|client, sign| {
            client.courier_get("api/v1/courier/batches", sign, 1024 * 1024)
        })?)
    }

    /// Purges, on the gateway, what the reviewers opened from `bundle`, per their `receipt` and
    /// its signature (`<receipt>.sig`, written by `open` with a reviewer's signing subkey).
    pub fn purge(
        &mut self,
        bundle_path: &Path,
        receipt_path: &Path,
    ) -> Result<PurgeAnswer, TransferError> {
        let manifest = crate::operator::verify_bundle_file(bundle_path)
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
        let invalid = |e: receipt::ReceiptError| TransferError::Invalid(e.to_string());
        let bytes = receipt::read_bytes(receipt_path).map_err(invalid)?;
        let parsed = receipt::parse(&bytes, receipt_path).map_err(invalid)?;
        if parsed.batch != manifest.batch {
            return Err(TransferError::Invalid(format!(
                "receipt {} is for bundle {}, not for this bundle ({}); use the receipt `resguardo-review open` wrote for this bundle",
                receipt_path.display(),
                parsed.batch,
                manifest.batch
            )));
        }
        let signature = receipt::read_signature(receipt_path).map_err(invalid)?;
        let receipt = String::from_utf8(bytes).map_err(|_| {
            TransferError::Invalid(format!("{}: not UTF-8", receipt_path.display()))
        })?;
        let body = serde_json::to_vec(&PurgeRequest {
            receipt,
            signature: base64::engine::general_purpose::STANDARD.encode(signature),
        })
        .map_err(|e| TransferError::Invalid(e.to_string()))?;
        Ok(self.signed(|client, sign| {
            client.courier_post("api/v1/courier/purge", &body, sign, 16 * 1024 * 1024)
        })?)
    }
}

/// A request body (these shapes always serialise).
fn json(body: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_default()
}

/// Where a download of `batch` for `out` is kept until it is whole.
pub fn part_path(out: &Path, batch: &BatchId) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{batch}.part"));
    out.with_file_name(name)
}
