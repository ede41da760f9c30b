//! Durable storage of sealed submissions: ciphertext only, nothing about the sender.
//!
//! Layout of a data directory:
//!
//! ```text
//! index/            sled: one record per submission (id, UTC day, size, SHA-256, sealing,
//!                   state) and one per export batch; nothing else
//! sealed/<id>.pgp   the ciphertext, one file per submission, mode 0600, mtime set to the day
//! incoming/         spool files of submissions still being received (cleared at start)
//! ```
//!
//! Ciphertext lives in files rather than in sled so that a 100 MiB submission streams to disk
//! with bounded memory and is synced with a plain `fsync`; sled holds the small index, made
//! durable by `durable::GroupCommit`. A submission is acknowledged only after its file, its
//! directory entry and its index record are all on stable storage.
//!
//! Life of a submission: *stored* → *exported* in a batch (the batch's id list is fixed before the
//! bundle is written, so an interrupted export is resumed with the same ids, never duplicated) →
//! *purging* → gone. Each step is recorded before it is acted on, so a crash at any point is
//! finished or undone at the next open.

mod durable;
mod incoming;
mod record;

pub use incoming::{IncomingLimits, IncomingSubmission, Usage};
pub use record::{BatchRecord, RecordState, SubmissionRecord};

use std::collections::HashSet;
use std::fs::{self, File, FileTimes};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sled::Transactional;

use crate::bundle::{self, BundleEntry, BundleError, BundleManifest};
use crate::submission::{Sealing, SubmissionId, UtcDay};

use durable::{sled_to_io, sync_dir, GroupCommit};

/// The store format this code reads and writes.
pub const STORE_FORMAT: &str = "resguardo.store/1";

const FORMAT_KEY: &[u8] = b"format";

/// Everything that can go wrong in the store, each with a message an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the data directory {0} is in use by another resguardo-gateway process")]
    Locked(PathBuf),
    #[error("cannot open the store in {path}: {reason}")]
    Unavailable { path: PathBuf, reason: String },
    #[error("store format {found:?} is not supported (this version reads {STORE_FORMAT})")]
    UnsupportedFormat { found: String },
    #[error("the store failed its integrity check; refusing to continue:\n  {}", .0.join("\n  "))]
    Integrity(Vec<String>),
    #[error("the submission is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the store has reached its quota")]
    QuotaExceeded,
    #[error("the disk is full")]
    DiskFull,
    #[error("submission {0} is not in the store")]
    NotFound(SubmissionId),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("storage error: {0}")]
    Io(io::Error),
}

impl StoreError {
    /// Classifies an I/O error: a full disk (or disk quota) is its own, recoverable, condition.
    pub fn from_io(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::StorageFull
            || e.raw_os_error() == Some(libc::ENOSPC)
            || e.raw_os_error() == Some(libc::EDQUOT)
        {
            StoreError::DiskFull
        } else {
            StoreError::Io(e)
        }
    }

    fn from_sled(e: sled::Error) -> Self {
        StoreError::from_io(sled_to_io(e))
    }
}

/// Store settings from the gateway config.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    pub quota_bytes: Option<u64>,
    pub limits: IncomingLimits,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            quota_bytes: None,
            limits: IncomingLimits {
                max_bytes: 100 * 1024 * 1024,
                min_free_bytes: 64 * 1024 * 1024,
            },
        }
    }
}

/// What opening the store had to repair, for the operator's log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub spool_files_removed: usize,
    pub purges_finished: usize,
    pub orphans_adopted: Vec<SubmissionId>,
}

/// An export batch ready to be written as a bundle.
#[derive(Debug, Clone)]
pub struct ExportBatch {
    pub manifest: BundleManifest,
    /// True if this batch was begun by an earlier, interrupted export.
    pub resumed: bool,
}

/// What a purge did.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct PurgeReport {
    pub purged: Vec<SubmissionId>,
    pub already_gone: Vec<SubmissionId>,
    pub refused: Vec<(SubmissionId, String)>,
}

/// What a retention pass did and foresees.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub deleted: usize,
    pub due_soon: usize,
    /// The earliest day on which a submission now due soon will be deleted.
    pub first_due: Option<UtcDay>,
}

/// Counts for `status`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreStatus {
    pub stored: usize,
    pub exported: usize,
    pub bytes: u64,
    pub undelivered_batches: usize,
}

/// The sealed submissions of one data directory.
pub struct SubmissionStore {
    root: PathBuf,
    sealed: PathBuf,
    incoming: PathBuf,
    records: sled::Tree,
    batches: sled::Tree,
    commit: GroupCommit,
    usage: Arc<Usage>,
    options: StoreOptions,
    /// Export and purge change many records; one at a time.
    admin: Mutex<()>,
    /// Commits since the last [`SubmissionStore::restamp_times`].
    commits_since_restamp: std::sync::atomic::AtomicU64,
    _db: sled::Db,
}

impl SubmissionStore {
    /// Opens (creating if needed) the store in `root`, finishes interrupted work, and checks
    /// that every record has its ciphertext. Refuses a store that fails the check.
    pub fn open(root: &Path, options: StoreOptions) -> Result<(Self, Recovery), StoreError> {
        let unavailable = |reason: String| StoreError::Unavailable {
            path: root.to_path_buf(),
            reason,
        };
        for dir in [
            root.to_path_buf(),
            root.join("sealed"),
            root.join("incoming"),
        ] {
            make_private_dir(&dir).map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
        }
        let index_dir = root.join("index");
        let db = sled::Config::new()
            .path(&index_dir)
            .cache_capacity(16 * 1024 * 1024)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.to_string().contains("lock") => {
                    StoreError::Locked(root.to_path_buf())
                }
                other => unavailable(format!("the index cannot be opened: {other}")),
            })?;
        let records = db.open_tree("submissions").map_err(StoreError::from_sled)?;
        let batches = db.open_tree("batches").map_err(StoreError::from_sled)?;
        check_format(&db, &records, &batches)?;
        let commit = GroupCommit::new(db.clone(), &index_dir.join("db"))
            .map_err(|e| unavailable(e.to_string()))?;
        let store = SubmissionStore {
            root: root.to_path_buf(),
            sealed: root.join("sealed"),
            incoming: root.join("incoming"),
            records,
            batches,
            commit,
            usage: Arc::new(Usage::new(options.quota_bytes, 0)),
            options,
            admin: Mutex::new(()),
            commits_since_restamp: std::sync::atomic::AtomicU64::new(0),
            _db: db,
        };
        let recovery = store.recover()?;
        Ok((store, recovery))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where spool and scratch files live (cleared at every start).
    pub fn incoming_dir(&self) -> &Path {
        &self.incoming
    }

    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    pub fn options(&self) -> StoreOptions {
        self.options
    }

    /// Starts receiving a submission. `expected` is the announced size, if any, checked against
    /// the limits up front so a too-large upload is refused before it is read.
    pub fn begin(&self, expected: Option<u64>) -> Result<IncomingSubmission, StoreError> {
        let limits = self.options.limits;
        if let Some(n) = expected {
            if n > limits.max_bytes {
                return Err(StoreError::TooLarge {
                    limit: limits.max_bytes,
                });
            }
            if self.usage.would_exceed(n) {
                return Err(StoreError::QuotaExceeded);
            }
        }
        IncomingSubmission::create(&self.incoming, limits, self.usage.clone())
    }

    /// Makes a fully received and checked submission durable and gives it an id. Blocking.
    pub fn commit(
        &self,
        incoming: IncomingSubmission,
        sealing: Sealing,
    ) -> Result<SubmissionRecord, StoreError> {
        let spooled = incoming.finish()?;
        let day = UtcDay::today();
        // The day is the only time we keep; the file's own timestamps say no more.
        spooled
            .file
            .set_times(
                FileTimes::new()
                    .set_accessed(day.start())
                    .set_modified(day.start()),
            )
            .map_err(StoreError::from_io)?;
        let (id, path) = loop {
            let id = SubmissionId::random();
            let path = self.sealed_path(&id);
            match fs::hard_link(&spooled.path, &path) {
                Ok(()) => break (id, path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::from_io(e)),
            }
        };
        let record = SubmissionRecord {
            id,
            day,
            size: spooled.size,
            sha256: spooled.sha256.clone(),
            sealing,
            state: RecordState::Stored,
        };
        let durable = sync_dir(&self.sealed)
            .map_err(StoreError::from_io)
            .and_then(|()| {
                self.records
                    .insert(id.as_bytes(), record.encode())
                    .map_err(StoreError::from_sled)
            })
            .and_then(|_| self.commit.sync().map_err(StoreError::from_io));
        if let Err(e) = durable {
            // Not acknowledged: take it back so a retry does not leave a duplicate.
            let _ = self.records.remove(id.as_bytes());
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        spooled.settle();
        self.commits_since_restamp
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(record)
    }

    pub fn get(&self, id: &SubmissionId) -> Result<Option<SubmissionRecord>, StoreError> {
        match self
            .records
            .get(id.as_bytes())
            .map_err(StoreError::from_sled)?
        {
            None => Ok(None),
            Some(bytes) => SubmissionRecord::decode(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Integrity(vec![format!("record {id}: {e}")])),
        }
    }

    /// Every record, in id order.
    pub fn records(&self) -> Result<Vec<SubmissionRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.records.iter() {
            let (key, value) = item.map_err(StoreError::from_sled)?;
            let record = SubmissionRecord::decode(&value).map_err(|e| {
                StoreError::Integrity(vec![format!("record {}: {e}", hex::encode(&key))])
            })?;
            out.push(record);
        }
        Ok(out)
    }

    pub fn status(&self) -> Result<StoreStatus, StoreError> {
        let mut status = StoreStatus::default();
        for record in self.records()? {
            status.bytes += record.size;
            match record.state {
                RecordState::Stored => status.stored += 1,
                RecordState::Exported { .. } | RecordState::Purging => status.exported += 1,
            }
        }
        for item in self.batches.iter() {
            let (_, value) = item.map_err(StoreError::from_sled)?;
            if !BatchRecord::decode(&value).is_ok_and(|b| b.delivered) {
                status.undelivered_batches += 1;
            }
        }
        Ok(status)
    }

    /// Opens the ciphertext of a stored submission without updating its access time (which
    /// would record when it was exported).
    pub fn open_sealed(&self, id: &SubmissionId) -> Result<File, StoreError> {
        let path = self.sealed_path(id);
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(&path);
        let opened = match opened {
            // O_NOATIME needs file ownership; a foreign-owned file is still readable.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(&path),
            other => other,
        };
        opened.map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound(*id),
            _ => StoreError::from_io(e),
        })
    }

    fn sealed_path(&self, id: &SubmissionId) -> PathBuf {
        self.sealed.join(format!("{id}.pgp"))
    }

    /// Fixes the next export batch: an undelivered one from an interrupted export if there is
    /// one, else every stored submission not yet exported. `None` if there is nothing to export.
    pub fn begin_export(&self) -> Result<Option<ExportBatch>, StoreError> {
        let _admin = self.lock_admin();
        if let Some(batch) = self.undelivered_batch()? {
            let manifest = self.manifest_for(&batch)?;
            return Ok(Some(ExportBatch {
                manifest,
                resumed: true,
            }));
        }
        let ids: Vec<SubmissionId> = self
            .records()?
            .into_iter()
            .filter(|r| r.state == RecordState::Stored)
            .map(|r| r.id)
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let batch = BatchRecord {
            batch: SubmissionId::random(),
            created: UtcDay::today(),
            ids,
            delivered: false,
        };
        let exported = RecordState::Exported { batch: batch.batch };
        (&self.records, &self.batches)
            .transaction(|(records, batches)| {
                for id in &batch.ids {
                    let Some(bytes) = records.get(id.as_bytes())? else {
                        continue;
                    };
                    let mut record = SubmissionRecord::decode(&bytes)
                        .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                    record.state = exported.clone();
                    records.insert(id.as_bytes(), record.encode())?;
                }
                batches.insert(batch.batch.as_bytes(), batch.encode())?;
                Ok(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Abort(reason) => {
                    StoreError::Integrity(vec![reason])
                }
                sled::transaction::TransactionError::Storage(e) => StoreError::from_sled(e),
            })?;
        self.commit.sync().map_err(StoreError::from_io)?;
        let manifest = self.manifest_for(&batch)?;
        Ok(Some(ExportBatch {
            manifest,
            resumed: false,
        }))
    }

    /// Streams the bundle of `batch` into `out`, checking every ciphertext against its record.
    pub fn write_export<W: Write>(&self, batch: &ExportBatch, out: W) -> Result<W, StoreError> {
        Ok(bundle::write_bundle(out, &batch.manifest, |entry| {
            self.open_sealed(&entry.id)
                .map_err(|e| io::Error::other(e.to_string()))
        })?)
    }

    /// Records that the bundle of `batch` was written completely and synced by the receiver.
    pub fn complete_export(&self, batch: &SubmissionId) -> Result<(), StoreError> {
        let _admin = self.lock_admin();
        let Some(bytes) = self
            .batches
            .get(batch.as_bytes())
            .map_err(StoreError::from_sled)?
        else {
            return Err(StoreError::NotFound(*batch));
        };
        let mut record = BatchRecord::decode(&bytes)
            .map_err(|e| StoreError::Integrity(vec![format!("batch {batch}: {e}")]))?;
        record.delivered = true;
        self.batches
            .insert(batch.as_bytes(), record.encode())
            .map_err(StoreError::from_sled)?;
        self.commit.sync().map_err(StoreError::from_io)
    }

    /// Deletes exactly the submissions of a delivered bundle whose ciphertext in the store is
    /// byte-for-byte what the bundle holds (same size and SHA-256, same batch).
    pub fn purge(&self, manifest: &BundleManifest) -> Result<PurgeReport, StoreError> {
        let _admin = self.lock_admin();
        let mut report = PurgeReport::default();
        let mut doomed = Vec::new();
        for entry in &manifest.submissions {
            match self.get(&entry.id)? {
                None => report.already_gone.push(entry.id),
                Some(record) => match purge_refusal(&record, entry, &manifest.batch) {
                    Some(reason) => report.refused.push((entry.id, reason)),
                    None => doomed.push(record),
                },
            }
        }
        self.delete(&doomed)?;
        report.purged = doomed.iter().map(|r| r.id).collect();
        self.forget_empty_batch(&manifest.batch)?;
        self.commit.sync().map_err(StoreError::from_io)?;
        Ok(report)
    }

    /// Deletes submissions that were never exported and arrived more than `days` days before
    /// `today`. Returns how many were deleted, and how many will be within `warn_days`.
    pub fn apply_retention(
        &self,
        today: UtcDay,
        days: u32,
        warn_days: u32,
    ) -> Result<RetentionReport, StoreError> {
        let _admin = self.lock_admin();
        let cutoff = today.days_since_epoch() - days as i32;
        let mut report = RetentionReport::default();
        let mut doomed = Vec::new();
        for record in self.records()? {
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
        self.delete(&doomed)?;
        report.deleted = doomed.len();
        Ok(report)
    }

    /// Sets every ciphertext file's times to its day again. Changing a file's times also sets its
    /// inode change time (ctime), which cannot be set directly, to now: after a sweep all files
    /// share one ctime, so the ctime no longer tells when each one arrived.
    pub fn restamp_times(&self) -> Result<usize, StoreError> {
        self.commits_since_restamp
            .store(0, std::sync::atomic::Ordering::Relaxed);
        let mut count = 0;
        for record in self.records()? {
            let day = record.day.start();
            let path = self.sealed_path(&record.id);
            let file = match fs::OpenOptions::new().write(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::from_io(e)),
            };
            file.set_times(FileTimes::new().set_accessed(day).set_modified(day))
                .map_err(StoreError::from_io)?;
            count += 1;
        }
        let epoch_day = UtcDay::from_days_since_epoch(0).start();
        for dir in [&self.sealed, &self.incoming] {
            let handle = File::open(dir).map_err(StoreError::from_io)?;
            handle
                .set_times(
                    FileTimes::new()
                        .set_accessed(epoch_day)
                        .set_modified(epoch_day),
                )
                .map_err(StoreError::from_io)?;
        }
        Ok(count)
    }

    /// True if submissions arrived since the last restamp.
    pub fn needs_restamp(&self) -> bool {
        self.commits_since_restamp
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    }

    /// Deletes submissions crash-safely: the intent is recorded (state *purging*) and made
    /// durable first, so an interruption is finished at the next open.
    fn delete(&self, records: &[SubmissionRecord]) -> Result<(), StoreError> {
        for record in records {
            let mut purging = record.clone();
            purging.state = RecordState::Purging;
            self.records
                .insert(record.id.as_bytes(), purging.encode())
                .map_err(StoreError::from_sled)?;
        }
        self.commit.sync().map_err(StoreError::from_io)?;
        for record in records {
            self.finish_purge(record)?;
        }
        sync_dir(&self.sealed).map_err(StoreError::from_io)?;
        self.commit.sync().map_err(StoreError::from_io)
    }

    fn finish_purge(&self, record: &SubmissionRecord) -> Result<(), StoreError> {
        match fs::remove_file(self.sealed_path(&record.id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::from_io(e)),
        }
        self.records
            .remove(record.id.as_bytes())
            .map_err(StoreError::from_sled)?;
        self.usage.remove(record.size);
        Ok(())
    }

    /// Drops a batch record once none of its submissions is left.
    fn forget_empty_batch(&self, batch: &SubmissionId) -> Result<(), StoreError> {
        let Some(bytes) = self
            .batches
            .get(batch.as_bytes())
            .map_err(StoreError::from_sled)?
        else {
            return Ok(());
        };
        let record = BatchRecord::decode(&bytes)
            .map_err(|e| StoreError::Integrity(vec![format!("batch {batch}: {e}")]))?;
        for id in &record.ids {
            if self
                .records
                .contains_key(id.as_bytes())
                .map_err(StoreError::from_sled)?
            {
                return Ok(());
            }
        }
        self.batches
            .remove(batch.as_bytes())
            .map_err(StoreError::from_sled)?;
        Ok(())
    }

    fn undelivered_batch(&self) -> Result<Option<BatchRecord>, StoreError> {
        for item in self.batches.iter() {
            let (key, value) = item.map_err(StoreError::from_sled)?;
            let batch = BatchRecord::decode(&value).map_err(|e| {
                StoreError::Integrity(vec![format!("batch {}: {e}", hex::encode(&key))])
            })?;
            if !batch.delivered {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    fn manifest_for(&self, batch: &BatchRecord) -> Result<BundleManifest, StoreError> {
        let mut submissions = Vec::with_capacity(batch.ids.len());
        for id in &batch.ids {
            // A submission of an undelivered batch cannot have been purged (purge needs the
            // bundle); if it is missing, the store is damaged.
            let record = self.get(id)?.ok_or_else(|| {
                StoreError::Integrity(vec![format!(
                    "batch {}: submission {id} is missing",
                    batch.batch
                )])
            })?;
            submissions.push(BundleEntry {
                id: record.id,
                day: record.day,
                size: record.size,
                sha256: record.sha256,
                sealing: record.sealing,
            });
        }
        Ok(BundleManifest {
            format: bundle::FORMAT.into(),
            batch: batch.batch,
            created: batch.created,
            submissions,
        })
    }

    fn lock_admin(&self) -> std::sync::MutexGuard<'_, ()> {
        self.admin
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Finishes or undoes what a crash interrupted, then checks every record against its file.
    fn recover(&self) -> Result<Recovery, StoreError> {
        let mut recovery = Recovery::default();
        // Spool files belong to submissions that were never acknowledged.
        for entry in fs::read_dir(&self.incoming).map_err(StoreError::from_io)? {
            let entry = entry.map_err(StoreError::from_io)?;
            fs::remove_file(entry.path()).map_err(StoreError::from_io)?;
            recovery.spool_files_removed += 1;
        }
        let mut problems = Vec::new();
        let mut known = HashSet::new();
        let mut stored_bytes = 0u64;
        for item in self.records.iter() {
            let (key, value) = item.map_err(StoreError::from_sled)?;
            let record = match SubmissionRecord::decode(&value) {
                Ok(r) if r.id.as_bytes()[..] == key[..] => r,
                Ok(_) => {
                    problems.push(format!(
                        "record {} is filed under the wrong key",
                        hex::encode(&key)
                    ));
                    continue;
                }
                Err(e) => {
                    problems.push(format!("record {} is unreadable: {e}", hex::encode(&key)));
                    continue;
                }
            };
            if record.state == RecordState::Purging {
                self.finish_purge(&record)?;
                recovery.purges_finished += 1;
                continue;
            }
            known.insert(record.id);
            match fs::metadata(self.sealed_path(&record.id)) {
                Ok(meta) if meta.len() == record.size => stored_bytes += record.size,
                Ok(meta) => problems.push(format!(
                    "submission {}: ciphertext is {} bytes, the record says {}",
                    record.id,
                    meta.len(),
                    record.size
                )),
                Err(e) => problems.push(format!(
                    "submission {}: ciphertext file unreadable: {e}",
                    record.id
                )),
            }
        }
        for entry in fs::read_dir(&self.sealed).map_err(StoreError::from_io)? {
            let entry = entry.map_err(StoreError::from_io)?;
            let name = entry.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".pgp"))
                .and_then(|n| n.parse::<SubmissionId>().ok());
            match id {
                Some(id) if known.contains(&id) => {}
                // Linked and synced but its record was not: complete and checked, so keep it.
                Some(id) => match self.adopt(id) {
                    Ok(size) => {
                        stored_bytes += size;
                        recovery.orphans_adopted.push(id);
                    }
                    Err(e) => problems.push(format!("unindexed ciphertext {id}: {e}")),
                },
                None => problems.push(format!(
                    "unexpected file in sealed/: {:?}",
                    name.to_string_lossy()
                )),
            }
        }
        if !problems.is_empty() {
            return Err(StoreError::Integrity(problems));
        }
        self.usage.add_stored(stored_bytes);
        self.commit.sync().map_err(StoreError::from_io)?;
        Ok(recovery)
    }

    /// Indexes a ciphertext file whose record was lost; its day comes from the file's mtime,
    /// which we set to the day's start when it was stored.
    fn adopt(&self, id: SubmissionId) -> Result<u64, StoreError> {
        let path = self.sealed_path(&id);
        let mut file = File::open(&path).map_err(StoreError::from_io)?;
        let meta = file.metadata().map_err(StoreError::from_io)?;
        let day = meta
            .modified()
            .map(UtcDay::of)
            .unwrap_or_else(|_| UtcDay::today());
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = io::Read::read(&mut file, &mut buf).map_err(StoreError::from_io)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        let record = SubmissionRecord {
            id,
            day,
            size: meta.len(),
            sha256: hex::encode(hash.finish()),
            sealing: Sealing::BySender,
            state: RecordState::Stored,
        };
        self.records
            .insert(id.as_bytes(), record.encode())
            .map_err(StoreError::from_sled)?;
        Ok(meta.len())
    }
}

fn purge_refusal(
    record: &SubmissionRecord,
    entry: &BundleEntry,
    batch: &SubmissionId,
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

fn check_format(
    db: &sled::Db,
    records: &sled::Tree,
    batches: &sled::Tree,
) -> Result<(), StoreError> {
    match db.get(FORMAT_KEY).map_err(StoreError::from_sled)? {
        Some(found) if &found[..] == STORE_FORMAT.as_bytes() => Ok(()),
        Some(found) => Err(StoreError::UnsupportedFormat {
            found: String::from_utf8_lossy(&found).into_owned(),
        }),
        None if records.is_empty() && batches.is_empty() => {
            db.insert(FORMAT_KEY, STORE_FORMAT.as_bytes())
                .map_err(StoreError::from_sled)?;
            Ok(())
        }
        None => Err(StoreError::Integrity(vec![
            "the index holds records but no format marker".into(),
        ])),
    }
}

/// Creates a directory readable by the owner only, or tightens an existing one.
fn make_private_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if !fs::metadata(dir)?.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                ));
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
