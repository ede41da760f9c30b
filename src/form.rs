//! The submission form's definition (`static/form.json`), shared by the page renderer, the
//! gateway's on-arrival sealing of form posts, and the review tool's `report.txt`.
//!
//! The form is data so a deployment can adapt it (another country's regions, another list of
//! incident types) without touching code; only three field types are structural, because they map
//! to top-level keys of payload v1: `urgent`, `description` and `attachments`.
//!
//! This module also owns the rule that turns answers into a report ([`FormDefinition::build_report`]:
//! which answers are allowed, which count as given, what a missing required answer is). The page's
//! script applies the same rule (`static/js/report.js`); the checked-in vectors in
//! `tests/vectors/report/` pin both.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::payload::{self, attachment_path, Attachment, FieldValue, Report};

/// Field types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Several options may be ticked; a list in the report.
    Multi,
    /// One option from a list.
    Select,
    /// One line of free text.
    Text,
    /// Several lines of free text.
    Textarea,
    /// A date picker on the page; the answer is kept as the text given, not checked as a date.
    Date,
    /// A single box; "yes" in the report when ticked.
    Checkbox,
    /// The imminent-risk question: sets the report's top-level `urgent`.
    Urgent,
    /// The free-text account: the report's top-level `description`.
    Description,
    /// The file picker: the report's attachments.
    Attachments,
}

/// One field of the form, as `static/form.json` lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// Unique id (see [`payload::is_valid_field_id`]): the key in the report's `fields` and in
    /// the labels (`field.<id>.label` in `static/i18n/`).
    pub id: String,
    /// The field's `type` in the JSON.
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// Whether the report needs an answer to it (default: no).
    #[serde(default)]
    pub required: bool,
    /// The allowed values of a multi or select field (which must have some); empty otherwise.
    #[serde(default)]
    pub options: Vec<String>,
    /// Longest accepted text, in characters.
    #[serde(default)]
    pub max: Option<usize>,
}

impl FieldDef {
    /// The longest value accepted for this field.
    pub fn max_chars(&self) -> usize {
        let cap = match self.kind {
            FieldKind::Description => crate::payload::MAX_DESCRIPTION_CHARS,
            _ => crate::payload::MAX_FIELD_CHARS,
        };
        self.max.unwrap_or(cap).min(cap)
    }
}

/// The whole form as `static/form.json` defines it, checked by [`FormDefinition::parse`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormDefinition {
    /// The JSON's `_comment`: notes for whoever edits the file; not used.
    #[serde(rename = "_comment", default)]
    pub comment: String,
    /// Always `resguardo.form/1`.
    pub schema: String,
    /// Language served at `/`, the fallback for missing labels, and the report's `language`
    /// when none is given.
    pub default_language: String,
    /// In display order; ids unique; exactly one each of the urgent, description and
    /// attachments types.
    pub fields: Vec<FieldDef>,
}

/// Why a form definition (`static/form.json`) cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("static/form.json: {0}")]
pub struct FormDefinitionError(String);

/// Why answers do not make a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// A value that is not one of the field's choices, or a field given more often than allowed.
    #[error("the answer to {0} is not one of the choices or is given more than once")]
    NotAllowed(String),
    /// Required fields left unanswered, in the form's order.
    #[error("please answer {}", .0.join(", "))]
    Missing(Vec<String>),
}

/// An attachment as received, before it gets its place in the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFile {
    /// The reporter's file name (cut to the payload's bound).
    pub name: String,
    /// Length of the content, in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// As the client sent it; cleaned by [`clean_media_type`].
    pub media_type: String,
}

/// A media type as payload v1 keeps it: visible ASCII only, bounded, never empty.
pub fn clean_media_type(t: &str) -> String {
    let t: String = t
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(payload::MAX_MEDIA_TYPE_CHARS)
        .collect();
    if t.is_empty() {
        "application/octet-stream".into()
    } else {
        t
    }
}

impl FormDefinition {
    /// The form built into this binary.
    pub fn embedded() -> Result<Self, FormDefinitionError> {
        let asset = crate::assets::find("/form.json")
            .ok_or_else(|| FormDefinitionError("missing from the build".into()))?;
        Self::parse(asset.bytes)
    }

    /// Parses and checks a form definition: its schema, unique valid ids, options on exactly
    /// the multi and select fields, and one each of the three structural fields.
    pub fn parse(bytes: &[u8]) -> Result<Self, FormDefinitionError> {
        let form: FormDefinition =
            serde_json::from_slice(bytes).map_err(|e| FormDefinitionError(e.to_string()))?;
        form.check()?;
        Ok(form)
    }

    fn check(&self) -> Result<(), FormDefinitionError> {
        if self.schema != "resguardo.form/1" {
            return Err(FormDefinitionError(format!(
                "unknown schema {:?}",
                self.schema
            )));
        }
        let mut ids = std::collections::HashSet::new();
        for f in &self.fields {
            if !payload::is_valid_field_id(&f.id) || !ids.insert(f.id.as_str()) {
                return Err(FormDefinitionError(format!(
                    "bad or repeated field id {:?}",
                    f.id
                )));
            }
            let needs_options = matches!(f.kind, FieldKind::Multi | FieldKind::Select);
            if needs_options == f.options.is_empty() {
                return Err(FormDefinitionError(format!(
                    "field {}: options are for multi and select fields, and those need some",
                    f.id
                )));
            }
        }
        for structural in [
            FieldKind::Urgent,
            FieldKind::Description,
            FieldKind::Attachments,
        ] {
            if self.fields.iter().filter(|f| f.kind == structural).count() != 1 {
                return Err(FormDefinitionError(format!(
                    "exactly one field of type {structural:?} is needed"
                )));
            }
        }
        Ok(())
    }

    /// Fields that become entries of the report's `fields` map.
    pub fn answer_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.iter().filter(|f| {
            !matches!(
                f.kind,
                FieldKind::Urgent | FieldKind::Description | FieldKind::Attachments
            )
        })
    }

    /// The field with this id, if the form has one.
    pub fn field(&self, id: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// The follow-up form of the check-in page: the reporter's text and files, nothing else
    /// (`docs/replies-v1.md`).
    pub fn follow_up(default_language: &str) -> Self {
        let field = |id: &str, kind| FieldDef {
            id: id.into(),
            kind,
            required: false,
            options: Vec::new(),
            max: None,
        };
        FormDefinition {
            comment: String::new(),
            schema: "resguardo.form/1".into(),
            default_language: default_language.into(),
            fields: vec![
                field("description", FieldKind::Description),
                field("attachments", FieldKind::Attachments),
            ],
        }
    }

    /// Turns answers into a report. Values are trimmed and empty ones dropped; a choice must be
    /// one of the field's options (a checkbox's only value is "yes", the urgency's "yes" or "no"),
    /// and only a multiple choice may have more than one value. The urgency sets the report's
    /// `urgent` and is also kept as the field's answer, so "no" and "not answered" stay apart. A
    /// required field counts as answered when it has a value (the account: some text; the files:
    /// at least one). Every missing required field is named, in the form's order.
    pub fn build_report<S: AsRef<str>>(
        &self,
        language: Option<&str>,
        sealed_by: &str,
        answers: &BTreeMap<String, Vec<S>>,
        files: &[ReceivedFile],
    ) -> Result<Report, AnswerError> {
        let mut fields = BTreeMap::new();
        let mut urgent = false;
        let mut description = String::new();
        let mut missing = Vec::new();
        for f in &self.fields {
            let given: Vec<&str> = answers
                .get(&f.id)
                .map(|vs| {
                    vs.iter()
                        .map(|v| v.as_ref().trim())
                        .filter(|v| !v.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let not_allowed = || AnswerError::NotAllowed(f.id.clone());
            let one = || -> Result<Option<&str>, AnswerError> {
                match given.as_slice() {
                    [] => Ok(None),
                    [v] => Ok(Some(*v)),
                    _ => Err(not_allowed()),
                }
            };
            let is_option = |v: &str| f.options.iter().any(|o| o == v);
            match f.kind {
                FieldKind::Multi => {
                    if given.iter().any(|v| !is_option(v)) {
                        return Err(not_allowed());
                    }
                    if !given.is_empty() {
                        let choices = given.iter().map(|v| v.to_string()).collect();
                        fields.insert(f.id.clone(), FieldValue::Choices(choices));
                    }
                }
                FieldKind::Select => {
                    if let Some(v) = one()? {
                        if !is_option(v) {
                            return Err(not_allowed());
                        }
                        fields.insert(f.id.clone(), FieldValue::Text(v.to_string()));
                    }
                }
                FieldKind::Checkbox => {
                    if let Some(v) = one()? {
                        if v != "yes" {
                            return Err(not_allowed());
                        }
                        fields.insert(f.id.clone(), FieldValue::Text("yes".into()));
                    }
                }
                FieldKind::Text | FieldKind::Textarea | FieldKind::Date => {
                    if let Some(v) = one()? {
                        fields.insert(f.id.clone(), FieldValue::Text(v.to_string()));
                    }
                }
                FieldKind::Urgent => {
                    let answer = one()?;
                    urgent = match answer {
                        Some("yes") => true,
                        None | Some("no") => false,
                        Some(_) => return Err(not_allowed()),
                    };
                    if let Some(answer) = answer {
                        fields.insert(f.id.clone(), FieldValue::Text(answer.to_string()));
                    }
                }
                FieldKind::Description => description = one()?.unwrap_or("").to_string(),
                FieldKind::Attachments => {}
            }
            let answered = match f.kind {
                FieldKind::Description => !description.is_empty(),
                FieldKind::Attachments => !files.is_empty(),
                _ => fields.contains_key(&f.id),
            };
            if f.required && !answered {
                missing.push(f.id.clone());
            }
        }
        if !missing.is_empty() {
            return Err(AnswerError::Missing(missing));
        }
        let attachments = files
            .iter()
            .enumerate()
            .map(|(i, file)| Attachment {
                name: file.name.chars().take(payload::MAX_NAME_CHARS).collect(),
                size: file.size,
                sha256: file.sha256.clone(),
                media_type: clean_media_type(&file.media_type),
                path: attachment_path(i, &file.name),
            })
            .collect();
        Ok(Report {
            schema: payload::SCHEMA.into(),
            language: language.unwrap_or(&self.default_language).to_string(),
            urgent,
            sealed_by: Some(sealed_by.into()),
            fields,
            description,
            attachments,
            conversation: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_form_is_valid_and_every_language_labels_it() {
        let form = FormDefinition::embedded().expect("form.json");
        let catalog = crate::i18n::Catalog::embedded();
        assert!(catalog.languages().count() >= 2);
        for lang in catalog.languages() {
            for f in &form.fields {
                let key = format!("field.{}.label", f.id);
                assert!(catalog.exact(lang, &key).is_some(), "{lang}: {key}");
                for option in &f.options {
                    let key = format!("field.{}.option.{option}", f.id);
                    assert!(catalog.exact(lang, &key).is_some(), "{lang}: {key}");
                }
            }
        }
    }

    #[test]
    fn broken_forms_are_refused() {
        for bad in [
            r#"{"schema":"x","default_language":"es","fields":[]}"#,
            r#"{"schema":"resguardo.form/1","default_language":"es","fields":[]}"#,
            r#"{"schema":"resguardo.form/1","default_language":"es","fields":[{"id":"a","type":"select"}]}"#,
            r#"{"schema":"resguardo.form/1","default_language":"es","fields":[{"id":"a","type":"text","extra":1}]}"#,
        ] {
            assert!(FormDefinition::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
