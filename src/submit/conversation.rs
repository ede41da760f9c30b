//! The reporter's side of a conversation (`docs/replies-v1.md`): starting one with a report
//! (receipt, reply key, locked box), and checking in with the receipt (replies, each verified
//! against the reviewer keys the report was sent to).

use base64::Engine as _;
use sequoia_openpgp as openpgp;

use openpgp::parse::Parse;
use openpgp::serialize::{Serialize as _, SerializeInto};
use openpgp::Cert;

use super::{expect_json, GatewayClient, SubmitError};
use crate::keyring::ReviewerKeyring;
use crate::payload::ConversationRef;
use crate::replies::lockbox::{self, BoxContents};
use crate::replies::protocol::{CheckAnswer, CheckRequest, MAX_CHECK_ANSWER};
use crate::replies::{
    generate_reply_key, read_reply, NewConversation, ReadReply, Receipt, ReplyPlaintext,
};
use crate::submission::UtcDay;

/// A conversation about to start with a report.
pub struct StartedConversation {
    /// The reporter's receipt: shown once, never sent.
    pub receipt: Receipt,
    /// What goes inside the encrypted report.
    pub reference: ConversationRef,
    /// What goes beside it, to the gateway.
    pub start: NewConversation,
}

/// Makes a receipt and a reply key, and locks the key (with the fingerprints of the reviewers
/// the report is encrypted to) under the receipt. Used by this client, and by the gateway for a
/// form posted without JavaScript (in memory; the receipt is shown once and forgotten).
pub fn start_conversation(reviewers: &ReviewerKeyring) -> Result<StartedConversation, SubmitError> {
    let crypto = |e: anyhow::Error| SubmitError::BadResponse(format!("reply key: {e}"));
    let receipt = Receipt::generate();
    let reply_key = generate_reply_key().map_err(crypto)?;
    let mut secret = Vec::new();
    reply_key.as_tsk().serialize(&mut secret).map_err(crypto)?;
    let contents = BoxContents {
        key: base64::engine::general_purpose::STANDARD.encode(&secret),
        reviewers: reviewers
            .reviewers()
            .iter()
            .map(|r| r.fingerprint().to_hex())
            .collect(),
    };
    let locator = receipt.locator();
    let sealed_box = lockbox::seal(&receipt.lock_key(), &locator, &contents)
        .map_err(|e| SubmitError::BadResponse(e.to_string()))?;
    let armored = reply_key
        .strip_secret_key_material()
        .armored()
        .to_vec()
        .map_err(crypto)?;
    Ok(StartedConversation {
        reference: ConversationRef {
            locator,
            reply_key: Some(String::from_utf8_lossy(&armored).into_owned()),
            token: Some(receipt.follow_up_token()),
        },
        start: NewConversation {
            locator,
            sealed_box,
        },
        receipt,
    })
}

/// One reply, as the reporter reads it.
pub struct CheckedIn {
    /// Its number in the gateway's answer (the order it arrived there).
    pub n: u32,
    /// The day it arrived.
    pub day: UtcDay,
    /// The reply and whether it is verified as the team's.
    pub read: ReadReply,
}

impl CheckedIn {
    /// The number to show: the team's own (signed) sequence number once verified, else the
    /// gateway's.
    pub fn number(&self) -> u32 {
        match (&self.read.verified, &self.read.reply) {
            (Ok(_), Some(reply)) => reply.sequence,
            _ => self.n,
        }
    }
}

/// A conversation as the reporter reads it: the answers in the team's order, and the answers
/// the team numbered that did not arrive.
pub struct ConversationRead {
    /// Verified answers first, in the order of their signed sequence numbers; then the rest
    /// (warnings) in the gateway's order. A verified answer seen twice is kept once; the
    /// repeat is marked as not verified.
    pub replies: Vec<CheckedIn>,
    /// Sequence numbers below the highest verified one with no verified answer: held back or
    /// dropped by the gateway (or not yet pushed).
    pub missing: Vec<u32>,
}

impl GatewayClient {
    /// Checks in with `receipt`: every reply of its conversation, decrypted and verified. A
    /// receipt without a conversation is [`SubmitError::NoConversation`] (the gateway cannot
    /// tell; only the receipt's holder can).
    pub fn check_in(&self, receipt: &Receipt) -> Result<ConversationRead, SubmitError> {
        let locator = receipt.locator();
        let body = serde_json::to_vec(&CheckRequest { locator })
            .map_err(|e| SubmitError::BadResponse(e.to_string()))?;
        let answer: CheckAnswer = self.with_proof_of_work(
            |request| {
                expect_json(
                    request
                        .header("Content-Type", "application/json")
                        .send(&body[..]),
                    200,
                    MAX_CHECK_ANSWER,
                )
            },
            "api/v1/conversations/check",
        )?;
        let team: Vec<Cert> = self
            .reviewer_keys()?
            .keyring
            .reviewers()
            .iter()
            .map(|r| r.cert().clone())
            .collect();
        read_conversation(receipt, &answer, &team)
    }
}

/// Opens a check-in answer with the receipt: the box (else [`SubmitError::NoConversation`]), then
/// every reply, verified against those of `reviewers` whose fingerprints the box lists (a gateway
/// that swaps the keys it serves cannot swap these). Used by this client and by the gateway's
/// check-in without JavaScript (in memory).
pub fn read_conversation(
    receipt: &Receipt,
    answer: &CheckAnswer,
    reviewers: &[Cert],
) -> Result<ConversationRead, SubmitError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let sealed_box = b64
        .decode(&answer.sealed_box)
        .map_err(|_| SubmitError::BadResponse("the box is not base64".into()))?;
    let replies = answer
        .replies
        .iter()
        .map(|r| (r.n, r.day, b64.decode(&r.message).map_err(|_| "not base64")));
    open_conversation(receipt, &sealed_box, replies, reviewers)
}

/// [`read_conversation`] on the bytes themselves (the gateway's check-in without JavaScript
/// reads them from its store): the box, then each reply as (number, day, sealed bytes, or why
/// there are none).
pub fn open_conversation<B: AsRef<[u8]>>(
    receipt: &Receipt,
    sealed_box: &[u8],
    replies: impl Iterator<Item = (u32, UtcDay, Result<B, &'static str>)>,
    reviewers: &[Cert],
) -> Result<ConversationRead, SubmitError> {
    let locator = receipt.locator();
    let contents = lockbox::open(&receipt.lock_key(), &locator, sealed_box)
        .map_err(|_| SubmitError::NoConversation)?;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(&contents.key)
        .map_err(|_| SubmitError::NoConversation)?;
    let reply_key = Cert::from_bytes(&secret).map_err(|_| SubmitError::NoConversation)?;
    let team: Vec<Cert> = reviewers
        .iter()
        .filter(|c| contents.reviewers.contains(&c.fingerprint().to_hex()))
        .cloned()
        .collect();
    let replies = replies
        .map(|(n, day, sealed)| {
            let read = match sealed {
                Ok(sealed) => read_reply(sealed.as_ref(), &reply_key, &team, &locator),
                Err(why) => ReadReply {
                    reply: None,
                    verified: Err(why.into()),
                },
            };
            CheckedIn { n, day, read }
        })
        .collect();
    Ok(in_order(replies))
}

/// Orders verified answers by their signed sequence numbers, marks repeats, finds gaps: a
/// gateway can hold back, repeat or reorder answers, but cannot renumber them.
fn in_order(mut replies: Vec<CheckedIn>) -> ConversationRead {
    let mut seen: std::collections::BTreeMap<u32, ReplyPlaintext> = Default::default();
    for checked in &mut replies {
        let ReadReply { reply, verified } = &mut checked.read;
        if let (Ok(_), Some(reply)) = (&*verified, reply) {
            match seen.get(&reply.sequence) {
                // The very same answer again: the gateway repeated it.
                Some(first) if first == reply => {
                    *verified = Err(format!(
                        "a copy of answer {} (the gateway sent it more than once)",
                        reply.sequence
                    ))
                }
                // Two different answers the team numbered alike (a reply written again after
                // a failure): both are the team's, and the gateway cannot make either.
                Some(_) => {}
                None => {
                    seen.insert(reply.sequence, reply.clone());
                }
            }
        }
    }
    let highest = seen.keys().last().copied().unwrap_or(0);
    let missing = (1..highest).filter(|n| !seen.contains_key(n)).collect();
    replies.sort_by_key(|c| match (&c.read.verified, &c.read.reply) {
        (Ok(_), Some(reply)) => (0, reply.sequence),
        _ => (1, c.n),
    });
    ConversationRead { replies, missing }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replies::message::REPLY_SCHEMA;
    use crate::replies::ReplyPlaintext;

    fn arrived(n: u32, sequence: u32, verified: bool) -> CheckedIn {
        CheckedIn {
            n,
            day: UtcDay::today(),
            read: ReadReply {
                reply: Some(ReplyPlaintext {
                    schema: REPLY_SCHEMA.into(),
                    conversation: Receipt::from_entropy([1; 16]).locator(),
                    sequence,
                    day: UtcDay::today(),
                    language: "es".into(),
                    message: format!("answer {sequence}"),
                    attachments: vec![],
                }),
                verified: if verified {
                    Ok(openpgp::Fingerprint::V4([7; 20]))
                } else {
                    Err("not signed".into())
                },
            },
        }
    }

    #[test]
    fn a_gateway_that_reorders_repeats_or_holds_back_answers_is_noticed() {
        // Arrived in the gateway's order 1..5: answer 3, answer 1, answer 3 again, a forgery
        // claiming 2, answer 5. Answers 2 and 4 never came.
        let mut renumbered = arrived(6, 5, true);
        if let Some(reply) = renumbered.read.reply.as_mut() {
            reply.message = "another answer the team also numbered 5".into();
        }
        let read = in_order(vec![
            arrived(1, 3, true),
            arrived(2, 1, true),
            arrived(3, 3, true),
            arrived(4, 2, false),
            arrived(5, 5, true),
            renumbered,
        ]);
        let shown: Vec<(u32, bool)> = read
            .replies
            .iter()
            .map(|c| (c.number(), c.read.verified.is_ok()))
            .collect();
        // Two different answers numbered 5 are both the team's; only the identical copy of 3
        // is a warning.
        assert_eq!(
            shown,
            [
                (1, true),
                (3, true),
                (5, true),
                (5, true),
                (3, false),
                (4, false)
            ]
        );
        assert!(read.replies[4]
            .read
            .verified
            .as_ref()
            .unwrap_err()
            .contains("more than once"));
        assert_eq!(read.missing, [2, 4]);
    }
}
