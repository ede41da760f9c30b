//! Bundles: how sealed submissions travel from the gateway to the reviewers' offline machine.
//!
//! A bundle is a POSIX (ustar) tar archive, specified in `docs/bundle-v1.md`:
//!
//! ```text
//! bundle.json                  the manifest: format, batch id, and per submission
//!                              id, day, size, sha256, sealing; the batch's chain segment
//! sealed/<id>.pgp              one binary OpenPGP message per submission, in manifest order
//! ```
//!
//! Tar keeps the format inspectable with standard tools (`tar -t`, then `gpg -d`), and the `tar`
//! crate parses it; we add a strict layer on top, because on the offline machine a bundle is
//! attacker-influenced input: every entry must be exactly what the manifest announces, in order,
//! with nothing extra, and each submission's bytes are checked against the manifest's SHA-256
//! before anything derived from them is kept. Error messages quote manifest text only cleaned
//! ([`crate::terminal::clean_line`]): a manifest is attacker-influenced.
//!
//! [`receipt`] is the file that travels back: which submissions of a bundle were opened.

mod read;
pub mod receipt;
mod write;

pub use read::{read_bundle, read_manifest, BundleEntryReader};
pub use write::{bundle_length, write_bundle};

use serde::{Deserialize, Serialize};

use crate::submission::{BatchId, Sealing, SubmissionId, UtcDay};

/// The format this code writes and reads.
pub const FORMAT: &str = "resguardo.bundle/1";

/// Name of the manifest entry, always first.
pub const MANIFEST_NAME: &str = "bundle.json";

/// Bound on the manifest entry: 100,000 submissions and their chain segment's entries (about
/// 500 bytes for both, as written) fit with room to spare.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// Bound on submissions per bundle.
pub const MAX_SUBMISSIONS: usize = 100_000;

/// Bound on one sealed submission in a bundle (the gateway's limit is far lower).
pub const MAX_SUBMISSION_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The manifest at the head of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    /// Always [`FORMAT`]; read before the rest, so a newer bundle gets a clear message.
    pub format: String,
    /// Random id of the export batch; a resumed export repeats the same batch.
    pub batch: BatchId,
    /// UTC day the batch was begun (a resumed export keeps it).
    pub created: UtcDay,
    /// In archive order; at most [`MAX_SUBMISSIONS`], each id once.
    pub submissions: Vec<BundleEntry>,
    /// The part of the gateway's chain the batch covers (`docs/trust-v1.md`); absent in a copy,
    /// in a batch of submissions from before the chain, and in bundles of older gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<crate::trust::chain::ChainSegment>,
}

/// One sealed submission as the manifest announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    /// The id the gateway gave the reporter; names the entry `sealed/<id>.pgp`.
    pub id: SubmissionId,
    /// UTC day of arrival: the only time the gateway keeps.
    pub day: UtcDay,
    /// Bytes of the sealed message, 1 to [`MAX_SUBMISSION_BYTES`].
    pub size: u64,
    /// Lowercase hex SHA-256 of the sealed message.
    pub sha256: String,
    /// Whether the sender encrypted it or the gateway sealed a form post on arrival.
    pub sealing: Sealing,
}

impl BundleEntry {
    /// The entry name inside the archive.
    pub fn path(&self) -> String {
        entry_path(&self.id)
    }
}

/// The batch id of a copy of `ids` (`SubmissionStore::copy_of`): derived from the ids, so the
/// same copy is the same bytes on every request, and a reader can tell a copy (which carries no
/// part of the chain) from a batch that should.
pub fn copy_batch_id(ids: &[SubmissionId]) -> BatchId {
    let mut unique = ids.to_vec();
    unique.sort();
    unique.dedup();
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(b"resguardo copy/1\n");
    for id in &unique {
        digest.update(id.as_bytes());
    }
    let mut batch = [0u8; 16];
    batch.copy_from_slice(&digest.finish().as_ref()[..16]);
    BatchId::from_bytes(batch)
}

/// The archive entry name of a submission's sealed message: `sealed/<id>.pgp`.
pub fn entry_path(id: &SubmissionId) -> String {
    format!("sealed/{id}.pgp")
}

/// What can be wrong with a bundle or one of its submissions.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The archive holds no entry at all (e.g. an empty file).
    #[error("the bundle is empty (no data at all)")]
    Empty,
    /// Not a tar archive, a first entry other than `bundle.json`, or an unknown format.
    #[error("not a Resguardo bundle: {0}")]
    NotABundle(String),
    /// The format is `resguardo.bundle/N` with N > 1; holds the format as given.
    #[error("bundle format {0:?} is newer than this tool understands ({FORMAT}); upgrade resguardo-review")]
    FutureFormat(String),
    /// The manifest is too large, not the expected JSON, or breaks a rule (count, repeated
    /// id, size, sha256); also a manifest that cannot be serialised when writing.
    #[error("the bundle manifest is invalid: {0}")]
    BadManifest(String),
    /// The archive ends early; the text says where (e.g. after how many submissions).
    #[error("the bundle is truncated: {0}")]
    Truncated(String),
    /// One submission does not match the manifest (entry type, size, SHA-256), or when
    /// writing, its stored ciphertext cannot be read or differs from what was recorded.
    #[error("submission {id}: {reason}")]
    BadEntry {
        /// The submission concerned.
        id: SubmissionId,
        /// What is wrong, ready to print.
        reason: String,
    },
    /// An entry other than the one the manifest announces next, or one after the last
    /// submission; holds its name, made printable.
    #[error("unexpected entry {0:?} in the bundle")]
    UnexpectedEntry(String),
    /// Reading the bundle or writing it failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
