//! The seam between the gateway and where sealed submissions are kept (`docs/store-v1.md`).
//!
//! [`SubmissionBackend`] is what every store of sealed submissions implements: the embedded
//! store ([`super::SubmissionStore`], sled and files in the data directory) and the object store
//! ([`super::object::ObjectStore`], an S3 bucket such as Garage's). The gateway, the operator
//! socket and the courier routes hold an `Arc<dyn SubmissionBackend>` and never know which.
//! Rules that do not depend on the backend are in [`super::rules`]; a backend owns only how
//! records, batches and ciphertext are kept, and when a step is durable.
//!
//! Every method blocks (disk or network): call it from `spawn_blocking`.

use std::collections::HashSet;
use std::io::{self, Read, Write};

use crate::bundle::{self, BundleManifest};
use crate::replies::Locator;
use crate::submission::{BatchId, Sealing, SubmissionId};

use super::{
    rules, BatchRecord, ExportBatch, IncomingSubmission, PurgeReport, RecordState, RetentionReport,
    StoreError, StoreStatus, SubmissionRecord,
};
use crate::submission::UtcDay;

/// A store of sealed submissions. Implementations must keep these promises, which the one test
/// story in `backend_tests` checks for each of them:
///
/// - a record returned by [`commit_with`](Self::commit_with) is durable (on stable storage, or
///   acknowledged by the object store's write quorum) before the call returns, and survives a
///   restart of the gateway;
/// - a submission is put in at most one export batch, and every stored one is put in one;
/// - nothing is deleted that a purge's receipt does not confirm or that retention does not
///   find past its cut-off;
/// - nothing is kept that the embedded store would not keep: ciphertext, the UTC day, size,
///   SHA-256, the sealed triage envelope; no other time, nothing about the sender.
pub trait SubmissionBackend: Send + Sync {
    /// Starts receiving a submission into a local spool; `expected` is the announced size,
    /// checked against the limits first.
    fn begin(&self, expected: Option<u64>) -> Result<IncomingSubmission, StoreError>;

    /// Keeps a fully received and checked submission, durably, with its triage envelope and
    /// (where the backend keeps conversations) a conversation begun with it.
    fn commit_with(
        &self,
        incoming: IncomingSubmission,
        sealing: Sealing,
        triage: Option<&[u8]>,
        conversation: Option<(&Locator, &[u8])>,
    ) -> Result<SubmissionRecord, StoreError>;

    /// The record of `id`, if this backend holds it.
    fn get(&self, id: &SubmissionId) -> Result<Option<SubmissionRecord>, StoreError>;

    /// Every record this backend holds, in id order.
    fn records(&self) -> Result<Vec<SubmissionRecord>, StoreError>;

    /// The ciphertext of `id` as a stream ([`StoreError::NotFound`] if it is not held).
    fn open_sealed(&self, id: &SubmissionId) -> Result<Box<dyn Read + Send>, StoreError>;

    /// Fixes the next export batch (an undelivered one first); `None` if nothing waits.
    fn begin_export(&self) -> Result<Option<ExportBatch>, StoreError>;

    /// The batch `batch` as it was fixed, to write its bundle again identically.
    fn export_batch(&self, batch: &BatchId) -> Result<ExportBatch, StoreError>;

    /// Records that the bundle of `batch` was received whole.
    fn complete_export(&self, batch: &BatchId) -> Result<(), StoreError>;

    /// The batches still held, oldest first.
    fn batches(&self) -> Result<Vec<BatchRecord>, StoreError>;

    /// Deletes exactly the submissions of `manifest` that `opened` confirms and whose stored
    /// ciphertext is the bundle's (see [`rules::purge_refusal`]).
    fn purge(
        &self,
        manifest: &BundleManifest,
        opened: &HashSet<SubmissionId>,
    ) -> Result<PurgeReport, StoreError>;

    /// Deletes never-exported submissions past the cut-off (see [`rules::retention_split`]).
    fn apply_retention(
        &self,
        today: UtcDay,
        days: u32,
        warn_days: u32,
    ) -> Result<RetentionReport, StoreError>;

    /// Counts for `status`.
    fn status(&self) -> Result<StoreStatus, StoreError>;

    /// A copy of these submissions (an urgent report carried at once), recorded nowhere.
    fn copy_of(&self, ids: &[SubmissionId]) -> Result<ExportBatch, StoreError> {
        let mut unique = ids.to_vec();
        unique.sort();
        unique.dedup();
        let mut records = Vec::with_capacity(unique.len());
        for id in &unique {
            match self.get(id)? {
                Some(record) if record.state != RecordState::Purging => records.push(record),
                _ => return Err(StoreError::NotFound(*id)),
            }
        }
        Ok(rules::copy_manifest(records))
    }

    /// Streams the bundle of `batch` into `out`, checking every ciphertext against its record.
    fn write_export(&self, batch: &ExportBatch, out: &mut dyn Write) -> Result<(), StoreError> {
        bundle::write_bundle(out, &batch.manifest, |entry| {
            self.open_sealed(&entry.id)
                .map_err(|e| io::Error::other(e.to_string()))
        })?;
        Ok(())
    }
}
