//! Terminal escapes (issue 9, item 9): bundle manifests and reports whose text carries escape
//! sequences, bells, C1 controls, bidirectional overrides and fake lines must not reach the
//! reviewer's or the operator's terminal through `resguardo-review list`, `open`, `list DIR`, or
//! `resguardo-gateway purge --bundle`; nor `report.txt` or the index.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;
use resguardo::payload::{self, FieldValue, Report};
use resguardo::submission::SubmissionId;
use resguardo::testing::raw_tar;

/// Escape sequences that retitle the window and clear the screen, a C1 CSI, a right-to-left
/// override, a zero-width space, and a line that pretends the run went well.
const HOSTILE: &str =
    "\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\u{202e}evil\u{200b}\nAll 12 submissions opened OK";

/// Asserts that `bytes` is UTF-8 with no character a terminal would act on or hide, and no line
/// that starts with the fake message (in files for people, reporter text may continue on
/// indented lines, never at the start of one).
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"));
    for c in text.chars() {
        let bad = (c.is_control() && c != '\n' && c != '\t')
            || matches!(c,
                '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}');
        assert!(!bad, "{what}: {c:?} in {text:?}");
    }
    assert!(
        !text.lines().any(|l| l.starts_with("All 12")),
        "{what}: a faked line in {text:?}"
    );
}

/// For terminal output: additionally, no line at all (indented or not) may carry the fake.
fn assert_output_safe(what: &str, o: &Output) {
    for (stream, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        assert_terminal_safe(&format!("{what} ({stream})"), bytes);
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("All 12")),
            "{what} ({stream}): a faked line in {text:?}"
        );
    }
}

/// A bundle file holding only this manifest text.
fn manifest_bundle(dir: &Path, name: &str, manifest: &serde_json::Value) -> std::path::PathBuf {
    let path = dir.join(name);
    let json = serde_json::to_vec(manifest).expect("json");
    std::fs::write(&path, raw_tar(&[(b"bundle.json", b'0', &json)])).expect("write");
    path
}

fn entry(id: &str, sealing: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "day": "2026-11-29",
        "size": 10,
        "sha256": "0".repeat(64),
        "sealing": sealing,
    })
}

fn hostile_manifests(dir: &Path) -> Vec<(&'static str, std::path::PathBuf)> {
    let batch = "4cd823569317a6d81deac55dd1e5d834";
    let id = "93efa429e67f262e34662fb79be7f08d";
    let mut unknown_field = serde_json::json!({
        "format": "resguardo.bundle/1",
        "batch": batch,
        "created": "2026-11-29",
        "submissions": [],
    });
    unknown_field[HOSTILE] = serde_json::json!(1);
    vec![
        (
            "unknown field",
            manifest_bundle(dir, "unknown-field.tar", &unknown_field),
        ),
        (
            "unknown variant",
            manifest_bundle(
                dir,
                "unknown-variant.tar",
                &serde_json::json!({
                    "format": "resguardo.bundle/1",
                    "batch": batch,
                    "created": "2026-11-29",
                    "submissions": [entry(id, HOSTILE)],
                }),
            ),
        ),
        (
            "bad id",
            manifest_bundle(
                dir,
                "bad-id.tar",
                &serde_json::json!({
                    "format": "resguardo.bundle/1",
                    "batch": batch,
                    "created": "2026-11-29",
                    "submissions": [entry(HOSTILE, "by_sender")],
                }),
            ),
        ),
        (
            "unknown entry field",
            manifest_bundle(
                dir,
                "entry-field.tar",
                &serde_json::json!({
                    "format": "resguardo.bundle/1",
                    "batch": batch,
                    "created": "2026-11-29",
                    "submissions": [{
                        "id": id, "day": "2026-11-29", "size": 10,
                        "sha256": "0".repeat(64), "sealing": "by_sender", HOSTILE: true,
                    }],
                }),
            ),
        ),
        (
            "bad format",
            manifest_bundle(
                dir,
                "bad-format.tar",
                &serde_json::json!({
                    "format": HOSTILE,
                    "batch": batch,
                    "created": "2026-11-29",
                    "submissions": [],
                }),
            ),
        ),
    ]
}

#[test]
fn hostile_manifests_reach_no_terminal_through_list_open_or_purge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for (name, bundle) in hostile_manifests(d) {
        let o = run(Command::new(review_bin()).arg("list").arg(&bundle));
        assert_eq!(o.status.code(), Some(3), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with("resguardo-review: error: "),
            "{name}: {}",
            stderr(&o)
        );
        assert_eq!(
            stderr(&o).lines().count(),
            1,
            "{name}: one line: {}",
            stderr(&o)
        );
        assert_output_safe(&format!("list, {name}"), &o);

        let out = d.join(format!("out-{}", name.replace(' ', "-")));
        let o = run(Command::new(review_bin())
            .arg("open")
            .arg(&bundle)
            .arg("--key")
            .arg(demo_sec(1))
            .arg("--passphrase-file")
            .arg(demo_passphrase(1))
            .arg("--out")
            .arg(&out));
        assert_eq!(o.status.code(), Some(3), "{name}: {}", stderr(&o));
        assert_output_safe(&format!("open, {name}"), &o);

        let o = run(Command::new(review_bin())
            .arg("unpack")
            .arg(&bundle)
            .arg("--out")
            .arg(d.join("unpacked")));
        assert_output_safe(&format!("unpack, {name}"), &o);

        // The bundle is read (and refused) before the receipt.
        let o = run(Command::new(gateway_bin())
            .args(["purge", "--data-dir"])
            .arg(d.join("no-data"))
            .arg("--bundle")
            .arg(&bundle)
            .arg("--receipt")
            .arg(d.join("open-receipt.json")));
        assert_eq!(o.status.code(), Some(3), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with("resguardo-gateway: error: bundle "),
            "{name}: {}",
            stderr(&o)
        );
        assert_output_safe(&format!("purge, {name}"), &o);
    }
}

fn sha(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

#[test]
fn hostile_report_text_reaches_no_terminal_and_no_file_for_people() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // 1. A report whose answers and account are hostile: it opens, and every file for people
    //    and every listing is clean.
    let mut fields = BTreeMap::new();
    fields.insert("region".to_string(), FieldValue::Text(HOSTILE.into()));
    fields.insert(
        "what_happened".to_string(),
        FieldValue::Choices(vec![format!("=HYPERLINK(\"http://x\"){HOSTILE}")]),
    );
    fields.insert("contact".to_string(), FieldValue::Text(HOSTILE.into()));
    let report = Report {
        schema: payload::SCHEMA.into(),
        language: "es".into(),
        urgent: true,
        sealed_by: None,
        fields,
        description: HOSTILE.into(),
        attachments: vec![payload::Attachment {
            name: HOSTILE.into(),
            size: 2,
            sha256: sha(b"ok"),
            media_type: "text/plain".into(),
            path: "files/001.txt".into(),
        }],
        conversation: None,
    };
    let (plain, _) =
        payload::write_payload(Vec::new(), &report, vec![Box::new(&b"ok"[..])]).expect("payload");
    // 2. A report.json with an unknown key full of escapes: refused, and the reason is clean.
    let unknown_key = format!(
        "{{\"schema\":\"resguardo.report/1\",\"language\":\"es\",\"urgent\":false,\"fields\":{{}},\
         \"description\":\"x\",\"attachments\":[],{}:1}}",
        serde_json::to_string(HOSTILE).expect("json")
    );
    let refused = sealed(&raw_tar(&[(b"report.json", b'0', unknown_key.as_bytes())]));
    let bundle = d.join("bundle.tar");
    let file = std::fs::File::create(&bundle).expect("create");
    let (_, ids): (_, Vec<SubmissionId>) =
        resguardo::testing::write_bundle_of(file, &[sealed(&plain), refused]);
    let out = d.join("out");
    let o = run(Command::new(review_bin())
        .arg("open")
        .arg(&bundle)
        .arg("--key")
        .arg(demo_sec(1))
        .arg("--passphrase-file")
        .arg(demo_passphrase(1))
        .arg("--out")
        .arg(&out));
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.starts_with(&format!("{}: report.json invalid: ", ids[1])))
        .unwrap_or_else(|| panic!("no line for the refused report in {err}"));
    assert!(line.contains("unknown field"), "{line}");
    assert_output_safe("open", &o);

    let folder = out.join(ids[0].to_string());
    let txt = std::fs::read(folder.join("report.txt")).expect("report.txt");
    assert_terminal_safe("report.txt", &txt);
    for name in ["index.txt", "index.csv"] {
        let bytes = std::fs::read(out.join(name)).expect(name);
        // The CSV's line ends are CRLF by RFC 4180; nothing else may be a control.
        let bytes: Vec<u8> = bytes.into_iter().filter(|&b| b != b'\r').collect();
        assert_terminal_safe(name, &bytes);
    }
    let csv = std::fs::read_to_string(out.join("index.csv")).expect("csv");
    assert!(
        csv.contains(",\"'=HYPERLINK(\"\"http://x\"\")"),
        "formula neutralised and quoted: {csv}"
    );
    // report.json keeps the reporter's raw text (it is documented as untrusted).
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("report.json")).expect("json"))
            .expect("json");
    assert_eq!(json["description"], HOSTILE);

    for args in [vec!["list"], vec!["list", "--urgent"]] {
        let o = run(Command::new(review_bin()).args(&args).arg(&out));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains(&ids[0].to_string()), "{}", stdout(&o));
        assert_output_safe(&format!("{args:?}"), &o);
    }
}
