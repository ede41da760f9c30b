//! Removing hidden data (metadata) from attachments, in memory, and naming what may remain in the
//! files it cannot be removed from.
//!
//! Owns the rule that the terminal client (`submit`) and the form without JavaScript
//! (`gateway::form_post`) apply to every attachment, and that the page applies in
//! `static/js/metadata.js` (both pinned by `tests/vectors/images/`):
//!
//! - **JPEG, PNG, WebP** are rewritten without re-encoding: the segments or chunks decoding needs
//!   are copied byte for byte, everything that can carry metadata is dropped (EXIF with GPS,
//!   device and dates, XMP, IPTC, comments, text chunks, thumbnails, ICC profiles, trailers), and
//!   the orientation, when the original had one other than 1, is written back as a minimal EXIF
//!   holding that one tag (`exif`), so the picture is not shown on its side. Then a **strict
//!   second reading** of the result must find nothing but what decoding needs; otherwise the file
//!   is *not cleaned*, never half-cleaned.
//! - **Plain UTF-8 text** hides nothing beyond what it says: sent as it is.
//! - **Everything else** (HEIC/HEIF and AVIF photos, video, audio, PDF, office documents and
//!   archives, other images, damaged images, unknown files) is *not cleaned*: no pure-Rust,
//!   well-kept library rewrites HEIF or MP4 metadata safely, so we name what may remain
//!   ([`Remains`]) and the reporter decides.
//!
//! The kind of a file is read from its first bytes, never from its name or announced type.

mod exif;
mod jpeg;
mod png;
mod webp;

pub use png::crc32 as png_crc32;

/// Images larger than this are not read into memory to be cleaned: they are *not cleaned*.
pub const MAX_CLEAN_BYTES: usize = 64 * 1024 * 1024;
/// How many first bytes [`FileKind::sniff`] looks at.
pub const SNIFF_BYTES: usize = 16;

/// What a file is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// JPEG (cleaned).
    Jpeg,
    /// PNG (cleaned).
    Png,
    /// WebP (cleaned).
    Webp,
    /// HEIC, HEIF, AVIF: ISO base media files holding pictures.
    Heif,
    /// GIF, TIFF (and camera raw files built on it), BMP.
    OtherImage,
    /// MP4, MOV, 3GP, WebM, Matroska, AVI.
    Video,
    /// MP3, M4A, Ogg, FLAC, WAV.
    Audio,
    /// PDF.
    Pdf,
    /// Office documents (OOXML and OpenDocument are zip files, like archives), old OLE documents,
    /// RTF.
    Document,
    /// Not one of the above: plain text if the whole file turns out to be, else unknown.
    Unknown,
}

impl FileKind {
    /// The kind from a file's first [`SNIFF_BYTES`] bytes (fewer for a short file).
    pub fn sniff(head: &[u8]) -> FileKind {
        let starts = |magic: &[u8]| head.starts_with(magic);
        let at =
            |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
        if starts(&[0xff, 0xd8]) {
            FileKind::Jpeg
        } else if starts(b"\x89PNG\r\n\x1a\n") {
            FileKind::Png
        } else if starts(b"RIFF") && at(8, b"WEBP") {
            FileKind::Webp
        } else if at(4, b"ftyp") {
            match head.get(8..12).unwrap_or_default() {
                b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1"
                | b"avif" | b"avis" => FileKind::Heif,
                b"M4A " | b"M4B " => FileKind::Audio,
                _ => FileKind::Video,
            }
        } else if (starts(b"RIFF") && at(8, b"AVI ")) || starts(&[0x1a, 0x45, 0xdf, 0xa3]) {
            FileKind::Video
        } else if (starts(b"RIFF") && at(8, b"WAVE"))
            || starts(b"OggS")
            || starts(b"ID3")
            || starts(b"fLaC")
            || (head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0)
        {
            FileKind::Audio
        } else if starts(b"%PDF") {
            FileKind::Pdf
        } else if starts(b"PK\x03\x04")
            || starts(&[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])
            || starts(b"{\\rtf")
        {
            FileKind::Document
        } else if starts(b"GIF8") || starts(b"II*\0") || starts(b"MM\0*") || starts(b"BM") {
            FileKind::OtherImage
        } else {
            FileKind::Unknown
        }
    }

    /// Whether this kind is cleaned here.
    pub fn cleanable(self) -> bool {
        matches!(self, FileKind::Jpeg | FileKind::Png | FileKind::Webp)
    }

    /// Whether this kind is a picture (the page asks the reporter to decide for these).
    pub fn is_picture(self) -> bool {
        matches!(
            self,
            FileKind::Jpeg | FileKind::Png | FileKind::Webp | FileKind::Heif | FileKind::OtherImage
        )
    }

    /// The usual extension of a cleaned file of this kind, for its neutral name.
    pub fn extension(self) -> &'static str {
        match self {
            FileKind::Png => "png",
            FileKind::Webp => "webp",
            _ => "jpg",
        }
    }

    /// The media type of a cleaned file of this kind.
    pub fn media_type(self) -> &'static str {
        match self {
            FileKind::Png => "image/png",
            FileKind::Webp => "image/webp",
            _ => "image/jpeg",
        }
    }

    /// The hidden data a file of this kind may still hold when it is not cleaned.
    pub fn remains(self) -> Remains {
        match self {
            FileKind::Jpeg
            | FileKind::Png
            | FileKind::Webp
            | FileKind::Heif
            | FileKind::OtherImage
            | FileKind::Video => Remains::Capture,
            FileKind::Audio => Remains::Audio,
            FileKind::Pdf | FileKind::Document => Remains::Document,
            FileKind::Unknown => Remains::Unknown,
        }
    }
}

/// What a file that is not cleaned may still tell about who made it, where and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remains {
    /// Photos and videos.
    Capture,
    /// Sound recordings.
    Audio,
    /// PDF and office documents.
    Document,
    /// Anything else.
    Unknown,
}

impl Remains {
    /// In English, for the terminal client.
    pub fn english(self) -> &'static str {
        match self {
            Remains::Capture => "the place (GPS position), the date and time, the device model",
            Remains::Audio => "the date and time, the device or software, sometimes the place",
            Remains::Document => {
                "the author's name, the organisation, the software, dates, comments and earlier versions"
            }
            Remains::Unknown => "depending on the file: an author, a place, dates, a device or software",
        }
    }

    /// The page's sentence (`static/i18n/`).
    pub fn message_key(self) -> &'static str {
        match self {
            Remains::Capture => "page.files.remains.capture",
            Remains::Audio => "page.files.remains.audio",
            Remains::Document => "page.files.remains.document",
            Remains::Unknown => "page.files.remains.other",
        }
    }
}

/// Why a file was not cleaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotCleaned {
    /// A kind we cannot clean (HEIC, video, PDF…).
    #[error("metadata cannot be removed from this kind of file")]
    Unsupported,
    /// A JPEG, PNG or WebP we cannot read safely (damaged, or parts we do not know).
    #[error("the image cannot be read safely (damaged, or parts unknown to us)")]
    Unreadable,
    /// An image over [`MAX_CLEAN_BYTES`].
    #[error("the image is too large to clean in memory")]
    TooLarge,
}

/// What [`clean`] did with a file.
#[derive(Debug, PartialEq, Eq)]
pub enum Cleaning {
    /// The metadata was removed, and a strict second reading of `bytes` found none left.
    Cleaned {
        /// JPEG, PNG or WebP.
        kind: FileKind,
        /// The cleaned file.
        bytes: Vec<u8>,
        /// The orientation kept (2 to 8), if the original had one.
        orientation: Option<u8>,
    },
    /// Plain UTF-8 text: nothing hidden, sent as it is.
    Plain,
    /// Not cleaned: the file goes as it is only if the reporter says so.
    NotCleaned {
        /// What the file is.
        kind: FileKind,
        /// Why it was not cleaned.
        why: NotCleaned,
    },
}

impl Cleaning {
    /// What may remain in a file not cleaned (`None` when nothing hidden remains).
    pub fn remains(&self) -> Option<Remains> {
        match self {
            Cleaning::NotCleaned { kind, .. } => Some(kind.remains()),
            _ => None,
        }
    }
}

/// Cleans a whole file held in memory (see the module documentation).
pub fn clean(bytes: &[u8]) -> Cleaning {
    let kind = FileKind::sniff(&bytes[..bytes.len().min(SNIFF_BYTES)]);
    if kind == FileKind::Unknown {
        return if is_plain_text(bytes) {
            Cleaning::Plain
        } else {
            Cleaning::NotCleaned {
                kind,
                why: NotCleaned::Unsupported,
            }
        };
    }
    if !kind.cleanable() {
        return Cleaning::NotCleaned {
            kind,
            why: NotCleaned::Unsupported,
        };
    }
    if bytes.len() > MAX_CLEAN_BYTES {
        return Cleaning::NotCleaned {
            kind,
            why: NotCleaned::TooLarge,
        };
    }
    let (strip, verify): (Stripper, Verifier) = match kind {
        FileKind::Jpeg => (jpeg::strip, jpeg::verify),
        FileKind::Png => (png::strip, png::verify),
        _ => (webp::strip, webp::verify),
    };
    match strip(bytes) {
        Some((out, orientation)) if verify(&out) == Some(orientation) => Cleaning::Cleaned {
            kind,
            bytes: out,
            orientation,
        },
        _ => Cleaning::NotCleaned {
            kind,
            why: NotCleaned::Unreadable,
        },
    }
}

type Stripper = fn(&[u8]) -> Option<(Vec<u8>, Option<u8>)>;
type Verifier = fn(&[u8]) -> Option<Option<u8>>;

/// The strict second reading on its own: `Some(orientation)` if `bytes` is a JPEG, PNG or WebP
/// with nothing but what decoding needs (and at most the minimal orientation EXIF).
pub fn verify_clean(bytes: &[u8]) -> Option<Option<u8>> {
    match FileKind::sniff(&bytes[..bytes.len().min(SNIFF_BYTES)]) {
        FileKind::Jpeg => jpeg::verify(bytes),
        FileKind::Png => png::verify(bytes),
        FileKind::Webp => webp::verify(bytes),
        _ => None,
    }
}

/// Plain text: UTF-8 (an optional byte-order mark), no control characters but tab, line feed,
/// carriage return and form feed, and not markup (HTML, SVG and XML can name an author or
/// software in their head).
pub fn is_plain_text(bytes: &[u8]) -> bool {
    let bytes = bytes
        .strip_prefix(b"\xef\xbb\xbf".as_slice())
        .unwrap_or(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let controls = text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c'));
    !controls && !text.trim_start().starts_with('<')
}

#[cfg(test)]
mod tests;
