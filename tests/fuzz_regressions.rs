//! Replays the fuzzers' seeds and every past finding (fuzz/seeds/, fuzz/regressions/) through the
//! parsers that face attacker input, with the same checks as the fuzz targets, on stable
//! Rust, in every test run.

use std::io::Read;
use std::path::Path;

use crate::common::*;
use resguardo::payload::read::{read_plaintext, Plaintext};
use resguardo::testing::CountingSink;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["fuzz/seeds", "fuzz/regressions"] {
        let dir = repo().join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            out.push((display(&path), std::fs::read(&path).expect("read")));
        }
    }
    out
}

fn display(p: &Path) -> String {
    p.strip_prefix(repo()).unwrap_or(p).display().to_string()
}

#[test]
fn envelope_inputs() {
    let recipients = demo_keyring().recipient_set();
    let inputs = inputs("envelope");
    assert!(inputs.len() >= 8);
    let mut accepted = 0;
    for (name, data) in inputs {
        let mut sink = Vec::new();
        if resguardo::envelope::check(&data[..], &recipients, &mut sink).is_ok() {
            accepted += 1;
            let mut again = Vec::new();
            resguardo::envelope::check(&sink[..], &recipients, &mut again)
                .unwrap_or_else(|e| panic!("{name}: stored form refused: {e}"));
        }
    }
    assert!(accepted >= 2, "the valid seeds are accepted");
}

#[test]
fn bundle_inputs() {
    for (name, data) in inputs("bundle") {
        let _ = resguardo::bundle::read_manifest(&data[..]);
        let mut seen = 0;
        let result = resguardo::bundle::read_bundle(&data[..], |_, entry, reader| {
            seen += 1;
            let mut buf = Vec::new();
            let _ = reader.read_to_end(&mut buf);
            assert!(buf.len() as u64 <= entry.size, "{name}");
            let _ = reader.finish();
        });
        if let Ok(manifest) = result {
            assert_eq!(seen, manifest.submissions.len(), "{name}");
        }
    }
}

#[test]
fn payload_inputs() {
    let mut reports = 0;
    for (name, data) in inputs("payload") {
        let mut sink = CountingSink::default();
        match read_plaintext(&data[..], 1 << 20, &mut sink) {
            Ok(Plaintext::Report(report)) => {
                reports += 1;
                let sizes: Vec<u64> = report.attachments.iter().map(|a| a.size).collect();
                assert_eq!(sink.0, sizes, "{name}");
            }
            Ok(Plaintext::Raw { size }) => {
                assert!(size <= 1 << 20, "{name}");
                assert_eq!(sink.0, vec![size], "{name}");
            }
            Err(_) => {}
        }
    }
    assert!(reports >= 2, "the valid seeds read as reports");
}

#[test]
fn sealed_report_inputs() {
    let inputs = inputs("sealed_report");
    assert!(
        inputs.len() >= 20,
        "the seeds are the sealed report vectors"
    );
    let mut accepted = 0;
    for (name, data) in inputs {
        let mut message = Vec::new();
        if let Ok((header, len)) = resguardo::sealed_file::read(&data[..], u64::MAX, &mut message) {
            accepted += 1;
            let mut written = Vec::new();
            resguardo::sealed_file::write(&mut written, &header, &message[..], len)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(written, data, "{name}: written back byte for byte");
        }
    }
    assert!(accepted >= 5, "the valid seeds are accepted");
}
