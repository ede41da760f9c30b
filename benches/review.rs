//! Review benchmark: `cargo bench --bench review`.
//!
//! Opens 100 submissions of 1 MiB each with `resguardo-review open` (one opener that decrypts and
//! checks, and a sandboxed parser process per submission that parses payload v1 and writes the
//! files; then sync) and the same 100 sealed messages with `gpg --decrypt`
//! (one process per message, as a reviewer using GnuPG would), with the same key on the same
//! machine in the same run. Prints both throughputs and the ratio.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use resguardo::keyring::ReviewerKeyring;
use resguardo::payload::{self, Report};
use ring::digest;

const COUNT: usize = 100;
const SIZE: usize = 1024 * 1024;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn key(n: u8, ext: &str) -> PathBuf {
    repo().join(format!("keys-example/demo-reviewer-{n}.{ext}"))
}

fn sealed_payload(keyring: &ReviewerKeyring, seed: u8) -> Vec<u8> {
    let data: Vec<u8> = (0..SIZE - 40_000)
        .map(|i| ((i as u32).wrapping_mul(2654435761) >> 11) as u8 ^ seed)
        .collect();
    let report = Report {
        schema: payload::SCHEMA.into(),
        language: "es".into(),
        urgent: false,
        sealed_by: Some("terminal".into()),
        fields: Default::default(),
        description: "benchmark".into(),
        attachments: vec![payload::Attachment {
            name: "evidence.bin".into(),
            size: data.len() as u64,
            sha256: hex::encode(digest::digest(&digest::SHA256, &data)),
            media_type: "application/octet-stream".into(),
            path: "files/001.bin".into(),
        }],
        conversation: None,
    };
    let mut out = Vec::new();
    let mut sealer = resguardo::seal::sealer(keyring, &mut out).expect("sealer");
    payload::write_payload(&mut sealer, &report, vec![Box::new(&data[..])]).expect("payload");
    sealer.finalize().expect("finalize");
    out
}

fn status_ok(cmd: &mut Command, what: &str) {
    let out = cmd.stdin(Stdio::null()).output().expect(what);
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: they must build, but
    // measuring is for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("review benchmark: built; run `cargo bench --bench review` to measure");
        return;
    }
    let dir = resguardo::testing::bench_scratch_dir();
    let d = dir.path();
    let keyring = ReviewerKeyring::load(&[key(1, "pub.asc"), key(2, "pub.asc")]).expect("keys");
    let messages: Vec<Vec<u8>> = (0..COUNT)
        .map(|i| sealed_payload(&keyring, i as u8))
        .collect();
    let total: usize = messages.iter().map(Vec::len).sum();
    let bundle_path = d.join("bundle.tar");
    let file = std::fs::File::create(&bundle_path).expect("bundle");
    let (_, ids) = resguardo::testing::write_bundle_of(file, &messages);
    let sealed_dir = d.join("sealed");
    std::fs::create_dir(&sealed_dir).expect("mkdir");
    for (id, m) in ids.iter().zip(&messages) {
        std::fs::write(sealed_dir.join(format!("{id}.pgp")), m).expect("write");
    }

    // GnuPG, with the same key imported into a private home.
    let home = d.join("gnupg");
    std::fs::create_dir(&home).expect("mkdir");
    let gpg = |home: &Path| {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", home)
            .args([
                "--batch",
                "--quiet",
                "--pinentry-mode",
                "loopback",
                "--passphrase-file",
            ])
            .arg(key(1, "passphrase"));
        c
    };
    status_ok(
        gpg(&home).arg("--import").arg(key(1, "sec.asc")),
        "gpg import",
    );
    let gpg_out = d.join("gpg-out");
    std::fs::create_dir(&gpg_out).expect("mkdir");
    let start = Instant::now();
    for id in &ids {
        status_ok(
            gpg(&home)
                .arg("--output")
                .arg(gpg_out.join(id.to_string()))
                .arg("--decrypt")
                .arg(sealed_dir.join(format!("{id}.pgp"))),
            "gpg decrypt",
        );
    }
    let gpg_secs = start.elapsed().as_secs_f64();
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", &home)
        .args(["--kill", "gpg-agent"])
        .status();

    let out = d.join("resguardo-out");
    let start = Instant::now();
    status_ok(
        Command::new(env!("CARGO_BIN_EXE_resguardo-review"))
            .arg("open")
            .arg(&bundle_path)
            .arg("--key")
            .arg(key(1, "sec.asc"))
            .arg("--passphrase-file")
            .arg(key(1, "passphrase"))
            .arg("--out")
            .arg(&out),
        "resguardo-review open",
    );
    let ours_secs = start.elapsed().as_secs_f64();

    let mib = total as f64 / 1048576.0;
    println!("Opening {COUNT} submissions of ~1 MiB ({mib:.1} MiB of ciphertext, SEIPD v1), same key, same run:");
    println!(
        "  resguardo-review open (1 + {COUNT} processes): {ours_secs:6.2} s  {:7.1} MiB/s",
        mib / ours_secs
    );
    println!(
        "  gpg --decrypt ({COUNT} processes):         {gpg_secs:6.2} s  {:7.1} MiB/s",
        mib / gpg_secs
    );
    println!("  ratio resguardo/gpg: {:.2}", gpg_secs / ours_secs);
}
