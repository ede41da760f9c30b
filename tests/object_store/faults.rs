//! What goes wrong around the object store, each named after what broke (found by a hostile
//! review): an answer lost after Garage stored a write, a crash between the steps of a commit,
//! a batch or a purge, a conversation acknowledged with a report, a data directory moved
//! between stores, proxies named by the environment, and the courier's chain.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resguardo::store::object::{ObjectStore, S3Client};
use resguardo::store::{
    BatchRecord, RecordState, StoreOptions, SubmissionBackend, SubmissionRecord, SubmissionStore,
};
use resguardo::submission::{BatchId, Sealing, SubmissionId, UtcDay};

use super::{client_at, s3_config, serve_once};
use crate::common::garage::GarageCluster;
use crate::common::{self, Gateway};

/// A loopback HTTP relay in front of one Garage node that, when armed, forwards the next
/// request whose head contains `needle` to Garage, lets Garage store it, and then cuts the
/// client's connection instead of relaying the answer: a network cut after the store acknowledged
/// the write, before the gateway heard it.
struct CuttingRelay {
    addr: std::net::SocketAddr,
    armed: Arc<AtomicBool>,
    cut: Arc<AtomicUsize>,
    needle: Arc<std::sync::Mutex<String>>,
}

impl CuttingRelay {
    fn start(upstream: &str) -> CuttingRelay {
        let upstream: std::net::SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("a loopback endpoint");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let armed = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicUsize::new(0));
        let needle = Arc::new(std::sync::Mutex::new(String::new()));
        let (a, c, n) = (armed.clone(), cut.clone(), needle.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (a, c, n) = (a.clone(), c.clone(), n.clone());
                std::thread::spawn(move || {
                    let _ = relay_one(client, upstream, &a, &c, &n);
                });
            }
        });
        CuttingRelay {
            addr,
            armed,
            cut,
            needle,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn arm(&self, needle: &str) {
        *self.needle.lock().expect("needle") = needle.to_string();
        self.armed.store(true, Ordering::SeqCst);
    }

    fn cuts(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }
}

/// One request per connection: head, body by Content-Length, answer read whole from Garage
/// (asked to close), relayed with `Connection: close` (or cut when armed and matching).
fn relay_one(
    mut client: TcpStream,
    upstream: std::net::SocketAddr,
    armed: &AtomicBool,
    cut: &AtomicUsize,
    needle: &std::sync::Mutex<String>,
) -> std::io::Result<()> {
    let Some(head) = common::relay::read_head(&mut client)? else {
        return Ok(());
    };
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    client.read_exact(&mut body)?;
    let mut up = common::relay::forward(&head, upstream, false)?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    let first_line = head.lines().next().unwrap_or_default().to_string();
    let wanted = needle.lock().expect("needle").clone();
    if !wanted.is_empty() && first_line.contains(&wanted) && armed.swap(false, Ordering::SeqCst) {
        // Garage answered (and stored); the gateway never hears it.
        cut.fetch_add(1, Ordering::SeqCst);
        return client.shutdown(std::net::Shutdown::Both);
    }
    // Relay the answer as it came, asking the client not to reuse the connection.
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |p| p + 4);
    let head_text = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut lines: Vec<&str> = head_text
        .trim_end()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    client.write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())?;
    client.write_all(&answer[split..])?;
    client.shutdown(std::net::Shutdown::Both)
}

fn open_on(client: S3Client, local: &Path, name: &str) -> Result<ObjectStore, String> {
    let (local, _) = SubmissionStore::open(local, StoreOptions::default()).expect("local");
    ObjectStore::open(Arc::new(local), client, name)
        .map(|(store, _)| store)
        .map_err(|e| e.to_string())
}

/// Garage stored the record but its answer was lost: the gateway deleted the ciphertext and
/// left the record, so the next export could never be written and the next start refused.
#[test]
fn a_record_put_whose_answer_is_lost_leaves_the_store_openable_and_exporting() {
    let cluster = GarageCluster::start();
    let relay = CuttingRelay::start(&cluster.s3_endpoint_of(0));
    let local = tempfile::tempdir().expect("tempdir");
    let store = open_on(
        client_at(&cluster, relay.endpoint()),
        &local.path().join("a"),
        "cut",
    )
    .expect("open through the relay");
    relay.arm("/records/");
    let body = common::sealed(b"the record's answer is lost");
    let mut incoming = store.begin(Some(body.len() as u64)).expect("begin");
    incoming.write_all(&body).expect("spool");
    let committed = store.commit_with(incoming, Sealing::BySender, None, None);
    assert_eq!(relay.cuts(), 1, "the relay cut the record PUT's answer");
    assert!(
        committed.is_err(),
        "not acknowledged: the gateway never heard the 200"
    );
    // The running gateway: the next export must not be wedged by that record.
    let export = store.begin_export();
    if let Ok(Some(batch)) = &export {
        let mut sink = Vec::new();
        let written = store.write_export(batch, &mut sink);
        assert!(
            written.is_ok(),
            "the export takes a record whose ciphertext the gateway deleted itself: {written:?}"
        );
    }
    drop(store);
    // A restart: the gateway must still start.
    let reopened = open_on(
        client_at(&cluster, cluster.s3_endpoint_of(1)),
        &local.path().join("b"),
        "cut",
    );
    if let Err(e) = reopened {
        panic!("a lost answer to a record PUT stops the gateway from starting: {e}");
    }
}

/// ureq reads ALL_PROXY and the like from the environment: the store's requests, plain http
/// to loopback included, went to whatever proxy the service's environment named.
#[test]
fn the_object_store_client_ignores_proxy_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trap = TcpListener::bind("127.0.0.1:0").expect("bind");
    let trap_addr = trap.local_addr().expect("addr");
    let reached = Arc::new(AtomicBool::new(false));
    let flag = reached.clone();
    std::thread::spawn(move || {
        // Take the first connection and close it at once: the gateway fails fast.
        if let Ok((conn, _)) = trap.accept() {
            flag.store(true, Ordering::SeqCst);
            drop(conn);
        }
    });
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed); // nothing listens at the store's address
    let credentials = dir.path().join("creds");
    std::fs::write(
        &credentials,
        "access_key_id = \"GK0123456789abcdef01234567\"\nsecret_access_key = \"s\"\n",
    )
    .expect("creds");
    let mut perms = std::fs::metadata(&credentials).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&credentials, perms).expect("chmod");
    let extra = format!(
        "[store]\nbackend = \"s3\"\n\n[store.s3]\nendpoint = \"{endpoint}\"\nbucket = \"resguardo\"\n\
         region = \"garage\"\ngateway = \"a\"\ncredentials_file = \"{}\"\n",
        credentials.display()
    );
    let data = dir.path().join("data");
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, common::config_text(&data, "plain-http", &extra)).expect("config");
    let _ = std::process::Command::new(common::gateway_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env("ALL_PROXY", format!("http://{trap_addr}"))
        .env("RESGUARDO_LANG", "en")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !reached.load(Ordering::SeqCst),
        "the store's requests went to the proxy named in ALL_PROXY"
    );
}

/// A conversation begun with a report lived in the local index, unsynced at the 201: kill -9
/// right after it lost the conversation (the embedded store syncs both together).
#[test]
fn a_conversation_begun_with_an_acknowledged_report_survives_kill_9_on_the_object_store() {
    let cluster = GarageCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let courier = common::repo().join("keys-example/demo-courier-1.pub.asc");
    let extra = format!(
        "{}\n[[couriers]]\ncert = \"{}\"\n",
        s3_config(&cluster, dir.path(), 0, "site-a"),
        courier.display()
    );
    let mut lost = Vec::new();
    for round in 0..4 {
        let gateway = Gateway::start_with(dir.path(), "plain-http", &extra);
        let message = dir.path().join(format!("m-{round}.txt"));
        std::fs::write(&message, format!("Nos amenazaron, ronda {round}.")).expect("message");
        let receipt = dir.path().join(format!("receipt-{round}.txt"));
        let sent = common::run(
            std::process::Command::new(common::submit_bin())
                .args(["--server", &gateway.url, "--message"])
                .arg(&message)
                .args(["--field", "what_happened=threat", "--receipt-out"])
                .arg(&receipt),
        );
        assert!(sent.status.success(), "{}", common::stderr(&sent));
        let _ = gateway.kill9();
        let gateway = Gateway::start_with(dir.path(), "plain-http", &extra);
        let o = common::run(
            std::process::Command::new(common::submit_bin())
                .args(["check", "--server", &gateway.url, "--receipt-file"])
                .arg(&receipt)
                .arg("--save")
                .arg(dir.path().join("saved")),
        );
        if !o.status.success() {
            lost.push(format!("round {round}: {}", common::stderr(&o)));
        }
        drop(gateway);
    }
    assert!(lost.is_empty(), "acknowledged conversations lost: {lost:?}");
}

/// The object store keeps no chain yet: the courier route showed the embedded store's chain,
/// frozen at 0 while reports arrived, and a watch verified it without a word.
#[test]
fn the_courier_is_told_the_object_store_keeps_no_chain_instead_of_a_chain_that_never_grows() {
    let cluster = GarageCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = common::repo();
    let extra = format!(
        "{}\n[[couriers]]\ncert = \"{}\"\n",
        s3_config(&cluster, dir.path(), 0, "site-a"),
        repo.join("keys-example/demo-courier-1.pub.asc").display()
    );
    let gateway = Gateway::start_with(dir.path(), "plain-http", &extra);
    for i in 0..3 {
        let (status, body) = common::post(
            &gateway.url,
            &common::sealed(format!("chained {i}").as_bytes()),
            Some("application/pgp-encrypted"),
        );
        assert_eq!(status, 201, "{body}");
    }
    let mut courier = common::demo_courier(&gateway.url);
    match courier.chain_view(0) {
        Err(resguardo::submit::SubmitError::Refused { status, code, .. }) => {
            // The watch says "not checked" for a gateway without a log, and rings if a log it
            // verified disappears (a gateway moved from the embedded store).
            assert_eq!((status, code.as_str()), (404, "not_found"));
        }
        other => panic!("a chain frozen at the start must not be served: {other:?}"),
    }
}

/// A data directory that served the embedded store, switched to `backend = "s3"`: what it
/// acknowledged before would have stayed in the local store, exported by no one.
#[test]
fn moving_between_stores_is_refused_while_the_old_one_holds_reports() {
    let cluster = GarageCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded = Gateway::start_with(dir.path(), "plain-http", "");
    let (status, body) = common::post(
        &embedded.url,
        &common::sealed(b"acknowledged on one machine"),
        Some("application/pgp-encrypted"),
    );
    assert_eq!(status, 201, "{body}");
    drop(embedded);
    let data = dir.path().join("data");
    let config = dir.path().join("s3.toml");
    let s3 = s3_config(&cluster, dir.path(), 0, "site-a");
    std::fs::write(&config, common::config_text(&data, "plain-http", &s3)).expect("config");
    let o = serve_once(&config);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("still holds 1 reports of the embedded store"),
        "{}",
        common::stderr(&o)
    );
    // And back: a data directory whose reports are in the bucket refuses the embedded store.
    let other = tempfile::tempdir().expect("tempdir");
    let on_s3 = Gateway::start_with(
        other.path(),
        "plain-http",
        &s3_config(&cluster, other.path(), 0, "site-b"),
    );
    drop(on_s3);
    let back = other.path().join("embedded.toml");
    std::fs::write(
        &back,
        common::config_text(&other.path().join("data"), "plain-http", ""),
    )
    .expect("config");
    let o = serve_once(&back);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("kept its reports in the object store"),
        "{}",
        common::stderr(&o)
    );
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&crate::common::garage::sha256(bytes));
    out
}

/// Each durable step of the object store, cut after it by a crash, is finished at the next
/// start: a ciphertext whose record was never written is kept (adopted), a batch whose records
/// still say "stored" takes them, a purge that marked a record goes through.
#[test]
fn a_crash_between_the_steps_of_a_commit_a_batch_or_a_purge_is_finished_at_the_next_start() {
    let cluster = GarageCluster::start();
    let local = tempfile::tempdir().expect("tempdir");
    let client = client_at(&cluster, cluster.s3_endpoint_of(0));
    let open = |n: &str| {
        open_on(
            client_at(&cluster, cluster.s3_endpoint_of(1)),
            &local.path().join(n),
            "crash",
        )
        .expect("open")
    };
    let store = open("one");
    let commit = |s: &ObjectStore, text: &[u8]| -> SubmissionRecord {
        resguardo::store::backend_story::commit(s, &common::sealed(text))
    };
    let batched = commit(&store, b"in a batch cut short");
    let doomed = commit(&store, b"purge cut short");
    drop(store);
    let key = |kind: &str, name: String| format!("resguardo/crash/{kind}/{name}");
    // A crash between the two PUTs of a commit.
    let orphan = SubmissionId::random();
    let sealed = common::sealed(b"its record was never written");
    client
        .put(
            &key("sealed", orphan.to_string()),
            &mut &sealed[..],
            sealed.len() as u64,
            &sha256(&sealed),
        )
        .expect("plant the ciphertext");
    // A crash after a batch was fixed, before its submission's record said so.
    let batch = BatchRecord {
        batch: BatchId::random(),
        created: UtcDay::today(),
        ids: vec![batched.id],
        delivered: false,
        chain: None,
        partly_purged: false,
    };
    client
        .put_small(&key("batches", batch.batch.to_string()), &batch.encode())
        .expect("plant the batch");
    // A crash after a purge marked its record, before anything was deleted.
    let mut purging = doomed.clone();
    purging.state = RecordState::Purging;
    client
        .put_small(&key("records", doomed.id.to_string()), &purging.encode())
        .expect("mark purging");

    let store = open("two");
    let adopted = store
        .get(&orphan)
        .expect("get")
        .expect("the orphan is kept");
    assert_eq!(adopted.size, sealed.len() as u64);
    assert_eq!(adopted.state, RecordState::Stored);
    assert_eq!(
        store.get(&batched.id).expect("get").expect("kept").state,
        RecordState::Exported { batch: batch.batch }
    );
    assert!(
        store.get(&doomed.id).expect("get").is_none(),
        "the purge is finished"
    );
    assert!(client
        .get_small(&key("sealed", doomed.id.to_string()), 1 << 20)
        .expect("get")
        .is_none());
    let resumed = store
        .begin_export()
        .expect("export")
        .expect("the cut batch");
    assert!(resumed.resumed);
    assert_eq!(resumed.manifest.batch, batch.batch);
    let mut bundle = Vec::new();
    store
        .write_export(&resumed, &mut bundle)
        .expect("written whole");
    store.complete_export(&batch.batch).expect("complete");
    let next = store
        .begin_export()
        .expect("export")
        .expect("the orphan's batch");
    let ids: Vec<SubmissionId> = next.manifest.submissions.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![orphan]);
}
