//! Conversations (`docs/replies-v1.md`): per locator, the locked reply key and the sealed
//! replies, in two trees of the index. A conversation record keeps no submission id: the store
//! cannot say which report started which conversation.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{StoreError, SubmissionStore};
use crate::replies::Locator;
use crate::submission::UtcDay;

/// Most replies one conversation keeps.
pub const MAX_REPLIES: u32 = 200;
/// Most bytes of sealed replies one conversation keeps: a check-in answer (base64, padded to a
/// power of two) stays within 64 MiB, well below what a client reads
/// ([`crate::replies::protocol::MAX_CHECK_ANSWER`]), and within reach of a phone.
pub const MAX_CONVERSATION_BYTES: u64 = 32 * 1024 * 1024;

/// The index entry of one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationRecord {
    /// Base64 of the locked reply key ([`crate::replies::BOX_BYTES`] bytes).
    #[serde(rename = "box")]
    pub sealed_box: String,
    /// The day of its last message (a reply, or a follow-up's touch): expiry counts from here.
    pub last: UtcDay,
    /// Its replies, in arrival order.
    pub replies: Vec<ReplyEntry>,
}

/// One stored reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyEntry {
    /// 1, 2, … in arrival order.
    pub n: u32,
    /// The day it arrived.
    pub day: UtcDay,
    /// Lowercase hex SHA-256 of the sealed reply (a reply pushed twice is stored once).
    pub sha256: String,
    /// Its length (0 in records from before it was kept: they count for nothing).
    #[serde(default)]
    pub bytes: u64,
}

/// A stored reply, with its bytes.
#[derive(Debug, Clone)]
pub struct StoredReply {
    /// Its entry.
    pub entry: ReplyEntry,
    /// The sealed reply.
    pub message: Vec<u8>,
}

/// What adding a reply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyAdded {
    /// Stored now, with this number.
    Stored(u32),
    /// The same reply was stored before, with this number.
    AlreadyStored(u32),
}

fn reply_key(locator: &Locator, n: u32) -> Vec<u8> {
    [locator.0.as_slice(), &n.to_be_bytes()].concat()
}

impl ConversationRecord {
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        // No locator in the message: it reaches the operator's log, and a locator there would
        // say when its reporter checked in.
        serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Integrity(vec![format!("a conversation record: {e}")]))
    }

    /// The locked box's bytes.
    pub fn box_bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.sealed_box)
            .unwrap_or_default()
    }
}

impl SubmissionStore {
    /// Runs `commit` (a submission being made durable, by any backend) with the conversation it
    /// begins, if any, started first in this index: both stand or neither does (the conversation
    /// is taken back when the commit fails). `commit` must sync the index before it succeeds.
    pub(super) fn with_conversation<T>(
        &self,
        conversation: Option<(&Locator, &[u8])>,
        commit: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some((locator, sealed_box)) = conversation {
            self.insert_conversation(locator, sealed_box)?;
        }
        let committed = commit();
        if committed.is_err() {
            if let Some((locator, _)) = conversation {
                self.remove_conversation(locator);
            }
        }
        committed
    }

    /// Starts a conversation (durably with the next sync of the index). Refused if the locator
    /// is taken.
    fn insert_conversation(&self, locator: &Locator, sealed_box: &[u8]) -> Result<(), StoreError> {
        let today = UtcDay::today();
        let record = ConversationRecord {
            sealed_box: base64::engine::general_purpose::STANDARD.encode(sealed_box),
            last: today,
            replies: Vec::new(),
        };
        let swapped = self
            .index()
            .conversations
            .compare_and_swap(locator.0, None::<&[u8]>, Some(record.encode()))
            .map_err(StoreError::from_sled)?;
        swapped.map_err(|_| StoreError::ConversationExists)
    }

    /// Takes back a conversation whose submission was not acknowledged.
    fn remove_conversation(&self, locator: &Locator) {
        let _ = self.index().conversations.remove(locator.0);
    }

    /// The conversation at `locator`, if there is one.
    pub fn conversation(
        &self,
        locator: &Locator,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        match self
            .index()
            .conversations
            .get(locator.0)
            .map_err(StoreError::from_sled)?
        {
            None => Ok(None),
            Some(bytes) => ConversationRecord::decode(&bytes).map(Some),
        }
    }

    /// The conversation's replies with their bytes, in order.
    pub fn replies(&self, locator: &Locator) -> Result<Vec<StoredReply>, StoreError> {
        Ok(self
            .conversation_with_replies(locator)?
            .map(|(_, replies)| replies)
            .unwrap_or_default())
    }

    /// The conversation at `locator` and its replies, read once (a check-in).
    pub fn conversation_with_replies(
        &self,
        locator: &Locator,
    ) -> Result<Option<(ConversationRecord, Vec<StoredReply>)>, StoreError> {
        let Some(record) = self.conversation(locator)? else {
            return Ok(None);
        };
        let index = self.index();
        let mut out = Vec::with_capacity(record.replies.len());
        for entry in record.replies.iter().cloned() {
            let message = index
                .replies
                .get(reply_key(locator, entry.n))
                .map_err(StoreError::from_sled)?
                .ok_or_else(|| {
                    StoreError::Integrity(vec![format!(
                        "conversation {locator}: reply {} is missing",
                        entry.n
                    )])
                })?
                .to_vec();
            out.push(StoredReply { entry, message });
        }
        Ok(Some((record, out)))
    }

    /// Adds a sealed reply to an existing conversation, durably; its last day becomes today.
    pub fn add_reply(&self, locator: &Locator, message: &[u8]) -> Result<ReplyAdded, StoreError> {
        let _admin = self.lock_admin();
        let mut record = self
            .conversation(locator)?
            .ok_or(StoreError::ConversationNotFound)?;
        let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, message));
        if let Some(known) = record.replies.iter().find(|r| r.sha256 == sha256) {
            return Ok(ReplyAdded::AlreadyStored(known.n));
        }
        let n = record.replies.last().map_or(1, |r| r.n + 1);
        let held: u64 = record.replies.iter().map(|r| r.bytes).sum();
        let bytes = message.len() as u64;
        if n > MAX_REPLIES || held + bytes > MAX_CONVERSATION_BYTES {
            return Err(StoreError::ConversationFull);
        }
        let today = UtcDay::today();
        record.replies.push(ReplyEntry {
            n,
            day: today,
            sha256,
            bytes,
        });
        record.last = today;
        self.touch();
        {
            let index = self.index();
            index
                .replies
                .insert(reply_key(locator, n), message)
                .map_err(StoreError::from_sled)?;
            index
                .conversations
                .insert(locator.0, record.encode())
                .map_err(StoreError::from_sled)?;
            index.commit.sync().map_err(StoreError::from_io)?;
        }
        self.touch();
        Ok(ReplyAdded::Stored(n))
    }

    /// Moves the conversation's last day to today (a follow-up arrived); nothing if there is no
    /// such conversation.
    pub fn touch_conversation(&self, locator: &Locator) -> Result<(), StoreError> {
        let _admin = self.lock_admin();
        let Some(mut record) = self.conversation(locator)? else {
            return Ok(());
        };
        let today = UtcDay::today();
        if record.last == today {
            return Ok(());
        }
        record.last = today;
        self.touch();
        let index = self.index();
        index
            .conversations
            .insert(locator.0, record.encode())
            .map_err(StoreError::from_sled)?;
        index.commit.sync().map_err(StoreError::from_io)
    }

    /// Deletes conversations whose last day is more than `days` days before `today`, with their
    /// replies; then the index is rewritten, so nothing of them stays on disk. Returns how many.
    pub fn expire_conversations(&self, today: UtcDay, days: u32) -> Result<usize, StoreError> {
        let doomed: Vec<(Locator, ConversationRecord)> = {
            let _admin = self.lock_admin();
            let cutoff = today.days_since_epoch() - days as i32;
            let mut doomed = Vec::new();
            let mut unreadable = 0usize;
            for item in self.index().conversations.iter() {
                let (key, value) = item.map_err(StoreError::from_sled)?;
                let Ok(bytes) = <[u8; 32]>::try_from(&key[..]) else {
                    continue;
                };
                let locator = Locator(bytes);
                // One unreadable record must not stop every other conversation from expiring.
                let Ok(record) = ConversationRecord::decode(&value) else {
                    unreadable += 1;
                    continue;
                };
                if record.last.days_since_epoch() < cutoff {
                    doomed.push((locator, record));
                }
            }
            if unreadable > 0 {
                tracing::warn!(
                    "{unreadable} conversation records cannot be read and were not expired; \
                     restore the data directory from a backup"
                );
            }
            if doomed.is_empty() {
                return Ok(0);
            }
            self.touch();
            let index = self.index();
            for (locator, record) in &doomed {
                for reply in &record.replies {
                    index
                        .replies
                        .remove(reply_key(locator, reply.n))
                        .map_err(StoreError::from_sled)?;
                }
                index
                    .conversations
                    .remove(locator.0)
                    .map_err(StoreError::from_sled)?;
            }
            index.commit.sync().map_err(StoreError::from_io)?;
            doomed
        };
        self.rewrite_index_or_warn();
        Ok(doomed.len())
    }

    /// How many conversations the store holds (for `status`).
    pub fn conversation_count(&self) -> usize {
        self.index().conversations.len()
    }
}
