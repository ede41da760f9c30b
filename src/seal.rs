//! Sealing: encrypting a payload to every reviewer, streaming.
//!
//! Used by the terminal client and by the gateway's on-arrival sealing of form posts, so both
//! produce exactly what the browser page produces: one literal data packet (binary, no file name,
//! no date) inside a SEIPD container addressed to every reviewer encryption subkey. No
//! compression: it would make the padded size depend on the content.

use std::io::{self, Write};

use sequoia_openpgp as openpgp;

use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message};

use crate::keyring::ReviewerKeyring;

/// Returns a writer; what is written to it is encrypted into `out`. Call `finalize` on it.
pub fn sealer<'a, W>(keyring: &'a ReviewerKeyring, out: W) -> io::Result<Message<'a>>
where
    W: Write + Send + Sync + 'a,
{
    let message = Message::new(out);
    let message = Encryptor::for_recipients(message, keyring.recipients())
        .build()
        .map_err(io::Error::other)?;
    LiteralWriter::new(message)
        .build()
        .map_err(io::Error::other)
}
