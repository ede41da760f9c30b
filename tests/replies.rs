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
    let o = run(Command::new(review_bin())
        .arg("open")
        .arg(&bundle)
        .arg("--key")
        .arg(demo_sec(1))
        .arg("--passphrase-file")
        .arg(demo_passphrase(1))
        .arg("--out")
        .arg(out));
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

    // Nothing of the answer is readable on the server.
    let data_dir = gateway.data_dir.clone();
    gateway.stop();
    for (path, bytes) in all_files(&data_dir) {
        assert!(!contains(&bytes, CANARY.as_bytes()), "{}", path.display());
    }
}
