//! Courier fetch throughput (issue 11): `resguardo-review fetch` of 1,000 × 64 KiB submissions
//! over loopback TLS, against the local export of the same batch measured in the same run (the
//! store writing the bundle to a file, syncing it and reading it back to verify, as `export`
//! does). Goal: fetch ≥ 0.8× the local export.
//!
//! `cargo bench --bench fetch` (about a minute). `FETCH_N` changes the number of submissions.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use resguardo::store::{StoreOptions, SubmissionStore};
use resguardo::submit::{seal_report, GatewayClient, ReportInput, Trust};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: they must build, but
    // measuring is for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("fetch benchmark: built; run `cargo bench --bench fetch` to measure");
        return;
    }
    let n: usize = std::env::var("FETCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = resguardo::testing::bench_scratch_dir();
    let keys = |f: &str| repo().join("keys-example").join(f);
    let data_dir = dir.path().join("data");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nreviewer_certs = [\"{}\"]\n\
             [[couriers]]\ncert = \"{}\"\n[tls]\nmode = \"self-signed\"\n\
             [proof_of_work]\nenabled = false\n[rate_limits]\nsubmissions_per_minute = 1000000\n\
             submission_burst = 100000\nrequests_per_second = 1000000\nrequest_burst = 1000000\nper_connection_per_second = 1000000\nper_connection_burst = 1000000\nmax_requests_per_connection = 1000000\nkeys_per_second = 1000000\nkeys_burst = 1000000\nchallenges_per_second = 1000000\nchallenge_burst = 1000000\n",
            data_dir.display(),
            keys("demo-reviewer-1.pub.asc").display(),
            keys("demo-courier-1.pub.asc").display(),
        ),
    )
    .expect("config");
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_resguardo-gateway"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gateway");
    let mut url = String::new();
    for line in BufReader::new(gateway.stdout.take().expect("stdout")).lines() {
        if let Some(u) = line.expect("line").strip_prefix("Listening on ") {
            url = u.to_string();
            break;
        }
    }
    assert!(!url.is_empty(), "the gateway did not start");
    let ca = data_dir.join("tls/cert.pem");

    // 1,000 submissions of about 64 KiB sealed.
    let client = GatewayClient::new(&url, Trust::CaCert(ca.clone()), None).expect("client");
    let gateway_keys = client.reviewer_keys().expect("keys");
    let message = dir.path().join("m.txt");
    std::fs::write(&message, "benchmark report").expect("message");
    let attachment = dir.path().join("a.bin");
    std::fs::write(&attachment, vec![7u8; 60 * 1024]).expect("attachment");
    for _ in 0..n {
        let input = ReportInput {
            message: message.clone(),
            attachments: vec![attachment.clone()],
            language: "es".into(),
            urgent: false,
            fields: vec![],
            conversation: None,
        };
        let sealed = seal_report(&gateway_keys, &input).expect("seal");
        client
            .submit_sealed(sealed.file, sealed.triage.as_deref())
            .expect("submit");
    }

    let bundle = dir.path().join("fetched.tar");
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_resguardo-review"))
        .args(["fetch", "--server", &url, "--ca-cert"])
        .arg(&ca)
        .arg("--courier-key")
        .arg(keys("demo-courier-1.sec.asc"))
        .arg("--passphrase-file")
        .arg(keys("demo-courier-1.passphrase"))
        .arg("--out")
        .arg(&bundle)
        .output()
        .expect("fetch");
    let fetch_secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&bundle).expect("bundle").len();
    let _ = gateway.kill();
    let _ = gateway.wait();

    // The baseline: the store exports the same batch to a file, syncs and verifies it.
    let manifest = resguardo::operator::verify_bundle_file(&bundle).expect("bundle");
    let (store, _) = SubmissionStore::open(&data_dir, StoreOptions::default()).expect("store");
    let local = dir.path().join("local.tar");
    let start = Instant::now();
    let batch = store.export_batch(&manifest.batch).expect("batch");
    let file = std::fs::File::create(&local).expect("local");
    let file = store
        .write_export(&batch, std::io::BufWriter::new(file))
        .expect("export")
        .into_inner()
        .expect("flush");
    file.sync_all().expect("sync");
    resguardo::operator::verify_bundle_file(&local).expect("verify");
    let local_secs = start.elapsed().as_secs_f64();
    assert_eq!(
        std::fs::read(&local).expect("local"),
        std::fs::read(&bundle).expect("fetched"),
        "the same bytes"
    );
    let mib = size as f64 / (1024.0 * 1024.0);
    println!("Resguardo courier fetch: {n} submissions, bundle {mib:.1} MiB, loopback TLS");
    println!(
        "  fetch (start, unlock, begin, download, verify, delivered): {fetch_secs:.2} s  {:.1} MiB/s",
        mib / fetch_secs
    );
    println!(
        "  local export of the same batch (write, sync, verify): {local_secs:.2} s  {:.1} MiB/s",
        mib / local_secs
    );
    println!(
        "  ratio fetch/local: {:.2} (goal >= 0.8)",
        local_secs / fetch_secs
    );
}
