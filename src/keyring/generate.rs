//! Making a reviewer key pair.
//!
//! The default profile is chosen for the widest reach, not for the newest format: a v4 key whose
//! features advertise SEIPD v1 only. Senders (openpgp.js in the browser, sequoia, GnuPG) then all
//! produce SEIPD v1 messages, which GnuPG 2.2 (Debian stable, Tails, Kleopatra) can open, and which
//! openpgp.js encrypts an order of magnitude faster than SEIPD v2 with OCB. `rfc9580` makes a v6
//! key that allows SEIPD v2 (AEAD), for teams that only use sequoia-based tools.

use std::time::Duration;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::Password;
use openpgp::packet::Signature;
use openpgp::types::{Features, KeyFlags};
use openpgp::Profile;

use super::KeyRole;

/// Which kind of reviewer key to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyProfile {
    /// v4 key, SEIPD v1 only: readable by GnuPG 2.2.
    #[default]
    Compatible,
    /// v6 key (RFC 9580), SEIPD v2 allowed: faster, sequoia/openpgp.js only.
    Rfc9580,
}

/// What `resguardo-review keygen` asks for.
pub struct ReviewerKeyOptions {
    /// The user ID: the reviewer's name or role as it will appear in the key.
    pub name: String,
    /// Key version and which encrypted container senders may use.
    pub profile: KeyProfile,
    /// Protects the secret key material of the generated key.
    pub passphrase: Password,
    /// None: the key does not expire.
    pub validity: Option<Duration>,
    /// A reviewer's offline key (with a signing subkey for receipts and replies), or a
    /// courier's on-call key (an authentication subkey for courier requests instead).
    pub role: KeyRole,
}

/// A new key pair and its revocation certificate (to keep offline, for when the key is lost).
pub struct GeneratedKey {
    /// The new certificate including its (passphrase-protected) secret keys.
    pub cert: Cert,
    /// A revocation signature for the primary key, to publish if the key is lost or compromised.
    pub revocation: Signature,
}

/// Generates a Curve25519 certification key with a separate encryption subkey and, for a
/// reviewer, an Ed25519 signing subkey (for a courier, an Ed25519 authentication subkey and no
/// signing one), the secret parts protected by the passphrase.
pub fn generate_reviewer_key(options: ReviewerKeyOptions) -> openpgp::Result<GeneratedKey> {
    let builder = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_userid(options.name.as_str())
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_subkey(
            KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
            None,
            None,
        )
        .set_validity_period(options.validity)
        .set_password(Some(options.passphrase));
    let builder = match options.role {
        // A reviewer signs what leaves the offline machine (open receipts, replies).
        KeyRole::Reviewer => builder.add_signing_subkey(),
        KeyRole::Courier => builder.add_subkey(KeyFlags::empty().set_authentication(), None, None),
    };
    let builder = match options.profile {
        KeyProfile::Compatible => builder
            .set_profile(Profile::RFC4880)?
            .set_features(Features::empty().set_seipdv1())?,
        KeyProfile::Rfc9580 => builder.set_profile(Profile::RFC9580)?,
    };
    let (cert, revocation) = builder.generate()?;
    Ok(GeneratedKey { cert, revocation })
}

/// What `resguardo-review keygen --org` asks for: the organisation key only vouches (it signs
/// the key list, `docs/trust-v1.md`), so it has no subkeys.
pub struct OrgKeyOptions {
    /// The user ID: the organisation's name.
    pub name: String,
    /// Protects the secret primary key.
    pub passphrase: Password,
    /// None: the key does not expire.
    pub validity: Option<Duration>,
}

/// Generates an organisation key: a v4 Ed25519 primary key that certifies and signs, no
/// subkeys, its secret part protected by the passphrase. v4 so that its fingerprint is the 40
/// hex digits printed on the fingerprint card.
pub fn generate_org_key(options: OrgKeyOptions) -> openpgp::Result<GeneratedKey> {
    let (cert, revocation) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_profile(Profile::RFC4880)?
        .add_userid(options.name.as_str())
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .set_validity_period(options.validity)
        .set_password(Some(options.passphrase))
        .generate()?;
    Ok(GeneratedKey { cert, revocation })
}

/// Adds an Ed25519 signing subkey to a reviewer key made before reviewer keys had one (same
/// primary key and fingerprint, same passphrase). `key` must hold the secret primary key.
pub fn add_signing_subkey(key: &Cert, passphrase: Option<&Password>) -> openpgp::Result<Cert> {
    let policy = &super::POLICY;
    let primary = key.primary_key().key().clone().parts_into_secret()?;
    let primary = match (primary.secret().is_encrypted(), passphrase) {
        (true, Some(p)) => primary.decrypt_secret(p)?,
        (true, None) => return Err(anyhow::anyhow!("the key needs its passphrase")),
        (false, _) => primary,
    };
    let valid = key.with_policy(policy, None)?;
    KeyBuilder::new(KeyFlags::empty().set_signing())
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_password(passphrase.cloned())
        .subkey(valid)?
        .set_primary_key_signer(primary.into_keypair()?)
        .attach_cert()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::ReviewerKeyring;
    use openpgp::packet::signature::SignatureBuilder;
    use openpgp::serialize::SerializeInto;
    use openpgp::types::SignatureType;
    use std::time::SystemTime;

    /// A reviewer key as `keygen` made them before reviewer keys had a signing subkey.
    fn old_reviewer_key(passphrase: &Password) -> Cert {
        CertBuilder::new()
            .set_cipher_suite(CipherSuite::Cv25519)
            .add_userid("old reviewer")
            .set_primary_key_flags(KeyFlags::empty().set_certification())
            .add_subkey(
                KeyFlags::empty()
                    .set_transport_encryption()
                    .set_storage_encryption(),
                None,
                None,
            )
            .set_password(Some(passphrase.clone()))
            .generate()
            .unwrap()
            .0
    }

    fn sign_with_signing_subkey(key: &Cert, passphrase: &Password, text: &[u8]) -> Vec<u8> {
        let subkey = key
            .keys()
            .with_policy(&crate::keyring::POLICY, None)
            .secret()
            .for_signing()
            .next()
            .expect("a signing subkey")
            .key()
            .clone()
            .decrypt_secret(passphrase)
            .expect("the same passphrase unlocks it");
        let mut signer = subkey.into_keypair().unwrap();
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .sign_message(&mut signer, text)
            .unwrap();
        openpgp::Packet::from(sig).to_vec().unwrap()
    }

    #[test]
    fn new_reviewer_keys_sign_and_older_ones_gain_a_signing_subkey_keeping_their_fingerprint() {
        let passphrase = Password::from("correct horse");
        let fresh = generate_reviewer_key(ReviewerKeyOptions {
            name: "new".into(),
            profile: KeyProfile::Compatible,
            passphrase: passphrase.clone(),
            validity: None,
            role: KeyRole::Reviewer,
        })
        .unwrap()
        .cert;
        let old = old_reviewer_key(&passphrase);
        assert!(add_signing_subkey(&old, Some(&Password::from("wrong"))).is_err());
        let upgraded = add_signing_subkey(&old, Some(&passphrase)).unwrap();
        assert_eq!(upgraded.fingerprint(), old.fingerprint());

        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (n, cert) in [&fresh, &upgraded].into_iter().enumerate() {
            let path = dir.path().join(format!("{n}.asc"));
            std::fs::write(&path, cert.armored().to_vec().unwrap()).unwrap();
            paths.push(path);
        }
        let keyring = ReviewerKeyring::load(&paths).expect("both are reviewer keys");
        for cert in [&fresh, &upgraded] {
            let sig = sign_with_signing_subkey(cert, &passphrase, b"receipt");
            assert_eq!(
                keyring.verify_document(&sig, b"receipt", SystemTime::now()),
                Ok(cert.fingerprint())
            );
            assert!(keyring
                .verify_document(&sig, b"another receipt", SystemTime::now())
                .is_err());
        }
    }
}
