//! The fault suite: floods, slow clients, a full disk and proof-of-work abuse, against the real
//! gateway on loopback. (kill -9 under load is in tests/durability.rs.) Figures are printed; run
//! with `--nocapture` to see them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

fn post_status(
    url: &str,
    body: &[u8],
    extra: Option<(&str, &str)>,
) -> (u16, serde_json::Value, ureq::http::HeaderMap) {
    let agent = agent();
    let mut request = agent
        .post(format!("{url}api/v1/submissions"))
        .header("Content-Type", "application/pgp-encrypted");
    if let Some((k, v)) = extra {
        request = request.header(k, v);
    }
    let mut response = request.send(body).expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or_default(),
        headers,
    )
}

#[test]
fn a_flood_at_ten_times_the_rate_is_refused_while_health_and_memory_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 120 a minute (2/s), burst 10; the flood: 80 clients, each sending as soon as it has its
    // answer, for 20 s. Submissions wait their turn (up to 30 s, 60 places at 2/s); the rest of
    // the flood is refused with 429 at once.
    let gateway = Gateway::start_with(
        dir.path(),
        "plain-http",
        "[rate_limits]\nsubmissions_per_minute = 120\nsubmission_burst = 10\n",
    );
    let message = Arc::new(sealed(&vec![3u8; 60_000]));
    let stop = Arc::new(AtomicBool::new(false));
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let flooders: Vec<_> = (0..80)
        .map(|_| {
            let (url, message, stop, accepted, refused, other) = (
                gateway.url.clone(),
                message.clone(),
                stop.clone(),
                accepted.clone(),
                refused.clone(),
                other.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (status, body, headers) = post_status(&url, &message, None);
                    match status {
                        201 => accepted
                            .lock()
                            .expect("lock")
                            .push(body["id"].as_str().expect("id").to_string()),
                        429 => {
                            assert!(headers.contains_key("retry-after"));
                            assert_eq!(body["error"], "rate_limited");
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            other.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if status == 429 {
                        // A refused client tries again a little later, as a real one would.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        })
        .collect();
    let health_url = format!("{}healthz", gateway.url);
    let mut latencies = Vec::new();
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(20) {
        let t = Instant::now();
        let (status, _) = get(&health_url);
        latencies.push(t.elapsed());
        assert_eq!(status, 200, "healthz must keep answering");
        peak = peak.max(vm_hwm_kib(gateway.pid()));
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().expect("flooder");
    }
    // Those still queued when the flood stopped got their turn meanwhile.
    let elapsed = started.elapsed();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let accepted = accepted.lock().expect("lock").clone();
    let refused = refused.load(Ordering::Relaxed);
    eprintln!(
        "flood: {} accepted, {refused} refused with 429, {} other; healthz p99 {:.1} ms over {} probes; peak RSS {:.1} MiB",
        accepted.len(),
        other.load(Ordering::Relaxed),
        p99.as_secs_f64() * 1000.0,
        latencies.len(),
        peak as f64 / 1024.0
    );
    assert_eq!(other.load(Ordering::Relaxed), 0);
    // About 2/s plus the burst got through, in order; the rest was refused.
    let budget = 10 + (elapsed.as_secs_f64() * 2.0) as usize + 1;
    assert!(
        accepted.len() >= 30 && accepted.len() <= budget,
        "{} accepted in {elapsed:?} (budget {budget})",
        accepted.len()
    );
    assert!(refused > 250, "{refused}");
    assert!(p99 < Duration::from_millis(250), "healthz p99 {p99:?}");
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
    // Nothing accepted is lost.
    let exported: HashMap<String, Vec<u8>> = export(&gateway.data_dir, &dir.path().join("b.tar"))
        .into_iter()
        .collect();
    for id in &accepted {
        assert_eq!(exported.get(id), Some(&*message), "{id}");
    }
    assert_eq!(exported.len(), accepted.len());
}

#[test]
fn three_hundred_slow_loris_connections_do_not_stop_a_reporter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(
        dir.path(),
        "plain-http",
        "[limits]\nheader_timeout_secs = 6\nupload_grace_secs = 10\nmin_upload_bytes_per_sec = 2048\n[rate_limits]\nmax_concurrent_uploads = 8\n",
    );
    // 300 connections that send a request head a byte at a time, never finishing it.
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(gateway.addr).expect("connect");
            s.write_all(b"POST /api/v1/submissions HTTP/1.1\r\nHost: x\r\n")
                .expect("write");
            s
        })
        .collect();
    let dripping = Arc::new(AtomicBool::new(true));
    // 20 more that send a whole head and then a body at 100 bytes a second: more than the 8
    // upload slots.
    let message = sealed(&vec![1u8; 50_000]);
    let trickles: Vec<_> = (0..20)
        .map(|_| {
            let (addr, message, dripping) = (gateway.addr, message.clone(), dripping.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
                let head = format!("POST /api/v1/submissions HTTP/1.1\r\nHost: x\r\nContent-Type: application/pgp-encrypted\r\nContent-Length: {}\r\n\r\n", message.len());
                s.write_all(head.as_bytes()).expect("write");
                for chunk in message.chunks(100) {
                    if !dripping.load(Ordering::Relaxed) || s.write_all(chunk).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                answer
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));

    // A real reporter gets through meanwhile: it takes the slot of the slowest upload.
    let started = Instant::now();
    let text = dir.path().join("m.txt");
    std::fs::write(&text, "a real report").expect("write");
    let o = run(Command::new(submit_bin())
        .args(["--server", &gateway.url, "--message"])
        .arg(&text));
    assert!(o.status.success(), "{}", stderr(&o));
    let elapsed = started.elapsed();
    eprintln!(
        "slowloris: real submission through in {:.2} s with 300 slow heads and 20 slow bodies open",
        elapsed.as_secs_f64()
    );
    assert!(elapsed < Duration::from_secs(10));

    // The slow heads are cut off by the header timeout.
    std::thread::sleep(Duration::from_secs(7));
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let _ = s.write_all(b"X");
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => closed += 1,
            Ok(n) => {
                // An answer (408 or similar) before closing is fine too.
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(text.starts_with("HTTP/1.1 4"), "{text}");
                closed += 1;
            }
        }
    }
    assert_eq!(closed, 300, "every slow head was closed");
    // The slow bodies were all refused long before they could finish (at 100 bytes a second
    // they would need over eight minutes): 429 when no slot was free, 408 when evicted or too
    // slow, or the connection closed under them. None stored anything.
    for t in trickles {
        let answer = t.join().expect("trickle");
        assert!(
            answer.is_empty()
                || answer.starts_with("HTTP/1.1 408")
                || answer.starts_with("HTTP/1.1 429"),
            "{answer}"
        );
    }
    dripping.store(false, Ordering::Relaxed);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(
        std::fs::read_dir(gateway.data_dir.join("sealed"))
            .expect("ls")
            .count(),
        1
    );
    let (status, _) = get(&format!("{}healthz", gateway.url));
    assert_eq!(status, 200);
}

/// The head of a submission request with a body of `len` bytes.
fn sealed_head(len: usize) -> String {
    format!(
        "POST /api/v1/submissions HTTP/1.1\r\nHost: x\r\nContent-Type: application/pgp-encrypted\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

#[test]
fn a_full_disk_fails_cleanly_corrupts_nothing_and_recovers_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mount = dir.path().join("disk");
    let _tmpfs = Tmpfs::mount(&mount, "12m");
    let data = mount.join("data");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        config_text(
            &data,
            "plain-http",
            "[limits]\nmax_submission_bytes = 2097152\nmin_free_disk_bytes = 0\n[rate_limits]\nsubmission_burst = 1000\n",
        ),
    )
    .expect("config");
    let gateway = Gateway::start_config(&config, &data);
    let small = sealed(&vec![5u8; 200_000]);
    let mut acked = Vec::new();
    for _ in 0..5 {
        let (status, body) = post(&gateway.url, &small, Some("application/pgp-encrypted"));
        assert_eq!(status, 201, "{body}");
        acked.push(body["id"].as_str().expect("id").to_string());
    }
    // Something else fills the disk to the last byte.
    let filler = mount.join("filler");
    {
        let mut f = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let mut byte = [0u8; 1];
        while f.write_all(&byte).is_ok() {
            byte[0] ^= 1;
        }
    }
    for _ in 0..3 {
        // Refused while the body streams in: a raw request copes with the early answer.
        let (status, text) = raw_request(gateway.addr, &sealed_head(small.len()), &small);
        assert_eq!(status, 507, "{text}");
        assert!(text.contains("disk_full"), "{text}");
    }
    let (status, _) = get(&format!("{}healthz", gateway.url));
    assert_eq!(status, 200, "still serving");
    assert!(std::fs::read_dir(data.join("incoming"))
        .expect("ls")
        .next()
        .is_none());

    // Space comes back: submissions work again without a restart.
    std::fs::remove_file(&filler).expect("rm filler");
    let (status, body) = post(&gateway.url, &small, Some("application/pgp-encrypted"));
    assert_eq!(status, 201, "recovered: {body}");
    acked.push(body["id"].as_str().expect("id").to_string());

    // A restart finds a sound store with every acknowledged submission intact.
    gateway.stop();
    let gateway = Gateway::start_config(&config, &data);
    let exported: HashMap<String, Vec<u8>> = export(&data, &dir.path().join("b.tar"))
        .into_iter()
        .collect();
    for id in &acked {
        assert_eq!(exported.get(id), Some(&small), "{id}");
    }
    assert_eq!(exported.len(), acked.len());
    gateway.stop();

    // The quota refuses with 507 before the disk is involved.
    let quota_dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(
        quota_dir.path(),
        "plain-http",
        "[limits]\nmax_submission_bytes = 1048576\nstore_quota_bytes = 1048576\n[rate_limits]\nsubmission_burst = 1000\n",
    );
    let mut stored = 0;
    loop {
        // Over the quota the gateway answers before reading the body: a raw request copes with
        // the connection closing under the upload.
        let (status, text) = raw_request(gateway.addr, &sealed_head(small.len()), &small);
        if status == 507 {
            assert!(text.contains("store_full"), "{text}");
            break;
        }
        assert_eq!(status, 201);
        stored += 1;
        assert!(stored < 10);
    }
    assert_eq!(stored, 1_048_576 / small.len());
}

#[test]
fn proof_of_work_refuses_replay_expiry_tampering_and_borrowed_solutions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(
        dir.path(),
        "plain-http",
        "[proof_of_work]\nenabled = true\nbase_difficulty = 10\nchallenge_ttl_secs = 5\n[rate_limits]\nsubmission_burst = 1000\n",
    );
    let message = sealed(b"report");
    let challenge = || -> (String, u8) {
        let (status, text) = get(&format!("{}api/v1/challenge", gateway.url));
        assert_eq!(status, 200);
        let c: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(c["required"], true);
        (
            c["challenge"].as_str().expect("challenge").to_string(),
            c["difficulty"].as_u64().expect("difficulty") as u8,
        )
    };
    let submit = |solution: Option<&str>| {
        let (status, body, _) = post_status(
            &gateway.url,
            &message,
            solution.map(|s| ("Resguardo-PoW", s)),
        );
        (status, body["error"].as_str().unwrap_or("").to_string())
    };

    // Without a solution, with garbage.
    assert_eq!(submit(None), (400, "pow_missing".into()));
    assert_eq!(submit(Some("abc")), (400, "pow_malformed".into()));

    // A correct solution works once.
    let (c1, d1) = challenge();
    let s1 = resguardo::pow::solve(&c1, d1).expect("solve");
    assert_eq!(submit(Some(&s1)).0, 201);
    assert_eq!(submit(Some(&s1)), (403, "pow_replayed".into()));

    // Difficulty lowered in the challenge: the gateway's HMAC catches it.
    let (c2, _) = challenge();
    let mut token = hex::decode(&c2).expect("hex");
    token[9] = 0;
    let tampered = format!("{}.0", hex::encode(&token));
    assert_eq!(submit(Some(&tampered)), (403, "pow_invalid".into()));

    // Too little work for the challenge's difficulty.
    let token = hex::decode(&c2).expect("hex");
    let weak = (0..u64::MAX)
        .find(|&n| {
            resguardo::pow::leading_zero_bits(&resguardo::pow::solution_hash(&token, n)) < 10
        })
        .expect("a weak counter");
    assert_eq!(
        submit(Some(&format!("{c2}.{weak}"))),
        (403, "pow_insufficient".into())
    );

    // A solution of another challenge (a counter that solves c3), presented for c2.
    let (c3, d3) = challenge();
    let (t3, t2) = (
        hex::decode(&c3).expect("hex"),
        hex::decode(&c2).expect("hex"),
    );
    let lz = |t: &[u8], n| resguardo::pow::leading_zero_bits(&resguardo::pow::solution_hash(t, n));
    let borrowed = (0..u64::MAX)
        .find(|&n| lz(&t3, n) >= u32::from(d3) && lz(&t2, n) < 10)
        .expect("such a counter");
    assert_eq!(
        submit(Some(&format!("{c3}.{borrowed}"))).0,
        201,
        "it does solve c3"
    );
    assert_eq!(
        submit(Some(&format!("{c2}.{borrowed}"))),
        (403, "pow_insufficient".into())
    );

    // Expired: solved, then kept past the 5 s lifetime.
    let (c4, d4) = challenge();
    let s4 = resguardo::pow::solve(&c4, d4).expect("solve");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(submit(Some(&s4)), (403, "pow_expired".into()));

    // The terminal client solves it by itself.
    let text = dir.path().join("m.txt");
    std::fs::write(&text, "with proof of work").expect("write");
    let o = run(Command::new(submit_bin())
        .args(["--server", &gateway.url, "--message"])
        .arg(&text));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(gateway.data_dir.join("sealed"))
            .expect("ls")
            .count(),
        3
    );
}
