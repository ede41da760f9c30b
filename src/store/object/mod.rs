//! The object backend: sealed submissions in an S3 bucket (tested against Garage), under this
//! gateway's own key prefix (`docs/store-v1.md`, section 3).
//!
//! ```text
//! resguardo/<gateway>/sealed/<id>      the ciphertext, byte for byte as received
//! resguardo/<gateway>/records/<id>     its record (the JSON the embedded index keeps)
//! resguardo/<gateway>/batches/<batch>  an export batch record
//! resguardo/<gateway>/owner            the running instance's random token
//! ```
//!
//! One writer per prefix is what makes exports exactly-once without a lock or a conditional
//! write (Garage ignores `If-None-Match`): two gateways never write the same key. The `owner`
//! token detects two instances started with the same name; the one that lost it refuses to
//! export, purge or apply retention ([`StoreError::NotOwner`]).
//!
//! Incoming bodies are spooled locally by the embedded store's pool, exactly as without this
//! backend, then streamed to the bucket with their SHA-256 (the store verifies it); a record is
//! acknowledged only after both PUTs were acknowledged by the store's write quorum. Records and
//! batches are cached in memory and reloaded from the bucket before every export.

pub mod client;
mod sigv4;

pub use client::{S3Client, S3Error, S3Target};

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use crate::bundle::{self, BundleManifest};
use crate::replies::Locator;
use crate::submission::{BatchId, Sealing, SubmissionId, UtcDay};

use super::{
    rules, BatchRecord, ExportBatch, IncomingSubmission, PurgeReport, RecordState, RetentionReport,
    StoreError, StoreStatus, SubmissionBackend, SubmissionRecord, SubmissionStore,
};

/// Largest record or batch object read back (a record with its triage envelope is a few KiB;
/// a batch lists at most every submission).
const MAX_RECORD_BYTES: usize = 64 * 1024;
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// The file in the data directory that says its submissions are in an object store, so that
/// operator commands run without the gateway refuse instead of showing an empty store.
pub const MARKER_FILE: &str = "object-store";

/// Writes the marker: the gateway's name, nothing else.
pub fn write_marker(path: &Path, gateway: &str) -> Result<(), StoreError> {
    std::fs::write(path, format!("{gateway}\n")).map_err(StoreError::from_io)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    super::durable::sync_dir(dir).map_err(StoreError::from_io)
}

/// Largest credentials file read.
const MAX_CREDENTIALS_BYTES: u64 = 4096;

/// What opening the object store had to finish or repair, for the operator's log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ObjectRecovery {
    /// Purges interrupted by a crash and completed now.
    pub purges_finished: usize,
    /// Records of a fixed batch that still said "stored", set to "exported" now.
    pub batch_records_finished: usize,
    /// Ciphertext objects whose record was never written, indexed now.
    pub orphans_adopted: Vec<SubmissionId>,
}

/// Records and batches of this gateway's prefix, as the bucket holds them.
#[derive(Default)]
struct Held {
    records: BTreeMap<SubmissionId, SubmissionRecord>,
    batches: BTreeMap<BatchId, BatchRecord>,
}

/// Sealed submissions in a bucket, under one gateway's prefix.
pub struct ObjectStore {
    /// Spool, spare pool and quota (and conversations) stay local.
    local: Arc<SubmissionStore>,
    client: S3Client,
    /// `resguardo/<gateway>/`.
    prefix: String,
    /// This instance's token in `owner`.
    token: String,
    held: RwLock<Held>,
    /// Export, purge and retention change many objects; one at a time.
    admin: Mutex<()>,
}

/// Reads `access_key_id` and `secret_access_key` from a credentials file (mode 0600 or
/// stricter; nothing else in it).
pub fn read_credentials(path: &Path) -> Result<(String, zeroize::Zeroizing<String>), StoreError> {
    let unavailable = |reason: String| StoreError::Unavailable {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| unavailable(e.to_string()))?;
    let meta = file.metadata().map_err(|e| unavailable(e.to_string()))?;
    if meta.mode() & 0o077 != 0 {
        return Err(unavailable(format!(
            "the credentials file is readable by others (mode {:o}); chmod 600 it",
            meta.mode() & 0o777
        )));
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    file.take(MAX_CREDENTIALS_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| unavailable(e.to_string()))?;
    if text.len() as u64 > MAX_CREDENTIALS_BYTES {
        return Err(unavailable("the credentials file is too large".into()));
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Credentials {
        access_key_id: String,
        secret_access_key: String,
    }
    // The parser's message may quote the line; never pass it on (it could hold the secret).
    let parsed: Credentials = toml::from_str(&text).map_err(|_| {
        unavailable(
            "the credentials file must hold exactly access_key_id = \"…\" and \
             secret_access_key = \"…\""
                .into(),
        )
    })?;
    Ok((
        parsed.access_key_id,
        zeroize::Zeroizing::new(parsed.secret_access_key),
    ))
}

fn backend(e: S3Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn damaged(what: String) -> StoreError {
    StoreError::Integrity(vec![what])
}

impl ObjectStore {
    /// Opens `gateway`'s prefix: checks the bucket (an unreachable store, a missing bucket or
    /// refused credentials stop the start), takes ownership of the prefix, loads its records
    /// and batches, and finishes what a crash interrupted.
    pub fn open(
        local: Arc<SubmissionStore>,
        client: S3Client,
        gateway: &str,
    ) -> Result<(ObjectStore, ObjectRecovery), StoreError> {
        client.check_bucket().map_err(backend)?;
        let store = ObjectStore {
            local,
            client,
            prefix: format!("resguardo/{gateway}/"),
            token: hex::encode(SubmissionId::random().as_bytes()),
            held: RwLock::new(Held::default()),
            admin: Mutex::new(()),
        };
        store
            .client
            .put_small(&store.owner_key(), store.token.as_bytes())
            .map_err(backend)?;
        let recovery = store.recover()?;
        let bytes: u64 = store.read().records.values().map(|r| r.size).sum();
        store.local.usage().add_stored(bytes);
        Ok((store, recovery))
    }

    /// This gateway's prefix in the bucket.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, kind: &str, name: impl std::fmt::Display) -> String {
        format!("{}{kind}/{name}", self.prefix)
    }

    fn owner_key(&self) -> String {
        format!("{}owner", self.prefix)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Held> {
        self.held.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Held> {
        self.held.write().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_admin(&self) -> std::sync::MutexGuard<'_, ()> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses when another instance took this prefix since we started.
    fn check_owner(&self) -> Result<(), StoreError> {
        let found = self
            .client
            .get_small(&self.owner_key(), 256)
            .map_err(backend)?;
        if found.as_deref() == Some(self.token.as_bytes()) {
            Ok(())
        } else {
            Err(StoreError::NotOwner(self.prefix.clone()))
        }
    }

    fn put_record(&self, record: &SubmissionRecord) -> Result<(), StoreError> {
        self.client
            .put_small(&self.key("records", record.id), &record.encode())
            .map_err(backend)
    }

    fn put_batch(&self, batch: &BatchRecord) -> Result<(), StoreError> {
        self.client
            .put_small(&self.key("batches", batch.batch), &batch.encode())
            .map_err(backend)
    }

    /// Names listed under `kind/`, parsed; anything else under the prefix is damage.
    fn listed<T: std::str::FromStr>(
        &self,
        kind: &str,
        problems: &mut Vec<String>,
    ) -> Result<Vec<(T, u64)>, StoreError> {
        let dir = format!("{}{kind}/", self.prefix);
        let mut out = Vec::new();
        for object in self.client.list(&dir).map_err(backend)? {
            match object
                .key
                .strip_prefix(&dir)
                .and_then(|n| n.parse::<T>().ok())
            {
                Some(name) => out.push((name, object.size)),
                None => problems.push(format!("unexpected object {:?}", object.key)),
            }
        }
        Ok(out)
    }

    /// Reads the listed object `kind/<name>` (at most `max` bytes), a `what` ("record", "batch"),
    /// and decodes it; `decode` also says whether it is filed under its own name. `None` if it was deleted since the listing,
    /// or is damaged (then the reason is added to `problems`).
    fn read_listed<T>(
        &self,
        (kind, what): (&str, &str),
        name: impl std::fmt::Display,
        max: usize,
        problems: &mut Vec<String>,
        decode: impl FnOnce(&[u8]) -> Result<(bool, T), String>,
    ) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self
            .client
            .get_small(&self.key(kind, &name), max)
            .map_err(backend)?
        else {
            return Ok(None); // deleted since the listing
        };
        match decode(&bytes) {
            Ok((true, value)) => return Ok(Some(value)),
            Ok((false, _)) => problems.push(format!("{what} {name} is filed under the wrong key")),
            Err(e) => problems.push(format!("{what} {name} is unreadable: {e}")),
        }
        Ok(None)
    }

    /// Loads the records and batches of the prefix; records in `known` are only listed (this
    /// instance wrote them: the cache has them as they are), the others are read.
    fn load(
        &self,
        known: &BTreeMap<SubmissionId, SubmissionRecord>,
        problems: &mut Vec<String>,
    ) -> Result<Held, StoreError> {
        let mut held = Held::default();
        for (id, _) in self.listed::<SubmissionId>("records", problems)? {
            if let Some(record) = known.get(&id) {
                held.records.insert(id, record.clone());
                continue;
            }
            let read = self.read_listed(
                ("records", "record"),
                id,
                MAX_RECORD_BYTES,
                problems,
                |bytes| SubmissionRecord::decode(bytes).map(|r| (r.id == id, r)),
            )?;
            if let Some(record) = read {
                held.records.insert(id, record);
            }
        }
        for (batch, _) in self.listed::<BatchId>("batches", problems)? {
            let read = self.read_listed(
                ("batches", "batch"),
                batch,
                MAX_BATCH_BYTES,
                problems,
                |bytes| BatchRecord::decode(bytes).map(|b| (b.batch == batch, b)),
            )?;
            if let Some(record) = read {
                held.batches.insert(batch, record);
            }
        }
        Ok(held)
    }

    /// Finishes interrupted purges and batches, adopts ciphertext without a record, and
    /// checks every record against its object.
    fn recover(&self) -> Result<ObjectRecovery, StoreError> {
        let mut recovery = ObjectRecovery::default();
        let mut problems = Vec::new();
        let held = self.load(&BTreeMap::new(), &mut problems)?;
        *self.write() = held;
        let purging: Vec<SubmissionRecord> = self
            .read()
            .records
            .values()
            .filter(|r| r.state == RecordState::Purging)
            .cloned()
            .collect();
        for record in &purging {
            self.finish_purge(record)?;
            recovery.purges_finished += 1;
        }
        recovery.batch_records_finished = self.finish_batches()?;
        // Listed after the purges are finished: what they deleted is no orphan.
        let sealed: BTreeMap<SubmissionId, u64> = self
            .listed::<SubmissionId>("sealed", &mut problems)?
            .into_iter()
            .collect();
        let records: Vec<SubmissionRecord> = self.read().records.values().cloned().collect();
        for record in &records {
            match sealed.get(&record.id) {
                Some(&size) if size == record.size => {}
                Some(&size) => problems.push(format!(
                    "submission {}: ciphertext is {size} bytes, the record says {}",
                    record.id, record.size
                )),
                None => problems.push(format!("submission {}: ciphertext is missing", record.id)),
            }
        }
        for (&id, &size) in &sealed {
            if self.read().records.contains_key(&id) {
                continue;
            }
            match self.adopt(id, size) {
                Ok(()) => recovery.orphans_adopted.push(id),
                Err(e) => problems.push(format!("unindexed ciphertext {id}: {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(StoreError::Integrity(problems));
        }
        Ok(recovery)
    }

    /// A batch record is written before its submissions' records: any of them still "stored"
    /// is set to "exported" now.
    fn finish_batches(&self) -> Result<usize, StoreError> {
        let mut late = Vec::new();
        {
            let held = self.read();
            for batch in held.batches.values() {
                for id in &batch.ids {
                    if let Some(record) = held.records.get(id) {
                        if record.state == RecordState::Stored {
                            let mut record = record.clone();
                            record.state = RecordState::Exported { batch: batch.batch };
                            late.push(record);
                        }
                    }
                }
            }
        }
        for record in &late {
            self.put_record(record)?;
            self.write().records.insert(record.id, record.clone());
        }
        Ok(late.len())
    }

    /// Indexes a ciphertext object whose record was never written (a crash between the two
    /// PUTs): hashed again, dated today (later than it arrived, so kept longer, never less).
    fn adopt(&self, id: SubmissionId, size: u64) -> Result<(), StoreError> {
        let mut reader = self
            .client
            .get(&self.key("sealed", id))
            .map_err(backend)?
            .ok_or(StoreError::NotFound(id))?;
        let hashed = crate::hashing::hash_stream(&mut reader).map_err(StoreError::from_io)?;
        if hashed.size != size {
            return Err(damaged(format!(
                "submission {id}: read {} bytes of {size}",
                hashed.size
            )));
        }
        let record = SubmissionRecord {
            id,
            day: UtcDay::today(),
            size,
            sha256: hashed.sha256,
            sealing: Sealing::BySender,
            state: RecordState::Stored,
            // Its envelope was lost with its record; the report itself is kept.
            triage: None,
            sequence: None,
        };
        self.put_record(&record)?;
        self.write().records.insert(id, record);
        Ok(())
    }

    /// Takes in records written to the prefix by another instance and drops those it deleted,
    /// so an export never misses a submission this cache did not see arrive.
    fn refresh(&self) -> Result<(), StoreError> {
        let known = self.read().records.clone();
        let mut problems = Vec::new();
        let mut fresh = self.load(&known, &mut problems)?;
        if !problems.is_empty() {
            return Err(StoreError::Integrity(problems));
        }
        let mut held = self.write();
        // A commit that finished while the listing ran is kept, listed or not.
        for (id, record) in std::mem::take(&mut held.records) {
            if !known.contains_key(&id) {
                fresh.records.entry(id).or_insert(record);
            }
        }
        let mut gone = 0;
        for (id, record) in &known {
            if !fresh.records.contains_key(id) {
                gone += 1;
                self.local.usage().remove(record.size);
            }
        }
        if gone > 0 {
            tracing::warn!("{gone} submissions of this prefix were deleted by another instance");
        }
        *held = fresh;
        Ok(())
    }

    fn commit_submission(
        &self,
        incoming: IncomingSubmission,
        sealing: Sealing,
        triage: Option<&[u8]>,
        conversation_begun: bool,
    ) -> Result<SubmissionRecord, StoreError> {
        let spooled = incoming.finish()?;
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(&spooled.sha256, &mut sha256)
            .map_err(|e| StoreError::Io(io::Error::other(e)))?;
        let id = SubmissionId::random();
        // The spool was opened for writing only; read it through a second descriptor.
        let file = std::fs::File::open(&spooled.path).map_err(StoreError::from_io)?;
        let mut body = io::BufReader::with_capacity(64 * 1024, file);
        self.client
            .put(&self.key("sealed", id), &mut body, spooled.size, &sha256)
            .map_err(backend)?;
        let record = SubmissionRecord {
            id,
            day: UtcDay::today(),
            size: spooled.size,
            sha256: spooled.sha256.clone(),
            sealing,
            state: RecordState::Stored,
            triage: triage.map(|t| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(t)
            }),
            sequence: None,
        };
        if let Err(e) = self.put_record(&record) {
            // Not acknowledged. The record may be stored all the same (only the answer lost):
            // take it back first, and the ciphertext only once it is surely gone, so a record
            // never names a missing ciphertext. If either stays, the next start keeps the
            // report (at worst a duplicate of what the sender was told failed and resent).
            if self.client.delete(&self.key("records", id)).is_ok() {
                let _ = self.client.delete(&self.key("sealed", id));
            }
            return Err(e);
        }
        if conversation_begun {
            // The conversation is in the local index: durable before the 201, as the embedded
            // store makes the record and the conversation durable together.
            self.local
                .index()
                .commit
                .sync()
                .map_err(StoreError::from_io)?;
        }
        self.write().records.insert(id, record.clone());
        spooled.settle_elsewhere();
        Ok(record)
    }

    fn manifest_for(&self, batch: &BatchRecord) -> Result<BundleManifest, StoreError> {
        let held = self.read();
        let mut submissions = Vec::with_capacity(batch.ids.len());
        for id in &batch.ids {
            let record = held.records.get(id).ok_or_else(|| {
                damaged(format!("batch {}: submission {id} is missing", batch.batch))
            })?;
            submissions.push(record.clone().bundle_entry());
        }
        Ok(BundleManifest {
            format: bundle::FORMAT.into(),
            batch: batch.batch,
            created: batch.created,
            submissions,
            chain: None,
        })
    }

    /// Fixes a batch of `ids`: the batch record first (from then on they are exported, even
    /// if what follows is cut), then each submission's record.
    fn fix_batch(&self, ids: Vec<SubmissionId>) -> Result<ExportBatch, StoreError> {
        let batch = BatchRecord {
            batch: BatchId::random(),
            created: UtcDay::today(),
            ids,
            delivered: false,
            chain: None,
            partly_purged: false,
        };
        self.put_batch(&batch)?;
        // Another instance may have taken the prefix while the batch was chosen: then this
        // batch is not ours to hand out.
        if let Err(e) = self.check_owner() {
            let _ = self.client.delete(&self.key("batches", batch.batch));
            return Err(e);
        }
        self.write().batches.insert(batch.batch, batch.clone());
        self.finish_batches()?;
        Ok(ExportBatch {
            manifest: self.manifest_for(&batch)?,
            resumed: false,
        })
    }

    /// Deletes submissions crash-safely: each record says "purging" before anything goes.
    fn delete(&self, records: &[SubmissionRecord]) -> Result<(), StoreError> {
        for record in records {
            let mut purging = record.clone();
            purging.state = RecordState::Purging;
            self.put_record(&purging)?;
            self.write().records.insert(purging.id, purging);
        }
        for record in records {
            self.finish_purge(record)?;
        }
        Ok(())
    }

    fn finish_purge(&self, record: &SubmissionRecord) -> Result<(), StoreError> {
        self.client
            .delete(&self.key("sealed", record.id))
            .map_err(backend)?;
        self.client
            .delete(&self.key("records", record.id))
            .map_err(backend)?;
        if self.write().records.remove(&record.id).is_some() {
            self.local.usage().remove(record.size);
        }
        Ok(())
    }

    fn forget_purged(&self, batch: &BatchId) -> Result<(), StoreError> {
        let Some(record) = self.read().batches.get(batch).cloned() else {
            return Ok(());
        };
        let before = record.ids.len();
        let kept = {
            let held = self.read();
            rules::after_purge(record, |id| held.records.contains_key(id))
        };
        match kept {
            None => {
                self.client
                    .delete(&self.key("batches", batch))
                    .map_err(backend)?;
                self.write().batches.remove(batch);
            }
            Some(kept) if kept.ids.len() != before => {
                self.put_batch(&kept)?;
                self.write().batches.insert(*batch, kept);
            }
            Some(_) => {}
        }
        Ok(())
    }
}

impl SubmissionBackend for ObjectStore {
    fn begin(&self, expected: Option<u64>) -> Result<IncomingSubmission, StoreError> {
        self.local.begin(expected)
    }

    fn commit_with(
        &self,
        incoming: IncomingSubmission,
        sealing: Sealing,
        triage: Option<&[u8]>,
        conversation: Option<(&Locator, &[u8])>,
    ) -> Result<SubmissionRecord, StoreError> {
        self.local.with_conversation(conversation, || {
            self.commit_submission(incoming, sealing, triage, conversation.is_some())
        })
    }

    fn get(&self, id: &SubmissionId) -> Result<Option<SubmissionRecord>, StoreError> {
        Ok(self.read().records.get(id).cloned())
    }

    fn records(&self) -> Result<Vec<SubmissionRecord>, StoreError> {
        Ok(self.read().records.values().cloned().collect())
    }

    fn open_sealed(&self, id: &SubmissionId) -> Result<Box<dyn Read + Send>, StoreError> {
        self.client
            .get(&self.key("sealed", id))
            .map_err(backend)?
            .ok_or(StoreError::NotFound(*id))
    }

    fn begin_export(&self) -> Result<Option<ExportBatch>, StoreError> {
        let _admin = self.lock_admin();
        self.check_owner()?;
        self.refresh()?;
        self.finish_batches()?;
        let undelivered = self.read().batches.values().find(|b| !b.delivered).cloned();
        if let Some(batch) = undelivered {
            return Ok(Some(ExportBatch {
                manifest: self.manifest_for(&batch)?,
                resumed: true,
            }));
        }
        let selection = rules::export_selection(self.read().records.values());
        match selection {
            rules::ExportSelection::Nothing => Ok(None),
            rules::ExportSelection::Unnumbered(ids) | rules::ExportSelection::Stored(ids) => {
                self.fix_batch(ids).map(Some)
            }
        }
    }

    fn export_batch(&self, batch: &BatchId) -> Result<ExportBatch, StoreError> {
        let record = self
            .read()
            .batches
            .get(batch)
            .cloned()
            .ok_or(StoreError::BatchNotFound(*batch))?;
        Ok(ExportBatch {
            manifest: self.manifest_for(&record)?,
            resumed: true,
        })
    }

    fn complete_export(&self, batch: &BatchId) -> Result<(), StoreError> {
        let _admin = self.lock_admin();
        self.check_owner()?;
        let mut record = self
            .read()
            .batches
            .get(batch)
            .cloned()
            .ok_or(StoreError::BatchNotFound(*batch))?;
        record.delivered = true;
        self.put_batch(&record)?;
        self.write().batches.insert(*batch, record);
        Ok(())
    }

    fn batches(&self) -> Result<Vec<BatchRecord>, StoreError> {
        let mut batches: Vec<BatchRecord> = self.read().batches.values().cloned().collect();
        batches.sort_by_key(|b| b.created);
        Ok(batches)
    }

    fn purge(
        &self,
        manifest: &BundleManifest,
        opened: &HashSet<SubmissionId>,
    ) -> Result<PurgeReport, StoreError> {
        let _admin = self.lock_admin();
        self.check_owner()?;
        self.finish_batches()?;
        let (mut report, doomed) = rules::purge_plan(manifest, opened, |id| self.get(id))?;
        self.delete(&doomed)?;
        report.purged = doomed.iter().map(|r| r.id).collect();
        self.forget_purged(&manifest.batch)?;
        Ok(report)
    }

    fn apply_retention(
        &self,
        today: UtcDay,
        days: u32,
        warn_days: u32,
    ) -> Result<RetentionReport, StoreError> {
        let _admin = self.lock_admin();
        self.check_owner()?;
        self.refresh()?;
        // A batch fixed just before a crash lists records that may still say "stored":
        // they are exported, never retention's to delete.
        self.finish_batches()?;
        let records = self.records()?;
        let (doomed, report) = rules::retention_split(records, today, days, warn_days);
        self.delete(&doomed)?;
        Ok(report)
    }

    fn status(&self) -> Result<StoreStatus, StoreError> {
        let held = self.read();
        Ok(rules::status_of(
            held.records.values(),
            held.batches.values(),
        ))
    }
}
