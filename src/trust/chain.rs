//! The chain: the hash rule of the log of accepted submissions, and what travels of it
//! (`docs/trust-v1.md`, part 2).
//!
//! The store appends entries ([`ChainEntry`]); couriers check that a new head extends the last
//! one they saw ([`extends`]); bundles carry a [`ChainSegment`] that `open` checks against what
//! earlier bundles showed. The rule lives here once so the three cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::submission::{SubmissionId, UtcDay};

/// A SHA-256 value in the chain (a leaf or a chain hash).
pub type Digest = [u8; 32];

/// `H(0)`: the chain before its first entry.
pub const GENESIS: Digest = [0u8; 32];

/// Most leaves in one courier answer (`GET /api/v1/courier/chain`).
pub const MAX_LEAVES_PER_ANSWER: usize = 10_000;

/// One accepted submission, as the chain records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainEntry {
    /// Its sequence number, from 1.
    pub sequence: u64,
    /// The submission's id.
    pub id: SubmissionId,
    /// Lowercase hex SHA-256 of its ciphertext.
    pub sha256: String,
    /// The UTC day it was accepted.
    pub day: UtcDay,
}

/// The highest sequence number a segment may name (what SQLite's integers hold).
pub const MAX_SEQUENCE: u64 = i64::MAX as u64;

/// Why a chain entry or segment cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A segment without entries (a batch always carries at least one).
    #[error("the segment lists no entry")]
    Empty,
    /// A sequence number beyond [`MAX_SEQUENCE`].
    #[error("the segment names a number no store reaches")]
    Implausible,
    /// A `sha256` or `hash` that is not 64 lowercase hex digits.
    #[error("number {sequence}: {what} is not a SHA-256 in hex")]
    BadHex {
        /// The sequence number concerned.
        sequence: u64,
        /// Which field.
        what: &'static str,
    },
    /// Entries out of order, repeated, or not starting right after the base.
    #[error("the entries do not run from {expected} on (found {found})")]
    OutOfOrder {
        /// The sequence number that should come next.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// The entries do not hash to the head they claim.
    #[error("the entries from {from} to {to} do not lead to the head they claim")]
    WrongHead {
        /// First sequence number of the segment.
        from: u64,
        /// The head's sequence number.
        to: u64,
    },
}

impl ChainEntry {
    /// `L(n)`: the entry's leaf.
    pub fn leaf(&self) -> Result<Digest, ChainError> {
        let sha = parse_digest(&self.sha256).ok_or(ChainError::BadHex {
            sequence: self.sequence,
            what: "sha256",
        })?;
        let mut d = ring::digest::Context::new(&ring::digest::SHA256);
        d.update(b"resguardo.chain.leaf/1\n");
        d.update(&self.sequence.to_be_bytes());
        d.update(self.id.as_bytes());
        d.update(&sha);
        d.update(self.day.to_string().as_bytes());
        Ok(digest_of(d))
    }
}

/// `H(n) = SHA-256("resguardo.chain/1\n" || H(n-1) || L(n))`.
pub fn next_hash(previous: &Digest, leaf: &Digest) -> Digest {
    let mut d = ring::digest::Context::new(&ring::digest::SHA256);
    d.update(b"resguardo.chain/1\n");
    d.update(previous);
    d.update(leaf);
    digest_of(d)
}

fn digest_of(d: ring::digest::Context) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(d.finish().as_ref());
    out
}

/// 64 lowercase hex digits as a digest.
pub fn parse_digest(hex_text: &str) -> Option<Digest> {
    if hex_text.len() != 64 || hex_text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

/// A point of the chain: a sequence number and `H(n)` there (the head, or a segment's base).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainPoint {
    /// The sequence number (0 for the empty chain).
    pub sequence: u64,
    /// `H(sequence)`, lowercase hex.
    #[serde(with = "hex_digest")]
    pub hash: Digest,
}

impl ChainPoint {
    /// The empty chain.
    pub const GENESIS: ChainPoint = ChainPoint {
        sequence: 0,
        hash: GENESIS,
    };
}

/// What became of an entry when its batch was fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "fate", deny_unknown_fields)]
pub enum Fate {
    /// The bundle carries it.
    InBundle,
    /// Retention deleted it before any export, on this day.
    RemovedUnexported {
        /// The day it was deleted.
        removed: UtcDay,
    },
    /// The chain has it, the store does not (deleted behind the gateway's back).
    Missing,
}

/// One entry of a bundle's segment: what the chain holds for it, and its fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// What the chain recorded when the submission was accepted.
    #[serde(flatten)]
    pub entry: ChainEntry,
    /// What became of it.
    #[serde(flatten)]
    pub fate: Fate,
}

/// The part of the chain a bundle covers: every sequence number after `base` up to `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSegment {
    /// Where the previous batch's segment ended.
    pub base: ChainPoint,
    /// The chain's head when the batch was fixed.
    pub head: ChainPoint,
    /// `base.sequence + 1 ..= head.sequence`, in order.
    pub entries: Vec<SegmentEntry>,
}

impl ChainSegment {
    /// Checks that the entries run from `base` to `head` without a hole and hash to `head`.
    /// Returns `H(n)` of each entry, in order.
    pub fn verify(&self) -> Result<Vec<Digest>, ChainError> {
        // Numbers beyond 2^63 cannot come from a real store (and would not fit a registry).
        if self.head.sequence > MAX_SEQUENCE || self.base.sequence > MAX_SEQUENCE {
            return Err(ChainError::Implausible);
        }
        if self.entries.is_empty() {
            return Err(ChainError::Empty);
        }
        let mut hash = self.base.hash;
        let mut expected = self.base.sequence + 1;
        let mut hashes = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            if e.entry.sequence != expected {
                return Err(ChainError::OutOfOrder {
                    expected,
                    found: e.entry.sequence,
                });
            }
            hash = next_hash(&hash, &e.entry.leaf()?);
            hashes.push(hash);
            expected += 1;
        }
        if expected != self.head.sequence + 1 || hash != self.head.hash {
            return Err(ChainError::WrongHead {
                from: self.base.sequence + 1,
                to: self.head.sequence,
            });
        }
        Ok(hashes)
    }
}

/// A courier's view (`GET /api/v1/courier/chain?since=N`): `H(N)`, the leaves after it, the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainView {
    /// The chain's head now.
    pub head: ChainPoint,
    /// The point asked about.
    pub since: ChainPoint,
    /// `L(N+1) …`, at most [`MAX_LEAVES_PER_ANSWER`], lowercase hex.
    pub leaves: Vec<String>,
    /// False when more leaves follow (ask again from the last one).
    pub complete: bool,
}

/// Why a courier's check of the chain rang.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rewritten {
    /// The head is behind the one seen before.
    #[error("the gateway's log went back from number {seen} to {now}: entries were removed")]
    WentBack {
        /// The head seen before.
        seen: u64,
        /// The head now.
        now: u64,
    },
    /// `H(N)` is not what was seen at N.
    #[error("the gateway's log was rewritten at or before number {0}")]
    Changed(u64),
    /// The leaves do not lead to the head (or are not hex, or too many/few).
    #[error("the gateway's log after number {0} does not add up to the head it shows")]
    DoesNotAddUp(u64),
}

/// Checks a courier's view against the last point it saw. On success returns the point the view
/// reaches: the head if `complete`, else the last leaf's point (ask again from there).
pub fn extends(seen: &ChainPoint, view: &ChainView) -> Result<ChainPoint, Rewritten> {
    if view.head.sequence < seen.sequence {
        return Err(Rewritten::WentBack {
            seen: seen.sequence,
            now: view.head.sequence,
        });
    }
    if view.since.sequence != seen.sequence || view.since.hash != seen.hash {
        return Err(Rewritten::Changed(seen.sequence));
    }
    if view.leaves.len() > MAX_LEAVES_PER_ANSWER {
        return Err(Rewritten::DoesNotAddUp(seen.sequence));
    }
    let mut point = *seen;
    for leaf in &view.leaves {
        let leaf = parse_digest(leaf).ok_or(Rewritten::DoesNotAddUp(seen.sequence))?;
        point = ChainPoint {
            sequence: point.sequence + 1,
            hash: next_hash(&point.hash, &leaf),
        };
    }
    if view.complete {
        if point != view.head {
            return Err(Rewritten::DoesNotAddUp(seen.sequence));
        }
    } else if point.sequence >= view.head.sequence || view.leaves.is_empty() {
        return Err(Rewritten::DoesNotAddUp(seen.sequence));
    }
    Ok(point)
}

/// Serde for a [`Digest`] as 64 lowercase hex digits (`#[serde(with = "…::hex_digest")]`), for
/// other records that keep chain values (the store's chain entries).
pub mod hex_digest {
    use super::{parse_digest, Digest};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the digest as lowercase hex.
    pub fn serialize<S: Serializer>(d: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(d))
    }

    /// Reads 64 lowercase hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        parse_digest(&text)
            .ok_or_else(|| serde::de::Error::custom("not a SHA-256 in lowercase hex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> ChainEntry {
        ChainEntry {
            sequence: n,
            id: SubmissionId::from_bytes([n as u8; 16]),
            sha256: hex::encode([n as u8 + 170; 32]),
            day: UtcDay::from_days_since_epoch(20_000),
        }
    }

    fn segment(base: ChainPoint, from: u64, to: u64) -> ChainSegment {
        let mut hash = base.hash;
        let mut entries = Vec::new();
        for n in from..=to {
            let e = entry(n);
            hash = next_hash(&hash, &e.leaf().unwrap());
            entries.push(SegmentEntry {
                entry: e,
                fate: Fate::InBundle,
            });
        }
        ChainSegment {
            base,
            head: ChainPoint { sequence: to, hash },
            entries,
        }
    }

    #[test]
    fn a_segment_verifies_and_any_change_breaks_it() {
        let s = segment(ChainPoint::GENESIS, 1, 5);
        assert_eq!(s.verify().unwrap().len(), 5);
        let mut swapped = s.clone();
        swapped.entries.swap(1, 2);
        assert!(matches!(
            swapped.verify(),
            Err(ChainError::OutOfOrder { .. })
        ));
        let mut renumbered = s.clone();
        renumbered.entries[1].entry.sha256 = hex::encode([7u8; 32]);
        assert!(matches!(
            renumbered.verify(),
            Err(ChainError::WrongHead { .. })
        ));
        let mut dropped = s.clone();
        dropped.entries.pop();
        assert!(matches!(
            dropped.verify(),
            Err(ChainError::WrongHead { .. })
        ));
        let mut empty = s.clone();
        empty.entries.clear();
        empty.head = empty.base;
        assert_eq!(empty.verify(), Err(ChainError::Empty));
        // Regression (hostile review): a base at u64::MAX overflowed in debug and wrapped in
        // release.
        let mut huge = s.clone();
        huge.base.sequence = u64::MAX;
        assert_eq!(huge.verify(), Err(ChainError::Implausible));
        let mut upper = s.clone();
        upper.entries[0].entry.sha256 = upper.entries[0].entry.sha256.to_uppercase();
        assert!(matches!(upper.verify(), Err(ChainError::BadHex { .. })));
    }

    #[test]
    fn the_segment_json_is_flat_and_strict() {
        let s = segment(ChainPoint::GENESIS, 1, 1);
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"fate\":\"in_bundle\""), "{text}");
        assert!(text.contains("\"sequence\":1"), "{text}");
        let back: ChainSegment = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        let removed = SegmentEntry {
            entry: entry(2),
            fate: Fate::RemovedUnexported {
                removed: UtcDay::from_days_since_epoch(20_001),
            },
        };
        let text = serde_json::to_string(&removed).unwrap();
        assert!(text.contains("\"fate\":\"removed_unexported\""), "{text}");
        assert_eq!(
            serde_json::from_str::<SegmentEntry>(&text).unwrap(),
            removed
        );
    }

    fn view(seen: ChainPoint, s: &ChainSegment) -> ChainView {
        ChainView {
            head: s.head,
            since: seen,
            leaves: s
                .entries
                .iter()
                .map(|e| hex::encode(e.entry.leaf().unwrap()))
                .collect(),
            complete: true,
        }
    }

    #[test]
    fn a_courier_sees_extension_and_rewrites() {
        let first = segment(ChainPoint::GENESIS, 1, 3);
        let seen = first.head;
        let more = segment(seen, 4, 6);
        assert_eq!(extends(&seen, &view(seen, &more)), Ok(more.head));
        // Nothing new is an extension too.
        let same = ChainView {
            head: seen,
            since: seen,
            leaves: vec![],
            complete: true,
        };
        assert_eq!(extends(&seen, &same), Ok(seen));
        // History rewritten below what was seen: H(3) differs.
        let mut other = entry(3);
        other.sha256 = hex::encode([1u8; 32]);
        let rewritten_at_3 = ChainPoint {
            sequence: 3,
            hash: next_hash(&GENESIS, &other.leaf().unwrap()),
        };
        let mut v = view(seen, &more);
        v.since = rewritten_at_3;
        assert_eq!(extends(&seen, &v), Err(Rewritten::Changed(3)));
        // The head went back.
        let earlier = segment(ChainPoint::GENESIS, 1, 2);
        let back = ChainView {
            head: earlier.head,
            since: earlier.head,
            leaves: vec![],
            complete: true,
        };
        assert!(matches!(
            extends(&seen, &back),
            Err(Rewritten::WentBack { .. })
        ));
        // Leaves that do not add up to the head.
        let mut v = view(seen, &more);
        v.leaves.swap(0, 1);
        assert_eq!(extends(&seen, &v), Err(Rewritten::DoesNotAddUp(3)));
        // An incomplete answer reaches its last leaf.
        let mut v = view(seen, &more);
        v.leaves.truncate(2);
        v.complete = false;
        assert_eq!(extends(&seen, &v).unwrap().sequence, 5);
    }
}
