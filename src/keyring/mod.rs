//! The reviewers' certificates: loading, validating, and what the rest of the system needs of them.
//!
//! Every part of Resguardo that encrypts (the submit client, the server-sealed form) or checks
//! encryption (the gateway) works from a [`ReviewerKeyring`]. Validation happens once, here, with
//! sequoia's standard policy, so a cert that is expired, revoked, uses broken algorithms or has
//! no usable encryption subkey is refused before anything is encrypted to it.

mod courier;
mod generate;

pub use courier::{CourierKeyring, SignatureRefusal, MAX_SIGNATURE_BYTES};
pub use generate::{
    add_signing_subkey, generate_org_key, generate_reviewer_key, GeneratedKey, KeyProfile,
    OrgKeyOptions, ReviewerKeyOptions,
};

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::packet::key::PublicParts;
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::Recipient;
use openpgp::serialize::SerializeInto;
use openpgp::types::{KeyFlags, RevocationStatus};
use openpgp::Fingerprint;

use crate::envelope::RecipientSet;
use sequoia_openpgp::types::PublicKeyAlgorithm;

/// At most this many reviewers; a bound on config input and on the work per submission.
pub const MAX_REVIEWERS: usize = 32;

/// At most this many couriers (each adds a PKESK to every triage envelope).
pub const MAX_COURIERS: usize = 16;

/// Largest certificate file we read (real certs are a few KiB).
const MAX_CERT_FILE: u64 = 1024 * 1024;

/// Why a reviewer certificate cannot be used. Each message names the file, so an operator reading
/// the config errors knows exactly what to fix.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The file cannot be read: missing, unreadable, not a regular file, or over 1 MiB.
    #[error("{path}: cannot read: {reason}")]
    Unreadable {
        /// The certificate file.
        path: PathBuf,
        /// The I/O error, or which of the above checks failed.
        reason: String,
    },
    /// The bytes do not parse as an OpenPGP certificate.
    #[error("{path}: not an OpenPGP certificate: {reason}")]
    NotACert {
        /// The certificate file.
        path: PathBuf,
        /// Sequoia's parse error.
        reason: String,
    },
    /// The certificate includes secret key material; only public certificates are accepted.
    #[error("{path}: contains secret key material; configure the public certificate only")]
    SecretKeyMaterial {
        /// The certificate file, or the origin given to [`ReviewerKeyring::from_certs`].
        path: PathBuf,
    },
    /// Sequoia's standard policy rejects the certificate (e.g. no valid self-signature, weak
    /// algorithms).
    #[error("{path}: certificate {fingerprint} is not valid under the standard policy: {reason}")]
    Invalid {
        /// The certificate file, or the origin given to [`ReviewerKeyring::from_certs`].
        path: PathBuf,
        /// Fingerprint of the certificate's primary key.
        fingerprint: Fingerprint,
        /// The policy's explanation.
        reason: String,
    },
    /// The primary key is past its expiration time.
    #[error("{path}: certificate {fingerprint} has expired")]
    Expired {
        /// The certificate file, or the origin given to [`ReviewerKeyring::from_certs`].
        path: PathBuf,
        /// Fingerprint of the certificate's primary key.
        fingerprint: Fingerprint,
    },
    /// The certificate carries a revocation signature.
    #[error("{path}: certificate {fingerprint} is revoked")]
    Revoked {
        /// The certificate file, or the origin given to [`ReviewerKeyring::from_certs`].
        path: PathBuf,
        /// Fingerprint of the certificate's primary key.
        fingerprint: Fingerprint,
    },
    /// No subkey is alive, unrevoked, policy-valid and flagged for encryption.
    #[error("{path}: certificate {fingerprint} has no valid encryption-capable subkey")]
    NoEncryptionKey {
        /// The certificate file, or the origin given to [`ReviewerKeyring::from_certs`].
        path: PathBuf,
        /// Fingerprint of the certificate's primary key.
        fingerprint: Fingerprint,
    },
    /// A certificate with the same primary fingerprint was already loaded.
    #[error("{path}: certificate {fingerprint} is listed twice")]
    Duplicate {
        /// The file (or origin) of the second copy.
        path: PathBuf,
        /// Fingerprint of the certificate's primary key.
        fingerprint: Fingerprint,
    },
    /// The list of certificates is empty; the gateway cannot accept anything without reviewers.
    #[error("no reviewer certificates are configured")]
    Empty,
    /// More than [`MAX_REVIEWERS`] certificates were given.
    #[error("more than {MAX_REVIEWERS} reviewer certificates are configured")]
    TooMany,
    /// A courier key (an authentication subkey and no signing key) where a reviewer key belongs.
    #[error(
        "{path}: certificate {fingerprint} is a courier key (it authenticates and cannot sign); \
         list it under [[couriers]], and give reviewer_certs the reviewers' offline keys"
    )]
    CourierKeyAsReviewer {
        /// The file that holds it.
        path: PathBuf,
        /// Fingerprint of the certificate's primary key.
        fingerprint: Fingerprint,
    },
    /// A key that is not courier-shaped (an authentication subkey and no signing key) where a
    /// courier key belongs.
    #[error(
        "{path}: certificate {fingerprint} is not a courier key (a courier key has a valid \
         authentication subkey and no signing key); make one with `resguardo-review keygen \
         --courier`"
    )]
    NotACourierKey {
        /// The file that holds it.
        path: PathBuf,
        /// Fingerprint of the certificate's primary key.
        fingerprint: Fingerprint,
    },
    /// The same certificate listed as a reviewer and as a courier.
    #[error(
        "{path}: certificate {fingerprint} is listed both as a reviewer and as a courier; an \
         offline key must never be on a networked device"
    )]
    BothRoles {
        /// The courier entry that repeats a reviewer.
        path: PathBuf,
        /// Fingerprint of the certificate's primary key.
        fingerprint: Fingerprint,
    },
    /// More than [`MAX_COURIERS`] courier certificates were given.
    #[error("more than {MAX_COURIERS} courier certificates are configured")]
    TooManyCouriers,
}

/// What a certificate is for: the role decides which subkeys it must (and must not) have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// An offline key: encryption subkey, no authentication subkey.
    Reviewer,
    /// An on-call key: encryption and authentication subkeys.
    Courier,
}

/// One vetted reviewer: a validated public certificate.
#[derive(Clone)]
pub struct Reviewer {
    cert: Cert,
    name: String,
    /// Each encryption subkey, with its public-key algorithm.
    encryption_keys: Vec<(Fingerprint, PublicKeyAlgorithm)>,
}

impl fmt::Debug for Reviewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reviewer")
            .field("fingerprint", &self.fingerprint())
            .field("name", &self.name)
            .finish()
    }
}

impl Reviewer {
    /// Fingerprint of the certificate's primary key; unique within a [`ReviewerKeyring`].
    pub fn fingerprint(&self) -> Fingerprint {
        self.cert.fingerprint()
    }

    /// The primary user ID, or "(no user ID)".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The validated public certificate (never contains secret key material).
    pub fn cert(&self) -> &Cert {
        &self.cert
    }

    /// The public certificate, ASCII-armored.
    pub fn armored(&self) -> String {
        self.cert
            .armored()
            .to_vec()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

/// The validated set of reviewers that submissions are encrypted to.
#[derive(Debug, Clone)]
pub struct ReviewerKeyring {
    reviewers: Vec<Reviewer>,
}

impl ReviewerKeyring {
    /// Loads and validates one certificate per file. Returns every problem found, not just the
    /// first, so an operator can fix a config in one go.
    pub fn load(paths: &[PathBuf]) -> Result<Self, Vec<KeyringError>> {
        if paths.is_empty() {
            return Err(vec![KeyringError::Empty]);
        }
        if paths.len() > MAX_REVIEWERS {
            return Err(vec![KeyringError::TooMany]);
        }
        let (members, problems) = load_members(paths, KeyRole::Reviewer);
        if problems.is_empty() {
            let reviewers = members.into_iter().map(|(_, r)| r).collect();
            Ok(ReviewerKeyring { reviewers })
        } else {
            Err(problems)
        }
    }

    /// Validates certificates that arrived some other way (the submit client gets them over
    /// HTTPS). `origin` names where they came from in error messages.
    pub fn from_certs(origin: &Path, certs: Vec<Cert>) -> Result<Self, KeyringError> {
        if certs.is_empty() {
            return Err(KeyringError::Empty);
        }
        if certs.len() > MAX_REVIEWERS {
            return Err(KeyringError::TooMany);
        }
        let mut reviewers: Vec<Reviewer> = Vec::new();
        for cert in certs {
            let reviewer = validate(origin, cert, KeyRole::Reviewer)?;
            if reviewers
                .iter()
                .any(|r| r.fingerprint() == reviewer.fingerprint())
            {
                return Err(KeyringError::Duplicate {
                    path: origin.to_path_buf(),
                    fingerprint: reviewer.fingerprint(),
                });
            }
            reviewers.push(reviewer);
        }
        Ok(ReviewerKeyring { reviewers })
    }

    /// The reviewers in configuration order; never empty, at most [`MAX_REVIEWERS`].
    pub fn reviewers(&self) -> &[Reviewer] {
        &self.reviewers
    }

    /// The encryption subkeys a submission may be addressed to.
    pub fn recipient_set(&self) -> RecipientSet {
        recipient_set_of(&self.reviewers)
    }

    /// The recipients of a new submission: every valid encryption subkey of every reviewer,
    /// each with its certificate's features, so SEIPD v1-only certs get SEIPD v1.
    pub fn recipients(&self) -> Vec<Recipient<'_>> {
        recipients_of(&self.reviewers)
    }

    /// Checks a detached signature over `signed` (an open receipt): by the valid signing subkey
    /// of a configured reviewer, made no later than `now`. Returns the reviewer's fingerprint.
    /// A courier's key never passes: it has no signing subkey.
    pub fn verify_document(
        &self,
        signature: &[u8],
        signed: &[u8],
        now: SystemTime,
    ) -> Result<Fingerprint, SignatureRefusal> {
        let (sig, issuers) = courier::parse_signature(signature)?;
        let reviewer = self
            .reviewers
            .iter()
            .find(|r| issuers.iter().any(|h| courier::has_key(r.cert(), h)))
            .ok_or(SignatureRefusal::UnknownKey)?;
        courier::check_signer(
            reviewer.cert(),
            &sig,
            &issuers,
            signed,
            now,
            courier::SignerRole::Reviewer,
        )?;
        Ok(reviewer.fingerprint())
    }
}

/// Loads and validates one certificate per file in `role`: the members (with their files),
/// and every problem.
fn load_members(
    paths: &[PathBuf],
    role: KeyRole,
) -> (Vec<(&PathBuf, Reviewer)>, Vec<KeyringError>) {
    let mut problems = Vec::new();
    let mut members: Vec<(&PathBuf, Reviewer)> = Vec::new();
    for path in paths {
        match read_cert_file(path).and_then(|cert| validate(path, cert, role)) {
            Ok(member) => {
                if members
                    .iter()
                    .any(|(_, r)| r.fingerprint() == member.fingerprint())
                {
                    problems.push(KeyringError::Duplicate {
                        path: path.clone(),
                        fingerprint: member.fingerprint(),
                    });
                } else {
                    members.push((path, member));
                }
            }
            Err(e) => problems.push(e),
        }
    }
    (members, problems)
}

fn recipient_set_of(members: &[Reviewer]) -> RecipientSet {
    let mut set = RecipientSet::default();
    for member in members {
        for (fpr, algo) in &member.encryption_keys {
            set.insert(fpr.clone(), *algo);
        }
    }
    set
}

fn recipients_of(members: &[Reviewer]) -> Vec<Recipient<'_>> {
    members
        .iter()
        .flat_map(|r| encryption_subkeys(&r.cert).into_iter().map(Recipient::from))
        .collect()
}

/// The valid authentication-capable keys of a certificate (a courier's request-signing key).
fn authentication_keys(cert: &Cert) -> Vec<ValidErasedKeyAmalgamation<'_, PublicParts>> {
    cert.keys()
        .with_policy(&POLICY, None)
        .supported()
        .alive()
        .revoked(false)
        .key_flags(KeyFlags::empty().set_authentication())
        .collect()
}

fn read_cert_file(path: &Path) -> Result<Cert, KeyringError> {
    let unreadable = |reason: String| KeyringError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(unreadable("not a regular file".into()));
    }
    if meta.len() > MAX_CERT_FILE {
        return Err(unreadable(format!(
            "larger than {} KiB",
            MAX_CERT_FILE / 1024
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
    Cert::from_bytes(&bytes).map_err(|e| KeyringError::NotACert {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The one OpenPGP policy of Resguardo (sequoia's standard policy), used for validating
/// certificates, choosing recipients and decrypting; static so that borrowed key handles can
/// outlive a call.
pub(crate) static POLICY: StandardPolicy<'static> = StandardPolicy::new();

fn encryption_subkeys(cert: &Cert) -> Vec<ValidErasedKeyAmalgamation<'_, PublicParts>> {
    cert.keys()
        .with_policy(&POLICY, None)
        .supported()
        .alive()
        .revoked(false)
        .key_flags(
            KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
        )
        .collect()
}

fn validate(path: &Path, cert: Cert, role: KeyRole) -> Result<Reviewer, KeyringError> {
    let path = path.to_path_buf();
    let fingerprint = cert.fingerprint();
    if cert.is_tsk() {
        return Err(KeyringError::SecretKeyMaterial { path });
    }
    let valid =
        cert.with_policy(&POLICY, SystemTime::now())
            .map_err(|e| KeyringError::Invalid {
                path: path.clone(),
                fingerprint: fingerprint.clone(),
                reason: e.to_string(),
            })?;
    if let RevocationStatus::Revoked(_) = valid.revocation_status() {
        return Err(KeyringError::Revoked { path, fingerprint });
    }
    if valid.alive().is_err() {
        return Err(KeyringError::Expired { path, fingerprint });
    }
    let name = valid
        .primary_userid()
        .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        .unwrap_or_else(|_| "(no user ID)".into());
    let encryption_keys: Vec<(Fingerprint, PublicKeyAlgorithm)> = encryption_subkeys(&cert)
        .iter()
        .map(|ka| (ka.key().fingerprint(), ka.key().pk_algo()))
        .collect();
    if encryption_keys.is_empty() {
        return Err(KeyringError::NoEncryptionKey { path, fingerprint });
    }
    // A courier key (`keygen --courier`) authenticates and cannot sign. Keys that can do both
    // (sq's default keys have an authentication subkey next to a signing one) are ordinary
    // OpenPGP keys that reviewers use too.
    let signs = cert
        .keys()
        .with_policy(&POLICY, None)
        .supported()
        .alive()
        .revoked(false)
        .key_flags(KeyFlags::empty().set_signing())
        .next()
        .is_some();
    let courier_shaped = !signs && !authentication_keys(&cert).is_empty();
    match (role, courier_shaped) {
        (KeyRole::Reviewer, true) => {
            return Err(KeyringError::CourierKeyAsReviewer { path, fingerprint })
        }
        (KeyRole::Courier, false) => {
            return Err(KeyringError::NotACourierKey { path, fingerprint })
        }
        _ => {}
    }
    Ok(Reviewer {
        cert,
        name,
        encryption_keys,
    })
}

#[cfg(test)]
mod tests;
