//! The tar subset that both our formats (bundle v1, payload v1) use, written and read the same way.
//!
//! Writing: ustar headers, regular files only, short names, mode 0600, and no metadata at all
//! (mtime 0, uid/gid 0, no user or group names), so an archive says nothing about when or by whom
//! it was made. Reading: entries are taken *raw* (no GNU long names, no pax extensions), so that a
//! hostile archive cannot make the reader buffer an oversized extension header, and anything but
//! a plain regular file is refused.

use std::io::{self, Read, Write};

/// Longest entry name we write or accept (fits the ustar name field without a prefix).
pub const MAX_NAME: usize = 99;

/// Appends one regular file of exactly `size` bytes read from `data`.
pub fn append_file<W: Write, R: Read>(
    builder: &mut tar::Builder<W>,
    path: &str,
    data: R,
    size: u64,
) -> io::Result<()> {
    if path.len() > MAX_NAME || !path.is_ascii() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tar entry name {path:?} is not a short ASCII name"),
        ));
    }
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    // The classic layout of the checksum (six octal digits, NUL, space, as GNU tar and the page's
    // script write it) instead of the tar crate's seven digits and NUL: both are valid ustar, and
    // one layout makes the two payload writers byte-identical (tests/vectors/payload/).
    let sum = header.cksum()?;
    header.as_old_mut().cksum = classic_checksum(sum);
    builder.append(&header, data)
}

fn classic_checksum(sum: u32) -> [u8; 8] {
    let mut field = [0u8; 8];
    field[..6].copy_from_slice(format!("{:06o}", sum & 0o777_777).as_bytes());
    field[7] = b' ';
    field
}

/// Why a tar entry is not the plain regular file we expect.
pub fn plain_file_problem<R: Read>(entry: &tar::Entry<'_, R>) -> Option<String> {
    match entry.header().entry_type() {
        tar::EntryType::Regular => None,
        other => Some(format!("entry type {other:?} is not a regular file")),
    }
}

/// The entry's name as raw bytes (ustar prefix and name joined), without interpretation.
pub fn raw_name<R: Read>(entry: &tar::Entry<'_, R>) -> Vec<u8> {
    entry.header().path_bytes().into_owned()
}

/// The entry name for messages: printable, bounded.
pub fn display_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
