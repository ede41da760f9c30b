//! Decompression bombs against `resguardo-review open` (issue 9, item 8): a small compressed
//! submission that expands far beyond its size, and a bundle of several, must neither exhaust the
//! offline machine's memory nor fill its disk. Peak memory is the peak RSS of the `open` process
//! and every process it waited for (the kernel's `ru_maxrss` from `wait4`).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use resguardo::submission::SubmissionId;

const MIB: u64 = 1024 * 1024;

/// Peak memory allowed for `open` (and its helpers) whatever the input.
const MAX_RSS: u64 = 200 * MIB;

/// A message to both demo reviewers whose compressed literal data expands to `size` bytes of
/// something that is not a tar archive (a line of text, then zeros).
fn compressed_bomb(size: u64) -> Vec<u8> {
    use sequoia_openpgp::serialize::stream::{Compressor, Encryptor, LiteralWriter, Message};
    let keyring = demo_keyring();
    let mut out = Vec::new();
    let m = Message::new(&mut out);
    let m = Encryptor::for_recipients(m, keyring.recipients())
        .build()
        .expect("encryptor");
    let m = Compressor::new(m).build().expect("compressor");
    let mut w = LiteralWriter::new(m).build().expect("literal");
    let head = b"not an archive, just a lot of nothing\n";
    w.write_all(head).expect("write");
    let zeros = vec![0u8; MIB as usize];
    let mut left = size - head.len() as u64;
    while left > 0 {
        let n = left.min(MIB) as usize;
        w.write_all(&zeros[..n]).expect("write");
        left -= n as u64;
    }
    w.finalize().expect("finalize");
    out
}

fn make_bundle(path: &Path, sealed: &[Vec<u8>]) -> Vec<SubmissionId> {
    let file = std::fs::File::create(path).expect("create");
    resguardo::testing::write_bundle_of(file, sealed).1
}

/// Bytes of every regular file below `dir` (0 if it does not exist).
fn bytes_below(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// What a measured run of `open` did.
struct Measured {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// Peak RSS of the process tree (the largest process), in bytes.
    max_rss: u64,
    /// The most bytes seen below `--out` while it ran.
    max_out_bytes: u64,
    /// Whether fd 0 of the process was seen pointing at /dev/null while it ran.
    stdin_was_dev_null: bool,
}

/// The peak RSS (VmHWM) of `pid` and of every process below it, in bytes, as /proc shows them now.
/// (Not `wait4`'s `ru_maxrss`: a child started from a large process — this test binary runs
/// every area's tests at once — inherits that process's high-water mark at exec, so it would
/// measure the test, not `open`.)
fn tree_hwm(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
        .map(tree_hwm)
        .fold(own, u64::max)
}

/// Runs `open` with stdin as a pipe we keep open, watching `--out`, fd 0 and the peak RSS of
/// `open` and its parser processes (sampled every 10 ms) while it runs.
fn open_measured(bundle: &Path, out: &Path, extra: &[&str]) -> Measured {
    let mut child = Command::new(review_bin())
        .env("RESGUARDO_LANG", "en")
        .arg("open")
        .arg(bundle)
        .arg("--key")
        .arg(demo_sec(1))
        .arg("--passphrase-file")
        .arg(demo_passphrase(1))
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn open");
    let pid = child.id();
    let _stdin = child.stdin.take();
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let done = Arc::new(AtomicBool::new(false));
    let max_out = Arc::new(AtomicU64::new(0));
    let max_rss = Arc::new(AtomicU64::new(0));
    let dev_null = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, max_out, max_rss, dev_null) = (
            done.clone(),
            max_out.clone(),
            max_rss.clone(),
            dev_null.clone(),
        );
        let out = out.to_path_buf();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                max_out.fetch_max(bytes_below(&out), Ordering::Relaxed);
                max_rss.fetch_max(tree_hwm(pid), Ordering::Relaxed);
                if let Ok(target) = std::fs::read_link(format!("/proc/{pid}/fd/0")) {
                    if target == Path::new("/dev/null") {
                        dev_null.store(true, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let status = child.wait().expect("wait");
    done.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher");
    Measured {
        code: status.code(),
        stdout: out_reader.join().expect("stdout"),
        stderr: err_reader.join().expect("stderr"),
        max_rss: max_rss.load(Ordering::Relaxed),
        max_out_bytes: max_out.load(Ordering::Relaxed).max(bytes_below(out)),
        stdin_was_dev_null: dev_null.load(Ordering::Relaxed),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// The line `open` prints for a failed submission.
fn failure_line<'a>(stderr: &'a str, id: &SubmissionId) -> &'a str {
    stderr
        .lines()
        .find(|l| l.starts_with(&id.to_string()))
        .unwrap_or_else(|| panic!("no line for {id} in:\n{stderr}"))
}

#[test]
fn a_compressed_non_tar_bomb_is_streamed_to_disk_under_the_bound_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bomb = compressed_bomb(600 * MIB);
    assert!(bomb.len() < 2 * MIB as usize, "{} bytes", bomb.len());
    let good = sealed(b"a short note, encrypted by hand");
    let bundle = dir.path().join("bundle.tar");
    let ids = make_bundle(&bundle, &[bomb, good]);
    let out = dir.path().join("out");

    let m = open_measured(
        &bundle,
        &out,
        &["--max-plaintext", &(512 * MIB).to_string()],
    );
    eprintln!(
        "one bomb: peak RSS {:.1} MiB, at most {:.1} MiB below --out",
        mib(m.max_rss),
        mib(m.max_out_bytes)
    );
    assert_eq!(m.code, Some(1), "{}\n{}", m.stdout, m.stderr);
    assert!(
        failure_line(&m.stderr, &ids[0]).contains("payload over its bound"),
        "{}",
        m.stderr
    );
    assert!(
        !out.join(ids[0].to_string()).exists(),
        "nothing of the bomb"
    );
    assert_eq!(
        std::fs::read(out.join(ids[1].to_string()).join("message.bin")).expect("raw"),
        b"a short note, encrypted by hand"
    );
    assert!(m.max_rss > 5 * MIB, "the samples saw open running");
    assert!(
        m.max_rss < MAX_RSS,
        "peak RSS {:.1} MiB (bound {} MiB)",
        mib(m.max_rss),
        MAX_RSS / MIB
    );
    assert!(m.max_out_bytes <= 512 * MIB + MIB, "{}", m.max_out_bytes);
    assert!(m.stdin_was_dev_null, "stdin is reopened from /dev/null");
    assert!(
        bytes_below(&out) < MIB,
        "the bomb's bytes are gone: {}",
        bytes_below(&out)
    );
}

#[test]
fn a_bundle_of_four_bombs_stays_within_the_bundle_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bomb = compressed_bomb(160 * MIB);
    let bundle = dir.path().join("bundle.tar");
    let ids = make_bundle(&bundle, &[bomb.clone(), bomb.clone(), bomb.clone(), bomb]);
    assert!(std::fs::metadata(&bundle).expect("meta").len() < 4 * MIB);
    let out = dir.path().join("out");
    let bound = 400 * MIB;

    let m = open_measured(
        &bundle,
        &out,
        &[
            "--max-plaintext",
            &(256 * MIB).to_string(),
            "--max-bundle-plaintext",
            &bound.to_string(),
        ],
    );
    eprintln!(
        "four bombs: peak RSS {:.1} MiB, at most {:.1} MiB below --out",
        mib(m.max_rss),
        mib(m.max_out_bytes)
    );
    assert_eq!(m.code, Some(1), "{}\n{}", m.stdout, m.stderr);
    // Two fit in the bundle's bound and open whole; the other two fail, naming the bound.
    for id in &ids[..2] {
        let len = std::fs::metadata(out.join(id.to_string()).join("message.bin"))
            .expect("opened")
            .len();
        assert_eq!(len, 160 * MIB);
    }
    for id in &ids[2..] {
        assert!(
            failure_line(&m.stderr, id).contains("bundle plaintext bound reached"),
            "{}",
            m.stderr
        );
        assert!(!out.join(id.to_string()).exists(), "nothing of {id}");
    }
    assert!(
        m.stderr.contains("--max-bundle-plaintext"),
        "the way out is named: {}",
        m.stderr
    );
    assert!(
        m.max_out_bytes <= bound + MIB,
        "{:.1} MiB written",
        mib(m.max_out_bytes)
    );
    assert!(m.max_rss > 5 * MIB, "the samples saw open running");
    assert!(
        m.max_rss < MAX_RSS,
        "peak RSS {:.1} MiB (bound {} MiB)",
        mib(m.max_rss),
        MAX_RSS / MIB
    );
    let staging: Vec<_> = std::fs::read_dir(&out)
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.file_name())
        .collect();
    assert!(staging.is_empty(), "{staging:?}");
}

/// Free bytes on the file system holding `path`.
fn free_space(path: &Path) -> u64 {
    let s = rustix::fs::statvfs(path).expect("statvfs");
    s.f_bavail * s.f_frsize
}

/// Space is checked before and during writing: the run stops with the reason before `--out`
/// is down to its reserve, leaving whole reports or none, and a run that starts on a nearly full
/// disk opens nothing.
#[test]
fn open_stops_before_the_disk_fills_leaving_whole_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bomb = compressed_bomb(40 * MIB);
    let bundle = dir.path().join("bundle.tar");
    let ids = make_bundle(&bundle, &[bomb.clone(), bomb.clone(), bomb.clone(), bomb]);
    let disk = dir.path().join("disk");
    let _tmpfs = Tmpfs::mount(&disk, "150m");
    let out = disk.join("out");
    let reserve = resguardo::review::open::DISK_RESERVE;

    let done = Arc::new(AtomicBool::new(false));
    let min_free = Arc::new(AtomicU64::new(u64::MAX));
    let watcher = {
        let (done, min_free, disk) = (done.clone(), min_free.clone(), disk.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                min_free.fetch_min(free_space(&disk), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let o = run(Command::new(review_bin())
        .arg("open")
        .arg(&bundle)
        .arg("--key")
        .arg(demo_sec(1))
        .arg("--passphrase-file")
        .arg(demo_passphrase(1))
        .arg("--out")
        .arg(&out));
    done.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    eprintln!(
        "disk test: least free space seen {:.1} MiB (reserve {} MiB)",
        mib(min_free.load(Ordering::Relaxed)),
        reserve / MIB
    );
    assert_eq!(o.status.code(), Some(4), "{stdout}\n{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("resguardo-review: error: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        error.contains("stopped before the disk filled: only ")
            && error.contains("MiB free on --out"),
        "{error}"
    );
    assert!(
        min_free.load(Ordering::Relaxed) + 4 * MIB >= reserve,
        "free space went down to {:.1} MiB",
        mib(min_free.load(Ordering::Relaxed))
    );
    // Two whole reports, the third refused with the reason, the fourth not reached.
    for id in &ids[..2] {
        let len = std::fs::metadata(out.join(id.to_string()).join("message.bin"))
            .expect("whole report")
            .len();
        assert_eq!(len, 40 * MIB);
    }
    assert!(
        failure_line(&stderr, &ids[2]).contains("disk almost full"),
        "{stderr}"
    );
    assert!(!out.join(ids[2].to_string()).exists());
    assert!(!out.join(ids[3].to_string()).exists());
    assert!(stdout.contains("not reached        1"), "{stdout}");
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let manifest = resguardo::bundle::read_manifest(std::io::BufReader::new(
        std::fs::File::open(&bundle).expect("open"),
    ))
    .expect("manifest");
    let receipt = resguardo::bundle::receipt::read(
        &out.join(format!("open-receipt-{}.json", manifest.batch)),
    )
    .expect("the receipt is written even so");
    assert_eq!(receipt.opened, ids[..2].to_vec());
    assert_eq!(receipt.failed.len(), 1);
    assert_eq!(receipt.failed[0].reason, "disk almost full");

    // Started on a disk already down to its reserve: nothing is opened.
    let filler_size = free_space(&disk).saturating_sub(reserve / 2);
    std::fs::write(disk.join("filler"), vec![1u8; filler_size as usize]).expect("fill");
    let out2 = disk.join("out2");
    let o = run(Command::new(review_bin())
        .arg("open")
        .arg(&bundle)
        .arg("--key")
        .arg(demo_sec(1))
        .arg("--passphrase-file")
        .arg(demo_passphrase(1))
        .arg("--out")
        .arg(&out2));
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("stopped before the disk filled"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for id in &ids {
        assert!(!out2.join(id.to_string()).exists());
    }
}
