//! Making writes durable: fsync for files and directories, and group commit for the index.
//!
//! sled's `flush()` uses `sync_file_range`, which survives a killed process but not a power cut
//! (the data may sit in the disk's cache and the file's metadata is not synced). We promise
//! reporters "durably on disk", so after sled's flush we `fdatasync` its log file ourselves.
//! That costs a few milliseconds per call; [`GroupCommit`] lets concurrent submissions share one
//! flush, so throughput grows with concurrency instead of collapsing.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Flushes a file's data and metadata to stable storage.
pub fn sync_file(file: &File) -> io::Result<()> {
    file.sync_all()
}

/// Makes a directory's entries (creations, renames, deletions) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// fsync every file and directory below `dir` (files first, then their directory).
pub fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

/// Shares index flushes between concurrent writers.
pub struct GroupCommit {
    db: sled::Db,
    /// sled's log file, opened by us so we can fdatasync it.
    log: File,
    state: Mutex<State>,
    flushed: Condvar,
}

#[derive(Default)]
struct State {
    /// Writers that have finished their index change and want it durable.
    requested: u64,
    /// Every request up to this number is durable.
    durable: u64,
    flushing: bool,
}

impl GroupCommit {
    /// `log_path` is sled's log file inside the index directory.
    pub fn new(db: sled::Db, log_path: &Path) -> io::Result<Self> {
        let log = File::open(log_path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot open the index log {} for syncing: {e}",
                    log_path.display()
                ),
            )
        })?;
        Ok(GroupCommit {
            db,
            log,
            state: Mutex::new(State::default()),
            flushed: Condvar::new(),
        })
    }

    /// Returns once every index change made before this call is on stable storage.
    ///
    /// Blocking; call from a blocking context. One caller flushes while later callers wait, and
    /// the next flush covers all of them.
    pub fn sync(&self) -> io::Result<()> {
        let mut state = self.lock();
        state.requested += 1;
        let ticket = state.requested;
        loop {
            if state.durable >= ticket {
                return Ok(());
            }
            if state.flushing {
                state = self
                    .flushed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            state.flushing = true;
            let target = state.requested;
            drop(state);
            let result = self.flush_now();
            state = self.lock();
            state.flushing = false;
            if result.is_ok() {
                state.durable = state.durable.max(target);
            }
            self.flushed.notify_all();
            // On failure, waiters retry their own flush; this caller reports the error.
            result?;
        }
    }

    fn flush_now(&self) -> io::Result<()> {
        self.db.flush().map_err(sled_to_io)?;
        self.log.sync_data()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub fn sled_to_io(e: sled::Error) -> io::Error {
    match e {
        sled::Error::Io(io) => io,
        other => io::Error::other(other.to_string()),
    }
}
