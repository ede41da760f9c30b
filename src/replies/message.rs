//! A reply (`resguardo.reply/1`, `docs/replies-v1.md`): what reviewers write, signed with a
//! reviewer's signing subkey inside the encryption, encrypted to the reporter's reply key and to
//! every reviewer key; and how a reporter's client reads and checks one.

use std::io::{Read, Write};

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::{KeyPair, SessionKey};
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageLayer, MessageStructure, VerificationHelper,
};
use openpgp::parse::Parse;
use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message, Recipient, Signer};
use openpgp::types::{KeyFlags, SymmetricAlgorithm};
use openpgp::{Fingerprint, KeyHandle};
use serde::{Deserialize, Serialize};

use super::receipt::Locator;
use crate::keyring::POLICY;
use crate::submission::UtcDay;

/// The schema string of a reply's plaintext.
pub const REPLY_SCHEMA: &str = "resguardo.reply/1";
/// Longest reply text, in characters.
pub const MAX_REPLY_CHARS: usize = 20_000;
/// Most bytes of attachments in one reply.
pub const MAX_REPLY_ATTACHMENT_BYTES: usize = 8 * 1024 * 1024;
/// Most attachments in one reply.
pub const MAX_REPLY_ATTACHMENTS: usize = 10;
/// Longest sealed reply read (attachments in base64, the text, the OpenPGP overhead).
pub const MAX_SEALED_REPLY_BYTES: usize = 12 * 1024 * 1024;

/// Highest sequence number a reply may carry (well above what a gateway keeps per conversation).
pub const MAX_REPLY_SEQUENCE: u32 = 100_000;

/// The user ID of every reply key: it names nobody.
pub const REPLY_KEY_USER_ID: &str = "Resguardo reply key";

/// A reply as reviewers write it and reporters read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyPlaintext {
    /// Always [`REPLY_SCHEMA`].
    pub schema: String,
    /// The conversation it answers: a reply moved elsewhere is flagged.
    pub conversation: Locator,
    /// Its place in the conversation's answers, from 1. Signed with the rest, so a server that
    /// repeats, reorders or holds back answers is noticed by the reporter's client.
    pub sequence: u32,
    /// The UTC day it was written (`YYYY-MM-DD`), as the team wrote it.
    pub day: UtcDay,
    /// BCP 47 tag of the reply's language.
    pub language: String,
    /// The text, at most [`MAX_REPLY_CHARS`] characters.
    pub message: String,
    /// Files for the reporter.
    pub attachments: Vec<ReplyAttachment>,
}

/// A file in a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyAttachment {
    /// File name, informative only (at most 255 characters).
    pub name: String,
    /// Media type, informative only.
    pub media_type: String,
    /// The bytes, base64.
    pub data: String,
}

/// Why a reply cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// Over one of the bounds above.
    #[error("the reply is over a bound: {0}")]
    TooLarge(&'static str),
    /// OpenPGP failed (sequoia's message).
    #[error("{0}")]
    Crypto(String),
    /// Not a reply of this format.
    #[error("not a reply: {0}")]
    Malformed(String),
}

impl ReplyPlaintext {
    /// Checks the bounds.
    pub fn check(&self) -> Result<(), ReplyError> {
        if self.schema != REPLY_SCHEMA {
            return Err(ReplyError::Malformed(format!(
                "unknown schema {:?}",
                self.schema.chars().take(60).collect::<String>()
            )));
        }
        if self.sequence == 0 || self.sequence > MAX_REPLY_SEQUENCE {
            return Err(ReplyError::Malformed(format!(
                "sequence {} is not between 1 and {MAX_REPLY_SEQUENCE}",
                self.sequence
            )));
        }
        if self.message.chars().count() > MAX_REPLY_CHARS {
            return Err(ReplyError::TooLarge(
                "the text is longer than 20,000 characters",
            ));
        }
        if self.attachments.len() > MAX_REPLY_ATTACHMENTS {
            return Err(ReplyError::TooLarge("more than 10 attachments"));
        }
        let bytes: usize = self.attachments.iter().map(|a| a.data.len() / 4 * 3).sum();
        if bytes > MAX_REPLY_ATTACHMENT_BYTES {
            return Err(ReplyError::TooLarge("attachments larger than 8 MiB in all"));
        }
        if self
            .attachments
            .iter()
            .any(|a| a.name.chars().count() > 255 || a.media_type.chars().count() > 127)
        {
            return Err(ReplyError::TooLarge(
                "an attachment name over 255 characters",
            ));
        }
        Ok(())
    }
}

/// A new reply key: v4, Ed25519 certification key, X25519 encryption subkey, no expiry, no
/// passphrase (the locked box protects it).
pub fn generate_reply_key() -> openpgp::Result<Cert> {
    let (cert, _) = CertBuilder::new()
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_userid(REPLY_KEY_USER_ID)
        .set_primary_key_flags(KeyFlags::empty().set_certification())
        .add_subkey(
            KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
            None,
            None,
        )
        .set_profile(openpgp::Profile::RFC4880)?
        .set_features(openpgp::types::Features::empty().set_seipdv1())?
        .generate()?;
    Ok(cert)
}

/// Signs `reply` with `signer` (a reviewer's signing subkey) and encrypts it to every
/// encryption subkey of `recipients` (the reply key and the reviewers).
pub fn seal_reply(
    reply: &ReplyPlaintext,
    signer: KeyPair,
    recipients: &[Cert],
) -> Result<Vec<u8>, ReplyError> {
    reply.check()?;
    let crypto = |e: anyhow::Error| ReplyError::Crypto(e.to_string());
    let plain = serde_json::to_vec(reply).map_err(|e| ReplyError::Malformed(e.to_string()))?;
    let mut keys: Vec<Recipient> = Vec::new();
    // Every recipient must get the reply: a reply key (or a reviewer key) without a usable
    // encryption subkey is an error, not a reply the reporter (or the team) silently cannot read.
    for cert in recipients {
        let before = keys.len();
        for key in cert
            .keys()
            .with_policy(&POLICY, None)
            .supported()
            .alive()
            .revoked(false)
            .for_transport_encryption()
            .for_storage_encryption()
        {
            keys.push(key.into());
        }
        if keys.len() == before {
            return Err(ReplyError::Crypto(format!(
                "key {} has no usable encryption key",
                cert.fingerprint()
            )));
        }
    }
    if keys.is_empty() {
        return Err(ReplyError::Crypto("no key to encrypt the reply to".into()));
    }
    let mut sealed = Vec::new();
    {
        let message = Message::new(&mut sealed);
        let message = Encryptor::for_recipients(message, keys)
            .build()
            .map_err(crypto)?;
        let message = Signer::new(message, signer)
            .map_err(crypto)?
            .build()
            .map_err(crypto)?;
        let mut literal = LiteralWriter::new(message).build().map_err(crypto)?;
        literal
            .write_all(&plain)
            .map_err(|e| ReplyError::Crypto(e.to_string()))?;
        literal.finalize().map_err(crypto)?;
    }
    Ok(sealed)
}

/// A reply as the reporter's client reads it.
#[derive(Debug, Clone)]
pub struct ReadReply {
    /// The reply, when it decrypted and parsed.
    pub reply: Option<ReplyPlaintext>,
    /// `Ok(fingerprint)` of the reviewer whose good signature it carries and whose conversation
    /// is this one; otherwise why it is not verified (shown as a warning, never as the team's).
    pub verified: Result<Fingerprint, String>,
}

/// Decrypts `sealed` with the reply key and checks it: a good signature by one of `reviewers`
/// (the certificates whose fingerprints the box lists) over a reply to `conversation`.
pub fn read_reply(
    sealed: &[u8],
    reply_key: &Cert,
    reviewers: &[Cert],
    conversation: &Locator,
) -> ReadReply {
    let failed = |why: String| ReadReply {
        reply: None,
        verified: Err(why),
    };
    if sealed.len() > MAX_SEALED_REPLY_BYTES {
        return failed("larger than a reply can be".into());
    }
    let helper = ReplyHelper {
        reply_key,
        reviewers,
        signer: None,
    };
    let mut decryptor = match DecryptorBuilder::from_bytes(sealed)
        .and_then(|b| b.with_policy(&POLICY, None, helper))
    {
        Ok(d) => d,
        Err(e) => return failed(format!("cannot be decrypted: {e}")),
    };
    let mut plain = Vec::new();
    if let Err(e) = (&mut decryptor)
        .take(MAX_SEALED_REPLY_BYTES as u64)
        .read_to_end(&mut plain)
    {
        return failed(format!("cannot be decrypted: {e}"));
    }
    let signer = decryptor.helper_ref().signer.clone();
    let reply: ReplyPlaintext = match serde_json::from_slice(&plain) {
        Ok(r) => r,
        Err(e) => return failed(format!("not a reply: {e}")),
    };
    let verified = match (signer, reply.check()) {
        (_, Err(e)) => Err(e.to_string()),
        (None, _) => Err("not signed by a reviewer key this report was sent to".into()),
        (Some(_), _) if reply.conversation != *conversation => {
            Err("signed by the team, but for another conversation".into())
        }
        (Some(fpr), _) => Ok(fpr),
    };
    ReadReply {
        reply: Some(reply),
        verified,
    }
}

struct ReplyHelper<'a> {
    reply_key: &'a Cert,
    reviewers: &'a [Cert],
    /// The reviewer whose good signature was found.
    signer: Option<Fingerprint>,
}

impl VerificationHelper for ReplyHelper<'_> {
    fn get_certs(&mut self, _: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.reviewers.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        for layer in structure {
            if let MessageLayer::SignatureGroup { results } = layer {
                for result in results.into_iter().flatten() {
                    let signing = result.ka.key_flags().is_some_and(|f| f.for_signing());
                    if signing {
                        self.signer = Some(result.ka.cert().fingerprint());
                    }
                }
            }
        }
        // An unsigned or badly signed reply is still shown, as a warning: never an error here.
        Ok(())
    }
}

impl DecryptionHelper for ReplyHelper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        for key in self
            .reply_key
            .keys()
            .with_policy(&POLICY, None)
            .secret()
            .for_transport_encryption()
            .for_storage_encryption()
        {
            let mut pair = key.key().clone().into_keypair()?;
            for pkesk in pkesks {
                if let Some((algo, session_key)) = pkesk.decrypt(&mut pair, sym_algo) {
                    if decrypt(algo, &session_key) {
                        return Ok(None);
                    }
                }
            }
        }
        Err(anyhow::anyhow!("not encrypted to this reply key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::{generate_reviewer_key, KeyProfile, KeyRole, ReviewerKeyOptions};
    use crate::replies::Receipt;
    use openpgp::crypto::Password;

    fn key(role: KeyRole) -> Cert {
        generate_reviewer_key(ReviewerKeyOptions {
            name: "r".into(),
            profile: KeyProfile::Compatible,
            passphrase: Password::from("p"),
            validity: None,
            role,
        })
        .unwrap()
        .cert
    }

    fn signer_of(cert: &Cert, flags: KeyFlags) -> KeyPair {
        cert.keys()
            .with_policy(&POLICY, None)
            .secret()
            .key_flags(flags)
            .next()
            .unwrap()
            .key()
            .clone()
            .decrypt_secret(&Password::from("p"))
            .unwrap()
            .into_keypair()
            .unwrap()
    }

    fn reply_to(conversation: Locator) -> ReplyPlaintext {
        ReplyPlaintext {
            schema: REPLY_SCHEMA.into(),
            conversation,
            sequence: 1,
            day: "2026-11-30".parse().unwrap(),
            language: "es".into(),
            message: "Pedimos protección policial.".into(),
            attachments: vec![],
        }
    }

    #[test]
    fn a_signed_reply_is_verified_and_forged_ones_are_flagged() {
        let reviewer = key(KeyRole::Reviewer);
        let stranger = key(KeyRole::Reviewer);
        let reply_key = generate_reply_key().unwrap();
        let public_reply_key = reply_key.clone().strip_secret_key_material();
        let here = Receipt::from_entropy([1; 16]).locator();
        let elsewhere = Receipt::from_entropy([2; 16]).locator();
        let team = [reviewer.clone().strip_secret_key_material()];
        let recipients = [public_reply_key.clone(), team[0].clone()];
        let signing = KeyFlags::empty().set_signing();

        let good = seal_reply(
            &reply_to(here),
            signer_of(&reviewer, signing.clone()),
            &recipients,
        )
        .unwrap();
        let read = read_reply(&good, &reply_key, &team, &here);
        assert_eq!(read.verified.unwrap(), reviewer.fingerprint());
        assert_eq!(read.reply.unwrap().message, "Pedimos protección policial.");

        // Signed by a key the report was not sent to.
        let forged = seal_reply(
            &reply_to(here),
            signer_of(&stranger, signing.clone()),
            &recipients,
        )
        .unwrap();
        assert!(read_reply(&forged, &reply_key, &team, &here)
            .verified
            .is_err());
        // A real reply of another conversation, replayed here.
        let moved = seal_reply(
            &reply_to(elsewhere),
            signer_of(&reviewer, signing),
            &recipients,
        )
        .unwrap();
        let read = read_reply(&moved, &reply_key, &team, &here);
        assert!(read.verified.unwrap_err().contains("another conversation"));
        // Not for this reply key at all.
        let other_key = generate_reply_key().unwrap();
        assert!(read_reply(&good, &other_key, &team, &here).reply.is_none());
    }

    #[test]
    fn a_reply_signed_by_a_revoked_reviewer_key_is_flagged() {
        use openpgp::cert::CertRevocationBuilder;
        use openpgp::types::ReasonForRevocation;
        let reviewer = key(KeyRole::Reviewer);
        let reply_key = generate_reply_key().unwrap();
        let here = Receipt::from_entropy([1; 16]).locator();
        let public = reviewer.clone().strip_secret_key_material();
        let sealed = seal_reply(
            &reply_to(here),
            signer_of(&reviewer, KeyFlags::empty().set_signing()),
            &[
                reply_key.clone().strip_secret_key_material(),
                public.clone(),
            ],
        )
        .unwrap();
        // The key was stolen and the team revoked it: whatever it signed is no longer theirs.
        let mut primary = signer_of(&reviewer, KeyFlags::empty().set_certification());
        let revocation = CertRevocationBuilder::new()
            .set_reason_for_revocation(ReasonForRevocation::KeyCompromised, b"stolen")
            .unwrap()
            .build(&mut primary, &reviewer, None)
            .unwrap();
        let revoked = public.insert_packets(revocation).unwrap().0;
        assert!(read_reply(&sealed, &reply_key, &[revoked], &here)
            .verified
            .is_err());
    }

    #[test]
    fn an_unsigned_reply_is_flagged() {
        let reply_key = generate_reply_key().unwrap();
        let here = Receipt::from_entropy([1; 16]).locator();
        let mut sealed = Vec::new();
        {
            let recipients: Vec<Recipient> = reply_key
                .keys()
                .with_policy(&POLICY, None)
                .for_storage_encryption()
                .map(Into::into)
                .collect();
            let message = Message::new(&mut sealed);
            let message = Encryptor::for_recipients(message, recipients)
                .build()
                .unwrap();
            let mut literal = LiteralWriter::new(message).build().unwrap();
            literal
                .write_all(&serde_json::to_vec(&reply_to(here)).unwrap())
                .unwrap();
            literal.finalize().unwrap();
        }
        let read = read_reply(&sealed, &reply_key, &[], &here);
        assert!(read.reply.is_some());
        assert!(read.verified.is_err());
    }
}
