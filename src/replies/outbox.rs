//! The outbox (`resguardo.outbox/1`, `docs/replies-v1.md`): the replies written on the offline
//! machine, each with a detached signature the gateway can check without reading the reply.

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::receipt::Locator;

/// The format string.
pub const OUTBOX_FORMAT: &str = "resguardo.outbox/1";
/// Most replies in one outbox.
pub const MAX_OUTBOX_REPLIES: usize = 100;
/// Largest outbox file read.
pub const MAX_OUTBOX_BYTES: u64 = 64 * 1024 * 1024;

/// An outbox file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outbox {
    /// Always [`OUTBOX_FORMAT`].
    pub format: String,
    /// In the order they were written.
    pub replies: Vec<OutboxReply>,
}

/// One reply to push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxReply {
    /// The conversation it answers.
    pub conversation: Locator,
    /// Base64 of the sealed reply (binary OpenPGP).
    pub message: String,
    /// Base64 of the detached signature over [`push_signed_text`].
    pub signature: String,
}

impl OutboxReply {
    /// The sealed reply's bytes.
    pub fn message_bytes(&self) -> Result<Vec<u8>, OutboxError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.message)
            .map_err(|_| OutboxError::Malformed("a reply's message is not base64".into()))?;
        if bytes.is_empty() || bytes.len() > super::message::MAX_SEALED_REPLY_BYTES {
            return Err(OutboxError::Malformed(
                "a reply's message is empty or larger than 12 MiB".into(),
            ));
        }
        Ok(bytes)
    }

    /// The detached signature's bytes.
    pub fn signature_bytes(&self) -> Result<Vec<u8>, OutboxError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|_| OutboxError::Malformed("a reply's signature is not base64".into()))
    }
}

/// The text a reviewer's signing subkey signs for the gateway: the conversation and the sealed
/// reply's SHA-256. A signature for one conversation never passes for another.
pub fn push_signed_text(conversation: &Locator, message: &[u8]) -> Vec<u8> {
    let hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, message));
    format!("resguardo-reply/1\n{conversation}\n{hash}\n").into_bytes()
}

/// Why an outbox cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not an outbox of this format.
    #[error("not an outbox: {0}")]
    Malformed(String),
}

/// Reads and checks an outbox (at most 64 MiB and 100 replies, every reply well-formed).
pub fn read(path: &Path) -> Result<Outbox, OutboxError> {
    let io = |source| OutboxError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_OUTBOX_BYTES {
        return Err(OutboxError::Malformed("larger than 64 MiB".into()));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    parse(&bytes)
}

/// Checks an outbox in memory.
pub fn parse(bytes: &[u8]) -> Result<Outbox, OutboxError> {
    let outbox: Outbox = serde_json::from_slice(bytes)
        .map_err(|e| OutboxError::Malformed(crate::terminal::clean_line(&e.to_string())))?;
    if outbox.format != OUTBOX_FORMAT {
        return Err(OutboxError::Malformed(format!(
            "unknown format {:?} (this tool reads {OUTBOX_FORMAT})",
            crate::terminal::clean_line(&outbox.format.chars().take(60).collect::<String>())
        )));
    }
    if outbox.replies.len() > MAX_OUTBOX_REPLIES {
        return Err(OutboxError::Malformed("more than 100 replies".into()));
    }
    for reply in &outbox.replies {
        reply.message_bytes()?;
        reply.signature_bytes()?;
    }
    Ok(outbox)
}

/// Appends `reply` to the outbox at `path` (made if missing), atomically.
pub fn append(path: &Path, reply: OutboxReply) -> Result<usize, OutboxError> {
    let mut outbox = if path.exists() {
        read(path)?
    } else {
        Outbox {
            format: OUTBOX_FORMAT.into(),
            replies: Vec::new(),
        }
    };
    if outbox.replies.len() >= MAX_OUTBOX_REPLIES {
        return Err(OutboxError::Malformed(
            "the outbox is full (100 replies): push it, then start a new one".into(),
        ));
    }
    outbox.replies.push(reply);
    let bytes =
        serde_json::to_vec_pretty(&outbox).map_err(|e| OutboxError::Malformed(e.to_string()))?;
    // An outbox over the bound could be written but never read back (nor pushed).
    if bytes.len() as u64 > MAX_OUTBOX_BYTES {
        return Err(OutboxError::Malformed(
            "the outbox would grow past 64 MiB: push it, then start a new one".into(),
        ));
    }
    crate::bundle::receipt::write_atomically(path, &bytes).map_err(|source| OutboxError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(outbox.replies.len())
}
