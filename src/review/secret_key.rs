//! The reviewer's secret key: loaded, unlocked with the passphrase once, and used to decrypt.
//!
//! Any OpenPGP key with an encryption-capable secret subkey works: one from
//! `resguardo-review keygen`, `gpg --quick-gen-key` (exported with `--export-secret-keys`), or
//! `sq key generate`. The passphrase is checked up front, so a typo fails before the first
//! submission is touched rather than as a hundred "cannot decrypt" lines.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
/// A key unlocked for signing (a courier's authentication subkey).
pub use openpgp::crypto::KeyPair;
use openpgp::crypto::{Password, SessionKey};
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::stream::{DecryptionHelper, MessageStructure, VerificationHelper};
use openpgp::parse::Parse;
use openpgp::types::{KeyFlags, SymmetricAlgorithm};
use openpgp::{Fingerprint, KeyHandle, KeyID};

/// Bound on a secret key file.
const MAX_KEY_FILE: u64 = 1024 * 1024;

/// Why the reviewer's key could not be loaded or unlocked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read, or is larger than 1 MiB.
    #[error("{path}: cannot read the key: {reason}")]
    Unreadable {
        /// The key file, as given.
        path: String,
        /// The I/O error, or the size problem.
        reason: String,
    },
    /// The file does not parse as an OpenPGP certificate, or holds none.
    #[error("{path}: not an OpenPGP secret key: {reason}")]
    NotAKey {
        /// The key file, as given.
        path: String,
        /// Sequoia's parse error, or "no key in the file".
        reason: String,
    },
    /// The file holds more than one certificate; which to use would be a guess.
    #[error("{0}: the file holds several keys; give one reviewer key")]
    SeveralKeys(String),
    /// No encryption-capable subkey has secret material (e.g. a public certificate).
    #[error("{0}: no secret encryption subkey (is this the public certificate?)")]
    NoSecretEncryptionKey(String),
    /// A protected subkey did not unlock (no passphrase, or a wrong one); the primary
    /// key's fingerprint.
    #[error("wrong passphrase for key {0}")]
    WrongPassphrase(Fingerprint),
    /// No usable secret signing subkey (a key made before reviewer keys had one).
    #[error("{0}: no usable signing subkey; `resguardo-review add-signing-key` gives the key one")]
    NoSigningKey(String),
    /// No usable secret authentication subkey: not a courier key (`keygen --courier`).
    #[error("{0}: not a courier key (no secret authentication subkey); make one with `resguardo-review keygen --courier`")]
    NotACourierKey(String),
}

/// A reviewer's key, parsed but still locked.
pub struct LockedKey {
    cert: Cert,
    path: String,
}

/// The decryption subkeys of an unlocked key.
pub struct UnlockedKey {
    cert: Cert,
    keys: Vec<(KeyID, Fingerprint, KeyPair)>,
    /// The signing subkey (signs the open receipt), if the key has one.
    signer: Option<KeyPair>,
    /// True if the secret key was stored without a passphrase.
    pub unprotected: bool,
}

impl LockedKey {
    /// Reads the one certificate in the file at `path` (at most 1 MiB); unlocks nothing.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let name = path.display().to_string();
        let unreadable = |reason: String| KeyError::Unreadable {
            path: name.clone(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
        if meta.len() > MAX_KEY_FILE {
            return Err(unreadable("larger than 1 MiB".into()));
        }
        let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
        let mut certs = CertParser::from_bytes(&bytes).map_err(|e| KeyError::NotAKey {
            path: name.clone(),
            reason: e.to_string(),
        })?;
        let cert = match certs.next() {
            Some(Ok(cert)) => cert,
            Some(Err(e)) => {
                return Err(KeyError::NotAKey {
                    path: name,
                    reason: e.to_string(),
                })
            }
            None => {
                return Err(KeyError::NotAKey {
                    path: name,
                    reason: "no key in the file".into(),
                })
            }
        };
        if certs.next().is_some() {
            return Err(KeyError::SeveralKeys(name));
        }
        Ok(LockedKey { cert, path: name })
    }

    /// The primary key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.cert.fingerprint()
    }

    /// The key as read (secret parts still locked).
    pub fn cert(&self) -> &Cert {
        &self.cert
    }

    /// True if the key has a valid secret signing subkey that `passphrase` unlocks (a stub, as
    /// gpg exports an offline key, does not count).
    pub fn can_sign(&self, passphrase: Option<&Password>) -> bool {
        matches!(
            self.signer_for(KeyFlags::empty().set_signing(), passphrase),
            Ok(Some(_))
        )
    }

    /// True if at least one secret encryption subkey needs a passphrase.
    pub fn needs_passphrase(&self) -> bool {
        self.secret_encryption_keys()
            .iter()
            .any(|k| k.secret().is_encrypted())
    }

    fn secret_encryption_keys(
        &self,
    ) -> Vec<
        openpgp::packet::Key<
            openpgp::packet::key::SecretParts,
            openpgp::packet::key::UnspecifiedRole,
        >,
    > {
        // Expired or revoked subkeys still decrypt old submissions; only the capability matters.
        self.cert
            .keys()
            .with_policy(&crate::keyring::POLICY, None)
            .supported()
            .secret()
            .key_flags(
                KeyFlags::empty()
                    .set_transport_encryption()
                    .set_storage_encryption(),
            )
            .map(|ka| ka.key().clone().role_into_unspecified())
            .collect()
    }

    /// The courier key's authentication subkey, unlocked with `passphrase`: what signs courier
    /// requests. A reviewer key has none (and is refused here).
    pub fn authentication_signer(
        &self,
        passphrase: Option<&Password>,
    ) -> Result<KeyPair, KeyError> {
        self.signer_for(KeyFlags::empty().set_authentication(), passphrase)?
            .ok_or_else(|| KeyError::NotACourierKey(self.path.clone()))
    }

    /// The reviewer key's signing subkey, unlocked with `passphrase`: what signs answers to
    /// reporters.
    pub fn signing_key(&self, passphrase: Option<&Password>) -> Result<KeyPair, KeyError> {
        self.signer_for(KeyFlags::empty().set_signing(), passphrase)?
            .ok_or_else(|| KeyError::NoSigningKey(self.path.clone()))
    }

    /// The valid secret subkey with `flags`, unlocked with `passphrase`; `None` if there is none.
    fn signer_for(
        &self,
        flags: KeyFlags,
        passphrase: Option<&Password>,
    ) -> Result<Option<KeyPair>, KeyError> {
        let Some(key) = self
            .cert
            .keys()
            .with_policy(&crate::keyring::POLICY, None)
            .supported()
            .alive()
            .revoked(false)
            .secret()
            .key_flags(flags)
            .next()
            .map(|ka| ka.key().clone().role_into_unspecified())
        else {
            return Ok(None);
        };
        let key = if key.secret().is_encrypted() {
            let password = passphrase.ok_or(KeyError::WrongPassphrase(self.cert.fingerprint()))?;
            key.decrypt_secret(password)
                .map_err(|_| KeyError::WrongPassphrase(self.cert.fingerprint()))?
        } else {
            key
        };
        key.into_keypair()
            .map(Some)
            .map_err(|_| KeyError::WrongPassphrase(self.cert.fingerprint()))
    }

    /// Unlocks every secret encryption subkey with `passphrase` (ignored for unprotected keys).
    pub fn unlock(self, passphrase: Option<&Password>) -> Result<UnlockedKey, KeyError> {
        let secrets = self.secret_encryption_keys();
        if secrets.is_empty() {
            return Err(KeyError::NoSecretEncryptionKey(self.path));
        }
        // Keys without a usable signing subkey (made before reviewer keys had one, a gpg export
        // whose signing key is a stub, one under another passphrase) open reports all the same;
        // their receipts go unsigned.
        let signer = self
            .signer_for(KeyFlags::empty().set_signing(), passphrase)
            .ok()
            .flatten();
        let mut keys = Vec::new();
        let mut unprotected = true;
        for key in secrets {
            let key = if key.secret().is_encrypted() {
                unprotected = false;
                let Some(password) = passphrase else {
                    return Err(KeyError::WrongPassphrase(self.cert.fingerprint()));
                };
                match key.decrypt_secret(password) {
                    Ok(key) => key,
                    Err(_) => return Err(KeyError::WrongPassphrase(self.cert.fingerprint())),
                }
            } else {
                key
            };
            let (keyid, fingerprint) = (key.keyid(), key.fingerprint());
            let pair = key
                .into_keypair()
                .map_err(|_| KeyError::WrongPassphrase(self.cert.fingerprint()))?;
            keys.push((keyid, fingerprint, pair));
        }
        Ok(UnlockedKey {
            cert: self.cert.strip_secret_key_material(),
            keys,
            signer,
            unprotected,
        })
    }
}

impl UnlockedKey {
    /// The primary key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.cert.fingerprint()
    }

    /// Takes the signing subkey out (to sign the receipt after the decryption keys are gone).
    pub fn take_signer(&mut self) -> Option<KeyPair> {
        self.signer.take()
    }

    /// A decryption helper for one message. It sets `addressed_to_us` when a session key in the
    /// message is for this key (so "not for us" and "for us but damaged" can be told apart).
    pub fn helper(&mut self, addressed_to_us: Arc<AtomicBool>) -> Helper<'_> {
        Helper {
            key: self,
            addressed_to_us,
        }
    }
}

/// Sequoia's callbacks for one message.
pub struct Helper<'a> {
    key: &'a mut UnlockedKey,
    addressed_to_us: Arc<AtomicBool>,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        // Submissions are anonymous: there are no signatures to verify.
        Ok(Vec::new())
    }

    fn check(&mut self, _: MessageStructure) -> openpgp::Result<()> {
        Ok(())
    }
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        for pkesk in pkesks {
            for (keyid, fingerprint, pair) in self.key.keys.iter_mut() {
                let ours = match pkesk.recipient() {
                    Some(KeyHandle::KeyID(id)) => id == *keyid,
                    Some(KeyHandle::Fingerprint(fp)) => fp == *fingerprint,
                    // A hidden recipient: try every key.
                    None => true,
                };
                if !ours {
                    continue;
                }
                self.addressed_to_us.store(true, Ordering::Relaxed);
                if let Some((algo, session_key)) = pkesk.decrypt(pair, sym_algo) {
                    if decrypt(algo, &session_key) {
                        return Ok(Some(self.key.cert.clone()));
                    }
                }
            }
        }
        Err(anyhow::anyhow!(
            "no session key could be decrypted with this key"
        ))
    }
}
