//! Trusting the server less (issue 14, `docs/trust-v1.md`): what the checks cost, each against a
//! baseline measured in the same run.
//!
//! - a bundle's part of the chain: `ChainSegment::verify` of 100,000 entries (every leaf and
//!   hash recomputed), against hashing the same number of bytes with one SHA-256 stream;
//! - `open`'s check against the registry (`Registry::check_chain`) of a 10,000-entry segment
//!   and its submissions, on a fresh registry and then a second bundle on top, against the
//!   registry recording nothing but opening itself;
//! - a signed key list (2 reviewers, 1 courier): `SignedKeyList::parse` + `verify`, what every
//!   pinned client and the watch do, against loading the same certificates without a list.
//!
//! `cargo bench --bench trust` (about a minute). `TRUST_BENCH_ENTRIES` changes the segment size.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use resguardo::bundle::BundleEntry;
use resguardo::keyring::{CourierKeyring, KeyProfile, ReviewerKeyring};
use resguardo::registry::Registry;
use resguardo::submission::{BatchId, Sealing, SubmissionId, UtcDay};
use resguardo::trust::chain::{
    next_hash, ChainEntry, ChainPoint, ChainSegment, Fate, SegmentEntry,
};
use resguardo::trust::keylist::{
    entry_for, sign_key_list, KeyList, PageManifest, SignedKeyList, LIST_FORMAT,
};
use sequoia_openpgp::crypto::Password;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A segment of entries `from..=to` after `base`, every one carried by the bundle.
fn segment(base: ChainPoint, from: u64, to: u64) -> (ChainSegment, Vec<BundleEntry>) {
    let mut hash = base.hash;
    let mut entries = Vec::new();
    let mut carried = Vec::new();
    for n in from..=to {
        let mut id = [0x5a; 16];
        id[..8].copy_from_slice(&n.to_be_bytes());
        let entry = ChainEntry {
            sequence: n,
            id: SubmissionId::from_bytes(id),
            sha256: hex::encode([id, [0xab; 16]].concat()),
            day: UtcDay::from_days_since_epoch(20_400),
        };
        hash = next_hash(&hash, &entry.leaf().expect("leaf"));
        carried.push(BundleEntry {
            id: entry.id,
            day: entry.day,
            size: 4096,
            sha256: entry.sha256.clone(),
            sealing: Sealing::BySender,
        });
        entries.push(SegmentEntry {
            entry,
            fate: Fate::InBundle,
        });
    }
    let segment = ChainSegment {
        base,
        head: ChainPoint { sequence: to, hash },
        entries,
    };
    (segment, carried)
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: they must build, but
    // measuring is for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("trust benchmark: built; run `cargo bench --bench trust` to measure");
        return;
    }
    let n: u64 = std::env::var("TRUST_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    // 1. Verifying a segment.
    let (big, _) = segment(ChainPoint::GENESIS, 1, n);
    let verify = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                assert_eq!(big.verify().expect("verifies").len() as u64, n);
                t.elapsed()
            })
            .collect(),
    );
    // The same bytes SHA-256 sees (two compressions per entry, ~150 bytes), in one stream.
    let bytes = vec![7u8; 150 * n as usize];
    let baseline = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &bytes));
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "segment verify, {n} entries: {:.1} ms ({:.2} µs per entry); one SHA-256 stream over the \
         same bytes: {:.1} ms; ratio {:.2}",
        ms(verify),
        verify.as_secs_f64() * 1e6 / n as f64,
        ms(baseline),
        verify.as_secs_f64() / baseline.as_secs_f64()
    );

    // 2. open's check against the registry.
    let dir = resguardo::testing::bench_scratch_dir();
    let m = (n / 10).max(1);
    let (first, first_carried) = segment(ChainPoint::GENESIS, 1, m);
    let (second, second_carried) = segment(first.head, m + 1, 2 * m);
    let all = |c: &[BundleEntry]| -> HashSet<SubmissionId> { c.iter().map(|e| e.id).collect() };
    let open_only = {
        let t = Instant::now();
        drop(Registry::in_folder(dir.path()).expect("registry"));
        t.elapsed()
    };
    let mut registry = Registry::in_folder(dir.path()).expect("registry");
    let t = Instant::now();
    let r = registry
        .check_chain(
            &BatchId::from_bytes([1; 16]),
            Some(&first),
            &first_carried,
            &all(&first_carried),
        )
        .expect("check");
    let check_first = t.elapsed();
    assert!(r.problems.is_empty());
    let t = Instant::now();
    let r = registry
        .check_chain(
            &BatchId::from_bytes([2; 16]),
            Some(&second),
            &second_carried,
            &all(&second_carried),
        )
        .expect("check");
    let check_second = t.elapsed();
    assert!(r.problems.is_empty() && r.arrived == 2 * m);
    let reopen = {
        let t = Instant::now();
        drop(Registry::in_folder(dir.path()).expect("registry"));
        t.elapsed()
    };
    println!(
        "registry check of a {m}-entry bundle: {:.1} ms on a fresh registry, {:.1} ms for the \
         next {m} on top ({:.1} µs per entry); opening the registry alone: {:.1} ms fresh, \
         {:.1} ms with {} entries",
        ms(check_first),
        ms(check_second),
        check_second.as_secs_f64() * 1e6 / m as f64,
        ms(open_only),
        ms(reopen),
        2 * m
    );

    // 3. A signed key list.
    let org = resguardo::testing::org_key("Bench organisation");
    let reviewers = [
        resguardo::testing::reviewer_key("Bench reviewer 1", KeyProfile::Compatible),
        resguardo::testing::reviewer_key("Bench reviewer 2", KeyProfile::Compatible),
    ];
    let courier = resguardo::testing::courier_key("Bench courier").strip_secret_key_material();
    let keyring = resguardo::testing::keyring(&[&reviewers[0], &reviewers[1]]);
    let couriers = CourierKeyring::from_certs(std::path::Path::new("bench"), vec![courier.clone()])
        .expect("couriers");
    let today = UtcDay::today();
    let list = KeyList {
        format: LIST_FORMAT.into(),
        organisation: org.fingerprint().to_hex(),
        version: 1,
        issued: today,
        expires: UtcDay::from_days_since_epoch(today.days_since_epoch() + 90),
        reviewers: keyring.reviewers().iter().map(entry_for).collect(),
        couriers: couriers.couriers().iter().map(entry_for).collect(),
        page: PageManifest::embedded(),
    };
    let signed = sign_key_list(&org, Some(&Password::from("test")), &list).expect("sign");
    let bytes = serde_json::to_vec(&signed).expect("json");
    let fingerprint = org.fingerprint();
    let verify_list = median(
        (0..20)
            .map(|_| {
                let t = Instant::now();
                let parsed = SignedKeyList::parse(&bytes).expect("parse");
                parsed.verify(Some(&fingerprint), today).expect("verify");
                t.elapsed()
            })
            .collect(),
    );
    let certs_only = median(
        (0..20)
            .map(|_| {
                let t = Instant::now();
                ReviewerKeyring::from_certs(
                    std::path::Path::new("bench"),
                    reviewers
                        .iter()
                        .map(|c| c.clone().strip_secret_key_material())
                        .collect(),
                )
                .expect("keyring");
                CourierKeyring::from_certs(std::path::Path::new("bench"), vec![courier.clone()])
                    .expect("couriers");
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "signed key list ({} bytes, 2 reviewers, 1 courier, {} page files): parse + verify \
         {:.2} ms; validating the same certificates alone {:.2} ms; ratio {:.2}",
        bytes.len(),
        list.page.files.len(),
        ms(verify_list),
        ms(certs_only),
        verify_list.as_secs_f64() / certs_only.as_secs_f64()
    );
}
