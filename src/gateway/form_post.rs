//! Sealing on arrival: the same form, posted without JavaScript, encrypted by the gateway.
//!
//! The multipart body is read as a stream. Text answers are checked against the form definition
//! and kept in memory (wiped on drop); each attachment streams into a [`Scratch`] file encrypted
//! under a key that lives only in memory, while its size and SHA-256 are taken. When the post is
//! complete, the payload v1 is written (report first, attachments decrypted from their scratch
//! files) straight into the sealing encryptor, and the resulting message goes into the store like
//! any other, marked as sealed on arrival. Plaintext never touches the disk or the log.
//!
//! All of that runs on one blocking thread; the async side only forwards multipart events.
//!
//! Everything a post can make the gateway hold is bounded: the text of one answer, the text of
//! all answers together, how many times a field may repeat, the number of parts, and the files'
//! bytes. Every byte, text or file, counts towards the upload pace and the upload slot. When a
//! post is refused before it is sealed, only its text answers are read (up to the first file),
//! so the form can come back with what the reporter typed.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::StatusCode;
use bytes::Bytes;
use ring::digest;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::page::FormValues;
use super::slots::Slot;
use super::upload::UploadPace;
use crate::form::{FieldKind, FormDefinition};
use crate::keyring::ReviewerKeyring;
use crate::payload::{self, attachment_path, Attachment, FieldValue, Report};
use crate::seal::{self, Scratch};
use crate::store::{StoreError, SubmissionRecord, SubmissionStore};
use crate::submission::Sealing;

/// Bound on one text answer in bytes (the form's own bounds, in characters, are checked later).
const MAX_TEXT_FIELD: usize = 1024 * 1024;
/// Bound on all text answers of one post together, in bytes: the longest description (200,000
/// characters, up to 4 bytes each) and every other field at its longest fit well below it.
const MAX_TEXT_TOTAL: usize = 2 * 1024 * 1024;
/// Bound on the parts of one post (text answers and files).
const MAX_PARTS: usize = 512;

/// Why a form post was not stored. Each maps to a status and a sentence in the page's language.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("this gateway does not accept reports without JavaScript")]
    Disabled,
    #[error("the gateway is under heavy load")]
    Busy,
    #[error("the upload was too slow or stalled")]
    TooSlow,
    #[error("the form was not sent as multipart/form-data")]
    NotMultipart,
    #[error("the form data is malformed: {0}")]
    Malformed(String),
    #[error("unknown form field {0:?}")]
    UnknownField(String),
    #[error("the answer to {0} is not one of the choices or is too long")]
    BadValue(String),
    #[error("please answer {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("the files are too large")]
    TooLarge,
    #[error("the form has too many answers or too much text")]
    TooMuchText,
    #[error(transparent)]
    Token(#[from] super::form_token::TokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sealing failed: {0}")]
    Seal(io::Error),
}

impl FormError {
    pub fn status(&self) -> StatusCode {
        match self {
            FormError::Disabled => StatusCode::FORBIDDEN,
            FormError::Busy => StatusCode::TOO_MANY_REQUESTS,
            FormError::TooSlow => StatusCode::REQUEST_TIMEOUT,
            FormError::NotMultipart => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            FormError::Malformed(_) => StatusCode::BAD_REQUEST,
            FormError::UnknownField(_)
            | FormError::BadValue(_)
            | FormError::Missing(_)
            | FormError::TooMuchText => StatusCode::UNPROCESSABLE_ENTITY,
            FormError::Token(super::form_token::TokenError::Busy) => StatusCode::TOO_MANY_REQUESTS,
            FormError::Token(_) => StatusCode::CONFLICT,
            FormError::TooLarge | FormError::Store(StoreError::TooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            FormError::Store(StoreError::QuotaExceeded | StoreError::DiskFull) => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            FormError::Store(_) | FormError::Seal(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The language-file key of the sentence for the reporter.
    pub fn message_key(&self) -> &'static str {
        use super::form_token::TokenError;
        match self {
            FormError::Disabled => "page.nojs.disabled",
            FormError::Busy => "page.error.busy_nojs",
            FormError::TooSlow => "page.error.network",
            FormError::Missing(_) => "page.error.missing",
            FormError::TooLarge | FormError::Store(StoreError::TooLarge { .. }) => {
                "page.error.too_large_nojs"
            }
            FormError::Store(StoreError::QuotaExceeded | StoreError::DiskFull) => "page.error.full",
            FormError::Store(_) | FormError::Seal(_) => "page.error.busy",
            FormError::Token(TokenError::Expired) => "page.error.form_expired",
            FormError::Token(TokenError::Spent) => "page.error.form_spent",
            FormError::Token(TokenError::Busy) => "page.error.busy_nojs",
            FormError::Token(TokenError::Missing | TokenError::Invalid) => "page.error.form_stale",
            FormError::NotMultipart
            | FormError::Malformed(_)
            | FormError::UnknownField(_)
            | FormError::BadValue(_)
            | FormError::TooMuchText => "page.error.form_invalid",
        }
    }

    /// Every message key, for the test that each has a sentence in every language.
    #[cfg(test)]
    pub fn all_message_keys() -> Vec<&'static str> {
        use super::form_token::TokenError;
        let io = || io::Error::other("x");
        [
            FormError::Disabled,
            FormError::Busy,
            FormError::TooSlow,
            FormError::NotMultipart,
            FormError::Malformed(String::new()),
            FormError::UnknownField(String::new()),
            FormError::BadValue(String::new()),
            FormError::Missing(Vec::new()),
            FormError::TooLarge,
            FormError::TooMuchText,
            FormError::Token(TokenError::Missing),
            FormError::Token(TokenError::Invalid),
            FormError::Token(TokenError::Expired),
            FormError::Token(TokenError::Spent),
            FormError::Token(TokenError::Busy),
            FormError::Store(StoreError::QuotaExceeded),
            FormError::Store(StoreError::DiskFull),
            FormError::Store(StoreError::TooLarge { limit: 1 }),
            FormError::Store(StoreError::Io(io())),
            FormError::Seal(io()),
        ]
        .iter()
        .map(FormError::message_key)
        .collect()
    }
}

/// What the sealing thread receives from the connection.
enum Event {
    Text(String, Zeroizing<String>),
    FileStart {
        media_type: String,
        name: String,
    },
    FileChunk(Bytes),
    FileEnd,
    /// The post arrived completely; without it nothing is stored.
    End,
}

/// What the handler needs to seal.
pub struct FormContext {
    pub store: Arc<SubmissionStore>,
    pub keyring: Arc<ReviewerKeyring>,
    pub form: Arc<FormDefinition>,
    pub max_bytes: u64,
}

/// The outcome, with the typed values to show the form again on failure, and the language.
pub struct Posted {
    pub language: Option<String>,
    pub values: FormValues,
    /// The stored record, and whether the report said someone is at imminent risk.
    pub result: Result<(SubmissionRecord, bool), FormError>,
}

/// Reads the post and seals it. `languages` are the tags the page offers.
pub async fn receive_form(
    ctx: FormContext,
    request: Request<Body>,
    languages: Vec<String>,
    pace: UploadPace,
    slot: &Slot,
) -> Posted {
    let mut multipart = match Multipart::from_request(request, &()).await {
        Ok(m) => m,
        Err(_) => {
            return Posted {
                language: None,
                values: FormValues::new(),
                result: Err(FormError::NotMultipart),
            }
        }
    };
    let (tx, rx) = mpsc::channel::<Event>(4);
    let sealing = tokio::task::spawn_blocking(move || {
        let posted = seal_events(rx, &ctx, &languages);
        // seal_events and everything below it held plaintext on this thread's stack.
        crate::process::scrub_stack();
        posted
    });
    let mut clock = Paced::new(pace, slot);
    let stream_error = forward(&mut multipart, &tx, &mut clock).await.err();
    drop(tx);
    let mut posted = match sealing.await {
        Ok(posted) => posted,
        Err(_) => Posted {
            language: None,
            values: FormValues::new(),
            result: Err(FormError::Seal(io::Error::other("the sealing task failed"))),
        },
    };
    if let Some(e) = stream_error {
        posted.result = Err(e);
    }
    posted
}

/// Applies the upload pace (and eviction from the upload slot) to a multipart stream.
struct Paced<'a> {
    pace: UploadPace,
    slot: &'a Slot,
    started: std::time::Instant,
    received: u64,
}

impl<'a> Paced<'a> {
    fn new(pace: UploadPace, slot: &'a Slot) -> Self {
        Paced {
            pace,
            slot,
            started: std::time::Instant::now(),
            received: 0,
        }
    }

    fn received(&mut self, n: usize) {
        self.received += n as u64;
        self.slot.progress(n);
    }

    /// Awaits `next` for at most the idle timeout, then checks the average pace.
    async fn wait<T>(
        &mut self,
        next: impl std::future::Future<Output = T>,
    ) -> Result<T, FormError> {
        let value = tokio::select! {
            biased;
            () = self.slot.evicted() => return Err(FormError::TooSlow),
            value = tokio::time::timeout(self.pace.idle, next) => value,
        }
        .map_err(|_| FormError::TooSlow)?;
        if self
            .pace
            .verdict(self.received, self.started.elapsed())
            .is_some()
        {
            return Err(FormError::TooSlow);
        }
        Ok(value)
    }
}

/// An attachment arriving: the scratch writer and the running hash.
struct Receiving {
    writer: sequoia_openpgp::serialize::stream::Message<'static>,
    hash: digest::Context,
    pending: Pending,
}

/// Forwards the multipart stream to the sealing thread as events; `End` only if it arrived whole.
/// A closed channel means the sealing thread has already failed; it reports why.
async fn forward(
    multipart: &mut Multipart,
    tx: &mpsc::Sender<Event>,
    clock: &mut Paced<'_>,
) -> Result<(), FormError> {
    let mut text_total = 0usize;
    let mut parts = 0usize;
    while let Some(mut field) = clock
        .wait(multipart.next_field())
        .await?
        .map_err(malformed)?
    {
        parts += 1;
        if parts > MAX_PARTS {
            return Err(FormError::TooMuchText);
        }
        let name = field.name().unwrap_or_default().to_string();
        let event = match field.file_name().map(str::to_string) {
            None => {
                let text = read_text(&mut field, clock, &mut text_total).await?;
                Event::Text(name, text)
            }
            Some(file_name) => {
                let media_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let start = Event::FileStart {
                    media_type,
                    name: file_name,
                };
                if tx.send(start).await.is_err() {
                    return Ok(());
                }
                while let Some(chunk) = clock.wait(field.chunk()).await?.map_err(malformed)? {
                    clock.received(chunk.len());
                    if tx.send(Event::FileChunk(chunk)).await.is_err() {
                        return Ok(());
                    }
                }
                Event::FileEnd
            }
        };
        if tx.send(event).await.is_err() {
            return Ok(());
        }
    }
    let _ = tx.send(Event::End).await;
    Ok(())
}

fn malformed(e: axum::extract::multipart::MultipartError) -> FormError {
    FormError::Malformed(e.body_text())
}

/// Reads one text answer, within the bounds on one answer and on all of a post's text.
async fn read_text(
    field: &mut axum::extract::multipart::Field<'_>,
    clock: &mut Paced<'_>,
    text_total: &mut usize,
) -> Result<Zeroizing<String>, FormError> {
    // Collected as bytes: a chunk may end in the middle of a character.
    let mut bytes = Zeroizing::new(Vec::new());
    while let Some(chunk) = clock.wait(field.chunk()).await?.map_err(malformed)? {
        clock.received(chunk.len());
        *text_total += chunk.len();
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD || *text_total > MAX_TEXT_TOTAL {
            return Err(FormError::TooMuchText);
        }
        bytes.extend_from_slice(&chunk);
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| FormError::Malformed("text is not UTF-8".into()))?;
    Ok(Zeroizing::new(text.to_string()))
}

/// Reads only the text answers of a post being refused (up to its first file), so the form can
/// come back with what was typed. Only the form's own fields are kept, each as often and as long
/// as the form allows it; whatever fails, returns what it has.
pub async fn read_texts(
    request: Request<Body>,
    form: &FormDefinition,
    languages: &[String],
    pace: UploadPace,
) -> (Option<String>, FormValues) {
    let mut values = FormValues::new();
    let mut language = None;
    let Ok(mut multipart) = Multipart::from_request(request, &()).await else {
        return (language, values);
    };
    let slot = Slot::detached();
    let mut clock = Paced::new(pace, &slot);
    let mut text_total = 0usize;
    for _ in 0..MAX_PARTS {
        let Ok(Ok(Some(mut field))) = clock.wait(multipart.next_field()).await else {
            break;
        };
        if field.file_name().is_some() {
            break;
        }
        let name = field.name().unwrap_or_default().to_string();
        let Ok(text) = read_text(&mut field, &mut clock, &mut text_total).await else {
            break;
        };
        if name == "language" {
            if languages.iter().any(|l| l == text.as_str()) {
                language = Some(text.to_string());
            }
            continue;
        }
        let Some(def) = form
            .field(&name)
            .filter(|f| f.kind != FieldKind::Attachments)
        else {
            continue;
        };
        let repeats = match def.kind {
            FieldKind::Multi => def.options.len(),
            _ => 1,
        };
        let given = values.entry(name).or_default();
        if given.len() < repeats {
            given.push(text.chars().take(def.max_chars()).collect());
        }
    }
    (language, values)
}

/// An attachment waiting in its scratch file.
struct Pending {
    scratch: Scratch,
    name: String,
    media_type: String,
    size: u64,
    sha256: String,
}

fn seal_events(mut rx: mpsc::Receiver<Event>, ctx: &FormContext, languages: &[String]) -> Posted {
    let mut answers: BTreeMap<String, Vec<Zeroizing<String>>> = BTreeMap::new();
    let mut language = None;
    let mut files: Vec<Pending> = Vec::new();
    let mut failure: Option<FormError> = None;
    let mut plaintext_bytes = 0u64;
    let mut current: Option<Receiving> = None;
    let mut complete = false;

    while let Some(event) = rx.blocking_recv() {
        if failure.is_some() {
            continue; // keep draining so the connection side can finish
        }
        let result: Result<(), FormError> = (|| {
            match event {
                Event::Text(name, value) => {
                    if name == "language" {
                        if languages.iter().any(|l| l == value.as_str()) {
                            language = Some(value.to_string());
                        }
                        return Ok(());
                    }
                    let field = ctx
                        .form
                        .field(&name)
                        .filter(|f| f.kind != FieldKind::Attachments)
                        .ok_or_else(|| FormError::UnknownField(name.chars().take(64).collect()))?;
                    if value.chars().count() > field.max_chars() {
                        return Err(FormError::BadValue(name));
                    }
                    // A choice may come once per option, any other answer once.
                    let repeats = match field.kind {
                        FieldKind::Multi => field.options.len(),
                        _ => 1,
                    };
                    let given = answers.entry(name).or_default();
                    if given.len() >= repeats {
                        return Err(FormError::TooMuchText);
                    }
                    given.push(value);
                    Ok(())
                }
                Event::FileStart { media_type, name } => {
                    if files.len() >= payload::MAX_ATTACHMENTS {
                        return Err(FormError::TooLarge);
                    }
                    let scratch =
                        Scratch::create(ctx.store.incoming_dir()).map_err(FormError::Seal)?;
                    let writer = scratch.writer().map_err(FormError::Seal)?;
                    current = Some(Receiving {
                        writer,
                        hash: digest::Context::new(&digest::SHA256),
                        pending: Pending {
                            scratch,
                            name,
                            media_type,
                            size: 0,
                            sha256: String::new(),
                        },
                    });
                    Ok(())
                }
                Event::FileChunk(chunk) => {
                    let Some(receiving) = current.as_mut() else {
                        return Err(FormError::Malformed("file data outside a file".into()));
                    };
                    plaintext_bytes += chunk.len() as u64;
                    if plaintext_bytes > ctx.max_bytes {
                        return Err(FormError::TooLarge);
                    }
                    receiving
                        .writer
                        .write_all(&chunk)
                        .map_err(FormError::Seal)?;
                    receiving.hash.update(&chunk);
                    receiving.pending.size += chunk.len() as u64;
                    Ok(())
                }
                Event::FileEnd => {
                    let Some(receiving) = current.take() else {
                        return Ok(());
                    };
                    receiving
                        .writer
                        .finalize()
                        .map_err(|e| FormError::Seal(io::Error::other(e)))?;
                    let mut pending = receiving.pending;
                    // A file input left empty is sent as a nameless, empty part.
                    if pending.name.is_empty() && pending.size == 0 {
                        return Ok(());
                    }
                    pending.sha256 = hex::encode(receiving.hash.finish());
                    files.push(pending);
                    Ok(())
                }
                Event::End => {
                    complete = true;
                    Ok(())
                }
            }
        })();
        if let Err(e) = result {
            failure = Some(e);
        }
    }

    let result = match failure {
        Some(e) => Err(e),
        None if !complete => Err(FormError::Malformed("the post ended early".into())),
        None => {
            build_report(&ctx.form, language.as_deref(), &answers, &files).and_then(|mut report| {
                let sealed = seal_and_store(ctx, &report, &files);
                wipe(&mut report);
                sealed.map(|record| (record, report.urgent))
            })
        }
    };
    // The answers go back to the page only if the post was refused.
    let values: FormValues = match &result {
        Ok(_) => FormValues::new(),
        Err(_) => answers
            .iter()
            .map(|(k, vs)| (k.clone(), vs.iter().map(|v| v.to_string()).collect()))
            .collect(),
    };
    Posted {
        language,
        values,
        result,
    }
}

/// Overwrites the plaintext a report holds before its memory is given back.
fn wipe(report: &mut Report) {
    use zeroize::Zeroize;
    report.description.zeroize();
    for value in report.fields.values_mut() {
        match value {
            FieldValue::Text(t) => t.zeroize(),
            FieldValue::Choices(list) => list.iter_mut().for_each(Zeroize::zeroize),
        }
    }
    for attachment in &mut report.attachments {
        attachment.name.zeroize();
    }
}

fn build_report(
    form: &FormDefinition,
    language: Option<&str>,
    answers: &BTreeMap<String, Vec<Zeroizing<String>>>,
    files: &[Pending],
) -> Result<Report, FormError> {
    let mut fields = BTreeMap::new();
    let mut urgent = false;
    let mut description = String::new();
    let mut missing = Vec::new();
    for f in &form.fields {
        let given: Vec<&str> = answers
            .get(&f.id)
            .map(|vs| {
                vs.iter()
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let one = || -> Result<Option<&str>, FormError> {
            match given.as_slice() {
                [] => Ok(None),
                [v] => Ok(Some(*v)),
                _ => Err(FormError::BadValue(f.id.clone())),
            }
        };
        match f.kind {
            FieldKind::Multi => {
                if given.iter().any(|v| !f.options.iter().any(|o| o == v)) {
                    return Err(FormError::BadValue(f.id.clone()));
                }
                if !given.is_empty() {
                    fields.insert(
                        f.id.clone(),
                        FieldValue::Choices(given.iter().map(|v| v.to_string()).collect()),
                    );
                }
            }
            FieldKind::Select => {
                if let Some(v) = one()? {
                    if !f.options.iter().any(|o| o == v) {
                        return Err(FormError::BadValue(f.id.clone()));
                    }
                    fields.insert(f.id.clone(), FieldValue::Text(v.to_string()));
                }
            }
            FieldKind::Checkbox => {
                if let Some(v) = one()? {
                    if v != "yes" {
                        return Err(FormError::BadValue(f.id.clone()));
                    }
                    fields.insert(f.id.clone(), FieldValue::Text("yes".into()));
                }
            }
            FieldKind::Text | FieldKind::Textarea | FieldKind::Date => {
                if let Some(v) = one()? {
                    fields.insert(f.id.clone(), FieldValue::Text(v.to_string()));
                }
            }
            FieldKind::Urgent => {
                // The answer itself is kept too, so "no" and "not answered" stay apart.
                let answer = one()?;
                urgent = match answer {
                    Some("yes") => true,
                    None | Some("no") => false,
                    Some(_) => return Err(FormError::BadValue(f.id.clone())),
                };
                if let Some(answer) = answer {
                    fields.insert(f.id.clone(), FieldValue::Text(answer.to_string()));
                }
            }
            FieldKind::Description => description = one()?.unwrap_or("").to_string(),
            FieldKind::Attachments => {}
        }
        let answered = match f.kind {
            FieldKind::Description => !description.is_empty(),
            FieldKind::Attachments => !files.is_empty(),
            _ => fields.contains_key(&f.id),
        };
        if f.required && !answered {
            missing.push(f.id.clone());
        }
    }
    if !missing.is_empty() {
        return Err(FormError::Missing(missing));
    }
    let attachments = files
        .iter()
        .enumerate()
        .map(|(i, p)| Attachment {
            name: p.name.chars().take(payload::MAX_NAME_CHARS).collect(),
            size: p.size,
            sha256: p.sha256.clone(),
            media_type: clean_media_type(&p.media_type),
            path: attachment_path(i, &p.name),
        })
        .collect();
    let report = Report {
        schema: payload::SCHEMA.into(),
        language: language.unwrap_or(&form.default_language).to_string(),
        urgent,
        sealed_by: Some("gateway".into()),
        fields,
        description,
        attachments,
    };
    payload::read::validate(&report, u64::MAX).map_err(|e| FormError::BadValue(e.to_string()))?;
    Ok(report)
}

fn clean_media_type(t: &str) -> String {
    let t: String = t
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(payload::MAX_MEDIA_TYPE_CHARS)
        .collect();
    if t.is_empty() {
        "application/octet-stream".into()
    } else {
        t
    }
}

fn seal_and_store(
    ctx: &FormContext,
    report: &Report,
    files: &[Pending],
) -> Result<SubmissionRecord, FormError> {
    let mut incoming = ctx.store.begin(None)?;
    let written = (|| -> io::Result<()> {
        let mut sources: Vec<payload::AttachmentSource<'_>> = Vec::new();
        for f in files {
            sources.push(Box::new(f.scratch.reader()?));
        }
        let mut sealer = seal::sealer(&ctx.keyring, &mut incoming)?;
        payload::write_payload(&mut sealer, report, sources)?;
        sealer.finalize().map_err(io::Error::other)
    })();
    if let Err(e) = written {
        return Err(match incoming.take_fault() {
            Some(fault) => FormError::Store(fault),
            None => FormError::Seal(e),
        });
    }
    Ok(ctx.store.commit(incoming, Sealing::OnArrival)?)
}
