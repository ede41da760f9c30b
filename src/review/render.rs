//! `report.txt`: a report as a reviewer reads it, with labels in a language reviewers read.
//!
//! Labels come from the form's language files (`static/i18n/*.json`, embedded at build time): a
//! report in Spanish or English is labelled in its own language; one in any other language
//! (Quechua, Aymara…) in the reviewer's (`RESGUARDO_LANG` or the locale, passed to the parser as
//! `--lang`), since reviewers read Spanish or English whatever the reporter wrote in. The
//! reporter's own words are never translated, and the report's language is recorded by tag and
//! name ("Idioma del reporte: qu (Runasimi)"). Urgent reports say so on the
//! first line, and every report has an urgency line with one of three answers (yes, no, not
//! answered). Every piece of reporter text goes through [`crate::terminal::clean_text`] (control,
//! bidirectional, zero-width and tag characters), so opening the file in a terminal or editor
//! cannot be turned against the reviewer.

use std::fmt::Write as _;

use super::lang::Lang;
use crate::bundle::BundleEntry;
use crate::form::FormDefinition;
use crate::i18n::Catalog;
use crate::payload::{FieldValue, Report, Urgency, URGENT_FIELD};
use crate::submission::Sealing;

/// What `report.txt` needs of the form: its strings, and the order of its fields.
pub struct Labels {
    catalog: Catalog,
    field_order: Vec<String>,
    reviewer: Lang,
}

impl Labels {
    /// The form and language files built into this binary, for a reviewer reading English.
    pub fn embedded() -> Self {
        Labels::for_reviewer(Lang::En)
    }

    /// The form and language files built into this binary, for a reviewer reading `reviewer`.
    pub fn for_reviewer(reviewer: Lang) -> Self {
        let field_order = FormDefinition::embedded()
            .map(|form| form.fields.into_iter().map(|f| f.id).collect())
            .unwrap_or_default();
        Labels {
            catalog: Catalog::embedded(),
            field_order,
            reviewer,
        }
    }

    /// The language of the labels for a report in `report_lang`: its own if reviewers read it
    /// (Spanish, English), else the reviewer's.
    pub fn label_language(&self, report_lang: &str) -> &'static str {
        let primary = report_lang
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        Lang::from_tag(&primary).unwrap_or(self.reviewer).tag()
    }

    /// "qu (Runasimi)": the report's language tag, cleaned, and the language's own name when a
    /// language file has one.
    fn language_line(&self, report_lang: &str) -> String {
        let primary = report_lang
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match self.catalog.exact(&primary, "language.name") {
            Some(name) => format!("{} ({name})", one_line(report_lang)),
            None => one_line(report_lang),
        }
    }

    fn get(&self, lang: &str, key: &str) -> Option<&str> {
        self.catalog.get(lang, key)
    }

    fn label<'a>(&'a self, lang: &str, key: &str, fallback: &'a str) -> &'a str {
        self.get(lang, key).unwrap_or(fallback)
    }
}

/// Removes characters that can hide or reorder text, or drive a terminal (keeps line breaks).
pub fn clean(text: &str) -> String {
    crate::terminal::clean_text(text)
}

/// Reporter text that belongs on one line (a label, a name, a short answer).
fn one_line(text: &str) -> String {
    crate::terminal::clean_line(text)
}

/// Reporter text that may span lines, with every line after the first indented, so that it
/// cannot pass for a line of the report's own structure.
fn indented(text: &str, indent: &str) -> String {
    clean(text.trim_end()).replace('\n', &format!("\n{indent}"))
}

/// The files an opened report has, as written (name on disk, size, media type, sha256).
pub struct WrittenFile {
    /// The name we saved it under in `files/` ([`super::output::attachment_file_name`]).
    pub file_name: String,
    /// The reporter's file name, raw and untrusted; cleaned when rendered.
    pub original_name: String,
    /// Length in bytes, as the report declares it (the reader checks it against the content).
    pub size: u64,
    /// The media type the sender gave, raw and untrusted; cleaned when rendered.
    pub media_type: String,
    /// Lowercase hex SHA-256, as declared (the reader checks it against the content).
    pub sha256: String,
}

/// Renders `report.txt`.
pub fn render(
    report: &Report,
    entry: &BundleEntry,
    files: &[WrittenFile],
    labels: &Labels,
) -> String {
    let lang = labels.label_language(&report.language);
    let l = |key: &str, fallback: &'static str| labels.label(lang, key, fallback).to_string();
    let mut out = String::new();
    let urgency = report.urgency();
    if urgency == Urgency::Yes {
        let banner = l(
            "review.urgent_banner",
            "URGENT: someone is at imminent risk",
        );
        let _ = writeln!(out, "!!! {} !!!\n", one_line(&banner));
    }
    let _ = writeln!(out, "{} {}", l("review.report", "Report"), entry.id);
    let _ = writeln!(
        out,
        "{}: {}",
        l("review.received", "Received (UTC day)"),
        entry.day
    );
    let sealed_by = match (report.sealed_by.as_deref(), entry.sealing) {
        (_, Sealing::OnArrival) | (Some("gateway"), _) => {
            l("review.sealed_by.gateway", "the server on arrival")
        }
        (Some("browser"), _) => l("review.sealed_by.browser", "the reporter's browser"),
        (Some("terminal"), _) => l(
            "review.sealed_by.terminal",
            "the reporter's terminal client",
        ),
        _ => l("review.sealed_by.unknown", "not stated"),
    };
    let _ = writeln!(out, "{}: {}", l("review.sealed_by", "Sealed by"), sealed_by);
    let _ = writeln!(
        out,
        "{}: {}",
        l("review.language", "Report language"),
        labels.language_line(&report.language)
    );
    if let Some(conversation) = &report.conversation {
        let short = conversation.locator.to_string();
        let line = match conversation.reply_key {
            Some(_) => l(
                "review.conversation.first",
                "the reporter can read answers (resguardo-review reply --report this folder)",
            ),
            None => l(
                "review.conversation.follow_up",
                "a follow-up; conversation.txt in the first report's folder holds the thread",
            ),
        };
        let _ = writeln!(
            out,
            "{} {}: {}",
            l("review.conversation", "Conversation"),
            &short[..16],
            one_line(&line)
        );
    }
    let answer = match urgency {
        Urgency::Yes => l("common.yes", "Yes"),
        Urgency::No => l("common.no", "No"),
        Urgency::Unanswered => l("review.unanswered", "not answered"),
    };
    let _ = writeln!(
        out,
        "{}: {}\n",
        one_line(&l(
            "field.urgent.label",
            "Is someone at imminent risk to life or physical integrity?"
        )),
        one_line(&answer)
    );

    let known: Vec<&String> = labels
        .field_order
        .iter()
        .filter(|id| report.fields.contains_key(*id) && *id != URGENT_FIELD)
        .collect();
    for id in &known {
        let value = &report.fields[*id];
        let label = labels
            .get(lang, &format!("field.{id}.label"))
            .map(str::to_string)
            .unwrap_or_else(|| (*id).clone());
        let _ = writeln!(
            out,
            "{}: {}",
            one_line(&label),
            render_value(labels, lang, id, value)
        );
    }
    let others: Vec<(&String, &FieldValue)> = report
        .fields
        .iter()
        .filter(|(id, _)| !labels.field_order.contains(id) && *id != URGENT_FIELD)
        .collect();
    if !others.is_empty() {
        let _ = writeln!(out, "\n{}:", l("review.other_fields", "Other fields"));
        for (id, value) in others {
            let _ = writeln!(
                out,
                "  {}: {}",
                one_line(id),
                render_value(labels, lang, id, value)
            );
        }
    }

    let _ = writeln!(out, "\n{}:\n", l("review.description", "Account"));
    // The account, indented: whatever it says, it cannot pass for the report's own lines.
    let _ = writeln!(out, "  {}\n", indented(&report.description, "  "));

    let _ = writeln!(out, "{}:", l("review.attachments", "Attachments"));
    if files.is_empty() {
        let _ = writeln!(out, "  {}", l("review.no_attachments", "None"));
    } else {
        for f in files {
            let _ = writeln!(
                out,
                "  files/{}  ({} bytes, {}, SHA-256 {})",
                f.file_name,
                f.size,
                one_line(&f.media_type),
                f.sha256
            );
            if f.original_name != f.file_name {
                let _ = writeln!(out, "      \u{2190} {}", one_line(&f.original_name));
            }
        }
        let _ = writeln!(
            out,
            "  {}",
            l(
                "review.untrusted_files",
                "Open files only on this offline machine."
            )
        );
    }
    out
}

/// `report.txt` for a plaintext that is not a payload v1 (kept whole as `message.bin`).
pub fn render_raw(entry: &BundleEntry, size: u64) -> String {
    format!(
        "Submission {} ({})\n\nThis submission is not a Resguardo form (payload v1): someone encrypted a file\n\
         directly, for example with gpg. Its decrypted content is in message.bin ({size} bytes).\n\
         Treat it as untrusted; open it only on this offline machine.\n",
        entry.id, entry.day,
    )
}

fn render_value(labels: &Labels, lang: &str, id: &str, value: &FieldValue) -> String {
    let one = |v: &str| {
        let option = labels.get(lang, &format!("field.{id}.option.{v}"));
        let yes_no = match v {
            "yes" | "true" => labels.get(lang, "common.yes"),
            "no" | "false" => labels.get(lang, "common.no"),
            _ => None,
        };
        indented(option.or(yes_no).unwrap_or(v), "    ")
    };
    match value {
        FieldValue::Text(t) => one(t),
        FieldValue::Choices(list) => list.iter().map(|v| one(v)).collect::<Vec<_>>().join(", "),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::submission::{SubmissionId, UtcDay};

    fn entry() -> BundleEntry {
        BundleEntry {
            id: SubmissionId::random(),
            day: "2026-11-29".parse::<UtcDay>().expect("day"),
            size: 1,
            sha256: "0".repeat(64),
            sealing: Sealing::BySender,
        }
    }

    fn report(lang: &str, urgent: bool) -> Report {
        let mut fields = BTreeMap::new();
        fields.insert(
            "what_happened".into(),
            FieldValue::Choices(vec!["threat".into(), "surveillance".into()]),
        );
        fields.insert("region".into(), FieldValue::Text("cusco".into()));
        fields.insert("when_approximate".into(), FieldValue::Text("yes".into()));
        fields.insert(
            "custom_question".into(),
            FieldValue::Text("x\u{1b}[2Jy".into()),
        );
        Report {
            schema: crate::payload::SCHEMA.into(),
            language: lang.into(),
            urgent,
            sealed_by: Some("browser".into()),
            fields,
            description: "Texto \u{202E}oculto\u{202C} y \u{7} campana".into(),
            attachments: vec![],
            conversation: None,
        }
    }

    #[test]
    fn spanish_report_with_urgent_banner_and_labels() {
        let text = render(&report("es", true), &entry(), &[], &Labels::embedded());
        assert!(text.starts_with("!!! URGENTE"), "{text}");
        assert!(
            text.contains("¿Qué pasó?: Amenaza, Vigilancia o seguimiento"),
            "{text}"
        );
        assert!(text.contains("¿En qué región?: Cusco"), "{text}");
        assert!(text.contains("La fecha es aproximada: Sí"), "{text}");
        assert!(
            text.contains("Cifrado por: el navegador de quien reporta"),
            "{text}"
        );
        assert!(text.contains("custom_question: x\u{FFFD}[2Jy"), "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\u{202E}') && !text.contains('\u{7}'));
    }

    #[test]
    fn english_and_unknown_languages() {
        let text = render(&report("en", false), &entry(), &[], &Labels::embedded());
        assert!(!text.contains("!!!"));
        assert!(
            text.contains("What happened?: Threat, Surveillance or following"),
            "{text}"
        );
        // A language without a file: the reviewer's labels.
        let text = render(&report("xx-PE", false), &entry(), &[], &Labels::embedded());
        assert!(text.contains("What happened?"), "{text}");
        assert!(text.contains("Report language: xx-PE\n"), "{text}");
        let text = render(
            &report("xx", false),
            &entry(),
            &[],
            &Labels::for_reviewer(Lang::Es),
        );
        assert!(text.contains("¿Qué pasó?"), "{text}");
    }

    /// Reviewers read Spanish or English: a report in Quechua or Aymara is labelled in the
    /// reviewer's language, keeps the reporter's words, and says which language it came in.
    #[test]
    fn a_report_in_quechua_or_aymara_is_labelled_in_the_reviewers_language() {
        for (tag, name) in [
            ("qu", "Runasimi"),
            ("ay", "Aymar aru"),
            ("qu-PE", "Runasimi"),
        ] {
            let mut r = report(tag, true);
            r.description = "Llaqtaypi manchachiwanku.".into();
            let es = render(&r, &entry(), &[], &Labels::for_reviewer(Lang::Es));
            assert!(es.starts_with("!!! URGENTE"), "{es}");
            assert!(
                es.contains("¿Qué pasó?: Amenaza, Vigilancia o seguimiento"),
                "{es}"
            );
            assert!(es.contains("¿En qué región?: Cusco"), "{es}");
            assert!(
                es.contains(&format!("Idioma del reporte: {tag} ({name})\n")),
                "{es}"
            );
            assert!(es.contains("  Llaqtaypi manchachiwanku."), "{es}");
            let en = render(&r, &entry(), &[], &Labels::for_reviewer(Lang::En));
            assert!(en.starts_with("!!! URGENT"), "{en}");
            assert!(
                en.contains("What happened?: Threat, Surveillance or following"),
                "{en}"
            );
            assert!(
                en.contains(&format!("Report language: {tag} ({name})\n")),
                "{en}"
            );
            // No label of the report's own language file.
            let catalog = Catalog::embedded();
            let own = catalog
                .exact(&tag[..2], "field.what_happened.label")
                .expect("label");
            assert!(!es.contains(own) && !en.contains(own), "{tag}: {own}");
        }
        // Spanish and English reports keep their own labels, whoever reads them.
        let es = render(&report("es", false), &entry(), &[], &Labels::embedded());
        assert!(es.contains("Idioma del reporte: es (Español)\n"), "{es}");
        let en = render(
            &report("en-GB", false),
            &entry(),
            &[],
            &Labels::for_reviewer(Lang::Es),
        );
        assert!(en.contains("Report language: en-GB (English)\n"), "{en}");
    }

    /// The urgency question's label, as the form's language file words it.
    fn urgency_label(lang: &str) -> String {
        Catalog::embedded()
            .exact(lang, "field.urgent.label")
            .expect("the urgency question has a label")
            .to_string()
    }

    /// "No" and an unanswered question used to look the same (issue 17, item 10).
    #[test]
    fn the_urgency_line_tells_yes_no_and_unanswered_apart() {
        let labels = Labels::embedded();
        let label = urgency_label("es");
        let line = |r: &Report| {
            let text = render(r, &entry(), &[], &labels);
            text.lines()
                .find(|l| l.starts_with(&label))
                .unwrap_or_else(|| panic!("no urgency line in {text}"))
                .to_string()
        };
        let mut r = report("es", false);
        assert!(line(&r).ends_with("?: sin respuesta"), "{}", line(&r));
        r.fields
            .insert(URGENT_FIELD.into(), FieldValue::Text("no".into()));
        assert!(line(&r).ends_with("?: No"), "{}", line(&r));
        r.fields
            .insert(URGENT_FIELD.into(), FieldValue::Text("yes".into()));
        assert!(line(&r).ends_with("?: Sí"), "{}", line(&r));
        assert!(render(&r, &entry(), &[], &labels).starts_with("!!! URGENTE"));
        // Older clients: no field, top-level urgent.
        let old = report("es", true);
        assert!(line(&old).ends_with("?: Sí"), "{}", line(&old));
        // The answer is not repeated among the other fields.
        let text = render(&r, &entry(), &[], &labels);
        assert_eq!(text.matches(&label).count(), 1, "{text}");
        let en = render(&report("en", false), &entry(), &[], &labels);
        assert!(
            en.contains(&format!("{}: not answered", urgency_label("en"))),
            "{en}"
        );
    }

    #[test]
    fn invisible_and_line_breaking_characters_do_not_reach_report_txt() {
        let mut r = report("es", false);
        r.description = "a\u{200B}b\u{2060}c\u{FEFF}d\u{E0041}e\u{061C}f\u{2028}g\u{9B}h\rX".into();
        let text = render(&r, &entry(), &[], &Labels::embedded());
        assert!(
            text.contains("  abcde\u{FFFD}f\n  g\u{FFFD}h\n  X"),
            "{text}"
        );
        for c in [
            '\u{200B}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{E0041}',
            '\u{061C}',
            '\u{2028}',
            '\u{9B}',
            '\r',
        ] {
            assert!(!text.contains(c), "{c:?}");
        }
    }

    /// A line break in an answer or a file name cannot forge a line of the report.
    #[test]
    fn reporter_text_cannot_forge_lines_of_the_report() {
        let mut r = report("es", true);
        let label = urgency_label("es");
        let forged = format!("cusco\n{label}: No");
        r.fields
            .insert("region".into(), FieldValue::Text(forged.clone()));
        r.fields
            .insert("custom_question".into(), FieldValue::Text(forged));
        r.description = "ok\nRecibido (día UTC): 1999-01-01".into();
        let files = [WrittenFile {
            file_name: "001-a.txt".into(),
            original_name: "a\nRecibido (día UTC): 1999-01-01".into(),
            size: 1,
            media_type: "text/plain\nx".into(),
            sha256: "0".repeat(64),
        }];
        let text = render(&r, &entry(), &files, &Labels::embedded());
        let urgency_lines = text.lines().filter(|l| l.starts_with(&label)).count();
        assert_eq!(urgency_lines, 1, "{text}");
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("Recibido (día UTC): 1999")),
            "{text}"
        );
    }
}
