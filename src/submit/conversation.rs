//! The reporter's side of a conversation (`docs/replies-v1.md`): starting one with a report
//! (receipt, reply key, locked box), and checking in with the receipt (replies, each verified
//! against the reviewer keys the report was sent to).

use base64::Engine as _;
use sequoia_openpgp as openpgp;

use openpgp::parse::Parse;
use openpgp::serialize::{Serialize as _, SerializeInto};
use openpgp::Cert;

use super::{expect_json, GatewayClient, GatewayKeys, SubmitError};
use crate::payload::ConversationRef;
use crate::replies::lockbox::{self, BoxContents};
use crate::replies::protocol::{CheckAnswer, CheckRequest, MAX_CHECK_ANSWER};
use crate::replies::{generate_reply_key, read_reply, NewConversation, ReadReply, Receipt};
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
/// the report is encrypted to) under the receipt.
pub fn start_conversation(keys: &GatewayKeys) -> Result<StartedConversation, SubmitError> {
    let crypto = |e: anyhow::Error| SubmitError::BadResponse(format!("reply key: {e}"));
    let receipt = Receipt::generate();
    let reply_key = generate_reply_key().map_err(crypto)?;
    let mut secret = Vec::new();
    reply_key.as_tsk().serialize(&mut secret).map_err(crypto)?;
    let contents = BoxContents {
        key: base64::engine::general_purpose::STANDARD.encode(&secret),
        reviewers: keys
            .keyring
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
    /// Its number in the conversation.
    pub n: u32,
    /// The day it arrived.
    pub day: UtcDay,
    /// The reply and whether it is verified as the team's.
    pub read: ReadReply,
}

impl GatewayClient {
    /// Checks in with `receipt`: every reply of its conversation, decrypted and verified. A
    /// receipt without a conversation is [`SubmitError::NoConversation`] (the gateway cannot
    /// tell; only the receipt's holder can).
    pub fn check_in(&self, receipt: &Receipt) -> Result<Vec<CheckedIn>, SubmitError> {
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
) -> Result<Vec<CheckedIn>, SubmitError> {
    let locator = receipt.locator();
    let b64 = base64::engine::general_purpose::STANDARD;
    let sealed_box = b64
        .decode(&answer.sealed_box)
        .map_err(|_| SubmitError::BadResponse("the box is not base64".into()))?;
    let contents = lockbox::open(&receipt.lock_key(), &locator, &sealed_box)
        .map_err(|_| SubmitError::NoConversation)?;
    let secret = b64
        .decode(&contents.key)
        .map_err(|_| SubmitError::NoConversation)?;
    let reply_key = Cert::from_bytes(&secret).map_err(|_| SubmitError::NoConversation)?;
    let team: Vec<Cert> = reviewers
        .iter()
        .filter(|c| contents.reviewers.contains(&c.fingerprint().to_hex()))
        .cloned()
        .collect();
    Ok(answer
        .replies
        .iter()
        .map(|r| {
            let read = match b64.decode(&r.message) {
                Ok(sealed) => read_reply(&sealed, &reply_key, &team, &locator),
                Err(_) => ReadReply {
                    reply: None,
                    verified: Err("not base64".into()),
                },
            };
            CheckedIn {
                n: r.n,
                day: r.day,
                read,
            }
        })
        .collect())
}
