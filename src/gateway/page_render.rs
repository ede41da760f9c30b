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

use crate::config::{LocalText, OrganisationConfig};
use crate::form::{FieldDef, FieldKind, FormDefinition};
use crate::i18n::Catalog;
use crate::replies::Receipt;
use crate::submit::ConversationRead;

/// Values typed into the form, to show it again after a refused post (files are never kept).
pub type FormValues = HashMap<String, Vec<String>>;

/// What one rendering of the form page shows besides the form.
#[derive(Default)]
pub struct PageView<'a> {
    /// What was typed, when the form comes back after a refused post.
    pub values: Option<&'a FormValues>,
    /// Why the post was refused, in the page's language.
    pub message: Option<String>,
    /// Required fields left unanswered: listed at the top with links, and marked.
    pub missing: Vec<String>,
    /// The single-use token the form posts with (see `form_token`).
    pub token: String,
    /// The post carried files that must be chosen again.
    pub files_lost: bool,
}

/// Draws every HTML page the gateway serves (the form, the result after a form post, the page
/// shown when sealing on arrival is switched off) from the embedded templates, the form
/// definition and the language files. Built once at start; rendering reads only.
pub struct PageRenderer {
    form: Arc<FormDefinition>,
    catalog: Catalog,
    page_template: String,
    result_template: String,
    disabled_template: String,
    check_template: String,
    thread_template: String,
    followed_template: String,
    /// (fingerprint, name) of each reviewer key.
    keys: Vec<(String, String)>,
    max_bytes: u64,
    form_max_bytes: u64,
    server_sealing: bool,
    organisation: OrganisationConfig,
    stall_seconds: u64,
    form_json: String,
    /// The organisation key's fingerprint (hex) when a key list is served.
    organisation_fingerprint: Option<String>,
}

fn template(name: &str) -> String {
    crate::assets::find(&format!("/templates/{name}"))
        .map(|a| String::from_utf8_lossy(a.bytes).into_owned())
        .unwrap_or_default()
}

/// What the check-in page shows around its form.
#[derive(Default)]
pub struct CheckView<'a> {
    /// The form token for the form without JavaScript.
    pub token: &'a str,
    /// Why the last post was refused.
    pub message: Option<PageMessage<'a>>,
}

/// Why a post was refused: the box's title (a language-file key) and the sentence.
pub struct PageMessage<'a> {
    /// `page.error.title` ("NOT sent") for a follow-up, `page.check.refused` for a check-in.
    pub title_key: &'static str,
    /// The reason, in the page's language.
    pub sentence: &'a str,
}

/// A conversation opened by the gateway (check-in without JavaScript).
pub struct ThreadView<'a> {
    /// The answers, read and checked.
    pub read: &'a ConversationRead,
    /// The receipt, carried by the follow-up form.
    pub receipt: &'a Receipt,
    /// The form token for the follow-up.
    pub token: &'a str,
    /// Why the last follow-up was refused.
    pub message: Option<PageMessage<'a>>,
}

/// A fingerprint in groups of four, as people compare it (and as it fits a phone's width).
fn grouped(fingerprint: &str) -> String {
    fingerprint
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
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

/// JSON made safe inside a `<script type="application/json">` element: no `<`, `>` or `&` that
/// could end the element or start markup (JSON allows them escaped as \u00XX in strings, and they
/// cannot occur outside strings).
fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
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

/// What the renderer is built from, besides the embedded templates and language files.
pub struct PageSettings {
    /// The form to draw (also what form posts are checked against).
    pub form: Arc<FormDefinition>,
    /// (fingerprint, name) of each reviewer key, listed on the page for comparison.
    pub keys: Vec<(String, String)>,
    /// Largest sealed submission (what the page may send when it encrypts).
    pub max_bytes: u64,
    /// Largest form post (without JavaScript).
    pub form_max_bytes: u64,
    /// Whether the form without JavaScript is sealed on arrival (else it is refused with a page
    /// that says how to send safely instead).
    pub server_sealing: bool,
    /// The organisation's name, hotlines and promised review time, shown on the page.
    pub organisation: OrganisationConfig,
    /// An upload without progress for this long is given up by the page (the gateway's own
    /// idle limit for bodies).
    pub stall_seconds: u64,
    /// The organisation key's fingerprint (hex), shown prominently when a key list is served
    /// (`docs/trust-v1.md`), to compare with the printed card.
    pub organisation_fingerprint: Option<String>,
}

impl PageRenderer {
    /// Loads the templates and language files embedded in the binary.
    pub fn new(settings: PageSettings) -> Self {
        PageRenderer {
            catalog: Catalog::embedded().with_fallback(&settings.form.default_language),
            form: settings.form,
            page_template: template("page.html"),
            result_template: template("result.html"),
            disabled_template: template("disabled.html"),
            check_template: template("check.html"),
            thread_template: template("thread.html"),
            followed_template: template("followed.html"),
            keys: settings.keys,
            max_bytes: settings.max_bytes,
            form_max_bytes: settings.form_max_bytes,
            server_sealing: settings.server_sealing,
            organisation: settings.organisation,
            stall_seconds: settings.stall_seconds,
            organisation_fingerprint: settings.organisation_fingerprint,
            form_json: crate::assets::find("/form.json")
                .map(|a| script_json(&String::from_utf8_lossy(a.bytes)))
                .unwrap_or_default(),
        }
    }

    /// The page's and errors' strings in `lang` (each missing one in the default language), as
    /// JSON for the page's script, so it never needs to fetch them and never shows a key name.
    fn strings_json(&self, lang: &str) -> String {
        let mut strings = std::collections::BTreeMap::new();
        for key in self.catalog.keys(&self.form.default_language) {
            if key.starts_with("page.") || key.starts_with("error.") || key.starts_with("common.") {
                strings.insert(key, self.text(lang, key));
            }
        }
        script_json(&serde_json::to_string(&strings).unwrap_or_default())
    }

    /// The form definition, shared with the sealing of form posts.
    pub fn form(&self) -> &Arc<FormDefinition> {
        &self.form
    }

    /// Whether form posts are sealed on arrival (see [`PageSettings::server_sealing`]).
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

    /// A page string: in `lang`, else in the form's default language (never English by
    /// accident on a Spanish page, never a key name).
    pub fn text<'a>(&'a self, lang: &str, key: &'a str) -> &'a str {
        self.catalog.text(lang, key)
    }

    fn local<'a>(&self, text: &'a LocalText, lang: &str) -> &'a str {
        text.get(lang, &self.form.default_language)
    }

    /// The slots every page shares: languages, organisation, hotlines, asset version.
    fn common_slots(&self, lang: &str) -> HashMap<&'static str, String> {
        self.slots_for(lang, "/")
    }

    /// [`Self::common_slots`] for the page at `path` (its language links stay on it).
    fn slots_for(&self, lang: &str, path: &str) -> HashMap<&'static str, String> {
        let mut slots = HashMap::new();
        slots.insert("v", escape(&crate::assets::versioned_prefix()));
        slots.insert("languages", self.languages_nav(lang, path));
        slots.insert(
            "organisation",
            format!(
                "<p><strong>{}</strong> {}</p><p>{}</p>",
                escape(self.text(lang, "page.org.who")),
                escape(self.local(&self.organisation.name, lang)),
                escape(self.local(&self.organisation.who_reads, lang))
            ),
        );
        slots.insert("hotlines", self.hotlines(lang));
        slots.insert(
            "urgent_review",
            escape(&self.text(lang, "page.urgent.review_time").replace(
                "{hours}",
                &self.organisation.urgent_review_hours.to_string(),
            )),
        );
        slots
    }

    fn hotlines(&self, lang: &str) -> String {
        let mut out = String::from("<ul class=\"hotlines\">");
        for h in &self.organisation.hotlines {
            let number = escape(&h.number);
            let tel: String = h
                .number
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '+')
                .collect();
            let _ = write!(
                out,
                "<li><a href=\"tel:{tel}\">{number}</a> {}</li>",
                escape(self.local(&h.label, lang))
            );
        }
        out.push_str("</ul>");
        out
    }

    /// The form page.
    pub fn page(&self, lang: &str, view: &PageView<'_>) -> String {
        let mut slots = self.common_slots(lang);
        slots.insert("keys", self.key_list());
        slots.insert("org_fingerprint", self.org_fingerprint(lang));
        slots.insert("max_bytes", self.max_bytes.to_string());
        slots.insert("form_max_bytes", self.form_max_bytes.to_string());
        slots.insert("stall_seconds", self.stall_seconds.to_string());
        slots.insert("strings_json", self.strings_json(lang));
        slots.insert("form_json", self.form_json.clone());
        slots.insert("organisation_json", self.organisation_json());
        slots.insert("token", escape(&view.token));
        slots.insert(
            "form_hidden",
            if self.server_sealing { "" } else { " hidden" }.into(),
        );
        slots.insert(
            "nojs",
            if self.server_sealing {
                format!(
                    "<p id=\"mode-server\" class=\"mode-server\"><strong>{}</strong> {}</p>",
                    escape(self.text(lang, "page.mode.server.title")),
                    escape(self.text(lang, "page.mode.server.short"))
                )
            } else {
                self.disabled_notice(lang)
            },
        );
        slots.insert("message", self.summary(lang, view));
        let empty = FormValues::new();
        let values = view.values.unwrap_or(&empty);
        let fields: String = self
            .form
            .fields
            .iter()
            .map(|f| self.field(lang, f, values, view.missing.contains(&f.id)))
            .collect();
        slots.insert("fields", fields);
        self.fill(&self.page_template, lang, &slots)
    }

    /// What a browser without JavaScript shows when sealing on arrival is switched off.
    fn disabled_notice(&self, lang: &str) -> String {
        format!(
            "<div class=\"message\" role=\"alert\"><p><strong>{}</strong></p><p>{}</p><ol><li>{}</li><li>{}</li><li>{}</li></ol><p>{}</p></div>",
            escape(self.text(lang, "page.nojs.disabled")),
            escape(self.text(lang, "page.nojs.how")),
            escape(self.text(lang, "page.nojs.step1")),
            escape(self.text(lang, "page.nojs.step2")),
            escape(self.text(lang, "page.nojs.step3")),
            escape(self.text(lang, "page.nojs.other_ways")),
        )
    }

    /// The answer to a form posted while sealing on arrival is off: the explanation, no form.
    pub fn disabled(&self, lang: &str) -> String {
        let mut slots = self.common_slots(lang);
        slots.insert("notice", self.disabled_notice(lang));
        self.fill(&self.disabled_template, lang, &slots)
    }

    /// The box at the top of a refused form: the reason, and every missing answer as a link.
    fn summary(&self, lang: &str, view: &PageView<'_>) -> String {
        let Some(message) = &view.message else {
            return String::new();
        };
        let mut out = format!(
            "<div id=\"error-summary\" class=\"message\" role=\"alert\" tabindex=\"-1\" autofocus><p><strong>{}</strong></p><p>{}</p>",
            escape(self.text(lang, "page.error.title")),
            escape(message)
        );
        if !view.missing.is_empty() {
            out.push_str("<ul>");
            for id in &view.missing {
                let key = format!("field.{id}.label");
                let label = self.text(lang, &key);
                let _ = write!(
                    out,
                    "<li><a href=\"#f-{}\">{}</a></li>",
                    escape(id),
                    escape(label)
                );
            }
            out.push_str("</ul>");
        }
        let kept = match (view.values.is_some(), view.files_lost) {
            (false, _) => None,
            (true, true) => Some("page.error.kept_files"),
            (true, false) => Some("page.error.kept"),
        };
        if let Some(kept) = kept {
            let _ = write!(out, "<p>{}</p>", escape(self.text(lang, kept)));
        }
        out.push_str("</div>");
        out
    }

    /// The check-in page (`GET /check`, `docs/replies-v1.md`): the receipt's words are read,
    /// and the replies decrypted and checked, by its script (`check.js`); a follow-up is sealed
    /// there too. Without JavaScript it says how else to read the answers.
    pub fn check(&self, lang: &str, view: &CheckView<'_>) -> String {
        let mut slots = self.slots_for(lang, "/check");
        slots.insert("token", escape(view.token));
        slots.insert("message", self.message_box(lang, view.message.as_ref()));
        slots.insert("keys", self.key_list());
        slots.insert("max_bytes", self.max_bytes.to_string());
        slots.insert("stall_seconds", self.stall_seconds.to_string());
        slots.insert("strings_json", self.strings_json(lang));
        self.fill(&self.check_template, lang, &slots)
    }

    /// The page shown after a form post was sealed and stored, with the receipt of the
    /// conversation it started (shown this once).
    pub fn result(
        &self,
        lang: &str,
        id: &str,
        sequence: Option<u64>,
        urgent: bool,
        receipt: Option<&Receipt>,
    ) -> String {
        let mut slots = self.common_slots(lang);
        slots.insert("id", escape(id));
        slots.insert("sequence", self.sequence_line(lang, sequence));
        slots.insert("urgent_hidden", if urgent { "" } else { " hidden" }.into());
        slots.insert(
            "receipt",
            receipt
                .map(|r| self.receipt_box(lang, r))
                .unwrap_or_default(),
        );
        self.fill(&self.result_template, lang, &slots)
    }

    /// The receipt's words as the page shows them after a report (`page.receipt.*`).
    fn receipt_box(&self, lang: &str, receipt: &Receipt) -> String {
        let mut out = format!(
            "<section id=\"receipt\" class=\"receipt\" aria-labelledby=\"receipt-title\"><h2 id=\"receipt-title\">{}</h2><p>{}</p><ol class=\"receipt-words\" lang=\"es\">",
            escape(self.text(lang, "page.receipt.title")),
            escape(self.text(lang, "page.receipt.intro"))
        );
        for word in receipt.words() {
            let _ = write!(out, "<li>{}</li>", escape(word));
        }
        let _ = write!(
            out,
            "</ol><p><strong>{}</strong></p><p>{} <a href=\"/check?lang={}\">{}</a></p></section>",
            escape(self.text(lang, "page.receipt.advice")),
            escape(self.text(lang, "page.receipt.later")),
            escape(lang),
            escape(self.text(lang, "page.receipt.check_link"))
        );
        out
    }

    /// The answers opened by the gateway for a check-in without JavaScript, and the follow-up
    /// form, which carries the receipt's words back in a hidden field (never in a URL).
    pub fn thread(&self, lang: &str, view: &ThreadView<'_>) -> String {
        let mut slots = self.slots_for(lang, "/check");
        slots.insert("token", escape(view.token));
        slots.insert("message", self.message_box(lang, view.message.as_ref()));
        slots.insert("receipt_words", escape(&view.receipt.words().join(" ")));
        slots.insert("replies", self.replies(lang, view.read));
        slots.insert(
            "files_hint",
            escape(
                &self
                    .text(lang, "page.followup.files.limit_nojs")
                    .replace("{limit}", &human_size(self.form_max_bytes)),
            ),
        );
        self.fill(&self.thread_template, lang, &slots)
    }

    /// The page after a follow-up was sealed and stored.
    pub fn followed(&self, lang: &str, id: &str, sequence: Option<u64>) -> String {
        let mut slots = self.common_slots(lang);
        slots.insert("id", escape(id));
        slots.insert("sequence", self.sequence_line(lang, sequence));
        self.fill(&self.followed_template, lang, &slots)
    }

    /// "It is number n in the gateway's log" (`docs/trust-v1.md`), or nothing for a store that
    /// gave no number.
    fn sequence_line(&self, lang: &str, sequence: Option<u64>) -> String {
        sequence
            .map(|n| {
                format!(
                    "<p id=\"submission-sequence\">{}</p>",
                    escape(
                        &self
                            .text(lang, "page.success.sequence")
                            .replace("{n}", &n.to_string())
                    )
                )
            })
            .unwrap_or_default()
    }

    /// A message box (role alert): a title and one sentence, or nothing.
    fn message_box(&self, lang: &str, message: Option<&PageMessage<'_>>) -> String {
        message
            .map(|m| {
                format!(
                    "<div id=\"page-message\" class=\"message\" role=\"alert\"><p><strong>{}</strong></p><p>{}</p></div>",
                    escape(self.text(lang, m.title_key)),
                    escape(m.sentence)
                )
            })
            .unwrap_or_default()
    }

    /// Each answer: the team's, in their order, with its files; every other one as a warning
    /// whose files are not offered; then the numbers that did not arrive.
    fn replies(&self, lang: &str, read: &ConversationRead) -> String {
        if read.replies.is_empty() {
            return format!("<p>{}</p>", escape(self.text(lang, "page.check.none_yet")));
        }
        let mut out = String::new();
        for checked in &read.replies {
            // The team's day for its own answers; the gateway's for anything else.
            let heading = match (&checked.read.verified, &checked.read.reply) {
                (Ok(_), Some(reply)) => self
                    .text(lang, "page.check.reply.heading_written")
                    .replace("{day}", &reply.day.to_string()),
                _ => self
                    .text(lang, "page.check.reply.heading")
                    .replace("{day}", &checked.day.to_string()),
            }
            .replace("{n}", &checked.number().to_string());
            let (class, status) = match (&checked.read.verified, &checked.read.reply) {
                (Ok(fingerprint), Some(_)) => (
                    "reply verified",
                    self.text(lang, "page.check.reply.verified")
                        .replace("{fingerprint}", &grouped(&fingerprint.to_hex())),
                ),
                (_, Some(_)) => (
                    "reply warning",
                    self.text(lang, "page.check.reply.warning").into(),
                ),
                (_, None) => (
                    "reply warning",
                    self.text(lang, "page.check.reply.unreadable").into(),
                ),
            };
            let _ = write!(
                out,
                "<article class=\"{class}\"><h3>{}</h3><p class=\"status\"><strong>{}</strong></p>",
                escape(&heading),
                escape(&status)
            );
            if let Some(reply) = &checked.read.reply {
                let verified = checked.read.verified.is_ok();
                let _ = write!(
                    out,
                    "<div class=\"reply-text\" lang=\"{}\">{}</div>",
                    escape(&reply.language),
                    escape(&reply.message).replace('\n', "<br>")
                );
                for file in &reply.attachments {
                    if verified {
                        // Offered as a download in the page itself: nothing is kept to fetch.
                        let _ = write!(
                            out,
                            "<p>{} <a download=\"{name}\" href=\"data:application/octet-stream;base64,{}\">{name}</a></p>",
                            escape(self.text(lang, "page.check.reply.file")),
                            escape(&file.data),
                            name = escape(&file.name)
                        );
                    } else {
                        let _ = write!(
                            out,
                            "<p>{}</p>",
                            escape(
                                &self
                                    .text(lang, "page.check.reply.file_withheld")
                                    .replace("{name}", &file.name)
                            )
                        );
                    }
                }
            }
            out.push_str("</article>");
        }
        if !read.missing.is_empty() {
            let numbers: Vec<String> = read.missing.iter().map(u32::to_string).collect();
            let _ = write!(
                out,
                "<div class=\"message\" role=\"alert\"><p><strong>{}</strong></p></div>",
                escape(
                    &self
                        .text(lang, "page.check.missing")
                        .replace("{numbers}", &numbers.join(", "))
                )
            );
        }
        out
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

    fn languages_nav(&self, current: &str, path: &str) -> String {
        let mut out = String::new();
        // Each language by its own name, in its own language (`lang`), the form's default first.
        for lang in self.catalog.picker_order() {
            let name = self.catalog.exact(lang, "language.name").unwrap_or(lang);
            let current_attr = if lang == current {
                " aria-current=\"true\""
            } else {
                ""
            };
            let _ = write!(
                out,
                "<a href=\"{path}?lang={l}\" hreflang=\"{l}\" lang=\"{l}\"{current_attr}>{}</a>",
                escape(name),
                path = escape(path),
                l = escape(lang)
            );
        }
        out
    }

    /// The organisation key's fingerprint in groups of four, with what to compare it with;
    /// nothing without a key list.
    fn org_fingerprint(&self, lang: &str) -> String {
        let Some(fingerprint) = &self.organisation_fingerprint else {
            return String::new();
        };
        format!(
            "<section id=\"org-key\" class=\"org-key\" aria-labelledby=\"org-key-title\"><h2 id=\"org-key-title\">{}</h2><p class=\"org-key-fingerprint\" data-fingerprint=\"{}\"><code>{}</code></p><p>{}</p></section>",
            escape(self.text(lang, "page.org_key.title")),
            escape(fingerprint),
            escape(&grouped(fingerprint)),
            escape(self.text(lang, "page.org_key.compare"))
        )
    }

    /// The organisation fingerprint the page shows, for its script (`static/js/keylist.js`): the
    /// keys it encrypts to must be the ones the key list signed by that key vouches for.
    /// `{"fingerprint": null}` without a key list.
    fn organisation_json(&self) -> String {
        script_json(
            &serde_json::json!({ "fingerprint": self.organisation_fingerprint }).to_string(),
        )
    }

    fn key_list(&self) -> String {
        let mut out = String::new();
        for (fingerprint, name) in &self.keys {
            let _ = write!(
                out,
                "<li data-fingerprint=\"{}\"><code>{}</code><br>{}</li>",
                escape(fingerprint),
                escape(&grouped(fingerprint)),
                escape(name)
            );
        }
        out
    }

    fn field(&self, lang: &str, f: &FieldDef, values: &FormValues, invalid: bool) -> String {
        let id = escape(&f.id);
        let label = escape(self.text(lang, &format!("field.{}.label", f.id)));
        let hint_key = format!("field.{}.hint", f.id);
        let hint = self
            .catalog
            .exact(lang, &hint_key)
            .or_else(|| self.catalog.exact(&self.form.default_language, &hint_key))
            .map(escape);
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
        // A missing answer is marked on the field itself, and said next to it.
        let (invalid_attr, invalid_class, invalid_note) = if invalid {
            (
                " aria-invalid=\"true\"",
                " invalid",
                format!(
                    "<p class=\"field-error\" id=\"e-{id}\">{}</p>",
                    escape(self.text(lang, "page.error.field_missing"))
                ),
            )
        } else {
            ("", "", String::new())
        };
        let mut described: Vec<String> = Vec::new();
        if invalid {
            described.push(format!("e-{id}"));
        }
        if hint.is_some() {
            described.push(format!("h-{id}"));
        }
        let described = if described.is_empty() {
            String::new()
        } else {
            format!(" aria-describedby=\"{}\"", described.join(" "))
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
        // The pieces every field shares: what heads it, what follows its label, the control's
        // attributes, and the usual frame of a labelled control.
        let head = format!("{label}{required}");
        let lead = format!("{invalid_note}{hint_html}");
        let attrs = format!("{described}{aria_required}{invalid_attr}");
        let labelled = |control: &str| {
            format!(
                "<div class=\"field{invalid_class}\"><label class=\"field\" for=\"f-{id}\">{head}\
                 </label>{lead}{control}</div>"
            )
        };
        match f.kind {
            FieldKind::Multi => {
                // A group of checkboxes takes no aria-required (ARIA allows it on no `group`):
                // the legend says "(required)", and a missing answer is marked aria-invalid.
                let mut out = format!(
                    "<fieldset id=\"f-{id}\" class=\"field{invalid_class}\" tabindex=\"-1\"\
                     {described}{invalid_attr}><legend>{head}</legend>{lead}"
                );
                for o in &f.options {
                    let checked = if value(o) { " checked" } else { "" };
                    let _ = write!(
                        out,
                        "<label class=\"choice\"><input type=\"checkbox\" name=\"{id}\" \
                         value=\"{v}\"{checked}> {}</label>",
                        option_label(o),
                        v = escape(o)
                    );
                }
                out.push_str("</fieldset>");
                out
            }
            FieldKind::Select => {
                let mut control = format!(
                    "<select id=\"f-{id}\" name=\"{id}\"{attrs}><option value=\"\">{}</option>",
                    escape(self.text(lang, "common.choose"))
                );
                for o in &f.options {
                    let selected = if value(o) { " selected" } else { "" };
                    let _ = write!(
                        control,
                        "<option value=\"{v}\"{selected}>{}</option>",
                        option_label(o),
                        v = escape(o)
                    );
                }
                control.push_str("</select>");
                labelled(&control)
            }
            FieldKind::Text | FieldKind::Date => {
                let kind = if f.kind == FieldKind::Date {
                    "date"
                } else {
                    "text"
                };
                labelled(&format!(
                    "<input type=\"{kind}\" id=\"f-{id}\" name=\"{id}\" maxlength=\"{maxlength}\" \
                     value=\"{text_value}\" autocomplete=\"off\"{attrs}>"
                ))
            }
            FieldKind::Textarea | FieldKind::Description => labelled(&format!(
                "<textarea id=\"f-{id}\" name=\"{id}\" maxlength=\"{maxlength}\" rows=\"8\" \
                 autocomplete=\"off\"{attrs}>{text_value}</textarea>"
            )),
            FieldKind::Checkbox => {
                let checked = if value("yes") { " checked" } else { "" };
                format!(
                    "<div class=\"field{invalid_class}\"><label class=\"choice\"><input \
                     type=\"checkbox\" id=\"f-{id}\" name=\"{id}\" value=\"yes\"{checked}\
                     {described}{invalid_attr}> {label}</label>{lead}</div>"
                )
            }
            FieldKind::Urgent => {
                // Asked first, with large targets; "yes" shows at once where to get help now.
                let yes = if value("yes") { " checked" } else { "" };
                let no = if value("no") { " checked" } else { "" };
                format!(
                    "<fieldset class=\"urgent field{invalid_class}\" id=\"f-{id}\" tabindex=\"-1\"\
                     {described}{invalid_attr}><legend>{head}</legend>{lead}\
                     <div class=\"big-choices\">\
                     <input type=\"radio\" id=\"{id}-yes\" name=\"{id}\" value=\"yes\"{yes}>\
                     <label for=\"{id}-yes\">{}</label>\
                     <input type=\"radio\" id=\"{id}-no\" name=\"{id}\" value=\"no\"{no}>\
                     <label for=\"{id}-no\">{}</label>\
                     <div class=\"urgent-help\" role=\"note\"><strong>{}</strong><p>{}</p>{}\
                     <p>{}</p></div></div></fieldset>",
                    escape(self.text(lang, "page.urgent.yes")),
                    escape(self.text(lang, "page.urgent.no")),
                    escape(self.text(lang, "page.urgent.help.title")),
                    escape(self.text(lang, "page.urgent.help.body")),
                    self.hotlines(lang),
                    escape(&self.text(lang, "page.urgent.review_time").replace(
                        "{hours}",
                        &self.organisation.urgent_review_hours.to_string(),
                    )),
                )
            }
            FieldKind::Attachments => {
                // Without JavaScript the form's own (smaller) limit applies; the page's script
                // puts the larger one back when it encrypts.
                let files_hint = self
                    .text(lang, "page.files.hint")
                    .replace("{limit}", &human_size(self.form_max_bytes));
                // Without JavaScript the gateway cleans pictures on arrival; one it cannot clean
                // goes only if this box is ticked (`form_post::CONSENT_FIELD`).
                let server_note = if self.server_sealing {
                    format!(
                        "<p class=\"hint server-only\">{}</p><label class=\"choice \
                         server-only\"><input type=\"checkbox\" name=\"{}\" value=\"yes\"> \
                         {}</label>",
                        escape(self.text(lang, "page.files.nojs_cleaning")),
                        super::form_post::CONSENT_FIELD,
                        escape(self.text(lang, "page.files.send_anyway_nojs"))
                    )
                } else {
                    String::new()
                };
                format!(
                    "<div class=\"field{invalid_class}\"><label class=\"field\" for=\"f-{id}\">\
                     {head}</label>{invalid_note}<p class=\"hint\" id=\"h-{id}\">{}</p>\
                     {server_note}<input type=\"file\" id=\"f-{id}\" name=\"{id}\" multiple \
                     aria-describedby=\"h-{id}\"{invalid_attr}><ul id=\"file-list\" \
                     class=\"file-list\" aria-live=\"polite\"></ul></div>",
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
        PageRenderer::new(PageSettings {
            form: Arc::new(FormDefinition::embedded().expect("form")),
            keys: vec![(
                "C95C29B449920DED0872A622F1F1AA6FAE2F54AD".into(),
                "Demo <x>".into(),
            )],
            max_bytes: 100 * 1024 * 1024,
            form_max_bytes: 25 * 1024 * 1024,
            server_sealing,
            organisation: OrganisationConfig::default(),
            stall_seconds: 60,
            organisation_fingerprint: None,
        })
    }

    fn view(token: &str) -> PageView<'static> {
        PageView {
            token: token.into(),
            ..PageView::default()
        }
    }

    /// The page's script learns the fingerprint it shows from a JSON data block (never inline
    /// code), and the block agrees with what is displayed.
    #[test]
    fn the_organisation_fingerprint_reaches_the_script_as_data() {
        let mut r = renderer(false);
        let html = r.page("es", &view("t"));
        assert!(html.contains(
            "<script type=\"application/json\" id=\"organisation-key\">{\"fingerprint\":null}</script>"
        ));
        assert!(!html.contains("id=\"org-key\""));
        let fingerprint = "876724495736AF632E5F668F44928851A04C42B3";
        r.organisation_fingerprint = Some(fingerprint.into());
        let html = r.page("es", &view("t"));
        assert!(html.contains(&format!(
            "<script type=\"application/json\" id=\"organisation-key\">{{\"fingerprint\":\"{fingerprint}\"}}</script>"
        )));
        assert!(html.contains(&format!("data-fingerprint=\"{fingerprint}\"")));
    }

    #[test]
    fn the_page_is_complete_in_every_language() {
        let r = renderer(true);
        for lang in r.catalog.languages() {
            let html = r.page(lang, &view("tok"));
            assert!(!html.contains("{{"), "{lang}: unfilled placeholder");
            assert!(html.contains(&format!("<html lang=\"{lang}\">")));
            assert!(html.contains("action=\"/submit?t=tok\""));
            assert!(html.contains("C95C 29B4 4992"));
            assert!(html.contains("Demo &lt;x&gt;"), "names are escaped");
            assert!(html.contains("name=\"what_happened\" value=\"threat\""));
            assert!(html.contains("type=\"file\""));
            assert!(html.contains("href=\"tel:105\""), "{lang}: hotlines");
            assert!(!html.contains("<script>"), "no inline script");
            // Every control has a label: inputs sit in labels or are named by one.
            for id in ["f-region", "f-description", "f-attachments", "urgent-yes"] {
                assert!(html.contains(&format!("for=\"{id}\"")), "{lang}: {id}");
            }
            // The urgency question comes before every other field.
            let urgent = html.find("name=\"urgent\"").expect("urgent");
            let first_other = html.find("name=\"what_happened\"").expect("what");
            assert!(urgent < first_other, "{lang}: urgency is asked first");
        }
        assert!(r.page("es", &view("t")).contains("¿Qué pasó?"));
        assert!(r.page("en", &view("t")).contains("What happened?"));
        assert_eq!(r.language(Some("xx")), "es");
        assert_eq!(r.language(Some("en")), "en");
    }

    #[test]
    fn values_come_back_escaped_with_every_missing_answer_marked() {
        let r = renderer(true);
        let mut values = FormValues::new();
        values.insert("description".into(), vec!["<b>x</b> & \"y\"".into()]);
        values.insert("what_happened".into(), vec!["threat".into()]);
        values.insert("region".into(), vec!["cusco".into()]);
        let view = PageView {
            values: Some(&values),
            message: Some("fallo <script>".into()),
            missing: vec!["what_happened".into(), "description".into()],
            token: "t".into(),
            files_lost: true,
        };
        let html = r.page("es", &view);
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot;</textarea>"));
        assert!(html.contains("value=\"threat\" checked"));
        assert!(html.contains("value=\"cusco\" selected"));
        assert!(html.contains("fallo &lt;script&gt;"));
        assert!(html.contains("<a href=\"#f-what_happened\">¿Qué pasó?</a>"));
        assert!(html.contains("<a href=\"#f-description\">"));
        assert_eq!(html.matches("aria-invalid=\"true\"").count(), 2);
        assert!(
            html.contains("vuelve a elegir los archivos"),
            "files must be chosen again"
        );
    }

    #[test]
    fn a_disabled_server_sealing_hides_the_form_and_explains_what_to_do() {
        let r = renderer(false);
        let html = r.page("es", &view("t"));
        assert!(
            html.contains("novalidate hidden>"),
            "no form to fill in vain"
        );
        assert!(html.contains("Tor Browser"));
        let answer = r.disabled("es");
        assert!(!answer.contains("<form"));
        assert!(answer.contains("Tor Browser"));
    }

    #[test]
    fn the_check_page_is_complete_in_every_language_and_says_what_to_do_without_javascript() {
        let r = renderer(true);
        for lang in r.catalog.languages() {
            let html = r.check(
                lang,
                &CheckView {
                    token: "tok",
                    message: None,
                },
            );
            assert!(!html.contains("{{"), "{lang}: unfilled placeholder");
            assert!(html.contains(&format!("<html lang=\"{lang}\">")));
            assert!(html.contains("/check.js\""), "{lang}: its script");
            assert!(
                html.contains("href=\"/check?lang=en\""),
                "{lang}: languages stay here"
            );
            assert!(
                html.contains("C95C 29B4 4992"),
                "{lang}: the keys a follow-up goes to"
            );
            assert!(
                html.contains("resguardo-submit check"),
                "{lang}: the way without JavaScript"
            );
            assert!(!html.contains("<script>"), "no inline script");
            // With JavaScript the words are never a form value; only the form inside
            // <noscript> posts them (to the gateway, never in a URL).
            let mut scripted = String::new();
            let mut nojs = String::new();
            for (i, part) in html.split("noscript>").enumerate() {
                // Odd parts lie between <noscript> and </noscript>.
                if i % 2 == 1 { &mut nojs } else { &mut scripted }.push_str(part);
            }
            assert!(!scripted.contains("name=\"receipt"), "{lang}");
            assert!(nojs.contains("name=\"receipt\""), "{lang}");
            assert!(nojs.contains("method=\"post\" action=\"/check?t=tok&amp;lang="));
        }
        assert!(r.page("es", &view("t")).contains("href=\"/check?lang=es\""));
    }

    #[test]
    fn the_result_page_repeats_the_hotlines_only_for_urgent_reports() {
        let r = renderer(true);
        let urgent = r.result("es", "abc", None, true, None);
        assert!(urgent.contains("href=\"tel:105\""));
        assert!(urgent.contains("cada 12 horas"), "{urgent}");
        assert!(!urgent.contains("class=\"urgent-after\" hidden"));
        assert!(r
            .result("es", "abc", None, false, None)
            .contains("class=\"urgent-after\" hidden"));
    }

    #[test]
    fn a_form_report_shows_its_receipt_once_on_the_result_page() {
        let r = renderer(true);
        let receipt = Receipt::from_entropy([3; 16]);
        let html = r.result("es", "abc", Some(57), false, Some(&receipt));
        assert!(
            html.contains("<p id=\"submission-sequence\">") && html.contains(" 57 "),
            "the number in the gateway's log is shown"
        );
        assert!(!r
            .result("es", "abc", None, false, None)
            .contains("submission-sequence"));
        for word in receipt.words() {
            assert!(html.contains(&format!("<li>{word}</li>")), "{word}");
        }
        assert!(html.contains("Escríbelas en papel"));
        assert!(!r
            .result("es", "abc", None, false, None)
            .contains("receipt-words"));
    }

    #[test]
    fn the_thread_without_javascript_escapes_answers_and_offers_files_only_when_verified() {
        use crate::replies::message::REPLY_SCHEMA;
        use crate::replies::{ReadReply, ReplyAttachment, ReplyPlaintext};
        use crate::submit::CheckedIn;
        let r = renderer(true);
        let receipt = Receipt::from_entropy([4; 16]);
        let reply = |sequence, message: &str| ReplyPlaintext {
            schema: REPLY_SCHEMA.into(),
            conversation: receipt.locator(),
            sequence,
            day: crate::submission::UtcDay::today(),
            language: "es".into(),
            message: message.into(),
            attachments: vec![ReplyAttachment {
                name: "nota.pdf".into(),
                media_type: "application/pdf".into(),
                data: "QUJD".into(),
            }],
        };
        let read = ConversationRead {
            replies: vec![
                CheckedIn {
                    n: 1,
                    day: crate::submission::UtcDay::today(),
                    read: ReadReply {
                        reply: Some(reply(1, "Llame al <b>105</b>\nhoy")),
                        verified: Ok(sequoia_openpgp::Fingerprint::V4([7; 20])),
                    },
                },
                CheckedIn {
                    n: 2,
                    day: crate::submission::UtcDay::today(),
                    read: ReadReply {
                        reply: Some(reply(2, "forged")),
                        verified: Err("not signed".into()),
                    },
                },
            ],
            missing: vec![3],
        };
        let html = r.thread(
            "es",
            &ThreadView {
                read: &read,
                receipt: &receipt,
                token: "tok",
                message: None,
            },
        );
        assert!(!html.contains("{{"), "unfilled placeholder");
        assert!(html.contains("Llame al &lt;b&gt;105&lt;/b&gt;<br>hoy"));
        assert_eq!(
            html.matches("href=\"data:application/octet-stream;base64,QUJD\"")
                .count(),
            1
        );
        assert!(html.contains("Archivo no ofrecido"));
        assert!(html.contains("ADVERTENCIA"));
        assert!(html.contains(&format!("value=\"{}\"", receipt.words().join(" "))));
        assert!(html.contains("action=\"/check/follow-up?t=tok&amp;lang=es\""));
        assert!(!html.contains("<script"), "nothing runs on it");
        assert!(html.contains("Hasta "), "the files' limit, not an error");
        assert!(
            html.contains("C95C 29B4") || html.contains("0707 0707"),
            "grouped fingerprint"
        );
    }
}
