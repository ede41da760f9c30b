//! The reporter's receipt: twelve words of the BIP-39 Spanish list (128 bits from the CSPRNG and
//! a 4-bit checksum), and what is derived from it (`docs/replies-v1.md`).
//!
//! Typing it back is forgiving: case, accents and extra spaces do not matter, and a word may be
//! cut after its first 4 letters (unique in the Spanish list once accents are dropped). Anything
//! else is refused with the position of the word.

use std::fmt;

use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use unicode_normalization::UnicodeNormalization;

/// Words in a receipt.
pub const WORDS: usize = 12;

/// Letters that identify a word of the Spanish list (accents dropped).
pub const PREFIX_LETTERS: usize = 4;

/// Longest receipt text read (12 words of at most 9 letters, generous room for spaces).
pub const MAX_RECEIPT_CHARS: usize = 400;

const SALT: &[u8] = b"resguardo receipt/1";
const LOCATOR_INFO: &[u8] = b"conversation locator";
const LOCK_INFO: &[u8] = b"reply key lock";
const TOKEN_INFO: &[u8] = b"follow-up token";

/// A receipt: the 16 bytes its words encode. Not `Debug`-printable: it is a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Receipt {
    entropy: [u8; 16],
}

impl Drop for Receipt {
    // The gateway holds one in memory for a form without JavaScript: gone when done.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.entropy);
    }
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receipt(…)")
    }
}

/// Why typed words are not a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not twelve words.
    #[error("a receipt has 12 words; this has {0}")]
    WordCount(usize),
    /// A word (1-based position) that is not in the list.
    #[error("word {0} is not one of the receipt's words; check it")]
    UnknownWord(usize),
    /// Every word is in the list but the checksum fails: a word is wrong or words are swapped.
    #[error("these 12 words are not a receipt: a word is wrong or two are swapped")]
    Checksum,
    /// Longer than any receipt.
    #[error("longer than a receipt")]
    TooLong,
}

/// The conversation's key on the server: derived from the receipt, not invertible.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locator(pub [u8; 32]);

impl fmt::Display for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locator({self})")
    }
}

impl std::str::FromStr for Locator {
    type Err = ();

    /// Exactly 64 lowercase hex characters.
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| ())?;
        Ok(Locator(bytes))
    }
}

impl serde::Serialize for Locator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Locator {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|()| serde::de::Error::custom("a locator is 64 lowercase hex characters"))
    }
}

/// The key that locks the reply key. Not printable.
pub struct LockKey(pub(super) [u8; 32]);

impl LockKey {
    /// Its bytes (the shared vectors print them; nothing else should).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Any 32 bytes taken as a lock key (the tests try every key the server holds).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        LockKey(bytes)
    }
}

impl Receipt {
    /// A new receipt from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut entropy = [0u8; 16];
        SystemRandom::new()
            .fill(&mut entropy)
            .expect("the operating system's random number generator failed");
        Receipt { entropy }
    }

    /// The receipt with these 16 bytes (tests and vectors).
    pub fn from_entropy(entropy: [u8; 16]) -> Self {
        Receipt { entropy }
    }

    /// Its 16 bytes (the shared vectors print them; nothing else should).
    pub fn entropy(&self) -> &[u8; 16] {
        &self.entropy
    }

    /// Its twelve words, as the Spanish list spells them (with accents).
    pub fn words(&self) -> Vec<&'static str> {
        let list = word_list();
        let mut bits = self.entropy.to_vec();
        bits.push(checksum(&self.entropy));
        (0..WORDS).map(|i| list[read_bits(&bits, i * 11)]).collect()
    }

    /// The words in 4 lines of 3, as shown to the reporter.
    pub fn display_lines(&self) -> Vec<String> {
        self.words().chunks(3).map(|line| line.join(" ")).collect()
    }

    /// Reads typed words (see the module's rules).
    pub fn parse(text: &str) -> Result<Self, ReceiptError> {
        if text.chars().count() > MAX_RECEIPT_CHARS {
            return Err(ReceiptError::TooLong);
        }
        let tokens: Vec<String> = text
            .split(|c: char| c.is_whitespace() || c == ',' || c == '-' || c == '.')
            .filter(|t| !t.is_empty())
            .map(fold)
            .collect();
        if tokens.len() != WORDS {
            return Err(ReceiptError::WordCount(tokens.len()));
        }
        let folded = folded_list();
        let mut bits = vec![0u8; 17];
        for (position, token) in tokens.iter().enumerate() {
            let index = folded
                .iter()
                .position(|w| {
                    w.starts_with(token.as_str())
                        && (token.chars().count() >= PREFIX_LETTERS || w == token)
                })
                .ok_or(ReceiptError::UnknownWord(position + 1))?;
            write_bits(&mut bits, position * 11, index);
        }
        let mut entropy = [0u8; 16];
        entropy.copy_from_slice(&bits[..16]);
        if bits[16] & 0xf0 != checksum(&entropy) {
            return Err(ReceiptError::Checksum);
        }
        Ok(Receipt { entropy })
    }

    /// The conversation's locator.
    pub fn locator(&self) -> Locator {
        Locator(self.derive(LOCATOR_INFO))
    }

    /// The key that locks the reply key.
    pub fn lock_key(&self) -> LockKey {
        LockKey(self.derive(LOCK_INFO))
    }

    /// The follow-up token (hex): inside every report of the conversation, encrypted to the
    /// reviewers, never seen by the gateway. A follow-up whose token is not the first report's
    /// was not sent with this receipt (the locator alone, which the gateway knows, is not
    /// enough to add to a conversation).
    pub fn follow_up_token(&self) -> String {
        hex::encode(self.derive(TOKEN_INFO))
    }

    fn derive(&self, info: &'static [u8]) -> [u8; 32] {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&self.entropy);
        let mut out = [0u8; 32];
        let infos = [info];
        // Both lengths are fixed and within HKDF's bound (255 × 32 bytes): these cannot fail.
        prk.expand(&infos, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out))
            .expect("HKDF of 32 bytes");
        out
    }
}

/// The first 4 bits of SHA-256(entropy), in the high half of a byte (BIP-39).
fn checksum(entropy: &[u8; 16]) -> u8 {
    ring::digest::digest(&ring::digest::SHA256, entropy).as_ref()[0] & 0xf0
}

fn read_bits(bytes: &[u8], start: usize) -> usize {
    (0..11).fold(0, |acc, i| {
        let bit = start + i;
        acc << 1 | usize::from(bytes[bit / 8] >> (7 - bit % 8) & 1)
    })
}

fn write_bits(bytes: &mut [u8], start: usize, value: usize) {
    for i in 0..11 {
        if value >> (10 - i) & 1 == 1 {
            let bit = start + i;
            bytes[bit / 8] |= 1 << (7 - bit % 8);
        }
    }
}

/// The BIP-39 Spanish list (from the `bip39` crate).
pub fn word_list() -> &'static [&'static str; 2048] {
    bip39::Language::Spanish.word_list()
}

/// Lowercase, accents dropped (NFD without combining marks).
fn fold(word: &str) -> String {
    word.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

fn folded_list() -> &'static [String] {
    static FOLDED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    FOLDED.get_or_init(|| word_list().iter().map(|w| fold(w)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_the_bip39_crate_and_read_back() {
        for seed in 0u8..20 {
            let entropy: [u8; 16] =
                std::array::from_fn(|i| seed.wrapping_mul(37).wrapping_add(i as u8 * 11));
            let receipt = Receipt::from_entropy(entropy);
            let theirs = bip39::Mnemonic::from_entropy_in(bip39::Language::Spanish, &entropy)
                .unwrap()
                .words()
                .map(|w| w.nfc().collect::<String>())
                .collect::<Vec<_>>();
            let ours: Vec<String> = receipt.words().iter().map(|w| w.nfc().collect()).collect();
            assert_eq!(ours, theirs);
            assert_eq!(Receipt::parse(&ours.join(" ")).unwrap(), receipt);
        }
    }

    #[test]
    fn the_spanish_list_is_unique_in_four_letters_without_accents() {
        let prefixes: std::collections::HashSet<String> = folded_list()
            .iter()
            .map(|w| w.chars().take(PREFIX_LETTERS).collect())
            .collect();
        assert_eq!(prefixes.len(), 2048);
    }

    #[test]
    fn typing_is_forgiving_about_case_accents_spaces_and_long_words() {
        let receipt = Receipt::from_entropy([7; 16]);
        let words = receipt.words();
        let sloppy: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let w = fold(w);
                match i % 3 {
                    0 => w.to_uppercase(),
                    1 => w.chars().take(4).collect(),
                    _ => w,
                }
            })
            .collect();
        let typed = format!("  {}\n", sloppy.join("   "));
        assert_eq!(Receipt::parse(&typed).unwrap(), receipt);
    }

    #[test]
    fn bad_receipts_are_refused_with_the_reason() {
        let words = Receipt::from_entropy([9; 16]).words();
        assert_eq!(
            Receipt::parse(&words[..11].join(" ")),
            Err(ReceiptError::WordCount(11))
        );
        let mut unknown = words.clone();
        unknown[4] = "xyzzy";
        assert_eq!(
            Receipt::parse(&unknown.join(" ")),
            Err(ReceiptError::UnknownWord(5))
        );
        // The last word carries the checksum's 4 bits: another word that differs only there.
        let list = word_list();
        let last = list.iter().position(|w| *w == words[11]).unwrap();
        let mut wrong = words.clone();
        wrong[11] = list[last ^ 1];
        assert_eq!(
            Receipt::parse(&wrong.join(" ")),
            Err(ReceiptError::Checksum)
        );
        // Three letters are not enough to name a longer word.
        let mut short = words.iter().map(|w| fold(w)).collect::<Vec<_>>();
        if short[0].chars().count() > 3 {
            short[0] = short[0].chars().take(3).collect();
            assert_eq!(
                Receipt::parse(&short.join(" ")),
                Err(ReceiptError::UnknownWord(1))
            );
        }
        assert_eq!(Receipt::parse(&"a".repeat(500)), Err(ReceiptError::TooLong));
    }

    #[test]
    fn locator_and_lock_key_are_separate_derivations() {
        let receipt = Receipt::from_entropy([1; 16]);
        assert_ne!(receipt.locator().0, receipt.lock_key().0);
        assert_eq!(receipt.locator(), Receipt::from_entropy([1; 16]).locator());
        assert_ne!(receipt.locator(), Receipt::from_entropy([2; 16]).locator());
    }
}
