//! Turning command-line input into a payload v1 report, attachments cleaned of metadata.
//!
//! Each attachment is read by its content (`crate::metadata`): JPEG, PNG and WebP pictures are
//! cleaned in memory and go under a neutral name (`imagen-N.jpg`: a phone names a photo by the
//! moment it was taken); plain text goes as it is; any other file (HEIC, video, PDF, office
//! documents, a damaged picture) may still say who made it, where and when, so
//! [`prepare_attachments`] refuses it unless the reporter named it with `--send-with-metadata`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::SubmitError;
use crate::metadata::{self, Cleaning, FileKind, Remains};
use crate::payload::{
    attachment_path, Attachment, FieldValue, Report, MAX_ATTACHMENTS, MAX_DESCRIPTION_CHARS,
    MAX_FIELDS, MAX_FIELD_CHARS, SCHEMA,
};

/// What the reporter gave on the command line.
#[derive(Debug, Clone, Default)]
pub struct ReportInput {
    /// A UTF-8 text file with the account of what happened.
    pub message: PathBuf,
    /// Files to attach, in order: regular files, at most [`MAX_ATTACHMENTS`].
    pub attachments: Vec<PathBuf>,
    /// BCP 47 tag for the report's `language`; passed through unchecked.
    pub language: String,
    /// Someone is at imminent risk; also sets the `urgent` field to "yes" unless it is given.
    pub urgent: bool,
    /// `key=value` form answers (a key given twice becomes a list).
    pub fields: Vec<(String, String)>,
    /// The conversation the report starts or continues (`docs/replies-v1.md`).
    pub conversation: Option<crate::payload::ConversationRef>,
}

/// What goes into the report for one attachment.
pub enum Prepared {
    /// A picture cleaned in memory (the file itself is not changed).
    Cleaned {
        /// The reporter's file.
        path: PathBuf,
        /// JPEG, PNG or WebP.
        kind: FileKind,
        /// The cleaned picture.
        bytes: Zeroizing<Vec<u8>>,
        /// The orientation kept, if any.
        orientation: Option<u8>,
    },
    /// Plain text: nothing hidden, sent from the file as it is.
    Plain(PathBuf),
    /// Not cleaned: sent from the file as it is because the reporter said so.
    AsIs {
        /// The reporter's file.
        path: PathBuf,
        /// What it may still say about who made it, where and when.
        remains: Remains,
    },
}

impl Prepared {
    /// The reporter's file.
    pub fn path(&self) -> &Path {
        match self {
            Prepared::Cleaned { path, .. }
            | Prepared::Plain(path)
            | Prepared::AsIs { path, .. } => path,
        }
    }

    /// What the terminal says about this attachment (one line, to stderr).
    pub fn note(&self) -> String {
        let shown = crate::terminal::clean_line(&self.path().display().to_string());
        match self {
            Prepared::Cleaned { orientation, .. } => format!(
                "{shown}: metadata removed{}; it is sent as a copy with a neutral name",
                if orientation.is_some() {
                    " (orientation kept)"
                } else {
                    ""
                }
            ),
            Prepared::Plain(_) => format!("{shown}: plain text, sent as it is"),
            Prepared::AsIs { remains, .. } => format!(
                "{shown}: sent WITH its metadata, as you asked; it may hold {}",
                remains.english()
            ),
        }
    }
}

/// Whether the reporter accepts that these files go with their metadata.
#[derive(Debug, Clone, Copy)]
pub enum Consent<'a> {
    /// Only the files named (`--send-with-metadata FILE`, each also given with `--attach`); a
    /// picture named here goes unchanged, metadata included.
    Named(&'a [PathBuf]),
    /// Every file that cannot be cleaned (library callers that decided already).
    All,
}

/// Reads every attachment and decides what goes: cleaned pictures, plain text, and files not
/// cleaned only with the reporter's consent. A file that cannot be cleaned and was not named is
/// a one-line error naming it and what may remain in it.
pub fn prepare_attachments(
    paths: &[PathBuf],
    consent: Consent<'_>,
) -> Result<Vec<Prepared>, SubmitError> {
    if let Consent::Named(named) = consent {
        if let Some(stray) = named.iter().find(|n| !paths.contains(n)) {
            return Err(SubmitError::Input {
                path: stray.clone(),
                reason: "named with --send-with-metadata but not given with --attach".into(),
            });
        }
    }
    let consented = |path: &PathBuf| match consent {
        Consent::All => true,
        Consent::Named(named) => named.contains(path),
    };
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let as_is = consent_is_explicit(consent, path);
        let cleaning = if as_is {
            None
        } else {
            Some(read_and_clean(path)?)
        };
        out.push(match cleaning {
            Some(Cleaning::Cleaned {
                kind,
                bytes,
                orientation,
            }) => Prepared::Cleaned {
                path: path.clone(),
                kind,
                bytes: Zeroizing::new(bytes),
                orientation,
            },
            Some(Cleaning::Plain) => Prepared::Plain(path.clone()),
            Some(not_cleaned @ Cleaning::NotCleaned { .. }) => {
                let remains = not_cleaned.remains().unwrap_or(Remains::Unknown);
                if !consented(path) {
                    let why = match not_cleaned {
                        Cleaning::NotCleaned { why, .. } => why.to_string(),
                        _ => String::new(),
                    };
                    return Err(SubmitError::Input {
                        path: path.clone(),
                        reason: format!(
                            "{why}; it may still hold {}. Nothing was sent. Leave it out, or send it as it is with --send-with-metadata {}",
                            remains.english(),
                            crate::terminal::clean_line(&path.display().to_string())
                        ),
                    });
                }
                Prepared::AsIs {
                    path: path.clone(),
                    remains,
                }
            }
            None => Prepared::AsIs {
                path: path.clone(),
                remains: sniff_file(path)?.remains(),
            },
        });
    }
    Ok(out)
}

/// A file the reporter named with `--send-with-metadata` is sent unchanged, whatever it is.
fn consent_is_explicit(consent: Consent<'_>, path: &PathBuf) -> bool {
    matches!(consent, Consent::Named(named) if named.contains(path))
}

fn open_regular(path: &Path) -> Result<(File, u64), SubmitError> {
    let error = |e: std::io::Error| SubmitError::Input {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = File::open(path).map_err(error)?;
    let meta = file.metadata().map_err(error)?;
    if !meta.is_file() {
        return Err(SubmitError::Input {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    Ok((file, meta.len()))
}

fn sniff_file(path: &Path) -> Result<FileKind, SubmitError> {
    let (file, _) = open_regular(path)?;
    let mut head = Vec::with_capacity(metadata::SNIFF_BYTES);
    file.take(metadata::SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| SubmitError::Input {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(FileKind::sniff(&head))
}

/// Reads a picture (or a file that may be plain text) into memory, at most
/// [`metadata::MAX_CLEAN_BYTES`], and cleans it; any other file only has its first bytes read.
fn read_and_clean(path: &Path) -> Result<Cleaning, SubmitError> {
    let kind = sniff_file(path)?;
    let (file, size) = open_regular(path)?;
    let worth_reading =
        (kind.cleanable() || kind == FileKind::Unknown) && size <= metadata::MAX_CLEAN_BYTES as u64;
    if !worth_reading {
        return Ok(match (kind, kind.cleanable()) {
            (_, true) => Cleaning::NotCleaned {
                kind,
                why: metadata::NotCleaned::TooLarge,
            },
            _ => Cleaning::NotCleaned {
                kind,
                why: metadata::NotCleaned::Unsupported,
            },
        });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(metadata::MAX_CLEAN_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SubmitError::Input {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(metadata::clean(&bytes))
}

/// Reads and checks the input; returns the report, its attachments in report order as
/// [`prepare_attachments`] decided them.
pub fn build_report(input: &ReportInput, prepared: &[Prepared]) -> Result<Report, SubmitError> {
    let input_error = |path: &Path, reason: String| SubmitError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let description = read_text(&input.message)?;
    if input.attachments.len() > MAX_ATTACHMENTS {
        return Err(input_error(
            &input.attachments[MAX_ATTACHMENTS],
            format!("at most {MAX_ATTACHMENTS} attachments"),
        ));
    }
    let mut fields: BTreeMap<String, FieldValue> = BTreeMap::new();
    for (key, value) in &input.fields {
        if !crate::payload::is_valid_field_id(key) || value.chars().count() > MAX_FIELD_CHARS {
            return Err(input_error(
                Path::new("--field"),
                format!("{key:?}: field names are lowercase letters, digits and _ (at most 64), values at most {MAX_FIELD_CHARS} characters"),
            ));
        }
        let merged = match fields.remove(key) {
            None => FieldValue::Text(value.clone()),
            Some(FieldValue::Text(first)) => FieldValue::Choices(vec![first, value.clone()]),
            Some(FieldValue::Choices(mut list)) => {
                list.push(value.clone());
                FieldValue::Choices(list)
            }
        };
        fields.insert(key.clone(), merged);
    }
    if fields.len() > MAX_FIELDS {
        return Err(input_error(
            Path::new("--field"),
            format!("at most {MAX_FIELDS} fields"),
        ));
    }
    let mut attachments = Vec::new();
    for (index, prepared) in prepared.iter().enumerate() {
        let path = prepared.path();
        let (size, sha256, name) = match prepared {
            Prepared::Cleaned { kind, bytes, .. } => {
                let hashed = crate::hashing::hash_stream(&mut bytes.as_slice()).map_err(|e| {
                    SubmitError::Input {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    }
                })?;
                let name = format!("imagen-{}.{}", index + 1, kind.extension());
                (hashed.size, hashed.sha256, name)
            }
            _ => {
                let (size, sha256) = hash_file(path)?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| format!("attachment-{}", index + 1));
                (size, sha256, name)
            }
        };
        attachments.push(Attachment {
            path: attachment_path(index, &name),
            media_type: media_type(&name).into(),
            name: name.chars().take(crate::payload::MAX_NAME_CHARS).collect(),
            size,
            sha256,
        });
    }
    // The urgency answer is kept as an answer too ("yes"; no flag means not answered).
    if input.urgent && !fields.contains_key("urgent") {
        fields.insert("urgent".into(), FieldValue::Text("yes".into()));
    }
    let report = Report {
        schema: SCHEMA.into(),
        language: input.language.clone(),
        urgent: input.urgent,
        sealed_by: Some("terminal".into()),
        fields,
        description,
        attachments,
        conversation: input.conversation.clone(),
    };
    Ok(report)
}

fn read_text(path: &Path) -> Result<String, SubmitError> {
    let error = |reason: String| SubmitError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(|e| error(e.to_string()))?
        .take((MAX_DESCRIPTION_CHARS * 4 + 1) as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| error(e.to_string()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| error("the message is not UTF-8 text".into()))?;
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(error(format!(
            "the message is longer than {MAX_DESCRIPTION_CHARS} characters; attach long documents as files"
        )));
    }
    Ok(text)
}

fn hash_file(path: &Path) -> Result<(u64, String), SubmitError> {
    let error = |e: std::io::Error| SubmitError::Input {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = File::open(path).map_err(error)?;
    if !file.metadata().map_err(error)?.is_file() {
        return Err(SubmitError::Input {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    let hashed = crate::hashing::hash_stream(&mut file).map_err(error)?;
    Ok((hashed.size, hashed.sha256))
}

/// A media type from the file extension; reviewers still treat every file as untrusted.
pub fn media_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "txt" => "text/plain",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "m4a" => "audio/mp4",
        "wav" => "audio/wav",
        "odt" => "application/vnd.oasis.opendocument.text",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "doc" => "application/msword",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}
