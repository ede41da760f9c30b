//! The page in every language (docs/languages.md): Quechua and Aymara are served by `?lang=`,
//! named by their own names in the picker, and a report sent in them without JavaScript arrives
//! with the reporter's words and language while reviewers read its labels in Spanish or English.

use std::process::{Command, Stdio};

use crate::common::*;

/// A language file of the page, as the gateway embeds it.
fn strings(lang: &str) -> serde_json::Value {
    let path = repo().join(format!("static/i18n/{lang}.json"));
    serde_json::from_slice(&std::fs::read(&path).expect("language file")).expect("json")
}

fn text(strings: &serde_json::Value, key: &str) -> String {
    strings[key].as_str().expect(key).to_string()
}

/// As the gateway escapes text for HTML (`'` is frequent in Quechua and Aymara: k', ch', t').
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[test]
fn quechua_and_aymara_pages_are_served_in_their_language_with_every_language_by_its_own_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    let picker_order = ["es", "qu", "ay", "en"];
    for lang in ["qu", "ay"] {
        let own = strings(lang);
        for path in ["", "check"] {
            let (status, page) = get(&format!("{}{path}?lang={lang}", gateway.url));
            assert_eq!(status, 200, "{lang} {path}: {page}");
            assert!(
                page.contains(&format!("<html lang=\"{lang}\">")),
                "{lang} {path}"
            );
            let heading = if path.is_empty() {
                "page.heading"
            } else {
                "page.check.heading"
            };
            assert!(
                page.contains(&html(&text(&own, heading))),
                "{lang} {path}: the heading in {lang}"
            );
            // The picker: each language by its own name, marked as that language, Spanish first.
            let mut at = 0;
            for tag in picker_order {
                let name = text(&strings(tag), "language.name");
                let link = format!(
                    "<a href=\"/{path}?lang={tag}\" hreflang=\"{tag}\" lang=\"{tag}\"{}>{}</a>",
                    if tag == lang {
                        " aria-current=\"true\""
                    } else {
                        ""
                    },
                    html(&name)
                );
                let found = page[at..]
                    .find(&link)
                    .unwrap_or_else(|| panic!("{lang} {path}: no {link} after the previous one"));
                at += found + link.len();
            }
        }
        // The form's strings for the page's script are in the language too.
        let (_, page) = get(&format!("{}?lang={lang}", gateway.url));
        let title = serde_json::to_string(&text(&own, "page.error.title")).expect("json");
        assert!(page.contains(&title), "{lang}: the script's strings");
    }
    // A language without a file is the form's default, Spanish.
    let (_, page) = get(&format!("{}?lang=quz", gateway.url));
    assert!(page.contains("<html lang=\"es\">"));
    gateway.stop();
}

/// Opens `bundle` with demo reviewer 1 whose tool speaks `lang` (`RESGUARDO_LANG`).
fn open_as(lang: &str, bundle: &std::path::Path, out: &std::path::Path) -> String {
    let o = Command::new(review_bin())
        .arg("open")
        .arg(bundle)
        .arg("--key")
        .arg(demo_sec(1))
        .arg("--passphrase-file")
        .arg(demo_passphrase(1))
        .arg("--out")
        .arg(out)
        .env("RESGUARDO_LANG", lang)
        .stdin(Stdio::null())
        .output()
        .expect("run resguardo-review");
    assert!(o.status.success(), "{lang}: {}", stderr(&o));
    let folder = std::fs::read_dir(out)
        .expect("out")
        .filter_map(Result::ok)
        .find(|e| e.path().join("report.txt").is_file())
        .expect("a report folder");
    std::fs::read_to_string(folder.path().join("report.txt")).expect("report.txt")
}

#[test]
fn a_report_sent_in_quechua_without_javascript_is_labelled_in_the_reviewers_language() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(
        dir.path(),
        "plain-http",
        "[form]\ntoken_min_age_secs = 0\nposts_per_minute = 600\npost_burst = 100\n",
    );
    let qu = strings("qu");
    let words = "Llaqtaypi manchachiwarqanku, asambleapi.";
    let multipart_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let post = |parts: &[(&str, Option<&str>, &[u8])]| {
        let token = form_token(&format!("{}?lang=qu", gateway.url));
        post_raw(
            &gateway,
            &format!("/submit?t={token}"),
            &multipart(parts),
            &multipart_type,
        )
    };

    // Refused: the reasons come back in Quechua.
    let (status, page) = post(&[("language", None, b"qu"), ("description", None, b"x")]);
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("<html lang=\"qu\">"), "{page}");
    assert!(
        page.contains(&html(&text(&qu, "page.error.missing"))),
        "{page}"
    );
    assert!(
        page.contains(&html(&text(&qu, "field.what_happened.label"))),
        "{page}"
    );

    // Accepted: the result page in Quechua, with its receipt.
    let (status, page) = post(&[
        ("language", None, b"qu"),
        ("urgent", None, b"yes"),
        ("what_happened", None, b"threat"),
        ("region", None, b"puno"),
        ("description", None, words.as_bytes()),
    ]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<html lang=\"qu\">"), "{page}");
    assert!(
        page.contains(&html(&text(&qu, "page.success.title"))),
        "{page}"
    );
    assert!(
        page.contains(&html(&text(&qu, "page.receipt.advice"))),
        "{page}"
    );
    gateway.stop();

    let bundle = dir.path().join("b.tar");
    assert_eq!(export(&dir.path().join("data"), &bundle).len(), 1);
    let es = open_as("es", &bundle, &dir.path().join("out-es"));
    assert!(es.starts_with("!!! URGENTE"), "{es}");
    assert!(es.contains("¿Qué pasó?: Amenaza\n"), "{es}");
    assert!(es.contains("¿En qué región?: Puno\n"), "{es}");
    assert!(es.contains("Idioma del reporte: qu (Runasimi)\n"), "{es}");
    assert!(es.contains(words), "the reporter's own words: {es}");
    let en = open_as("en", &bundle, &dir.path().join("out-en"));
    assert!(en.starts_with("!!! URGENT:"), "{en}");
    assert!(en.contains("What happened?: Threat\n"), "{en}");
    assert!(en.contains("Report language: qu (Runasimi)\n"), "{en}");
    assert!(en.contains(words), "{en}");
    for key in [
        "field.what_happened.label",
        "field.region.label",
        "review.report",
    ] {
        let label = text(&qu, key);
        assert!(
            !es.contains(&label) && !en.contains(&label),
            "{key}: {label}"
        );
    }
}
