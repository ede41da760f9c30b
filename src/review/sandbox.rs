//! Containment for `open`: two processes, each locked in before it touches attacker data.
//!
//! `open` runs as two kinds of process (see [`super::open`]):
//!
//! - the **opener** holds the unlocked secret key, verifies each submission against the bundle
//!   manifest and decrypts it. Before it reads the first ciphertext it enters
//!   [`enter_opener`]: a new network namespace where the kernel allows it (as root, or through an
//!   unprivileged user namespace; best effort), Landlock (reads only the bundle; writes only below
//!   `--out`; executes only itself and the libraries it already has mapped, to start parsers; no
//!   TCP; no abstract Unix sockets or signals outside its domain), and a seccomp filter: no socket
//!   calls at all (so no UDP, no `connect()` to gpg-agent, D-Bus, X11 or ssh-agent sockets), no
//!   io_uring (which would bypass the filter), no ptrace or other processes' memory, no mounts or
//!   namespaces, and only the `ioctl`s a progress bar needs (terminal attributes and size): never
//!   TIOCSTI, TIOCLINUX or anything else that could type into or reconfigure the terminal it
//!   inherited. It also becomes non-dumpable and drops core dumps, so the key cannot leak that way.
//! - each **parser** ([`super::worker`]) never sees the key. It inherits all of the above and adds
//!   [`enter_worker`]: Landlock down to its own staging directory (create, write and read files
//!   and folders there; nothing else anywhere, no symlinks, no devices, no execution), a stricter
//!   seccomp filter (additionally no `execve`, no new processes or threads, no `ioctl` at all, no
//!   changing its resource limits), and limits on file size, open files, CPU time and core dumps.
//!
//! Seccomp filters compare the `ioctl` request as the kernel reads it (32 bits), so setting high
//! bits cannot smuggle TIOCSTI past the list; on x86-64 the x32 system-call numbers (which a
//! deny list keyed on x86-64 numbers would miss) are refused as a whole. Denied calls fail with
//! EPERM rather than killing the process, so a refusal shows up as an ordinary error.
//!
//! Landlock and seccomp restrict the calling thread and the threads and processes it starts
//! afterwards, so both entries must happen before any other thread exists.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus, PathBeneath,
    PathFd, RestrictionStatus, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use super::lang::Lang;

/// The newest Landlock ABI this code asks for; older kernels get what they support.
const ABI_WANTED: ABI = ABI::V6;

/// What the sandbox could enforce on this kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxStatus {
    /// The Landlock ABI in force, if any.
    pub landlock: Option<String>,
    /// Filesystem access is restricted.
    pub filesystem: bool,
    /// TCP bind and connect are denied by Landlock.
    pub network: bool,
    /// Abstract Unix sockets and signals outside the sandbox are denied.
    pub scoped: bool,
    /// Landlock enforced only part of the rules (an older kernel).
    pub partial: bool,
    /// The seccomp filter is installed.
    pub seccomp: bool,
    /// Whether the process left the machine's network namespace.
    pub network_namespace: NetworkNamespace,
}

/// The outcome of trying to leave the machine's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkNamespace {
    /// A new, empty network namespace (no interfaces but a down loopback).
    New,
    /// The same, inside a new unprivileged user namespace.
    NewInUserNamespace,
    /// Not attempted (a parser inherits the opener's).
    Inherited,
    /// The kernel refused; the reason.
    Unavailable(String),
}

impl SandboxStatus {
    /// What `--require-sandbox` requires: files and TCP restricted by Landlock, and the seccomp
    /// filter (no sockets, no terminal injection) in force. The network namespace is best effort.
    pub fn is_sufficient(&self) -> bool {
        self.filesystem && self.network && self.seccomp
    }

    /// One line for the reviewer, in their language.
    pub fn summary(&self, lang: Lang) -> String {
        let es = lang == Lang::Es;
        let landlock = match &self.landlock {
            Some(abi) if self.filesystem => {
                let mut parts = vec![if es { "archivos" } else { "files" }];
                if self.network {
                    parts.push(if es { "red" } else { "network" });
                }
                if self.scoped {
                    parts.push(if es {
                        "sockets y señales"
                    } else {
                        "sockets and signals"
                    });
                }
                format!(
                    "Landlock {abi}: {}{}",
                    parts.join(", "),
                    match (self.partial, es) {
                        (false, _) => "",
                        (true, false) => ", partial on this kernel",
                        (true, true) => ", parcial en este kernel",
                    }
                )
            }
            _ if es => "Landlock NO disponible".into(),
            _ => "Landlock NOT available".into(),
        };
        let seccomp = match (self.seccomp, es) {
            (true, false) => "seccomp: no sockets, terminal ioctls restricted",
            (true, true) => "seccomp: sin sockets, ioctl de terminal restringidos",
            (false, false) => "seccomp: NOT active",
            (false, true) => "seccomp: NO activo",
        };
        let netns = match (&self.network_namespace, es) {
            (NetworkNamespace::New, false) => "network namespace: new, empty".to_string(),
            (NetworkNamespace::New, true) => "espacio de red: nuevo, vacío".to_string(),
            (NetworkNamespace::NewInUserNamespace, false) => {
                "network namespace: new, empty (user namespace)".to_string()
            }
            (NetworkNamespace::NewInUserNamespace, true) => {
                "espacio de red: nuevo, vacío (espacio de usuario)".to_string()
            }
            (NetworkNamespace::Inherited, false) => "network namespace: inherited".to_string(),
            (NetworkNamespace::Inherited, true) => "espacio de red: heredado".to_string(),
            (NetworkNamespace::Unavailable(why), false) => {
                format!("network namespace: not available ({why})")
            }
            (NetworkNamespace::Unavailable(why), true) => {
                format!("espacio de red: no disponible ({why})")
            }
        };
        let state = match (self.is_sufficient(), es) {
            (true, false) => "active",
            (true, true) => "activo",
            (false, false) => "NOT fully active",
            (false, true) => "NO del todo activo",
        };
        format!("{state} ({landlock}; {seccomp}; {netns})")
    }
}

/// Why the sandbox could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Creating or enforcing the Landlock ruleset failed (the library's message).
    #[error("cannot set up Landlock: {0}")]
    Landlock(String),
    /// A path of the policy could not be opened or added as a Landlock rule.
    #[error("{path}: cannot add it to the sandbox: {reason}")]
    Path {
        /// The path of the rule (for example the bundle, `--out` or a mapped library).
        path: PathBuf,
        /// Why, as the library or the kernel said it.
        reason: String,
    },
    /// Building or loading a seccomp filter failed.
    #[error("cannot install the seccomp filter: {0}")]
    Seccomp(String),
    /// Setting an rlimit or making the process non-dumpable failed; names which.
    #[error("cannot set resource limits: {0}")]
    Limits(String),
    /// This program's path or `/proc/self/maps` could not be read.
    #[error("cannot find what this program needs to start a parser: {0}")]
    Executable(String),
}

/// What the opener may still do once locked in.
pub struct OpenerPolicy<'a> {
    /// Files it may read (the bundle).
    pub readable: &'a [&'a Path],
    /// The folder it writes reports into (`--out`).
    pub writable: &'a Path,
    /// What starting a parser needs.
    pub executable: &'a Executable,
}

/// This program's files as the kernel and the dynamic loader need them to start it again: the
/// program itself and every library and loader it has mapped (read and execute), and the
/// loader's cache (read). Taken from `/proc/self/maps` before the sandbox is entered.
#[derive(Debug, Clone)]
pub struct Executable {
    /// This program's path ([`std::env::current_exe`]), started again for each parser.
    pub program: PathBuf,
    /// Regular files mapped into this process (the program, libraries, the loader), deduplicated.
    pub mapped: Vec<PathBuf>,
    /// Files the loader reads but does not map: `/etc/ld.so.cache` when it exists.
    pub readable: Vec<PathBuf>,
}

/// Bound on `/proc/self/maps`.
const MAX_MAPS_BYTES: u64 = 4 * 1024 * 1024;

impl Executable {
    /// This process's program and mapped files, read from `/proc/self/maps` (at most 4 MiB).
    pub fn current() -> Result<Executable, SandboxError> {
        let program = std::env::current_exe()
            .map_err(|e| SandboxError::Executable(format!("this program's path: {e}")))?;
        let mut maps = String::new();
        File::open("/proc/self/maps")
            .and_then(|f| f.take(MAX_MAPS_BYTES).read_to_string(&mut maps))
            .map_err(|e| SandboxError::Executable(format!("/proc/self/maps: {e}")))?;
        let mut mapped: Vec<PathBuf> = Vec::new();
        for line in maps.lines() {
            // address perms offset dev inode path
            let Some(path) = line.split_whitespace().nth(5) else {
                continue;
            };
            let path = Path::new(path);
            if path.is_absolute()
                && !line.ends_with(" (deleted)")
                && !path.starts_with("/dev")
                && !path.starts_with("/memfd:")
                && path.is_file()
                && !mapped.iter().any(|p| p == path)
            {
                mapped.push(path.to_path_buf());
            }
        }
        let readable = ["/etc/ld.so.cache"]
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .collect();
        Ok(Executable {
            program,
            mapped,
            readable,
        })
    }
}

/// Leaves the machine's network namespace if the kernel allows it: directly as root, else in a
/// new unprivileged user namespace. Must run while the process has a single thread.
pub fn new_network_namespace() -> NetworkNamespace {
    use rustix::thread::UnshareFlags;
    // `unshare` is only unsafe with CLONE_FILES (fd tables); these flags never include it.
    #[allow(deprecated)]
    let unshare = |flags| rustix::thread::unshare(flags);
    match unshare(UnshareFlags::NEWNET) {
        Ok(()) => NetworkNamespace::New,
        Err(first) => match unshare(UnshareFlags::NEWUSER | UnshareFlags::NEWNET) {
            Ok(()) => NetworkNamespace::NewInUserNamespace,
            Err(second) => NetworkNamespace::Unavailable(format!("{first}; {second}")),
        },
    }
}

/// Locks the opener in (see the module documentation). Call it while the process has one thread.
pub fn enter_opener(
    policy: &OpenerPolicy<'_>,
    network_namespace: NetworkNamespace,
) -> Result<SandboxStatus, SandboxError> {
    harden_process()?;
    let abi = ABI_WANTED;
    // Everything below --out except running programs from it and making special files.
    let out_access = AccessFs::from_all(abi)
        & !(AccessFs::Execute
            | AccessFs::MakeChar
            | AccessFs::MakeBlock
            | AccessFs::MakeFifo
            | AccessFs::MakeSock
            | AccessFs::MakeSym);
    let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> =
        vec![(policy.writable.to_path_buf(), out_access)];
    for path in policy.readable {
        rules.push((path.to_path_buf(), read_access(path, abi)));
    }
    let exec = (AccessFs::Execute | AccessFs::ReadFile) & AccessFs::from_all(abi);
    let exe = policy.executable;
    for path in std::iter::once(&exe.program).chain(&exe.mapped) {
        rules.push((path.clone(), exec));
    }
    for path in &exe.readable {
        rules.push((path.clone(), read_access(path, abi)));
    }
    let landlock = restrict(&rules)?;
    let seccomp = install(&opener_filter()?)?;
    Ok(status(&landlock, seccomp, network_namespace))
}

/// Locks a parser in (see the module documentation): called first thing in the parser process,
/// after [`limit_worker`].
pub fn enter_worker(dir: &Path) -> Result<SandboxStatus, SandboxError> {
    let access = AccessFs::ReadFile
        | AccessFs::WriteFile
        | AccessFs::ReadDir
        | AccessFs::MakeReg
        | AccessFs::MakeDir
        | AccessFs::Truncate;
    let landlock = restrict(&[(dir.to_path_buf(), access & AccessFs::from_all(ABI_WANTED))])?;
    let seccomp = install(&opener_filter()?)? && install(&worker_filter()?)?;
    Ok(status(&landlock, seccomp, NetworkNamespace::Inherited))
}

/// A parser's resource limits (process-wide): no file larger than `max_file` bytes, few open
/// files, bounded CPU time, no core dumps; the filter of [`enter_worker`] then forbids raising
/// them.
pub fn limit_worker(max_file: u64) -> Result<(), SandboxError> {
    harden_process()?;
    use rustix::process::{setrlimit, Resource, Rlimit};
    let limit = |resource, value: u64| {
        setrlimit(
            resource,
            Rlimit {
                current: Some(value),
                maximum: Some(value),
            },
        )
        .map_err(|e| SandboxError::Limits(format!("{resource:?}: {e}")))
    };
    limit(Resource::Fsize, max_file)?;
    limit(Resource::Nofile, 64)?;
    limit(Resource::Cpu, WORKER_CPU_SECONDS)
}

/// Points stdin at /dev/null: once the passphrase is read, nothing typed or piped in can reach
/// the process that holds the key.
pub fn detach_stdin() -> io::Result<()> {
    let null = File::open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    Ok(())
}

/// CPU seconds a parser may use: far more than any real payload needs (it only copies bytes).
pub const WORKER_CPU_SECONDS: u64 = 3600;

/// No core dumps (they would hold plaintext or the key) and no ptrace by same-user processes.
fn harden_process() -> Result<(), SandboxError> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| SandboxError::Limits(format!("core: {e}")))?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| SandboxError::Limits(format!("dumpable: {e}")))
}

fn read_access(path: &Path, abi: ABI) -> BitFlags<AccessFs> {
    // On a file only the file rights apply (asking for directory rights on a file would make the
    // ruleset "partially enforced" for no reason).
    if path.is_file() {
        AccessFs::from_read(abi) & AccessFs::from_file(abi)
    } else {
        AccessFs::from_read(abi)
    }
}

/// Landlock: handle every filesystem and network right and scope, allow only `rules`.
fn restrict(rules: &[(PathBuf, BitFlags<AccessFs>)]) -> Result<RestrictionStatus, SandboxError> {
    let err = |e: &dyn std::fmt::Display| SandboxError::Landlock(e.to_string());
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_WANTED))
        .map_err(|e| err(&e))?
        .handle_access(AccessNet::from_all(ABI_WANTED))
        .map_err(|e| err(&e))?
        .scope(Scope::from_all(ABI_WANTED))
        .map_err(|e| err(&e))?
        .create()
        .map_err(|e| err(&e))?;
    for (path, access) in rules {
        let fd = PathFd::new(path).map_err(|e| SandboxError::Path {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, *access))
            .map_err(|e| SandboxError::Path {
                path: path.clone(),
                reason: e.to_string(),
            })?;
    }
    ruleset.restrict_self().map_err(|e| err(&e))
}

fn status(
    status: &RestrictionStatus,
    seccomp: bool,
    network_namespace: NetworkNamespace,
) -> SandboxStatus {
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => Some(effective_abi),
        _ => None,
    };
    let enforced = status.ruleset != RulesetStatus::NotEnforced;
    let filesystem = enforced && abi.is_some();
    SandboxStatus {
        landlock: abi.filter(|_| enforced).map(|a| format!("{a:?}")),
        filesystem,
        network: filesystem && abi.is_some_and(|a| a >= ABI::V4),
        scoped: filesystem && abi.is_some_and(|a| a >= ABI::V6),
        partial: status.ruleset == RulesetStatus::PartiallyEnforced,
        seccomp,
        network_namespace,
    }
}

/// Installs a filter on the calling thread (and what it starts afterwards).
fn install(filter: &[BpfProgram]) -> Result<bool, SandboxError> {
    for program in filter {
        seccompiler::apply_filter(program).map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    }
    Ok(true)
}

/// Calls neither process ever needs, whatever the input.
fn denied_everywhere() -> Vec<i64> {
    let mut calls = vec![
        // Sockets: no process of `open` talks to anything.
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        libc::SYS_sendmmsg,
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
        libc::SYS_recvmmsg,
        libc::SYS_getsockopt,
        libc::SYS_setsockopt,
        libc::SYS_getsockname,
        libc::SYS_getpeername,
        libc::SYS_shutdown,
        // io_uring performs socket and file operations without these system calls.
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        // Other processes' memory and file descriptors.
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_getfd,
        libc::SYS_kcmp,
        // Kernel attack surface and system state.
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_mknodat,
        libc::SYS_personality,
        libc::SYS_syslog,
        libc::SYS_fanotify_init,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        libc::SYS_mknod,
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_uselib,
    ]);
    calls
}

/// The only `ioctl` requests the opener may make: terminal attributes (isatty) and size (the
/// progress bar), and close-on-exec flags. Everything else, TIOCSTI and TIOCLINUX included, fails.
// The constants' type differs between C libraries (an unsigned long with glibc).
#[allow(clippy::unnecessary_cast)]
fn allowed_ioctls() -> Vec<u64> {
    let mut list = vec![
        libc::TCGETS as u64,
        libc::TIOCGWINSZ as u64,
        libc::FIOCLEX as u64,
        libc::FIONCLEX as u64,
    ];
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    list.push(libc::TCGETS2 as u64);
    list
}

/// Calls a parser additionally never needs.
fn denied_in_workers() -> Vec<i64> {
    let mut calls = vec![
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_ioctl,
        libc::SYS_setrlimit,
        libc::SYS_prlimit64,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([libc::SYS_fork, libc::SYS_vfork]);
    calls
}

fn target_arch() -> Result<seccompiler::TargetArch, SandboxError> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))
}

const EPERM: u32 = libc::EPERM as u32;

/// The opener's filter (which parsers inherit).
fn opener_filter() -> Result<Vec<BpfProgram>, SandboxError> {
    let err = |e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = denied_everywhere()
        .into_iter()
        .map(|call| (call, Vec::new()))
        .collect();
    // ioctl matches (and is refused) when its request is none of the allowed ones. The request
    // is compared as the 32 bits the kernel uses.
    let conditions = allowed_ioctls()
        .into_iter()
        .map(|request| SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, request))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    rules.insert(
        libc::SYS_ioctl,
        vec![SeccompRule::new(conditions).map_err(err)?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(EPERM),
        target_arch()?,
    )
    .map_err(err)?;
    let mut programs = vec![filter.try_into().map_err(err)?];
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_guard());
    Ok(programs)
}

/// The parser's additional filter.
fn worker_filter() -> Result<Vec<BpfProgram>, SandboxError> {
    let err = |e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string());
    let rules = denied_in_workers()
        .into_iter()
        .map(|call| (call, Vec::new()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(EPERM),
        target_arch()?,
    )
    .map_err(err)?;
    Ok(vec![filter.try_into().map_err(err)?])
}

/// Refuses every x32 system call (numbers with bit 30 set), which a filter keyed on x86-64
/// numbers would otherwise let through; any other architecture kills the process.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    use seccompiler::sock_filter;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JMP_JEQ_K: u16 = 0x05 | 0x10;
    const JMP_JGE_K: u16 = 0x05 | 0x30;
    const RET_K: u16 = 0x06;
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        op(JMP_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        op(RET_K, 0, 0, 0x8000_0000), // SECCOMP_RET_KILL_PROCESS
        op(LD_W_ABS, 0, 0, 0),        // seccomp_data.nr
        op(JMP_JGE_K, 0, 1, X32_SYSCALL_BIT),
        op(RET_K, 0, 0, 0x0005_0000 | EPERM), // SECCOMP_RET_ERRNO
        op(RET_K, 0, 0, 0x7fff_0000),         // SECCOMP_RET_ALLOW
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn the_filters_compile_for_this_machine() {
        let opener = opener_filter().expect("opener filter");
        assert!(!opener.is_empty() && opener.iter().all(|p| !p.is_empty() && p.len() < 4096));
        let worker = worker_filter().expect("worker filter");
        assert!(!worker.is_empty());
        // TIOCSTI and TIOCLINUX are not on the allow list.
        let allowed = allowed_ioctls();
        assert!(!allowed.contains(&(libc::TIOCSTI as u64)));
        assert!(!allowed.contains(&(libc::TIOCLINUX as u64)));
    }

    #[test]
    fn the_executable_lists_this_program_and_its_loader() {
        let exe = Executable::current().expect("executable");
        assert!(exe.program.is_file());
        assert!(
            exe.mapped.iter().any(|p| p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("ld-"))),
            "{:?}",
            exe.mapped
        );
    }

    #[test]
    fn the_summary_says_what_is_in_force_in_both_languages() {
        let status = SandboxStatus {
            landlock: Some("V6".into()),
            filesystem: true,
            network: true,
            scoped: true,
            partial: false,
            seccomp: true,
            network_namespace: NetworkNamespace::New,
        };
        assert!(status.is_sufficient());
        assert_eq!(
            status.summary(Lang::En),
            "active (Landlock V6: files, network, sockets and signals; seccomp: no sockets, \
             terminal ioctls restricted; network namespace: new, empty)"
        );
        assert!(status
            .summary(Lang::Es)
            .starts_with("activo (Landlock V6: archivos, red"));
        let weak = SandboxStatus {
            seccomp: false,
            ..status
        };
        assert!(!weak.is_sufficient(), "--require-sandbox needs seccomp too");
        assert!(weak.summary(Lang::En).starts_with("NOT fully active"));
    }
}
