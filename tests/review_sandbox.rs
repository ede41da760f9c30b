//! The sandbox of `open` (issue 9, item 10): each way out that the Landlock-only sandbox left
//! open is tried from inside, after proving it works from outside: UDP `sendto`, `connect()` to a
//! named Unix socket outside `--out` (an agent's), TIOCSTI on a terminal, plus files, TCP and
//! running programs. The parser's stricter sandbox is tried the same way.
//!
//! Landlock, seccomp and `unshare` act on the calling thread, so each sandbox is entered in a
//! thread of its own and the test's other threads stay free. Needs root (TIOCSTI on a terminal
//! that is not the controlling one needs CAP_SYS_ADMIN, which is what proves it works outside).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use resguardo::review::sandbox::{self, Executable, OpenerPolicy};

/// A pseudo-terminal pair: (master, slave).
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors into the locals; the other pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // Raw mode: a typed byte is readable at once and not echoed.
    // SAFETY: an all-zero termios is valid; tcgetattr fills it, tcsetattr reads it.
    unsafe {
        let mut mode: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave, &mut mode), 0);
        libc::cfmakeraw(&mut mode);
        assert_eq!(libc::tcsetattr(slave, libc::TCSANOW, &mode), 0);
    }
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// `ioctl(fd, request, &byte)`: the errno on failure.
fn ioctl_byte(fd: RawFd, request: libc::Ioctl, byte: u8) -> Result<(), i32> {
    // SAFETY: TIOCSTI and TIOCLINUX read one byte through the pointer, which outlives the call.
    let rc = unsafe { libc::ioctl(fd, request, &byte as *const u8) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// `ioctl(fd, TIOCGWINSZ)`: the errno on failure.
fn window_size(fd: RawFd) -> Result<(), i32> {
    // SAFETY: an all-zero winsize is valid; the kernel writes into it.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize through the pointer, which outlives the call.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// True if the terminal has input waiting.
fn has_input(fd: RawFd) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, valid for the call.
    let rc = unsafe { libc::poll(&mut poll, 1, 0) };
    rc > 0 && poll.revents & libc::POLLIN != 0
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Everything the tests try, from a place that is not sandboxed.
struct World {
    dir: tempfile::TempDir,
    out: PathBuf,
    bundle: PathBuf,
    tcp: TcpListener,
    tcp_addr: std::net::SocketAddr,
    udp: UdpSocket,
    udp_addr: std::net::SocketAddr,
    agent_path: PathBuf,
    agent: UnixListener,
    master: OwnedFd,
    slave: OwnedFd,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        let bundle = dir.path().join("bundle.tar");
        std::fs::write(&bundle, b"bundle").expect("write");
        let agent_path = dir.path().join("agent.sock");
        let agent = UnixListener::bind(&agent_path).expect("agent socket");
        agent.set_nonblocking(true).expect("nonblocking");
        let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
        udp.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let (master, slave) = pty();
        let tcp = TcpListener::bind("127.0.0.1:0").expect("tcp");
        World {
            out,
            bundle,
            tcp_addr: tcp.local_addr().expect("addr"),
            tcp,
            udp_addr: udp.local_addr().expect("addr"),
            udp,
            agent_path,
            agent,
            master,
            slave,
            dir,
        }
    }

    /// Each way out works from here: otherwise a refusal inside would prove nothing.
    fn every_way_out_works_unsandboxed(&self) {
        std::fs::write(self.dir.path().join("outside.txt"), b"x").expect("write outside");
        TcpStream::connect(self.tcp.local_addr().expect("addr")).expect("tcp connect");
        let sender = UdpSocket::bind("127.0.0.1:0").expect("udp");
        sender
            .send_to(b"ping", self.udp.local_addr().expect("addr"))
            .expect("udp sendto");
        let mut buf = [0u8; 16];
        assert_eq!(self.udp.recv(&mut buf).expect("udp recv"), 4);
        UnixStream::connect(&self.agent_path).expect("agent connect");
        let (conn, _) = self.agent.accept().expect("accept");
        drop(conn);
        ioctl_byte(self.slave.as_raw_fd(), libc::TIOCSTI, b'Z')
            .expect("TIOCSTI works outside the sandbox (as root)");
        assert!(has_input(self.slave.as_raw_fd()), "the byte was typed");
        let mut typed = [0u8; 8];
        let n = std::fs::File::from(self.slave.try_clone().expect("dup"))
            .read(&mut typed)
            .expect("read the typed byte");
        assert_eq!(&typed[..n], b"Z");
        assert!(!has_input(self.slave.as_raw_fd()));
        window_size(self.slave.as_raw_fd()).expect("TIOCGWINSZ");
        std::process::Command::new("/bin/true")
            .status()
            .expect("running a program");
    }

    /// After a sandboxed attempt: nothing arrived anywhere.
    fn nothing_got_out(&self) {
        let mut buf = [0u8; 16];
        let e = self.udp.recv(&mut buf).expect_err("no datagram arrived");
        assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        );
        let e = self.agent.accept().expect_err("no connection to the agent");
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        assert!(!has_input(self.slave.as_raw_fd()), "nothing was typed");
        // What reached the terminal's other end: the opener's own output at most.
        let mut shown = Vec::new();
        let mut buf = [0u8; 256];
        while has_input(self.master.as_raw_fd()) {
            let n = std::fs::File::from(self.master.try_clone().expect("dup"))
                .read(&mut buf)
                .expect("read");
            shown.extend_from_slice(&buf[..n]);
        }
        assert!(
            !shown.contains(&b'Z'),
            "{:?}",
            String::from_utf8_lossy(&shown)
        );
        assert!(!self.dir.path().join("escaped.txt").exists());
    }
}

/// The ways out every `open` process must find closed.
fn closed_ways_out(world: &World, udp_before: &UdpSocket, unix_before: &UnixDatagram) {
    let d = world.dir.path();
    let e = std::fs::write(d.join("escaped.txt"), b"x").expect_err("write outside --out");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");

    let e = TcpStream::connect(world.tcp_addr).expect_err("TCP");
    assert_eq!(errno(&e), libc::EPERM, "{e}");
    let e = UdpSocket::bind("127.0.0.1:0").expect_err("a new UDP socket");
    assert_eq!(errno(&e), libc::EPERM, "{e}");
    // A socket that existed before the sandbox cannot send either.
    let e = udp_before
        .send_to(b"leak", world.udp_addr)
        .expect_err("UDP sendto");
    assert_eq!(errno(&e), libc::EPERM, "{e}");

    let e = UnixStream::connect(&world.agent_path).expect_err("agent socket outside --out");
    assert_eq!(errno(&e), libc::EPERM, "{e}");
    let e = unix_before
        .connect(&world.agent_path)
        .expect_err("connect with an earlier socket");
    assert_eq!(errno(&e), libc::EPERM, "{e}");

    let slave = world.slave.as_raw_fd();
    assert_eq!(
        ioctl_byte(slave, libc::TIOCSTI, b'Z'),
        Err(libc::EPERM),
        "TIOCSTI"
    );
    // The kernel reads the request as 32 bits: high bits cannot smuggle it past the filter.
    assert_eq!(
        ioctl_byte(slave, libc::TIOCSTI | 1 << 32, b'Z'),
        Err(libc::EPERM),
        "TIOCSTI with high bits"
    );
    assert_eq!(
        ioctl_byte(slave, libc::TIOCLINUX, 6),
        Err(libc::EPERM),
        "TIOCLINUX"
    );

    let e = std::process::Command::new("/bin/true")
        .status()
        .expect_err("running another program");
    assert!(matches!(errno(&e), libc::EPERM | libc::EACCES), "{e}");

    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a system call with plain integer arguments.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_socket | 0x4000_0000,
                libc::AF_INET,
                libc::SOCK_DGRAM,
                0,
            )
        };
        assert_eq!(rc, -1, "x32 socket");
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EPERM),
            "x32 system calls are refused as a whole"
        );
    }
}

#[test]
fn inside_the_opener_sandbox_every_way_out_is_refused() {
    let world = World::new();
    world.every_way_out_works_unsandboxed();
    let udp_before = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let unix_before = UnixDatagram::unbound().expect("unix");
    let executable = Executable::current().expect("executable");

    std::thread::scope(|s| {
        s.spawn(|| {
            let namespace = sandbox::new_network_namespace();
            let status = sandbox::enter_opener(
                &OpenerPolicy {
                    readable: &[world.bundle.as_path()],
                    writable: &world.out,
                    executable: &executable,
                },
                namespace,
            )
            .expect("sandbox");
            assert!(status.is_sufficient(), "{status:?}");
            assert!(status.seccomp && status.filesystem && status.network);

            // What the opener needs still works.
            std::fs::write(world.out.join("report.json"), b"ok").expect("write under --out");
            assert_eq!(
                std::fs::read(&world.bundle).expect("read the bundle"),
                b"bundle"
            );
            let e = std::fs::write(&world.bundle, b"changed").expect_err("bundle read-only");
            assert_eq!(e.kind(), ErrorKind::PermissionDenied);
            window_size(world.slave.as_raw_fd()).expect("the progress bar's TIOCGWINSZ");
            let mut tty = std::fs::File::from(world.slave.try_clone().expect("dup"));
            assert!(std::io::IsTerminal::is_terminal(&tty), "isatty");
            tty.write_all(b"progress\r\n")
                .expect("writing to the terminal");

            closed_ways_out(&world, &udp_before, &unix_before);
        })
        .join()
        .expect("sandboxed thread");
    });
    world.nothing_got_out();
    // This thread was never restricted.
    std::fs::write(world.dir.path().join("fine.txt"), b"x").expect("free");
}

#[test]
fn inside_a_parser_sandbox_only_its_own_folder_is_reachable() {
    let world = World::new();
    world.every_way_out_works_unsandboxed();
    let staging = world.out.join("staging");
    std::fs::create_dir(&staging).expect("mkdir");
    let sibling = world.out.join("earlier-report");
    std::fs::create_dir(&sibling).expect("mkdir");
    std::fs::write(sibling.join("report.json"), b"{}").expect("write");
    let key = world.dir.path().join("reviewer.sec.asc");
    std::fs::write(&key, b"secret").expect("write");
    let udp_before = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let unix_before = UnixDatagram::unbound().expect("unix");

    std::thread::scope(|s| {
        s.spawn(|| {
            let status = sandbox::enter_worker(&staging).expect("sandbox");
            assert!(status.is_sufficient(), "{status:?}");

            std::fs::create_dir(staging.join("files")).expect("mkdir in its folder");
            std::fs::write(staging.join("files/001-a.txt"), b"a").expect("write in its folder");
            assert_eq!(
                std::fs::read(staging.join("files/001-a.txt")).expect("read back"),
                b"a"
            );
            for (what, result) in [
                ("read the key", std::fs::read(&key).map(|_| ())),
                (
                    "read another report",
                    std::fs::read(sibling.join("report.json")).map(|_| ()),
                ),
                (
                    "write beside its folder",
                    std::fs::write(world.out.join("index.csv"), b"x"),
                ),
                (
                    "symlink out of its folder",
                    std::os::unix::fs::symlink(&key, staging.join("link")),
                ),
                (
                    "hard link into its folder",
                    std::fs::hard_link(sibling.join("report.json"), staging.join("h")),
                ),
            ] {
                let e = result.expect_err(what);
                // Landlock refuses a link across its rules' hierarchy with EXDEV.
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::PermissionDenied | ErrorKind::CrossesDevices
                    ),
                    "{what}: {e}"
                );
            }
            // No ioctl at all, not even the harmless ones.
            assert_eq!(window_size(world.slave.as_raw_fd()), Err(libc::EPERM));
            // No changing its limits.
            let e = rustix::process::setrlimit(
                rustix::process::Resource::Nofile,
                rustix::process::Rlimit {
                    current: Some(10),
                    maximum: Some(10),
                },
            )
            .expect_err("setrlimit");
            assert_eq!(e.raw_os_error(), libc::EPERM);

            closed_ways_out(&world, &udp_before, &unix_before);
            // Not even this program.
            let e = std::process::Command::new(std::env::current_exe().expect("exe"))
                .arg("--list")
                .status()
                .expect_err("exec");
            assert_eq!(errno(&e), libc::EPERM, "{e}");
        })
        .join()
        .expect("sandboxed thread");
    });
    world.nothing_got_out();
    assert!(!staging.join("link").exists());
}

/// The whole tool, as a reviewer runs it: `--require-sandbox` names every layer.
#[test]
fn require_sandbox_reports_landlock_seccomp_and_the_network_namespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bundle = repo.join("fuzz/seeds/bundle/two-submissions");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_resguardo-review"))
        .env("RESGUARDO_LANG", "en")
        .arg("open")
        .arg(&bundle)
        .arg("--key")
        .arg(repo.join("keys-example/demo-reviewer-1.sec.asc"))
        .arg("--passphrase-file")
        .arg(repo.join("keys-example/demo-reviewer-1.passphrase"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--require-sandbox")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("Sandbox: "))
        .unwrap_or_else(|| panic!("no sandbox line in {err}"));
    assert!(line.starts_with("Sandbox: active (Landlock V"), "{line}");
    assert!(line.contains("seccomp: no sockets"), "{line}");
    assert!(line.contains("network namespace: new"), "{line}");
    // Both reports were parsed by parsers whose own sandbox was required.
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("opened             2"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
