//! Writes the sealed report vectors (`tests/vectors/sealed-reports/`, see its README) and the
//! seeds of the `sealed_report` fuzzer (`fuzz/seeds/sealed_report/`):
//! `cargo run --example make_sealed_report_vectors`.
//!
//! The outcome of each vector is written here by hand, not taken from the reader: the two
//! readers (`src/sealed_file.rs`, `static/js/sealed.js`) are then checked against it. The bytes are
//! the same at every run.

use std::path::Path;

use base64::Engine as _;
use resguardo::replies::{Locator, NewConversation, BOX_BYTES};
use resguardo::sealed_file::{SealedHeader, FORMAT, MAX_HEADER_BYTES};
use ring::digest;
use serde_json::json;

/// Deterministic bytes (a linear congruential generator), starting with an OpenPGP-like tag.
fn bytes(seed: u32, n: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut out: Vec<u8> = (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as u8
        })
        .collect();
    if let Some(first) = out.first_mut() {
        *first = 0xc1;
    }
    out
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn conversation(seed: u32) -> NewConversation {
    let mut locator = [0u8; 32];
    locator.copy_from_slice(&bytes(seed, 32));
    NewConversation {
        locator: Locator(locator),
        sealed_box: bytes(seed + 1, BOX_BYTES),
    }
}

fn file(header: &SealedHeader, message: &[u8]) -> Vec<u8> {
    let mut out = header.to_bytes().expect("a valid header");
    out.extend_from_slice(message);
    out
}

struct Out<'a> {
    vectors: &'a Path,
    seeds: &'a Path,
}

impl Out<'_> {
    fn ok(&self, name: &str, about: &str, header: &SealedHeader, message: &[u8], max: Option<u64>) {
        let data = file(header, message);
        let mut v = json!({
            "about": about,
            "file_base64": b64(&data),
            "expect": "ok",
            "triage": header.triage.as_deref().map(b64),
            "conversation": header.conversation.as_ref().map(NewConversation::header_value),
            "touch": header.touch.as_ref().map(Locator::to_string),
            "message_len": message.len(),
            "message_sha256": hex::encode(digest::digest(&digest::SHA256, message)),
        });
        if let Some(max) = max {
            v["max_message"] = json!(max);
        }
        self.write(name, &v, &data);
    }

    fn fail(&self, name: &str, about: &str, data: &[u8], code: &str, max: Option<u64>) {
        let mut v = json!({ "about": about, "file_base64": b64(data), "expect": code });
        if let Some(max) = max {
            v["max_message"] = json!(max);
        }
        self.write(name, &v, data);
    }

    fn write(&self, name: &str, v: &serde_json::Value, data: &[u8]) {
        let text = serde_json::to_string_pretty(v).expect("json") + "\n";
        std::fs::write(self.vectors.join(format!("{name}.json")), text).expect("write vector");
        std::fs::write(self.seeds.join(name), data).expect("write seed");
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let vectors = root.join("tests/vectors/sealed-reports");
    let seeds = root.join("fuzz/seeds/sealed_report");
    std::fs::create_dir_all(&vectors).expect("mkdir");
    std::fs::create_dir_all(&seeds).expect("mkdir");
    let out = Out {
        vectors: &vectors,
        seeds: &seeds,
    };
    let message = bytes(1, 300);
    let first = SealedHeader {
        triage: Some(bytes(2, 698)),
        conversation: Some(conversation(3)),
        touch: None,
    };
    let follow_up = SealedHeader {
        triage: Some(bytes(4, 698)),
        conversation: None,
        touch: Some(conversation(5).locator),
    };
    let bare = SealedHeader::default();
    let good = file(&first, &message);
    let text = |s: &str| -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.extend_from_slice(&message);
        v
    };
    let triage_line = format!("triage: {}\n", b64(first.triage.as_deref().unwrap()));
    let conversation_line = format!(
        "conversation: {}\n",
        first.conversation.as_ref().unwrap().header_value()
    );

    // Accepted.
    out.ok(
        "ok_first_report_with_triage_and_conversation",
        "a first report as the page seals it: triage envelope, a conversation to start",
        &first,
        &message,
        None,
    );
    out.ok(
        "ok_follow_up_touches_its_conversation",
        "a follow-up: triage envelope and the locator of the conversation it continues",
        &follow_up,
        &message,
        None,
    );
    out.ok(
        "ok_nothing_beside_a_one_byte_message",
        "no triage, no conversation; the smallest message (the gateway's check decides the rest)",
        &bare,
        &[0xc1],
        None,
    );
    out.ok(
        "ok_message_exactly_at_the_limit",
        "a message of exactly the reader's limit",
        &bare,
        &message,
        Some(message.len() as u64),
    );
    let mut blank_start = b"\n\nresguardo.sealed-report/1\n".to_vec();
    blank_start.extend_from_slice(&message);
    out.ok(
        "ok_message_beginning_with_blank_lines_is_the_message",
        "the header ends at its first blank line: what follows is the message, whatever it is",
        &bare,
        &blank_start,
        None,
    );
    out.ok(
        "ok_largest_triage_envelope",
        "a triage envelope of the largest size the gateway reads (6144 bytes)",
        &SealedHeader {
            triage: Some(bytes(6, resguardo::triage::MAX_SEALED_BYTES)),
            ..SealedHeader::default()
        },
        &message,
        None,
    );

    // Refused: what the file is.
    out.fail(
        "fail_not_sealed_report_openpgp_message",
        "a bare OpenPGP message (what --sealed took before this format)",
        &message,
        "not_sealed_report",
        None,
    );
    out.fail(
        "fail_not_sealed_report_armored_message",
        "an armored OpenPGP message",
        b"-----BEGIN PGP MESSAGE-----\n\nwcBMA...\n-----END PGP MESSAGE-----\n",
        "not_sealed_report",
        None,
    );
    out.fail(
        "fail_not_sealed_report_short_line",
        "a first line that ends before the format's name could",
        b"resguardo.sealed\n",
        "not_sealed_report",
        None,
    );
    out.fail(
        "fail_unsupported_version_2",
        "a later version of the format",
        &text("resguardo.sealed-report/2\ntriage: -\nconversation: -\ntouch: -\n\n"),
        "unsupported_version",
        None,
    );
    out.fail(
        "fail_unsupported_version_trailing_space",
        "the first line must be the format's name exactly",
        &text("resguardo.sealed-report/1 \ntriage: -\nconversation: -\ntouch: -\n\n"),
        "unsupported_version",
        None,
    );
    // Cut short.
    out.fail(
        "fail_truncated_empty_file",
        "an empty file (a save that failed)",
        b"",
        "truncated",
        None,
    );
    out.fail(
        "fail_truncated_in_the_first_line",
        "cut inside the format's name",
        b"resguardo.sealed-rep",
        "truncated",
        None,
    );
    let in_conversation = FORMAT.len() + 1 + triage_line.len() + 100;
    out.fail(
        "fail_truncated_in_the_conversation_line",
        "cut inside the conversation line",
        &good[..in_conversation],
        "truncated",
        None,
    );
    let head_len = first.to_bytes().unwrap().len();
    out.fail(
        "fail_truncated_before_the_blank_line",
        "the header's lines, without the blank line that ends it",
        &good[..head_len - 1],
        "truncated",
        None,
    );
    let mut long = format!("{FORMAT}\ntriage: ").into_bytes();
    long.resize(MAX_HEADER_BYTES + 1000, b'A');
    out.fail(
        "fail_header_too_long",
        "no end of the header within 16 KiB: the reader stops there, it does not read on",
        &long,
        "header_too_long",
        None,
    );
    // Altered as text.
    out.fail(
        "fail_crlf_line_ends",
        "CR LF line ends (a transfer in text mode)",
        &text("resguardo.sealed-report/1\r\ntriage: -\r\nconversation: -\r\ntouch: -\r\n\r\n"),
        "crlf",
        None,
    );
    out.fail(
        "fail_crlf_in_a_later_line",
        "a carriage return at the end of the touch line",
        &text("resguardo.sealed-report/1\ntriage: -\nconversation: -\ntouch: -\r\n\n"),
        "crlf",
        None,
    );
    // Lines.
    out.fail(
        "fail_bad_line_out_of_order",
        "the conversation line before the triage line",
        &text(&format!(
            "{FORMAT}\n{conversation_line}{triage_line}touch: -\n\n"
        )),
        "bad_line",
        None,
    );
    out.fail(
        "fail_bad_line_no_space_after_colon",
        "`triage:-`: the name, a colon and one space",
        &text(&format!(
            "{FORMAT}\ntriage:-\nconversation: -\ntouch: -\n\n"
        )),
        "bad_line",
        None,
    );
    out.fail(
        "fail_bad_line_capitalised_name",
        "names are lower case",
        &text(&format!(
            "{FORMAT}\nTriage: -\nconversation: -\ntouch: -\n\n"
        )),
        "bad_line",
        None,
    );
    out.fail(
        "fail_bad_line_missing_touch_line",
        "three lines only: the blank line comes where the touch line must",
        &text(&format!("{FORMAT}\ntriage: -\nconversation: -\n\n")),
        "bad_line",
        None,
    );
    out.fail(
        "fail_bad_line_extra_line",
        "a fifth line where the blank line must be",
        &text(&format!(
            "{FORMAT}\ntriage: -\nconversation: -\ntouch: -\nname: report.mp4\n\n"
        )),
        "bad_line",
        None,
    );
    // Values.
    let triage = b64(first.triage.as_deref().unwrap());
    let mut trailing_bits = triage.clone().into_bytes();
    // 698 bytes: the last group is 3 characters and one `=`; the last character's 2 low bits
    // are unused, and setting the lowest makes the text non-canonical.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let last = trailing_bits.len() - 2;
    let index = ALPHABET
        .iter()
        .position(|&c| c == trailing_bits[last])
        .unwrap();
    trailing_bits[last] = ALPHABET[index ^ 1];
    let cases: [(&str, &str, String); 4] = [
        (
            "fail_bad_triage_not_canonical_base64",
            "base64 whose unused bits are not zero",
            String::from_utf8(trailing_bits).unwrap(),
        ),
        (
            "fail_bad_triage_unpadded",
            "base64 without its padding",
            triage.trim_end_matches('=').to_string(),
        ),
        (
            "fail_bad_triage_empty",
            "an empty value (absent is `-`)",
            String::new(),
        ),
        (
            "fail_bad_triage_too_large",
            "an envelope one byte over 6144",
            b64(&bytes(7, resguardo::triage::MAX_SEALED_BYTES + 1)),
        ),
    ];
    for (name, about, value) in cases {
        out.fail(
            name,
            about,
            &text(&format!(
                "{FORMAT}\ntriage: {value}\nconversation: -\ntouch: -\n\n"
            )),
            "bad_triage",
            None,
        );
    }
    let conversation_value = first.conversation.as_ref().unwrap().header_value();
    out.fail(
        "fail_bad_conversation_short",
        "a conversation value missing its last 4 characters",
        &text(&format!(
            "{FORMAT}\ntriage: -\nconversation: {}\ntouch: -\n\n",
            &conversation_value[..conversation_value.len() - 4]
        )),
        "bad_conversation",
        None,
    );
    out.fail(
        "fail_bad_touch_upper_case_hex",
        "a locator in upper-case hex",
        &text(&format!(
            "{FORMAT}\ntriage: -\nconversation: -\ntouch: {}\n\n",
            follow_up.touch.unwrap().to_string().to_uppercase()
        )),
        "bad_touch",
        None,
    );
    out.fail(
        "fail_conversation_and_touch",
        "both a conversation to start and one to continue",
        &text(&format!(
            "{FORMAT}\ntriage: -\n{conversation_line}touch: {}\n\n",
            follow_up.touch.unwrap()
        )),
        "conversation_and_touch",
        None,
    );
    // The message.
    out.fail(
        "fail_empty_message",
        "a header and nothing after it",
        &first.to_bytes().unwrap(),
        "empty_message",
        None,
    );
    out.fail(
        "fail_message_too_large",
        "a message one byte over the reader's limit (the gateway's max_submission_bytes)",
        &good,
        "message_too_large",
        Some(message.len() as u64 - 1),
    );
    println!("vectors written to {}", vectors.display());
}
