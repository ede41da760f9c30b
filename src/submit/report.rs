//! Turning command-line input into a payload v1 report.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::SubmitError;
use crate::payload::{
    attachment_path, Attachment, FieldValue, Report, MAX_ATTACHMENTS, MAX_DESCRIPTION_CHARS,
    MAX_FIELDS, MAX_FIELD_CHARS, SCHEMA,
};

/// What the reporter gave on the command line.
#[derive(Debug, Clone, Default)]
pub struct ReportInput {
    /// A UTF-8 text file with the account of what happened.
    pub message: PathBuf,
    /// Files to attach, in order: regular files, at most [`MAX_ATTACHMENTS`].
    pub attachments: Vec<PathBuf>,
    /// BCP 47 tag for the report's `language`; passed through unchecked.
    pub language: String,
    /// Someone is at imminent risk; also sets the `urgent` field to "yes" unless it is given.
    pub urgent: bool,
    /// `key=value` form answers (a key given twice becomes a list).
    pub fields: Vec<(String, String)>,
    /// The conversation the report starts or continues (`docs/replies-v1.md`).
    pub conversation: Option<crate::payload::ConversationRef>,
}

/// Reads and checks the input; returns the report and the attachment paths in report order.
pub fn build_report(input: &ReportInput) -> Result<(Report, Vec<PathBuf>), SubmitError> {
    let input_error = |path: &Path, reason: String| SubmitError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let description = read_text(&input.message)?;
    if input.attachments.len() > MAX_ATTACHMENTS {
        return Err(input_error(
            &input.attachments[MAX_ATTACHMENTS],
            format!("at most {MAX_ATTACHMENTS} attachments"),
        ));
    }
    let mut fields: BTreeMap<String, FieldValue> = BTreeMap::new();
    for (key, value) in &input.fields {
        if !crate::payload::is_valid_field_id(key) || value.chars().count() > MAX_FIELD_CHARS {
            return Err(input_error(
                Path::new("--field"),
                format!("{key:?}: field names are lowercase letters, digits and _ (at most 64), values at most {MAX_FIELD_CHARS} characters"),
            ));
        }
        let merged = match fields.remove(key) {
            None => FieldValue::Text(value.clone()),
            Some(FieldValue::Text(first)) => FieldValue::Choices(vec![first, value.clone()]),
            Some(FieldValue::Choices(mut list)) => {
                list.push(value.clone());
                FieldValue::Choices(list)
            }
        };
        fields.insert(key.clone(), merged);
    }
    if fields.len() > MAX_FIELDS {
        return Err(input_error(
            Path::new("--field"),
            format!("at most {MAX_FIELDS} fields"),
        ));
    }
    let mut attachments = Vec::new();
    for (index, path) in input.attachments.iter().enumerate() {
        let (size, sha256) = hash_file(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("attachment-{}", index + 1));
        attachments.push(Attachment {
            path: attachment_path(index, &name),
            media_type: media_type(&name).into(),
            name: name.chars().take(crate::payload::MAX_NAME_CHARS).collect(),
            size,
            sha256,
        });
    }
    // The urgency answer is kept as an answer too ("yes"; no flag means not answered).
    if input.urgent && !fields.contains_key("urgent") {
        fields.insert("urgent".into(), FieldValue::Text("yes".into()));
    }
    let report = Report {
        schema: SCHEMA.into(),
        language: input.language.clone(),
        urgent: input.urgent,
        sealed_by: Some("terminal".into()),
        fields,
        description,
        attachments,
        conversation: input.conversation.clone(),
    };
    Ok((report, input.attachments.clone()))
}

fn read_text(path: &Path) -> Result<String, SubmitError> {
    let error = |reason: String| SubmitError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(|e| error(e.to_string()))?
        .take((MAX_DESCRIPTION_CHARS * 4 + 1) as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| error(e.to_string()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| error("the message is not UTF-8 text".into()))?;
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(error(format!(
            "the message is longer than {MAX_DESCRIPTION_CHARS} characters; attach long documents as files"
        )));
    }
    Ok(text)
}

fn hash_file(path: &Path) -> Result<(u64, String), SubmitError> {
    let error = |e: std::io::Error| SubmitError::Input {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = File::open(path).map_err(error)?;
    if !file.metadata().map_err(error)?.is_file() {
        return Err(SubmitError::Input {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    let hashed = crate::hashing::hash_stream(&mut file).map_err(error)?;
    Ok((hashed.size, hashed.sha256))
}

/// A media type from the file extension; reviewers still treat every file as untrusted.
pub fn media_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" => "text/plain",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "m4a" => "audio/mp4",
        "wav" => "audio/wav",
        "odt" => "application/vnd.oasis.opendocument.text",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "doc" => "application/msword",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}
