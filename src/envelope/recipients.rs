//! The set of encryption keys a submission may be addressed to.
//!
//! Built from the reviewers' certificates once at start (see [`crate::keyring`]); the envelope
//! check only needs to answer "is this PKESK for one of ours?", by key ID (PKESK v3) or by
//! fingerprint (PKESK v6).

use std::collections::HashSet;

use sequoia_openpgp::{Fingerprint, KeyHandle, KeyID};

use super::EnvelopeError;

/// Key IDs and fingerprints of the reviewers' current encryption subkeys.
#[derive(Debug, Clone, Default)]
pub struct RecipientSet {
    key_ids: HashSet<KeyID>,
    fingerprints: HashSet<Fingerprint>,
}

impl RecipientSet {
    /// Adds one encryption-capable (sub)key.
    pub fn insert(&mut self, fingerprint: Fingerprint) {
        self.key_ids.insert(KeyID::from(&fingerprint));
        self.fingerprints.insert(fingerprint);
    }

    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    /// Accepts a PKESK recipient only if it names one of our keys. A missing recipient is a
    /// hidden (wildcard) one, which we refuse: the gateway must be able to tell that every
    /// session key is for a reviewer.
    pub fn admit(&self, recipient: Option<KeyHandle>) -> Result<(), EnvelopeError> {
        let known = match &recipient {
            None => return Err(EnvelopeError::HiddenRecipient),
            Some(KeyHandle::KeyID(id)) => self.key_ids.contains(id),
            Some(KeyHandle::Fingerprint(fp)) => self.fingerprints.contains(fp),
        };
        match (known, recipient) {
            (true, _) => Ok(()),
            (false, Some(handle)) => Err(EnvelopeError::UnknownRecipient(handle.to_hex())),
            (false, None) => Err(EnvelopeError::HiddenRecipient),
        }
    }
}
