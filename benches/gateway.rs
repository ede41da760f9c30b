//! Gateway benchmark: `cargo bench --bench gateway`.
//!
//! 1. Acknowledged submissions per second for 64 KiB sealed messages over loopback HTTP at
//!    concurrency 1, 16 and 64, against a baseline measured in the same run on the same disk:
//!    the same bytes inserted into a bare sled tree with a flush after each write, by the same
//!    number of threads. Prints both and the ratio.
//! 2. Peak resident memory of the gateway (VmHWM) while 16 clients each upload 50 MiB at once.
//!
//! Set RESGUARDO_BENCH_SECONDS to change the time per measurement (default 5).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use resguardo::keyring::ReviewerKeyring;

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sealed(size: usize) -> Vec<u8> {
    let keyring = ReviewerKeyring::load(&[
        repo().join("keys-example/demo-reviewer-1.pub.asc"),
        repo().join("keys-example/demo-reviewer-2.pub.asc"),
    ])
    .expect("demo keys");
    let mut out = Vec::new();
    let mut w = resguardo::seal::sealer(&keyring, &mut out).expect("sealer");
    // Incompressible content, like real ciphertext-bound media.
    let mut block = vec![0u8; size];
    for (i, b) in block.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2654435761) >> 13) as u8;
    }
    w.write_all(&block).expect("write");
    w.finalize().expect("finalize");
    out
}

struct Gateway {
    child: Child,
    url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(dir: &std::path::Path) -> Gateway {
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
data_dir = "{}"
reviewer_certs = ["{}", "{}"]
[tls]
mode = "plain-http"
[proof_of_work]
enabled = false
[rate_limits]
submissions_per_minute = 10000000
submission_burst = 1000000
max_concurrent_uploads = 128
requests_per_second = 1000000
request_burst = 1000000
"#,
            dir.join("data").display(),
            repo()
                .join("keys-example/demo-reviewer-1.pub.asc")
                .display(),
            repo()
                .join("keys-example/demo-reviewer-2.pub.asc")
                .display(),
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_resguardo-gateway"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gateway");
    let stdout = child.stdout.take().expect("stdout");
    let mut url = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(u) = line.strip_prefix("Listening on ") {
            url = u.to_string();
            break;
        }
    }
    assert!(!url.is_empty(), "gateway did not start");
    Gateway { child, url }
}

/// Runs `threads` workers calling `op` for `secs`; returns operations per second.
fn measure(threads: usize, secs: f64, op: impl Fn(usize) + Send + Sync + 'static) -> f64 {
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (op, stop, count) = (op.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    op(t);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("worker");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let secs: f64 = std::env::var("RESGUARDO_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let message = Arc::new(sealed(64 * 1024 - 600));
    println!(
        "Resguardo gateway benchmark ({} byte sealed messages, {secs} s per figure)",
        message.len()
    );
    println!();
    println!(
        "{:>11}  {:>14}  {:>16}  {:>6}",
        "concurrency", "gateway acks/s", "sled+flush ops/s", "ratio"
    );
    for concurrency in [1usize, 16, 64] {
        let base_dir = resguardo::testing::bench_scratch_dir();
        let db = sled::Config::new()
            .path(base_dir.path().join("baseline"))
            .cache_capacity(16 * 1024 * 1024)
            .open()
            .expect("sled");
        let tree = db.open_tree("baseline").expect("tree");
        let value = message.clone();
        let key = Arc::new(AtomicU64::new(0));
        let baseline = measure(concurrency, secs, move |_| {
            let k = key.fetch_add(1, Ordering::Relaxed).to_be_bytes();
            tree.insert(k, &value[..]).expect("insert");
            db.flush().expect("flush");
        });

        let gw_dir = resguardo::testing::bench_scratch_dir();
        let gateway = start_gateway(gw_dir.path());
        let url = format!("{}api/v1/submissions", gateway.url);
        let body = message.clone();
        let agents: Arc<Vec<ureq::Agent>> = Arc::new((0..concurrency).map(|_| agent()).collect());
        let acks = measure(concurrency, secs, move |t| {
            let mut response = agents[t]
                .post(&url)
                .header("Content-Type", "application/pgp-encrypted")
                .send(&body[..])
                .expect("post");
            assert_eq!(
                response.status().as_u16(),
                201,
                "{:?}",
                response.body_mut().read_to_string()
            );
        });
        println!(
            "{concurrency:>11}  {acks:>14.0}  {baseline:>16.0}  {:>6.2}",
            acks / baseline
        );
    }

    println!();
    let big = Arc::new(sealed(50 * 1024 * 1024 - 4096));
    let dir = resguardo::testing::bench_scratch_dir();
    let gateway = start_gateway(dir.path());
    let pid = gateway.child.id();
    let idle = vm_hwm_kib(pid);
    let url = format!("{}api/v1/submissions", gateway.url);
    let start = Instant::now();
    let uploads: Vec<_> = (0..16)
        .map(|_| {
            let (url, body) = (url.clone(), big.clone());
            std::thread::spawn(move || {
                let mut response = agent()
                    .post(&url)
                    .header("Content-Type", "application/pgp-encrypted")
                    .send(&body[..])
                    .expect("post");
                assert_eq!(
                    response.status().as_u16(),
                    201,
                    "{:?}",
                    response.body_mut().read_to_string()
                );
            })
        })
        .collect();
    for u in uploads {
        u.join().expect("upload");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let peak = vm_hwm_kib(pid);
    println!(
        "16 concurrent uploads of {:.1} MiB: {:.1} s ({:.0} MiB/s); gateway peak RSS {:.1} MiB (at start {:.1} MiB; goal < 200 MiB)",
        big.len() as f64 / 1048576.0,
        elapsed,
        16.0 * big.len() as f64 / 1048576.0 / elapsed,
        peak as f64 / 1024.0,
        idle as f64 / 1024.0
    );
}
