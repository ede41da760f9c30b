//! Containment for `open`: Landlock, entered before the first ciphertext is read.
//!
//! The process that parses attacker-supplied ciphertext holds the only key that opens reports.
//! If a parser bug were exploited, Landlock limits the damage: no TCP connections or listening
//! sockets (Landlock ABI 4+), no connecting to abstract Unix sockets or signalling other processes
//! (ABI 6+), writes only below `--out`, reads only the bundle, the key and `--out`. Files already
//! open (the bundle, the terminal) stay usable. The restriction covers this thread and every
//! thread it starts, so it must be entered before any worker thread exists.

use std::path::Path;

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, PathBeneath, PathFd,
    RestrictionStatus, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

/// The newest Landlock ABI this code asks for; older kernels get what they support.
const ABI_WANTED: ABI = ABI::V6;

/// What the sandbox could enforce on this kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxStatus {
    /// Filesystem access is restricted.
    pub filesystem: bool,
    /// TCP bind and connect are denied.
    pub network: bool,
    /// Abstract Unix sockets and signals outside the sandbox are denied.
    pub scoped: bool,
    /// Human-readable summary.
    pub summary: String,
}

impl SandboxStatus {
    /// What `--require-sandbox` requires: the filesystem and the network both restricted.
    pub fn is_sufficient(&self) -> bool {
        self.filesystem && self.network
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the sandbox: {0}")]
pub struct SandboxError(String);

/// Restricts the calling thread (and its future threads) to reading `readable` and reading and
/// writing below `writable`, with no network.
pub fn enter(readable: &[&Path], writable: &Path) -> Result<SandboxStatus, SandboxError> {
    let err = |e: &dyn std::fmt::Display| SandboxError(e.to_string());
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_WANTED))
        .map_err(|e| err(&e))?
        .handle_access(AccessNet::from_all(ABI_WANTED))
        .map_err(|e| err(&e))?
        .scope(Scope::from_all(ABI_WANTED))
        .map_err(|e| err(&e))?
        .create()
        .map_err(|e| err(&e))?
        .add_rule(PathBeneath::new(
            PathFd::new(writable).map_err(|e| err(&e))?,
            AccessFs::from_all(ABI_WANTED),
        ))
        .map_err(|e| err(&e))?;
    for path in readable {
        // Read-only; on a file only the file right applies (asking for directory rights on a
        // file would make the ruleset "partially enforced" for no reason).
        let access = if path.is_file() {
            AccessFs::from_read(ABI_WANTED) & AccessFs::from_file(ABI_WANTED)
        } else {
            AccessFs::from_read(ABI_WANTED)
        };
        ruleset = ruleset
            .add_rule(PathBeneath::new(
                PathFd::new(path).map_err(|e| err(&e))?,
                access,
            ))
            .map_err(|e| err(&e))?;
    }
    let status = ruleset.restrict_self().map_err(|e| err(&e))?;
    Ok(describe(&status))
}

fn describe(status: &RestrictionStatus) -> SandboxStatus {
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => Some(effective_abi),
        _ => None,
    };
    let enforced = status.ruleset != RulesetStatus::NotEnforced;
    let filesystem = enforced && abi.is_some();
    let network = enforced && abi.is_some_and(|a| a >= ABI::V4);
    let scoped = enforced && abi.is_some_and(|a| a >= ABI::V6);
    let summary = match (abi, enforced) {
        (Some(abi), true) => {
            let mut parts = vec!["files"];
            if network {
                parts.push("network");
            }
            if scoped {
                parts.push("sockets and signals");
            }
            format!(
                "active (Landlock {abi:?}: {}{})",
                parts.join(", "),
                if status.ruleset == RulesetStatus::FullyEnforced {
                    ""
                } else {
                    "; partial on this kernel"
                }
            )
        }
        _ => match status.landlock {
            LandlockStatus::NotEnabled => {
                "NOT active: Landlock is not enabled in this kernel".into()
            }
            LandlockStatus::NotImplemented => {
                "NOT active: this kernel has no Landlock (Linux 5.13+ needed)".into()
            }
            _ => "NOT active".into(),
        },
    };
    SandboxStatus {
        filesystem,
        network,
        scoped,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn inside_the_sandbox_writes_outside_out_and_tcp_connects_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        let readable = dir.path().join("bundle.tar");
        std::fs::write(&readable, b"bundle").expect("write");
        let outside = dir.path().join("outside.txt");
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = listener.local_addr().expect("addr");
        // Before the sandbox both work.
        TcpStream::connect(addr).expect("connect before");

        // Landlock restricts the calling thread: do it in a thread of its own.
        let (out2, readable2, outside2) = (out.clone(), readable.clone(), outside.clone());
        let result = std::thread::spawn(move || {
            let status = enter(&[&readable2], &out2).expect("sandbox");
            let inside = std::fs::write(out2.join("report.json"), b"ok");
            let read_bundle = std::fs::read(&readable2);
            let write_bundle = std::fs::write(&readable2, b"changed");
            let escape = std::fs::write(&outside2, b"escaped");
            let connect = TcpStream::connect(addr);
            let listen = TcpListener::bind("127.0.0.1:0");
            (
                status,
                inside,
                read_bundle,
                write_bundle,
                escape,
                connect.map(|_| ()),
                listen.map(|_| ()),
            )
        })
        .join()
        .expect("thread");
        let (status, inside, read_bundle, write_bundle, escape, connect, listen) = result;
        assert!(
            status.is_sufficient(),
            "this test needs Landlock ABI 4+: {status:?}"
        );
        inside.expect("writing under --out works");
        assert_eq!(read_bundle.expect("reading the bundle works"), b"bundle");
        assert_eq!(
            write_bundle.expect_err("bundle is read-only").kind(),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            escape.expect_err("write outside --out").kind(),
            ErrorKind::PermissionDenied
        );
        assert!(!outside.exists());
        assert_eq!(
            connect.expect_err("TCP connect").kind(),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            listen.expect_err("TCP bind").kind(),
            ErrorKind::PermissionDenied
        );
        // This thread was never restricted.
        std::fs::write(&outside, b"fine").expect("the test thread is free");
    }
}
