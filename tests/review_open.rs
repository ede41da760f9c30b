//! `resguardo-review open`, `unpack` and `list` on real bundles: submissions from
//! resguardo-submit, GnuPG and sq, keys from keygen, gpg and sq, several reviewers, and every bad
//! input of the issue, each with a one-line error and nothing written for that item.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;
use resguardo::payload::{self, Attachment, FieldValue, Report};
use resguardo::submission::SubmissionId;
use resguardo::testing::raw_tar;
use ring::digest;

fn sha(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// Writes a bundle of these sealed messages; returns their ids in order.
fn make_bundle(path: &Path, sealed: &[Vec<u8>]) -> Vec<SubmissionId> {
    let file = std::fs::File::create(path).expect("create");
    resguardo::testing::write_bundle_of(file, sealed).1
}

/// A payload v1 with one attachment, sealed to both demo reviewers.
fn sealed_report(description: &str, attachment: &[u8], urgent: bool) -> Vec<u8> {
    let mut fields = BTreeMap::new();
    fields.insert(
        "what_happened".to_string(),
        FieldValue::Choices(vec!["threat".into()]),
    );
    fields.insert("region".to_string(), FieldValue::Text("puno".into()));
    let report = Report {
        schema: payload::SCHEMA.into(),
        language: "es".into(),
        urgent,
        sealed_by: Some("terminal".into()),
        fields,
        description: description.into(),
        attachments: vec![Attachment {
            name: "../../acta de la asamblea.pdf".into(),
            size: attachment.len() as u64,
            sha256: sha(attachment),
            media_type: "application/pdf".into(),
            path: "files/001.pdf".into(),
        }],
        conversation: None,
    };
    let (plain, _) =
        payload::write_payload(Vec::new(), &report, vec![Box::new(attachment)]).expect("payload");
    sealed(&plain)
}

fn open(bundle: &Path, key: &Path, passphrase: Option<&Path>, out: &Path) -> Output {
    let mut cmd = Command::new(review_bin());
    cmd.arg("open")
        .arg(bundle)
        .arg("--key")
        .arg(key)
        .arg("--out")
        .arg(out);
    if let Some(p) = passphrase {
        cmd.arg("--passphrase-file").arg(p);
    }
    run(&mut cmd)
}

fn open_demo(bundle: &Path, n: u8, out: &Path) -> Output {
    open(bundle, &demo_sec(n), Some(&demo_passphrase(n)), out)
}

/// Every file below `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = all_files(dir)
        .into_iter()
        .map(|(p, _)| p.strip_prefix(dir).expect("prefix").display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn reports_open_completely_for_every_reviewer_and_reopening_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdf: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let raw = sealed(b"just a note, encrypted by hand");
    let messages = vec![
        sealed_report("Nos amenazaron en la asamblea.", &pdf, true),
        sealed_report("Vigilancia frente a la radio.", b"small", false),
        raw,
    ];
    let bundle_path = dir.path().join("bundle.tar");
    let ids = make_bundle(&bundle_path, &messages);

    for reviewer in [1u8, 2] {
        let out = dir.path().join(format!("out-{reviewer}"));
        let o = open_demo(&bundle_path, reviewer, &out);
        assert!(o.status.success(), "reviewer {reviewer}: {}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains("opened             3"), "{text}");
        assert!(text.contains("urgent             1"), "{text}");
        assert!(
            text.contains(&ids[0].to_string()),
            "the urgent id is listed: {text}"
        );
        assert!(stderr(&o).contains("Sandbox: active"), "{}", stderr(&o));

        let first = out.join(ids[0].to_string());
        assert_eq!(
            std::fs::read(first.join("files/001-acta_de_la_asamblea.pdf")).expect("attachment"),
            pdf,
            "attachment byte for byte, under a safe name"
        );
        let txt = std::fs::read_to_string(first.join("report.txt")).expect("txt");
        assert!(txt.starts_with("!!! URGENTE"), "{txt}");
        assert!(txt.contains("¿En qué región?: Puno"), "{txt}");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(first.join("report.json")).expect("json"))
                .expect("json");
        assert_eq!(json["description"], "Nos amenazaron en la asamblea.");
        // report.json points at the file as saved (issue 17, item 10), the archive name kept.
        assert_eq!(
            json["attachments"][0]["path"],
            "files/001-acta_de_la_asamblea.pdf"
        );
        assert_eq!(json["attachments"][0]["archive_path"], "files/001.pdf");
        let raw_dir = out.join(ids[2].to_string());
        assert_eq!(
            std::fs::read(raw_dir.join("message.bin")).expect("raw"),
            b"just a note, encrypted by hand"
        );
        // Private files and folders.
        use std::os::unix::fs::PermissionsExt;
        for (path, _) in all_files(&out) {
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
        let mode = std::fs::metadata(&first)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);

        // Again: no report changes, everything is "already there", exit 0; the urgent one is
        // still counted and named (it said "urgent 0" before, issue 17 item 10).
        let reports = |out: &Path| -> Vec<String> {
            tree(out).into_iter().filter(|p| p.contains('/')).collect()
        };
        let before = reports(&out);
        let o = open_demo(&bundle_path, reviewer, &out);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stdout(&o).contains("already there      3"),
            "{}",
            stdout(&o)
        );
        assert!(
            stdout(&o).contains("urgent             1"),
            "{}",
            stdout(&o)
        );
        assert!(
            stdout(&o).contains(&format!("{}  read first: ", ids[0])),
            "{}",
            stdout(&o)
        );
        assert_eq!(reports(&out), before);
    }

    // list and unpack.
    let o = run(Command::new(review_bin()).arg("list").arg(&bundle_path));
    assert!(o.status.success());
    for id in &ids {
        assert!(stdout(&o).contains(&id.to_string()));
    }
    let unpacked = dir.path().join("unpacked");
    let o = run(Command::new(review_bin())
        .arg("unpack")
        .arg(&bundle_path)
        .arg("--out")
        .arg(&unpacked));
    assert!(o.status.success(), "{}", stderr(&o));
    for (id, message) in ids.iter().zip(&messages) {
        assert_eq!(
            &std::fs::read(unpacked.join(format!("{id}.pgp"))).expect("unpacked"),
            message
        );
    }
    let gpg = Gpg::new();
    assert_eq!(
        gpg.decrypt(&unpacked.join(format!("{}.pgp", ids[2]))),
        b"just a note, encrypted by hand"
    );
}

/// Runs `gpg` in a fresh home; returns the home.
fn gpg_key(dir: &Path) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let home = tempfile::tempdir().expect("home");
    let gpg = |args: &[&str]| {
        let o = run(Command::new("gpg").env("GNUPGHOME", home.path()).args(args));
        assert!(o.status.success(), "gpg {args:?}: {}", stderr(&o));
        o
    };
    let passphrase = dir.join("gpg.passphrase");
    std::fs::write(&passphrase, "a gpg passphrase\n").expect("write");
    gpg(&[
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "a gpg passphrase",
        "--quick-gen-key",
        "GnuPG Reviewer <gpg@example.org>",
        "future-default",
        "default",
        "never",
    ]);
    let secret = gpg(&[
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "a gpg passphrase",
        "--armor",
        "--export-secret-keys",
    ]);
    let public = gpg(&["--armor", "--export"]);
    let sec = dir.join("gpg.sec.asc");
    let pubp = dir.join("gpg.pub.asc");
    std::fs::write(&sec, secret.stdout).expect("write");
    std::fs::write(&pubp, public.stdout).expect("write");
    let _ = passphrase;
    (home, sec, pubp)
}

#[test]
fn keys_from_gpg_and_sq_open_submissions_from_every_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // A GnuPG 2.2 key (ed25519/cv25519, passphrase) and an sq key (no passphrase).
    let (_gpg_home, gpg_sec, gpg_pub) = gpg_key(d);
    let sq_key = d.join("sq.key");
    let o = run(Command::new("sq")
        .args([
            "key",
            "generate",
            "--userid",
            "sq reviewer <sq@example.org>",
            "--export",
        ])
        .arg(&sq_key));
    assert!(o.status.success(), "sq key generate: {}", stderr(&o));
    let sq_pub = d.join("sq.pub");
    let o = run(Command::new("sq")
        .args(["key", "extract-cert", "--output"])
        .arg(&sq_pub)
        .arg(&sq_key));
    assert!(o.status.success(), "sq extract-cert: {}", stderr(&o));

    // A gateway whose reviewers are those two keys plus demo reviewer 1.
    let data = d.join("data");
    let config = d.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nreviewer_certs = [\"{}\", \"{}\", \"{}\"]\n[tls]\nmode = \"plain-http\"\n",
            data.display(),
            gpg_pub.display(),
            sq_pub.display(),
            demo_pub(1).display()
        ),
    )
    .expect("config");
    let gateway = Gateway::start_config(&config, &data);

    // resguardo-submit (a payload v1), gpg --encrypt and sq encrypt (plain files).
    let message = d.join("m.txt");
    std::fs::write(&message, "informe desde la terminal").expect("write");
    let o = run(Command::new(submit_bin())
        .args(["--server", &gateway.url, "--message"])
        .arg(&message));
    assert!(o.status.success(), "{}", stderr(&o));
    let submit_id = stdout(&o).trim().to_string();

    let gpg_home = tempfile::tempdir().expect("home");
    for cert in [&gpg_pub, &sq_pub, &demo_pub(1)] {
        let o = run(Command::new("gpg")
            .env("GNUPGHOME", gpg_home.path())
            .arg("--import")
            .arg(cert));
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let gpg_sealed = d.join("gpg.pgp");
    let o = run(Command::new("gpg")
        .env("GNUPGHOME", gpg_home.path())
        .args(["--batch", "--trust-model", "always", "--encrypt"])
        .args([
            "-r",
            "gpg@example.org",
            "-r",
            "sq@example.org",
            "-r",
            "C95C29B449920DED0872A622F1F1AA6FAE2F54AD",
        ])
        .arg("--output")
        .arg(&gpg_sealed)
        .arg(&message));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(Command::new(submit_bin())
        .args(["--server", &gateway.url, "--sealed"])
        .arg(&gpg_sealed));
    assert!(o.status.success(), "{}", stderr(&o));
    let gpg_id = stdout(&o).trim().to_string();

    let sq_sealed = d.join("sq.pgp");
    let o = run(Command::new("sq")
        .args(["encrypt", "--recipient-cert"])
        .arg(&gpg_pub)
        .arg("--recipient-cert")
        .arg(&sq_pub)
        .arg("--recipient-cert")
        .arg(demo_pub(1))
        .arg("--output")
        .arg(&sq_sealed)
        .arg(&message));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(Command::new(submit_bin())
        .args(["--server", &gateway.url, "--sealed"])
        .arg(&sq_sealed));
    assert!(o.status.success(), "{}", stderr(&o));
    let sq_id = stdout(&o).trim().to_string();

    let bundle_path = d.join("bundle.tar");
    export(&data, &bundle_path);
    gateway.stop();

    let passphrase = d.join("gpg.passphrase");
    for (name, key, pass) in [
        ("gpg", gpg_sec.as_path(), Some(passphrase.as_path())),
        ("sq", sq_key.as_path(), None),
        (
            "keygen",
            demo_sec(1).as_path(),
            Some(demo_passphrase(1).as_path()),
        ),
    ] {
        let out = d.join(format!("out-{name}"));
        let o = open(&bundle_path, key, pass, &out);
        assert!(o.status.success(), "{name}: {}\n{}", stdout(&o), stderr(&o));
        assert!(
            stdout(&o).contains("opened             3"),
            "{name}: {}",
            stdout(&o)
        );
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(&submit_id).join("report.json")).expect("report"),
        )
        .expect("json");
        assert_eq!(report["description"], "informe desde la terminal");
        for id in [&gpg_id, &sq_id] {
            assert_eq!(
                std::fs::read(out.join(id).join("message.bin")).expect("raw"),
                b"informe desde la terminal",
                "{name}: {id}"
            );
        }
    }
}

/// Asserts a failed run: exit code, one line naming the reason, and nothing written for `id`.
fn assert_item_failed(o: &Output, out: &Path, id: &SubmissionId, reason: &str) {
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(o), stderr(o));
    let err = stderr(o);
    let line = err
        .lines()
        .find(|l| l.starts_with(&id.to_string()))
        .unwrap_or_else(|| panic!("no line for {id} in:\n{err}"));
    assert!(line.contains(reason), "{line}");
    assert!(
        !out.join(id.to_string()).exists(),
        "nothing written for {id}"
    );
    let leftovers: Vec<String> = tree(out)
        .into_iter()
        .filter(|p| p.contains(".resguardo-staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_submissions_fail_alone_with_a_reason_and_leave_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let good = sealed_report("bien", b"ok", false);
    let report_json = |r: &Report| serde_json::to_vec(r).expect("json");
    let base = Report {
        schema: payload::SCHEMA.into(),
        language: "es".into(),
        urgent: false,
        sealed_by: None,
        fields: BTreeMap::new(),
        description: "x".into(),
        attachments: vec![],
        conversation: None,
    };
    let with_attachment = |path: &str, size: u64, hash: &str| {
        let mut r = base.clone();
        r.attachments.push(Attachment {
            name: "a".into(),
            size,
            sha256: hash.into(),
            media_type: "text/plain".into(),
            path: path.into(),
        });
        r
    };
    let data = b"attachment".to_vec();
    let stranger =
        resguardo::testing::reviewer_key("stranger", resguardo::keyring::KeyProfile::Compatible);

    // A compressed message that expands far beyond the bound given below (a "zip bomb").
    let bomb = {
        use resguardo::keyring::ReviewerKeyring;
        use sequoia_openpgp::serialize::stream::{Compressor, Encryptor, LiteralWriter, Message};
        let keyring = ReviewerKeyring::load(&[demo_pub(1)]).expect("keyring");
        let mut out = Vec::new();
        let m = Message::new(&mut out);
        let m = Encryptor::for_recipients(m, keyring.recipients())
            .build()
            .expect("enc");
        let m = Compressor::new(m).build().expect("compress");
        let mut w = LiteralWriter::new(m).build().expect("literal");
        let zeros = vec![0u8; 1024 * 1024];
        // A valid report.json, then a padding entry of 40 MiB of zeros: tiny once compressed.
        let report = raw_tar(&[(b"report.json", b'0', &report_json(&base))]);
        w.write_all(&report[..report.len() - 1024]).expect("write");
        let mut header = tar::Header::new_ustar();
        header.set_path("padding").expect("path");
        header.set_size(40 * 1024 * 1024);
        header.set_cksum();
        w.write_all(header.as_bytes()).expect("write");
        for _ in 0..41 {
            w.write_all(&zeros).expect("write");
        }
        w.finalize().expect("finalize");
        out
    };

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "for another key",
            resguardo::testing::seal(&[&stranger], b"x"),
            "not encrypted to this key",
        ),
        (
            "report.json missing",
            sealed(&raw_tar(&[(b"files/001", b'0', b"x")])),
            "report.json missing",
        ),
        (
            "report.json malformed",
            sealed(&raw_tar(&[(b"report.json", b'0', b"{not json")])),
            "report.json invalid",
        ),
        (
            "traversal name",
            sealed(&raw_tar(&[
                (
                    b"report.json",
                    b'0',
                    &report_json(&with_attachment(
                        "files/001",
                        data.len() as u64,
                        &sha(&data),
                    )),
                ),
                (b"../../../tmp/owned", b'0', &data),
            ])),
            "attachment does not match its report",
        ),
        (
            "absolute path in report",
            sealed(&raw_tar(&[
                (
                    b"report.json",
                    b'0',
                    &report_json(&with_attachment(
                        "/etc/cron.d/x",
                        data.len() as u64,
                        &sha(&data),
                    )),
                ),
                (b"/etc/cron.d/x", b'0', &data),
            ])),
            "report.json invalid",
        ),
        (
            "size lie",
            sealed(&raw_tar(&[
                (
                    b"report.json",
                    b'0',
                    &report_json(&with_attachment("files/001", 3, &sha(&data))),
                ),
                (b"files/001", b'0', &data),
            ])),
            "attachment does not match its report",
        ),
        (
            "hash lie",
            sealed(&raw_tar(&[
                (
                    b"report.json",
                    b'0',
                    &report_json(&with_attachment(
                        "files/001",
                        data.len() as u64,
                        &sha(b"other"),
                    )),
                ),
                (b"files/001", b'0', &data),
            ])),
            "attachment does not match its report",
        ),
        (
            "claims beyond the bound",
            sealed(&raw_tar(&[(
                b"report.json",
                b'0',
                &report_json(&with_attachment(
                    "files/001",
                    5 * 1024 * 1024 * 1024,
                    &sha(&data),
                )),
            )])),
            "payload over its bound",
        ),
        ("expands beyond the bound", bomb, "payload over its bound"),
    ];
    let mut messages: Vec<Vec<u8>> = vec![good.clone()];
    messages.extend(cases.iter().map(|(_, m, _)| m.clone()));
    let bundle_path = d.join("bundle.tar");
    let ids = make_bundle(&bundle_path, &messages);
    let out = d.join("out");
    let o = run(Command::new(review_bin())
        .arg("open")
        .arg(&bundle_path)
        .arg("--key")
        .arg(demo_sec(1))
        .arg("--passphrase-file")
        .arg(demo_passphrase(1))
        .arg("--out")
        .arg(&out)
        .args(["--max-plaintext", "10485760"]));
    for ((name, _, reason), id) in cases.iter().zip(&ids[1..]) {
        eprintln!("case {name}");
        assert_item_failed(&o, &out, id, reason);
    }
    assert!(
        out.join(ids[0].to_string()).join("report.json").is_file(),
        "the good one opens"
    );
    assert!(
        stdout(&o).contains("opened             1"),
        "{}",
        stdout(&o)
    );
    assert!(!Path::new("/tmp/owned").exists());
}

#[test]
fn damaged_and_tampered_ciphertext_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let good = sealed_report("intacto", b"ok", false);
    let victim = sealed_report("alterado", &vec![5u8; 50_000], false);

    // 1. A byte flipped in the bundle file: the manifest's SHA-256 catches it before decryption.
    let bundle_path = d.join("flipped.tar");
    let ids = make_bundle(&bundle_path, &[good.clone(), victim.clone()]);
    let mut bytes = std::fs::read(&bundle_path).expect("read");
    let at = bytes.len() - 1024 - 20_000;
    bytes[at] ^= 0x40;
    std::fs::write(&bundle_path, &bytes).expect("write");
    let out = d.join("out1");
    let o = open_demo(&bundle_path, 1, &out);
    assert_item_failed(&o, &out, &ids[1], "damaged in the bundle");
    assert!(out.join(ids[0].to_string()).is_dir());

    // 2. Tampered by someone who also fixed the manifest: OpenPGP's integrity check catches it.
    for (offset_from_end, label) in [(30usize, "end"), (20_000, "middle")] {
        let mut tampered = victim.clone();
        let at = tampered.len() - offset_from_end;
        tampered[at] ^= 0x01;
        let bundle_path = d.join(format!("tampered-{label}.tar"));
        let ids = make_bundle(&bundle_path, &[good.clone(), tampered]);
        let out = d.join(format!("out-{label}"));
        let o = open_demo(&bundle_path, 1, &out);
        assert_item_failed(&o, &out, &ids[1], "tampered");
        assert!(out.join(ids[0].to_string()).is_dir());
    }
}

#[test]
fn bad_bundles_keys_and_passphrases_get_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let good = sealed_report("uno", b"1", false);
    let bundle_path = d.join("bundle.tar");
    let ids = make_bundle(&bundle_path, &[good.clone(), good.clone(), good.clone()]);

    let one_line = |o: &Output, code: i32, needle: &str| {
        assert_eq!(o.status.code(), Some(code), "{}\n{}", stdout(o), stderr(o));
        let err = stderr(o);
        let line = err
            .lines()
            .find(|l| l.starts_with("resguardo-review: error:"))
            .unwrap_or_else(|| panic!("no error line in {err}"));
        assert!(line.contains(needle), "{needle:?} not in {line:?}");
    };

    // Wrong passphrase: refused before anything is read or written.
    let wrong = d.join("wrong");
    std::fs::write(&wrong, "not the passphrase\n").expect("write");
    let out = d.join("out-wrong");
    let o = open(&bundle_path, &demo_sec(1), Some(&wrong), &out);
    one_line(&o, 3, "wrong passphrase");
    assert!(!out.exists() || tree(&out).is_empty());

    // A public certificate instead of the secret key.
    let o = open(&bundle_path, &demo_pub(1), None, &d.join("out-pub"));
    one_line(&o, 3, "no secret encryption subkey");

    // Truncated bundle: the complete submissions open, the rest is reported.
    let bytes = std::fs::read(&bundle_path).expect("read");
    let truncated = d.join("truncated.tar");
    let cut = bytes.len() - 1024 - 512 - 10_000;
    std::fs::write(&truncated, &bytes[..cut]).expect("write");
    let out = d.join("out-truncated");
    let o = open_demo(&truncated, 1, &out);
    one_line(&o, 1, "truncated");
    assert!(out.join(ids[0].to_string()).is_dir());
    assert!(!out.join(ids[2].to_string()).exists());

    // A future format version.
    let future = d.join("future.tar");
    let manifest = br#"{"format":"resguardo.bundle/2","batch":"00000000000000000000000000000000","created":"2026-11-29","submissions":[]}"#;
    std::fs::write(&future, raw_tar(&[(b"bundle.json", b'0', manifest)])).expect("write");
    let o = open_demo(&future, 1, &d.join("out-future"));
    one_line(&o, 3, "newer than this tool understands");

    // Empty file, empty archive, not a bundle at all.
    let empty = d.join("empty.tar");
    std::fs::write(&empty, b"").expect("write");
    let o = open_demo(&empty, 1, &d.join("out-empty"));
    one_line(&o, 3, "the bundle is empty");
    let zeros = d.join("zeros.tar");
    std::fs::write(&zeros, [0u8; 1024]).expect("write");
    let o = open_demo(&zeros, 1, &d.join("out-zeros"));
    one_line(&o, 3, "the bundle is empty");
    let text = d.join("text.tar");
    std::fs::write(&text, "hello ".repeat(200)).expect("write");
    let o = open_demo(&text, 1, &d.join("out-text"));
    one_line(&o, 3, "not a Resguardo bundle");

    // A missing bundle file.
    let o = open_demo(&d.join("nope.tar"), 1, &d.join("out-nope"));
    one_line(&o, 3, "nope.tar");

    // --require-sandbox is satisfied on this machine, and said so.
    let out = d.join("out-sandbox");
    let o = run(Command::new(review_bin())
        .arg("open")
        .arg(&bundle_path)
        .arg("--key")
        .arg(demo_sec(1))
        .arg("--passphrase-file")
        .arg(demo_passphrase(1))
        .arg("--out")
        .arg(&out)
        .arg("--require-sandbox"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Sandbox: active (Landlock"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("network"), "{}", stderr(&o));
}

/// A payload v1 sealed to both demo reviewers, with the urgency answer as the writers now give
/// it (`fields.urgent`), or without it.
fn sealed_answer(
    description: &str,
    urgent: bool,
    answer: Option<&str>,
    region: &str,
    contact: Option<&str>,
) -> Vec<u8> {
    let mut fields = BTreeMap::new();
    fields.insert(
        "what_happened".to_string(),
        FieldValue::Choices(vec!["threat".into(), "surveillance".into()]),
    );
    fields.insert("region".to_string(), FieldValue::Text(region.into()));
    if let Some(answer) = answer {
        fields.insert("urgent".to_string(), FieldValue::Text(answer.into()));
    }
    if let Some(contact) = contact {
        fields.insert("contact".to_string(), FieldValue::Text(contact.into()));
    }
    let report = Report {
        schema: payload::SCHEMA.into(),
        language: "es".into(),
        urgent,
        sealed_by: Some("browser".into()),
        fields,
        description: description.into(),
        attachments: vec![],
        conversation: None,
    };
    let (plain, _) = payload::write_payload(Vec::new(), &report, vec![]).expect("payload");
    sealed(&plain)
}

fn urgency_line(out: &Path, id: &SubmissionId) -> String {
    let txt = std::fs::read_to_string(out.join(id.to_string()).join("report.txt")).expect("txt");
    let es: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("static/i18n/es.json")).expect("es.json"),
    )
    .expect("json");
    let label = es["field.urgent.label"]
        .as_str()
        .expect("label")
        .to_string();
    txt.lines()
        .find(|l| l.starts_with(&label))
        .unwrap_or_else(|| panic!("no urgency line in {txt}"))
        .to_string()
}

/// Issue 17, items 10 and 11: urgency with three answers, the index of opened reports (rebuilt
/// after every run), and `list DIR`.
#[test]
fn urgency_answers_the_index_and_listing_opened_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let first = d.join("first.tar");
    let first_ids = make_bundle(
        &first,
        &[
            sealed_answer("dijo que sí", true, Some("yes"), "cusco", Some("Signal")),
            sealed_answer("dijo que no", false, Some("no"), "puno", None),
            sealed_answer("no respondió", false, None, "=1+2", Some("  ")),
            sealed_answer("cliente antiguo", true, None, "lima", None),
        ],
    );
    let out = d.join("out");
    let o = open_demo(&first, 1, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("urgent             2"),
        "{}",
        stdout(&o)
    );
    assert!(urgency_line(&out, &first_ids[0]).ends_with("?: Sí"));
    assert!(urgency_line(&out, &first_ids[1]).ends_with("?: No"));
    assert!(urgency_line(&out, &first_ids[2]).ends_with("?: sin respuesta"));
    assert!(
        urgency_line(&out, &first_ids[3]).ends_with("?: Sí"),
        "older clients"
    );

    // A second bundle into the same folder: the index lists both, urgent first.
    let second = d.join("second.tar");
    let second_ids = make_bundle(
        &second,
        &[
            sealed_answer("otro urgente", false, Some("yes"), "loreto", None),
            sealed(b"a plain note"),
        ],
    );
    let o = open_demo(&second, 1, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("(6 reports, also as index.csv)"),
        "{}",
        stdout(&o)
    );
    let csv = std::fs::read_to_string(out.join("index.csv")).expect("index.csv");
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "id,day,urgent,region,types,contact_given,sealed_by,attachments,folder"
    );
    assert_eq!(lines.len(), 7, "{csv}");
    let row = |id: &SubmissionId| -> Vec<String> {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&id.to_string()))
            .unwrap_or_else(|| panic!("{id} not in {csv}"));
        line.split(',').map(str::to_string).collect()
    };
    let yes = row(&first_ids[0]);
    assert_eq!(yes[2], "yes");
    assert_eq!(yes[3], "cusco");
    assert_eq!(yes[4], "threat; surveillance");
    assert_eq!(yes[5], "yes", "contact given");
    assert_eq!(yes[6], "browser");
    assert_eq!(yes[7], "0");
    assert_eq!(yes[8], format!("{}/", first_ids[0]));
    assert_eq!(row(&first_ids[1])[2], "no");
    let unanswered = row(&first_ids[2]);
    assert_eq!(unanswered[2], "unanswered");
    assert_eq!(unanswered[3], "'=1+2", "a formula becomes text");
    assert_eq!(unanswered[5], "no", "blank contact is no contact");
    assert_eq!(row(&first_ids[3])[2], "yes");
    assert_eq!(row(&second_ids[0])[2], "yes");
    assert_eq!(row(&second_ids[1])[2], "unanswered");
    // Urgent first.
    let urgent_rows = lines[1..]
        .iter()
        .take_while(|l| l.split(',').nth(2) == Some("yes"))
        .count();
    assert_eq!(urgent_rows, 3, "{csv}");
    let txt = std::fs::read_to_string(out.join("index.txt")).expect("index.txt");
    assert_eq!(txt.lines().count(), 7, "{txt}");
    assert!(txt.starts_with("id "), "{txt}");

    // list DIR: every report, urgent first; --urgent: only those.
    let o = run(Command::new(review_bin()).arg("list").arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = stdout(&o);
    assert_eq!(listed.lines().count(), 7, "{listed}");
    assert!(
        listed.lines().nth(1).is_some_and(|l| l.contains("YES")),
        "{listed}"
    );
    let o = run(Command::new(review_bin())
        .args(["list", "--urgent"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let urgent = stdout(&o);
    assert_eq!(urgent.lines().count(), 4, "{urgent}");
    for id in [&first_ids[0], &first_ids[3], &second_ids[0]] {
        assert!(urgent.contains(&id.to_string()), "{urgent}");
    }
    assert!(!urgent.contains(&first_ids[1].to_string()), "{urgent}");
    // --urgent with a bundle is a usage error; an empty folder says so.
    let o = run(Command::new(review_bin())
        .args(["list", "--urgent"])
        .arg(&first));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let empty = d.join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let o = run(Command::new(review_bin()).arg("list").arg(&empty));
    assert!(o.status.success());
    assert!(
        stdout(&o).starts_with("No opened reports in"),
        "{}",
        stdout(&o)
    );
}

/// Issue 17, item 12: after every run over a bundle, a receipt lists what is opened in --out
/// (by this run or an earlier one) and what failed, with the reason.
#[test]
fn open_writes_the_receipt_purge_will_require() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let stranger =
        resguardo::testing::reviewer_key("stranger", resguardo::keyring::KeyProfile::Compatible);
    let messages = vec![
        sealed_report("uno", b"1", false),
        resguardo::testing::seal(&[&stranger], b"not for us"),
        sealed_report("tres", b"3", true),
    ];
    let bundle_path = d.join("bundle.tar");
    let ids = make_bundle(&bundle_path, &messages);
    let manifest = resguardo::bundle::read_manifest(std::io::BufReader::new(
        std::fs::File::open(&bundle_path).expect("open"),
    ))
    .expect("manifest");
    let out = d.join("out");
    let receipt_path = out.join(format!("open-receipt-{}.json", manifest.batch));

    let o = open_demo(&bundle_path, 1, &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "Receipt for the operator: {}",
            receipt_path.display()
        )),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("purge needs it"), "{}", stdout(&o));
    let receipt = resguardo::bundle::receipt::read(&receipt_path).expect("receipt");
    assert_eq!(receipt.format, "resguardo.open-receipt/2");
    assert_eq!(receipt.batch, manifest.batch);
    assert_eq!(receipt.opened, vec![ids[0], ids[2]]);
    // Each opened ciphertext, as the bundle gave it: what a network purge deletes by.
    for (opened, id) in receipt.ciphertexts.iter().zip([ids[0], ids[2]]) {
        let entry = manifest.submissions.iter().find(|e| e.id == id).unwrap();
        assert_eq!(
            (opened.id, opened.size, &opened.sha256),
            (id, entry.size, &entry.sha256)
        );
    }
    assert_eq!(receipt.failed.len(), 1);
    assert_eq!(receipt.failed[0].id, ids[1]);
    assert_eq!(receipt.failed[0].reason, "not encrypted to this key");

    // Reviewer 2 opens the same bundle twice: opened now or by the earlier run, everything of the
    // bundle that is in --out counts.
    let out2 = d.join("out2");
    std::fs::create_dir(&out2).expect("mkdir");
    let o = open_demo(&bundle_path, 2, &out2);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let again = open_demo(&bundle_path, 2, &out2);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("already there      2"),
        "{}",
        stdout(&again)
    );
    let receipt = resguardo::bundle::receipt::read(
        &out2.join(format!("open-receipt-{}.json", manifest.batch)),
    )
    .expect("receipt");
    assert_eq!(receipt.opened, vec![ids[0], ids[2]]);
    assert_eq!(receipt.failed.len(), 1);

    // A truncated copy: the receipt still lists what is open, and only what the run reached
    // among the failures.
    let bytes = std::fs::read(&bundle_path).expect("read");
    let truncated = d.join("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1024 - 512 - 10_000]).expect("write");
    let o = open_demo(&truncated, 1, &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let receipt = resguardo::bundle::receipt::read(&receipt_path).expect("receipt");
    assert_eq!(
        receipt.opened,
        vec![ids[0], ids[2]],
        "opened earlier still counts"
    );
    assert_eq!(receipt.failed.len(), 1);
}

#[test]
fn keygen_prints_a_grouped_labelled_fingerprint_and_bare_hex_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passphrase = dir.path().join("passphrase");
    std::fs::write(&passphrase, "una frase larga de prueba\n").expect("write");
    let keygen = |name: &str, extra: &[&str], lang: &str| {
        Command::new(review_bin())
            .env("RESGUARDO_LANG", lang)
            .args(["keygen", "--name", name, "--out"])
            .arg(dir.path().join(name))
            .arg("--passphrase-file")
            .arg(&passphrase)
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("keygen")
    };
    let o = keygen("uno", &[], "en");
    assert!(o.status.success(), "{}", stderr(&o));
    let line = stdout(&o);
    let grouped = line
        .trim_end()
        .strip_prefix("Fingerprint: ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let groups: Vec<&str> = grouped.split_whitespace().collect();
    assert_eq!(groups.len(), 10, "{grouped}");
    assert!(groups
        .iter()
        .all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit())));
    assert!(
        grouped.contains("  "),
        "a double space at the middle: {grouped}"
    );
    let cert = resguardo::keyring::ReviewerKeyring::load(&[dir.path().join("uno/uno.pub.asc")])
        .expect("the public key loads");
    assert_eq!(
        groups.concat(),
        cert.reviewers()[0].fingerprint().to_hex(),
        "the printed fingerprint is the key's"
    );
    assert!(stderr(&o).contains("uno.sec.asc"), "{}", stderr(&o));

    let o = keygen("dos", &["--fingerprint-only"], "es");
    assert!(o.status.success(), "{}", stderr(&o));
    let hex = stdout(&o);
    assert_eq!(hex.trim().len(), 40, "{hex}");
    assert!(hex.trim().chars().all(|c| c.is_ascii_hexdigit()));

    let o = keygen("tres", &[], "es");
    assert!(stdout(&o).starts_with("Huella digital: "), "{}", stdout(&o));
    assert!(stderr(&o).contains("clave secreta"), "{}", stderr(&o));
}

/// Reviewers read Spanish: the locale (or RESGUARDO_LANG) chooses the language of help, the
/// summary, the sandbox line and errors; report.txt stays in the report's language.
#[test]
fn spanish_from_the_locale_for_help_summary_sandbox_line_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let bundle_path = d.join("bundle.tar");
    let ids = make_bundle(&bundle_path, &[sealed_report("hola", b"1", true)]);
    let spanish = |cmd: &mut Command| {
        cmd.env_remove("RESGUARDO_LANG")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env("LANG", "es_PE.UTF-8")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run")
    };
    let out = d.join("out");
    let o = spanish(
        Command::new(review_bin())
            .arg("open")
            .arg(&bundle_path)
            .arg("--key")
            .arg(demo_sec(1))
            .arg("--passphrase-file")
            .arg(demo_passphrase(1))
            .arg("--out")
            .arg(&out),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = stdout(&o);
    assert!(summary.starts_with("Paquete "), "{summary}");
    assert!(summary.contains("  abiertos           1"), "{summary}");
    assert!(summary.contains("  urgentes           1"), "{summary}");
    assert!(
        summary.contains("Recibo para quien opera el servidor"),
        "{summary}"
    );
    assert!(
        stderr(&o).contains("Aislamiento: activo (Landlock"),
        "{}",
        stderr(&o)
    );
    let txt =
        std::fs::read_to_string(out.join(ids[0].to_string()).join("report.txt")).expect("txt");
    assert!(txt.starts_with("!!! URGENTE"), "{txt}");

    let wrong = d.join("wrong");
    std::fs::write(&wrong, "no es la frase\n").expect("write");
    let o = spanish(
        Command::new(review_bin())
            .arg("open")
            .arg(&bundle_path)
            .arg("--key")
            .arg(demo_sec(1))
            .arg("--passphrase-file")
            .arg(&wrong)
            .arg("--out")
            .arg(d.join("out-wrong")),
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).starts_with("resguardo-review: error: frase de contraseña incorrecta"),
        "{}",
        stderr(&o)
    );
    let o = spanish(Command::new(review_bin()).args(["open", "--help"]));
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("Descifrar y comprobar"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("Uso: "), "{}", stdout(&o));
    // RESGUARDO_LANG wins over the locale.
    let o = Command::new(review_bin())
        .env("RESGUARDO_LANG", "en")
        .env("LANG", "es_PE.UTF-8")
        .args(["open", "--help"])
        .output()
        .expect("run");
    assert!(stdout(&o).contains("Decrypt and check"), "{}", stdout(&o));
}

/// Regression: `--out reports/`, a relative folder as the operator's guide writes it, made every
/// parser fail ("not an absolute staging directory").
#[test]
fn a_relative_out_folder_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("b.tar");
    let ids = make_bundle(&bundle, &[sealed_report("relativa", b"x", false)]);
    let o = run(Command::new(review_bin())
        .current_dir(dir.path())
        .args(["open", "b.tar", "--key"])
        .arg(demo_sec(1))
        .arg("--passphrase-file")
        .arg(demo_passphrase(1))
        .args(["--out", "reports/"]));
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(dir
        .path()
        .join("reports")
        .join(ids[0].to_string())
        .join("report.txt")
        .is_file());
}
