//! Anonymous replies (`docs/replies-v1.md`): the reporter's receipt and what is derived from it,
//! the locked reply key, the reply format reviewers write and reporters read, and the outbox that
//! carries replies from the offline machine to the gateway.
//!
//! The gateway stores only what no one without the receipt or a reviewer key can read: the
//! conversation's locator, its locked box and sealed replies.

pub mod lockbox;
pub mod message;
pub mod outbox;
pub mod protocol;
pub mod receipt;

pub use lockbox::{BoxContents, BoxError, BOX_BYTES};
pub use message::{
    generate_reply_key, read_reply, seal_reply, ReadReply, ReplyAttachment, ReplyError,
    ReplyPlaintext,
};
pub use outbox::{Outbox, OutboxError, OutboxReply};
pub use receipt::{Locator, Receipt, ReceiptError};

use base64::Engine as _;

/// The header that starts a conversation with a submission: base64 of locator || locked box.
pub const START_HEADER: &str = "resguardo-conversation";
/// The header a follow-up carries: the conversation's locator (hex), whose last day moves.
pub const TOUCH_HEADER: &str = "resguardo-conversation-touch";

/// A conversation to start, as a submission carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConversation {
    /// Its locator.
    pub locator: Locator,
    /// Its locked box ([`BOX_BYTES`]).
    pub sealed_box: Vec<u8>,
}

/// Why a conversation header is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConversationHeaderError {
    /// Not base64 of exactly 32 + [`BOX_BYTES`] bytes, or not a 64-hex locator.
    #[error("the conversation header is not a locator and a locked reply key of the right size")]
    Malformed,
}

impl NewConversation {
    /// The header's value.
    pub fn header_value(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode([self.locator.0.as_slice(), &self.sealed_box].concat())
    }

    /// Reads a [`START_HEADER`] value.
    pub fn from_header(value: &[u8]) -> Result<Self, ConversationHeaderError> {
        // Base64 of 32 + BOX_BYTES bytes, padded.
        if value.len() != (32 + BOX_BYTES).div_ceil(3) * 4 {
            return Err(ConversationHeaderError::Malformed);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| ConversationHeaderError::Malformed)?;
        if bytes.len() != 32 + BOX_BYTES {
            return Err(ConversationHeaderError::Malformed);
        }
        let (locator, sealed_box) = bytes.split_at(32);
        let mut id = [0u8; 32];
        id.copy_from_slice(locator);
        Ok(NewConversation {
            locator: Locator(id),
            sealed_box: sealed_box.to_vec(),
        })
    }
}

/// Reads a [`TOUCH_HEADER`] value.
pub fn touched_locator(value: &[u8]) -> Result<Locator, ConversationHeaderError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ConversationHeaderError::Malformed)
}
