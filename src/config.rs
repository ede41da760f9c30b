//! The gateway's configuration: a TOML file, or the embedded default for a first run.
//!
//! Loading is two steps. [`GatewayConfig::from_toml`] parses strictly (an unknown key is an error,
//! not a silently ignored typo). [`GatewayConfig::validate`] then checks everything the gateway
//! will rely on (files exist, certificates are usable, numbers are in range, plain HTTP only on
//! loopback) and reports *every* problem, one line each. The gateway never starts on a config it
//! cannot fully honour.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::keyring::{CourierKeyring, ReviewerKeyring};
use crate::trust::keylist::{ServedRecord, SignedKeyList, VerifiedKeyList};

/// The embedded default: the demo keys, HTTPS on loopback with a self-signed certificate.
pub const EMBEDDED_DEFAULT: &str = r#"
listen = "127.0.0.1:8443"
data_dir = "resguardo-data"
reviewer_certs = [
    "keys-example/demo-reviewer-1.pub.asc",
    "keys-example/demo-reviewer-2.pub.asc",
]

[[couriers]]
cert = "keys-example/demo-courier-1.pub.asc"

[tls]
mode = "self-signed"
"#;

/// Largest submission limit we accept in a config (the bundle format allows more).
const MAX_SUBMISSION_LIMIT: u64 = 2 * 1024 * 1024 * 1024;

/// The gateway's settings as parsed, not yet checked (see [`GatewayConfig::validate`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address and port to listen on; plain HTTP is allowed only on a loopback address.
    pub listen: SocketAddr,
    /// Where the ciphertext, the index and the self-signed certificate live.
    pub data_dir: PathBuf,
    /// The reviewers' public OpenPGP certificates, one file each; submissions are encrypted to
    /// these and nothing else.
    pub reviewer_certs: Vec<PathBuf>,
    /// The couriers' public certificates (`[[couriers]]`, on-call keys made with
    /// `resguardo-review keygen --courier`): triage envelopes are sealed to them and they sign
    /// courier requests. None configured: no triage envelopes, no courier routes.
    #[serde(default)]
    pub couriers: Vec<CourierEntry>,
    /// How TLS is done (`[tls]`); default: a self-signed certificate.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Size, time and connection limits (`[limits]`).
    #[serde(default)]
    pub limits: Limits,
    /// Request and upload rates for the whole gateway (`[rate_limits]`).
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// The form posted without JavaScript (`[form]`).
    #[serde(default)]
    pub form: FormConfig,
    /// The proof of work each submission carries (`[proof_of_work]`).
    #[serde(default)]
    pub proof_of_work: ProofOfWorkConfig,
    /// Deletion of submissions never exported (`[retention]`).
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Spare files and time-stamp sweeps of the data directory (`[store]`).
    #[serde(default)]
    pub store: StoreConfig,
    /// Uploads that resume (`[uploads]`, `docs/uploads-v1.md`).
    #[serde(default)]
    pub uploads: UploadsConfig,
    /// Who runs the gateway, as the page shows it (`[organisation]`).
    #[serde(default)]
    pub organisation: OrganisationConfig,
    /// The organisation's signed key list (`resguardo-review sign-keys`, `docs/trust-v1.md`):
    /// served with the keys so that clients can check them against the organisation key. It
    /// must list exactly the configured reviewer and courier certificates and this build's page.
    #[serde(default)]
    pub key_list: Option<PathBuf>,
}

/// A text in the page's languages: one string for all, or a table by language tag (a language
/// missing from the table gets the page's default language, then any).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum LocalText {
    /// The same text in every language.
    One(String),
    /// Texts by language tag (`es`, `en`, ...).
    ByLanguage(std::collections::BTreeMap<String, String>),
}

impl LocalText {
    /// The text in `lang`, else in `default_lang`, else the one with the first tag in
    /// alphabetical order; empty only for an empty table.
    pub fn get(&self, lang: &str, default_lang: &str) -> &str {
        match self {
            LocalText::One(text) => text,
            LocalText::ByLanguage(map) => map
                .get(lang)
                .or_else(|| map.get(default_lang))
                .or_else(|| map.values().next())
                .map(String::as_str)
                .unwrap_or(""),
        }
    }

    fn texts(&self) -> Vec<&str> {
        match self {
            LocalText::One(text) => vec![text],
            LocalText::ByLanguage(map) => map.values().map(String::as_str).collect(),
        }
    }
}

/// Who runs this gateway, shown on the page in every language: the organisation, who reads the
/// reports, how soon urgent ones are read, and numbers to call in an emergency.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrganisationConfig {
    /// The organisation's name.
    pub name: LocalText,
    /// Who reads the reports, in plain words.
    pub who_reads: LocalText,
    /// Urgent reports are read at least every this many hours.
    pub urgent_review_hours: u32,
    /// Numbers to call in an emergency, at most 8.
    pub hotlines: Vec<Hotline>,
    /// The organisation key's fingerprint (40 hex digits, spaces allowed): when set, the key
    /// list must be signed by this key.
    pub key_fingerprint: Option<String>,
}

/// An emergency number shown on the page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hotline {
    /// Whom the number reaches.
    pub label: LocalText,
    /// The number as dialled: 1 to 20 characters, digits, spaces, `+` or `-`.
    pub number: String,
}

impl Default for OrganisationConfig {
    fn default() -> Self {
        let by = |es: &str, en: &str| {
            LocalText::ByLanguage(
                [
                    ("es".to_string(), es.to_string()),
                    ("en".to_string(), en.to_string()),
                ]
                .into_iter()
                .collect(),
            )
        };
        OrganisationConfig {
            name: by(
                "Resguardo (demostración: configura [organisation] en gateway.toml)",
                "Resguardo (demonstration: set [organisation] in gateway.toml)",
            ),
            who_reads: by(
                "Un pequeño equipo de revisión, en una computadora sin internet.",
                "A small review team, on a computer without internet.",
            ),
            urgent_review_hours: 12,
            hotlines: vec![
                Hotline {
                    label: by("Policía Nacional", "National Police"),
                    number: "105".into(),
                },
                Hotline {
                    label: by(
                        "Línea 100 (violencia contra las mujeres y la familia)",
                        "Línea 100 (violence against women and families)",
                    ),
                    number: "100".into(),
                },
            ],
            key_fingerprint: None,
        }
    }
}

/// How the data directory avoids dating arrivals (`[store]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Empty files kept ready for uploads, so no file is created (and dated) when one arrives.
    /// Keep it above the most submissions you expect in one day.
    pub spare_files: usize,
    /// At most this many seconds after any change, every file's times in the data directory are
    /// reset, so a seized disk dates the last activity only to within this interval.
    pub sweep_secs: u64,
    /// Tell each reporter their submission's number in the gateway's log (`docs/trust-v1.md`),
    /// so they can later ask the team whether it arrived. The cost: anyone who submits learns
    /// how many submissions arrived before theirs, and two probes some minutes apart tell how
    /// many arrived in between (SECURITY.md, G). Turn it off where so few reports arrive that
    /// this would date them.
    pub number_in_answer: bool,
    /// Where sealed submissions are kept: `"embedded"` (sled and files in `data_dir`, the
    /// default) or `"s3"` (an S3 bucket, e.g. on a Garage cluster; `[store.s3]`,
    /// `docs/store-v1.md`).
    pub backend: StoreBackendKind,
    /// The bucket, for `backend = "s3"`.
    pub s3: Option<S3StoreConfig>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            spare_files: crate::store::DEFAULT_SPARE_FILES,
            sweep_secs: 60,
            number_in_answer: true,
            backend: StoreBackendKind::Embedded,
            s3: None,
        }
    }
}

/// `[store] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackendKind {
    /// sled and files in `data_dir`.
    Embedded,
    /// An S3 bucket (`[store.s3]`).
    S3,
}

/// `[store.s3]`: the bucket that holds this gateway's sealed submissions under its own prefix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3StoreConfig {
    /// `https://host:port`; `http://` only to 127.0.0.0/8 or ::1.
    pub endpoint: String,
    /// The bucket, shared by every gateway of the organisation.
    pub bucket: String,
    /// The S3 region name the store expects (Garage: its `s3_region`, often `garage`).
    pub region: String,
    /// This gateway's name, its key prefix in the bucket: unique per gateway, `[a-z0-9-]{1,32}`.
    pub gateway: String,
    /// A file holding `access_key_id = "…"` and `secret_access_key = "…"`, mode 0600; the keys
    /// are never written in this file.
    pub credentials_file: PathBuf,
    /// Extra PEM root certificates for the store's TLS (a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// Uploads that resume (`[uploads]`, tus; `docs/uploads-v1.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// An incomplete upload is deleted when this day after its creation begins (1 to 14): it
    /// lives between `expire_days - 1` and `expire_days` days.
    pub expire_days: u32,
    /// At most this many incomplete uploads at once (1 to 10000); more are refused (503).
    pub max_pending: usize,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        UploadsConfig {
            expire_days: 2,
            max_pending: 64,
        }
    }
}

/// Deletion of submissions that were never exported, and of quiet conversations
/// (`[retention]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Delete submissions never exported after this many days; 0 keeps them until exported.
    /// (Exported submissions are deleted by `purge`.)
    pub unexported_days: u32,
    /// Delete a conversation (its locked reply key and replies) this many days after its last
    /// message (`docs/replies-v1.md`); 1 to 3650.
    pub conversation_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            unexported_days: 0,
            conversation_days: 180,
        }
    }
}

/// The proof of work asked of every submission (`[proof_of_work]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProofOfWorkConfig {
    /// Require a solved challenge with every submission (switch off for closed deployments).
    pub enabled: bool,
    /// Leading zero bits of SHA-256 asked when calm: 16 is about a second in a phone's browser.
    pub base_difficulty: u8,
    /// The most asked under a flood.
    pub max_difficulty: u8,
    /// Seconds a challenge stays valid after it is issued (5 to 3600).
    pub challenge_ttl_secs: u64,
    /// Spent challenges remembered until they expire (bounds memory under a flood).
    pub replay_memory: usize,
}

impl Default for ProofOfWorkConfig {
    fn default() -> Self {
        ProofOfWorkConfig {
            enabled: true,
            base_difficulty: 16,
            max_difficulty: 24,
            challenge_ttl_secs: 300,
            replay_memory: 100_000,
        }
    }
}

/// The form posted without JavaScript and sealed by the gateway (`[form]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormConfig {
    /// Accept the form posted without JavaScript and seal it on arrival. The plaintext then
    /// passes through the gateway's memory; switch this off if that risk is not acceptable.
    pub server_sealing: bool,
    /// Form posts accepted per minute, for the whole gateway. The gateway does the sealing work
    /// for these, and they carry no proof of work, so they have a budget of their own.
    pub posts_per_minute: u32,
    /// Form posts that may come at once before `posts_per_minute` paces them.
    pub post_burst: u32,
    /// Largest form post (text and files together), in bytes. Default: 25 MiB, or
    /// `limits.max_submission_bytes` if that is smaller.
    pub max_post_bytes: Option<u64>,
    /// Bytes of form posts accepted per hour, for the whole gateway.
    pub bytes_per_hour: u64,
    /// A post must come at least this long after its page was served (a person fills in a form
    /// in more time than that; a script that fetches the page and posts at once waits).
    pub token_min_age_secs: u64,
    /// ... and at most this long after (the page then asks to press Send again).
    pub token_ttl_secs: u64,
}

impl FormConfig {
    /// The largest form post in force.
    pub fn max_post_bytes(&self, limits: &Limits) -> u64 {
        self.max_post_bytes
            .unwrap_or(25 * 1024 * 1024)
            .min(limits.max_submission_bytes)
    }
}

impl Default for FormConfig {
    fn default() -> Self {
        FormConfig {
            server_sealing: true,
            posts_per_minute: 6,
            post_burst: 3,
            max_post_bytes: None,
            bytes_per_hour: 1024 * 1024 * 1024,
            token_min_age_secs: 5,
            token_ttl_secs: 86_400,
        }
    }
}

/// How the gateway does TLS (`[tls]`, chosen by its `mode` key).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TlsConfig {
    /// A certificate generated at first start and kept in the data directory.
    #[default]
    SelfSigned,
    /// The operator's certificate chain and private key, PEM.
    Files {
        /// The certificate chain file.
        cert: PathBuf,
        /// The private key file.
        key: PathBuf,
    },
    /// No TLS, for running behind a Tor onion service on the same host. Loopback only.
    PlainHttp,
}

/// Size, time and connection limits (`[limits]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted submission (ciphertext bytes).
    pub max_submission_bytes: u64,
    /// Total bytes of stored ciphertext; none = no quota.
    pub store_quota_bytes: Option<u64>,
    /// Refuse new submissions while the disk has less than this free.
    pub min_free_disk_bytes: u64,
    /// An upload that sends nothing for this long is dropped (Tor circuits can stall briefly).
    pub body_idle_timeout_secs: u64,
    /// After this grace period an upload slower than `min_upload_bytes_per_sec` on average is
    /// dropped: a slow reporter on Tor manages tens of KB/s, a slow-body attack far less.
    pub upload_grace_secs: u64,
    /// The lowest average upload rate, in bytes per second, kept after `upload_grace_secs`.
    pub min_upload_bytes_per_sec: u64,
    /// No upload may take longer than this.
    pub max_upload_secs: u64,
    /// A client must send its request headers (and finish TLS) within this time.
    pub header_timeout_secs: u64,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_submission_bytes: 100 * 1024 * 1024,
            store_quota_bytes: None,
            min_free_disk_bytes: 64 * 1024 * 1024,
            body_idle_timeout_secs: 60,
            upload_grace_secs: 30,
            min_upload_bytes_per_sec: 2048,
            max_upload_secs: 7200,
            header_timeout_secs: 20,
            max_header_bytes: 16 * 1024,
            max_connections: 1024,
        }
    }
}

/// Request and upload rates for the whole gateway (`[rate_limits]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Accepted submission attempts per minute, for the whole gateway (not per address: behind
    /// Tor every reporter has the same one).
    pub submissions_per_minute: u32,
    /// How many submissions may arrive at once above the steady rate.
    pub submission_burst: u32,
    /// Uploads in progress at the same time.
    pub max_concurrent_uploads: u32,
    /// When every upload slot is taken, the slowest upload averaging less than this gives its
    /// slot to a new one (so trickling uploads cannot lock reporters out).
    pub evict_uploads_slower_than_bytes_per_sec: u64,
    /// The page and the files it loads, per second, for the whole gateway.
    pub requests_per_second: u32,
    /// Page requests that may come at once before `requests_per_second` paces them.
    pub request_burst: u32,
    /// `GET /api/v1/keys` per second, for the whole gateway.
    pub keys_per_second: u32,
    /// Key requests that may come at once before `keys_per_second` paces them.
    pub keys_burst: u32,
    /// `GET /api/v1/challenge` per second, for the whole gateway.
    pub challenges_per_second: u32,
    /// Challenge requests that may come at once before `challenges_per_second` paces them.
    pub challenge_burst: u32,
    /// The courier routes (`/api/v1/courier/…`) per second, for the whole gateway: a budget of
    /// their own, so that a flood of the reporters' routes cannot silence early alerts.
    pub courier_per_second: u32,
    /// Courier requests that may come at once before `courier_per_second` paces them.
    pub courier_burst: u32,
    /// Reporters' check-ins (`POST /api/v1/conversations/check`) per minute, for the whole
    /// gateway; each also pays a proof of work. Bounds receipt guessing.
    pub checks_per_minute: u32,
    /// Check-ins that may come at once before `checks_per_minute` paces them.
    pub check_burst: u32,
    /// Each connection's own share of the routes above (a page load makes about a dozen
    /// requests), so one client cannot take a whole budget.
    pub per_connection_per_second: u32,
    /// Requests one connection may make at once before `per_connection_per_second` paces it.
    pub per_connection_burst: u32,
    /// A connection is closed after this many requests (the client opens a new one).
    pub max_requests_per_connection: u32,
    /// The rate asked of an upload to keep its slot when every slot is taken grows by
    /// `evict_uploads_slower_than_bytes_per_sec` every this many seconds of its age.
    pub evict_ramp_secs: u64,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            submissions_per_minute: 60,
            submission_burst: 20,
            max_concurrent_uploads: 64,
            evict_uploads_slower_than_bytes_per_sec: 8192,
            requests_per_second: 200,
            request_burst: 400,
            keys_per_second: 50,
            keys_burst: 100,
            challenges_per_second: 50,
            challenge_burst: 100,
            courier_per_second: 20,
            courier_burst: 60,
            checks_per_minute: 120,
            check_burst: 30,
            per_connection_per_second: 10,
            per_connection_burst: 40,
            max_requests_per_connection: 200,
            evict_ramp_secs: 600,
        }
    }
}

/// Every problem found in a config, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| format!("config: {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    /// One line each, without the `config: ` prefix that `Display` adds.
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![problem.into()],
        }
    }
}

/// One `[[couriers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourierEntry {
    /// The courier's public certificate file.
    pub cert: PathBuf,
}

/// A config that passed validation, with the reviewers' keyring loaded.
#[derive(Debug, Clone)]
pub struct ValidatedConfig {
    /// The settings that passed.
    pub config: GatewayConfig,
    /// The reviewers' certificates, loaded from `reviewer_certs`.
    pub keyring: ReviewerKeyring,
    /// The couriers' certificates, loaded from `[[couriers]]` (may be empty).
    pub couriers: CourierKeyring,
    /// True when running on the embedded default (demo keys).
    pub is_embedded_default: bool,
    /// The key list served with the keys, verified; `None` when none is configured.
    pub key_list: Option<ServedKeyList>,
}

/// A key list the gateway serves, and whether it keeps `key-list.served` for it.
#[derive(Debug, Clone)]
pub struct ServedKeyList {
    /// The signed list as served (`GET /api/v1/keys`, `key_list`).
    pub signed: SignedKeyList,
    /// What it says, verified.
    pub verified: VerifiedKeyList,
    /// False for the embedded default's demo list (signed at each start; nothing kept).
    pub record: bool,
}

/// The demo organisation key of the embedded default (its secret is public).
pub const DEMO_ORG_KEY: &str = "keys-example/demo-org.sec.asc";
/// Its passphrase (public too).
pub const DEMO_ORG_PASSPHRASE: &str = "keys-example/demo-org.passphrase";

impl GatewayConfig {
    /// Parses TOML; relative paths are taken relative to `base` (the config file's directory).
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut config: GatewayConfig =
            toml::from_str(text).map_err(|e| ConfigError::one(toml_problem(text, &e)))?;
        config.resolve_paths(base);
        Ok(config)
    }

    /// Reads and parses the file at `path`; relative paths in it follow its directory, and
    /// every problem is prefixed with `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::one(format!("{}: cannot read: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base).map_err(|e| ConfigError {
            problems: e
                .problems
                .into_iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect(),
        })
    }

    /// The embedded default, with paths relative to the current directory.
    pub fn embedded_default() -> Self {
        // The embedded text is part of the program and is tested to parse.
        Self::from_toml(EMBEDDED_DEFAULT, Path::new("."))
            .expect("the embedded default config parses")
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() && base != Path::new(".") && base != Path::new("") {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.data_dir);
        if let Some(key_list) = &mut self.key_list {
            resolve(key_list);
        }
        self.reviewer_certs.iter_mut().for_each(resolve);
        self.couriers.iter_mut().for_each(|c| resolve(&mut c.cert));
        if let TlsConfig::Files { cert, key } = &mut self.tls {
            resolve(cert);
            resolve(key);
        }
        if let Some(s3) = &mut self.store.s3 {
            resolve(&mut s3.credentials_file);
            if let Some(ca) = &mut s3.ca_file {
                resolve(ca);
            }
        }
    }

    /// Checks everything and loads the reviewers' certificates.
    pub fn validate(self, is_embedded_default: bool) -> Result<ValidatedConfig, ConfigError> {
        let mut problems = Vec::new();
        if let TlsConfig::PlainHttp = self.tls {
            if !self.listen.ip().is_loopback() {
                problems.push(format!(
                    "tls mode \"plain-http\" is only allowed on a loopback address (for an onion \
                     service on the same host), not on {}",
                    self.listen
                ));
            }
        }
        if let TlsConfig::Files { cert, key } = &self.tls {
            for (what, path) in [("certificate", cert), ("private key", key)] {
                if !path.is_file() {
                    problems.push(format!("tls {what} {}: file not found", path.display()));
                }
            }
        }
        let l = &self.limits;
        if l.max_submission_bytes == 0 || l.max_submission_bytes > MAX_SUBMISSION_LIMIT {
            problems.push(format!(
                "limits.max_submission_bytes must be between 1 and {MAX_SUBMISSION_LIMIT}"
            ));
        }
        for (name, value, range) in [
            ("body_idle_timeout_secs", l.body_idle_timeout_secs, 1..=3600),
            ("upload_grace_secs", l.upload_grace_secs, 1..=3600),
            ("max_upload_secs", l.max_upload_secs, 10..=86_400),
            ("header_timeout_secs", l.header_timeout_secs, 1..=300),
            (
                "max_header_bytes",
                l.max_header_bytes as u64,
                // A submission's headers carry the triage envelope and a conversation's locked
                // box (about 9 KiB together): less would refuse every report from the page.
                16_384..=1_048_576,
            ),
            ("max_connections", l.max_connections as u64, 16..=1_000_000),
        ] {
            if !range.contains(&value) {
                problems.push(format!(
                    "limits.{name} must be between {} and {}",
                    range.start(),
                    range.end()
                ));
            }
        }
        if let Some(quota) = l.store_quota_bytes {
            if quota < l.max_submission_bytes {
                problems.push(
                    "limits.store_quota_bytes is smaller than limits.max_submission_bytes".into(),
                );
            }
        }
        let r = &self.rate_limits;
        for (name, value) in [
            (
                "rate_limits.submissions_per_minute",
                r.submissions_per_minute,
            ),
            ("rate_limits.submission_burst", r.submission_burst),
            (
                "rate_limits.max_concurrent_uploads",
                r.max_concurrent_uploads,
            ),
            ("rate_limits.requests_per_second", r.requests_per_second),
            ("rate_limits.request_burst", r.request_burst),
            ("rate_limits.keys_per_second", r.keys_per_second),
            ("rate_limits.keys_burst", r.keys_burst),
            ("rate_limits.challenges_per_second", r.challenges_per_second),
            ("rate_limits.challenge_burst", r.challenge_burst),
            ("rate_limits.courier_per_second", r.courier_per_second),
            ("rate_limits.courier_burst", r.courier_burst),
            ("rate_limits.checks_per_minute", r.checks_per_minute),
            ("rate_limits.check_burst", r.check_burst),
            (
                "rate_limits.per_connection_per_second",
                r.per_connection_per_second,
            ),
            ("rate_limits.per_connection_burst", r.per_connection_burst),
            (
                "rate_limits.max_requests_per_connection",
                r.max_requests_per_connection,
            ),
            ("form.posts_per_minute", self.form.posts_per_minute),
            ("form.post_burst", self.form.post_burst),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        if !(10..=86_400).contains(&r.evict_ramp_secs) {
            problems.push("rate_limits.evict_ramp_secs must be between 10 and 86400".into());
        }
        let f = &self.form;
        if f.max_post_bytes
            .is_some_and(|m| m < 64 * 1024 || m > l.max_submission_bytes)
        {
            problems.push(
                "form.max_post_bytes must be at least 65536 and at most limits.max_submission_bytes"
                    .into(),
            );
        }
        if f.bytes_per_hour < f.max_post_bytes(l) {
            problems.push("form.bytes_per_hour must be at least form.max_post_bytes".into());
        }
        if f.token_min_age_secs > 600 || !(600..=7 * 86_400).contains(&f.token_ttl_secs) {
            problems.push(
                "form.token_min_age_secs must be at most 600, and form.token_ttl_secs between 600 \
                 and 604800"
                    .into(),
            );
        }
        let o = &self.organisation;
        let org_texts = o
            .name
            .texts()
            .into_iter()
            .chain(o.who_reads.texts())
            .chain(o.hotlines.iter().flat_map(|h| h.label.texts()));
        for text in org_texts {
            if text.trim().is_empty()
                || text.chars().count() > 500
                || text.chars().any(char::is_control)
            {
                problems.push(
                    "organisation: every text must be 1 to 500 characters without control characters"
                        .into(),
                );
                break;
            }
        }
        if o.hotlines.len() > 8
            || o.hotlines.iter().any(|h| {
                h.number.is_empty()
                    || h.number.len() > 20
                    || !h
                        .number
                        .chars()
                        .all(|c| c.is_ascii_digit() || " +-".contains(c))
            })
        {
            problems.push(
                "organisation.hotlines: at most 8, each number 1 to 20 digits, spaces, + or -"
                    .into(),
            );
        }
        if !(1..=168).contains(&o.urgent_review_hours) {
            problems.push("organisation.urgent_review_hours must be between 1 and 168".into());
        }
        if !(16..=100_000).contains(&self.store.spare_files) {
            problems.push("store.spare_files must be between 16 and 100000".into());
        }
        if !(1..=60).contains(&self.store.sweep_secs) {
            problems.push("store.sweep_secs must be between 1 and 60".into());
        }
        match (self.store.backend, &self.store.s3) {
            (StoreBackendKind::Embedded, Some(_)) => problems.push(
                "[store.s3] is set but store.backend is \"embedded\"; set backend = \"s3\" or remove [store.s3]".into(),
            ),
            (StoreBackendKind::S3, None) => {
                problems.push("store.backend = \"s3\" needs a [store.s3] section".into())
            }
            (StoreBackendKind::S3, Some(s3)) => problems.extend(s3.problems()),
            (StoreBackendKind::Embedded, None) => {}
        }
        if !(1..=14).contains(&self.uploads.expire_days) {
            problems.push("uploads.expire_days must be between 1 and 14".into());
        }
        if !(1..=10_000).contains(&self.uploads.max_pending) {
            problems.push("uploads.max_pending must be between 1 and 10000".into());
        }
        if !(1..=3650).contains(&self.retention.conversation_days) {
            problems.push("retention.conversation_days must be 1 to 3650".into());
        }
        if self.retention.unexported_days > 3650 {
            problems.push("retention.unexported_days must be at most 3650".into());
        }
        let pow = &self.proof_of_work;
        if pow.base_difficulty > pow.max_difficulty || pow.max_difficulty > 32 {
            problems.push(
                "proof_of_work: base_difficulty must not exceed max_difficulty, which is at most 32"
                    .into(),
            );
        }
        if !(5..=3600).contains(&pow.challenge_ttl_secs) {
            problems.push("proof_of_work.challenge_ttl_secs must be between 5 and 3600".into());
        }
        if !(100..=10_000_000).contains(&pow.replay_memory) {
            problems.push("proof_of_work.replay_memory must be between 100 and 10000000".into());
        }
        let keyring = match ReviewerKeyring::load(&self.reviewer_certs) {
            Ok(keyring) => Some(keyring),
            Err(errors) => {
                problems.extend(errors.iter().map(|e| format!("reviewer_certs: {e}")));
                None
            }
        };
        let courier_paths: Vec<PathBuf> = self.couriers.iter().map(|c| c.cert.clone()).collect();
        let couriers = match CourierKeyring::load(&courier_paths, keyring.as_ref()) {
            Ok(couriers) => Some(couriers),
            Err(errors) => {
                problems.extend(errors.iter().map(|e| format!("couriers: {e}")));
                None
            }
        };
        let key_list = self.check_key_list(
            keyring.as_ref().zip(couriers.as_ref()),
            is_embedded_default,
            &mut problems,
        );
        match (keyring, couriers) {
            (Some(keyring), Some(couriers)) if problems.is_empty() => Ok(ValidatedConfig {
                config: self,
                keyring,
                couriers,
                is_embedded_default,
                key_list,
            }),
            _ => Err(ConfigError { problems }),
        }
    }

    /// The key list (`docs/trust-v1.md`): verified, pinned when `[organisation]
    /// key_fingerprint` is set, listing exactly the configured certificates and this build's
    /// page, never older than the one served before. The embedded default signs a demo list.
    fn check_key_list(
        &self,
        keys: Option<(&ReviewerKeyring, &CourierKeyring)>,
        is_embedded_default: bool,
        problems: &mut Vec<String>,
    ) -> Option<ServedKeyList> {
        let pin = match &self.organisation.key_fingerprint {
            None => None,
            Some(text) => match parse_fingerprint(text) {
                Some(pin) => Some(pin),
                None => {
                    problems.push(
                        "organisation.key_fingerprint is not a fingerprint (40 hex digits, \
                         spaces allowed)"
                            .into(),
                    );
                    return None;
                }
            },
        };
        let today = crate::submission::UtcDay::today();
        let Some(path) = &self.key_list else {
            if pin.is_some() {
                problems.push(
                    "organisation.key_fingerprint is set but no key_list is configured: add \
                     key_list = \"keylist.json\" (made with resguardo-review sign-keys), or \
                     remove the fingerprint"
                        .into(),
                );
                return None;
            }
            if !is_embedded_default {
                return None;
            }
            let (reviewers, couriers) = keys?;
            return match demo_key_list(reviewers, couriers, today) {
                Ok(served) => Some(served),
                Err(e) => {
                    problems.push(format!("the demo key list cannot be signed: {e}"));
                    None
                }
            };
        };
        let name = path.display();
        let signed = match SignedKeyList::load(path) {
            Ok(signed) => signed,
            Err(e) => {
                problems.push(format!("key_list {name}: {e}"));
                return None;
            }
        };
        let verified = match signed.verify(pin.as_ref(), today) {
            Ok(verified) => verified,
            Err(e) => {
                problems.push(format!("key_list {name}: {e}"));
                return None;
            }
        };
        let before = problems.len();
        if let Some((reviewers, couriers)) = keys {
            if let Err(e) = verified.same_keys(reviewers, couriers) {
                problems.push(format!(
                    "key_list {name}: {e} (configured certificates); configure the certificates \
                     the list names, or have the organisation sign a new list for these"
                ));
            }
        }
        if !verified.vouches_for_this_build() {
            problems.push(format!(
                "key_list {name}: it vouches for page release {}, this build serves release {}; \
                 sign a key list for it: resguardo-gateway page-manifest > m.json; \
                 resguardo-review sign-keys … --page-manifest m.json",
                verified.page.release,
                crate::assets::VERSION
            ));
        }
        match ServedRecord::read(&self.data_dir) {
            Ok(Some(record)) => {
                if let Err(e) = record.allows(&verified) {
                    problems.push(format!("key_list {name}: {e}"));
                }
            }
            Ok(None) => {}
            Err(e) => problems.push(format!("key_list: {e}")),
        }
        (problems.len() == before).then_some(ServedKeyList {
            signed,
            verified,
            record: true,
        })
    }
}

/// A fingerprint as people write it: hex digits, spaces allowed.
fn parse_fingerprint(text: &str) -> Option<sequoia_openpgp::Fingerprint> {
    let hex: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !(hex.len() == 40 || hex.len() == 64) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    sequoia_openpgp::Fingerprint::from_hex(&hex).ok()
}

/// The embedded default's key list, signed at start with the demo organisation key (whose
/// secret is public): version 1, valid 30 days, never recorded.
fn demo_key_list(
    reviewers: &ReviewerKeyring,
    couriers: &CourierKeyring,
    today: crate::submission::UtcDay,
) -> Result<ServedKeyList, String> {
    use crate::trust::keylist::{entry_for, sign_key_list, KeyList, PageManifest, LIST_FORMAT};
    use sequoia_openpgp::parse::Parse;
    let key_path = Path::new(DEMO_ORG_KEY);
    let org =
        sequoia_openpgp::Cert::from_file(key_path).map_err(|e| format!("{DEMO_ORG_KEY}: {e}"))?;
    let passphrase = std::fs::read_to_string(DEMO_ORG_PASSPHRASE)
        .map_err(|e| format!("{DEMO_ORG_PASSPHRASE}: {e}"))?;
    let passphrase =
        sequoia_openpgp::crypto::Password::from(passphrase.lines().next().unwrap_or(""));
    let list = KeyList {
        format: LIST_FORMAT.into(),
        organisation: org.fingerprint().to_hex(),
        version: 1,
        issued: today,
        expires: crate::submission::UtcDay::from_days_since_epoch(today.days_since_epoch() + 30),
        reviewers: reviewers.reviewers().iter().map(entry_for).collect(),
        couriers: couriers.couriers().iter().map(entry_for).collect(),
        page: PageManifest::embedded(),
    };
    let signed = sign_key_list(&org, Some(&passphrase), &list).map_err(|e| e.to_string())?;
    let verified = signed
        .verify(Some(&org.fingerprint()), today)
        .map_err(|e| e.to_string())?;
    Ok(ServedKeyList {
        signed,
        verified,
        record: false,
    })
}

/// toml's own message spans several lines (with a source excerpt); we want one line per problem.
fn toml_problem(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

impl S3StoreConfig {
    /// What is wrong with these settings, one line each (the credentials file is read when the
    /// store opens, so that its errors name it).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let name_ok = !self.gateway.is_empty()
            && self.gateway.len() <= 32
            && self
                .gateway
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            problems.push(format!(
                "store.s3.gateway {:?} must be 1 to 32 of a-z, 0-9 and -",
                self.gateway
            ));
        }
        let bucket_ok = (3..=63).contains(&self.bucket.len())
            && self
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            problems.push(format!(
                "store.s3.bucket {:?} must be 3 to 63 of a-z, 0-9, - and .",
                self.bucket
            ));
        }
        if self.region.is_empty()
            || self.region.len() > 64
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            problems.push("store.s3.region must be 1 to 64 of A-Z, a-z, 0-9, - and _".into());
        }
        if !self.credentials_file.is_file() {
            problems.push(format!(
                "store.s3.credentials_file {}: file not found",
                self.credentials_file.display()
            ));
        }
        if let Some(ca) = &self.ca_file {
            if !ca.is_file() {
                problems.push(format!("store.s3.ca_file {}: file not found", ca.display()));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_parses() {
        let config = GatewayConfig::embedded_default();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(config.tls, TlsConfig::SelfSigned);
        assert_eq!(config.reviewer_certs.len(), 2);
        assert_eq!(config.limits.max_submission_bytes, 100 * 1024 * 1024);
    }

    #[test]
    fn the_documented_example_parses() {
        let config = GatewayConfig::from_toml(
            include_str!("../deploy/gateway.toml"),
            Path::new("/etc/resguardo"),
        )
        .expect("deploy/gateway.toml parses");
        assert_eq!(config.tls, TlsConfig::PlainHttp);
        assert_eq!(
            config.limits.store_quota_bytes,
            Some(20 * 1024 * 1024 * 1024)
        );
    }

    #[test]
    fn unknown_keys_are_refused_on_one_line() {
        let text = format!("{EMBEDDED_DEFAULT}\n[limits]\nmax_submision_bytes = 5\n");
        let err = GatewayConfig::from_toml(&text, Path::new(".")).expect_err("typo");
        assert_eq!(err.problems.len(), 1);
        assert!(!err.problems[0].contains('\n'));
        assert!(err.problems[0].contains("max_submision_bytes"), "{err}");
    }

    #[test]
    fn plain_http_is_refused_off_loopback_and_every_problem_is_listed() {
        let text = r#"
listen = "0.0.0.0:8080"
data_dir = "d"
reviewer_certs = ["/nonexistent/a.asc"]
[tls]
mode = "plain-http"
[rate_limits]
max_concurrent_uploads = 0
"#;
        let config = GatewayConfig::from_toml(text, Path::new(".")).expect("parses");
        let err = config.validate(false).expect_err("invalid");
        let text = err.to_string();
        assert_eq!(err.problems.len(), 3, "{text}");
        assert!(text.contains("loopback"), "{text}");
        assert!(text.contains("max_concurrent_uploads"), "{text}");
        assert!(text.contains("/nonexistent/a.asc"), "{text}");
        assert!(text.lines().all(|l| l.starts_with("config: ")), "{text}");
    }

    #[test]
    fn the_object_store_needs_its_section_a_good_name_and_a_credentials_file() {
        let base = format!("{EMBEDDED_DEFAULT}\n[store]\nbackend = \"s3\"\n",);
        let config = GatewayConfig::from_toml(&base, Path::new(".")).expect("parses");
        let err = config.validate(false).expect_err("no [store.s3]");
        assert!(
            err.to_string().contains("needs a [store.s3] section"),
            "{err}"
        );
        let text = format!(
            "{base}[store.s3]\nendpoint = \"https://garage.example:3900\"\nbucket = \"B\"\n\
             region = \"garage\"\ngateway = \"Site A\"\ncredentials_file = \"/nonexistent/creds\"\n"
        );
        let config = GatewayConfig::from_toml(&text, Path::new(".")).expect("parses");
        let err = config.validate(false).expect_err("bad names");
        let text = err.to_string();
        assert!(text.contains("store.s3.gateway"), "{text}");
        assert!(text.contains("store.s3.bucket"), "{text}");
        assert!(text.contains("/nonexistent/creds"), "{text}");
        // The keys themselves are never accepted in the config.
        let with_secret = format!(
            "{EMBEDDED_DEFAULT}\n[store]\nbackend = \"s3\"\n[store.s3]\nendpoint = \"https://g:1\"\n\
             bucket = \"resguardo\"\nregion = \"garage\"\ngateway = \"a\"\ncredentials_file = \"c\"\n\
             secret_access_key = \"x\"\n"
        );
        let err = GatewayConfig::from_toml(&with_secret, Path::new(".")).expect_err("secret");
        assert!(err.to_string().contains("secret_access_key"), "{err}");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let text = r#"
listen = "127.0.0.1:1"
data_dir = "data"
reviewer_certs = ["keys/a.asc", "/abs/b.asc"]
[tls]
mode = "files"
cert = "tls/cert.pem"
key = "tls/key.pem"
"#;
        let config = GatewayConfig::from_toml(text, Path::new("/etc/resguardo")).expect("parses");
        assert_eq!(config.data_dir, Path::new("/etc/resguardo/data"));
        assert_eq!(
            config.reviewer_certs[0],
            Path::new("/etc/resguardo/keys/a.asc")
        );
        assert_eq!(config.reviewer_certs[1], Path::new("/abs/b.asc"));
        assert_eq!(
            config.tls,
            TlsConfig::Files {
                cert: "/etc/resguardo/tls/cert.pem".into(),
                key: "/etc/resguardo/tls/key.pem".into()
            }
        );
    }
}
