//! The sealed report file, `resguardo.sealed-report/1` (`docs/uploads-v1.md`, part 2): a report
//! sealed now and sent later, from any device, by whoever carries the file.
//!
//! ```text
//! resguardo.sealed-report/1\n
//! triage: <base64 of the sealed triage envelope> | triage: -\n
//! conversation: <the Resguardo-Conversation value> | conversation: -\n
//! touch: <the Resguardo-Conversation-Touch value> | touch: -\n
//! \n
//! <the OpenPGP message, binary, to the end of the file>
//! ```
//!
//! This module owns the format: a strict reader that streams (the header, at most
//! [`MAX_HEADER_BYTES`], is read line by line; the message is never held in memory, only
//! measured or copied) and a writer. Each refusal is one [`SealedFileError`], whose
//! [`SealedFileError::code`] the page's reader (`static/js/sealed.js`) gives as `error.code` for
//! the same file; `tests/vectors/sealed-reports/` pins both. The values are checked exactly as the
//! gateway's header parsers check them ([`crate::triage::check_sealed`]'s encoding and size,
//! [`NewConversation::from_header`], [`crate::replies::touched_locator`]); whether the triage
//! envelope and the message are really sealed to this gateway's couriers and reviewers is the
//! gateway's check, at upload.
//!
//! The order of the checks is part of the format (both readers follow it, so a file with several
//! faults gets the same error from both): the first line's prefix, the end of each line (a file
//! that ends inside the header is [`SealedFileError::Truncated`], a header that reaches
//! [`MAX_HEADER_BYTES`] without its blank line [`SealedFileError::HeaderTooLong`]), a carriage
//! return in a line, the version, then each line in turn (its name, then its value), the two
//! conversation lines together, the blank line, and last the message's length.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use base64::Engine as _;

use crate::replies::{self, Locator, NewConversation};

/// The first line of every sealed report file (without its LF).
pub const FORMAT: &str = "resguardo.sealed-report/1";

/// What every version's first line begins with: a file that begins otherwise is not one.
const FORMAT_PREFIX: &[u8] = b"resguardo.sealed-report/";

/// The header (from the first line to the blank line, both included) is at most this long.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The largest message a reader accepts unless told a smaller limit: the largest
/// `limits.max_submission_bytes` a gateway may be configured with.
pub const MAX_MESSAGE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The longest triage value: base64 of [`crate::triage::MAX_SEALED_BYTES`].
const MAX_TRIAGE_CHARS: usize = crate::triage::MAX_SEALED_BYTES.div_ceil(3) * 4;

/// What travels beside the message as request headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealedHeader {
    /// The triage envelope sealed to the couriers (the bytes, not the base64).
    pub triage: Option<Vec<u8>>,
    /// The conversation the report starts (locator and locked reply key).
    pub conversation: Option<NewConversation>,
    /// The conversation a follow-up continues.
    pub touch: Option<Locator>,
}

/// Why a file is not a sealed report this reader accepts.
#[derive(Debug, thiserror::Error)]
pub enum SealedFileError {
    /// It does not begin with `resguardo.sealed-report/`.
    #[error("not a sealed report file (it does not begin with {FORMAT})")]
    NotSealedReport,
    /// A sealed report of another version than 1.
    #[error("a sealed report file of another version than {FORMAT}: update this program")]
    UnsupportedVersion,
    /// The file ends inside the header (cut short, or empty).
    #[error("the sealed report file is cut short (it ends inside its header)")]
    Truncated,
    /// No blank line within the first [`MAX_HEADER_BYTES`] bytes.
    #[error("the sealed report file's header is longer than {MAX_HEADER_BYTES} bytes")]
    HeaderTooLong,
    /// A carriage return in the header (a text transfer turned LF into CR LF).
    #[error("the sealed report file's header has CR LF line ends (it was altered as text; copy it as a binary file)")]
    Crlf,
    /// A header line is not the one expected at its place (`<name>: <value>`, or the blank
    /// line).
    #[error("the sealed report file's header is malformed: expected the {expected} line")]
    BadLine {
        /// The line expected: `triage`, `conversation`, `touch` or `blank`.
        expected: &'static str,
    },
    /// The triage value is not canonical base64 of 1 to 6144 bytes.
    #[error("the sealed report file's triage line is malformed")]
    BadTriage,
    /// The conversation value is not a locator and a locked reply key.
    #[error("the sealed report file's conversation line is malformed")]
    BadConversation,
    /// The touch value is not a locator (64 lowercase hex digits).
    #[error("the sealed report file's touch line is malformed")]
    BadTouch,
    /// Both a conversation to start and one to continue: a report does one or the other.
    #[error("the sealed report file both starts and continues a conversation")]
    ConversationAndTouch,
    /// Nothing after the header.
    #[error("the sealed report file holds no message after its header")]
    EmptyMessage,
    /// The message is longer than the limit.
    #[error("the sealed message is larger than {limit} bytes")]
    MessageTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl SealedFileError {
    /// The error's name, as the page's reader gives it (`error.code`) and the vectors expect it.
    pub fn code(&self) -> &'static str {
        match self {
            SealedFileError::NotSealedReport => "not_sealed_report",
            SealedFileError::UnsupportedVersion => "unsupported_version",
            SealedFileError::Truncated => "truncated",
            SealedFileError::HeaderTooLong => "header_too_long",
            SealedFileError::Crlf => "crlf",
            SealedFileError::BadLine { .. } => "bad_line",
            SealedFileError::BadTriage => "bad_triage",
            SealedFileError::BadConversation => "bad_conversation",
            SealedFileError::BadTouch => "bad_touch",
            SealedFileError::ConversationAndTouch => "conversation_and_touch",
            SealedFileError::EmptyMessage => "empty_message",
            SealedFileError::MessageTooLarge { .. } => "message_too_large",
            SealedFileError::Io(_) => "io",
        }
    }
}

impl SealedHeader {
    /// The header's bytes, from the first line to the blank line.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SealedFileError> {
        let triage = match &self.triage {
            None => "-".to_string(),
            Some(sealed) if sealed.is_empty() || sealed.len() > crate::triage::MAX_SEALED_BYTES => {
                return Err(SealedFileError::BadTriage)
            }
            Some(sealed) => crate::triage::header_value(sealed),
        };
        if self.conversation.is_some() && self.touch.is_some() {
            return Err(SealedFileError::ConversationAndTouch);
        }
        let conversation = self
            .conversation
            .as_ref()
            .map_or_else(|| "-".to_string(), NewConversation::header_value);
        let touch = self
            .touch
            .as_ref()
            .map_or_else(|| "-".to_string(), Locator::to_string);
        Ok(
            format!("{FORMAT}\ntriage: {triage}\nconversation: {conversation}\ntouch: {touch}\n\n")
                .into_bytes(),
        )
    }
}

/// Writes a sealed report file: the header, then exactly `len` bytes of `message` (at least one,
/// at most [`MAX_MESSAGE_BYTES`]). Returns the bytes written. Nothing is written when the header
/// or the length is refused; a `message` shorter than `len` is an error after the header.
pub fn write(
    out: &mut impl Write,
    header: &SealedHeader,
    message: impl Read,
    len: u64,
) -> Result<u64, SealedFileError> {
    check_message_len(len, MAX_MESSAGE_BYTES)?;
    let head = header.to_bytes()?;
    out.write_all(&head)?;
    let copied = io::copy(&mut message.take(len), out)?;
    if copied != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the message ended after {copied} of {len} bytes"),
        )
        .into());
    }
    Ok(head.len() as u64 + len)
}

/// Refuses an empty message or one over `limit`.
pub fn check_message_len(len: u64, limit: u64) -> Result<(), SealedFileError> {
    if len == 0 {
        return Err(SealedFileError::EmptyMessage);
    }
    if len > limit {
        return Err(SealedFileError::MessageTooLarge { limit });
    }
    Ok(())
}

/// Reads the header from `reader` (nothing past its blank line is consumed from `reader`'s
/// point of view: a `BufReader` may hold more). Returns it and its length in bytes.
pub fn read_header<R: BufRead>(reader: &mut R) -> Result<(SealedHeader, u64), SealedFileError> {
    let mut lines = Lines {
        inner: reader.take(MAX_HEADER_BYTES as u64),
        consumed: 0,
    };
    let first = lines.raw()?;
    let n = first.len().min(FORMAT_PREFIX.len());
    if first[..n] != FORMAT_PREFIX[..n] {
        return Err(SealedFileError::NotSealedReport);
    }
    if lines.terminated(first)? != FORMAT.as_bytes() {
        return Err(SealedFileError::UnsupportedVersion);
    }
    let triage = match value(&lines.line()?, "triage")? {
        None => None,
        Some(v) => Some(triage_value(v)?),
    };
    let conversation = match value(&lines.line()?, "conversation")? {
        None => None,
        Some(v) => {
            Some(NewConversation::from_header(v).map_err(|_| SealedFileError::BadConversation)?)
        }
    };
    let touch = match value(&lines.line()?, "touch")? {
        None => None,
        Some(v) => Some(replies::touched_locator(v).map_err(|_| SealedFileError::BadTouch)?),
    };
    if conversation.is_some() && touch.is_some() {
        return Err(SealedFileError::ConversationAndTouch);
    }
    if !lines.line()?.is_empty() {
        return Err(SealedFileError::BadLine { expected: "blank" });
    }
    let header = SealedHeader {
        triage,
        conversation,
        touch,
    };
    Ok((header, lines.consumed as u64))
}

/// Reads a whole sealed report from `reader`, copying its message into `message` as it streams
/// (at most `limit` bytes are copied); returns the header and the message's length.
pub fn read(
    reader: impl Read,
    limit: u64,
    message: &mut impl Write,
) -> Result<(SealedHeader, u64), SealedFileError> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let (header, _) = read_header(&mut reader)?;
    let mut bounded = (&mut reader).take(limit);
    let copied = io::copy(&mut bounded, message)?;
    let mut past = [0u8; 1];
    if copied == limit && reader.read(&mut past)? > 0 {
        return Err(SealedFileError::MessageTooLarge { limit });
    }
    check_message_len(copied, limit)?;
    Ok((header, copied))
}

/// A sealed report file, opened: its header read and checked, its message measured.
#[derive(Debug)]
pub struct SealedFile {
    /// What travels as headers.
    pub header: SealedHeader,
    /// The file.
    pub file: File,
    /// Where the message begins in it.
    pub offset: u64,
    /// The message's length.
    pub len: u64,
}

/// Opens the sealed report file at `path`, reads its header and checks its message's length
/// against `limit` (the gateway's `max_submission_bytes`, or [`MAX_MESSAGE_BYTES`]).
pub fn open(path: &Path, limit: u64) -> Result<SealedFile, SealedFileError> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let (header, offset) = read_header(&mut BufReader::with_capacity(8 * 1024, &file))?;
    let len = size.saturating_sub(offset);
    check_message_len(len, limit)?;
    Ok(SealedFile {
        header,
        file,
        offset,
        len,
    })
}

/// The header's lines, read through a bound of [`MAX_HEADER_BYTES`].
struct Lines<R> {
    inner: io::Take<R>,
    consumed: usize,
}

impl<R: BufRead> Lines<R> {
    /// The next line as read, with its LF if it has one.
    fn raw(&mut self) -> Result<Vec<u8>, SealedFileError> {
        let mut line = Vec::new();
        self.inner.read_until(b'\n', &mut line)?;
        self.consumed += line.len();
        Ok(line)
    }

    /// A raw line without its LF; one without is the end of the file or of the bound.
    fn terminated(&self, mut line: Vec<u8>) -> Result<Vec<u8>, SealedFileError> {
        if line.pop() != Some(b'\n') {
            return Err(if self.consumed >= MAX_HEADER_BYTES {
                SealedFileError::HeaderTooLong
            } else {
                SealedFileError::Truncated
            });
        }
        if line.contains(&b'\r') {
            return Err(SealedFileError::Crlf);
        }
        Ok(line)
    }

    fn line(&mut self) -> Result<Vec<u8>, SealedFileError> {
        let raw = self.raw()?;
        self.terminated(raw)
    }
}

/// The value of a `<name>: <value>` line; `None` for `-`.
fn value<'a>(line: &'a [u8], name: &'static str) -> Result<Option<&'a [u8]>, SealedFileError> {
    let value = line
        .strip_prefix(name.as_bytes())
        .and_then(|rest| rest.strip_prefix(b": "))
        .ok_or(SealedFileError::BadLine { expected: name })?;
    Ok((value != b"-").then_some(value))
}

/// Canonical padded base64 of 1 to [`crate::triage::MAX_SEALED_BYTES`] bytes.
fn triage_value(value: &[u8]) -> Result<Vec<u8>, SealedFileError> {
    if value.len() > MAX_TRIAGE_CHARS {
        return Err(SealedFileError::BadTriage);
    }
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| SealedFileError::BadTriage)?;
    if sealed.is_empty() || sealed.len() > crate::triage::MAX_SEALED_BYTES {
        return Err(SealedFileError::BadTriage);
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SealedHeader {
        SealedHeader {
            triage: Some(vec![0xc1; 700]),
            conversation: Some(NewConversation {
                locator: Locator([7; 32]),
                sealed_box: vec![9; replies::BOX_BYTES],
            }),
            touch: None,
        }
    }

    fn file(header: &SealedHeader, message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, header, message, message.len() as u64).expect("write");
        out
    }

    fn code(bytes: &[u8], limit: u64) -> &'static str {
        read(bytes, limit, &mut io::sink())
            .err()
            .map_or("ok", |e| e.code())
    }

    #[test]
    fn what_is_written_reads_back() {
        for header in [header(), SealedHeader::default()] {
            let bytes = file(&header, b"\xc1message");
            let mut message = Vec::new();
            let (back, len) = read(&bytes[..], 100, &mut message).expect("read");
            assert_eq!((back, len, &message[..]), (header, 8, &b"\xc1message"[..]));
        }
    }

    #[test]
    fn the_message_is_bounded_and_never_empty() {
        let bytes = file(&header(), &[1; 10]);
        assert_eq!(code(&bytes, 10), "ok");
        assert_eq!(code(&bytes, 9), "message_too_large");
        let head = header().to_bytes().unwrap();
        assert_eq!(code(&head, 10), "empty_message");
        assert!(matches!(
            write(&mut Vec::new(), &header(), &b""[..], 0),
            Err(SealedFileError::EmptyMessage)
        ));
    }

    #[test]
    fn every_cut_inside_the_header_is_truncated_or_not_a_report() {
        let bytes = file(&header(), b"x");
        let head = header().to_bytes().unwrap().len();
        for cut in 0..head {
            let got = code(&bytes[..cut], 100);
            assert_eq!(got, "truncated", "cut at {cut}");
        }
        assert_eq!(code(b"resguardo.sealed", 100), "truncated");
        assert_eq!(code(b"resguardo.sealed\n", 100), "not_sealed_report");
        assert_eq!(code(b"\xc1\x0c\x03", 100), "not_sealed_report");
    }

    #[test]
    fn a_header_without_end_is_too_long_not_read_on() {
        let mut bytes = format!("{FORMAT}\ntriage: ").into_bytes();
        bytes.resize(MAX_HEADER_BYTES * 4, b'A');
        assert_eq!(code(&bytes, 100), "header_too_long");
    }

    #[test]
    fn both_conversations_are_refused_by_reader_and_writer() {
        let mut both = header();
        both.touch = Some(Locator([1; 32]));
        assert!(matches!(
            both.to_bytes(),
            Err(SealedFileError::ConversationAndTouch)
        ));
    }

    #[test]
    fn a_file_opens_with_its_message_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealed.bin");
        std::fs::write(&path, file(&header(), b"abc")).unwrap();
        let opened = open(&path, 3).expect("open");
        assert_eq!(opened.len, 3);
        assert_eq!(opened.offset, header().to_bytes().unwrap().len() as u64);
        assert!(matches!(
            open(&path, 2),
            Err(SealedFileError::MessageTooLarge { limit: 2 })
        ));
    }
}
