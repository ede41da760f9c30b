//! The rules of the store that do not depend on where submissions are kept: what a new export
//! batch takes, why a purge must keep a submission, where retention cuts, what `status` counts,
//! and how an urgent copy is described. Pure functions over records, called by every backend
//! (`docs/store-v1.md`, section 2), so two backends can never disagree on them.

use std::collections::HashSet;

use crate::bundle::{self, BundleEntry, BundleManifest};
use crate::submission::{BatchId, SubmissionId, UtcDay};

use super::{
    BatchRecord, ExportBatch, RecordState, RetentionReport, StoreStatus, SubmissionRecord,
};

/// What a new export batch takes, from the records a backend holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportSelection {
    /// Nothing is waiting.
    Nothing,
    /// Stored submissions from before the chain (no number): they go out first, in a batch of
    /// their own without a chain segment.
    Unnumbered(Vec<SubmissionId>),
    /// Every stored submission (all numbered in the chain, or a backend without a chain).
    Stored(Vec<SubmissionId>),
}

/// The batch selection: unnumbered stored submissions first, else every stored one.
pub fn export_selection<'a>(
    records: impl IntoIterator<Item = &'a SubmissionRecord>,
) -> ExportSelection {
    let stored: Vec<&SubmissionRecord> = records
        .into_iter()
        .filter(|r| r.state == RecordState::Stored)
        .collect();
    if stored.is_empty() {
        return ExportSelection::Nothing;
    }
    let mut unnumbered: Vec<SubmissionId> = stored
        .iter()
        .filter(|r| r.sequence.is_none())
        .map(|r| r.id)
        .collect();
    unnumbered.sort();
    if !unnumbered.is_empty() {
        return ExportSelection::Unnumbered(unnumbered);
    }
    let mut ids: Vec<SubmissionId> = stored.iter().map(|r| r.id).collect();
    ids.sort();
    ExportSelection::Stored(ids)
}

/// Why a submission named by a receipt must be kept, or `None` if it may be deleted: it must be
/// in this very batch, and the bundle's copy must be the stored ciphertext (size and SHA-256).
pub fn purge_refusal(
    record: &SubmissionRecord,
    entry: &BundleEntry,
    batch: &BatchId,
) -> Option<String> {
    match &record.state {
        RecordState::Exported { batch: b } if b == batch => {}
        RecordState::Exported { batch: b } => {
            return Some(format!("it was exported in another batch ({b})"))
        }
        RecordState::Stored => return Some("it was never exported".into()),
        RecordState::Purging => return None,
    }
    if record.size != entry.size || record.sha256 != entry.sha256 {
        return Some("the bundle's copy differs from the stored ciphertext".into());
    }
    None
}

/// Sorts the submissions a receipt names into gone, refused (with the reason) and doomed, with
/// `lookup` reading a backend's record.
pub fn purge_plan<E>(
    manifest: &BundleManifest,
    opened: &HashSet<SubmissionId>,
    mut lookup: impl FnMut(&SubmissionId) -> Result<Option<SubmissionRecord>, E>,
) -> Result<(super::PurgeReport, Vec<SubmissionRecord>), E> {
    let mut report = super::PurgeReport::default();
    let mut doomed = Vec::new();
    for entry in &manifest.submissions {
        match lookup(&entry.id)? {
            None => report.already_gone.push(entry.id),
            Some(_) if !opened.contains(&entry.id) => report.refused.push((
                entry.id,
                "the reviewers' receipt does not list it as opened".into(),
            )),
            Some(record) => match purge_refusal(&record, entry, &manifest.batch) {
                Some(reason) => report.refused.push((entry.id, reason)),
                None => doomed.push(record),
            },
        }
    }
    Ok((report, doomed))
}

/// The retention cut-off: stored (never exported) submissions from before `today - days` are
/// doomed; those that will be within `warn_days` are counted, with the first day one is due.
pub fn retention_split(
    records: impl IntoIterator<Item = SubmissionRecord>,
    today: UtcDay,
    days: u32,
    warn_days: u32,
) -> (Vec<SubmissionRecord>, RetentionReport) {
    let cutoff = today.days_since_epoch() - days as i32;
    let mut report = RetentionReport::default();
    let mut doomed = Vec::new();
    for record in records {
        if record.state != RecordState::Stored {
            continue;
        }
        let day = record.day.days_since_epoch();
        if day < cutoff {
            doomed.push(record);
        } else if day < cutoff + warn_days as i32 {
            report.due_soon += 1;
            let due = UtcDay::from_days_since_epoch(day + days as i32 + 1);
            report.first_due = Some(report.first_due.map_or(due, |d: UtcDay| d.min(due)));
        }
    }
    report.deleted = doomed.len();
    (doomed, report)
}

/// The counts `status` shows.
pub fn status_of<'a>(
    records: impl IntoIterator<Item = &'a SubmissionRecord>,
    batches: impl IntoIterator<Item = &'a BatchRecord>,
) -> StoreStatus {
    let mut status = StoreStatus::default();
    for record in records {
        status.bytes += record.size;
        match record.state {
            RecordState::Stored => {
                status.stored += 1;
                status.oldest_waiting = Some(
                    status
                        .oldest_waiting
                        .map_or(record.day, |d: UtcDay| d.min(record.day)),
                );
            }
            RecordState::Exported { .. } | RecordState::Purging => status.exported += 1,
        }
    }
    status.undelivered_batches = batches.into_iter().filter(|b| !b.delivered).count();
    status
}

/// An urgent copy of `records` (sorted by id, no duplicates, none purging): its batch id is
/// derived from the ids and its day is the latest of theirs, so the same copy is the same bytes
/// on every request and says nothing the entries do not.
pub fn copy_manifest(records: Vec<SubmissionRecord>) -> ExportBatch {
    let ids: Vec<SubmissionId> = records.iter().map(|r| r.id).collect();
    let submissions: Vec<BundleEntry> = records.into_iter().map(|r| r.bundle_entry()).collect();
    let created = submissions
        .iter()
        .map(|e| e.day)
        .max()
        .unwrap_or_else(UtcDay::today);
    ExportBatch {
        manifest: BundleManifest {
            format: bundle::FORMAT.into(),
            batch: bundle::copy_batch_id(&ids),
            created,
            submissions,
            // A copy is matched with the chain when its batch arrives.
            chain: None,
        },
        resumed: false,
    }
}

/// A batch after a purge: it keeps the ids still `held` (so its bundle can be written again
/// without what is gone), marked partly purged; `None` when nothing is left.
pub fn after_purge(
    mut batch: BatchRecord,
    held: impl Fn(&SubmissionId) -> bool,
) -> Option<BatchRecord> {
    let before = batch.ids.len();
    batch.ids.retain(|id| held(id));
    if batch.ids.is_empty() {
        return None;
    }
    if batch.ids.len() != before {
        // Its segment went out with the copy whose receipt purged these; a bundle written again
        // now carries what is left, without a segment that would call them missing.
        batch.partly_purged = true;
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submission::Sealing;

    fn record(day: i32, state: RecordState, sequence: Option<u64>) -> SubmissionRecord {
        SubmissionRecord {
            id: SubmissionId::random(),
            day: UtcDay::from_days_since_epoch(day),
            size: 10,
            sha256: "00".repeat(32),
            sealing: Sealing::BySender,
            state,
            triage: None,
            sequence,
        }
    }

    #[test]
    fn selection_takes_unnumbered_first_then_everything_stored() {
        let old = record(1, RecordState::Stored, None);
        let new = record(2, RecordState::Stored, Some(1));
        let gone = record(2, RecordState::Purging, Some(2));
        let all = [old.clone(), new.clone(), gone];
        assert_eq!(
            export_selection(&all),
            ExportSelection::Unnumbered(vec![old.id])
        );
        assert_eq!(
            export_selection(&all[1..]),
            ExportSelection::Stored(vec![new.id])
        );
        assert_eq!(export_selection(&all[2..]), ExportSelection::Nothing);
    }

    #[test]
    fn retention_cuts_before_the_day_and_warns_within_the_period() {
        let today = UtcDay::from_days_since_epoch(100);
        let records = vec![
            record(89, RecordState::Stored, None), // 11 days old: gone with days = 10
            record(90, RecordState::Stored, None), // 10 days old: kept, due tomorrow
            record(95, RecordState::Stored, None), // due in 6 days: outside a 3-day warning
            record(
                80,
                RecordState::Exported {
                    batch: BatchId::random(),
                },
                None,
            ),
        ];
        let (doomed, report) = retention_split(records, today, 10, 3);
        assert_eq!(doomed.len(), 1);
        assert_eq!(doomed[0].day.days_since_epoch(), 89);
        assert_eq!(report.deleted, 1);
        assert_eq!(report.due_soon, 1);
        assert_eq!(report.first_due, Some(UtcDay::from_days_since_epoch(101)));
    }

    #[test]
    fn purge_refuses_another_batch_a_different_copy_and_the_unexported() {
        let batch = BatchId::random();
        let mut r = record(1, RecordState::Exported { batch }, None);
        let entry = r.clone().bundle_entry();
        assert_eq!(purge_refusal(&r, &entry, &batch), None);
        assert!(purge_refusal(&r, &entry, &BatchId::random())
            .is_some_and(|m| m.contains("another batch")));
        let mut other = entry.clone();
        other.size += 1;
        assert!(purge_refusal(&r, &other, &batch).is_some_and(|m| m.contains("differs")));
        r.state = RecordState::Stored;
        assert!(purge_refusal(&r, &entry, &batch).is_some_and(|m| m.contains("never")));
    }

    #[test]
    fn a_batch_keeps_what_is_held_and_goes_when_nothing_is() {
        let ids = vec![SubmissionId::random(), SubmissionId::random()];
        let batch = BatchRecord {
            batch: BatchId::random(),
            created: UtcDay::from_days_since_epoch(3),
            ids: ids.clone(),
            delivered: true,
            chain: None,
            partly_purged: false,
        };
        let kept = after_purge(batch.clone(), |id| *id == ids[0]).expect("one left");
        assert_eq!(kept.ids, vec![ids[0]]);
        assert!(kept.partly_purged);
        assert!(
            !after_purge(batch.clone(), |_| true)
                .expect("all")
                .partly_purged
        );
        assert!(after_purge(batch, |_| false).is_none());
    }
}
