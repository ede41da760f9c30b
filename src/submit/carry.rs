//! Seal now, send later, on the command line (`docs/uploads-v1.md` §2): what `--sealed FILE`
//! sends (a sealed report file, or a bare OpenPGP message sealed with gpg or sq), and the sealed
//! report file `--save-sealed FILE` writes instead of sending. The format is
//! [`crate::sealed_file`]'s; nothing here touches the network.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use super::resumable::Message;
use super::{Conversation, SealedReport, SubmitError};
use crate::sealed_file::{self, SealedFileError, SealedHeader};

/// A sealed message ready to send, with what goes beside it.
pub struct Outgoing {
    /// The file holding the message.
    pub file: File,
    /// Where the message begins in it.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// The sealed triage envelope, if any.
    pub triage: Option<Vec<u8>>,
    /// What the report does in a conversation.
    pub conversation: Conversation,
    /// Whether it came from a sealed report file (else a bare OpenPGP message).
    pub from_report_file: bool,
}

impl Outgoing {
    /// The message, for [`super::GatewayClient::send_message`].
    pub fn message(&self) -> Message<'_> {
        Message {
            file: &self.file,
            offset: self.offset,
            len: self.len,
        }
    }
}

/// Opens what `--sealed FILE` names, checked before anything is sent. A file that begins as an
/// OpenPGP message does (a binary packet tag, or the armor's first line) is sent as it is, without
/// a triage envelope or a conversation; anything else must be a sealed report file, read
/// strictly ([`sealed_file::open`]). `limit` is the gateway's `max_submission_bytes`.
pub fn open_sealed_input(path: &Path, limit: u64) -> Result<Outgoing, SubmitError> {
    let input = |reason: String| SubmitError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let mut start = Vec::with_capacity(16);
    File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut start))
        .map_err(|e| input(e.to_string()))?;
    if start.first().is_some_and(|b| b & 0x80 != 0) || start.starts_with(b"-----BEGIN PGP") {
        let file = super::open_sealed_file(path, limit)?;
        let len = file.metadata().map_err(|e| input(e.to_string()))?.len();
        return Ok(Outgoing {
            file,
            offset: 0,
            len,
            triage: None,
            conversation: Conversation::None,
            from_report_file: false,
        });
    }
    let opened = sealed_file::open(path, sealed_file::MAX_MESSAGE_BYTES).map_err(|e| match e {
        SealedFileError::NotSealedReport => input(format!("{e}, nor an OpenPGP message")),
        other => input(other.to_string()),
    })?;
    if opened.len > limit {
        return Err(SubmitError::TooLarge {
            size: opened.len,
            limit,
        });
    }
    let conversation = match (opened.header.conversation, opened.header.touch) {
        (Some(start), _) => Conversation::Start(start),
        (None, Some(locator)) => Conversation::FollowUp(locator),
        (None, None) => Conversation::None,
    };
    Ok(Outgoing {
        file: opened.file,
        offset: opened.offset,
        len: opened.len,
        triage: opened.header.triage,
        conversation,
        from_report_file: true,
    })
}

/// Writes `sealed` with what goes beside it as a new sealed report file at `out` (mode 0600,
/// synced), for `--save-sealed`. Returns its size. A file already at `out` is left alone
/// (`AlreadyExists`); a file half written is removed.
pub fn save_sealed(
    out: &Path,
    sealed: &SealedReport,
    conversation: &Conversation,
) -> io::Result<u64> {
    use std::os::unix::fs::OpenOptionsExt;
    let header = SealedHeader {
        triage: sealed.triage.clone(),
        conversation: match conversation {
            Conversation::Start(start) => Some(start.clone()),
            _ => None,
        },
        touch: match conversation {
            Conversation::FollowUp(locator) => Some(*locator),
            _ => None,
        },
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)?;
    let written = (|| {
        let mut writer = io::BufWriter::with_capacity(1024 * 1024, &file);
        let message = super::resumable::Section::new(Message {
            file: &sealed.file,
            offset: 0,
            len: sealed.size,
        });
        let size =
            sealed_file::write(&mut writer, &header, message, sealed.size).map_err(
                |e| match e {
                    SealedFileError::Io(e) => e,
                    other => io::Error::other(other.to_string()),
                },
            )?;
        writer.flush()?;
        drop(writer);
        file.sync_all()?;
        Ok(size)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(out);
    }
    written
}
