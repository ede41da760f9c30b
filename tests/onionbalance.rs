//! One onion address, several gateways (deploy/onionbalance/): each site runs a gateway with its
//! own data directory and embedded store, behind its own backend onion service; an onionbalance
//! frontend publishes one master address whose descriptor holds introduction points of every
//! site. Here two sites and the frontend run on a private Tor network on 127.0.0.1
//! (`tests/support/private-tor --onionbalance`: Debian's onionbalance with two of its
//! test-network timings shortened, its config made from deploy/onionbalance/config.yaml, the
//! backends with torrc-backend's settings), and reports sent to the master address with
//! `resguardo-submit` must reach both sites, and keep being taken when one site is gone. The
//! deployment files themselves are checked with the tools an operator would use
//! (tor --verify-config, systemd-analyze verify).
//!
//! The network with onionbalance answers in 50–60 s, the whole test takes 60–130 s, so this area
//! keeps a single network test.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::tor::BalancedTor;
use crate::common::*;

/// Reports sent while both sites are up, at most: fewer once both have one. Each goes on a
/// circuit of its own, introduced at a point the client picks among the four of the master
/// descriptor (two per site); the Tor client's picks are not evenly spread, so the test does not
/// rely on both sites being picked here (see the test).
const REPORTS_WHILE_BOTH_UP: usize = 6;

/// Reports sent after one site is lost.
const REPORTS_AFTER_LOSS: usize = 3;

/// `resguardo-gateway status`: how many submissions wait for export in `data_dir`.
fn stored(data_dir: &Path) -> usize {
    let out = run(Command::new(gateway_bin())
        .args(["status", "--data-dir"])
        .arg(data_dir));
    let text = stdout(&out);
    text.lines()
        .find_map(|l| l.strip_prefix("waiting for export: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("status of {data_dir:?}: {text} {}", stderr(&out)))
}

/// How long one `resguardo-submit` may take before the test gives up on it (it waits up to
/// 60 s for Tor to connect, then sends a report of a few KiB on loopback).
const SUBMIT_LIMIT: Duration = Duration::from_secs(150);

/// Why a report through the master address failed.
enum Failure {
    /// Tor never connected (resguardo-submit's 60 s connect timeout): nothing was sent, a
    /// reporter tries again.
    NoConnection(String),
    /// Anything else.
    Other(String),
}

/// One report through the master address with `resguardo-submit`, on a circuit of its own.
/// Its id once the gateway answered 201 (resguardo-submit exits 0 only then).
fn submit(tor: &BalancedTor, circuit: &str, dir: &Path) -> Result<String, Failure> {
    let file = |ext: &str| dir.join(format!("{circuit}.{ext}"));
    std::fs::write(
        file("txt"),
        format!("Informe {circuit}: nos amenazaron en la asamblea."),
    )
    .expect("write");
    let mut child = Command::new(submit_bin())
        .args(["--server", &tor.url(), "--proxy", &tor.proxy(circuit)])
        .arg("--message")
        .arg(file("txt"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(file("out")).expect("create"))
        .stderr(std::fs::File::create(file("err")).expect("create"))
        .spawn()
        .expect("start resguardo-submit");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > SUBMIT_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::Other(format!(
                "resguardo-submit did not finish within {} s",
                SUBMIT_LIMIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let id = std::fs::read_to_string(file("out"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let err = std::fs::read_to_string(file("err")).unwrap_or_default();
    if status.success() && id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else if err.contains("cannot reach the gateway: timeout: connect") {
        Err(Failure::NoConnection(err))
    } else {
        Err(Failure::Other(format!("{status}: {id}\n{err}")))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoConnection(e) => write!(f, "no connection: {e}"),
            Failure::Other(e) => f.write_str(e),
        }
    }
}

/// A report as a reporter sends it: `resguardo-submit` through the master address, tried once
/// more if Tor never connected (see the test). Its id; the test fails on anything else, with
/// the end of every log. `context` says what is being shown, for the messages.
fn report(tor: &BalancedTor, label: &str, context: &str, dir: &Path) -> String {
    let mut failed = Vec::new();
    loop {
        let circuit = format!("{label}-{}", failed.len());
        let t = Instant::now();
        match submit(tor, &circuit, dir) {
            Ok(id) => {
                eprintln!(
                    "onionbalance: {context}, report {circuit} taken in {:.1} s",
                    t.elapsed().as_secs_f64()
                );
                return id;
            }
            Err(Failure::NoConnection(e)) if failed.is_empty() => {
                eprintln!(
                    "onionbalance: {context}, report {circuit} not connected after {:.1} s, \
                     trying again: {e}",
                    t.elapsed().as_secs_f64()
                );
                failed.push(e);
            }
            Err(e) => panic!(
                "{context}, report {label} through the master address failed:\n{}\n{e}\n{}",
                failed.join("\n"),
                tor.log_tails()
            ),
        }
    }
}

/// The ids in `data_dir`'s store, read with `resguardo-gateway export` (the gateway may run).
fn ids_in(data_dir: &Path, bundle: &Path) -> BTreeSet<String> {
    export(data_dir, bundle)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn two_gateways_behind_one_onion_address_take_reports_and_survive_one_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (site_a, site_b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&site_a, &site_b] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let a = Gateway::start(&site_a);
    let b = Gateway::start(&site_b);
    let start = Instant::now();
    let tor = BalancedTor::start(&[a.addr, b.addr]);
    eprintln!(
        "onionbalance: network up, master descriptor published and answered through {} in {:.1} s",
        tor.onion,
        start.elapsed().as_secs_f64()
    );

    // Reports to the master address, each on a fresh circuit, until both sites took one.
    let mut sent = Vec::new();
    let spread = Instant::now();
    while sent.len() < REPORTS_WHILE_BOTH_UP
        && (stored(&a.data_dir) == 0 || stored(&b.data_dir) == 0)
    {
        let id = report(
            &tor,
            &format!("before-{}", sent.len()),
            "both sites up",
            dir.path(),
        );
        sent.push(id);
    }
    let held = [stored(&a.data_dir), stored(&b.data_dir)];
    eprintln!(
        "onionbalance: {} reports with both sites up in {:.1} s: site A took {}, site B {}",
        sent.len(),
        spread.elapsed().as_secs_f64(),
        held[0],
        held[1]
    );
    assert_eq!(held[0] + held[1], sent.len(), "every report stored once");

    // One site goes away at once, as when its machine crashes: its gateway (kill -9) and its tor
    // (whose connections close at once, unlike a cut cable: see deploy/README.md §8). Site A,
    // unless it took nothing so far: then every site has taken a report through the master
    // address by the end, whatever the client picked.
    let (lost, kept) = if held[0] > 0 { (0, 1) } else { (1, 0) };
    let name = |site: usize| ["A", "B"][site];
    let mut gateways = [Some(a), Some(b)];
    let gone = gateways[lost].take().expect("the lost site's gateway");
    let lost_data = gone.data_dir.clone();
    drop(gone.kill9());
    tor.stop_node(&format!("hs{}", lost + 1));
    let survivor = gateways[kept].as_ref().expect("the surviving gateway");
    let killed = Instant::now();
    // A client whose introduction comes about when the site goes can be acknowledged by an
    // introduction point and then wait for a rendezvous that never comes, until resguardo-submit
    // gives up connecting (60 s); nothing was sent, and the reporter tries again. Seen in three
    // runs out of eight, on one of the first three reports after the loss: `report` allows that
    // one retry, and only for that failure.
    let mut after = Vec::new();
    for n in 0..REPORTS_AFTER_LOSS {
        let id = report(
            &tor,
            &format!("after-{n}"),
            &format!("site {} gone", name(lost)),
            dir.path(),
        );
        after.push(id);
    }
    eprintln!(
        "onionbalance: {REPORTS_AFTER_LOSS} reports with site {} gone in {:.1} s",
        name(lost),
        killed.elapsed().as_secs_f64()
    );

    // Each report is in exactly one store; those sent after the loss are all on the survivor;
    // each site took at least one report through the master address.
    let in_lost = ids_in(&lost_data, &dir.path().join("lost.tar"));
    let in_kept = ids_in(&survivor.data_dir, &dir.path().join("kept.tar"));
    assert_eq!(
        (in_lost.len(), in_kept.len()),
        (held[lost], held[kept] + after.len())
    );
    assert!(!in_lost.is_empty() && !in_kept.is_empty());
    for id in &sent {
        assert!(
            in_lost.contains(id) != in_kept.contains(id),
            "{id} is on the lost site: {}, on the survivor: {}",
            in_lost.contains(id),
            in_kept.contains(id)
        );
    }
    for id in &after {
        assert!(
            in_kept.contains(id),
            "{id}, sent after site {} was lost, is not on site {}",
            name(lost),
            name(kept)
        );
    }
    eprintln!(
        "onionbalance: whole test {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

/// The deployment files of deploy/onionbalance/, checked as an operator would: both torrcs with
/// `tor --verify-config` (the backend's with its ob_config in place), the backends keeping every
/// setting of deploy/torrc, and the systemd drop-ins with `systemd-analyze verify`.
#[test]
fn the_onionbalance_deployment_files_verify() {
    let ob = repo().join("deploy/onionbalance");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));

    // A backend is deploy/torrc plus the onionbalance line: no defence lost on the way.
    let single = read(&repo().join("deploy/torrc"));
    let backend = read(&ob.join("torrc-backend"));
    let settings = |text: &str| -> BTreeSet<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()
    };
    let missing: Vec<String> = settings(&single)
        .difference(&settings(&backend))
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "torrc-backend lacks {missing:?} of deploy/torrc"
    );
    assert!(settings(&backend).contains("HiddenServiceOnionbalanceInstance 1"));

    // Both torrcs verify, with the operator's paths moved into a private directory.
    let hs_dir = dir.path().join("resguardo");
    std::fs::create_dir(&hs_dir).expect("mkdir");
    std::fs::set_permissions(&hs_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    // An address onionbalance-config made (any valid one will do).
    let master = "tnahqsmlvhy3bzlfyxegl5egewujl376akbkkscvh6ypcqimxhxvzyyd.onion";
    let ob_config = read(&ob.join("ob_config")).replace("MASTER_ADDRESS.onion", master);
    assert_eq!(ob_config.trim(), format!("MasterOnionAddress {master}"));
    std::fs::write(hs_dir.join("ob_config"), ob_config).expect("write");
    for (name, expect) in [
        ("torrc-backend", "OnionBalance: MasterOnionAddress"),
        ("torrc-frontend", "Configuration was valid"),
    ] {
        let local = read(&ob.join(name)).replace("/var/lib/tor", &dir.path().display().to_string());
        let path = dir.path().join(name);
        std::fs::write(&path, local).expect("write");
        let o = run(Command::new("tor")
            .arg("--verify-config")
            .arg("-f")
            .arg(&path)
            .arg("--defaults-torrc")
            .arg(dir.path().join("no-defaults")));
        let out = stdout(&o);
        assert!(o.status.success(), "{name}: {out}{}", stderr(&o));
        assert!(
            out.contains("Configuration was valid") && out.contains(expect),
            "{name}: {out}"
        );
        let warnings: Vec<&str> = out
            .lines()
            .filter(|l| l.contains("[warn]") && !l.contains("running Tor as root"))
            .collect();
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
    }

    // The drop-ins where the operator puts them, next to the gateway's unit; Debian's units for
    // tor and onionbalance come from the system's unit path.
    let units = dir.path().join("units");
    for (file, unit) in [
        ("site-tor.conf", "tor@default.service"),
        ("site-gateway.conf", "resguardo-gateway.service"),
        ("frontend-onionbalance.conf", "onionbalance.service"),
    ] {
        let drop_in = units.join(format!("{unit}.d"));
        std::fs::create_dir_all(&drop_in).expect("mkdir");
        std::fs::copy(ob.join(file), drop_in.join(file)).expect("copy");
    }
    std::fs::copy(
        repo().join("deploy/resguardo-gateway.service"),
        units.join("resguardo-gateway.service"),
    )
    .expect("copy");
    let o = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args([
            "tor@default.service",
            "resguardo-gateway.service",
            "onionbalance.service",
        ])
        // A trailing colon: these units first, then the system's.
        .env("SYSTEMD_UNIT_PATH", format!("{}:", units.display())));
    let err = stderr(&o);
    let complaints: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("Command /usr/local/bin/resguardo-gateway is not executable"))
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify: {complaints:?}"
    );
}
