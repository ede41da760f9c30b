//! The courier protocol (`docs/early-alerts.md`), shared by the gateway that checks courier
//! requests and the review tool that makes them: the headers, the exact text a request signature
//! covers, and the shapes of the answers.
//!
//! No passwords, tokens or accounts: each request carries a fresh single-use challenge from the
//! gateway and an OpenPGP signature by the courier's authentication subkey over the method, the
//! path with its query, the challenge and the SHA-256 of the body.

use serde::{Deserialize, Serialize};

use crate::submission::{SubmissionId, UtcDay};

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
