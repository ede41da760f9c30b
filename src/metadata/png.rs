//! PNG: keep the chunks rendering needs, drop every other one, keep the orientation in a minimal
//! eXIf; then read the result strictly (chunk lengths, CRCs, IHDR first, nothing after IEND but
//! zero bytes).
//!
//! Kept: IHDR, PLTE, IDAT, IEND, tRNS, gAMA, cHRM, sRGB, sBIT, bKGD (pixels and plain colour
//! numbers, no text) and acTL/fcTL/fdAT (animation). Dropped: tEXt, zTXt, iTXt (author, software,
//! comments, XMP), eXIf (EXIF with GPS), tIME (the time it was made), pHYs, sPLT, hIST, oFFs and
//! every chunk we do not know, and **iCCP**: an ICC profile carries a free-text name and a
//! description, copyright and device strings, so it goes; a picture in a wide-gamut profile may
//! then show slightly different colours. `static/js/metadata.js` does exactly the same.

use super::exif;

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
const KEEP: [&[u8; 4]; 13] = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"bKGD",
    b"acTL", b"fcTL", b"fdAT",
];

fn kept(kind: &[u8]) -> bool {
    KEEP.iter().any(|k| k.as_slice() == kind)
}

/// CRC-32 (ISO-HDLC), as PNG computes it over a chunk's type and data.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                0xedb8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One chunk: its type, its data, and the whole chunk (length to CRC).
struct Chunk<'a> {
    kind: &'a [u8],
    data: &'a [u8],
    whole: &'a [u8],
}

/// Every chunk up to IEND, or `None` if the file is not a well-formed PNG (bad signature, a chunk
/// past the end, a CRC that does not match, IHDR not first, anything but zeros after IEND).
fn chunks(b: &[u8]) -> Option<Vec<Chunk<'_>>> {
    if b.len() < 8 || &b[..8] != SIGNATURE {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 8;
    while i + 12 <= b.len() {
        let len = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if len > 0x7fff_ffff {
            return None;
        }
        let end = i.checked_add(12 + len as usize)?;
        if end > b.len() {
            return None;
        }
        let kind = &b[i + 4..i + 8];
        let data = &b[i + 8..end - 4];
        let crc = u32::from_be_bytes([b[end - 4], b[end - 3], b[end - 2], b[end - 1]]);
        if crc32(&b[i + 4..end - 4]) != crc || !kind.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        if (out.is_empty() && (kind != b"IHDR" || len != 13))
            || (!out.is_empty() && kind == b"IHDR")
        {
            return None;
        }
        out.push(Chunk {
            kind,
            data,
            whole: &b[i..end],
        });
        i = end;
        if kind == b"IEND" {
            return b[i..].iter().all(|&x| x == 0).then_some(out);
        }
    }
    None
}

/// The eXIf chunk holding only the orientation.
pub fn minimal_exif_chunk(orientation: u8) -> Vec<u8> {
    let tiff = exif::minimal_tiff(orientation);
    let mut out = Vec::with_capacity(12 + tiff.len());
    out.extend_from_slice(&(tiff.len() as u32).to_be_bytes());
    out.extend_from_slice(b"eXIf");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&crc32(&out[4..]).to_be_bytes());
    out
}

/// The stripped PNG and the orientation kept, or `None` if it is not a well-formed PNG.
pub fn strip(b: &[u8]) -> Option<(Vec<u8>, Option<u8>)> {
    let chunks = chunks(b)?;
    // Readers take the first eXIf; one after the image data is ignored by them, and so by us.
    let first_idat = chunks.iter().position(|c| c.kind == b"IDAT");
    let orientation = chunks
        .iter()
        .enumerate()
        .find(|(k, c)| c.kind == b"eXIf" && first_idat.is_none_or(|f| *k < f))
        .and_then(|(_, c)| exif::orientation(c.data));
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(SIGNATURE);
    for (k, chunk) in chunks.iter().enumerate() {
        if kept(chunk.kind) {
            out.extend_from_slice(chunk.whole);
        }
        if k == 0 {
            if let Some(value) = orientation {
                out.extend_from_slice(&minimal_exif_chunk(value));
            }
        }
    }
    Some((out, orientation))
}

/// The strict reading: `Some(orientation)` only if `b` is a well-formed PNG holding nothing but
/// the chunks rendering needs, and at most the minimal eXIf right after IHDR.
pub fn verify(b: &[u8]) -> Option<Option<u8>> {
    let chunks = chunks(b)?;
    let mut orientation = None;
    for (k, chunk) in chunks.iter().enumerate() {
        if chunk.kind == b"eXIf" {
            if k != 1 || !exif::is_minimal_tiff(chunk.data) {
                return None;
            }
            orientation = exif::orientation(chunk.data);
        } else if !kept(chunk.kind) {
            return None;
        }
    }
    Some(orientation)
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xcbf4_3926);
    }
}
