//! The one test story every [`SubmissionBackend`] must pass (`docs/store-v1.md`, section 2).
//!
//! Each story is a function over a [`StoreUnderTest`], which opens the same store again and
//! again (a restart is: drop it, open it). [`crate::backend_stories!`] makes one `#[test]` per
//! story: the embedded store runs them in its unit tests, the object store against a real
//! three-node Garage in the integration tests.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::Arc;

use super::{RecordState, SubmissionBackend, SubmissionRecord};
use crate::submission::{Sealing, SubmissionId, UtcDay};

/// A store the stories can open, close and open again.
pub trait StoreUnderTest {
    /// Opens the store (made empty the first time); dropping what it returns closes it.
    fn open(&self) -> Arc<dyn SubmissionBackend>;
}

/// Commits `bytes` with a triage envelope; returns the durable record.
pub fn commit(store: &dyn SubmissionBackend, bytes: &[u8]) -> SubmissionRecord {
    let mut incoming = store.begin(Some(bytes.len() as u64)).expect("begin");
    incoming.write_all(bytes).expect("spool");
    store
        .commit_with(incoming, Sealing::BySender, Some(b"triage-envelope"), None)
        .expect("commit")
}

/// Reads a stored ciphertext whole, in 64 KiB reads.
pub fn read_back(store: &dyn SubmissionBackend, id: &SubmissionId) -> Vec<u8> {
    let mut reader = store.open_sealed(id).expect("open sealed");
    let mut out = Vec::new();
    let mut piece = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut piece).expect("read");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&piece[..n]);
    }
}

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// What is acknowledged is read back byte for byte, with its record, after a restart too.
pub fn commit_then_read_back_and_restart_keeps_it(t: &dyn StoreUnderTest) {
    let body = bytes(1, 300_000);
    let id = {
        let store = t.open();
        let record = commit(&*store, &body);
        assert_eq!(record.size, body.len() as u64);
        assert_eq!(record.day, UtcDay::today());
        assert_eq!(record.state, RecordState::Stored);
        assert!(record.triage.is_some(), "the triage envelope is kept");
        assert_eq!(read_back(&*store, &record.id), body);
        record.id
    };
    let store = t.open();
    let record = store.get(&id).expect("get").expect("kept across a restart");
    assert_eq!(record.size, body.len() as u64);
    assert_eq!(read_back(&*store, &id), body);
    assert!(store.open_sealed(&SubmissionId::random()).is_err());
    assert_eq!(store.status().expect("status").stored, 1);
}

/// A large submission streams in and out; its SHA-256 is the record's.
pub fn a_large_submission_streams_through(t: &dyn StoreUnderTest) {
    let store = t.open();
    let body = bytes(2, 20 * 1024 * 1024);
    let mut incoming = store.begin(None).expect("begin");
    for piece in body.chunks(1 << 20) {
        incoming.write_all(piece).expect("spool");
    }
    let record = store
        .commit_with(incoming, Sealing::BySender, None, None)
        .expect("commit");
    let back = read_back(&*store, &record.id);
    assert_eq!(back.len(), body.len());
    assert!(back == body, "the stored ciphertext differs");
    let hashed = crate::hashing::hash_stream(&back[..]).expect("hash");
    assert_eq!(hashed.sha256, record.sha256);
}

/// A batch is fixed once: asked again before delivery it is the same batch, written twice
/// identically; what arrives meanwhile waits for the next one; nothing is in two batches.
pub fn an_export_is_fixed_once_and_written_again_identically(t: &dyn StoreUnderTest) {
    let store = t.open();
    let first: Vec<SubmissionId> = (0..3)
        .map(|i| commit(&*store, &bytes(i, 1000)).id)
        .collect();
    let batch = store.begin_export().expect("export").expect("a batch");
    assert!(!batch.resumed);
    let mut in_batch: Vec<SubmissionId> = batch.manifest.submissions.iter().map(|e| e.id).collect();
    in_batch.sort();
    let mut expected = first.clone();
    expected.sort();
    assert_eq!(in_batch, expected);
    let late = commit(&*store, &bytes(9, 1000)).id;
    let again = store
        .begin_export()
        .expect("export")
        .expect("the same batch");
    assert!(again.resumed);
    assert_eq!(again.manifest.batch, batch.manifest.batch);
    let (mut one, mut two) = (Vec::new(), Vec::new());
    store.write_export(&batch, &mut one).expect("write");
    store.write_export(&again, &mut two).expect("write again");
    assert!(
        one == two && !one.is_empty(),
        "a bundle written again must be identical"
    );
    store
        .complete_export(&batch.manifest.batch)
        .expect("complete");
    drop(store);
    let store = t.open();
    let next = store.begin_export().expect("export").expect("the late one");
    assert_ne!(next.manifest.batch, batch.manifest.batch);
    let ids: Vec<SubmissionId> = next.manifest.submissions.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![late]);
    let status = store.status().expect("status");
    assert_eq!((status.stored, status.exported), (0, 4));
    assert_eq!(status.undelivered_batches, 1);
    assert_eq!(
        store
            .export_batch(&batch.manifest.batch)
            .expect("old batch")
            .manifest
            .submissions
            .len(),
        3
    );
}

/// Purge deletes only what the receipt confirms and the bundle holds byte for byte.
pub fn a_purge_needs_the_receipt_and_the_same_copy(t: &dyn StoreUnderTest) {
    let store = t.open();
    let a = commit(&*store, &bytes(3, 500)).id;
    let b = commit(&*store, &bytes(4, 500)).id;
    let batch = store.begin_export().expect("export").expect("batch");
    store
        .complete_export(&batch.manifest.batch)
        .expect("complete");
    let mut forged = batch.manifest.clone();
    forged.batch = crate::submission::BatchId::random();
    let report = store
        .purge(&forged, &[a, b].into_iter().collect())
        .expect("purge of a forged batch");
    assert!(report.purged.is_empty());
    assert_eq!(report.refused.len(), 2);
    let report = store
        .purge(&batch.manifest, &[a].into_iter().collect::<HashSet<_>>())
        .expect("purge");
    assert_eq!(report.purged, vec![a]);
    assert_eq!(report.refused.len(), 1);
    assert!(store.get(&a).expect("get").is_none());
    assert!(store.open_sealed(&a).is_err());
    drop(store);
    let store = t.open();
    assert!(store.get(&a).expect("get").is_none(), "purged stays purged");
    assert!(
        store.get(&b).expect("get").is_some(),
        "the unopened one is kept"
    );
    let report = store
        .purge(&batch.manifest, &[a, b].into_iter().collect())
        .expect("purge the rest");
    assert_eq!(report.purged, vec![b]);
    assert_eq!(report.already_gone, vec![a]);
    assert!(store.batches().expect("batches").is_empty());
    assert_eq!(store.status().expect("status"), Default::default());
}

/// Retention deletes only never-exported submissions past the cut-off, and warns before.
pub fn retention_cuts_only_the_unexported_past_the_day(t: &dyn StoreUnderTest) {
    let store = t.open();
    let exported = commit(&*store, &bytes(5, 100)).id;
    store.begin_export().expect("export").expect("batch");
    let waiting = commit(&*store, &bytes(6, 100)).id;
    let today = UtcDay::today().days_since_epoch();
    let report = store
        .apply_retention(UtcDay::from_days_since_epoch(today + 9), 10, 3)
        .expect("retention");
    assert_eq!((report.deleted, report.due_soon), (0, 1));
    assert!(store.get(&waiting).expect("get").is_some());
    let report = store
        .apply_retention(UtcDay::from_days_since_epoch(today + 11), 10, 3)
        .expect("retention");
    assert_eq!(report.deleted, 1);
    assert!(store.get(&waiting).expect("get").is_none());
    assert!(store.open_sealed(&waiting).is_err());
    assert!(
        store.get(&exported).expect("get").is_some(),
        "exported is kept"
    );
    drop(store);
    assert!(t.open().get(&waiting).expect("get").is_none());
}

/// An urgent copy is recorded nowhere: its submissions still go out with their batch.
pub fn a_copy_is_recorded_nowhere(t: &dyn StoreUnderTest) {
    let store = t.open();
    let a = commit(&*store, &bytes(7, 2000)).id;
    let copy = store.copy_of(&[a, a]).expect("copy");
    assert_eq!(copy.manifest.submissions.len(), 1);
    let again = store.copy_of(&[a]).expect("same copy");
    assert_eq!(copy.manifest.batch, again.manifest.batch);
    assert!(store.copy_of(&[SubmissionId::random()]).is_err());
    let batch = store.begin_export().expect("export").expect("batch");
    assert_eq!(batch.manifest.submissions[0].id, a);
}

/// One `#[test]` per story, for a `StoreUnderTest` made by `$make`.
#[macro_export]
macro_rules! backend_stories {
    ($make:expr) => {
        $crate::backend_stories!(@each $make;
            commit_then_read_back_and_restart_keeps_it,
            a_large_submission_streams_through,
            an_export_is_fixed_once_and_written_again_identically,
            a_purge_needs_the_receipt_and_the_same_copy,
            retention_cuts_only_the_unexported_past_the_day,
            a_copy_is_recorded_nowhere);
    };
    (@each $make:expr; $($story:ident),*) => {
        $(
            #[test]
            fn $story() {
                let under_test = $make;
                $crate::store::backend_story::$story(&under_test);
            }
        )*
    };
}
