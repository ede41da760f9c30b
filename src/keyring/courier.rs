//! The couriers' certificates: the on-call keys that read triage envelopes and sign courier
//! requests (`docs/early-alerts.md`). A courier key has an authentication subkey, which a reviewer
//! key never has; that is how the two are kept apart.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::packet::Signature;
use openpgp::parse::Parse;
use openpgp::serialize::stream::Recipient;
use openpgp::types::RevocationStatus;
use openpgp::{Fingerprint, KeyHandle, Packet};

use super::{
    load_members, recipient_set_of, recipients_of, validate, KeyRole, KeyringError, Reviewer,
    ReviewerKeyring, MAX_COURIERS, POLICY,
};
use crate::envelope::RecipientSet;

/// A request signature's creation time may be this far from the gateway's clock.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// How far ahead a reviewer's signature (made on the offline machine) may be dated.
const OFFLINE_CLOCK_SKEW: Duration = Duration::from_secs(86_400);

/// Largest request signature read (a real one is about 120 bytes).
pub const MAX_SIGNATURE_BYTES: usize = 2048;

/// The validated couriers; may be empty (then clients send no triage envelope).
#[derive(Debug, Clone, Default)]
pub struct CourierKeyring {
    couriers: Vec<Reviewer>,
}

/// Why a courier request's signature is not accepted (each has its own refusal code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRefusal {
    /// Not one OpenPGP signature packet, or one without an issuer.
    #[error("the request signature is not an OpenPGP signature")]
    Malformed,
    /// No configured key made it.
    #[error("the request is signed by a key this gateway does not know")]
    UnknownKey,
    /// A reviewer's key, or a courier's key other than its authentication subkey.
    #[error("the request is signed by a key that is not a courier's authentication key")]
    NotACourier,
    /// The courier's certificate or subkey has expired.
    #[error("the courier key has expired")]
    Expired,
    /// The courier's certificate or subkey is revoked.
    #[error("the courier key is revoked")]
    Revoked,
    /// A good key, but the signature is not over this request (or not made now).
    #[error("the signature is not over this request")]
    WrongRequest,
}

impl CourierKeyring {
    /// Loads the couriers' certificates; `reviewers` are the configured reviewers (when they
    /// loaded), so that one key in both roles is refused. Every problem is returned.
    pub fn load(
        paths: &[PathBuf],
        reviewers: Option<&ReviewerKeyring>,
    ) -> Result<Self, Vec<KeyringError>> {
        if paths.len() > MAX_COURIERS {
            return Err(vec![KeyringError::TooManyCouriers]);
        }
        let (members, mut problems) = load_members(paths, KeyRole::Courier);
        for (path, courier) in &members {
            if reviewers
                .iter()
                .flat_map(|k| k.reviewers())
                .any(|r| r.fingerprint() == courier.fingerprint())
            {
                problems.push(KeyringError::BothRoles {
                    path: (*path).clone(),
                    fingerprint: courier.fingerprint(),
                });
            }
        }
        if problems.is_empty() {
            let couriers = members.into_iter().map(|(_, c)| c).collect();
            Ok(CourierKeyring { couriers })
        } else {
            Err(problems)
        }
    }

    /// Validates courier certificates that arrived another way (a client reads them from
    /// `GET /api/v1/keys`); `origin` names where they came from in errors.
    pub fn from_certs(origin: &Path, certs: Vec<Cert>) -> Result<Self, KeyringError> {
        if certs.len() > MAX_COURIERS {
            return Err(KeyringError::TooManyCouriers);
        }
        let mut couriers: Vec<Reviewer> = Vec::new();
        for cert in certs {
            let courier = validate(origin, cert, KeyRole::Courier)?;
            if couriers
                .iter()
                .any(|c| c.fingerprint() == courier.fingerprint())
            {
                return Err(KeyringError::Duplicate {
                    path: origin.to_path_buf(),
                    fingerprint: courier.fingerprint(),
                });
            }
            couriers.push(courier);
        }
        Ok(CourierKeyring { couriers })
    }

    /// The couriers in configuration order.
    pub fn couriers(&self) -> &[Reviewer] {
        &self.couriers
    }

    /// True when no courier is configured.
    pub fn is_empty(&self) -> bool {
        self.couriers.is_empty()
    }

    /// The encryption subkeys a triage envelope may be addressed to.
    pub fn recipient_set(&self) -> RecipientSet {
        recipient_set_of(&self.couriers)
    }

    /// The recipients of a new triage envelope: every courier's encryption subkeys.
    pub fn recipients(&self) -> Vec<Recipient<'_>> {
        recipients_of(&self.couriers)
    }

    /// Checks a detached signature over `signed` made `now`: by the valid authentication subkey
    /// of a configured courier. `reviewers` lets a reviewer's key be told from a stranger's.
    /// Returns the courier's fingerprint.
    pub fn verify_request(
        &self,
        signature: &[u8],
        signed: &[u8],
        reviewers: &ReviewerKeyring,
        now: SystemTime,
    ) -> Result<Fingerprint, SignatureRefusal> {
        let (sig, issuers) = parse_signature(signature)?;
        let Some(courier) = self
            .couriers
            .iter()
            .find(|c| issuers.iter().any(|h| has_key(c.cert(), h)))
        else {
            let a_reviewer = reviewers
                .reviewers()
                .iter()
                .any(|r| issuers.iter().any(|h| has_key(r.cert(), h)));
            return Err(if a_reviewer {
                SignatureRefusal::NotACourier
            } else {
                SignatureRefusal::UnknownKey
            });
        };
        check_signer(
            courier.cert(),
            &sig,
            &issuers,
            signed,
            now,
            SignerRole::Courier,
        )?;
        Ok(courier.fingerprint())
    }
}

pub(super) fn has_key(cert: &Cert, handle: &KeyHandle) -> bool {
    cert.keys().any(|k| k.key().key_handle().aliases(handle))
}

/// Which kind of key a signature must come from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum SignerRole {
    /// A courier's authentication subkey, over a request.
    Courier,
    /// A reviewer's signing subkey, over a document (an open receipt).
    Reviewer,
}

/// Parses one detached signature packet and its issuers.
pub(super) fn parse_signature(
    bytes: &[u8],
) -> Result<(Signature, Vec<KeyHandle>), SignatureRefusal> {
    if bytes.len() > MAX_SIGNATURE_BYTES {
        return Err(SignatureRefusal::Malformed);
    }
    let sig = match Packet::from_bytes(bytes) {
        Ok(Packet::Signature(sig)) => sig,
        _ => return Err(SignatureRefusal::Malformed),
    };
    let issuers = sig.get_issuers();
    if issuers.is_empty() {
        return Err(SignatureRefusal::Malformed);
    }
    Ok((sig, issuers))
}

/// The signature must be by the certificate's key for `role` (authentication or signing),
/// valid at `now`.
pub(super) fn check_signer(
    cert: &Cert,
    sig: &Signature,
    issuers: &[KeyHandle],
    signed: &[u8],
    now: SystemTime,
    role: SignerRole,
) -> Result<(), SignatureRefusal> {
    let valid = match cert.with_policy(&POLICY, now) {
        Ok(valid) => valid,
        Err(_) => return Err(SignatureRefusal::Expired),
    };
    if let RevocationStatus::Revoked(_) = valid.revocation_status() {
        return Err(SignatureRefusal::Revoked);
    }
    if valid.alive().is_err() {
        return Err(SignatureRefusal::Expired);
    }
    let Some(key) = valid
        .keys()
        .find(|k| issuers.iter().any(|h| k.key().key_handle().aliases(h)))
    else {
        // The issuer is a key of this cert that the policy no longer accepts.
        return Err(SignatureRefusal::Expired);
    };
    if let RevocationStatus::Revoked(_) = key.revocation_status() {
        return Err(SignatureRefusal::Revoked);
    }
    if key.alive().is_err() {
        return Err(SignatureRefusal::Expired);
    }
    let capable = key.key_flags().is_some_and(|flags| match role {
        SignerRole::Courier => flags.for_authentication(),
        SignerRole::Reviewer => flags.for_signing(),
    });
    if !capable {
        return Err(match role {
            SignerRole::Courier => SignatureRefusal::NotACourier,
            SignerRole::Reviewer => SignatureRefusal::UnknownKey,
        });
    }
    sig.verify_message(key.key(), signed)
        .map_err(|_| SignatureRefusal::WrongRequest)?;
    // Freshness is the challenge's business; this only refuses a signature from the future. An
    // offline machine's clock (receipts, replies) may run ahead by more than a networked one's.
    let skew = match role {
        SignerRole::Courier => CLOCK_SKEW,
        SignerRole::Reviewer => OFFLINE_CLOCK_SKEW,
    };
    sig.signature_alive(now, skew)
        .map_err(|_| SignatureRefusal::WrongRequest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::{generate_reviewer_key, KeyProfile, ReviewerKeyOptions};
    use openpgp::cert::CertRevocationBuilder;
    use openpgp::crypto::{KeyPair, Password};
    use openpgp::packet::signature::SignatureBuilder;
    use openpgp::serialize::SerializeInto;
    use openpgp::types::{ReasonForRevocation, SignatureType};

    fn courier(validity: Option<Duration>) -> Cert {
        generate_reviewer_key(ReviewerKeyOptions {
            name: "c".into(),
            profile: KeyProfile::Compatible,
            passphrase: Password::from("test"),
            validity,
            role: KeyRole::Courier,
        })
        .unwrap()
        .cert
    }

    fn pair(cert: &Cert, flags: fn(&openpgp::types::KeyFlags) -> bool) -> KeyPair {
        cert.keys()
            .with_policy(&POLICY, None)
            .secret()
            .find(|k| k.key_flags().is_some_and(|f| flags(&f)))
            .unwrap()
            .key()
            .clone()
            .decrypt_secret(&Password::from("test"))
            .unwrap()
            .into_keypair()
            .unwrap()
    }

    fn sign(cert: &Cert, text: &[u8]) -> Vec<u8> {
        let mut signer = pair(cert, |f| f.for_authentication());
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .sign_message(&mut signer, text)
            .unwrap();
        Packet::from(sig).to_vec().unwrap()
    }

    fn reviewers() -> ReviewerKeyring {
        crate::testing::keyring(&[&crate::testing::reviewer_key("r", KeyProfile::Compatible)])
    }

    #[test]
    fn a_courier_key_that_expires_while_the_gateway_runs_is_refused_as_expired() {
        // (Sequoia backdates a new key a little, so leave it a few minutes.)
        let cert = courier(Some(Duration::from_secs(600)));
        let ring = CourierKeyring::from_certs(
            Path::new("t"),
            vec![cert.clone().strip_secret_key_material()],
        )
        .unwrap();
        let sig = sign(&cert, b"text");
        let now = SystemTime::now();
        assert!(ring
            .verify_request(&sig, b"text", &reviewers(), now)
            .is_ok());
        let later = now + Duration::from_secs(1200);
        assert_eq!(
            ring.verify_request(&sig, b"text", &reviewers(), later),
            Err(SignatureRefusal::Expired)
        );
    }

    #[test]
    fn a_courier_key_revoked_while_the_gateway_runs_is_refused_as_revoked() {
        let cert = courier(None);
        // A revocation that takes effect in a minute: loaded now, refused after. (A "key
        // compromised" revocation would count from the key's creation, so it could not load.)
        let mut primary = pair(&cert, |f| f.for_certification());
        let when = SystemTime::now() + Duration::from_secs(60);
        let revocation = CertRevocationBuilder::new()
            .set_signature_creation_time(when)
            .unwrap()
            .set_reason_for_revocation(ReasonForRevocation::KeyRetired, b"rota ended")
            .unwrap()
            .build(&mut primary, &cert, None)
            .unwrap();
        let revoked = cert.clone().insert_packets(revocation).unwrap().0;
        let ring =
            CourierKeyring::from_certs(Path::new("t"), vec![revoked.strip_secret_key_material()])
                .unwrap();
        let sig = sign(&cert, b"text");
        let later = SystemTime::now() + Duration::from_secs(120);
        assert_eq!(
            ring.verify_request(&sig, b"text", &reviewers(), later),
            Err(SignatureRefusal::Revoked)
        );
    }

    /// Regression: sq's default keys carry an authentication subkey next to a signing one; a
    /// reviewer using such a key was refused as "a courier key".
    #[test]
    fn a_key_that_can_sign_and_authenticate_is_a_reviewer_key() {
        let (sq_like, _) = CertBuilder::new()
            .add_userid("sq-style")
            .add_signing_subkey()
            .add_authentication_subkey()
            .add_transport_encryption_subkey()
            .generate()
            .unwrap();
        let public = sq_like.strip_secret_key_material();
        assert!(ReviewerKeyring::from_certs(Path::new("t"), vec![public.clone()]).is_ok());
        assert!(matches!(
            CourierKeyring::from_certs(Path::new("t"), vec![public]),
            Err(KeyringError::NotACourierKey { .. })
        ));
    }

    #[test]
    fn a_reviewer_key_is_not_a_courier_and_the_reverse() {
        let reviewer = crate::testing::reviewer_key("r", KeyProfile::Compatible);
        let public = reviewer.strip_secret_key_material();
        assert!(matches!(
            CourierKeyring::from_certs(Path::new("t"), vec![public]),
            Err(KeyringError::NotACourierKey { .. })
        ));
        let courier = courier(None).strip_secret_key_material();
        assert!(matches!(
            ReviewerKeyring::from_certs(Path::new("t"), vec![courier]),
            Err(KeyringError::CourierKeyAsReviewer { .. })
        ));
    }
}
