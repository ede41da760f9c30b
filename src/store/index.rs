//! The index: a small sled database of submission and batch records, rewritten whole to forget.
//!
//! sled is a log: a record that was removed stays readable in its files until the log is cleaned,
//! and records sit in the order they were written, which is the order of arrival. So whenever the
//! store must forget (after a purge or a retention pass), at every start and once a day, the
//! index is copied, in id order and holding only what is current, into a fresh directory
//! `index-<random>/`; that copy is made durable, `index.current` is switched to name it (an atomic
//! rename), and the old directory is deleted. A crash at any point leaves either the old or the
//! new index current, and the next open deletes the other.
//!
//! A data directory made before this scheme has a plain `index/`; it is read as the current index
//! and replaced by the first rewrite. One made before the chain has no `chain` trees; they are
//! created empty (the chain starts at 1 with the next submission).
//!
//! Every tree is copied by [`Index::rewrite`]: records, batches, conversations, replies, and the
//! chain with its fixed keys (a tree left out would be lost at the next start).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::durable::{sync_dir, sync_tree, GroupCommit};
use super::{StoreError, FORMAT_KEY, STORE_FORMAT};
use crate::submission::SubmissionId;

/// The file that names the current index directory.
const POINTER: &str = "index.current";
/// The index directory of data directories made before `index.current` existed.
const LEGACY: &str = "index";
const PREFIX: &str = "index-";

/// One open index.
pub(super) struct Index {
    pub records: sled::Tree,
    pub batches: sled::Tree,
    /// Conversations by locator (`docs/replies-v1.md`).
    pub conversations: sled::Tree,
    /// Sealed replies by locator and number.
    pub replies: sled::Tree,
    /// The chain of accepted submissions, by sequence number ([`super::chain`]).
    pub chain: sled::Tree,
    /// The chain's head and the other fixed keys ([`super::chain`]).
    pub chain_meta: sled::Tree,
    pub commit: GroupCommit,
    name: String,
    db: sled::Db,
}

/// True if `root` holds a store (current or legacy layout).
pub(super) fn exists(root: &Path) -> bool {
    root.join(POINTER).is_file() || root.join(LEGACY).is_dir()
}

impl Index {
    /// Opens the current index of `root`, creating an empty one in a new store. Returns it and
    /// whether it was created now.
    pub fn open_current(root: &Path) -> Result<(Index, bool), StoreError> {
        let name = match fs::read_to_string(root.join(POINTER)) {
            Ok(text) => {
                let name = text.trim().to_string();
                if !is_index_name(&name) {
                    return Err(StoreError::Integrity(vec![format!(
                        "{POINTER} names {:?}, which is not an index directory",
                        name.chars().take(80).collect::<String>()
                    )]));
                }
                if !root.join(&name).is_dir() {
                    return Err(StoreError::Integrity(vec![format!(
                        "{POINTER} names {name}, which is missing"
                    )]));
                }
                name
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if root.join(LEGACY).is_dir() {
                    LEGACY.to_string()
                } else {
                    let index = Index::create(root, new_name())?;
                    index.make_current(root)?;
                    return Ok((index, true));
                }
            }
            Err(e) => return Err(StoreError::from_io(e)),
        };
        let index = Index::open_dir(root, name)?;
        index.check_format()?;
        remove_stale(root, &index.name)?;
        Ok((index, false))
    }

    fn open_dir(root: &Path, name: String) -> Result<Index, StoreError> {
        let dir = root.join(&name);
        let db = sled::Config::new()
            .path(&dir)
            .cache_capacity(16 * 1024 * 1024)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) if io.to_string().contains("lock") => {
                    StoreError::Locked(root.to_path_buf())
                }
                other => StoreError::Unavailable {
                    path: root.to_path_buf(),
                    reason: format!("the index cannot be opened: {other}"),
                },
            })?;
        let records = db.open_tree("submissions").map_err(StoreError::from_sled)?;
        let batches = db.open_tree("batches").map_err(StoreError::from_sled)?;
        let conversations = db
            .open_tree("conversations")
            .map_err(StoreError::from_sled)?;
        let replies = db.open_tree("replies").map_err(StoreError::from_sled)?;
        let chain = db
            .open_tree(super::chain::TREE)
            .map_err(StoreError::from_sled)?;
        let chain_meta = db
            .open_tree(super::chain::META_TREE)
            .map_err(StoreError::from_sled)?;
        let commit =
            GroupCommit::new(db.clone(), &dir.join("db")).map_err(|e| StoreError::Unavailable {
                path: root.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Index {
            records,
            batches,
            conversations,
            replies,
            chain,
            chain_meta,
            commit,
            name,
            db,
        })
    }

    /// A new, empty index with the format marker, durable.
    fn create(root: &Path, name: String) -> Result<Index, StoreError> {
        let index = Index::open_dir(root, name)?;
        index
            .db
            .insert(FORMAT_KEY, STORE_FORMAT.as_bytes())
            .map_err(StoreError::from_sled)?;
        index.commit.sync().map_err(StoreError::from_io)?;
        Ok(index)
    }

    fn check_format(&self) -> Result<(), StoreError> {
        match self.db.get(FORMAT_KEY).map_err(StoreError::from_sled)? {
            Some(found) if &found[..] == STORE_FORMAT.as_bytes() => Ok(()),
            Some(found) => Err(StoreError::UnsupportedFormat {
                found: String::from_utf8_lossy(&found).into_owned(),
            }),
            None if self.records.is_empty()
                && self.batches.is_empty()
                && self.conversations.is_empty()
                && self.chain.is_empty() =>
            {
                self.db
                    .insert(FORMAT_KEY, STORE_FORMAT.as_bytes())
                    .map_err(StoreError::from_sled)?;
                Ok(())
            }
            None => Err(StoreError::Integrity(vec![
                "the index holds records but no format marker".into(),
            ])),
        }
    }

    /// Copies what is current into a fresh index directory, in key (random id) order, makes it
    /// durable and current. The caller must keep writers out until it has replaced `self` with
    /// the result; then [`Index::remove`] deletes the old one.
    pub fn rewrite(&self, root: &Path) -> Result<Index, StoreError> {
        let fresh = Index::create(root, new_name())?;
        let copied = (|| {
            for tree in [
                (&self.records, &fresh.records),
                (&self.batches, &fresh.batches),
                (&self.conversations, &fresh.conversations),
                (&self.replies, &fresh.replies),
                (&self.chain, &fresh.chain),
                (&self.chain_meta, &fresh.chain_meta),
            ] {
                for item in tree.0.iter() {
                    let (key, value) = item?;
                    tree.1.insert(key, value)?;
                }
            }
            Ok(())
        })()
        .map_err(StoreError::from_sled);
        let durable = copied
            .and_then(|()| fresh.commit.sync().map_err(StoreError::from_io))
            .and_then(|()| sync_tree(&root.join(&fresh.name)).map_err(StoreError::from_io))
            .and_then(|()| fresh.make_current(root));
        if let Err(e) = durable {
            let name = fresh.name.clone();
            drop(fresh);
            let _ = fs::remove_dir_all(root.join(name));
            return Err(e);
        }
        Ok(fresh)
    }

    /// Deletes this index's directory (after another one became current).
    pub fn remove(self, root: &Path) {
        let dir = root.join(&self.name);
        // Flush first so sled's background thread has nothing left to write there.
        let _ = self.db.flush();
        drop(self);
        let _ = fs::remove_dir_all(&dir);
        let _ = sync_dir(root);
    }

    /// Points `index.current` at this index: written aside, synced, renamed over, dir synced.
    fn make_current(&self, root: &Path) -> Result<(), StoreError> {
        let tmp = root.join(format!("{POINTER}.tmp"));
        let written = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(format!("{}\n", self.name).as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, root.join(POINTER))?;
            sync_dir(root)
        })();
        written.map_err(StoreError::from_io)
    }
}

fn new_name() -> String {
    format!("{PREFIX}{}", SubmissionId::random())
}

fn is_index_name(name: &str) -> bool {
    name == LEGACY
        || name
            .strip_prefix(PREFIX)
            .is_some_and(|rest| rest.parse::<SubmissionId>().is_ok())
}

/// Deletes index directories other than the current one: a rewrite interrupted before the switch
/// (new, incomplete) or after it (old).
fn remove_stale(root: &Path, current: &str) -> Result<(), StoreError> {
    let mut removed = false;
    for entry in fs::read_dir(root).map_err(StoreError::from_io)? {
        let entry = entry.map_err(StoreError::from_io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != current && is_index_name(&name) && entry.path().is_dir() {
            fs::remove_dir_all(entry.path()).map_err(StoreError::from_io)?;
            removed = true;
        }
        if name == format!("{POINTER}.tmp") {
            fs::remove_file(entry.path()).map_err(StoreError::from_io)?;
            removed = true;
        }
    }
    if removed {
        sync_dir(root).map_err(StoreError::from_io)?;
    }
    Ok(())
}
