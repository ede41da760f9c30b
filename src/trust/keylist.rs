//! The organisation's signed key list (`docs/trust-v1.md`, part 1): which reviewers and couriers
//! the organisation vouches for now, and which page it released, signed by its offline
//! organisation key.
//!
//! One strict reader for everyone who checks a list (the gateway at start, `resguardo-submit
//! --pin`, `watch`): [`SignedKeyList::parse`] then [`SignedKeyList::verify`]. One writer:
//! [`sign_key_list`] (`resguardo-review sign-keys`, and the embedded default's demo list).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::Password;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::packet::Signature;
use openpgp::parse::Parse;
use openpgp::policy::{HashAlgoSecurity, Policy};
use openpgp::serialize::{Serialize as _, SerializeInto};
use openpgp::types::{RevocationStatus, SignatureType};
use openpgp::{Fingerprint, Packet};
use serde::{Deserialize, Serialize};

use crate::keyring::{CourierKeyring, Reviewer, ReviewerKeyring, MAX_COURIERS, MAX_REVIEWERS};
use crate::submission::UtcDay;

/// `format` of the signed key list (the outer file).
pub const SIGNED_FORMAT: &str = "resguardo.signed-key-list/1";

/// `format` of the key list (the signed text inside).
pub const LIST_FORMAT: &str = "resguardo.key-list/1";

/// Largest signed key list read or written: 1 MiB.
pub const MAX_SIGNED_KEY_LIST: usize = 1024 * 1024;

/// Most files a page manifest lists.
const MAX_PAGE_FILES: usize = 4096;

/// Most pages a manifest describes.
const MAX_MANIFEST_PAGES: usize = 16;

/// Most loads (and most form paths) of one page in a manifest.
const MAX_PAGE_LOADS: usize = 64;

/// How far ahead of this computer's clock a key list's signature may be dated (the organisation
/// key lives on an offline machine, whose clock may run ahead).
const OFFLINE_CLOCK_SKEW: Duration = Duration::from_secs(86_400);

/// The file the gateway is given and serves: the key list's text, exactly as signed, with the
/// organisation's certificate and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedKeyList {
    /// Always [`SIGNED_FORMAT`].
    pub format: String,
    /// The organisation key's public certificate, ASCII-armored.
    pub organisation_cert: String,
    /// The JSON text of a [`KeyList`], exactly the bytes the signature is over.
    pub key_list: String,
    /// A detached OpenPGP signature by the organisation key's primary key over `key_list`,
    /// ASCII-armored.
    pub signature: String,
}

/// What the organisation vouches for (the text inside a [`SignedKeyList`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyList {
    /// Always [`LIST_FORMAT`].
    pub format: String,
    /// The organisation key's fingerprint, uppercase hex.
    pub organisation: String,
    /// From 1; a new list has a higher one, and readers never go back.
    pub version: u64,
    /// The day it was signed (UTC).
    pub issued: UtcDay,
    /// Its last valid day (UTC).
    pub expires: UtcDay,
    /// The reviewers' certificates (1 to 32).
    pub reviewers: Vec<KeyEntry>,
    /// The couriers' certificates (0 to 16).
    pub couriers: Vec<KeyEntry>,
    /// The page the organisation released.
    pub page: PageManifest,
}

/// One certificate in a key list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Its primary key's fingerprint, uppercase hex.
    pub fingerprint: String,
    /// Its holder, as people know them (the primary user ID when made by `sign-keys`).
    pub name: String,
    /// The public certificate, ASCII-armored.
    pub cert: String,
}

/// The page a build serves: every embedded file but the templates, and the
/// Content-Security-Policy sent with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageManifest {
    /// The build's asset version ([`crate::assets::VERSION`]): files are served under
    /// `/v/<release>/`.
    pub release: String,
    /// The `Content-Security-Policy` header of every answer.
    pub content_security_policy: String,
    /// Every file, sorted by path, each once.
    pub files: Vec<PageFile>,
    /// What each page loads and where its forms post (`docs/trust-v1.md`, part 3): the page
    /// check requires exactly these loads. A manifest without it (from before it existed) still
    /// reads, but no page passes the check against it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<PageEntry>,
}

/// One page of the release: what it loads and where its forms post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageEntry {
    /// The page's path (`/`, `/check`); the same page with a `?lang=` query is this page.
    pub path: String,
    /// Every resource-loading element, in document order (a file of `files`, served under
    /// `/v/<release>/`).
    pub loads: Vec<PageLoad>,
    /// The paths its forms post to (same origin, query ignored), sorted, each once.
    pub forms: Vec<String>,
}

/// One resource-loading element of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageLoad {
    /// What loads it: `script-module`, `script`, `stylesheet`, `modulepreload`, `icon`, or
    /// `<element>-<attribute>`; with `noscript-` in front when only a browser without scripting
    /// loads it (inside `<noscript>`).
    pub element: String,
    /// The file, a path of `files`.
    pub path: String,
}

/// One file of the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageFile {
    /// Its path with a leading `/`, e.g. `/app.js`.
    pub path: String,
    /// Lowercase hex SHA-256 of its (uncompressed) bytes.
    pub sha256: String,
}

/// A key list whose signature, organisation and every rule checked out.
#[derive(Debug, Clone)]
pub struct VerifiedKeyList {
    /// The organisation key's fingerprint (what the fingerprint card shows).
    pub organisation: Fingerprint,
    /// The organisation key's public certificate.
    pub organisation_cert: Cert,
    /// The list's version (at least 1).
    pub version: u64,
    /// The day it was signed.
    pub issued: UtcDay,
    /// Its last valid day.
    pub expires: UtcDay,
    /// The reviewers, validated as reviewer keys.
    pub reviewers: ReviewerKeyring,
    /// The couriers, validated as courier keys (may be empty).
    pub couriers: CourierKeyring,
    /// The page it vouches for.
    pub page: PageManifest,
    /// Lowercase hex SHA-256 of the signed key list in its canonical form
    /// ([`SignedKeyList::to_bytes`]): two lists with the same version and another hash are two
    /// different lists.
    pub sha256: String,
}

/// Why a key list is refused. Every message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyListError {
    /// Over [`MAX_SIGNED_KEY_LIST`].
    #[error("the signed key list is {size} bytes, over the limit of 1 MiB; it is not a key list")]
    TooLarge {
        /// Its size in bytes.
        size: usize,
    },
    /// Not JSON of the expected shape (unknown or missing fields included).
    #[error("{what} is not a valid key list: {reason}")]
    Malformed {
        /// `the signed key list`, `key_list` or `the page manifest`.
        what: &'static str,
        /// The parser's explanation.
        reason: String,
    },
    /// Another format than the one this program reads.
    #[error("{what} has format {found:?}, this program reads {expected:?}; update it or sign the list with a matching resguardo-review")]
    Format {
        /// Which part.
        what: &'static str,
        /// The format found (cut to 60 characters).
        found: String,
        /// The format expected.
        expected: &'static str,
    },
    /// `organisation_cert` is not one OpenPGP certificate.
    #[error("organisation_cert is not one OpenPGP certificate: {0}")]
    OrganisationCert(String),
    /// `organisation_cert` carries secret key material.
    #[error("organisation_cert contains secret key material: the organisation's secret key is exposed; make a new organisation key offline")]
    OrganisationSecret,
    /// The organisation key is revoked, expired or refused by the standard policy.
    #[error("the organisation key {fingerprint} cannot vouch: {reason}")]
    OrganisationInvalid {
        /// Its fingerprint, grouped.
        fingerprint: String,
        /// Why.
        reason: String,
    },
    /// Signed by another organisation key than the pinned one.
    #[error("the key list is signed by the organisation key {found}, not by the one you trust ({pinned}); do not use these keys")]
    NotPinned {
        /// The pinned fingerprint, grouped.
        pinned: String,
        /// The fingerprint of the key that signed, grouped.
        found: String,
    },
    /// The `organisation` field names another key than `organisation_cert`.
    #[error("the key list names the organisation key {listed}, but is carried with {actual}; it was altered")]
    WrongOrganisation {
        /// The listed fingerprint (cut to 80 characters).
        listed: String,
        /// The certificate's fingerprint, grouped.
        actual: String,
    },
    /// The signature is missing, malformed, by another key or not over this text.
    #[error("the key list's signature does not verify with the organisation key {fingerprint} ({reason}): the list was altered or signed by another key")]
    BadSignature {
        /// The organisation key's fingerprint, grouped.
        fingerprint: String,
        /// What failed.
        reason: String,
    },
    /// `version` is 0.
    #[error("the key list's version is 0; versions start at 1")]
    VersionZero,
    /// `issued` after `expires`.
    #[error("the key list was issued on {issued} but expires on {expires}, earlier")]
    BadDates {
        /// `issued`.
        issued: UtcDay,
        /// `expires`.
        expires: UtcDay,
    },
    /// Past its last valid day.
    #[error("the key list expired on {expires} (its last valid day; today is {today}); the organisation must sign a new one (resguardo-review sign-keys with a higher --version)")]
    Expired {
        /// Its last valid day.
        expires: UtcDay,
        /// Today (UTC).
        today: UtcDay,
    },
    /// Too few or too many certificates in a role.
    #[error("the key list has {count} {role}; it must have {min} to {max}")]
    Count {
        /// `reviewers` or `couriers`.
        role: &'static str,
        /// How many it has.
        count: usize,
        /// The least allowed.
        min: usize,
        /// The most allowed.
        max: usize,
    },
    /// An entry whose certificate does not parse, or whose name is unusable.
    #[error("{role} entry {index}: {reason}")]
    BadEntry {
        /// `reviewers` or `couriers`.
        role: &'static str,
        /// From 1.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// An entry whose `fingerprint` is not its certificate's.
    #[error("{role} entry {index} says {listed} but its certificate is {actual}; the list is inconsistent")]
    FingerprintMismatch {
        /// `reviewers` or `couriers`.
        role: &'static str,
        /// From 1.
        index: usize,
        /// The listed fingerprint (cut to 80 characters).
        listed: String,
        /// The certificate's, grouped.
        actual: String,
    },
    /// A certificate with secret key material in the list.
    #[error("{role} entry {index} ({fingerprint}) contains secret key material; list public certificates only, and replace that key: its secret is exposed")]
    SecretKeyMaterial {
        /// `reviewers` or `couriers`.
        role: &'static str,
        /// From 1.
        index: usize,
        /// Its fingerprint, grouped.
        fingerprint: String,
    },
    /// The same fingerprint twice (in one role or in both).
    #[error("the certificate {fingerprint} is listed twice in the key list")]
    Duplicate {
        /// Its fingerprint, grouped.
        fingerprint: String,
    },
    /// A certificate that fails validation for its role (expired, revoked, a courier key under
    /// reviewers, ...).
    #[error("{0}")]
    Keys(String),
    /// The page manifest breaks its rules.
    #[error("the page manifest is not valid: {0}")]
    BadManifest(String),
    /// The keys in use are not the ones the list vouches for.
    #[error("the {role} keys differ from the key list: {detail}")]
    KeysDiffer {
        /// `reviewer` or `courier`.
        role: &'static str,
        /// Which fingerprints differ and how.
        detail: String,
    },
    /// Signing failed (a locked key, a wrong passphrase, a key that cannot sign).
    #[error("cannot sign the key list: {0}")]
    Sign(String),
    /// Older than a version the client already knows (a replayed list that still verifies).
    #[error(
        "the gateway serves key list version {served}, older than version {known} that you know \
         of: an old list may name keys the organisation has since removed; do not use this gateway"
    )]
    OlderThanKnown {
        /// The version served.
        served: u64,
        /// The lowest version the client accepts.
        known: u64,
    },
}

/// A fingerprint in groups of four, as on the fingerprint card.
pub fn grouped(fingerprint: &Fingerprint) -> String {
    crate::review::messages::grouped_fingerprint(fingerprint)
}

fn cut(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl PageManifest {
    /// The page this build serves: every embedded asset but the templates (which the gateway
    /// renders), sorted by path, with this build's release and Content-Security-Policy.
    pub fn embedded() -> Self {
        let mut files: Vec<PageFile> = crate::assets::ASSETS
            .iter()
            .filter(|a| !a.path.starts_with("/templates/"))
            .map(|a| PageFile {
                path: a.path.to_string(),
                sha256: sha256_hex(a.bytes),
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let prefix = crate::assets::versioned_prefix();
        let pages = [
            ("/", "/templates/page.html"),
            ("/check", "/templates/check.html"),
        ]
        .iter()
        .filter_map(|(path, template)| {
            let html = crate::assets::find(template)?.bytes;
            let html = std::str::from_utf8(html).ok()?;
            Some(crate::trust::page::template_entry(path, html, &prefix))
        })
        .collect();
        PageManifest {
            release: crate::assets::VERSION.to_string(),
            content_security_policy: crate::gateway::CONTENT_SECURITY_POLICY.to_string(),
            files,
            pages,
        }
    }

    /// Reads a manifest (`resguardo-gateway page-manifest`'s output) strictly and checks it.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyListError> {
        if bytes.len() > MAX_SIGNED_KEY_LIST {
            return Err(KeyListError::TooLarge { size: bytes.len() });
        }
        let manifest: PageManifest =
            serde_json::from_slice(bytes).map_err(|e| KeyListError::Malformed {
                what: "the page manifest",
                reason: cut(&e.to_string(), 200),
            })?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The manifest as pretty JSON (what `page-manifest` prints).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the manifest's own rules: a release of 1 to 128 letters, digits, `.`, `_` or `-`;
    /// a policy of 1 to 4096 characters without control characters; 1 to 4096 files sorted by
    /// path, each once, each path absolute and each hash a lowercase hex SHA-256.
    pub fn check(&self) -> Result<(), KeyListError> {
        let bad = |m: String| Err(KeyListError::BadManifest(m));
        if self.release.is_empty()
            || self.release.len() > 128
            || !self
                .release
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return bad(format!(
                "release {:?} is not a release",
                cut(&self.release, 40)
            ));
        }
        let csp = &self.content_security_policy;
        if csp.is_empty() || csp.len() > 4096 || csp.chars().any(char::is_control) {
            return bad("content_security_policy must be 1 to 4096 characters".into());
        }
        if self.files.is_empty() || self.files.len() > MAX_PAGE_FILES {
            return bad(format!("it must list 1 to {MAX_PAGE_FILES} files"));
        }
        for (i, file) in self.files.iter().enumerate() {
            if !file.path.starts_with('/')
                || file.path.len() > 512
                || file.path.chars().any(char::is_control)
            {
                return bad(format!("{:?} is not a file path", cut(&file.path, 60)));
            }
            if !is_sha256_hex(&file.sha256) {
                return bad(format!(
                    "{}: sha256 is not 64 lowercase hex digits",
                    file.path
                ));
            }
            if i > 0 && self.files[i - 1].path >= file.path {
                return bad(format!(
                    "{}: files must be sorted by path, each once",
                    file.path
                ));
            }
        }
        let path_ok =
            |p: &str| p.starts_with('/') && p.len() <= 512 && !p.chars().any(char::is_control);
        if self.pages.len() > MAX_MANIFEST_PAGES {
            return bad(format!(
                "it must describe at most {MAX_MANIFEST_PAGES} pages"
            ));
        }
        for (i, page) in self.pages.iter().enumerate() {
            if !path_ok(&page.path) || page.path.contains(['?', '#']) {
                return bad(format!("{:?} is not a page path", cut(&page.path, 60)));
            }
            if self.pages[..i].iter().any(|p| p.path == page.path) {
                return bad(format!("{}: a page described twice", page.path));
            }
            if page.loads.len() > MAX_PAGE_LOADS || page.forms.len() > MAX_PAGE_LOADS {
                return bad(format!(
                    "{}: more than {MAX_PAGE_LOADS} loads or forms",
                    page.path
                ));
            }
            for load in &page.loads {
                let element_ok = !load.element.is_empty()
                    && load.element.len() <= 64
                    && load
                        .element
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'-' || b.is_ascii_digit());
                if !element_ok {
                    return bad(format!(
                        "{}: {:?} is not an element kind",
                        page.path,
                        cut(&load.element, 60)
                    ));
                }
                if self
                    .files
                    .binary_search_by(|f| f.path.as_str().cmp(&load.path))
                    .is_err()
                {
                    return bad(format!(
                        "{}: it loads {:?}, which is not a file of the release",
                        page.path,
                        cut(&load.path, 60)
                    ));
                }
            }
            for (j, form) in page.forms.iter().enumerate() {
                if !path_ok(form) || form.contains(['?', '#']) {
                    return bad(format!(
                        "{}: {:?} is not a form path",
                        page.path,
                        cut(form, 60)
                    ));
                }
                if j > 0 && page.forms[j - 1] >= *form {
                    return bad(format!(
                        "{}: form paths must be sorted, each once",
                        page.path
                    ));
                }
            }
        }
        Ok(())
    }

    /// The files that differ between `self` and `other` (for a message): at most five paths.
    pub fn differences(&self, other: &PageManifest) -> Vec<String> {
        let mine: BTreeSet<(&str, &str)> = self
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.sha256.as_str()))
            .collect();
        let theirs: BTreeSet<(&str, &str)> = other
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.sha256.as_str()))
            .collect();
        let paths: BTreeSet<&str> = mine
            .symmetric_difference(&theirs)
            .map(|(p, _)| *p)
            .collect();
        paths.into_iter().take(5).map(String::from).collect()
    }
}

impl SignedKeyList {
    /// Reads a signed key list strictly: at most 1 MiB, JSON with exactly the four fields.
    /// Nothing is verified yet ([`SignedKeyList::verify`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyListError> {
        if bytes.len() > MAX_SIGNED_KEY_LIST {
            return Err(KeyListError::TooLarge { size: bytes.len() });
        }
        serde_json::from_slice(bytes).map_err(|e| KeyListError::Malformed {
            what: "the signed key list",
            reason: cut(&e.to_string(), 200),
        })
    }

    /// Reads and parses the file at `path` (refusing one over 1 MiB before reading it).
    pub fn load(path: &Path) -> Result<Self, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
        if meta.len() > MAX_SIGNED_KEY_LIST as u64 {
            return Err(KeyListError::TooLarge {
                size: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            }
            .to_string());
        }
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        Self::parse(&bytes).map_err(|e| e.to_string())
    }

    /// The canonical form: compact JSON, fields in the order of the format. What [`sign_key_list`]
    /// callers write (pretty or not) and what [`VerifiedKeyList::sha256`] hashes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Lowercase hex SHA-256 of [`SignedKeyList::to_bytes`].
    pub fn sha256(&self) -> String {
        sha256_hex(&self.to_bytes())
    }

    /// Checks everything `docs/trust-v1.md` asks of a key list: the formats, the organisation
    /// key (and that it is `pin`, when given), the signature over `key_list` by its primary key
    /// under the standard policy, version at least 1, `issued` ≤ `expires`, not expired on
    /// `today`, 1 to 32 reviewers and 0 to 16 couriers, each a public certificate of its role
    /// whose fingerprint is the listed one, no fingerprint twice, and a well-formed page
    /// manifest.
    pub fn verify(
        &self,
        pin: Option<&Fingerprint>,
        today: UtcDay,
    ) -> Result<VerifiedKeyList, KeyListError> {
        if self.format != SIGNED_FORMAT {
            return Err(KeyListError::Format {
                what: "the signed key list",
                found: cut(&self.format, 60),
                expected: SIGNED_FORMAT,
            });
        }
        let org = one_cert(&self.organisation_cert).map_err(KeyListError::OrganisationCert)?;
        if org.is_tsk() {
            return Err(KeyListError::OrganisationSecret);
        }
        let fingerprint = org.fingerprint();
        if let Some(pin) = pin {
            if *pin != fingerprint {
                return Err(KeyListError::NotPinned {
                    pinned: grouped(pin),
                    found: grouped(&fingerprint),
                });
            }
        }
        check_signature(&org, &self.signature, self.key_list.as_bytes())?;
        let list: KeyList =
            serde_json::from_str(&self.key_list).map_err(|e| KeyListError::Malformed {
                what: "key_list",
                reason: cut(&e.to_string(), 200),
            })?;
        if list.format != LIST_FORMAT {
            return Err(KeyListError::Format {
                what: "key_list",
                found: cut(&list.format, 60),
                expected: LIST_FORMAT,
            });
        }
        if list.organisation != fingerprint.to_hex() {
            return Err(KeyListError::WrongOrganisation {
                listed: cut(&list.organisation, 80),
                actual: grouped(&fingerprint),
            });
        }
        if list.version == 0 {
            return Err(KeyListError::VersionZero);
        }
        if list.issued > list.expires {
            return Err(KeyListError::BadDates {
                issued: list.issued,
                expires: list.expires,
            });
        }
        if today > list.expires {
            return Err(KeyListError::Expired {
                expires: list.expires,
                today,
            });
        }
        let reviewer_certs = entry_certs("reviewers", &list.reviewers, 1, MAX_REVIEWERS)?;
        let courier_certs = entry_certs("couriers", &list.couriers, 0, MAX_COURIERS)?;
        let mut seen = BTreeSet::new();
        for cert in reviewer_certs.iter().chain(&courier_certs) {
            if !seen.insert(cert.fingerprint()) {
                return Err(KeyListError::Duplicate {
                    fingerprint: grouped(&cert.fingerprint()),
                });
            }
        }
        let reviewers =
            ReviewerKeyring::from_certs(Path::new("key list, reviewers"), reviewer_certs)
                .map_err(|e| KeyListError::Keys(e.to_string()))?;
        let couriers = CourierKeyring::from_certs(Path::new("key list, couriers"), courier_certs)
            .map_err(|e| KeyListError::Keys(e.to_string()))?;
        list.page.check()?;
        Ok(VerifiedKeyList {
            organisation: fingerprint,
            organisation_cert: org,
            version: list.version,
            issued: list.issued,
            expires: list.expires,
            reviewers,
            couriers,
            page: list.page,
            sha256: self.sha256(),
        })
    }
}

/// Exactly one certificate in `armored`.
fn one_cert(armored: &str) -> Result<Cert, String> {
    let mut certs =
        CertParser::from_bytes(armored.as_bytes()).map_err(|e| cut(&e.to_string(), 200))?;
    let cert = match certs.next() {
        Some(Ok(cert)) => cert,
        Some(Err(e)) => return Err(cut(&e.to_string(), 200)),
        None => return Err("no certificate".into()),
    };
    if certs.next().is_some() {
        return Err("more than one certificate".into());
    }
    Ok(cert)
}

/// The organisation key must be valid now and able to sign, and the signature must be one
/// binary signature by its primary key over `signed`, under the standard policy.
fn check_signature(org: &Cert, signature: &str, signed: &[u8]) -> Result<(), KeyListError> {
    let fingerprint = grouped(&org.fingerprint());
    let invalid = |reason: String| KeyListError::OrganisationInvalid {
        fingerprint: fingerprint.clone(),
        reason,
    };
    let now = SystemTime::now();
    let policy = &crate::keyring::POLICY;
    let valid = org
        .with_policy(policy, now)
        .map_err(|e| invalid(format!("not valid under the standard policy: {e}")))?;
    if let RevocationStatus::Revoked(_) = valid.revocation_status() {
        return Err(invalid("it is revoked".into()));
    }
    if valid.alive().is_err() {
        return Err(invalid("it has expired".into()));
    }
    let primary = valid.primary_key();
    if !primary.key_flags().is_some_and(|f| f.for_signing()) {
        return Err(invalid(
            "its primary key cannot sign (make it with resguardo-review keygen --org)".into(),
        ));
    }
    let bad = |reason: &str| KeyListError::BadSignature {
        fingerprint: fingerprint.clone(),
        reason: reason.into(),
    };
    if signature.len() > 16 * 1024 {
        return Err(bad("the signature is too large"));
    }
    let sig: Signature = match Packet::from_bytes(signature.as_bytes()) {
        Ok(Packet::Signature(sig)) => sig,
        _ => return Err(bad("not one OpenPGP signature")),
    };
    if sig.typ() != SignatureType::Binary {
        return Err(bad("not a binary document signature"));
    }
    let handle = primary.key().key_handle();
    if !sig.get_issuers().iter().any(|h| h.aliases(&handle)) {
        return Err(bad("made by another key"));
    }
    policy
        .signature(&sig, HashAlgoSecurity::CollisionResistance)
        .map_err(|_| bad("the standard policy refuses its algorithms"))?;
    sig.verify_message(primary.key(), signed)
        .map_err(|_| bad("it is not over this text"))?;
    sig.signature_alive(now, OFFLINE_CLOCK_SKEW)
        .map_err(|_| bad("it is dated in the future or has expired"))?;
    Ok(())
}

/// The certificates of a role's entries: each parses, is public only, and is the listed
/// fingerprint's.
fn entry_certs(
    role: &'static str,
    entries: &[KeyEntry],
    min: usize,
    max: usize,
) -> Result<Vec<Cert>, KeyListError> {
    if entries.len() < min || entries.len() > max {
        return Err(KeyListError::Count {
            role,
            count: entries.len(),
            min,
            max,
        });
    }
    let mut certs = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let index = i + 1;
        let cert = one_cert(&entry.cert).map_err(|reason| KeyListError::BadEntry {
            role,
            index,
            reason: format!("not one OpenPGP certificate: {reason}"),
        })?;
        if entry.name.chars().count() > 200 || entry.name.chars().any(char::is_control) {
            return Err(KeyListError::BadEntry {
                role,
                index,
                reason: "the name must be at most 200 characters, without control characters"
                    .into(),
            });
        }
        if cert.is_tsk() {
            return Err(KeyListError::SecretKeyMaterial {
                role,
                index,
                fingerprint: grouped(&cert.fingerprint()),
            });
        }
        if entry.fingerprint != cert.fingerprint().to_hex() {
            return Err(KeyListError::FingerprintMismatch {
                role,
                index,
                listed: cut(&entry.fingerprint, 80),
                actual: grouped(&cert.fingerprint()),
            });
        }
        certs.push(cert);
    }
    Ok(certs)
}

impl VerifiedKeyList {
    /// Refuses a list older than `min_version` (`--min-version`: the version on the card, or the
    /// last one the client saw): a replayed old list still verifies until it expires.
    pub fn at_least(&self, min_version: u64) -> Result<(), KeyListError> {
        if self.version < min_version {
            return Err(KeyListError::OlderThanKnown {
                served: self.version,
                known: min_version,
            });
        }
        Ok(())
    }

    /// Checks that `reviewers` and `couriers` (configured on a gateway, or served by one) are
    /// exactly the list's: the same primary fingerprints and equal certificates, per role.
    pub fn same_keys(
        &self,
        reviewers: &ReviewerKeyring,
        couriers: &CourierKeyring,
    ) -> Result<(), KeyListError> {
        same_members(
            "reviewer",
            self.reviewers.reviewers(),
            reviewers.reviewers(),
        )?;
        same_members("courier", self.couriers.couriers(), couriers.couriers())
    }

    /// True when the list vouches for exactly the page this build serves.
    pub fn vouches_for_this_build(&self) -> bool {
        self.page == PageManifest::embedded()
    }
}

fn same_members(
    role: &'static str,
    listed: &[Reviewer],
    used: &[Reviewer],
) -> Result<(), KeyListError> {
    let mut problems = Vec::new();
    for u in used {
        match listed.iter().find(|l| l.fingerprint() == u.fingerprint()) {
            None => problems.push(format!("{} is not in the list", grouped(&u.fingerprint()))),
            Some(l) if l.cert() != u.cert() => problems.push(format!(
                "{} is another version of the certificate than the list's",
                grouped(&u.fingerprint())
            )),
            Some(_) => {}
        }
    }
    for l in listed {
        if !used.iter().any(|u| u.fingerprint() == l.fingerprint()) {
            problems.push(format!(
                "{} is in the list but missing",
                grouped(&l.fingerprint())
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(KeyListError::KeysDiffer {
            role,
            detail: problems.join("; "),
        })
    }
}

/// Signs `list` with the organisation key's primary key (its secret part, unlocked with
/// `passphrase` when protected). The list's `organisation` must be that key's fingerprint.
pub fn sign_key_list(
    org_secret: &Cert,
    passphrase: Option<&Password>,
    list: &KeyList,
) -> Result<SignedKeyList, KeyListError> {
    if list.organisation != org_secret.fingerprint().to_hex() {
        return Err(KeyListError::Sign(format!(
            "the list names the organisation {}, the key is {}",
            cut(&list.organisation, 80),
            grouped(&org_secret.fingerprint())
        )));
    }
    let text = serde_json::to_string(list).map_err(|e| KeyListError::Sign(e.to_string()))?;
    sign_text(org_secret, passphrase, text)
}

/// Signs `text` as the key list's text (no check that it is one).
fn sign_text(
    org_secret: &Cert,
    passphrase: Option<&Password>,
    text: String,
) -> Result<SignedKeyList, KeyListError> {
    let key = org_secret
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .map_err(|_| {
            KeyListError::Sign(
                "this is a public certificate, not the organisation's secret key".into(),
            )
        })?;
    let key = if key.secret().is_encrypted() {
        let passphrase = passphrase.ok_or_else(|| {
            KeyListError::Sign("the organisation key needs its passphrase".into())
        })?;
        key.decrypt_secret(passphrase).map_err(|_| {
            KeyListError::Sign(format!(
                "wrong passphrase for the organisation key {}",
                grouped(&org_secret.fingerprint())
            ))
        })?
    } else {
        key
    };
    let mut signer = key
        .into_keypair()
        .map_err(|e| KeyListError::Sign(e.to_string()))?;
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .sign_message(&mut signer, text.as_bytes())
        .map_err(|e| KeyListError::Sign(e.to_string()))?;
    let signature = armored_signature(sig).map_err(|e| KeyListError::Sign(e.to_string()))?;
    let public = org_secret.clone().strip_secret_key_material();
    let organisation_cert = public
        .armored()
        .to_vec()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| KeyListError::Sign(e.to_string()))?;
    Ok(SignedKeyList {
        format: SIGNED_FORMAT.into(),
        organisation_cert,
        key_list: text,
        signature,
    })
}

fn armored_signature(sig: Signature) -> openpgp::Result<String> {
    let mut out = Vec::new();
    let mut w = openpgp::armor::Writer::new(&mut out, openpgp::armor::Kind::Signature)?;
    Packet::from(sig).serialize(&mut w)?;
    w.finalize()?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A list entry for a validated certificate (its fingerprint, primary user ID and armored
/// public certificate).
pub fn entry_for(member: &Reviewer) -> KeyEntry {
    KeyEntry {
        fingerprint: member.fingerprint().to_hex(),
        name: member.name().to_string(),
        cert: member.armored(),
    }
}

/// The file in a gateway's data directory that keeps the highest key list it served.
pub const SERVED_FILE: &str = "key-list.served";

/// What `key-list.served` holds: a version and a SHA-256, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServedRecord {
    /// The highest key list version served.
    pub version: u64,
    /// Its [`VerifiedKeyList::sha256`].
    pub sha256: String,
}

impl ServedRecord {
    /// Reads `data_dir/key-list.served`; `Ok(None)` when there is none yet.
    pub fn read(data_dir: &Path) -> Result<Option<Self>, String> {
        let path = data_dir.join(SERVED_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        };
        let record: ServedRecord = serde_json::from_slice(&bytes)
            .ok()
            .filter(|r: &ServedRecord| is_sha256_hex(&r.sha256))
            .ok_or_else(|| format!("{}: damaged (not a version and a SHA-256)", path.display()))?;
        Ok(Some(record))
    }

    /// Whether serving `list` keeps the rule "never back, never the same version changed"
    /// against this record; the refusal says what to do.
    pub fn allows(&self, list: &VerifiedKeyList) -> Result<(), String> {
        if list.version < self.version {
            return Err(format!(
                "version {} is older than version {} this gateway served before ({SERVED_FILE} in \
                 its data directory); configure the newest key list (a rolled-back list could \
                 bring back a key the organisation removed)",
                list.version, self.version
            ));
        }
        if list.version == self.version && list.sha256 != self.sha256 {
            return Err(format!(
                "version {} is not the version {} this gateway served before (same number, other \
                 content); a changed key list needs a higher --version",
                list.version, self.version
            ));
        }
        Ok(())
    }

    /// Writes `data_dir/key-list.served` atomically (a temporary file, fsynced, renamed over it,
    /// the directory fsynced).
    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        let path = data_dir.join(SERVED_FILE);
        let tmp = data_dir.join(format!("{SERVED_FILE}.tmp"));
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(data_dir)?.sync_all()
    }
}

impl fmt::Display for PageManifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "release {} ({} files)", self.release, self.files.len())
    }
}

#[cfg(test)]
mod tests;
