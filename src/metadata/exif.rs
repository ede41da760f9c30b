//! The one EXIF tag we keep: Orientation (0x0112), read from a TIFF structure and written back as
//! the smallest EXIF that holds it and nothing else.
//!
//! The minimal EXIF is always the same 26 bytes but for the orientation value (big-endian TIFF,
//! one IFD0 entry, no next IFD), so the strict second reading can compare byte for byte.

/// The Orientation tag.
const ORIENTATION: u16 = 0x0112;
/// SHORT, the Orientation tag's type.
const SHORT: u16 = 3;

/// The TIFF structure holding only `Orientation = value`.
pub fn minimal_tiff(value: u8) -> [u8; 26] {
    [
        b'M', b'M', 0x00, 0x2a, 0, 0, 0, 8, // header: big-endian, IFD0 at offset 8
        0, 1, // one entry
        0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, value, 0, 0, // Orientation, SHORT, 1, value
        0, 0, 0, 0, // no next IFD
    ]
}

/// Whether `tiff` is exactly a minimal TIFF written by [`minimal_tiff`] with a kept orientation.
pub fn is_minimal_tiff(tiff: &[u8]) -> bool {
    tiff.len() == 26 && (2..=8).contains(&tiff[19]) && tiff == minimal_tiff(tiff[19])
}

/// The orientation an EXIF TIFF structure holds in IFD0, if it is one worth keeping (2 to 8:
/// 1 is the default and says nothing). A TIFF we cannot read has none: the metadata goes anyway,
/// only the orientation is lost.
pub fn orientation(tiff: &[u8]) -> Option<u8> {
    let big = match tiff.get(0..2)? {
        b"MM" => true,
        b"II" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = tiff.get(at..at + 2)?;
        Some(if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = tiff.get(at..at + 4)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    if u16_at(2)? != 42 {
        return None;
    }
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?);
    for k in 0..count {
        let entry = ifd.checked_add(2 + 12 * k)?;
        if u16_at(entry)? != ORIENTATION {
            continue;
        }
        if u16_at(entry + 2)? != SHORT || u32_at(entry + 4)? != 1 {
            return None;
        }
        let value = u16_at(entry + 8)?;
        return match value {
            2..=8 => u8::try_from(value).ok(),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimal_tiff_reads_back_and_only_it_is_minimal() {
        for value in 2..=8 {
            let tiff = minimal_tiff(value);
            assert_eq!(orientation(&tiff), Some(value));
            assert!(is_minimal_tiff(&tiff));
        }
        assert!(!is_minimal_tiff(&minimal_tiff(1)));
        assert!(!is_minimal_tiff(&minimal_tiff(9)));
        let mut other = minimal_tiff(6);
        other[25] = 1; // a next IFD
        assert!(!is_minimal_tiff(&other));
    }

    #[test]
    fn little_endian_and_damaged_tiffs() {
        let le = [
            b'I', b'I', 0x2a, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0,
            0, 0,
        ];
        assert_eq!(orientation(&le), Some(6));
        assert_eq!(orientation(&le[..12]), None, "cut");
        assert_eq!(orientation(b"XX"), None);
        let mut huge = minimal_tiff(6);
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(orientation(&huge), None, "IFD beyond the end");
    }
}
