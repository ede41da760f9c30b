//! `resguardo-submit verify-page` and the trust checks of `watch --org` (`docs/trust-v1.md`,
//! part 3): the served key list verified under the pinned organisation key, the served keys
//! compared with it, and the page checked against its manifest, fetched as a browser does.
//!
//! Each check is one **session**: a fresh connection (a new ureq agent built by
//! [`GatewayClient::new`], so the same TLS trust and proxy as every other request of these tools)
//! that shares nothing with a courier's signed requests. Through a SOCKS proxy the session gets
//! its own SOCKS user name, which makes Tor use a circuit of its own (`IsolateSOCKSAuth`, on by
//! default): an onion service cannot tie the page fetches to the courier's polling by circuit.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use sequoia_openpgp::Fingerprint;
use serde::Deserialize;

use super::{certs_of, GatewayClient, KeyEntry, SubmitError, Trust};
use crate::keyring::{CourierKeyring, ReviewerKeyring};
use crate::submission::UtcDay;
use crate::trust::keylist::{grouped, KeyListError, PageManifest, SignedKeyList, VerifiedKeyList};
use crate::trust::page::{
    check_rest, Browser, Destination, Fetched, PageCheckError, PageFetcher, PageReport, MAX_BODY,
};

/// Exit code of `verify-page` when the page differs from the one the organisation released.
pub const EXIT_PAGE_DIFFERS: u8 = 6;

/// Exit code of `verify-page` when the check could not be completed (the network, the gateway
/// answering otherwise than with the page and its keys, the deadline): nothing was verified.
pub const EXIT_NOT_VERIFIED: u8 = crate::cli::EXIT_ENVIRONMENT;

/// Longest a session waits for one answer (the whole session has
/// [`crate::trust::page::DEADLINE`]).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound on `GET /api/v1/keys`.
const MAX_KEYS_ANSWER: u64 = 4 * 1024 * 1024;

/// How to reach the gateway for page checks: what [`GatewayClient::new`] takes, kept so that
/// each check starts a session of its own.
#[derive(Debug, Clone)]
pub struct PageClient {
    server: String,
    trust: Trust,
    proxy: Option<String>,
    secure: bool,
}

impl PageClient {
    /// Checks the URL (as every client of these tools does) and keeps what a session needs.
    pub fn new(server: &str, trust: Trust, proxy: Option<&str>) -> Result<Self, SubmitError> {
        let base = super::check_url(server)?;
        // Building one now reports a bad proxy or --ca-cert before any polling.
        GatewayClient::new(server, trust.clone(), proxy)?;
        let host = base
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'))
            .unwrap_or("");
        let host_only = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.rsplit_once(':').map_or(host, |(h, _)| h),
        };
        let loopback = host_only
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
            || host_only.eq_ignore_ascii_case("localhost");
        Ok(PageClient {
            server: base.clone(),
            trust,
            proxy: proxy.map(String::from),
            secure: base.starts_with("https://") || loopback,
        })
    }

    /// The gateway's URL (`scheme://host[:port]/`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// A fresh connection (its own agent, and through SOCKS its own circuit).
    pub fn session(&self) -> Result<PageSession, SubmitError> {
        let proxy = self.proxy.as_deref().map(isolated_proxy);
        let client = GatewayClient::new(&self.server, self.trust.clone(), proxy.as_deref())?;
        let host = self
            .server
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/').to_string())
            .unwrap_or_default();
        Ok(PageSession {
            client,
            host,
            secure: self.secure,
            deadline: None,
        })
    }
}

/// A SOCKS5 proxy URL with a fresh random user name (unless it names one already), so that Tor
/// keeps the session's streams on a circuit of their own.
fn isolated_proxy(proxy: &str) -> String {
    let Some((scheme, rest)) = proxy.split_once("://") else {
        return proxy.to_string();
    };
    let authority = rest.split('/').next().unwrap_or("");
    if !scheme.to_ascii_lowercase().starts_with("socks5") || authority.contains('@') {
        return proxy.to_string();
    }
    let mut random = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    format!("{scheme}://{}:x@{rest}", hex::encode(random))
}

/// One page-check session: one agent, its connections kept alive between requests as a
/// browser's are.
pub struct PageSession {
    client: GatewayClient,
    host: String,
    secure: bool,
    deadline: Option<Instant>,
}

impl PageSession {
    /// True for an https or loopback origin (see [`browser_headers`]).
    pub fn secure(&self) -> bool {
        self.secure
    }
}

impl PageFetcher for PageSession {
    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Fetched, String> {
        let timeout = match self.deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(ANSWER_TIMEOUT),
            None => ANSWER_TIMEOUT,
        };
        if timeout.is_zero() {
            return Err("the session's deadline has passed".into());
        }
        let url = format!("{}{}", self.client.base.trim_end_matches('/'), path);
        let mut request = self
            .client
            .agent
            .get(&url)
            .header_raw("Host", self.host.as_bytes());
        for (name, value) in headers {
            request = request.header_raw(name, value.as_bytes());
        }
        let mut response = request
            .config()
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .build()
            .call()
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .reader()
            .take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .map_err(|e| e.to_string())?;
        Ok(Fetched {
            status,
            headers,
            body,
        })
    }
}

/// `GET /api/v1/keys` as the page's script reads it (the key list apart: a malformed one is a
/// problem, not a failure to check).
#[derive(Deserialize)]
struct ServedKeys {
    reviewers: Vec<KeyEntry>,
    #[serde(default)]
    couriers: Vec<KeyEntry>,
}

/// What is wrong with the keys a gateway serves, judged against the pinned organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    /// No `key_list` in `/api/v1/keys`.
    NoKeyList,
    /// `/api/v1/keys` or its `key_list` is not what the gateway serves (not JSON, an unknown
    /// field…).
    Malformed(String),
    /// The key list does not verify under the pin (another organisation, expired, bad
    /// signature…).
    DoesNotVerify(String),
    /// The reviewers or couriers served are not the list's.
    KeysDiffer(String),
    /// A lower version than one seen before (`watch` only).
    WentBack {
        /// The highest version seen.
        seen: u64,
        /// The version served now.
        now: u64,
    },
}

impl std::fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyProblem::NoKeyList => write!(
                f,
                "keys: the gateway serves no key list signed by the organisation"
            ),
            KeyProblem::Malformed(why) => {
                write!(f, "keys: the gateway serves a malformed key list: {why}")
            }
            KeyProblem::DoesNotVerify(why) => {
                write!(f, "keys: the served key list does not verify: {why}")
            }
            KeyProblem::KeysDiffer(why) => write!(
                f,
                "keys: the gateway offers keys that the organisation has not vouched for: {why}"
            ),
            KeyProblem::WentBack { seen, now } => write!(
                f,
                "keys: the key list is version {now}, older than version {seen} known (a replayed \
                 old list may name a reviewer the organisation has removed)"
            ),
        }
    }
}

impl KeyProblem {
    /// A short stable name (what the watch rings once for).
    pub fn key(&self) -> String {
        match self {
            KeyProblem::NoKeyList => "keys:none".into(),
            KeyProblem::Malformed(_) => "keys:malformed".into(),
            KeyProblem::DoesNotVerify(_) => "keys:unverified".into(),
            KeyProblem::KeysDiffer(_) => "keys:differ".into(),
            KeyProblem::WentBack { now, .. } => format!("keys:went-back:{now}"),
        }
    }
}

/// What one trust check found.
#[derive(Debug)]
pub struct TrustVerdict {
    /// The served list, when it verified under the pin.
    pub key_list: Option<VerifiedKeyList>,
    /// What is wrong with the served keys (empty: nothing).
    pub key_problems: Vec<KeyProblem>,
    /// The browser session's page check against the list's manifest (`None` without a verified
    /// list); [`check_rest_files`] checks the other files of the release.
    pub page: Option<PageReport>,
}

impl TrustVerdict {
    /// True when nothing was found wrong.
    pub fn is_clean(&self) -> bool {
        self.key_problems.is_empty() && self.page.as_ref().is_some_and(PageReport::is_genuine)
    }
}

/// Why a trust check could not be completed: nothing was found wrong, and nothing was verified.
#[derive(Debug, thiserror::Error)]
pub enum TrustCheckError {
    /// The gateway was not reached at all (no answer to the session's first request).
    #[error("the gateway was not reached: {0}")]
    NotReached(String),
    /// Building the session failed.
    #[error(transparent)]
    Gateway(#[from] SubmitError),
    /// `/api/v1/keys` answered with another status than 200.
    #[error("/api/v1/keys answered {status} instead of the keys")]
    KeysNotServed {
        /// The status.
        status: u16,
    },
    /// A page or file could not be fetched, or the session's deadline passed.
    #[error(transparent)]
    Page(#[from] PageCheckError),
}

impl TrustCheckError {
    /// True when the gateway answered something in the session, and the check still did not
    /// complete (a gateway that cannot be reached at all says nothing).
    pub fn reached(&self) -> bool {
        !matches!(self, TrustCheckError::NotReached(_))
    }
}

/// Verifies the served key list under `pin` (and, with `min_version`, no older than it),
/// compares the served keys with it and checks the pages against its manifest, in one session
/// that looks like a browser opening the page: `/`, what it loads in document order and the
/// modules those import, `/favicon.ico`, then `/api/v1/keys` (as the page's script), then the
/// release's other pages. The files no page loads are for [`check_rest_files`], in another
/// session.
pub fn check_gateway(
    client: &PageClient,
    pin: &Fingerprint,
    today: UtcDay,
    min_version: Option<u64>,
) -> Result<TrustVerdict, TrustCheckError> {
    let mut session = client.session()?;
    let secure = session.secure;
    let mut browser = Browser::new(&mut session, secure);
    if let Err(e) = browser.open_first_page() {
        return Err(match e {
            PageCheckError::Unreachable { reason, .. } if browser.answered() == 0 => {
                TrustCheckError::NotReached(reason)
            }
            other => TrustCheckError::Page(other),
        });
    }
    let Some(answer) = browser.fetch("/api/v1/keys", Destination::Fetch)? else {
        return Err(PageCheckError::Deadline.into());
    };
    let mut verdict = TrustVerdict {
        key_list: None,
        key_problems: Vec::new(),
        page: None,
    };
    if answer.status != 200 {
        return Err(TrustCheckError::KeysNotServed {
            status: answer.status,
        });
    }
    let malformed = |verdict: &mut TrustVerdict, why: String| {
        verdict.key_problems.push(KeyProblem::Malformed(why));
    };
    let body = match decoded(&answer) {
        Ok(b) => b,
        Err(e) => {
            malformed(&mut verdict, e);
            return Ok(verdict);
        }
    };
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            malformed(&mut verdict, format!("/api/v1/keys is not JSON: {e}"));
            return Ok(verdict);
        }
    };
    let signed = match json.get("key_list") {
        None | Some(serde_json::Value::Null) => {
            verdict.key_problems.push(KeyProblem::NoKeyList);
            return Ok(verdict);
        }
        Some(value) => match serde_json::from_value::<SignedKeyList>(value.clone()) {
            Ok(s) => s,
            Err(e) => {
                malformed(&mut verdict, e.to_string());
                return Ok(verdict);
            }
        },
    };
    let verified = match signed.verify(Some(pin), today) {
        Ok(v) => v,
        Err(e) => {
            verdict
                .key_problems
                .push(KeyProblem::DoesNotVerify(e.to_string()));
            return Ok(verdict);
        }
    };
    if let Some(min) = min_version {
        if let Err(KeyListError::OlderThanKnown { served, known }) = verified.at_least(min) {
            verdict.key_problems.push(KeyProblem::WentBack {
                seen: known,
                now: served,
            });
        }
    }
    match serde_json::from_value::<ServedKeys>(json) {
        Ok(served) => {
            if let Err(why) = served_keys_match(&verified, served.reviewers, served.couriers) {
                verdict.key_problems.push(KeyProblem::KeysDiffer(why));
            }
        }
        Err(e) => verdict.key_problems.push(KeyProblem::KeysDiffer(format!(
            "the served keys do not read: {e}"
        ))),
    }
    let mut page = browser.check(&verified.page)?;
    browser.check_organisation_block(&verified.organisation.to_hex(), &mut page);
    verdict.page = Some(page);
    verdict.key_list = Some(verified);
    Ok(verdict)
}

/// Checks the files of the release that the browser session did not (`done`: manifest paths),
/// in a session of its own (a new connection, and through SOCKS a circuit of its own).
pub fn check_rest_files(
    client: &PageClient,
    manifest: &PageManifest,
    done: &BTreeSet<String>,
) -> Result<PageReport, TrustCheckError> {
    let mut session = client.session()?;
    let secure = session.secure;
    check_rest(&mut session, manifest, secure, done).map_err(|e| match e {
        PageCheckError::Unreachable { reason, .. } => TrustCheckError::NotReached(reason),
        other => TrustCheckError::Page(other),
    })
}

/// The served reviewers and couriers are exactly the list's (same certificates, per role).
fn served_keys_match(
    list: &VerifiedKeyList,
    reviewers: Vec<KeyEntry>,
    couriers: Vec<KeyEntry>,
) -> Result<(), String> {
    let origin = Path::new("/api/v1/keys");
    let reviewers = certs_of("reviewers", reviewers)
        .map_err(|e| e.to_string())
        .and_then(|c| ReviewerKeyring::from_certs(origin, c).map_err(|e| e.to_string()))?;
    let couriers = certs_of("couriers", couriers)
        .map_err(|e| e.to_string())
        .and_then(|c| {
            if c.is_empty() {
                Ok(CourierKeyring::default())
            } else {
                CourierKeyring::from_certs(origin, c).map_err(|e| e.to_string())
            }
        })?;
    list.same_keys(&reviewers, &couriers)
        .map_err(|e| e.to_string())
}

/// A small JSON answer's body, gzip decoded if it came so.
fn decoded(answer: &Fetched) -> Result<Vec<u8>, String> {
    let gzip = answer
        .headers
        .iter()
        .any(|(n, v)| n == "content-encoding" && v.trim().eq_ignore_ascii_case("gzip"));
    let too_large = || "/api/v1/keys: too large".to_string();
    if !gzip {
        if answer.body.len() as u64 > MAX_KEYS_ANSWER {
            return Err(too_large());
        }
        return Ok(answer.body.clone());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&answer.body[..])
        .take(MAX_KEYS_ANSWER + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("/api/v1/keys: {e}"))?;
    if out.len() as u64 > MAX_KEYS_ANSWER {
        return Err(too_large());
    }
    Ok(out)
}

/// Reads a pinned fingerprint as printed on the card: exactly 40 hex digits (a v4 key) or 64 (a
/// v6 key), spaces allowed.
pub fn parse_pin(text: &str) -> Result<Fingerprint, String> {
    let hex: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !(hex.len() == 40 || hex.len() == 64) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{:?} is not a fingerprint: give the organisation key's 40 hex digits (64 for a v6 \
             key), as on the card",
            text.chars().take(80).collect::<String>()
        ));
    }
    let fingerprint = Fingerprint::from_hex(&hex).map_err(|e| e.to_string())?;
    match (&fingerprint, hex.len()) {
        (Fingerprint::V4(_), 40) | (Fingerprint::V6(_), 64) => Ok(fingerprint),
        _ => Err(format!("{hex} is not a v4 or v6 fingerprint")),
    }
}

/// The sentence `verify-page` ends with when everything matched.
pub fn genuine_sentence(server: &str, list: &VerifiedKeyList) -> String {
    format!(
        "The page at {server} is the release the organisation {} vouched for (key list {}, valid until {}).",
        grouped(&list.organisation),
        list.version,
        list.expires
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks_sessions_get_a_user_name_of_their_own() {
        let a = isolated_proxy("socks5h://127.0.0.1:9050");
        let b = isolated_proxy("socks5h://127.0.0.1:9050");
        assert!(
            a.starts_with("socks5h://") && a.ends_with(":x@127.0.0.1:9050"),
            "{a}"
        );
        assert_ne!(a, b);
        assert_eq!(
            isolated_proxy("socks5h://me:pw@127.0.0.1:9050"),
            "socks5h://me:pw@127.0.0.1:9050"
        );
        assert_eq!(isolated_proxy("http://proxy:8080"), "http://proxy:8080");
    }

    #[test]
    fn pins_read_as_printed() {
        let fpr = "ABCD 1234 ABCD 1234 ABCD  1234 ABCD 1234 ABCD 1234";
        assert_eq!(
            parse_pin(fpr).unwrap().to_hex(),
            "ABCD1234ABCD1234ABCD1234ABCD1234ABCD1234"
        );
        assert!(parse_pin("ABCD").is_err());
        assert!(parse_pin(&"G".repeat(40)).is_err());
        // A v6 key's fingerprint is 64 hex digits; nothing else between.
        assert!(matches!(
            parse_pin(&"AB".repeat(32)),
            Ok(Fingerprint::V6(_))
        ));
        assert!(parse_pin(&"A".repeat(50)).is_err());
        assert!(parse_pin(&"A".repeat(41)).is_err());
    }

    #[test]
    fn loopback_and_https_are_secure_origins() {
        let p = |u: &str| PageClient::new(u, Trust::InsecureAnyCertificate, None).unwrap();
        assert!(p("http://127.0.0.1:8080").secure);
        assert!(p("https://example.org").secure);
        assert!(!p("http://abcdefgh.onion").secure);
    }
}
