//! The chain in the store (`docs/trust-v1.md`, part 2): one entry per accepted submission, kept
//! in the index beside the records. The hash rule and what travels of the chain live in
//! [`crate::trust::chain`]; this module owns only how the store keeps it.
//!
//! Two sled trees:
//!
//! ```text
//! chain        sequence (u64 big-endian) -> {"leaf", "hash", "id"?, "sha256"?, "day"?, "removed"?}
//! chain_meta   "head"             -> {"sequence", "hash"}  the last entry (absent: the empty chain)
//!              "exported_through" -> {"sequence", "hash"}  where the last batch's segment ended
//!              "pruned_through"   -> sequence (8 bytes)    entries up to here were pruned
//! ```
//!
//! sled's transactional trees cannot iterate, so the head is kept under a fixed key: a commit
//! reads it, appends `head + 1` and moves it in the one transaction that also stores the record;
//! sled serialises transactions that touch the same key, so no number is given twice.
//!
//! An entry keeps `{id, sha256, day}` while its submission is held or not yet reported by a
//! bundle, `removed` (the day) once retention deleted it unexported, and only `{leaf, hash}`
//! after its batch is gone ([`prune`]).

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::StoreError;
use crate::submission::{SubmissionId, UtcDay};
use crate::trust::chain::{hex_digest, next_hash, ChainEntry, ChainPoint, Digest};

/// The tree of entries.
pub(super) const TREE: &str = "chain";
/// The tree of the fixed keys.
pub(super) const META_TREE: &str = "chain_meta";
/// The head `(n, H(n))`.
pub(super) const HEAD: &[u8] = b"head";
/// The point the last fixed batch's segment ended at.
pub(super) const EXPORTED_THROUGH: &[u8] = b"exported_through";
/// Every entry up to this sequence number was pruned (or kept for a reason, see [`prune`]).
pub(super) const PRUNED_THROUGH: &[u8] = b"pruned_through";

/// An entry as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoredEntry {
    /// `L(n)`.
    #[serde(with = "hex_digest")]
    pub leaf: Digest,
    /// `H(n)`.
    #[serde(with = "hex_digest")]
    pub hash: Digest,
    /// The submission's id, until pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<SubmissionId>,
    /// Lowercase hex SHA-256 of its ciphertext, until pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The day it was accepted, until pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<UtcDay>,
    /// The day retention deleted it, never exported, until pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<UtcDay>,
}

impl StoredEntry {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(sequence: u64, bytes: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Integrity(vec![format!("chain entry {sequence}: {e}")]))
    }

    /// The entry as the chain recorded it, if it was not pruned.
    pub fn entry(&self, sequence: u64) -> Option<ChainEntry> {
        Some(ChainEntry {
            sequence,
            id: self.id?,
            sha256: self.sha256.clone()?,
            day: self.day?,
        })
    }

    /// Forgets everything but the leaf and the hash. True if there was something to forget.
    fn prune(&mut self) -> bool {
        let had = self.id.is_some()
            || self.sha256.is_some()
            || self.day.is_some()
            || self.removed.is_some();
        self.id = None;
        self.sha256 = None;
        self.day = None;
        self.removed = None;
        had
    }
}

/// The key of entry `n`.
pub(super) fn key(sequence: u64) -> [u8; 8] {
    sequence.to_be_bytes()
}

fn sequence_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

pub(super) fn encode_point(point: &ChainPoint) -> Vec<u8> {
    serde_json::to_vec(point).unwrap_or_default()
}

fn decode_point(what: &[u8], bytes: Option<&[u8]>) -> Result<ChainPoint, String> {
    match bytes {
        None => Ok(ChainPoint::GENESIS),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| format!("chain {}: {e}", String::from_utf8_lossy(what))),
    }
}

/// A point under a fixed key of `chain_meta` (absent: the empty chain).
pub(super) fn point(meta: &sled::Tree, what: &[u8]) -> Result<ChainPoint, StoreError> {
    let bytes = meta.get(what).map_err(StoreError::from_sled)?;
    decode_point(what, bytes.as_deref()).map_err(|e| StoreError::Integrity(vec![e]))
}

/// The same, inside a transaction (a broken value aborts it with the reason).
pub(super) fn tx_point(
    meta: &TransactionalTree,
    what: &[u8],
) -> Result<ChainPoint, ConflictableTransactionError<String>> {
    let bytes = meta.get(what)?;
    decode_point(what, bytes.as_deref()).map_err(ConflictableTransactionError::Abort)
}

/// Appends the entry of a submission after the head, inside the commit's transaction, and moves
/// the head. Returns its sequence number.
pub(super) fn append(
    chain: &TransactionalTree,
    meta: &TransactionalTree,
    id: SubmissionId,
    sha256: &str,
    day: UtcDay,
) -> Result<u64, ConflictableTransactionError<String>> {
    let head = tx_point(meta, HEAD)?;
    let sequence = head
        .sequence
        .checked_add(1)
        .ok_or_else(|| ConflictableTransactionError::Abort("the chain is full".into()))?;
    let entry = ChainEntry {
        sequence,
        id,
        sha256: sha256.to_string(),
        day,
    };
    let leaf = entry
        .leaf()
        .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
    let hash = next_hash(&head.hash, &leaf);
    let stored = StoredEntry {
        leaf,
        hash,
        id: Some(id),
        sha256: Some(entry.sha256),
        day: Some(day),
        removed: None,
    };
    chain.insert(&key(sequence), stored.encode())?;
    meta.insert(HEAD, encode_point(&ChainPoint { sequence, hash }))?;
    Ok(sequence)
}

/// Entry `n` inside a transaction.
pub(super) fn tx_entry(
    chain: &TransactionalTree,
    sequence: u64,
) -> Result<Option<StoredEntry>, ConflictableTransactionError<String>> {
    match chain.get(key(sequence))? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ConflictableTransactionError::Abort(format!("chain entry {sequence}: {e}"))
        }),
    }
}

/// Entry `n`.
pub(super) fn entry(chain: &sled::Tree, sequence: u64) -> Result<Option<StoredEntry>, StoreError> {
    match chain.get(key(sequence)).map_err(StoreError::from_sled)? {
        None => Ok(None),
        Some(bytes) => StoredEntry::decode(sequence, &bytes).map(Some),
    }
}

/// Entries `from..=to` in order, each checked to be there (a hole is damage).
pub(super) fn entries(
    chain: &sled::Tree,
    from: u64,
    to: u64,
) -> impl Iterator<Item = Result<(u64, StoredEntry), StoreError>> + '_ {
    let mut expected = from;
    let mut range = chain.range(key(from)..=key(to));
    let mut done = from > to;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let item = match range.next() {
            None => Err(StoreError::Integrity(vec![format!(
                "the chain has no entry {expected}"
            )])),
            Some(Err(e)) => Err(StoreError::from_sled(e)),
            Some(Ok((k, v))) => match sequence_of(&k) {
                Some(n) if n == expected => StoredEntry::decode(n, &v).map(|e| (n, e)),
                _ => Err(StoreError::Integrity(vec![format!(
                    "the chain has no entry {expected}"
                )])),
            },
        };
        if item.is_err() || expected == to {
            done = true;
        }
        expected = expected.saturating_add(1);
        Some(item)
    })
}

/// `H(n)` for a point of the chain (0: genesis).
pub(super) fn point_at(chain: &sled::Tree, sequence: u64) -> Result<ChainPoint, StoreError> {
    if sequence == 0 {
        return Ok(ChainPoint::GENESIS);
    }
    let found = entry(chain, sequence)?
        .ok_or_else(|| StoreError::Integrity(vec![format!("the chain has no entry {sequence}")]))?;
    Ok(ChainPoint {
        sequence,
        hash: found.hash,
    })
}

/// Reduces the entries after `pruned_through` up to `bound`, outside the `keep` ranges
/// (`(base, head]` of batches that may still be written with their segment), whose submission
/// the store no longer holds to `{leaf, hash}`; an entry whose submission is still held (it
/// should not be, once no batch covers it) is kept, and pruning resumes from it next time.
/// Returns how many entries were pruned. Not synced: the index rewrite that follows makes it
/// durable.
pub(super) fn prune(
    chain: &sled::Tree,
    meta: &sled::Tree,
    records: &sled::Tree,
    bound: u64,
    keep: &[(u64, u64)],
) -> Result<usize, StoreError> {
    let done = match meta.get(PRUNED_THROUGH).map_err(StoreError::from_sled)? {
        None => 0,
        Some(bytes) => sequence_of(&bytes).ok_or_else(|| {
            StoreError::Integrity(vec!["chain pruned_through is not a number".into()])
        })?,
    };
    if bound <= done {
        return Ok(0);
    }
    let mut pruned = 0;
    let mut through = bound;
    for item in chain.range(key(done + 1)..=key(bound)) {
        let (k, v) = item.map_err(StoreError::from_sled)?;
        let Some(sequence) = sequence_of(&k) else {
            continue;
        };
        let mut stored = StoredEntry::decode(sequence, &v)?;
        if keep
            .iter()
            .any(|&(base, head)| base < sequence && sequence <= head)
        {
            through = through.min(sequence - 1);
            continue;
        }
        if let Some(id) = stored.id {
            if records
                .contains_key(id.as_bytes())
                .map_err(StoreError::from_sled)?
            {
                through = through.min(sequence - 1);
                continue;
            }
        }
        if stored.prune() {
            chain
                .insert(k, stored.encode())
                .map_err(StoreError::from_sled)?;
            pruned += 1;
        }
    }
    if through > done {
        meta.insert(PRUNED_THROUGH, &key(through))
            .map_err(StoreError::from_sled)?;
    }
    Ok(pruned)
}

/// An adversary with access to the data directory, for tests of what the chain reveals
/// (`tests/chain.rs`, the store's own tests). Test-only: compiled with `cfg(test)` or the
/// `test-support` feature, never into a release build. Each one changes the store behind the
/// gateway's back and leaves the rest as it finds it; the gateway must not be writing meanwhile
/// (they are for a store opened by the test itself).
#[cfg(any(test, feature = "test-support"))]
impl super::SubmissionStore {
    /// Test only: deletes a submission's record and ciphertext, leaving its chain entry (a
    /// report dropped by someone who did not know about the chain).
    pub fn tamper_forget(&self, id: &SubmissionId) -> Result<(), StoreError> {
        let _admin = self.lock_admin();
        let index = self.index();
        let record = index
            .records
            .remove(id.as_bytes())
            .map_err(StoreError::from_sled)?
            .ok_or(StoreError::NotFound(*id))?;
        if let Ok(record) = super::SubmissionRecord::decode(&record) {
            self.usage.remove(record.size);
        }
        match std::fs::remove_file(self.sealed_path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::from_io(e))
            }
            _ => {}
        }
        index.commit.sync().map_err(StoreError::from_io)
    }

    /// Test only: replaces a submission's ciphertext with `bytes`, and its record's size and
    /// SHA-256 to match, leaving its chain entry (a report altered consistently in the store).
    pub fn tamper_replace_ciphertext(
        &self,
        id: &SubmissionId,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let _admin = self.lock_admin();
        let mut record = self.get(id)?.ok_or(StoreError::NotFound(*id))?;
        std::fs::write(self.sealed_path(id), bytes).map_err(StoreError::from_io)?;
        self.usage.remove(record.size);
        self.usage.add_stored(bytes.len() as u64);
        record.size = bytes.len() as u64;
        record.sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes));
        let index = self.index();
        index
            .records
            .insert(id.as_bytes(), record.encode())
            .map_err(StoreError::from_sled)?;
        index.commit.sync().map_err(StoreError::from_io)
    }

    /// Test only: a smart adversary rewriting history: swaps the id, SHA-256 and day of chain
    /// entries `a` and `b` (and the two records' numbers), then recomputes every leaf and hash
    /// from the first of them on, the head, where the last segment ended and the ranges of the
    /// batches held, so that the store is consistent with itself again.
    pub fn tamper_rewrite_chain_swap(&self, a: u64, b: u64) -> Result<(), StoreError> {
        let _admin = self.lock_admin();
        let batches = self.batch_records()?;
        let index = self.index();
        let missing = |n: u64| StoreError::Integrity(vec![format!("no chain entry {n}")]);
        let mut first = entry(&index.chain, a)?.ok_or_else(|| missing(a))?;
        let mut second = entry(&index.chain, b)?.ok_or_else(|| missing(b))?;
        std::mem::swap(&mut first.id, &mut second.id);
        std::mem::swap(&mut first.sha256, &mut second.sha256);
        std::mem::swap(&mut first.day, &mut second.day);
        index
            .chain
            .insert(key(a), first.encode())
            .map_err(StoreError::from_sled)?;
        index
            .chain
            .insert(key(b), second.encode())
            .map_err(StoreError::from_sled)?;
        for (id, sequence) in [(first.id, a), (second.id, b)] {
            let Some(id) = id else { continue };
            if let Some(mut record) = self.get(&id)? {
                record.sequence = Some(sequence);
                index
                    .records
                    .insert(id.as_bytes(), record.encode())
                    .map_err(StoreError::from_sled)?;
            }
        }
        let from = a.min(b);
        let head = point(&index.chain_meta, HEAD)?;
        let mut hash = point_at(&index.chain, from - 1)?.hash;
        let mut hashes = std::collections::HashMap::new();
        for item in entries(&index.chain, from, head.sequence).collect::<Vec<_>>() {
            let (sequence, mut stored) = item?;
            if let Some(e) = stored.entry(sequence) {
                stored.leaf = e
                    .leaf()
                    .map_err(|e| StoreError::Integrity(vec![e.to_string()]))?;
            }
            hash = next_hash(&hash, &stored.leaf);
            stored.hash = hash;
            hashes.insert(sequence, hash);
            index
                .chain
                .insert(key(sequence), stored.encode())
                .map_err(StoreError::from_sled)?;
        }
        let moved = |p: ChainPoint| ChainPoint {
            sequence: p.sequence,
            hash: hashes.get(&p.sequence).copied().unwrap_or(p.hash),
        };
        for what in [HEAD, EXPORTED_THROUGH] {
            if index
                .chain_meta
                .contains_key(what)
                .map_err(StoreError::from_sled)?
            {
                let p = moved(point(&index.chain_meta, what)?);
                index
                    .chain_meta
                    .insert(what, encode_point(&p))
                    .map_err(StoreError::from_sled)?;
            }
        }
        for mut batch in batches {
            if let Some(range) = batch.chain.as_mut() {
                range.base = moved(range.base);
                range.head = moved(range.head);
                index
                    .batches
                    .insert(batch.batch.as_bytes(), batch.encode())
                    .map_err(StoreError::from_sled)?;
            }
        }
        index.commit.sync().map_err(StoreError::from_io)
    }
}
