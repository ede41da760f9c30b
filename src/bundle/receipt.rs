//! The open receipt: what `resguardo-review open` writes so that `purge` knows what was opened.
//!
//! Specified in `docs/open-receipt-v1.md`. (Provisional copy in main; the review branch owns it.)

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::submission::SubmissionId;

pub const FORMAT: &str = "resguardo.open-receipt/1";
const MAX_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenReceipt {
    pub format: String,
    pub batch: SubmissionId,
    pub opened: Vec<SubmissionId>,
    pub failed: Vec<FailedOpen>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedOpen {
    pub id: SubmissionId,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("cannot read the receipt: {0}")]
    Io(#[from] std::io::Error),
    #[error("the receipt is larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("not an open receipt: {0}")]
    Malformed(String),
    #[error("unknown receipt format {0:?}")]
    UnknownFormat(String),
    #[error("submission {0} is listed twice")]
    Duplicate(SubmissionId),
}

pub fn read(path: &Path) -> Result<OpenReceipt, ReceiptError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(ReceiptError::TooLarge);
    }
    let receipt: OpenReceipt =
        serde_json::from_slice(&bytes).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    if receipt.format != FORMAT {
        return Err(ReceiptError::UnknownFormat(
            receipt.format.chars().take(40).collect(),
        ));
    }
    let mut seen = HashSet::new();
    for id in receipt
        .opened
        .iter()
        .chain(receipt.failed.iter().map(|f| &f.id))
    {
        if !seen.insert(*id) {
            return Err(ReceiptError::Duplicate(*id));
        }
    }
    Ok(receipt)
}
