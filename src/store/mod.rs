//! Durable storage of sealed submissions: ciphertext only, nothing about the sender.
//!
//! Layout of a data directory:
//!
//! ```text
//! index.current     names the current index directory
//! index-<random>/   sled: one record per submission (id, UTC day, size, SHA-256, sealing,
//!                   state, chain number) and one per export batch; the chain of accepted
//!                   submissions (see [`chain`]); nothing else (see [`index`])
//! sealed/<id>.pgp   the ciphertext, one file per submission, mode 0600, mtime set to the day
//! incoming/         spool files of submissions still being received (given back at start)
//! uploads/          uploads that resume (tus): `<upload id>.part`, the bytes so far, and
//!                   `<upload id>.state`, their length, expiry day, triage envelope and
//!                   conversation headers (see [`partial`]); found again at start, deleted when
//!                   their expiry day begins
//! pool/             empty spare files that uploads are written into (see [`pool`])
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
//!
//! The chain (`docs/trust-v1.md`, part 2; [`chain`]): a submission's record and its chain entry
//! are stored in one transaction and acknowledged together; a batch is fixed in one transaction
//! with the chain's head and carries its segment of the chain in its manifest; retention marks
//! what it deletes unexported; entries of batches that are gone are pruned to their hashes.
//!
//! What a seized data directory tells about time: the UTC day of each submission, and when the
//! last sweep ran. Files are never created when a submission arrives ([`pool`]), file times are
//! set to day starts and every change time is moved to one moment by [`SubmissionStore::sweep_times`]
//! (run by the gateway within a minute of any change, and at every start), and the index forgets
//! purged records and the order of arrival by being rewritten ([`index`]).

mod backend;
#[cfg(any(test, feature = "test-support"))]
pub mod backend_story;
mod chain;
mod conversations;
mod durable;
mod incoming;
mod index;
pub mod object;
mod partial;
mod pool;
mod record;
pub mod rules;

pub use backend::SubmissionBackend;
pub use conversations::{
    ConversationRecord, ReplyAdded, ReplyEntry, StoredReply, MAX_CONVERSATION_BYTES,
};
pub use incoming::{IncomingLimits, IncomingSubmission, Usage};
pub use partial::{
    decimal, BadUploadId, Done, PartialUpload, PartialWriter, UploadBeside, UploadId,
    UploadOptions, UploadState, Uploads, UploadsRecovery,
};
pub use pool::Taken;
pub use record::{BatchRecord, ChainRange, RecordState, SubmissionRecord};

use std::collections::HashSet;
use std::fs::{self, File, FileTimes};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use sled::Transactional;

use crate::bundle::{self, BundleError, BundleManifest};
use base64::Engine as _;

use crate::submission::{BatchId, Sealing, SubmissionId, UtcDay};
use crate::trust::chain::{ChainPoint, ChainSegment, ChainView, Fate, SegmentEntry};

pub(crate) use durable::sync_tree;
use durable::{sled_to_io, sync_dir};
use incoming::SpareReturn;
use index::Index;
use pool::SparePool;

/// The store format this code reads and writes.
pub const STORE_FORMAT: &str = "resguardo.store/1";

pub(crate) const FORMAT_KEY: &[u8] = b"format";

/// Everything that can go wrong in the store, each with a message an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory (its path).
    #[error("the data directory {0} is in use by another resguardo-gateway process")]
    Locked(PathBuf),
    /// The store could not be opened or created.
    #[error("cannot open the store in {path}: {reason}")]
    Unavailable {
        /// The data directory.
        path: PathBuf,
        /// What failed, for the operator.
        reason: String,
    },
    /// The index names a store format other than [`STORE_FORMAT`].
    #[error("store format {found:?} is not supported (this version reads {STORE_FORMAT})")]
    UnsupportedFormat {
        /// The format the index names.
        found: String,
    },
    /// Records and files disagree or are unreadable; one line per problem found.
    #[error("the store failed its integrity check; refusing to continue:\n  {}", .0.join("\n  "))]
    Integrity(Vec<String>),
    /// A submission exceeded the per-submission size limit.
    #[error("the submission is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// Storing the submission would exceed the store's quota.
    #[error("the store has reached its quota")]
    QuotaExceeded,
    /// The file system is full, out of disk quota, or below the free-space floor.
    #[error("the disk is full")]
    DiskFull,
    /// No record with this id.
    #[error("submission {0} is not in the store")]
    NotFound(SubmissionId),
    /// No batch record with this id.
    #[error("export batch {0} is not in the store (was it completed or purged already?)")]
    BatchNotFound(BatchId),
    /// A conversation with this locator exists already.
    #[error("a conversation with this locator exists already")]
    ConversationExists,
    /// No conversation with this locator.
    #[error("no conversation with this locator")]
    ConversationNotFound,
    /// The conversation holds as many replies, or as many bytes of them, as it may.
    #[error(
        "the conversation holds the most it may ({} replies or {} MiB); the reporter must \
         start a new one",
        conversations::MAX_REPLIES,
        conversations::MAX_CONVERSATION_BYTES / (1024 * 1024)
    )]
    ConversationFull,
    /// As many resumable uploads are incomplete as `[uploads] max_pending` allows.
    #[error("too many uploads are incomplete right now")]
    TooManyPending,
    /// A courier asked for the chain from a number beyond its head (the log went back, or the
    /// courier has another gateway's numbers).
    #[error("the chain ends at number {head}; there is no number {asked}")]
    ChainBehind {
        /// The number asked about.
        asked: u64,
        /// The chain's head.
        head: u64,
    },
    /// Writing or checking a bundle failed.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The object store failed or refused a request (unreachable, no write quorum, refused
    /// credentials): nothing was acknowledged; the gateway answers 503.
    #[error("object store: {0}")]
    Backend(String),
    /// Another running gateway took this gateway's prefix in the object store (two gateways
    /// configured with the same `[store.s3] gateway` name); exports, purges and retention stop.
    #[error(
        "another gateway took the prefix {0} in the object store; two gateways must not share \
         a [store.s3] gateway name"
    )]
    NotOwner(String),
    /// This backend keeps no chain of accepted submissions (the object store, so far): a
    /// courier is told so (404) rather than shown a chain that never grows.
    #[error("this store keeps no log of accepted submissions")]
    ChainNotKept,
    /// Any other I/O or sled error.
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
    /// Most ciphertext bytes the store may hold, in-flight uploads included; `None`: no quota.
    pub quota_bytes: Option<u64>,
    /// Size and free-space limits for each incoming submission.
    pub limits: IncomingLimits,
    /// How many spare files the pool keeps ready (see [`pool`]).
    pub spare_files: usize,
}

/// Spare files kept by default: more than a busy day's submissions for most organisations.
pub const DEFAULT_SPARE_FILES: usize = 256;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            quota_bytes: None,
            limits: IncomingLimits {
                max_bytes: 100 * 1024 * 1024,
                min_free_bytes: 64 * 1024 * 1024,
            },
            spare_files: DEFAULT_SPARE_FILES,
        }
    }
}

/// What opening the store had to repair, for the operator's log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Spool files of unacknowledged submissions, given back to the pool or deleted.
    pub spool_files_removed: usize,
    /// Purges interrupted by a crash and completed now.
    pub purges_finished: usize,
    /// Ciphertext files that had lost their record and were indexed again.
    pub orphans_adopted: Vec<SubmissionId>,
    /// Uploads that resume, found again (and files of unreadable ones given back).
    pub uploads: UploadsRecovery,
}

/// An export batch ready to be written as a bundle.
#[derive(Debug, Clone)]
pub struct ExportBatch {
    /// The bundle's manifest: batch id, creation day and one entry per submission.
    pub manifest: BundleManifest,
    /// True if this batch was begun by an earlier, interrupted export.
    pub resumed: bool,
}

/// What a purge did.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct PurgeReport {
    /// Submissions deleted by this purge.
    pub purged: Vec<SubmissionId>,
    /// Submissions in the bundle that the store no longer held.
    pub already_gone: Vec<SubmissionId>,
    /// Submissions kept, each with the reason.
    pub refused: Vec<(SubmissionId, String)>,
}

/// What a retention pass did and foresees.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Never-exported submissions deleted for being older than the retention period.
    pub deleted: usize,
    /// Never-exported submissions that will be deleted within the warning period.
    pub due_soon: usize,
    /// The earliest day on which a submission now due soon will be deleted.
    pub first_due: Option<UtcDay>,
}

/// Counts for `status`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreStatus {
    /// Submissions not yet put in an export batch.
    pub stored: usize,
    /// Submissions in an export batch but not yet purged (purges in progress included).
    pub exported: usize,
    /// Total ciphertext bytes of every record counted above.
    pub bytes: u64,
    /// Export batches whose bundle was not yet recorded as completely written.
    pub undelivered_batches: usize,
    /// The day of the oldest submission not yet exported: how long a report has waited.
    #[serde(default)]
    pub oldest_waiting: Option<UtcDay>,
}

/// What the once-a-day pass did, for the operator's log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DailyReport {
    /// Spare files made to top up the pool.
    pub spares_made: usize,
    /// Times since the last pass that no spare was ready and a batch was made on the spot.
    pub spare_shortages: u64,
}

/// The sealed submissions of one data directory.
pub struct SubmissionStore {
    root: PathBuf,
    sealed: PathBuf,
    incoming: PathBuf,
    pool: Arc<SparePool>,
    /// Replaced whole when the index is rewritten; every reader holds it only briefly.
    index: RwLock<Index>,
    usage: Arc<Usage>,
    options: StoreOptions,
    /// Export and purge change many records; one at a time.
    admin: Mutex<()>,
    /// Set by every change to the data directory; cleared by [`SubmissionStore::sweep_times`].
    touched: Arc<AtomicBool>,
    spare_shortages: AtomicU64,
    /// Uploads that resume, not yet complete (see [`partial`]).
    uploads: Uploads,
}

impl SubmissionStore {
    /// True if `root` holds a store.
    pub fn exists(root: &Path) -> bool {
        index::exists(root)
    }

    /// Opens (creating if needed) the store in `root`, finishes interrupted work, and checks
    /// that every record has its ciphertext. Refuses a store that fails the check.
    pub fn open(root: &Path, options: StoreOptions) -> Result<(Self, Recovery), StoreError> {
        Self::open_with(root, options, UploadOptions::default())
    }

    /// [`SubmissionStore::open`], with the `[uploads]` settings.
    pub fn open_with(
        root: &Path,
        options: StoreOptions,
        upload_options: UploadOptions,
    ) -> Result<(Self, Recovery), StoreError> {
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
        let (index, created) = Index::open_current(root)?;
        let pool = SparePool::open(&root.join("pool"), options.spare_files)
            .map_err(|e| unavailable(format!("pool: {e}")))?;
        if created || pool.is_empty() {
            // A new store (or one from before the pool): nothing has arrived that these could
            // date. On a full disk this fails; the gateway still starts (and takes spares as
            // space allows, see `pool`), so reports already stored can be exported.
            if let Err(e) = pool.top_up(UtcDay::today()) {
                tracing::warn!("could not make spare files: {e}");
            }
        }
        let pool = Arc::new(pool);
        let usage = Arc::new(Usage::new(options.quota_bytes, 0));
        let touched = Arc::new(AtomicBool::new(true));
        let (uploads, uploads_found) = Uploads::open(
            &root.join("uploads"),
            pool.clone(),
            usage.clone(),
            touched.clone(),
            options.limits,
            upload_options,
        )
        .map_err(|e| unavailable(format!("uploads: {e}")))?;
        let store = SubmissionStore {
            root: root.to_path_buf(),
            sealed: root.join("sealed"),
            incoming: root.join("incoming"),
            pool,
            index: RwLock::new(index),
            usage,
            options,
            admin: Mutex::new(()),
            touched,
            spare_shortages: AtomicU64::new(0),
            uploads,
        };
        let mut recovery = store.recover()?;
        recovery.uploads = uploads_found;
        // A fresh copy: forgets whatever was deleted before a crash, and the order of arrival.
        store.rewrite_index_or_warn();
        Ok((store, recovery))
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where spool and scratch files live (given back or removed at every start).
    pub fn incoming_dir(&self) -> &Path {
        &self.incoming
    }

    /// Bytes stored and reserved, against the quota.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// The uploads that resume (tus), not yet complete.
    pub fn uploads(&self) -> &Uploads {
        &self.uploads
    }

    /// The options the store was opened with.
    pub fn options(&self) -> StoreOptions {
        self.options
    }

    fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn touch(&self) {
        self.touched.store(true, Ordering::Relaxed);
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
        incoming::check_free_space(&self.incoming, limits.min_free_bytes)?;
        self.touch();
        // A random spool name, unrelated to the id the submission will get.
        let path = self
            .incoming
            .join(format!("{}.part", SubmissionId::random()));
        let (file, taken) = self
            .pool
            .take(UtcDay::today(), &path)
            .map_err(StoreError::from_io)?;
        if taken == Taken::MadeNow {
            // Not logged now: a log line's time would date this very submission.
            self.spare_shortages.fetch_add(1, Ordering::Relaxed);
        }
        Ok(IncomingSubmission::create(
            file,
            path,
            &self.incoming,
            limits,
            self.usage.clone(),
            self.spare_return(),
        ))
    }

    fn spare_return(&self) -> SpareReturn {
        SpareReturn {
            pool: self.pool.clone(),
            touched: self.touched.clone(),
        }
    }

    /// Makes a fully received and checked submission durable and gives it an id, together with
    /// its checked triage envelope if it has one (one index write: both or neither). Blocking.
    pub fn commit(
        &self,
        incoming: IncomingSubmission,
        sealing: Sealing,
        triage: Option<&[u8]>,
    ) -> Result<SubmissionRecord, StoreError> {
        self.commit_with(incoming, sealing, triage, None)
    }

    /// [`SubmissionStore::commit`], starting a conversation (`locator`, locked box) in the same
    /// sync of the index: both are acknowledged together or neither is.
    pub fn commit_with(
        &self,
        incoming: IncomingSubmission,
        sealing: Sealing,
        triage: Option<&[u8]>,
        conversation: Option<(&crate::replies::Locator, &[u8])>,
    ) -> Result<SubmissionRecord, StoreError> {
        self.with_conversation(conversation, || {
            self.commit_submission(incoming, sealing, triage)
        })
    }

    fn commit_submission(
        &self,
        incoming: IncomingSubmission,
        sealing: Sealing,
        triage: Option<&[u8]>,
    ) -> Result<SubmissionRecord, StoreError> {
        let spooled = incoming.finish()?;
        let day = UtcDay::today();
        self.touch();
        // The day is the only time we keep; the file's own timestamps say no more.
        spooled
            .file
            .set_times(
                FileTimes::new()
                    .set_accessed(day.start())
                    .set_modified(day.start()),
            )
            .map_err(StoreError::from_io)?;
        let id = loop {
            let id = SubmissionId::random();
            match fs::hard_link(&spooled.path, self.sealed_path(&id)) {
                Ok(()) => break id,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::from_io(e)),
            }
        };
        let unnumbered = SubmissionRecord {
            id,
            day,
            size: spooled.size,
            sha256: spooled.sha256.clone(),
            sealing,
            state: RecordState::Stored,
            triage: triage.map(|t| base64::engine::general_purpose::STANDARD.encode(t)),
            sequence: None,
        };
        let index = self.index();
        sync_dir(&self.sealed).map_err(StoreError::from_io)?;
        let record = store_numbered(&index, &unnumbered)?;
        // On failure here the record and its entry stay (they cannot be taken back once a later
        // submission's entry follows, and a record without its file would stop the next start):
        // they become durable with the next flush, at worst a duplicate of something the sender
        // was told failed and sent again; never a loss, never a hole in the chain.
        let durable = index.commit.sync().map_err(StoreError::from_io);
        drop(index);
        spooled.settle();
        durable?;
        // Again, after the last change: a sweep that ran meanwhile must not be the last one.
        self.touch();
        Ok(record)
    }

    /// The record of `id`, or `None` if the store does not hold it.
    pub fn get(&self, id: &SubmissionId) -> Result<Option<SubmissionRecord>, StoreError> {
        let found = self
            .index()
            .records
            .get(id.as_bytes())
            .map_err(StoreError::from_sled)?;
        match found {
            None => Ok(None),
            Some(bytes) => SubmissionRecord::decode(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Integrity(vec![format!("record {id}: {e}")])),
        }
    }

    /// Every record, in id order.
    pub fn records(&self) -> Result<Vec<SubmissionRecord>, StoreError> {
        let index = self.index();
        let mut out = Vec::new();
        for item in index.records.iter() {
            let (key, value) = item.map_err(StoreError::from_sled)?;
            let record = SubmissionRecord::decode(&value).map_err(|e| {
                StoreError::Integrity(vec![format!("record {}: {e}", hex::encode(&key))])
            })?;
            out.push(record);
        }
        Ok(out)
    }

    fn batch_records(&self) -> Result<Vec<BatchRecord>, StoreError> {
        let index = self.index();
        let mut out = Vec::new();
        for item in index.batches.iter() {
            let (key, value) = item.map_err(StoreError::from_sled)?;
            let batch = BatchRecord::decode(&value).map_err(|e| {
                StoreError::Integrity(vec![format!("batch {}: {e}", hex::encode(&key))])
            })?;
            out.push(batch);
        }
        Ok(out)
    }

    /// Counts of submissions, bytes and undelivered batches, for `status`.
    pub fn status(&self) -> Result<StoreStatus, StoreError> {
        let records = self.records()?;
        let batches = self.batch_records()?;
        Ok(rules::status_of(&records, &batches))
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
    /// one, else the stored submissions from before the chain if there are any (a batch without
    /// chain, as before: a bundle with a segment carries only submissions of that segment),
    /// else every stored submission of the chain from where the last batch's
    /// segment ended to the head. `None` if there is nothing to export.
    pub fn begin_export(&self) -> Result<Option<ExportBatch>, StoreError> {
        let _admin = self.lock_admin();
        if let Some(batch) = self.batch_records()?.into_iter().find(|b| !b.delivered) {
            let manifest = self.manifest_for(&batch)?;
            return Ok(Some(ExportBatch {
                manifest,
                resumed: true,
            }));
        }
        // Read before the records are listed: every submission numbered up to here is listed.
        let seen = self.chain_head()?;
        match rules::export_selection(&self.records()?) {
            rules::ExportSelection::Nothing => Ok(None),
            rules::ExportSelection::Unnumbered(ids) => self.fix_batch(ids, None).map(Some),
            // Submissions committed after `seen` are added inside the transaction.
            rules::ExportSelection::Stored(ids) => self.fix_batch(ids, Some(seen)).map(Some),
        }
    }

    /// The export batches the store still holds (not yet purged), oldest first.
    pub fn batches(&self) -> Result<Vec<BatchRecord>, StoreError> {
        let mut batches = self.batch_records()?;
        batches.sort_by_key(|b| b.created);
        Ok(batches)
    }

    /// The chain's head `(n, H(n))` (the empty chain: `(0, 32 zero bytes)`), as it is now: it
    /// may include a submission still being made durable (see [`SubmissionStore::chain_view`]).
    pub fn chain_head(&self) -> Result<ChainPoint, StoreError> {
        chain::point(&self.index().chain_meta, chain::HEAD)
    }

    /// A courier's view of the chain after number `since` (`GET /api/v1/courier/chain`): the
    /// head, `H(since)`, and the leaves after it, at most
    /// [`crate::trust::chain::MAX_LEAVES_PER_ANSWER`], all durable before it returns.
    /// [`StoreError::ChainBehind`] if `since` is beyond the head. Blocking.
    pub fn chain_view(&self, since: u64) -> Result<ChainView, StoreError> {
        use crate::trust::chain::MAX_LEAVES_PER_ANSWER;
        let index = self.index();
        let head = chain::point(&index.chain_meta, chain::HEAD)?;
        if since > head.sequence {
            return Err(StoreError::ChainBehind {
                asked: since,
                head: head.sequence,
            });
        }
        let since_point = chain::point_at(&index.chain, since)?;
        let last = head
            .sequence
            .min(since.saturating_add(MAX_LEAVES_PER_ANSWER as u64));
        let mut leaves = Vec::with_capacity((last - since) as usize);
        for item in chain::entries(&index.chain, since + 1, last) {
            let (_, stored) = item?;
            leaves.push(hex::encode(stored.leaf));
        }
        // A commit's entry is visible before its flush; a courier must never see a head that a
        // crash could take back (it would ring "the log went back"). Everything read above was
        // written before this call, so it is durable when it returns.
        index.commit.sync().map_err(StoreError::from_io)?;
        Ok(ChainView {
            head,
            since: since_point,
            leaves,
            complete: last == head.sequence,
        })
    }

    /// Marks `ids` exported in a new batch, durably, and returns its manifest. With `seen` (the
    /// head read before `ids` were listed: every stored submission numbered up to it is in
    /// `ids`), the batch covers the chain from where the last batch's segment ended to the head,
    /// read in the same transaction, and also takes the submissions numbered after `seen`: one
    /// arriving meanwhile is in this range or the next, never between.
    fn fix_batch(
        &self,
        ids: Vec<SubmissionId>,
        seen: Option<ChainPoint>,
    ) -> Result<ExportBatch, StoreError> {
        use sled::transaction::ConflictableTransactionError::Abort;
        let batch_id = BatchId::random();
        let created = UtcDay::today();
        let exported = RecordState::Exported { batch: batch_id };
        self.touch();
        let batch = {
            let index = self.index();
            let batch = (
                &index.records,
                &index.batches,
                &index.chain,
                &index.chain_meta,
            )
                .transaction(|(records, batches, chain_tree, meta)| {
                    let mut ids = ids.clone();
                    let range = if let Some(seen) = seen {
                        let base = chain::tx_point(meta, chain::EXPORTED_THROUGH)?;
                        let head = chain::tx_point(meta, chain::HEAD)?;
                        for sequence in seen.sequence.max(base.sequence) + 1..=head.sequence {
                            let entry = chain::tx_entry(chain_tree, sequence)?;
                            match entry.and_then(|e| e.id) {
                                Some(id) => ids.push(id),
                                None => {
                                    return Err(Abort(format!(
                                        "the chain has no submission at {sequence}"
                                    )))
                                }
                            }
                        }
                        meta.insert(chain::EXPORTED_THROUGH, chain::encode_point(&head))?;
                        Some(ChainRange { base, head })
                    } else {
                        None
                    };
                    ids.sort();
                    ids.dedup();
                    let mut held = Vec::with_capacity(ids.len());
                    for id in ids {
                        let Some(bytes) = records.get(id.as_bytes())? else {
                            continue;
                        };
                        let mut record = SubmissionRecord::decode(&bytes).map_err(Abort)?;
                        if record.state != RecordState::Stored {
                            continue;
                        }
                        record.state = exported.clone();
                        records.insert(&id.as_bytes()[..], record.encode())?;
                        held.push(id);
                    }
                    let batch = BatchRecord {
                        batch: batch_id,
                        created,
                        ids: held,
                        delivered: false,
                        chain: range,
                        partly_purged: false,
                    };
                    batches.insert(&batch_id.as_bytes()[..], batch.encode())?;
                    Ok(batch)
                })
                .map_err(transaction_error)?;
            index.commit.sync().map_err(StoreError::from_io)?;
            batch
        };
        self.touch();
        let manifest = self.manifest_for(&batch)?;
        Ok(ExportBatch {
            manifest,
            resumed: false,
        })
    }

    /// Streams the bundle of `batch` into `out`, checking every ciphertext against its record.
    pub fn write_export<W: Write>(&self, batch: &ExportBatch, out: W) -> Result<W, StoreError> {
        Ok(bundle::write_bundle(out, &batch.manifest, |entry| {
            self.open_sealed(&entry.id)
                .map_err(|e| io::Error::other(e.to_string()))
        })?)
    }

    /// The export batch `batch` as it was fixed when begun, to write its bundle again (the same
    /// bytes each time: a courier resuming a download gets the rest of the same file).
    pub fn export_batch(&self, batch: &BatchId) -> Result<ExportBatch, StoreError> {
        let Some(bytes) = self
            .index()
            .batches
            .get(batch.as_bytes())
            .map_err(StoreError::from_sled)?
        else {
            return Err(StoreError::BatchNotFound(*batch));
        };
        let record = BatchRecord::decode(&bytes)
            .map_err(|e| StoreError::Integrity(vec![format!("batch {batch}: {e}")]))?;
        Ok(ExportBatch {
            manifest: self.manifest_for(&record)?,
            resumed: true,
        })
    }

    /// Records that the bundle of `batch` was written completely and synced by the receiver.
    pub fn complete_export(&self, batch: &BatchId) -> Result<(), StoreError> {
        let _admin = self.lock_admin();
        self.touch();
        let index = self.index();
        let Some(bytes) = index
            .batches
            .get(batch.as_bytes())
            .map_err(StoreError::from_sled)?
        else {
            return Err(StoreError::BatchNotFound(*batch));
        };
        let mut record = BatchRecord::decode(&bytes)
            .map_err(|e| StoreError::Integrity(vec![format!("batch {batch}: {e}")]))?;
        record.delivered = true;
        index
            .batches
            .insert(batch.as_bytes(), record.encode())
            .map_err(StoreError::from_sled)?;
        index.commit.sync().map_err(StoreError::from_io)?;
        self.touch();
        Ok(())
    }

    /// Deletes exactly the submissions of a delivered bundle that the reviewers confirm they
    /// opened (`opened`, from the receipt `resguardo-review open` writes) and whose ciphertext in
    /// the store is byte-for-byte what the bundle holds (same size and SHA-256, same batch). The
    /// index is then rewritten, so nothing of the purged records stays on disk.
    pub fn purge(
        &self,
        manifest: &BundleManifest,
        opened: &HashSet<SubmissionId>,
    ) -> Result<PurgeReport, StoreError> {
        let _admin = self.lock_admin();
        let (mut report, doomed) = rules::purge_plan(manifest, opened, |id| self.get(id))?;
        self.delete(&doomed, None)?;
        report.purged = doomed.iter().map(|r| r.id).collect();
        self.forget_purged(&manifest.batch)?;
        self.prune_chain()?;
        self.index().commit.sync().map_err(StoreError::from_io)?;
        self.rewrite_index_or_warn();
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
        let (doomed, report) = rules::retention_split(self.records()?, today, days, warn_days);
        self.delete(&doomed, Some(today))?;
        let pruned = self.prune_chain()?;
        if report.deleted > 0 || pruned > 0 {
            self.index().commit.sync().map_err(StoreError::from_io)?;
            self.rewrite_index_or_warn();
        }
        Ok(report)
    }

    /// The once-a-day pass: tops up the spare files and rewrites the index (which forgets the
    /// order in which yesterday's submissions arrived). `seconds_into_day` says how late in the
    /// day this runs: spares made late are only handed out from tomorrow on.
    pub fn daily(&self, today: UtcDay, seconds_into_day: u64) -> Result<DailyReport, StoreError> {
        let _admin = self.lock_admin();
        let first_day = if seconds_into_day < 15 * 60 {
            today
        } else {
            UtcDay::from_days_since_epoch(today.days_since_epoch() + 1)
        };
        self.touch();
        let spares_made = self.pool.top_up(first_day).map_err(StoreError::from_io)?;
        self.rewrite_index_or_warn();
        Ok(DailyReport {
            spares_made,
            spare_shortages: self.spare_shortages.swap(0, Ordering::Relaxed),
        })
    }

    /// Rewrites the index; if that fails (a full disk, say), the current index stays in use and
    /// intact, the work that asked for the rewrite stands, and the next start or daily pass tries
    /// again. The operator is told, since forgotten records linger on disk meanwhile.
    fn rewrite_index_or_warn(&self) {
        if let Err(e) = self.rewrite_index() {
            tracing::warn!(
                "the index could not be rewritten ({e}); deleted records stay readable on disk \
                 until the next start or daily pass"
            );
        }
    }

    /// Replaces the index with a fresh copy of what is current (see [`index`]).
    fn rewrite_index(&self) -> Result<(), StoreError> {
        self.touch();
        let mut guard = self
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let fresh = guard.rewrite(&self.root)?;
        let old = std::mem::replace(&mut *guard, fresh);
        drop(guard);
        old.remove(&self.root);
        self.touch();
        Ok(())
    }

    /// Sets every file's and directory's times in the data directory again: ciphertext files to
    /// their day, everything else to the epoch. Changing a file's times also sets its inode
    /// change time (ctime), which cannot be set directly, to now: after a sweep every file shares
    /// one ctime, so no change time tells when a report arrived. (The TLS certificate, made at
    /// first start and renewed by its age, keeps its own times.)
    pub fn sweep_times(&self) -> Result<usize, StoreError> {
        self.touched.store(false, Ordering::Relaxed);
        let days: std::collections::HashMap<SubmissionId, UtcDay> =
            self.records()?.into_iter().map(|r| (r.id, r.day)).collect();
        let epoch = UtcDay::from_days_since_epoch(0);
        let day_of = |path: &Path| -> UtcDay {
            if path.parent() != Some(self.sealed.as_path()) {
                return epoch;
            }
            // A ciphertext keeps its day; one linked after `records()` above (its record is not
            // in the map yet) keeps the day its commit gave it.
            path.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pgp"))
                .and_then(|n| n.parse::<SubmissionId>().ok())
                .and_then(|id| days.get(&id).copied())
                .or_else(|| {
                    fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .map(UtcDay::of)
                })
                .unwrap_or(epoch)
        };
        let mut count = 0;
        restamp_tree(&self.root, &self.root.join("tls"), &day_of, &mut count)
            .map_err(StoreError::from_io)?;
        Ok(count)
    }

    /// Makes spare files if fewer than half remain usable (see [`pool`]); for the maintenance
    /// pass that runs every sweep interval, never for an arrival. Returns how many were made.
    pub fn refill_spares(&self) -> Result<usize, StoreError> {
        let made = self
            .pool
            .refill_if_low(UtcDay::today())
            .map_err(StoreError::from_io)?;
        if made > 0 {
            self.touch();
        }
        Ok(made)
    }

    /// True if the data directory changed since the last sweep.
    pub fn needs_sweep(&self) -> bool {
        self.touched.load(Ordering::Relaxed)
    }

    /// Deletes submissions crash-safely: the intent is recorded (state *purging*) and made
    /// durable first, so an interruption is finished at the next open. With `removed` (retention
    /// deleting what was never exported), each one's chain entry is marked removed on that day
    /// in the same transaction, for the next bundle to report.
    fn delete(
        &self,
        records: &[SubmissionRecord],
        removed: Option<UtcDay>,
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.touch();
        {
            let index = self.index();
            (&index.records, &index.chain)
                .transaction(|(tx_records, tx_chain)| {
                    for record in records {
                        let mut purging = record.clone();
                        purging.state = RecordState::Purging;
                        tx_records.insert(&record.id.as_bytes()[..], purging.encode())?;
                        let (Some(day), Some(sequence)) = (removed, record.sequence) else {
                            continue;
                        };
                        if let Some(mut entry) = chain::tx_entry(tx_chain, sequence)? {
                            if entry.id == Some(record.id) {
                                entry.removed = Some(day);
                                tx_chain.insert(&chain::key(sequence), entry.encode())?;
                            }
                        }
                    }
                    Ok(())
                })
                .map_err(transaction_error)?;
            index.commit.sync().map_err(StoreError::from_io)?;
        }
        for record in records {
            self.finish_purge(record)?;
        }
        sync_dir(&self.sealed).map_err(StoreError::from_io)?;
        self.index().commit.sync().map_err(StoreError::from_io)?;
        self.touch();
        Ok(())
    }

    /// Empties the ciphertext file and gives it back to the pool (its inode never dated this
    /// submission and may serve another), then drops the record.
    fn finish_purge(&self, record: &SubmissionRecord) -> Result<(), StoreError> {
        match self
            .pool
            .give_back(&self.sealed_path(&record.id), UtcDay::today())
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::from_io(e)),
        }
        self.index()
            .records
            .remove(record.id.as_bytes())
            .map_err(StoreError::from_sled)?;
        self.usage.remove(record.size);
        Ok(())
    }

    /// Drops a batch record once none of its submissions is left.
    /// After a purge: the batch keeps only the ids the store still holds (so its bundle can be
    /// written again, and a resumed export does not fail on what is gone), or goes when none is
    /// left.
    fn forget_purged(&self, batch: &BatchId) -> Result<(), StoreError> {
        let index = self.index();
        let Some(bytes) = index
            .batches
            .get(batch.as_bytes())
            .map_err(StoreError::from_sled)?
        else {
            return Ok(());
        };
        let record = BatchRecord::decode(&bytes)
            .map_err(|e| StoreError::Integrity(vec![format!("batch {batch}: {e}")]))?;
        let before = record.ids.len();
        let mut held = HashSet::new();
        for id in &record.ids {
            if index
                .records
                .contains_key(id.as_bytes())
                .map_err(StoreError::from_sled)?
            {
                held.insert(*id);
            }
        }
        match rules::after_purge(record, |id| held.contains(id)) {
            None => {
                index
                    .batches
                    .remove(batch.as_bytes())
                    .map_err(StoreError::from_sled)?;
            }
            Some(kept) if kept.ids.len() != before => {
                index
                    .batches
                    .insert(batch.as_bytes(), kept.encode())
                    .map_err(StoreError::from_sled)?;
            }
            Some(_) => {}
        }
        Ok(())
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
            submissions.push(record.bundle_entry());
        }
        let chain = match batch.chain {
            Some(range) if !batch.partly_purged => Some(self.segment(batch, range)?),
            _ => None,
        };
        Ok(BundleManifest {
            format: bundle::FORMAT.into(),
            batch: batch.batch,
            created: batch.created,
            submissions,
            chain,
        })
    }

    /// The segment of the chain a batch covers, from what the chain holds: each entry's own id,
    /// SHA-256 and day, and its fate (carried by this batch, deleted unexported by retention, or
    /// missing from the store). The same batch gives the same segment every time.
    fn segment(&self, batch: &BatchRecord, range: ChainRange) -> Result<ChainSegment, StoreError> {
        let carried: HashSet<SubmissionId> = batch.ids.iter().copied().collect();
        let index = self.index();
        let mut entries = Vec::new();
        for item in chain::entries(&index.chain, range.base.sequence + 1, range.head.sequence) {
            let (sequence, stored) = item?;
            let entry = stored.entry(sequence).ok_or_else(|| {
                StoreError::Integrity(vec![format!(
                    "batch {}: chain entry {sequence} was pruned before its batch was purged",
                    batch.batch
                )])
            })?;
            let fate = if carried.contains(&entry.id) {
                Fate::InBundle
            } else if let Some(removed) = stored.removed {
                Fate::RemovedUnexported { removed }
            } else {
                Fate::Missing
            };
            entries.push(SegmentEntry { entry, fate });
        }
        Ok(ChainSegment {
            base: range.base,
            head: range.head,
            entries,
        })
    }

    /// Prunes the chain entries that no batch the store holds covers any more (up to the lowest
    /// base of the batches it holds, or to where the last segment ended when none is left) and
    /// whose submission is gone: only their leaf and hash stay (`docs/trust-v1.md`). The index
    /// rewrite that follows forgets the old values. Returns how many were pruned.
    fn prune_chain(&self) -> Result<usize, StoreError> {
        let batches = self.batch_records()?;
        let index = self.index();
        let bound = chain::point(&index.chain_meta, chain::EXPORTED_THROUGH)?.sequence;
        // Only the ranges of batches that may still be written with their segment are kept. A
        // batch purged in part is written again without it: one report that cannot be opened
        // must not pin its neighbours, and no batch pins the entries after its own range.
        let keep: Vec<(u64, u64)> = batches
            .iter()
            .filter(|b| !b.partly_purged)
            .filter_map(|b| b.chain.as_ref())
            .map(|range| (range.base.sequence, range.head.sequence))
            .collect();
        chain::prune(
            &index.chain,
            &index.chain_meta,
            &index.records,
            bound,
            &keep,
        )
    }

    fn lock_admin(&self) -> std::sync::MutexGuard<'_, ()> {
        self.admin
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Finishes or undoes what a crash interrupted, then checks every record against its file.
    fn recover(&self) -> Result<Recovery, StoreError> {
        let mut recovery = Recovery::default();
        // Spool files belong to submissions that were never acknowledged: back to the pool.
        for entry in fs::read_dir(&self.incoming).map_err(StoreError::from_io)? {
            let entry = entry.map_err(StoreError::from_io)?;
            let path = entry.path();
            let is_spool = path.extension().is_some_and(|e| e == "part");
            if !is_spool || self.pool.give_back(&path, UtcDay::today()).is_err() {
                fs::remove_file(&path).map_err(StoreError::from_io)?;
            }
            recovery.spool_files_removed += 1;
        }
        let mut problems = Vec::new();
        let mut known = HashSet::new();
        let mut stored_bytes = 0u64;
        let mut purging = Vec::new();
        for item in self.index().records.iter() {
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
                purging.push(record);
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
        for record in &purging {
            self.finish_purge(record)?;
            recovery.purges_finished += 1;
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
        self.index().commit.sync().map_err(StoreError::from_io)?;
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
        let hashed = crate::hashing::hash_stream(&mut file).map_err(StoreError::from_io)?;
        let record = SubmissionRecord {
            id,
            day,
            size: meta.len(),
            sha256: hashed.sha256,
            sealing: Sealing::BySender,
            state: RecordState::Stored,
            // An orphan file's envelope is lost with its record; the report itself is kept.
            triage: None,
            sequence: None,
        };
        // Never acknowledged, but held: it takes the next number like any arrival, so every
        // submission the store holds is in the chain and goes out in a batch with its segment.
        store_numbered(&self.index(), &record)?;
        Ok(meta.len())
    }
}

/// The embedded store behind the seam: each method is the inherent one above.
impl SubmissionBackend for SubmissionStore {
    fn begin(&self, expected: Option<u64>) -> Result<IncomingSubmission, StoreError> {
        SubmissionStore::begin(self, expected)
    }

    fn commit_with(
        &self,
        incoming: IncomingSubmission,
        sealing: Sealing,
        triage: Option<&[u8]>,
        conversation: Option<(&crate::replies::Locator, &[u8])>,
    ) -> Result<SubmissionRecord, StoreError> {
        SubmissionStore::commit_with(self, incoming, sealing, triage, conversation)
    }

    fn get(&self, id: &SubmissionId) -> Result<Option<SubmissionRecord>, StoreError> {
        SubmissionStore::get(self, id)
    }

    fn records(&self) -> Result<Vec<SubmissionRecord>, StoreError> {
        SubmissionStore::records(self)
    }

    fn open_sealed(&self, id: &SubmissionId) -> Result<Box<dyn io::Read + Send>, StoreError> {
        Ok(Box::new(SubmissionStore::open_sealed(self, id)?))
    }

    fn begin_export(&self) -> Result<Option<ExportBatch>, StoreError> {
        SubmissionStore::begin_export(self)
    }

    fn export_batch(&self, batch: &BatchId) -> Result<ExportBatch, StoreError> {
        SubmissionStore::export_batch(self, batch)
    }

    fn complete_export(&self, batch: &BatchId) -> Result<(), StoreError> {
        SubmissionStore::complete_export(self, batch)
    }

    fn batches(&self) -> Result<Vec<BatchRecord>, StoreError> {
        SubmissionStore::batches(self)
    }

    fn purge(
        &self,
        manifest: &BundleManifest,
        opened: &HashSet<SubmissionId>,
    ) -> Result<PurgeReport, StoreError> {
        SubmissionStore::purge(self, manifest, opened)
    }

    fn apply_retention(
        &self,
        today: UtcDay,
        days: u32,
        warn_days: u32,
    ) -> Result<RetentionReport, StoreError> {
        SubmissionStore::apply_retention(self, today, days, warn_days)
    }

    fn status(&self) -> Result<StoreStatus, StoreError> {
        SubmissionStore::status(self)
    }
}

/// Sets the times of everything below `dir` (itself included), except below `skip`: regular files
/// get `day_of(path)`'s start, everything else (directories, the admin socket) the epoch.
fn restamp_tree(
    dir: &Path,
    skip: &Path,
    day_of: &dyn Fn(&Path) -> UtcDay,
    count: &mut usize,
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // An old index directory removed meanwhile.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if path == skip {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            restamp_tree(&path, skip, day_of, count)?;
        } else if kind.is_file() {
            set_times(&path, day_of(&path), count)?;
        } else if !kind.is_symlink() {
            set_times(&path, UtcDay::from_days_since_epoch(0), count)?;
        }
    }
    set_times(dir, UtcDay::from_days_since_epoch(0), count)
}

/// Sets a path's access and modification times to a day's start, without opening it (so sockets
/// work too) and without following links. A path deleted meanwhile has nothing left to hide.
fn set_times(path: &Path, day: UtcDay, count: &mut usize) -> io::Result<()> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    let secs = i64::from(day.days_since_epoch()) * 86_400;
    let at = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: at,
        last_modification: at,
    };
    match utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(()) => {
            *count += 1;
            Ok(())
        }
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Stores a record and appends its chain entry, in one transaction: both or neither (not
/// synced). sled serialises transactions over the head key, so two never take the same number.
/// Returns the record with its number.
fn store_numbered(
    index: &Index,
    record: &SubmissionRecord,
) -> Result<SubmissionRecord, StoreError> {
    (&index.records, &index.chain, &index.chain_meta)
        .transaction(|(records, chain_tree, meta)| {
            let sequence = chain::append(chain_tree, meta, record.id, &record.sha256, record.day)?;
            let numbered = SubmissionRecord {
                sequence: Some(sequence),
                ..record.clone()
            };
            records.insert(&record.id.as_bytes()[..], numbered.encode())?;
            Ok(numbered)
        })
        .map_err(transaction_error)
}

/// A failed sled transaction: the reason it aborted (damage), or the storage error.
fn transaction_error(e: sled::transaction::TransactionError<String>) -> StoreError {
    match e {
        sled::transaction::TransactionError::Abort(reason) => StoreError::Integrity(vec![reason]),
        sled::transaction::TransactionError::Storage(e) => StoreError::from_sled(e),
    }
}

/// Creates a directory readable by the owner only, or tightens an existing one.
pub(crate) fn make_private_dir(dir: &Path) -> io::Result<()> {
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
