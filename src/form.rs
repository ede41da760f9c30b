//! The submission form's definition (`static/form.json`), shared by the page renderer, the
//! gateway's on-arrival sealing of form posts, and the review tool's `report.txt`.
//!
//! The form is data so a deployment can adapt it (another country's regions, another list of
//! incident types) without touching code; only three field types are structural, because they map
//! to top-level keys of payload v1: `urgent`, `description` and `attachments`.

use serde::Deserialize;

/// Field types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Several options may be ticked; a list in the report.
    Multi,
    /// One option from a list.
    Select,
    Text,
    Textarea,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormDefinition {
    #[serde(rename = "_comment", default)]
    pub comment: String,
    pub schema: String,
    pub default_language: String,
    pub fields: Vec<FieldDef>,
}

#[derive(Debug, thiserror::Error)]
#[error("static/form.json: {0}")]
pub struct FormError(String);

impl FormDefinition {
    /// The form built into this binary.
    pub fn embedded() -> Result<Self, FormError> {
        let asset = crate::assets::find("/form.json")
            .ok_or_else(|| FormError("missing from the build".into()))?;
        Self::parse(asset.bytes)
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, FormError> {
        let form: FormDefinition =
            serde_json::from_slice(bytes).map_err(|e| FormError(e.to_string()))?;
        form.check()?;
        Ok(form)
    }

    fn check(&self) -> Result<(), FormError> {
        if self.schema != "resguardo.form/1" {
            return Err(FormError(format!("unknown schema {:?}", self.schema)));
        }
        let mut ids = std::collections::HashSet::new();
        for f in &self.fields {
            let id_ok = !f.id.is_empty()
                && f.id.len() <= 64
                && f.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !id_ok || !ids.insert(f.id.as_str()) {
                return Err(FormError(format!("bad or repeated field id {:?}", f.id)));
            }
            let needs_options = matches!(f.kind, FieldKind::Multi | FieldKind::Select);
            if needs_options == f.options.is_empty() {
                return Err(FormError(format!(
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
                return Err(FormError(format!(
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

    pub fn field(&self, id: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.id == id)
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
