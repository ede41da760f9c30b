use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

use super::*;
use crate::bundle::BundleEntry;

fn options(quota: Option<u64>, max: u64) -> StoreOptions {
    StoreOptions {
        quota_bytes: quota,
        limits: IncomingLimits {
            max_bytes: max,
            min_free_bytes: 0,
        },
        spare_files: 16,
    }
}

/// Opens a store, waiting out the lock of one dropped a moment ago in this process (sled's
/// background thread releases it asynchronously).
fn reopen(dir: &Path, options: StoreOptions) -> Result<(SubmissionStore, Recovery), StoreError> {
    for _ in 0..100 {
        match SubmissionStore::open(dir, options) {
            Err(StoreError::Locked(_)) => std::thread::sleep(std::time::Duration::from_millis(20)),
            other => return other,
        }
    }
    SubmissionStore::open(dir, options)
}

fn open(dir: &Path) -> SubmissionStore {
    reopen(dir, options(None, 1 << 20)).expect("open").0
}

fn put(store: &SubmissionStore, bytes: &[u8]) -> SubmissionRecord {
    let mut incoming = store.begin(Some(bytes.len() as u64)).expect("begin");
    incoming.write_all(bytes).expect("write");
    store
        .commit(incoming, Sealing::BySender, None)
        .expect("commit")
}

fn read_sealed(store: &SubmissionStore, id: &SubmissionId) -> Vec<u8> {
    let mut out = Vec::new();
    io::Read::read_to_end(&mut store.open_sealed(id).expect("open"), &mut out).expect("read");
    out
}

fn export_all(store: &SubmissionStore) -> (BundleManifest, Vec<u8>) {
    let batch = store.begin_export().expect("export").expect("something");
    let bytes = store.write_export(&batch, Vec::new()).expect("write");
    store
        .complete_export(&batch.manifest.batch)
        .expect("complete");
    (batch.manifest, bytes)
}

/// Every submission of a bundle, as a receipt that says all were opened would list them.
fn opened(manifest: &BundleManifest) -> HashSet<SubmissionId> {
    manifest.submissions.iter().map(|e| e.id).collect()
}

#[test]
fn commit_keeps_bytes_day_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let record = put(&store, b"ciphertext one");
    assert_eq!(record.size, 14);
    assert_eq!(record.day, UtcDay::today());
    assert_eq!(read_sealed(&store, &record.id), b"ciphertext one");
    assert_eq!(store.get(&record.id).expect("get"), Some(record.clone()));
    assert_eq!(store.usage().stored(), 14);
    // The file's times are the start of the day, not the moment of arrival.
    let meta =
        fs::metadata(dir.path().join("sealed").join(format!("{}.pgp", record.id))).expect("meta");
    assert_eq!(meta.mtime() % 86_400, 0);
    assert_eq!(meta.atime() % 86_400, 0);
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(
        fs::metadata(dir.path()).expect("meta").mode() & 0o777,
        0o700
    );
    // The spool is empty again.
    assert_eq!(
        fs::read_dir(dir.path().join("incoming"))
            .expect("ls")
            .count(),
        0
    );
}

#[test]
fn records_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids: Vec<_> = {
        let store = open(dir.path());
        (0..5u8).map(|i| put(&store, &[i; 100]).id).collect()
    };
    let store = open(dir.path());
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(read_sealed(&store, id), vec![i as u8; 100]);
    }
    assert_eq!(store.usage().stored(), 500);
}

#[test]
fn a_second_process_is_refused_while_the_store_is_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = open(dir.path());
    match SubmissionStore::open(dir.path(), StoreOptions::default()) {
        Err(StoreError::Locked(_)) => {}
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("opened twice"),
    }
}

#[test]
fn limits_and_quota_refuse_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) =
        SubmissionStore::open(dir.path(), options(Some(3 * 1024 * 1024), 2 * 1024 * 1024))
            .expect("open");
    assert!(matches!(
        store.begin(Some(3 * 1024 * 1024)),
        Err(StoreError::TooLarge { .. })
    ));
    // Streaming past the limit without an announced size.
    let mut incoming = store.begin(None).expect("begin");
    let chunk = vec![0u8; 64 * 1024];
    let mut failed = false;
    for _ in 0..40 {
        if incoming.write_all(&chunk).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed);
    assert!(matches!(
        incoming.fault(),
        Some(StoreError::TooLarge { .. })
    ));
    drop(incoming);

    put(&store, &vec![1u8; 2 * 1024 * 1024]);
    // 1 MiB left under the quota: 2 MiB does not fit, 1 MiB exactly does.
    assert!(matches!(
        store.begin(Some(2 * 1024 * 1024)),
        Err(StoreError::QuotaExceeded)
    ));
    let mut incoming = store.begin(None).expect("begin");
    let err = incoming.write_all(&vec![2u8; 1024 * 1024 + 1]);
    assert!(err.is_err());
    assert!(matches!(incoming.fault(), Some(StoreError::QuotaExceeded)));
    drop(incoming);
    put(&store, &vec![3u8; 1024 * 1024]);
    assert_eq!(store.usage().stored(), 3 * 1024 * 1024);
    // Nothing was left behind by the refused ones.
    assert_eq!(
        fs::read_dir(dir.path().join("incoming"))
            .expect("ls")
            .count(),
        0
    );
    assert_eq!(store.records().expect("records").len(), 2);
}

#[test]
fn export_then_purge_removes_exactly_the_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let a = put(&store, b"aaaa");
    let b = put(&store, b"bbbb");
    let (manifest, bytes) = export_all(&store);
    assert_eq!(manifest.submissions.len(), 2);
    // Exported ones are not exported again; new ones go into the next batch.
    let c = put(&store, b"cccc");
    let (second, _) = export_all(&store);
    assert_eq!(
        second.submissions.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![c.id]
    );
    assert!(store.begin_export().expect("export").is_none());

    // The bundle carries the exact bytes.
    let mut seen = Vec::new();
    bundle::read_bundle(&bytes[..], |_, entry, data| {
        let mut buf = Vec::new();
        io::Read::read_to_end(data, &mut buf).expect("read");
        data.finish().expect("intact");
        seen.push((entry.id, buf));
    })
    .expect("read bundle");
    seen.sort();
    let mut expected = vec![(a.id, b"aaaa".to_vec()), (b.id, b"bbbb".to_vec())];
    expected.sort();
    assert_eq!(seen, expected);

    let report = store.purge(&manifest, &opened(&manifest)).expect("purge");
    assert_eq!(report.purged.len(), 2);
    assert!(report.refused.is_empty());
    assert!(store.get(&a.id).expect("get").is_none());
    assert!(store.open_sealed(&a.id).is_err());
    assert!(store.get(&c.id).expect("get").is_some());
    assert_eq!(store.usage().stored(), 4);
    // Purging again is harmless.
    let again = store.purge(&manifest, &opened(&manifest)).expect("purge");
    assert_eq!(again.already_gone.len(), 2);
}

#[test]
fn purge_refuses_what_the_bundle_does_not_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let a = put(&store, b"aaaa");
    let (manifest, _) = export_all(&store);
    let b = put(&store, b"bbbb");
    let mut forged = manifest.clone();
    forged.submissions[0].sha256 = "0".repeat(64);
    forged.submissions.push(BundleEntry {
        id: b.id,
        day: b.day,
        size: b.size,
        sha256: b.sha256.clone(),
        sealing: b.sealing,
    });
    let report = store.purge(&forged, &opened(&forged)).expect("purge");
    assert!(report.purged.is_empty());
    assert_eq!(report.refused.len(), 2);
    assert!(store.get(&a.id).expect("get").is_some());
    assert!(store.get(&b.id).expect("get").is_some());
}

#[test]
fn an_interrupted_export_is_resumed_with_the_same_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = {
        let store = open(dir.path());
        put(&store, b"one");
        put(&store, b"two");
        // Begun but never completed (the process died while writing the bundle).
        store
            .begin_export()
            .expect("export")
            .expect("batch")
            .manifest
    };
    let store = open(dir.path());
    put(&store, b"three");
    let resumed = store.begin_export().expect("export").expect("batch");
    assert!(resumed.resumed);
    assert_eq!(resumed.manifest, first);
    store
        .complete_export(&resumed.manifest.batch)
        .expect("complete");
    let next = store.begin_export().expect("export").expect("batch");
    assert!(!next.resumed);
    assert_eq!(next.manifest.submissions.len(), 1);
}

#[test]
fn an_interrupted_purge_is_finished_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let store = open(dir.path());
        let record = put(&store, b"gone soon");
        let mut purging = record.clone();
        purging.state = RecordState::Purging;
        store
            .index()
            .records
            .insert(record.id.as_bytes(), purging.encode())
            .expect("insert");
        store.index().commit.sync().expect("sync");
        record.id
    };
    let (store, recovery) = reopen(dir.path(), StoreOptions::default()).expect("open");
    assert_eq!(recovery.purges_finished, 1);
    assert!(store.get(&id).expect("get").is_none());
    assert!(!dir.path().join("sealed").join(format!("{id}.pgp")).exists());
}

#[test]
fn leftovers_are_cleaned_and_orphans_adopted() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()));
    fs::write(dir.path().join("incoming").join("x.part"), b"half a report").expect("write");
    let orphan = SubmissionId::random();
    fs::write(
        dir.path().join("sealed").join(format!("{orphan}.pgp")),
        b"whole",
    )
    .expect("write");
    let (store, recovery) = reopen(dir.path(), StoreOptions::default()).expect("open");
    assert_eq!(recovery.spool_files_removed, 1);
    assert_eq!(recovery.orphans_adopted, vec![orphan]);
    let record = store.get(&orphan).expect("get").expect("adopted");
    assert_eq!(record.size, 5);
    assert_eq!(store.usage().stored(), 5);
    // Held, so in the chain: it goes out in a batch with its segment like any other.
    assert_eq!(record.sequence, Some(1));
    let (manifest, _) = export_all(&store);
    let segment = manifest.chain.expect("segment");
    assert_eq!(segment.entries[0].entry.id, orphan);
    assert_eq!(segment.entries[0].fate, Fate::InBundle);
}

#[test]
fn a_damaged_store_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = {
        let store = open(dir.path());
        (put(&store, b"aaaa").id, put(&store, b"bbbb").id)
    };
    fs::remove_file(dir.path().join("sealed").join(format!("{a}.pgp"))).expect("rm");
    fs::write(dir.path().join("sealed").join(format!("{b}.pgp")), b"b").expect("truncate");
    fs::write(dir.path().join("sealed").join("notes.txt"), b"?").expect("write");
    match reopen(dir.path(), StoreOptions::default()) {
        Err(StoreError::Integrity(problems)) => {
            let text = problems.join("\n");
            assert!(text.contains(&a.to_string()), "{text}");
            assert!(
                text.contains(&format!("{b}: ciphertext is 1 bytes")),
                "{text}"
            );
            assert!(text.contains("notes.txt"), "{text}");
        }
        Err(other) => panic!("expected an integrity error, got {other}"),
        Ok(_) => panic!("a damaged store was opened"),
    }
}

#[test]
fn a_future_store_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()));
    {
        let db = (0..100)
            .find_map(|_| {
                let current =
                    fs::read_to_string(dir.path().join("index.current")).expect("pointer");
                sled::open(dir.path().join(current.trim()))
                    .ok()
                    .or_else(|| {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        None
                    })
            })
            .expect("sled");
        db.insert(FORMAT_KEY, &b"resguardo.store/9"[..])
            .expect("insert");
        db.flush().expect("flush");
    }
    match reopen(dir.path(), StoreOptions::default()) {
        Err(StoreError::UnsupportedFormat { found }) => assert_eq!(found, "resguardo.store/9"),
        Err(other) => panic!("expected UnsupportedFormat, got {other}"),
        Ok(_) => panic!("opened a future store"),
    }
}

#[test]
fn concurrent_commits_share_flushes_and_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| put(&store, &[t as u8, i as u8]).id)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(ids.len(), 80);
    assert_eq!(store.records().expect("records").len(), 80);
}

/// Back-dates a record, as if it had arrived `days` ago.
fn age(store: &SubmissionStore, id: &SubmissionId, days: i32) {
    let mut record = store.get(id).expect("get").expect("record");
    record.day = UtcDay::from_days_since_epoch(UtcDay::today().days_since_epoch() - days);
    store
        .index()
        .records
        .insert(id.as_bytes(), record.encode())
        .expect("insert");
}

#[test]
fn retention_deletes_old_unexported_submissions_and_warns_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let exported_old = put(&store, b"exported").id;
    let (_, _) = export_all(&store);
    let old = put(&store, b"old").id;
    let soon = put(&store, b"soon").id;
    let fresh = put(&store, b"fresh").id;
    age(&store, &old, 31);
    age(&store, &exported_old, 40);
    age(&store, &soon, 29);
    let report = store
        .apply_retention(UtcDay::today(), 30, 2)
        .expect("retention");
    assert_eq!(report.deleted, 1);
    assert_eq!(report.due_soon, 1);
    assert!(store.get(&old).expect("get").is_none());
    assert!(store.open_sealed(&old).is_err());
    assert!(
        store.get(&exported_old).expect("get").is_some(),
        "exported ones wait for purge"
    );
    assert!(store.get(&soon).expect("get").is_some());
    assert!(store.get(&fresh).expect("get").is_some());
    assert_eq!(
        report.first_due,
        Some(UtcDay::from_days_since_epoch(
            UtcDay::today().days_since_epoch() + 2
        ))
    );
}

#[test]
fn sweeping_keeps_day_times_and_unifies_change_times() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let a = put(&store, b"a").id;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = put(&store, b"b").id;
    let meta = |id: &SubmissionId| {
        fs::metadata(dir.path().join("sealed").join(format!("{id}.pgp"))).expect("meta")
    };
    assert_ne!(
        meta(&a).ctime(),
        meta(&b).ctime(),
        "arrival times differ before"
    );
    assert!(store.sweep_times().expect("sweep") >= 2);
    assert_eq!(meta(&a).ctime(), meta(&b).ctime(), "one change time after");
    assert_eq!(meta(&a).mtime() % 86_400, 0);
}

#[test]
fn purge_keeps_what_the_receipt_does_not_list_as_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let a = put(&store, b"aaaa");
    let b = put(&store, b"bbbb");
    let (manifest, _) = export_all(&store);
    let only_a: HashSet<SubmissionId> = [a.id].into_iter().collect();
    let report = store.purge(&manifest, &only_a).expect("purge");
    assert_eq!(report.purged, vec![a.id]);
    assert_eq!(report.refused.len(), 1);
    assert_eq!(report.refused[0].0, b.id);
    assert!(
        report.refused[0].1.contains("receipt"),
        "{:?}",
        report.refused
    );
    assert!(store.get(&b.id).expect("get").is_some());
}

/// Regression: a batch purged in part could no longer be written (its manifest named a purged
/// submission as missing), which stopped `fetch --batch` and, for an undelivered batch, every
/// later export.
#[test]
fn a_batch_purged_in_part_is_written_again_with_what_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let a = put(&store, b"aaaa");
    let b = put(&store, b"bbbb");
    // Begun, not delivered (the courier's last request failed).
    let begun = store.begin_export().expect("export").expect("a batch");
    let only_a: HashSet<SubmissionId> = [a.id].into_iter().collect();
    store.purge(&begun.manifest, &only_a).expect("purge");
    let again = store
        .export_batch(&begun.manifest.batch)
        .expect("the batch is still written");
    let ids: Vec<SubmissionId> = again.manifest.submissions.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![b.id]);
    let resumed = store
        .begin_export()
        .expect("export")
        .expect("the batch again");
    assert_eq!(resumed.manifest.batch, begun.manifest.batch);
    store
        .write_export(&resumed, Vec::new())
        .expect("its bundle");
}

/// Every byte of every regular file under `dir`.
fn data_dir_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("ls") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("meta");
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                out.push((path.clone(), fs::read(&path).expect("read")));
            }
        }
    }
    out
}

fn found_in(files: &[(PathBuf, Vec<u8>)], needle: &[u8]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(p, _)| p.clone())
        .collect()
}

/// The needles a seized disk must not show for a deleted record.
fn traces(record: &SubmissionRecord) -> Vec<Vec<u8>> {
    vec![
        record.id.to_string().into_bytes(),
        record.id.as_bytes().to_vec(),
        record.sha256.clone().into_bytes(),
        format!("\"size\":{}", record.size).into_bytes(),
    ]
}

fn assert_no_trace(files: &[(PathBuf, Vec<u8>)], record: &SubmissionRecord) {
    for needle in traces(record) {
        let hits = found_in(files, &needle);
        assert!(
            hits.is_empty(),
            "{} still readable in {hits:?}",
            String::from_utf8_lossy(&needle)
        );
    }
}

/// A seized disk after a purge and a retention pass: nothing of the purged records (their chain
/// entries are pruned to leaf and hash); the one retention deleted unexported stays in the chain,
/// marked removed, until a bundle has reported it and that batch is purged too.
#[test]
fn purge_and_retention_leave_no_trace_of_the_deleted_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let purged: Vec<SubmissionRecord> = (0..5u8)
        .map(|i| put(&store, &vec![i; 1000 + usize::from(i) * 7]))
        .collect();
    let (manifest, _) = export_all(&store);
    let expired = put(&store, b"never exported");
    age(&store, &expired.id, 40);
    let kept = put(&store, b"kept");
    // Before: the index knows them all.
    let before = data_dir_bytes(dir.path());
    assert!(!found_in(&before, purged[0].sha256.as_bytes()).is_empty());
    let report = store.purge(&manifest, &opened(&manifest)).expect("purge");
    assert_eq!(report.purged.len(), 5);
    let after_purge = data_dir_bytes(dir.path());
    for record in &purged {
        assert_no_trace(&after_purge, record);
    }
    // Their entries are pruned to leaf and hash; the chain still adds up.
    for n in 1..=5 {
        let stored = chain::entry(&store.index().chain, n)
            .expect("read")
            .expect("entry");
        assert_eq!(stored.entry(n), None, "entry {n} keeps only leaf and hash");
    }
    assert_eq!(store.chain_view(0).expect("view").leaves.len(), 7);
    assert_eq!(
        store
            .apply_retention(UtcDay::today(), 30, 0)
            .expect("retention")
            .deleted,
        1
    );
    assert_eq!(store.get(&expired.id).expect("get"), None);
    // Still in the chain, marked removed today, for the next bundle to report.
    let n = expired.sequence.expect("numbered");
    let stored = chain::entry(&store.index().chain, n)
        .expect("read")
        .expect("entry");
    assert_eq!(stored.id, Some(expired.id));
    assert_eq!(stored.removed, Some(UtcDay::today()));
    let (second, _) = export_all(&store);
    let segment = second.chain.clone().expect("a segment");
    let fates: Vec<(u64, Fate)> = segment
        .entries
        .iter()
        .map(|e| (e.entry.sequence, e.fate))
        .collect();
    assert_eq!(
        fates,
        vec![
            (
                n,
                Fate::RemovedUnexported {
                    removed: UtcDay::today()
                }
            ),
            (kept.sequence.expect("numbered"), Fate::InBundle),
        ]
    );
    let later = put(&store, b"later");
    store.purge(&second, &opened(&second)).expect("purge");
    let after = data_dir_bytes(dir.path());
    for record in purged.iter().chain([&expired, &kept]) {
        assert_no_trace(&after, record);
    }
    // The expired one's day (40 days ago) is nobody else's: it must be gone too.
    let aged = UtcDay::from_days_since_epoch(UtcDay::today().days_since_epoch() - 40);
    let hits = found_in(&after, format!("\"day\":\"{aged}\"").as_bytes());
    assert!(
        hits.is_empty(),
        "the expired day is still readable in {hits:?}"
    );
    // What is kept is still there, and survives a reopen, chain and all.
    assert!(!found_in(&after, later.id.to_string().as_bytes()).is_empty());
    let head = store.chain_head().expect("head");
    assert_eq!(head.sequence, 8);
    drop(store);
    let (store, _) = reopen(dir.path(), options(None, 1 << 20)).expect("reopen");
    assert_eq!(store.records().expect("records").len(), 1);
    assert_eq!(read_sealed(&store, &later.id), b"later");
    assert_eq!(store.chain_head().expect("head"), head);
}

#[test]
fn uploads_are_written_into_spares_made_before_they_arrived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let pool_inodes: HashSet<u64> = fs::read_dir(dir.path().join("pool"))
        .expect("ls")
        .map(|e| e.expect("entry").metadata().expect("meta").ino())
        .collect();
    assert!(pool_inodes.len() >= 16);
    let made = std::time::SystemTime::now();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let records: Vec<SubmissionRecord> = (0..6u8).map(|i| put(&store, &[i; 10])).collect();
    // A refused upload gives its file back, emptied.
    drop(store.begin(None).expect("begin"));
    for record in &records {
        let meta = fs::metadata(dir.path().join("sealed").join(format!("{}.pgp", record.id)))
            .expect("meta");
        assert!(pool_inodes.contains(&meta.ino()), "a new inode was made");
        let born = meta.created().expect("btime");
        assert!(born < made, "born after the store was opened");
    }
    let spares: HashSet<u64> = fs::read_dir(dir.path().join("pool"))
        .expect("ls")
        .map(|e| e.expect("entry").metadata().expect("meta").ino())
        .collect();
    assert_eq!(spares.len() + records.len(), pool_inodes.len());
    assert_eq!(
        fs::read_dir(dir.path().join("incoming"))
            .expect("ls")
            .count(),
        0
    );
    // Purged files go back to the pool too.
    let (manifest, _) = export_all(&store);
    store.purge(&manifest, &opened(&manifest)).expect("purge");
    assert_eq!(
        fs::read_dir(dir.path().join("pool")).expect("ls").count(),
        pool_inodes.len()
    );
}

#[test]
fn conversations_start_with_their_report_take_replies_once_and_expire_without_trace() {
    use crate::replies::{Locator, BOX_BYTES};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let locator = Locator([7; 32]);
    let sealed_box = vec![0x5a; BOX_BYTES];
    let mut incoming = store.begin(Some(4)).expect("begin");
    incoming.write_all(b"aaaa").expect("write");
    let record = store
        .commit_with(
            incoming,
            Sealing::BySender,
            None,
            Some((&locator, &sealed_box)),
        )
        .expect("commit");
    let conversation = store
        .conversation(&locator)
        .expect("read")
        .expect("started");
    assert_eq!(conversation.box_bytes(), sealed_box);
    assert!(
        !String::from_utf8_lossy(&serde_json::to_vec(&conversation).unwrap())
            .contains(&record.id.to_string()),
        "no submission id in the conversation"
    );
    // The same locator again: refused, and the submission that carried it is not stored.
    let mut again = store.begin(Some(4)).expect("begin");
    again.write_all(b"bbbb").expect("write");
    assert!(matches!(
        store.commit_with(
            again,
            Sealing::BySender,
            None,
            Some((&locator, &sealed_box))
        ),
        Err(StoreError::ConversationExists)
    ));
    assert_eq!(store.records().expect("records").len(), 1);

    let canary = b"CANARY-REPLY-CIPHERTEXT-1b2c";
    assert_eq!(
        store.add_reply(&locator, canary).unwrap(),
        ReplyAdded::Stored(1)
    );
    assert_eq!(
        store.add_reply(&locator, canary).unwrap(),
        ReplyAdded::AlreadyStored(1)
    );
    assert_eq!(
        store.add_reply(&locator, b"second").unwrap(),
        ReplyAdded::Stored(2)
    );
    assert!(matches!(
        store.add_reply(&Locator([8; 32]), b"x"),
        Err(StoreError::ConversationNotFound)
    ));
    let replies = store.replies(&locator).expect("replies");
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0].message, canary);
    // Bounded in bytes as well as in number: what a check-in answers stays readable.
    let big = vec![0x42; 12 * 1024 * 1024];
    for n in 0..2u8 {
        let mut reply = big.clone();
        reply[0] = n;
        assert!(matches!(
            store.add_reply(&locator, &reply),
            Ok(ReplyAdded::Stored(_))
        ));
    }
    let mut over = big.clone();
    over[0] = 9;
    assert!(matches!(
        store.add_reply(&locator, &over),
        Err(StoreError::ConversationFull)
    ));
    assert_eq!(store.replies(&locator).expect("replies").len(), 4);

    // Kept while recent; gone (with its replies, from every file) once quiet for long enough.
    let today = UtcDay::today();
    assert_eq!(store.expire_conversations(today, 180).unwrap(), 0);
    let later = UtcDay::from_days_since_epoch(today.days_since_epoch() + 181);
    assert_eq!(store.expire_conversations(later, 180).unwrap(), 1);
    assert!(store.conversation(&locator).unwrap().is_none());
    drop(store);
    let files = data_dir_bytes(dir.path());
    assert!(
        found_in(&files, canary).is_empty(),
        "{:?}",
        found_in(&files, canary)
    );
}

// The chain (docs/trust-v1.md, part 2).

/// Every chain entry as the store keeps it, 1 to the head.
fn stored_chain(store: &SubmissionStore) -> Vec<(u64, chain::StoredEntry)> {
    let head = store.chain_head().expect("head").sequence;
    let index = store.index();
    chain::entries(&index.chain, 1, head)
        .collect::<Result<_, _>>()
        .expect("entries")
}

/// The chain from genesis, as a courier sees it, checked with the couriers' own rule.
fn courier_check(store: &SubmissionStore, seen: ChainPoint) -> ChainPoint {
    let view = store.chain_view(seen.sequence).expect("view");
    crate::trust::chain::extends(&seen, &view).expect("the chain extends what was seen")
}

#[test]
fn numbers_are_contiguous_under_concurrent_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    let handles: Vec<_> = (0..8u8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..20u8)
                    .map(|i| put(&store, &[t, i, 7]))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let records: Vec<SubmissionRecord> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    let mut numbers: Vec<u64> = records
        .iter()
        .map(|r| r.sequence.expect("numbered"))
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=160).collect::<Vec<u64>>(), "1..n, none twice");
    let head = store.chain_head().expect("head");
    assert_eq!(head.sequence, 160);
    // Each entry names its own submission, and the hashes lead to the head.
    let by_number: std::collections::HashMap<u64, &SubmissionRecord> = records
        .iter()
        .map(|r| (r.sequence.expect("numbered"), r))
        .collect();
    for (n, stored) in stored_chain(&store) {
        let record = by_number[&n];
        let entry = stored.entry(n).expect("not pruned");
        assert_eq!(
            (entry.id, &entry.sha256, entry.day),
            (record.id, &record.sha256, record.day)
        );
        assert_eq!(
            store.get(&record.id).expect("get").expect("held").sequence,
            Some(n)
        );
    }
    assert_eq!(courier_check(&store, ChainPoint::GENESIS), head);
}

#[test]
fn the_courier_view_starts_anywhere_and_refuses_beyond_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let empty = store.chain_view(0).expect("view");
    assert_eq!(empty.head, ChainPoint::GENESIS);
    assert!(empty.leaves.is_empty() && empty.complete);
    for i in 0..5u8 {
        put(&store, &[i; 3]);
    }
    let seen_at_2 = {
        let mut view = store.chain_view(0).expect("view");
        view.leaves.truncate(2);
        view.complete = false;
        crate::trust::chain::extends(&ChainPoint::GENESIS, &view).expect("first two")
    };
    let view = store.chain_view(2).expect("view");
    assert_eq!(view.since, seen_at_2, "H(2) as a courier computed it");
    assert_eq!(view.leaves.len(), 3);
    assert_eq!(
        crate::trust::chain::extends(&seen_at_2, &view).expect("extends"),
        store.chain_head().expect("head")
    );
    assert!(store.chain_view(5).expect("at the head").leaves.is_empty());
    match store.chain_view(6) {
        Err(StoreError::ChainBehind { asked: 6, head: 5 }) => {}
        other => panic!("expected ChainBehind, got {other:?}"),
    }
}

#[test]
fn the_index_rewrite_and_a_reopen_keep_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    for i in 0..4u8 {
        put(&store, &[i; 10]);
    }
    let (first, _) = export_all(&store);
    let late = put(&store, b"late");
    let before = stored_chain(&store);
    let head = store.chain_head().expect("head");
    store.rewrite_index().expect("rewrite");
    assert_eq!(stored_chain(&store), before);
    assert_eq!(store.chain_head().expect("head"), head);
    // Where the last segment ended survives too: the next batch starts there.
    drop(store);
    let store = open(dir.path());
    assert_eq!(stored_chain(&store), before);
    let next = put(&store, b"next");
    assert_eq!(next.sequence, Some(head.sequence + 1));
    let (second, _) = export_all(&store);
    let segment = second.chain.expect("segment");
    assert_eq!(segment.base, first.chain.expect("segment").head);
    let ids: Vec<SubmissionId> = segment.entries.iter().map(|e| e.entry.id).collect();
    assert_eq!(ids, vec![late.id, next.id]);
}

#[test]
fn an_export_carries_exactly_its_segment_and_writes_it_the_same_way_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let first_ids: Vec<SubmissionId> = (0..3u8).map(|i| put(&store, &[i; 50]).id).collect();
    let (first, first_bytes) = export_all(&store);
    let segment = first.chain.clone().expect("segment");
    assert_eq!(segment.base, ChainPoint::GENESIS);
    assert_eq!(segment.head, store.chain_head().expect("head"));
    assert_eq!(segment.verify().expect("verifies").len(), 3);
    // Each entry is the chain's own, in_bundle, and the bundle carries exactly these.
    let mut in_bundle: Vec<SubmissionId> = segment.entries.iter().map(|e| e.entry.id).collect();
    assert!(segment.entries.iter().all(|e| e.fate == Fate::InBundle));
    let mut carried: Vec<SubmissionId> = first.submissions.iter().map(|e| e.id).collect();
    in_bundle.sort();
    carried.sort();
    assert_eq!(in_bundle, carried);
    let mut expected = first_ids.clone();
    expected.sort();
    assert_eq!(carried, expected);
    for e in &segment.entries {
        let b = first
            .submissions
            .iter()
            .find(|s| s.id == e.entry.id)
            .expect("carried");
        assert_eq!((&b.sha256, b.day), (&e.entry.sha256, e.entry.day));
    }
    // The bundle reads back with its segment.
    let read = crate::bundle::read_manifest(&first_bytes[..]).expect("manifest");
    assert_eq!(read.chain, first.chain);
    // The same batch, written again, is the same bytes.
    let again = store.export_batch(&first.batch).expect("again");
    assert_eq!(
        store.write_export(&again, Vec::new()).expect("write"),
        first_bytes
    );
    // The next batch starts where this one ended; a copy carries no segment.
    let more = put(&store, b"more");
    let copy = store.copy_of(&[more.id]).expect("copy");
    assert_eq!(copy.manifest.chain, None);
    let begun = store.begin_export().expect("export").expect("batch");
    let segment = begun.manifest.chain.clone().expect("segment");
    assert_eq!(segment.base, first.chain.expect("segment").head);
    assert_eq!(segment.entries.len(), 1);
    assert_eq!(segment.entries[0].entry.id, more.id);
    segment.verify().expect("verifies");
    // Resumed before delivery: the same manifest.
    let resumed = store.begin_export().expect("export").expect("batch");
    assert!(resumed.resumed);
    assert_eq!(resumed.manifest, begun.manifest);
}

#[test]
fn a_commit_racing_an_export_lands_in_exactly_one_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u8)
        .map(|t| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) || mine.len() < 5 {
                    i += 1;
                    let mut bytes = vec![t];
                    bytes.extend_from_slice(&i.to_le_bytes());
                    mine.push(put(&store, &bytes));
                }
                mine
            })
        })
        .collect();
    let mut manifests = Vec::new();
    for _ in 0..12 {
        if let Some(batch) = store.begin_export().expect("export") {
            store
                .complete_export(&batch.manifest.batch)
                .expect("complete");
            manifests.push(batch.manifest);
        }
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    stop.store(true, Ordering::Relaxed);
    let committed: Vec<SubmissionRecord> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();
    while let Some(batch) = store.begin_export().expect("export") {
        store
            .complete_export(&batch.manifest.batch)
            .expect("complete");
        manifests.push(batch.manifest);
    }
    assert!(manifests.len() >= 3, "exports ran while commits did");
    let mut point = ChainPoint::GENESIS;
    let mut range_of: std::collections::HashMap<SubmissionId, usize> = Default::default();
    for (k, manifest) in manifests.iter().enumerate() {
        let segment = manifest.chain.as_ref().expect("segment");
        assert_eq!(segment.base, point, "batch {k} starts where the last ended");
        segment.verify().expect("verifies");
        let mut in_bundle: Vec<SubmissionId> = Vec::new();
        for e in &segment.entries {
            assert_eq!(e.fate, Fate::InBundle, "nothing missing or removed");
            assert!(range_of.insert(e.entry.id, k).is_none(), "in two ranges");
            in_bundle.push(e.entry.id);
        }
        let mut carried: Vec<SubmissionId> = manifest.submissions.iter().map(|e| e.id).collect();
        in_bundle.sort();
        carried.sort();
        assert_eq!(in_bundle, carried, "batch {k} carries exactly its range");
        point = segment.head;
    }
    assert_eq!(point, store.chain_head().expect("head"));
    assert_eq!(range_of.len(), committed.len());
    for record in &committed {
        assert!(
            range_of.contains_key(&record.id),
            "{} in no range",
            record.id
        );
    }
}

#[test]
fn retention_marks_what_it_deletes_in_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let old = put(&store, b"old");
    let young = put(&store, b"young");
    age(&store, &old.id, 31);
    let today = UtcDay::today();
    store.apply_retention(today, 30, 0).expect("retention");
    let chain = stored_chain(&store);
    assert_eq!(chain[0].1.removed, Some(today));
    assert_eq!(
        chain[0].1.id,
        Some(old.id),
        "kept until a bundle reports it"
    );
    assert_eq!(chain[1].1.removed, None);
    let (manifest, _) = export_all(&store);
    let segment = manifest.chain.expect("segment");
    segment.verify().expect("verifies");
    assert_eq!(
        segment.entries.iter().map(|e| e.fate).collect::<Vec<_>>(),
        vec![Fate::RemovedUnexported { removed: today }, Fate::InBundle]
    );
    assert_eq!(manifest.submissions.len(), 1);
    assert_eq!(manifest.submissions[0].id, young.id);
}

#[test]
fn a_store_from_before_the_chain_opens_and_exports_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old: Vec<SubmissionRecord> = {
        let store = open(dir.path());
        let old: Vec<SubmissionRecord> = (0..3u8).map(|i| put(&store, &[i; 20])).collect();
        // What a store made before the chain holds: records without a number, no chain trees.
        let index = store.index();
        for record in &old {
            let legacy = SubmissionRecord {
                sequence: None,
                ..record.clone()
            };
            assert!(!String::from_utf8(legacy.encode())
                .expect("utf-8")
                .contains("sequence"));
            index
                .records
                .insert(record.id.as_bytes(), legacy.encode())
                .expect("insert");
        }
        index.chain.clear().expect("clear");
        index.chain_meta.clear().expect("clear");
        index.commit.sync().expect("sync");
        drop(index);
        old
    };
    let store = open(dir.path());
    assert_eq!(store.chain_head().expect("head"), ChainPoint::GENESIS);
    let new = put(&store, b"new");
    assert_eq!(
        new.sequence,
        Some(1),
        "the chain starts with the next submission"
    );
    // The old ones go out first, as before: a batch without chain.
    let (first, _) = export_all(&store);
    assert_eq!(first.chain, None);
    let mut ids: Vec<SubmissionId> = first.submissions.iter().map(|e| e.id).collect();
    let mut expected: Vec<SubmissionId> = old.iter().map(|r| r.id).collect();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected);
    let (second, _) = export_all(&store);
    let segment = second.chain.expect("segment");
    assert_eq!(segment.base, ChainPoint::GENESIS);
    assert_eq!(second.submissions.len(), 1);
    assert_eq!(segment.entries[0].entry.id, new.id);
    // The old batch purges and prunes nothing of the chain.
    store.purge(&first, &opened(&first)).expect("purge");
    assert_eq!(stored_chain(&store)[0].1.id, Some(new.id));
}

#[test]
fn a_batch_purged_in_part_is_written_again_without_its_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let a = put(&store, b"aaaa");
    let b = put(&store, b"bbbb");
    let begun = store.begin_export().expect("export").expect("a batch");
    assert!(begun.manifest.chain.is_some());
    let only_a: HashSet<SubmissionId> = [a.id].into_iter().collect();
    store.purge(&begun.manifest, &only_a).expect("purge");
    let again = store.export_batch(&begun.manifest.batch).expect("again");
    assert_eq!(
        again.manifest.chain, None,
        "it went out with the copy that was opened"
    );
    // It will not be written with its segment again, so the purged one's entry goes (only its
    // leaf and hash stay); the one still held keeps its own.
    let chain = stored_chain(&store);
    assert_eq!(chain[0].1.id, None);
    assert_eq!(chain[1].1.id, Some(b.id));
}

#[test]
fn what_an_adversary_with_the_disk_does_shows_in_the_next_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let records: Vec<SubmissionRecord> = (0..4u8).map(|i| put(&store, &[i; 30])).collect();
    // A courier saw the head before the rewrite.
    let seen = courier_check(&store, ChainPoint::GENESIS);
    store.tamper_forget(&records[1].id).expect("forget");
    store
        .tamper_replace_ciphertext(&records[2].id, b"other bytes")
        .expect("replace");
    let (manifest, _) = export_all(&store);
    let segment = manifest.chain.clone().expect("segment");
    segment.verify().expect("the chain itself is intact");
    assert_eq!(segment.entries[1].fate, Fate::Missing);
    assert_eq!(segment.entries[1].entry.id, records[1].id);
    let altered = manifest
        .submissions
        .iter()
        .find(|s| s.id == records[2].id)
        .expect("carried");
    assert_eq!(segment.entries[2].entry.sha256, records[2].sha256);
    assert_ne!(
        altered.sha256, segment.entries[2].entry.sha256,
        "the chain keeps the original"
    );
    // The chain itself was not touched: the courier's check still passes.
    assert_eq!(courier_check(&store, seen), seen);
    // A smart adversary rewrites the chain consistently: it verifies on its own, the store
    // agrees with it, but the courier who saw the old head notices.
    let fresh = tempfile::tempdir().expect("tempdir");
    let store = open(fresh.path());
    let records: Vec<SubmissionRecord> = (0..4u8).map(|i| put(&store, &[i; 30])).collect();
    let seen_before = courier_check(&store, ChainPoint::GENESIS);
    store.tamper_rewrite_chain_swap(1, 3).expect("swap");
    let view = store.chain_view(seen_before.sequence).expect("view");
    assert_ne!(view.head, seen_before);
    assert!(crate::trust::chain::extends(&seen_before, &view).is_err());
    let rewritten = courier_check(&store, ChainPoint::GENESIS);
    assert_eq!(rewritten.sequence, 4);
    assert_eq!(
        store
            .get(&records[0].id)
            .expect("get")
            .expect("held")
            .sequence,
        Some(3)
    );
    let (manifest, _) = export_all(&store);
    manifest
        .chain
        .expect("segment")
        .verify()
        .expect("consistent");
}

/// Regression (hostile review): one batch purged in part (a report the reviewers cannot open)
/// kept every later entry's id, SHA-256 and day, whatever was purged after it.
#[test]
fn a_batch_stuck_after_a_partial_purge_does_not_pin_later_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let stuck = put(&store, b"cannot be opened");
    let first = store.begin_export().expect("export").expect("a batch");
    store
        .complete_export(&first.manifest.batch)
        .expect("delivered");
    store
        .purge(&first.manifest, &HashSet::new())
        .expect("nothing opened, nothing purged");
    let later: Vec<SubmissionRecord> = (0..3u8).map(|i| put(&store, &[i; 40])).collect();
    let second = store.begin_export().expect("export").expect("a batch");
    store
        .complete_export(&second.manifest.batch)
        .expect("delivered");
    let opened: HashSet<SubmissionId> = later.iter().map(|r| r.id).collect();
    store.purge(&second.manifest, &opened).expect("purge");
    let chain = stored_chain(&store);
    for (_, entry) in &chain {
        if entry.id == Some(stuck.id) {
            continue;
        }
        assert_eq!(
            (entry.id, entry.sha256.as_deref(), entry.day),
            (None, None, None),
            "a purged entry keeps only its leaf and hash"
        );
    }
    assert!(
        chain.iter().any(|(_, e)| e.id == Some(stuck.id)),
        "the held one stays"
    );
}

/// The embedded store runs the one test story of every backend (`backend_story`).
struct Embedded(tempfile::TempDir);

impl Embedded {
    fn new() -> Self {
        Embedded(tempfile::tempdir().expect("tempdir"))
    }
}

impl backend_story::StoreUnderTest for Embedded {
    fn open(&self) -> Arc<dyn SubmissionBackend> {
        Arc::new(
            SubmissionStore::open(self.0.path(), StoreOptions::default())
                .expect("open")
                .0,
        )
    }
}

mod embedded_story {
    crate::backend_stories!(super::Embedded::new());
}
