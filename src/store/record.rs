//! What the index keeps per submission and per export batch, and how it is encoded.
//!
//! The encoding is small JSON: readable with standard tools during an audit of a seized disk
//! ("what does this server know?"), and versioned by the store's format key.

use serde::{Deserialize, Serialize};

use crate::submission::{Sealing, SubmissionId, UtcDay};

/// The index entry of one sealed submission. Deliberately nothing about the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionRecord {
    pub id: SubmissionId,
    pub day: UtcDay,
    pub size: u64,
    /// Lowercase hex SHA-256 of the ciphertext, for integrity checks and purge matching.
    pub sha256: String,
    pub sealing: Sealing,
    pub state: RecordState,
}

/// Where a submission is in its life: stored, then exported in a batch, then purged (gone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RecordState {
    Stored,
    Exported {
        batch: SubmissionId,
    },
    /// Purge started: the file may or may not be deleted yet; finished at the next open.
    Purging,
}

impl SubmissionRecord {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain structs of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// An export batch: the ids it holds, fixed when it was begun, and whether it was delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRecord {
    pub batch: SubmissionId,
    pub created: UtcDay,
    pub ids: Vec<SubmissionId>,
    /// True once a complete bundle file was written and synced.
    pub delivered: bool,
}

impl BatchRecord {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}
