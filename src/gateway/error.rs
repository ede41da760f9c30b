//! Every way a request can fail, mapped once to an HTTP status and a JSON body.
//!
//! The body is always `{"error": "<code>", "message": "<sentence>"}`: the code is stable for
//! programs, the sentence is for the person who sent the report. Nothing in an error names the
//! client or echoes what it sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::envelope::EnvelopeError;
use crate::pow::PowError;
use crate::store::StoreError;

/// How a store failure is answered, by the API and by the form alike: status, error code and
/// seconds to wait before trying again.
pub fn store_refusal(e: &StoreError) -> (StatusCode, &'static str, Option<u64>) {
    match e {
        StoreError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", None),
        StoreError::QuotaExceeded => (StatusCode::INSUFFICIENT_STORAGE, "store_full", Some(3600)),
        StoreError::DiskFull => (StatusCode::INSUFFICIENT_STORAGE, "disk_full", Some(600)),
        StoreError::NotFound(_) | StoreError::BatchNotFound(_) | StoreError::ChainNotKept => {
            (StatusCode::NOT_FOUND, "not_found", None)
        }
        StoreError::ConversationExists => (StatusCode::CONFLICT, "conversation_exists", None),
        StoreError::ConversationNotFound => (StatusCode::NOT_FOUND, "conversation_not_found", None),
        StoreError::ConversationFull => (StatusCode::CONFLICT, "conversation_full", None),
        StoreError::TooManyPending => (StatusCode::SERVICE_UNAVAILABLE, "busy", Some(60)),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            Some(60),
        ),
    }
}

/// Every refusal of the JSON API, with its status, error code (`tests/vectors/error-codes.json`)
/// and the sentence a client may show; the page has its own sentence for each code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not a sealed message for the reviewers (400 or 422), or it stopped arriving
    /// (408 when it stalled, 400 when the connection broke).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The store refused or failed to keep the message: 413 too large, 507 quota or disk full,
    /// 503 otherwise.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The proof of work is missing or malformed (400), not accepted (403), or cannot be
    /// remembered right now (429).
    #[error(transparent)]
    Pow(#[from] PowError),
    /// The `Content-Type` is neither `application/pgp-encrypted` nor
    /// `application/octet-stream` (415).
    #[error("send the sealed message as application/pgp-encrypted or application/octet-stream")]
    UnsupportedMediaType,
    /// A submission or form post would wait too long for its turn, or the form's hourly byte
    /// budget is spent (429).
    #[error("too many submissions right now; try again in {}", seconds(*retry_after))]
    RateLimited {
        /// Seconds to wait before trying again; sent as `Retry-After`.
        retry_after: u64,
    },
    /// Every upload slot is held by an upload that keeps up with the rate asked of it (429).
    #[error("too many uploads in progress; try again in {}", seconds(*retry_after))]
    TooManyUploads {
        /// Seconds to wait before trying again; sent as `Retry-After`.
        retry_after: u64,
    },
    /// A cheap route (page, keys, challenge) would wait too long for its turn, or the
    /// connection spent its own request budget (429).
    #[error("too many requests; try again in {}", seconds(*retry_after))]
    TooManyRequests {
        /// Seconds to wait before trying again; sent as `Retry-After`.
        retry_after: u64,
    },
    /// No route or static asset at this path; templates are not served either (404).
    #[error("there is nothing at this address")]
    NotFound,
    /// The path exists but not for this HTTP method (405).
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    /// A server-side failure that is not the client's: the envelope check task did not finish,
    /// e.g. during shutdown (503, retry after 30 seconds).
    #[error("the gateway is shutting down or overloaded; try again shortly")]
    Unavailable,
    /// The `Resguardo-Triage` header is not a sealed triage envelope for the couriers (400).
    #[error(transparent)]
    Triage(#[from] crate::triage::SealedTriageError),
    /// A courier request without valid credentials (401, a code per reason).
    #[error(transparent)]
    Courier(#[from] super::courier_routes::CourierRefusal),
    /// A query string that is not what the route takes; says what it takes (400).
    #[error("the query is not valid here; expected {0}")]
    BadQuery(&'static str),
    /// A request body that is not what the route takes; says what it takes (400).
    #[error("the request body is not valid here; expected {0}")]
    BadBody(&'static str),
    /// A pushed reply whose outer signature is not by a current reviewer's signing subkey (403).
    #[error("the reply is not signed by a current reviewer key ({0})")]
    ReplyNotSigned(crate::keyring::SignatureRefusal),
    /// A conversation header that is not what it should be (400).
    #[error(transparent)]
    Conversation(#[from] crate::replies::ConversationHeaderError),
    /// A network purge whose open receipt is not signed by a current reviewer's signing subkey
    /// (403): a courier key alone may not delete.
    #[error("the open receipt is not signed by a current reviewer key ({0}); only a receipt `resguardo-review open` signed on the offline machine can purge")]
    ReceiptNotSigned(crate::keyring::SignatureRefusal),
    /// An upload request without `Tus-Resumable: 1.0.0` (412).
    #[error("this gateway speaks tus 1.0.0; send Tus-Resumable: 1.0.0")]
    TusVersion,
    /// `Upload-Length` missing, malformed, zero, or deferred (400).
    #[error("Upload-Length must be a decimal number of bytes, 1 or more ({0})")]
    BadUploadLength(&'static str),
    /// `Upload-Offset` missing or malformed (400).
    #[error("Upload-Offset must be a decimal number of bytes")]
    BadUploadOffset,
    /// A non-empty `Upload-Metadata`: file names and types must never reach the server (400).
    #[error("Upload-Metadata is refused: file names and types must never reach the server")]
    UploadMetadata,
    /// A PATCH whose `Upload-Offset` is not what the gateway holds, or that a later PATCH took
    /// over from (409, with the current `Upload-Offset`).
    #[error("the upload is at byte {current}; continue from there")]
    OffsetMismatch {
        /// What the gateway holds.
        current: u64,
    },
    /// A PATCH body not sent as `application/offset+octet-stream` (415).
    #[error("send the upload's bytes as application/offset+octet-stream")]
    UploadMediaType,
    /// A PATCH body longer than what remains of the upload; what fitted is kept (413).
    #[error("the body is longer than what remains of the upload; the upload is at byte {offset}")]
    BeyondLength {
        /// What the gateway holds now.
        offset: u64,
    },
    /// A PATCH body that stalled (408) or broke off (400); what arrived is kept.
    #[error("the upload stopped at byte {offset}; what arrived is kept, continue from there")]
    UploadStopped {
        /// What the gateway holds now.
        offset: u64,
        /// Stalled (too slow, silent, or its slot was taken), rather than broken off.
        timed_out: bool,
    },
}

/// Tells the operator about a server-side failure, at most once per code every ten minutes:
/// enough to act on, too coarse to time individual submission attempts from the journal.
pub fn warn_operator(code: &'static str, detail: &str) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    static LAST: Mutex<Option<HashMap<&'static str, Instant>>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let map = last.get_or_insert_with(HashMap::new);
    let due = map
        .get(code)
        .is_none_or(|t| t.elapsed() >= Duration::from_secs(600));
    if due {
        map.insert(code, Instant::now());
        tracing::warn!(
            "submissions refused ({code}): {detail} (repeats are not logged for 10 minutes)"
        );
    }
}

fn seconds(n: u64) -> String {
    if n == 1 {
        "1 second".into()
    } else {
        format!("{n} seconds")
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl ApiError {
    /// Status, stable code, and seconds the client should wait (for 429/503/507).
    pub fn classify(&self) -> (StatusCode, &'static str, Option<u64>) {
        match self {
            ApiError::Envelope(EnvelopeError::Io(e))
                if e.kind() == std::io::ErrorKind::TimedOut =>
            {
                (StatusCode::REQUEST_TIMEOUT, "body_timeout", None)
            }
            ApiError::Envelope(EnvelopeError::Io(_)) => {
                (StatusCode::BAD_REQUEST, "incomplete_body", None)
            }
            ApiError::Envelope(e) if e.is_semantic() => {
                (StatusCode::UNPROCESSABLE_ENTITY, e.code(), None)
            }
            ApiError::Envelope(e) => (StatusCode::BAD_REQUEST, e.code(), None),
            ApiError::Store(e) => store_refusal(e),
            ApiError::Pow(PowError::ReplayMemoryFull) => {
                (StatusCode::TOO_MANY_REQUESTS, "pow_busy", Some(10))
            }
            ApiError::Pow(e @ (PowError::Missing | PowError::Malformed)) => {
                (StatusCode::BAD_REQUEST, e.code(), None)
            }
            ApiError::Pow(e) => (StatusCode::FORBIDDEN, e.code(), None),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
            ),
            ApiError::RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                Some(*retry_after),
            ),
            ApiError::TooManyUploads { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_uploads",
                Some(*retry_after),
            ),
            ApiError::TooManyRequests { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                Some(*retry_after),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None)
            }
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", Some(30)),
            ApiError::Triage(_) => (StatusCode::BAD_REQUEST, "bad_triage", None),
            ApiError::Courier(e) => (StatusCode::UNAUTHORIZED, e.code(), None),
            ApiError::BadQuery(_) => (StatusCode::BAD_REQUEST, "bad_query", None),
            ApiError::BadBody(_) => (StatusCode::BAD_REQUEST, "bad_body", None),
            ApiError::ReceiptNotSigned(_) => (StatusCode::FORBIDDEN, "receipt_not_signed", None),
            ApiError::Conversation(_) => (StatusCode::BAD_REQUEST, "bad_conversation", None),
            ApiError::ReplyNotSigned(_) => (StatusCode::FORBIDDEN, "reply_not_signed", None),
            ApiError::TusVersion => (StatusCode::PRECONDITION_FAILED, "tus_version", None),
            ApiError::BadUploadLength(_) => (StatusCode::BAD_REQUEST, "bad_upload_length", None),
            ApiError::BadUploadOffset => (StatusCode::BAD_REQUEST, "bad_upload_offset", None),
            ApiError::UploadMetadata => (StatusCode::BAD_REQUEST, "upload_metadata", None),
            ApiError::OffsetMismatch { .. } => (StatusCode::CONFLICT, "offset_mismatch", None),
            ApiError::UploadMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
            ),
            ApiError::BeyondLength { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", None),
            ApiError::UploadStopped {
                timed_out: true, ..
            } => (StatusCode::REQUEST_TIMEOUT, "body_timeout", None),
            ApiError::UploadStopped { .. } => (StatusCode::BAD_REQUEST, "incomplete_body", None),
        }
    }

    /// The sentence for the reporter. Storage internals are not described to clients.
    fn public_message(&self) -> String {
        match self {
            ApiError::Envelope(EnvelopeError::Io(e))
                if e.kind() == std::io::ErrorKind::TimedOut =>
            {
                "the upload stalled and was stopped; nothing was stored. Please try again".into()
            }
            ApiError::Envelope(EnvelopeError::Io(_)) => {
                "the upload was interrupted before the whole message arrived; nothing was stored"
                    .into()
            }
            ApiError::Store(StoreError::TooLarge { limit }) => {
                format!("the message is larger than the limit of {limit} bytes")
            }
            ApiError::Store(StoreError::QuotaExceeded | StoreError::DiskFull) => {
                "the gateway has no room for new submissions right now; nothing was stored. \
                 Please try again later."
                    .into()
            }
            ApiError::Store(_) => {
                "the gateway could not store the submission; nothing was stored. Please try \
                 again shortly."
                    .into()
            }
            ApiError::TusVersion
            | ApiError::BadUploadOffset
            | ApiError::OffsetMismatch { .. }
            | ApiError::BeyondLength { .. }
            | ApiError::UploadStopped { .. } => self.to_string(),
            other => format!("{other}; nothing was stored"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, retry_after) = self.classify();
        if status.is_server_error() || status == StatusCode::INSUFFICIENT_STORAGE {
            warn_operator(code, &self.to_string());
        }
        let body = ErrorBody {
            error: code,
            message: self.public_message(),
        };
        let offset = match &self {
            ApiError::OffsetMismatch { current: offset }
            | ApiError::BeyondLength { offset }
            | ApiError::UploadStopped { offset, .. } => Some(*offset),
            _ => None,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(offset) = offset {
            response
                .headers_mut()
                .insert("upload-offset", HeaderValue::from(offset));
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Catalog;

    /// One error of every kind the API can answer with. (A new variant of `EnvelopeError`,
    /// `PowError` or `ApiError` must be added here; `tests/vectors/error-codes.json` then fails
    /// until it lists the new code, and the languages until each has a sentence for it.)
    fn every_error() -> Vec<ApiError> {
        use std::io::{Error, ErrorKind};
        let envelope = [
            EnvelopeError::Empty,
            EnvelopeError::NotOpenPgp,
            EnvelopeError::BadArmor(String::new()),
            EnvelopeError::Truncated,
            EnvelopeError::TrailingData,
            EnvelopeError::Malformed(String::new()),
            EnvelopeError::Plaintext,
            EnvelopeError::Compressed,
            EnvelopeError::SignedOnly,
            EnvelopeError::PasswordEncrypted,
            EnvelopeError::HiddenRecipient,
            EnvelopeError::UnknownRecipient(String::new()),
            EnvelopeError::NoIntegrityProtection,
            EnvelopeError::NoRecipients,
            EnvelopeError::TooManyRecipients,
            EnvelopeError::MultipleContainers,
            EnvelopeError::UnexpectedPacket(String::new()),
            EnvelopeError::AlgorithmMismatch {
                pkesk: String::new(),
                key: String::new(),
            },
            EnvelopeError::VersionMismatch {
                pkesk: 3,
                container: 2,
            },
            EnvelopeError::DataAfterArmor,
            EnvelopeError::Io(Error::new(ErrorKind::TimedOut, "x")),
            EnvelopeError::Io(Error::new(ErrorKind::ConnectionReset, "x")),
        ];
        let pow = [
            PowError::Missing,
            PowError::Malformed,
            PowError::Forged,
            PowError::Expired,
            PowError::Insufficient,
            PowError::Replayed,
            PowError::Outdated,
            PowError::ReplayMemoryFull,
        ];
        let store = [
            StoreError::TooLarge { limit: 1 },
            StoreError::QuotaExceeded,
            StoreError::DiskFull,
            StoreError::Io(Error::other("x")),
            StoreError::ConversationExists,
            StoreError::ConversationNotFound,
            StoreError::ConversationFull,
            StoreError::TooManyPending,
        ];
        let mut all: Vec<ApiError> = envelope.into_iter().map(ApiError::Envelope).collect();
        all.extend(pow.into_iter().map(ApiError::Pow));
        all.extend(store.into_iter().map(ApiError::Store));
        all.extend([
            ApiError::UnsupportedMediaType,
            ApiError::RateLimited { retry_after: 1 },
            ApiError::TooManyUploads { retry_after: 1 },
            ApiError::TooManyRequests { retry_after: 1 },
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::Unavailable,
            ApiError::Triage(crate::triage::SealedTriageError::Encoding),
            ApiError::BadQuery("x"),
            ApiError::BadBody("x"),
            ApiError::ReceiptNotSigned(crate::keyring::SignatureRefusal::UnknownKey),
            ApiError::Conversation(crate::replies::ConversationHeaderError::Malformed),
            ApiError::ReplyNotSigned(crate::keyring::SignatureRefusal::UnknownKey),
            ApiError::TusVersion,
            ApiError::BadUploadLength("x"),
            ApiError::BadUploadOffset,
            ApiError::UploadMetadata,
            ApiError::OffsetMismatch { current: 1 },
            ApiError::UploadMediaType,
            ApiError::BeyondLength { offset: 1 },
            ApiError::UploadStopped {
                offset: 1,
                timed_out: true,
            },
            ApiError::UploadStopped {
                offset: 1,
                timed_out: false,
            },
        ]);
        {
            use super::super::courier_routes::CourierRefusal as C;
            use crate::keyring::SignatureRefusal as S;
            all.extend(
                [
                    C::Missing,
                    C::Malformed,
                    C::ChallengeExpired,
                    C::ChallengeReused,
                    C::Signature(S::Malformed),
                    C::Signature(S::UnknownKey),
                    C::Signature(S::NotACourier),
                    C::Signature(S::Expired),
                    C::Signature(S::Revoked),
                    C::Signature(S::WrongRequest),
                ]
                .map(ApiError::Courier),
            );
        }
        all
    }

    #[test]
    fn every_error_code_is_listed_and_has_a_sentence_in_every_language() {
        let codes: std::collections::BTreeSet<&str> =
            every_error().iter().map(|e| e.classify().1).collect();
        let listed: Vec<String> =
            serde_json::from_str(include_str!("../../tests/vectors/error-codes.json"))
                .expect("error-codes.json");
        let listed: std::collections::BTreeSet<&str> = listed.iter().map(String::as_str).collect();
        assert_eq!(
            codes, listed,
            "tests/vectors/error-codes.json is out of date"
        );
        let catalog = Catalog::embedded();
        for lang in catalog.languages() {
            for code in &codes {
                let key = format!("error.{code}");
                assert!(
                    catalog
                        .exact(lang, &key)
                        .is_some_and(|t| !t.trim().is_empty()),
                    "{lang}: no sentence for {key}"
                );
            }
            for key in super::super::form_post::FormPostError::all_message_keys() {
                assert!(
                    catalog.exact(lang, key).is_some(),
                    "{lang}: no sentence for {key}"
                );
            }
        }
    }
}
