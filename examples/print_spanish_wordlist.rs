//! Writes the receipt's word list (the BIP-39 Spanish list, as the `bip39` crate ships it) to
//! `tests/vectors/replies/wordlist-es.json`, so the page's copy (`@scure/bip39`, embedded as
//! `/vendor/bip39-spanish.mjs`) is checked against it word for word by
//! `tests/browser/vectors.test.mjs`: `cargo run --example print_spanish_wordlist`.

fn main() {
    let words = resguardo::replies::receipt::word_list();
    let joined = words.join("\n");
    let digest = ring::digest::digest(&ring::digest::SHA256, joined.as_bytes());
    let sha256 = hex::encode(digest.as_ref());
    let vector = serde_json::json!({
        "about": "The BIP-39 Spanish list as the bip39 crate ships it (NFKD, as in BIP-39); sha256 is over the words joined by \\n.",
        "count": words.len(),
        "sha256": sha256,
        "words": words.as_slice(),
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/replies/wordlist-es.json");
    let mut text = serde_json::to_string_pretty(&vector).expect("json");
    text.push('\n');
    std::fs::write(&path, text).expect("write the word list");
    println!("{} words -> {}", words.len(), path.display());
}
