//! A submission being received: spooled to a private file, bounded in size, quota and disk space.
//!
//! Bytes land in `incoming/` under a random name while the envelope check runs, in a spare file
//! taken from the pool (see [`super::pool`]: no file is created when a submission arrives). Only
//! when the check passes does the store sync the file and link it into `sealed/`; anything else (a
//! refused body, a dropped connection, a crash) gives the file back to the pool, emptied, on drop
//! or at the next start.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ring::digest;

use super::pool::SparePool;
use super::StoreError;
use crate::submission::UtcDay;

/// How often (in bytes written) to re-check free disk space while spooling.
pub(super) const SPACE_CHECK_INTERVAL: u64 = 8 * 1024 * 1024;

/// Quota is reserved in steps of this size.
const RESERVE_STEP: u64 = 1024 * 1024;

/// Bytes held by stored submissions plus bytes promised to submissions in flight.
#[derive(Debug)]
pub struct Usage {
    quota: Option<u64>,
    state: Mutex<UsageState>,
}

#[derive(Debug, Default)]
struct UsageState {
    stored: u64,
    reserved: u64,
}

impl Usage {
    /// Usage starting at `stored` bytes with nothing reserved; `None` quota means no limit.
    pub fn new(quota: Option<u64>, stored: u64) -> Self {
        Usage {
            quota,
            state: Mutex::new(UsageState {
                stored,
                reserved: 0,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut UsageState) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut state)
    }

    /// Promises `n` more bytes to a submission in flight, if the quota allows.
    pub(super) fn reserve(&self, n: u64) -> bool {
        let quota = self.quota;
        self.with(|s| {
            let after = s.stored.saturating_add(s.reserved).saturating_add(n);
            if quota.is_some_and(|q| after > q) {
                false
            } else {
                s.reserved += n;
                true
            }
        })
    }

    pub(super) fn release(&self, n: u64) {
        self.with(|s| s.reserved = s.reserved.saturating_sub(n));
    }

    /// Promises `n` bytes whatever the quota: an incomplete upload found at start was promised
    /// its length before (see [`super::partial`]).
    pub(super) fn hold(&self, n: u64) {
        self.with(|s| s.reserved = s.reserved.saturating_add(n));
    }

    /// Bytes promised to submissions and uploads in flight.
    pub fn reserved(&self) -> u64 {
        self.with(|s| s.reserved)
    }

    /// Turns a reservation into `size` stored bytes.
    fn settle(&self, reserved: u64, size: u64) {
        self.with(|s| {
            s.reserved = s.reserved.saturating_sub(reserved);
            s.stored = s.stored.saturating_add(size);
        });
    }

    pub(super) fn add_stored(&self, n: u64) {
        self.with(|s| s.stored = s.stored.saturating_add(n));
    }

    pub(super) fn remove(&self, n: u64) {
        self.with(|s| s.stored = s.stored.saturating_sub(n));
    }

    /// Bytes held by stored submissions (reservations in flight excluded).
    pub fn stored(&self) -> u64 {
        self.with(|s| s.stored)
    }

    /// The quota in bytes; `None` means unlimited.
    pub fn quota(&self) -> Option<u64> {
        self.quota
    }

    /// True if a submission of `n` bytes would not fit under the quota right now.
    pub fn would_exceed(&self, n: u64) -> bool {
        let quota = self.quota;
        self.with(|s| {
            quota.is_some_and(|q| s.stored.saturating_add(s.reserved).saturating_add(n) > q)
        })
    }
}

/// Limits that apply to one incoming submission.
#[derive(Debug, Clone, Copy)]
pub struct IncomingLimits {
    /// Largest submission accepted, in bytes; a write past it fails with `TooLarge`.
    pub max_bytes: u64,
    /// Refuse to write when the file system would have less than this left.
    pub min_free_bytes: u64,
}

/// A submission being spooled. Implements [`Write`]; a write that breaks a limit fails with an
/// I/O error and leaves the precise reason in [`IncomingSubmission::fault`].
pub struct IncomingSubmission {
    file: Option<BufWriter<File>>,
    path: PathBuf,
    dir: PathBuf,
    spare: SpareReturn,
    written: u64,
    reserved: u64,
    hash: digest::Context,
    limits: IncomingLimits,
    usage: Arc<Usage>,
    next_space_check: u64,
    fault: Option<StoreError>,
}

impl IncomingSubmission {
    /// Wraps a spare file already moved to `path` in `dir`; `spare` takes it back on failure.
    pub(super) fn create(
        file: File,
        path: PathBuf,
        dir: &Path,
        limits: IncomingLimits,
        usage: Arc<Usage>,
        spare: SpareReturn,
    ) -> Self {
        IncomingSubmission {
            file: Some(BufWriter::with_capacity(256 * 1024, file)),
            path,
            dir: dir.to_path_buf(),
            spare,
            written: 0,
            reserved: 0,
            hash: digest::Context::new(&digest::SHA256),
            limits,
            usage,
            next_space_check: SPACE_CHECK_INTERVAL,
            fault: None,
        }
    }

    /// A file already written in full and checked elsewhere (a resumable upload's partial file,
    /// see [`super::partial`]): `written` bytes with SHA-256 state `hash`, holding `reserved`
    /// bytes of the quota. Committed like a spool, without copying its bytes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn adopt(
        file: File,
        path: PathBuf,
        dir: &Path,
        written: u64,
        reserved: u64,
        hash: digest::Context,
        limits: IncomingLimits,
        usage: Arc<Usage>,
        spare: SpareReturn,
    ) -> Self {
        IncomingSubmission {
            file: Some(BufWriter::with_capacity(4096, file)),
            path,
            dir: dir.to_path_buf(),
            spare,
            written,
            reserved,
            hash,
            limits,
            usage,
            next_space_check: u64::MAX,
            fault: None,
        }
    }

    /// Why the last write failed, if it broke a limit or hit the disk.
    pub fn fault(&self) -> Option<&StoreError> {
        self.fault.as_ref()
    }

    /// Takes the reason the last write failed out of `self`, as [`Self::fault`] shows it.
    pub fn take_fault(&mut self) -> Option<StoreError> {
        self.fault.take()
    }

    /// Bytes accepted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn fail(&mut self, fault: StoreError) -> io::Error {
        let error = io::Error::other(fault.to_string());
        self.fault.get_or_insert(fault);
        error
    }

    /// Flushes and syncs the spooled bytes. Returns the open file, its path, size and SHA-256.
    pub(super) fn finish(mut self) -> Result<Spooled, StoreError> {
        if let Some(fault) = self.fault.take() {
            return Err(fault);
        }
        let writer = self
            .file
            .take()
            .ok_or_else(|| StoreError::Io(io::Error::other("spool already finished")))?;
        let file = writer
            .into_inner()
            .map_err(|e| StoreError::from_io(e.into_error()))?;
        super::durable::sync_file(&file).map_err(StoreError::from_io)?;
        let hash = std::mem::replace(&mut self.hash, digest::Context::new(&digest::SHA256));
        Ok(Spooled {
            file,
            path: std::mem::take(&mut self.path),
            size: self.written,
            reserved: std::mem::take(&mut self.reserved),
            sha256: hex::encode(hash.finish()),
            usage: self.usage.clone(),
            spare: self.spare.clone(),
            settled: false,
        })
    }
}

impl Write for IncomingSubmission {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.fault.is_some() {
            return Err(io::Error::other("spool already failed"));
        }
        let n = buf.len() as u64;
        if self.written.saturating_add(n) > self.limits.max_bytes {
            let limit = self.limits.max_bytes;
            return Err(self.fail(StoreError::TooLarge { limit }));
        }
        let needed = self.written + n;
        if needed > self.reserved {
            // Reserve in steps so the quota lock is not taken per write; near the quota, reserve
            // exactly what is needed so the last bytes under it are still usable.
            let exact = needed - self.reserved;
            let step = exact.max(RESERVE_STEP);
            if self.usage.reserve(step) {
                self.reserved += step;
            } else if self.usage.reserve(exact) {
                self.reserved += exact;
            } else {
                return Err(self.fail(StoreError::QuotaExceeded));
            }
        }
        if self.written + n >= self.next_space_check {
            self.next_space_check = self.written + n + SPACE_CHECK_INTERVAL;
            if let Err(e) = check_free_space(&self.dir, self.limits.min_free_bytes) {
                return Err(self.fail(e));
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("spool already finished"));
        };
        match file.write_all(buf) {
            Ok(()) => {
                self.hash.update(buf);
                self.written += n;
                Ok(buf.len())
            }
            Err(e) => Err(self.fail(StoreError::from_io(e))),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for IncomingSubmission {
    fn drop(&mut self) {
        self.usage.release(self.reserved);
        if !self.path.as_os_str().is_empty() {
            drop(self.file.take());
            self.spare.give_back(&self.path);
        }
    }
}

/// How a spool file goes back to the pool when its submission is not kept.
#[derive(Clone)]
pub(super) struct SpareReturn {
    pub pool: Arc<SparePool>,
    /// Set whenever the data directory changes, so the next sweep blurs the change times.
    pub touched: Arc<AtomicBool>,
}

impl SpareReturn {
    pub(super) fn give_back(&self, path: &Path) {
        if self.pool.give_back(path, UtcDay::today()).is_err() {
            // Whatever went wrong, the file must not stay where a submission would be.
            let _ = std::fs::remove_file(path);
        }
        // After the change, so a sweep that ran meanwhile is not the last one.
        self.touched.store(true, Ordering::Relaxed);
    }
}

/// A fully received, synced spool file, ready to be linked into the store.
pub(super) struct Spooled {
    pub file: File,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    reserved: u64,
    usage: Arc<Usage>,
    spare: SpareReturn,
    settled: bool,
}

impl Spooled {
    /// The submission is linked into the store: its bytes now count as stored, and dropping
    /// `self` removes only the spool name.
    pub fn settle(mut self) {
        self.usage
            .settle(std::mem::take(&mut self.reserved), self.size);
        self.settled = true;
    }

    /// The submission is kept elsewhere (the object store): its bytes count as stored, and the
    /// spool file goes back to the pool.
    pub fn settle_elsewhere(mut self) {
        self.usage
            .settle(std::mem::take(&mut self.reserved), self.size);
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        self.usage.release(self.reserved);
        if self.path.as_os_str().is_empty() {
            return;
        }
        if self.settled {
            let _ = std::fs::remove_file(&self.path);
        } else {
            self.spare.give_back(&self.path);
        }
    }
}

pub(super) fn check_free_space(dir: &Path, min_free: u64) -> Result<(), StoreError> {
    if min_free == 0 {
        return Ok(());
    }
    match fs2::available_space(dir) {
        Ok(free) if free < min_free => Err(StoreError::DiskFull),
        Ok(_) => Ok(()),
        Err(e) => Err(StoreError::from_io(e)),
    }
}
