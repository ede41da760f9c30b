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

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pow(#[from] PowError),
    #[error("send the sealed message as application/pgp-encrypted or application/octet-stream")]
    UnsupportedMediaType,
    #[error("too many submissions right now; try again in {}", seconds(*retry_after))]
    RateLimited { retry_after: u64 },
    #[error("too many uploads in progress; try again in {}", seconds(*retry_after))]
    TooManyUploads { retry_after: u64 },
    #[error("too many requests; try again in {}", seconds(*retry_after))]
    TooManyRequests { retry_after: u64 },
    #[error("there is nothing at this address")]
    NotFound,
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("the gateway is shutting down or overloaded; try again shortly")]
    Unavailable,
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
            ApiError::Store(e) => match e {
                StoreError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", None),
                StoreError::QuotaExceeded => {
                    (StatusCode::INSUFFICIENT_STORAGE, "store_full", Some(3600))
                }
                StoreError::DiskFull => (StatusCode::INSUFFICIENT_STORAGE, "disk_full", Some(600)),
                _ => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    Some(60),
                ),
            },
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
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
