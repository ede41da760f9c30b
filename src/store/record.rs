//! What the index keeps per submission and per export batch, and how it is encoded.
//!
//! The encoding is small JSON: readable with standard tools during an audit of a seized disk
//! ("what does this server know?"), and versioned by the store's format key.

use serde::{Deserialize, Serialize};

use crate::submission::{BatchId, Sealing, SubmissionId, UtcDay};
use crate::trust::chain::ChainPoint;

/// The index entry of one sealed submission. Deliberately nothing about the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionRecord {
    /// The random id; also the ciphertext's file name, `sealed/<id>.pgp`.
    pub id: SubmissionId,
    /// The UTC day it was stored: the only time kept.
    pub day: UtcDay,
    /// Size of the ciphertext file in bytes (what counts against the quota).
    pub size: u64,
    /// Lowercase hex SHA-256 of the ciphertext, for integrity checks and purge matching.
    pub sha256: String,
    /// Whether the sender or the gateway encrypted it.
    pub sealing: Sealing,
    /// Stored, exported or being purged.
    pub state: RecordState,
    /// The triage envelope that came with it (base64 of a sealed message of fixed size, for
    /// the couriers; `docs/early-alerts.md`), if the sender made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triage: Option<String>,
    /// Its number in the chain (`docs/trust-v1.md`), given in the transaction that stored it
    /// (or adopted it at start); `None` for records from before the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

/// Where a submission is in its life: stored, then exported in a batch, then purged (gone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RecordState {
    /// Stored and not yet in any export batch.
    Stored,
    /// Put in an export batch (whose bundle may not have been delivered yet).
    Exported {
        /// The batch it was put in; a purge must name this same batch.
        batch: BatchId,
    },
    /// Purge started: the file may or may not be deleted yet; finished at the next open.
    Purging,
}

impl SubmissionRecord {
    /// The record as compact JSON, as stored in the index.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain structs of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a stored record; unknown fields are an error. `Err` holds serde's message.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// An export batch: the ids it holds, fixed when it was begun, and whether it was delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRecord {
    /// The batch's random id, also the bundle's.
    pub batch: BatchId,
    /// The UTC day the batch was begun.
    pub created: UtcDay,
    /// The submissions in the batch, in id order; only ever shortened, by a purge.
    pub ids: Vec<SubmissionId>,
    /// True once a complete bundle file was written and synced.
    pub delivered: bool,
    /// The part of the chain the batch covers, fixed with it; `None` for a batch of submissions
    /// from before the chain (or fixed before the chain existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainRange>,
    /// Some of its submissions were purged (their bundle was received, not marked delivered):
    /// the bundle is written again with the rest and without its chain segment, which went out
    /// with the copy the reviewers opened.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partly_purged: bool,
}

/// The chain range of a batch: from where the previous batch's segment ended to the head when
/// it was fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainRange {
    /// Where the previous batch's segment ended.
    pub base: ChainPoint,
    /// The chain's head when the batch was fixed.
    pub head: ChainPoint,
}

impl SubmissionRecord {
    /// The submission as a bundle manifest announces it.
    pub fn bundle_entry(self) -> crate::bundle::BundleEntry {
        crate::bundle::BundleEntry {
            id: self.id,
            day: self.day,
            size: self.size,
            sha256: self.sha256,
            sealing: self.sealing,
        }
    }
}

impl BatchRecord {
    /// The record as compact JSON, as stored in the index.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a stored record; unknown fields are an error. `Err` holds serde's message.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}
