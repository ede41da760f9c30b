//! Writing opened reports to disk: whole or not at all, private, and never outside `--out`.
//!
//! Each submission gets a fresh staging directory inside `--out` (the parser process writes the
//! report there, locked to that directory) and a spool file beside it for its sealed bytes (which
//! the parser never sees). The opener checks what the parser left ([`check_report_tree`]: regular
//! files and folders under the names we generate, nothing else), syncs it, and renames the
//! directory to `<id>/` only when everything is complete, so an interrupted run leaves whole
//! reports or none (stale staging, spool and temporary files are removed at the next run). Files
//! are created with `O_EXCL | O_NOFOLLOW`, mode 0600 (directories 0700), under names we generate:
//! the reporter's file name is reduced to a safe form and prefixed with the attachment's number,
//! so it can neither traverse, nor collide, nor name a device.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::store::sync_tree;
use crate::submission::SubmissionId;

/// Prefix of staging directories inside `--out`.
const STAGING_PREFIX: &str = ".resguardo-staging-";
/// Prefix of the files holding a submission's sealed bytes while it is opened.
const SPOOL_PREFIX: &str = ".resguardo-spool-";

/// The `--out` directory.
pub struct OutputDir {
    root: PathBuf,
}

impl OutputDir {
    /// Creates `--out` (0700) if needed and removes what an interrupted run left behind.
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
        // Absolute from here on: the parser processes get staging paths below it, and
        // `--out reports/` (as the guide writes it) must work like any other path.
        let root = &fs::canonicalize(root)?;
        for entry in fs::read_dir(root)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let kind = entry.file_type()?;
            if name.starts_with(STAGING_PREFIX) && kind.is_dir() {
                fs::remove_dir_all(entry.path())?;
            } else if (name.starts_with(SPOOL_PREFIX)
                || name.starts_with(crate::bundle::receipt::TEMP_PREFIX))
                && kind.is_file()
            {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(OutputDir {
            root: root.to_path_buf(),
        })
    }

    /// The canonical, absolute path of `--out`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True if this submission was opened by an earlier run.
    pub fn is_open(&self, id: &SubmissionId) -> bool {
        fs::symlink_metadata(self.root.join(id.to_string())).is_ok()
    }

    /// A fresh staging directory (and spool file name) for one submission.
    pub fn stage(&self, id: &SubmissionId) -> io::Result<Staging> {
        let nonce = SubmissionId::random();
        let path = self.root.join(format!("{STAGING_PREFIX}{id}-{nonce}"));
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Staging {
            dir: ReportDir { path },
            spool: self.root.join(format!("{SPOOL_PREFIX}{id}-{nonce}.pgp")),
            final_path: self.root.join(id.to_string()),
            committed: false,
        })
    }
}

/// A folder we write a report into, under our own names only.
pub struct ReportDir {
    path: PathBuf,
}

impl ReportDir {
    /// Wraps an existing directory `path`; creates nothing.
    pub fn new(path: &Path) -> Self {
        ReportDir {
            path: path.to_path_buf(),
        }
    }

    /// The directory itself.
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
        create_private(&path)
    }

    /// Writes a whole small file.
    pub fn write(&self, relative: &str, bytes: &[u8]) -> io::Result<()> {
        let mut file = self.create(relative)?;
        file.write_all(bytes)?;
        file.sync_all()
    }
}

/// Creates a new file, mode 0600, refusing to follow a symlink or replace anything.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// A submission being written. Dropped without [`Staging::commit`], it is removed, spool and all.
pub struct Staging {
    dir: ReportDir,
    spool: PathBuf,
    final_path: PathBuf,
    committed: bool,
}

impl Staging {
    /// The directory that becomes `<id>/`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The staging directory, for writing into.
    pub fn dir(&self) -> &ReportDir {
        &self.dir
    }

    /// Where the sealed bytes wait while they are checked and decrypted (outside the staging
    /// directory, so the parser, locked into that directory, cannot touch them).
    pub fn spool(&self) -> &Path {
        &self.spool
    }

    /// Creates a new private file (relative path, our own names only).
    pub fn create(&self, relative: &str) -> io::Result<File> {
        self.dir.create(relative)
    }

    /// Writes a whole small file.
    pub fn write(&self, relative: &str, bytes: &[u8]) -> io::Result<()> {
        self.dir.write(relative, bytes)
    }

    /// Syncs everything and renames the staging directory to `<id>/`.
    pub fn commit(mut self) -> io::Result<()> {
        sync_tree(self.dir.path())?;
        fs::rename(self.dir.path(), &self.final_path)?;
        self.committed = true;
        let _ = fs::remove_file(&self.spool);
        if let Some(parent) = self.final_path.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.spool);
        if !self.committed {
            let _ = fs::remove_dir_all(self.dir.path());
        }
    }
}

/// The kind of report a parser wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    /// `report.json`, `report.txt` and attachments under `files/`.
    Report,
    /// `message.bin` and `report.txt`.
    Raw,
}

/// Checks what a parser left in a staging directory before it may become a report: exactly the
/// files of `kind` (attachments only as `files/NNN-name`), regular files and folders only (no
/// symlinks, devices, sockets, links), and sets their modes to 0600/0700. Returns the bytes the
/// files hold, or what is wrong.
pub fn check_report_tree(dir: &Path, kind: TreeKind) -> Result<u64, String> {
    let mut total = 0u64;
    let mut seen_required = 0;
    for entry in fs::read_dir(dir).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name();
        let name = name.to_str().ok_or("a name that is not UTF-8")?.to_string();
        let meta = fs::symlink_metadata(entry.path()).map_err(|e| e.to_string())?;
        match (kind, name.as_str()) {
            (TreeKind::Report, "files") if meta.is_dir() => {
                set_mode(&entry.path(), 0o700)?;
                for file in fs::read_dir(entry.path()).map_err(|e| e.to_string())? {
                    let file = file.map_err(|e| e.to_string())?;
                    let file_name = file.file_name();
                    let file_name = file_name.to_str().unwrap_or("");
                    let meta = fs::symlink_metadata(file.path()).map_err(|e| e.to_string())?;
                    if !is_attachment_file_name(file_name) || !plain_file(&meta) {
                        return Err(format!(
                            "unexpected files/{}",
                            crate::terminal::clean_line(file_name)
                        ));
                    }
                    set_mode(&file.path(), 0o600)?;
                    total += meta.len();
                }
            }
            (TreeKind::Report, "report.json" | "report.txt")
            | (TreeKind::Raw, "message.bin" | "report.txt")
                if plain_file(&meta) =>
            {
                set_mode(&entry.path(), 0o600)?;
                total += meta.len();
                seen_required += 1;
            }
            _ => {
                return Err(format!(
                    "unexpected {:?}",
                    crate::terminal::clean_line(&name.chars().take(60).collect::<String>())
                ))
            }
        }
    }
    if seen_required != 2 {
        return Err("the report is incomplete".into());
    }
    Ok(total)
}

/// A regular file with a single link (a hard link could tie it to a file elsewhere).
fn plain_file(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.file_type().is_file() && meta.nlink() == 1
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

/// True for names [`attachment_file_name`] produces.
fn is_attachment_file_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > 4
        && bytes.len() <= 104
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && bytes[3] == b'-'
        && !name[4..].starts_with('.')
        && name[4..]
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
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

    /// What a parser leaves is checked before it may become a report: a compromised parser
    /// cannot plant links, special files or extra names in `--out`.
    #[test]
    fn only_what_a_report_may_hold_passes_the_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let make = |name: &str| {
            let d = dir.path().join(name);
            fs::create_dir_all(d.join("files")).expect("mkdir");
            fs::write(d.join("report.json"), b"{}").expect("write");
            fs::write(d.join("report.txt"), b"text").expect("write");
            fs::write(d.join("files/001-a.pdf"), b"pdf").expect("write");
            fs::set_permissions(d.join("report.txt"), fs::Permissions::from_mode(0o644))
                .expect("chmod");
            d
        };
        let good = make("good");
        assert_eq!(check_report_tree(&good, TreeKind::Report), Ok(2 + 4 + 3));
        let mode = fs::metadata(good.join("report.txt"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "modes are set");
        assert!(
            check_report_tree(&good, TreeKind::Raw).is_err(),
            "wrong kind"
        );

        let outside = dir.path().join("outside");
        fs::write(&outside, b"x").expect("write");
        type Plant<'a> = Box<dyn Fn(&Path) + 'a>;
        let cases: Vec<(&str, Plant<'_>)> = vec![
            (
                "a symlink",
                Box::new(|d: &Path| {
                    std::os::unix::fs::symlink("/etc/passwd", d.join("files/002-b")).expect("ln")
                }),
            ),
            (
                "a hard link",
                Box::new(|d: &Path| fs::hard_link(&outside, d.join("files/002-b")).expect("link")),
            ),
            (
                "an unexpected name",
                Box::new(|d: &Path| fs::write(d.join("run.sh"), b"x").expect("write")),
            ),
            (
                "a hidden attachment",
                Box::new(|d: &Path| fs::write(d.join("files/.bashrc"), b"x").expect("write")),
            ),
            (
                "a nested folder",
                Box::new(|d: &Path| fs::create_dir(d.join("files/002-dir")).expect("mkdir")),
            ),
            (
                "a missing report.txt",
                Box::new(|d: &Path| fs::remove_file(d.join("report.txt")).expect("rm")),
            ),
        ];
        for (i, (what, plant)) in cases.iter().enumerate() {
            let d = make(&format!("bad-{i}"));
            plant(&d);
            assert!(check_report_tree(&d, TreeKind::Report).is_err(), "{what}");
        }
    }
}
