//! Payload v1: the plaintext inside a sealed submission, specified in `docs/payload-v1.md`.
//!
//! A POSIX (ustar) tar archive, so a reviewer can also read it with `gpg -d | tar -x`:
//!
//! ```text
//! report.json        the form: schema, language, urgent, fields, description, attachments
//! files/001.pdf      one entry per attachment, under a generated safe name
//! files/002.jpg      (the reporter's original file name lives only in report.json)
//! padding            zeros, so the archive's length is one of few sizes (Padmé buckets)
//! ```
//!
//! Every writer (the browser page, `resguardo-submit`, the gateway's form sealing) produces the
//! same layout; the reviewer tool's reader ([`read`]) accepts nothing else.

pub mod read;
mod write;

pub use write::{padded_length, write_payload, AttachmentSource};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The schema name in `report.json`.
pub const SCHEMA: &str = "resguardo.report/1";

/// Name of the archive's first entry, the report.
pub const REPORT_NAME: &str = "report.json";
/// Name of the zero-filled last entry that pads the archive to its Padmé length.
pub const PADDING_NAME: &str = "padding";

/// Bound on `report.json`.
pub const MAX_REPORT_BYTES: u64 = 1024 * 1024;
/// Bound on the number of attachments.
pub const MAX_ATTACHMENTS: usize = 100;
/// Bound on the number of form fields in a report.
pub const MAX_FIELDS: usize = 64;
/// Bound on one field's text (each value of a list too), in characters.
pub const MAX_FIELD_CHARS: usize = 4000;
/// Bound on the free-text account.
pub const MAX_DESCRIPTION_CHARS: usize = 200_000;
/// Bound on an attachment's original file name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Bound on an attachment's media type, in characters (visible ASCII only).
pub const MAX_MEDIA_TYPE_CHARS: usize = 127;

/// Smallest padded archive: every short text report looks the same size.
pub const MIN_PADDED: u64 = 32 * 1024;

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Always [`SCHEMA`]; a future version of the format changes it.
    pub schema: String,
    /// BCP 47 language tag of the form the reporter filled in (e.g. "es", "en", "qu").
    pub language: String,
    /// True if someone is at imminent risk to life or physical integrity.
    pub urgent: bool,
    /// Which software sealed it: "browser", "gateway" (sealed on arrival) or "terminal".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_by: Option<String>,
    /// The form's answers, by field id.
    pub fields: BTreeMap<String, FieldValue>,
    /// The free-text account, at most [`MAX_DESCRIPTION_CHARS`] characters; may be empty.
    pub description: String,
    /// At most [`MAX_ATTACHMENTS`], in archive order.
    pub attachments: Vec<Attachment>,
    /// The anonymous conversation this report starts (with the reply key) or continues (a
    /// follow-up, without it); `docs/replies-v1.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationRef>,
}

/// A report's place in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationRef {
    /// The conversation's locator.
    pub locator: crate::replies::Locator,
    /// The reporter's reply certificate (armored), in the report that starts the conversation;
    /// absent in a follow-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_key: Option<String>,
    /// The receipt's follow-up token (64 hex), the same in every report of the conversation:
    /// reviewers thread a follow-up only if it matches the first report's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Longest armored reply certificate a report may carry.
pub const MAX_REPLY_KEY_CHARS: usize = 8 * 1024;

/// The field that holds the answer to the urgency question: `"yes"` or `"no"`, absent when the
/// reporter did not answer (the top-level `urgent` stays the writers' summary of it).
pub const URGENT_FIELD: &str = "urgent";

/// The answer to "is someone at imminent risk?", as a reviewer must read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Someone is at imminent risk: the answer is yes, or a top-level `urgent: true` says so.
    Yes,
    /// The reporter answered no.
    No,
    /// The reporter did not answer the question.
    Unanswered,
}

impl Report {
    /// The urgency answer (see [`urgency_of`]).
    pub fn urgency(&self) -> Urgency {
        urgency_of(self.urgent, &self.fields)
    }
}

/// The urgency answer: `fields.urgent` when present; without it (clients older than the field) a
/// top-level `urgent: true` still means yes. A "no" that contradicts a top-level `urgent: true`
/// counts as yes: when in doubt, read it first.
pub fn urgency_of(urgent: bool, fields: &BTreeMap<String, FieldValue>) -> Urgency {
    match fields.get(URGENT_FIELD) {
        Some(FieldValue::Text(t)) if t == "yes" => Urgency::Yes,
        _ if urgent => Urgency::Yes,
        Some(FieldValue::Text(t)) if t == "no" => Urgency::No,
        _ => Urgency::Unanswered,
    }
}

impl Urgency {
    /// As the index writes it: `yes`, `no` or `unanswered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Yes => "yes",
            Urgency::No => "no",
            Urgency::Unanswered => "unanswered",
        }
    }
}

/// A form answer: one text, or the chosen options of a multiple choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// A single answer: text, a date, a chosen option, or "yes" for a ticked box.
    Text(String),
    /// Several values, e.g. the options ticked in a multiple choice (at most 64).
    Choices(Vec<String>),
}

/// One attachment as `report.json` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// The reporter's file name; informative only, never used as a path.
    pub name: String,
    /// Length of the entry's content, in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// As the sender saw it, untrusted: visible ASCII, at most [`MAX_MEDIA_TYPE_CHARS`].
    pub media_type: String,
    /// The archive entry holding the content: `files/NNN` or `files/NNN.ext`.
    pub path: String,
}

/// A field id: 1 to 64 of `a-z`, `0-9` and `_`. The form's ids, the report's field keys and the
/// terminal client's `--field` names all follow it (and the page's script, `isValidFieldId`).
pub fn is_valid_field_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The archive entry name for the `index`th attachment (0-based), keeping a short, safe
/// extension from the original name so `tar -x` users get a usable file.
pub fn attachment_path(index: usize, original_name: &str) -> String {
    let ext = original_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| {
            (1..=8).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    match ext {
        Some(ext) => format!("files/{:03}.{ext}", index + 1),
        None => format!("files/{:03}", index + 1),
    }
}

/// Checks a generated attachment path: exactly `files/` + 3 digits + optional short extension.
pub fn is_valid_attachment_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("files/") else {
        return false;
    };
    let (number, ext) = match rest.split_once('.') {
        Some((n, e)) => (n, Some(e)),
        None => (rest, None),
    };
    number.len() == 3
        && number.bytes().all(|b| b.is_ascii_digit())
        && number != "000"
        && ext.is_none_or(|e| {
            (1..=8).contains(&e.len())
                && e.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}
