//! Reading a bundle strictly, streaming, with a hash check per submission.

use std::collections::HashSet;
use std::io::{self, Read};

use ring::digest;

use super::*;
use crate::tarfmt;

/// An error message that may quote the bundle, made safe to print.
fn clean(e: &dyn std::fmt::Display) -> String {
    crate::terminal::clean_line(&e.to_string())
}

/// Reads only the manifest (for `list`), after checking it as strictly as [`read_bundle`] does.
pub fn read_manifest<R: Read>(input: R) -> Result<BundleManifest, BundleError> {
    let mut archive = tar::Archive::new(input);
    let mut entries = archive
        .entries()
        .map_err(|e| BundleError::NotABundle(clean(&e)))?
        .raw(true);
    read_manifest_entry(&mut entries)
}

/// Reads a whole bundle, calling `visit` for each submission in manifest order.
///
/// The visitor gets a reader over that submission's sealed bytes. It must call
/// [`BundleEntryReader::finish`] and see it succeed before it keeps anything derived from the
/// bytes: only then are size and SHA-256 known to match the manifest. Whatever the visitor leaves
/// unread is drained afterwards. Returns the manifest once every entry was visited; an error if
/// the archive's structure breaks (later submissions are then not visited).
pub fn read_bundle<R, F>(input: R, mut visit: F) -> Result<BundleManifest, BundleError>
where
    R: Read,
    F: FnMut(&BundleManifest, &BundleEntry, &mut BundleEntryReader<'_>),
{
    let mut archive = tar::Archive::new(input);
    let mut entries = archive
        .entries()
        .map_err(|e| BundleError::NotABundle(clean(&e)))?
        .raw(true);
    let manifest = read_manifest_entry(&mut entries)?;
    for (index, expected) in manifest.submissions.iter().enumerate() {
        let truncated = || {
            BundleError::Truncated(format!(
                "it ends after {index} of {} submissions",
                manifest.submissions.len()
            ))
        };
        let mut entry = match entries.next() {
            None => return Err(truncated()),
            Some(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(truncated()),
            Some(Err(e)) => return Err(BundleError::NotABundle(clean(&e))),
            Some(Ok(entry)) => entry,
        };
        let name = tarfmt::raw_name(&entry);
        if name != expected.path().as_bytes() {
            return Err(BundleError::UnexpectedEntry(tarfmt::display_name(&name)));
        }
        if let Some(problem) = tarfmt::plain_file_problem(&entry) {
            return Err(BundleError::BadEntry {
                id: expected.id,
                reason: problem,
            });
        }
        if entry.size() != expected.size {
            return Err(BundleError::BadEntry {
                id: expected.id,
                reason: format!(
                    "archive entry is {} bytes but the manifest says {}",
                    entry.size(),
                    expected.size
                ),
            });
        }
        let mut reader = BundleEntryReader::new(&mut entry, expected);
        visit(&manifest, expected, &mut reader);
        if let Err(BundleError::Truncated(_)) = reader.finish() {
            return Err(truncated());
        }
    }
    match entries.next() {
        None => Ok(manifest),
        Some(Ok(extra)) => Err(BundleError::UnexpectedEntry(tarfmt::display_name(
            &tarfmt::raw_name(&extra),
        ))),
        Some(Err(e)) => Err(BundleError::NotABundle(format!(
            "after the last submission: {}",
            clean(&e)
        ))),
    }
}

fn read_manifest_entry<'a, R: Read + 'a>(
    entries: &mut tar::Entries<'a, R>,
) -> Result<BundleManifest, BundleError> {
    let mut entry = match entries.next() {
        None => return Err(BundleError::Empty),
        Some(Err(e)) => return Err(BundleError::NotABundle(clean(&e))),
        Some(Ok(entry)) => entry,
    };
    let name = tarfmt::raw_name(&entry);
    if name != MANIFEST_NAME.as_bytes() {
        return Err(BundleError::NotABundle(format!(
            "the first entry is {:?}, not {MANIFEST_NAME}",
            tarfmt::display_name(&name)
        )));
    }
    if let Some(problem) = tarfmt::plain_file_problem(&entry) {
        return Err(BundleError::NotABundle(format!(
            "{MANIFEST_NAME}: {problem}"
        )));
    }
    if entry.size() > MAX_MANIFEST_BYTES {
        return Err(BundleError::BadManifest(format!(
            "larger than {} MiB",
            MAX_MANIFEST_BYTES >> 20
        )));
    }
    let mut bytes = Vec::new();
    (&mut entry)
        .take(MAX_MANIFEST_BYTES)
        .read_to_end(&mut bytes)?;
    if (bytes.len() as u64) < entry.size() {
        return Err(BundleError::Truncated("inside the manifest".into()));
    }
    parse_manifest(&bytes)
}

/// Parses and checks a manifest: version first (so a newer bundle gets a helpful message), then
/// every field strictly.
pub(crate) fn parse_manifest(bytes: &[u8]) -> Result<BundleManifest, BundleError> {
    #[derive(serde::Deserialize)]
    struct Version {
        format: String,
    }
    let version: Version =
        serde_json::from_slice(bytes).map_err(|e| BundleError::BadManifest(clean(&e)))?;
    if version.format != FORMAT {
        return Err(match version.format.strip_prefix("resguardo.bundle/") {
            Some(v) if v.parse::<u32>().is_ok_and(|v| v > 1) => {
                BundleError::FutureFormat(version.format)
            }
            _ => BundleError::NotABundle(format!("unknown format {:?}", version.format)),
        });
    }
    let manifest: BundleManifest =
        serde_json::from_slice(bytes).map_err(|e| BundleError::BadManifest(clean(&e)))?;
    if manifest.submissions.len() > MAX_SUBMISSIONS {
        return Err(BundleError::BadManifest(format!(
            "more than {MAX_SUBMISSIONS} submissions"
        )));
    }
    let mut seen = HashSet::new();
    for entry in &manifest.submissions {
        if !seen.insert(entry.id) {
            return Err(BundleError::BadManifest(format!(
                "submission {} is listed twice",
                entry.id
            )));
        }
        if entry.size == 0 || entry.size > MAX_SUBMISSION_BYTES {
            return Err(BundleError::BadManifest(format!(
                "submission {} has an impossible size {}",
                entry.id, entry.size
            )));
        }
        if entry.sha256.len() != 64
            || !entry
                .sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(BundleError::BadManifest(format!(
                "submission {} has a malformed sha256",
                entry.id
            )));
        }
    }
    Ok(manifest)
}

/// The sealed bytes of one submission, checked against the manifest as they are read.
pub struct BundleEntryReader<'a> {
    inner: &'a mut dyn Read,
    id: SubmissionId,
    expected_size: u64,
    expected_sha256: String,
    read: u64,
    hash: Option<digest::Context>,
    verdict: Option<Verdict>,
}

impl<'a> BundleEntryReader<'a> {
    fn new(inner: &'a mut dyn Read, entry: &BundleEntry) -> Self {
        BundleEntryReader {
            inner,
            id: entry.id,
            expected_size: entry.size,
            expected_sha256: entry.sha256.clone(),
            read: 0,
            hash: Some(digest::Context::new(&digest::SHA256)),
            verdict: None,
        }
    }

    /// Reads whatever is left and checks size and SHA-256 against the manifest. Idempotent.
    pub fn finish(&mut self) -> Result<(), BundleError> {
        let verdict = match &self.verdict {
            Some(verdict) => verdict.clone(),
            None => {
                let verdict = self.judge();
                self.verdict = Some(verdict.clone());
                verdict
            }
        };
        match verdict {
            Verdict::Intact => Ok(()),
            Verdict::Truncated(reason) => Err(BundleError::Truncated(format!(
                "submission {}: {reason}",
                self.id
            ))),
            Verdict::Damaged(reason) => Err(BundleError::BadEntry {
                id: self.id,
                reason,
            }),
        }
    }

    fn judge(&mut self) -> Verdict {
        if let Err(e) = io::copy(self, &mut io::sink()) {
            return Verdict::Truncated(clean(&e));
        }
        if self.read < self.expected_size {
            return Verdict::Truncated(format!(
                "{} of {} bytes present",
                self.read, self.expected_size
            ));
        }
        let digest = self.hash.take().map(|h| hex::encode(h.finish()));
        if digest.as_deref() == Some(self.expected_sha256.as_str()) {
            Verdict::Intact
        } else {
            Verdict::Damaged(
                "the sealed bytes do not match the manifest's SHA-256 (damaged or altered)".into(),
            )
        }
    }
}

#[derive(Debug, Clone)]
enum Verdict {
    Intact,
    Truncated(String),
    Damaged(String),
}

impl Read for BundleEntryReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hash) = self.hash.as_mut() {
            hash.update(&buf[..n]);
        }
        self.read += n as u64;
        Ok(n)
    }
}
