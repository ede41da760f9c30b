//! Uploads that resume (tus 1.0.0, `docs/uploads-v1.md` §1), through the real gateway on
//! loopback with raw HTTP: every refusal of creation and PATCH, bytes kept when a connection is
//! cut, a PATCH taking over from a stalled one, completion exactly like the one-piece route (the
//! export opens), kill -9 mid-upload, expiry, cancellation and the quota each upload reserves.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use resguardo::keyring::KeyProfile;
use resguardo::testing;

/// One answer: status, headers (lowercase names), body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn code(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_default()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

fn parse_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Sends one request (with `Connection: close`) and reads the whole answer.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "HEAD"
        && method != "OPTIONS"
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("head");
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_answer(&raw)
}

/// A refused request: what it is, its headers, the status and code expected.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str);

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");
const OCTETS: (&str, &str) = ("Content-Type", "application/offset+octet-stream");

/// Creates an upload of `length` bytes with `more` headers; returns the answer.
fn create(addr: SocketAddr, length: u64, more: &[(&str, &str)]) -> Answer {
    let length = length.to_string();
    let mut headers = vec![TUS, ("Upload-Length", length.as_str())];
    headers.extend_from_slice(more);
    send(addr, "POST", "/api/v1/uploads", &headers, b"")
}

/// Creates an upload and returns its path (`/api/v1/uploads/<id>`).
pub(crate) fn created(addr: SocketAddr, length: u64) -> String {
    let answer = create(addr, length, &[]);
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.header("location").expect("Location").to_string()
}

pub(crate) fn patch(addr: SocketAddr, path: &str, offset: u64, bytes: &[u8]) -> Answer {
    let offset = offset.to_string();
    send(
        addr,
        "PATCH",
        path,
        &[TUS, OCTETS, ("Upload-Offset", offset.as_str())],
        bytes,
    )
}

fn head(addr: SocketAddr, path: &str) -> Answer {
    send(addr, "HEAD", path, &[TUS], b"")
}

pub(crate) fn offset_of(answer: &Answer) -> u64 {
    answer
        .header("upload-offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Upload-Offset: {} {:?}", answer.status, answer.headers))
}

/// Opens a PATCH announcing `announced` bytes and sends `first` of them; the caller cuts or
/// continues the stream.
fn open_patch(
    addr: SocketAddr,
    path: &str,
    offset: u64,
    announced: usize,
    first: &[u8],
) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n\
         Content-Length: {announced}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(first).expect("body");
    stream.flush().expect("flush");
    stream
}

fn read_answer(mut stream: TcpStream) -> Answer {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_answer(&raw)
}

/// The store's partial files of `data_dir`.
fn upload_files(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join("uploads"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Exports, opens as demo reviewer 1, and asserts `payload` is among what opened.
fn assert_opens(dir: &Path, data_dir: &Path, id: &str, payload: &[u8]) {
    let bundle = dir.join(format!("bundle-{id}.tar"));
    let entries = export(data_dir, &bundle);
    assert!(
        entries.iter().any(|(name, _)| name.contains(id)),
        "{id} is exported"
    );
    let out = dir.join(format!("opened-{id}"));
    let o = open_as_demo_reviewer(&bundle, &out);
    assert!(o.status.success(), "open: {}{}", stdout(&o), stderr(&o));
    let found = all_files(&out)
        .iter()
        .any(|(path, bytes)| path.to_string_lossy().contains(id) && contains(bytes, payload));
    assert!(found, "the payload of {id} opened:\n{}", stdout(&o));
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn options_and_creation_answer_as_the_doc_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    let addr = gateway.addr;

    let options = send(addr, "OPTIONS", "/api/v1/uploads", &[], b"");
    assert_eq!(options.status, 204, "{}", options.body);
    assert_eq!(options.header("tus-version"), Some("1.0.0"));
    assert_eq!(
        options.header("tus-extension"),
        Some("creation,termination,expiration")
    );
    assert_eq!(options.header("tus-max-size"), Some("104857600"));
    assert_eq!(options.header("tus-resumable"), Some("1.0.0"));

    let ok = create(addr, 1000, &[]);
    assert_eq!(ok.status, 201, "{}", ok.body);
    let location = ok.header("location").expect("Location");
    let id = location
        .strip_prefix("/api/v1/uploads/")
        .expect("the upload's path");
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let expires = ok.header("upload-expires").expect("Upload-Expires");
    assert!(expires.ends_with(" 00:00:00 GMT"), "{expires}");
    assert_eq!(ok.header("tus-resumable"), Some("1.0.0"));
    let looked = head(addr, location);
    assert_eq!(looked.status, 200);
    assert_eq!(looked.header("upload-offset"), Some("0"));
    assert_eq!(looked.header("upload-length"), Some("1000"));
    assert_eq!(looked.header("cache-control"), Some("no-store"));
    assert_eq!(looked.header("resguardo-submission"), None);

    let big = (100 * 1024 * 1024 + 1).to_string();
    let cases: Vec<Case> = vec![
        (
            "no Tus-Resumable",
            vec![("Upload-Length", "10")],
            412,
            "tus_version",
        ),
        (
            "old tus",
            vec![("Tus-Resumable", "0.2.2"), ("Upload-Length", "10")],
            412,
            "tus_version",
        ),
        ("no length", vec![TUS], 400, "bad_upload_length"),
        (
            "zero length",
            vec![TUS, ("Upload-Length", "0")],
            400,
            "bad_upload_length",
        ),
        (
            "signed length",
            vec![TUS, ("Upload-Length", "+10")],
            400,
            "bad_upload_length",
        ),
        (
            "leading zero",
            vec![TUS, ("Upload-Length", "010")],
            400,
            "bad_upload_length",
        ),
        (
            "not a number",
            vec![TUS, ("Upload-Length", "ten")],
            400,
            "bad_upload_length",
        ),
        (
            "deferred",
            vec![TUS, ("Upload-Defer-Length", "1")],
            400,
            "bad_upload_length",
        ),
        (
            "too large",
            vec![TUS, ("Upload-Length", big.as_str())],
            413,
            "too_large",
        ),
        (
            "metadata",
            vec![
                TUS,
                ("Upload-Length", "10"),
                ("Upload-Metadata", "filename cmVwb3J0LnBkZg=="),
            ],
            400,
            "upload_metadata",
        ),
        (
            "triage",
            vec![
                TUS,
                ("Upload-Length", "10"),
                ("Resguardo-Triage", "bm90IGEgdHJpYWdl"),
            ],
            400,
            "bad_triage",
        ),
        (
            "conversation",
            vec![
                TUS,
                ("Upload-Length", "10"),
                ("Resguardo-Conversation", "xyz"),
            ],
            400,
            "bad_conversation",
        ),
        (
            "touch",
            vec![
                TUS,
                ("Upload-Length", "10"),
                ("Resguardo-Conversation-Touch", "xyz"),
            ],
            400,
            "bad_conversation",
        ),
    ];
    for (name, headers, status, code) in cases {
        let answer = send(addr, "POST", "/api/v1/uploads", &headers, b"");
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (status, code),
            "{name}: {}",
            answer.body
        );
        assert_eq!(answer.header("tus-resumable"), Some("1.0.0"), "{name}");
    }
    // Refused creations made nothing; the one above is the only upload.
    assert_eq!(upload_files(&gateway.data_dir).len(), 2);
    // Looking at, continuing or cancelling an upload needs its exact id.
    for path in [
        "/api/v1/uploads/xyz".to_string(),
        format!("/api/v1/uploads/{}", id.to_uppercase()),
        format!("/api/v1/uploads/{}", "0".repeat(32)),
    ] {
        assert_eq!(head(addr, &path).status, 404, "{path}");
        assert_eq!(patch(addr, &path, 0, b"x").status, 404, "{path}");
        assert_eq!(
            send(addr, "DELETE", &path, &[TUS], b"").status,
            404,
            "{path}"
        );
    }
}

#[test]
fn creation_spends_the_same_proof_of_work_as_the_one_piece_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(
        dir.path(),
        "plain-http",
        "[proof_of_work]\nenabled = true\n",
    );
    let addr = gateway.addr;
    for solution in [None, Some("garbage"), Some("AAAA:BBBB:1")] {
        let mut headers = vec![TUS, ("Upload-Length", "10")];
        let mut one_piece = vec![("Content-Type", "application/pgp-encrypted")];
        if let Some(s) = solution {
            headers.push(("Resguardo-Pow", s));
            one_piece.push(("Resguardo-Pow", s));
        }
        let resumable = send(addr, "POST", "/api/v1/uploads", &headers, b"");
        let whole = send(addr, "POST", "/api/v1/submissions", &one_piece, b"\xc1x");
        assert!(
            resumable.code().starts_with("pow_"),
            "{solution:?}: {}",
            resumable.body
        );
        assert_eq!(
            (resumable.status, resumable.code()),
            (whole.status, whole.code()),
            "{solution:?}"
        );
    }
    assert!(upload_files(&gateway.data_dir).is_empty());
}

#[test]
fn bodiless_creations_lock_no_quota_pending_uploads_are_bounded_and_delete_frees_their_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mib = 1024 * 1024;
    let extra = format!(
        "[limits]\nstore_quota_bytes = {}\nmax_submission_bytes = 2097152\nmin_free_disk_bytes = 0\n\n[uploads]\nmax_pending = 4\n",
        5 * mib
    );
    let gateway = Gateway::start_with(dir.path(), "plain-http", &extra);
    let addr = gateway.addr;
    // Creations hold nothing until bytes arrive (once, a few bodiless creations locked the
    // quota for days): bytes count as they arrive, so with 3.5 MiB received, 2 MiB more do not
    // fit in 5 MiB.
    let first = created(addr, 2 * mib);
    let second = created(addr, 2 * mib);
    let _bodiless = created(addr, 2 * mib);
    for upload in [&first, &second] {
        let kept = patch(addr, upload, 0, &vec![5u8; 1792 * 1024]);
        assert_eq!(kept.status, 204, "{}", kept.body);
    }
    let refused = create(addr, 2 * mib, &[]);
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (507, "store_full"),
        "{}",
        refused.body
    );
    // Nor does a one-piece submission that would need the promised room.
    let (status, body) = post(
        &gateway.url,
        &sealed(&vec![7u8; 1536 * 1024]),
        Some("application/pgp-encrypted"),
    );
    assert_eq!(status, 507, "{body}");
    // Cancelling frees the bytes and the reservation at once.
    let part = first.rsplit('/').next().expect("id").to_string();
    assert!(upload_files(&gateway.data_dir).contains(&format!("{part}.part")));
    let cancelled = send(addr, "DELETE", &first, &[TUS], b"");
    assert_eq!(cancelled.status, 204, "{}", cancelled.body);
    assert!(!upload_files(&gateway.data_dir)
        .iter()
        .any(|f| f.starts_with(&part)));
    assert_eq!(head(addr, &first).status, 404);
    let _third = created(addr, 2 * mib);
    // max_pending: four incomplete uploads at most (small ones, within the quota).
    let _fourth = created(addr, 1000);
    let busy = create(addr, 1000, &[]);
    assert_eq!(
        (busy.status, busy.code().as_str()),
        (503, "busy"),
        "{}",
        busy.body
    );
    assert!(busy.header("retry-after").is_some());
}

#[test]
fn patch_keeps_what_arrived_when_cut_and_completes_like_the_one_piece_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    let addr = gateway.addr;
    let payload = b"resumable payload: the report and its attachments".repeat(8000);
    let message = sealed(&payload);
    let length = message.len() as u64;
    let path = created(addr, length);

    // Wrong media type, offset or length: refused, nothing written.
    let wrong_type = send(
        addr,
        "PATCH",
        &path,
        &[
            TUS,
            ("Content-Type", "application/octet-stream"),
            ("Upload-Offset", "0"),
        ],
        &message[..10],
    );
    assert_eq!(
        (wrong_type.status, wrong_type.code().as_str()),
        (415, "unsupported_media_type")
    );
    let no_offset = send(addr, "PATCH", &path, &[TUS, OCTETS], &message[..10]);
    assert_eq!(
        (no_offset.status, no_offset.code().as_str()),
        (400, "bad_upload_offset")
    );
    let ahead = patch(addr, &path, 5, &message[5..10]);
    assert_eq!(
        (ahead.status, ahead.code().as_str()),
        (409, "offset_mismatch")
    );
    assert_eq!(offset_of(&ahead), 0);
    let no_tus = send(
        addr,
        "PATCH",
        &path,
        &[OCTETS, ("Upload-Offset", "0")],
        &message[..10],
    );
    assert_eq!(no_tus.status, 412);

    // A PATCH cut after 100 000 bytes: they are kept, synced, and HEAD says so.
    let cut_at = 100_000usize;
    let stream = open_patch(addr, &path, 0, message.len(), &message[..cut_at]);
    std::thread::sleep(Duration::from_millis(300));
    drop(stream);
    wait_for("the cut PATCH to be kept", || {
        offset_of(&head(addr, &path)) == cut_at as u64
    });

    // A body longer than what remains is refused before it is read.
    let mut too_long = message[cut_at..].to_vec();
    too_long.push(0);
    let refused = patch(addr, &path, cut_at as u64, &too_long);
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (413, "too_large"),
        "{}",
        refused.body
    );
    assert_eq!(offset_of(&head(addr, &path)), cut_at as u64);

    // The rest completes it: the one-piece route's 201 answer, with the offset.
    let done = patch(addr, &path, cut_at as u64, &message[cut_at..]);
    assert_eq!(done.status, 201, "{}", done.body);
    assert_eq!(offset_of(&done), length);
    let id = done.json()["id"].as_str().expect("an id").to_string();
    assert!(done.json()["sequence"].as_u64().is_some(), "{}", done.body);
    let looked = head(addr, &path);
    assert_eq!(offset_of(&looked), length);
    assert_eq!(looked.header("resguardo-submission"), Some(id.as_str()));
    assert!(looked.header("resguardo-sequence").is_some());
    // If that answer was lost, the same empty PATCH at the end gets it again.
    let again = patch(addr, &path, length, b"");
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.json()["id"].as_str(), Some(id.as_str()));
    // Stored without a copy: the partial file became the sealed file.
    let stored = std::fs::read(gateway.data_dir.join(format!("sealed/{id}.pgp"))).expect("sealed");
    assert_eq!(stored, message);
    assert_eq!(
        upload_files(&gateway.data_dir).len(),
        1,
        "only the state is left"
    );
    gateway.stop();
    assert_opens(dir.path(), &dir.path().join("data"), &id, &payload);
}

#[test]
fn armored_uploads_are_stored_dearmored_like_the_one_piece_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    let addr = gateway.addr;
    let (r1, r2) = {
        use sequoia_openpgp::parse::Parse;
        let load = |n| sequoia_openpgp::Cert::from_file(demo_pub(n)).expect("cert");
        (load(1), load(2))
    };
    let payload = b"an armored report".repeat(100);
    let armored = testing::seal_armored(&[&r1, &r2], &payload);
    let path = created(addr, armored.len() as u64);
    let half = armored.len() / 2;
    assert_eq!(patch(addr, &path, 0, &armored[..half]).status, 204);
    let done = patch(addr, &path, half as u64, &armored[half..]);
    assert_eq!(done.status, 201, "{}", done.body);
    let id = done.json()["id"].as_str().expect("id").to_string();
    let stored = std::fs::read(gateway.data_dir.join(format!("sealed/{id}.pgp"))).expect("sealed");
    assert!(stored[0] & 0x80 != 0, "stored as binary");
    assert!(upload_files(&gateway.data_dir)
        .iter()
        .all(|f| f.ends_with(".state")));
    gateway.stop();
    assert_opens(dir.path(), &dir.path().join("data"), &id, &payload);
}

#[test]
fn uploads_refused_at_the_end_are_deleted_with_the_one_piece_routes_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    let addr = gateway.addr;
    let stranger = testing::reviewer_key("stranger", KeyProfile::Compatible);
    for (name, body, code) in [
        (
            "plaintext",
            testing::literal(b"a report in the clear"),
            "plaintext",
        ),
        (
            "stranger",
            testing::seal(&[&stranger], b"x"),
            "unknown_recipient",
        ),
    ] {
        let (whole_status, whole) = post(&gateway.url, &body, Some("application/pgp-encrypted"));
        assert_eq!(whole["error"].as_str(), Some(code), "{name}: one piece");
        let path = created(addr, body.len() as u64);
        let half = body.len() / 2;
        assert_eq!(patch(addr, &path, 0, &body[..half]).status, 204, "{name}");
        let refused = patch(addr, &path, half as u64, &body[half..]);
        assert_eq!(
            (refused.status, refused.code()),
            (whole_status, code.to_string()),
            "{name}"
        );
        assert_eq!(head(addr, &path).status, 404, "{name}: deleted");
    }
    assert!(upload_files(&gateway.data_dir).is_empty());
    assert_eq!(
        std::fs::read_dir(gateway.data_dir.join("sealed"))
            .expect("ls")
            .count(),
        0
    );
}

#[test]
fn a_second_patch_takes_over_from_a_stalled_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    let addr = gateway.addr;
    let payload = vec![42u8; 300_000];
    let message = sealed(&payload);
    let path = created(addr, message.len() as u64);
    // The first PATCH sends 50 000 bytes and then nothing (a dead mobile connection).
    let stalled = open_patch(addr, &path, 0, message.len(), &message[..50_000]);
    std::thread::sleep(Duration::from_millis(500));
    // The client resumes from what the gateway holds; the new PATCH takes over.
    let taken = Instant::now();
    let done = patch(addr, &path, 50_000, &message[50_000..]);
    assert_eq!(done.status, 201, "{}", done.body);
    assert!(
        taken.elapsed() < Duration::from_secs(30),
        "not held up by the stalled one"
    );
    let old = read_answer(stalled);
    assert_eq!(
        (old.status, old.code().as_str()),
        (409, "offset_mismatch"),
        "{}",
        old.body
    );
    let id = done.json()["id"].as_str().expect("id").to_string();
    gateway.stop();
    assert_opens(dir.path(), &dir.path().join("data"), &id, &payload);
}

#[test]
fn a_silent_patch_is_stopped_by_the_idle_timeout_and_its_bytes_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(
        dir.path(),
        "plain-http",
        "[limits]\nbody_idle_timeout_secs = 1\n",
    );
    let addr = gateway.addr;
    let message = sealed(&[1u8; 50_000]);
    let path = created(addr, message.len() as u64);
    let stream = open_patch(addr, &path, 0, message.len(), &message[..20_000]);
    let answer = read_answer(stream);
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (408, "body_timeout"),
        "{}",
        answer.body
    );
    assert_eq!(offset_of(&answer), 20_000);
    assert_eq!(offset_of(&head(addr, &path)), 20_000);
    let done = patch(addr, &path, 20_000, &message[20_000..]);
    assert_eq!(done.status, 201, "{}", done.body);
}

#[test]
fn an_upload_survives_kill_9_mid_patch_and_completes_after_the_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    let addr = gateway.addr;
    let payload: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    let message = sealed(&payload);
    let path = created(addr, message.len() as u64);
    assert_eq!(patch(addr, &path, 0, &message[..100_000]).status, 204);
    // A second PATCH is under way when the gateway is killed.
    let stream = open_patch(
        addr,
        &path,
        100_000,
        message.len() - 100_000,
        &message[100_000..250_000],
    );
    std::thread::sleep(Duration::from_millis(500));
    gateway.kill9();
    drop(stream);

    let gateway = Gateway::start_config(&dir.path().join("gateway.toml"), &dir.path().join("data"));
    let addr = gateway.addr;
    let looked = head(addr, &path);
    assert_eq!(looked.status, 200, "{}", looked.body);
    let offset = offset_of(&looked);
    assert!((100_000..=250_000).contains(&offset), "{offset}");
    let done = patch(addr, &path, offset, &message[offset as usize..]);
    assert_eq!(done.status, 201, "{}", done.body);
    let id = done.json()["id"].as_str().expect("id").to_string();
    // After the sweep at start, the upload's files carry day-start times like everything else.
    gateway.stop();
    assert_opens(dir.path(), &dir.path().join("data"), &id, &payload);
}

#[test]
fn expired_uploads_are_deleted_at_start_and_their_reservation_released() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let mib = 1024 * 1024;
    let extra = format!(
        "[limits]\nstore_quota_bytes = {}\nmax_submission_bytes = 2097152\nmin_free_disk_bytes = 0\n\n[store]\nsweep_secs = 1\n",
        3 * mib
    );
    let gateway = Gateway::start_with(dir.path(), "plain-http", &extra);
    let addr = gateway.addr;
    let old = created(addr, 2 * mib);
    let held = patch(addr, &old, 0, &vec![5u8; 1536 * 1024]);
    assert_eq!(held.status, 204, "{}", held.body);
    let kept = created(addr, 1000);
    assert_eq!(patch(addr, &kept, 0, b"0123456789").status, 204);
    assert_eq!(create(addr, 2 * mib, &[]).status, 507);
    gateway.stop();
    // Move the first upload's expiry day to yesterday (as if two days had passed).
    let id = old.rsplit('/').next().expect("id");
    let state_path = dir.path().join(format!("data/uploads/{id}.state"));
    let state = std::fs::read_to_string(&state_path).expect("state");
    let expires = state
        .lines()
        .find_map(|l| l.strip_prefix("expires: "))
        .expect("an expiry day")
        .to_string();
    let yesterday = resguardo::submission::UtcDay::from_days_since_epoch(
        resguardo::submission::UtcDay::today().days_since_epoch() - 1,
    );
    std::fs::write(&state_path, state.replace(&expires, &yesterday.to_string())).expect("write");

    let gateway = Gateway::start_config(&dir.path().join("gateway.toml"), &dir.path().join("data"));
    let addr = gateway.addr;
    // 404 at once (its day has begun); its files go with the sweep at start.
    assert_eq!(head(addr, &old).status, 404);
    wait_for("the expired upload to go", || {
        !upload_files(&gateway.data_dir)
            .iter()
            .any(|f| f.starts_with(id))
    });
    // Its 2 MiB are free again; the other upload is still there, at its offset.
    wait_for("its reservation to be released", || {
        create(addr, 2 * mib, &[]).status == 201
    });
    assert_eq!(offset_of(&head(addr, &kept)), 10);
    // Every file of the uploads carries day-start times after the sweep (at start).
    wait_for("the sweep", || {
        upload_files(&gateway.data_dir).iter().all(|f| {
            let meta = std::fs::metadata(gateway.data_dir.join("uploads").join(f)).expect("meta");
            meta.mtime() % 86_400 == 0 && meta.atime() % 86_400 == 0
        })
    });
}

/// The fuzz target `upload_state`'s seeds and findings, replayed with its checks on stable Rust.
#[test]
fn upload_state_fuzz_inputs_replay() {
    use resguardo::store::{decimal, UploadId, UploadState};
    let mut parsed = 0;
    for dir in ["fuzz/seeds/upload_state", "fuzz/regressions/upload_state"] {
        let Ok(entries) = std::fs::read_dir(repo().join(dir)) else {
            continue;
        };
        for entry in entries {
            let data = std::fs::read(entry.expect("entry").path()).expect("read");
            if let Ok(state) = UploadState::parse(&data) {
                parsed += 1;
                assert_eq!(UploadState::parse(&state.encode()), Ok(state));
            }
            if let Ok(text) = std::str::from_utf8(&data) {
                if let Ok(id) = text.parse::<UploadId>() {
                    assert_eq!(id.to_string(), text);
                }
                if let Some(n) = decimal(text) {
                    assert_eq!(n.to_string(), text);
                }
            }
        }
    }
    assert!(parsed >= 2, "the state seeds parse");
}
