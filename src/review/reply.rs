//! `resguardo-review reply` (offline) and `push` (on a networked machine): answering a reporter
//! through their conversation (`docs/replies-v1.md`).
//!
//! `reply` reads the reporter's reply key from an opened report, signs the answer with the
//! reviewer's signing subkey, encrypts it to the reply key and to every reviewer key (the team
//! keeps the thread), appends it to the outbox with a detached signature the gateway can check,
//! and keeps a readable copy in the report's `conversation/` folder.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sequoia_openpgp as openpgp;

use openpgp::crypto::KeyPair;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::parse::Parse;
use openpgp::serialize::SerializeInto;
use openpgp::types::SignatureType;
use openpgp::{Cert, Packet};

use super::courier::Courier;
use super::opened;
use crate::payload::MAX_REPLY_KEY_CHARS;
use crate::replies::message::{MAX_REPLY_ATTACHMENTS, MAX_REPLY_ATTACHMENT_BYTES, REPLY_SCHEMA};
use crate::replies::outbox::{self, push_signed_text, Outbox, OutboxReply};
use crate::replies::protocol::PushAnswer;
use crate::replies::{seal_reply, Locator, ReplyAttachment, ReplyPlaintext};
use crate::submission::UtcDay;
use crate::submit::SubmitError;

/// The folder of a report that keeps its conversation, in order.
pub const CONVERSATION_DIR: &str = "conversation";

/// Why a reply was not written.
#[derive(Debug, thiserror::Error)]
pub enum ReplyCommandError {
    /// The report folder cannot be answered (no report, or no reply key in it).
    #[error("{0}")]
    Report(String),
    /// The message or an attachment cannot be used.
    #[error("{path}: {reason}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing or signing failed.
    #[error("{0}")]
    Write(String),
}

/// What `reply` writes.
pub struct ReplyRequest<'a> {
    /// The opened report's folder (`--out/<id>`).
    pub report: &'a Path,
    /// The answer's text file.
    pub message: &'a Path,
    /// Files to attach.
    pub attachments: &'a [PathBuf],
    /// BCP 47 tag of the answer's language.
    pub language: &'a str,
    /// The reviewer's signing subkey.
    pub signer: KeyPair,
    /// The reviewer's own certificate and the other reviewers' (each gets a copy).
    pub team: &'a [Cert],
    /// The outbox file (made if missing, appended to).
    pub outbox: &'a Path,
}

/// What `reply` wrote.
pub struct ReplyWritten {
    /// The conversation answered.
    pub conversation: Locator,
    /// Replies now in the outbox.
    pub in_outbox: usize,
    /// The readable copy in the report's `conversation/` folder.
    pub copy: PathBuf,
}

/// Writes one reply (see the module).
pub fn reply(request: ReplyRequest<'_>) -> Result<ReplyWritten, ReplyCommandError> {
    let report = match opened::read_folder(request.report).report {
        Some(Ok(report)) => report,
        Some(Err(e)) => {
            return Err(ReplyCommandError::Report(format!(
                "{}: not an opened report ({e})",
                request.report.display()
            )))
        }
        None => {
            return Err(ReplyCommandError::Report(format!(
                "{}: not an opened report",
                request.report.display()
            )))
        }
    };
    let Some(conversation) = report.conversation else {
        return Err(ReplyCommandError::Report(format!(
            "{}: the reporter asked for no answers (the report has no conversation)",
            request.report.display()
        )));
    };
    let Some(armored) = conversation
        .reply_key
        .filter(|k| k.len() <= MAX_REPLY_KEY_CHARS)
    else {
        return Err(ReplyCommandError::Report(format!(
            "{}: a follow-up; answer the report that started its conversation",
            request.report.display()
        )));
    };
    // The gateway knows every locator: a second report claiming to start this conversation may
    // carry its own reply key. Answer neither until the team has decided.
    if let Some(out) = request.report.parent() {
        let contested = super::thread::threads(out)
            .ok()
            .and_then(|mut t| t.remove(&conversation.locator))
            .is_some_and(|t| t.firsts.len() > 1);
        if contested {
            return Err(ReplyCommandError::Report(format!(
                "conversation {} is contested: another report in {} claims to start it (see \
                 conversation.txt); answer only once the team knows which is genuine",
                &conversation.locator.to_string()[..16],
                out.display()
            )));
        }
    }
    let reply_key = Cert::from_bytes(armored.as_bytes())
        .map_err(|e| ReplyCommandError::Report(format!("the reporter's reply key: {e}")))?
        .strip_secret_key_material();
    let text = read_bounded(request.message, 256 * 1024)?;
    let text = String::from_utf8(text).map_err(|_| ReplyCommandError::Input {
        path: request.message.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })?;
    if request.attachments.len() > MAX_REPLY_ATTACHMENTS {
        return Err(ReplyCommandError::Input {
            path: request.attachments[MAX_REPLY_ATTACHMENTS].clone(),
            reason: format!("at most {MAX_REPLY_ATTACHMENTS} attachments"),
        });
    }
    let mut attachments = Vec::new();
    for path in request.attachments {
        let data = read_bounded(path, MAX_REPLY_ATTACHMENT_BYTES as u64)?;
        attachments.push(ReplyAttachment {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().chars().take(255).collect())
                .unwrap_or_else(|| "file".into()),
            media_type: "application/octet-stream".into(),
            data: base64::engine::general_purpose::STANDARD.encode(data),
        });
    }
    let plain = ReplyPlaintext {
        schema: REPLY_SCHEMA.into(),
        conversation: conversation.locator,
        sequence: replies_kept(request.report) + 1,
        day: UtcDay::today(),
        language: request.language.into(),
        message: text,
        attachments,
    };
    let mut recipients = vec![reply_key];
    recipients.extend(request.team.iter().cloned());
    let mut signer = request.signer;
    let sealed =
        seal_reply(&plain, signer.clone(), &recipients).map_err(|e| ReplyCommandError::Input {
            path: request.message.to_path_buf(),
            reason: e.to_string(),
        })?;
    let signature = SignatureBuilder::new(SignatureType::Binary)
        .sign_message(
            &mut signer,
            push_signed_text(&conversation.locator, &sealed),
        )
        .and_then(|sig| Packet::from(sig).to_vec())
        .map_err(|e| ReplyCommandError::Write(format!("signing: {e}")))?;
    // The outbox first: a reply kept as "sent" but missing from the outbox would leave a gap
    // in the numbering the reporter sees; the copy is what numbers the next reply.
    let b64 = base64::engine::general_purpose::STANDARD;
    let in_outbox = outbox::append(
        request.outbox,
        OutboxReply {
            conversation: conversation.locator,
            message: b64.encode(&sealed),
            signature: b64.encode(&signature),
        },
    )
    .map_err(|e| ReplyCommandError::Write(e.to_string()))?;
    let copy = keep_copy(request.report, &plain).map_err(|e| {
        ReplyCommandError::Write(format!(
            "the answer is in the outbox as answer {} (do not write it again), but its copy for \
             the team was not kept: {e}",
            plain.sequence
        ))
    })?;
    if let Some(out) = request.report.parent() {
        let _ = super::thread::rebuild(out);
    }
    Ok(ReplyWritten {
        conversation: conversation.locator,
        in_outbox,
        copy,
    })
}

fn read_bounded(path: &Path, bound: u64) -> Result<Vec<u8>, ReplyCommandError> {
    let error = |reason: String| ReplyCommandError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(path).map_err(|e| error(e.to_string()))?;
    if !meta.is_file() || meta.len() > bound {
        return Err(error(format!(
            "not a regular file of at most {} KiB",
            bound / 1024
        )));
    }
    fs::read(path).map_err(|e| error(e.to_string()))
}

/// The last sequence number used: the highest `NNN` of the answers kept in the report's
/// `conversation/` folder (not their count: a copy removed by hand must not number two answers
/// alike).
fn replies_kept(report: &Path) -> u32 {
    fs::read_dir(report.join(CONVERSATION_DIR))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(REPLY_COPY_SUFFIX)?
                        .parse::<u32>()
                        .ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// How a kept answer's file name ends.
pub const REPLY_COPY_SUFFIX: &str = "-reply.txt";

/// `conversation/NNN-reply.txt` in the report folder (NNN its sequence number): the answer as
/// sent, for the team.
fn keep_copy(report: &Path, plain: &ReplyPlaintext) -> Result<PathBuf, ReplyCommandError> {
    let dir = report.join(CONVERSATION_DIR);
    fs::create_dir_all(&dir)
        .map_err(|e| ReplyCommandError::Write(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("{:03}{REPLY_COPY_SUFFIX}", plain.sequence));
    let mut text = format!(
        "Answer {} sent on {} (conversation {})\n\n{}\n",
        plain.sequence,
        plain.day,
        &plain.conversation.to_string()[..16],
        plain.message
    );
    for a in &plain.attachments {
        text.push_str(&format!("\nAttachment: {}", a.name));
    }
    crate::bundle::receipt::write_atomically(&path, text.as_bytes())
        .map_err(|e| ReplyCommandError::Write(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// What pushing one reply did.
pub struct Pushed {
    /// Its conversation.
    pub conversation: Locator,
    /// The gateway's answer, or why it failed.
    pub outcome: Result<PushAnswer, SubmitError>,
}

impl Courier {
    /// Pushes every reply of `outbox` (one request each; a failure does not stop the others).
    pub fn push(&mut self, outbox: &Outbox) -> Vec<Pushed> {
        outbox
            .replies
            .iter()
            .map(|reply| {
                let body = serde_json::to_vec(reply).unwrap_or_default();
                let outcome = self.signed(|client, sign| {
                    client.courier_post("api/v1/courier/replies", &body, sign, 4096)
                });
                Pushed {
                    conversation: reply.conversation,
                    outcome,
                }
            })
            .collect()
    }
}
