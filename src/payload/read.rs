//! The strict payload v1 reader, for the reviewers' offline machine.
//!
//! Everything here is attacker-controlled: anyone can submit. The reader accepts exactly the
//! layout of `docs/payload-v1.md` and nothing else, counts every byte against a bound (so a
//! compressed message cannot expand without limit), and hands each attachment to a sink only as a
//! stream whose length and SHA-256 are checked against `report.json` before the caller may keep it.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;
use crate::hashing::{hashed_copy, CopyError};
use crate::tarfmt;

/// Why a plaintext is not an acceptable payload v1.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The first entry is not `report.json`; holds its name, made printable (or "an empty
    /// archive").
    #[error("report.json is missing (the archive starts with {0:?})")]
    MissingReport(String),
    /// `report.json` is not a plain file, is too large, is not the expected JSON, or breaks
    /// one of the spec's bounds ([`validate`]).
    #[error("report.json is invalid: {0}")]
    BadReport(String),
    /// An entry after the attachments other than `padding`, or non-zero data after the end
    /// of the archive; holds the entry's name, made printable.
    #[error("unexpected archive entry {0:?}")]
    UnexpectedEntry(String),
    /// An attachment entry is missing, misnamed, not a plain file, or differs in size or
    /// SHA-256 from what `report.json` says.
    #[error("attachment {index} ({path}): {reason}")]
    BadAttachment {
        /// Position in `report.json`'s `attachments`, counted from 1.
        index: usize,
        /// The archive entry `report.json` names for it.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The plaintext, or the attachments `report.json` announces, exceed the reader's bound
    /// (held here, in bytes).
    #[error("the payload is larger than the bound of {0} bytes")]
    TooLarge(u64),
    /// Not a valid tar archive, or cut short.
    #[error("the payload is truncated or not a valid archive: {0}")]
    Malformed(String),
    /// Writing to the sink failed, or reading failed for a reason other than the archive.
    #[error(transparent)]
    Io(io::Error),
}

impl PayloadError {
    /// A short stable reason, for the summary table.
    pub fn reason(&self) -> &'static str {
        match self {
            PayloadError::MissingReport(_) => "report.json missing",
            PayloadError::BadReport(_) => "report.json invalid",
            PayloadError::UnexpectedEntry(_) => "unexpected archive entry",
            PayloadError::BadAttachment { .. } => "attachment does not match its report",
            PayloadError::TooLarge(_) => "payload over its bound",
            PayloadError::Malformed(_) => "payload archive malformed",
            PayloadError::Io(_) => "I/O error",
        }
    }
}

/// Where the reader delivers attachment contents, and a plaintext that is not an archive.
pub trait AttachmentSink {
    /// A writer for attachment `index` (0-based) as the (already validated) report describes it.
    fn open(&mut self, index: usize, attachment: &Attachment) -> io::Result<Box<dyn Write + '_>>;
    /// A writer for a plaintext that is not an archive at all, streamed through whole (never
    /// held in memory: a compressed message can expand to gigabytes).
    fn raw(&mut self) -> io::Result<Box<dyn Write + '_>>;
}

/// What a plaintext turned out to be.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per submission, moved once: boxing buys nothing
pub enum Plaintext {
    /// A payload v1 whose attachments were all delivered to the sink and verified.
    Report(Report),
    /// Not a tar archive at all (e.g. a text someone encrypted with gpg): delivered to
    /// [`AttachmentSink::raw`], `size` bytes, within the bound.
    Raw {
        /// Bytes delivered to the raw sink.
        size: u64,
    },
}

/// Reads a decrypted plaintext. `max_total` bounds every byte read, padding included.
pub fn read_plaintext<R: Read>(
    input: R,
    max_total: u64,
    sink: &mut dyn AttachmentSink,
) -> Result<Plaintext, PayloadError> {
    let exceeded = Arc::new(AtomicBool::new(false));
    let mut input = Bounded {
        inner: input,
        remaining: max_total,
        exceeded: exceeded.clone(),
    };
    let result = read_bounded(&mut input, max_total, sink);
    // Whatever error the bound caused further up, the bound is the reason.
    match result {
        Err(_) if exceeded.load(Ordering::Relaxed) => Err(PayloadError::TooLarge(max_total)),
        other => other,
    }
}

fn read_bounded<R: Read>(
    input: &mut R,
    max_total: u64,
    sink: &mut dyn AttachmentSink,
) -> Result<Plaintext, PayloadError> {
    let mut head = Vec::with_capacity(512);
    input.take(512).read_to_end(&mut head).map_err(tar_error)?;
    if !is_tar_header(&head) {
        let mut out = sink.raw().map_err(PayloadError::Io)?;
        out.write_all(&head).map_err(PayloadError::Io)?;
        let mut size = head.len() as u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = input.read(&mut buf).map_err(tar_error)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(PayloadError::Io)?;
            size += n as u64;
        }
        out.flush().map_err(PayloadError::Io)?;
        return Ok(Plaintext::Raw { size });
    }
    let chained = io::Cursor::new(head).chain(input);
    let report = read_archive(chained, max_total, sink)?;
    Ok(Plaintext::Report(report))
}

fn read_archive<R: Read>(
    input: R,
    max_total: u64,
    sink: &mut dyn AttachmentSink,
) -> Result<Report, PayloadError> {
    let mut archive = tar::Archive::new(input);
    let mut entries = archive
        .entries()
        .map_err(|e| PayloadError::Malformed(e.to_string()))?
        .raw(true);

    let mut first = next_entry(&mut entries)?
        .ok_or_else(|| PayloadError::MissingReport("an empty archive".into()))?;
    let name = tarfmt::raw_name(&first);
    if name != REPORT_NAME.as_bytes() {
        return Err(PayloadError::MissingReport(tarfmt::display_name(&name)));
    }
    if let Some(problem) = tarfmt::plain_file_problem(&first) {
        return Err(PayloadError::BadReport(problem));
    }
    if first.size() > MAX_REPORT_BYTES {
        return Err(PayloadError::BadReport(format!(
            "larger than {} KiB",
            MAX_REPORT_BYTES / 1024
        )));
    }
    let mut json = Vec::new();
    (&mut first)
        .take(MAX_REPORT_BYTES)
        .read_to_end(&mut json)
        .map_err(tar_error)?;
    if (json.len() as u64) < first.size() {
        return Err(PayloadError::Malformed("report.json is cut short".into()));
    }
    drop(first);
    let report: Report =
        serde_json::from_slice(&json).map_err(|e| PayloadError::BadReport(e.to_string()))?;
    validate(&report, max_total)?;

    for (index, attachment) in report.attachments.iter().enumerate() {
        let bad = |reason: String| PayloadError::BadAttachment {
            index: index + 1,
            path: attachment.path.clone(),
            reason,
        };
        let mut entry =
            next_entry(&mut entries)?.ok_or_else(|| bad("missing from the archive".into()))?;
        let name = tarfmt::raw_name(&entry);
        if name != attachment.path.as_bytes() {
            return Err(bad(format!(
                "the archive has {:?} in its place",
                tarfmt::display_name(&name)
            )));
        }
        if let Some(problem) = tarfmt::plain_file_problem(&entry) {
            return Err(bad(problem));
        }
        if entry.size() != attachment.size {
            return Err(bad(format!(
                "report.json says {} bytes, the archive holds {}",
                attachment.size,
                entry.size()
            )));
        }
        let out = sink.open(index, attachment).map_err(PayloadError::Io)?;
        let copied = hashed_copy(&mut entry, out).map_err(|e| match e {
            CopyError::Read(e) => tar_error(e),
            CopyError::Write(e) => PayloadError::Io(e),
        })?;
        if copied.size != attachment.size {
            return Err(PayloadError::Malformed(format!(
                "{} is cut short ({} of {} bytes)",
                attachment.path, copied.size, attachment.size
            )));
        }
        if copied.sha256 != attachment.sha256 {
            return Err(bad("its SHA-256 differs from report.json".into()));
        }
    }

    if let Some(mut entry) = next_entry(&mut entries)? {
        let name = tarfmt::raw_name(&entry);
        if name != PADDING_NAME.as_bytes() || tarfmt::plain_file_problem(&entry).is_some() {
            return Err(PayloadError::UnexpectedEntry(tarfmt::display_name(&name)));
        }
        io::copy(&mut entry, &mut io::sink()).map_err(tar_error)?;
    }
    if let Some(extra) = next_entry(&mut entries)? {
        return Err(PayloadError::UnexpectedEntry(tarfmt::display_name(
            &tarfmt::raw_name(&extra),
        )));
    }
    // After the end-of-archive blocks only zero blocks may follow.
    let mut rest = archive.into_inner();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = rest.read(&mut buf).map_err(tar_error)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(PayloadError::UnexpectedEntry(
                "data after the end of the archive".into(),
            ));
        }
    }
    Ok(report)
}

/// Checks every field of `report.json` against the spec's bounds.
pub fn validate(report: &Report, max_total: u64) -> Result<(), PayloadError> {
    let bad = |m: String| Err(PayloadError::BadReport(m));
    if report.schema != SCHEMA {
        return bad(format!("unknown schema {:?}", clip(&report.schema)));
    }
    let lang_ok = (2..=35).contains(&report.language.len())
        && report
            .language
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !lang_ok {
        return bad(format!("bad language tag {:?}", clip(&report.language)));
    }
    if let Some(by) = &report.sealed_by {
        if !matches!(by.as_str(), "browser" | "gateway" | "terminal") {
            return bad(format!("unknown sealed_by {:?}", clip(by)));
        }
    }
    if let Some(answer) = report.fields.get(URGENT_FIELD) {
        if !matches!(answer, FieldValue::Text(t) if t == "yes" || t == "no") {
            return bad(format!("field {URGENT_FIELD} must be \"yes\" or \"no\""));
        }
    }
    if report.fields.len() > MAX_FIELDS {
        return bad(format!("more than {MAX_FIELDS} fields"));
    }
    for (key, value) in &report.fields {
        if !is_valid_field_id(key) {
            return bad(format!("bad field id {:?}", clip(key)));
        }
        let texts: Vec<&String> = match value {
            FieldValue::Text(t) => vec![t],
            FieldValue::Choices(list) if list.len() <= 64 => list.iter().collect(),
            FieldValue::Choices(_) => return bad(format!("field {key} has more than 64 values")),
        };
        if texts.iter().any(|t| t.chars().count() > MAX_FIELD_CHARS) {
            return bad(format!(
                "field {key} is longer than {MAX_FIELD_CHARS} characters"
            ));
        }
    }
    if report.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return bad(format!(
            "the description is longer than {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    if report.attachments.len() > MAX_ATTACHMENTS {
        return bad(format!("more than {MAX_ATTACHMENTS} attachments"));
    }
    if let Some(token) = report.conversation.as_ref().and_then(|c| c.token.as_ref()) {
        let hex_ok = token.len() == 64
            && token
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hex_ok {
            return bad("the conversation token is not 64 lowercase hex characters".into());
        }
    }
    if let Some(key) = report
        .conversation
        .as_ref()
        .and_then(|c| c.reply_key.as_ref())
    {
        if key.chars().count() > super::MAX_REPLY_KEY_CHARS
            || !key.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        {
            return bad("the reply key is not an armored certificate of at most 8 KiB".into());
        }
    }
    let mut paths = HashSet::new();
    let mut total = 0u64;
    for (i, a) in report.attachments.iter().enumerate() {
        let expected_prefix = format!("files/{:03}", i + 1);
        if !is_valid_attachment_path(&a.path)
            || !a.path.starts_with(&expected_prefix)
            || !paths.insert(a.path.as_str())
        {
            return bad(format!(
                "attachment {} has a bad path {:?}",
                i + 1,
                clip(&a.path)
            ));
        }
        if a.name.chars().count() > MAX_NAME_CHARS {
            return bad(format!("attachment {} has an over-long name", i + 1));
        }
        let media_ok = !a.media_type.is_empty()
            && a.media_type.len() <= MAX_MEDIA_TYPE_CHARS
            && a.media_type.bytes().all(|b| b.is_ascii_graphic());
        if !media_ok {
            return bad(format!("attachment {} has a bad media type", i + 1));
        }
        let sha_ok = a.sha256.len() == 64
            && a.sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !sha_ok {
            return bad(format!("attachment {} has a malformed sha256", i + 1));
        }
        total = total.saturating_add(a.size);
        if total > max_total {
            return Err(PayloadError::TooLarge(max_total));
        }
    }
    Ok(())
}

/// At most 40 characters of attacker text in an error message, without control characters.
fn clip(s: &str) -> String {
    s.chars()
        .take(40)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A ustar header, or the zero block that starts an empty archive.
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let Ok(header) = tar::Header::from_byte_slice(&block[..512]).cksum() else {
        return false;
    };
    let sum: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    header == sum && &block[257..262] == b"ustar"
}

fn next_entry<'a, R: Read + 'a>(
    entries: &mut tar::Entries<'a, R>,
) -> Result<Option<tar::Entry<'a, R>>, PayloadError> {
    entries.next().transpose().map_err(tar_error)
}

fn tar_error(e: io::Error) -> PayloadError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::Other => {
            PayloadError::Malformed(e.to_string())
        }
        _ => PayloadError::Io(e),
    }
}

/// A reader that fails once more than its bound has been read, and says so in `exceeded`.
struct Bounded<R> {
    inner: R,
    remaining: u64,
    exceeded: Arc<AtomicBool>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Exactly at the bound is fine only if the input ends here.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.exceeded.store(true, Ordering::Relaxed);
                    Err(io::Error::other("payload over its bound"))
                }
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
