//! The courier routes (`docs/early-alerts.md`): a challenge, the triage envelopes of stored
//! submissions for the people on call, the chain of accepted submissions (`docs/trust-v1.md`),
//! and the transfer of export batches (begin, download with resume, delivered) and their purge.
//! Every route but the challenge checks the request's signature first ([`authenticate`]);
//! nothing about who called is kept or logged.

use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;

use super::error::ApiError;
use super::form_token::TokenError;
use super::AppState;
use crate::bundle::receipt;
use crate::courier::{
    body_hash, signed_text, BatchAnswer, BatchList, BatchRequest, BatchSummary, ChallengeBody,
    CopyRequest, PurgeAnswer, PurgeRequest, TriageItem, TriageList, BODY_HASH_HEADER,
    CHALLENGE_HEADER, MAX_COPY_IDS, MAX_LISTED_BATCHES, MAX_PURGE_REQUEST, MAX_TRIAGE_ITEMS,
    SIGNATURE_HEADER,
};
use crate::keyring::SignatureRefusal;
use crate::store::{ExportBatch, RecordState, StoreError};
use crate::submission::{BatchId, SubmissionId, UtcDay};

/// Seconds a courier challenge is valid.
pub const CHALLENGE_TTL_SECS: u64 = 120;

/// Largest body of a courier request other than a purge (they carry `{}` at most).
const SMALL_BODY: usize = 4096;

/// Chunks of a bundle download in flight between the store and the connection.
const DOWNLOAD_DEPTH: usize = 8;

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

/// Checks a courier request before its body is read: a challenge of this gateway, not expired,
/// not used; a signature by a configured courier's authentication subkey over exactly this
/// request, whose body hash is the one announced in [`BODY_HASH_HEADER`] (none announced: an
/// empty body). Spends the challenge; returns the body hash the signature covers.
fn authenticate(app: &AppState, parts: &Parts) -> Result<String, ApiError> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(challenge), Some(signature)) = (header(CHALLENGE_HEADER), header(SIGNATURE_HEADER))
    else {
        return Err(CourierRefusal::Missing.into());
    };
    let body_hash = match header(BODY_HASH_HEADER) {
        None => body_hash(b""),
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            h.to_string()
        }
        Some(_) => return Err(CourierRefusal::Malformed.into()),
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
    let text = signed_text(parts.method.as_str(), path, challenge, &body_hash);
    app.couriers
        .verify_request(&signature, &text, &app.keyring, SystemTime::now())
        .map_err(CourierRefusal::from)?;
    app.courier_challenges
        .spend(ticket)
        .map_err(|_| CourierRefusal::ChallengeReused)?;
    Ok(body_hash)
}

/// Authenticates a request, then reads its body (at most `limit` bytes), which must be the one
/// the signature covers.
pub(super) async fn authenticated(
    app: &AppState,
    request: Request,
    limit: usize,
) -> Result<(Parts, Vec<u8>), ApiError> {
    let (parts, body) = request.into_parts();
    let signed_hash = authenticate(app, &parts)?;
    // Charged only now: requests without a courier key cannot spend the couriers' budget.
    app.admission
        .admit_request(super::limits::Route::Courier)
        .await?;
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::BadBody("a body no larger than the route takes"))?;
    if body_hash(&body) != signed_hash {
        return Err(CourierRefusal::Signature(SignatureRefusal::WrongRequest).into());
    }
    Ok((parts, body.to_vec()))
}

/// Gives every answer to an authenticated courier request (anything but a 401: authentication
/// comes first in every signed route) a fresh challenge for the next request.
pub async fn hand_out_next_challenge(
    State(app): State<Arc<AppState>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    if response.status() != axum::http::StatusCode::UNAUTHORIZED {
        if let Ok(value) = app.courier_challenges.issue().parse() {
            response
                .headers_mut()
                .insert(crate::courier::NEXT_CHALLENGE_HEADER, value);
        }
    }
    response
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
    let (parts, _) = authenticated(app, request, SMALL_BODY).await?;
    let Query(query) = Query::<TriageQuery>::try_from_uri(&parts.uri)
        .map_err(|_| ApiError::BadQuery("since=YYYY-MM-DD and optionally after=ID"))?;
    let store = app.submissions.clone();
    // Reading every record is blocking work: off the async threads.
    blocking(move || {
        let mut items = Vec::new();
        let mut more = false;
        for record in store.records()? {
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
    })
    .await
}

/// Longest query `GET /api/v1/courier/chain` takes: `since=` and a u64.
const MAX_CHAIN_QUERY: usize = 32;

/// `GET /api/v1/courier/chain?since=N`: the chain's head, `H(N)` and the leaves after it
/// ([`crate::trust::chain::ChainView`]). A number beyond the head is answered 409
/// `chain_behind`: the courier saw a longer chain than the gateway has now (the log went back).
/// Nothing of the answer is logged.
pub async fn chain(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let view = async {
        let (parts, _) = authenticated(&app, request, SMALL_BODY).await?;
        let since = chain_since(parts.uri.query()).ok_or(ApiError::BadQuery(
            "since=N, a sequence number (0 for the start)",
        ))?;
        if !app.chain_kept {
            return Ok(Err(StoreError::ChainNotKept));
        }
        let store = app.store.clone();
        tokio::task::spawn_blocking(move || store.chain_view(since))
            .await
            .map_err(|_| ApiError::Unavailable)
    }
    .await;
    match view {
        Ok(Ok(view)) => Json(view).into_response(),
        Ok(Err(StoreError::ChainBehind { .. })) => chain_behind(),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `since=N` (N at most 20 digits), nothing else.
fn chain_since(query: Option<&str>) -> Option<u64> {
    let query = query.filter(|q| q.len() <= MAX_CHAIN_QUERY)?;
    let digits = query.strip_prefix("since=")?;
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// 409 `chain_behind`, in the shape of every refusal (`{"error", "message"}`). For couriers'
/// programs, not reporters: it names no number (the courier knows the one it asked about).
fn chain_behind() -> Response {
    (
        axum::http::StatusCode::CONFLICT,
        Json(serde_json::json!({
            "error": "chain_behind",
            "message": "the gateway's chain ends before the number asked about: \
                        its log went back since that number was seen",
        })),
    )
        .into_response()
}

/// A JSON answer, or the refusal.
fn answer<T: serde::Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::Unavailable)?
}

/// `POST /api/v1/courier/batches`: begins the next export batch, or resumes an undelivered one
/// (the same crash-safe batches as the operator's local `export`), or names one the store holds;
/// says its size.
pub async fn begin_batch(State(app): State<Arc<AppState>>, request: Request) -> Response {
    answer(
        async {
            let (_, body) = authenticated(&app, request, SMALL_BODY).await?;
            let wanted = serde_json::from_slice::<BatchRequest>(&body)
                .map_err(|_| ApiError::BadBody("{} or {\"batch\": BATCH}"))?;
            let store = app.submissions.clone();
            blocking(move || {
                let batch = match wanted.batch {
                    None => store.begin_export()?,
                    Some(batch) => Some(store.export_batch(&batch)?),
                };
                Ok(batch.as_ref().map(described).transpose()?)
            })
            .await
            .map(|answer| {
                answer.unwrap_or(BatchAnswer {
                    batch: None,
                    size: 0,
                    submissions: 0,
                })
            })
        }
        .await,
    )
}

/// What a client needs to fetch `batch`'s bundle.
fn described(batch: &ExportBatch) -> Result<BatchAnswer, StoreError> {
    Ok(BatchAnswer {
        batch: Some(batch.manifest.batch),
        size: crate::bundle::bundle_length(&batch.manifest)?,
        submissions: batch.manifest.submissions.len(),
    })
}

/// `GET /api/v1/courier/batches`: the batches the store still holds, oldest first (a batch
/// marked delivered by mistake, or by a stolen courier key, can then be fetched again).
pub async fn list_batches(State(app): State<Arc<AppState>>, request: Request) -> Response {
    answer(
        async {
            authenticated(&app, request, SMALL_BODY).await?;
            let store = app.submissions.clone();
            blocking(move || {
                let mut batches = Vec::new();
                for record in store.batches()?.into_iter().take(MAX_LISTED_BATCHES) {
                    let mut held = 0;
                    for id in &record.ids {
                        held += usize::from(store.get(id)?.is_some());
                    }
                    batches.push(BatchSummary {
                        batch: record.batch,
                        created: record.created,
                        submissions: held,
                        delivered: record.delivered,
                    });
                }
                Ok(BatchList { batches })
            })
            .await
        }
        .await,
    )
}

/// `POST /api/v1/courier/copies`: the size of a copy of these submissions ([`CopyRequest`]);
/// nothing is written.
pub async fn describe_copy(State(app): State<Arc<AppState>>, request: Request) -> Response {
    answer(
        async {
            let (_, body) = authenticated(&app, request, SMALL_BODY).await?;
            let wanted: CopyRequest = serde_json::from_slice(&body)
                .ok()
                .filter(|r: &CopyRequest| (1..=MAX_COPY_IDS).contains(&r.ids.len()))
                .ok_or(ApiError::BadBody("{\"ids\": [1 to 20 submission ids]}"))?;
            let store = app.submissions.clone();
            blocking(move || Ok(described(&store.copy_of(&wanted.ids)?)?)).await
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct DownloadQuery {
    /// Bytes the client already has (a resumed download starts there).
    #[serde(default)]
    offset: u64,
}

#[derive(Deserialize)]
pub struct CopyQuery {
    /// The copy's submissions, comma-separated.
    ids: String,
    /// Bytes the client already has.
    #[serde(default)]
    offset: u64,
}

fn batch_id(text: &str) -> Result<BatchId, ApiError> {
    text.parse().map_err(|_| ApiError::NotFound)
}

/// `GET /api/v1/courier/batches/BATCH?offset=N`: the batch's bundle from byte `N` on, written
/// afresh from the store (the same bytes every time), streamed with bounded memory.
pub async fn download_batch(
    State(app): State<Arc<AppState>>,
    Path(batch): Path<String>,
    request: Request,
) -> Response {
    let prepared = async {
        let (parts, _) = authenticated(&app, request, SMALL_BODY).await?;
        let Query(query) = Query::<DownloadQuery>::try_from_uri(&parts.uri)
            .map_err(|_| ApiError::BadQuery("offset=BYTES"))?;
        let batch = batch_id(&batch)?;
        let store = app.submissions.clone();
        let export = blocking(move || Ok(store.export_batch(&batch)?)).await?;
        Ok::<_, ApiError>((export, query.offset))
    }
    .await;
    match prepared.and_then(|(export, offset)| stream_bundle(&app, export, offset)) {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// `GET /api/v1/courier/copies?ids=ID,…&offset=N`: the copy's bundle from byte `N` on.
pub async fn download_copy(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let prepared = async {
        let (parts, _) = authenticated(&app, request, SMALL_BODY).await?;
        let bad = || ApiError::BadQuery("ids=ID,ID,… (1 to 20) and offset=BYTES");
        let Query(query) = Query::<CopyQuery>::try_from_uri(&parts.uri).map_err(|_| bad())?;
        let ids: Vec<SubmissionId> = query
            .ids
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        if !(1..=MAX_COPY_IDS).contains(&ids.len()) {
            return Err(bad());
        }
        let store = app.submissions.clone();
        let export = blocking(move || Ok(store.copy_of(&ids)?)).await?;
        Ok::<_, ApiError>((export, query.offset))
    }
    .await;
    match prepared.and_then(|(export, offset)| stream_bundle(&app, export, offset)) {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// Streams `export`'s bundle from byte `offset` (at most its length) on, written afresh from the
/// store with bounded memory; a failure cuts the body short (the client sees a broken download
/// and resumes). At most [`DOWNLOADS_AT_ONCE`] at a time: each holds a blocking thread.
fn stream_bundle(app: &AppState, export: ExportBatch, offset: u64) -> Result<Response, ApiError> {
    let length = crate::bundle::bundle_length(&export.manifest).map_err(StoreError::from)?;
    if offset > length {
        return Err(ApiError::BadQuery(
            "offset=BYTES, at most the bundle's length",
        ));
    }
    let permit = app
        .downloads
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyRequests { retry_after: 5 })?;
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(DOWNLOAD_DEPTH);
    let store = app.submissions.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let writer = ChannelWriter {
            tx: tx.clone(),
            skip: offset,
        };
        let mut buffered = io::BufWriter::with_capacity(64 * 1024, writer);
        let written = store
            .write_export(&export, &mut buffered)
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|()| buffered.flush());
        if let Err(e) = written {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Bundle downloads streamed at once.
pub const DOWNLOADS_AT_ONCE: usize = 2;

/// Sends what is written to the connection, leaving out the first `skip` bytes.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    skip: u64,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Skipping sends nothing, so a client gone away is noticed here.
        if self.tx.is_closed() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            ));
        }
        let skipped = usize::try_from(self.skip)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        self.skip -= skipped as u64;
        if skipped < buf.len() {
            self.tx
                .blocking_send(Ok(Bytes::copy_from_slice(&buf[skipped..])))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `POST /api/v1/courier/batches/BATCH/delivered`: the client has the whole bundle, checked
/// against its hash; the batch is done (as local `export` marks it after verifying its file).
pub async fn batch_delivered(
    State(app): State<Arc<AppState>>,
    Path(batch): Path<String>,
    request: Request,
) -> Response {
    answer(
        async {
            authenticated(&app, request, SMALL_BODY).await?;
            let batch = batch_id(&batch)?;
            let store = app.submissions.clone();
            blocking(move || Ok(store.complete_export(&batch)?)).await?;
            Ok(serde_json::json!({ "delivered": true }))
        }
        .await,
    )
}

/// `POST /api/v1/courier/purge`: the network form of the operator's `purge`: only submissions of
/// the receipt's batch whose stored ciphertext is byte-for-byte one the receipt names as opened
/// are deleted; and the receipt is signed by a current reviewer's signing subkey, which never
/// leaves the offline machine. A courier key alone deletes nothing.
pub async fn purge(State(app): State<Arc<AppState>>, request: Request) -> Response {
    answer(
        async {
            let (_, body) = authenticated(&app, request, MAX_PURGE_REQUEST).await?;
            let request: PurgeRequest = serde_json::from_slice(&body).map_err(|_| {
                ApiError::BadBody("a bundle manifest, its open receipt and the receipt's signature")
            })?;
            let signature = base64::engine::general_purpose::STANDARD
                .decode(&request.signature)
                .map_err(|_| ApiError::ReceiptNotSigned(SignatureRefusal::Malformed))?;
            app.keyring
                .verify_document(&signature, request.receipt.as_bytes(), SystemTime::now())
                .map_err(ApiError::ReceiptNotSigned)?;
            let receipt = receipt::parse(
                request.receipt.as_bytes(),
                std::path::Path::new("the receipt"),
            )
            .map_err(|_| ApiError::BadBody("an open receipt as `resguardo-review open` writes it"))?;
            if receipt.format != receipt::FORMAT {
                return Err(ApiError::BadBody(
                    "a receipt of format 2, which names each opened ciphertext (open the bundle again with this version)",
                ));
            }
            // The receipt alone says what may go: the courier's manifest is not asked for.
            let manifest = crate::bundle::BundleManifest {
                format: crate::bundle::FORMAT.into(),
                batch: receipt.batch,
                created: UtcDay::today(),
                submissions: receipt.opened_entries(),
                chain: None,
            };
            let opened: HashSet<SubmissionId> = receipt.opened.into_iter().collect();
            let store = app.submissions.clone();
            let report = blocking(move || Ok(store.purge(&manifest, &opened)?)).await?;
            Ok(PurgeAnswer {
                purged: report.purged,
                already_gone: report.already_gone,
                refused: report.refused,
            })
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::chain_since;

    #[test]
    fn the_chain_query_is_one_bounded_number() {
        assert_eq!(chain_since(Some("since=0")), Some(0));
        assert_eq!(chain_since(Some("since=57")), Some(57));
        assert_eq!(
            chain_since(Some("since=18446744073709551615")),
            Some(u64::MAX)
        );
        for bad in [
            None,
            Some(""),
            Some("since="),
            Some("since=-1"),
            Some("since=+1"),
            Some("since=1x"),
            Some("since=1&since=2"),
            Some("since=18446744073709551616"),
            Some("since=000000000000000000001"),
            Some("after=1"),
        ] {
            assert_eq!(chain_since(bad), None, "{bad:?}");
        }
    }
}
