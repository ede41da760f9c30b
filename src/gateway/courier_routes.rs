//! The courier routes (`docs/early-alerts.md`): a challenge, and the triage envelopes of stored
//! submissions for the people on call. Every route but the challenge checks the request's
//! signature first ([`authenticate`]); nothing about who called is kept or logged.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;

use super::error::ApiError;
use super::form_token::TokenError;
use super::AppState;
use crate::courier::{
    signed_text, ChallengeBody, TriageItem, TriageList, CHALLENGE_HEADER, MAX_TRIAGE_ITEMS,
    SIGNATURE_HEADER,
};
use crate::keyring::SignatureRefusal;
use crate::store::RecordState;
use crate::submission::{SubmissionId, UtcDay};

/// Seconds a courier challenge is valid.
pub const CHALLENGE_TTL_SECS: u64 = 120;

/// Largest body a courier request may carry (its requests are small JSON).
const MAX_COURIER_BODY: usize = 64 * 1024;

/// Why a courier request is refused (401, one code each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CourierRefusal {
    /// No challenge or no signature header.
    #[error("a courier request needs a challenge and a signature")]
    Missing,
    /// A header that is not what it should be (not base64, not a challenge of this gateway).
    #[error("the courier credentials are malformed")]
    Malformed,
    /// The challenge is too old.
    #[error("the challenge has expired; ask for a new one")]
    ChallengeExpired,
    /// The challenge was used already.
    #[error("the challenge was already used; ask for a new one")]
    ChallengeReused,
    /// The signature itself.
    #[error(transparent)]
    Signature(#[from] SignatureRefusal),
}

impl CourierRefusal {
    /// The error code the client sees.
    pub fn code(&self) -> &'static str {
        match self {
            CourierRefusal::Missing => "courier_credentials_missing",
            CourierRefusal::Malformed | CourierRefusal::Signature(SignatureRefusal::Malformed) => {
                "courier_malformed"
            }
            CourierRefusal::ChallengeExpired => "courier_challenge_expired",
            CourierRefusal::ChallengeReused => "courier_challenge_reused",
            CourierRefusal::Signature(SignatureRefusal::UnknownKey) => "courier_unknown_key",
            CourierRefusal::Signature(SignatureRefusal::NotACourier) => "courier_not_a_courier",
            CourierRefusal::Signature(SignatureRefusal::Expired) => "courier_key_expired",
            CourierRefusal::Signature(SignatureRefusal::Revoked) => "courier_key_revoked",
            CourierRefusal::Signature(SignatureRefusal::WrongRequest) => "courier_wrong_request",
        }
    }
}

/// Checks a courier request: a challenge of this gateway, not expired, not used; a signature by
/// a configured courier's authentication subkey over exactly this request. Spends the challenge.
fn authenticate(app: &AppState, parts: &Parts, body: &[u8]) -> Result<(), ApiError> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(challenge), Some(signature)) = (header(CHALLENGE_HEADER), header(SIGNATURE_HEADER))
    else {
        return Err(CourierRefusal::Missing.into());
    };
    let ticket = app
        .courier_challenges
        .check(Some(challenge))
        .map_err(|e| match e {
            TokenError::Expired => CourierRefusal::ChallengeExpired,
            TokenError::Spent => CourierRefusal::ChallengeReused,
            _ => CourierRefusal::Malformed,
        })?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .map_err(|_| CourierRefusal::Malformed)?;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let text = signed_text(parts.method.as_str(), path, challenge, body);
    app.couriers
        .verify_request(&signature, &text, &app.keyring, SystemTime::now())
        .map_err(CourierRefusal::from)?;
    app.courier_challenges
        .spend(ticket)
        .map_err(|_| CourierRefusal::ChallengeReused)?;
    Ok(())
}

/// Splits a request and reads its (small) body, then authenticates it.
async fn authenticated(app: &AppState, request: Request) -> Result<(Parts, Vec<u8>), ApiError> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_COURIER_BODY)
        .await
        .map_err(|_| CourierRefusal::Malformed)?;
    authenticate(app, &parts, &body)?;
    Ok((parts, body.to_vec()))
}

/// `GET /api/v1/courier/challenge`.
pub async fn challenge(State(app): State<Arc<AppState>>) -> Response {
    Json(ChallengeBody {
        challenge: app.courier_challenges.issue(),
        expires_in: CHALLENGE_TTL_SECS,
    })
    .into_response()
}

#[derive(Deserialize)]
pub struct TriageQuery {
    since: UtcDay,
    after: Option<SubmissionId>,
}

/// `GET /api/v1/courier/triage?since=DAY[&after=ID]`.
pub async fn triage(State(app): State<Arc<AppState>>, request: Request<Body>) -> Response {
    match list_triage(&app, request).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_triage(app: &AppState, request: Request) -> Result<TriageList, ApiError> {
    let (parts, _) = authenticated(app, request).await?;
    let Query(query) = Query::<TriageQuery>::try_from_uri(&parts.uri)
        .map_err(|_| ApiError::BadQuery("since=YYYY-MM-DD and optionally after=ID"))?;
    let mut items = Vec::new();
    let mut more = false;
    for record in app.store.records()? {
        let Some(triage) = record.triage else {
            continue;
        };
        if record.day < query.since
            || record.state == RecordState::Purging
            || query.after.is_some_and(|after| record.id <= after)
        {
            continue;
        }
        if items.len() == MAX_TRIAGE_ITEMS {
            more = true;
            break;
        }
        items.push(TriageItem {
            id: record.id,
            day: record.day,
            triage,
        });
    }
    Ok(TriageList {
        today: UtcDay::today(),
        items,
        more,
    })
}
