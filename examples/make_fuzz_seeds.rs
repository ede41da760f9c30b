//! Writes the fuzzers' seed corpora into `fuzz/seeds/<target>/`:
//! `cargo run --example make_fuzz_seeds --features test-support`.
//!
//! Seeds are small valid inputs plus near misses, so the fuzzers start from the formats' real
//! shapes instead of from nothing.

use std::path::Path;

use resguardo::keyring::KeyProfile;
use resguardo::payload::{self, Attachment, FieldValue, Report};
use resguardo::testing;
use ring::digest;
use sequoia_openpgp::parse::Parse;

fn sha(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join(name), bytes).expect("write");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("keys-example");
    let demo1 =
        sequoia_openpgp::Cert::from_file(keys.join("demo-reviewer-1.pub.asc")).expect("cert");
    let demo2 =
        sequoia_openpgp::Cert::from_file(keys.join("demo-reviewer-2.pub.asc")).expect("cert");
    let modern = testing::reviewer_key("modern", KeyProfile::Rfc9580);

    // Envelope: accepted and refused shapes.
    let env = root.join("envelope");
    let sealed = testing::seal(&[&demo1, &demo2], b"seed report");
    write(&env, "sealed", &sealed);
    write(
        &env,
        "sealed-armored",
        &testing::seal_armored(&[&demo1], b"seed"),
    );
    write(&env, "seipd-v2", &testing::seal(&[&modern], b"seed"));
    write(&env, "literal", &testing::literal(b"plain"));
    write(&env, "compressed", &testing::compressed(b"plain"));
    write(
        &env,
        "password",
        &testing::seal_with_password(&[&demo1], b"x"),
    );
    write(&env, "hidden", &testing::hide_recipients(&sealed));
    write(&env, "truncated", &sealed[..sealed.len() / 2]);

    // Payload: a full payload v1 and a raw text.
    let attachment = b"attachment bytes";
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("region".to_string(), FieldValue::Text("cusco".into()));
    fields.insert(
        "what_happened".to_string(),
        FieldValue::Choices(vec!["threat".into()]),
    );
    let report = Report {
        schema: payload::SCHEMA.into(),
        language: "es".into(),
        urgent: true,
        sealed_by: Some("browser".into()),
        fields,
        description: "semilla".into(),
        attachments: vec![Attachment {
            name: "a.txt".into(),
            size: attachment.len() as u64,
            sha256: sha(attachment),
            media_type: "text/plain".into(),
            path: "files/001.txt".into(),
        }],
        conversation: None,
    };
    let (plain, _) = payload::write_payload(Vec::new(), &report, vec![Box::new(&attachment[..])])
        .expect("payload");
    // The padding makes the seed large; the fuzzer mutates a compact version better.
    let compact = testing::raw_tar(&[
        (
            b"report.json",
            b'0',
            &serde_json::to_vec(&report).expect("json"),
        ),
        (b"files/001.txt", b'0', attachment),
    ]);
    let pay = root.join("payload");
    write(&pay, "payload-v1-padded", &plain);
    write(&pay, "payload-v1-compact", &compact);
    write(&pay, "raw-text", b"a message encrypted by hand");

    // Bundle: two submissions.
    let messages = [sealed.clone(), testing::seal(&[&demo1], b"second")];
    let (bytes, _) = testing::write_bundle_of(Vec::new(), &messages);
    let bun = root.join("bundle");
    write(&bun, "two-submissions", &bytes);
    println!("seeds written to {}", root.display());
}
