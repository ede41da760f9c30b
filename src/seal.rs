//! Sealing: encrypting a payload to every reviewer, streaming.
//!
//! Used by the terminal client and by the gateway's on-arrival sealing of form posts, so both
//! produce exactly what the browser page produces: one literal data packet (binary, no file name,
//! no date) inside a SEIPD container addressed to every reviewer encryption subkey. No
//! compression: it would make the padded size depend on the content.

use std::io::{self, Write};

use sequoia_openpgp as openpgp;

use openpgp::crypto::SessionKey;
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper,
};
use openpgp::parse::Parse;
use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message, Recipient};
use openpgp::types::{AEADAlgorithm, SymmetricAlgorithm};

use crate::keyring::ReviewerKeyring;

/// Returns a writer; what is written to it is encrypted into `out`. Call `finalize` on it.
pub fn sealer<'a, W>(keyring: &'a ReviewerKeyring, out: W) -> io::Result<Message<'a>>
where
    W: Write + Send + Sync + 'a,
{
    sealer_to(keyring.recipients(), out)
}

/// The same, to any set of recipients (the couriers, for a triage envelope).
pub fn sealer_to<'a, W>(recipients: Vec<Recipient<'a>>, out: W) -> io::Result<Message<'a>>
where
    W: Write + Send + Sync + 'a,
{
    let message = Message::new(out);
    let message = Encryptor::for_recipients(message, recipients)
        .build()
        .map_err(io::Error::other)?;
    LiteralWriter::new(message)
        .build()
        .map_err(io::Error::other)
}

/// A scratch file for the gateway's on-arrival sealing, encrypted with a random key that exists
/// only in this process's memory.
///
/// Payload v1 puts `report.json` (with every attachment's SHA-256) first, but a form post delivers
/// the attachments after the text, and they can be large; so they wait here until the report can
/// be written. The file is anonymous (unlinked at creation, gone on a crash), its content is
/// OpenPGP SEIPD v2 under a session key that is never written anywhere and is wiped when the
/// scratch is dropped: plaintext never reaches the disk.
pub struct Scratch {
    file: std::fs::File,
    key: SessionKey,
}

const SCRATCH_ALGO: SymmetricAlgorithm = SymmetricAlgorithm::AES256;

impl Scratch {
    /// An empty anonymous file in `dir` (unlinked at once) with a fresh random AES-256 key.
    pub fn create(dir: &std::path::Path) -> io::Result<Self> {
        let file = tempfile::tempfile_in(dir)?;
        let key = SessionKey::new(SCRATCH_ALGO.key_size().map_err(io::Error::other)?)
            .map_err(io::Error::other)?;
        Ok(Scratch { file, key })
    }

    /// A writer for the plaintext (over its own handle to the file); call `finalize` on it.
    pub fn writer(&self) -> io::Result<Message<'static>> {
        let message = Message::new(self.file.try_clone()?);
        let message = Encryptor::with_session_key(message, SCRATCH_ALGO, self.key.clone())
            .map_err(io::Error::other)?
            .aead_algo(AEADAlgorithm::default())
            .build()
            .map_err(io::Error::other)?;
        LiteralWriter::new(message)
            .build()
            .map_err(io::Error::other)
    }

    /// A reader for the plaintext, from the start.
    pub fn reader(&self) -> io::Result<impl io::Read + '_> {
        use std::io::Seek;
        let mut file = &self.file;
        file.seek(io::SeekFrom::Start(0))?;
        DecryptorBuilder::from_reader(file)
            .and_then(|b| b.with_policy(&crate::keyring::POLICY, None, ScratchKey(&self.key)))
            .map_err(io::Error::other)
    }
}

/// Gives sequoia the scratch's session key.
struct ScratchKey<'a>(&'a SessionKey);

impl VerificationHelper for ScratchKey<'_> {
    fn get_certs(&mut self, _: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<openpgp::Cert>> {
        Ok(Vec::new())
    }

    fn check(&mut self, _: MessageStructure) -> openpgp::Result<()> {
        Ok(())
    }
}

impl DecryptionHelper for ScratchKey<'_> {
    fn decrypt(
        &mut self,
        _: &[PKESK],
        _: &[SKESK],
        _: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<openpgp::Cert>> {
        if decrypt(Some(SCRATCH_ALGO), self.0) {
            Ok(None)
        } else {
            Err(anyhow::anyhow!(
                "the scratch key does not open the scratch file"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn scratch_round_trips_and_holds_no_plaintext() {
        let dir = tempfile::tempdir().expect("tempdir");
        let scratch = Scratch::create(dir.path()).expect("scratch");
        let secret = b"the name of the witness ".repeat(1000);
        let mut w = scratch.writer().expect("writer");
        w.write_all(&secret).expect("write");
        w.finalize().expect("finalize");
        // Nothing is visible in the directory, and the bytes on disk are not the plaintext.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
        let mut raw = Vec::new();
        {
            use std::io::Seek;
            let mut f = &scratch.file;
            f.seek(io::SeekFrom::Start(0)).expect("seek");
            f.read_to_end(&mut raw).expect("read");
        }
        assert!(!raw.windows(7).any(|w| w == b"witness"));
        let mut back = Vec::new();
        scratch
            .reader()
            .expect("reader")
            .read_to_end(&mut back)
            .expect("read");
        assert_eq!(back, secret);
    }
}
