//! The courier's transfer (issue 11, `docs/early-alerts.md`): `resguardo-review fetch` and
//! `purge --server` against the real gateway, compared with the store's own export of the same
//! batch; a download cut at half and a gateway killed with -9 mid-download resume and complete.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resguardo::store::{StoreOptions, SubmissionStore};
use resguardo::submit::{seal_report, GatewayClient, ReportInput, Trust};

use crate::common::*;

fn courier_file(ext: &str) -> PathBuf {
    repo().join(format!("keys-example/demo-courier-1.{ext}"))
}

fn courier_config() -> String {
    format!(
        "[[couriers]]\ncert = \"{}\"\n",
        courier_file("pub.asc").display()
    )
}

/// Submits `n` reports, each with an attachment of `size` bytes, as resguardo-submit does.
fn fill(url: &str, n: usize, size: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("m.txt");
    std::fs::write(&message, "Nos amenazaron.").unwrap();
    let attachment = dir.path().join("a.bin");
    let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&attachment, bytes).unwrap();
    let client = GatewayClient::new(url, Trust::WebPki, None).unwrap();
    let keys = client.reviewer_keys().unwrap();
    (0..n)
        .map(|i| {
            let input = ReportInput {
                message: message.clone(),
                attachments: vec![attachment.clone()],
                language: "es".into(),
                urgent: i % 3 == 0,
                fields: vec![("what_happened".into(), "threat".into())],
                conversation: None,
            };
            let sealed = seal_report(&keys, &input).unwrap();
            client
                .submit_sealed(sealed.file, sealed.triage.as_deref())
                .unwrap()
        })
        .collect()
}

fn courier_command(verb: &str, url: &str) -> Command {
    let mut cmd = Command::new(review_bin());
    cmd.args([verb, "--server", url, "--courier-key"])
        .arg(courier_file("sec.asc"))
        .arg("--passphrase-file")
        .arg(courier_file("passphrase"));
    cmd
}

fn fetch(url: &str, out: &Path) -> std::process::Output {
    run(courier_command("fetch", url).arg("--out").arg(out))
}

/// The bundle the store itself writes for the batch in `bundle` (the local export's bytes).
fn receipt_signature(receipt: &Path) -> PathBuf {
    resguardo::bundle::receipt::signature_path(receipt)
}

/// Opens `bundle` with the demo reviewer key into `out`; returns the receipt's path.
fn open_offline(bundle: &Path, out: &Path) -> PathBuf {
    let open = open_as_demo_reviewer(bundle, out);
    assert!(open.status.success(), "open: {}", stderr(&open));
    let batch = resguardo::operator::verify_bundle_file(bundle)
        .unwrap()
        .batch;
    out.join(format!("open-receipt-{batch}.json"))
}

fn network_purge(url: &str, bundle: &Path, receipt: &Path) -> std::process::Output {
    run(courier_command("purge", url)
        .arg("--bundle")
        .arg(bundle)
        .arg("--receipt")
        .arg(receipt))
}

fn local_export_bytes(data_dir: &Path, bundle: &Path) -> Vec<u8> {
    let manifest = resguardo::operator::verify_bundle_file(bundle).expect("a valid bundle");
    let (store, _) = SubmissionStore::open(data_dir, StoreOptions::default()).expect("store");
    let batch = store
        .export_batch(&manifest.batch)
        .expect("the batch is in the store");
    store.write_export(&batch, Vec::new()).expect("export")
}

#[test]
fn fetch_and_network_purge_do_what_local_export_and_purge_do() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &courier_config());
    fill(&gateway.url, 6, 50_000);
    let bundle = dir.path().join("bundle.tar");
    let out = fetch(&gateway.url, &bundle);
    assert!(out.status.success(), "fetch: {}", stderr(&out));
    assert!(stdout(&out).contains("6 submissions"), "{}", stdout(&out));
    // Nothing more to fetch: the batch was delivered.
    let again = fetch(&gateway.url, &dir.path().join("again.tar"));
    assert!(
        stdout(&again).contains("nothing to fetch"),
        "{}",
        stdout(&again)
    );
    assert!(!dir.path().join("again.tar").exists());
    // --out is never overwritten.
    let exists = fetch(&gateway.url, &bundle);
    assert_eq!(exists.status.code(), Some(3), "{}", stderr(&exists));
    assert!(
        stderr(&exists).contains("already exists"),
        "{}",
        stderr(&exists)
    );

    // Open it offline (as the reviewers do) for the receipt.
    let opened = dir.path().join("opened");
    let receipt = open_offline(&bundle, &opened);

    // The fetched bytes are the store's own export of that batch.
    let data_dir = gateway.data_dir.clone();
    gateway.stop();
    assert_eq!(
        std::fs::read(&bundle).unwrap(),
        local_export_bytes(&data_dir, &bundle),
        "fetch gives the local export's bytes"
    );

    // The network purge deletes what the receipt says was opened, and leaves an empty store.
    let gateway = Gateway::start_with(dir.path(), "plain-http", &courier_config());
    assert!(
        receipt_signature(&receipt).exists(),
        "open signs the receipt with the demo reviewer key's signing subkey"
    );
    let purge = run(courier_command("purge", &gateway.url)
        .arg("--bundle")
        .arg(&bundle)
        .arg("--receipt")
        .arg(&receipt));
    assert!(purge.status.success(), "purge: {}", stderr(&purge));
    assert!(
        stdout(&purge).starts_with("purged: 6"),
        "{}",
        stdout(&purge)
    );
    let status = run(Command::new(gateway_bin())
        .args(["status", "--data-dir"])
        .arg(&gateway.data_dir));
    let status = stdout(&status);
    assert!(
        status.contains("waiting for export: 0") && status.contains("exported, not purged: 0"),
        "{status}"
    );
    // Purging again: all already gone, nothing refused.
    let twice = run(courier_command("purge", &gateway.url)
        .arg("--bundle")
        .arg(&bundle)
        .arg("--receipt")
        .arg(&receipt));
    assert!(
        stdout(&twice).contains("already gone: 6"),
        "{}",
        stdout(&twice)
    );
    gateway.stop();
}

/// A TCP proxy that cuts the first connection which carries more than `cut_after` bytes from
/// the gateway, and can be pointed at a new gateway.
struct CuttingProxy {
    addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
    downstream_bytes: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn start(upstream: SocketAddr, cut_after: u64) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream));
        let downstream_bytes = Arc::new(AtomicU64::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let proxy = CuttingProxy {
            addr,
            upstream: upstream.clone(),
            downstream_bytes: downstream_bytes.clone(),
            cut: cut.clone(),
        };
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let target = *upstream.lock().unwrap();
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(c2, s2, None));
                let (counter, cut) = (downstream_bytes.clone(), cut.clone());
                std::thread::spawn(move || pump(server, client, Some((counter, cut, cut_after))));
            }
        });
        proxy
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

type Cutter = (Arc<AtomicU64>, Arc<AtomicBool>, u64);

fn pump(mut from: TcpStream, mut to: TcpStream, cutter: Option<Cutter>) {
    let mut buf = [0u8; 16 * 1024];
    let mut this_connection = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((total, cut, after)) = &cutter {
            total.fetch_add(n as u64, Ordering::SeqCst);
            this_connection += n as u64;
            if this_connection > *after && !cut.swap(true, Ordering::SeqCst) {
                break; // cut once, mid-download
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_download_cut_at_half_and_a_gateway_killed_mid_fetch_resume_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &courier_config());
    fill(&gateway.url, 12, 400_000);
    // About 5 MB of bundle: the first connection to carry 2.5 MB is cut.
    let proxy = CuttingProxy::start(gateway.addr, 2_500_000);
    let bundle = dir.path().join("bundle.tar");

    // The gateway dies (kill -9) when the cut happens; the fetch gives up for now.
    let fetch_run = {
        let url = proxy.url();
        let bundle = bundle.clone();
        std::thread::spawn(move || fetch(&url, &bundle))
    };
    while !proxy.cut.load(Ordering::SeqCst) && !fetch_run.is_finished() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed_logs = gateway.kill9();
    let first = fetch_run.join().unwrap();
    assert!(
        !first.status.success(),
        "the first fetch cannot finish: {}",
        stdout(&first)
    );
    assert!(!bundle.exists(), "no bundle is written until it is whole");
    let part = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".part"))
        .expect("the part file is kept");
    let had = std::fs::metadata(&part).unwrap().len();
    assert!(had > 1_000_000, "about half arrived: {had}\n{killed_logs}");

    // A new gateway on the same data directory; the same batch resumes where it stopped.
    let gateway = Gateway::start_with(dir.path(), "plain-http", &courier_config());
    *proxy.upstream.lock().unwrap() = gateway.addr;
    let before = proxy.downstream_bytes.load(Ordering::SeqCst);
    let second = fetch(&proxy.url(), &bundle);
    assert!(
        second.status.success(),
        "resumed fetch: {}",
        stderr(&second)
    );
    assert!(
        stdout(&second).contains(&format!("resumed from byte {had}")),
        "{}",
        stdout(&second)
    );
    let size = std::fs::metadata(&bundle).unwrap().len();
    let resent = proxy.downstream_bytes.load(Ordering::SeqCst) - before;
    println!("bundle {size} bytes; had {had}; the resumed fetch received {resent} bytes");
    assert!(
        resent < size - had + 100_000,
        "only the rest was sent again: {resent}"
    );
    assert!(!part.exists(), "the part file became the bundle");
    let data_dir = gateway.data_dir.clone();
    gateway.stop();
    assert_eq!(
        std::fs::read(&bundle).unwrap(),
        local_export_bytes(&data_dir, &bundle),
        "nothing lost, nothing twice: the store's own export of the batch"
    );
    let manifest = resguardo::operator::verify_bundle_file(&bundle).unwrap();
    assert_eq!(manifest.submissions.len(), 12);
}

#[test]
fn an_urgent_report_is_copied_at_once_leaves_no_batch_and_is_purged_only_with_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &courier_config());
    let ids = fill(&gateway.url, 3, 1000);
    let copy = |name: &str, id: &str| {
        let out = dir.path().join(name);
        let done = run(courier_command("fetch", &gateway.url)
            .arg("--out")
            .arg(&out)
            .args(["--id", id]));
        (out, done)
    };
    let (urgent, out) = copy("urgent.tar", &ids[0]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = resguardo::operator::verify_bundle_file(&urgent).unwrap();
    let only: Vec<String> = manifest
        .submissions
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(only, [ids[0].clone()]);
    // The same copy is the same bytes (a broken download resumes), and nothing was recorded:
    // no batch on the server dates the urgent report.
    let (again, out) = copy("again.tar", &ids[0]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&urgent).unwrap()
    );
    let listed = run(courier_command("fetch", &gateway.url).arg("--list"));
    assert!(
        stdout(&listed).contains("no batches"),
        "{}",
        stdout(&listed)
    );

    // The next batch carries all three, the urgent one included.
    let rest = dir.path().join("rest.tar");
    assert!(fetch(&gateway.url, &rest).status.success());
    let mut all: Vec<String> = resguardo::operator::verify_bundle_file(&rest)
        .unwrap()
        .submissions
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    all.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(all, expected, "the copied report goes out with its batch");

    // Offline: the copy opens first; the batch opens the other two and skips it.
    let opened = dir.path().join("opened");
    let copy_receipt = open_offline(&urgent, &opened);
    let batch_receipt = open_offline(&rest, &opened);
    // The copy's receipt purges nothing: the report is in another batch.
    let purge = network_purge(&gateway.url, &urgent, &copy_receipt);
    assert!(purge.status.success(), "{}", stderr(&purge));
    assert!(
        stdout(&purge).starts_with("purged: 0"),
        "{}",
        stdout(&purge)
    );
    let purge = network_purge(&gateway.url, &rest, &batch_receipt);
    assert!(
        stdout(&purge).starts_with("purged: 3"),
        "{}",
        stdout(&purge)
    );

    // A copy of an id the gateway does not hold: refused, with the reason.
    let (_, unknown) = copy("unknown.tar", "0123456789abcdef0123456789abcdef");
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("not_found"),
        "{}",
        stderr(&unknown)
    );
    gateway.stop();
}

#[test]
fn a_stolen_courier_key_cannot_purge_and_a_batch_marked_delivered_can_be_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &courier_config());
    fill(&gateway.url, 2, 1000);
    let bundle = dir.path().join("bundle.tar");
    assert!(fetch(&gateway.url, &bundle).status.success());
    let batch = resguardo::operator::verify_bundle_file(&bundle)
        .unwrap()
        .batch;

    // Marked delivered (as a thief could without taking it): listed, and fetched again whole.
    let listed = run(courier_command("fetch", &gateway.url).arg("--list"));
    let listed = stdout(&listed);
    assert!(
        listed.contains(&batch.to_string()) && listed.contains("delivered, not yet purged"),
        "{listed}"
    );
    let again = dir.path().join("again.tar");
    let out = run(courier_command("fetch", &gateway.url)
        .arg("--out")
        .arg(&again)
        .args(["--batch", &batch.to_string()]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&bundle).unwrap()
    );

    // Receipts a courier key alone can make are refused, and nothing is deleted.
    let opened = dir.path().join("opened");
    let receipt = open_offline(&bundle, &opened);
    let signature = std::fs::read(receipt_signature(&receipt)).unwrap();
    let text = std::fs::read_to_string(&receipt).unwrap();
    // (1) unsigned: the client says so before sending anything.
    std::fs::remove_file(receipt_signature(&receipt)).unwrap();
    let unsigned = network_purge(&gateway.url, &bundle, &receipt);
    assert_eq!(unsigned.status.code(), Some(3), "{}", stderr(&unsigned));
    assert!(
        stderr(&unsigned).contains("not signed"),
        "{}",
        stderr(&unsigned)
    );
    // (2) made up, beside a real signature of another receipt: the gateway refuses it.
    std::fs::write(&receipt, text.replace("\n  ", "\n   ")).unwrap();
    std::fs::write(receipt_signature(&receipt), &signature).unwrap();
    let forged = network_purge(&gateway.url, &bundle, &receipt);
    assert!(!forged.status.success());
    assert!(
        stderr(&forged).contains("receipt_not_signed"),
        "{}",
        stderr(&forged)
    );
    let status = run(Command::new(gateway_bin())
        .args(["status", "--data-dir"])
        .arg(&gateway.data_dir));
    assert!(
        stdout(&status).contains("exported, not purged: 2"),
        "{}",
        stdout(&status)
    );
    // The signed receipt, restored: purged.
    std::fs::write(&receipt, text).unwrap();
    let purge = network_purge(&gateway.url, &bundle, &receipt);
    assert!(
        stdout(&purge).starts_with("purged: 2"),
        "{}",
        stdout(&purge)
    );
    gateway.stop();
}

/// Regression (hostile review): a courier who carried the bundle could put another report's
/// ciphertext under an urgent report's id; the reviewers opened "it", signed a receipt naming
/// it, and the purge, going by the courier's manifest, deleted the real one unread. The receipt
/// now names the ciphertext that was opened, and the gateway compares with its own.
#[test]
fn a_ciphertext_swapped_in_the_bundle_does_not_get_the_real_one_purged() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &courier_config());
    fill(&gateway.url, 2, 1000);
    let bundle = dir.path().join("bundle.tar");
    assert!(fetch(&gateway.url, &bundle).status.success());
    let entries = read_bundle(&bundle);
    let manifest = resguardo::operator::verify_bundle_file(&bundle).unwrap();
    let decoy = &manifest.submissions[1];
    let decoy_bytes = entries
        .iter()
        .find(|(id, _)| *id == decoy.id.to_string())
        .map(|(_, b)| b.clone())
        .unwrap();
    // The target's entry now holds the decoy's ciphertext, and says so in the manifest.
    let mut swapped = manifest.clone();
    swapped.submissions[0].size = decoy.size;
    swapped.submissions[0].sha256 = decoy.sha256.clone();
    let tampered = dir.path().join("tampered.tar");
    let file = std::fs::File::create(&tampered).unwrap();
    resguardo::bundle::write_bundle(file, &swapped, |_| {
        Ok(std::io::Cursor::new(decoy_bytes.clone()))
    })
    .unwrap();
    // The chain the bundle carries names the swap by its number (exit 5, everything opened);
    // the receipt is written all the same.
    let opened = dir.path().join("opened");
    let open = open_as_demo_reviewer(&tampered, &opened);
    assert_eq!(open.status.code(), Some(5), "open: {}", stderr(&open));
    assert!(
        stderr(&open).contains(&format!(
            "LOG PROBLEM: number 1 ({}): its ciphertext is not the one the gateway accepted",
            manifest.submissions[0].id
        )) || stderr(&open).contains(&format!(
            "LOG PROBLEM: number 2 ({}): its ciphertext is not the one the gateway accepted",
            manifest.submissions[0].id
        )),
        "{}",
        stderr(&open)
    );
    let receipt = opened.join(format!("open-receipt-{}.json", manifest.batch));
    assert!(receipt_signature(&receipt).exists());
    // Sent with the real manifest's bundle on the side: the gateway goes by the receipt.
    let purge = network_purge(&gateway.url, &bundle, &receipt);
    assert!(purge.status.success(), "{}", stderr(&purge));
    let out = stdout(&purge);
    assert!(out.starts_with("purged: 1"), "{out}");
    let status = run(Command::new(gateway_bin())
        .args(["status", "--data-dir"])
        .arg(&gateway.data_dir));
    assert!(
        stdout(&status).contains("exported, not purged: 1"),
        "the target is kept: {}",
        stdout(&status)
    );
    gateway.stop();
}
