//! WebP: keep the image chunks, drop EXIF, XMP, ICC profiles and unknown chunks (clearing their
//! flags in VP8X), keep the orientation in a minimal EXIF chunk; then read the result strictly.
//!
//! Kept: VP8X (flags rewritten), ANIM, ANMF (whose frame chunks must be ALPH, VP8 or VP8L),
//! ALPH, "VP8 ", VP8L. Dropped: "EXIF " (GPS, device, dates), "XMP " and ICCP (a free-text
//! description, as in PNG) and every chunk we do not know. The orientation can only be kept in
//! the extended format (VP8X); a simple-format file has no place for EXIF, so none is lost.
//! The RIFF size must match the file exactly. `static/js/metadata.js` does exactly the same.

use super::exif;

/// VP8X flag bits (byte 0 of its data): ICC profile, alpha, EXIF, XMP, animation.
const FLAG_ICC: u8 = 0x20;
const FLAG_EXIF: u8 = 0x08;
const FLAG_XMP: u8 = 0x04;
/// The bits a clean VP8X may have set: alpha and animation (and EXIF with the minimal chunk).
const FLAGS_KEPT: u8 = 0x10 | 0x02;

const IMAGE: [&[u8; 4]; 3] = [b"ALPH", b"VP8 ", b"VP8L"];

struct Chunk<'a> {
    kind: &'a [u8],
    data: &'a [u8],
}

/// The chunks of a RIFF list in `b`, each padded to an even length; `None` if one runs past the
/// end or the list does not end exactly at the end of `b`.
fn chunks(b: &[u8]) -> Option<Vec<Chunk<'_>>> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < b.len() {
        let header = b.get(i..i + 8)?;
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let end = i.checked_add(8)?.checked_add(len)?;
        let padded = end.checked_add(len & 1)?;
        if padded > b.len() || (padded > end && b[end] != 0) {
            return None;
        }
        out.push(Chunk {
            kind: &header[..4],
            data: &b[i + 8..end],
        });
        i = padded;
    }
    Some(out)
}

/// The chunks of a WebP file, after checking its RIFF header.
fn file_chunks(b: &[u8]) -> Option<Vec<Chunk<'_>>> {
    if b.len() < 12 || &b[..4] != b"RIFF" || &b[8..12] != b"WEBP" {
        return None;
    }
    let size = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if size.checked_add(8)? != b.len() {
        return None;
    }
    let list = chunks(&b[12..])?;
    let first = list.first()?;
    match first.kind {
        b"VP8X" if first.data.len() == 10 => Some(list),
        b"VP8 " | b"VP8L" => Some(list),
        _ => None,
    }
}

/// The EXIF chunk's TIFF: raw, as the specification says, or after an "Exif\0\0" some writers add.
fn tiff_of(data: &[u8]) -> &[u8] {
    data.strip_prefix(b"Exif\0\0".as_slice()).unwrap_or(data)
}

/// Whether an ANMF frame holds only image chunks after its 16-byte header.
fn frame_is_image(data: &[u8]) -> bool {
    data.len() >= 16
        && chunks(&data[16..]).is_some_and(|c| {
            !c.is_empty()
                && c.iter()
                    .all(|c| IMAGE.iter().any(|k| k.as_slice() == c.kind))
        })
}

fn push_chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    out.extend_from_slice(kind);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

/// The stripped WebP and the orientation kept, or `None` if it cannot be read safely.
pub fn strip(b: &[u8]) -> Option<(Vec<u8>, Option<u8>)> {
    let list = file_chunks(b)?;
    let extended = list[0].kind == b"VP8X";
    let orientation = if extended {
        list.iter()
            .find(|c| c.kind == b"EXIF")
            .and_then(|c| exif::orientation(tiff_of(c.data)))
    } else {
        None
    };
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(b"RIFF\0\0\0\0WEBP");
    for chunk in &list {
        match chunk.kind {
            b"VP8X" => {
                let mut data = [0u8; 10];
                data.copy_from_slice(chunk.data);
                data[0] &= FLAGS_KEPT;
                if orientation.is_some() {
                    data[0] |= FLAG_EXIF;
                }
                push_chunk(&mut out, chunk.kind, &data);
            }
            b"ANMF" => {
                if !frame_is_image(chunk.data) {
                    return None;
                }
                push_chunk(&mut out, chunk.kind, chunk.data);
            }
            b"ANIM" | b"ALPH" | b"VP8 " | b"VP8L" => push_chunk(&mut out, chunk.kind, chunk.data),
            _ => {}
        }
    }
    if let Some(value) = orientation {
        push_chunk(&mut out, b"EXIF", &exif::minimal_tiff(value));
    }
    let size = u32::try_from(out.len() - 8).ok()?;
    out[4..8].copy_from_slice(&size.to_le_bytes());
    Some((out, orientation))
}

/// The strict reading: `Some(orientation)` only if `b` is a well-formed WebP holding only image
/// chunks, no ICC, EXIF or XMP flag but the EXIF one for a minimal EXIF chunk, which comes last.
pub fn verify(b: &[u8]) -> Option<Option<u8>> {
    let list = file_chunks(b)?;
    let extended = list[0].kind == b"VP8X";
    if !extended {
        return (list.len() == 1).then_some(None);
    }
    let flags = list[0].data[0];
    if flags & !(FLAGS_KEPT | FLAG_EXIF) != 0 || flags & (FLAG_ICC | FLAG_XMP) != 0 {
        return None;
    }
    let mut orientation = None;
    for (k, chunk) in list.iter().enumerate().skip(1) {
        match chunk.kind {
            b"EXIF" => {
                if k != list.len() - 1 || !exif::is_minimal_tiff(chunk.data) {
                    return None;
                }
                orientation = exif::orientation(chunk.data);
            }
            b"ANMF" if !frame_is_image(chunk.data) => return None,
            b"ANIM" | b"ANMF" | b"ALPH" | b"VP8 " | b"VP8L" => {}
            _ => return None,
        }
    }
    ((flags & FLAG_EXIF != 0) == orientation.is_some()).then_some(orientation)
}
