//! `resguardo-submit` against the real gateway on loopback (`docs/uploads-v1.md`): uploads over
//! 1 MiB resume after a cut connection and after the gateway is killed and restarted, without
//! sending much again; a report sealed now (`--save-sealed`) is sent later from another process
//! (`--sealed`); a damaged sealed report file sends nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::cut_proxy::CutProxy;
use crate::common::*;
use resguardo::sealed_file;

/// Proof of work on, cheap: the client solves it at creation, as in production.
const POW: &str = "[proof_of_work]\nenabled = true\nbase_difficulty = 8\nmax_difficulty = 8\n";

/// A file of `size` deterministic bytes that do not compress.
fn evidence(dir: &Path, size: usize) -> (PathBuf, Vec<u8>) {
    let mut state = 0x2545_f491_u32;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    let path = dir.join("evidence.bin");
    std::fs::write(&path, &bytes).expect("write");
    (path, bytes)
}

/// `resguardo-submit` with a message and `attachment` (sent as it is), plus `more`.
fn report_command(url: &str, dir: &Path, attachment: &Path, more: &[&str]) -> Command {
    let message = dir.join("message.txt");
    std::fs::write(&message, "Amenaza a la comunidad de Ccollpa; video adjunto").expect("write");
    let mut cmd = Command::new(submit_bin());
    cmd.args(["--server", url, "--message"])
        .arg(&message)
        .arg("--attach")
        .arg(attachment)
        .arg("--send-with-metadata")
        .arg(attachment)
        .args(more);
    cmd
}

/// Seals a report into a sealed report file at `out` without sending it.
fn save_sealed(url: &str, dir: &Path, attachment: &Path, out: &Path, more: &[&str]) {
    let mut args = vec!["--save-sealed", out.to_str().expect("utf-8")];
    args.extend_from_slice(more);
    let o = run(&mut report_command(url, dir, attachment, &args));
    assert!(o.status.success(), "save: {}", stderr(&o));
    assert_eq!(stdout(&o).trim(), out.display().to_string());
    assert!(stderr(&o).contains("Nothing was sent"), "{}", stderr(&o));
}

/// Exports everything, opens it as demo reviewer 1, and checks that `id` is the one report and
/// that `attachment` arrived byte for byte.
fn exported_and_opened(data_dir: &Path, dir: &Path, ids: &[&str], attachment: &[u8]) {
    let bundle = dir.join("bundle.tar");
    let entries = export(data_dir, &bundle);
    let mut got: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
    got.sort_unstable();
    let mut want = ids.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "the stored submissions");
    let out = dir.join("opened");
    let o = open_as_demo_reviewer(&bundle, &out);
    assert!(o.status.success(), "open: {}{}", stdout(&o), stderr(&o));
    let files = all_files(&out);
    assert!(
        files.iter().any(|(_, bytes)| bytes == attachment),
        "the attachment arrives byte for byte"
    );
    assert!(
        files
            .iter()
            .any(|(_, bytes)| contains(bytes, "Ccollpa".as_bytes())),
        "the report's text is there"
    );
}

#[test]
fn an_upload_cut_at_30_60_and_90_percent_completes_with_little_sent_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(dir.path(), "plain-http", POW);
    let (attachment, bytes) = evidence(dir.path(), 6 * 1024 * 1024);
    let sealed = dir.path().join("sealed-0a1b2c3d.bin");
    save_sealed(
        &gateway.url,
        dir.path(),
        &attachment,
        &sealed,
        &["--no-replies"],
    );
    let len = sealed_file::open(&sealed, sealed_file::MAX_MESSAGE_BYTES)
        .expect("a sealed report file")
        .len;
    assert!(len > resguardo::submit::RESUMABLE_FROM);

    let proxy = CutProxy::start(
        gateway.addr,
        vec![len * 3 / 10, len * 6 / 10, len * 9 / 10],
        0,
    );
    let o = run(Command::new(submit_bin())
        .args(["--server", &proxy.url, "--sealed"])
        .arg(&sealed));
    assert!(o.status.success(), "send: {}", stderr(&o));
    assert_eq!(proxy.cuts_done(), 3, "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("Resuming from").count(),
        3,
        "{}",
        stderr(&o)
    );
    let id = stdout(&o).trim().to_string();
    let ratio = proxy.bytes_from_client() as f64 / len as f64;
    println!(
        "cut at 30/60/90 %: {} bytes sent through the proxy for a message of {len}: {ratio:.4}×",
        proxy.bytes_from_client()
    );
    assert!(ratio <= 1.15, "{ratio:.4}× the message was sent");
    exported_and_opened(&gateway.data_dir, dir.path(), &[&id], &bytes);
}

#[test]
fn a_gateway_killed_mid_upload_and_restarted_gets_the_whole_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    // A fixed port, so the gateway comes back on the same address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        config_text(&data_dir, "plain-http", POW).replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        ),
    )
    .expect("config");
    let gateway = Gateway::start_config(&config, &data_dir);
    let (attachment, bytes) = evidence(dir.path(), 6 * 1024 * 1024);
    // Paced at 2 MiB/s, so the kill comes in the middle of the upload.
    let proxy = CutProxy::start(gateway.addr, Vec::new(), 2 * 1024 * 1024);
    let receipt = dir.path().join("receipt.txt");
    let child = report_command(
        &proxy.url,
        dir.path(),
        &attachment,
        &["--retry-for", "120", "--receipt-out"],
    )
    .arg(&receipt)
    .env("RESGUARDO_LANG", "en")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start resguardo-submit");
    assert!(
        proxy.wait_forwarded(2 * 1024 * 1024, Duration::from_secs(120)),
        "the upload did not start"
    );
    let killed_at = proxy.forwarded();
    gateway.kill9();
    std::thread::sleep(Duration::from_secs(2));
    let gateway = Gateway::start_config(&config, &data_dir);
    let o = child.wait_with_output().expect("resguardo-submit");
    assert!(
        o.status.success(),
        "send: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Resuming from"), "{err}");
    println!(
        "killed after {killed_at} bytes; {} bytes sent in all",
        proxy.bytes_from_client()
    );
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    exported_and_opened(&gateway.data_dir, dir.path(), &[&id], &bytes);
    // The conversation started with it: its receipt checks in.
    let o = run(Command::new(submit_bin())
        .args(["check", "--server", &gateway.url, "--receipt-file"])
        .arg(&receipt));
    assert!(o.status.success(), "check: {}", stderr(&o));
}

#[test]
fn a_report_sealed_now_is_sent_later_from_another_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(dir.path(), "plain-http", POW);
    // One over RESUMABLE_FROM (resumable route), one under it (one piece).
    let (big, big_bytes) = evidence(dir.path(), 1536 * 1024);
    let big_sealed = dir.path().join("sealed-big.bin");
    let big_receipt = dir.path().join("big-receipt.txt");
    save_sealed(
        &gateway.url,
        dir.path(),
        &big,
        &big_sealed,
        &["--receipt-out", big_receipt.to_str().unwrap()],
    );
    let small_dir = dir.path().join("small");
    std::fs::create_dir(&small_dir).unwrap();
    let (small, small_bytes) = evidence(&small_dir, 100 * 1024);
    let small_sealed = dir.path().join("sealed-small.bin");
    let small_receipt = dir.path().join("small-receipt.txt");
    save_sealed(
        &gateway.url,
        &small_dir,
        &small,
        &small_sealed,
        &["--receipt-out", small_receipt.to_str().unwrap()],
    );
    // Sealed, not sent: the gateway holds nothing, and the receipts open no conversation yet.
    assert!(export(&gateway.data_dir, &dir.path().join("none.tar")).is_empty());
    let o = run(Command::new(submit_bin())
        .args(["check", "--server", &gateway.url, "--receipt-file"])
        .arg(&big_receipt));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // Saving over an existing file is refused.
    let o = run(&mut report_command(
        &gateway.url,
        dir.path(),
        &big,
        &[
            "--no-replies",
            "--save-sealed",
            big_sealed.to_str().unwrap(),
        ],
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let mut ids = Vec::new();
    for sealed in [&big_sealed, &small_sealed] {
        let o = run(Command::new(submit_bin())
            .args(["--server", &gateway.url, "--sealed"])
            .arg(sealed));
        assert!(o.status.success(), "send later: {}", stderr(&o));
        ids.push(stdout(&o).trim().to_string());
    }
    for receipt in [&big_receipt, &small_receipt] {
        let o = run(Command::new(submit_bin())
            .args(["check", "--server", &gateway.url, "--receipt-file"])
            .arg(receipt));
        assert!(o.status.success(), "check: {}", stderr(&o));
        assert!(stdout(&o).contains("No answers yet"), "{}", stdout(&o));
    }
    let bundle = dir.path().join("bundle.tar");
    let entries = export(&gateway.data_dir, &bundle);
    assert_eq!(entries.len(), 2);
    let out = dir.path().join("opened");
    let o = open_as_demo_reviewer(&bundle, &out);
    assert!(o.status.success(), "open: {}{}", stdout(&o), stderr(&o));
    let files = all_files(&out);
    for attachment in [&big_bytes, &small_bytes] {
        assert!(files.iter().any(|(_, bytes)| bytes == attachment));
    }
    let mut got: Vec<String> = entries.into_iter().map(|(id, _)| id).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
}

#[test]
fn a_damaged_sealed_report_file_is_refused_and_nothing_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    let (attachment, _) = evidence(dir.path(), 64 * 1024);
    let sealed = dir.path().join("sealed.bin");
    save_sealed(&gateway.url, dir.path(), &attachment, &sealed, &[]);
    let good = std::fs::read(&sealed).expect("read");
    let header_len = good.len() - sealed_file::open(&sealed, u64::MAX).unwrap().len as usize;
    let text = String::from_utf8_lossy(&good[..header_len]).into_owned();
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("cut short", good[..header_len / 2].to_vec()),
        ("garbled", {
            let mut g = good.clone();
            g[header_len / 2] = b'*';
            g
        }),
        ("crlf", {
            let mut g = text.replace('\n', "\r\n").into_bytes();
            g.extend_from_slice(&good[header_len..]);
            g
        }),
        ("no message", good[..header_len].to_vec()),
        ("not one", b"hello\n".to_vec()),
    ];
    let proxy = CutProxy::start(gateway.addr, Vec::new(), 0);
    for (what, bytes) in damaged {
        let path = dir.path().join("damaged.bin");
        std::fs::write(&path, &bytes).expect("write");
        let o = run(Command::new(submit_bin())
            .args(["--server", &proxy.url, "--sealed"])
            .arg(&path));
        assert_eq!(o.status.code(), Some(3), "{what}: {}", stderr(&o));
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: one line: {err}");
        assert!(
            lines[0].starts_with(&format!("resguardo-submit: error: {}: ", path.display())),
            "{what}: {err}"
        );
        println!("{what}: {err}");
    }
    assert_eq!(proxy.bytes_from_client(), 0, "nothing was sent");
    assert!(export(&gateway.data_dir, &dir.path().join("none.tar")).is_empty());
}
