//! Gateway benchmark: `cargo bench --bench gateway`.
//!
//! 1. Acknowledged submissions per second for 64 KiB sealed messages over loopback HTTP at
//!    concurrency 1, 16 and 64, against a baseline measured in the same run on the same disk:
//!    the same bytes inserted into a bare sled tree with a flush after each write, by the same
//!    number of threads. Prints both and the ratio.
//! 2. The durable floor of the embedded store, same threads, same disk (measured in slices
//!    alternating with the gateway's, as is the S3 floor with the S3 gateway): what a durable
//!    acknowledgement physically needs for each message: a new file written and fsynced, its
//!    directory fsynced, one line appended to an index log shared by the threads (appended under
//!    a mutex, as a real index is) and that log fdatasynced (after the mutex is released, so
//!    concurrent fdatasyncs can share one journal commit, as a real index's group commit does).
//!    sled + flush does no fsync; this floor does.
//! 3. The S3 backend (`[store] backend = "s3"`) on a three-node Garage cluster on loopback
//!    (replication factor 3, `metadata_fsync` and `data_fsync` on, every node on this disk):
//!    acks/s at the same concurrencies, and its own floor: the two PUTs a submission needs
//!    (sealed object, then its record), made directly by the benchmark's threads with the
//!    gateway's S3 client, plus one bare 64 KiB PUT at concurrency 1. Prints one table
//!    with every figure and the ratios.
//! 4. Peak resident memory of the gateway (VmHWM) while 16 clients each upload 50 MiB at once,
//!    on the embedded store and on the S3 backend; every upload must be answered 201.
//!
//! Set RESGUARDO_BENCH_SECONDS to change the time per measurement (default 5);
//! RESGUARDO_BENCH_GARAGE_FSYNC=0 runs Garage without its fsyncs (to see their cost). Needs Garage
//! 2.5.0 (`~/.cargo/bin/garage` or `$RESGUARDO_GARAGE`; `scripts/ensure-deps test`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use resguardo::keyring::ReviewerKeyring;
use resguardo::store::object::{S3Client, S3Target};

/// The Garage harness of the integration tests, included as is (it stands alone).
#[path = "../tests/common/garage.rs"]
#[allow(dead_code)]
mod garage;

use garage::{GarageCluster, GarageOptions};

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

/// A gateway on `dir`; `extra` is appended to its config (e.g. the `[store]` section).
fn start_gateway(dir: &Path, extra: &str) -> Gateway {
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
{extra}
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
        .stderr(File::create(dir.join("gateway.log")).expect("gateway log"))
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
    if url.is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
        panic!("gateway did not start:\n{log}");
    }
    Gateway { child, url }
}

/// One operation of a measurement, called with the worker's index.
type Op = Arc<dyn Fn(usize) + Send + Sync>;

/// Runs `threads` workers calling `op` for `secs`; returns operations per second.
fn measure(threads: usize, secs: f64, op: impl Fn(usize) + Send + Sync + 'static) -> f64 {
    let op: Op = Arc::new(op);
    let (count, elapsed) = run(threads, secs, &op);
    count as f64 / elapsed
}

/// Runs `threads` workers calling `op` for `secs`; returns the operations done and the time.
fn run(threads: usize, secs: f64, op: &Op) -> (u64, f64) {
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
    (count.load(Ordering::Relaxed), start.elapsed().as_secs_f64())
}

/// Slices a measurement and its baseline are alternated in: this disk's fsync latency drifts
/// by several times within a minute (other work on the machine), and a figure and its
/// baseline must see the same disk.
const ROUNDS: u32 = 5;

/// `secs` each of `a` and `b`, alternated in [`ROUNDS`] slices; their operations per second.
fn measure_pair(threads: usize, secs: f64, a: &Op, b: &Op) -> (f64, f64) {
    let slice = secs / f64::from(ROUNDS);
    let (mut na, mut ta, mut nb, mut tb) = (0, 0.0, 0, 0.0);
    for _ in 0..ROUNDS {
        let (n, t) = run(threads, slice, a);
        (na, ta) = (na + n, ta + t);
        let (n, t) = run(threads, slice, b);
        (nb, tb) = (nb + n, tb + t);
    }
    (na as f64 / ta, nb as f64 / tb)
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

/// The durable floor of one acknowledgement on the embedded store's disk (module docs, 2).
struct DurableFloor {
    dir: PathBuf,
    log: Mutex<File>,
    next: AtomicU64,
}

impl DurableFloor {
    fn new(dir: &Path) -> DurableFloor {
        let files = dir.join("sealed");
        std::fs::create_dir_all(&files).expect("floor dir");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("index.log"))
            .expect("index log");
        File::open(dir).and_then(|d| d.sync_all()).expect("fsync");
        DurableFloor {
            dir: files,
            log: Mutex::new(log),
            next: AtomicU64::new(0),
        }
    }

    fn acknowledge(&self, body: &[u8]) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("{n:032x}.pgp");
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.dir.join(&name))
            .expect("create");
        file.write_all(body).expect("write");
        file.sync_all().expect("fsync file");
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .expect("fsync dir");
        // A line the size of a record: id, day, size, SHA-256, state.
        let line = format!("{name} 2026-12-01 {} {:064x} stored\n", body.len(), n);
        let log = {
            let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
            log.write_all(line.as_bytes()).expect("append");
            log.try_clone().expect("log fd")
        };
        log.sync_data().expect("fdatasync log");
    }
}

fn s3_client(cluster: &GarageCluster) -> S3Client {
    S3Client::new(S3Target {
        endpoint: cluster.s3_endpoint(),
        bucket: cluster.bucket().to_string(),
        region: cluster.region().to_string(),
        access_key_id: cluster.access_key_id().to_string(),
        secret_access_key: zeroize::Zeroizing::new(cluster.secret_access_key().to_string()),
        ca_file: None,
    })
    .expect("S3 client")
}

/// The `[store]` section of a gateway on `cluster` (node 0) as gateway `name`.
fn s3_store_config(cluster: &GarageCluster, dir: &Path, name: &str) -> String {
    let credentials = dir.join("s3-credentials");
    cluster.write_credentials_file(&credentials);
    format!(
        "[store]\nbackend = \"s3\"\n\n[store.s3]\nendpoint = \"{}\"\nbucket = \"{}\"\n\
         region = \"{}\"\ngateway = \"{name}\"\ncredentials_file = \"{}\"\n",
        cluster.s3_endpoint(),
        cluster.bucket(),
        cluster.region(),
        credentials.display()
    )
}

/// One submission of `message` to the gateway at `url` by worker `t`, which must get 201.
fn submit_op(url: &str, concurrency: usize, message: &Arc<Vec<u8>>) -> Op {
    let url = format!("{url}api/v1/submissions");
    let body = message.clone();
    let agents: Vec<ureq::Agent> = (0..concurrency).map(|_| agent()).collect();
    Arc::new(move |t| {
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
    })
}

/// 16 clients upload `big` at once to a gateway started with `extra`; prints the time, the
/// statuses and the gateway's peak RSS, and returns the peak in MiB.
fn upload_peak(label: &str, extra: &str, big: &Arc<Vec<u8>>) -> f64 {
    let dir = resguardo::testing::bench_scratch_dir();
    let gateway = start_gateway(dir.path(), extra);
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
                let status = response.status().as_u16();
                let text = response.body_mut().read_to_string().unwrap_or_default();
                (status, text)
            })
        })
        .collect();
    let answers: Vec<(u16, String)> = uploads
        .into_iter()
        .map(|u| u.join().expect("upload"))
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    let peak = vm_hwm_kib(pid);
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    println!(
        "{label}: 16 concurrent uploads of {:.1} MiB: {:.1} s ({:.0} MiB/s), {created}/16 answered 201; \
         gateway peak RSS {:.1} MiB (at start {:.1} MiB)",
        big.len() as f64 / 1048576.0,
        elapsed,
        16.0 * big.len() as f64 / 1048576.0 / elapsed,
        peak as f64 / 1024.0,
        idle as f64 / 1024.0
    );
    for (status, text) in answers.iter().filter(|(s, _)| *s != 201) {
        println!("  not 201: {status} {text}");
    }
    assert_eq!(created, 16, "every upload must be answered 201");
    peak as f64 / 1024.0
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: they must build, but
    // measuring (and starting Garage) is for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("gateway benchmark: built; run `cargo bench --bench gateway` to measure");
        return;
    }
    let secs: f64 = std::env::var("RESGUARDO_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let message = Arc::new(sealed(64 * 1024 - 600));
    println!(
        "Resguardo gateway benchmark ({} byte sealed messages, {secs} s per figure)",
        message.len()
    );
    let started = Instant::now();
    // RESGUARDO_BENCH_GARAGE_FSYNC=0 turns Garage's fsyncs off, to see what they cost.
    let fsync = std::env::var("RESGUARDO_BENCH_GARAGE_FSYNC").map_or(true, |v| v != "0");
    let cluster = GarageCluster::start_with(GarageOptions { fsync });
    println!(
        "Garage {}: 3 nodes on loopback, replication factor 3, metadata_fsync and data_fsync {} \
         (started in {:.1} s)",
        garage::GARAGE_VERSION,
        if fsync { "on" } else { "OFF" },
        started.elapsed().as_secs_f64()
    );
    let client = Arc::new(s3_client(&cluster));
    println!();
    println!(
        "{:>11}  {:>14}  {:>16}  {:>6}",
        "concurrency", "gateway acks/s", "sled+flush ops/s", "ratio"
    );
    struct Row {
        concurrency: usize,
        embedded: f64,
        floor: f64,
        s3: f64,
        s3_floor: f64,
    }
    let mut rows = Vec::new();
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

        let floor_dir = resguardo::testing::bench_scratch_dir();
        let durable = Arc::new(DurableFloor::new(floor_dir.path()));
        let value = message.clone();
        let floor_op: Op = Arc::new(move |_| durable.acknowledge(&value));
        let gw_dir = resguardo::testing::bench_scratch_dir();
        let gateway = start_gateway(gw_dir.path(), "");
        let embedded_op = submit_op(&gateway.url, concurrency, &message);
        let (embedded, floor) = measure_pair(concurrency, secs, &embedded_op, &floor_op);
        drop(gateway);
        println!(
            "{concurrency:>11}  {embedded:>14.0}  {baseline:>16.0}  {:>6.2}",
            embedded / baseline
        );

        let s3_dir = resguardo::testing::bench_scratch_dir();
        let name = format!("bench-c{concurrency}");
        let extra = s3_store_config(&cluster, s3_dir.path(), &name);
        let gateway = start_gateway(s3_dir.path(), &extra);
        let s3_op = submit_op(&gateway.url, concurrency, &message);

        let (c, value) = (client.clone(), message.clone());
        let sha = sha256(&value);
        let record = vec![b'r'; 420];
        let key = Arc::new(AtomicU64::new(0));
        let s3_floor_op: Op = Arc::new(move |_| {
            let k = key.fetch_add(1, Ordering::Relaxed);
            let mut body = &value[..];
            c.put(
                &format!("floor-c{concurrency}/sealed/{k:032x}"),
                &mut body,
                value.len() as u64,
                &sha,
            )
            .expect("put sealed");
            c.put_small(&format!("floor-c{concurrency}/records/{k:032x}"), &record)
                .expect("put record");
        });
        let (s3, s3_floor) = measure_pair(concurrency, secs, &s3_op, &s3_floor_op);
        drop(gateway);
        rows.push(Row {
            concurrency,
            embedded,
            floor,
            s3,
            s3_floor,
        });
    }
    let (c, value) = (client.clone(), message.clone());
    let sha = sha256(&value);
    let key = Arc::new(AtomicU64::new(0));
    let one_put = measure(1, secs, move |_| {
        let k = key.fetch_add(1, Ordering::Relaxed);
        let mut body = &value[..];
        c.put(
            &format!("floor-one/{k:032x}"),
            &mut body,
            value.len() as u64,
            &sha,
        )
        .expect("put");
    });

    println!();
    println!(
        "embedded floor: file write + fsync, directory fsync, shared index log append + fdatasync"
    );
    println!("S3 floor: PUT sealed (64 KiB, SHA-256 checked) then PUT record (420 B), no gateway");
    println!(
        "{:>11} | {:>15} | {:>19} | {:>14} | {:>9} | {:>11} | {:>8} | {:>11}",
        "concurrency",
        "embedded acks/s",
        "durable floor ops/s",
        "embedded/floor",
        "S3 acks/s",
        "S3/embedded",
        "S3 floor",
        "S3/S3 floor"
    );
    for r in &rows {
        println!(
            "{:>11} | {:>15.0} | {:>19.0} | {:>14.2} | {:>9.0} | {:>11.2} | {:>8.0} | {:>11.2}",
            r.concurrency,
            r.embedded,
            r.floor,
            r.embedded / r.floor,
            r.s3,
            r.s3 / r.embedded,
            r.s3_floor,
            r.s3 / r.s3_floor
        );
    }
    println!(
        "one bare 64 KiB PUT at concurrency 1: {one_put:.0} ops/s ({:.2} ms each)",
        1000.0 / one_put
    );
    println!("goal: embedded/floor >= 0.9 at concurrency 1");

    println!();
    let big = Arc::new(sealed(50 * 1024 * 1024 - 4096));
    let embedded_peak = upload_peak("embedded", "", &big);
    let s3_dir = resguardo::testing::bench_scratch_dir();
    let extra = s3_store_config(&cluster, s3_dir.path(), "bench-uploads");
    let s3_peak = upload_peak("S3      ", &extra, &big);
    println!(
        "peak RSS: embedded {embedded_peak:.1} MiB (goal < 200 MiB), S3 {s3_peak:.1} MiB (goal <= 64 MiB)"
    );
    println!("total {:.0} s", started.elapsed().as_secs_f64());
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}
