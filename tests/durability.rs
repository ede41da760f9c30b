//! kill -9 at random moments while clients submit: after every restart each acknowledged
//! submission is present with byte-identical ciphertext, and across all exports no submission
//! appears twice.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ring::rand::SecureRandom;

const ROUNDS: usize = 20;
const CLIENTS: usize = 4;

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("random");
    u32::from_le_bytes(b)
}

#[test]
fn acknowledged_submissions_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "[rate_limits]\nsubmissions_per_minute = 100000\nsubmission_burst = 10000\nmax_concurrent_uploads = 64\n";
    // A pool of sealed messages of varied sizes (sealing is not what this test measures).
    let pool: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..12)
            .map(|i| sealed(&vec![i as u8; 1000 + i * 40_000]))
            .collect(),
    );
    let mut seen_in_export: HashMap<String, usize> = HashMap::new();
    let mut acknowledged_total = 0;
    let mut gateway = Gateway::start_with(dir.path(), "plain-http", extra);
    for round in 0..ROUNDS {
        let acked: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (url, pool, acked, stop) = (
                    gateway.url.clone(),
                    pool.clone(),
                    acked.clone(),
                    stop.clone(),
                );
                std::thread::spawn(move || {
                    let agent = agent();
                    let mut n = c;
                    while !stop.load(Ordering::Relaxed) {
                        n = (n + 5) % pool.len();
                        let response = agent
                            .post(format!("{url}api/v1/submissions"))
                            .header("Content-Type", "application/pgp-encrypted")
                            .send(&pool[n][..]);
                        let Ok(mut response) = response else { continue };
                        if response.status().as_u16() == 201 {
                            let text = response.body_mut().read_to_string().unwrap_or_default();
                            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
                                if let Some(id) = json["id"].as_str() {
                                    acked.lock().expect("lock").push((id.to_string(), n));
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + u64::from(random_u32() % 900)));
        gateway.kill9();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().expect("client");
        }

        gateway = Gateway::start_with(dir.path(), "plain-http", extra);
        let bundle = dir.path().join(format!("round-{round}.tar"));
        let exported: HashMap<String, Vec<u8>> =
            export(&gateway.data_dir, &bundle).into_iter().collect();
        let acked = acked.lock().expect("lock").clone();
        for (id, n) in &acked {
            let bytes = exported
                .get(id)
                .unwrap_or_else(|| panic!("round {round}: acknowledged {id} is missing"));
            assert_eq!(bytes, &pool[*n], "round {round}: {id} changed");
        }
        for id in exported.keys() {
            if let Some(previous) = seen_in_export.insert(id.clone(), round) {
                panic!("{id} exported in round {previous} and again in round {round}");
            }
        }
        acknowledged_total += acked.len();
    }
    assert!(
        acknowledged_total >= ROUNDS * 2,
        "too few submissions got through to prove anything: {acknowledged_total}"
    );
    eprintln!(
        "{ROUNDS} kills, {acknowledged_total} acknowledged, {} exported, all intact",
        seen_in_export.len()
    );
    let logs = gateway.stop();
    assert!(!logs.contains("panicked"), "{logs}");
}
