//! Uploads that resume: tus 1.0.0, core protocol with the `creation`, `termination` and
//! `expiration` extensions (`docs/uploads-v1.md` §1).
//!
//! The handlers are thin: creation checks what the one-piece route checks before its body (in
//! the same order, with the same errors) and hands the upload to the store
//! ([`crate::store::Uploads`]); a PATCH streams its body, at the pace of any upload, into a
//! blocking writer that appends to the partial file, syncs it, and, when the last byte is there,
//! runs the envelope check over the whole file and commits it like the one-piece route. The
//! writer holds the upload's turn: a new PATCH asks the old one to stop and waits for it, and a
//! HEAD waits briefly for a writer that is finishing. Nothing here is logged.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures_util::StreamExt;
use ring::digest;
use tokio::sync::mpsc;

use super::api::{conversation_headers, drain, HeldSolution};
use super::error::ApiError;
use super::paced::{announced_length, PacedBody, Stalled};
use super::AppState;
use crate::envelope::{self, RecipientSet};
use crate::store::{
    decimal, Done, PartialUpload, StoreError, SubmissionBackend, SubmissionRecord, SubmissionStore,
    UploadBeside, UploadId,
};
use crate::submission::{Sealing, UtcDay};

/// The protocol version spoken, in `Tus-Resumable` and `Tus-Version`.
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions supported, in `Tus-Extension`.
pub const TUS_EXTENSIONS: &str = "creation,termination,expiration";
/// The media type of a PATCH body.
const OFFSET_MEDIA_TYPE: &str = "application/offset+octet-stream";
/// Where uploads are created; an upload lives at `UPLOADS_PATH/<id>`.
pub const UPLOADS_PATH: &str = "/api/v1/uploads";
/// How long a HEAD waits for a writer that is finishing (syncing, or checking the whole upload).
const HEAD_WAIT: Duration = Duration::from_secs(3);
/// Chunks in flight between the connection and the writer.
const CHANNEL_DEPTH: usize = 4;

/// Every answer on the upload routes carries `Tus-Resumable`.
pub async fn tus_resumable(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    response
}

/// `OPTIONS /api/v1/uploads`
pub async fn options(State(app): State<Arc<AppState>>) -> Response {
    let max = app.store.options().limits.max_bytes;
    (
        StatusCode::NO_CONTENT,
        [
            ("tus-version", HeaderValue::from_static(TUS_VERSION)),
            ("tus-extension", HeaderValue::from_static(TUS_EXTENSIONS)),
            ("tus-max-size", HeaderValue::from(max)),
        ],
    )
        .into_response()
}

/// `POST /api/v1/uploads`
pub async fn create(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_tus(&headers)?;
    let length = upload_length(&headers, app.store.options().limits.max_bytes)?;
    if headers
        .get("upload-metadata")
        .is_some_and(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
    {
        return Err(ApiError::UploadMetadata);
    }
    let beside = creation_beside(&app, &headers)?;
    admit_creation(&app, &headers).await?;
    let store = app.store.clone();
    let upload = tokio::task::spawn_blocking(move || {
        store.uploads().create(length, beside, UtcDay::today())
    })
    .await
    .map_err(|_| ApiError::Unavailable)??;
    let location = format!("{UPLOADS_PATH}/{}", upload.id);
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, header_value(&location)?);
    headers.insert("upload-expires", header_value(&expires(&upload))?);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `HEAD /api/v1/uploads/<id>`
pub async fn head(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_tus(&headers)?;
    let upload = find(&app, &id)?;
    let turn = tokio::time::timeout(HEAD_WAIT, upload.wait_turn())
        .await
        .ok();
    if upload.is_gone() {
        return Err(ApiError::NotFound);
    }
    if let Some(turn) = turn {
        // Every byte arrived but the check did not run (a crash came between): it runs now.
        if upload.done() == Done::No && upload.offset() == upload.length {
            finish_in_background(&app, &upload, turn).await?;
        }
    }
    let mut response = StatusCode::OK.into_response();
    describe(&app, &upload, response.headers_mut())?;
    Ok(response)
}

/// `PATCH /api/v1/uploads/<id>`
pub async fn patch(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_tus(&headers)?;
    let upload = find(&app, &id)?;
    let announced = announced_length(&headers);
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    if media_type.as_deref() != Some(OFFSET_MEDIA_TYPE) {
        drain(body, announced).await;
        return Err(ApiError::UploadMediaType);
    }
    let claimed = headers
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(decimal)
        .ok_or(ApiError::BadUploadOffset)?;
    let (turn, generation) = upload.take_turn().await;
    if upload.is_gone() {
        return Err(ApiError::NotFound);
    }
    let offset = upload.offset();
    if let Done::Stored { .. } = upload.done() {
        if claimed == upload.length && announced == Some(0) {
            // The answer to the last PATCH was lost: the same answer again.
            return stored_answer(&app, &upload);
        }
    }
    if upload.done() != Done::No || claimed != offset {
        drain(body, announced).await;
        return Err(ApiError::OffsetMismatch { current: offset });
    }
    if announced.is_some_and(|n| n > upload.length - offset) {
        drain(body, announced).await;
        return Err(ApiError::BeyondLength { offset });
    }
    let slot = app.admission.upload_slot()?;
    let received = receive(&app, &upload, turn, generation, body, &slot).await?;
    drop(slot);
    match received {
        Received::Stored => stored_answer(&app, &upload),
        Received::Kept(Ended::Finished) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let headers = response.headers_mut();
            headers.insert("upload-offset", HeaderValue::from(upload.offset()));
            headers.insert("upload-expires", header_value(&expires(&upload))?);
            Ok(response)
        }
        Received::Kept(ended) => Err(ended.refusal(upload.offset())),
    }
}

/// `DELETE /api/v1/uploads/<id>`: the reporter cancelled; the bytes go at once.
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_tus(&headers)?;
    let upload = find(&app, &id)?;
    let (turn, _) = upload.take_turn().await;
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        store.uploads().delete(&upload);
    })
    .await
    .map_err(|_| ApiError::Unavailable)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// 412 unless the request says `Tus-Resumable: 1.0.0`.
fn require_tus(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get("tus-resumable") {
        Some(v) if v.as_bytes() == TUS_VERSION.as_bytes() => Ok(()),
        _ => Err(ApiError::TusVersion),
    }
}

/// `Upload-Length`, in `1..=max` (413 beyond); deferred lengths are not taken.
fn upload_length(headers: &HeaderMap, max: u64) -> Result<u64, ApiError> {
    if headers.contains_key("upload-defer-length") {
        return Err(ApiError::BadUploadLength("deferred lengths are not taken"));
    }
    let length = headers
        .get("upload-length")
        .ok_or(ApiError::BadUploadLength("it is missing"))?
        .to_str()
        .ok()
        .and_then(decimal)
        .ok_or(ApiError::BadUploadLength("it is malformed"))?;
    if length == 0 {
        return Err(ApiError::BadUploadLength("it is zero"));
    }
    if length > max {
        return Err(ApiError::Store(StoreError::TooLarge { limit: max }));
    }
    Ok(length)
}

/// The triage envelope and conversation headers, checked as the one-piece route checks them.
fn creation_beside(app: &AppState, headers: &HeaderMap) -> Result<UploadBeside, ApiError> {
    let triage = headers
        .get(crate::triage::HEADER)
        .map(|v| crate::triage::check_sealed(v.as_bytes(), &app.triage_recipients))
        .transpose()?;
    let conversation = conversation_headers(headers)?;
    Ok(UploadBeside {
        triage,
        conversation: conversation.start,
        touch: conversation.touch,
    })
}

/// A turn in the submission queue and the proof of work, as for the one-piece route: the
/// solution is held while the creation waits and spent once it is admitted.
async fn admit_creation(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if !app.pow.enabled() {
        return app.admission.admit_submission().await;
    }
    let solution = headers
        .get(crate::pow::HEADER)
        .and_then(|v| v.to_str().ok());
    let held = HeldSolution {
        pow: &app.pow,
        verified: Some(app.pow.verify(solution)?),
    };
    app.admission.admit_submission().await?;
    held.spend()?;
    Ok(())
}

/// The upload, unless the id is malformed, unknown, deleted or expired (all 404 alike): an
/// upload whose expiry day has begun takes no more bytes even before the sweep deletes it, so
/// its holder cannot keep it (and its reservation) past its day by always writing to it.
fn find(app: &AppState, id: &str) -> Result<Arc<PartialUpload>, ApiError> {
    let id: UploadId = id.parse().map_err(|_| ApiError::NotFound)?;
    app.store
        .uploads()
        .get(&id)
        .filter(|u| u.expires > UtcDay::today())
        .ok_or(ApiError::NotFound)
}

fn header_value(s: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(s).map_err(|_| ApiError::Unavailable)
}

/// `Upload-Expires`: the start of the upload's expiry day, as an HTTP date.
fn expires(upload: &PartialUpload) -> String {
    let secs = i64::from(upload.expires.days_since_epoch()) * 86_400;
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] 00:00:00 GMT"
    );
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// The headers of a HEAD: offset, length, expiry, and the submission once stored.
fn describe(
    app: &AppState,
    upload: &PartialUpload,
    headers: &mut HeaderMap,
) -> Result<(), ApiError> {
    headers.insert("upload-offset", HeaderValue::from(upload.offset()));
    headers.insert("upload-length", HeaderValue::from(upload.length));
    headers.insert("upload-expires", header_value(&expires(upload))?);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Done::Stored { id, sequence } = upload.done() {
        headers.insert("resguardo-submission", header_value(&id.to_string())?);
        if let Some(n) = sequence.filter(|_| app.number_in_answer) {
            headers.insert("resguardo-sequence", HeaderValue::from(n));
        }
    }
    Ok(())
}

/// The one-piece route's 201 answer, with the upload's offset (tus clients read it).
fn stored_answer(app: &AppState, upload: &PartialUpload) -> Result<Response, ApiError> {
    let Done::Stored { id, sequence } = upload.done() else {
        return Err(ApiError::Unavailable);
    };
    let body = serde_json::json!({
        "id": id.to_string(),
        "sequence": sequence.filter(|_| app.number_in_answer),
    });
    let body = match body {
        serde_json::Value::Object(mut map) => {
            map.retain(|_, v| !v.is_null());
            serde_json::Value::Object(map)
        }
        other => other,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response
        .headers_mut()
        .insert("upload-offset", HeaderValue::from(upload.length));
    Ok(response)
}

/// Runs the check and commit of a complete upload on a blocking thread that holds `turn`.
async fn finish_in_background(
    app: &AppState,
    upload: &Arc<PartialUpload>,
    turn: tokio::sync::OwnedMutexGuard<()>,
) -> Result<(), ApiError> {
    let store = app.store.clone();
    let submissions = app.submissions.clone();
    let recipients = app.recipients.clone();
    let upload = upload.clone();
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        finish(&store, &*submissions, &recipients, &upload).map(|_| ())
    })
    .await
    .map_err(|_| ApiError::Unavailable)?
}

/// Why a PATCH body stopped being read.
enum Ended {
    /// It ended.
    Finished,
    /// A later request took over.
    TakenOver,
    /// It was longer than what remained.
    Beyond,
    /// Too slow, silent, or its slot was taken.
    Stalled,
    /// The connection broke.
    Broken,
}

impl Ended {
    fn refusal(self, offset: u64) -> ApiError {
        match self {
            Ended::Finished | Ended::TakenOver => ApiError::OffsetMismatch { current: offset },
            Ended::Beyond => ApiError::BeyondLength { offset },
            Ended::Stalled => ApiError::UploadStopped {
                offset,
                timed_out: true,
            },
            Ended::Broken => ApiError::UploadStopped {
                offset,
                timed_out: false,
            },
        }
    }
}

/// What a PATCH achieved.
enum Received {
    /// Its bytes are kept (synced) and the upload is not complete, or the body stopped early.
    Kept(Ended),
    /// The upload is complete and stored.
    Stored,
}

/// What the async side hands the writer.
enum Piece {
    Bytes(Bytes),
    /// The body went beyond the upload's length: keep what fits, but do not complete now.
    Beyond,
}

/// Streams a PATCH body into the upload at the pace of any upload; the writer (holding `turn`)
/// keeps and syncs what arrived however the body ends, and completes the upload when its last
/// byte is there. Dropping this future (the client went away) still leaves the writer to finish.
async fn receive(
    app: &AppState,
    upload: &Arc<PartialUpload>,
    turn: tokio::sync::OwnedMutexGuard<()>,
    generation: u64,
    body: Body,
    slot: &super::slots::Slot,
) -> Result<Received, ApiError> {
    let (tx, rx) = mpsc::channel::<Piece>(CHANNEL_DEPTH);
    let writer = {
        let store = app.store.clone();
        let submissions = app.submissions.clone();
        let recipients = app.recipients.clone();
        let upload = upload.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            write_then_finish(&store, &*submissions, &recipients, &upload, rx)
        })
    };
    let mut remaining = upload.length - upload.offset();
    let mut stream = body.into_data_stream();
    let mut paced = PacedBody::new(app.upload_pace, slot);
    let ended = loop {
        let notified = upload.takeover().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if upload.taken_over(generation) {
            break Ended::TakenOver;
        }
        let next = tokio::select! {
            biased;
            () = &mut notified => break Ended::TakenOver,
            next = paced.wait(stream.next()) => next,
        };
        let mut chunk = match next {
            Ok(None) => break Ended::Finished,
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(_))) => break Ended::Broken,
            Err(Stalled(_)) => break Ended::Stalled,
        };
        let beyond = chunk.len() as u64 > remaining;
        if beyond {
            chunk.truncate(remaining as usize);
        }
        remaining -= chunk.len() as u64;
        let pace = paced.received(chunk.len());
        // A send error means the writer failed; its error is the answer.
        if !chunk.is_empty() && tx.send(Piece::Bytes(chunk)).await.is_err() {
            break Ended::Finished;
        }
        if beyond {
            let _ = tx.send(Piece::Beyond).await;
            break Ended::Beyond;
        }
        if pace.is_err() {
            break Ended::Stalled;
        }
    };
    drop(tx);
    let stored = writer.await.map_err(|_| ApiError::Unavailable)??;
    Ok(if stored {
        Received::Stored
    } else {
        Received::Kept(ended)
    })
}

/// The writer: appends what arrives, syncs it, and finishes the upload if it is complete (and
/// the body did not go beyond it). Returns whether it was stored.
fn write_then_finish(
    store: &SubmissionStore,
    submissions: &dyn SubmissionBackend,
    recipients: &RecipientSet,
    upload: &Arc<PartialUpload>,
    mut rx: mpsc::Receiver<Piece>,
) -> Result<bool, ApiError> {
    let mut writer = store.uploads().writer(upload)?;
    let mut failed = None;
    let mut beyond = false;
    while let Some(piece) = rx.blocking_recv() {
        match piece {
            Piece::Bytes(bytes) => {
                if let Err(e) = writer.write(&bytes) {
                    failed = Some(e);
                    break;
                }
            }
            Piece::Beyond => beyond = true,
        }
    }
    drop(rx);
    let offset = writer.sync()?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if beyond || offset < upload.length {
        return Ok(false);
    }
    finish(store, submissions, recipients, upload).map(|_| true)
}

/// Checks the whole upload with the envelope check and commits it as the one-piece route does
/// (same record, chain entry, triage envelope and conversation); a refused upload is deleted.
fn finish(
    store: &SubmissionStore,
    submissions: &dyn SubmissionBackend,
    recipients: &RecipientSet,
    upload: &PartialUpload,
) -> Result<SubmissionRecord, ApiError> {
    let result = check_and_commit(store, submissions, recipients, upload);
    match &result {
        Ok(record) => {
            if let Some(locator) = upload.beside().touch {
                let _ = store.touch_conversation(&locator);
            }
            if let Err(e) = store.uploads().mark_done(upload, record) {
                // Stored and acknowledged all the same; only a later HEAD cannot tell.
                super::error::warn_operator("storage_unavailable", &e.to_string());
            }
        }
        Err(_) => store.uploads().delete(upload),
    }
    result
}

fn check_and_commit(
    store: &SubmissionStore,
    submissions: &dyn SubmissionBackend,
    recipients: &RecipientSet,
    upload: &PartialUpload,
) -> Result<SubmissionRecord, ApiError> {
    let uploads = store.uploads();
    let mut file = uploads.reader(upload)?;
    let mut first = [0u8; 1];
    let io = |e: io::Error| ApiError::Store(StoreError::from_io(e));
    let n = file.read(&mut first).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let beside = upload.beside();
    let conversation = beside
        .conversation
        .as_ref()
        .map(|c| (&c.locator, c.sealed_box.as_slice()));
    if n == 1 && first[0] & 0x80 != 0 {
        // Binary: what is checked is what is stored; the partial file becomes the sealed file.
        let mut sink = HashingSink::new();
        envelope::check(file, recipients, &mut sink)?;
        if sink.size != upload.length {
            return Err(ApiError::Unavailable);
        }
        let incoming = uploads.into_spool(upload, sink.hash, sink.size)?;
        Ok(submissions.commit_with(
            incoming,
            Sealing::BySender,
            beside.triage.as_deref(),
            conversation,
        )?)
    } else {
        // Armor is stored dearmored, as the one-piece route stores it: a copy through a spool.
        uploads.release_reservation(upload);
        let mut incoming = submissions.begin(Some(upload.length))?;
        match envelope::check(file, recipients, &mut incoming) {
            Ok(_) => Ok(submissions.commit_with(
                incoming,
                Sealing::BySender,
                beside.triage.as_deref(),
                conversation,
            )?),
            Err(e) => Err(match incoming.take_fault() {
                Some(fault) => ApiError::Store(fault),
                None => ApiError::Envelope(e),
            }),
        }
    }
}

/// Counts and hashes what the envelope check passes through, writing nothing.
struct HashingSink {
    hash: digest::Context,
    size: u64,
}

impl HashingSink {
    fn new() -> Self {
        HashingSink {
            hash: digest::Context::new(&digest::SHA256),
            size: 0,
        }
    }
}

impl io::Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hash.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
