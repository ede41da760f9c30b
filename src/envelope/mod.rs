//! The envelope check: is this byte stream exactly a sealed message for our reviewers?
//!
//! The gateway holds no secret key, so it cannot look inside a submission. What it *can* do is
//! refuse everything that is not the one shape we accept, before a single byte is acknowledged:
//!
//! ```text
//! PKESK+ SEIPD            (nothing else, nothing after)
//! ```
//!
//! one or more public-key-encrypted session keys, each addressed to an encryption subkey of a
//! current reviewer with that subkey's algorithm, followed by exactly one integrity-protected
//! encrypted container of the matching version (v3 session keys with SEIPD v1, v6 with SEIPD v2,
//! as RFC 9580 requires). This rules out the ways a reporter could be hurt by a mistake in their client (plaintext,
//! a compressed or signed-only message, a password that a seizing adversary could brute force, a
//! message to the wrong key) and it keeps the store free of anything but ciphertext.
//!
//! The check walks the top-level packets with sequoia's `PacketParser` and never descends into the
//! encrypted container (that would attempt decryption); skipping the body costs one pass over the
//! bytes, which we make anyway to store them. The caller passes the bytes through [`check`] as a
//! stream, so memory stays bounded whatever the message size.
//!
//! ASCII armor is accepted and removed here: what the store keeps is always the binary message.
//! After the armor's end line only whitespace may follow (not a second block, not text).

mod recipients;

pub use recipients::RecipientSet;

use std::io::{self, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

use sequoia_openpgp as openpgp;

use buffered_reader::BufferedReader as _;
use openpgp::armor;
use openpgp::packet::{Packet, Tag, SEIP};
use openpgp::parse::{Dearmor, PacketParserBuilder, PacketParserResult, Parse};

/// Largest non-container packet we parse (a PKESK is a few hundred bytes even for RSA-4096).
const MAX_HEADER_PACKET: u32 = 64 * 1024;

/// At most this many recipients; a real team has a handful of reviewers.
pub const MAX_RECIPIENTS: usize = 64;

/// Why a body is not a sealed submission.
///
/// Each variant has a stable machine-readable [`code`](EnvelopeError::code) that the HTTP API
/// returns, so clients can tell a reporter precisely what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Nothing was sent.
    #[error("the body is empty")]
    Empty,
    /// The bytes are not OpenPGP at all: neither binary packets nor `-----BEGIN PGP` armor.
    #[error("the body is not an OpenPGP message")]
    NotOpenPgp,
    /// The armor could not be decoded; holds the armor reader's error message.
    #[error("the ASCII armor is damaged or is not an OpenPGP message: {0}")]
    BadArmor(String),
    /// The input ended before the encrypted container, or in the middle of a packet.
    #[error("the message is truncated")]
    Truncated,
    /// Bytes follow the encrypted container; the message must end there.
    #[error("there is data after the encrypted container")]
    TrailingData,
    /// A packet could not be parsed; holds its tag or sequoia's description of the fault.
    #[error("a {0} packet is malformed")]
    Malformed(String),
    /// A literal data packet appeared, i.e. the message was not encrypted.
    #[error("the message contains unencrypted (literal) data")]
    Plaintext,
    /// A compressed data packet appeared outside of any encryption.
    #[error("the message is compressed but not encrypted")]
    Compressed,
    /// A signature or one-pass signature packet appeared outside of any encryption.
    #[error("the message is signed but not encrypted")]
    SignedOnly,
    /// A password-encrypted session key (SKESK): a seizing adversary could brute force it.
    #[error("the message is encrypted with a password; encrypt it to the reviewers' keys instead")]
    PasswordEncrypted,
    /// A session key has no recipient key ID or fingerprint (wildcard), so we cannot check it.
    #[error("the message has a hidden (wildcard) recipient; every recipient must be a reviewer")]
    HiddenRecipient,
    /// A session key names a key that is not a current reviewer encryption subkey; holds its
    /// key ID or fingerprint in hex.
    #[error("the message is encrypted to {0}, which is not a current reviewer encryption key")]
    UnknownRecipient(String),
    /// A legacy symmetrically encrypted (SED) packet, which has no integrity protection.
    #[error("the message uses old encryption without integrity protection")]
    NoIntegrityProtection,
    /// The encrypted container is not preceded by any public-key session key (PKESK).
    #[error("the message has no public-key recipients")]
    NoRecipients,
    /// More than [`MAX_RECIPIENTS`] session keys.
    #[error("the message has more than {MAX_RECIPIENTS} recipients")]
    TooManyRecipients,
    /// A second encrypted container. [`check`] does not return this today: it reports any packet
    /// after the container as [`TrailingData`](EnvelopeError::TrailingData).
    #[error("the message has more than one encrypted container")]
    MultipleContainers,
    /// Any other packet kind; holds its tag name.
    #[error("unexpected {0} packet; only encrypted session keys and one encrypted container are accepted")]
    UnexpectedPacket(String),
    /// A session key uses a different public-key algorithm than the reviewer subkey it names.
    #[error("a session key is encrypted with {pkesk}, but the reviewer's key is {key}")]
    AlgorithmMismatch {
        /// The algorithm the session key was encrypted with.
        pkesk: String,
        /// The algorithm of the reviewer subkey the session key names.
        key: String,
    },
    /// The session key versions do not match each other or the container (v3 needs SEIPD v1, v6
    /// needs SEIPD v2).
    #[error("version {pkesk} session keys cannot open a version {container} encrypted container")]
    VersionMismatch {
        /// Version of the offending session key (3 or 6).
        pkesk: u8,
        /// SEIPD version (1 or 2) of the container, or the one the earlier session keys call for.
        container: u8,
    },
    /// Something other than whitespace (or more than 64 KiB of it) follows the armor's end line.
    #[error("there is data after the armored message")]
    DataAfterArmor,
    /// The body could not be read or spooled; not the sender's fault as far as we know.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl EnvelopeError {
    /// Stable identifier for the API and the tests.
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeError::Empty => "empty_body",
            EnvelopeError::NotOpenPgp => "not_openpgp",
            EnvelopeError::BadArmor(_) => "bad_armor",
            EnvelopeError::Truncated => "truncated",
            EnvelopeError::TrailingData => "trailing_data",
            EnvelopeError::Malformed(_) => "malformed_packet",
            EnvelopeError::Plaintext => "plaintext",
            EnvelopeError::Compressed => "compressed",
            EnvelopeError::SignedOnly => "signed_only",
            EnvelopeError::PasswordEncrypted => "password_encrypted",
            EnvelopeError::HiddenRecipient => "hidden_recipient",
            EnvelopeError::UnknownRecipient(_) => "unknown_recipient",
            EnvelopeError::NoIntegrityProtection => "no_integrity_protection",
            EnvelopeError::NoRecipients => "no_recipients",
            EnvelopeError::TooManyRecipients => "too_many_recipients",
            EnvelopeError::MultipleContainers => "multiple_containers",
            EnvelopeError::UnexpectedPacket(_) => "unexpected_packet",
            EnvelopeError::AlgorithmMismatch { .. } => "pkesk_algorithm_mismatch",
            EnvelopeError::VersionMismatch { .. } => "pkesk_version_mismatch",
            EnvelopeError::DataAfterArmor => "data_after_armor",
            EnvelopeError::Io(_) => "io_error",
        }
    }

    /// True when the structure is fine but the content is not what we accept (HTTP 422), as
    /// opposed to bytes that are not a well-formed message at all (HTTP 400).
    pub fn is_semantic(&self) -> bool {
        matches!(
            self,
            EnvelopeError::Plaintext
                | EnvelopeError::Compressed
                | EnvelopeError::SignedOnly
                | EnvelopeError::PasswordEncrypted
                | EnvelopeError::HiddenRecipient
                | EnvelopeError::UnknownRecipient(_)
                | EnvelopeError::NoIntegrityProtection
                | EnvelopeError::NoRecipients
                | EnvelopeError::TooManyRecipients
                | EnvelopeError::MultipleContainers
                | EnvelopeError::UnexpectedPacket(_)
                | EnvelopeError::AlgorithmMismatch { .. }
                | EnvelopeError::VersionMismatch { .. }
        )
    }
}

/// Which encrypted container a sealed message uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// SEIPD v1: CFB + MDC (what GnuPG 2.2 reads).
    SeipdV1,
    /// SEIPD v2: AEAD (RFC 9580).
    SeipdV2,
}

/// What the check learned about an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEnvelope {
    /// Number of public-key session keys (PKESKs) in the message, between 1 and
    /// [`MAX_RECIPIENTS`]; one reviewer subkey may be named more than once.
    pub recipients: usize,
    /// Which encrypted container version follows the session keys.
    pub container: Container,
}

/// Checks that `input` is exactly a sealed message for `recipients`, copying the binary message
/// (armor removed) into `sink` as it goes.
///
/// The whole input is consumed on success, so `sink` then holds the complete message. On error
/// `sink` holds a prefix and must be discarded by the caller.
pub fn check<R, W>(
    input: R,
    recipients: &RecipientSet,
    sink: W,
) -> Result<SealedEnvelope, EnvelopeError>
where
    R: Read + Send + Sync,
    W: Write + Send + Sync,
{
    let faults = Faults::default();
    let mut input = Recorded::transport(input, &faults);
    let prefix = read_prefix(&mut input, ARMOR_SNIFF)?;
    let Some(&first) = prefix.first() else {
        return Err(EnvelopeError::Empty);
    };
    // Binary OpenPGP packets always start with the high bit set; anything else must be armor.
    let binary = first & 0x80 != 0;
    if !binary && !looks_armored(&prefix) {
        return Err(EnvelopeError::NotOpenPgp);
    }
    let input = BufReader::with_capacity(64 * 1024, io::Cursor::new(prefix).chain(input));
    let result = if binary {
        walk_packets(&mut Tee::new(input, sink, &faults), recipients)
    } else {
        let dearmored = Recorded::armor(
            armor::Reader::from_reader(
                input,
                armor::ReaderMode::Tolerant(Some(armor::Kind::Message)),
            ),
            &faults,
        );
        let mut tee = Tee::new(dearmored, sink, &faults);
        walk_packets(&mut tee, recipients).and_then(|envelope| {
            // The armor reader stops at its end line; what the client sent after it is still
            // in the reader below.
            match tee.inner.inner.get_mut() {
                Some(rest) => only_whitespace_left(rest).map(|()| envelope),
                None => Ok(envelope),
            }
        })
    };
    // A failure below the parser surfaces there as a parse error; report the cause instead.
    match faults.take() {
        Some(fault) => Err(fault),
        None => result,
    }
}

/// How many leading bytes decide between binary, armor, and neither.
const ARMOR_SNIFF: usize = 64;

/// Reads up to `n` bytes (fewer only at end of input).
fn read_prefix(input: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut prefix = Vec::with_capacity(n);
    input.take(n as u64).read_to_end(&mut prefix)?;
    Ok(prefix)
}

/// Armor starts, after optional whitespace, with a `-----BEGIN PGP` line.
fn looks_armored(prefix: &[u8]) -> bool {
    let start = prefix
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(prefix.len());
    let rest = &prefix[start..];
    let marker = b"-----BEGIN PGP";
    rest.len() < marker.len() && marker.starts_with(rest) || rest.starts_with(marker)
}

/// At most this much whitespace may follow an armored message.
const MAX_TRAILING_WHITESPACE: u64 = 64 * 1024;

/// Reads what follows an armored message: whitespace is fine, anything else is refused.
fn only_whitespace_left(rest: &mut dyn Read) -> Result<(), EnvelopeError> {
    let mut seen = 0u64;
    let mut buf = [0u8; 4096];
    loop {
        let n = rest.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        seen += n as u64;
        if seen > MAX_TRAILING_WHITESPACE || !buf[..n].iter().all(u8::is_ascii_whitespace) {
            return Err(EnvelopeError::DataAfterArmor);
        }
    }
}

fn walk_packets<R, W>(
    input: &mut Tee<R, W>,
    recipients: &RecipientSet,
) -> Result<SealedEnvelope, EnvelopeError>
where
    R: Read + Send + Sync,
    W: Write + Send + Sync,
{
    let mut ppr = PacketParserBuilder::from_reader(&mut *input)
        .map_err(parse_error)?
        .dearmor(Dearmor::Disabled)
        .max_packet_size(MAX_HEADER_PACKET)
        .automatic_hashing(false)
        .build()
        .map_err(|e| match parse_error(e) {
            // The very first packet header is unreadable: this was never OpenPGP.
            EnvelopeError::Malformed(_) => EnvelopeError::NotOpenPgp,
            other => other,
        })?;

    let mut pkesks = 0usize;
    let mut pkesk_version = None;
    let mut container = None;
    while let PacketParserResult::Some(pp) = ppr {
        if container.is_some() {
            return Err(EnvelopeError::TrailingData);
        }
        match &pp.packet {
            Packet::PKESK(pkesk) => {
                pkesks += 1;
                if pkesks > MAX_RECIPIENTS {
                    return Err(EnvelopeError::TooManyRecipients);
                }
                recipients.admit(pkesk)?;
                // All session keys of a message are of one version.
                match pkesk_version {
                    Some(v) if v != pkesk.version() => {
                        return Err(EnvelopeError::VersionMismatch {
                            pkesk: pkesk.version(),
                            container: if v == 3 { 1 } else { 2 },
                        })
                    }
                    _ => pkesk_version = Some(pkesk.version()),
                }
            }
            Packet::SEIP(seip) => {
                if pkesks == 0 {
                    return Err(EnvelopeError::NoRecipients);
                }
                let (kind, version, wanted_pkesk) = match seip {
                    SEIP::V1(_) => (Container::SeipdV1, 1, 3),
                    SEIP::V2(_) => (Container::SeipdV2, 2, 6),
                    _ => return Err(EnvelopeError::UnexpectedPacket("SEIPD".into())),
                };
                if let Some(v) = pkesk_version.filter(|v| *v != wanted_pkesk) {
                    return Err(EnvelopeError::VersionMismatch {
                        pkesk: v,
                        container: version,
                    });
                }
                container = Some(kind);
            }
            // Private, reserved or unassigned tags at the very start: not OpenPGP at all.
            Packet::Unknown(u)
                if pkesks == 0
                    && matches!(u.tag(), Tag::Reserved | Tag::Private(_) | Tag::Unknown(_)) =>
            {
                return Err(EnvelopeError::NotOpenPgp)
            }
            other => return Err(classify_unexpected(other)),
        }
        // `next`, not `recurse`: never descend into (try to decrypt) the container.
        ppr = match pp.next() {
            Ok((_, next)) => next,
            // Bytes after the container that do not even parse are still trailing data.
            Err(e) if container.is_some() => {
                return Err(match parse_error(e) {
                    EnvelopeError::Truncated => EnvelopeError::Truncated,
                    _ => EnvelopeError::TrailingData,
                })
            }
            Err(e) => return Err(parse_error(e)),
        };
    }
    drop(ppr);
    let container = container.ok_or(if pkesks == 0 {
        EnvelopeError::NotOpenPgp
    } else {
        EnvelopeError::Truncated
    })?;
    // The parser may stop at the container's end; anything after it must be nothing at all.
    let mut probe = [0u8; 1];
    if input.read(&mut probe)? != 0 {
        return Err(EnvelopeError::TrailingData);
    }
    Ok(SealedEnvelope {
        recipients: pkesks,
        container,
    })
}

fn classify_unexpected(packet: &Packet) -> EnvelopeError {
    match packet {
        Packet::Literal(_) => EnvelopeError::Plaintext,
        Packet::CompressedData(_) => EnvelopeError::Compressed,
        Packet::OnePassSig(_) | Packet::Signature(_) => EnvelopeError::SignedOnly,
        Packet::SKESK(_) => EnvelopeError::PasswordEncrypted,
        Packet::Unknown(u) => match u.tag() {
            Tag::SED => EnvelopeError::NoIntegrityProtection,
            Tag::SKESK => EnvelopeError::PasswordEncrypted,
            Tag::Literal => EnvelopeError::Plaintext,
            Tag::CompressedData => EnvelopeError::Compressed,
            Tag::PKESK | Tag::SEIP => EnvelopeError::Malformed(u.tag().to_string()),
            tag => EnvelopeError::UnexpectedPacket(tag.to_string()),
        },
        other => EnvelopeError::UnexpectedPacket(other.tag().to_string()),
    }
}

/// Maps a sequoia parse error to ours. Sequoia reports truncation as an I/O `UnexpectedEof`
/// or as a "truncated" malformed packet; everything else is a malformed packet.
fn parse_error(e: anyhow::Error) -> EnvelopeError {
    if let Some(io) = e.downcast_ref::<io::Error>() {
        if io.kind() == io::ErrorKind::UnexpectedEof {
            return EnvelopeError::Truncated;
        }
    }
    match e.downcast::<openpgp::Error>() {
        Ok(openpgp::Error::MalformedPacket(m)) if m.to_lowercase().contains("truncated") => {
            EnvelopeError::Truncated
        }
        Ok(openpgp::Error::MalformedPacket(m)) => EnvelopeError::Malformed(m),
        Ok(other) => EnvelopeError::Malformed(other.to_string()),
        Err(other) => EnvelopeError::Malformed(other.to_string()),
    }
}

/// The first failure below the packet parser, by layer. The parser turns these into its own
/// errors; we keep the original so a dropped connection is not blamed on the sender's bytes.
#[derive(Default, Clone)]
struct Faults(Arc<Mutex<FaultSlots>>);

#[derive(Default)]
struct FaultSlots {
    transport: Option<io::Error>,
    sink: Option<io::Error>,
    armor: Option<String>,
}

impl Faults {
    fn record(&self, f: impl FnOnce(&mut FaultSlots)) {
        if let Ok(mut slots) = self.0.lock() {
            f(&mut slots)
        }
    }

    /// The most basic fault wins: a broken transport explains a broken armor stream.
    fn take(&self) -> Option<EnvelopeError> {
        let mut slots = self.0.lock().ok()?;
        if let Some(e) = slots.transport.take() {
            return Some(EnvelopeError::Io(e));
        }
        if let Some(e) = slots.sink.take() {
            return Some(EnvelopeError::Io(e));
        }
        slots.armor.take().map(EnvelopeError::BadArmor)
    }
}

/// Which layer a [`Recorded`] reader stands for.
#[derive(Clone, Copy)]
enum Layer {
    Transport,
    Armor,
}

/// A reader that notes its first error in [`Faults`] before passing it on.
struct Recorded<R> {
    inner: R,
    layer: Layer,
    faults: Faults,
}

impl<R> Recorded<R> {
    fn transport(inner: R, faults: &Faults) -> Self {
        Recorded {
            inner,
            layer: Layer::Transport,
            faults: faults.clone(),
        }
    }

    fn armor(inner: R, faults: &Faults) -> Self {
        Recorded {
            inner,
            layer: Layer::Armor,
            faults: faults.clone(),
        }
    }
}

impl<R: Read> Read for Recorded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            let copy = io::Error::new(e.kind(), e.to_string());
            self.faults.record(|slots| match self.layer {
                Layer::Transport => {
                    slots.transport.get_or_insert(copy);
                }
                Layer::Armor => {
                    slots.armor.get_or_insert(e.to_string());
                }
            });
        })
    }
}

/// A reader that copies everything read through it into a sink.
struct Tee<R, W> {
    inner: R,
    sink: W,
    faults: Faults,
}

impl<R: Read, W: Write> Tee<R, W> {
    fn new(inner: R, sink: W, faults: &Faults) -> Self {
        Tee {
            inner,
            sink,
            faults: faults.clone(),
        }
    }
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.write_all(&buf[..n]).inspect_err(|e| {
            let copy = io::Error::new(e.kind(), e.to_string());
            self.faults.record(|slots| {
                slots.sink.get_or_insert(copy);
            });
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
