//! Promises kept under attack: each test performs an attack a hostile review of the gateway
//! carried out against the release binaries, and asserts the promise it broke. Figures are
//! printed; run with `--nocapture` to see them.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

/// Every timestamp of one file or directory, in seconds (with nanoseconds) since the epoch.
#[derive(Debug, Clone)]
struct Times {
    path: PathBuf,
    inode: u64,
    atime: f64,
    mtime: f64,
    ctime: f64,
    btime: Option<f64>,
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// statx of everything under `dir`, `dir` itself included.
fn all_times(dir: &Path) -> Vec<Times> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue; // removed meanwhile
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("ls") {
                stack.push(entry.expect("entry").path());
            }
        }
        out.push(Times {
            path: path.clone(),
            inode: meta.ino(),
            atime: meta.atime() as f64 + meta.atime_nsec() as f64 / 1e9,
            mtime: meta.mtime() as f64 + meta.mtime_nsec() as f64 / 1e9,
            ctime: meta.ctime() as f64 + meta.ctime_nsec() as f64 / 1e9,
            btime: meta.created().ok().map(secs),
        });
    }
    out
}

fn sealed_message(n: u8) -> Vec<u8> {
    sealed(&vec![n; 40_000])
}

/// Regression: birth times and inode numbers dated every submission, the index's files carried
/// the time of the last write, and after kill -9 a restart kept the exact change time.
#[test]
fn a_seized_data_dir_dates_no_submission_finer_than_its_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "[store]\nsweep_secs = 2\n";
    let gateway = Gateway::start_with(dir.path(), "plain-http", extra);
    let data = gateway.data_dir.clone();
    std::thread::sleep(Duration::from_millis(500));
    let spares: HashSet<u64> = std::fs::read_dir(data.join("pool"))
        .expect("pool")
        .map(|e| e.expect("entry").metadata().expect("meta").ino())
        .collect();
    let first = secs(SystemTime::now());
    let mut arrivals = Vec::new();
    let mut ids = Vec::new();
    for n in 0..3u8 {
        if n > 0 {
            std::thread::sleep(Duration::from_secs(2));
        }
        let (status, body) = post(
            &gateway.url,
            &sealed_message(n),
            Some("application/pgp-encrypted"),
        );
        assert_eq!(status, 201, "{body}");
        arrivals.push(secs(SystemTime::now()));
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    let last = secs(SystemTime::now());
    // Two sweep intervals and a little more.
    std::thread::sleep(Duration::from_millis(4500));
    let times = all_times(&data);
    check_no_arrival_is_dated(&times, first, last);
    // Each ciphertext lives in a spare that existed before the first arrival.
    for id in &ids {
        let meta =
            std::fs::metadata(data.join("sealed").join(format!("{id}.pgp"))).expect("sealed");
        assert!(
            spares.contains(&meta.ino()),
            "{id} was written into an inode made after the store opened"
        );
    }
    eprintln!(
        "timestamps: {} files and directories checked; arrivals at +{:.1} s, +{:.1} s, +{:.1} s; none dated",
        times.len(),
        arrivals[0] - first,
        arrivals[1] - first,
        arrivals[2] - first
    );

    // kill -9 right after a fourth submission, before any sweep can run, then restart.
    let (status, _) = post(
        &gateway.url,
        &sealed_message(9),
        Some("application/pgp-encrypted"),
    );
    assert_eq!(status, 201);
    let fourth = secs(SystemTime::now());
    gateway.kill9();
    let restarted = secs(SystemTime::now());
    let gateway = Gateway::start_with(dir.path(), "plain-http", "");
    // The default sweep interval is a minute; the sweep right after a start must not wait for it.
    std::thread::sleep(Duration::from_secs(3));
    let times = all_times(&data);
    for t in &times {
        assert!(
            t.ctime > restarted,
            "{}: change time {:.3} survived the restart (fourth arrival {:.3})",
            t.path.display(),
            t.ctime,
            fourth
        );
    }
    check_no_arrival_is_dated(&times, first, fourth);
    gateway.stop();
}

/// No timestamp of any file falls between the first and the last arrival (atime, mtime and btime
/// come from before, from day starts, or from a sweep after), and every change time after the
/// arrivals is the same moment, one sweep.
fn check_no_arrival_is_dated(times: &[Times], first: f64, last: f64) {
    let mut problems = Vec::new();
    let mut later_ctimes = Vec::new();
    for t in times {
        for (what, value) in [
            ("atime", Some(t.atime)),
            ("mtime", Some(t.mtime)),
            ("ctime", Some(t.ctime)),
            ("btime", t.btime),
        ] {
            let Some(v) = value else { continue };
            if v >= first - 0.05 && v <= last + 0.05 {
                problems.push(format!("{} {what} {v:.3}", t.path.display()));
            }
            if what == "atime" || what == "mtime" {
                // Day starts and the epoch only, or times from before the arrivals.
                if v > last && v % 86_400.0 != 0.0 {
                    problems.push(format!(
                        "{} {what} {v:.3} is not a day start",
                        t.path.display()
                    ));
                }
            }
        }
        if t.ctime > last {
            later_ctimes.push(t.ctime);
        }
    }
    assert!(
        problems.is_empty(),
        "arrival window {first:.3}..{last:.3}:\n{}",
        problems.join("\n")
    );
    let spread = later_ctimes.iter().cloned().fold(f64::MIN, f64::max)
        - later_ctimes.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        spread < 1.0,
        "change times after the arrivals spread over {spread:.3} s"
    );
}
