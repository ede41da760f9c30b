//! The shapes of the conversation routes (`docs/replies-v1.md`), shared by the gateway and its
//! clients.

use serde::{Deserialize, Serialize};

use super::Locator;
use crate::submission::UtcDay;

/// The body of `POST /api/v1/conversations/check`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The conversation's locator, derived from the receipt.
    pub locator: Locator,
}

/// `POST /api/v1/conversations/check` answer: the same shape and size class whether or not the
/// locator has a conversation.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckAnswer {
    /// Base64 of the locked box (or of the decoy).
    #[serde(rename = "box")]
    pub sealed_box: String,
    /// The replies, in order.
    pub replies: Vec<CheckedReply>,
    /// Padding to the answer's size class.
    pub pad: String,
}

/// One reply in a check-in answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckedReply {
    /// Its number in the conversation.
    pub n: u32,
    /// The day it arrived.
    pub day: UtcDay,
    /// Base64 of the sealed reply.
    pub message: String,
}

/// `POST /api/v1/courier/replies` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct PushAnswer {
    /// The reply's number in its conversation.
    pub n: u32,
    /// True when the same reply was stored before (nothing changed).
    pub already_stored: bool,
}

/// Largest check-in answer a client reads: a conversation keeps at most
/// [`crate::store::MAX_CONVERSATION_BYTES`] (32 MiB) of replies, 43 MiB in base64, padded to the
/// next power of two.
pub const MAX_CHECK_ANSWER: u64 = 64 * 1024 * 1024;
