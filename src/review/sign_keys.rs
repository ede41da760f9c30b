//! `resguardo-review sign-keys`: the organisation signs the key list (`docs/trust-v1.md`, part 1)
//! on the offline machine: these reviewers and couriers now, this page, valid this long.
//!
//! The certificates are validated as the gateway validates them (each in its role), the page
//! manifest is read strictly, and the signed list is verified as every reader verifies it before
//! it is written, so a list this command writes is one the gateway and the clients accept.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sequoia_openpgp as openpgp;

use openpgp::crypto::Password;
use openpgp::Cert;

use super::lang::Lang;
use super::messages::Localized;
use crate::keyring::{CourierKeyring, ReviewerKeyring};
use crate::submission::UtcDay;
use crate::trust::keylist::{
    entry_for, grouped, sign_key_list, KeyList, KeyListError, PageManifest, VerifiedKeyList,
    LIST_FORMAT,
};

/// The longest a key list may be valid: two years.
pub const MAX_VALID_DAYS: u64 = 730;

/// What `sign-keys` is given.
pub struct SignKeysOptions<'a> {
    /// The organisation's secret key (from `keygen --org`), still locked.
    pub org_key: &'a Cert,
    /// Its passphrase, when it has one.
    pub passphrase: Option<&'a Password>,
    /// The reviewers' public certificate files (1 to 32).
    pub reviewers: &'a [PathBuf],
    /// The couriers' public certificate files (0 to 16).
    pub couriers: &'a [PathBuf],
    /// The list's version (from 1; higher than the last one signed).
    pub version: u64,
    /// Days from `today` to its last valid day (1 to [`MAX_VALID_DAYS`]).
    pub valid_days: u64,
    /// The page manifest from `resguardo-gateway page-manifest`; `None`: this build's.
    pub page_manifest: Option<&'a Path>,
    /// The file to write (must not exist).
    pub out: &'a Path,
    /// The day the list is issued.
    pub today: UtcDay,
}

/// Why no key list was written.
#[derive(Debug, thiserror::Error)]
pub enum SignKeysError {
    /// `--out` is there already.
    #[error("{0}: already exists; choose another --out (a key list is never overwritten)")]
    OutputExists(PathBuf),
    /// `--valid-days` 0 or over two years.
    #[error("--valid-days must be 1 to {MAX_VALID_DAYS} (a key list must be renewed at least every two years)")]
    ValidDays,
    /// `--version 0`.
    #[error("--version must be at least 1 (and higher than the last key list's)")]
    VersionZero,
    /// The org key file is not an organisation's secret key.
    #[error("{path}: {reason}")]
    NotAnOrgKey {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Certificates that cannot go into the list (one line each, naming the file).
    #[error("{}", .0.join("\n"))]
    Keys(Vec<String>),
    /// The page manifest file cannot be read or is not one.
    #[error("--page-manifest {path}: {reason}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Signing or the check of what was signed failed (a wrong passphrase, among others).
    #[error("{0}")]
    List(#[from] KeyListError),
    /// Writing `--out` failed.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl Localized for SignKeysError {
    fn spanish(&self) -> String {
        match self {
            SignKeysError::OutputExists(p) => format!(
                "{}: ya existe; elige otro --out (una lista de claves nunca se sobrescribe)",
                p.display()
            ),
            SignKeysError::ValidDays => format!(
                "--valid-days debe ser de 1 a {MAX_VALID_DAYS} (una lista de claves se renueva al menos cada dos años)"
            ),
            SignKeysError::VersionZero => {
                "--version debe ser al menos 1 (y mayor que la de la lista anterior)".into()
            }
            SignKeysError::NotAnOrgKey { path, reason } => format!("{path}: {reason}"),
            SignKeysError::Keys(lines) => lines.join("\n"),
            SignKeysError::Manifest { path, reason } => {
                format!("--page-manifest {}: {reason}", path.display())
            }
            SignKeysError::List(e) => e.to_string(),
            SignKeysError::Write { path, source } => format!("{}: {source}", path.display()),
        }
    }
}

/// True when the organisation key's secret primary key is protected by a passphrase.
pub fn org_key_needs_passphrase(org: &Cert) -> bool {
    org.primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .is_ok_and(|k| k.secret().is_encrypted())
}

/// Checks that `org` (read from `path`) is an organisation's secret key: a secret primary key
/// that may sign under the standard policy.
pub fn check_org_key(org: &Cert, path: &Path, lang: Lang) -> Result<(), SignKeysError> {
    let not = |en: &str, es: &str| SignKeysError::NotAnOrgKey {
        path: path.display().to_string(),
        reason: lang.pick(en, es).to_string(),
    };
    if !org.primary_key().key().has_secret() {
        return Err(not(
            "not a secret key (give the organisation's org.sec.asc, on the offline machine)",
            "no es una clave secreta (usa org.sec.asc de la organización, en la máquina sin red)",
        ));
    }
    let signs = org
        .with_policy(&crate::keyring::POLICY, None)
        .ok()
        .is_some_and(|v| v.primary_key().key_flags().is_some_and(|f| f.for_signing()));
    if !signs {
        return Err(not(
            "its primary key cannot sign: not an organisation key (make one with `resguardo-review keygen --org`)",
            "su clave primaria no puede firmar: no es una clave de organización (créala con `resguardo-review keygen --org`)",
        ));
    }
    Ok(())
}

/// Refuses what can be refused before asking for the passphrase: an existing `--out`, the
/// validity and the version.
pub fn check_arguments(out: &Path, version: u64, valid_days: u64) -> Result<(), SignKeysError> {
    if out.exists() || out.is_symlink() {
        return Err(SignKeysError::OutputExists(out.to_path_buf()));
    }
    if version == 0 {
        return Err(SignKeysError::VersionZero);
    }
    if !(1..=MAX_VALID_DAYS).contains(&valid_days) {
        return Err(SignKeysError::ValidDays);
    }
    Ok(())
}

/// Builds, signs, verifies and writes the key list; returns what was written, as verified.
pub fn sign_keys(options: &SignKeysOptions<'_>) -> Result<VerifiedKeyList, SignKeysError> {
    check_arguments(options.out, options.version, options.valid_days)?;
    let mut problems = Vec::new();
    let reviewers = match ReviewerKeyring::load(options.reviewers) {
        Ok(keyring) => Some(keyring),
        Err(errors) => {
            problems.extend(errors.iter().map(|e| format!("--reviewers: {e}")));
            None
        }
    };
    let couriers = match CourierKeyring::load(options.couriers, reviewers.as_ref()) {
        Ok(couriers) => Some(couriers),
        Err(errors) => {
            problems.extend(errors.iter().map(|e| format!("--couriers: {e}")));
            None
        }
    };
    let (Some(reviewers), Some(couriers)) = (reviewers, couriers) else {
        return Err(SignKeysError::Keys(problems));
    };
    let page = match options.page_manifest {
        None => PageManifest::embedded(),
        Some(path) => {
            let bad = |reason: String| SignKeysError::Manifest {
                path: path.to_path_buf(),
                reason,
            };
            let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
            if meta.len() > crate::trust::keylist::MAX_SIGNED_KEY_LIST as u64 {
                return Err(bad("larger than 1 MiB".into()));
            }
            let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            PageManifest::parse(&bytes).map_err(|e| bad(e.to_string()))?
        }
    };
    let expires_in = i32::try_from(options.valid_days).map_err(|_| SignKeysError::ValidDays)?;
    let list = KeyList {
        format: LIST_FORMAT.into(),
        organisation: options.org_key.fingerprint().to_hex(),
        version: options.version,
        issued: options.today,
        expires: UtcDay::from_days_since_epoch(options.today.days_since_epoch() + expires_in),
        reviewers: reviewers.reviewers().iter().map(entry_for).collect(),
        couriers: couriers.couriers().iter().map(entry_for).collect(),
        page,
    };
    let signed = sign_key_list(options.org_key, options.passphrase, &list)?;
    // Read back as every reader will read it.
    let bytes =
        serde_json::to_vec_pretty(&signed).map_err(|e| KeyListError::Sign(e.to_string()))?;
    let verified = crate::trust::keylist::SignedKeyList::parse(&bytes)?
        .verify(Some(&options.org_key.fingerprint()), options.today)?;
    write_new(options.out, &bytes)?;
    Ok(verified)
}

/// The summary `sign-keys` prints.
pub fn summary(verified: &VerifiedKeyList, out: &Path, lang: Lang) -> String {
    let mut text = format!(
        "{}: {}\n",
        lang.pick("Organisation key", "Clave de la organización"),
        grouped(&verified.organisation)
    );
    text.push_str(&match lang {
        Lang::En => format!(
            "Key list version {} written to {}: {} reviewers, {} couriers, page release {}, valid from {} to {} (last valid day).\n",
            verified.version,
            out.display(),
            verified.reviewers.reviewers().len(),
            verified.couriers.couriers().len(),
            verified.page.release,
            verified.issued,
            verified.expires
        ),
        Lang::Es => format!(
            "Lista de claves versión {} escrita en {}: {} revisores, {} enlaces, versión de la página {}, válida del {} al {} (último día válido).\n",
            verified.version,
            out.display(),
            verified.reviewers.reviewers().len(),
            verified.couriers.couriers().len(),
            verified.page.release,
            verified.issued,
            verified.expires
        ),
    });
    for r in verified.reviewers.reviewers() {
        text.push_str(&format!(
            "  {} {}  {}\n",
            lang.pick("reviewer", "revisor"),
            grouped(&r.fingerprint()),
            crate::terminal::clean_line(r.name())
        ));
    }
    for c in verified.couriers.couriers() {
        text.push_str(&format!(
            "  {} {}  {}\n",
            lang.pick("courier", "enlace"),
            grouped(&c.fingerprint()),
            crate::terminal::clean_line(c.name())
        ));
    }
    text.push_str(lang.pick(
        "Give the file to the gateway operator (key_list = \"…\" in gateway.toml) before it expires, and sign a new one with a higher --version whenever a key or the page changes.\n",
        "Entrega el archivo a quien opera el servidor (key_list = \"…\" en gateway.toml) antes de que caduque, y firma una nueva con --version mayor cada vez que cambie una clave o la página.\n",
    ));
    text
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), SignKeysError> {
    let error = |source| SignKeysError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                SignKeysError::OutputExists(path.to_path_buf())
            } else {
                error(e)
            }
        })?;
    file.write_all(bytes)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::KeyProfile;
    use crate::testing::{courier_key, org_key, reviewer_key};
    use openpgp::serialize::SerializeInto;

    fn write_pub(dir: &Path, name: &str, cert: &Cert) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, cert.armored().to_vec().unwrap()).unwrap();
        path
    }

    #[test]
    fn sign_keys_writes_a_list_every_reader_accepts_and_refuses_what_it_must() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let org = org_key("Org");
        let reviewer = write_pub(d, "r.asc", &reviewer_key("R", KeyProfile::Compatible));
        let courier = write_pub(d, "c.asc", &courier_key("C"));
        let pass = Password::from("test");
        assert!(org_key_needs_passphrase(&org));
        check_org_key(&org, Path::new("org.sec.asc"), Lang::En).unwrap();
        assert!(check_org_key(
            &org.clone().strip_secret_key_material(),
            Path::new("org.pub.asc"),
            Lang::En
        )
        .is_err());
        let out = d.join("keylist.json");
        let reviewers = [reviewer.clone()];
        let couriers = [courier.clone()];
        let mut options = SignKeysOptions {
            org_key: &org,
            passphrase: Some(&pass),
            reviewers: &reviewers,
            couriers: &couriers,
            version: 1,
            valid_days: 30,
            page_manifest: None,
            out: &out,
            today: UtcDay::today(),
        };
        let verified = sign_keys(&options).expect("signed");
        assert_eq!(verified.version, 1);
        let bytes = std::fs::read(&out).unwrap();
        let again = crate::trust::keylist::SignedKeyList::parse(&bytes)
            .unwrap()
            .verify(Some(&org.fingerprint()), UtcDay::today())
            .unwrap();
        assert_eq!(again.sha256, verified.sha256);
        assert!(summary(&verified, &out, Lang::Es).contains("versión 1"));

        assert!(matches!(
            sign_keys(&options),
            Err(SignKeysError::OutputExists(_))
        ));
        let out2 = d.join("keylist2.json");
        options.out = &out2;
        options.valid_days = 0;
        assert!(matches!(sign_keys(&options), Err(SignKeysError::ValidDays)));
        options.valid_days = 731;
        assert!(matches!(sign_keys(&options), Err(SignKeysError::ValidDays)));
        options.valid_days = 30;
        options.version = 0;
        assert!(matches!(
            sign_keys(&options),
            Err(SignKeysError::VersionZero)
        ));
        options.version = 2;
        let swapped = [courier.clone()];
        options.reviewers = &swapped;
        options.couriers = &[];
        let err = sign_keys(&options).unwrap_err();
        assert!(err.to_string().contains("is a courier key"), "{err}");
        assert!(err.to_string().contains("c.asc"), "{err}");
        options.reviewers = &reviewers;
        let wrong = Password::from("wrong");
        options.passphrase = Some(&wrong);
        assert!(matches!(sign_keys(&options), Err(SignKeysError::List(_))));
        assert!(!out2.exists(), "nothing written on a refusal");
    }
}
