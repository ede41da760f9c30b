//! The parser of `open`: a separate process that reads one decrypted submission and writes its
//! report, without ever holding the key.
//!
//! The opener (which holds the key) starts this program again as
//! `resguardo-review __open-worker --dir <staging> --entry <json> --max-plaintext <bytes>
//! --lang <es|en>` (the reviewer's language, for the labels of a report in another language
//! than theirs: the environment is empty), the plaintext on stdin and nothing on stderr. The parser first locks itself
//! in ([`super::sandbox::enter_worker`]: its staging directory only, no sockets, no execution,
//! bounded file sizes), then reads the plaintext with the strict payload v1 reader, writes
//! `report.json` (attachment paths pointing at the files as saved), `report.txt` and `files/`
//! (or `message.bin` and `report.txt` for a plaintext that is not a payload), and answers on
//! stdout with one small JSON object, [`Answer`]. It writes nothing anywhere else and decides
//! nothing: the opener checks the answer, the folder, and the decryption's integrity before the
//! folder becomes a report.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::lang::Lang;
use super::opened::OpenedReport;
use super::output::{attachment_file_name, ReportDir};
use super::render::{self, Labels, WrittenFile};
use super::sandbox;
use crate::bundle::BundleEntry;
use crate::payload::read::{read_plaintext, AttachmentSink, Plaintext};
use crate::payload::{Attachment, Urgency};

/// The hidden subcommand that runs a parser.
pub const SUBCOMMAND: &str = "__open-worker";

/// Bound on an answer.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Room above the plaintext bound for the files a parser writes besides the plaintext's own
/// (`report.txt`, `report.json`).
const FILE_SLACK: u64 = 16 * 1024 * 1024;

/// What a parser tells the opener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Answer {
    /// A payload v1, written as `report.json`, `report.txt` and `files/`.
    Report {
        /// The report's urgency answer, as the parser read it (for the summary's urgent list).
        urgency: Urgency,
        /// How many attachments were written under `files/`.
        attachments: usize,
    },
    /// Not a payload: written as `message.bin` and `report.txt`.
    Raw {
        /// Length of the plaintext kept as `message.bin`, in bytes.
        size: u64,
    },
    /// Refused: a short reason (one of [`super::lang::REASONS`]) and a detail.
    Failed {
        /// The stable English reason; [`receive`] rejects any other.
        reason: String,
        /// Specifics for people; the parser cleans it to one line of at most 300 characters.
        detail: String,
    },
}

/// One parser's job, as its command line carries it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The staging directory to write into.
    pub dir: PathBuf,
    /// The submission, as the bundle manifest describes it.
    pub entry: BundleEntry,
    /// Bound on the plaintext.
    pub max_plaintext: u64,
    /// Refuse to parse unless the parser's own sandbox is fully in force.
    pub require_sandbox: bool,
    /// The reviewer's language: the labels of `report.txt` for a report in a language reviewers
    /// do not read (see [`Labels::for_reviewer`]).
    pub lang: Lang,
}

impl Job {
    /// The arguments that start this job (after the program name).
    pub fn args(&self) -> Vec<OsString> {
        let entry = serde_json::to_string(&self.entry).unwrap_or_default();
        let mut args: Vec<OsString> = vec![
            SUBCOMMAND.into(),
            "--dir".into(),
            self.dir.clone().into(),
            "--entry".into(),
            entry.into(),
            "--max-plaintext".into(),
            self.max_plaintext.to_string().into(),
            "--lang".into(),
            self.lang.tag().into(),
        ];
        if self.require_sandbox {
            args.push("--require-sandbox".into());
        }
        args
    }

    /// The job from the parsed command line (`lang`: exactly `es` or `en`).
    pub fn from_args(
        dir: PathBuf,
        entry: &str,
        max_plaintext: u64,
        require_sandbox: bool,
        lang: &str,
    ) -> Result<Job, String> {
        let entry: BundleEntry =
            serde_json::from_str(entry).map_err(|e| format!("--entry: {e}"))?;
        let lang = Lang::from_tag(lang).ok_or_else(|| "--lang: not es or en".to_string())?;
        Ok(Job {
            dir,
            entry,
            max_plaintext,
            require_sandbox,
            lang,
        })
    }
}

fn failed(reason: &str, detail: impl ToString) -> Answer {
    let detail: String = crate::terminal::clean_line(&detail.to_string())
        .chars()
        .take(300)
        .collect();
    Answer::Failed {
        reason: reason.to_string(),
        detail,
    }
}

/// Runs a parser: locks itself in, reads `input`, writes the report into `job.dir`.
pub fn run(job: &Job, input: impl Read) -> Answer {
    let entered = sandbox::limit_worker(job.max_plaintext.saturating_add(FILE_SLACK))
        .and_then(|()| sandbox::enter_worker(&job.dir));
    match entered {
        Ok(status) if job.require_sandbox && !status.is_sufficient() => {
            return failed(
                "parser sandbox not active",
                status.summary(super::lang::Lang::En),
            )
        }
        Ok(_) => {}
        Err(e) if job.require_sandbox => return failed("parser sandbox not active", e),
        Err(_) => {}
    }
    parse(job, input)
}

/// The parsing part of [`run`], without the sandbox (for tests and benchmarks).
pub fn parse(job: &Job, input: impl Read) -> Answer {
    let dir = ReportDir::new(&job.dir);
    let mut sink = FilesSink {
        dir: &dir,
        written: Vec::new(),
    };
    let parsed = read_plaintext(input, job.max_plaintext, &mut sink);
    let written = std::mem::take(&mut sink.written);
    match parsed {
        Err(e) => failed(e.reason(), e),
        Ok(Plaintext::Report(report)) => {
            let text = render::render(
                &report,
                &job.entry,
                &written,
                &Labels::for_reviewer(job.lang),
            );
            let saved: Vec<String> = written
                .iter()
                .map(|f| format!("files/{}", f.file_name))
                .collect();
            let opened = OpenedReport::new(&report, &saved);
            let json = match serde_json::to_vec_pretty(&opened) {
                Ok(json) => json,
                Err(e) => return failed("write error", e),
            };
            match dir
                .write("report.json", &json)
                .and_then(|()| dir.write("report.txt", text.as_bytes()))
            {
                Ok(()) => Answer::Report {
                    urgency: report.urgency(),
                    attachments: report.attachments.len(),
                },
                Err(e) => failed("write error", e),
            }
        }
        Ok(Plaintext::Raw { size }) => {
            let text = render::render_raw(&job.entry, size);
            match dir.write("report.txt", text.as_bytes()) {
                Ok(()) => Answer::Raw { size },
                Err(e) => failed("write error", e),
            }
        }
    }
}

/// Writes the answer (one line of JSON) to `out`.
pub fn send(answer: &Answer, mut out: impl Write) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(answer).map_err(io::Error::other)?;
    bytes.push(b'\n');
    out.write_all(&bytes)?;
    out.flush()
}

/// Reads an answer strictly: bounded, one known shape, a known reason.
pub fn receive(bytes: &[u8]) -> Result<Answer, String> {
    if bytes.len() as u64 > MAX_ANSWER_BYTES {
        return Err("the answer is too long".into());
    }
    let answer: Answer =
        serde_json::from_slice(bytes).map_err(|e| crate::terminal::clean_line(&e.to_string()))?;
    if let Answer::Failed { reason, .. } = &answer {
        if super::lang::known_reason(reason).is_none() {
            return Err("the answer has an unknown reason".into());
        }
    }
    Ok(answer)
}

/// Writes attachments and a raw plaintext into the report folder under safe names.
struct FilesSink<'a> {
    dir: &'a ReportDir,
    written: Vec<WrittenFile>,
}

impl AttachmentSink for FilesSink<'_> {
    fn open(&mut self, index: usize, attachment: &Attachment) -> io::Result<Box<dyn Write + '_>> {
        let file_name = attachment_file_name(index, &attachment.name);
        let file = self.dir.create(&format!("files/{file_name}"))?;
        self.written.push(WrittenFile {
            file_name,
            original_name: attachment.name.clone(),
            size: attachment.size,
            media_type: attachment.media_type.clone(),
            sha256: attachment.sha256.clone(),
        });
        Ok(Box::new(io::BufWriter::with_capacity(256 * 1024, file)))
    }

    fn raw(&mut self) -> io::Result<Box<dyn Write + '_>> {
        let file = self.dir.create("message.bin")?;
        Ok(Box::new(io::BufWriter::with_capacity(256 * 1024, file)))
    }
}

/// True if `dir` is a staging directory a parser may be pointed at (absolute, no `..`).
pub fn is_acceptable_dir(dir: &Path) -> bool {
    dir.is_absolute()
        && dir
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submission::{Sealing, SubmissionId, UtcDay};

    fn entry() -> BundleEntry {
        BundleEntry {
            id: SubmissionId::random(),
            day: "2026-11-29".parse::<UtcDay>().expect("day"),
            size: 1,
            sha256: "0".repeat(64),
            sealing: Sealing::BySender,
        }
    }

    #[test]
    fn a_job_survives_its_command_line() {
        let job = Job {
            dir: PathBuf::from("/tmp/x"),
            entry: entry(),
            max_plaintext: 123,
            require_sandbox: true,
            lang: Lang::Es,
        };
        let args = job.args();
        assert_eq!(args[0], SUBCOMMAND);
        let entry_arg = args[4].to_str().expect("utf-8");
        assert_eq!(args[7], "--lang");
        let lang_arg = args[8].to_str().expect("utf-8");
        let back = Job::from_args(job.dir.clone(), entry_arg, 123, true, lang_arg).expect("parse");
        assert_eq!(back.entry, job.entry);
        assert_eq!(back.lang, Lang::Es);
        assert!(Job::from_args(job.dir.clone(), "{\"id\": 1}", 1, false, "es").is_err());
        assert!(Job::from_args(job.dir, entry_arg, 1, false, "qu").is_err());
    }

    #[test]
    fn answers_are_read_strictly() {
        for answer in [
            Answer::Report {
                urgency: Urgency::Unanswered,
                attachments: 2,
            },
            Answer::Raw { size: 5 },
            Answer::Failed {
                reason: "payload over its bound".into(),
                detail: "more than 5 bytes".into(),
            },
        ] {
            let mut bytes = Vec::new();
            send(&answer, &mut bytes).expect("send");
            assert_eq!(receive(&bytes).expect("receive"), answer);
        }
        for bad in [
            &br#"{"status":"report","urgency":"yes","attachments":1,"extra":1}"#[..],
            br#"{"status":"opened"}"#,
            br#"{"status":"failed","reason":"All 12 submissions opened OK","detail":""}"#,
            b"",
        ] {
            assert!(receive(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let huge = vec![b' '; MAX_ANSWER_BYTES as usize + 1];
        assert!(receive(&huge).is_err());
    }

    #[test]
    fn a_report_folder_points_at_the_files_as_saved() {
        use crate::payload::{self, FieldValue, Report};
        let dir = tempfile::tempdir().expect("tempdir");
        let photo = b"jpeg bytes".to_vec();
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("urgent".into(), FieldValue::Text("no".into()));
        let report = Report {
            schema: payload::SCHEMA.into(),
            language: "es".into(),
            urgent: false,
            sealed_by: Some("browser".into()),
            fields,
            description: "foto".into(),
            attachments: vec![Attachment {
                name: "photo with gps.jpg".into(),
                size: photo.len() as u64,
                sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, &photo)),
                media_type: "image/jpeg".into(),
                path: "files/001.jpg".into(),
            }],
            conversation: None,
        };
        let (plain, _) = payload::write_payload(Vec::new(), &report, vec![Box::new(&photo[..])])
            .expect("payload");
        let job = Job {
            dir: dir.path().to_path_buf(),
            entry: entry(),
            max_plaintext: 1 << 20,
            require_sandbox: false,
            lang: Lang::En,
        };
        let answer = parse(&job, &plain[..]);
        assert_eq!(
            answer,
            Answer::Report {
                urgency: Urgency::No,
                attachments: 1
            }
        );
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("report.json")).expect("report.json"),
        )
        .expect("json");
        let path = json["attachments"][0]["path"].as_str().expect("path");
        assert_eq!(path, "files/001-photo_with_gps.jpg");
        assert_eq!(json["attachments"][0]["archive_path"], "files/001.jpg");
        assert_eq!(std::fs::read(dir.path().join(path)).expect("saved"), photo);
    }
}
