//! kill -9 at random moments while clients submit, while exports run and while purges run:
//! after every restart each acknowledged submission is present with byte-identical ciphertext
//! (or was purged after being exported), and no submission ever appears in two export batches.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use ring::rand::SecureRandom;

const ROUNDS: usize = 20;
const CLIENTS: usize = 4;

/// The batch id in a bundle's manifest.
fn bundle_batch(path: &std::path::Path) -> String {
    let file = std::fs::File::open(path).expect("bundle");
    resguardo::bundle::read_manifest(std::io::BufReader::new(file))
        .expect("manifest")
        .batch
        .to_string()
}

/// The ids with ciphertext in the store.
fn stored_ids(data_dir: &std::path::Path) -> std::collections::HashSet<String> {
    std::fs::read_dir(data_dir.join("sealed"))
        .expect("ls")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".pgp")
                .map(String::from)
        })
        .collect()
}

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
    // id -> the batch it was exported in (a batch may be written twice, never two batches).
    let mut batch_of: HashMap<String, String> = HashMap::new();
    let mut purged: std::collections::HashSet<String> = Default::default();
    let mut acknowledged_total = 0;
    let mut previous_bundle: Option<std::path::PathBuf> = None;
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
        // Odd rounds also export, even rounds purge the previous bundle, while the kill comes.
        let data_dir = gateway.data_dir.clone();
        let side = if round % 2 == 1 {
            let out = dir.path().join(format!("during-{round}.tar"));
            std::thread::spawn(move || {
                let _ = run(Command::new(gateway_bin())
                    .args(["export", "--data-dir"])
                    .arg(&data_dir)
                    .arg("--out")
                    .arg(&out));
            })
        } else {
            let bundle = previous_bundle.clone();
            std::thread::spawn(move || {
                if let Some(bundle) = bundle {
                    let receipt = receipt_for(&bundle);
                    let _ = run(Command::new(gateway_bin())
                        .args(["purge", "--data-dir"])
                        .arg(&data_dir)
                        .arg("--bundle")
                        .arg(&bundle)
                        .arg("--receipt")
                        .arg(receipt));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(150 + u64::from(random_u32() % 900)));
        gateway.kill9();
        side.join().expect("side task");
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().expect("client");
        }

        gateway = Gateway::start_with(dir.path(), "plain-http", extra);
        // Every bundle written so far, including any the interrupted export completed.
        let bundle = dir.path().join(format!("round-{round}.tar"));
        let _ = export(&gateway.data_dir, &bundle);
        let mut exported: HashMap<String, Vec<u8>> = HashMap::new();
        for path in [
            bundle.clone(),
            dir.path().join(format!("during-{round}.tar")),
        ] {
            if !path.exists() {
                continue;
            }
            let batch = bundle_batch(&path);
            for (id, bytes) in read_bundle(&path) {
                if let Some(other) = batch_of.insert(id.clone(), batch.clone()) {
                    assert_eq!(other, batch, "{id} is in two export batches");
                }
                exported.insert(id, bytes);
            }
        }
        // Purges that ran: whatever they removed had been exported (and is in a bundle).
        let stored = stored_ids(&gateway.data_dir);
        for id in batch_of.keys() {
            if !stored.contains(id) {
                purged.insert(id.clone());
            }
        }
        let acked = acked.lock().expect("lock").clone();
        for (id, n) in &acked {
            if let Some(bytes) = exported.get(id) {
                assert_eq!(bytes, &pool[*n], "round {round}: {id} changed");
            } else {
                panic!("round {round}: acknowledged {id} is in no bundle of this round");
            }
        }
        acknowledged_total += acked.len();
        if bundle.exists() {
            previous_bundle = Some(bundle);
        }
    }
    assert!(
        acknowledged_total >= ROUNDS * 2,
        "too few submissions got through to prove anything: {acknowledged_total}"
    );
    assert!(!purged.is_empty(), "some purges ran between kills");
    eprintln!(
        "{ROUNDS} kills, {acknowledged_total} acknowledged, {} exported, {} purged, all intact",
        batch_of.len(),
        purged.len()
    );
    let logs = gateway.stop();
    assert!(!logs.contains("panicked"), "{logs}");
}

/// Exports until nothing is left; returns each bundle's manifest, in order.
fn export_everything(
    data_dir: &std::path::Path,
    dir: &std::path::Path,
    round: usize,
) -> Vec<resguardo::bundle::BundleManifest> {
    let mut manifests = Vec::new();
    for k in 0.. {
        let out = dir.join(format!("chain-{round}-{k}.tar"));
        export(data_dir, &out);
        if !out.exists() {
            break;
        }
        let file = std::fs::File::open(&out).expect("bundle");
        manifests.push(
            resguardo::bundle::read_manifest(std::io::BufReader::new(file)).expect("manifest"),
        );
    }
    manifests
}

/// What a courier sees of the chain after `seen`, checked with the couriers' own rule, page by
/// page; returns the head reached.
fn courier_poll(
    courier: &mut resguardo::review::courier::Courier,
    seen: resguardo::trust::chain::ChainPoint,
) -> resguardo::trust::chain::ChainPoint {
    let mut point = seen;
    loop {
        let view = courier.chain_view(point.sequence).expect("chain view");
        let reached = resguardo::trust::chain::extends(&point, &view)
            .unwrap_or_else(|e| panic!("the chain after {} was rewritten: {e}", point.sequence));
        point = reached;
        if view.complete {
            return point;
        }
    }
}

/// docs/trust-v1.md, part 2: kill -9 while clients submit; after every restart the chain runs
/// from 1 to its head without a hole and without a number twice, every acknowledged 201's
/// number is in it with the id the 201 gave, and what a courier saw before the kill is still
/// there after it (`GET /api/v1/courier/chain`).
#[test]
fn the_chain_survives_kill_9_without_a_gap_or_a_repeat() {
    use resguardo::trust::chain::{ChainPoint, Fate};
    const CHAIN_ROUNDS: usize = 6;
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        "[rate_limits]\nsubmissions_per_minute = 100000\nsubmission_burst = 10000\nmax_concurrent_uploads = 64\n\n[[couriers]]\ncert = \"{}\"\n",
        repo().join("keys-example/demo-courier-1.pub.asc").display()
    );
    let extra = extra.as_str();
    // The last head the courier verified.
    let mut seen = ChainPoint::GENESIS;
    let pool: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..6)
            .map(|i| sealed(&vec![i as u8; 500 + i * 3000]))
            .collect(),
    );
    // number -> id, over every segment seen, and the point the last one ended at.
    let mut chain: HashMap<u64, String> = HashMap::new();
    let mut ids_seen: std::collections::HashSet<String> = Default::default();
    let mut point = ChainPoint::GENESIS;
    let mut acknowledged_total = 0;
    let mut gateway = Gateway::start_with(dir.path(), "plain-http", extra);
    for round in 0..CHAIN_ROUNDS {
        let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
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
                        n = (n + 1) % pool.len();
                        let Ok(mut response) = agent
                            .post(format!("{url}api/v1/submissions"))
                            .header("Content-Type", "application/pgp-encrypted")
                            .send(&pool[n][..])
                        else {
                            continue;
                        };
                        if response.status().as_u16() != 201 {
                            continue;
                        }
                        let text = response.body_mut().read_to_string().unwrap_or_default();
                        let json: serde_json::Value =
                            serde_json::from_str(&text).expect("a 201 is JSON");
                        let id = json["id"].as_str().expect("id").to_string();
                        let sequence = json["sequence"].as_u64().expect("a 201 has its number");
                        acked.lock().expect("lock").push((id, sequence));
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100 + u64::from(random_u32() % 400)));
        // A courier polls while uploads go on; what it saw must survive the kill.
        seen = courier_poll(&mut demo_courier(&gateway.url), seen);
        std::thread::sleep(Duration::from_millis(100 + u64::from(random_u32() % 400)));
        gateway.kill9();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().expect("client");
        }
        gateway = Gateway::start_with(dir.path(), "plain-http", extra);
        let mut courier = demo_courier(&gateway.url);
        seen = courier_poll(&mut courier, seen);
        // Asking beyond the head is the log going back: 409 chain_behind.
        match courier.chain_view(seen.sequence + 1) {
            Err(resguardo::submit::SubmitError::Refused {
                status: 409, code, ..
            }) => {
                assert_eq!(code, resguardo::review::courier::CHAIN_BEHIND)
            }
            other => panic!("expected chain_behind, got {other:?}"),
        }
        for manifest in export_everything(&gateway.data_dir, dir.path(), round) {
            // Ciphertext adopted at start (linked, never acknowledged) goes out without chain.
            let Some(segment) = manifest.chain else {
                continue;
            };
            assert_eq!(
                segment.base, point,
                "round {round}: a segment starts where the last ended"
            );
            segment.verify().expect("the segment hashes to its head");
            for e in &segment.entries {
                assert_eq!(
                    e.fate,
                    Fate::InBundle,
                    "round {round}: {} not in its bundle",
                    e.entry.sequence
                );
                let id = e.entry.id.to_string();
                assert!(ids_seen.insert(id.clone()), "{id} at two numbers");
                assert!(
                    chain.insert(e.entry.sequence, id).is_none(),
                    "a number twice"
                );
                assert!(
                    manifest.submissions.iter().any(|s| s.id == e.entry.id),
                    "entry {} is in the bundle",
                    e.entry.sequence
                );
            }
            point = segment.head;
        }
        let acked = acked.lock().expect("lock").clone();
        let mut numbers = std::collections::HashSet::new();
        for (id, sequence) in &acked {
            assert!(
                numbers.insert(*sequence),
                "round {round}: two 201s said number {sequence}"
            );
            assert_eq!(
                chain.get(sequence),
                Some(id),
                "round {round}: acknowledged number {sequence} is not {id} in the chain"
            );
        }
        acknowledged_total += acked.len();
    }
    assert_eq!(
        chain.len() as u64,
        point.sequence,
        "1..head, every number once"
    );
    assert!((1..=point.sequence).all(|n| chain.contains_key(&n)));
    assert_eq!(point, seen, "the courier and the bundles agree on the head");
    assert!(
        acknowledged_total >= CHAIN_ROUNDS * 2,
        "too few submissions got through to prove anything: {acknowledged_total}"
    );
    eprintln!(
        "{CHAIN_ROUNDS} kills, {acknowledged_total} acknowledged, chain 1..{} intact",
        point.sequence
    );
    let logs = gateway.stop();
    assert!(!logs.contains("panicked"), "{logs}");
}
