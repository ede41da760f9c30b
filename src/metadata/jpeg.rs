//! JPEG: copy the segments decoding needs, drop every one that can carry metadata, keep the
//! orientation in a minimal EXIF segment; then read the result strictly.
//!
//! Kept: SOI, the frame, tables and scans (SOF0–SOF15 but JPG, DHT, DAC, DQT, DRI, DNL, SOS and
//! the entropy-coded data, RSTn), a 12-byte Adobe APP14 (its colour transform changes the
//! decoded colours), EOI. Dropped: APP0–APP13 and APP15 (JFIF and its thumbnail, EXIF with GPS and
//! its thumbnail, XMP, ICC profiles, MPF and its second pictures, IPTC/Photoshop), COM, and
//! whatever follows the end marker (a "motion photo"'s video, a maker's trailer). Any other
//! marker is one we do not know: the file is not cleaned. Stray bytes between segments and a
//! missing end marker (both common in files from phones and messaging apps) are tolerated by the
//! copy, never by the strict reading. `static/js/metadata.js` does exactly the same.

use super::exif;

const EXIF_HEADER: &[u8] = b"Exif\0\0";

fn is_rst(m: u8) -> bool {
    (0xd0..=0xd7).contains(&m)
}

/// APP0..APP13, APP15 and COM.
fn is_metadata(m: u8) -> bool {
    ((0xe0..=0xef).contains(&m) && m != 0xee) || m == 0xfe
}

/// Segments decoding needs (APP14 is checked apart).
fn is_needed(m: u8) -> bool {
    ((0xc0..=0xcf).contains(&m) && m != 0xc8) || (0xda..=0xdd).contains(&m)
}

/// An Adobe APP14 segment body as decoders read it: "Adobe", version, flags, transform.
fn is_adobe(body: &[u8]) -> bool {
    body.len() == 12 && body.starts_with(b"Adobe")
}

/// The minimal APP1 segment holding only the orientation.
pub fn minimal_app1(orientation: u8) -> Vec<u8> {
    let tiff = exif::minimal_tiff(orientation);
    let len = 2 + EXIF_HEADER.len() + tiff.len();
    let mut out = vec![0xff, 0xe1, (len >> 8) as u8, len as u8];
    out.extend_from_slice(EXIF_HEADER);
    out.extend_from_slice(&tiff);
    out
}

/// Index of the next marker of entropy-coded data starting at `i` (or the end).
fn scan_end(b: &[u8], mut i: usize) -> usize {
    while i + 1 < b.len() && !(b[i] == 0xff && b[i + 1] != 0x00 && !is_rst(b[i + 1])) {
        i += 1;
    }
    if i + 1 >= b.len() {
        b.len()
    } else {
        i
    }
}

/// The stripped JPEG and the orientation kept, or `None` if it cannot be read safely.
pub fn strip(b: &[u8]) -> Option<(Vec<u8>, Option<u8>)> {
    if b.len() < 4 || b[0] != 0xff || b[1] != 0xd8 {
        return None;
    }
    let mut body: Vec<u8> = Vec::with_capacity(b.len());
    let mut orientation: Option<Option<u8>> = None;
    let mut i = 2;
    loop {
        while i < b.len() && b[i] != 0xff {
            i += 1;
        }
        while i < b.len() && b[i] == 0xff {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let m = b[i];
        i += 1;
        if m == 0x00 {
            continue;
        }
        if m == 0xd9 {
            break;
        }
        if is_rst(m) || m == 0x01 {
            body.extend_from_slice(&[0xff, m]);
            continue;
        }
        if i + 2 > b.len() {
            return None;
        }
        let len = usize::from(b[i]) << 8 | usize::from(b[i + 1]);
        if len < 2 || i + len > b.len() {
            return None;
        }
        let segment = &b[i..i + len];
        if m == 0xe1 && orientation.is_none() && segment[2..].starts_with(EXIF_HEADER) {
            // The first EXIF segment is the one readers take the orientation from.
            orientation = Some(exif::orientation(&segment[2 + EXIF_HEADER.len()..]));
        }
        if is_needed(m) || (m == 0xee && is_adobe(&segment[2..])) {
            body.extend_from_slice(&[0xff, m]);
            body.extend_from_slice(segment);
        } else if !is_metadata(m) && m != 0xee {
            return None;
        }
        i += len;
        if m == 0xda {
            let end = scan_end(b, i);
            // A file cut after a lone 0xFF: that byte began a marker, it is not picture data
            // (kept, it would become a fill byte and cleaning twice would differ).
            let mut data_end = end;
            while end == b.len() && data_end > i && b[data_end - 1] == 0xff {
                data_end -= 1;
            }
            body.extend_from_slice(&b[i..data_end]);
            i = end;
        }
    }
    let orientation = orientation.flatten();
    let mut out = Vec::with_capacity(body.len() + 40);
    out.extend_from_slice(&[0xff, 0xd8]);
    if let Some(value) = orientation {
        out.extend_from_slice(&minimal_app1(value));
    }
    out.extend_from_slice(&body);
    out.extend_from_slice(&[0xff, 0xd9]);
    Some((out, orientation))
}

/// The strict reading: `Some(orientation)` only if `b` is a well-formed JPEG from its start to its
/// end marker, with at least one scan, only segments decoding needs, and at most the minimal EXIF
/// segment right after the start marker.
pub fn verify(b: &[u8]) -> Option<Option<u8>> {
    if b.len() < 4 || b[0] != 0xff || b[1] != 0xd8 {
        return None;
    }
    let mut i = 2;
    let mut scans = 0usize;
    let mut orientation = None;
    while i + 1 < b.len() {
        if b[i] != 0xff {
            return None;
        }
        let m = b[i + 1];
        if m == 0xff {
            i += 1;
            continue;
        }
        if m == 0xd9 {
            return (scans > 0 && i + 2 == b.len()).then_some(orientation);
        }
        if is_rst(m) || m == 0x01 {
            i += 2;
            continue;
        }
        if i + 4 > b.len() {
            return None;
        }
        let len = usize::from(b[i + 2]) << 8 | usize::from(b[i + 3]);
        if len < 2 || i + 2 + len > b.len() {
            return None;
        }
        let body = &b[i + 4..i + 2 + len];
        let allowed = is_needed(m)
            || (m == 0xee && is_adobe(body))
            || (m == 0xe1
                && i == 2
                && body.starts_with(EXIF_HEADER)
                && exif::is_minimal_tiff(&body[EXIF_HEADER.len()..]));
        if !allowed {
            return None;
        }
        if m == 0xe1 {
            orientation = exif::orientation(&body[EXIF_HEADER.len()..]);
        }
        i += 2 + len;
        if m == 0xda {
            scans += 1;
            i = scan_end(b, i);
        }
    }
    None
}
