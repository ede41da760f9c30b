//! Triage v1: the small note sealed to the people on call beside every report
//! (`docs/early-alerts.md`).
//!
//! It carries what is needed to act at once (urgency, incident types, region, day) and never any
//! free text. Its plaintext is always exactly [`TRIAGE_BYTES`] long, so every sealed envelope of
//! one client to one set of courier keys has the same length, urgent or not. The page builds the
//! same note (`static/js/triage.js`); `tests/vectors/triage/` pins both.

use std::io;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::envelope::{self, EnvelopeError, RecipientSet};
use crate::keyring::CourierKeyring;
use crate::payload::{FieldValue, Report, Urgency};
use crate::submission::UtcDay;

/// The request header that carries a submission's sealed triage envelope, in base64.
pub const HEADER: &str = "resguardo-triage";

/// Largest sealed triage envelope accepted, in bytes (one with the most couriers allowed is
/// under 3 KiB).
pub const MAX_SEALED_BYTES: usize = 6 * 1024;

/// The plaintext length of every triage note, in bytes: JSON, then spaces.
pub const TRIAGE_BYTES: usize = 1024;

/// The schema name in every note.
pub const SCHEMA: &str = "resguardo.triage/1";

/// The report field whose options are the incident types.
pub const TYPES_FIELD: &str = "what_happened";
/// The report field whose option is the region.
pub const REGION_FIELD: &str = "region";

/// Longest incident type or region id kept (form option ids are short; anything longer is not
/// an option id and is dropped rather than cut).
const MAX_ID_CHARS: usize = 64;

/// What the person on call reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triage {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The answer to "is someone at imminent risk?".
    pub urgent: Urgency,
    /// Incident types (option ids of the form's `what_happened`), in the report's order.
    pub types: Vec<String>,
    /// The region's option id, when the reporter gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The UTC day the note was sealed.
    pub day: UtcDay,
    /// True when types had to be dropped to fit [`TRIAGE_BYTES`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub types_cut: bool,
}

/// Why bytes are not a triage note.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriageError {
    /// Not exactly [`TRIAGE_BYTES`] long.
    #[error("a triage note is {TRIAGE_BYTES} bytes, not {0}")]
    Length(usize),
    /// Not the JSON of a triage note followed by spaces.
    #[error("not a triage note: {0}")]
    Malformed(String),
}

fn option_id(value: &str) -> Option<String> {
    let ok = !value.is_empty()
        && value.chars().count() <= MAX_ID_CHARS
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    ok.then(|| value.to_string())
}

impl Triage {
    /// The note for a report, sealed on `day`. Only option ids pass: a value that is not one
    /// (free text in a deployment's form) is left out, never copied.
    pub fn of_report(report: &Report, day: UtcDay) -> Self {
        let types = match report.fields.get(TYPES_FIELD) {
            Some(FieldValue::Choices(choices)) => {
                choices.iter().filter_map(|c| option_id(c)).collect()
            }
            Some(FieldValue::Text(one)) => option_id(one).into_iter().collect(),
            None => Vec::new(),
        };
        let region = match report.fields.get(REGION_FIELD) {
            Some(FieldValue::Text(region)) => option_id(region),
            _ => None,
        };
        Triage {
            schema: SCHEMA.into(),
            urgent: report.urgency(),
            types,
            region,
            day,
            types_cut: false,
        }
    }

    /// The note's plaintext: its JSON, then spaces up to [`TRIAGE_BYTES`]. Types are dropped
    /// from the end (and `types_cut` set) in the unlikely case the JSON would not fit.
    pub fn to_padded(&self) -> Vec<u8> {
        let mut note = self.clone();
        loop {
            let mut json = serde_json::to_vec(&note).unwrap_or_default();
            if json.len() <= TRIAGE_BYTES {
                json.resize(TRIAGE_BYTES, b' ');
                return json;
            }
            note.types_cut = true;
            if note.types.pop().is_none() {
                // Only a region id of 64 characters and no types: cannot happen with the
                // bounds above, but never write an oversized note.
                note.region = None;
            }
        }
    }

    /// Reads a note: exactly [`TRIAGE_BYTES`], JSON of this schema, then spaces only.
    pub fn from_padded(bytes: &[u8]) -> Result<Self, TriageError> {
        if bytes.len() != TRIAGE_BYTES {
            return Err(TriageError::Length(bytes.len()));
        }
        let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        let note: Triage = serde_json::from_slice(&bytes[..end])
            .map_err(|e| TriageError::Malformed(e.to_string()))?;
        if note.schema != SCHEMA {
            return Err(TriageError::Malformed(format!(
                "unknown schema {:?}",
                note.schema
            )));
        }
        if note
            .types
            .iter()
            .chain(&note.region)
            .any(|v| option_id(v).is_none())
        {
            return Err(TriageError::Malformed(
                "a type or region is not an option id".into(),
            ));
        }
        Ok(note)
    }
}

/// Why a submission's triage envelope is refused.
#[derive(Debug, thiserror::Error)]
pub enum SealedTriageError {
    /// Not base64, or larger than [`MAX_SEALED_BYTES`].
    #[error("the triage envelope is not base64 of at most {MAX_SEALED_BYTES} bytes")]
    Encoding,
    /// Not exactly a sealed message for the couriers (the report's own rules).
    #[error("the triage envelope is not a sealed message for the couriers: {0}")]
    Envelope(#[from] EnvelopeError),
}

/// Seals a note to every courier: one literal packet of [`TRIAGE_BYTES`] in one SEIPD packet,
/// as a report is sealed to the reviewers. `None` when no courier is configured.
pub fn seal(note: &Triage, couriers: &CourierKeyring) -> io::Result<Option<Vec<u8>>> {
    if couriers.is_empty() {
        return Ok(None);
    }
    let mut sealed = Vec::new();
    let mut sealer = crate::seal::sealer_to(couriers.recipients(), &mut sealed)?;
    io::Write::write_all(&mut sealer, &note.to_padded())?;
    sealer.finalize().map_err(io::Error::other)?;
    Ok(Some(sealed))
}

/// The header value that carries a sealed envelope.
pub fn header_value(sealed: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

/// Decodes a triage header value and checks it as the gateway checks a report, against the
/// couriers' encryption keys: only PKESKs to them, one SEIPD, nothing else. Returns the bytes.
pub fn check_sealed(header: &[u8], couriers: &RecipientSet) -> Result<Vec<u8>, SealedTriageError> {
    if header.len() > MAX_SEALED_BYTES.div_ceil(3) * 4 + 4 {
        return Err(SealedTriageError::Encoding);
    }
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(header)
        .map_err(|_| SealedTriageError::Encoding)?;
    if sealed.len() > MAX_SEALED_BYTES {
        return Err(SealedTriageError::Encoding);
    }
    envelope::check(&sealed[..], couriers, io::sink())?;
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(fields: serde_json::Value, urgent: bool) -> Report {
        serde_json::from_value(serde_json::json!({
            "schema": "resguardo.report/1", "language": "es", "urgent": urgent,
            "fields": fields, "description": "CANARY-DESCRIPTION", "attachments": []
        }))
        .unwrap()
    }

    #[test]
    fn a_note_has_the_fixed_length_and_no_free_text() {
        let day: UtcDay = "2026-11-30".parse().unwrap();
        let urgent = report(
            serde_json::json!({"urgent": "yes", "what_happened": ["threat", "Free text here"],
                               "region": "puno", "place": "CANARY-PLACE"}),
            true,
        );
        let calm = report(serde_json::json!({"urgent": "no"}), false);
        let a = Triage::of_report(&urgent, day).to_padded();
        let b = Triage::of_report(&calm, day).to_padded();
        assert_eq!((a.len(), b.len()), (TRIAGE_BYTES, TRIAGE_BYTES));
        let text = String::from_utf8_lossy(&a);
        assert!(
            !text.contains("CANARY") && !text.contains("Free text"),
            "{text}"
        );
        let back = Triage::from_padded(&a).unwrap();
        assert_eq!(back.urgent, Urgency::Yes);
        assert_eq!(back.types, ["threat"]);
        assert_eq!(back.region.as_deref(), Some("puno"));
        assert_eq!(Triage::from_padded(&b).unwrap().urgent, Urgency::No);
    }

    #[test]
    fn bad_notes_are_refused() {
        let day: UtcDay = "2026-11-30".parse().unwrap();
        let good = Triage::of_report(&report(serde_json::json!({}), false), day).to_padded();
        assert!(matches!(
            Triage::from_padded(&good[..100]),
            Err(TriageError::Length(100))
        ));
        let mut trailing = good.clone();
        trailing[TRIAGE_BYTES - 1] = b'x';
        assert!(Triage::from_padded(&trailing).is_err());
        let mut other =
            br#"{"schema":"resguardo.triage/9","urgent":"no","types":[],"day":"2026-11-30"}"#
                .to_vec();
        other.resize(TRIAGE_BYTES, b' ');
        assert!(Triage::from_padded(&other).is_err());
    }

    #[test]
    fn too_many_types_are_cut_to_fit() {
        let day: UtcDay = "2026-11-30".parse().unwrap();
        let many: Vec<String> = (0..40)
            .map(|i| format!("type_{i:02}_{}", "x".repeat(40)))
            .collect();
        let note = Triage::of_report(
            &report(serde_json::json!({"what_happened": many}), false),
            day,
        );
        let padded = note.to_padded();
        assert_eq!(padded.len(), TRIAGE_BYTES);
        let back = Triage::from_padded(&padded).unwrap();
        assert!(back.types_cut && !back.types.is_empty() && back.types.len() < 40);
    }
}
