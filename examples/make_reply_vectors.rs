//! Writes the shared vectors of `docs/replies-v1.md` into `tests/vectors/replies/` (run once;
//! the files are checked in and both test suites read them):
//! `cargo run --example make_reply_vectors`. It also writes `tests/vectors/reply-messages/`:
//! sealed replies (signed by the demo reviewer 1) that both readers must judge alike.

use base64::Engine as _;
use resguardo::replies::lockbox::{seal_with_nonce, BoxContents};
use resguardo::replies::Receipt;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/replies");
    std::fs::create_dir_all(&dir).expect("dir");
    let b64 = base64::engine::general_purpose::STANDARD;
    for (n, seed) in [(1u8, 0x00u8), (2, 0x5a), (3, 0xff)] {
        let entropy: [u8; 16] = std::array::from_fn(|i| seed ^ (i as u8).wrapping_mul(29));
        let receipt = Receipt::from_entropy(entropy);
        let words = receipt.words().join(" ");
        let contents = BoxContents {
            key: b64.encode(format!("reply key {n}")),
            reviewers: vec!["C95C29B449920DED0872A622F1F1AA6FAE2F54AD".into()],
        };
        let nonce: [u8; 12] = std::array::from_fn(|i| (n * 17).wrapping_add(i as u8));
        let sealed = seal_with_nonce(&receipt.lock_key(), &receipt.locator(), &contents, nonce)
            .expect("seal");
        let vector = serde_json::json!({
            "words": words,
            "entropy": hex::encode(receipt.entropy()),
            "locator": receipt.locator().to_string(),
            "lock_key": hex::encode(receipt.lock_key().expose()),
            "follow_up_token": receipt.follow_up_token(),
            "box_contents": contents,
            "box_nonce": hex::encode(nonce),
            "box": b64.encode(&sealed),
        });
        std::fs::write(
            dir.join(format!("ok_receipt_{n}.json")),
            serde_json::to_vec_pretty(&vector).expect("json"),
        )
        .expect("write");
    }
    // Typing: forgiving in case, accents, spacing and 4-letter prefixes; precise when wrong.
    let receipt = Receipt::from_entropy([0x42; 16]);
    let words = receipt.words();
    let fold = |w: &str| -> String {
        use unicode_normalization::UnicodeNormalization;
        w.nfd()
            .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
            .collect()
    };
    let sloppy: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| match i % 3 {
            0 => w.to_uppercase(),
            1 => fold(w).chars().take(4).collect(),
            _ => fold(w),
        })
        .collect();
    let list = resguardo::replies::receipt::word_list();
    let last = list
        .iter()
        .position(|w| *w == words[11])
        .expect("in the list");
    let mut wrong_checksum = words.clone();
    wrong_checksum[11] = list[last ^ 1];
    let mut unknown = words.clone();
    unknown[4] = "xyzzy";
    let mut short: Vec<String> = words.iter().map(|w| fold(w)).collect();
    let long = short
        .iter()
        .position(|w| w.chars().count() > 3)
        .expect("a long word");
    short[long] = short[long].chars().take(3).collect();
    let cases = [
        (
            "ok_typed_sloppy",
            format!("  {}\n", sloppy.join("   ")),
            serde_json::json!({"entropy": hex::encode(receipt.entropy())}),
        ),
        (
            "fail_word_count",
            words[..11].join(" "),
            serde_json::json!({"error": "word_count", "count": 11}),
        ),
        (
            "fail_unknown_word",
            unknown.join(" "),
            serde_json::json!({"error": "unknown_word", "position": 5}),
        ),
        (
            "fail_checksum",
            wrong_checksum.join(" "),
            serde_json::json!({"error": "checksum"}),
        ),
        (
            "fail_three_letters",
            short.join(" "),
            serde_json::json!({"error": "unknown_word", "position": long + 1}),
        ),
    ];
    for (name, typed, expected) in cases {
        let mut vector = expected;
        vector["typed"] = typed.into();
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec_pretty(&vector).expect("json"),
        )
        .expect("write");
    }
    reply_messages();
}

/// Sealed replies to one reply key and the demo reviewer 1, each with how a reader must judge it.
fn reply_messages() {
    use resguardo::replies::message::REPLY_SCHEMA;
    use resguardo::replies::{generate_reply_key, seal_reply, ReplyPlaintext};
    use sequoia_openpgp::parse::Parse;
    use sequoia_openpgp::serialize::SerializeInto;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/vectors/reply-messages");
    std::fs::create_dir_all(&dir).expect("dir");
    let b64 = base64::engine::general_purpose::STANDARD;
    let keys = root.join("keys-example");
    let reviewer = sequoia_openpgp::Cert::from_bytes(
        &std::fs::read(keys.join("demo-reviewer-1.sec.asc")).expect("demo key"),
    )
    .expect("cert");
    let passphrase =
        std::fs::read_to_string(keys.join("demo-reviewer-1.passphrase")).expect("passphrase");
    let signing = sequoia_openpgp::types::KeyFlags::empty().set_signing();
    let signer = resguardo::testing::subkey(&reviewer, passphrase.trim_end_matches('\n'), signing);
    let reply_key = generate_reply_key().expect("reply key");
    let public_reviewer = reviewer.clone().strip_secret_key_material();
    let recipients = [
        reply_key.clone().strip_secret_key_material(),
        public_reviewer.clone(),
    ];
    let here = Receipt::from_entropy([0x11; 16]).locator();
    let elsewhere = Receipt::from_entropy([0x22; 16]).locator();
    let plain = |conversation, sequence| ReplyPlaintext {
        schema: REPLY_SCHEMA.into(),
        conversation,
        sequence,
        day: "2026-11-30".parse().expect("day"),
        language: "es".into(),
        message: format!("Respuesta {sequence}: pedimos protección policial."),
        attachments: vec![],
    };
    let seal = |reply: &ReplyPlaintext, signer| {
        b64.encode(seal_reply(reply, signer, &recipients).expect("seal"))
    };
    let stranger =
        resguardo::testing::reviewer_key("stranger", resguardo::keyring::KeyProfile::Compatible);
    let by_stranger = resguardo::testing::subkey(
        &stranger,
        "test",
        sequoia_openpgp::types::KeyFlags::empty().set_signing(),
    );
    let common = serde_json::json!({
        "reply_key": String::from_utf8(reply_key.as_tsk().armored().to_vec().expect("armor"))
            .expect("utf-8"),
        "team": [String::from_utf8(public_reviewer.armored().to_vec().expect("armor"))
            .expect("utf-8")],
        "locator": here.to_string(),
    });
    let cases = [
        (
            "ok_signed",
            seal(&plain(here, 2), signer.clone()),
            serde_json::json!({
            "signer": reviewer.fingerprint().to_hex(), "sequence": 2, "day": "2026-11-30",
            "message": "Respuesta 2: pedimos protección policial."}),
        ),
        (
            "fail_other_conversation",
            seal(&plain(elsewhere, 1), signer),
            serde_json::json!({
            "why": "other_conversation"}),
        ),
        (
            "fail_not_signed",
            seal(&plain(here, 1), by_stranger),
            serde_json::json!({
            "why": "not_signed"}),
        ),
    ];
    for (name, sealed, expect) in cases {
        let mut vector = common.clone();
        vector["sealed"] = sealed.into();
        vector["expect"] = expect;
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec_pretty(&vector).expect("json"),
        )
        .expect("write");
    }
}
