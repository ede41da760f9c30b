//! A corpus of bad submissions against the real gateway: each gets its documented status and
//! error code, never a 500, nothing is stored, and the gateway keeps serving.

use std::process::Command;

use crate::common::*;
use resguardo::keyring::KeyProfile;
use resguardo::testing;
use sequoia_openpgp::cert::Cert;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::SerializeInto;

fn demo_certs() -> (Cert, Cert) {
    let load = |n| Cert::from_file(demo_pub(n)).expect("cert");
    (load(1), load(2))
}

#[test]
fn every_bad_body_is_refused_precisely_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let sealed_files = || std::fs::read_dir(data.join("sealed")).expect("ls").count();
    every_bad_body_is_refused_against(dir.path(), "", &sealed_files);
    // The store opens cleanly afterwards.
    let o = run(Command::new(gateway_bin())
        .args(["status", "--data-dir"])
        .arg(dir.path().join("data")));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("waiting for export: 1"),
        "{}",
        stdout(&o)
    );
}

/// The corpus against a gateway whose config ends with `store` (a `[store]` section, or
/// nothing for the embedded default); `stored` counts what the store holds.
pub fn every_bad_body_is_refused_against(
    dir: &std::path::Path,
    store: &str,
    stored: &dyn Fn() -> usize,
) {
    let gateway = Gateway::start_with(
        dir,
        "plain-http",
        &format!(
            "[limits]\nmax_submission_bytes = 1048576\nbody_idle_timeout_secs = 2\n\
             [rate_limits]\nsubmission_burst = 1000\n{store}"
        ),
    );
    let (r1, r2) = demo_certs();
    let stranger = testing::reviewer_key("stranger", KeyProfile::Compatible);
    let good = testing::seal(&[&r1, &r2], b"a real report");
    let parts = testing::split(&good);
    let (pkesk1, pkesk2, seipd) = (parts[0].clone(), parts[1].clone(), parts[2].clone());
    let pgp = Some("application/pgp-encrypted");

    /// (name, body, content type, expected status, expected error code)
    type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("empty body", vec![], pgp, 400, "empty_body"),
        (
            "plain text",
            b"I saw the attack".to_vec(),
            pgp,
            400,
            "not_openpgp",
        ),
        (
            "json",
            br#"{"report":"x"}"#.to_vec(),
            pgp,
            400,
            "not_openpgp",
        ),
        (
            "html form",
            b"what=threat&where=Cusco".to_vec(),
            pgp,
            400,
            "not_openpgp",
        ),
        ("random binary", vec![0xFF; 300], pgp, 400, "not_openpgp"),
        (
            "literal data",
            testing::literal(b"I saw the attack"),
            pgp,
            422,
            "plaintext",
        ),
        (
            "compressed data",
            testing::compressed(b"I saw the attack"),
            pgp,
            422,
            "compressed",
        ),
        (
            "signed only",
            testing::signed(b"I saw the attack"),
            pgp,
            422,
            "signed_only",
        ),
        (
            "password only",
            testing::seal_with_password(&[], b"x"),
            pgp,
            422,
            "password_encrypted",
        ),
        (
            "password and reviewers",
            testing::seal_with_password(&[&r1], b"x"),
            pgp,
            422,
            "password_encrypted",
        ),
        (
            "wildcard recipient",
            testing::seal_hidden_recipient(&r1, b"x"),
            pgp,
            422,
            "hidden_recipient",
        ),
        (
            "wildcard by rewrite",
            testing::hide_recipients(&good),
            pgp,
            422,
            "hidden_recipient",
        ),
        (
            "unknown recipient",
            testing::seal(&[&stranger], b"x"),
            pgp,
            422,
            "unknown_recipient",
        ),
        (
            "reviewer and stranger",
            testing::seal(&[&r1, &stranger], b"x"),
            pgp,
            422,
            "unknown_recipient",
        ),
        (
            "container only",
            testing::packets(std::slice::from_ref(&seipd)),
            pgp,
            422,
            "no_recipients",
        ),
        (
            "session keys only",
            testing::packets(&[pkesk1.clone(), pkesk2.clone()]),
            pgp,
            400,
            "truncated",
        ),
        (
            "truncated in the container",
            good[..good.len() - 7].to_vec(),
            pgp,
            400,
            "truncated",
        ),
        (
            "truncated in a session key",
            good[..20].to_vec(),
            pgp,
            400,
            "truncated",
        ),
        (
            "two containers",
            testing::packets(&[pkesk1.clone(), seipd.clone(), seipd.clone()]),
            pgp,
            400,
            "trailing_data",
        ),
        (
            "two messages",
            [good.clone(), good.clone()].concat(),
            pgp,
            400,
            "trailing_data",
        ),
        (
            "garbage after",
            [good.clone(), b"garbage".to_vec()].concat(),
            pgp,
            400,
            "trailing_data",
        ),
        (
            "old SED, no integrity",
            [
                testing::packets(std::slice::from_ref(&pkesk1)),
                testing::raw_packet(9, &[0x55; 60]),
            ]
            .concat(),
            pgp,
            422,
            "no_integrity_protection",
        ),
        (
            "marker first",
            [testing::raw_packet(10, b"PGP"), good.clone()].concat(),
            pgp,
            422,
            "unexpected_packet",
        ),
        (
            "a public key",
            r1.to_vec().expect("cert"),
            pgp,
            422,
            "unexpected_packet",
        ),
        (
            "armored key block",
            r1.armored().to_vec().expect("armor"),
            pgp,
            400,
            "bad_armor",
        ),
        (
            "broken armor",
            b"-----BEGIN PGP MESSAGE-----\n\n%%%%\n-----END PGP MESSAGE-----\n".to_vec(),
            pgp,
            400,
            "bad_armor",
        ),
        (
            "good message, wrong type",
            good.clone(),
            Some("text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            "good message, form type",
            good.clone(),
            Some("application/x-www-form-urlencoded"),
            415,
            "unsupported_media_type",
        ),
        (
            "good message, no type",
            good.clone(),
            None,
            415,
            "unsupported_media_type",
        ),
    ];
    assert!(cases.len() >= 25, "{} cases", cases.len());
    for (name, body, content_type, status, code) in &cases {
        let (got_status, json) = post(&gateway.url, body, *content_type);
        assert_eq!(got_status, *status, "{name}: {json}");
        assert_eq!(json["error"], *code, "{name}: {json}");
        let message = json["message"].as_str().expect("message");
        assert!(
            message.len() > 10 && !message.contains('\n'),
            "{name}: {message}"
        );
    }

    // Refused before the body is read, a mid-sized upload still gets the answer (the gateway
    // reads small bodies to the end instead of resetting the connection under the client).
    let mid = testing::seal(&[&r1], &vec![4u8; 900_000]);
    for _ in 0..5 {
        let (status, json) = post(&gateway.url, &mid, Some("text/plain"));
        assert_eq!(status, 415, "{json}");
        assert_eq!(json["error"], "unsupported_media_type");
    }

    // Too large, announced: refused before the body is read (the client sees the answer and a
    // closed connection, which is why this one goes over a raw socket).
    let big = testing::seal(&[&r1], &vec![1u8; 1_200_000]);
    let (status, body) = raw_request(
        gateway.addr,
        &format!("POST /api/v1/submissions HTTP/1.1\r\nHost: x\r\nContent-Type: application/pgp-encrypted\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", big.len()),
        &big,
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("too_large"), "{body}");

    // Too large without announcing it: chunked, stopped by the store's limit while streaming.
    let big = testing::seal(&[&r1], &vec![2u8; 1_500_000]);
    let mut chunked = Vec::new();
    for chunk in big.chunks(100_000) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = raw_request(
        gateway.addr,
        "POST /api/v1/submissions HTTP/1.1\r\nHost: x\r\nContent-Type: application/pgp-encrypted\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        &chunked,
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("too_large"), "{body}");

    // A body that ends before its announced length: the client gave up mid-upload.
    let (status, _) = raw_request_cut(
        gateway.addr,
        &format!("POST /api/v1/submissions HTTP/1.1\r\nHost: x\r\nContent-Type: application/pgp-encrypted\r\nContent-Length: {}\r\n\r\n", good.len() + 1000),
        &good,
    );
    assert_eq!(status, 400, "a half-sent body is refused");

    // A body that stalls: dropped after the idle timeout with 408, the connection kept open.
    {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(gateway.addr).expect("connect");
        let head = format!("POST /api/v1/submissions HTTP/1.1\r\nHost: x\r\nContent-Type: application/pgp-encrypted\r\nContent-Length: {}\r\n\r\n", good.len());
        stream.write_all(head.as_bytes()).expect("write");
        stream.write_all(&good[..good.len() / 2]).expect("write");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .expect("timeout");
        let started = std::time::Instant::now();
        let mut buf = [0u8; 4096];
        let n = stream
            .read(&mut buf)
            .expect("an answer before the client's own timeout");
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("body_timeout"), "{answer}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    // Wrong method, wrong path: JSON errors too.
    let (status, text) = get(&format!("{}api/v1/submissions", gateway.url));
    assert_eq!(status, 405, "{text}");
    assert!(text.contains("method_not_allowed"));

    // Still serving, and nothing of all that was stored.
    let (status, _) = get(&format!("{}healthz", gateway.url));
    assert_eq!(status, 200);
    let (status, json) = post(&gateway.url, &good, pgp);
    assert_eq!(status, 201, "{json}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(stored(), 1, "only the one good submission is stored");
    let incoming: Vec<_> = std::fs::read_dir(gateway.data_dir.join("incoming"))
        .expect("ls")
        .collect();
    assert!(incoming.is_empty(), "no spool file is left behind");
    let logs = gateway.stop();
    assert!(!logs.contains("panicked"), "{logs}");
}
