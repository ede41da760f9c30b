//! The HTTP API v1 handlers. Thin: each one admits, delegates, and answers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Serialize;

use super::error::ApiError;
use super::slots::Slot;
use super::upload::receive_sealed;
use super::AppState;
use crate::assets;
use crate::pow;

/// Media types a sealed message may be sent as (armored or binary, both accepted).
const SEALED_MEDIA_TYPES: &[&str] = &["application/pgp-encrypted", "application/octet-stream"];

#[derive(Serialize)]
struct Accepted {
    id: String,
}

/// `POST /api/v1/submissions`
pub async fn submit(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let admitted = admit(&app, &headers).and_then(|slot| Ok((app.store.begin(announced)?, slot)));
    let (incoming, slot) = match admitted {
        Ok(admitted) => admitted,
        Err(e) => {
            drain(body, announced).await;
            return Err(e);
        }
    };
    let record = receive_sealed(
        app.store.clone(),
        app.recipients.clone(),
        incoming,
        body,
        app.upload_pace,
        &slot,
    )
    .await?;
    let body = Accepted {
        id: record.id.to_string(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Everything checked before the body is read: media type, proof of work, an upload slot.
fn admit(app: &AppState, headers: &HeaderMap) -> Result<Slot, ApiError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !media_type.is_some_and(|m| SEALED_MEDIA_TYPES.contains(&m.as_str())) {
        return Err(ApiError::UnsupportedMediaType);
    }
    if app.pow.enabled() {
        app.pow.note_attempt();
        let solution = headers.get(pow::HEADER).and_then(|v| v.to_str().ok());
        app.pow.verify(solution)?;
    }
    app.admission.admit_upload()
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
pub async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// The embedded page and its files; everything else is a JSON 404.
pub async fn asset(request: Request) -> Response {
    let path = request.uri().path();
    // Templates are rendered by the gateway, not served as they are.
    if path.starts_with("/templates/") {
        return ApiError::NotFound.into_response();
    }
    match assets::find(path) {
        Some(asset) => ([(header::CONTENT_TYPE, asset.content_type)], asset.bytes).into_response(),
        None => ApiError::NotFound.into_response(),
    }
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Global rate limit for the cheap routes.
pub async fn admit_request(
    State(app): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match app.admission.admit_request() {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}
