//! The locked reply key (`resguardo.locked-reply-key/1`, `docs/replies-v1.md`): the reporter's
//! reply secret key and the fingerprints of the reviewers the report was encrypted to, sealed
//! with AES-256-GCM under the key derived from the receipt. Every box has one size.

use ring::aead;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::receipt::{Locator, LockKey};

/// The plaintext's fixed size (padded with spaces).
pub const PLAINTEXT_BYTES: usize = 3088;
/// A box: nonce, ciphertext, tag.
pub const BOX_BYTES: usize = 12 + PLAINTEXT_BYTES + 16;

const AAD_PREFIX: &[u8] = b"resguardo.locked-reply-key/1";

/// What a box holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxContents {
    /// Base64 of the reply key's binary secret key (unprotected: the box is its protection).
    pub key: String,
    /// Uppercase hex fingerprints of the reviewer certificates the report was encrypted to.
    pub reviewers: Vec<String>,
}

/// Why a box cannot be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoxError {
    /// The contents do not fit in [`PLAINTEXT_BYTES`].
    #[error("the reply key and the reviewers' fingerprints do not fit in a locked box")]
    TooLarge,
    /// Not a box for this receipt (a wrong receipt, a decoy, or damage: the same to us).
    #[error("no conversation for this receipt")]
    WrongReceipt,
}

fn aad(locator: &Locator) -> Vec<u8> {
    [AAD_PREFIX, &locator.0].concat()
}

fn key(lock: &LockKey) -> aead::LessSafeKey {
    // 32 bytes is AES-256's key length: this cannot fail.
    aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &lock.0).expect("AES-256 key"))
}

/// Seals `contents` for the conversation at `locator`, under a random nonce.
pub fn seal(
    lock: &LockKey,
    locator: &Locator,
    contents: &BoxContents,
) -> Result<Vec<u8>, BoxError> {
    let mut nonce = [0u8; 12];
    SystemRandom::new()
        .fill(&mut nonce)
        .expect("the operating system's random number generator failed");
    seal_with_nonce(lock, locator, contents, nonce)
}

/// [`seal`] under a given nonce: for the shared vectors only (in real use each receipt's lock
/// key seals one box, under a random nonce).
pub fn seal_with_nonce(
    lock: &LockKey,
    locator: &Locator,
    contents: &BoxContents,
    nonce: [u8; 12],
) -> Result<Vec<u8>, BoxError> {
    let mut plain = serde_json::to_vec(contents).map_err(|_| BoxError::TooLarge)?;
    if plain.len() > PLAINTEXT_BYTES {
        return Err(BoxError::TooLarge);
    }
    plain.resize(PLAINTEXT_BYTES, b' ');
    key(lock)
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad(locator)),
            &mut plain,
        )
        .map_err(|_| BoxError::TooLarge)?;
    Ok([nonce.as_slice(), &plain].concat())
}

/// Opens a box; any failure is [`BoxError::WrongReceipt`].
pub fn open(lock: &LockKey, locator: &Locator, sealed: &[u8]) -> Result<BoxContents, BoxError> {
    if sealed.len() != BOX_BYTES {
        return Err(BoxError::WrongReceipt);
    }
    let (nonce, rest) = sealed.split_at(12);
    let nonce =
        aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| BoxError::WrongReceipt)?;
    let mut buffer = rest.to_vec();
    let plain = key(lock)
        .open_in_place(nonce, aead::Aad::from(aad(locator)), &mut buffer)
        .map_err(|_| BoxError::WrongReceipt)?;
    let text = std::str::from_utf8(plain).map_err(|_| BoxError::WrongReceipt)?;
    serde_json::from_str(text.trim_end_matches(' ')).map_err(|_| BoxError::WrongReceipt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replies::receipt::Receipt;

    fn contents() -> BoxContents {
        BoxContents {
            key: "a2V5".into(),
            reviewers: vec!["C95C29B449920DED0872A622F1F1AA6FAE2F54AD".into()],
        }
    }

    #[test]
    fn a_box_opens_with_its_receipt_only_and_has_one_size() {
        let receipt = Receipt::from_entropy([3; 16]);
        let sealed = seal(&receipt.lock_key(), &receipt.locator(), &contents()).unwrap();
        assert_eq!(sealed.len(), BOX_BYTES);
        assert_eq!(
            open(&receipt.lock_key(), &receipt.locator(), &sealed).unwrap(),
            contents()
        );
        let other = Receipt::from_entropy([4; 16]);
        assert_eq!(
            open(&other.lock_key(), &receipt.locator(), &sealed),
            Err(BoxError::WrongReceipt)
        );
        // Bound to its locator: moved to another conversation, it does not open.
        assert_eq!(
            open(&receipt.lock_key(), &other.locator(), &sealed),
            Err(BoxError::WrongReceipt)
        );
        let mut flipped = sealed.clone();
        flipped[100] ^= 1;
        assert!(open(&receipt.lock_key(), &receipt.locator(), &flipped).is_err());
    }

    #[test]
    fn contents_too_large_for_a_box_are_refused() {
        let receipt = Receipt::from_entropy([3; 16]);
        let big = BoxContents {
            key: "x".repeat(PLAINTEXT_BYTES),
            reviewers: vec![],
        };
        assert_eq!(
            seal(&receipt.lock_key(), &receipt.locator(), &big),
            Err(BoxError::TooLarge)
        );
    }
}
