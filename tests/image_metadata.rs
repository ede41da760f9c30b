//! Metadata removed from pictures everywhere, not only in the browser: the shared vectors
//! (`tests/vectors/images/`, also run by `tests/browser/image-metadata.test.mjs`) through
//! `resguardo::metadata`, then a GPS-canary photo through the form without JavaScript and through
//! `resguardo-submit`, opened by a reviewer: no canary, orientation kept; pictures that cannot be
//! cleaned are refused unless the reporter says "send anyway", and nothing is stored for them.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use resguardo::metadata::{clean, verify_clean, Cleaning};
use serde_json::Value;

use crate::common::*;

fn vectors() -> Vec<(String, Value)> {
    let dir = repo().join("tests/vectors/images");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("the image vectors")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_stem().expect("name").to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).expect("read");
            (name, serde_json::from_str(&text).expect("json"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn input_of(vector: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(vector["input_base64"].as_str().expect("input"))
        .expect("base64")
}

fn vector_input(name: &str) -> Vec<u8> {
    let (_, v) = vectors()
        .into_iter()
        .find(|(n, _)| n == name)
        .expect("the vector");
    input_of(&v)
}

fn canaries_of(vector: &Value) -> Vec<String> {
    vector["canaries"]
        .as_array()
        .expect("canaries")
        .iter()
        .map(|c| c.as_str().expect("text").to_string())
        .collect()
}

/// The picture itself (the scan of a JPEG, the IDATs of a PNG, the image chunks of a WebP), as
/// the JavaScript test reads it: it must come out of cleaning byte for byte.
fn image_data(kind: &str, b: &[u8]) -> Vec<u8> {
    let find = |from: usize, pat: &[u8]| {
        b[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|p| p + from)
    };
    match kind {
        "jpeg" => {
            let sos = find(0, &[0xff, 0xda]).expect("a scan");
            let eoi = find(sos, &[0xff, 0xd9]).unwrap_or(b.len());
            b[sos..eoi].to_vec()
        }
        "png" => {
            let mut out = Vec::new();
            let mut i = 8;
            while i + 12 <= b.len() {
                let len = u32::from_be_bytes(b[i..i + 4].try_into().expect("4")) as usize;
                if &b[i + 4..i + 8] == b"IDAT" {
                    out.extend_from_slice(&b[i + 8..i + 8 + len]);
                }
                i += 12 + len;
            }
            out
        }
        _ => {
            let mut out = Vec::new();
            let mut i = 12;
            while i + 8 <= b.len() {
                let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().expect("4")) as usize;
                if [&b"ALPH"[..], b"VP8 ", b"VP8L", b"ANMF"].contains(&&b[i..i + 4]) {
                    out.extend_from_slice(&b[i + 8..i + 8 + len]);
                }
                i += 8 + len + (len & 1);
            }
            out
        }
    }
}

#[test]
fn image_vectors_clean_as_the_page_does() {
    let all = vectors();
    assert!(all.len() >= 20, "{} vectors", all.len());
    for (name, v) in &all {
        let input = input_of(v);
        let canaries = canaries_of(v);
        for canary in &canaries {
            assert!(
                contains(&input, canary.as_bytes()),
                "{name}: the input lacks {canary}"
            );
        }
        let expect = &v["expect"];
        let kind = expect["kind"].as_str().expect("kind");
        match clean(&input) {
            Cleaning::Cleaned {
                kind: got,
                bytes,
                orientation,
            } => {
                assert!(name.starts_with("ok_"), "{name}: cleaned");
                assert_eq!(expect["outcome"], "cleaned", "{name}");
                assert_eq!(format!("{got:?}").to_ascii_lowercase(), kind, "{name}");
                assert_eq!(
                    orientation.map(u64::from),
                    expect["orientation"].as_u64(),
                    "{name}"
                );
                assert_eq!(bytes.len() as u64, expect["output_length"], "{name}");
                assert_eq!(
                    hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes)),
                    expect["output_sha256"].as_str().expect("sha"),
                    "{name}: not the bytes the page makes"
                );
                for canary in &canaries {
                    assert!(
                        !contains(&bytes, canary.as_bytes()),
                        "{name}: {canary} left"
                    );
                }
                assert_eq!(
                    image_data(kind, &bytes),
                    image_data(kind, &input),
                    "{name}: the picture changed"
                );
                assert_eq!(verify_clean(&bytes), Some(orientation), "{name}");
                assert!(
                    matches!(clean(&bytes), Cleaning::Cleaned { bytes: again, .. } if again == bytes),
                    "{name}: cleaning twice changes it"
                );
            }
            Cleaning::NotCleaned { kind: got, .. } => {
                assert!(name.starts_with("fail_"), "{name}: not cleaned");
                assert_eq!(expect["outcome"], "not_cleaned", "{name}");
                assert_eq!(format!("{got:?}").to_ascii_lowercase(), kind, "{name}");
                assert_eq!(verify_clean(&input), None, "{name}");
            }
            Cleaning::Plain => panic!("{name}: plain text"),
        }
    }
}

/// The GPS-canary photo, and its canaries.
fn gps_photo() -> (Vec<u8>, Vec<String>) {
    let (_, v) = vectors()
        .into_iter()
        .find(|(n, _)| n == "ok_jpeg_everything_orientation_6")
        .expect("the vector");
    (input_of(&v), canaries_of(&v))
}

/// Opens everything the gateway holds as demo reviewer 1; returns every file opened.
fn open_all(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let bundle = dir.join("bundle.tar");
    let exported = export(&dir.join("data"), &bundle);
    assert_eq!(exported.len(), 1, "exactly one report stored");
    let out = dir.join("opened");
    let o = open_as_demo_reviewer(&bundle, &out);
    assert!(o.status.success(), "open: {}", stderr(&o));
    all_files(&out)
}

/// The opened picture: it keeps its orientation, and none of the canaries is anywhere.
fn assert_opened_clean(opened: &[(std::path::PathBuf, Vec<u8>)], canaries: &[String]) {
    let pictures: Vec<_> = opened
        .iter()
        .filter(|(_, b)| b.starts_with(&[0xff, 0xd8]))
        .collect();
    assert_eq!(pictures.len(), 1, "one picture opened");
    let (path, picture) = pictures[0];
    assert_eq!(
        verify_clean(picture),
        Some(Some(6)),
        "{}: clean, orientation 6",
        path.display()
    );
    let name = path.file_name().expect("name").to_string_lossy();
    assert!(name.ends_with(".jpg"), "{name}");
    for (path, bytes) in opened {
        for canary in canaries {
            assert!(
                !contains(bytes, canary.as_bytes()),
                "{canary} in {}",
                path.display()
            );
        }
    }
}

fn scan_data_dir(dir: &Path, canaries: &[String]) {
    for (path, bytes) in all_files(&dir.join("data")) {
        for canary in canaries {
            assert!(
                !contains(&bytes, canary.as_bytes()),
                "{canary} in {}",
                path.display()
            );
        }
    }
}

fn form_parts<'a>(
    file_name: &'a str,
    file: &'a [u8],
    consent: bool,
) -> Vec<(&'a str, Option<&'a str>, &'a [u8])> {
    let mut parts = vec![
        ("language", None, &b"en"[..]),
        ("what_happened", None, b"threat"),
        ("region", None, b"puno"),
        ("urgent", None, b"no"),
        ("description", None, b"CanaryTypedText amenaza"),
        ("attachments", Some(file_name), file),
    ];
    if consent {
        parts.push(("send_with_metadata", None, b"yes"));
    }
    parts
}

const FORM_CONFIG: &str = "[limits]\nmax_submission_bytes = 1048576\n[form]\ntoken_min_age_secs = 0\nmax_post_bytes = 1048576\nposts_per_minute = 600\npost_burst = 100\n";

fn post_form(gateway: &Gateway, body: &[u8]) -> (u16, String) {
    post_raw(
        gateway,
        &format!("/submit?t={}", form_token(&gateway.url)),
        body,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
    )
}

#[test]
fn a_gps_photo_posted_without_javascript_opens_clean_and_upright() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(dir.path(), "plain-http", FORM_CONFIG);
    let (photo, canaries) = gps_photo();
    let heic = vector_input("fail_heic_photo");

    // A HEIC photo, not ticked: refused, named with what may remain, typed text kept, nothing
    // stored.
    let (status, html) = post_form(
        &gateway,
        &multipart(&form_parts("IMG_0042.HEIC", &heic, false)),
    );
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("IMG_0042.HEIC"), "the file is named: {html}");
    assert!(html.contains("GPS"), "what may remain is named: {html}");
    assert!(
        html.contains("CanaryTypedText"),
        "what was typed comes back"
    );
    // A damaged JPEG, not ticked: refused too.
    let damaged = vector_input("fail_jpeg_segment_past_the_end");
    let (status, html) = post_form(
        &gateway,
        &multipart(&form_parts("foto.jpg", &damaged, false)),
    );
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("foto.jpg"), "{html}");

    // The GPS photo: cleaned on arrival.
    let (status, html) = post_form(
        &gateway,
        &multipart(&form_parts("IMG_20261120_101112.jpg", &photo, false)),
    );
    assert_eq!(status, 200, "{html}");
    let logs = gateway.stop();
    for canary in &canaries {
        assert!(!logs.contains(canary.as_str()), "{canary} in the log");
    }
    assert!(
        !logs.contains("IMG_0042") && !logs.contains("IMG_2026"),
        "{logs}"
    );
    scan_data_dir(dir.path(), &canaries);
    let opened = open_all(dir.path());
    assert_opened_clean(&opened, &canaries);
    // The photo's name said when it was taken: it goes under a neutral one.
    for (path, bytes) in &opened {
        assert!(
            !contains(bytes, b"IMG_20261120") && !path.display().to_string().contains("IMG_2026"),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_photo_that_cannot_be_cleaned_goes_without_javascript_only_when_ticked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(dir.path(), "plain-http", FORM_CONFIG);
    let heic = vector_input("fail_heic_photo");
    let (status, html) = post_form(
        &gateway,
        &multipart(&form_parts("IMG_0042.HEIC", &heic, true)),
    );
    assert_eq!(status, 200, "{html}");
    gateway.stop();
    let opened = open_all(dir.path());
    assert!(
        opened.iter().any(|(_, b)| *b == heic),
        "sent as it is, as the reporter chose"
    );
}

fn submit(gateway: &Gateway, dir: &Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    let message = dir.join("message.txt");
    std::fs::write(&message, "Nos amenazaron en la plaza.").expect("write");
    run(Command::new(submit_bin())
        .args(["--server", &gateway.url, "--no-replies", "--message"])
        .arg(&message)
        .args(args))
}

#[test]
fn resguardo_submit_cleans_photos_and_refuses_what_it_cannot_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    let (photo, canaries) = gps_photo();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).expect("mkdir");
    let photo_path = files.join("IMG_20261120_101112.jpg");
    std::fs::write(&photo_path, &photo).expect("write");
    let heic_path = files.join("IMG_0042.HEIC");
    std::fs::write(&heic_path, vector_input("fail_heic_photo")).expect("write");
    let pdf_path = repo().join("tests/fixtures/acta.pdf");

    // Without --send-with-metadata, a HEIC or a PDF stops everything: exit 3, one line naming
    // the file and what may remain, nothing sent.
    for (path, remains) in [(&heic_path, "GPS"), (&pdf_path, "author")] {
        let out = submit(
            &gateway,
            dir.path(),
            &[
                "--attach".as_ref(),
                photo_path.as_os_str(),
                "--attach".as_ref(),
                path.as_os_str(),
            ],
        );
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(remains), "{err}");
        assert!(err.contains("--send-with-metadata"), "{err}");
    }
    // Naming a file not attached is an error too.
    let out = submit(
        &gateway,
        dir.path(),
        &["--send-with-metadata".as_ref(), heic_path.as_os_str()],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // The photo alone: cleaned, and said so.
    let out = submit(
        &gateway,
        dir.path(),
        &["--attach".as_ref(), photo_path.as_os_str()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("metadata removed (orientation kept)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&photo_path).expect("read"),
        photo,
        "the reporter's file is untouched"
    );
    gateway.stop();
    scan_data_dir(dir.path(), &canaries);
    let opened = open_all(dir.path());
    assert_opened_clean(&opened, &canaries);
}

#[test]
fn resguardo_submit_sends_a_file_as_it_is_when_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    let heic = vector_input("fail_heic_photo");
    let heic_path = dir.path().join("IMG_0042.HEIC");
    std::fs::write(&heic_path, &heic).expect("write");
    let out = submit(
        &gateway,
        dir.path(),
        &[
            "--attach".as_ref(),
            heic_path.as_os_str(),
            "--send-with-metadata".as_ref(),
            heic_path.as_os_str(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("WITH its metadata"),
        "{}",
        stderr(&out)
    );
    gateway.stop();
    let opened = open_all(dir.path());
    assert!(opened.iter().any(|(_, b)| *b == heic));
}

/// The `metadata` fuzz target's seeds and findings (`fuzz/seeds/metadata`,
/// `fuzz/regressions/metadata`), with its checks, on stable Rust in every run.
#[test]
fn fuzz_inputs_of_the_metadata_cleaner() {
    let mut inputs = Vec::new();
    for dir in ["fuzz/seeds/metadata", "fuzz/regressions/metadata"] {
        let Ok(entries) = std::fs::read_dir(repo().join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            inputs.push((
                path.display().to_string(),
                std::fs::read(&path).expect("read"),
            ));
        }
    }
    assert!(inputs.len() >= 20, "the seeds are the image vectors");
    for (name, data) in inputs {
        if let Cleaning::Cleaned {
            bytes, orientation, ..
        } = clean(&data)
        {
            assert_eq!(verify_clean(&bytes), Some(orientation), "{name}");
            assert!(bytes.len() <= data.len() + 64, "{name}");
            assert!(
                matches!(clean(&bytes), Cleaning::Cleaned { bytes: again, .. } if again == bytes),
                "{name}"
            );
        }
    }
}
