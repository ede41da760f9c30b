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
    /// A reviewer's offline key, or a courier's on-call key (which adds an authentication
    /// subkey for signing courier requests).
    pub role: KeyRole,
}

/// A new key pair and its revocation certificate (to keep offline, for when the key is lost).
pub struct GeneratedKey {
    /// The new certificate including its (passphrase-protected) secret keys.
    pub cert: Cert,
    /// A revocation signature for the primary key, to publish if the key is lost or compromised.
    pub revocation: Signature,
}

/// Generates a Curve25519 certification key with a separate encryption subkey (and, for a
/// courier, an Ed25519 authentication subkey), the secret parts protected by the passphrase.
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
        KeyRole::Reviewer => builder,
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
