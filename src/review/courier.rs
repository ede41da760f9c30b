//! The courier's side of a connection to the gateway: the client and the unlocked courier key,
//! and the signing of each request (`docs/early-alerts.md`). `watch` and `transfer` use it.

use sequoia_openpgp as openpgp;

use openpgp::packet::signature::SignatureBuilder;
use openpgp::serialize::SerializeInto;
use openpgp::types::SignatureType;
use openpgp::Packet;

use super::secret_key::{KeyPair, UnlockedKey};
use crate::submit::{GatewayClient, RequestSigner, SubmitError};

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
}

/// A detached binary signature over `text` by the authentication subkey.
fn sign(signer: &mut KeyPair, text: &[u8]) -> Result<Vec<u8>, SubmitError> {
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .sign_message(signer, text)
        .map_err(|e| SubmitError::BadResponse(format!("signing: {e}")))?;
    Packet::from(sig)
        .to_vec()
        .map_err(|e| SubmitError::BadResponse(format!("signing: {e}")))
}
