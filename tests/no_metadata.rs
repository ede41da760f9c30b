//! The gateway keeps no plaintext and no metadata: after a run of accepted and refused
//! submissions carrying canaries (in the content, the user agent, the referrer, a forwarded-for
//! header, the client address), none of them appears in any file of the data directory or in
//! anything the gateway printed, even at the most verbose log level.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use crate::common::*;
use resguardo::testing;
use ring::rand::SecureRandom;

fn canary() -> String {
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("random");
    format!("CANARY{}", hex::encode(bytes))
}

/// POSTs with curl from 127.0.0.2 with identifying headers; returns the HTTP status.
fn curl_post(url: &str, body: &std::path::Path, user_agent: &str, referrer: &str) -> u16 {
    let out = run(Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--interface",
            "127.0.0.2",
        ])
        .args(["-A", user_agent, "-e", referrer])
        .args(["-H", "X-Forwarded-For: 203.0.113.77"])
        .args(["-H", "Content-Type: application/pgp-encrypted"])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("{url}api/v1/submissions")));
    assert!(out.status.success(), "curl: {}", stderr(&out));
    stdout(&out).trim().parse().expect("status")
}

#[test]
fn no_canary_or_client_detail_reaches_disk_or_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    // The gateway listens on 127.0.0.1; the client comes from 127.0.0.2, so the client address
    // is distinguishable from the server's own.
    let url = gateway.url.clone();
    assert!(url.starts_with("http://127.0.0.1:"));

    let content = canary();
    let agent = canary();
    let referrer = format!("https://{}.example/", canary().to_lowercase());
    let (r1, r2) = {
        use sequoia_openpgp::parse::Parse;
        let load = |n| sequoia_openpgp::Cert::from_file(demo_pub(n)).expect("cert");
        (load(1), load(2))
    };
    let report = format!("the report names {content} and a place");
    let bodies: Vec<(&str, Vec<u8>, u16)> = vec![
        ("sealed", testing::seal(&[&r1, &r2], report.as_bytes()), 201),
        (
            "plaintext literal",
            testing::literal(report.as_bytes()),
            422,
        ),
        ("compressed", testing::compressed(report.as_bytes()), 422),
        ("signed", testing::signed(report.as_bytes()), 422),
        ("raw text", report.clone().into_bytes(), 400),
        (
            "sealed then plaintext",
            [testing::seal(&[&r1], b"x"), report.clone().into_bytes()].concat(),
            400,
        ),
    ];
    for (name, body, expected) in &bodies {
        let path = dir.path().join("body.bin");
        std::fs::write(&path, body).expect("write");
        let status = curl_post(&url, &path, &agent, &referrer);
        assert_eq!(status, *expected, "{name}");
    }

    // Uploads that resume: a canary in a refused Upload-Metadata header, and in the body of an
    // upload refused at its end (plaintext), sent in two pieces.
    let metadata = format!("filename {}", hex::encode(content.as_bytes()));
    let refused = tus_request(
        &gateway,
        "POST /api/v1/uploads",
        &[
            ("Upload-Length", "10"),
            ("Upload-Metadata", &metadata),
            ("User-Agent", &agent),
        ],
        b"",
    );
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    let clear = testing::literal(report.as_bytes());
    let length = clear.len().to_string();
    let created = tus_request(
        &gateway,
        "POST /api/v1/uploads",
        &[("Upload-Length", &length)],
        b"",
    );
    let location = created
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .expect("Location")
        .trim()
        .to_string();
    let half = clear.len() / 2;
    for (offset, piece, status) in [(0, &clear[..half], "204"), (half, &clear[half..], "422")] {
        let answer = tus_request(
            &gateway,
            &format!("PATCH {location}"),
            &[
                ("Content-Type", "application/offset+octet-stream"),
                ("Upload-Offset", &offset.to_string()),
                ("Referer", &referrer),
            ],
            piece,
        );
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
    }

    // The terminal client too, with the canary in the message, a field and a file name.
    let message = dir.path().join(format!("{content}.txt"));
    std::fs::write(&message, &report).expect("write");
    let out = run(Command::new(submit_bin())
        .args(["--server", &url, "--message"])
        .arg(&message)
        .arg("--attach")
        .arg(&message)
        .args(["--field", &format!("where={content}")]));
    assert!(out.status.success(), "{}", stderr(&out));

    let logs = gateway.stop();
    let needles = [
        content.as_str(),
        agent.as_str(),
        referrer.as_str(),
        "127.0.0.2",
        "203.0.113.77",
        "curl",
        "resguardo-submit",
    ];
    for needle in needles {
        assert!(
            !logs.contains(needle),
            "{needle:?} in the gateway's output:\n{logs}"
        );
    }
    // The two accepted submissions are stored, with day-only timestamps (checked before
    // anything reads them: a read may update the access time).
    let sealed: Vec<_> = std::fs::read_dir(dir.path().join("data/sealed"))
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(sealed.len(), 2);
    for path in &sealed {
        let meta = std::fs::metadata(path).expect("meta");
        assert_eq!(meta.mtime() % 86_400, 0, "{}", path.display());
        assert_eq!(meta.atime() % 86_400, 0, "{}", path.display());
    }
    let files = all_files(&dir.path().join("data"));
    assert!(files.len() > 3, "the data dir holds the store");
    for (path, bytes) in &files {
        for needle in needles {
            assert!(
                !contains(bytes, needle.as_bytes()),
                "{needle:?} found in {}",
                path.display()
            );
        }
    }
}

/// One tus request (`Tus-Resumable: 1.0.0`) with raw headers; returns the whole answer.
fn tus_request(gateway: &Gateway, line: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut head = format!(
        "{line} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTus-Resumable: 1.0.0\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = std::net::TcpStream::connect(gateway.addr).expect("connect");
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(body).expect("body");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}
