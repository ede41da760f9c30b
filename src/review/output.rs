//! Writing opened reports to disk: whole or not at all, private, and never outside `--out`.
//!
//! Each submission is written into a fresh staging directory inside `--out` and renamed to
//! `<id>/` only when everything in it is complete and synced, so an interrupted run leaves whole
//! reports or none (stale staging directories are removed at the next run). Files are created
//! with `O_EXCL | O_NOFOLLOW`, mode 0600 (directories 0700), under names we generate: the
//! reporter's file name is reduced to a safe form and prefixed with the attachment's number, so it
//! can neither traverse, nor collide, nor name a device.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::submission::SubmissionId;

/// Prefix of staging directories inside `--out`.
const STAGING_PREFIX: &str = ".resguardo-staging-";

/// The `--out` directory.
pub struct OutputDir {
    root: PathBuf,
}

impl OutputDir {
    /// Creates `--out` (0700) if needed and removes staging left by an interrupted run.
    pub fn prepare(root: &Path) -> io::Result<Self> {
        match fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(root)
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if !fs::metadata(root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a directory", root.display()),
            ));
        }
        for entry in fs::read_dir(root)? {
            let entry = entry?;
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
                && entry.file_type()?.is_dir()
            {
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(OutputDir {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True if this submission was opened by an earlier run.
    pub fn is_open(&self, id: &SubmissionId) -> bool {
        fs::symlink_metadata(self.root.join(id.to_string())).is_ok()
    }

    /// A fresh staging directory for one submission.
    pub fn stage(&self, id: &SubmissionId) -> io::Result<Staging> {
        let path = self
            .root
            .join(format!("{STAGING_PREFIX}{id}-{}", SubmissionId::random()));
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Staging {
            path,
            final_path: self.root.join(id.to_string()),
            committed: false,
        })
    }
}

/// A submission being written. Dropped without [`Staging::commit`], it is removed.
pub struct Staging {
    path: PathBuf,
    final_path: PathBuf,
    committed: bool,
}

impl Staging {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a new private file (relative path, our own names only).
    pub fn create(&self, relative: &str) -> io::Result<File> {
        debug_assert!(!relative.contains(".."));
        let path = self.path.join(relative);
        if let Some(parent) = path.parent() {
            if parent != self.path {
                match fs::DirBuilder::new().mode(0o700).create(parent) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
        }
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    }

    /// Writes a whole small file.
    pub fn write(&self, relative: &str, bytes: &[u8]) -> io::Result<()> {
        let mut file = self.create(relative)?;
        file.write_all(bytes)?;
        file.sync_all()
    }

    pub fn remove(&self, relative: &str) -> io::Result<()> {
        fs::remove_file(self.path.join(relative))
    }

    /// Syncs everything and renames the staging directory to `<id>/`.
    pub fn commit(mut self) -> io::Result<()> {
        sync_tree(&self.path)?;
        fs::rename(&self.path, &self.final_path)?;
        self.committed = true;
        if let Some(parent) = self.final_path.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// fsync every file and directory below `dir` (files first, then their directory).
fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    File::open(dir)?.sync_all()
}

/// Names Windows and some tools treat as devices, whatever the extension.
const DEVICE_NAMES: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// A safe file name for attachment `index` (0-based) from the reporter's `original` name:
/// `NNN-<name>` where `<name>` keeps letters, digits, `-`, `_`, `.` and spaces (as `_`), has no
/// leading dot, no path, no device name, and at most 100 bytes.
pub fn attachment_file_name(index: usize, original: &str) -> String {
    let last = original.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = last
        .chars()
        .map(|c| match c {
            c if c.is_alphanumeric() => c,
            '-' | '_' | '.' => c,
            ' ' => '_',
            _ => '_',
        })
        .collect();
    name = name
        .trim_start_matches(['.', '_'])
        .trim_end_matches(['.', ' '])
        .to_string();
    let stem = name.split('.').next().unwrap_or("").to_ascii_lowercase();
    if DEVICE_NAMES.contains(&stem.as_str()) {
        name = format!("_{name}");
    }
    // Keep within 100 bytes, cutting the stem and keeping a short extension.
    if name.len() > 100 {
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e)
            .filter(|e| e.len() <= 10)
            .map(|e| format!(".{e}"))
            .unwrap_or_default();
        let mut stem: String = String::new();
        for c in name.chars() {
            if stem.len() + c.len_utf8() + ext.len() > 100 {
                break;
            }
            stem.push(c);
        }
        name = format!("{stem}{ext}");
    }
    if name.is_empty() {
        name = "attachment".into();
    }
    format!("{:03}-{name}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_are_safe() {
        let cases = [
            ("foto.jpg", "001-foto.jpg"),
            ("../../etc/passwd", "001-passwd"),
            ("/etc/shadow", "001-shadow"),
            ("C:\\Windows\\evil.exe", "001-evil.exe"),
            ("..", "001-attachment"),
            (".bashrc", "001-bashrc"),
            ("CON.txt", "001-_CON.txt"),
            ("nul", "001-_nul"),
            ("informe final (v2).pdf", "001-informe_final__v2_.pdf"),
            ("a\u{1b}[31mred\u{7}.txt", "001-a__31mred_.txt"),
            ("fotografía_ñandú.png", "001-fotografía_ñandú.png"),
            ("", "001-attachment"),
        ];
        for (input, expected) in cases {
            assert_eq!(attachment_file_name(0, input), expected, "{input:?}");
        }
        let long = format!("{}.pdf", "x".repeat(300));
        let name = attachment_file_name(4, &long);
        assert!(name.starts_with("005-") && name.ends_with(".pdf"), "{name}");
        assert!(name.len() <= 104);
        let multibyte = "ñ".repeat(200);
        assert!(attachment_file_name(0, &multibyte).len() <= 104);
    }

    #[test]
    fn staging_is_all_or_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = OutputDir::prepare(dir.path()).expect("prepare");
        let id = SubmissionId::random();
        {
            let staging = out.stage(&id).expect("stage");
            staging.write("report.json", b"{}").expect("write");
            // Dropped without commit: nothing remains.
        }
        assert!(!out.is_open(&id));
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
        let staging = out.stage(&id).expect("stage");
        staging.write("files/001-a.txt", b"a").expect("write");
        assert!(staging.create("files/001-a.txt").is_err(), "no overwrite");
        staging.commit().expect("commit");
        assert!(out.is_open(&id));
        let meta =
            fs::metadata(dir.path().join(id.to_string()).join("files/001-a.txt")).expect("meta");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_symlink_planted_in_staging_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = OutputDir::prepare(&dir.path().join("out")).expect("prepare");
        let staging = out.stage(&SubmissionId::random()).expect("stage");
        let target = dir.path().join("target");
        std::os::unix::fs::symlink(&target, staging.path().join("report.json")).expect("link");
        assert!(staging.write("report.json", b"x").is_err());
        assert!(!target.exists());
    }
}
