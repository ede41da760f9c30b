//! Bundles: how sealed submissions travel from the gateway to the reviewers' offline machine.
//!
//! A bundle is a POSIX (ustar) tar archive, specified in `docs/bundle-v1.md`:
//!
//! ```text
//! bundle.json                  the manifest: format, batch id, and per submission
//!                              id, day, size, sha256, sealing
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
pub use write::write_bundle;

use serde::{Deserialize, Serialize};

use crate::submission::{Sealing, SubmissionId, UtcDay};

/// The format this code writes and reads.
pub const FORMAT: &str = "resguardo.bundle/1";

/// Name of the manifest entry, always first.
pub const MANIFEST_NAME: &str = "bundle.json";

/// Bound on the manifest entry (about 100,000 submissions).
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// Bound on submissions per bundle.
pub const MAX_SUBMISSIONS: usize = 100_000;

/// Bound on one sealed submission in a bundle (the gateway's limit is far lower).
pub const MAX_SUBMISSION_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The manifest at the head of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub format: String,
    /// Random id of the export batch; a resumed export repeats the same batch.
    pub batch: SubmissionId,
    pub created: UtcDay,
    pub submissions: Vec<BundleEntry>,
}

/// One sealed submission as the manifest announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    pub id: SubmissionId,
    pub day: UtcDay,
    pub size: u64,
    /// Lowercase hex SHA-256 of the sealed message.
    pub sha256: String,
    pub sealing: Sealing,
}

impl BundleEntry {
    /// The entry name inside the archive.
    pub fn path(&self) -> String {
        entry_path(&self.id)
    }
}

pub fn entry_path(id: &SubmissionId) -> String {
    format!("sealed/{id}.pgp")
}

/// What can be wrong with a bundle or one of its submissions.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle is empty (no data at all)")]
    Empty,
    #[error("not a Resguardo bundle: {0}")]
    NotABundle(String),
    #[error("bundle format {0:?} is newer than this tool understands ({FORMAT}); upgrade resguardo-review")]
    FutureFormat(String),
    #[error("the bundle manifest is invalid: {0}")]
    BadManifest(String),
    #[error("the bundle is truncated: {0}")]
    Truncated(String),
    #[error("submission {id}: {reason}")]
    BadEntry { id: SubmissionId, reason: String },
    #[error("unexpected entry {0:?} in the bundle")]
    UnexpectedEntry(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
