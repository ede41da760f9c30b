//! Sealing on arrival: the same form, posted without JavaScript, encrypted by the gateway.
//!
//! The multipart body is read as a stream. Text answers are checked against the form definition
//! and kept in memory (wiped on drop); each attachment streams into a [`Scratch`] file encrypted
//! under a key that lives only in memory, while its size and SHA-256 are taken. When the post is
//! complete, the payload v1 is written (report first, attachments decrypted from their scratch
//! files) straight into the sealing encryptor, and the resulting message goes into the store like
//! any other, marked as sealed on arrival. Plaintext never touches the disk or the log.
//!
//! Pictures are cleaned of metadata (`crate::metadata`) on the way: a file whose first bytes say
//! JPEG, PNG or WebP is held in memory (at most [`metadata::MAX_CLEAN_BYTES`]), never on disk,
//! cleaned and checked, and only the cleaned copy goes into its scratch file, under a neutral
//! name (`imagen-N.jpg`). A picture that cannot be cleaned (HEIC, a damaged JPEG, one too large)
//! is refused unless the reporter ticked "send anyway" ([`CONSENT_FIELD`]), as on the page with
//! JavaScript; the refusal names each file and what may remain in it, and keeps what was typed.
//! Other files (PDF, video, documents) go as they are: the form says beforehand what they may
//! still hold.
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

use super::paced::{PacedBody, Stalled, UploadPace};
use super::page_render::FormValues;
use super::slots::Slot;
use crate::form::{AnswerError, FieldKind, FormDefinition, ReceivedFile};
use crate::keyring::{CourierKeyring, ReviewerKeyring};
use crate::metadata::{self, Cleaning, FileKind, Remains};
use crate::payload::{self, ConversationRef, FieldValue, Report};
use crate::replies::{NewConversation, Receipt, ReceiptError};
use crate::seal::{self, Scratch};
use crate::store::{StoreError, SubmissionRecord, SubmissionStore};
use crate::submission::{Sealing, UtcDay};
use crate::submit::start_conversation;
use crate::triage::{self, Triage};

/// Bound on one text answer in bytes (the form's own bounds, in characters, are checked later).
const MAX_TEXT_FIELD: usize = 1024 * 1024;
/// Bound on all text answers of one post together, in bytes: the longest description (200,000
/// characters, up to 4 bytes each) and every other field at its longest fit well below it.
const MAX_TEXT_TOTAL: usize = 2 * 1024 * 1024;
/// Bound on the parts of one post (text answers and files).
const MAX_PARTS: usize = 512;

/// Why a form post was not stored. Each maps to a status and a sentence in the page's language.
#[derive(Debug, thiserror::Error)]
pub enum FormPostError {
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
    /// A follow-up's words are not a receipt.
    #[error("the words are not a receipt: {0}")]
    BadReceipt(ReceiptError),
    /// A follow-up's receipt has no conversation (wrong words, or it expired).
    #[error("no conversation for these words")]
    NoConversation,
    /// Pictures whose metadata could not be removed, and the reporter did not tick "send
    /// anyway". (The names are shown to the reporter only, never logged.)
    #[error("a picture still carries metadata and was not sent anyway")]
    NotCleaned(Vec<UncleanedFile>),
}

/// A picture that could not be cleaned: its name as the reporter's device gave it, and what may
/// remain in it.
#[derive(Debug, Clone)]
pub struct UncleanedFile {
    /// The file's name, as sent by the browser.
    pub name: String,
    /// What it may still tell.
    pub remains: Remains,
}

/// The form field by which the reporter accepts that pictures go with their metadata.
pub const CONSENT_FIELD: &str = "send_with_metadata";

impl FormPostError {
    pub fn status(&self) -> StatusCode {
        match self {
            FormPostError::Disabled => StatusCode::FORBIDDEN,
            FormPostError::Busy => StatusCode::TOO_MANY_REQUESTS,
            FormPostError::TooSlow => StatusCode::REQUEST_TIMEOUT,
            FormPostError::NotMultipart => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            FormPostError::Malformed(_) => StatusCode::BAD_REQUEST,
            FormPostError::UnknownField(_)
            | FormPostError::BadValue(_)
            | FormPostError::Missing(_)
            | FormPostError::TooMuchText => StatusCode::UNPROCESSABLE_ENTITY,
            FormPostError::Token(super::form_token::TokenError::Busy) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            FormPostError::Token(_) => StatusCode::CONFLICT,
            FormPostError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            FormPostError::Store(e) => super::error::store_refusal(e).0,
            FormPostError::Seal(_) => StatusCode::SERVICE_UNAVAILABLE,
            FormPostError::BadReceipt(_) => StatusCode::UNPROCESSABLE_ENTITY,
            FormPostError::NoConversation => StatusCode::NOT_FOUND,
            FormPostError::NotCleaned(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// For [`FormPostError::NotCleaned`]: each file and what may remain in it, in the page's
    /// words (`text` gives a key's sentence), for the `{files}` of its message.
    pub fn uncleaned_files<'a>(&self, text: impl Fn(&'static str) -> &'a str) -> Option<String> {
        let FormPostError::NotCleaned(files) = self else {
            return None;
        };
        let listed: Vec<String> = files
            .iter()
            .map(|f| format!("{} ({})", f.name, text(f.remains.message_key())))
            .collect();
        Some(listed.join("; "))
    }

    /// The language-file key of the sentence for the reporter.
    pub fn message_key(&self) -> &'static str {
        use super::form_token::TokenError;
        match self {
            FormPostError::Disabled => "page.nojs.disabled",
            FormPostError::Busy => "page.error.busy_nojs",
            FormPostError::TooSlow => "page.error.network",
            FormPostError::Missing(_) => "page.error.missing",
            FormPostError::TooLarge | FormPostError::Store(StoreError::TooLarge { .. }) => {
                "page.error.too_large_nojs"
            }
            FormPostError::Store(StoreError::QuotaExceeded | StoreError::DiskFull) => {
                "page.error.full"
            }
            FormPostError::Store(_) | FormPostError::Seal(_) => "page.error.busy",
            FormPostError::Token(TokenError::Expired) => "page.error.form_expired",
            FormPostError::Token(TokenError::Spent) => "page.error.form_spent",
            FormPostError::Token(TokenError::Busy) => "page.error.busy_nojs",
            FormPostError::Token(TokenError::Missing | TokenError::Invalid) => {
                "page.error.form_stale"
            }
            FormPostError::NotMultipart
            | FormPostError::Malformed(_)
            | FormPostError::UnknownField(_)
            | FormPostError::BadValue(_)
            | FormPostError::TooMuchText => "page.error.form_invalid",
            FormPostError::BadReceipt(e) => receipt_message_key(e),
            FormPostError::NoConversation => "page.check.no_conversation",
            FormPostError::NotCleaned(_) => "page.error.not_cleaned_nojs",
        }
    }

    /// Every message key, for the test that each has a sentence in every language.
    #[cfg(test)]
    pub fn all_message_keys() -> Vec<&'static str> {
        use super::form_token::TokenError;
        let io = || io::Error::other("x");
        [
            FormPostError::Disabled,
            FormPostError::Busy,
            FormPostError::TooSlow,
            FormPostError::NotMultipart,
            FormPostError::Malformed(String::new()),
            FormPostError::UnknownField(String::new()),
            FormPostError::BadValue(String::new()),
            FormPostError::Missing(Vec::new()),
            FormPostError::TooLarge,
            FormPostError::TooMuchText,
            FormPostError::Token(TokenError::Missing),
            FormPostError::Token(TokenError::Invalid),
            FormPostError::Token(TokenError::Expired),
            FormPostError::Token(TokenError::Spent),
            FormPostError::Token(TokenError::Busy),
            FormPostError::Store(StoreError::QuotaExceeded),
            FormPostError::Store(StoreError::DiskFull),
            FormPostError::Store(StoreError::TooLarge { limit: 1 }),
            FormPostError::Store(StoreError::Io(io())),
            FormPostError::Seal(io()),
            FormPostError::BadReceipt(ReceiptError::WordCount(1)),
            FormPostError::BadReceipt(ReceiptError::UnknownWord(1)),
            FormPostError::BadReceipt(ReceiptError::Checksum),
            FormPostError::BadReceipt(ReceiptError::TooLong),
            FormPostError::NoConversation,
            FormPostError::NotCleaned(Vec::new()),
        ]
        .iter()
        .map(FormPostError::message_key)
        .chain(
            [
                Remains::Capture,
                Remains::Audio,
                Remains::Document,
                Remains::Unknown,
            ]
            .map(Remains::message_key),
        )
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

/// The sentence for a receipt that cannot be read (its `{count}` and `{position}` filled in by
/// the page).
pub fn receipt_message_key(e: &ReceiptError) -> &'static str {
    match e {
        ReceiptError::WordCount(_) => "page.check.error.word_count",
        ReceiptError::UnknownWord(_) => "page.check.error.unknown_word",
        ReceiptError::Checksum => "page.check.error.checksum",
        ReceiptError::TooLong => "page.check.error.too_long",
    }
}

/// What a form post carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostKind {
    /// A report from the page's form. It starts a conversation whose receipt is made here, in
    /// memory, and shown once on the answer page.
    Report,
    /// A follow-up from the check-in page: text and files, with the receipt's words (field
    /// `receipt`), added to that receipt's conversation.
    FollowUp,
}

/// The field of a follow-up that holds the receipt's words.
pub const RECEIPT_FIELD: &str = "receipt";

/// What the handler needs to seal.
pub struct FormContext {
    /// A report or a follow-up (whose `form` is [`FormDefinition::follow_up`]).
    pub kind: PostKind,
    pub store: Arc<SubmissionStore>,
    /// Where the sealed report is kept (the embedded store or the object store).
    pub submissions: Arc<dyn crate::store::SubmissionBackend>,
    pub keyring: Arc<ReviewerKeyring>,
    /// The couriers, to seal the triage envelope on arrival too.
    pub couriers: Arc<CourierKeyring>,
    pub form: Arc<FormDefinition>,
    pub max_bytes: u64,
}

/// The outcome, with the typed values to show the form again on failure, and the language.
pub struct Posted {
    pub language: Option<String>,
    pub values: FormValues,
    pub result: Result<Sealed, FormPostError>,
}

/// A post sealed and stored.
pub struct Sealed {
    /// The stored record.
    pub record: SubmissionRecord,
    /// Whether the report said someone is at imminent risk.
    pub urgent: bool,
    /// The receipt of the conversation a report started (shown once, then dropped and wiped).
    pub receipt: Option<Receipt>,
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
                result: Err(FormPostError::NotMultipart),
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
    let mut paced = PacedBody::new(pace, slot);
    let stream_error = forward(&mut multipart, &tx, &mut paced).await.err();
    drop(tx);
    let mut posted = match sealing.await {
        Ok(posted) => posted,
        Err(_) => Posted {
            language: None,
            values: FormValues::new(),
            result: Err(FormPostError::Seal(io::Error::other(
                "the sealing task failed",
            ))),
        },
    };
    if let Some(e) = stream_error {
        posted.result = Err(e);
    }
    posted
}

/// An attachment arriving: its scratch file, the writer into it and the running hash; and, while
/// it may be a picture to clean, its bytes held in memory instead.
struct Receiving {
    writer: sequoia_openpgp::serialize::stream::Message<'static>,
    hash: digest::Context,
    scratch: Scratch,
    file: ReceivedFile,
    /// The bytes so far, while the file may be a JPEG, PNG or WebP within the bound.
    held: Option<Zeroizing<Vec<u8>>>,
    /// What the file is, once its first bytes are known.
    kind: Option<FileKind>,
}

impl Receiving {
    /// Writes bytes into the scratch file, counting and hashing what the report will hold.
    fn write(&mut self, bytes: &[u8]) -> Result<(), FormPostError> {
        self.writer.write_all(bytes).map_err(FormPostError::Seal)?;
        self.hash.update(bytes);
        self.file.size += bytes.len() as u64;
        Ok(())
    }

    /// Takes a chunk: held while the file may be a picture to clean, else written at once.
    fn take(&mut self, chunk: &[u8]) -> Result<(), FormPostError> {
        let Some(held) = self.held.as_mut() else {
            return self.write(chunk);
        };
        held.extend_from_slice(chunk);
        if self.kind.is_none() && held.len() >= metadata::SNIFF_BYTES {
            self.kind = Some(FileKind::sniff(&held[..metadata::SNIFF_BYTES]));
        }
        let keep_holding =
            self.kind.is_none_or(FileKind::cleanable) && held.len() <= metadata::MAX_CLEAN_BYTES;
        if !keep_holding {
            self.release()?;
        }
        Ok(())
    }

    /// Stops holding: what was held goes into the scratch file as it is.
    fn release(&mut self) -> Result<(), FormPostError> {
        if let Some(held) = self.held.take() {
            self.write(&held)?;
        }
        Ok(())
    }

    /// At the end of the file: cleans what is held, and says what the file became.
    fn settle(&mut self) -> Result<Settled, FormPostError> {
        let Some(held) = self.held.take() else {
            // Released: not a picture we clean, or one over the bound.
            return Ok(Settled::AsIs(self.kind.unwrap_or(FileKind::Unknown)));
        };
        let kind = FileKind::sniff(&held[..held.len().min(metadata::SNIFF_BYTES)]);
        match metadata::clean(&held) {
            Cleaning::Cleaned { bytes, .. } => {
                let bytes = Zeroizing::new(bytes);
                self.write(&bytes)?;
                Ok(Settled::Cleaned(kind))
            }
            _ => {
                self.write(&held)?;
                Ok(Settled::AsIs(kind))
            }
        }
    }
}

/// What an attachment became.
enum Settled {
    /// A picture cleaned of its metadata.
    Cleaned(FileKind),
    /// As it was sent, of this kind.
    AsIs(FileKind),
}

/// Forwards the multipart stream to the sealing thread as events; `End` only if it arrived whole.
/// A closed channel means the sealing thread has already failed; it reports why.
async fn forward(
    multipart: &mut Multipart,
    tx: &mpsc::Sender<Event>,
    paced: &mut PacedBody<'_>,
) -> Result<(), FormPostError> {
    let mut text_total = 0usize;
    let mut parts = 0usize;
    while let Some(mut field) = paced
        .wait(multipart.next_field())
        .await?
        .map_err(malformed)?
    {
        // Part headers count toward no byte total, but a trickle of them is still too slow.
        paced.check()?;
        parts += 1;
        if parts > MAX_PARTS {
            return Err(FormPostError::TooMuchText);
        }
        let name = field.name().unwrap_or_default().to_string();
        let event = match field.file_name().map(str::to_string) {
            None => {
                let text = read_text(&mut field, paced, &mut text_total).await?;
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
                while let Some(chunk) = paced.wait(field.chunk()).await?.map_err(malformed)? {
                    paced.received(chunk.len())?;
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

fn malformed(e: axum::extract::multipart::MultipartError) -> FormPostError {
    FormPostError::Malformed(e.body_text())
}

impl From<Stalled> for FormPostError {
    fn from(_: Stalled) -> Self {
        FormPostError::TooSlow
    }
}

/// Reads one text answer, within the bounds on one answer and on all of a post's text.
async fn read_text(
    field: &mut axum::extract::multipart::Field<'_>,
    paced: &mut PacedBody<'_>,
    text_total: &mut usize,
) -> Result<Zeroizing<String>, FormPostError> {
    // Collected as bytes: a chunk may end in the middle of a character.
    let mut bytes = Zeroizing::new(Vec::new());
    while let Some(chunk) = paced.wait(field.chunk()).await?.map_err(malformed)? {
        paced.received(chunk.len())?;
        *text_total += chunk.len();
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD || *text_total > MAX_TEXT_TOTAL {
            return Err(FormPostError::TooMuchText);
        }
        bytes.extend_from_slice(&chunk);
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| FormPostError::Malformed("text is not UTF-8".into()))?;
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
    let mut paced = PacedBody::new(pace, &slot);
    let mut text_total = 0usize;
    for _ in 0..MAX_PARTS {
        let Ok(Ok(Some(mut field))) = paced.wait(multipart.next_field()).await else {
            break;
        };
        if field.file_name().is_some() {
            break;
        }
        let name = field.name().unwrap_or_default().to_string();
        let Ok(text) = read_text(&mut field, &mut paced, &mut text_total).await else {
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

/// Receives the events of one post on the blocking side, then seals and stores it.
fn seal_events(mut rx: mpsc::Receiver<Event>, ctx: &FormContext, languages: &[String]) -> Posted {
    let mut sealer = FormSealer::new(ctx, languages);
    let mut failure: Option<FormPostError> = None;
    while let Some(event) = rx.blocking_recv() {
        if failure.is_some() {
            continue; // keep draining so the connection side can finish
        }
        let step = match event {
            Event::Text(name, value) => sealer.text(name, value),
            Event::FileStart { media_type, name } => sealer.file_start(media_type, name),
            Event::FileChunk(chunk) => sealer.file_chunk(&chunk),
            Event::FileEnd => sealer.file_end(),
            Event::End => {
                sealer.end();
                Ok(())
            }
        };
        failure = step.err();
    }
    sealer.finish(failure)
}

/// The blocking side of a form post: answers checked as they arrive and kept (wiped on drop),
/// attachments streamed into encrypted scratch files, then the report sealed and stored.
struct FormSealer<'a> {
    ctx: &'a FormContext,
    languages: &'a [String],
    answers: BTreeMap<String, Vec<Zeroizing<String>>>,
    language: Option<String>,
    /// A follow-up's receipt.
    receipt: Option<Receipt>,
    /// The attachments received, and the scratch file holding each.
    files: Vec<ReceivedFile>,
    scratches: Vec<Scratch>,
    receiving: Option<Receiving>,
    plaintext_bytes: u64,
    complete: bool,
    /// The reporter ticked "send anyway" for pictures that cannot be cleaned.
    consent: bool,
    /// Pictures that could not be cleaned.
    uncleaned: Vec<UncleanedFile>,
}

impl<'a> FormSealer<'a> {
    fn new(ctx: &'a FormContext, languages: &'a [String]) -> Self {
        FormSealer {
            ctx,
            languages,
            answers: BTreeMap::new(),
            language: None,
            receipt: None,
            files: Vec::new(),
            scratches: Vec::new(),
            receiving: None,
            plaintext_bytes: 0,
            complete: false,
            consent: false,
            uncleaned: Vec::new(),
        }
    }

    /// A text answer: the page's language, or a field of the form within its bounds.
    fn text(&mut self, name: String, value: Zeroizing<String>) -> Result<(), FormPostError> {
        if name == "language" {
            if self.languages.iter().any(|l| l == value.as_str()) {
                self.language = Some(value.to_string());
            }
            return Ok(());
        }
        if name == CONSENT_FIELD {
            self.consent = value.as_str() == "yes";
            return Ok(());
        }
        if self.ctx.kind == PostKind::FollowUp && name == RECEIPT_FIELD {
            if self.receipt.is_some() {
                return Err(FormPostError::TooMuchText);
            }
            self.receipt = Some(Receipt::parse(&value).map_err(FormPostError::BadReceipt)?);
            return Ok(());
        }
        let field = self
            .ctx
            .form
            .field(&name)
            .filter(|f| f.kind != FieldKind::Attachments)
            .ok_or_else(|| FormPostError::UnknownField(name.chars().take(64).collect()))?;
        if value.chars().count() > field.max_chars() {
            return Err(FormPostError::BadValue(name));
        }
        // A choice may come once per option, any other answer once.
        let repeats = match field.kind {
            FieldKind::Multi => field.options.len(),
            _ => 1,
        };
        let given = self.answers.entry(name).or_default();
        if given.len() >= repeats {
            return Err(FormPostError::TooMuchText);
        }
        given.push(value);
        Ok(())
    }

    fn file_start(&mut self, media_type: String, name: String) -> Result<(), FormPostError> {
        if self.files.len() >= payload::MAX_ATTACHMENTS {
            return Err(FormPostError::TooLarge);
        }
        let scratch =
            Scratch::create(self.ctx.store.incoming_dir()).map_err(FormPostError::Seal)?;
        let writer = scratch.writer().map_err(FormPostError::Seal)?;
        self.receiving = Some(Receiving {
            writer,
            hash: digest::Context::new(&digest::SHA256),
            scratch,
            file: ReceivedFile {
                name,
                size: 0,
                sha256: String::new(),
                media_type,
            },
            held: Some(Zeroizing::new(Vec::new())),
            kind: None,
        });
        Ok(())
    }

    fn file_chunk(&mut self, chunk: &[u8]) -> Result<(), FormPostError> {
        let Some(receiving) = self.receiving.as_mut() else {
            return Err(FormPostError::Malformed("file data outside a file".into()));
        };
        self.plaintext_bytes += chunk.len() as u64;
        if self.plaintext_bytes > self.ctx.max_bytes {
            return Err(FormPostError::TooLarge);
        }
        receiving.take(chunk)
    }

    fn file_end(&mut self) -> Result<(), FormPostError> {
        let Some(mut receiving) = self.receiving.take() else {
            return Ok(());
        };
        let settled = receiving.settle()?;
        receiving
            .writer
            .finalize()
            .map_err(|e| FormPostError::Seal(io::Error::other(e)))?;
        let mut file = receiving.file;
        // A file input left empty is sent as a nameless, empty part.
        if file.name.is_empty() && file.size == 0 {
            return Ok(());
        }
        file.sha256 = hex::encode(receiving.hash.finish());
        match settled {
            // A phone names a photo by the moment it was taken: a cleaned one goes under a
            // neutral name, as from the page.
            Settled::Cleaned(kind) => {
                file.name = format!("imagen-{}.{}", self.files.len() + 1, kind.extension());
                file.media_type = kind.media_type().into();
            }
            Settled::AsIs(kind) if kind.is_picture() => self.uncleaned.push(UncleanedFile {
                name: file.name.clone(),
                remains: kind.remains(),
            }),
            Settled::AsIs(_) => {}
        }
        self.files.push(file);
        self.scratches.push(receiving.scratch);
        Ok(())
    }

    /// The post arrived whole: without this, nothing is stored.
    fn end(&mut self) {
        self.complete = true;
    }

    /// Seals and stores the report, unless something failed or the post did not arrive whole.
    fn finish(self, failure: Option<FormPostError>) -> Posted {
        let result = match failure {
            Some(e) => Err(e),
            None if !self.complete => Err(FormPostError::Malformed("the post ended early".into())),
            None if !self.uncleaned.is_empty() && !self.consent => {
                Err(FormPostError::NotCleaned(self.uncleaned.clone()))
            }
            None => self.seal(),
        };
        // The answers go back to the page only if the post was refused.
        let values: FormValues = match &result {
            Ok(_) => FormValues::new(),
            Err(_) => self
                .answers
                .iter()
                .map(|(k, vs)| (k.clone(), vs.iter().map(|v| v.to_string()).collect()))
                .collect(),
        };
        Posted {
            language: self.language,
            values,
            result,
        }
    }

    fn seal(&self) -> Result<Sealed, FormPostError> {
        let mut report = self
            .ctx
            .form
            .build_report(
                self.language.as_deref(),
                "gateway",
                &self.answers,
                &self.files,
            )
            .map_err(|e| match e {
                AnswerError::NotAllowed(field) => FormPostError::BadValue(field),
                AnswerError::Missing(fields) => FormPostError::Missing(fields),
            })?;
        let conversation = match self.conversation(&report) {
            Ok(conversation) => conversation,
            Err(e) => {
                wipe(&mut report);
                return Err(e);
            }
        };
        report.conversation = Some(conversation.reference.clone());
        let sealed = match payload::read::validate(&report, u64::MAX) {
            Ok(()) => seal_and_store(self.ctx, &report, &self.scratches, &conversation),
            Err(e) => Err(FormPostError::BadValue(e.to_string())),
        };
        wipe(&mut report);
        Ok(Sealed {
            record: sealed?,
            urgent: report.urgent,
            receipt: conversation.receipt,
        })
    }

    /// The conversation the post belongs to: a new one for a report; for a follow-up, its
    /// receipt's, which must exist (else nothing is stored).
    fn conversation(&self, report: &Report) -> Result<PostConversation, FormPostError> {
        match self.ctx.kind {
            PostKind::Report => {
                let started = start_conversation(&self.ctx.keyring)
                    .map_err(|e| FormPostError::Seal(io::Error::other(e.to_string())))?;
                Ok(PostConversation {
                    reference: started.reference,
                    start: Some(started.start),
                    receipt: Some(started.receipt),
                })
            }
            PostKind::FollowUp => {
                let receipt = self
                    .receipt
                    .as_ref()
                    .ok_or(FormPostError::BadReceipt(ReceiptError::WordCount(0)))?;
                if report.description.is_empty() && report.attachments.is_empty() {
                    return Err(FormPostError::Missing(vec!["description".into()]));
                }
                let locator = receipt.locator();
                if self.ctx.store.conversation(&locator)?.is_none() {
                    return Err(FormPostError::NoConversation);
                }
                Ok(PostConversation {
                    reference: ConversationRef {
                        locator,
                        reply_key: None,
                        token: Some(receipt.follow_up_token()),
                    },
                    start: None,
                    receipt: None,
                })
            }
        }
    }
}

/// A post's conversation: what goes inside the report, what starts beside it, the new receipt.
struct PostConversation {
    reference: ConversationRef,
    start: Option<NewConversation>,
    receipt: Option<Receipt>,
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

fn seal_and_store(
    ctx: &FormContext,
    report: &Report,
    scratches: &[Scratch],
    conversation: &PostConversation,
) -> Result<SubmissionRecord, FormPostError> {
    let mut incoming = ctx.submissions.begin(None)?;
    let written = (|| -> io::Result<()> {
        let mut sources: Vec<payload::AttachmentSource<'_>> = Vec::new();
        for scratch in scratches {
            sources.push(Box::new(scratch.reader()?));
        }
        let mut sealer = seal::sealer(&ctx.keyring, &mut incoming)?;
        payload::write_payload(&mut sealer, report, sources)?;
        sealer.finalize().map_err(io::Error::other)
    })();
    if let Err(e) = written {
        return Err(match incoming.take_fault() {
            Some(fault) => FormPostError::Store(fault),
            None => FormPostError::Seal(e),
        });
    }
    let note = Triage::of_report(report, UtcDay::today());
    let triage = triage::seal(&note, &ctx.couriers).map_err(FormPostError::Seal)?;
    let start = conversation
        .start
        .as_ref()
        .map(|s| (&s.locator, s.sealed_box.as_slice()));
    let record =
        ctx.submissions
            .commit_with(incoming, Sealing::OnArrival, triage.as_deref(), start)?;
    if start.is_none() {
        // A follow-up: expiry counts from the conversation's last message. Stored already, so
        // a failure here only shortens its life.
        let _ = ctx
            .store
            .touch_conversation(&conversation.reference.locator);
    }
    Ok(record)
}
