//! The conversation routes (`docs/replies-v1.md`): the reporter's check-in, which answers every
//! well-formed locator alike (a decoy box for one that has no conversation), and the courier's
//! push of replies signed on the offline machine.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use ring::hkdf;

use super::error::ApiError;
use super::limits::Route;
use super::AppState;
use crate::replies::outbox::push_signed_text;
use crate::replies::protocol::{CheckAnswer, CheckRequest, CheckedReply, PushAnswer};
use crate::replies::{Locator, OutboxReply, BOX_BYTES};
use crate::store::{ReplyAdded, StoredReply};

/// The file in the data directory that holds the decoy key (made at first start, mode 0600).
pub const DECOY_KEY_FILE: &str = "conversation-decoy.key";

/// Smallest size class of a check-in answer; larger answers are padded to a power of two.
const MIN_ANSWER_BYTES: usize = 8 * 1024;

/// Largest push request (one reply of at most 12 MiB, in base64, with its signature).
pub const MAX_PUSH_REQUEST: usize = 17 * 1024 * 1024;

/// Makes the decoy box of a locator that has no conversation: the same bytes for the same
/// locator every time, across restarts, and nothing to tell them from a real box without the
/// receipt.
pub struct Decoys {
    key: hkdf::Salt,
}

impl Decoys {
    /// Decoys under `key` (32 bytes from [`DECOY_KEY_FILE`]).
    pub fn new(key: &[u8; 32]) -> Self {
        Decoys {
            key: hkdf::Salt::new(hkdf::HKDF_SHA256, key),
        }
    }

    fn decoy_box(&self, locator: &Locator) -> Vec<u8> {
        let mut out = vec![0u8; BOX_BYTES];
        let info = [b"resguardo decoy box/1".as_slice()];
        struct Len(usize);
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        // BOX_BYTES is within HKDF-SHA256's bound (255 × 32 bytes): this cannot fail.
        self.key
            .extract(&locator.0)
            .expand(&info, Len(BOX_BYTES))
            .and_then(|okm| okm.fill(&mut out))
            .expect("HKDF within its bound");
        out
    }
}

/// `POST /api/v1/conversations/check`: proof of work first, then a turn from the check-in
/// budget, then the store; 200 with a box and the replies for every well-formed locator.
pub async fn check(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    match check_in(&app, &headers, request).await {
        Ok(answer) => answer,
        Err(e) => e.into_response(),
    }
}

async fn check_in(
    app: &AppState,
    headers: &HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    // The work first: requests without it never take a turn from the check-in budget, so a
    // flood of cheap requests cannot lock reporters out of their answers.
    super::api::spend_check_in_work(app, headers)?;
    app.admission.admit_request(Route::Check).await?;
    let body = axum::body::to_bytes(request.into_body(), 4096)
        .await
        .map_err(|_| ApiError::BadBody("{\"locator\": \"<64 hex>\"}"))?;
    let wanted: CheckRequest = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadBody("{\"locator\": \"<64 hex>\"}"))?;
    let _open = app
        .conversations_open
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let store = app.store.clone();
    let locator = wanted.locator;
    let found = tokio::task::spawn_blocking(move || store.conversation_with_replies(&locator))
        .await
        .map_err(|_| ApiError::Unavailable)??;
    let (sealed_box, replies) = match found {
        Some((record, replies)) => (record.box_bytes(), replies),
        None => (app.decoys.decoy_box(&locator), Vec::new()),
    };
    let mut answer = check_answer(&sealed_box, replies);
    let body = padded(&mut answer);
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// A check-in answer (unpadded) for a box and its replies.
fn check_answer(sealed_box: &[u8], replies: Vec<StoredReply>) -> CheckAnswer {
    let b64 = base64::engine::general_purpose::STANDARD;
    CheckAnswer {
        sealed_box: b64.encode(sealed_box),
        replies: replies
            .into_iter()
            .map(|r| CheckedReply {
                n: r.entry.n,
                day: r.entry.day,
                message: b64.encode(r.message),
            })
            .collect(),
        pad: String::new(),
    }
}

/// Serialises `answer` padded to its size class: at least 8 KiB, then the next power of two.
fn padded(answer: &mut CheckAnswer) -> Vec<u8> {
    let bare = serde_json::to_vec(answer).unwrap_or_default().len();
    let class = bare.max(MIN_ANSWER_BYTES).next_power_of_two();
    answer.pad = "0".repeat(class - bare);
    serde_json::to_vec(answer).unwrap_or_default()
}

/// `POST /api/v1/courier/replies`: one reply of an outbox, courier-signed; stored if a current
/// reviewer's signing subkey signed it for an existing conversation.
pub async fn push(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let result = async {
        let (_, body) =
            super::courier_routes::authenticated(&app, request, MAX_PUSH_REQUEST).await?;
        let reply: OutboxReply = serde_json::from_slice(&body).map_err(|_| {
            ApiError::BadBody("one reply of an outbox (conversation, message, signature)")
        })?;
        let message = reply
            .message_bytes()
            .map_err(|_| ApiError::BadBody("a sealed reply of at most 12 MiB, base64"))?;
        let signature = reply
            .signature_bytes()
            .map_err(|_| ApiError::ReplyNotSigned(crate::keyring::SignatureRefusal::Malformed))?;
        app.keyring
            .verify_document(
                &signature,
                &push_signed_text(&reply.conversation, &message),
                SystemTime::now(),
            )
            .map_err(ApiError::ReplyNotSigned)?;
        let store = app.store.clone();
        let locator = reply.conversation;
        let added = tokio::task::spawn_blocking(move || store.add_reply(&locator, &message))
            .await
            .map_err(|_| ApiError::Unavailable)??;
        Ok::<_, ApiError>(match added {
            ReplyAdded::Stored(n) => PushAnswer {
                n,
                already_stored: false,
            },
            ReplyAdded::AlreadyStored(n) => PushAnswer {
                n,
                already_stored: true,
            },
        })
    }
    .await;
    match result {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => e.into_response(),
    }
}
