//! `resguardo-review keygen`: write a new reviewer key pair to a directory.
//!
//! Three files, named after the reviewer: `<name>.pub.asc` (give it to the gateway operator),
//! `<name>.sec.asc` (stays on the offline machine; mode 0600) and `<name>.rev.asc` (the certificate
//! with its revocation, to keep apart and publish only when the secret key is lost or compromised;
//! mode 0600).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sequoia_openpgp as openpgp;

use openpgp::crypto::Password;
use openpgp::serialize::SerializeInto;
use openpgp::{Cert, Fingerprint};

use crate::keyring::{
    add_signing_subkey, generate_org_key, generate_reviewer_key, OrgKeyOptions, ReviewerKeyOptions,
};

/// Why `keygen` wrote no key, or not all of it.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    /// The trimmed name is empty, over 100 characters, or has a control character.
    #[error("the name must be 1 to 100 characters without control characters")]
    BadName,
    /// One of the three files is already there; nothing was written.
    #[error("{0} already exists; refusing to overwrite a key")]
    Exists(PathBuf),
    /// Creating the directory or writing one of the files failed.
    #[error("{path}: {source}")]
    Write {
        /// The directory or file that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Sequoia failed to generate, armor or revoke the key (its message).
    #[error("key generation failed: {0}")]
    Generate(String),
}

/// The files written and the new key's fingerprint.
pub struct KeygenOutcome {
    /// The fingerprint of the new primary key.
    pub fingerprint: Fingerprint,
    /// `<stem>.pub.asc`: the armored certificate for the gateway operator (mode 0644).
    pub public: PathBuf,
    /// `<stem>.sec.asc`: the armored secret key, for the offline machine only (mode 0600).
    pub secret: PathBuf,
    /// `<stem>.rev.asc`: the certificate with its revocation, to publish only if the secret
    /// key is lost or compromised (mode 0600).
    pub revocation: PathBuf,
}

/// A file name from the reviewer's name: lowercase ASCII letters, digits and dashes.
pub fn file_stem(name: &str) -> String {
    let mut stem = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            stem.push(c.to_ascii_lowercase());
        } else if !stem.ends_with('-') && !stem.is_empty() {
            stem.push('-');
        }
    }
    let stem = stem
        .trim_end_matches('-')
        .chars()
        .take(48)
        .collect::<String>();
    if stem.is_empty() {
        "reviewer".into()
    } else {
        stem
    }
}

/// Generates a reviewer key named `options.name` and writes its three files into `out`
/// (created if missing), never overwriting an existing file.
pub fn keygen(options: ReviewerKeyOptions, out: &Path) -> Result<KeygenOutcome, KeygenError> {
    let name = options.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(KeygenError::BadName);
    }
    let stem = file_stem(name);
    write_key_files(out, &stem, || generate_reviewer_key(options))
}

/// Generates the organisation key (`keygen --org`, `docs/trust-v1.md`) and writes it into `out`
/// as `org.pub.asc` (for the gateway operator and everyone who checks key lists), `org.sec.asc`
/// (offline; mode 0600) and `org.rev.asc` (its revocation; mode 0600), never over an existing
/// file.
pub fn keygen_org(options: OrgKeyOptions, out: &Path) -> Result<KeygenOutcome, KeygenError> {
    let name = options.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(KeygenError::BadName);
    }
    write_key_files(out, "org", || generate_org_key(options))
}

/// Writes the three files of a key that `generate` makes, named `<stem>.*.asc`, into `out`
/// (created if missing), after checking that none exists.
fn write_key_files(
    out: &Path,
    stem: &str,
    generate: impl FnOnce() -> openpgp::Result<crate::keyring::GeneratedKey>,
) -> Result<KeygenOutcome, KeygenError> {
    let public = out.join(format!("{stem}.pub.asc"));
    let secret = out.join(format!("{stem}.sec.asc"));
    let revocation = out.join(format!("{stem}.rev.asc"));
    for path in [&public, &secret, &revocation] {
        if path.exists() {
            return Err(KeygenError::Exists(path.clone()));
        }
    }
    std::fs::create_dir_all(out).map_err(|source| KeygenError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let generated = generate().map_err(|e| KeygenError::Generate(e.to_string()))?;
    let cert = generated.cert;
    let armored = |r: openpgp::Result<Vec<u8>>| r.map_err(|e| KeygenError::Generate(e.to_string()));
    let secret_bytes = armored(cert.as_tsk().armored().to_vec())?;
    let public_bytes = armored(cert.armored().to_vec())?;
    // The revocation travels as the revoked certificate: importing it anywhere revokes the key.
    let (revoked, _) = cert
        .clone()
        .strip_secret_key_material()
        .insert_packets(generated.revocation)
        .map_err(|e| KeygenError::Generate(e.to_string()))?;
    let revocation_bytes = armored(revoked.armored().to_vec())?;
    write_new(&secret, &secret_bytes, 0o600)?;
    write_new(&revocation, &revocation_bytes, 0o600)?;
    write_new(&public, &public_bytes, 0o644)?;
    Ok(KeygenOutcome {
        fingerprint: cert.fingerprint(),
        public,
        secret,
        revocation,
    })
}

/// The two files `add-signing-key` writes.
pub struct UpgradedKey {
    /// The primary key's fingerprint: unchanged.
    pub fingerprint: Fingerprint,
    /// The new certificate (give it to the gateway operator in place of the old one).
    pub public: PathBuf,
    /// The new secret key (replaces the old one on the offline machine).
    pub secret: PathBuf,
}

/// Adds a signing subkey to a reviewer key made before reviewer keys had one, writing the new
/// certificate and secret key into `out` as `<stem>.pub.asc` and `<stem>.sec.asc` (never over an
/// existing file). The fingerprint stays, so the gateway's config only needs the new file.
pub fn add_signing_key(
    key: &Cert,
    passphrase: Option<&Password>,
    out: &Path,
) -> Result<UpgradedKey, KeygenError> {
    let name = key
        .userids()
        .next()
        .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        .unwrap_or_default();
    let stem = file_stem(&name);
    let public = out.join(format!("{stem}.pub.asc"));
    let secret = out.join(format!("{stem}.sec.asc"));
    for path in [&public, &secret] {
        if path.exists() {
            return Err(KeygenError::Exists(path.clone()));
        }
    }
    std::fs::create_dir_all(out).map_err(|source| KeygenError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let cert =
        add_signing_subkey(key, passphrase).map_err(|e| KeygenError::Generate(e.to_string()))?;
    let armored = |r: openpgp::Result<Vec<u8>>| r.map_err(|e| KeygenError::Generate(e.to_string()));
    write_new(&secret, &armored(cert.as_tsk().armored().to_vec())?, 0o600)?;
    write_new(&public, &armored(cert.armored().to_vec())?, 0o644)?;
    Ok(UpgradedKey {
        fingerprint: cert.fingerprint(),
        public,
        secret,
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeygenError> {
    let error = |source| KeygenError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)
}
