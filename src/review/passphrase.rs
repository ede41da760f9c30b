//! Reading a key's passphrase: from the terminal without echo, or from a file. Never from argv,
//! where any local user could read it in the process list.

use std::io::{self, IsTerminal};
use std::path::Path;

use sequoia_openpgp::crypto::Password;
use zeroize::Zeroizing;

/// Bound on a passphrase file: a passphrase, not a document.
const MAX_PASSPHRASE_FILE: u64 = 4096;

/// Why no passphrase was obtained.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    /// The passphrase file could not be inspected or read.
    #[error("{path}: cannot read the passphrase file: {source}")]
    File {
        /// The file, as given on the command line.
        path: String,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The passphrase file is over 4096 bytes.
    #[error("{0}: the passphrase file is larger than 4 KiB")]
    TooLarge(String),
    /// The passphrase file's first line is empty (or the file is).
    #[error("{0}: the passphrase file is empty")]
    EmptyFile(String),
    /// Neither stdin nor `/dev/tty` is a terminal to prompt on.
    #[error("no terminal to ask for the passphrase; use --passphrase-file")]
    NoTerminal,
    /// Reading from the terminal failed.
    #[error("cannot read the passphrase: {0}")]
    Terminal(io::Error),
    /// The two entries of a new passphrase differ.
    #[error("the passphrases do not match")]
    Mismatch,
    /// A new passphrase has fewer characters than this minimum.
    #[error("the passphrase is too short (at least {0} characters)")]
    TooShort(usize),
}

/// The first line of `path`, without its line ending.
pub fn from_file(path: &Path) -> Result<Password, PassphraseError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| PassphraseError::File {
        path: name.clone(),
        source,
    })?;
    if meta.len() > MAX_PASSPHRASE_FILE {
        return Err(PassphraseError::TooLarge(name));
    }
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| PassphraseError::File {
                path: name.clone(),
                source,
            })?,
        );
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(PassphraseError::EmptyFile(name));
    }
    Ok(Password::from(line))
}

/// Asks on the terminal (no echo).
pub fn ask(prompt: &str) -> Result<Password, PassphraseError> {
    if !io::stdin().is_terminal() && !Path::new("/dev/tty").exists() {
        return Err(PassphraseError::NoTerminal);
    }
    let answer = Zeroizing::new(rpassword::prompt_password(prompt).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENXIO) {
            PassphraseError::NoTerminal
        } else {
            PassphraseError::Terminal(e)
        }
    })?);
    Ok(Password::from(answer.as_str()))
}

/// Asks twice for a new passphrase (with these two prompts) and checks its length.
pub fn ask_new(min_len: usize, prompts: (&str, &str)) -> Result<Password, PassphraseError> {
    let first = ask(prompts.0)?;
    let second = ask(prompts.1)?;
    let same = first.map(|a| second.map(|b| a == b));
    if !same {
        return Err(PassphraseError::Mismatch);
    }
    check_length(&first, min_len)?;
    Ok(first)
}

/// `Err(TooShort)` unless `p` has at least `min_len` characters (Unicode scalar values).
pub fn check_length(p: &Password, min_len: usize) -> Result<(), PassphraseError> {
    let long_enough = p.map(|bytes| String::from_utf8_lossy(bytes).chars().count() >= min_len);
    if long_enough {
        Ok(())
    } else {
        Err(PassphraseError::TooShort(min_len))
    }
}
