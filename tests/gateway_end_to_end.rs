//! The real gateway on loopback, fed by resguardo-submit and by GnuPG; what it exports opens with
//! `gpg --decrypt` to exactly what was sealed.

use std::collections::HashMap;
use std::io::Read;
use std::process::Command;

use crate::common::*;

/// Splits a tar archive into (name, bytes) entries.
fn untar(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read");
        out.push((name, data));
    }
    out
}

#[test]
fn submissions_from_resguardo_submit_and_gpg_arrive_and_decrypt_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(dir.path(), "self-signed", "");
    assert!(gateway.url.starts_with("https://"));
    let cert = gateway.data_dir.join("tls/cert.pem");

    // 1. The terminal client, verifying the gateway's certificate.
    let message = dir.path().join("message.txt");
    std::fs::write(&message, "Amenaza en la comunidad; ñandú ✓").expect("write");
    let attachment = dir.path().join("evidence.pdf");
    let pdf: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&attachment, &pdf).expect("write");
    let out = run(Command::new(submit_bin())
        .args(["--server", &gateway.url, "--ca-cert"])
        .arg(&cert)
        .arg("--message")
        .arg(&message)
        .arg("--attach")
        .arg(&attachment)
        // Not a picture: it can only go as it is, and the reporter says so.
        .arg("--send-with-metadata")
        .arg(&attachment)
        .args([
            "--field",
            "what_happened=threat",
            "--field",
            "region=Cusco",
            "--urgent",
        ]));
    assert!(out.status.success(), "submit: {}", stderr(&out));
    let submit_id = stdout(&out).trim().to_string();
    assert_eq!(submit_id.len(), 32, "{submit_id:?}");
    // The fingerprints were shown to the reporter.
    assert!(stderr(&out).contains("C95C29B449920DED0872A622F1F1AA6FAE2F54AD"));

    // 2. GnuPG encrypting to the certificates the gateway serves, then a plain HTTP POST.
    let gpg = Gpg::new();
    let (status, keys) = get(&format!("{}api/v1/keys", gateway.url));
    assert_eq!(status, 200);
    let keys: serde_json::Value = serde_json::from_str(&keys).expect("json");
    let served = keys["reviewers"].as_array().expect("reviewers");
    assert_eq!(served.len(), 2);
    for reviewer in served {
        let cert = reviewer["cert"].as_str().expect("cert");
        assert!(cert.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        assert!(!cert.contains("PRIVATE KEY"));
        let path = dir.path().join(format!(
            "{}.asc",
            reviewer["fingerprint"].as_str().expect("fp")
        ));
        std::fs::write(&path, cert).expect("write");
        let o = gpg.run(&["--batch", "--import", &path.display().to_string()]);
        assert!(o.status.success());
    }
    let gpg_payload: Vec<u8> = b"payload sealed by GnuPG \x00\x01\x02 end".repeat(1000);
    let plain = dir.path().join("plain.bin");
    std::fs::write(&plain, &gpg_payload).expect("write");
    let sealed_path = dir.path().join("plain.bin.gpg");
    gpg.encrypt(&plain, &sealed_path);
    let sealed_bytes = std::fs::read(&sealed_path).expect("read");
    let (status, body) = post(
        &gateway.url,
        &sealed_bytes,
        Some("application/octet-stream"),
    );
    assert_eq!(status, 201, "{body}");
    let gpg_id = body["id"].as_str().expect("id").to_string();

    // 3. Export while the gateway runs, and open everything with gpg.
    let bundle = dir.path().join("bundle.tar");
    let exported: HashMap<String, Vec<u8>> =
        export(&gateway.data_dir, &bundle).into_iter().collect();
    assert_eq!(exported.len(), 2);
    assert_eq!(exported[&gpg_id], sealed_bytes, "stored byte for byte");

    let gpg_file = dir.path().join("gpg.pgp");
    std::fs::write(&gpg_file, &exported[&gpg_id]).expect("write");
    assert_eq!(gpg.decrypt(&gpg_file), gpg_payload);

    let submit_file = dir.path().join("submit.pgp");
    std::fs::write(&submit_file, &exported[&submit_id]).expect("write");
    let payload = gpg.decrypt(&submit_file);
    assert_eq!(payload.len() % 512, 0);
    let entries = untar(&payload);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["report.json", "files/001.pdf", "padding"]);
    let report: serde_json::Value = serde_json::from_slice(&entries[0].1).expect("report");
    assert_eq!(report["schema"], "resguardo.report/1");
    assert_eq!(report["urgent"], true);
    assert_eq!(report["description"], "Amenaza en la comunidad; ñandú ✓");
    assert_eq!(report["fields"]["region"], "Cusco");
    assert_eq!(report["attachments"][0]["name"], "evidence.pdf");
    assert_eq!(report["attachments"][0]["size"], 200_000);
    assert_eq!(entries[1].1, pdf, "the attachment arrives byte for byte");
    assert!(entries[2].1.iter().all(|&b| b == 0));

    // 4. Purge with the bundle and the reviewers' receipt: the gateway forgets them.
    let o = purge(&gateway.data_dir, &bundle, &receipt_for(&bundle));
    assert!(o.status.success(), "purge: {}", stderr(&o));
    assert!(
        stdout(&o).contains("Purged 2 submissions"),
        "{}",
        stdout(&o)
    );
    let sealed_dir = gateway.data_dir.join("sealed");
    assert_eq!(std::fs::read_dir(sealed_dir).expect("ls").count(), 0);
    gateway.stop();
}

#[test]
fn armored_submissions_are_stored_binary_and_sq_output_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    let plain = dir.path().join("p.txt");
    std::fs::write(&plain, "sq encrypted").expect("write");
    let sealed_path = dir.path().join("p.asc");
    let o = run(Command::new("sq")
        .args(["encrypt", "--recipient-cert"])
        .arg(demo_pub(1))
        .arg("--recipient-cert")
        .arg(demo_pub(2))
        .arg("--output")
        .arg(&sealed_path)
        .arg(&plain));
    assert!(o.status.success(), "sq encrypt: {}", stderr(&o));
    let armored = std::fs::read(&sealed_path).expect("read");
    assert!(armored.starts_with(b"-----BEGIN PGP MESSAGE-----"));
    let (status, body) = post(&gateway.url, &armored, Some("application/pgp-encrypted"));
    assert_eq!(status, 201, "{body}");
    let exported = export(&gateway.data_dir, &dir.path().join("b.tar"));
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].1[0] & 0x80, 0x80, "binary in the store");
    let stored = dir.path().join("stored.pgp");
    std::fs::write(&stored, &exported[0].1).expect("write");
    assert_eq!(Gpg::new().decrypt(&stored), b"sq encrypted");
}

#[test]
fn page_keys_and_health_answer_with_strict_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(dir.path(), "self-signed", "");
    for path in ["", "api/v1/keys", "healthz", "nope"] {
        let mut response = agent()
            .get(format!("{}{path}", gateway.url))
            .call()
            .expect("request");
        let h = response.headers().clone();
        let csp = h["content-security-policy"].to_str().expect("csp");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(h["strict-transport-security"]
            .to_str()
            .expect("hsts")
            .starts_with("max-age="));
        assert!(!h.contains_key("set-cookie"));
        if path.starts_with("api/") {
            assert_eq!(h["cache-control"], "no-store");
        }
        let body = response.body_mut().read_to_string().expect("body");
        if path == "nope" {
            assert_eq!(response.status().as_u16(), 404);
            let json: serde_json::Value = serde_json::from_str(&body).expect("json 404");
            assert_eq!(json["error"], "not_found");
        } else {
            assert_eq!(response.status().as_u16(), 200, "{path}");
        }
    }
    let (status, text) = get(&format!("{}healthz", gateway.url));
    assert_eq!((status, text.as_str()), (200, r#"{"status":"ok"}"#));
}

#[test]
fn the_embedded_default_runs_from_the_repository_root() {
    // `serve` with no config: the demo keys from ./keys-example, HTTPS with a self-signed
    // certificate; we only move the port and the data directory out of the way.
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let mut child = Command::new(gateway_bin())
        .current_dir(repo())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut banner = String::new();
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stdout, &mut line).expect("read") > 0 {
        banner.push_str(&line);
        if line.starts_with("Listening on") {
            break;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        banner.contains("WARNING: running with the public DEMO reviewer keys"),
        "{banner}"
    );
    assert!(
        banner.contains("C95C29B449920DED0872A622F1F1AA6FAE2F54AD"),
        "{banner}"
    );
    assert!(
        banner.contains("1498E496AB7C1AE50416A95A5A9B8390A0FFBF57"),
        "{banner}"
    );
    assert!(
        banner.contains("Listening on https://127.0.0.1:"),
        "{banner}"
    );
    assert!(data_dir.join("tls/cert.pem").is_file());

    // Outside the repository the demo keys are not found, and the message says what to do.
    let o = run(Command::new(gateway_bin()).current_dir(dir.path()).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("run it from the repository root"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_damaged_store_is_refused_at_start_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start(dir.path());
    let (status, body) = post(
        &gateway.url,
        &sealed(b"kept"),
        Some("application/pgp-encrypted"),
    );
    assert_eq!(status, 201);
    let id = body["id"].as_str().expect("id").to_string();
    gateway.stop();
    let file = dir.path().join("data/sealed").join(format!("{id}.pgp"));
    std::fs::write(&file, b"cut").expect("damage");
    let out = run(Command::new(gateway_bin())
        .args(["serve", "--config"])
        .arg(dir.path().join("gateway.toml")));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{:?} {}",
        out.status,
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("failed its integrity check"), "{err}");
    assert!(err.contains(&id), "{err}");
    assert!(!stdout(&out).contains("Listening"));
    // Nothing was "repaired" behind the operator's back.
    assert_eq!(std::fs::read(&file).expect("read"), b"cut");
}
