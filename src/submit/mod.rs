//! The terminal client: build a report, seal it to the reviewers, and submit it.
//!
//! The client fetches the reviewer certificates from the gateway, validates them itself (so a
//! gateway cannot hand it an expired or revoked key without notice), prints their fingerprints so
//! a careful reporter can compare them with ones published elsewhere, and encrypts locally: the
//! gateway only ever receives ciphertext. The sealed message is staged in an anonymous temporary
//! file (ciphertext only) so its length is known and the upload can be retried.

mod carry;
mod conversation;
mod report;
pub mod resumable;
pub mod verify_page;

pub use conversation::{
    open_conversation, read_conversation, start_conversation, CheckedIn, ConversationRead,
    StartedConversation,
};

pub use carry::{open_sealed_input, save_sealed, Outgoing};
pub use report::{build_report, prepare_attachments, Consent, Prepared, ReportInput};
pub use resumable::{Message, Uploaded, DEFAULT_RETRY_FOR, RESUMABLE_FROM};

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sequoia_openpgp::cert::CertParser;
use sequoia_openpgp::parse::Parse;
use serde::Deserialize;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::keyring::{CourierKeyring, KeyringError, ReviewerKeyring};
use crate::payload::{self, AttachmentSource};
use crate::submission::UtcDay;
use crate::trust::keylist::{grouped, SignedKeyList, VerifiedKeyList};
use base64::Engine as _;
use sequoia_openpgp::Fingerprint;

/// Bound on the keys document from the gateway.
const MAX_KEYS_RESPONSE: u64 = 2 * 1024 * 1024;

/// Why the terminal client could not build, seal or submit a report.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The gateway URL (or the proxy's) cannot be used; the gateway URL is cut to 200
    /// characters.
    #[error("{0}: not a usable gateway URL (expected https://host[:port]/)")]
    BadUrl(String),
    /// Plain `http://` to a host that is neither loopback nor `.onion`.
    #[error("{0}: plain http is only allowed to a loopback or .onion address; use https")]
    InsecureUrl(String),
    /// The `--ca-cert` file cannot be read or holds no PEM certificate.
    #[error("--ca-cert {path}: {reason}")]
    CaCert {
        /// The `--ca-cert` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No HTTP response came back (DNS, connection, TLS, proxy or timeout).
    #[error("cannot reach the gateway: {0}")]
    Unreachable(String),
    /// The gateway answered with another HTTP status than the one expected.
    #[error("the gateway refused the submission ({status} {code}): {message}")]
    Refused {
        /// The HTTP status code.
        status: u16,
        /// The `error` code of the gateway's JSON body (e.g. `pow_expired`), or `unknown`.
        code: String,
        /// The gateway's `message`, or else the first 200 characters of the body.
        message: String,
    },
    /// A body too large or not the expected JSON, a certificate that does not parse, or an
    /// unusable proof-of-work challenge.
    #[error("the gateway answered something unexpected: {0}")]
    BadResponse(String),
    /// The reviewer certificates the gateway publishes fail this client's validation.
    #[error("the gateway's reviewer keys are not usable: {0}")]
    Keys(#[from] KeyringError),
    /// A local input cannot be used: the message, an attachment, a `--field`, a `--sealed` file.
    #[error("{path}: {reason}")]
    Input {
        /// The file concerned, or `--field` for a bad form answer.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Check-in: these words open no conversation (mistyped, or the report was sent without
    /// one). The gateway cannot tell; it answers every receipt alike.
    #[error("no conversation for these words: check them (the words of the receipt shown when the report was sent)")]
    NoConversation,
    /// The sealed message is larger than the gateway accepts.
    #[error("the sealed report is {size} bytes, over the gateway's limit of {limit}")]
    TooLarge {
        /// Size of the sealed message, in bytes.
        size: u64,
        /// The gateway's `max_submission_bytes`.
        limit: u64,
    },
    /// Staging, encrypting or rewinding the sealed message failed.
    #[error("sealing failed: {0}")]
    Seal(io::Error),
    /// The gateway offers keys that the organisation (the pinned one, or the one its own key
    /// list names) has not vouched for (`docs/trust-v1.md`). Nothing was sent.
    #[error("{}", untrusted_message(.organisation.as_deref(), .reason))]
    Untrusted {
        /// The pinned organisation key's fingerprint, grouped by four; `None` without a pin.
        organisation: Option<String>,
        /// What did not check out.
        reason: String,
    },
}

fn untrusted_message(organisation: Option<&str>, reason: &str) -> String {
    let who = match organisation {
        Some(fingerprint) => format!("the organisation you trust ({fingerprint})"),
        None => "the organisation named in the gateway's own key list".to_string(),
    };
    format!(
        "The gateway offers keys that {who} has not vouched for. Nothing was sent. Do not use \
         this gateway; tell the organisation through another channel.\n({reason})"
    )
}

/// How to trust the gateway's TLS certificate.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The usual web PKI (Mozilla's roots).
    WebPki,
    /// Only this CA or self-signed certificate (PEM).
    CaCert(PathBuf),
    /// Any certificate. For a test gateway's self-signed certificate only.
    InsecureAnyCertificate,
}

/// What the gateway says about its reviewers.
pub struct GatewayKeys {
    /// The reviewers' certificates, validated by this client, not just taken from the gateway.
    pub keyring: ReviewerKeyring,
    /// The gateway's limit on one sealed submission, in bytes, as the gateway announces it.
    pub max_submission_bytes: u64,
    /// The couriers (on-call keys) a triage envelope is sealed to, validated by this client;
    /// empty when the gateway has none (or is older than couriers).
    pub couriers: CourierKeyring,
    /// The organisation's signed key list served with the keys, as this client judged it.
    pub key_list: KeyListSeen,
}

/// What became of the signed key list a gateway serves (`docs/trust-v1.md`).
#[derive(Debug, Clone)]
pub enum KeyListSeen {
    /// The gateway serves none.
    Absent,
    /// It verifies (under the pin, when one was given), and the keys served are exactly its.
    Verified(Box<VerifiedKeyList>),
    /// It does not verify; without a pin the report may still go (this says why, to warn).
    Unverified(String),
}

#[derive(Deserialize)]
struct KeysBody {
    reviewers: Vec<KeyEntry>,
    #[serde(default)]
    couriers: Vec<KeyEntry>,
    max_submission_bytes: u64,
    /// The signed key list, read strictly by [`SignedKeyList::parse`].
    #[serde(default)]
    key_list: Option<serde_json::Value>,
    /// The organisation key's fingerprint, as the gateway says it.
    #[serde(default)]
    organisation: Option<String>,
}

/// A sealed report ready to upload, with its sealed triage envelope when there are couriers.
pub struct SealedReport {
    /// The sealed report (an anonymous temporary file).
    pub file: File,
    /// Its size in bytes.
    pub size: u64,
    /// The triage envelope sealed to the couriers, if the gateway has any.
    pub triage: Option<Vec<u8>>,
}

fn certs_of(
    origin: &str,
    entries: Vec<KeyEntry>,
) -> Result<Vec<sequoia_openpgp::Cert>, SubmitError> {
    let mut certs = Vec::new();
    for entry in entries {
        for cert in CertParser::from_bytes(entry.cert.as_bytes())
            .map_err(|e| SubmitError::BadResponse(format!("{origin}: {e}")))?
        {
            certs.push(cert.map_err(|e| SubmitError::BadResponse(format!("{origin}: {e}")))?);
        }
    }
    Ok(certs)
}

#[derive(Deserialize)]
struct KeyEntry {
    cert: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

#[derive(Deserialize)]
struct ChallengeBody {
    required: bool,
    challenge: Option<String>,
    difficulty: Option<u8>,
}

#[derive(Deserialize)]
struct AcceptedBody {
    id: String,
    /// The submission's number in the gateway's log of accepted submissions (part 2 of
    /// `docs/trust-v1.md`); gateways before it send none.
    #[serde(default)]
    sequence: Option<u64>,
}

/// What the gateway answered to an accepted submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The submission's id.
    pub id: String,
    /// Its number in the gateway's log, when the gateway keeps one.
    pub sequence: Option<u64>,
}

/// A connection to one gateway.
pub struct GatewayClient {
    agent: ureq::Agent,
    base: String,
    /// The challenge the gateway handed out with its last answer to a courier request: the
    /// next courier request answers it instead of asking the public challenge route (which a
    /// flood can hold up).
    next_challenge: std::sync::Mutex<Option<String>>,
}

impl GatewayClient {
    /// `proxy` is e.g. `socks5h://127.0.0.1:9050` to go through Tor.
    pub fn new(server: &str, trust: Trust, proxy: Option<&str>) -> Result<Self, SubmitError> {
        let base = check_url(server)?;
        let tls = match &trust {
            Trust::WebPki => TlsConfig::builder().build(),
            Trust::CaCert(path) => {
                let pem = std::fs::read(path).map_err(|e| SubmitError::CaCert {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    return Err(SubmitError::CaCert {
                        path: path.clone(),
                        reason: "no PEM certificate in the file".into(),
                    });
                }
                TlsConfig::builder()
                    .root_certs(RootCerts::Specific(Arc::new(certs)))
                    .build()
            }
            Trust::InsecureAnyCertificate => {
                TlsConfig::builder().disable_verification(true).build()
            }
        };
        let proxy = proxy
            .map(ureq::Proxy::new)
            .transpose()
            .map_err(|e| SubmitError::BadUrl(format!("proxy: {e}")))?;
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .proxy(proxy)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(60)))
            .user_agent("resguardo-submit")
            .build()
            .into();
        Ok(GatewayClient {
            agent,
            base,
            next_challenge: std::sync::Mutex::new(None),
        })
    }

    /// Fetches and validates the reviewer certificates (and judges the key list, see
    /// [`GatewayClient::pinned_keys`]).
    pub fn reviewer_keys(&self) -> Result<GatewayKeys, SubmitError> {
        self.pinned_keys(None)
    }

    /// Fetches the keys and the organisation's signed key list (`docs/trust-v1.md`). With
    /// `pin`, the keys are taken only from a key list signed by that organisation key that
    /// verifies today, and the keys the gateway serves must be exactly the list's; anything
    /// else is [`SubmitError::Untrusted`]. Without a pin, a list that verifies must also name
    /// exactly the keys served (else `Untrusted`), and one that does not verify is only
    /// reported ([`KeyListSeen::Unverified`]).
    pub fn pinned_keys(&self, pin: Option<&Fingerprint>) -> Result<GatewayKeys, SubmitError> {
        let url = format!("{}api/v1/keys", self.base);
        let body: KeysBody = expect_json(self.agent.get(&url).call(), 200, MAX_KEYS_RESPONSE)?;
        if let Some(pin) = pin {
            return pinned(&url, body, pin);
        }
        let key_list = judge_key_list(&body, None);
        let keyring =
            ReviewerKeyring::from_certs(Path::new(&url), certs_of("reviewers", body.reviewers)?)?;
        // Couriers this client cannot use (expired, revoked) mean no triage envelope, never no
        // report.
        let couriers = certs_of("couriers", body.couriers)
            .ok()
            .and_then(|certs| CourierKeyring::from_certs(Path::new(&url), certs).ok())
            .unwrap_or_default();
        let key_list = match key_list {
            Ok(verified) => {
                verified
                    .same_keys(&keyring, &couriers)
                    .map_err(|e| SubmitError::Untrusted {
                        organisation: None,
                        reason: format!(
                            "its key list is signed by {}, but {e}",
                            grouped(&verified.organisation)
                        ),
                    })?;
                KeyListSeen::Verified(Box::new(verified))
            }
            Err(None) => KeyListSeen::Absent,
            Err(Some(reason)) => KeyListSeen::Unverified(reason),
        };
        Ok(GatewayKeys {
            keyring,
            max_submission_bytes: body.max_submission_bytes,
            couriers,
            key_list,
        })
    }

    /// Asks for a proof-of-work challenge and solves it, if the gateway wants one.
    pub fn proof_of_work(&self) -> Result<Option<String>, SubmitError> {
        let url = format!("{}api/v1/challenge", self.base);
        let body: ChallengeBody = expect_json(self.agent.get(&url).call(), 200, 64 * 1024)?;
        if !body.required {
            return Ok(None);
        }
        match (body.challenge, body.difficulty) {
            (Some(challenge), Some(difficulty)) if difficulty <= 32 => {
                crate::pow::solve(&challenge, difficulty)
                    .map(Some)
                    .ok_or_else(|| SubmitError::BadResponse("unsolvable challenge".into()))
            }
            _ => Err(SubmitError::BadResponse("malformed challenge".into())),
        }
    }

    /// POSTs to `path` with a solved proof of work, as `send` finishes the request; a proof
    /// refused for reasons that are not the sender's is solved again, a few times.
    fn with_proof_of_work<T>(
        &self,
        send: impl Fn(ureq::RequestBuilder<ureq::typestate::WithBody>) -> Result<T, SubmitError>,
        path: &str,
    ) -> Result<T, SubmitError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.agent.post(&format!("{}{path}", self.base));
            if let Some(solution) = self.proof_of_work()? {
                request = request.header(crate::pow::HEADER, solution);
            }
            match send(request) {
                Err(SubmitError::Refused { code, .. })
                    if attempt < 4 && POW_RETRY.contains(&code.as_str()) => {}
                other => return other,
            }
        }
    }

    /// Uploads a sealed message (binary or armored), solving the gateway's proof of work first,
    /// and returns the id the gateway gave it. A proof of work refused for reasons that are not
    /// the sender's (the gateway restarted, the challenge expired or asks for more work now) is
    /// fetched and solved again, a few times.
    pub fn submit_sealed(
        &self,
        sealed: File,
        triage: Option<&[u8]>,
    ) -> Result<String, SubmitError> {
        self.submit_with(sealed, triage, &Conversation::None)
    }

    /// [`GatewayClient::submit_sealed`], starting or continuing a conversation.
    pub fn submit_with(
        &self,
        sealed: File,
        triage: Option<&[u8]>,
        conversation: &Conversation,
    ) -> Result<String, SubmitError> {
        self.submit_accepted(sealed, triage, conversation)
            .map(|accepted| accepted.id)
    }

    /// [`GatewayClient::submit_with`], with the number the gateway's log gave the submission.
    pub fn submit_accepted(
        &self,
        mut sealed: File,
        mut triage: Option<&[u8]>,
        conversation: &Conversation,
    ) -> Result<Accepted, SubmitError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            sealed.seek(SeekFrom::Start(0)).map_err(SubmitError::Seal)?;
            let pow = self.proof_of_work()?;
            let url = format!("{}api/v1/submissions", self.base);
            let mut request = self
                .agent
                .post(&url)
                .header("Content-Type", "application/pgp-encrypted");
            request = submission_headers(request, pow.as_deref(), triage, conversation);
            match expect_json::<AcceptedBody>(request.send(&sealed), 201, 64 * 1024) {
                Ok(body) => {
                    return Ok(Accepted {
                        id: body.id,
                        sequence: body.sequence,
                    })
                }
                // The note for the people on call never costs the report: without it, then.
                Err(SubmitError::Refused { code, .. })
                    if code == "bad_triage" && triage.is_some() && attempt < 4 =>
                {
                    triage = None;
                }
                Err(SubmitError::Refused { code, .. })
                    if attempt < 4 && POW_RETRY.contains(&code.as_str()) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The served key list, verified (under `pin` when given): `Err(None)` when there is none,
/// `Err(Some(why))` when it does not verify.
fn judge_key_list(
    body: &KeysBody,
    pin: Option<&Fingerprint>,
) -> Result<VerifiedKeyList, Option<String>> {
    let value = body.key_list.as_ref().ok_or(None)?;
    let bytes = serde_json::to_vec(value).map_err(|e| Some(e.to_string()))?;
    let verified = SignedKeyList::parse(&bytes)
        .and_then(|signed| signed.verify(pin, UtcDay::today()))
        .map_err(|e| Some(e.to_string()))?;
    if let Some(said) = &body.organisation {
        if *said != verified.organisation.to_hex() {
            return Err(Some(format!(
                "the gateway names the organisation {}, its key list {}",
                said.chars().take(80).collect::<String>(),
                grouped(&verified.organisation)
            )));
        }
    }
    Ok(verified)
}

/// The keys of a key list signed by the pinned organisation key, if the served keys are its.
fn pinned(url: &str, body: KeysBody, pin: &Fingerprint) -> Result<GatewayKeys, SubmitError> {
    let untrusted = |reason: String| SubmitError::Untrusted {
        organisation: Some(grouped(pin)),
        reason,
    };
    let verified = judge_key_list(&body, Some(pin)).map_err(|why| {
        untrusted(why.unwrap_or_else(|| "the gateway serves no signed key list".into()))
    })?;
    let origin = Path::new(url);
    let served = certs_of("reviewers", body.reviewers)
        .and_then(|certs| Ok(ReviewerKeyring::from_certs(origin, certs)?))
        .map_err(|e| untrusted(e.to_string()))?;
    let served_couriers = certs_of("couriers", body.couriers)
        .and_then(|certs| Ok(CourierKeyring::from_certs(origin, certs)?))
        .map_err(|e| untrusted(e.to_string()))?;
    verified
        .same_keys(&served, &served_couriers)
        .map_err(|e| untrusted(e.to_string()))?;
    Ok(GatewayKeys {
        keyring: verified.reviewers.clone(),
        max_submission_bytes: body.max_submission_bytes,
        couriers: verified.couriers.clone(),
        key_list: KeyListSeen::Verified(Box::new(verified)),
    })
}

/// Proof-of-work refusals that are not the sender's fault: solved again.
const POW_RETRY: &[&str] = &[
    "pow_invalid",
    "pow_expired",
    "pow_outdated",
    "pow_insufficient",
    "pow_replayed",
];

/// What a submission does in a conversation (`docs/replies-v1.md`).
#[derive(Debug, Clone)]
pub enum Conversation {
    /// Nothing (a message sealed elsewhere, or `--no-replies`).
    None,
    /// Starts one (the first report): its locator and locked reply key go with it.
    Start(crate::replies::NewConversation),
    /// Continues one (a follow-up): its last day moves.
    FollowUp(crate::replies::Locator),
}

/// Signs the text of a courier request with the courier's authentication key.
pub type RequestSigner<'a> = dyn FnMut(&[u8]) -> Result<Vec<u8>, SubmitError> + 'a;

impl GatewayClient {
    /// Sends a courier request (`docs/early-alerts.md`): asks for a challenge, has `sign` sign
    /// the request's text (the courier's authentication key) and sends it with `body` (GET when
    /// `body` is `None`). Returns the raw answer.
    fn courier_call(
        &self,
        path_and_query: &str,
        body: Option<&[u8]>,
        sign: &mut RequestSigner<'_>,
    ) -> Result<ureq::http::Response<ureq::Body>, SubmitError> {
        let cached = self
            .next_challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let used_cached = cached.is_some();
        let response = self.courier_call_with(path_and_query, body, sign, cached)?;
        // A handed-out challenge may have expired meanwhile: once more with a fresh one.
        if used_cached && response.status().as_u16() == 401 {
            return self.courier_call_with(path_and_query, body, sign, None);
        }
        Ok(response)
    }

    fn courier_call_with(
        &self,
        path_and_query: &str,
        body: Option<&[u8]>,
        sign: &mut RequestSigner<'_>,
        challenge: Option<String>,
    ) -> Result<ureq::http::Response<ureq::Body>, SubmitError> {
        let challenge = match challenge {
            Some(challenge) => challenge,
            None => {
                let url = format!("{}api/v1/courier/challenge", self.base);
                expect_json::<crate::courier::ChallengeBody>(
                    self.agent.get(&url).call(),
                    200,
                    4096,
                )?
                .challenge
            }
        };
        let path = format!("/{}", path_and_query.trim_start_matches('/'));
        let method = if body.is_some() { "POST" } else { "GET" };
        let body_hash = crate::courier::body_hash(body.unwrap_or(b""));
        let text = crate::courier::signed_text(method, &path, &challenge, &body_hash);
        let signature = base64::engine::general_purpose::STANDARD.encode(sign(&text)?);
        let url = format!("{}{}", self.base, path.trim_start_matches('/'));
        let sent = match body {
            None => self
                .agent
                .get(&url)
                .header(crate::courier::CHALLENGE_HEADER, &challenge)
                .header(crate::courier::SIGNATURE_HEADER, &signature)
                .call(),
            Some(body) => self
                .agent
                .post(&url)
                .header(crate::courier::CHALLENGE_HEADER, &challenge)
                .header(crate::courier::SIGNATURE_HEADER, &signature)
                .header(crate::courier::BODY_HASH_HEADER, &body_hash)
                .header("Content-Type", "application/json")
                .send(body),
        };
        let response = sent.map_err(|e| SubmitError::Unreachable(e.to_string()))?;
        if let Some(next) = response
            .headers()
            .get(crate::courier::NEXT_CHALLENGE_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            *self
                .next_challenge
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(next.to_string());
        }
        Ok(response)
    }

    /// A signed courier GET whose JSON answer is at most `limit` bytes.
    pub fn courier_get<T: serde::de::DeserializeOwned>(
        &self,
        path_and_query: &str,
        sign: &mut RequestSigner<'_>,
        limit: u64,
    ) -> Result<T, SubmitError> {
        expect_json(
            Ok(self.courier_call(path_and_query, None, sign)?),
            200,
            limit,
        )
    }

    /// A signed courier POST of `body`, whose JSON answer is at most `limit` bytes.
    pub fn courier_post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &[u8],
        sign: &mut RequestSigner<'_>,
        limit: u64,
    ) -> Result<T, SubmitError> {
        expect_json(Ok(self.courier_call(path, Some(body), sign)?), 200, limit)
    }

    /// A signed courier GET whose answer (200) is copied into `out`, at most `limit` bytes (a
    /// longer answer is an error, its first `limit` bytes copied); returns the bytes copied.
    /// If the connection breaks, `out` keeps what arrived and the error is returned (a caller
    /// resumes from there).
    pub fn courier_download(
        &self,
        path_and_query: &str,
        sign: &mut RequestSigner<'_>,
        out: &mut dyn std::io::Write,
        limit: u64,
    ) -> Result<u64, SubmitError> {
        let mut response = self.courier_call(path_and_query, None, sign)?;
        if response.status().as_u16() != 200 {
            return Err(
                expect_json::<serde_json::Value>(Ok(response), 200, 64 * 1024)
                    .err()
                    .unwrap_or_else(|| SubmitError::BadResponse("unexpected answer".into())),
            );
        }
        let reader = response.body_mut().with_config().limit(u64::MAX).reader();
        // One byte past the bound tells "longer than announced" from "exactly as long".
        let mut reader = std::io::Read::take(reader, limit.saturating_add(1));
        // Large writes: a bundle is tens of MiB, and 8 KiB writes cost more than the network.
        let mut out = std::io::BufWriter::with_capacity(1024 * 1024, out);
        let copied = std::io::copy(&mut std::io::Read::take(&mut reader, limit), &mut out);
        // What arrived is kept even when the connection broke, so a retry resumes after it.
        let flushed = std::io::Write::flush(&mut out);
        let copied = copied.map_err(|e| SubmitError::Unreachable(e.to_string()))?;
        flushed.map_err(|e| SubmitError::Unreachable(e.to_string()))?;
        let mut past = [0u8; 1];
        if std::io::Read::read(&mut reader, &mut past).unwrap_or(0) > 0 {
            return Err(SubmitError::BadResponse(format!(
                "the gateway sent more than the {limit} bytes it announced"
            )));
        }
        Ok(copied)
    }
}

/// Reads a response of at most `limit` bytes; the expected status gives its JSON body, any
/// other status the gateway's refusal.
fn expect_json<T: serde::de::DeserializeOwned>(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    expected: u16,
    limit: u64,
) -> Result<T, SubmitError> {
    let mut response = response.map_err(|e| SubmitError::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_string()
        .map_err(|e| SubmitError::BadResponse(e.to_string()))?;
    if status != expected {
        return Err(refusal(status, &text));
    }
    serde_json::from_str(&text).map_err(|e| SubmitError::BadResponse(e.to_string()))
}

fn refusal(status: u16, text: &str) -> SubmitError {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => SubmitError::Refused {
            status,
            code: body.error,
            message: body.message,
        },
        Err(_) => SubmitError::Refused {
            status,
            code: "unknown".into(),
            message: text.chars().take(200).collect(),
        },
    }
}

/// Normalises the gateway URL to `scheme://authority/` and refuses plain http off loopback/onion.
fn check_url(server: &str) -> Result<String, SubmitError> {
    let bad = || SubmitError::BadUrl(server.chars().take(200).collect());
    let (scheme, rest) = server.split_once("://").ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err(bad());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" => {
            let loopback = host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
                || host.eq_ignore_ascii_case("localhost");
            if !loopback && !host.to_ascii_lowercase().ends_with(".onion") {
                return Err(SubmitError::InsecureUrl(server.into()));
            }
        }
        _ => return Err(bad()),
    }
    Ok(format!("{}://{authority}/", scheme.to_ascii_lowercase()))
}

/// Builds payload v1 from `input` and seals it to every reviewer into an anonymous temporary
/// file (positioned at its end), and its triage envelope to every courier. Pictures are cleaned
/// of metadata; other files go as they are (the command line asks first: [`seal_prepared`]).
pub fn seal_report(keys: &GatewayKeys, input: &ReportInput) -> Result<SealedReport, SubmitError> {
    let prepared = prepare_attachments(&input.attachments, Consent::All)?;
    seal_prepared(keys, input, &prepared)
}

/// [`seal_report`] with the attachments as [`prepare_attachments`] decided them.
pub fn seal_prepared(
    keys: &GatewayKeys,
    input: &ReportInput,
    prepared: &[Prepared],
) -> Result<SealedReport, SubmitError> {
    let report = build_report(input, prepared)?;
    let mut sources: Vec<AttachmentSource<'_>> = Vec::new();
    for attachment in prepared {
        match attachment {
            Prepared::Cleaned { bytes, .. } => sources.push(Box::new(bytes.as_slice())),
            _ => {
                let path = attachment.path();
                let file = File::open(path).map_err(|e| SubmitError::Input {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
                sources.push(Box::new(file));
            }
        }
    }
    let staged = tempfile::tempfile().map_err(SubmitError::Seal)?;
    let mut sealer = crate::seal::sealer(&keys.keyring, &staged).map_err(SubmitError::Seal)?;
    payload::write_payload(&mut sealer, &report, sources).map_err(SubmitError::Seal)?;
    sealer
        .finalize()
        .map_err(|e| SubmitError::Seal(io::Error::other(e)))?;
    let size = staged.metadata().map_err(SubmitError::Seal)?.len();
    if size > keys.max_submission_bytes {
        return Err(SubmitError::TooLarge {
            size,
            limit: keys.max_submission_bytes,
        });
    }
    let note = crate::triage::Triage::of_report(&report, UtcDay::today());
    let triage = crate::triage::seal(&note, &keys.couriers).map_err(SubmitError::Seal)?;
    Ok(SealedReport {
        file: staged,
        size,
        triage,
    })
}

/// The headers that go with a submission, on the one-piece route and on a resumable upload's
/// creation alike: the proof of work, the triage envelope, and the conversation it starts or
/// continues.
fn submission_headers(
    mut request: ureq::RequestBuilder<ureq::typestate::WithBody>,
    pow: Option<&str>,
    triage: Option<&[u8]>,
    conversation: &Conversation,
) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
    if let Some(solution) = pow {
        request = request.header(crate::pow::HEADER, solution);
    }
    if let Some(sealed) = triage {
        request = request.header(crate::triage::HEADER, crate::triage::header_value(sealed));
    }
    match conversation {
        Conversation::None => request,
        Conversation::Start(start) => {
            request.header(crate::replies::START_HEADER, start.header_value())
        }
        Conversation::FollowUp(locator) => {
            request.header(crate::replies::TOUCH_HEADER, locator.to_string())
        }
    }
}

/// Opens a message sealed elsewhere (gpg, sq) for `--sealed`, after a size check.
pub fn open_sealed_file(path: &Path, limit: u64) -> Result<File, SubmitError> {
    let input_error = |reason: String| SubmitError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|e| input_error(e.to_string()))?;
    let size = file
        .metadata()
        .map_err(|e| input_error(e.to_string()))?
        .len();
    if size > limit {
        return Err(SubmitError::TooLarge { size, limit });
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised_and_plain_http_is_limited() {
        assert_eq!(
            check_url("https://example.org").expect("ok"),
            "https://example.org/"
        );
        assert_eq!(
            check_url("http://127.0.0.1:8080/x").expect("ok"),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            check_url("http://[::1]:80").expect("ok"),
            "http://[::1]:80/"
        );
        assert!(check_url("http://abcdef.onion").is_ok());
        assert!(matches!(
            check_url("http://example.org"),
            Err(SubmitError::InsecureUrl(_))
        ));
        for bad in [
            "example.org",
            "ftp://x",
            "https://",
            "https://user@host/",
            "https://a b/",
        ] {
            assert!(
                matches!(check_url(bad), Err(SubmitError::BadUrl(_))),
                "{bad}"
            );
        }
    }
}
