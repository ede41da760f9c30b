//! A private Tor network on 127.0.0.1 with one onion service in front of a test gateway: a thin
//! wrapper around `tests/support/private-tor`, the one implementation (the browser tests call the
//! same script).

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
        let dir = tempfile::Builder::new()
            .prefix("resguardo-tor-")
            .tempdir()
            .expect("tempdir");
        let out = Command::new(script())
            .arg("up")
            .arg(dir.path())
            .args(["--target", &target.to_string()])
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
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in the output of private-tor:\n{text}"))
                .to_string()
        };
        let (socks, onion) = (value("SOCKS="), value("ONION="));
        assert!(onion.ends_with(".onion") && onion.len() == 62, "{onion:?}");
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
        let mut out = String::new();
        for node in ["client", "hs"] {
            let log = std::fs::read_to_string(self.dir().join(node).join("notice.log"))
                .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!("--- last lines of {node}/notice.log\n"));
            for line in &lines[lines.len().saturating_sub(15)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for PrivateTor {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("down")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .status();
    }
}
