//! Issue 14 (docs/trust-v1.md), parts 2 and 3 as the on-call courier and a careful reporter see
//! them: `resguardo-review watch --org` rings when the page's script is altered, when the served
//! key list is swapped, and (with or without --org) when the gateway's log is rewritten after it
//! saw its head; `resguardo-submit verify-page` passes the genuine page and lists what differs.
//! The real gateway on loopback (plain HTTP), with a small HTTP proxy in front that alters
//! answers.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
/// `/api/v1/keys` answers 503.
const KEYS_UNAVAILABLE: u8 = 3;
/// The courier's chain route answers 404.
const CHAIN_GONE: u8 = 4;
/// `/` hands its script no organisation fingerprint (the page would take the keys as served).
const NO_ORGANISATION_BLOCK: u8 = 6;
/// The key list with a field it does not have.
const KEY_LIST_EXTRA_FIELD: u8 = 5;

/// The requests the proxy relayed: the request line, and whether it came with Chromium's
/// User-Agent (the page check's sessions).
type Log = Arc<Mutex<Vec<(String, bool)>>>;

/// A loopback HTTP proxy in front of `gateway` that alters answers as `mode` says now (one
/// request per connection).
fn proxy(gateway: SocketAddr, mode: Arc<AtomicU8>) -> String {
    proxy_logged(gateway, mode, Log::default())
}

/// As [`proxy`], recording each request in `log`.
fn proxy_logged(gateway: SocketAddr, mode: Arc<AtomicU8>, log: Log) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let mode = mode.load(Ordering::SeqCst);
            let log = log.clone();
            std::thread::spawn(move || {
                let _ = relay(client, gateway, mode, &log);
            });
        }
    });
    format!("http://{addr}/")
}

fn relay(mut client: TcpStream, gateway: SocketAddr, mode: u8, log: &Log) -> std::io::Result<()> {
    let Some(text) = relay::read_head(&mut client)? else {
        return Ok(());
    };
    let request_line = text.split("\r\n").next().unwrap_or("").to_string();
    log.lock()
        .unwrap()
        .push((request_line, text.contains("Chrome/")));
    let canned = |status: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    if mode == KEYS_UNAVAILABLE && text.starts_with("GET /api/v1/keys ") {
        client.write_all(
            canned(
                "503 Service Unavailable",
                "{\"error\":\"busy\",\"message\":\"busy\"}",
            )
            .as_bytes(),
        )?;
        return client.shutdown(std::net::Shutdown::Both);
    }
    if mode == CHAIN_GONE && text.starts_with("GET /api/v1/courier/chain") {
        client.write_all(
            canned(
                "404 Not Found",
                "{\"error\":\"not_found\",\"message\":\"no such route\"}",
            )
            .as_bytes(),
        )?;
        return client.shutdown(std::net::Shutdown::Both);
    }
    let app_js = format!("GET /v/{}/app.js ", PageManifest::embedded().release);
    let alter = (mode == CHANGED_APP_JS && text.starts_with(&app_js))
        || (mode == NO_ORGANISATION_BLOCK && text.starts_with("GET / "))
        || ((mode == SWAPPED_LIST || mode == KEY_LIST_EXTRA_FIELD)
            && text.starts_with("GET /api/v1/keys "));
    // What is altered comes uncompressed.
    let upstream = relay::forward(&text, gateway, alter)?;
    let (answer_head, body) = relay::answer(upstream)?;
    if !alter {
        let mut whole = answer_head.into_bytes();
        whole.extend_from_slice(&body);
        client.write_all(&whole)?;
        return client.shutdown(std::net::Shutdown::Both);
    }
    let body = body.as_slice();
    let body = if mode == NO_ORGANISATION_BLOCK {
        let html = String::from_utf8_lossy(body).into_owned();
        let start = html
            .find("<script type=\"application/json\" id=\"organisation-key\">")
            .expect("the genuine page has the block");
        let end = start + html[start..].find("</script>").expect("its end") + "</script>".len();
        let without = format!(
            "{}<script type=\"application/json\" id=\"organisation-key\">{{\"fingerprint\":null}}</script>{}",
            &html[..start],
            &html[end..]
        );
        without.into_bytes()
    } else if mode == CHANGED_APP_JS {
        let mut body = body.to_vec();
        body.extend_from_slice(
            b"\n;fetch('/x', {method: 'POST', body: document.body.innerHTML});\n",
        );
        body
    } else if mode == KEY_LIST_EXTRA_FIELD {
        let mut json: serde_json::Value = serde_json::from_slice(body).expect("keys json");
        json["key_list"]["comment"] = "an extra field".into();
        serde_json::to_vec(&json).unwrap()
    } else {
        let mut json: serde_json::Value = serde_json::from_slice(body).expect("keys json");
        json["key_list"] = serde_json::to_value(signed_list(&orgs().attacker, 9)).unwrap();
        json["organisation"] = orgs().attacker.fingerprint().to_hex().into();
        serde_json::to_vec(&json).unwrap()
    };
    relay::reply(client, &answer_head, &body)
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

/// A gateway behind a proxy whose mode the test sets, and a watch's state and rings.
struct Setup {
    _dir: tempfile::TempDir,
    gateway: Gateway,
    mode: Arc<AtomicU8>,
    log: Log,
    url: String,
    state: PathBuf,
    rings: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _) = start(dir.path());
    let mode = Arc::new(AtomicU8::new(GENUINE));
    let log = Log::default();
    let url = proxy_logged(gateway.addr, mode.clone(), log.clone());
    Setup {
        state: dir.path().join("watch"),
        rings: dir.path().join("rings.txt"),
        _dir: dir,
        gateway,
        mode,
        log,
        url,
    }
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

/// Regression (hostile review, finding 9): once a key list was verified, a gateway that answers
/// 503 to `/api/v1/keys` (or anything that keeps the check from completing) silenced the watch
/// ("not checked" at every poll). Now the third poll in a row rings; verify-page says it could
/// not verify (exit 4), not that a submission was refused.
#[test]
fn a_check_that_cannot_complete_rings_at_the_third_poll_and_verify_page_says_so() {
    let s = setup();
    let out = watch(&s.url, &s.state, &s.rings, true);
    assert!(
        stdout(&out).contains("trust: key list 1"),
        "{}",
        stdout(&out)
    );
    s.mode.store(KEYS_UNAVAILABLE, Ordering::SeqCst);
    let out = verify_page(&s.url);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("could not verify this page: do not rely on it"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("refused"), "{}", stderr(&out));
    for poll in 1..=3 {
        let out = watch(&s.url, &s.state, &s.rings, true);
        let printed = stdout(&out);
        assert!(printed.contains("not checked"), "{printed}");
        assert_eq!(
            printed.contains("ALARM"),
            poll == 3,
            "poll {poll}: {printed}"
        );
    }
    let rung = rings(&s.rings, 1, Duration::from_secs(20));
    assert_eq!(rung.len(), 1, "{rung:?}");
    assert!(rung[0].contains("RESGUARDO_ALARM=page"), "{}", rung[0]);
    assert!(rung[0].contains("3 polls in a row"), "{}", rung[0]);
    s.gateway.stop();
}

/// Regression (finding 9): a key list with a field it does not have made the check "not
/// checked", not an alarm.
#[test]
fn a_malformed_key_list_rings() {
    let s = setup();
    watch(&s.url, &s.state, &s.rings, true);
    s.mode.store(KEY_LIST_EXTRA_FIELD, Ordering::SeqCst);
    let out = watch(&s.url, &s.state, &s.rings, true);
    let printed = stdout(&out);
    assert!(
        printed.contains("ALARM") && printed.contains("malformed key list"),
        "{printed}"
    );
    let rung = rings(&s.rings, 1, Duration::from_secs(20));
    assert!(rung[0].contains("RESGUARDO_ALARM=keys"), "{}", rung[0]);
    let out = verify_page(&s.url);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    s.gateway.stop();
}

/// Regression (finding 9): a 404 on the chain route after the watch verified a head was printed
/// once and never rang.
#[test]
fn a_chain_route_that_disappears_after_a_verified_head_rings() {
    let s = setup();
    let (status, body) = post(
        &s.gateway.url,
        &sealed(b"report"),
        Some("application/pgp-encrypted"),
    );
    assert_eq!(status, 201, "{body}");
    let out = watch(&s.url, &s.state, &s.rings, false);
    assert!(!stdout(&out).contains("ALARM"), "{}", stdout(&out));
    s.mode.store(CHAIN_GONE, Ordering::SeqCst);
    let out = watch(&s.url, &s.state, &s.rings, false);
    let printed = stdout(&out);
    assert!(
        printed.contains("ALARM") && printed.contains("no longer shows its log"),
        "{printed}"
    );
    let rung = rings(&s.rings, 1, Duration::from_secs(20));
    assert!(rung[0].contains("RESGUARDO_ALARM=chain"), "{}", rung[0]);
    s.gateway.stop();
}

/// The review: the watch asked for `/api/v1/keys` first on a fresh connection, and for
/// `nojs.css` but never `/favicon.ico`, unlike a browser. Now `/` comes first, then what it
/// loads, the icon, then the keys (as the page's script), and the files no page loads with
/// scripting on only in the rest session, after.
#[test]
fn the_watch_opens_the_page_as_a_browser_does() {
    let s = setup();
    let out = watch(&s.url, &s.state, &s.rings, true);
    assert!(!stdout(&out).contains("ALARM"), "{}", stdout(&out));
    let log = s.log.lock().unwrap().clone();
    let browser: Vec<&str> = log
        .iter()
        .filter(|(_, chrome)| *chrome)
        .map(|(line, _)| line.as_str())
        .collect();
    let at = |path: &str| {
        browser
            .iter()
            .position(|l| l.starts_with(&format!("GET {path} ")))
            .unwrap_or_else(|| panic!("{path} not asked for: {browser:#?}"))
    };
    let release = PageManifest::embedded().release;
    assert_eq!(at("/"), 0, "{browser:#?}");
    assert!(at(&format!("/v/{release}/style.css")) < at(&format!("/v/{release}/app.js")));
    assert!(at(&format!("/v/{release}/app.js")) < at("/favicon.ico"));
    assert!(at("/favicon.ico") < at("/api/v1/keys"));
    assert!(at("/api/v1/keys") < at(&format!("/v/{release}/nojs.css")));
    assert!(at("/api/v1/keys") < at(&format!("/v/{release}/js/pow-worker.js")));
    s.gateway.stop();
}

#[test]
fn verify_page_refuses_an_older_list_and_lists_its_exit_codes() {
    let s = setup();
    let out = run(Command::new(submit_bin()).args([
        "verify-page",
        &s.url,
        "--pin",
        &pin(),
        "--min-version",
        "2",
    ]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("older than version 2"),
        "{}",
        stderr(&out)
    );
    let help = stdout(&run(
        Command::new(submit_bin()).args(["verify-page", "--help"])
    ));
    for code in [
        "0 the page",
        "2 usage",
        "4 could not verify",
        "5 the key list",
        "6 the page",
    ] {
        assert!(help.contains(code), "{code}: {help}");
    }
    assert!(help.contains("64"), "{help}");
    s.gateway.stop();
}

/// Regression (first stop of issue 14): the page's script checks the key list only when `/`
/// hands it the organisation's fingerprint; a gateway that drops it (the script then takes the
/// keys as served) must not pass the page check.
#[test]
fn a_page_that_hands_its_script_no_organisation_fingerprint_fails_verify_page() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _) = start(dir.path());
    let mode = Arc::new(AtomicU8::new(GENUINE));
    let url = proxy(gateway.addr, mode.clone());
    assert_eq!(verify_page(&url).status.code(), Some(0));
    mode.store(NO_ORGANISATION_BLOCK, Ordering::SeqCst);
    let out = verify_page(&url);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not give its script the organisation's fingerprint"),
        "{}",
        stderr(&out)
    );
    gateway.stop();
}
