//! What the reviewers know of the gateway's chain (`docs/trust-v1.md`, part 2): every bundle's
//! segment is checked against what earlier bundles showed, and kept here, so that across all
//! the bundles opened into one folder every sequence number is accounted for exactly once.
//!
//! Tables (schema 3): `chain_entries` (one row per sequence number seen, with its leaf and
//! `H(n)`, what the chain recorded and its fate), `chain_points` (each segment's base and head,
//! which may arrive before the entry they name) and `chain_problems` (what was found, kept so
//! `registry chain` can list it later).

use std::collections::{HashMap, HashSet};
use std::fmt;

use rusqlite::{params, OptionalExtension, Transaction};

use super::{now, Registry, RegistryError};
use crate::bundle::BundleEntry;
use crate::submission::{BatchId, SubmissionId};
use crate::trust::chain::{ChainError, ChainPoint, ChainSegment, Digest, Fate, GENESIS};

/// Something the chain shows that must not happen with an honest gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    /// The bundle's segment does not add up (its entries do not hash to its head).
    Broken(ChainError),
    /// Number `sequence` (or the history before it) differs from what an earlier bundle showed.
    Rewritten {
        /// The first number found to differ.
        sequence: u64,
        /// The batch that showed it first.
        earlier_batch: String,
    },
    /// The chain says the gateway accepted a different ciphertext for this submission.
    Altered {
        /// Its number.
        sequence: u64,
        /// The submission.
        id: SubmissionId,
    },
    /// A submission of the bundle that the chain does not list as carried by it.
    NotInChain {
        /// The submission.
        id: SubmissionId,
    },
    /// The chain lists it as in this bundle, and the bundle does not carry it.
    Withheld {
        /// Its number.
        sequence: u64,
    },
    /// The gateway's store lost it (the chain has it, the store does not).
    Missing {
        /// Its number.
        sequence: u64,
    },
    /// One submission under two numbers.
    SameIdTwice {
        /// The later number.
        sequence: u64,
        /// The earlier one.
        other: u64,
    },
    /// One number covered by the segments of two different batches (an honest gateway's
    /// segments never overlap).
    CoveredTwice {
        /// The number.
        sequence: u64,
        /// The batch that covered it before.
        earlier_batch: String,
    },
    /// A submission in a bundle that carries no part of the chain, from a gateway whose chain
    /// the reviewers have seen, that the chain never showed (the bundle is not a copy, nor a
    /// batch sent again).
    OutsideTheLog {
        /// The submission.
        id: SubmissionId,
    },
    /// More problems than one bundle lists one by one.
    More {
        /// How many were not listed.
        count: usize,
    },
}

/// Most problems one bundle records one by one; the rest are counted ([`ChainProblem::More`]).
const MAX_PROBLEMS_PER_BUNDLE: usize = 1000;

impl ChainProblem {
    /// A short stable name, stored with the problem.
    pub fn kind(&self) -> &'static str {
        match self {
            ChainProblem::Broken(_) => "broken",
            ChainProblem::Rewritten { .. } => "rewritten",
            ChainProblem::Altered { .. } => "altered",
            ChainProblem::NotInChain { .. } => "not_in_chain",
            ChainProblem::Withheld { .. } => "withheld",
            ChainProblem::Missing { .. } => "missing",
            ChainProblem::SameIdTwice { .. } => "same_id_twice",
            ChainProblem::CoveredTwice { .. } => "covered_twice",
            ChainProblem::OutsideTheLog { .. } => "outside_the_log",
            ChainProblem::More { .. } => "more",
        }
    }

    /// The sequence number concerned, if there is one.
    pub fn sequence(&self) -> Option<u64> {
        match self {
            ChainProblem::Broken(_)
            | ChainProblem::NotInChain { .. }
            | ChainProblem::OutsideTheLog { .. }
            | ChainProblem::More { .. } => None,
            ChainProblem::Rewritten { sequence, .. }
            | ChainProblem::Altered { sequence, .. }
            | ChainProblem::Withheld { sequence }
            | ChainProblem::Missing { sequence }
            | ChainProblem::SameIdTwice { sequence, .. }
            | ChainProblem::CoveredTwice { sequence, .. } => Some(*sequence),
        }
    }
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainProblem::Broken(e) => write!(f, "the bundle's part of the log is broken: {e}"),
            ChainProblem::Rewritten {
                sequence,
                earlier_batch,
            } => write!(
                f,
                "number {sequence}: the log was rewritten at or before it (batch \
                 {earlier_batch} showed another history)"
            ),
            ChainProblem::Altered { sequence, id } => write!(
                f,
                "number {sequence} ({id}): its ciphertext is not the one the gateway accepted"
            ),
            ChainProblem::NotInChain { id } => {
                write!(f, "{id}: in the bundle but not in the gateway's log")
            }
            ChainProblem::Withheld { sequence } => write!(
                f,
                "number {sequence}: the log says this bundle carries it, and it does not"
            ),
            ChainProblem::Missing { sequence } => write!(
                f,
                "number {sequence}: accepted, then lost from the gateway's store (deleted \
                 without an export)"
            ),
            ChainProblem::SameIdTwice { sequence, other } => write!(
                f,
                "number {sequence}: the same submission as number {other}"
            ),
            ChainProblem::CoveredTwice {
                sequence,
                earlier_batch,
            } => write!(
                f,
                "number {sequence}: covered again (batch {earlier_batch} covered it before)"
            ),
            ChainProblem::OutsideTheLog { id } => write!(
                f,
                "{id}: carried outside the gateway's log (a bundle without its part of the log \
                 that is neither a copy nor a batch sent again)"
            ),
            ChainProblem::More { count } => {
                write!(f, "and {count} more problems in this bundle")
            }
        }
    }
}

/// What one bundle's check found, and where the reviewers stand overall.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainReport {
    /// The numbers this bundle's segment covers; `None`: the bundle carries no chain (a copy, or
    /// made before the log existed).
    pub covered: Option<(u64, u64)>,
    /// The highest number any bundle opened here showed.
    pub known_through: u64,
    /// Numbers that arrived in a bundle opened here.
    pub arrived: u64,
    /// Numbers retention deleted unexported (every one seen so far).
    pub removed: Vec<u64>,
    /// Numbers a bundle carried that were not opened yet (a bundle that broke off, a run that
    /// stopped): they count as arrived once a run opens them.
    pub not_opened: Vec<u64>,
    /// Ranges up to `known_through` that no bundle opened here covers yet.
    pub gaps: Vec<(u64, u64)>,
    /// What this bundle showed that must not happen.
    pub problems: Vec<ChainProblem>,
    /// Problems recorded by earlier opens (still listed by `registry chain`).
    pub earlier_problems: u64,
}

/// A sequence number as SQLite stores it (sequence numbers stay far below 2^63).
fn sql_seq(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Registry {
    /// Checks a bundle's part of the chain (`segment`, `None` if it has none) and its
    /// `submissions` against everything earlier bundles showed, records it, and reports.
    /// `reached`: the submissions whose ciphertext this run read (or that are open already);
    /// only these count as arrived.
    pub fn check_chain(
        &mut self,
        batch_id: &BatchId,
        segment: Option<&ChainSegment>,
        submissions: &[BundleEntry],
        reached: &HashSet<SubmissionId>,
    ) -> Result<ChainReport, RegistryError> {
        let batch = batch_id.to_string();
        let ids: Vec<SubmissionId> = submissions.iter().map(|e| e.id).collect();
        let is_copy = crate::bundle::copy_batch_id(&ids) == *batch_id;
        self.write(|tx| {
            let earlier_problems: i64 =
                tx.query_row("SELECT count(*) FROM chain_problems", [], |r| r.get(0))?;
            let mut report = ChainReport {
                earlier_problems: u64::try_from(earlier_problems).unwrap_or(0),
                ..ChainReport::default()
            };
            let carried = Carried {
                entries: submissions.iter().map(|e| (e.id, e)).collect(),
                reached,
            };
            match segment {
                Some(segment) => check_segment(tx, &batch, segment, &carried, &mut report)?,
                None => check_without_segment(tx, &carried, is_copy, &mut report)?,
            }
            if report.problems.len() > MAX_PROBLEMS_PER_BUNDLE {
                let count = report.problems.len() - MAX_PROBLEMS_PER_BUNDLE;
                report.problems.truncate(MAX_PROBLEMS_PER_BUNDLE);
                report.problems.push(ChainProblem::More { count });
            }
            record_problems(tx, &batch, &report.problems)?;
            overall(tx, &mut report)?;
            Ok(report)
        })
    }

    /// A head a courier's `watch` verified (`open --seen-head`): kept as a point that every
    /// bundle must meet, so a history shown to the watch and another put in bundles is a
    /// rewrite, and numbers below it that no bundle covers are a gap. Returns what it found.
    pub fn record_seen_head(
        &mut self,
        point: &ChainPoint,
    ) -> Result<Vec<ChainProblem>, RegistryError> {
        if point.sequence > crate::trust::chain::MAX_SEQUENCE {
            return Ok(vec![ChainProblem::Broken(ChainError::Implausible)]);
        }
        self.write(|tx| {
            let mut problems = Vec::new();
            check_point(tx, SEEN_BY_WATCH, point, &mut problems)?;
            record_problems(tx, SEEN_BY_WATCH, &problems)?;
            Ok(problems)
        })
    }

    /// Forgets everything the bundles showed of the chain, for a gateway that starts a new log
    /// (a new data directory): returns the problems that were listed.
    pub fn start_new_log(&mut self) -> Result<Vec<(String, String, String)>, RegistryError> {
        let listed = self.chain_problems()?;
        self.write(|tx| {
            tx.execute_batch(
                "DELETE FROM chain_entries; DELETE FROM chain_points; DELETE FROM chain_problems;",
            )?;
            Ok(())
        })?;
        Ok(listed)
    }

    /// Every problem recorded so far: (batch, detail, when), oldest first.
    pub fn chain_problems(&self) -> Result<Vec<(String, String, String)>, RegistryError> {
        let mut stmt = self
            .conn()
            .prepare("SELECT batch, detail, recorded_at FROM chain_problems ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Where the reviewers stand overall, without opening anything (`registry chain`).
    pub fn chain_status(&mut self) -> Result<ChainReport, RegistryError> {
        self.write(|tx| {
            let earlier: i64 =
                tx.query_row("SELECT count(*) FROM chain_problems", [], |r| r.get(0))?;
            let mut report = ChainReport {
                earlier_problems: u64::try_from(earlier).unwrap_or(0),
                ..ChainReport::default()
            };
            overall(tx, &mut report)?;
            Ok(report)
        })
    }
}

/// The batch name of points a courier's watch verified.
pub const SEEN_BY_WATCH: &str = "watch";

/// A bundle's submissions, and which of them this run reached.
struct Carried<'a> {
    entries: HashMap<SubmissionId, &'a BundleEntry>,
    reached: &'a HashSet<SubmissionId>,
}

fn record_problems(
    tx: &Transaction<'_>,
    batch: &str,
    problems: &[ChainProblem],
) -> Result<(), RegistryError> {
    let mut insert = tx.prepare(
        "INSERT OR IGNORE INTO chain_problems (batch, kind, sequence, detail, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let at = now();
    for problem in problems {
        insert.execute(params![
            batch,
            problem.kind(),
            problem.sequence().map(sql_seq),
            problem.to_string(),
            at
        ])?;
    }
    Ok(())
}

/// A stored entry: its leaf, `H(n)` and the batch that showed it.
struct Known {
    leaf: String,
    hash: String,
    batch: String,
}

fn known(tx: &Transaction<'_>, sequence: u64) -> Result<Option<Known>, RegistryError> {
    Ok(tx
        .query_row(
            "SELECT leaf, hash, batch FROM chain_entries WHERE sequence = ?1",
            [sql_seq(sequence)],
            |r| {
                Ok(Known {
                    leaf: r.get(0)?,
                    hash: r.get(1)?,
                    batch: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// Compares a point (a base or head) with what is known at its number, and keeps it.
fn check_point(
    tx: &Transaction<'_>,
    batch: &str,
    point: &ChainPoint,
    problems: &mut Vec<ChainProblem>,
) -> Result<(), RegistryError> {
    let hash = hex::encode(point.hash);
    if point.sequence == 0 {
        if point.hash != GENESIS {
            problems.push(ChainProblem::Rewritten {
                sequence: 0,
                earlier_batch: "(the start of the log)".into(),
            });
        }
        return Ok(());
    }
    let by_entry = known(tx, point.sequence)?.map(|k| (k.hash, k.batch));
    let by_point: Option<(String, String)> = tx
        .query_row(
            "SELECT hash, batch FROM chain_points WHERE sequence = ?1",
            [sql_seq(point.sequence)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    for (earlier_hash, earlier_batch) in by_entry.into_iter().chain(by_point.clone()) {
        if earlier_hash != hash {
            problems.push(ChainProblem::Rewritten {
                sequence: point.sequence,
                earlier_batch,
            });
            return Ok(());
        }
    }
    if by_point.is_none() {
        tx.execute(
            "INSERT INTO chain_points (sequence, hash, batch) VALUES (?1, ?2, ?3)",
            params![sql_seq(point.sequence), hash, batch],
        )?;
    }
    Ok(())
}

fn fate_name(fate: &Fate) -> (&'static str, Option<String>) {
    match fate {
        Fate::InBundle => ("in_bundle", None),
        Fate::RemovedUnexported { removed } => ("removed_unexported", Some(removed.to_string())),
        Fate::Missing => ("missing", None),
    }
}

fn check_segment(
    tx: &Transaction<'_>,
    batch: &str,
    segment: &ChainSegment,
    carried: &Carried<'_>,
    report: &mut ChainReport,
) -> Result<(), RegistryError> {
    let hashes = match segment.verify() {
        Ok(hashes) => hashes,
        Err(e) => {
            report.problems.push(ChainProblem::Broken(e));
            // Nothing of a broken segment is kept; its submissions are still matched by id
            // against what earlier bundles showed.
            return check_without_segment(tx, carried, false, report);
        }
    };
    report.covered = Some((segment.base.sequence + 1, segment.head.sequence));
    check_point(tx, batch, &segment.base, &mut report.problems)?;
    check_point(tx, batch, &segment.head, &mut report.problems)?;
    let mut listed = HashSet::new();
    for (item, hash) in segment.entries.iter().zip(hashes) {
        let entry = &item.entry;
        let n = entry.sequence;
        let leaf: Digest = entry
            .leaf()
            .map_err(|e| RegistryError::Unknown(e.to_string()))?;
        let (leaf, hash) = (hex::encode(leaf), hex::encode(hash));
        let (fate, removed) = fate_name(&item.fate);
        match known(tx, n)? {
            Some(k) if k.leaf != leaf || k.hash != hash => {
                report.problems.push(ChainProblem::Rewritten {
                    sequence: n,
                    earlier_batch: k.batch,
                });
                continue;
            }
            Some(k) => {
                if k.batch != batch {
                    report.problems.push(ChainProblem::CoveredTwice {
                        sequence: n,
                        earlier_batch: k.batch,
                    });
                    continue;
                }
            }
            None => {
                let point: Option<(String, String)> = tx
                    .query_row(
                        "SELECT hash, batch FROM chain_points WHERE sequence = ?1",
                        [sql_seq(n)],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((earlier_hash, earlier_batch)) = point {
                    if earlier_hash != hash {
                        report.problems.push(ChainProblem::Rewritten {
                            sequence: n,
                            earlier_batch,
                        });
                        continue;
                    }
                }
                let other: Option<i64> = tx
                    .query_row(
                        "SELECT sequence FROM chain_entries WHERE submission = ?1",
                        [entry.id.to_string()],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(other) = other {
                    report.problems.push(ChainProblem::SameIdTwice {
                        sequence: n,
                        other: u64::try_from(other).unwrap_or(0),
                    });
                }
                tx.execute(
                    "INSERT INTO chain_entries
                       (sequence, leaf, hash, submission, sha256, day, fate, removed_day, batch)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        sql_seq(n),
                        leaf,
                        hash,
                        entry.id.to_string(),
                        entry.sha256,
                        entry.day.to_string(),
                        fate,
                        removed,
                        batch
                    ],
                )?;
            }
        }
        match item.fate {
            Fate::InBundle => {
                listed.insert(entry.id);
                match carried.entries.get(&entry.id) {
                    None => report.problems.push(ChainProblem::Withheld { sequence: n }),
                    Some(e) if e.sha256 != entry.sha256 => {
                        report.problems.push(ChainProblem::Altered {
                            sequence: n,
                            id: entry.id,
                        })
                    }
                    Some(_) if carried.reached.contains(&entry.id) => {
                        tx.execute(
                            "UPDATE chain_entries SET arrived = 1 WHERE sequence = ?1",
                            [sql_seq(n)],
                        )?;
                    }
                    Some(_) => {}
                }
            }
            Fate::Missing => report.problems.push(ChainProblem::Missing { sequence: n }),
            Fate::RemovedUnexported { .. } => {}
        }
    }
    for id in carried.entries.keys() {
        if !listed.contains(id) {
            report.problems.push(ChainProblem::NotInChain { id: *id });
        }
    }
    Ok(())
}

/// A bundle without a segment: its submissions are compared with what the chain showed of
/// them. Legitimately only a copy, a batch sent again after a partial purge (every submission
/// already shown by the chain), or a bundle of a gateway from before the chain: once the
/// reviewers have seen the chain, anything else is carried outside the log.
fn check_without_segment(
    tx: &Transaction<'_>,
    carried: &Carried<'_>,
    is_copy: bool,
    report: &mut ChainReport,
) -> Result<(), RegistryError> {
    let chain_seen: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM chain_entries)
             OR EXISTS (SELECT 1 FROM chain_points)",
        [],
        |r| r.get(0),
    )?;
    let mut ids: Vec<&SubmissionId> = carried.entries.keys().collect();
    ids.sort();
    for id in ids {
        let e = carried.entries[id];
        let known: Option<(i64, String)> = tx
            .query_row(
                "SELECT sequence, sha256 FROM chain_entries WHERE submission = ?1",
                [e.id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match known {
            Some((sequence, sha256)) if sha256 != e.sha256 => {
                report.problems.push(ChainProblem::Altered {
                    sequence: u64::try_from(sequence).unwrap_or(0),
                    id: e.id,
                });
            }
            Some((sequence, _)) if carried.reached.contains(&e.id) => {
                tx.execute(
                    "UPDATE chain_entries SET arrived = 1 WHERE sequence = ?1",
                    [sequence],
                )?;
            }
            Some(_) => {}
            None if chain_seen && !is_copy => {
                report
                    .problems
                    .push(ChainProblem::OutsideTheLog { id: e.id });
            }
            None => {}
        }
    }
    Ok(())
}

/// Counts, removals and gaps over everything seen.
fn overall(tx: &Transaction<'_>, report: &mut ChainReport) -> Result<(), RegistryError> {
    let highest_entry: Option<i64> =
        tx.query_row("SELECT max(sequence) FROM chain_entries", [], |r| r.get(0))?;
    let highest_point: Option<i64> =
        tx.query_row("SELECT max(sequence) FROM chain_points", [], |r| r.get(0))?;
    let through = highest_entry.unwrap_or(0).max(highest_point.unwrap_or(0));
    report.known_through = u64::try_from(through).unwrap_or(0);
    let arrived: i64 = tx.query_row(
        "SELECT count(*) FROM chain_entries WHERE fate = 'in_bundle' AND arrived = 1",
        [],
        |r| r.get(0),
    )?;
    report.arrived = u64::try_from(arrived).unwrap_or(0);
    let mut stmt = tx.prepare(
        "SELECT sequence FROM chain_entries WHERE fate = 'in_bundle' AND arrived = 0
         ORDER BY sequence",
    )?;
    report.not_opened = stmt
        .query_map([], |r| r.get::<_, i64>(0))?
        .map(|n| n.map(|n| u64::try_from(n).unwrap_or(0)))
        .collect::<Result<_, _>>()?;
    let mut stmt = tx.prepare(
        "SELECT sequence FROM chain_entries WHERE fate = 'removed_unexported' ORDER BY sequence",
    )?;
    report.removed = stmt
        .query_map([], |r| r.get::<_, i64>(0))?
        .map(|n| n.map(|n| u64::try_from(n).unwrap_or(0)))
        .collect::<Result<_, _>>()?;
    let mut stmt = tx.prepare("SELECT sequence FROM chain_entries ORDER BY sequence")?;
    let mut next = 1u64;
    for n in stmt.query_map([], |r| r.get::<_, i64>(0))? {
        let n = u64::try_from(n?).unwrap_or(0);
        if n > next {
            report.gaps.push((next, n - 1));
        }
        next = n + 1;
    }
    if next <= report.known_through {
        report.gaps.push((next, report.known_through));
    }
    Ok(())
}

/// `1–3, 7, 9–12`: numbers as ranges, at most `limit` ranges, then "…".
pub fn ranges(list: &[(u64, u64)], limit: usize) -> String {
    let mut parts: Vec<String> = list
        .iter()
        .take(limit)
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}–{b}")
            }
        })
        .collect();
    if list.len() > limit {
        parts.push("…".into());
    }
    parts.join(", ")
}

/// Single numbers as ranges (`[1, 2, 3, 7]` → `[(1, 3), (7, 7)]`).
pub fn as_ranges(numbers: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &n in numbers {
        match out.last_mut() {
            Some((_, b)) if *b + 1 == n => *b = n,
            _ => out.push((n, n)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submission::{Sealing, UtcDay};
    use crate::trust::chain::{next_hash, ChainEntry, SegmentEntry};

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::in_folder(dir.path()).expect("new registry");
        (dir, registry)
    }

    fn entry(n: u64) -> ChainEntry {
        ChainEntry {
            sequence: n,
            id: SubmissionId::from_bytes(unique(n)),
            sha256: hex::encode([unique(n), [0xab; 16]].concat()),
            day: UtcDay::from_days_since_epoch(20_000),
        }
    }

    /// 16 bytes that differ for every `n`.
    fn unique(n: u64) -> [u8; 16] {
        let mut bytes = [0x5a; 16];
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        bytes
    }

    /// The chain a gateway would show: entries `1..=to`, each with its fate.
    struct Gateway {
        entries: Vec<(ChainEntry, Fate)>,
    }

    impl Gateway {
        fn new(to: u64) -> Self {
            Gateway {
                entries: (1..=to).map(|n| (entry(n), Fate::InBundle)).collect(),
            }
        }

        fn point(&self, n: u64) -> ChainPoint {
            let mut hash = GENESIS;
            for (e, _) in self.entries.iter().take(n as usize) {
                hash = next_hash(&hash, &e.leaf().expect("leaf"));
            }
            ChainPoint { sequence: n, hash }
        }

        /// The batch of `from..=to`: its segment and the bundle entries it carries.
        fn batch(&self, from: u64, to: u64) -> (ChainSegment, Vec<BundleEntry>) {
            let items: Vec<SegmentEntry> = self.entries[(from - 1) as usize..to as usize]
                .iter()
                .map(|(e, fate)| SegmentEntry {
                    entry: e.clone(),
                    fate: *fate,
                })
                .collect();
            let carried = items
                .iter()
                .filter(|i| i.fate == Fate::InBundle)
                .map(|i| BundleEntry {
                    id: i.entry.id,
                    day: i.entry.day,
                    size: 10,
                    sha256: i.entry.sha256.clone(),
                    sealing: Sealing::BySender,
                })
                .collect();
            let segment = ChainSegment {
                base: self.point(from - 1),
                head: self.point(to),
                entries: items,
            };
            (segment, carried)
        }
    }

    fn batch_id(n: u8) -> BatchId {
        BatchId::from_bytes([n; 16])
    }

    /// Every submission of a bundle reached.
    fn all(carried: &[BundleEntry]) -> HashSet<SubmissionId> {
        carried.iter().map(|e| e.id).collect()
    }

    #[test]
    fn bundles_in_order_account_for_every_number_once() {
        let (_dir, mut registry) = registry();
        let mut gateway = Gateway::new(6);
        gateway.entries[3].1 = Fate::RemovedUnexported {
            removed: UtcDay::from_days_since_epoch(20_050),
        };
        let (s1, b1) = gateway.batch(1, 3);
        let r = registry
            .check_chain(&batch_id(1), Some(&s1), &b1, &all(&b1))
            .unwrap();
        assert_eq!(r.problems, vec![]);
        assert_eq!(
            (r.covered, r.known_through, r.arrived),
            (Some((1, 3)), 3, 3)
        );
        let (s2, b2) = gateway.batch(4, 6);
        let r = registry
            .check_chain(&batch_id(2), Some(&s2), &b2, &all(&b2))
            .unwrap();
        assert_eq!(r.problems, vec![]);
        assert_eq!((r.known_through, r.arrived), (6, 5));
        assert_eq!(r.removed, vec![4]);
        assert!(r.gaps.is_empty(), "{:?}", r.gaps);
        // Opening the same bundle again changes nothing.
        let again = registry
            .check_chain(&batch_id(2), Some(&s2), &b2, &all(&b2))
            .unwrap();
        assert_eq!(again.problems, vec![]);
        assert_eq!(again.arrived, 5);
    }

    #[test]
    fn a_bundle_opened_out_of_order_leaves_a_gap_until_the_other_arrives() {
        let (_dir, mut registry) = registry();
        let gateway = Gateway::new(6);
        let (s2, b2) = gateway.batch(4, 6);
        let r = registry
            .check_chain(&batch_id(2), Some(&s2), &b2, &all(&b2))
            .unwrap();
        assert_eq!(r.problems, vec![]);
        assert_eq!(r.gaps, vec![(1, 3)]);
        let (s1, b1) = gateway.batch(1, 3);
        let r = registry
            .check_chain(&batch_id(1), Some(&s1), &b1, &all(&b1))
            .unwrap();
        assert_eq!(r.problems, vec![]);
        assert!(r.gaps.is_empty());
    }

    #[test]
    fn a_history_rewritten_before_an_earlier_head_is_caught_at_the_base() {
        let (_dir, mut registry) = registry();
        let honest = Gateway::new(4);
        let (s1, b1) = honest.batch(1, 2);
        registry
            .check_chain(&batch_id(1), Some(&s1), &b1, &all(&b1))
            .unwrap();
        // The gateway swaps numbers 1 and 3 and recomputes every hash: the next segment adds
        // up by itself, and its base no longer meets the head batch 1 showed.
        let mut forged = Gateway::new(4);
        forged.entries.swap(0, 2);
        for (n, (e, _)) in forged.entries.iter_mut().enumerate() {
            e.sequence = n as u64 + 1;
        }
        let (s2, b2) = forged.batch(3, 4);
        let r = registry
            .check_chain(&batch_id(2), Some(&s2), &b2, &all(&b2))
            .unwrap();
        assert!(
            r.problems
                .iter()
                .any(|p| matches!(p, ChainProblem::Rewritten { sequence: 2, .. })),
            "{:?}",
            r.problems
        );
        assert_eq!(registry.chain_problems().unwrap().len(), r.problems.len());
        // Still listed by a later run, without opening anything.
        assert_eq!(
            registry.chain_status().unwrap().earlier_problems,
            r.problems.len() as u64
        );
    }

    #[test]
    fn lost_altered_withheld_and_smuggled_submissions_are_named_by_number() {
        let (_dir, mut registry) = registry();
        let mut gateway = Gateway::new(5);
        gateway.entries[1].1 = Fate::Missing;
        let (segment, mut carried) = gateway.batch(1, 5);
        // Number 3's ciphertext is another one; number 4 is not carried; a stranger is.
        carried[1].sha256 = hex::encode([1u8; 32]);
        carried.retain(|e| e.id != entry(4).id);
        carried.push(BundleEntry {
            id: SubmissionId::from_bytes([99; 16]),
            ..carried[0].clone()
        });
        let r = registry
            .check_chain(&batch_id(1), Some(&segment), &carried, &all(&carried))
            .unwrap();
        let kinds: Vec<_> = r
            .problems
            .iter()
            .map(|p| (p.kind(), p.sequence()))
            .collect();
        assert!(kinds.contains(&("missing", Some(2))), "{kinds:?}");
        assert!(kinds.contains(&("altered", Some(3))), "{kinds:?}");
        assert!(kinds.contains(&("withheld", Some(4))), "{kinds:?}");
        assert!(kinds.contains(&("not_in_chain", None)), "{kinds:?}");
        assert_eq!(r.problems.len(), 4, "{:?}", r.problems);
    }

    #[test]
    fn a_broken_segment_keeps_nothing_and_a_number_covered_twice_is_flagged() {
        let (_dir, mut registry) = registry();
        let gateway = Gateway::new(3);
        let (mut broken, carried) = gateway.batch(1, 3);
        broken.entries[0].entry.sha256 = hex::encode([5u8; 32]);
        let r = registry
            .check_chain(&batch_id(1), Some(&broken), &carried, &all(&carried))
            .unwrap();
        assert!(
            matches!(r.problems[..], [ChainProblem::Broken(_)]),
            "{:?}",
            r.problems
        );
        assert_eq!(r.known_through, 0);
        let (s, b) = gateway.batch(1, 3);
        assert_eq!(
            registry
                .check_chain(&batch_id(2), Some(&s), &b, &all(&b))
                .unwrap()
                .problems,
            vec![]
        );
        let r = registry
            .check_chain(&batch_id(3), Some(&s), &b, &all(&b))
            .unwrap();
        let twice: Vec<_> = r
            .problems
            .iter()
            .filter(|p| matches!(p, ChainProblem::CoveredTwice { .. }))
            .collect();
        assert_eq!(twice.len(), 3, "{:?}", r.problems);
    }

    #[test]
    fn a_copy_is_matched_against_what_the_chain_showed() {
        let (_dir, mut registry) = registry();
        let gateway = Gateway::new(2);
        let (s, b) = gateway.batch(1, 2);
        registry
            .check_chain(&batch_id(1), Some(&s), &b, &all(&b))
            .unwrap();
        let mut copy = b.clone();
        assert_eq!(
            registry
                .check_chain(&batch_id(9), None, &copy, &all(&copy))
                .unwrap()
                .problems,
            vec![]
        );
        copy[0].sha256 = hex::encode([3u8; 32]);
        let r = registry
            .check_chain(&batch_id(9), None, &copy, &all(&copy))
            .unwrap();
        assert_eq!(r.covered, None);
        assert!(matches!(
            r.problems[..],
            [ChainProblem::Altered { sequence: 1, .. }]
        ));
    }

    /// Regression (hostile review): after one honest segment, later batches shipped without
    /// their part of the chain hid a dropped report.
    #[test]
    fn a_bundle_without_its_part_of_the_log_after_one_with_it_is_carried_outside_the_log() {
        let (_dir, mut registry) = registry();
        let gateway = Gateway::new(10);
        let (s1, b1) = gateway.batch(1, 3);
        registry
            .check_chain(&batch_id(1), Some(&s1), &b1, &all(&b1))
            .unwrap();
        let (_, later) = gateway.batch(4, 10);
        let carried: Vec<BundleEntry> = later.into_iter().step_by(2).collect();
        let r = registry
            .check_chain(&batch_id(2), None, &carried, &all(&carried))
            .unwrap();
        assert_eq!(r.problems.len(), carried.len(), "{:?}", r.problems);
        assert!(r
            .problems
            .iter()
            .all(|p| matches!(p, ChainProblem::OutsideTheLog { .. })));
        // A copy of new reports (its batch id derived from its ids) is no problem: its batch
        // brings the segment later.
        let copy_id = crate::bundle::copy_batch_id(&[carried[0].id]);
        let r = registry
            .check_chain(&copy_id, None, &carried[..1], &all(&carried[..1]))
            .unwrap();
        assert_eq!(r.problems, vec![]);
        // Nor is a batch sent again after a partial purge: everything in it was shown already.
        let r = registry
            .check_chain(&batch_id(1), None, &b1, &all(&b1))
            .unwrap();
        assert_eq!(r.problems, vec![]);
    }

    /// Regression (hostile review): arrivals were counted from the manifest, not from what a
    /// run read.
    #[test]
    fn only_what_a_run_reached_counts_as_arrived() {
        let (_dir, mut registry) = registry();
        let gateway = Gateway::new(3);
        let (s, b) = gateway.batch(1, 3);
        let first: HashSet<SubmissionId> = [b[0].id].into_iter().collect();
        let r = registry
            .check_chain(&batch_id(1), Some(&s), &b, &first)
            .unwrap();
        assert_eq!(r.problems, vec![]);
        assert_eq!((r.arrived, r.not_opened.clone()), (1, vec![2, 3]));
        let r = registry
            .check_chain(&batch_id(1), Some(&s), &b, &all(&b))
            .unwrap();
        assert_eq!((r.arrived, r.not_opened), (3, vec![]));
    }

    /// Regression (hostile review): a second segment over the same numbers with other fates
    /// passed.
    #[test]
    fn overlapping_segments_of_two_batches_are_flagged_whatever_their_fates() {
        let (_dir, mut registry) = registry();
        let mut gateway = Gateway::new(5);
        let (s1, b1) = gateway.batch(1, 3);
        registry
            .check_chain(&batch_id(1), Some(&s1), &b1, &all(&b1))
            .unwrap();
        for n in [1, 2] {
            gateway.entries[n].1 = Fate::RemovedUnexported {
                removed: UtcDay::from_days_since_epoch(20_001),
            };
        }
        let (s2, b2) = gateway.batch(2, 5);
        let r = registry
            .check_chain(&batch_id(2), Some(&s2), &b2, &all(&b2))
            .unwrap();
        let twice: Vec<_> = r
            .problems
            .iter()
            .filter_map(|p| match p {
                ChainProblem::CoveredTwice { sequence, .. } => Some(*sequence),
                _ => None,
            })
            .collect();
        assert_eq!(twice, vec![2, 3], "{:?}", r.problems);
    }

    /// A head the watch verified is a point every bundle must meet.
    #[test]
    fn a_head_seen_by_the_watch_catches_a_history_forked_for_the_bundles() {
        let (_dir, mut registry) = registry();
        let seen_by_watch = Gateway::new(5);
        assert_eq!(
            registry.record_seen_head(&seen_by_watch.point(5)).unwrap(),
            vec![]
        );
        assert_eq!(registry.chain_status().unwrap().gaps, vec![(1, 5)]);
        // The bundles get another history: number 3 dropped, later ones renumbered.
        let mut forked = Gateway::new(6);
        forked.entries.remove(2);
        for (n, (e, _)) in forked.entries.iter_mut().enumerate() {
            e.sequence = n as u64 + 1;
        }
        let (s, b) = forked.batch(1, 5);
        let r = registry
            .check_chain(&batch_id(1), Some(&s), &b, &all(&b))
            .unwrap();
        assert!(
            r.problems
                .iter()
                .any(|p| matches!(p, ChainProblem::Rewritten { sequence: 5, .. })),
            "{:?}",
            r.problems
        );
        // The genuine history meets it.
        let (_dir, mut registry) = super::tests::registry();
        registry.record_seen_head(&seen_by_watch.point(5)).unwrap();
        let (s, b) = seen_by_watch.batch(1, 5);
        let r = registry
            .check_chain(&batch_id(1), Some(&s), &b, &all(&b))
            .unwrap();
        assert_eq!(r.problems, vec![]);
        assert!(r.gaps.is_empty());
    }

    /// Regression (hostile review): each problem was inserted with a scan of every earlier one,
    /// so a crafted segment of 400,000 `missing` entries took hours.
    #[test]
    fn a_flood_of_problems_is_capped_and_recorded_once() {
        let (_dir, mut registry) = registry();
        let mut gateway = Gateway::new(5_000);
        for item in &mut gateway.entries {
            item.1 = Fate::Missing;
        }
        let (s, b) = gateway.batch(1, 5_000);
        let r = registry
            .check_chain(&batch_id(1), Some(&s), &b, &all(&b))
            .unwrap();
        assert_eq!(r.problems.len(), MAX_PROBLEMS_PER_BUNDLE + 1);
        assert_eq!(
            r.problems.last(),
            Some(&ChainProblem::More {
                count: 5_000 - MAX_PROBLEMS_PER_BUNDLE
            })
        );
        assert_eq!(
            registry.chain_problems().unwrap().len(),
            MAX_PROBLEMS_PER_BUNDLE + 1
        );
        // Opening it again records nothing twice (the unique index, not a scan per insert).
        registry
            .check_chain(&batch_id(1), Some(&s), &b, &all(&b))
            .unwrap();
        assert_eq!(
            registry.chain_problems().unwrap().len(),
            MAX_PROBLEMS_PER_BUNDLE + 1
        );
    }

    #[test]
    fn ranges_read_well() {
        assert_eq!(
            as_ranges(&[1, 2, 3, 7, 9, 10]),
            vec![(1, 3), (7, 7), (9, 10)]
        );
        assert_eq!(ranges(&as_ranges(&[1, 2, 3, 7]), 5), "1–3, 7");
        assert_eq!(ranges(&[(1, 1), (3, 3), (5, 5)], 2), "1, 3, …");
    }
}
