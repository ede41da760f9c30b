//! Writing a bundle, streaming: one submission at a time, never the whole bundle in memory.

use std::io::{self, Read, Write};

use ring::digest;

use super::{BundleError, BundleManifest, MANIFEST_NAME};
use crate::tarfmt;

/// Writes `manifest` and then each submission's sealed bytes, read from `open(entry)`.
///
/// Each source is checked against the manifest while it is copied (exact size, SHA-256), so a
/// bundle never carries bytes that differ from what the store recorded at acceptance.
pub fn write_bundle<W, R, F>(
    out: W,
    manifest: &BundleManifest,
    mut open: F,
) -> Result<W, BundleError>
where
    W: Write,
    R: Read,
    F: FnMut(&super::BundleEntry) -> io::Result<R>,
{
    let mut builder = tar::Builder::new(out);
    let manifest_bytes =
        serde_json::to_vec_pretty(manifest).map_err(|e| BundleError::BadManifest(e.to_string()))?;
    tarfmt::append_file(
        &mut builder,
        MANIFEST_NAME,
        &manifest_bytes[..],
        manifest_bytes.len() as u64,
    )?;
    for entry in &manifest.submissions {
        let bad = |reason: String| BundleError::BadEntry {
            id: entry.id,
            reason,
        };
        let source = open(entry).map_err(|e| bad(format!("cannot read stored ciphertext: {e}")))?;
        let mut checked = Checked::new(source, entry.size);
        if let Err(e) = tarfmt::append_file(&mut builder, &entry.path(), &mut checked, entry.size) {
            // A short source is the store's fault; anything else is the output's.
            return Err(match checked.shortfall() {
                Some(reason) => bad(reason),
                None => BundleError::Io(e),
            });
        }
        let digest = checked.finish().map_err(bad)?;
        if digest != entry.sha256 {
            return Err(BundleError::BadEntry {
                id: entry.id,
                reason: "stored ciphertext does not match its recorded SHA-256".into(),
            });
        }
    }
    Ok(builder.into_inner()?)
}

/// The exact length of the bundle [`write_bundle`] writes for `manifest`, without writing it:
/// a ustar header and whole 512-byte blocks per entry, then the two end blocks.
pub fn bundle_length(manifest: &BundleManifest) -> Result<u64, BundleError> {
    let block = |n: u64| n.div_ceil(512) * 512;
    let manifest_bytes =
        serde_json::to_vec_pretty(manifest).map_err(|e| BundleError::BadManifest(e.to_string()))?;
    let entries: u64 = manifest
        .submissions
        .iter()
        .map(|e| 512 + block(e.size))
        .sum();
    Ok(512 + block(manifest_bytes.len() as u64) + entries + 1024)
}

/// Reads exactly `size` bytes from a source, hashing them, and notices a source of another size.
struct Checked<R> {
    inner: R,
    remaining: u64,
    hash: digest::Context,
}

impl<R: Read> Checked<R> {
    fn new(inner: R, size: u64) -> Self {
        Checked {
            inner,
            remaining: size,
            hash: digest::Context::new(&digest::SHA256),
        }
    }

    fn shortfall(&self) -> Option<String> {
        (self.remaining != 0).then(|| {
            format!(
                "stored ciphertext is {} bytes shorter than recorded",
                self.remaining
            )
        })
    }

    fn finish(mut self) -> Result<String, String> {
        if let Some(reason) = self.shortfall() {
            return Err(reason);
        }
        let mut probe = [0u8; 1];
        if self.inner.read(&mut probe).map_err(|e| e.to_string())? != 0 {
            return Err("stored ciphertext is longer than recorded".into());
        }
        Ok(hex::encode(self.hash.finish()))
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            // Keep tar's framing intact; `finish` reports the shortfall.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stored ciphertext is shorter than recorded",
            ));
        }
        self.hash.update(&buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}
