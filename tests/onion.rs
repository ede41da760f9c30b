//! The onion path, end to end: the real gateway with deploy/gateway.toml's settings (plain HTTP on
//! loopback, proof of work on) behind a v3 onion service with deploy/torrc's defences, on a
//! private Tor network on 127.0.0.1 (tests/support/private-tor). Clients reach it only through
//! that network's Tor client, which resolves the .onion name itself (socks5h).
//!
//! The network comes up once for this file's tests (about 30 s) and goes down when the test
//! binary exits. It needs tor and tor-gencert: without them these tests fail, they never skip.

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::tor::PrivateTor;
use crate::common::*;

/// The gateway as deployed, and the onion service in front of it.
struct Onion {
    // Field order is drop order: tor first, then the gateway, then their files.
    tor: PrivateTor,
    gateway: Gateway,
    /// The proof-of-work difficulty deploy/gateway.toml asks for when calm.
    base_difficulty: u64,
    _dir: tempfile::TempDir,
}

impl Onion {
    fn start() -> Onion {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let text = std::fs::read_to_string(repo().join("deploy/gateway.toml")).expect("read");
        let mut config: toml::Table = toml::from_str(&text).expect("deploy/gateway.toml parses");
        assert_eq!(
            config["tls"]["mode"].as_str(),
            Some("plain-http"),
            "behind the onion service the gateway serves plain HTTP on loopback"
        );
        assert_eq!(config["proof_of_work"]["enabled"].as_bool(), Some(true));
        let base_difficulty = config["proof_of_work"]["base_difficulty"]
            .as_integer()
            .expect("base_difficulty") as u64;
        // Only what is the operator's own changes: a free port, a private directory, the demo keys.
        config.insert("listen".into(), "127.0.0.1:0".into());
        config.insert("data_dir".into(), data.display().to_string().into());
        config.insert(
            "reviewer_certs".into(),
            toml::Value::Array(vec![
                demo_pub(1).display().to_string().into(),
                demo_pub(2).display().to_string().into(),
            ]),
        );
        // The demo courier, so the early alerts can be watched through the onion too.
        let mut courier = toml::Table::new();
        courier.insert(
            "cert".into(),
            repo()
                .join("keys-example/demo-courier-1.pub.asc")
                .display()
                .to_string()
                .into(),
        );
        config.insert(
            "couriers".into(),
            toml::Value::Array(vec![toml::Value::Table(courier)]),
        );
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("write config");
        let gateway = Gateway::start_config(&path, &data);
        assert!(
            gateway.url.starts_with("http://127.0.0.1:"),
            "{}",
            gateway.url
        );
        let tor = PrivateTor::start(gateway.addr);
        Onion {
            tor,
            gateway,
            base_difficulty,
            _dir: dir,
        }
    }
}

static ONION: Mutex<Option<Result<Onion, String>>> = Mutex::new(None);

/// Runs `test` with the shared onion service, bringing it up on first use. Tests take turns.
fn with_onion(test: impl FnOnce(&Onion)) {
    let mut shared = ONION.lock().unwrap_or_else(PoisonError::into_inner);
    let onion = shared.get_or_insert_with(|| {
        // SAFETY: `stop_onion` is an `extern "C" fn()` that neither unwinds nor depends on
        // anything atexit handlers may not use; registering it has no other effect.
        let registered = unsafe { libc::atexit(stop_onion) };
        assert_eq!(registered, 0, "atexit");
        std::panic::catch_unwind(Onion::start).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match onion {
        Ok(onion) => test(onion),
        Err(e) => panic!("the onion service did not come up:\n{e}"),
    }
}

/// At exit (libtest returns from main or calls exit): stop tor and the gateway.
extern "C" fn stop_onion() {
    let _ = std::panic::catch_unwind(|| {
        drop(ONION.lock().unwrap_or_else(PoisonError::into_inner).take());
    });
}

fn canary() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("CANARY{nanos:x}{:x}", std::process::id())
}

/// A request with curl through the Tor client's SOCKS port, the name resolved by Tor
/// (`--socks5-hostname`): another client than resguardo-submit's. Returns status and body.
fn curl_via_tor(
    onion: &Onion,
    path: &str,
    body: Option<&Path>,
    headers: &[String],
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "120",
        "--socks5-hostname",
        &onion.tor.socks,
    ])
    .args(["-w", "\n%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(file) = body {
        cmd.arg("--data-binary").arg(format!("@{}", file.display()));
    }
    cmd.arg(format!("{}{path}", onion.tor.url()));
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "curl through Tor to {path}: {}\n{}",
        stderr(&out),
        onion.tor.log_tails()
    );
    let text = stdout(&out);
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.parse().expect("status"), body.to_string())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn a_report_from_resguardo_submit_crosses_the_onion_into_the_bundle() {
    with_onion(|onion| {
        let dir = tempfile::tempdir().expect("tempdir");
        let canary = canary();
        let message = dir.path().join("message.txt");
        std::fs::write(
            &message,
            format!("Nos amenazaron después de la asamblea en Espinar. {canary}"),
        )
        .expect("write");
        let out = run(Command::new(submit_bin())
            .args(["--server", &onion.tor.url(), "--proxy", &onion.tor.proxy()])
            .arg("--message")
            .arg(&message)
            .args(["--field", "region=cusco", "--urgent"]));
        assert!(
            out.status.success(),
            "resguardo-submit through the onion: {}\n{}",
            stderr(&out),
            onion.tor.log_tails()
        );
        let id = stdout(&out).trim().to_string();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id:?}"
        );
        // It showed the reporter the keys it encrypted to: the ones the gateway serves.
        for reviewer in demo_keyring().reviewers() {
            let fingerprint = reviewer.fingerprint().to_hex();
            assert!(stderr(&out).contains(&fingerprint), "{}", stderr(&out));
        }

        let entries = export(&onion.gateway.data_dir, &dir.path().join("bundle.tar"));
        let (_, sealed) = entries
            .iter()
            .find(|(entry, _)| *entry == id)
            .unwrap_or_else(|| panic!("{id} is not in the bundle ({} entries)", entries.len()));
        assert!(!contains(sealed, canary.as_bytes()), "stored in the clear");
        let file = dir.path().join("sealed.pgp");
        std::fs::write(&file, sealed).expect("write");
        let payload = Gpg::new().decrypt(&file);
        assert!(
            contains(&payload, canary.as_bytes()),
            "the report opens to what was written"
        );
    });
}

#[test]
fn refusals_come_back_through_the_onion_with_their_json_error() {
    with_onion(|onion| {
        let dir = tempfile::tempdir().expect("tempdir");
        // Proof of work is on, as deployed, at its calm difficulty.
        let (status, text) = curl_via_tor(onion, "api/v1/challenge", None, &[]);
        assert_eq!(status, 200, "{text}");
        let challenge = json(&text);
        assert_eq!(challenge["required"], true, "{challenge}");
        assert_eq!(
            challenge["difficulty"], onion.base_difficulty,
            "{challenge}"
        );

        // An OpenPGP literal data packet: the report in the clear.
        let canary = canary();
        let plaintext = dir.path().join("plain.pgp");
        std::fs::write(&plaintext, resguardo::testing::literal(canary.as_bytes())).expect("write");
        let content_type = "Content-Type: application/pgp-encrypted".to_string();

        // 1. Without a proof of work.
        let (status, text) = curl_via_tor(
            onion,
            "api/v1/submissions",
            Some(&plaintext),
            std::slice::from_ref(&content_type),
        );
        assert_eq!(status, 400, "{text}");
        assert_eq!(json(&text)["error"], "pow_missing", "{text}");

        // 2. With a solved one: the body itself is refused, exactly as on the direct path.
        let solve = |challenge: &serde_json::Value| {
            let hex = challenge["challenge"].as_str().expect("challenge");
            let difficulty = challenge["difficulty"].as_u64().expect("difficulty") as u8;
            resguardo::pow::solve(hex, difficulty).expect("solvable")
        };
        let solution = format!("Resguardo-PoW: {}", solve(&challenge));
        let (status, text) = curl_via_tor(
            onion,
            "api/v1/submissions",
            Some(&plaintext),
            &[content_type.clone(), solution],
        );
        let via_onion = json(&text);
        assert_eq!(
            (status, via_onion["error"].as_str()),
            (422, Some("plaintext"))
        );
        assert!(
            via_onion["message"].as_str().is_some_and(|m| m.len() > 10),
            "{via_onion}"
        );

        let (_, text) = get(&format!("{}api/v1/challenge", onion.gateway.url));
        let mut response = agent()
            .post(format!("{}api/v1/submissions", onion.gateway.url))
            .header("Content-Type", "application/pgp-encrypted")
            .header(resguardo::pow::HEADER, &solve(&json(&text)))
            .send(&std::fs::read(&plaintext).expect("read")[..])
            .expect("direct request");
        let direct = json(&response.body_mut().read_to_string().expect("body"));
        assert_eq!(response.status().as_u16(), 422);
        assert_eq!(via_onion, direct, "the onion changes nothing in the answer");

        // Nothing of it was kept.
        for (path, bytes) in all_files(&onion.gateway.data_dir) {
            assert!(!contains(&bytes, canary.as_bytes()), "{path:?}");
        }
    });
}

#[test]
fn an_urgent_report_through_the_onion_rings_a_watch_that_polls_through_tor() {
    with_onion(|onion| {
        let dir = tempfile::tempdir().expect("tempdir");
        let message = dir.path().join("message.txt");
        std::fs::write(
            &message,
            format!("Nos quieren sacar de la tierra. {}", canary()),
        )
        .expect("write");
        let out = run(Command::new(submit_bin())
            .args(["--server", &onion.tor.url(), "--proxy", &onion.tor.proxy()])
            .arg("--message")
            .arg(&message)
            .args(["--field", "what_happened=threat", "--urgent"]));
        assert!(out.status.success(), "{}", stderr(&out));
        let id = stdout(&out).trim().to_string();
        let alerts = dir.path().join("alerts");
        std::fs::create_dir_all(&alerts).expect("alerts");
        let courier = |ext: &str| repo().join(format!("keys-example/demo-courier-1.{ext}"));
        let watch = run(Command::new(review_bin())
            .args([
                "watch",
                "--once",
                "--server",
                &onion.tor.url(),
                "--proxy",
                &onion.tor.proxy(),
            ])
            .arg("--courier-key")
            .arg(courier("sec.asc"))
            .arg("--passphrase-file")
            .arg(courier("passphrase"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .args([
                "--on-alert",
                &format!("env > {}/$RESGUARDO_ID", alerts.display()),
            ]));
        assert!(watch.status.success(), "{}", stderr(&watch));
        assert!(
            stdout(&watch)
                .lines()
                .any(|l| l.starts_with("URGENT") && l.contains(&id)),
            "watch through Tor: {}\n{}",
            stdout(&watch),
            onion.tor.log_tails()
        );
        let rang = alerts.join(&id);
        let start = std::time::Instant::now();
        while !rang.exists() && start.elapsed() < std::time::Duration::from_secs(20) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(rang.exists(), "the alert rang");
    });
}
