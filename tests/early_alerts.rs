//! Early alerts (issue 11, `docs/early-alerts.md`): triage envelopes beside every report, the
//! courier's signed requests, and `resguardo-review watch` ringing for urgent reports. The real
//! gateway on loopback, the real clients.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use resguardo::courier::{body_hash, signed_text, ChallengeBody, TriageList};
use resguardo::review::secret_key::{KeyPair, LockedKey};
use resguardo::triage::{Triage, TRIAGE_BYTES};
use sequoia_openpgp as openpgp;

use openpgp::crypto::Password;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::parse::Parse;
use openpgp::serialize::SerializeInto;
use openpgp::types::SignatureType;

use crate::common::*;

const CANARY: &str = "CANARY-7f3a-the-report-text";
static POLICY: openpgp::policy::StandardPolicy<'static> = openpgp::policy::StandardPolicy::new();

fn courier_file(ext: &str) -> PathBuf {
    repo().join(format!("keys-example/demo-courier-1.{ext}"))
}

fn courier_config() -> String {
    format!(
        "[[couriers]]\ncert = \"{}\"\n",
        courier_file("pub.asc").display()
    )
}

fn courier_signer() -> KeyPair {
    let passphrase = std::fs::read_to_string(courier_file("passphrase")).unwrap();
    LockedKey::load(&courier_file("sec.asc"))
        .unwrap()
        .authentication_signer(Some(&Password::from(passphrase.trim_end_matches('\n'))))
        .expect("the demo courier key unlocks")
}

/// `resguardo-submit` with a message holding the canary; returns the id.
fn submit(gateway: &Gateway, dir: &Path, urgent: bool) -> String {
    let message = dir.join(format!("message-{urgent}.txt"));
    std::fs::write(&message, format!("{CANARY} Nos amenazaron en Ilave.")).unwrap();
    let mut cmd = Command::new(submit_bin());
    cmd.args(["--server", &gateway.url, "--message"])
        .arg(&message)
        .args(["--field", "what_happened=threat", "--field", "region=puno"]);
    if urgent {
        cmd.args(["--urgent", "--field", "urgent=yes"]);
    } else {
        cmd.args(["--field", "urgent=no"]);
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "submit: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn watch(gateway: &Gateway, state: &Path, on_alert: &str) -> std::process::Output {
    run(Command::new(review_bin())
        .args(["watch", "--once", "--server", &gateway.url, "--courier-key"])
        .arg(courier_file("sec.asc"))
        .arg("--passphrase-file")
        .arg(courier_file("passphrase"))
        .arg("--state")
        .arg(state)
        .args(["--on-alert", on_alert]))
}

fn wait_for(path: &Path, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if path.exists() && std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            // The ring's command may still be writing.
            std::thread::sleep(Duration::from_millis(200));
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn an_urgent_report_rings_once_with_only_triage_fields_and_a_calm_one_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &courier_config());
    let urgent = submit(&gateway, dir.path(), true);
    let calm = submit(&gateway, dir.path(), false);
    let state = dir.path().join("watch");
    let alerts = dir.path().join("alerts-out");
    std::fs::create_dir_all(&alerts).unwrap();
    let on_alert = format!("env > {}/$RESGUARDO_ID.env", alerts.display());

    let out = watch(&gateway, &state, &on_alert);
    assert!(out.status.success(), "watch: {}", stderr(&out));
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    let urgent_line = lines
        .iter()
        .position(|l| l.starts_with("URGENT") && l.contains(&urgent));
    let calm_line = lines
        .iter()
        .position(|l| l.starts_with("report") && l.contains(&calm));
    assert!(urgent_line.is_some() && calm_line.is_some(), "{printed}");
    assert!(urgent_line < calm_line, "urgent first: {printed}");
    assert!(printed.contains("types: threat  region: puno"), "{printed}");
    assert!(!printed.contains(CANARY));

    let env_file = alerts.join(format!("{urgent}.env"));
    assert!(
        wait_for(&env_file, Duration::from_secs(20)),
        "the urgent report rang"
    );
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(env.contains(&format!("RESGUARDO_ID={urgent}")), "{env}");
    assert!(env.contains("RESGUARDO_URGENT=yes") && env.contains("RESGUARDO_REGION=puno"));
    assert!(!env.contains(CANARY));
    for line in env.lines() {
        let name = line.split('=').next().unwrap_or("");
        assert!(
            name.starts_with("RESGUARDO_")
                || ["PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"].contains(&name),
            "only triage fields reach --on-alert, not {line:?}"
        );
    }
    assert!(
        !alerts.join(format!("{calm}.env")).exists(),
        "a calm report does not ring"
    );

    // Again: nothing new is printed and nothing rings twice.
    std::fs::remove_file(&env_file).unwrap();
    let again = watch(&gateway, &state, &on_alert);
    assert!(again.status.success());
    assert!(!stdout(&again).contains(&urgent), "{}", stdout(&again));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!env_file.exists(), "an alert rings once");

    // Even a watch that lost its state (killed before it saved) does not ring twice.
    std::fs::remove_file(state.join("watch-state.json")).unwrap();
    let lost = watch(&gateway, &state, &on_alert);
    assert!(stdout(&lost).contains(&urgent), "listed again");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!env_file.exists(), "but it does not ring again");
    gateway.stop();
}

/// One signed courier GET; returns the status and the JSON body.
fn courier_get(
    gateway: &Gateway,
    path: &str,
    challenge: Option<&str>,
    signature: Option<String>,
) -> (u16, serde_json::Value) {
    let mut request = agent().get(&format!("{}{}", gateway.url, path.trim_start_matches('/')));
    if let Some(c) = challenge {
        request = request.header("Resguardo-Challenge", c);
    }
    if let Some(s) = signature {
        request = request.header("Resguardo-Signature", s);
    }
    let mut response = request.call().expect("answer");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// A signed GET; its status and the next challenge the answer hands out, if any.
fn courier_get_next(
    gateway: &Gateway,
    path: &str,
    challenge: &str,
    signature: String,
) -> (u16, Option<String>) {
    let response = agent()
        .get(&format!("{}{}", gateway.url, path.trim_start_matches('/')))
        .header("Resguardo-Challenge", challenge)
        .header("Resguardo-Signature", signature)
        .call()
        .expect("answer");
    let next = response
        .headers()
        .get("resguardo-next-challenge")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    (response.status().as_u16(), next)
}

fn challenge(gateway: &Gateway) -> String {
    let (status, body) = get(&format!("{}api/v1/courier/challenge", gateway.url));
    assert_eq!(status, 200);
    serde_json::from_str::<ChallengeBody>(&body)
        .unwrap()
        .challenge
}

fn sign(signer: &mut KeyPair, text: &[u8]) -> String {
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .sign_message(signer, text)
        .unwrap();
    let bytes = openpgp::Packet::from(sig).to_vec().unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A keypair from any secret key of `cert` matching `pick` (to sign with the wrong key).
fn keypair(cert: &openpgp::Cert, passphrase: &str, pick: usize) -> KeyPair {
    let key = cert.keys().secret().nth(pick).unwrap().key().clone();
    key.decrypt_secret(&Password::from(passphrase))
        .unwrap()
        .into_keypair()
        .unwrap()
}

/// Makes a request's (challenge, signature) headers from a fresh challenge.
type Credentials<'a> = dyn Fn(&str) -> (Option<String>, Option<String>) + 'a;

#[test]
fn courier_requests_are_refused_with_a_code_for_each_bad_credential() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &courier_config());
    let urgent = submit(&gateway, dir.path(), true);
    let calm = submit(&gateway, dir.path(), false);
    let path = "/api/v1/courier/triage?since=2000-01-01";
    let text = |c: &str| signed_text("GET", path, c, &body_hash(b""));
    let mut good = courier_signer();

    // A good request lists both envelopes, of one size, and each opens to its triage note.
    let c = challenge(&gateway);
    let (status, body) = courier_get(&gateway, path, Some(&c), Some(sign(&mut good, &text(&c))));
    assert_eq!(status, 200, "{body}");
    let list: TriageList = serde_json::from_value(body).unwrap();
    assert_eq!(list.items.len(), 2);
    let sizes: Vec<usize> = list.items.iter().map(|i| i.triage.len()).collect();
    assert_eq!(
        sizes[0], sizes[1],
        "urgent and calm envelopes look the same"
    );
    let ids: Vec<String> = list.items.iter().map(|i| i.id.to_string()).collect();
    assert!(ids.contains(&urgent) && ids.contains(&calm));

    // The same challenge again: reused.
    let (status, body) = courier_get(&gateway, path, Some(&c), Some(sign(&mut good, &text(&c))));
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("courier_challenge_reused"))
    );

    let reviewer = openpgp::Cert::from_bytes(&std::fs::read(demo_sec(1)).unwrap()).unwrap();
    let reviewer_pass = std::fs::read_to_string(demo_passphrase(1)).unwrap();
    let courier_cert =
        openpgp::Cert::from_bytes(&std::fs::read(courier_file("sec.asc")).unwrap()).unwrap();
    let courier_pass = std::fs::read_to_string(courier_file("passphrase")).unwrap();
    let stranger = resguardo::testing::courier_key("stranger");
    let cases: Vec<(&str, Box<Credentials>)> = vec![
        ("courier_credentials_missing", Box::new(|_| (None, None))),
        (
            "courier_credentials_missing",
            Box::new(|c| (Some(c.to_string()), None)),
        ),
        (
            "courier_malformed",
            Box::new(|c| (Some(c.to_string()), Some("%%%not base64".into()))),
        ),
        (
            "courier_malformed",
            Box::new(|c| (Some(c.to_string()), Some("AAAA".into()))),
        ),
        (
            "courier_malformed",
            Box::new(|_| (Some("not-a-challenge".into()), Some("AAAA".into()))),
        ),
        (
            "courier_not_a_courier",
            Box::new(|c| {
                let mut k = keypair(&reviewer, reviewer_pass.trim_end_matches('\n'), 0);
                (Some(c.to_string()), Some(sign(&mut k, &text(c))))
            }),
        ),
        (
            "courier_not_a_courier",
            Box::new(|c| {
                // The courier's own primary key (certification only), not its authentication key.
                let mut k = keypair(&courier_cert, courier_pass.trim_end_matches('\n'), 0);
                (Some(c.to_string()), Some(sign(&mut k, &text(c))))
            }),
        ),
        (
            "courier_unknown_key",
            Box::new(|c| {
                let mut k = keypair(&stranger, "test", 1);
                (Some(c.to_string()), Some(sign(&mut k, &text(c))))
            }),
        ),
        (
            "courier_wrong_request",
            Box::new(|c| {
                let mut k = courier_signer();
                let other = signed_text(
                    "GET",
                    "/api/v1/courier/triage?since=2026-01-01",
                    c,
                    &body_hash(b""),
                );
                (Some(c.to_string()), Some(sign(&mut k, &other)))
            }),
        ),
    ];
    for (code, make) in cases {
        let c = challenge(&gateway);
        let (challenge, signature) = make(&c);
        let (status, body) = courier_get(&gateway, path, challenge.as_deref(), signature);
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some(code)),
            "{body}"
        );
        assert!(body["message"].as_str().is_some_and(|m| m.len() > 10));
    }
    // Still up, and the good key still works.
    let c = challenge(&gateway);
    let (status, _) = courier_get(&gateway, path, Some(&c), Some(sign(&mut good, &text(&c))));
    assert_eq!(status, 200);
    // An authenticated answer hands out the next challenge, which answers the next request
    // without the public challenge route; a refused request gets none.
    let c = challenge(&gateway);
    let (status, next) = courier_get_next(&gateway, path, &c, sign(&mut good, &text(&c)));
    assert_eq!(status, 200);
    let next = next.expect("an authenticated answer carries the next challenge");
    let (status, again) = courier_get_next(&gateway, path, &next, sign(&mut good, &text(&next)));
    assert_eq!(
        status, 200,
        "the handed-out challenge answers the next request"
    );
    let (status, refused) = courier_get_next(&gateway, path, &again.unwrap(), "AAAA".into());
    assert_eq!(status, 401);
    assert!(
        refused.is_none(),
        "a refused request is handed no challenge"
    );
    let logs = gateway.stop();
    assert!(
        !logs.contains(&c) && !logs.contains("D27756FA"),
        "nothing of a courier request is logged: {logs}"
    );
}

#[test]
fn envelopes_on_disk_are_one_size_and_carry_no_report_text() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &courier_config());
    submit(&gateway, dir.path(), true);
    submit(&gateway, dir.path(), false);
    // The no-JavaScript form seals an envelope on arrival too.
    let token = form_token(&gateway.url);
    let form = format!(
        "--b\r\nContent-Disposition: form-data; name=\"what_happened\"\r\n\r\nthreat\r\n\
         --b\r\nContent-Disposition: form-data; name=\"urgent\"\r\n\r\nyes\r\n\
         --b\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n{CANARY}\r\n--b--\r\n"
    );
    let head = format!(
        "POST /submit?t={token} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; \
         boundary=b\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        form.len()
    );
    let (status, page) = raw_request(gateway.addr, &head, form.as_bytes());
    assert_eq!(status, 200, "{page}");
    let data_dir = gateway.data_dir.clone();
    gateway.stop();
    // Read the index as a seized disk would be read: every record's envelope.
    let store = resguardo::store::SubmissionStore::open(&data_dir, Default::default())
        .expect("store")
        .0;
    let records = store.records().unwrap();
    assert_eq!(records.len(), 3);
    let mut lengths = Vec::new();
    let locked = LockedKey::load(&courier_file("sec.asc")).unwrap();
    let pass = std::fs::read_to_string(courier_file("passphrase")).unwrap();
    let mut key = locked
        .unlock(Some(&Password::from(pass.trim_end_matches('\n'))))
        .unwrap();
    let mut urgent = 0;
    for record in &records {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(
                record
                    .triage
                    .as_ref()
                    .expect("every submission has an envelope"),
            )
            .unwrap();
        lengths.push(sealed.len());
        assert!(!contains(&sealed, CANARY.as_bytes()));
        let helper = key.helper(Default::default());
        let mut reader = openpgp::parse::stream::DecryptorBuilder::from_bytes(&sealed)
            .unwrap()
            .with_policy(&POLICY, None, helper)
            .unwrap();
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut plain).unwrap();
        assert_eq!(plain.len(), TRIAGE_BYTES);
        assert!(!contains(&plain, CANARY.as_bytes()));
        let note = Triage::from_padded(&plain).unwrap();
        urgent += usize::from(note.urgent == resguardo::payload::Urgency::Yes);
        assert_eq!(note.types, ["threat"]);
    }
    assert_eq!(urgent, 2);
    lengths.dedup();
    assert_eq!(
        lengths.len(),
        1,
        "every envelope has one length: {lengths:?}"
    );
    for (path, bytes) in all_files(&data_dir) {
        assert!(!contains(&bytes, CANARY.as_bytes()), "{}", path.display());
    }
}

/// A library-level submit (faster than the binary): seals a report like `resguardo-submit` and
/// posts it with its triage envelope. Returns the id.
fn quick_submit(gateway: &Gateway, keys: &resguardo::submit::GatewayKeys, urgent: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("m.txt");
    std::fs::write(&message, format!("{CANARY} kill test")).unwrap();
    let input = resguardo::submit::ReportInput {
        message,
        attachments: vec![],
        language: "es".into(),
        urgent,
        fields: vec![("what_happened".into(), "threat".into())],
        conversation: None,
    };
    let sealed = resguardo::submit::seal_report(keys, &input).expect("seal");
    let client =
        resguardo::submit::GatewayClient::new(&gateway.url, resguardo::submit::Trust::WebPki, None)
            .unwrap();
    client
        .submit_sealed(sealed.file, sealed.triage.as_deref())
        .expect("submit")
}

#[test]
fn watch_killed_twenty_times_while_reports_arrive_rings_each_urgent_report_once() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &courier_config());
    let client =
        resguardo::submit::GatewayClient::new(&gateway.url, resguardo::submit::Trust::WebPki, None)
            .unwrap();
    let keys = client.reviewer_keys().unwrap();
    let state = dir.path().join("watch");
    let rang = dir.path().join("rang");
    std::fs::create_dir_all(&rang).unwrap();
    // Each ring appends a line to a file named after the report.
    let on_alert = format!("echo rang >> {}/$RESGUARDO_ID", rang.display());
    let mut urgent_ids = Vec::new();
    let mut calm_ids = Vec::new();
    let mut seed = 0x9e37_79b9_u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for round in 0..20 {
        let mut watch = Command::new(review_bin())
            .args([
                "watch",
                "--every",
                "1",
                "--server",
                &gateway.url,
                "--courier-key",
            ])
            .arg(courier_file("sec.asc"))
            .arg("--passphrase-file")
            .arg(courier_file("passphrase"))
            .arg("--state")
            .arg(&state)
            .args(["--on-alert", &on_alert])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Reports arrive while it runs; it is killed at a moment that depends on the round.
        let urgent = round % 2 == 0;
        let id = quick_submit(&gateway, &keys, urgent);
        if urgent {
            urgent_ids.push(id);
        } else {
            calm_ids.push(id);
        }
        std::thread::sleep(Duration::from_millis(200 + u64::from(next() % 1500)));
        watch.kill().unwrap(); // SIGKILL
        watch.wait().unwrap();
    }
    // A last, uninterrupted run catches up with what the killed ones did not reach.
    let out = watch(&gateway, &state, &on_alert);
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_secs(3));
    for id in &urgent_ids {
        let lines = std::fs::read_to_string(rang.join(id)).unwrap_or_default();
        assert_eq!(
            lines.lines().count(),
            1,
            "urgent report {id} rang {lines:?}"
        );
    }
    for id in &calm_ids {
        assert!(!rang.join(id).exists(), "calm report {id} rang");
    }
    assert_eq!(std::fs::read_dir(&rang).unwrap().count(), urgent_ids.len());
    gateway.stop();
}

/// A triage envelope the gateway refuses (sealed to a courier key removed since, say) never
/// costs the report: the client sends it again without the envelope.
#[test]
fn a_refused_triage_envelope_does_not_cost_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &courier_config());
    let client =
        resguardo::submit::GatewayClient::new(&gateway.url, resguardo::submit::Trust::WebPki, None)
            .unwrap();
    let mut keys = client.reviewer_keys().unwrap();
    // A courier the gateway does not know, as if the rota changed after the keys were fetched.
    let stranger = resguardo::testing::courier_key("removed").strip_secret_key_material();
    keys.couriers =
        resguardo::keyring::CourierKeyring::from_certs(Path::new("test"), vec![stranger]).unwrap();
    let message = dir.path().join("m.txt");
    std::fs::write(&message, "Nos amenazaron.").unwrap();
    let input = resguardo::submit::ReportInput {
        message,
        attachments: vec![],
        language: "es".into(),
        urgent: true,
        fields: vec![],
        conversation: None,
    };
    let sealed = resguardo::submit::seal_report(&keys, &input).unwrap();
    assert!(sealed.triage.is_some());
    let id = client
        .submit_sealed(sealed.file, sealed.triage.as_deref())
        .expect("the report is accepted, without the envelope");
    let data_dir = gateway.data_dir.clone();
    gateway.stop();
    let (store, _) =
        resguardo::store::SubmissionStore::open(&data_dir, Default::default()).unwrap();
    let record = store
        .records()
        .unwrap()
        .into_iter()
        .find(|r| r.id.to_string() == id);
    assert!(record.expect("stored").triage.is_none());
}
