//! Anonymous replies (issue 12): what a check-in costs.
//!
//! - receipt derivation on this machine (parse the 12 words, derive locator and lock key);
//! - check-in with 20 answers waiting, over loopback TLS, with the proof of work on: from the
//!   receipt to every answer decrypted and verified (`GatewayClient::check_in`, what
//!   `resguardo-submit check` does), against a baseline measured in the same run: one
//!   `GET /api/v1/keys` round trip;
//! - the cost of one guess at a receipt: a proof of work at the gateway's calm difficulty, and the
//!   check-in budget (`checks_per_minute`, 120 by default) that bounds guesses whatever the CPU.
//!
//! `cargo bench --bench replies` (about half a minute).

use std::time::{Duration, Instant};

use resguardo::replies::{seal_reply, Receipt, ReplyPlaintext};
use resguardo::store::{StoreOptions, SubmissionStore};
use resguardo::submit::{
    seal_report, start_conversation, Conversation, GatewayClient, ReportInput, Trust,
};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: they must build, but
    // measuring is for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("replies benchmark: built; run `cargo bench --bench replies` to measure");
        return;
    }
    let dir = resguardo::testing::bench_scratch_dir();
    let mut gateway = resguardo::testing::BenchGateway::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_resguardo-gateway")),
        dir.path(),
        "[proof_of_work]\nenabled = true\n",
    );
    let client =
        GatewayClient::new(&gateway.url, Trust::CaCert(gateway.ca.clone()), None).expect("client");
    let keys = client.reviewer_keys().expect("keys");

    // A report that starts a conversation, as resguardo-submit sends it.
    let message = dir.path().join("m.txt");
    std::fs::write(&message, "Nos amenazaron.").expect("message");
    let started = start_conversation(&keys.keyring).expect("conversation");
    let sealed = seal_report(
        &keys,
        &ReportInput {
            message,
            attachments: vec![],
            language: "es".into(),
            urgent: false,
            fields: vec![],
            conversation: Some(started.reference.clone()),
        },
    )
    .expect("seal");
    client
        .submit_with(
            sealed.file,
            None,
            &Conversation::Start(started.start.clone()),
        )
        .expect("submit");
    let receipt = started.receipt;
    let words = receipt.words().join(" ");

    // 20 answers signed by demo reviewer 1, put in the store while the gateway is stopped.
    use sequoia_openpgp::parse::Parse;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let reviewer = sequoia_openpgp::Cert::from_bytes(
        &std::fs::read(repo.join("keys-example/demo-reviewer-1.sec.asc")).expect("key"),
    )
    .expect("cert");
    let pass = std::fs::read_to_string(repo.join("keys-example/demo-reviewer-1.passphrase"))
        .expect("pass");
    let signer = reviewer
        .keys()
        .with_policy(&sequoia_openpgp::policy::StandardPolicy::new(), None)
        .secret()
        .for_signing()
        .next()
        .expect("signing subkey")
        .key()
        .clone()
        .decrypt_secret(&pass.trim_end_matches('\n').into())
        .expect("unlock")
        .into_keypair()
        .expect("pair");
    let reply_cert = sequoia_openpgp::Cert::from_bytes(
        started
            .reference
            .reply_key
            .as_deref()
            .expect("reply key")
            .as_bytes(),
    )
    .expect("reply cert");
    gateway.stop();
    {
        let (store, _) =
            SubmissionStore::open(&gateway.data_dir, StoreOptions::default()).expect("store");
        for n in 0..20 {
            let reply = ReplyPlaintext {
                schema: resguardo::replies::message::REPLY_SCHEMA.into(),
                conversation: receipt.locator(),
                sequence: n + 1,
                day: resguardo::submission::UtcDay::today(),
                language: "es".into(),
                message: format!("Respuesta {n}: pedimos protección. {}", "x".repeat(500)),
                attachments: vec![],
            };
            let sealed = seal_reply(
                &reply,
                signer.clone(),
                &[reply_cert.clone(), reviewer.clone()],
            )
            .expect("reply");
            store.add_reply(&receipt.locator(), &sealed).expect("add");
        }
    }
    gateway.restart();
    let client =
        GatewayClient::new(&gateway.url, Trust::CaCert(gateway.ca.clone()), None).expect("client");

    // Receipt derivation.
    let rounds = 10_000;
    let start = Instant::now();
    for _ in 0..rounds {
        let r = Receipt::parse(&words).expect("words");
        std::hint::black_box((r.locator(), r.lock_key().expose()[0]));
    }
    let derive = start.elapsed() / rounds;

    // Baseline and check-in, 7 runs each.
    let mut baseline = Vec::new();
    let mut checkin = Vec::new();
    let mut pow = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        client.reviewer_keys().expect("keys");
        baseline.push(t.elapsed());
        let t = Instant::now();
        let replies = client.check_in(&receipt).expect("check-in").replies;
        checkin.push(t.elapsed());
        assert_eq!(replies.len(), 20);
        assert!(replies.iter().all(|r| r.read.verified.is_ok()));
        let t = Instant::now();
        client.proof_of_work().expect("pow");
        pow.push(t.elapsed());
    }
    let (baseline, checkin, pow) = (median(baseline), median(checkin), median(pow));
    println!("Resguardo replies: check-in with 20 answers over loopback TLS, proof of work on");
    println!(
        "  receipt derivation (parse 12 words, HKDF ×2): {:.1} µs",
        derive.as_secs_f64() * 1e6
    );
    println!(
        "  check-in, receipt to 20 verified answers: {:.0} ms (goal <= 2 s)",
        checkin.as_secs_f64() * 1e3
    );
    println!(
        "  baseline in the same run, GET /api/v1/keys: {:.1} ms; ratio {:.1}x",
        baseline.as_secs_f64() * 1e3,
        checkin.as_secs_f64() / baseline.as_secs_f64()
    );
    println!("  one guess at a receipt online: a proof of work of {:.0} ms here, and the check-in budget", pow.as_secs_f64() * 1e3);
    println!("    (120 a minute by default): 1,000 guesses take at least {:.1} min, and a 128-bit receipt", 1000.0 / 120.0);
    println!("    needs about 2^127 of them");
}
