//! The open receipt: which submissions of a bundle the reviewers have opened, specified in
//! `docs/open-receipt-v1.md`.
//!
//! `resguardo-review open` writes `open-receipt-<batch>.json` into `--out` after every run over a
//! bundle (rewritten whole each time); the operator carries it back to the server, and purge
//! deletes only the submissions it lists as opened. So a bundle that was never opened, or a bad
//! copy of one, cannot cost reports. The reader is strict: the file crosses from the offline
//! machine to the server on a USB stick.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sequoia_openpgp as openpgp;

use openpgp::armor;
use openpgp::crypto::KeyPair;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::parse::Parse;
use openpgp::serialize::Serialize as _;
use openpgp::types::SignatureType;
use openpgp::Packet;
use serde::{Deserialize, Serialize};

use crate::submission::{BatchId, SubmissionId};

/// The format this code writes: v1 plus, for every opened submission, the size and SHA-256 of
/// the ciphertext that was opened (what a network purge deletes by).
pub const FORMAT: &str = "resguardo.open-receipt/2";

/// The first format (ids only), still read for the operator's local purge.
pub const FORMAT_V1: &str = "resguardo.open-receipt/1";

/// Bound on a receipt file (a receipt for the largest bundle is far smaller).
pub const MAX_RECEIPT_BYTES: u64 = 16 * 1024 * 1024;

/// Bound on one failure reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// What a run of `open` over one bundle achieved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenReceipt {
    /// Always [`FORMAT`]; read before the rest, so a newer receipt gets a precise message.
    pub format: String,
    /// The bundle's batch id.
    pub batch: BatchId,
    /// Every submission of the bundle that is opened in `--out` (by this run or an earlier one).
    pub opened: Vec<SubmissionId>,
    /// The other submissions the run reached, each with a short reason.
    pub failed: Vec<FailedOpen>,
    /// v2: for each id of `opened`, the ciphertext that was opened. A purge deletes a stored
    /// submission only if it is byte-for-byte this one, whatever manifest comes with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ciphertexts: Vec<OpenedCiphertext>,
}

/// The ciphertext of one opened submission, as the bundle entry that was opened gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenedCiphertext {
    /// The submission.
    pub id: SubmissionId,
    /// Bytes of its ciphertext.
    pub size: u64,
    /// Lowercase hex SHA-256 of its ciphertext.
    pub sha256: String,
}

/// A submission that was reached but could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedOpen {
    /// The submission, one of the bundle's.
    pub id: SubmissionId,
    /// Why it was not opened: 1 to [`MAX_REASON_CHARS`] characters on one clean line.
    pub reason: String,
}

/// Why a receipt cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The file cannot be opened or read.
    #[error("{path}: cannot read the receipt: {source}")]
    Read {
        /// The receipt file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is larger than [`MAX_RECEIPT_BYTES`].
    #[error("{path}: the receipt is larger than {} MiB", MAX_RECEIPT_BYTES >> 20)]
    TooLarge {
        /// The receipt file.
        path: PathBuf,
    },
    /// Not JSON of the receipt's shape (unknown keys included).
    #[error("{path}: not an open receipt: {reason}")]
    Malformed {
        /// The receipt file.
        path: PathBuf,
        /// The parser's message, made printable.
        reason: String,
    },
    /// `format` is neither [`FORMAT`] nor [`FORMAT_V1`].
    #[error(
        "{path}: unknown receipt format {format:?} (this tool reads {FORMAT} and {FORMAT_V1})"
    )]
    UnknownFormat {
        /// The receipt file.
        path: PathBuf,
        /// The receipt's format: its first 60 characters, made printable.
        format: String,
    },
    /// An id is listed twice (counting `opened` and `failed` together).
    #[error("{path}: submission {id} is listed more than once")]
    DuplicateId {
        /// The receipt file.
        path: PathBuf,
        /// The repeated id.
        id: SubmissionId,
    },
    /// A failure reason is empty, too long or not one clean line.
    #[error("{path}: the reason for submission {id} is empty, longer than {MAX_REASON_CHARS} characters, or holds control characters")]
    BadReason {
        /// The receipt file.
        path: PathBuf,
        /// The submission whose reason is bad.
        id: SubmissionId,
    },
    /// `ciphertexts` does not name exactly the opened ids (v2), each once with a size and a
    /// SHA-256; or a v1 receipt has it.
    #[error("{path}: the opened ciphertexts do not match the opened submissions")]
    BadCiphertexts {
        /// The receipt file.
        path: PathBuf,
    },
    /// More than [`crate::bundle::MAX_SUBMISSIONS`] ids in all.
    #[error("{path}: more than {} submissions", crate::bundle::MAX_SUBMISSIONS)]
    TooManyEntries {
        /// The receipt file.
        path: PathBuf,
    },
    /// No signature beside the receipt (`<receipt>.sig`): the key that opened the bundle has no
    /// signing subkey.
    #[error("{path} is not signed (no {path}.sig beside it): open the bundle again with a reviewer key that has a signing subkey (`resguardo-review add-signing-key` gives an older key one)")]
    Unsigned {
        /// The receipt file.
        path: PathBuf,
    },
    /// Serialising the receipt or writing it atomically failed.
    #[error("{path}: cannot write the receipt: {source}")]
    Write {
        /// The receipt file.
        path: PathBuf,
        /// The I/O (or serialisation) error.
        source: io::Error,
    },
}

impl OpenReceipt {
    /// A receipt in the current [`FORMAT`]: `opened` are the ciphertexts opened; checked only
    /// when written ([`write()`]).
    pub fn new(batch: BatchId, opened: Vec<OpenedCiphertext>, failed: Vec<FailedOpen>) -> Self {
        OpenReceipt {
            format: FORMAT.into(),
            batch,
            opened: opened.iter().map(|c| c.id).collect(),
            failed,
            ciphertexts: opened,
        }
    }

    /// The opened submissions as manifest entries (id, size and SHA-256 from the receipt; the
    /// day and the sealing are not known to it and mean nothing here): what a purge by the
    /// receipt alone compares with the store. Empty for a v1 receipt.
    pub fn opened_entries(&self) -> Vec<crate::bundle::BundleEntry> {
        self.ciphertexts
            .iter()
            .map(|c| crate::bundle::BundleEntry {
                id: c.id,
                day: crate::submission::UtcDay::from_days_since_epoch(0),
                size: c.size,
                sha256: c.sha256.clone(),
                sealing: crate::submission::Sealing::BySender,
            })
            .collect()
    }

    /// The file name `open` gives the receipt of this batch.
    pub fn file_name(batch: &BatchId) -> String {
        format!("open-receipt-{batch}.json")
    }

    /// Checks everything [`read`] checks, on a receipt in memory.
    fn check(&self, path: &Path) -> Result<(), ReceiptError> {
        if self.format != FORMAT && self.format != FORMAT_V1 {
            return Err(ReceiptError::UnknownFormat {
                path: path.to_path_buf(),
                format: crate::terminal::clean_line(
                    &self.format.chars().take(60).collect::<String>(),
                ),
            });
        }
        if self.opened.len() + self.failed.len() > crate::bundle::MAX_SUBMISSIONS {
            return Err(ReceiptError::TooManyEntries {
                path: path.to_path_buf(),
            });
        }
        let mut seen = HashSet::new();
        let ids = self.opened.iter().chain(self.failed.iter().map(|f| &f.id));
        for id in ids {
            if !seen.insert(*id) {
                return Err(ReceiptError::DuplicateId {
                    path: path.to_path_buf(),
                    id: *id,
                });
            }
        }
        let listed: HashSet<SubmissionId> = self.ciphertexts.iter().map(|c| c.id).collect();
        let consistent = match self.format.as_str() {
            FORMAT => {
                listed.len() == self.ciphertexts.len()
                    && listed == self.opened.iter().copied().collect()
                    && self.ciphertexts.iter().all(|c| {
                        c.size > 0
                            && c.sha256.len() == 64
                            && c.sha256
                                .bytes()
                                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                    })
            }
            _ => self.ciphertexts.is_empty(),
        };
        if !consistent {
            return Err(ReceiptError::BadCiphertexts {
                path: path.to_path_buf(),
            });
        }
        for f in &self.failed {
            let ok = !f.reason.trim().is_empty()
                && f.reason.chars().count() <= MAX_REASON_CHARS
                && crate::terminal::is_clean_line(&f.reason);
            if !ok {
                return Err(ReceiptError::BadReason {
                    path: path.to_path_buf(),
                    id: f.id,
                });
            }
        }
        Ok(())
    }
}

/// Reads and checks a receipt: at most 16 MiB, format [`FORMAT`], no unknown keys, every id
/// listed once (in `opened` and `failed` together), reasons of 1 to 200 characters with no
/// control, bidirectional or invisible characters.
pub fn read(path: &Path) -> Result<OpenReceipt, ReceiptError> {
    parse(&read_bytes(path)?, path)
}

/// The receipt file's bytes exactly (what its signature covers), at most 16 MiB.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, ReceiptError> {
    let read_error = |source| ReceiptError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_RECEIPT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_RECEIPT_BYTES {
        return Err(ReceiptError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// Checks a receipt in memory as [`read`] does; `path` names it in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<OpenReceipt, ReceiptError> {
    if bytes.len() as u64 > MAX_RECEIPT_BYTES {
        return Err(ReceiptError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let malformed = |e: serde_json::Error| ReceiptError::Malformed {
        path: path.to_path_buf(),
        reason: crate::terminal::clean_line(&e.to_string()),
    };
    // The format first, so that a newer receipt gets a precise message.
    #[derive(Deserialize)]
    struct Version {
        format: String,
    }
    let version: Version = serde_json::from_slice(bytes).map_err(malformed)?;
    if version.format != FORMAT && version.format != FORMAT_V1 {
        return Err(ReceiptError::UnknownFormat {
            path: path.to_path_buf(),
            format: crate::terminal::clean_line(
                &version.format.chars().take(60).collect::<String>(),
            ),
        });
    }
    let receipt: OpenReceipt = serde_json::from_slice(bytes).map_err(malformed)?;
    receipt.check(path)?;
    Ok(receipt)
}

/// Writes `receipt` to `path` atomically (a temporary file in the same folder, synced, renamed
/// over the old one, the folder synced): a reader sees the old receipt or the new, never half.
/// With `signer` (the reviewer's signing subkey), also writes its armored detached signature to
/// [`signature_path`]; without, removes an older signature there (it would not match). Returns
/// whether the receipt is signed.
pub fn write(
    path: &Path,
    receipt: &OpenReceipt,
    signer: Option<&mut KeyPair>,
) -> Result<bool, ReceiptError> {
    receipt.check(path)?;
    let write_error = |source| ReceiptError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes =
        serde_json::to_vec_pretty(receipt).map_err(|e| write_error(io::Error::other(e)))?;
    bytes.push(b'\n');
    let sig_path = signature_path(path);
    // The old signature goes first: a crash between the two writes leaves an unsigned receipt,
    // never a receipt beside another one's signature.
    match fs::remove_file(&sig_path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(write_error(e)),
        _ => {}
    }
    write_atomically(path, &bytes).map_err(write_error)?;
    let Some(signer) = signer else {
        return Ok(false);
    };
    let armored = sign_detached(signer, &bytes).map_err(|e| write_error(io::Error::other(e)))?;
    write_atomically(&sig_path, &armored).map_err(write_error)?;
    Ok(true)
}

/// Where the signature of the receipt at `receipt` lives: `open-receipt-<batch>.json.sig`.
pub fn signature_path(receipt: &Path) -> PathBuf {
    let mut name = receipt.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// An armored detached OpenPGP signature over `bytes` (binary mode, as `gpg --verify` reads it).
fn sign_detached(signer: &mut KeyPair, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let sig = SignatureBuilder::new(SignatureType::Binary).sign_message(signer, bytes)?;
    let mut writer = armor::Writer::new(Vec::new(), armor::Kind::Signature)?;
    Packet::from(sig).serialize(&mut writer)?;
    Ok(writer.finalize()?)
}

/// Reads the signature of the receipt at `receipt` ([`signature_path`]): the binary packet,
/// armored or not in the file, at most 64 KiB.
pub fn read_signature(receipt: &Path) -> Result<Vec<u8>, ReceiptError> {
    let path = signature_path(receipt);
    let unsigned = || ReceiptError::Unsigned {
        path: receipt.to_path_buf(),
    };
    let file = File::open(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => unsigned(),
        _ => ReceiptError::Read {
            path: path.clone(),
            source: e,
        },
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_SIGNATURE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ReceiptError::Read {
            path: path.clone(),
            source,
        })?;
    let bad = || ReceiptError::Malformed {
        path: path.clone(),
        reason: "not one OpenPGP signature".into(),
    };
    if bytes.len() as u64 > MAX_SIGNATURE_FILE {
        return Err(bad());
    }
    let mut binary = Vec::new();
    let mut reader = armor::Reader::from_bytes(
        &bytes,
        armor::ReaderMode::Tolerant(Some(armor::Kind::Signature)),
    );
    reader.read_to_end(&mut binary).map_err(|_| bad())?;
    match Packet::from_bytes(&binary) {
        Ok(Packet::Signature(_)) => Ok(binary),
        _ => Err(bad()),
    }
}

/// Bound on a receipt's signature file (a real one is about 300 bytes).
const MAX_SIGNATURE_FILE: u64 = 64 * 1024;

/// Replaces `path` with `bytes` atomically and durably (mode 0600).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}-{}",
        SubmissionId::random(),
        name.to_string_lossy()
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

/// Prefix of the temporary files [`write_atomically`] makes (a run that was killed may leave one;
/// `open` removes them at the next run).
pub const TEMP_PREFIX: &str = ".resguardo-tmp-";

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SubmissionId {
        SubmissionId::from_bytes([n; 16])
    }

    fn opened(n: u8) -> OpenedCiphertext {
        OpenedCiphertext {
            id: id(n),
            size: 100 + u64::from(n),
            sha256: format!("{n:02x}").repeat(32),
        }
    }

    #[test]
    fn a_receipt_round_trips_and_is_rewritten_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let batch = BatchId::from_bytes([9; 16]);
        let path = dir.path().join(OpenReceipt::file_name(&batch));
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some("open-receipt-09090909090909090909090909090909.json")
        );
        let first = OpenReceipt::new(
            batch,
            vec![opened(1)],
            vec![FailedOpen {
                id: id(2),
                reason: "payload over its bound".into(),
            }],
        );
        write(&path, &first, None).expect("write");
        assert_eq!(read(&path).expect("read"), first);
        let text = fs::read_to_string(&path).expect("text");
        assert!(
            text.contains("\"format\": \"resguardo.open-receipt/2\""),
            "{text}"
        );

        let second = OpenReceipt::new(batch, vec![opened(1), opened(2)], vec![]);
        write(&path, &second, None).expect("rewrite");
        assert_eq!(read(&path).expect("read"), second);
        // Nothing but the receipt is left in the folder.
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_v1_receipt_is_still_read_and_a_v2_one_must_name_each_opened_ciphertext() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.json");
        fs::write(
            &path,
            format!(
                "{{\"format\":\"{FORMAT_V1}\",\"batch\":\"{}\",\"opened\":[\"{}\"],\"failed\":[]}}",
                BatchId::from_bytes([9; 16]),
                id(1)
            ),
        )
        .unwrap();
        let v1 = read(&path).expect("v1 is read");
        assert!(
            v1.opened_entries().is_empty(),
            "v1 says nothing of ciphertexts"
        );
        let mut missing = OpenReceipt::new(BatchId::from_bytes([9; 16]), vec![opened(1)], vec![]);
        missing.opened.push(id(2));
        assert!(matches!(
            write(&path, &missing, None),
            Err(ReceiptError::BadCiphertexts { .. })
        ));
        let mut bad_hash = OpenReceipt::new(BatchId::from_bytes([9; 16]), vec![opened(1)], vec![]);
        bad_hash.ciphertexts[0].sha256 = "XYZ".into();
        assert!(matches!(
            write(&path, &bad_hash, None),
            Err(ReceiptError::BadCiphertexts { .. })
        ));
    }

    #[test]
    fn the_writer_refuses_what_the_reader_would_refuse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.json");
        let twice = OpenReceipt::new(
            BatchId::from_bytes([9; 16]),
            vec![opened(1)],
            vec![FailedOpen {
                id: id(1),
                reason: "x".into(),
            }],
        );
        assert!(matches!(
            write(&path, &twice, None),
            Err(ReceiptError::DuplicateId { .. })
        ));
        assert!(!path.exists());
    }

    /// Every `tests/fixtures/open-receipt/fail_*.json` is refused with the error its name gives,
    /// and every `ok_*.json` is read.
    #[test]
    fn bad_receipts_in_testdata_are_refused_precisely() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/open-receipt");
        let expected = [
            ("fail_empty.json", "Malformed"),
            ("fail_not_json.json", "Malformed"),
            ("fail_unknown_key.json", "Malformed"),
            ("fail_missing_failed.json", "Malformed"),
            ("fail_bad_batch.json", "Malformed"),
            ("fail_bad_id.json", "Malformed"),
            ("fail_uppercase_id.json", "Malformed"),
            ("fail_future_format.json", "UnknownFormat"),
            ("fail_v2_without_ciphertexts.json", "BadCiphertexts"),
            ("fail_v2_other_ciphertext.json", "BadCiphertexts"),
            ("fail_bundle_format.json", "UnknownFormat"),
            ("fail_duplicate_opened.json", "DuplicateId"),
            ("fail_opened_and_failed.json", "DuplicateId"),
            ("fail_long_reason.json", "BadReason"),
            ("fail_empty_reason.json", "BadReason"),
            ("fail_escape_in_reason.json", "BadReason"),
            ("fail_newline_in_reason.json", "BadReason"),
            ("fail_failed_without_reason.json", "Malformed"),
            ("fail_trailing_data.json", "Malformed"),
        ];
        let mut seen = 0;
        let mut ok = 0;
        for entry in fs::read_dir(&dir).expect("testdata") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_string();
            if name.starts_with("ok_") {
                read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
                ok += 1;
                continue;
            }
            let want = expected
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("{name}: add it to the table of expected errors"));
            let err = read(&path).expect_err(&name);
            let got = format!("{err:?}");
            assert!(got.starts_with(want), "{name}: {got}");
            assert!(
                crate::terminal::is_clean_line(&err.to_string()),
                "{name}: the message is safe to print: {err}"
            );
            seen += 1;
        }
        assert_eq!(seen, expected.len(), "every listed file exists");
        assert!(ok >= 2, "the good examples are read too");

        // Over the size bound (made here rather than stored).
        let tmp = tempfile::tempdir().expect("tempdir");
        let big = tmp.path().join("big.json");
        fs::write(&big, vec![b' '; MAX_RECEIPT_BYTES as usize + 1]).expect("write");
        assert!(matches!(read(&big), Err(ReceiptError::TooLarge { .. })));
        let many = tmp.path().join("many.json");
        let ids: Vec<String> = (0..=crate::bundle::MAX_SUBMISSIONS as u32)
            .map(|i| format!("\"{i:032x}\""))
            .collect();
        fs::write(
            &many,
            format!(
                "{{\"format\":\"{FORMAT}\",\"batch\":\"{}\",\"opened\":[{}],\"failed\":[]}}",
                id(1),
                ids.join(",")
            ),
        )
        .expect("write");
        assert!(matches!(
            read(&many),
            Err(ReceiptError::TooManyEntries { .. })
        ));
        assert!(matches!(
            read(&tmp.path().join("missing.json")),
            Err(ReceiptError::Read { .. })
        ));
    }
}
