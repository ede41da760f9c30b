//! The HTTP API v1 handlers. Thin: each one admits, delegates, and answers.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::error::ApiError;
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
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let slot = app.admission.admit_upload()?;
    let record = receive_sealed(
        app.store.clone(),
        app.recipients.clone(),
        body,
        announced,
        app.upload_pace,
        &slot,
    )
    .await?;
    let body = Accepted {
        id: record.id.to_string(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
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
