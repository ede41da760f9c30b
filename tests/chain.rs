//! The chain of accepted submissions, as the reviewers see it (`docs/trust-v1.md`, part 2):
//! real reports sent with `resguardo-submit` to the real gateway, exported with
//! `resguardo-gateway export`, opened with `resguardo-review open`. Between exports the store is
//! changed the way an adversary with the disk would (the store's test-only tamper helpers, run
//! while the gateway is stopped); `open` must name the numbers concerned and exit 5.

use std::path::Path;
use std::process::{Command, Output};

use resguardo::store::{StoreOptions, SubmissionStore};
use resguardo::submission::{SubmissionId, UtcDay};

use crate::common::*;

/// Sends one real report; returns its id.
fn report(gateway: &Gateway, dir: &Path, text: &str) -> SubmissionId {
    let message = dir.join("message.txt");
    std::fs::write(&message, text).expect("write");
    let out = run(Command::new(submit_bin())
        .args(["--server", &gateway.url, "--message"])
        .arg(&message)
        .args(["--field", "what_happened=threat", "--no-replies"]));
    assert!(out.status.success(), "submit: {}", stderr(&out));
    stdout(&out)
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no id in {:?}", stdout(&out)))
}

fn with_store<T>(data_dir: &Path, work: impl FnOnce(&SubmissionStore) -> T) -> T {
    let (store, _) = SubmissionStore::open(data_dir, StoreOptions::default()).expect("store");
    work(&store)
}

fn export_to(data_dir: &Path, bundle: &Path) {
    assert!(!export(data_dir, bundle).is_empty(), "nothing exported");
}

fn open(bundle: &Path, out: &Path) -> Output {
    open_as_demo_reviewer(bundle, out)
}

/// Sends `n` reports through a gateway started on `dir`, then stops it.
fn send(dir: &Path, n: usize, from: usize) -> Vec<SubmissionId> {
    let gateway = Gateway::start(dir);
    let ids = (from..from + n)
        .map(|i| report(&gateway, dir, &format!("report {i}")))
        .collect();
    gateway.stop();
    ids
}

/// A gateway's first `n` reports, exported as `b1.tar` and opened into `reports/` (no problem);
/// returns the data and reports folders.
fn first_bundle_opened(dir: &Path, n: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("data");
    let reports = dir.join("reports");
    send(dir, n, 0);
    let b1 = dir.join("b1.tar");
    export_to(&data, &b1);
    let o = open(&b1, &reports);
    assert!(o.status.success(), "{}", stderr(&o));
    (data, reports)
}

#[test]
fn a_normal_run_with_purges_and_retention_flags_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let reports = dir.path().join("reports");
    send(dir.path(), 3, 0);
    let b1 = dir.path().join("b1.tar");
    export_to(&data, &b1);
    let o = open(&b1, &reports);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Log: numbers 1–3 checked; 3 arrived once; nothing missing"),
        "{}",
        stdout(&o)
    );
    // Purge what was opened (the receipt open wrote), then more reports, one of which retention
    // deletes before any export.
    let receipt = std::fs::read_dir(&reports)
        .expect("reports")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.to_string_lossy().contains("open-receipt-")
                && p.extension().is_some_and(|e| e == "json")
        })
        .expect("receipt");
    let purged = purge(&data, &b1, &receipt);
    assert!(purged.status.success(), "{}", stderr(&purged));
    send(dir.path(), 1, 3);
    with_store(&data, |store| {
        let later = UtcDay::from_days_since_epoch(UtcDay::today().days_since_epoch() + 10);
        assert_eq!(
            store
                .apply_retention(later, 5, 0)
                .expect("retention")
                .deleted,
            1
        );
    });
    send(dir.path(), 2, 4);
    let b2 = dir.path().join("b2.tar");
    export_to(&data, &b2);
    let o = open(&b2, &reports);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("Log: numbers 1–6 checked; 5 arrived once; 1 deleted unexported by retention (4); nothing missing"),
        "{out}"
    );
    assert!(!stderr(&o).contains("LOG PROBLEM"), "{}", stderr(&o));
    // The registry keeps it: `registry chain` agrees and exits 0.
    let status = run(Command::new(review_bin())
        .args(["registry", "chain", "--reports"])
        .arg(&reports));
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(
        stdout(&status).contains("numbers 1–6: 5 arrived; not yet covered: -"),
        "{}",
        stdout(&status)
    );
}

#[test]
fn a_submission_deleted_from_the_store_between_two_exports_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, reports) = first_bundle_opened(dir.path(), 2);
    let ids = send(dir.path(), 3, 2);
    // Number 4 disappears from the disk: its record and its ciphertext.
    with_store(&data, |store| store.tamper_forget(&ids[1]).expect("forget"));
    let b2 = dir.path().join("b2.tar");
    export_to(&data, &b2);
    let o = open(&b2, &reports);
    assert_eq!(o.status.code(), Some(5), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("LOG PROBLEM: number 4: accepted, then lost"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("at numbers 4"), "{}", stderr(&o));
    // The other two opened all the same.
    assert!(reports.join(ids[0].to_string()).is_dir());
    assert!(reports.join(ids[2].to_string()).is_dir());
    // And a later `registry chain` still lists it.
    let status = run(Command::new(review_bin())
        .args(["registry", "chain", "--reports"])
        .arg(&reports));
    assert_eq!(status.status.code(), Some(5));
    assert!(stdout(&status).contains("number 4"), "{}", stdout(&status));
}

#[test]
fn an_altered_ciphertext_is_named_by_its_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let reports = dir.path().join("reports");
    let ids = send(dir.path(), 3, 0);
    // Another sealed message for the reviewers in place of number 2, file and record alike:
    // the store's own checks pass, the export goes out.
    let other = sealed(b"not what the reporter sent");
    with_store(&data, |store| {
        store
            .tamper_replace_ciphertext(&ids[1], &other)
            .expect("replace")
    });
    let b1 = dir.path().join("b1.tar");
    export_to(&data, &b1);
    let o = open(&b1, &reports);
    assert_eq!(o.status.code(), Some(5), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "LOG PROBLEM: number 2 ({}): its ciphertext is not the one the gateway accepted",
            ids[1]
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn reordering_after_an_export_is_caught_at_the_next_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, reports) = first_bundle_opened(dir.path(), 2);
    send(dir.path(), 2, 2);
    // A careful adversary swaps numbers 1 and 3 and recomputes every hash: the new segment adds
    // up by itself, but no longer meets the head the first bundle showed.
    with_store(&data, |store| {
        store.tamper_rewrite_chain_swap(1, 3).expect("swap")
    });
    let b2 = dir.path().join("b2.tar");
    export_to(&data, &b2);
    let o = open(&b2, &reports);
    assert_eq!(o.status.code(), Some(5), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("LOG PROBLEM: number 2: the log was rewritten at or before it"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_bundle_opened_before_the_one_before_it_shows_a_gap_that_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let reports = dir.path().join("reports");
    send(dir.path(), 2, 0);
    let b1 = dir.path().join("b1.tar");
    export_to(&data, &b1);
    // Delivered, so the next export makes a new batch (b1 is not given again).
    with_store(&data, |store| {
        let batch = store.batches().expect("batches")[0].batch;
        store.complete_export(&batch).expect("delivered");
    });
    send(dir.path(), 1, 2);
    let b2 = dir.path().join("b2.tar");
    export_to(&data, &b2);
    let o = open(&b2, &reports);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(
            "not yet in any bundle opened here (open those bundles, or ask the operator): 1–2"
        ),
        "{}",
        stdout(&o)
    );
    let o = open(&b1, &reports);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Log: numbers 1–3 checked; 3 arrived once; nothing missing"),
        "{}",
        stdout(&o)
    );
}

/// Regression (hostile review): the number in the 201 tells any submitter how many arrived
/// before; `[store] number_in_answer = false` keeps it out of every answer, and the chain goes
/// on all the same.
#[test]
fn the_number_can_be_kept_out_of_the_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sealed_report = sealed(b"not a payload, only a sealed message");
    for (told, extra) in [(true, ""), (false, "[store]\nnumber_in_answer = false\n")] {
        let run_dir = dir.path().join(if told { "told" } else { "not-told" });
        std::fs::create_dir_all(&run_dir).expect("dir");
        let gateway = Gateway::start_with(&run_dir, "plain-http", extra);
        for n in 1..=2u64 {
            let (status, body) = post(
                &gateway.url,
                &sealed_report,
                Some("application/pgp-encrypted"),
            );
            assert_eq!(status, 201, "{body}");
            assert!(body["id"].is_string(), "{body}");
            if told {
                assert_eq!(body["sequence"], n, "{body}");
            } else {
                assert!(body.get("sequence").is_none(), "{body}");
            }
        }
        let data = gateway.data_dir.clone();
        gateway.stop();
        with_store(&data, |store| {
            assert_eq!(store.chain_head().expect("head").sequence, 2)
        });
    }
}

/// Regression (hostile review): a history shown to the couriers' watch and another put in the
/// bundles went unnoticed; the head the watch verified, carried to `open`, catches it.
#[test]
fn a_head_the_watch_saw_catches_a_history_rewritten_for_the_bundles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let reports = dir.path().join("reports");
    send(dir.path(), 3, 0);
    // What the courier's watch verified (its state file keeps exactly this).
    let seen = with_store(&data, |store| store.chain_head().expect("head"));
    let state = dir.path().join("watch-state.json");
    std::fs::write(
        &state,
        serde_json::json!({ "chain_head": seen, "other": "state" }).to_string(),
    )
    .expect("state");
    with_store(&data, |store| {
        store.tamper_rewrite_chain_swap(1, 2).expect("swap")
    });
    let b1 = dir.path().join("b1.tar");
    export_to(&data, &b1);
    let o = open_with_seen_head(&b1, &reports, &state.to_string_lossy());
    assert_eq!(o.status.code(), Some(5), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("LOG PROBLEM: number 3: the log was rewritten at or before it"),
        "{}",
        stderr(&o)
    );
    // The same head as NUMBER:HASH on an honest bundle: no problem.
    let honest = tempfile::tempdir().expect("tempdir");
    send(honest.path(), 2, 0);
    let data = honest.path().join("data");
    let head = with_store(&data, |store| store.chain_head().expect("head"));
    let b = honest.path().join("b.tar");
    export_to(&data, &b);
    let o = open_with_seen_head(
        &b,
        &honest.path().join("reports"),
        &format!("{}:{}", head.sequence, hex::encode(head.hash)),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Log: numbers 1–2 checked; 2 arrived once; nothing missing"),
        "{}",
        stdout(&o)
    );
    // A malformed value is a usage error before anything is opened.
    let o = open_with_seen_head(&b, &honest.path().join("r2"), "12:not-a-hash");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

fn open_with_seen_head(bundle: &Path, out: &Path, seen: &str) -> Output {
    open_as_demo_reviewer_with(bundle, out, &["--seen-head", seen])
}
