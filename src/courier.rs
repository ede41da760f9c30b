//! The courier protocol (`docs/early-alerts.md`), shared by the gateway that checks courier
//! requests and the review tool that makes them: the headers, the exact text a request signature
//! covers, and the shapes of the answers.
//!
//! No passwords, tokens or accounts: each request carries a fresh single-use challenge from the
//! gateway and an OpenPGP signature by the courier's authentication subkey over the method, the
//! path with its query, the challenge and the SHA-256 of the body.

use serde::{Deserialize, Serialize};

use crate::submission::{BatchId, SubmissionId, UtcDay};

/// The header that carries the challenge a request answers.
pub const CHALLENGE_HEADER: &str = "resguardo-challenge";
/// The header of an answer to an authenticated courier request that carries a fresh challenge
/// for the next request: a courier that keeps polling never needs the public challenge route.
pub const NEXT_CHALLENGE_HEADER: &str = "resguardo-next-challenge";
/// The header that carries the base64 detached signature.
pub const SIGNATURE_HEADER: &str = "resguardo-signature";
/// The first line of every signed text (a signature for anything else never matches).
const CONTEXT: &str = "resguardo-courier-request/1";

/// The bytes a courier signs for one request, whose body has the SHA-256 `body_hash`
/// ([`body_hash`]).
pub fn signed_text(
    method: &str,
    path_and_query: &str,
    challenge: &str,
    body_hash: &str,
) -> Vec<u8> {
    format!("{CONTEXT}\n{method}\n{path_and_query}\n{challenge}\n{body_hash}\n").into_bytes()
}

/// `GET /api/v1/courier/challenge`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChallengeBody {
    /// The single-use challenge to put in [`CHALLENGE_HEADER`].
    pub challenge: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
}

/// One submission's triage envelope, as `GET /api/v1/courier/triage` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriageItem {
    /// The submission.
    pub id: SubmissionId,
    /// The day it was stored.
    pub day: UtcDay,
    /// The sealed envelope, base64.
    pub triage: String,
}

/// `GET /api/v1/courier/triage?since=DAY[&after=ID]`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TriageList {
    /// The gateway's today (UTC), so a client asks from yesterday next time.
    pub today: UtcDay,
    /// Stored submissions of `since` or later that have an envelope, ordered by id (which says
    /// nothing about arrival), after `after` if given; at most [`MAX_TRIAGE_ITEMS`].
    pub items: Vec<TriageItem>,
    /// True when more items follow: ask again with `after` = the last id here.
    pub more: bool,
}

/// Most items in one triage answer (about 2.5 MiB of JSON).
pub const MAX_TRIAGE_ITEMS: usize = 1000;

/// The body of `POST /api/v1/courier/batches`: `{}` (begin the next batch, or resume the one not
/// yet delivered) or `{"batch": ID}` (that batch again, delivered or not, while the store holds
/// it: a batch marked delivered that never reached the reviewers is fetched this way).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// A batch the store holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchId>,
}

/// The body of `POST /api/v1/courier/copies`: the ids of stored submissions to carry to the
/// offline machine at once (an urgent report). A copy is written afresh from the store on each
/// request and leaves nothing in the store's index: the submissions go out again with the next
/// batch, so nothing on the server's disk sets an urgent report apart.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// 1 to [`MAX_COPY_IDS`] submissions.
    pub ids: Vec<SubmissionId>,
}

/// Most ids one copy may name (they travel again in the download's query string).
pub const MAX_COPY_IDS: usize = 20;

/// The query of `GET /api/v1/courier/copies`: `ids=ID,ID,…&offset=N`.
pub fn copy_query(ids: &[SubmissionId], offset: u64) -> String {
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    format!("ids={}&offset={offset}", ids.join(","))
}

/// `POST /api/v1/courier/batches` and `POST /api/v1/courier/copies`: the bundle to fetch.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchAnswer {
    /// The batch (for a copy: an id derived from its submissions, in no batch of the store);
    /// `None` when there is nothing to export.
    pub batch: Option<BatchId>,
    /// The bundle's length in bytes (computed from the manifest; the bundle itself is checked
    /// entry by entry against the manifest's hashes once downloaded).
    pub size: u64,
    /// How many submissions it holds.
    pub submissions: usize,
}

/// One export batch the store still holds (`GET /api/v1/courier/batches`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSummary {
    /// The batch.
    pub batch: BatchId,
    /// The day it was begun.
    pub created: UtcDay,
    /// Submissions of it the store still holds.
    pub submissions: usize,
    /// Whether a fetch (or a local export) said it has the whole bundle.
    pub delivered: bool,
}

/// `GET /api/v1/courier/batches`: the batches not yet purged, oldest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchList {
    /// At most [`MAX_LISTED_BATCHES`].
    pub batches: Vec<BatchSummary>,
}

/// Most batches one list answers with.
pub const MAX_LISTED_BATCHES: usize = 1000;

/// `POST /api/v1/courier/purge`: the reviewers' open receipt with its signature. The receipt
/// travels as its exact bytes, which the signature covers, and says by itself what may go (the
/// size and SHA-256 of each ciphertext opened): no manifest from the courier is trusted.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// What `resguardo-review open` wrote (`open-receipt-<batch>.json`, format v2), byte for byte.
    pub receipt: String,
    /// Base64 of the detached signature `open` wrote beside it, by a reviewer's signing subkey.
    pub signature: String,
}

/// What a network purge did.
#[derive(Debug, Serialize, Deserialize)]
pub struct PurgeAnswer {
    /// Submissions deleted now.
    pub purged: Vec<SubmissionId>,
    /// Submissions the store no longer held.
    pub already_gone: Vec<SubmissionId>,
    /// Submissions kept, each with the reason.
    pub refused: Vec<(SubmissionId, String)>,
}

/// Largest purge request body (a manifest of 100,000 submissions with its receipt is about
/// 30 MiB; a courier's batches are far smaller). Read only after the signature over its hash
/// ([`BODY_HASH_HEADER`]) is checked.
pub const MAX_PURGE_REQUEST: usize = 48 * 1024 * 1024;

/// The header that announces the lowercase hex SHA-256 of a request body, so the gateway checks
/// the signature before it reads a large body.
pub const BODY_HASH_HEADER: &str = "resguardo-body-sha256";

/// Lowercase hex SHA-256 of a request body (what the signed text and [`BODY_HASH_HEADER`] hold).
pub fn body_hash(body: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_text_binds_every_part_of_the_request() {
        let empty = body_hash(b"");
        let base = signed_text(
            "GET",
            "/api/v1/courier/triage?since=2026-11-30",
            "c",
            &empty,
        );
        for other in [
            signed_text(
                "POST",
                "/api/v1/courier/triage?since=2026-11-30",
                "c",
                &empty,
            ),
            signed_text(
                "GET",
                "/api/v1/courier/triage?since=2026-11-29",
                "c",
                &empty,
            ),
            signed_text(
                "GET",
                "/api/v1/courier/triage?since=2026-11-30",
                "d",
                &empty,
            ),
            signed_text(
                "GET",
                "/api/v1/courier/triage?since=2026-11-30",
                "c",
                &body_hash(b"x"),
            ),
        ] {
            assert_ne!(base, other);
        }
        assert!(base.starts_with(b"resguardo-courier-request/1\nGET\n"));
    }
}
