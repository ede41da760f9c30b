//! The set of encryption keys a submission may be addressed to.
//!
//! Built from the reviewers' certificates once at start (see [`crate::keyring`]); the envelope
//! check only needs to answer "is this PKESK for one of ours, made with that key's algorithm?",
//! by key ID (PKESK v3) or by fingerprint (PKESK v6).

use std::collections::HashMap;

use sequoia_openpgp::packet::PKESK;
use sequoia_openpgp::types::PublicKeyAlgorithm;
use sequoia_openpgp::{Fingerprint, KeyHandle, KeyID};

use super::EnvelopeError;

/// Key IDs and fingerprints of the reviewers' current encryption subkeys, with their algorithms.
#[derive(Debug, Clone, Default)]
pub struct RecipientSet {
    key_ids: HashMap<KeyID, PublicKeyAlgorithm>,
    fingerprints: HashMap<Fingerprint, PublicKeyAlgorithm>,
}

impl RecipientSet {
    /// Adds one encryption-capable (sub)key.
    pub fn insert(&mut self, fingerprint: Fingerprint, algorithm: PublicKeyAlgorithm) {
        self.key_ids.insert(KeyID::from(&fingerprint), algorithm);
        self.fingerprints.insert(fingerprint, algorithm);
    }

    /// Number of distinct encryption subkeys (by fingerprint) in the set.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// True when no encryption subkey has been added.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    /// Accepts a PKESK only if it names one of our keys and was made with that key's algorithm.
    /// A missing recipient is a hidden (wildcard) one, which we refuse: the gateway must be able
    /// to tell that every session key is for a reviewer. A session key made with another
    /// algorithm (an RSA PKESK to an X25519 subkey) can never be opened by the reviewer.
    pub fn admit(&self, pkesk: &PKESK) -> Result<(), EnvelopeError> {
        let recipient = pkesk.recipient();
        let algorithm = match &recipient {
            None => return Err(EnvelopeError::HiddenRecipient),
            Some(KeyHandle::KeyID(id)) => self.key_ids.get(id),
            Some(KeyHandle::Fingerprint(fp)) => self.fingerprints.get(fp),
        };
        match (algorithm, recipient) {
            (Some(algo), _) if *algo == pkesk.pk_algo() => Ok(()),
            (Some(algo), _) => Err(EnvelopeError::AlgorithmMismatch {
                pkesk: pkesk.pk_algo().to_string(),
                key: algo.to_string(),
            }),
            (None, Some(handle)) => Err(EnvelopeError::UnknownRecipient(handle.to_hex())),
            (None, None) => Err(EnvelopeError::HiddenRecipient),
        }
    }
}
