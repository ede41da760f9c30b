//! Writes the shared vectors of `docs/replies-v1.md` into `tests/vectors/replies/` (run once;
//! the files are checked in and both test suites read them):
//! `cargo run --example make_reply_vectors`.

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
}
