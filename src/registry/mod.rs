//! The reviewers' incident registry (`docs/registry-v1.md`): one SQLite file beside the opened
//! reports, where every report becomes a case that reviewers follow through the protocol's steps,
//! and from which statistics, a report and publishable aggregates are drawn.
//!
//! This module owns the file: recognising it (application id, schema version, a quick integrity
//! check), migrating it forward, and the one transaction every command runs in. What goes in it:
//! [`record`] (cases from opened reports), [`workflow`] (statuses, risk, history, links),
//! [`chain`] (what the bundles showed of the gateway's log of accepted submissions).

pub mod chain;
pub mod import;
pub mod publish;
pub mod record;
pub mod report;
mod schema;
pub mod stats;
pub mod workflow;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use record::Recorded;
pub use workflow::{CaseFilter, CaseRow, CaseUpdate, Risk, Status};

/// The registry's file name in the `--out` folder of `open`.
pub const REGISTRY_FILE: &str = "registry.sqlite3";

/// `PRAGMA application_id` of a registry: the bytes "RGRD".
pub const APPLICATION_ID: i32 = i32::from_be_bytes(*b"RGRD");

/// How long a command waits for another one holding the registry.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the registry cannot be used, or a command on it refused. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file that is not a registry (another SQLite database, or not SQLite at all).
    #[error(
        "{0}: not a Resguardo registry; nothing was changed (move it away or give another --out)"
    )]
    Foreign(PathBuf),
    /// Made by a newer version of this tool.
    #[error("{path}: made by a newer Resguardo (registry schema {found}); this tool reads up to schema {}", schema::VERSION)]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
    },
    /// SQLite's integrity check failed.
    #[error("{path}: the registry is damaged ({finding}); restore it from a backup")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// SQLite's first finding.
        finding: String,
    },
    /// No case with this number.
    #[error("no case {0} in the registry")]
    UnknownCase(i64),
    /// A status, risk level or field value the registry does not know.
    #[error("{0}")]
    Unknown(String),
    /// A status change the workflow does not allow.
    #[error("case {case} is {from}: it cannot move to {to} (cases only move forward)")]
    BadTransition {
        /// The case.
        case: i64,
        /// Its status.
        from: &'static str,
        /// The status asked for.
        to: &'static str,
    },
    /// A row of an imported CSV file that cannot be a case (nothing was imported).
    #[error("{path}:{line}: {reason}; nothing was imported")]
    BadRow {
        /// The file.
        path: PathBuf,
        /// The row's line number (1 is the header).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A file or folder could not be read or made.
    #[error("{0}")]
    Io(String),
    /// SQLite failed (disk, lock held for too long, …).
    #[error("the registry: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl RegistryError {
    /// Whether the file itself is the problem (foreign, newer or damaged), not the request.
    pub fn is_about_the_file(&self) -> bool {
        matches!(
            self,
            RegistryError::Foreign(_) | RegistryError::Newer { .. } | RegistryError::Damaged { .. }
        )
    }
}

/// An open registry.
pub struct Registry {
    conn: Connection,
    path: PathBuf,
}

impl Registry {
    /// The registry of the reports in `out` (`out/registry.sqlite3`), made if missing.
    pub fn in_folder(out: &Path) -> Result<Self, RegistryError> {
        Self::open(&out.join(REGISTRY_FILE))
    }

    /// Opens (or makes) the registry at `path`: refuses a foreign, newer or damaged file, and
    /// migrates an older one forward.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        Self::open_up_to(path, schema::VERSION)
    }

    fn open_up_to(path: &Path, version: i64) -> Result<Self, RegistryError> {
        let fresh = std::fs::metadata(path)
            .map(|m| m.len() == 0)
            .unwrap_or(true);
        if fresh {
            // Private like every file beside the reports (SQLite gives its -wal and -shm files
            // the database's mode).
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| RegistryError::Io(format!("{}: {e}", path.display())))?;
        }
        if !fresh && !starts_like_sqlite(path) {
            return Err(RegistryError::Foreign(path.to_path_buf()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|_| RegistryError::Foreign(path.to_path_buf()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mut registry = Registry {
            conn,
            path: path.to_path_buf(),
        };
        if !fresh {
            registry.recognise()?;
        }
        registry
            .conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| registry.classify(e))?;
        registry.conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate(&mut registry.conn, version)?;
        Ok(registry)
    }

    /// Checks the application id, the schema version and SQLite's quick integrity check.
    fn recognise(&self) -> Result<(), RegistryError> {
        let id: i32 = self
            .conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(|e| self.classify(e))?;
        if id != APPLICATION_ID {
            return Err(RegistryError::Foreign(self.path.clone()));
        }
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > schema::VERSION {
            return Err(RegistryError::Newer {
                path: self.path.clone(),
                found,
            });
        }
        let finding: String = self
            .conn
            .pragma_query_value(None, "quick_check", |r| r.get(0))
            .map_err(|e| self.classify(e))?;
        if finding != "ok" {
            // SQLite lists every finding on its own line: the first says enough.
            let first = finding.lines().next().unwrap_or_default().to_string();
            return Err(RegistryError::Damaged {
                path: self.path.clone(),
                finding: first,
            });
        }
        Ok(())
    }

    /// SQLite's "not a database" and "malformed" as what they mean for the reviewer.
    fn classify(&self, e: rusqlite::Error) -> RegistryError {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => RegistryError::Foreign(self.path.clone()),
            Some(rusqlite::ErrorCode::DatabaseCorrupt) => RegistryError::Damaged {
                path: self.path.clone(),
                finding: e.to_string(),
            },
            _ => RegistryError::Sqlite(e),
        }
    }

    /// Runs `work` in one immediate transaction: all of it or nothing.
    pub(crate) fn write<T>(
        &mut self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = work(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// The connection, for reading.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, RegistryError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }
}

/// Whether the file begins with SQLite's header (a foreign file is refused before SQLite, which
/// would otherwise take an empty or odd file for a new database).
fn starts_like_sqlite(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok()
        && &header == b"SQLite format 3\0"
}

/// The current time, UTC, to the second (the offline machine's clock).
pub(crate) fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let day = crate::submission::UtcDay::from_days_since_epoch((secs / 86_400) as i32);
    let s = secs % 86_400;
    format!("{day}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests;
