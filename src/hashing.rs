//! SHA-256 while copying: the one loop that reads a stream, hashes it, counts it and (optionally)
//! writes it on, used wherever a file's hash and size are taken (the terminal client's
//! attachments, the store adopting an orphan ciphertext, the reader extracting attachments).

use std::io::{self, Read, Write};

/// A stream's length and lowercase hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// Bytes copied.
    pub size: u64,
    /// SHA-256 of those bytes, 64 lowercase hex digits.
    pub sha256: String,
}

/// Which side of a hashed copy failed: callers answer a bad source and a failing destination
/// differently (a malformed archive is not a full disk).
#[derive(Debug)]
pub enum CopyError {
    /// Reading the source failed (`Interrupted` is retried, not reported).
    Read(io::Error),
    /// Writing or flushing the destination failed.
    Write(io::Error),
}

/// Copies `from` to `to` until the end of `from`, hashing what passes; flushes `to`.
pub fn hashed_copy<R: Read, W: Write>(mut from: R, mut to: W) -> Result<Hashed, CopyError> {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hash.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        size += n as u64;
    }
    to.flush().map_err(CopyError::Write)?;
    Ok(Hashed {
        size,
        sha256: hex::encode(hash.finish()),
    })
}

/// The length and SHA-256 of everything `from` yields.
pub fn hash_stream<R: Read>(from: R) -> io::Result<Hashed> {
    hashed_copy(from, io::sink()).map_err(|e| match e {
        CopyError::Read(e) | CopyError::Write(e) => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_counts_and_hashes() {
        let data = vec![7u8; 200_000];
        let mut out = Vec::new();
        let hashed = hashed_copy(&data[..], &mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(hashed.size, 200_000);
        assert_eq!(
            hashed.sha256,
            hex::encode(ring::digest::digest(&ring::digest::SHA256, &data))
        );
        assert_eq!(
            hash_stream(&b""[..]).unwrap().sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_failing_destination_is_told_from_a_failing_source() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(matches!(
            hashed_copy(&b"x"[..], Full),
            Err(CopyError::Write(_))
        ));
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("broken"))
            }
        }
        assert!(matches!(
            hashed_copy(Broken, io::sink()),
            Err(CopyError::Read(_))
        ));
    }
}
