use std::collections::BTreeMap;

use super::*;
use crate::payload::{padded_length, write_payload};
use crate::testing::raw_tar;

/// Collects attachments (and a raw plaintext) in memory.
#[derive(Default)]
struct Collect(Vec<Vec<u8>>);

impl AttachmentSink for Collect {
    fn open(&mut self, _: usize, _: &Attachment) -> io::Result<Box<dyn Write + '_>> {
        self.0.push(Vec::new());
        let last = self.0.last_mut().expect("just pushed");
        Ok(Box::new(last))
    }

    fn raw(&mut self) -> io::Result<Box<dyn Write + '_>> {
        self.0.push(Vec::new());
        let last = self.0.last_mut().expect("just pushed");
        Ok(Box::new(last))
    }
}

fn sha(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

fn report(attachments: &[(&str, &[u8])]) -> Report {
    let mut fields = BTreeMap::new();
    fields.insert(
        "what_happened".to_string(),
        FieldValue::Choices(vec!["threat".into(), "surveillance".into()]),
    );
    fields.insert("region".to_string(), FieldValue::Text("Cusco".into()));
    Report {
        schema: SCHEMA.into(),
        language: "es".into(),
        urgent: true,
        sealed_by: Some("terminal".into()),
        fields,
        description: "Nos siguieron desde la asamblea.".into(),
        attachments: attachments
            .iter()
            .enumerate()
            .map(|(i, (name, data))| Attachment {
                name: name.to_string(),
                size: data.len() as u64,
                sha256: sha(data),
                media_type: "application/octet-stream".into(),
                path: attachment_path(i, name),
            })
            .collect(),
        conversation: None,
    }
}

fn payload(report: &Report, data: &[&[u8]]) -> Vec<u8> {
    let sources = data
        .iter()
        .map(|d| Box::new(*d) as AttachmentSource<'_>)
        .collect();
    write_payload(Vec::new(), report, sources).expect("write").0
}

fn read(bytes: &[u8]) -> (Result<Plaintext, PayloadError>, Vec<Vec<u8>>) {
    let mut sink = Collect::default();
    let result = read_plaintext(bytes, 1 << 30, &mut sink);
    (result, sink.0)
}

fn json(report: &Report) -> Vec<u8> {
    serde_json::to_vec(report).expect("json")
}

#[test]
fn round_trip_with_padding_to_the_bucket() {
    let a: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    let b = b"second file".to_vec();
    let r = report(&[("foto.jpg", &a), ("nota", &b)]);
    let bytes = payload(&r, &[&a, &b]);
    assert_eq!(bytes.len() as u64 % 512, 0);
    assert_eq!(bytes.len() as u64, padded_length(bytes.len() as u64));
    let (result, files) = read(&bytes);
    match result.expect("reads") {
        Plaintext::Report(read) => assert_eq!(read, r),
        Plaintext::Raw { .. } => panic!("read as raw"),
    }
    assert_eq!(files, vec![a, b]);
}

#[test]
fn small_reports_all_have_the_same_size() {
    let short = payload(&report(&[]), &[]);
    let mut long_report = report(&[]);
    long_report.description = "x".repeat(20_000);
    let long = payload(&long_report, &[]);
    assert_eq!(short.len(), long.len());
    assert_eq!(short.len() as u64, MIN_PADDED);
}

#[test]
fn text_that_is_not_an_archive_is_kept_raw() {
    let (result, collected) = read(b"a message someone encrypted with gpg");
    match result.expect("reads") {
        Plaintext::Raw { size } => assert_eq!(size, 36),
        Plaintext::Report(_) => panic!("not a report"),
    }
    assert_eq!(
        collected,
        vec![b"a message someone encrypted with gpg".to_vec()]
    );
    // Longer than one read: streamed through whole, not held.
    let long: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8 + 1).collect();
    let (result, collected) = read(&long);
    assert!(matches!(result, Ok(Plaintext::Raw { size: 300_000 })));
    assert_eq!(collected, vec![long]);
}

#[test]
fn bad_payloads_are_refused_with_the_reason() {
    let data = b"evidence".to_vec();
    let good = report(&[("a.pdf", &data)]);
    let good_json = json(&good);

    let mut lying_size = good.clone();
    lying_size.attachments[0].size = 5;
    let mut lying_hash = good.clone();
    lying_hash.attachments[0].sha256 = sha(b"something else");
    let mut traversal = good.clone();
    traversal.attachments[0].path = "files/../../etc/x".into();
    let mut absolute = good.clone();
    absolute.attachments[0].path = "/etc/passwd".into();
    let mut future = good.clone();
    future.schema = "resguardo.report/2".into();
    let mut bad_lang = good.clone();
    bad_lang.language = "es\u{1b}[31m".into();
    let mut too_big = good.clone();
    too_big.attachments[0].size = 1 << 40;

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty archive", vec![0u8; 1024], "report.json missing"),
        (
            "report.json missing",
            raw_tar(&[(b"files/001.pdf", b'0', &data)]),
            "report.json missing",
        ),
        (
            "traversal entry first",
            raw_tar(&[(b"../../evil", b'0', b"x")]),
            "report.json missing",
        ),
        (
            "malformed json",
            raw_tar(&[(b"report.json", b'0', b"{\"schema\": ")]),
            "report.json invalid",
        ),
        (
            "unknown key",
            raw_tar(&[(
                b"report.json",
                b'0',
                &[&good_json[..good_json.len() - 1], b",\"extra\":1}"].concat(),
            )]),
            "report.json invalid",
        ),
        (
            "future schema",
            raw_tar(&[(b"report.json", b'0', &json(&future))]),
            "report.json invalid",
        ),
        (
            "control chars in language",
            raw_tar(&[(b"report.json", b'0', &json(&bad_lang))]),
            "report.json invalid",
        ),
        (
            "report.json is a symlink",
            raw_tar(&[(b"report.json", b'2', b"")]),
            "report.json invalid",
        ),
        (
            "size lie",
            raw_tar(&[
                (b"report.json", b'0', &json(&lying_size)),
                (b"files/001.pdf", b'0', &data),
            ]),
            "attachment does not match its report",
        ),
        (
            "hash lie",
            raw_tar(&[
                (b"report.json", b'0', &json(&lying_hash)),
                (b"files/001.pdf", b'0', &data),
            ]),
            "attachment does not match its report",
        ),
        (
            "traversal path in report",
            raw_tar(&[
                (b"report.json", b'0', &json(&traversal)),
                (b"files/../../etc/x", b'0', &data),
            ]),
            "report.json invalid",
        ),
        (
            "absolute path in report",
            raw_tar(&[
                (b"report.json", b'0', &json(&absolute)),
                (b"/etc/passwd", b'0', &data),
            ]),
            "report.json invalid",
        ),
        (
            "absolute path entry",
            raw_tar(&[
                (b"report.json", b'0', &good_json),
                (b"/etc/passwd", b'0', &data),
            ]),
            "attachment does not match its report",
        ),
        (
            "attachment is a symlink",
            raw_tar(&[
                (b"report.json", b'0', &good_json),
                (b"files/001.pdf", b'2', b""),
            ]),
            "attachment does not match its report",
        ),
        (
            "attachment missing",
            raw_tar(&[(b"report.json", b'0', &good_json)]),
            "attachment does not match its report",
        ),
        (
            "extra entry",
            raw_tar(&[
                (b"report.json", b'0', &good_json),
                (b"files/001.pdf", b'0', &data),
                (b"padding", b'0', &[0u8; 512]),
                (b"surprise.sh", b'0', b"rm -rf ~"),
            ]),
            "unexpected archive entry",
        ),
        (
            "entry instead of padding",
            raw_tar(&[
                (b"report.json", b'0', &good_json),
                (b"files/001.pdf", b'0', &data),
                (b"../padding", b'0', &[0u8; 512]),
            ]),
            "unexpected archive entry",
        ),
        (
            "claims more than the bound",
            raw_tar(&[(b"report.json", b'0', &json(&too_big))]),
            "payload over its bound",
        ),
    ];
    for (name, bytes, reason) in cases {
        let (result, _) = read(&bytes);
        match result {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => assert_eq!(e.reason(), reason, "{name}: {e}"),
        }
    }
}

#[test]
fn truncation_and_trailing_garbage_are_refused() {
    let data = vec![9u8; 5000];
    let bytes = payload(&report(&[("a.bin", &data)]), &[&data]);
    for cut in [600, 1500, 3000, 6000] {
        let (result, _) = read(&bytes[..cut]);
        assert!(result.is_err(), "cut at {cut} accepted");
    }
    let mut garbage = bytes.clone();
    garbage.extend_from_slice(b"trailing");
    let (result, _) = read(&garbage);
    assert_eq!(
        result.expect_err("garbage").reason(),
        "unexpected archive entry"
    );
}

#[test]
fn an_expanding_payload_stops_at_the_bound() {
    // A small report with a huge padding entry, as a decompression bomb would produce.
    let huge = vec![0u8; 3 * 1024 * 1024];
    let bytes = raw_tar(&[
        (b"report.json", b'0', &json(&report(&[]))),
        (b"padding", b'0', &huge),
    ]);
    let mut sink = Collect::default();
    let result = read_plaintext(&bytes[..], 1024 * 1024, &mut sink);
    assert_eq!(
        result.expect_err("bounded").reason(),
        "payload over its bound"
    );
    // Raw input is bounded the same way.
    let text = vec![b'a'; 3 * 1024 * 1024];
    let result = read_plaintext(&text[..], 1024 * 1024, &mut sink);
    assert_eq!(
        result.expect_err("bounded").reason(),
        "payload over its bound"
    );
}

#[test]
fn the_urgency_answer_has_three_values_and_nothing_else() {
    let mut r = report(&[]);
    r.urgent = false;
    assert_eq!(r.urgency(), Urgency::Unanswered);
    r.urgent = true;
    assert_eq!(
        r.urgency(),
        Urgency::Yes,
        "older clients: top-level flag only"
    );
    r.fields
        .insert(URGENT_FIELD.into(), FieldValue::Text("no".into()));
    assert_eq!(r.urgency(), Urgency::Yes, "a contradiction reads as urgent");
    r.urgent = false;
    assert_eq!(r.urgency(), Urgency::No);
    r.fields
        .insert(URGENT_FIELD.into(), FieldValue::Text("yes".into()));
    assert_eq!(r.urgency(), Urgency::Yes);
    let (result, _) = read(&payload(&r, &[]));
    assert!(matches!(result, Ok(Plaintext::Report(_))));

    for bad in [
        FieldValue::Text("maybe".into()),
        FieldValue::Text("".into()),
        FieldValue::Choices(vec!["yes".into()]),
    ] {
        r.fields.insert(URGENT_FIELD.into(), bad.clone());
        let (result, _) = read(&payload(&r, &[]));
        assert_eq!(
            result.expect_err("refused").reason(),
            "report.json invalid",
            "{bad:?}"
        );
    }
}
