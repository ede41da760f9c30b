//! Recording opened reports as cases (`docs/registry-v1.md`, "Recording"): after every `open`,
//! each report folder of `--out` is recorded once, keyed by its submission id; a follow-up the
//! reviewers' threads verify is linked to its first report's case.

use std::path::Path;

use rusqlite::{params, OptionalExtension};

use super::{now, workflow, Registry, RegistryError};
use crate::form::FormDefinition;
use crate::payload::FieldValue;
use crate::review::opened::{read_folder, OpenedReport};
use crate::submission::SubmissionId;

/// Longest place kept, in characters (free text; never published).
const MAX_PLACE_CHARS: usize = 200;

/// Beside the registry while `open` records: if it is still there, that recording did not
/// finish, and the next one reads every folder.
const PENDING_FILE: &str = "registry.pending";

/// What one recording pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Cases added now.
    pub added: usize,
    /// Reports that were cases already.
    pub known: usize,
}

impl Registry {
    /// What `open` calls once every report is written: records the reports of `opened` (this
    /// run's), or every folder of `out` when the registry is new or the last recording did not
    /// finish. A pass then costs what is new, not what is there.
    pub fn record_opened(out: &Path, opened: &[SubmissionId]) -> Result<Recorded, RegistryError> {
        let pending = out.join(PENDING_FILE);
        let full = !out.join(super::REGISTRY_FILE).exists() || pending.exists();
        let io = |e: std::io::Error| RegistryError::Io(format!("{}: {e}", pending.display()));
        std::fs::write(&pending, b"").map_err(io)?;
        let mut registry = Registry::in_folder(out)?;
        let recorded = if full {
            registry.record_folder(out)?
        } else {
            let dirs: Vec<_> = opened
                .iter()
                .map(|id| (*id, out.join(id.to_string())))
                .collect();
            registry.record_dirs(out, &dirs)?
        };
        std::fs::remove_file(&pending).map_err(io)?;
        Ok(recorded)
    }

    /// Records every opened report of `out` not recorded yet, then links verified follow-ups to
    /// their first reports, all in one transaction.
    pub fn record_folder(&mut self, out: &Path) -> Result<Recorded, RegistryError> {
        let folders = crate::review::index::report_folders(out)
            .map_err(|e| RegistryError::Io(format!("{}: {e}", out.display())))?;
        self.record_dirs(out, &folders)
    }

    /// Records those of the report folders `folders` (of `out`) not recorded yet.
    fn record_dirs(
        &mut self,
        out: &Path,
        folders: &[(SubmissionId, std::path::PathBuf)],
    ) -> Result<Recorded, RegistryError> {
        let form = FormDefinition::embedded().map_err(|e| RegistryError::Unknown(e.to_string()))?;
        self.write(|tx| {
            let mut recorded = Recorded::default();
            let mut conversations = false;
            for (id, dir) in folders {
                // Known reports are not read again.
                if case_of(tx, id)?.is_some() {
                    recorded.known += 1;
                    continue;
                }
                let folder = read_folder(dir);
                let (Ok(entry), Some(Ok(report))) = (folder.entry, folder.report) else {
                    continue;
                };
                insert(tx, id, &entry.day.to_string(), &report, &form)?;
                recorded.added += 1;
                conversations |= report.conversation.is_some();
            }
            // Threads read every folder: only when something new belongs to a conversation.
            let threads = if conversations {
                crate::review::thread::threads(out).unwrap_or_default()
            } else {
                Default::default()
            };
            for thread in threads.values() {
                let Some(first) = thread.first() else {
                    continue;
                };
                let Some(first_case) = case_of(tx, &first.id)? else {
                    continue;
                };
                for follow_up in thread.follow_ups.iter().filter(|f| thread.verified(f)) {
                    if let Some(case) = case_of(tx, &follow_up.id)? {
                        workflow::link_in(tx, first_case, case)?;
                    }
                }
            }
            Ok(recorded)
        })
    }
}

fn case_of(
    tx: &rusqlite::Transaction<'_>,
    id: &SubmissionId,
) -> Result<Option<i64>, RegistryError> {
    Ok(tx
        .prepare_cached("SELECT id FROM cases WHERE submission = ?1")?
        .query_row([id.to_string()], |r| r.get(0))
        .optional()?)
}

/// One report as a case: only answers that are options of the form are kept (a report from
/// another client may carry anything), the place cut to its bound.
fn insert(
    tx: &rusqlite::Transaction<'_>,
    id: &SubmissionId,
    received_day: &str,
    report: &OpenedReport,
    form: &FormDefinition,
) -> Result<(), RegistryError> {
    let choices = |field: &str| -> Vec<String> {
        let allowed = form
            .field(field)
            .map(|f| f.options.as_slice())
            .unwrap_or(&[]);
        match report.fields.get(field) {
            Some(FieldValue::Choices(list)) => list
                .iter()
                .filter(|v| allowed.contains(v))
                .cloned()
                .collect(),
            Some(FieldValue::Text(v)) if allowed.contains(v) => vec![v.clone()],
            _ => Vec::new(),
        }
    };
    let one = |field: &str| choices(field).into_iter().next();
    let text = |field: &str| match report.fields.get(field) {
        Some(FieldValue::Text(v)) => Some(v.clone()),
        _ => None,
    };
    let incident_day = text("when").filter(|d| d.parse::<crate::submission::UtcDay>().is_ok());
    let place = text("place").map(|p| p.chars().take(MAX_PLACE_CHARS).collect::<String>());
    tx.execute(
        "INSERT INTO cases (submission, source, received_day, incident_day, day_approximate,
                            region, place, affected, defender_field, urgent, language,
                            conversation, recorded_at, incident)
         VALUES (?1, 'report', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0)",
        params![
            id.to_string(),
            received_day,
            incident_day,
            text("when_approximate").is_some_and(|v| v == "yes"),
            one("region"),
            place,
            one("affected"),
            one("defender_field"),
            // The answer, or the top-level flag: as the index and the watch read it.
            report.urgency() == crate::payload::Urgency::Yes,
            report.language.chars().take(35).collect::<String>(),
            report.conversation.as_ref().map(|c| c.locator.to_string()),
            now(),
        ],
    )?;
    let case = tx.last_insert_rowid();
    tx.execute("UPDATE cases SET incident = id WHERE id = ?1", [case])?;
    for t in choices("what_happened") {
        tx.execute(
            "INSERT OR IGNORE INTO case_types (case_id, type) VALUES (?1, ?2)",
            params![case, t],
        )?;
    }
    for p in choices("responsible") {
        tx.execute(
            "INSERT OR IGNORE INTO case_perpetrators (case_id, perpetrator) VALUES (?1, ?2)",
            params![case, p],
        )?;
    }
    tx.execute(
        "INSERT INTO case_history (case_id, at, status) VALUES (?1, ?2, 'recibido')",
        params![case, now()],
    )?;
    Ok(())
}
