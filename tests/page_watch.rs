//! Issue 14 (docs/trust-v1.md), parts 2 and 3 as the on-call courier and a careful reporter see
//! them: `resguardo-review watch --org` rings when the page's script is altered, when the served
//! key list is swapped, and (with or without --org) when the gateway's log is rewritten after it
//! saw its head; `resguardo-submit verify-page` passes the genuine page and lists what differs.
//! The real gateway on loopback (plain HTTP), with a small HTTP proxy in front that alters
//! answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use resguardo::keyring::{CourierKeyring, ReviewerKeyring};
use resguardo::store::{StoreOptions, SubmissionStore};
use resguardo::submission::UtcDay;
use resguardo::trust::keylist::{
    entry_for, grouped, sign_key_list, KeyList, PageManifest, SignedKeyList, LIST_FORMAT,
};
use sequoia_openpgp::crypto::Password;
use sequoia_openpgp::Cert;

use crate::common::*;

/// The organisation and an attacker's organisation, made once.
struct Orgs {
    org: Cert,
    attacker: Cert,
}

fn orgs() -> &'static Orgs {
    static ORGS: OnceLock<Orgs> = OnceLock::new();
    ORGS.get_or_init(|| Orgs {
        org: resguardo::testing::org_key("Organización de prueba"),
        attacker: resguardo::testing::org_key("Attacker"),
    })
}

fn courier_file(ext: &str) -> PathBuf {
    repo().join(format!("keys-example/demo-courier-1.{ext}"))
}

fn pin() -> String {
    grouped(&orgs().org.fingerprint())
}

/// A key list of the demo reviewers and courier, this build's page, signed by `org`.
fn signed_list(org: &Cert, version: u64) -> SignedKeyList {
    let reviewers = ReviewerKeyring::load(&[demo_pub(1), demo_pub(2)]).expect("reviewers");
    let couriers = CourierKeyring::load(&[courier_file("pub.asc")], None).expect("courier");
    let today = UtcDay::today().days_since_epoch();
    let list = KeyList {
        format: LIST_FORMAT.into(),
        organisation: org.fingerprint().to_hex(),
        version,
        issued: UtcDay::from_days_since_epoch(today - 1),
        expires: UtcDay::from_days_since_epoch(today + 60),
        reviewers: reviewers.reviewers().iter().map(entry_for).collect(),
        couriers: couriers.couriers().iter().map(entry_for).collect(),
        page: PageManifest::embedded(),
    };
    sign_key_list(org, Some(&Password::from("test")), &list).expect("sign")
}

/// A gateway on loopback with the demo keys, the demo courier and the organisation's key list.
fn start(dir: &Path) -> (Gateway, PathBuf) {
    let list = dir.join("keylist.json");
    std::fs::write(
        &list,
        serde_json::to_vec_pretty(&signed_list(&orgs().org, 1)).unwrap(),
    )
    .unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nreviewer_certs = [\"{}\", \"{}\"]\n\
         key_list = \"{}\"\n[tls]\nmode = \"plain-http\"\n[proof_of_work]\nenabled = false\n\
         [organisation]\nkey_fingerprint = \"{}\"\n[[couriers]]\ncert = \"{}\"\n",
        dir.join("data").display(),
        demo_pub(1).display(),
        demo_pub(2).display(),
        list.display(),
        pin(),
        courier_file("pub.asc").display()
    );
    let config = dir.join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    (Gateway::start_config(&config, &dir.join("data")), config)
}

/// What the proxy alters.
const GENUINE: u8 = 0;
/// One line added to the release's app.js.
const CHANGED_APP_JS: u8 = 1;
/// The key list swapped for one signed by another organisation key.
const SWAPPED_LIST: u8 = 2;

/// A loopback HTTP proxy in front of `gateway` that alters answers as `mode` says now (one
/// request per connection).
fn proxy(gateway: SocketAddr, mode: Arc<AtomicU8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let mode = mode.load(Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = relay(client, gateway, mode);
            });
        }
    });
    format!("http://{addr}/")
}

fn relay(mut client: TcpStream, gateway: SocketAddr, mode: u8) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let app_js = format!("GET /v/{}/app.js ", PageManifest::embedded().release);
    let alter = (mode == CHANGED_APP_JS && text.starts_with(&app_js))
        || (mode == SWAPPED_LIST && text.starts_with("GET /api/v1/keys "));
    // One request per connection; what is altered comes uncompressed.
    let mut lines: Vec<&str> = text
        .trim_end()
        .split("\r\n")
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            let dropped =
                l.starts_with("connection:") || (alter && l.starts_with("accept-encoding:"));
            !dropped
        })
        .collect();
    lines.push("Connection: close");
    let mut upstream = TcpStream::connect(gateway)?;
    upstream.write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer)?;
    if !alter {
        client.write_all(&answer)?;
        return client.shutdown(std::net::Shutdown::Both);
    }
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer head")
        + 4;
    let (answer_head, body) = answer.split_at(split);
    let body = if mode == CHANGED_APP_JS {
        let mut body = body.to_vec();
        body.extend_from_slice(
            b"\n;fetch('/x', {method: 'POST', body: document.body.innerHTML});\n",
        );
        body
    } else {
        let mut json: serde_json::Value = serde_json::from_slice(body).expect("keys json");
        json["key_list"] = serde_json::to_value(signed_list(&orgs().attacker, 9)).unwrap();
        json["organisation"] = orgs().attacker.fingerprint().to_hex().into();
        serde_json::to_vec(&json).unwrap()
    };
    let head_text = String::from_utf8_lossy(answer_head);
    let mut out: Vec<String> = head_text
        .trim_end()
        .split("\r\n")
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("content-length:") && !l.starts_with("connection:")
        })
        .map(String::from)
        .collect();
    out.push(format!("Content-Length: {}", body.len()));
    out.push("Connection: close".into());
    client.write_all(format!("{}\r\n\r\n", out.join("\r\n")).as_bytes())?;
    client.write_all(&body)?;
    client.shutdown(std::net::Shutdown::Both)
}

/// `watch --once` as the demo courier; `org` adds `--org`. Each ring appends its environment to
/// `rings`.
fn watch(url: &str, state: &Path, rings: &Path, org: bool) -> Output {
    let mut cmd = Command::new(review_bin());
    cmd.args(["watch", "--once", "--server", url, "--courier-key"])
        .arg(courier_file("sec.asc"))
        .arg("--passphrase-file")
        .arg(courier_file("passphrase"))
        .arg("--state")
        .arg(state)
        .args([
            "--on-alert",
            &format!(
                "env | grep RESGUARDO_ >> {}; echo --- >> {}",
                rings.display(),
                rings.display()
            ),
        ]);
    if org {
        cmd.args(["--org", &pin()]);
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "watch: {}", stderr(&out));
    out
}

fn verify_page(url: &str) -> Output {
    run(Command::new(submit_bin()).args(["verify-page", url, "--pin", &pin()]))
}

/// The rings so far, each its environment lines (waiting up to `within` for `count` of them).
fn rings(path: &Path, count: usize, within: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let done: Vec<String> = text
            .split("---\n")
            .filter(|r| !r.trim().is_empty())
            .map(String::from)
            .collect();
        if done.len() >= count || start.elapsed() > within {
            return done;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_changed_script_rings_the_watch_naming_it_and_fails_verify_page() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _) = start(dir.path());
    let mode = Arc::new(AtomicU8::new(GENUINE));
    let url = proxy(gateway.addr, mode.clone());
    let state = dir.path().join("watch");
    let ring_file = dir.path().join("rings.txt");

    // The genuine page passes both.
    let out = verify_page(&url);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("is the release the organisation")
            && said.contains(&pin())
            && said.contains("key list 1"),
        "{said}"
    );
    let out = watch(&url, &state, &ring_file, true);
    let printed = stdout(&out);
    assert!(printed.contains("trust: key list 1"), "{printed}");
    assert!(!printed.contains("ALARM"), "{printed}");

    // app.js changed: verify-page lists it (exit 6), the watch rings within one poll naming it.
    mode.store(CHANGED_APP_JS, Ordering::SeqCst);
    let out = verify_page(&url);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("/app.js"), "{}", stderr(&out));
    let out = watch(&url, &state, &ring_file, true);
    let printed = stdout(&out);
    assert!(
        printed.contains("ALARM") && printed.contains("/app.js"),
        "{printed}"
    );
    let rung = rings(&ring_file, 1, Duration::from_secs(20));
    assert_eq!(rung.len(), 1, "{rung:?}");
    assert!(rung[0].contains("RESGUARDO_ALARM=page"), "{}", rung[0]);
    assert!(rung[0].contains("app.js"), "{}", rung[0]);
    assert!(rung[0].contains("RESGUARDO_URGENT=yes"), "{}", rung[0]);

    // The same problem at the next poll is printed, not rung again.
    let out = watch(&url, &state, &ring_file, true);
    assert!(stdout(&out).contains("/app.js"), "{}", stdout(&out));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rings(&ring_file, 2, Duration::from_secs(1)).len(), 1);
    gateway.stop();
}

#[test]
fn a_swapped_key_list_rings_the_watch_and_fails_verify_page() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _) = start(dir.path());
    let mode = Arc::new(AtomicU8::new(GENUINE));
    let url = proxy(gateway.addr, mode.clone());
    let state = dir.path().join("watch");
    let ring_file = dir.path().join("rings.txt");
    let out = watch(&url, &state, &ring_file, true);
    assert!(!stdout(&out).contains("ALARM"), "{}", stdout(&out));

    mode.store(SWAPPED_LIST, Ordering::SeqCst);
    let out = watch(&url, &state, &ring_file, true);
    let printed = stdout(&out);
    assert!(
        printed.contains("ALARM") && printed.contains("keys:"),
        "{printed}"
    );
    let rung = rings(&ring_file, 1, Duration::from_secs(20));
    assert_eq!(rung.len(), 1, "{rung:?}");
    assert!(rung[0].contains("RESGUARDO_ALARM=keys"), "{}", rung[0]);
    let out = verify_page(&url);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has not vouched for"),
        "{}",
        stderr(&out)
    );
    gateway.stop();
}

#[test]
fn verify_page_without_a_pin_says_where_to_get_one() {
    let out = run(Command::new(submit_bin()).args(["verify-page", "http://127.0.0.1:9/"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("card"), "{}", stderr(&out));
}

#[test]
fn a_rewritten_chain_rings_the_watch_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, config) = start(dir.path());
    for n in 0..3 {
        let (status, body) = post(
            &gateway.url,
            &sealed(format!("report {n}").as_bytes()),
            Some("application/pgp-encrypted"),
        );
        assert_eq!(status, 201, "{body}");
    }
    let state = dir.path().join("watch");
    let ring_file = dir.path().join("rings.txt");
    // Without --org: the chain is checked anyway; the page and keys are said to be off.
    let out = watch(&gateway.url, &state, &ring_file, false);
    let printed = stdout(&out);
    assert!(printed.contains("checks are off"), "{printed}");
    assert!(!printed.contains("ALARM"), "{printed}");
    let saved = std::fs::read_to_string(state.join("watch-state.json")).unwrap();
    assert!(saved.contains("\"chain_head\":{\"sequence\":3"), "{saved}");

    // Someone with the disk swaps numbers 1 and 3 and makes the chain consistent again.
    let data = gateway.data_dir.clone();
    gateway.stop();
    {
        let (store, _) = SubmissionStore::open(&data, StoreOptions::default()).expect("store");
        store.tamper_rewrite_chain_swap(1, 3).expect("swap");
    }
    let gateway = Gateway::start_config(&config, &data);
    let out = watch(&gateway.url, &state, &ring_file, false);
    let printed = stdout(&out);
    assert!(
        printed.contains("ALARM") && printed.contains("number 3"),
        "{printed}"
    );
    let rung = rings(&ring_file, 1, Duration::from_secs(20));
    assert_eq!(rung.len(), 1, "{rung:?}");
    assert!(rung[0].contains("RESGUARDO_ALARM=chain"), "{}", rung[0]);
    assert!(rung[0].contains("number 3"), "{}", rung[0]);
    // Rung once: the next poll prints it without ringing.
    let out = watch(&gateway.url, &state, &ring_file, false);
    assert!(stdout(&out).contains("number 3"), "{}", stdout(&out));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rings(&ring_file, 2, Duration::from_secs(1)).len(), 1);
    gateway.stop();
}
