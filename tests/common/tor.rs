//! A private Tor network on 127.0.0.1 with one onion service in front of a test gateway
//! ([`PrivateTor`]), or with one onionbalance master address in front of several
//! ([`BalancedTor`]): thin wrappers around `tests/support/private-tor`, the one implementation
//! (the browser tests call the same script).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{repo, stderr, stdout};

/// A running network; stopped when dropped. Its tor processes also exit by themselves within
/// ~15 s of this process's end, however it ends.
pub struct PrivateTor {
    dir: tempfile::TempDir,
    /// The Tor client's SOCKS port, `127.0.0.1:PORT`.
    pub socks: String,
    /// The onion service's address, `<56 characters>.onion`.
    pub onion: String,
}

fn script() -> PathBuf {
    repo().join("tests/support/private-tor")
}

impl PrivateTor {
    /// Brings the network up with the onion service's port 80 going to `target`, and returns once
    /// a request through the onion has been answered. Fails loudly (never skips) when tor is
    /// missing or the network does not come up, with the end of every tor log.
    pub fn start(target: SocketAddr) -> PrivateTor {
        let (dir, text) = up(&["--target".into(), target.to_string()]);
        let (socks, onion) = (value(&text, "SOCKS="), value(&text, "ONION="));
        assert!(is_onion(&onion), "{onion:?}");
        PrivateTor { dir, socks, onion }
    }

    /// `http://<onion>/`
    pub fn url(&self) -> String {
        format!("http://{}/", self.onion)
    }

    /// The client's SOCKS port as a proxy URL that lets Tor resolve names (`socks5h://`).
    pub fn proxy(&self) -> String {
        format!("socks5h://{}", self.socks)
    }

    /// Where the torrcs, keys and logs are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of the client's and the onion service's logs, for failure messages.
    pub fn log_tails(&self) -> String {
        ["client", "hs"]
            .iter()
            .map(|node| tail(&self.dir().join(node).join("notice.log"), 15))
            .collect()
    }
}

impl Drop for PrivateTor {
    fn drop(&mut self) {
        down(self.dir.path());
    }
}

/// A running network with one backend onion service per gateway (nodes `hs1`, `hs2`, …, with
/// deploy/onionbalance/torrc-backend's settings), an onionbalance frontend (its own tor, driven
/// through a control port, config from deploy/onionbalance/config.yaml) publishing one master
/// address for all of them, and a client. Stopped when dropped; its processes also exit by
/// themselves soon after this process's end.
pub struct BalancedTor {
    dir: tempfile::TempDir,
    /// The Tor client's SOCKS port, `127.0.0.1:PORT`.
    pub socks: String,
    /// The master address, `<56 characters>.onion`, the one reporters are given.
    pub onion: String,
    /// Each backend's own address, in the order of the targets.
    pub backends: Vec<String>,
}

impl BalancedTor {
    /// Brings the network up with backend N's port 80 going to `targets[N]`, and returns once a
    /// request through the master address has been answered (onionbalance publishes its first
    /// descriptor about 50 s after it starts). Fails loudly, never skips.
    pub fn start(targets: &[SocketAddr]) -> BalancedTor {
        let mut args = vec!["--onionbalance".to_string()];
        for target in targets {
            args.extend(["--target".to_string(), target.to_string()]);
        }
        let (dir, text) = up(&args);
        let (socks, onion) = (value(&text, "SOCKS="), value(&text, "ONION="));
        let backends: Vec<String> = value(&text, "BACKENDS=")
            .split(',')
            .map(String::from)
            .collect();
        assert!(is_onion(&onion), "{onion:?}");
        assert!(
            backends.len() == targets.len() && backends.iter().all(|b| is_onion(b)),
            "{backends:?}"
        );
        assert!(!backends.contains(&onion), "the master is not a backend");
        BalancedTor {
            dir,
            socks,
            onion,
            backends,
        }
    }

    /// `http://<master address>/`
    pub fn url(&self) -> String {
        format!("http://{}/", self.onion)
    }

    /// The client's SOCKS port as a proxy URL with its own user name: Tor keeps streams with
    /// different SOCKS credentials on different circuits (IsolateSOCKSAuth, on by default), so
    /// each `circuit` gets a new rendezvous, through an introduction point picked anew.
    pub fn proxy(&self, circuit: &str) -> String {
        format!("socks5h://{circuit}:x@{}", self.socks)
    }

    /// Stops one node for good, e.g. `hs1`, the first backend's tor.
    pub fn stop_node(&self, node: &str) {
        let out = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .arg(node)
            .stdin(Stdio::null())
            .output()
            .expect("run tests/support/private-tor stop");
        assert!(out.status.success(), "stop {node}: {}", stderr(&out));
    }

    /// Where the torrcs, keys and logs are (onionbalance's under `ob/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of the client's, the backends', the frontend's and onionbalance's logs.
    pub fn log_tails(&self) -> String {
        let mut files: Vec<PathBuf> = vec![self.dir().join("client/notice.log")];
        for n in 1..=self.backends.len() {
            files.push(self.dir().join(format!("hs{n}/notice.log")));
        }
        files.push(self.dir().join("front/notice.log"));
        files.push(self.dir().join("ob/onionbalance.log"));
        files.iter().map(|f| tail(f, 15)).collect()
    }
}

impl Drop for BalancedTor {
    fn drop(&mut self) {
        down(self.dir.path());
    }
}

/// `private-tor up` in a new private directory with `args`: the directory and what it printed.
fn up(args: &[String]) -> (tempfile::TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix("resguardo-tor-")
        .tempdir()
        .expect("tempdir");
    let out = Command::new(script())
        .arg("up")
        .arg(dir.path())
        .args(args)
        .args(["--owner", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run tests/support/private-tor");
    let (text, progress) = (stdout(&out), stderr(&out));
    assert!(
        out.status.success(),
        "the private Tor network did not come up ({}):\n{progress}{text}",
        out.status
    );
    eprint!("{progress}");
    (dir, text)
}

fn down(dir: &Path) {
    let _ = Command::new(script())
        .arg("down")
        .arg(dir)
        .stdin(Stdio::null())
        .status();
}

/// The value of the `KEY=` line that private-tor printed.
fn value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in the output of private-tor:\n{text}"))
        .to_string()
}

fn is_onion(name: &str) -> bool {
    name.len() == 62
        && name.ends_with(".onion")
        && name.as_bytes()[..56]
            .iter()
            .all(|&b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// The last `n` lines of a log, headed by its name.
fn tail(file: &Path, n: usize) -> String {
    let log = std::fs::read_to_string(file).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let mut out = format!("--- last lines of {}\n", file.display());
    for line in &lines[lines.len().saturating_sub(n)..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}
