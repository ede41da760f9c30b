//! The submission page, rendered on the server from the form definition and a language file.
//!
//! Rendering on the server is what makes the page work without JavaScript (Tor Browser "Safest"):
//! the HTML is a complete form that posts to the gateway. `app.js`, when it may run, enhances the
//! same form to encrypt in the browser. Markup lives in `static/templates/`, strings in
//! `static/i18n/`, fields in `static/form.json`; this module only puts them together, escaping
//! every string.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::form::{FieldDef, FieldKind, FormDefinition};
use crate::i18n::Catalog;

/// Values typed into the form, to show it again after a refused post (files are never kept).
pub type FormValues = HashMap<String, Vec<String>>;

pub struct PageRenderer {
    form: Arc<FormDefinition>,
    catalog: Catalog,
    page_template: String,
    result_template: String,
    /// (fingerprint, name) of each reviewer key.
    keys: Vec<(String, String)>,
    max_bytes: u64,
    server_sealing: bool,
}

fn template(name: &str) -> String {
    crate::assets::find(&format!("/templates/{name}"))
        .map(|a| String::from_utf8_lossy(a.bytes).into_owned())
        .unwrap_or_default()
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// "100 MB", for humans (decimal-ish, rounded).
pub fn human_size(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1.0 {
        format!("{mib:.0} MB")
    } else {
        format!("{} KB", bytes / 1024)
    }
}

impl PageRenderer {
    pub fn new(
        form: Arc<FormDefinition>,
        keys: Vec<(String, String)>,
        max_bytes: u64,
        server_sealing: bool,
    ) -> Self {
        PageRenderer {
            form,
            catalog: Catalog::embedded(),
            page_template: template("page.html"),
            result_template: template("result.html"),
            keys,
            max_bytes,
            server_sealing,
        }
    }

    /// The form definition, shared with the sealing of form posts.
    pub fn form(&self) -> &Arc<FormDefinition> {
        &self.form
    }

    pub fn server_sealing(&self) -> bool {
        self.server_sealing
    }

    /// A supported language tag for the request, else the form's default.
    pub fn language(&self, requested: Option<&str>) -> String {
        match requested {
            Some(lang) if self.catalog.has(lang) => lang.to_string(),
            _ => self.form.default_language.clone(),
        }
    }

    pub fn text<'a>(&'a self, lang: &str, key: &'a str) -> &'a str {
        self.catalog.text(lang, key)
    }

    /// The form page; `values` and `message` when showing it again after a refusal.
    pub fn page(&self, lang: &str, values: Option<&FormValues>, message: Option<&str>) -> String {
        let mut slots: HashMap<&str, String> = HashMap::new();
        slots.insert("languages", self.languages_nav(lang));
        slots.insert("keys", self.key_list());
        slots.insert("max_bytes", self.max_bytes.to_string());
        slots.insert(
            "mode_server",
            if self.server_sealing {
                format!(
                    "<strong>{}</strong> {}",
                    escape(self.text(lang, "page.mode.server.title")),
                    escape(self.text(lang, "page.mode.server.body"))
                )
            } else {
                escape(self.text(lang, "page.mode.server_disabled"))
            },
        );
        slots.insert(
            "message",
            message
                .map(|m| format!("<div class=\"message\" role=\"alert\">{}</div>", escape(m)))
                .unwrap_or_default(),
        );
        let empty = FormValues::new();
        let values = values.unwrap_or(&empty);
        let fields: String = self
            .form
            .fields
            .iter()
            .map(|f| self.field(lang, f, values))
            .collect();
        slots.insert("fields", fields);
        self.fill(&self.page_template, lang, &slots)
    }

    /// The page shown after a form post was sealed and stored.
    pub fn result(&self, lang: &str, id: &str) -> String {
        let mut slots = HashMap::new();
        slots.insert("id", escape(id));
        self.fill(&self.result_template, lang, &slots)
    }

    /// Replaces `{{lang}}`, `{{t:key}}` (escaped string) and `{{name}}` (pre-rendered HTML).
    fn fill(&self, template: &str, lang: &str, slots: &HashMap<&str, String>) -> String {
        let mut out = String::with_capacity(template.len() * 2);
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let Some(len) = rest[start..].find("}}") else {
                out.push_str(&rest[start..]);
                return out;
            };
            let name = &rest[start + 2..start + len];
            if name == "lang" {
                out.push_str(&escape(lang));
            } else if let Some(key) = name.strip_prefix("t:") {
                out.push_str(&escape(self.text(lang, key)));
            } else if let Some(value) = slots.get(name) {
                out.push_str(value);
            }
            rest = &rest[start + len + 2..];
        }
        out.push_str(rest);
        out
    }

    fn languages_nav(&self, current: &str) -> String {
        let mut out = String::new();
        for lang in self.catalog.languages() {
            let name = self.catalog.exact(lang, "language.name").unwrap_or(lang);
            let current_attr = if lang == current {
                " aria-current=\"true\""
            } else {
                ""
            };
            let _ = write!(
                out,
                "<a href=\"/?lang={l}\" hreflang=\"{l}\" lang=\"{l}\"{current_attr}>{}</a>",
                escape(name),
                l = escape(lang)
            );
        }
        out
    }

    fn key_list(&self) -> String {
        let mut out = String::new();
        for (fingerprint, name) in &self.keys {
            let grouped = fingerprint
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            let _ = write!(
                out,
                "<li data-fingerprint=\"{}\"><code>{}</code><br>{}</li>",
                escape(fingerprint),
                escape(&grouped),
                escape(name)
            );
        }
        out
    }

    fn field(&self, lang: &str, f: &FieldDef, values: &FormValues) -> String {
        let id = escape(&f.id);
        let label = escape(self.text(lang, &format!("field.{}.label", f.id)));
        let hint_key = format!("field.{}.hint", f.id);
        let hint = self.catalog.get(lang, &hint_key).map(escape);
        let required = if f.required {
            format!(
                " <span class=\"required\">({})</span>",
                escape(self.text(lang, "page.required"))
            )
        } else {
            String::new()
        };
        let aria_required = if f.required {
            " aria-required=\"true\""
        } else {
            ""
        };
        let described = if hint.is_some() {
            format!(" aria-describedby=\"h-{id}\"")
        } else {
            String::new()
        };
        let hint_html = hint
            .map(|h| format!("<p class=\"hint\" id=\"h-{id}\">{h}</p>"))
            .unwrap_or_default();
        let value = |v: &str| {
            values
                .get(&f.id)
                .is_some_and(|vs| vs.iter().any(|x| x == v))
        };
        let text_value = values
            .get(&f.id)
            .and_then(|vs| vs.first())
            .map(|v| escape(v))
            .unwrap_or_default();
        let option_label = |o: &str| escape(self.text(lang, &format!("field.{}.option.{o}", f.id)));
        let maxlength = f.max_chars();
        match f.kind {
            FieldKind::Multi => {
                let mut out = format!(
                    "<fieldset id=\"f-{id}\"{described}{aria_required}><legend>{label}{required}</legend>{hint_html}"
                );
                for o in &f.options {
                    let checked = if value(o) { " checked" } else { "" };
                    let _ = write!(
                        out,
                        "<label class=\"choice\"><input type=\"checkbox\" name=\"{id}\" value=\"{v}\"{checked}> {}</label>",
                        option_label(o),
                        v = escape(o)
                    );
                }
                out.push_str("</fieldset>");
                out
            }
            FieldKind::Select => {
                let mut out = format!(
                    "<div><label class=\"field\" for=\"f-{id}\">{label}{required}</label>{hint_html}<select id=\"f-{id}\" name=\"{id}\"{described}{aria_required}><option value=\"\">{}</option>",
                    escape(self.text(lang, "common.choose"))
                );
                for o in &f.options {
                    let selected = if value(o) { " selected" } else { "" };
                    let _ = write!(
                        out,
                        "<option value=\"{v}\"{selected}>{}</option>",
                        option_label(o),
                        v = escape(o)
                    );
                }
                out.push_str("</select></div>");
                out
            }
            FieldKind::Text | FieldKind::Date => {
                let kind = if f.kind == FieldKind::Date { "date" } else { "text" };
                format!(
                    "<div><label class=\"field\" for=\"f-{id}\">{label}{required}</label>{hint_html}<input type=\"{kind}\" id=\"f-{id}\" name=\"{id}\" maxlength=\"{maxlength}\" value=\"{text_value}\" autocomplete=\"off\"{described}{aria_required}></div>"
                )
            }
            FieldKind::Textarea | FieldKind::Description => format!(
                "<div><label class=\"field\" for=\"f-{id}\">{label}{required}</label>{hint_html}<textarea id=\"f-{id}\" name=\"{id}\" maxlength=\"{maxlength}\" rows=\"8\" autocomplete=\"off\"{described}{aria_required}>{text_value}</textarea></div>"
            ),
            FieldKind::Checkbox => {
                let checked = if value("yes") { " checked" } else { "" };
                format!(
                    "<div><label class=\"choice\"><input type=\"checkbox\" id=\"f-{id}\" name=\"{id}\" value=\"yes\"{checked}{described}> {label}</label>{hint_html}</div>"
                )
            }
            FieldKind::Urgent => {
                let yes = if value("yes") { " checked" } else { "" };
                let no = if value("no") { " checked" } else { "" };
                format!(
                    "<fieldset class=\"urgent\" id=\"f-{id}\"><legend>{label}</legend>{hint_html}\
                     <input type=\"radio\" id=\"{id}-yes\" name=\"{id}\" value=\"yes\"{yes}> <label for=\"{id}-yes\">{}</label>\
                     <input type=\"radio\" id=\"{id}-no\" name=\"{id}\" value=\"no\"{no}> <label for=\"{id}-no\">{}</label>\
                     <div class=\"urgent-help\" role=\"note\"><strong>{}</strong><p>{}</p></div></fieldset>",
                    escape(self.text(lang, "common.yes")),
                    escape(self.text(lang, "common.no")),
                    escape(self.text(lang, "page.urgent.help.title")),
                    escape(self.text(lang, "page.urgent.help.body")),
                )
            }
            FieldKind::Attachments => {
                let limit = human_size(self.max_bytes);
                let files_hint = self.text(lang, "page.files.hint").replace("{limit}", &limit);
                let server_note = if self.server_sealing {
                    format!(
                        "<p class=\"hint server-only\">{}</p>",
                        escape(self.text(lang, "page.files.warning_server"))
                    )
                } else {
                    String::new()
                };
                format!(
                    "<div><label class=\"field\" for=\"f-{id}\">{label}</label><p class=\"hint\" id=\"h-{id}\">{}</p>{server_note}<input type=\"file\" id=\"f-{id}\" name=\"{id}\" multiple aria-describedby=\"h-{id}\"><ul id=\"file-list\" class=\"file-list\" aria-live=\"polite\"></ul></div>",
                    escape(&files_hint)
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer(server_sealing: bool) -> PageRenderer {
        PageRenderer::new(
            Arc::new(FormDefinition::embedded().expect("form")),
            vec![(
                "C95C29B449920DED0872A622F1F1AA6FAE2F54AD".into(),
                "Demo <x>".into(),
            )],
            100 * 1024 * 1024,
            server_sealing,
        )
    }

    #[test]
    fn the_page_is_complete_in_every_language() {
        let r = renderer(true);
        for lang in ["es", "en"] {
            let html = r.page(lang, None, None);
            assert!(!html.contains("{{"), "{lang}: unfilled placeholder");
            assert!(html.contains(&format!("<html lang=\"{lang}\">")));
            assert!(html.contains("action=\"/submit\""));
            assert!(html.contains("C95C 29B4 4992"));
            assert!(html.contains("Demo &lt;x&gt;"), "names are escaped");
            assert!(html.contains("name=\"what_happened\" value=\"threat\""));
            assert!(html.contains("type=\"file\""));
            assert!(!html.contains("<script>"), "no inline script");
            // Every control has a label: inputs sit in labels or are named by one.
            for id in ["f-region", "f-description", "f-attachments", "urgent-yes"] {
                assert!(html.contains(&format!("for=\"{id}\"")), "{lang}: {id}");
            }
        }
        assert!(r.page("es", None, None).contains("¿Qué pasó?"));
        assert!(r.page("en", None, None).contains("What happened?"));
        assert_eq!(r.language(Some("xx")), "es");
        assert_eq!(r.language(Some("en")), "en");
    }

    #[test]
    fn values_come_back_escaped_and_files_are_not_kept() {
        let r = renderer(true);
        let mut values = FormValues::new();
        values.insert("description".into(), vec!["<b>x</b> & \"y\"".into()]);
        values.insert("what_happened".into(), vec!["threat".into()]);
        values.insert("region".into(), vec!["cusco".into()]);
        let html = r.page("es", Some(&values), Some("fallo <script>"));
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot;</textarea>"));
        assert!(html.contains("value=\"threat\" checked"));
        assert!(html.contains("value=\"cusco\" selected"));
        assert!(html.contains("fallo &lt;script&gt;"));
    }

    #[test]
    fn a_disabled_server_sealing_says_so() {
        let html = renderer(false).page("es", None, None);
        assert!(html.contains("no acepta reportes sin JavaScript"));
    }
}
