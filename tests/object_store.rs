//! The object backend (`docs/store-v1.md`) against a real three-node Garage on loopback: the
//! store's one test story, then the gateway on it: what is acknowledged is stored on a write
//! quorum, survives a node's loss and is exported exactly once by two gateways sharing the
//! bucket; an unreachable store refuses the start and, while running, answers 503.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use resguardo::store::backend_story::StoreUnderTest;
use resguardo::store::object::{ObjectStore, S3Client, S3Target};
use resguardo::store::{StoreOptions, SubmissionBackend, SubmissionStore};

use crate::common::garage::GarageCluster;
use crate::common::{self, Gateway};

mod faults;

/// A fresh prefix of its own on its own cluster, for one story.
pub struct OnGarage {
    cluster: GarageCluster,
    local: tempfile::TempDir,
    gateway: String,
}

impl OnGarage {
    pub fn new() -> OnGarage {
        OnGarage {
            cluster: GarageCluster::start(),
            local: tempfile::tempdir().expect("tempdir"),
            gateway: "story".into(),
        }
    }
}

/// A client of `cluster`'s bucket through `endpoint` (a node, or a relay in front of one).
pub fn client_at(cluster: &GarageCluster, endpoint: String) -> S3Client {
    S3Client::new(S3Target {
        endpoint,
        bucket: cluster.bucket().into(),
        region: cluster.region().into(),
        access_key_id: cluster.access_key_id().into(),
        secret_access_key: cluster.secret_access_key().to_string().into(),
        ca_file: None,
    })
    .expect("client")
}

pub fn client_for(cluster: &GarageCluster, node: usize) -> S3Client {
    client_at(cluster, cluster.s3_endpoint_of(node))
}

impl StoreUnderTest for OnGarage {
    fn open(&self) -> Arc<dyn SubmissionBackend> {
        let (local, _) =
            SubmissionStore::open(self.local.path(), StoreOptions::default()).expect("local");
        let (store, _) =
            ObjectStore::open(Arc::new(local), client_for(&self.cluster, 0), &self.gateway)
                .expect("open the object store");
        Arc::new(store)
    }
}

mod story {
    resguardo::backend_stories!(super::OnGarage::new());
}

/// The `[store]` part of a gateway config on `cluster`, node `node`, as gateway `name`.
pub fn s3_config(cluster: &GarageCluster, dir: &Path, node: usize, name: &str) -> String {
    let credentials = dir.join(format!("s3-credentials-{name}"));
    cluster.write_credentials_file(&credentials);
    format!(
        "[store]\nbackend = \"s3\"\n\n[store.s3]\nendpoint = \"{}\"\nbucket = \"{}\"\n\
         region = \"{}\"\ngateway = \"{name}\"\ncredentials_file = \"{}\"\n",
        cluster.s3_endpoint_of(node),
        cluster.bucket(),
        cluster.region(),
        credentials.display()
    )
}

fn start_on(cluster: &GarageCluster, dir: &Path, node: usize, name: &str, extra: &str) -> Gateway {
    let extra = format!("{}\n{extra}", s3_config(cluster, dir, node, name));
    Gateway::start_with(dir, "plain-http", &extra)
}

/// `resguardo-gateway serve` with `config`, for a start that must be refused: its output.
pub fn serve_once(config: &Path) -> std::process::Output {
    common::run(
        std::process::Command::new(common::gateway_bin())
            .args(["serve", "--config"])
            .arg(config),
    )
}

fn submit(gateway: &Gateway, payload: &[u8]) -> (u16, serde_json::Value) {
    common::post(
        &gateway.url,
        &common::sealed(payload),
        Some("application/pgp-encrypted"),
    )
}

/// Exports through the running gateway's admin socket; the bundle's entries.
fn export_running(gateway: &Gateway, out: &Path) -> Vec<(String, Vec<u8>)> {
    let o = common::run(
        std::process::Command::new(common::gateway_bin())
            .args(["export", "--data-dir"])
            .arg(&gateway.data_dir)
            .arg("--out")
            .arg(out),
    );
    assert!(o.status.success(), "export: {}", common::stderr(&o));
    if !out.exists() {
        eprintln!(
            "export said: {}{}\n{}",
            common::stdout(&o),
            common::stderr(&o),
            gateway.logs()
        );
        return Vec::new();
    }
    common::read_bundle(out)
}

/// A bundle's entries: id and sealed bytes.
type Bundle = Vec<(String, Vec<u8>)>;

fn ids(entries: &[(String, Vec<u8>)]) -> Vec<String> {
    entries.iter().map(|(id, _)| id.clone()).collect()
}

#[test]
fn reports_on_the_object_store_arrive_open_and_purge() {
    let cluster = GarageCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = start_on(&cluster, dir.path(), 0, "site-a", "");
    let (status, body) = submit(&gateway, b"canary-objeto-7f3a report one");
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    // Without JavaScript: sealed on arrival, then kept in the bucket.
    let form = common::multipart(&crate::form_post::ok_parts(
        "canary-formulario-2b9e",
        b"%PDF-1.4",
    ));
    let boundary = format!("multipart/form-data; boundary={}", common::BOUNDARY);
    let (status, page) = crate::form_post::post_form(&gateway, &form, &boundary);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("submission-id"), "{page}");
    // An upload that resumes: created, sent in two pieces, kept in the bucket when complete.
    let sealed = common::sealed(&vec![b'r'; 300_000]);
    let path = crate::resumable::created(gateway.addr, sealed.len() as u64);
    let half = sealed.len() / 2;
    let answer = crate::resumable::patch(gateway.addr, &path, 0, &sealed[..half]);
    assert_eq!(answer.status, 204);
    let answer = crate::resumable::patch(gateway.addr, &path, half as u64, &sealed[half..]);
    assert_eq!(answer.status, 201, "{}", answer.json());
    let bundle = dir.path().join("batch.tar");
    let entries = export_running(&gateway, &bundle);
    assert_eq!(entries.len(), 3);
    assert!(ids(&entries).contains(&id));
    let opened = dir.path().join("opened");
    let o = common::open_as_demo_reviewer(&bundle, &opened);
    assert!(o.status.success(), "open: {}", common::stderr(&o));
    let files = common::all_files(&opened);
    let report = ["canary-objeto-7f3a", "canary-formulario-2b9e"]
        .iter()
        .all(|canary| {
            files
                .iter()
                .any(|(_, b)| common::contains(b, canary.as_bytes()))
        });
    assert!(report, "the reviewer reads the report");
    let receipt = common::receipt_for(&bundle);
    let o = common::purge(&gateway.data_dir, &bundle, &receipt);
    assert!(o.status.success(), "purge: {}", common::stderr(&o));
    let listed = client_for(&cluster, 1)
        .list("resguardo/site-a/")
        .expect("list");
    assert!(
        listed.iter().all(|o| !o.key.contains(&id)),
        "purged objects are gone: {listed:?}"
    );
    // A report sent with a telling user agent and referrer, through the no-JS form too.
    let head = format!(
        "POST /api/v1/submissions HTTP/1.1\r\nHost: {}\r\nUser-Agent: canary-agent-51c2\r\n\
         Referer: http://canary-referrer-8e1d.example/\r\nX-Forwarded-For: 203.0.113.77\r\n\
         Content-Type: application/pgp-encrypted\r\nContent-Length: {{}}\r\nConnection: close\r\n\r\n",
        gateway.addr
    );
    let sealed = common::sealed(b"canary-objeto-7f3a second report");
    let (status, body) = common::raw_request(
        gateway.addr,
        &head.replace("{}", &sealed.len().to_string()),
        &sealed,
    );
    assert_eq!(status, 201, "{body}");
    // Nothing readable in any node's data, metadata or log.
    let hits = cluster.scan_for(&[
        b"canary-objeto-7f3a",
        b"canary-formulario-2b9e",
        b"canary-agent-51c2",
        b"canary-referrer-8e1d",
        b"203.0.113.77",
    ]);
    assert!(hits.is_empty(), "{hits:?}");
}

#[test]
fn an_unreachable_store_refuses_the_start_with_the_reason() {
    let cluster = GarageCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("gateway.toml");
    let mut extra = s3_config(&cluster, dir.path(), 0, "site-a");
    drop(cluster); // every node stopped: nothing answers
    std::fs::write(&config, common::config_text(&data, "plain-http", &extra)).expect("config");
    let o = serve_once(&config);
    assert!(!o.status.success());
    let err = common::stderr(&o);
    assert!(err.contains("object store"), "{err}");
    // Wrong credentials: refused, and the secret is never printed.
    let cluster = GarageCluster::start();
    extra = s3_config(&cluster, dir.path(), 0, "site-a");
    let credentials = dir.path().join("s3-credentials-site-a");
    std::fs::write(
        &credentials,
        "access_key_id = \"GK0123456789abcdef01234567\"\nsecret_access_key = \"not-the-secret-9d2\"\n",
    )
    .expect("credentials");
    std::fs::write(&config, common::config_text(&data, "plain-http", &extra)).expect("config");
    let o = serve_once(&config);
    assert!(!o.status.success());
    let out = format!("{}{}", common::stderr(&o), common::stdout(&o));
    assert!(out.contains("refused"), "{out}");
    assert!(!out.contains("not-the-secret-9d2"), "{out}");
}

/// Sends reports one after another for `for_how_long`, from a thread; the ids that got 201 and
/// the statuses of the others.
fn stream_of_reports(
    url: String,
    count: usize,
) -> std::thread::JoinHandle<(Vec<String>, Vec<u16>)> {
    std::thread::spawn(move || {
        let mut stored = Vec::new();
        let mut refused = Vec::new();
        for i in 0..count {
            let (status, body) = common::post(
                &url,
                &common::sealed(format!("report {i}").as_bytes()),
                Some("application/pgp-encrypted"),
            );
            match status {
                201 => stored.push(body["id"].as_str().unwrap_or_default().to_string()),
                other => {
                    assert_eq!(other, 503, "only 201 or 503: {body}");
                    assert_eq!(body["error"], "storage_unavailable", "{body}");
                    refused.push(other);
                }
            }
        }
        (stored, refused)
    })
}

#[test]
fn one_node_lost_during_uploads_loses_nothing_two_lost_refuse_with_503_and_resume() {
    let mut cluster = GarageCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = start_on(&cluster, dir.path(), 0, "site-a", "");
    let reports = stream_of_reports(gateway.url.clone(), 40);
    std::thread::sleep(Duration::from_millis(300));
    cluster.kill(2);
    let (stored, refused) = reports.join().expect("reports");
    assert!(
        refused.is_empty(),
        "one node down must not refuse: {refused:?}"
    );
    assert_eq!(stored.len(), 40);
    // Two of three down: no write quorum, no false 201.
    cluster.kill(1);
    let (status, body) = submit(&gateway, b"no quorum");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "storage_unavailable");
    cluster.restart(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let resumed = loop {
        let (status, body) = submit(&gateway, b"after the node returned");
        if status == 201 {
            break body["id"].as_str().expect("id").to_string();
        }
        assert!(Instant::now() < deadline, "writes did not resume: {body}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let entries = export_running(&gateway, &dir.path().join("b.tar"));
    let exported: HashSet<String> = ids(&entries).into_iter().collect();
    let acknowledged: HashSet<String> = stored.into_iter().chain([resumed]).collect();
    assert_eq!(
        exported, acknowledged,
        "every 201 is exported, nothing else"
    );
}

#[test]
fn acknowledged_reports_survive_kill_9_of_the_gateway_on_the_object_store() {
    let cluster = GarageCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = start_on(&cluster, dir.path(), 0, "site-a", "");
    let url = gateway.url.clone();
    let reports = std::thread::spawn(move || {
        let mut stored = Vec::new();
        for i in 0..2000 {
            let sent = common::agent()
                .post(format!("{url}api/v1/submissions"))
                .header("Content-Type", "application/pgp-encrypted")
                .send(&common::sealed(format!("report {i}").as_bytes())[..]);
            let Ok(mut answer) = sent else { break };
            let text = answer.body_mut().read_to_string().unwrap_or_default();
            if answer.status() == 201 {
                let body: serde_json::Value = serde_json::from_str(&text).expect("json");
                stored.push(body["id"].as_str().expect("id").to_string());
            }
        }
        stored
    });
    std::thread::sleep(Duration::from_millis(1500));
    let _ = gateway.kill9();
    let stored = reports.join().expect("sender");
    assert!(
        !stored.is_empty(),
        "some reports were acknowledged before the kill"
    );
    let gateway = start_on(&cluster, dir.path(), 0, "site-a", "");
    let entries = export_running(&gateway, &dir.path().join("b.tar"));
    let exported: HashSet<String> = ids(&entries).into_iter().collect();
    for id in &stored {
        assert!(exported.contains(id), "acknowledged {id} was lost");
    }
}

#[test]
fn two_gateways_on_one_bucket_export_every_report_exactly_once() {
    let cluster = GarageCluster::start();
    let dirs = [
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    ];
    let gateways = [
        start_on(&cluster, dirs[0].path(), 0, "site-a", ""),
        start_on(&cluster, dirs[1].path(), 1, "site-b", ""),
    ];
    let senders: Vec<_> = gateways
        .iter()
        .map(|g| stream_of_reports(g.url.clone(), 30))
        .collect();
    // Exports and purges run on both while reports arrive.
    let mut exported: Vec<String> = Vec::new();
    let mut round = 0;
    let exporters_done = |senders: &Vec<std::thread::JoinHandle<_>>| {
        senders
            .iter()
            .all(|s: &std::thread::JoinHandle<_>| s.is_finished())
    };
    loop {
        let finished = exporters_done(&senders);
        let batches: Vec<(PathBuf, Bundle)> = std::thread::scope(|scope| {
            let handles: Vec<_> = gateways
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let out = dirs[i].path().join(format!("batch-{round}.tar"));
                    scope.spawn(move || {
                        let entries = export_running(g, &out);
                        (out, entries)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("export"))
                .collect()
        });
        for (i, (bundle, entries)) in batches.into_iter().enumerate() {
            if entries.is_empty() {
                continue;
            }
            exported.extend(ids(&entries));
            let receipt = common::receipt_for(&bundle);
            let o = common::purge(&gateways[i].data_dir, &bundle, &receipt);
            assert!(o.status.success(), "purge: {}", common::stderr(&o));
        }
        round += 1;
        if finished {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let acknowledged: Vec<String> = senders
        .into_iter()
        .flat_map(|s| s.join().expect("sender").0)
        .collect();
    let unique: HashSet<&String> = exported.iter().collect();
    assert_eq!(unique.len(), exported.len(), "a report went out twice");
    let acknowledged: HashSet<&String> = acknowledged.iter().collect();
    assert_eq!(
        unique, acknowledged,
        "every acknowledged report went out once"
    );
    assert_eq!(acknowledged.len(), 60);
}

#[test]
fn every_bad_body_is_refused_on_the_object_store_and_nothing_is_stored() {
    let cluster = GarageCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = s3_config(&cluster, dir.path(), 0, "site-a");
    let client = client_for(&cluster, 2);
    let stored = || client.list("resguardo/site-a/sealed/").expect("list").len();
    crate::bad_bodies::every_bad_body_is_refused_against(dir.path(), &store, &stored);
}

#[test]
fn a_second_gateway_with_the_same_name_takes_the_prefix_and_the_first_stops_exporting() {
    let cluster = GarageCluster::start();
    let dirs = [
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    ];
    let first = start_on(&cluster, dirs[0].path(), 0, "site-a", "");
    let (status, body) = submit(&first, b"before the replacement");
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    // The replacement of a lost site, or a mistake: the same name on another machine.
    let second = start_on(&cluster, dirs[1].path(), 1, "site-a", "");
    let o = common::run(
        std::process::Command::new(common::gateway_bin())
            .args(["export", "--data-dir"])
            .arg(&first.data_dir)
            .arg("--out")
            .arg(dirs[0].path().join("refused.tar")),
    );
    assert!(!o.status.success(), "the first gateway no longer exports");
    assert!(
        common::stderr(&o).contains("another gateway took the prefix"),
        "{}",
        common::stderr(&o)
    );
    // A report that reaches the first one meanwhile still goes out, through the second.
    let (status, body) = submit(&first, b"to the old one");
    assert_eq!(status, 201, "{body}");
    let late = body["id"].as_str().expect("id").to_string();
    let entries = export_running(&second, &dirs[1].path().join("b.tar"));
    let exported: HashSet<String> = ids(&entries).into_iter().collect();
    assert_eq!(exported, [id, late].into_iter().collect());
}
