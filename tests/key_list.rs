//! Issue 14 (docs/trust-v1.md), part 1: the organisation's signed key list. The gateway refuses
//! to start on a list that does not match what it serves (an extra key, another organisation,
//! expired, rolled back, another page) and serves a genuine one with its keys; `resguardo-submit
//! --pin` sends only to the keys the pinned organisation vouched for, through a proxy that swaps
//! them refuses with exit 5 and stores nothing.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use resguardo::keyring::{KeyProfile, ReviewerKeyring};
use resguardo::submission::UtcDay;
use resguardo::trust::keylist::{
    entry_for, grouped, sign_key_list, KeyList, PageManifest, SignedKeyList, LIST_FORMAT,
};
use sequoia_openpgp::crypto::Password;
use sequoia_openpgp::serialize::SerializeInto;
use sequoia_openpgp::Cert;

use crate::common::*;

/// Keys are slow to make: the organisation, an attacker's organisation and an attacker's
/// reviewer key, made once.
struct Keys {
    org: Cert,
    attacker_org: Cert,
    attacker: Cert,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        org: resguardo::testing::org_key("Organisación de prueba"),
        attacker_org: resguardo::testing::org_key("Attacker"),
        attacker: resguardo::testing::reviewer_key("Attacker", KeyProfile::Compatible),
    })
}

fn day(offset: i32) -> UtcDay {
    UtcDay::from_days_since_epoch(UtcDay::today().days_since_epoch() + offset)
}

/// A key list of `reviewers` (public cert files) by `org`, this build's page.
fn list_of(org: &Cert, reviewers: &[PathBuf], version: u64, expires: i32) -> KeyList {
    let keyring = ReviewerKeyring::load(reviewers).expect("reviewer certs");
    KeyList {
        format: LIST_FORMAT.into(),
        organisation: org.fingerprint().to_hex(),
        version,
        issued: day(-1),
        expires: day(expires),
        reviewers: keyring.reviewers().iter().map(entry_for).collect(),
        couriers: vec![],
        page: PageManifest::embedded(),
    }
}

fn sign(org: &Cert, list: &KeyList) -> SignedKeyList {
    sign_key_list(org, Some(&Password::from("test")), list).expect("sign")
}

fn write_list(path: &Path, signed: &SignedKeyList) {
    std::fs::write(path, serde_json::to_vec_pretty(signed).expect("json")).expect("write");
}

fn demo_reviewers() -> Vec<PathBuf> {
    vec![demo_pub(1), demo_pub(2)]
}

/// A plain-HTTP config on loopback with `reviewers`, the key list (if any) and the pin (if any).
fn config(
    dir: &Path,
    reviewers: &[PathBuf],
    key_list: Option<&Path>,
    pin: Option<&Cert>,
) -> PathBuf {
    let certs: Vec<String> = reviewers
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect();
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nreviewer_certs = [{}]\n",
        dir.join("data").display(),
        certs.join(", ")
    );
    if let Some(list) = key_list {
        text.push_str(&format!("key_list = \"{}\"\n", list.display()));
    }
    text.push_str("[tls]\nmode = \"plain-http\"\n[proof_of_work]\nenabled = false\n");
    if let Some(org) = pin {
        text.push_str(&format!(
            "[organisation]\nkey_fingerprint = \"{}\"\n",
            grouped(&org.fingerprint())
        ));
    }
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// `serve` (and `check-config`) must refuse with exit 2, saying `expect`, without listening.
fn refused_at_start(config: &Path, expect: &str) {
    for command in ["check-config", "serve"] {
        let out = run(Command::new(gateway_bin())
            .args([command, "--config"])
            .arg(config));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(err.contains(expect), "{command}: {expect:?} not in:\n{err}");
        assert!(!stdout(&out).contains("Listening"), "it must not start");
        let problem = err.lines().find(|l| l.contains(expect)).expect("the line");
        assert!(
            problem.contains("key_list") || problem.contains("key_fingerprint"),
            "{problem}"
        );
    }
}

fn stored(data_dir: &Path) -> usize {
    let out = run(Command::new(gateway_bin())
        .args(["status", "--data-dir"])
        .arg(data_dir));
    let text = stdout(&out);
    text.lines()
        .find_map(|l| l.strip_prefix("waiting for export: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("status: {text} {}", stderr(&out)))
}

#[test]
fn a_genuine_key_list_is_served_with_the_keys_and_its_version_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys();
    let list_path = d.join("keylist.json");
    let signed = sign(&k.org, &list_of(&k.org, &demo_reviewers(), 3, 30));
    write_list(&list_path, &signed);
    let config = config(d, &demo_reviewers(), Some(&list_path), Some(&k.org));

    let out = run(Command::new(gateway_bin())
        .args(["check-config", "--config"])
        .arg(&config));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("key list version 3"),
        "{}",
        stdout(&out)
    );

    let gateway = Gateway::start_config(&config, &d.join("data"));
    assert!(gateway.logs().contains(&format!(
        "Organisation key: {}",
        grouped(&k.org.fingerprint())
    )));
    let (status, body) = get(&format!("{}api/v1/keys", gateway.url));
    assert_eq!(status, 200);
    let keys: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(keys["organisation"], k.org.fingerprint().to_hex());
    let served =
        SignedKeyList::parse(&serde_json::to_vec(&keys["key_list"]).unwrap()).expect("strict");
    assert_eq!(served, signed);
    served
        .verify(Some(&k.org.fingerprint()), UtcDay::today())
        .expect("what it serves verifies");

    // The page shows the fingerprint in groups of four.
    let (_, page) = get(&gateway.url);
    assert!(page.contains("id=\"org-key\""), "{page}");
    let plain: String = k
        .org
        .fingerprint()
        .to_hex()
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(page.contains(&plain), "{page}");
    gateway.stop();

    let record = std::fs::read_to_string(d.join("data/key-list.served")).expect("recorded");
    let record: serde_json::Value = serde_json::from_str(&record).expect("json");
    assert_eq!(record["version"], 3);
    assert_eq!(record["sha256"], signed.sha256());
    assert_eq!(
        record.as_object().unwrap().len(),
        2,
        "a version and a hash, nothing else"
    );

    // The same list again starts.
    let gateway = Gateway::start_config(&config, &d.join("data"));
    gateway.stop();
}

#[test]
fn a_gateway_without_a_key_list_warns_once_and_serves_no_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let config = config(d, &demo_reviewers(), None, None);
    let gateway = Gateway::start_config(&config, &d.join("data"));
    let (_, body) = get(&format!("{}api/v1/keys", gateway.url));
    let keys: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(keys.get("key_list").is_none() && keys.get("organisation").is_none());
    let (_, page) = get(&gateway.url);
    assert!(!page.contains("id=\"org-key\""));
    let logs = gateway.stop();
    assert_eq!(
        logs.matches("no key_list is configured").count(),
        1,
        "{logs}"
    );
    assert!(!d.join("data/key-list.served").exists());
}

#[test]
fn an_extra_key_configured_beside_the_list_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys();
    let attacker = d.join("attacker.pub.asc");
    std::fs::write(&attacker, k.attacker.armored().to_vec().unwrap()).unwrap();
    let list_path = d.join("keylist.json");
    write_list(
        &list_path,
        &sign(&k.org, &list_of(&k.org, &demo_reviewers(), 1, 30)),
    );
    let mut reviewers = demo_reviewers();
    reviewers.push(attacker);
    let config = config(d, &reviewers, Some(&list_path), Some(&k.org));
    refused_at_start(
        &config,
        &format!("{} is not in the list", grouped(&k.attacker.fingerprint())),
    );
    // One fewer than the list names is refused too.
    let config = self::config(d, &[demo_pub(1)], Some(&list_path), Some(&k.org));
    refused_at_start(&config, "is in the list but missing");
}

#[test]
fn a_list_signed_by_another_organisation_key_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys();
    let list_path = d.join("keylist.json");
    write_list(
        &list_path,
        &sign(
            &k.attacker_org,
            &list_of(&k.attacker_org, &demo_reviewers(), 1, 30),
        ),
    );
    let config = config(d, &demo_reviewers(), Some(&list_path), Some(&k.org));
    refused_at_start(
        &config,
        &format!(
            "not by the one you trust ({})",
            grouped(&k.org.fingerprint())
        ),
    );
    // A pin without a key list is a configuration error too.
    let config = self::config(d, &demo_reviewers(), None, Some(&k.org));
    refused_at_start(
        &config,
        "key_fingerprint is set but no key_list is configured",
    );
}

#[test]
fn an_expired_list_is_refused_at_start_naming_the_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys();
    let list_path = d.join("keylist.json");
    let mut list = list_of(&k.org, &demo_reviewers(), 1, -1);
    list.issued = day(-31);
    write_list(&list_path, &sign(&k.org, &list));
    let config = config(d, &demo_reviewers(), Some(&list_path), Some(&k.org));
    refused_at_start(&config, &format!("expired on {}", day(-1)));
}

#[test]
fn a_list_for_another_page_is_refused_at_start_saying_how_to_sign_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys();
    let list_path = d.join("keylist.json");
    let mut list = list_of(&k.org, &demo_reviewers(), 1, 30);
    list.page.files[0].sha256 = "0".repeat(64);
    write_list(&list_path, &sign(&k.org, &list));
    let config = config(d, &demo_reviewers(), Some(&list_path), None);
    refused_at_start(&config, "resguardo-gateway page-manifest > m.json");
}

#[test]
fn a_rolled_back_list_is_refused_after_a_newer_one_was_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys();
    let v1 = sign(&k.org, &list_of(&k.org, &demo_reviewers(), 1, 30));
    let v2 = sign(&k.org, &list_of(&k.org, &demo_reviewers(), 2, 60));
    let list_path = d.join("keylist.json");
    write_list(&list_path, &v2);
    let config = config(d, &demo_reviewers(), Some(&list_path), Some(&k.org));
    Gateway::start_config(&config, &d.join("data")).stop();

    write_list(&list_path, &v1);
    refused_at_start(&config, "version 1 is older than version 2");
    // The same version with other content is refused as well.
    let v2_other = sign(&k.org, &list_of(&k.org, &demo_reviewers(), 2, 90));
    write_list(&list_path, &v2_other);
    refused_at_start(&config, "a changed key list needs a higher --version");
    // Going forward is fine.
    let v3 = sign(&k.org, &list_of(&k.org, &demo_reviewers(), 3, 90));
    write_list(&list_path, &v3);
    Gateway::start_config(&config, &d.join("data")).stop();
    let record = std::fs::read_to_string(d.join("data/key-list.served")).unwrap();
    assert!(record.contains("\"version\":3"), "{record}");
}

#[test]
fn keygen_org_and_sign_keys_make_a_list_the_gateway_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pass = d.join("pass");
    std::fs::write(&pass, "organisation passphrase\n").unwrap();
    let out = run(Command::new(review_bin())
        .args(["keygen", "--org", "--name", "Org", "--out"])
        .arg(d.join("org"))
        .arg("--passphrase-file")
        .arg(&pass));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("fingerprint card"),
        "{}",
        stdout(&out)
    );
    let org_pub = Cert::from_bytes_file(&d.join("org/org.pub.asc"));
    assert!(stdout(&out).contains(&grouped(&org_pub.fingerprint())));

    let manifest = d.join("m.json");
    let out = run(Command::new(gateway_bin()).arg("page-manifest"));
    assert!(out.status.success());
    std::fs::write(&manifest, &out.stdout).unwrap();
    assert_eq!(
        PageManifest::parse(&out.stdout).unwrap(),
        PageManifest::embedded()
    );

    let sign_keys = |version: &str, valid_days: &str, reviewers: &[PathBuf], out_file: &Path| {
        run(Command::new(review_bin())
            .arg("sign-keys")
            .arg("--org-key")
            .arg(d.join("org/org.sec.asc"))
            .arg("--reviewers")
            .args(reviewers)
            .args(["--version", version, "--valid-days", valid_days])
            .arg("--page-manifest")
            .arg(&manifest)
            .arg("--passphrase-file")
            .arg(&pass)
            .arg("--out")
            .arg(out_file))
    };
    let list_path = d.join("keylist.json");
    let out = sign_keys("1", "30", &demo_reviewers(), &list_path);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Key list version 1"),
        "{}",
        stdout(&out)
    );

    // Refusals: an existing --out, a validity out of range, version 0, a courier key as
    // reviewer.
    let other = d.join("other.json");
    for (args, code, says) in [
        (
            ("1", "30", demo_reviewers(), list_path.clone()),
            2,
            "already exists",
        ),
        (
            ("1", "0", demo_reviewers(), other.clone()),
            2,
            "--valid-days",
        ),
        (
            ("1", "731", demo_reviewers(), other.clone()),
            2,
            "--valid-days",
        ),
        (("0", "30", demo_reviewers(), other.clone()), 2, "--version"),
        (
            (
                "2",
                "30",
                vec![repo().join("keys-example/demo-courier-1.pub.asc")],
                other.clone(),
            ),
            3,
            "is a courier key",
        ),
    ] {
        let (version, days, reviewers, out_file) = args;
        let out = sign_keys(version, days, &reviewers, &out_file);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(err.contains(says), "{says:?} not in {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    assert!(!other.exists());

    let config = config(d, &demo_reviewers(), Some(&list_path), Some(&org_pub));
    let gateway = Gateway::start_config(&config, &d.join("data"));
    gateway.stop();
}

trait FromFile {
    fn from_bytes_file(path: &Path) -> Cert;
}

impl FromFile for Cert {
    fn from_bytes_file(path: &Path) -> Cert {
        use sequoia_openpgp::parse::Parse;
        Cert::from_file(path).expect("cert")
    }
}

/// How the proxy in front of the gateway lies about the keys.
#[derive(Clone, Copy)]
enum Lie {
    /// It passes everything as it is.
    None,
    /// It swaps the second reviewer's certificate for the attacker's (the list stays).
    SwapReviewer,
    /// It serves a key list signed by the attacker's organisation key, with the attacker's
    /// reviewer key, and that key.
    SwapList,
    /// It serves no key list.
    DropList,
}

/// A loopback proxy in front of `gateway` that rewrites `GET /api/v1/keys` answers by `lie` and
/// passes everything else through (one request per connection).
fn proxy(gateway: SocketAddr, lie: Lie) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            std::thread::spawn(move || {
                let _ = relay(client, gateway, lie);
            });
        }
    });
    addr
}

fn relay(mut client: TcpStream, gateway: SocketAddr, lie: Lie) -> std::io::Result<()> {
    let Some(text) = relay::read_head(&mut client)? else {
        return Ok(());
    };
    let mut upstream = relay::forward(&text, gateway, false)?;
    if !text.starts_with("GET /api/v1/keys ") {
        let mut from_client = client.try_clone()?;
        let mut to_gateway = upstream.try_clone()?;
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from_client, &mut to_gateway);
        });
        std::io::copy(&mut upstream, &mut client)?;
        return client.shutdown(std::net::Shutdown::Both);
    }
    let (head, body) = relay::answer(upstream)?;
    let mut json: serde_json::Value = serde_json::from_slice(&body).expect("keys json");
    rewrite(&mut json, lie);
    relay::reply(client, &head, &serde_json::to_vec(&json).unwrap())
}

fn armored(cert: &Cert) -> String {
    String::from_utf8(cert.armored().to_vec().unwrap()).unwrap()
}

fn rewrite(json: &mut serde_json::Value, lie: Lie) {
    let k = keys();
    let attacker = k.attacker.clone().strip_secret_key_material();
    let attacker_entry = serde_json::json!({
        "fingerprint": attacker.fingerprint().to_hex(),
        "name": "Demo Reviewer 2",
        "cert": armored(&attacker),
    });
    match lie {
        Lie::None => {}
        Lie::SwapReviewer => json["reviewers"][1] = attacker_entry,
        Lie::SwapList => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.asc");
            std::fs::write(&path, armored(&attacker)).unwrap();
            let list = list_of(&k.attacker_org, &[demo_pub(1), path], 9, 30);
            let signed = sign(&k.attacker_org, &list);
            json["key_list"] = serde_json::to_value(&signed).unwrap();
            json["organisation"] = k.attacker_org.fingerprint().to_hex().into();
            json["reviewers"][1] = attacker_entry;
        }
        Lie::DropList => {
            let map = json.as_object_mut().unwrap();
            map.remove("key_list");
            map.remove("organisation");
        }
    }
}

fn submit(url: &str, message: &Path, pin: Option<&Cert>) -> std::process::Output {
    let mut command = Command::new(submit_bin());
    command
        .args(["--server", url, "--no-replies", "--message"])
        .arg(message);
    if let Some(org) = pin {
        command.arg("--pin").arg(grouped(&org.fingerprint()));
    }
    run(&mut command)
}

#[test]
fn submit_with_a_pin_refuses_swapped_keys_and_sends_to_the_genuine_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys();
    let list_path = d.join("keylist.json");
    write_list(
        &list_path,
        &sign(&k.org, &list_of(&k.org, &demo_reviewers(), 1, 30)),
    );
    let config = config(d, &demo_reviewers(), Some(&list_path), Some(&k.org));
    let gateway = Gateway::start_config(&config, &d.join("data"));
    let message = d.join("message.txt");
    std::fs::write(&message, "Amenazas contra la comunidad.").unwrap();

    for lie in [Lie::SwapReviewer, Lie::SwapList, Lie::DropList] {
        let url = format!("http://{}/", proxy(gateway.addr, lie));
        let out = submit(&url, &message, Some(&k.org));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "{err}");
        assert!(
            err.contains(&format!(
                "The gateway offers keys that the organisation you trust ({}) has not vouched for. Nothing was sent.",
                grouped(&k.org.fingerprint())
            )),
            "{err}"
        );
        assert!(stdout(&out).is_empty());
        // Without a pin, a list that verifies but does not name the keys served is refused
        // as well; a list by another key is shown, to compare with the card.
        let unpinned = submit(&url, &message, None);
        match lie {
            Lie::SwapReviewer => assert_eq!(unpinned.status.code(), Some(5)),
            // (The gateway itself then refuses a report sealed to a key it does not have.)
            Lie::SwapList => {
                assert!(!unpinned.status.success(), "{}", stderr(&unpinned));
                assert!(stderr(&unpinned).contains(&grouped(&k.attacker_org.fingerprint())));
            }
            _ => {
                assert!(unpinned.status.success(), "{}", stderr(&unpinned));
                assert!(stderr(&unpinned).contains("serves no key list"));
            }
        }
    }
    let before = stored(&gateway.data_dir);
    assert_eq!(
        before, 1,
        "only the unpinned report without a key list went through"
    );

    // The genuine keys, through an honest proxy: sent, with its number in the log.
    let url = format!("http://{}/", proxy(gateway.addr, Lie::None));
    let out = submit(&url, &message, Some(&k.org));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "The keys are the ones the organisation {} vouched for (key list 1",
            grouped(&k.org.fingerprint())
        )),
        "{err}"
    );
    assert_eq!(stdout(&out).trim().len(), 32, "the id");
    assert!(err.contains("It is number 2 in the gateway's log"), "{err}");
    assert_eq!(stored(&gateway.data_dir), before + 1);
    // Without a pin the organisation's fingerprint is shown, to compare with the card.
    let out = submit(&gateway.url, &message, None);
    assert!(out.status.success());
    assert!(stderr(&out).contains(&grouped(&k.org.fingerprint())));
    gateway.stop();
}

/// Regression (hostile review): a replayed older list still verifies until it expires, so a
/// client that knows a newer version must be able to refuse it.
#[test]
fn submit_with_a_minimum_version_refuses_a_replayed_older_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys();
    let list_path = d.join("keylist.json");
    write_list(
        &list_path,
        &sign(&k.org, &list_of(&k.org, &demo_reviewers(), 1, 30)),
    );
    let config = config(d, &demo_reviewers(), Some(&list_path), Some(&k.org));
    let gateway = Gateway::start_config(&config, &d.join("data"));
    let message = d.join("message.txt");
    std::fs::write(&message, "Amenazas contra la comunidad.").unwrap();
    let with_minimum = |min: &str| {
        run(Command::new(submit_bin())
            .args(["--server", &gateway.url, "--no-replies", "--message"])
            .arg(&message)
            .arg("--pin")
            .arg(grouped(&k.org.fingerprint()))
            .args(["--min-version", min]))
    };
    let out = with_minimum("2");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("serves key list version 1, older than version 2 that you know of"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
    assert_eq!(stored(&gateway.data_dir), 0, "nothing was sent");
    let out = with_minimum("1");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stored(&gateway.data_dir), 1);
    // Without a pin the minimum means nothing: a usage error.
    let out = run(Command::new(submit_bin())
        .args(["--server", &gateway.url, "--no-replies", "--message"])
        .arg(&message)
        .args(["--min-version", "2"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    gateway.stop();
}
