//! The sealed report file (`resguardo.sealed-report/1`, `docs/uploads-v1.md` part 2) over the
//! shared vectors in `tests/vectors/sealed-reports/`: the Rust reader and writer
//! (`src/sealed_file.rs`) here, the page's (`static/js/sealed.js`) in
//! `tests/browser/sealed.test.mjs`. A new vector needs no code in either.

use std::path::Path;

use base64::Engine as _;
use resguardo::sealed_file::{self, SealedHeader, MAX_MESSAGE_BYTES};
use ring::digest;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    about: String,
    file_base64: String,
    expect: String,
    #[serde(default)]
    max_message: Option<u64>,
    #[serde(default)]
    triage: Option<String>,
    #[serde(default)]
    conversation: Option<String>,
    #[serde(default)]
    touch: Option<String>,
    #[serde(default)]
    message_len: Option<u64>,
    #[serde(default)]
    message_sha256: Option<String>,
}

fn cases() -> Vec<(String, Case)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sealed-reports");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("vector folder") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("ok_") || name.starts_with("fail_")) {
            continue;
        }
        let case: Case = serde_json::from_slice(&std::fs::read(&path).expect("read"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push((name, case));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 20, "the sealed report vectors are missing");
    out
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn sealed_report_files_read_as_the_vectors_say() {
    let codes: std::collections::BTreeSet<String> =
        cases().into_iter().map(|(_, case)| case.expect).collect();
    for (name, case) in cases() {
        assert!(!case.about.is_empty(), "{name}: says what it shows");
        assert_eq!(
            name.starts_with("ok_"),
            case.expect == "ok",
            "{name}: named by its outcome"
        );
        let file = base64::engine::general_purpose::STANDARD
            .decode(&case.file_base64)
            .expect("base64");
        let limit = case.max_message.unwrap_or(MAX_MESSAGE_BYTES);
        let mut message = Vec::new();
        match sealed_file::read(&file[..], limit, &mut message) {
            Err(e) => assert_eq!(e.code(), case.expect, "{name}: {e}"),
            Ok((header, len)) => {
                assert_eq!(case.expect, "ok", "{name}: accepted");
                assert_eq!(header.triage.as_deref().map(b64), case.triage, "{name}");
                assert_eq!(
                    header.conversation.as_ref().map(|c| c.header_value()),
                    case.conversation,
                    "{name}"
                );
                assert_eq!(
                    header.touch.as_ref().map(ToString::to_string),
                    case.touch,
                    "{name}"
                );
                assert_eq!(Some(len), case.message_len, "{name}");
                assert_eq!(
                    Some(hex::encode(digest::digest(&digest::SHA256, &message))),
                    case.message_sha256,
                    "{name}"
                );
                // The writer writes exactly the file.
                let mut written = Vec::new();
                sealed_file::write(&mut written, &header, &message[..], len).expect("write");
                assert_eq!(written, file, "{name}: the writer's bytes");
            }
        }
    }
    // Every refusal the format has is pinned by at least one vector.
    for code in [
        "not_sealed_report",
        "unsupported_version",
        "truncated",
        "header_too_long",
        "crlf",
        "bad_line",
        "bad_triage",
        "bad_conversation",
        "bad_touch",
        "conversation_and_touch",
        "empty_message",
        "message_too_large",
    ] {
        assert!(codes.contains(code), "no vector for {code}");
    }
}

#[test]
fn a_sealed_report_file_opens_with_its_message_in_place() {
    let (_, case) = cases()
        .into_iter()
        .find(|(name, _)| name == "ok_first_report_with_triage_and_conversation.json")
        .expect("the first-report vector");
    let file = base64::engine::general_purpose::STANDARD
        .decode(&case.file_base64)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealed-0123abcd.bin");
    std::fs::write(&path, &file).unwrap();
    let opened = sealed_file::open(&path, MAX_MESSAGE_BYTES).expect("opens");
    assert_eq!(Some(opened.len), case.message_len);
    assert_eq!(opened.offset + opened.len, file.len() as u64);
    let header: SealedHeader = opened.header;
    assert_eq!(header.triage.as_deref().map(b64), case.triage);
}
