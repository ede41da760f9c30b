//! The courier's side of a connection to the gateway: the client and the unlocked courier key,
//! and the signing of each request (`docs/early-alerts.md`), and the requests that are not
//! `watch`'s or `transfer`'s own (the chain). `watch` and `transfer` use it.

use sequoia_openpgp as openpgp;

use openpgp::packet::signature::SignatureBuilder;
use openpgp::serialize::SerializeInto;
use openpgp::types::SignatureType;
use openpgp::Packet;

use super::secret_key::{KeyPair, UnlockedKey};
use crate::submit::{GatewayClient, RequestSigner, SubmitError};
use crate::trust::chain::ChainView;

/// The gateway client and the unlocked courier key.
pub struct Courier {
    /// The gateway.
    pub client: GatewayClient,
    /// Signs requests (the authentication subkey).
    pub signer: KeyPair,
    /// Opens triage envelopes (the encryption subkey); `None` for commands that only move
    /// ciphertext (each unlock costs a key derivation).
    pub key: Option<UnlockedKey>,
}

impl Courier {
    /// Runs one signed request: `call` gets the client and a signer for the request's text.
    pub fn signed<T>(
        &mut self,
        call: impl FnOnce(&GatewayClient, &mut RequestSigner<'_>) -> Result<T, SubmitError>,
    ) -> Result<T, SubmitError> {
        let signer = &mut self.signer;
        call(&self.client, &mut |text| sign(signer, text))
    }

    /// The gateway's chain after number `since` (`GET /api/v1/courier/chain?since=N`,
    /// `docs/trust-v1.md`): its head, `H(since)` and at most
    /// [`crate::trust::chain::MAX_LEAVES_PER_ANSWER`] leaves; check it with
    /// [`crate::trust::chain::extends`]. A gateway whose chain ends before `since` answers
    /// [`SubmitError::Refused`] with status 409 and code [`CHAIN_BEHIND`].
    pub fn chain_view(&mut self, since: u64) -> Result<ChainView, SubmitError> {
        let path = format!("api/v1/courier/chain?since={since}");
        self.signed(|client, sign| client.courier_get(&path, sign, MAX_CHAIN_ANSWER))
    }
}

/// The refusal code of a chain asked about beyond its head: the gateway's log went back.
pub const CHAIN_BEHIND: &str = "chain_behind";

/// Bound on a chain answer: 10,000 leaves of 67 bytes and the two points.
const MAX_CHAIN_ANSWER: u64 = 1024 * 1024;

/// A detached binary signature over `text` by the authentication subkey.
fn sign(signer: &mut KeyPair, text: &[u8]) -> Result<Vec<u8>, SubmitError> {
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .sign_message(signer, text)
        .map_err(|e| SubmitError::BadResponse(format!("signing: {e}")))?;
    Packet::from(sig)
        .to_vec()
        .map_err(|e| SubmitError::BadResponse(format!("signing: {e}")))
}
