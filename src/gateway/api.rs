//! The HTTP API v1 handlers. Thin: each one admits, delegates, and answers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Serialize;

use super::connections::Connection;
use super::error::ApiError;
use super::limits::Route;
use super::slots::Slot;
use super::upload::receive_sealed;
use super::AppState;
use crate::assets;
use crate::pow;
use crate::replies;
use crate::triage;

/// Media types a sealed message may be sent as (armored or binary, both accepted).
const SEALED_MEDIA_TYPES: &[&str] = &["application/pgp-encrypted", "application/octet-stream"];

/// The 201 answer: the submission's id and its number in the gateway's chain
/// (`docs/trust-v1.md`).
#[derive(Serialize)]
struct Accepted {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
}

/// `POST /api/v1/submissions`
pub async fn submit(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let announced = super::paced::announced_length(&headers);
    let triage = match headers.get(triage::HEADER) {
        None => None,
        Some(value) => match triage::check_sealed(value.as_bytes(), &app.triage_recipients) {
            Ok(sealed) => Some(sealed),
            Err(e) => {
                drain(body, announced).await;
                return Err(ApiError::Triage(e));
            }
        },
    };
    let conversation = match conversation_headers(&headers) {
        Ok(conversation) => conversation,
        Err(e) => {
            drain(body, announced).await;
            return Err(e);
        }
    };
    let admitted = admit(&app, &headers)
        .await
        .and_then(|slot| Ok((app.submissions.begin(announced)?, slot)));
    let (incoming, slot) = match admitted {
        Ok(admitted) => admitted,
        Err(e) => {
            drain(body, announced).await;
            return Err(e);
        }
    };
    let record = receive_sealed(
        app.submissions.clone(),
        app.recipients.clone(),
        incoming,
        body,
        app.upload_pace,
        &slot,
        super::upload::Beside {
            triage,
            conversation: conversation.start,
        },
    )
    .await?;
    if let Some(locator) = conversation.touch {
        // A follow-up: its conversation's last day moves (nothing links the two records).
        let store = app.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.touch_conversation(&locator)).await;
    }
    let body = Accepted {
        id: record.id.to_string(),
        sequence: record.sequence.filter(|_| app.number_in_answer),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The conversation headers of a submission (`docs/replies-v1.md`).
pub(super) struct ConversationHeaders {
    /// A first report starts a conversation.
    pub(super) start: Option<replies::NewConversation>,
    /// A follow-up moves its conversation's last day.
    pub(super) touch: Option<replies::Locator>,
}

pub(super) fn conversation_headers(headers: &HeaderMap) -> Result<ConversationHeaders, ApiError> {
    let start = headers
        .get(replies::START_HEADER)
        .map(|v| replies::NewConversation::from_header(v.as_bytes()))
        .transpose()?;
    let touch = headers
        .get(replies::TOUCH_HEADER)
        .map(|v| replies::touched_locator(v.as_bytes()))
        .transpose()?;
    Ok(ConversationHeaders { start, touch })
}

/// Everything checked before the body is read: media type, proof of work, a turn in the
/// submission queue and an upload slot. The solution is held while the submission waits (it
/// cannot wait in two places) and spent once it is admitted; if it is refused for a reason that
/// is not the solution's fault, the solution is released for a retry.
async fn admit(app: &AppState, headers: &HeaderMap) -> Result<Slot, ApiError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !media_type.is_some_and(|m| SEALED_MEDIA_TYPES.contains(&m.as_str())) {
        return Err(ApiError::UnsupportedMediaType);
    }
    if !app.pow.enabled() {
        return app.admission.admit_upload().await;
    }
    let solution = headers.get(pow::HEADER).and_then(|v| v.to_str().ok());
    let held = HeldSolution {
        pow: &app.pow,
        verified: Some(app.pow.verify(solution)?),
    };
    let slot = app.admission.admit_upload().await?;
    held.spend()?;
    Ok(slot)
}

/// Verifies and spends a check-in's proof of work at once (a check-in holds nothing while it
/// waits); it does not raise the difficulty of submissions.
pub(super) fn spend_check_in_work(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if !app.pow.enabled() {
        return Ok(());
    }
    let solution = headers.get(pow::HEADER).and_then(|v| v.to_str().ok());
    let verified = app.pow.verify_uncounted(solution)?;
    Ok(app.pow.spend(verified)?)
}

/// A verified solution held by one request: released when dropped (the request was refused, or
/// the client went away while waiting), unless spent.
pub(super) struct HeldSolution<'a> {
    pub(super) pow: &'a pow::ProofOfWork,
    pub(super) verified: Option<pow::Verified>,
}

impl HeldSolution<'_> {
    pub(super) fn spend(mut self) -> Result<(), pow::PowError> {
        match self.verified.take() {
            Some(v) => self.pow.spend(v),
            None => Ok(()),
        }
    }
}

impl Drop for HeldSolution<'_> {
    fn drop(&mut self) {
        if let Some(v) = self.verified.take() {
            self.pow.release(v);
        }
    }
}

/// Bodies up to this size are read and discarded before an early refusal is sent.
const DRAIN_MAX: u64 = 2 * 1024 * 1024;
/// ... for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(3);

/// Reads (and discards) a small body that is being refused before it was read. Closing with
/// unread data makes the kernel reset the connection, and a client still sending then sees an
/// error instead of our answer; for small bodies it is cheaper to listen. Large ones are cut.
pub async fn drain(body: Body, announced: Option<u64>) {
    if announced.is_none_or(|n| n > DRAIN_MAX) {
        return;
    }
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len() as u64;
            if read > DRAIN_MAX {
                break;
            }
        }
    })
    .await;
}

/// `GET /api/v1/challenge`
pub async fn challenge(State(app): State<Arc<AppState>>) -> Response {
    if !app.pow.enabled() {
        return Json(serde_json::json!({ "required": false })).into_response();
    }
    let c = app.pow.issue();
    Json(serde_json::json!({
        "required": true,
        "challenge": c.challenge,
        "difficulty": c.difficulty,
        "expires_in": c.expires_in,
        "algorithm": c.algorithm,
    }))
    .into_response()
}

/// `GET /api/v1/keys`
pub async fn keys(State(app): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        app.keys_json.clone(),
    )
        .into_response()
}

/// `GET /healthz`: cheap and never rate-limited, so monitoring sees the truth during a flood.
/// `{"status":"ok"}`, or `{"status":"saturated","saturated":[…]}` naming the budgets that had
/// to refuse requests in the last minute (never anything about a single reporter).
pub async fn healthz(State(app): State<Arc<AppState>>) -> Response {
    let saturated = app.admission.saturation().recent();
    let body = if saturated.is_empty() {
        serde_json::json!({ "status": "ok" })
    } else {
        serde_json::json!({ "status": "saturated", "saturated": saturated })
    };
    Json(body).into_response()
}

/// The embedded page's files; everything else is a JSON 404.
///
/// Under `/v/<version>/` (the URLs the page uses) a file may be cached for good: another build
/// has another version. Text files go gzipped to clients that accept it.
pub async fn asset(request: Request) -> Response {
    let path = request.uri().path();
    let (path, immutable) = match path.strip_prefix(&assets::versioned_prefix()) {
        Some(rest) => (rest, true),
        None => (path, false),
    };
    // Templates are rendered by the gateway, not served as they are.
    if path.starts_with("/templates/") {
        return ApiError::NotFound.into_response();
    }
    let Some(asset) = assets::find(path) else {
        return ApiError::NotFound.into_response();
    };
    let gzip_ok = request
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = match asset.gzip {
        Some(gzip) if gzip_ok => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CONTENT_ENCODING, "gzip"),
            ],
            gzip,
        )
            .into_response(),
        _ => ([(header::CONTENT_TYPE, asset.content_type)], asset.bytes).into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response
}

/// True if an Accept-Encoding value allows gzip (and does not refuse it with q=0).
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            let p = p.trim().replace(' ', "");
            p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The budgets of a cheap route: the connection's own share first (so a client over its share
/// does not spend the route's), then the route's.
pub async fn admit_request(
    app: Arc<AppState>,
    route: Route,
    request: Request,
    next: Next,
) -> Response {
    let connection = request.extensions().get::<Arc<Connection>>();
    if connection.is_some_and(|c| !c.take_budget()) {
        return ApiError::TooManyRequests { retry_after: 1 }.into_response();
    }
    match app.admission.admit_request(route).await {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Every request: marks it in progress on its connection (no head deadline meanwhile), and
/// closes the connection after its allowance of requests.
pub async fn track_request(
    State(app): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(connection) = request.extensions().get::<Arc<Connection>>().cloned() else {
        return next.run(request).await;
    };
    let count = connection.request_started();
    let mut response = next.run(request).await;
    connection.request_finished();
    if count >= app.max_requests_per_connection {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
