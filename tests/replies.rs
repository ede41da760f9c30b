//! Anonymous replies (issue 12, `docs/replies-v1.md`) through the real gateway with the real
//! clients: a report sent with a receipt, opened offline, answered with `resguardo-review reply`,
//! pushed by the courier (and imported locally), read with `resguardo-submit check`, continued
//! with a follow-up that the reviewers see threaded; forged replies refused; a wrong receipt
//! answered exactly like an empty conversation; nothing readable on the server.

use std::path::{Path, PathBuf};
use std::process::Command;

use resguardo::replies::Receipt;

use crate::common::*;

const CANARY: &str = "CANARIO-RESPUESTA-7d1f";

fn courier_file(ext: &str) -> PathBuf {
    repo().join(format!("keys-example/demo-courier-1.{ext}"))
}

fn config() -> String {
    format!(
        "[[couriers]]\ncert = \"{}\"\n",
        courier_file("pub.asc").display()
    )
}

fn submit(url: &str, dir: &Path, text: &str, extra: &[&str]) -> std::process::Output {
    let message = dir.join(format!("m-{}.txt", text.len()));
    std::fs::write(&message, text).unwrap();
    run(Command::new(submit_bin())
        .args(["--server", url, "--message"])
        .arg(&message)
        .args(["--field", "what_happened=threat"])
        .args(extra))
}

fn courier(verb: &str, url: &str) -> Command {
    let mut cmd = Command::new(review_bin());
    cmd.args([verb, "--server", url, "--courier-key"])
        .arg(courier_file("sec.asc"))
        .arg("--passphrase-file")
        .arg(courier_file("passphrase"));
    cmd
}

/// Fetches the next batch and opens it with demo reviewer 1 into `out`.
fn fetch_and_open(url: &str, dir: &Path, name: &str, out: &Path) {
    let bundle = dir.join(format!("{name}.tar"));
    let o = run(courier("fetch", url).arg("--out").arg(&bundle));
    assert!(o.status.success(), "fetch: {}", stderr(&o));
    let o = open_as_demo_reviewer(&bundle, out);
    assert!(o.status.success(), "open: {}{}", stdout(&o), stderr(&o));
}

fn check(url: &str, receipt: &Path, save: &Path) -> std::process::Output {
    run(Command::new(submit_bin())
        .args(["check", "--server", url, "--receipt-file"])
        .arg(receipt)
        .arg("--save")
        .arg(save))
}

fn reply(report: &Path, dir: &Path, text: &str, outbox: &Path) -> std::process::Output {
    let message = dir.join("reply.txt");
    std::fs::write(&message, text).unwrap();
    let note = dir.join("nota.txt");
    std::fs::write(&note, "adjunto del equipo").unwrap();
    run(Command::new(review_bin())
        .arg("reply")
        .arg("--report")
        .arg(report)
        .arg("--message")
        .arg(&message)
        .arg("--attach")
        .arg(&note)
        .arg("--key")
        .arg(demo_sec(1))
        .arg("--passphrase-file")
        .arg(demo_passphrase(1))
        .arg("--team")
        .arg(demo_pub(2))
        .arg("--out")
        .arg(outbox))
}

#[test]
fn a_reporter_reads_a_verified_answer_and_adds_a_follow_up_with_only_the_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &config());
    let receipt = dir.path().join("receipt.txt");
    let sent = submit(
        &gateway.url,
        dir.path(),
        "Nos amenazaron en la asamblea.",
        &["--receipt-out", &receipt.display().to_string()],
    );
    assert!(sent.status.success(), "{}", stderr(&sent));
    let words = std::fs::read_to_string(&receipt).unwrap();
    assert_eq!(words.split_whitespace().count(), 12, "{words}");
    let first_id = stdout(&sent).trim().to_string();

    // Nothing yet; a mistyped receipt says so on this side only.
    let saved = dir.path().join("saved");
    let o = check(&gateway.url, &receipt, &saved);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("No answers yet"), "{}", stdout(&o));
    let stranger = dir.path().join("stranger.txt");
    std::fs::write(&stranger, Receipt::generate().display_lines().join("\n")).unwrap();
    let o = check(&gateway.url, &stranger, &saved);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no conversation for these words"),
        "{}",
        stderr(&o)
    );

    // Offline: open, answer (signed with reviewer 1, for the reporter and both reviewers).
    let out = dir.path().join("reports");
    fetch_and_open(&gateway.url, dir.path(), "first", &out);
    let report = out.join(&first_id);
    let outbox = dir.path().join("outbox.json");
    let text = format!("Pedimos protección policial. {CANARY}");
    let o = reply(&report, dir.path(), &text, &outbox);
    assert!(o.status.success(), "reply: {}{}", stdout(&o), stderr(&o));
    assert!(report.join("conversation/001-reply.txt").is_file());

    // The courier pushes it; pushed twice, it is stored once.
    for expected in ["stored", "already stored"] {
        let o = run(courier("push", &gateway.url).arg(&outbox));
        assert!(o.status.success(), "push: {}", stderr(&o));
        assert!(stdout(&o).contains(expected), "{}", stdout(&o));
    }
    // The operator's local import of the same outbox: already there.
    let o = run(Command::new(gateway_bin())
        .args(["replies", "import", "--data-dir"])
        .arg(&gateway.data_dir)
        .arg("--config")
        .arg(dir.path().join("gateway.toml"))
        .arg(&outbox));
    assert!(o.status.success(), "import: {}", stderr(&o));
    assert!(stdout(&o).contains("already stored"), "{}", stdout(&o));

    // The reporter reads it, verified as the team's, with its attachment.
    let o = check(&gateway.url, &receipt, &saved);
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = stdout(&o);
    assert!(shown.contains("from the team"), "{shown}");
    assert!(
        shown.contains("C95C29B449920DED0872A622F1F1AA6FAE2F54AD"),
        "{shown}"
    );
    assert!(shown.contains(CANARY), "{shown}");
    assert!(!shown.contains("WARNING"), "{shown}");
    let kept: Vec<_> = std::fs::read_dir(&saved).unwrap().flatten().collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        std::fs::read_to_string(kept[0].path()).unwrap(),
        "adjunto del equipo"
    );

    // gpg, with the reviewers' keys, reads the team's copy.
    let outbox_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&outbox).unwrap()).unwrap();
    use base64::Engine as _;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(outbox_json["replies"][0]["message"].as_str().unwrap())
        .unwrap();
    let sealed_path = dir.path().join("reply.pgp");
    std::fs::write(&sealed_path, sealed).unwrap();
    let gpg = Gpg::new();
    let o = gpg.run(&[
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase-file",
        &demo_passphrase(2).display().to_string(),
        "--decrypt",
        &sealed_path.display().to_string(),
    ]);
    assert!(o.status.success(), "gpg: {}", stderr(&o));
    assert!(stdout(&o).contains(CANARY));

    // A follow-up, threaded to the first report offline.
    let sent = submit(
        &gateway.url,
        dir.path(),
        "La amenaza sigue; adjunto la foto.",
        &["--follow-up", &receipt.display().to_string()],
    );
    assert!(sent.status.success(), "{}", stderr(&sent));
    let follow_id = stdout(&sent).trim().to_string();
    fetch_and_open(&gateway.url, dir.path(), "second", &out);
    let follow_text = std::fs::read_to_string(out.join(&follow_id).join("report.txt")).unwrap();
    assert!(
        follow_text.contains(&format!("Follow-up to report {first_id}"))
            || follow_text.contains(&format!("Seguimiento del reporte {first_id}")),
        "{follow_text}"
    );
    let thread = std::fs::read_to_string(report.join("conversation.txt")).unwrap();
    let (first_at, reply_at, follow_at) = (
        thread.find(&first_id).unwrap(),
        thread.find("001-reply.txt").unwrap(),
        thread.find(&follow_id).unwrap(),
    );
    assert!(first_at < reply_at && reply_at < follow_at, "{thread}");

    // Nothing of the answer is readable on the server: not in any file, and no key the server
    // holds opens it — it holds no OpenPGP secret key at all, and none of its 32-byte keys (form
    // tokens, decoys) opens the locked reply key.
    use sequoia_openpgp::parse::Parse;
    let data_dir = gateway.data_dir.clone();
    gateway.stop();
    let mut files = all_files(&data_dir);
    let config_path = dir.path().join("gateway.toml");
    files.push((config_path.clone(), std::fs::read(&config_path).unwrap()));
    for (path, bytes) in &files {
        assert!(!contains(bytes, CANARY.as_bytes()), "{}", path.display());
        if let Ok(parser) = sequoia_openpgp::cert::CertParser::from_bytes(bytes) {
            for cert in parser.flatten() {
                assert!(
                    !cert.is_tsk(),
                    "a secret key on the server: {}",
                    path.display()
                );
            }
        }
    }
    let locator = Receipt::parse(&words).unwrap().locator();
    let (store, _) = resguardo::store::SubmissionStore::open(
        &data_dir,
        resguardo::store::StoreOptions::default(),
    )
    .unwrap();
    let sealed_box = store.conversation(&locator).unwrap().unwrap().box_bytes();
    let mut tried = 0;
    for (_, bytes) in &files {
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            let key = resguardo::replies::receipt::LockKey::from_bytes(key);
            assert!(resguardo::replies::lockbox::open(&key, &locator, &sealed_box).is_err());
            tried += 1;
        }
    }
    assert!(tried >= 2, "the form-token and decoy keys were tried");
}

/// An outbox entry for `conversation`: `sealed` with a detached signature by `signer`.
fn entry(
    conversation: &resguardo::replies::Locator,
    sealed: &[u8],
    signer: &mut sequoia_openpgp::crypto::KeyPair,
) -> resguardo::replies::OutboxReply {
    use base64::Engine as _;
    use sequoia_openpgp::serialize::SerializeInto;
    let sig = sequoia_openpgp::packet::signature::SignatureBuilder::new(
        sequoia_openpgp::types::SignatureType::Binary,
    )
    .sign_message(
        signer,
        resguardo::replies::outbox::push_signed_text(conversation, sealed),
    )
    .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    resguardo::replies::OutboxReply {
        conversation: *conversation,
        message: b64.encode(sealed),
        signature: b64.encode(sequoia_openpgp::Packet::from(sig).to_vec().unwrap()),
    }
}

fn write_outbox(path: &Path, replies: Vec<resguardo::replies::OutboxReply>) {
    let outbox = resguardo::replies::Outbox {
        format: resguardo::replies::outbox::OUTBOX_FORMAT.into(),
        replies,
    };
    std::fs::write(path, serde_json::to_vec(&outbox).unwrap()).unwrap();
}

#[test]
fn forged_answers_are_refused_by_the_gateway_and_flagged_by_the_reporter() {
    use sequoia_openpgp::parse::Parse;
    use sequoia_openpgp::types::KeyFlags;
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &config());
    let receipt = dir.path().join("receipt.txt");
    let sent = submit(
        &gateway.url,
        dir.path(),
        "Vigilan mi casa.",
        &["--receipt-out", &receipt.display().to_string()],
    );
    assert!(sent.status.success(), "{}", stderr(&sent));
    let id = stdout(&sent).trim().to_string();
    let out = dir.path().join("reports");
    fetch_and_open(&gateway.url, dir.path(), "b", &out);
    let opened: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(&id).join("report.json")).unwrap()).unwrap();
    let here: resguardo::replies::Locator = opened["conversation"]["locator"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let reply_cert = sequoia_openpgp::Cert::from_bytes(
        opened["conversation"]["reply_key"]
            .as_str()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let elsewhere = Receipt::generate().locator();
    let plain = |conversation| resguardo::replies::ReplyPlaintext {
        schema: resguardo::replies::message::REPLY_SCHEMA.into(),
        conversation,
        sequence: 1,
        day: resguardo::submission::UtcDay::today(),
        language: "es".into(),
        message: "Llame a este número.".into(),
        attachments: vec![],
    };
    let stranger =
        resguardo::testing::reviewer_key("stranger", resguardo::keyring::KeyProfile::Compatible);
    let reviewer = sequoia_openpgp::Cert::from_bytes(&std::fs::read(demo_sec(1)).unwrap()).unwrap();
    let demo_pass = std::fs::read_to_string(demo_passphrase(1)).unwrap();
    let demo_pass = demo_pass.trim_end_matches('\n');
    let courier_cert =
        sequoia_openpgp::Cert::from_bytes(&std::fs::read(courier_file("sec.asc")).unwrap())
            .unwrap();
    let courier_pass = std::fs::read_to_string(courier_file("passphrase")).unwrap();
    let signing = KeyFlags::empty().set_signing();
    let recipients = [reply_cert.clone()];
    let by_stranger = resguardo::replies::seal_reply(
        &plain(here),
        resguardo::testing::subkey(&stranger, "test", signing.clone()),
        &recipients,
    )
    .unwrap();
    let by_reviewer = resguardo::replies::seal_reply(
        &plain(here),
        resguardo::testing::subkey(&reviewer, demo_pass, signing.clone()),
        &recipients,
    )
    .unwrap();
    let cases = [
        (
            "reply_not_signed",
            entry(
                &here,
                &by_stranger,
                &mut resguardo::testing::subkey(&stranger, "test", signing.clone()),
            ),
        ),
        (
            "reply_not_signed",
            entry(
                &here,
                &by_reviewer,
                &mut resguardo::testing::subkey(
                    &courier_cert,
                    courier_pass.trim_end_matches('\n'),
                    KeyFlags::empty().set_authentication(),
                ),
            ),
        ),
        (
            // Signed for this conversation, sent to another: the signature does not match.
            "reply_not_signed",
            resguardo::replies::OutboxReply {
                conversation: elsewhere,
                ..entry(
                    &here,
                    &by_reviewer,
                    &mut resguardo::testing::subkey(&reviewer, demo_pass, signing.clone()),
                )
            },
        ),
        (
            "conversation_not_found",
            entry(
                &elsewhere,
                &by_reviewer,
                &mut resguardo::testing::subkey(&reviewer, demo_pass, signing.clone()),
            ),
        ),
    ];
    for (code, forged) in cases {
        let outbox = dir.path().join(format!("forged-{code}.json"));
        write_outbox(&outbox, vec![forged]);
        let o = run(courier("push", &gateway.url).arg(&outbox));
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        assert!(stdout(&o).contains(code), "{code}: {}", stdout(&o));
    }
    let malformed = dir.path().join("malformed.json");
    std::fs::write(
        &malformed,
        b"{\"format\":\"resguardo.outbox/1\",\"replies\":[{}]}",
    )
    .unwrap();
    let o = run(courier("push", &gateway.url).arg(&malformed));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("not an outbox"), "{}", stderr(&o));

    // Injected into the store directly (a hostile server): the reporter is warned.
    let data_dir = gateway.data_dir.clone();
    gateway.stop();
    {
        let (store, _) = resguardo::store::SubmissionStore::open(
            &data_dir,
            resguardo::store::StoreOptions::default(),
        )
        .unwrap();
        store.add_reply(&here, &by_stranger).unwrap();
        let moved = resguardo::replies::seal_reply(
            &plain(elsewhere),
            resguardo::testing::subkey(&reviewer, demo_pass, signing.clone()),
            &recipients,
        )
        .unwrap();
        store.add_reply(&here, &moved).unwrap();
    }
    let gateway = Gateway::start_config(&dir.path().join("gateway.toml"), &data_dir);
    let o = check(&gateway.url, &receipt, &dir.path().join("saved"));
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = stdout(&o);
    assert_eq!(shown.matches("WARNING").count(), 2, "{shown}");
    assert!(!shown.contains(", from the team (signed by"), "{shown}");
    assert!(shown.contains("another conversation"), "{shown}");
    gateway.stop();
}

#[test]
fn an_acknowledged_answer_survives_kill_9_and_a_quiet_conversation_is_deleted_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(dir.path(), "plain-http", &config());
    let receipt = dir.path().join("receipt.txt");
    let sent = submit(
        &gateway.url,
        dir.path(),
        "Nos siguen.",
        &["--receipt-out", &receipt.display().to_string()],
    );
    assert!(sent.status.success(), "{}", stderr(&sent));
    let id = stdout(&sent).trim().to_string();
    let out = dir.path().join("reports");
    fetch_and_open(&gateway.url, dir.path(), "b", &out);
    let outbox = dir.path().join("outbox.json");
    let o = reply(
        &out.join(&id),
        dir.path(),
        &format!("Recibido. {CANARY}"),
        &outbox,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(courier("push", &gateway.url).arg(&outbox));
    assert!(stdout(&o).contains("stored as answer 1"), "{}", stdout(&o));
    // Killed right after the acknowledgement: the answer is there after the restart.
    let data_dir = gateway.data_dir.clone();
    gateway.kill9();
    let config_path = dir.path().join("gateway.toml");
    let gateway = Gateway::start_config(&config_path, &data_dir);
    let o = check(&gateway.url, &receipt, &dir.path().join("saved"));
    assert!(stdout(&o).contains(CANARY), "{}{}", stdout(&o), stderr(&o));
    gateway.stop();
    // A gateway whose conversations expire after one day, started two days later (the store
    // is aged by the daily pass's own clock: its expiry is given "today"): gone.
    let (store, _) = resguardo::store::SubmissionStore::open(
        &data_dir,
        resguardo::store::StoreOptions::default(),
    )
    .unwrap();
    let later = resguardo::submission::UtcDay::from_days_since_epoch(
        resguardo::submission::UtcDay::today().days_since_epoch() + 2,
    );
    assert_eq!(store.expire_conversations(later, 1).unwrap(), 1);
    drop(store);
    let gateway = Gateway::start_config(&config_path, &data_dir);
    let o = check(&gateway.url, &receipt, &dir.path().join("saved2"));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no conversation"), "{}", stderr(&o));
    gateway.stop();
    for (path, bytes) in all_files(&data_dir) {
        assert!(!contains(&bytes, CANARY.as_bytes()), "{}", path.display());
    }
}

/// The text between `start` and the next `end` in `html`.
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    html.split(start)
        .nth(1)
        .and_then(|rest| rest.split(end).next())
        .unwrap_or_else(|| panic!("no {start:?} in {html}"))
}

/// Without JavaScript (Tor Browser at "Safest"): the gateway makes the receipt for a form post,
/// opens the answers in memory for a posted check-in and seals a follow-up on arrival; the
/// reviewers see the follow-up threaded; nothing of the words or the answer stays on the server.
#[test]
fn without_javascript_a_reporter_gets_a_receipt_reads_the_answer_and_follows_up() {
    let dir = tempfile::tempdir().unwrap();
    let small_forms = "[form]\ntoken_min_age_secs = 0\nposts_per_minute = 600\npost_burst = 100\n\
                       max_post_bytes = 65536\n";
    let gateway = Gateway::start_with(
        dir.path(),
        "plain-http",
        &format!("{}{small_forms}", config()),
    );
    let form_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let report = multipart(&[
        ("language", None, b"en"),
        ("what_happened", None, b"threat"),
        ("urgent", None, b"no"),
        (
            "description",
            None,
            "Nos siguieron hasta la comunidad.".as_bytes(),
        ),
    ]);
    let token = form_token(&gateway.url);
    let (status, html) = post_raw(&gateway, &format!("/submit?t={token}"), &report, &form_type);
    assert_eq!(status, 200, "{html}");
    let first_id = between(&html, "id=\"submission-id\">", "<").to_string();
    let words: Vec<&str> = between(&html, "<ol class=\"receipt-words\" lang=\"es\">", "</ol>")
        .split("</li>")
        .filter_map(|li| li.strip_prefix("<li>"))
        .collect();
    assert_eq!(words.len(), 12, "{html}");
    let words = words.join(" ");
    Receipt::parse(&words).expect("a valid receipt");

    // Offline: open, answer; the courier pushes.
    let out = dir.path().join("reports");
    fetch_and_open(&gateway.url, dir.path(), "first", &out);
    let outbox = dir.path().join("outbox.json");
    let o = reply(
        &out.join(&first_id),
        dir.path(),
        &format!("Llame al 105. {CANARY}"),
        &outbox,
    );
    assert!(o.status.success(), "reply: {}{}", stdout(&o), stderr(&o));
    let o = run(courier("push", &gateway.url).arg(&outbox));
    assert!(o.status.success(), "push: {}", stderr(&o));

    // The check-in page's form without JavaScript, then the words posted (typed in capitals).
    let fresh_token = || {
        let (_, page) = get(&format!(
            "{}/check?lang=en",
            gateway.url.trim_end_matches('/')
        ));
        between(&page, "action=\"/check?t=", "&amp;").to_string()
    };
    let posted = |token: &str, words: &str| {
        let body = format!("receipt={}", words.replace(' ', "+"));
        post_raw(
            &gateway,
            &format!("/check?t={token}&lang=en"),
            body.as_bytes(),
            "application/x-www-form-urlencoded",
        )
    };
    let token = fresh_token();
    let (status, thread) = posted(&token, &words.to_uppercase());
    assert_eq!(status, 200, "{thread}");
    assert!(thread.contains(CANARY), "{thread}");
    assert!(thread.contains("From the team"), "{thread}");
    assert!(!thread.contains("WARNING"), "{thread}");
    assert!(thread.contains("download=\"nota.txt\""), "{thread}");
    // A token is good for one post.
    let (status, again) = posted(&token, &words);
    assert_eq!(status, 409, "{again}");

    // Wrong words, and words that are no receipt: the check-in page again, with the reason.
    let (status, refused) = posted(&fresh_token(), &Receipt::generate().words().join(" "));
    assert_eq!(status, 404);
    assert!(
        refused.contains("There is no conversation for these words"),
        "{refused}"
    );
    let (status, refused) = posted(&fresh_token(), "uno dos tres");
    assert_eq!(status, 422);
    assert!(refused.contains("you typed 3"), "{refused}");
    assert!(
        refused.contains("name=\"receipt\""),
        "the form again: {refused}"
    );
    // Longer than any words could be (the post is bounded at 4 KiB).
    let (status, refused) = posted(&fresh_token(), &"palabra ".repeat(1000));
    assert_eq!(status, 422);
    assert!(
        refused.contains("Some answers could not be read"),
        "{refused}"
    );

    // Follow-ups without the words, or with nothing in them: refused with the reason.
    let follow_token_now = || {
        let (status, thread) = posted(&fresh_token(), &words);
        assert_eq!(status, 200);
        between(&thread, "action=\"/check/follow-up?t=", "&amp;").to_string()
    };
    for (parts, reason) in [
        (
            multipart(&[
                ("language", None, b"en"),
                ("description", None, b"sin palabras"),
            ]),
            "you typed 0",
        ),
        (
            multipart(&[
                ("language", None, b"en"),
                ("receipt", None, words.as_bytes()),
                ("description", None, b"   "),
            ]),
            "Required answers are missing",
        ),
    ] {
        let (status, refused) = post_raw(
            &gateway,
            &format!("/check/follow-up?t={}&lang=en", follow_token_now()),
            &parts,
            &form_type,
        );
        assert_eq!(status, 422, "{refused}");
        assert!(refused.contains(reason), "{reason}: {refused}");
    }

    // A follow-up with a file, sealed on arrival.
    let follow_token = between(&thread, "action=\"/check/follow-up?t=", "&amp;").to_string();
    let hidden = between(&thread, "name=\"receipt\" value=\"", "\"").to_string();
    let follow_up = multipart(&[
        ("language", None, b"en"),
        ("receipt", None, hidden.as_bytes()),
        (
            "description",
            None,
            b"Sigue la amenaza; la foto del cartel.",
        ),
        ("attachments", Some("cartel.pdf"), b"%PDF-1.4 cartel"),
    ]);
    // Too large: refused with the reason, nothing stored; the token of that page is spent, so
    // the reporter checks in again for a fresh one.
    let big = vec![b'x'; 70 * 1024];
    let oversized = multipart(&[
        ("language", None, b"en"),
        ("receipt", None, hidden.as_bytes()),
        ("attachments", Some("video.pdf"), &big),
    ]);
    let (status, refused) = post_raw(
        &gateway,
        &format!("/check/follow-up?t={follow_token}&lang=en"),
        &oversized,
        &form_type,
    );
    assert_eq!(status, 413, "{refused}");
    assert!(refused.contains("too large"), "{refused}");
    let (status, thread) = posted(&fresh_token(), &words);
    assert_eq!(status, 200);
    let follow_token = between(&thread, "action=\"/check/follow-up?t=", "&amp;").to_string();
    let (status, done) = post_raw(
        &gateway,
        &format!("/check/follow-up?t={follow_token}&lang=en"),
        &follow_up,
        &form_type,
    );
    assert_eq!(status, 200, "{done}");
    let follow_id = between(&done, "id=\"follow-up-id\">", "<").to_string();
    fetch_and_open(&gateway.url, dir.path(), "second", &out);
    let follow_text = std::fs::read_to_string(out.join(&follow_id).join("report.txt")).unwrap();
    assert!(
        follow_text.contains(&format!("Follow-up to report {first_id}")),
        "{follow_text}"
    );
    assert!(
        out.join(&follow_id).join("attachments").is_dir() || follow_text.contains("cartel.pdf")
    );

    // Neither the words nor the answer are on the server's disk or in its log.
    let data_dir = gateway.data_dir.clone();
    let logs = gateway.stop();
    for needle in [words.as_str(), CANARY] {
        assert!(!logs.contains(needle), "in the log: {needle}");
        for (path, bytes) in all_files(&data_dir) {
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{}: {needle}",
                path.display()
            );
        }
    }
}
