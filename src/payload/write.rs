//! Writing payload v1, streaming: attachments are copied, never held in memory.

use std::io::{self, Read, Write};

use zeroize::Zeroizing;

use super::{Report, PADDING_NAME, REPORT_NAME};
use crate::tarfmt;

/// An attachment's content, in the order of `report.attachments`.
pub type AttachmentSource<'a> = Box<dyn Read + 'a>;

/// The Padmé length (Nikitin et al., 2019) for `len`, rounded up to tar's 512-byte blocks and
/// at least [`super::MIN_PADDED`]. Padmé leaks O(log log n) bits of the length and costs at most
/// about 12% overhead (much less for large payloads).
pub fn padded_length(len: u64) -> u64 {
    let padme = if len < 2 {
        len
    } else {
        let e = 63 - u64::from(len.leading_zeros()); // floor(log2(len))
        let s = 64 - u64::from(e.leading_zeros()); // floor(log2(e)) + 1
        let last_bits = e - s;
        let mask = (1u64 << last_bits) - 1;
        (len + mask) & !mask
    };
    round_block(padme).max(super::MIN_PADDED)
}

fn round_block(n: u64) -> u64 {
    n.div_ceil(512) * 512
}

/// Writes `report` as `report.json`, each attachment from `sources` (exactly the size the report
/// gives), and the padding entry. Returns the writer and the archive length.
pub fn write_payload<W: Write>(
    out: W,
    report: &Report,
    sources: Vec<AttachmentSource<'_>>,
) -> io::Result<(W, u64)> {
    if sources.len() != report.attachments.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "one source per attachment is needed",
        ));
    }
    // The report is plaintext: wipe our copy once written.
    let json = Zeroizing::new(serde_json::to_vec(report).map_err(io::Error::other)?);
    let unpadded = 512
        + round_block(json.len() as u64)
        + report
            .attachments
            .iter()
            .map(|a| 512 + round_block(a.size))
            .sum::<u64>()
        + 512
        + 1024;
    let total = padded_length(unpadded);
    let mut builder = tar::Builder::new(out);
    tarfmt::append_file(&mut builder, REPORT_NAME, &json[..], json.len() as u64)?;
    for (attachment, source) in report.attachments.iter().zip(sources) {
        let mut exact = ExactSize {
            inner: source,
            remaining: attachment.size,
        };
        tarfmt::append_file(&mut builder, &attachment.path, &mut exact, attachment.size)?;
        exact.check_end()?;
    }
    let padding = total - unpadded;
    tarfmt::append_file(
        &mut builder,
        PADDING_NAME,
        io::repeat(0).take(padding),
        padding,
    )?;
    builder.finish()?;
    Ok((builder.into_inner()?, total))
}

/// Yields exactly the announced number of bytes or fails: a file that changed size between
/// hashing and copying must not produce an archive that disagrees with its report.
struct ExactSize<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> ExactSize<R> {
    fn check_end(&mut self) -> io::Result<()> {
        let mut probe = [0u8; 1];
        if self.inner.read(&mut probe)? != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an attachment grew while it was being added",
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "an attachment shrank while it was being added",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padme_buckets() {
        assert_eq!(padded_length(1), super::super::MIN_PADDED);
        assert_eq!(padded_length(32 * 1024), 32 * 1024);
        // Padmé keeps at most about 12% overhead and maps nearby sizes to one bucket.
        for len in [100_000u64, 1_000_000, 10_000_000, 100_000_000] {
            let padded = padded_length(len);
            assert!(padded >= len);
            assert!(
                padded as f64 <= len as f64 * 1.12 + 512.0,
                "{len} -> {padded}"
            );
            assert_eq!(padded % 512, 0);
        }
        assert_eq!(padded_length(1_000_000), padded_length(1_000_001));
    }

    /// The table in tests/vectors/payload/padme.json, which the browser's writer is checked
    /// against too (tests/browser/vectors.test.mjs), so both writers pad alike.
    #[test]
    fn padme_table_shared_with_the_browser() {
        #[derive(serde::Deserialize)]
        struct Table {
            lengths: Vec<(u64, u64)>,
        }
        let table: Table =
            serde_json::from_str(include_str!("../../tests/vectors/payload/padme.json")).unwrap();
        assert!(table.lengths.len() >= 10);
        for (len, padded) in table.lengths {
            assert_eq!(padded_length(len), padded, "{len}");
        }
    }
}
