//! A report folder as `open` leaves it in `--out/<id>/`, and reading one back (for the index,
//! `list DIR` and the urgency count of earlier runs).
//!
//! ```text
//! report.json        the reporter's report.json, every attachment's `path` pointing at the
//!                    file as saved (`files/001-photo.jpg`); the payload's entry name
//!                    (`files/001.jpg`) kept as `archive_path`
//! report.txt         the report for people, labelled in a language reviewers read (its own if
//!                    Spanish or English, else the reviewer's), cleaned for terminals
//! files/NNN-name     the attachments, under names we generate
//! message.bin        instead of the three above, a plaintext that was not a payload v1
//! bundle-entry.json  the bundle manifest's entry: id, day, size, sha256, sealing
//! ```
//!
//! Everything but `bundle-entry.json` is the reporter's: `report.json` keeps their text raw, so
//! it is as untrusted as the submission itself (see `docs/reports-folder.md`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bundle::BundleEntry;
use crate::payload::{urgency_of, Attachment, ConversationRef, FieldValue, Report, Urgency};

/// Bound on a report folder's `report.json` (the payload's is at most 1 MiB; ours adds paths
/// and pretty-printing).
pub const MAX_OPENED_REPORT_BYTES: u64 = 4 * 1024 * 1024;

/// Bound on `bundle-entry.json`.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

/// `report.json` as written into a report folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenedReport {
    /// The payload's schema string, copied (the payload v1 [`crate::payload::SCHEMA`]).
    pub schema: String,
    /// The reporter's BCP 47 language tag, as the payload gave it.
    pub language: String,
    /// The payload's top-level urgency flag; read it through [`OpenedReport::urgency`].
    pub urgent: bool,
    /// Which software sealed it, as the payload claims (`browser`, `gateway`, `terminal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_by: Option<String>,
    /// The form's answers by field id, raw reporter text.
    pub fields: BTreeMap<String, FieldValue>,
    /// The reporter's free-text account, raw; may be empty.
    pub description: String,
    /// The attachments in archive order, each pointing at its saved file.
    pub attachments: Vec<SavedAttachment>,
    /// The conversation the report starts (with the reporter's reply key) or continues (a
    /// follow-up), as the payload gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationRef>,
}

/// One attachment as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedAttachment {
    /// The reporter's file name; informative only.
    pub name: String,
    /// Length of the content, in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// The media type the sender gave; untrusted.
    pub media_type: String,
    /// The file as saved, relative to the report folder: `files/NNN-name`.
    pub path: String,
    /// The entry in the payload archive (`files/NNN[.ext]`). Absent in folders opened before
    /// paths were rewritten, whose `path` is still the entry name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_path: Option<String>,
}

impl OpenedReport {
    /// The payload's report, with each attachment pointing at `saved[i]` (relative to the folder).
    pub fn new(report: &Report, saved: &[String]) -> OpenedReport {
        let attachments = report
            .attachments
            .iter()
            .zip(saved)
            .map(|(a, saved): (&Attachment, &String)| SavedAttachment {
                name: a.name.clone(),
                size: a.size,
                sha256: a.sha256.clone(),
                media_type: a.media_type.clone(),
                path: saved.clone(),
                archive_path: Some(a.path.clone()),
            })
            .collect();
        OpenedReport {
            schema: report.schema.clone(),
            language: report.language.clone(),
            urgent: report.urgent,
            sealed_by: report.sealed_by.clone(),
            fields: report.fields.clone(),
            description: report.description.clone(),
            attachments,
            conversation: report.conversation.clone(),
        }
    }

    /// The urgency answer, read as [`urgency_of`] reads a payload's.
    pub fn urgency(&self) -> Urgency {
        urgency_of(self.urgent, &self.fields)
    }
}

/// Reads a bounded JSON file of a report folder.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, bound: u64) -> Result<T, String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(bound + 1).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > bound {
        return Err(format!("larger than {} KiB", bound / 1024));
    }
    serde_json::from_slice(&bytes).map_err(|e| crate::terminal::clean_line(&e.to_string()))
}

/// What a report folder holds, as far as the index needs it.
pub struct Folder {
    /// `bundle-entry.json`, or why it could not be read.
    pub entry: Result<BundleEntry, String>,
    /// `None` for a plaintext kept as `message.bin`.
    pub report: Option<Result<OpenedReport, String>>,
}

/// Reads a report folder (symlinks are not followed: `dir` must be a real directory).
pub fn read_folder(dir: &Path) -> Folder {
    let entry = read_json(&dir.join("bundle-entry.json"), MAX_ENTRY_BYTES);
    let report_path = dir.join("report.json");
    let report = match std::fs::symlink_metadata(&report_path) {
        Ok(meta) if meta.is_file() => Some(read_json(&report_path, MAX_OPENED_REPORT_BYTES)),
        Ok(_) => Some(Err("report.json is not a regular file".into())),
        Err(_) if dir.join("message.bin").is_file() => None,
        Err(e) => Some(Err(format!("report.json: {e}"))),
    };
    Folder { entry, report }
}

/// The bundle entry a report folder was opened from (`bundle-entry.json`, which `open` writes
/// itself): the size and SHA-256 of the ciphertext that was opened.
pub fn opened_entry(dir: &Path) -> Option<BundleEntry> {
    read_json(&dir.join("bundle-entry.json"), MAX_ENTRY_BYTES).ok()
}

/// The urgency of an opened report, from what the run that opened it wrote.
pub fn urgency_in(dir: &Path) -> Option<Urgency> {
    match read_folder(dir).report {
        Some(Ok(report)) => Some(report.urgency()),
        Some(Err(_)) => None,
        None => Some(Urgency::Unanswered),
    }
}
