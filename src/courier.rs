//! The courier protocol (`docs/early-alerts.md`), shared by the gateway that checks courier
//! requests and the review tool that makes them: the headers, the exact text a request signature
//! covers, and the shapes of the answers.
//!
//! No passwords, tokens or accounts: each request carries a fresh single-use challenge from the
//! gateway and an OpenPGP signature by the courier's authentication subkey over the method, the
//! path with its query, the challenge and the SHA-256 of the body.

use serde::{Deserialize, Serialize};

use crate::bundle::receipt::OpenReceipt;
use crate::bundle::BundleManifest;
use crate::submission::{BatchId, SubmissionId, UtcDay};

/// The header that carries the challenge a request answers.
pub const CHALLENGE_HEADER: &str = "resguardo-challenge";
/// The header that carries the base64 detached signature.
pub const SIGNATURE_HEADER: &str = "resguardo-signature";
/// The first line of every signed text (a signature for anything else never matches).
const CONTEXT: &str = "resguardo-courier-request/1";

/// The bytes a courier signs for one request.
pub fn signed_text(method: &str, path_and_query: &str, challenge: &str, body: &[u8]) -> Vec<u8> {
    let body_hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, body));
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

/// The body of `POST /api/v1/courier/batches`: `{}` for the next batch, or the ids of stored
/// submissions to carry at once (an urgent report).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Only these submissions, in a batch of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<SubmissionId>,
}

/// Most ids one batch request may name.
pub const MAX_BATCH_IDS: usize = 100;

/// `POST /api/v1/courier/batches`: the batch to fetch (begun now, or an earlier undelivered one).
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchAnswer {
    /// The batch; `None` when there is nothing to export.
    pub batch: Option<BatchId>,
    /// The bundle's length in bytes (computed from the manifest; the bundle itself is checked
    /// entry by entry against the manifest's hashes once downloaded).
    pub size: u64,
    /// How many submissions it holds.
    pub submissions: usize,
}

/// `POST /api/v1/courier/purge`: the fetched bundle's manifest and the reviewers' open receipt,
/// the same two things the operator's local `purge` reads.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// The manifest of the bundle the reviewers opened.
    pub manifest: BundleManifest,
    /// What `resguardo-review open` wrote for it.
    pub receipt: OpenReceipt,
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

/// Largest purge request body (a manifest of 100,000 submissions is about 20 MiB; a courier's
/// batches are far smaller).
pub const MAX_PURGE_REQUEST: usize = 32 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_text_binds_every_part_of_the_request() {
        let base = signed_text("GET", "/api/v1/courier/triage?since=2026-11-30", "c", b"");
        for other in [
            signed_text("POST", "/api/v1/courier/triage?since=2026-11-30", "c", b""),
            signed_text("GET", "/api/v1/courier/triage?since=2026-11-29", "c", b""),
            signed_text("GET", "/api/v1/courier/triage?since=2026-11-30", "d", b""),
            signed_text("GET", "/api/v1/courier/triage?since=2026-11-30", "c", b"x"),
        ] {
            assert_ne!(base, other);
        }
        assert!(base.starts_with(b"resguardo-courier-request/1\nGET\n"));
    }
}
