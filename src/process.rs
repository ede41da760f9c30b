//! What the running gateway does to its own process, so plaintext that passes through its memory
//! (forms sealed on arrival) cannot be read back out of it afterwards.
//!
//! - Freed memory is overwritten with zeros before it is given back (the binaries install
//!   [`ZeroingAllocator`] as their global allocator): request buffers, form answers, attachment
//!   chunks and the sealing machinery's buffers leave nothing behind once dropped. This costs a
//!   write of every freed byte; `cargo bench --bench gateway` measures it.
//! - No core dumps (RLIMIT_CORE 0), and the process is not dumpable: another process running as
//!   the same user can neither ptrace it nor read `/proc/<pid>/mem`. (Root still can; the
//!   systemd unit also forbids swap for the service, `MemorySwapMax=0`.)

use std::io;

/// The global allocator of the binaries: the system allocator, zeroing memory when it is freed.
pub type ZeroingAllocator = zalloc::ZeroizingAlloc<std::alloc::System>;

/// The allocator value for `#[global_allocator]`.
pub const ZEROING_ALLOCATOR: ZeroingAllocator = zalloc::ZeroizingAlloc(std::alloc::System);

/// Overwrites the stack below the caller with zeros (best effort). Buffers that functions keep on
/// the stack (`io::copy`'s, a cipher's) are not freed memory, so the zeroing allocator never sees
/// them; a thread that handled plaintext calls this when it is done, and the area it clears
/// covers the frames that the work below it used.
#[inline(never)]
pub fn scrub_stack() {
    let mut area = [0u8; 256 * 1024];
    zeroize::Zeroize::zeroize(&mut area[..]);
    std::hint::black_box(&area);
}

/// Forbids core dumps and makes the process non-dumpable.
pub fn forbid_dumps() -> io::Result<()> {
    use rustix::process::{
        getrlimit, set_dumpable_behavior, setrlimit, DumpableBehavior, Resource, Rlimit,
    };
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    // Under the systemd unit the limit is already 0 (LimitCORE=0) and setrlimit is filtered out.
    if getrlimit(Resource::Core) != none {
        setrlimit(Resource::Core, none)?;
    }
    set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_are_forbidden_in_a_child_process() {
        // Done in a forked helper thread would change this test process: check in a child.
        let exe = std::env::current_exe().expect("exe");
        if std::env::var_os("RESGUARDO_DUMP_CHILD").is_some() {
            forbid_dumps().expect("forbid");
            let limit = rustix::process::getrlimit(rustix::process::Resource::Core);
            assert_eq!(limit.current, Some(0));
            assert_eq!(
                rustix::process::dumpable_behavior().expect("read"),
                rustix::process::DumpableBehavior::NotDumpable
            );
            return;
        }
        let status = std::process::Command::new(exe)
            .args([
                "--exact",
                "process::tests::dumps_are_forbidden_in_a_child_process",
                "--nocapture",
            ])
            .env("RESGUARDO_DUMP_CHILD", "1")
            .status()
            .expect("child");
        assert!(status.success());
    }
}
