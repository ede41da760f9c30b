//! Alert latency (issue 11): urgent submissions at random moments, `resguardo-review watch` at
//! `--every 30`; the time from each 201 to its ring (`--on-alert` writing the clock).
//!
//! `cargo bench --bench alerts` (about 3 minutes). `ALERTS_N` and `ALERTS_EVERY` change the
//! number of submissions (50) and the poll interval (30 s). Goal: maximum ≤ 60 s, median ≤ 20 s.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use resguardo::submit::{seal_report, GatewayClient, ReportInput, Trust};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: they must build, but
    // measuring is for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("alerts benchmark: built; run `cargo bench --bench alerts` to measure");
        return;
    }
    let n = env_number("ALERTS_N", 50) as usize;
    let every = env_number("ALERTS_EVERY", 30);
    let dir = resguardo::testing::bench_scratch_dir();
    let keys = |f: &str| repo().join("keys-example").join(f);
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nreviewer_certs = [\"{}\"]\n\
             [[couriers]]\ncert = \"{}\"\n[tls]\nmode = \"plain-http\"\n\
             [proof_of_work]\nenabled = false\n",
            dir.path().join("data").display(),
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

    let rang = dir.path().join("rang");
    std::fs::create_dir_all(&rang).expect("rang");
    let mut watch = Command::new(env!("CARGO_BIN_EXE_resguardo-review"))
        .args([
            "watch",
            "--server",
            &url,
            "--every",
            &every.to_string(),
            "--courier-key",
        ])
        .arg(keys("demo-courier-1.sec.asc"))
        .arg("--passphrase-file")
        .arg(keys("demo-courier-1.passphrase"))
        .arg("--state")
        .arg(dir.path().join("watch"))
        .args([
            "--on-alert",
            &format!("date +%s.%N > {}/$RESGUARDO_ID", rang.display()),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("watch");

    let client = GatewayClient::new(&url, Trust::WebPki, None).expect("client");
    let gateway_keys = client.reviewer_keys().expect("keys");
    let message = dir.path().join("m.txt");
    std::fs::write(&message, "benchmark report").expect("message");
    // Random moments over about five polls.
    let span = (every * 5) as f64;
    let mut seed = 0x2545_f491_u64;
    let mut sent: Vec<(String, f64)> = Vec::new();
    let start = Instant::now();
    let mut moments: Vec<f64> = (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 1_000_000) as f64 / 1_000_000.0 * span
        })
        .collect();
    moments.sort_by(f64::total_cmp);
    for at in moments {
        let wait = at - start.elapsed().as_secs_f64();
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait));
        }
        let input = ReportInput {
            message: message.clone(),
            attachments: vec![],
            language: "es".into(),
            urgent: true,
            fields: vec![("what_happened".into(), "threat".into())],
            conversation: None,
        };
        let sealed = seal_report(&gateway_keys, &input).expect("seal");
        let id = client
            .submit_sealed(sealed.file, sealed.triage.as_deref())
            .expect("submit");
        sent.push((id, now_secs()));
    }
    // Every alert rings within two polls and a little.
    let deadline = Instant::now() + Duration::from_secs(every * 2 + 30);
    while Instant::now() < deadline && std::fs::read_dir(&rang).map(|d| d.count()).unwrap_or(0) < n
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    for child in [&mut watch, &mut gateway] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut latencies: Vec<f64> = Vec::new();
    let mut missing = 0;
    for (id, at) in &sent {
        match std::fs::read_to_string(rang.join(id))
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok())
        {
            Some(rung) => latencies.push(rung - at),
            None => missing += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    let median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    let max = latencies.last().copied().unwrap_or(f64::NAN);
    println!(
        "Resguardo alert latency: {n} urgent submissions at random moments, watch --every {every}"
    );
    println!("  rang: {} of {n} (missing {missing})", latencies.len());
    println!("  from 201 to ring: median {median:.1} s, max {max:.1} s (goal: median <= 20 s, max <= 60 s)");
    println!(
        "  baseline in the same run: the poll interval itself, {every} s (a ring waits at most one poll)"
    );
}
