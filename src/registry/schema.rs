//! The registry's schema and its migrations (`docs/registry-v1.md`, "Schema"). Each step takes
//! the file from one version to the next in one transaction; a fresh file runs them all.

use rusqlite::Connection;

use super::{RegistryError, APPLICATION_ID};

/// The schema version this code writes and reads.
pub const VERSION: i64 = 3;

/// `STEPS[n]` takes a registry from version `n` to `n + 1`.
const STEPS: [&str; VERSION as usize] = [
    // 0 → 1: cases, their types and perpetrators, their history.
    "CREATE TABLE cases (
        id              INTEGER PRIMARY KEY,
        submission      TEXT UNIQUE,
        source          TEXT NOT NULL CHECK (source IN ('report', 'import')),
        received_day    TEXT NOT NULL,
        incident_day    TEXT,
        day_approximate INTEGER NOT NULL DEFAULT 0,
        region          TEXT,
        place           TEXT,
        affected        TEXT,
        defender_field  TEXT,
        urgent          INTEGER NOT NULL DEFAULT 0,
        language        TEXT,
        conversation    TEXT,
        status          TEXT NOT NULL DEFAULT 'recibido',
        risk            TEXT,
        assigned        TEXT,
        recorded_at     TEXT NOT NULL,
        first_acted_at  TEXT
     );
     CREATE TABLE case_types (
        case_id INTEGER NOT NULL REFERENCES cases(id),
        type    TEXT NOT NULL,
        PRIMARY KEY (case_id, type)
     );
     CREATE TABLE case_perpetrators (
        case_id     INTEGER NOT NULL REFERENCES cases(id),
        perpetrator TEXT NOT NULL,
        PRIMARY KEY (case_id, perpetrator)
     );
     CREATE TABLE case_history (
        id       INTEGER PRIMARY KEY,
        case_id  INTEGER NOT NULL REFERENCES cases(id),
        at       TEXT NOT NULL,
        status   TEXT NOT NULL,
        risk     TEXT,
        assigned TEXT,
        note     TEXT
     );
     CREATE INDEX cases_received ON cases(received_day);",
    // 1 → 2: incidents (linked cases count once).
    "ALTER TABLE cases ADD COLUMN incident INTEGER;
     UPDATE cases SET incident = id;
     CREATE INDEX cases_incident ON cases(incident);",
    // 2 → 3: what the bundles showed of the gateway's chain (docs/trust-v1.md).
    "CREATE TABLE chain_entries (
        sequence    INTEGER PRIMARY KEY,
        leaf        TEXT NOT NULL,
        hash        TEXT NOT NULL,
        submission  TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        day         TEXT NOT NULL,
        fate        TEXT NOT NULL CHECK (fate IN ('in_bundle', 'removed_unexported', 'missing')),
        removed_day TEXT,
        batch       TEXT NOT NULL,
        arrived     INTEGER NOT NULL DEFAULT 0
     );
     CREATE INDEX chain_entries_submission ON chain_entries(submission);
     CREATE TABLE chain_points (
        sequence INTEGER PRIMARY KEY,
        hash     TEXT NOT NULL,
        batch    TEXT NOT NULL
     );
     CREATE TABLE chain_problems (
        id          INTEGER PRIMARY KEY,
        batch       TEXT NOT NULL,
        kind        TEXT NOT NULL,
        sequence    INTEGER,
        detail      TEXT NOT NULL,
        recorded_at TEXT NOT NULL
     );
     CREATE UNIQUE INDEX chain_problems_once
        ON chain_problems(batch, kind, ifnull(sequence, -1), detail);",
];

/// Brings `conn` to `target` (at most [`VERSION`]; less only in tests of the migrations).
pub(super) fn migrate(conn: &mut Connection, target: i64) -> Result<(), RegistryError> {
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Read inside the transaction: two commands starting on a fresh file migrate once.
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version >= target {
            return Ok(());
        }
        if version == 0 {
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        }
        tx.execute_batch(STEPS[version as usize])?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}
