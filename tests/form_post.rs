//! The form without JavaScript (`POST /submit`), sealed on arrival: accepted posts become sealed
//! submissions that decrypt to payload v1; bad posts get an HTML page with the reason and their
//! status; nothing of a refused post is stored; the mode can be switched off.

use crate::common::*;

/// Posts with the token of a freshly served page, as a browser would.
pub(crate) fn post_form(gateway: &Gateway, body: &[u8], content_type: &str) -> (u16, String) {
    post_form_with(gateway, &form_token(&gateway.url), body, content_type)
}

fn post_form_with(
    gateway: &Gateway,
    token: &str,
    body: &[u8],
    content_type: &str,
) -> (u16, String) {
    post_raw(gateway, &format!("/submit?t={token}"), body, content_type)
}

pub(crate) fn ok_parts<'a>(
    canary: &'a str,
    file: &'a [u8],
) -> Vec<(&'a str, Option<&'a str>, &'a [u8])> {
    vec![
        ("language", None, b"en"),
        ("what_happened", None, b"threat"),
        ("what_happened", None, b"obstruction"),
        ("region", None, b"puno"),
        ("urgent", None, b"no"),
        ("description", None, canary.as_bytes()),
        ("attachments", Some("acta.pdf"), file),
    ]
}

#[test]
fn form_posts_are_sealed_on_arrival_or_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(
        dir.path(),
        "plain-http",
        "[limits]\nmax_submission_bytes = 1048576\n[form]\ntoken_min_age_secs = 0\nmax_post_bytes = 1048576\nposts_per_minute = 600\npost_burst = 100\n",
    );
    let canary = "CANARYformpost7c1e";
    let pdf = std::fs::read(repo().join("tests/fixtures/acta.pdf")).expect("fixture");
    let multipart_type = format!("multipart/form-data; boundary={BOUNDARY}");

    let (status, html) = post_form(
        &gateway,
        &multipart(&ok_parts(canary, &pdf)),
        &multipart_type,
    );
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"submission-id\""), "{html}");
    assert!(
        html.contains("<html lang=\"en\">"),
        "the answer is in the form's language"
    );

    let big = vec![7u8; 1_200_000];
    let cases: Vec<(&str, Vec<u8>, String, u16, &str)> = vec![
        (
            "unknown field",
            multipart(&[
                ("language", None, b"en"),
                ("description", None, b"x"),
                ("what_happened", None, b"threat"),
                ("surname", None, b"Quispe"),
            ]),
            multipart_type.clone(),
            422,
            "Some answers could not be read",
        ),
        (
            "option not in the form",
            multipart(&[
                ("language", None, b"en"),
                ("description", None, b"x"),
                ("what_happened", None, b"alien_abduction"),
            ]),
            multipart_type.clone(),
            422,
            "Some answers could not be read",
        ),
        (
            "required answer missing",
            multipart(&[
                ("language", None, b"en"),
                ("description", None, b"only text"),
            ]),
            multipart_type.clone(),
            422,
            "<a href=\"#f-what_happened\">What happened?</a>",
        ),
        (
            "too large",
            multipart(&[
                ("language", None, b"en"),
                ("what_happened", None, b"threat"),
                ("description", None, b"x"),
                ("attachments", Some("big.bin"), &big),
            ]),
            multipart_type.clone(),
            413,
            "too large",
        ),
        (
            "not multipart",
            b"description=x".to_vec(),
            "application/x-www-form-urlencoded".to_string(),
            415,
            "",
        ),
    ];
    for (name, body, content_type, expected, needle) in &cases {
        let (status, html) = post_form(&gateway, body, content_type);
        assert_eq!(status, *expected, "{name}: {html}");
        assert!(html.contains(needle), "{name}: {needle:?} not in the page");
        assert!(
            html.contains("<form id=\"report\""),
            "{name}: the form comes back"
        );
    }
    // What was typed comes back (escaped), files do not.
    let (_, html) = post_form(
        &gateway,
        &multipart(&[
            ("language", None, b"en"),
            ("description", None, b"<i>kept</i>"),
        ]),
        &multipart_type,
    );
    assert!(
        html.contains("&lt;i&gt;kept&lt;/i&gt;</textarea>"),
        "{html}"
    );

    // A post cut off before its end is not stored.
    let mut cut = multipart(&ok_parts(canary, &pdf));
    cut.truncate(cut.len() - 40);
    let head = format!(
        "POST /submit?t={} HTTP/1.1\r\nHost: x\r\nContent-Type: {multipart_type}\r\nContent-Length: {}\r\n\r\n",
        form_token(&gateway.url),
        cut.len() + 40
    );
    let (status, _) = raw_request_cut(gateway.addr, &head, &cut);
    assert_eq!(status, 400);

    let logs = gateway.stop();
    assert!(!logs.contains(canary) && !logs.contains("Quispe"), "{logs}");
    for (path, bytes) in all_files(&dir.path().join("data")) {
        assert!(!contains(&bytes, canary.as_bytes()), "{}", path.display());
        assert!(!contains(&bytes, b"Quispe"), "{}", path.display());
    }
    // Exactly one submission was stored, sealed on arrival, and it opens to the report.
    let bundle = dir.path().join("b.tar");
    let exported = export(&dir.path().join("data"), &bundle);
    assert_eq!(exported.len(), 1);
    let sealed_path = dir.path().join("s.pgp");
    std::fs::write(&sealed_path, &exported[0].1).expect("write");
    let plain = Gpg::new().decrypt(&sealed_path);
    let mut archive = tar::Archive::new(&plain[..]);
    let mut names = Vec::new();
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").display().to_string();
        if name == "report.json" {
            let report: serde_json::Value = serde_json::from_reader(&mut entry).expect("json");
            assert_eq!(report["sealed_by"], "gateway");
            assert_eq!(report["language"], "en");
            assert_eq!(report["description"], canary);
            assert_eq!(
                report["fields"]["what_happened"],
                serde_json::json!(["threat", "obstruction"])
            );
            assert_eq!(report["attachments"][0]["path"], "files/001.pdf");
        }
        if name == "files/001.pdf" {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read");
            assert_eq!(bytes, pdf);
        }
        names.push(name);
    }
    assert_eq!(names, ["report.json", "files/001.pdf", "padding"]);
}

#[test]
fn sealing_on_arrival_can_be_switched_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(dir.path(), "plain-http", "[form]\nserver_sealing = false\n");
    let (status, page) = get(&gateway.url);
    assert_eq!(status, 200);
    assert!(page.contains("<noscript>"), "{page}");
    assert!(
        page.contains("Sin JavaScript no podemos proteger tu reporte"),
        "{page}"
    );
    let pdf = b"%PDF".to_vec();
    let (status, html) = post_form(
        &gateway,
        &multipart(&ok_parts("x", &pdf)),
        &format!("multipart/form-data; boundary={BOUNDARY}"),
    );
    assert_eq!(status, 403, "{html}");
    assert!(
        !html.contains("<form"),
        "no form that cannot be sent: {html}"
    );
    assert!(html.contains("Tor Browser"), "{html}");
    assert_eq!(
        std::fs::read_dir(gateway.data_dir.join("sealed"))
            .expect("ls")
            .count(),
        0
    );
}
