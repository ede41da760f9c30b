//! The index of opened reports in `--out`: `index.csv` for spreadsheets, `index.txt` for people,
//! and the table `resguardo-review list DIR` prints.
//!
//! Rebuilt whole after every `open` from every report folder in `--out` (folders named by a
//! submission id), each file replaced atomically (temporary file, fsync, rename). Urgent reports
//! come first, then the newest. Every cell that comes from a report is cleaned like `report.txt`
//! (one line, no control, bidirectional or invisible characters), and in the CSV a cell that a
//! spreadsheet would take for a formula (starting with `=`, `+`, `-`, `@`, TAB or CR) gets a
//! leading apostrophe. CSV quoting follows RFC 4180 (CRLF line ends, fields with a comma, quote
//! or line break quoted, quotes doubled).
//!
//! Columns: `id`, `day` (UTC day of arrival), `urgent` (`yes`, `no`, `unanswered`), `region`,
//! `types` (the answers to "what happened", separated by `; `), `contact_given` (`yes`/`no`),
//! `sealed_by` (`browser`, `gateway`, `terminal`, or empty), `attachments` (count), `folder`.

use std::fmt::Write as _;
use std::path::Path;

use super::lang::Lang;
use super::opened::{read_folder, OpenedReport};
use crate::bundle::receipt::write_atomically;
use crate::payload::{FieldValue, Urgency};
use crate::submission::{Sealing, SubmissionId};
use crate::terminal::clean_line;

/// One opened report as the index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    /// The submission id; also the name of the report's folder.
    pub id: SubmissionId,
    /// UTC day of arrival, `YYYY-MM-DD` (empty if the folder does not say).
    pub day: String,
    /// The reporter's answer to "is it urgent"; `Unanswered` if the report could not be read.
    pub urgency: Urgency,
    /// The `region` answer as one cleaned cell (at most 200 characters); empty if none.
    pub region: String,
    /// The `what_happened` answers joined by `; `, cleaned, at most 200 characters;
    /// `(message.bin)` for a folder holding only the sealed message.
    pub types: String,
    /// Whether the `contact` answer is non-blank.
    pub contact_given: bool,
    /// `browser`, `gateway`, `terminal`, or empty if unknown; `gateway` whenever the
    /// gateway sealed the report on arrival, whatever the report itself claims.
    pub sealed_by: String,
    /// How many attachments the report lists.
    pub attachments: usize,
    /// The folder, relative to `--out`, with a trailing slash.
    pub folder: String,
    /// What could not be read in the folder, if anything.
    pub problem: Option<String>,
}

/// The column names of `index.csv`, in order.
pub const CSV_HEADER: [&str; 9] = [
    "id",
    "day",
    "urgent",
    "region",
    "types",
    "contact_given",
    "sealed_by",
    "attachments",
    "folder",
];

/// Every report folder below `out`, urgent first, then newest, then by id.
pub fn scan(out: &Path) -> std::io::Result<Vec<IndexRow>> {
    let mut rows: Vec<IndexRow> = report_folders(out)?
        .into_iter()
        .map(|(id, dir)| row(id, &dir))
        .collect();
    rows.sort_by(|a, b| {
        (b.urgency == Urgency::Yes)
            .cmp(&(a.urgency == Urgency::Yes))
            .then_with(|| b.day.cmp(&a.day))
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(rows)
}

/// Every report folder directly below `out` (a real directory named by a submission id; a
/// symlink named like a report is not one).
pub fn report_folders(out: &Path) -> std::io::Result<Vec<(SubmissionId, std::path::PathBuf)>> {
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(out)? {
        let entry = entry?;
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<SubmissionId>().ok())
        else {
            continue;
        };
        if entry.file_type()?.is_dir() {
            folders.push((id, entry.path()));
        }
    }
    Ok(folders)
}

fn row(id: SubmissionId, dir: &Path) -> IndexRow {
    let folder = read_folder(dir);
    let mut problems = Vec::new();
    let (day, gateway_sealed) = match &folder.entry {
        Ok(entry) => (entry.day.to_string(), entry.sealing == Sealing::OnArrival),
        Err(e) => {
            problems.push(format!("bundle-entry.json: {e}"));
            (String::new(), false)
        }
    };
    let mut row = IndexRow {
        id,
        day,
        urgency: Urgency::Unanswered,
        region: String::new(),
        types: String::new(),
        contact_given: false,
        sealed_by: if gateway_sealed {
            "gateway".into()
        } else {
            String::new()
        },
        attachments: 0,
        folder: format!("{id}/"),
        problem: None,
    };
    match &folder.report {
        None => row.types = "(message.bin)".into(),
        Some(Err(e)) => problems.push(format!("report.json: {e}")),
        Some(Ok(report)) => fill(&mut row, report, gateway_sealed),
    }
    if !problems.is_empty() {
        row.problem = Some(clean_line(&problems.join("; ")));
    }
    row
}

fn fill(row: &mut IndexRow, report: &OpenedReport, gateway_sealed: bool) {
    let text = |id: &str| match report.fields.get(id) {
        Some(FieldValue::Text(t)) => t.clone(),
        Some(FieldValue::Choices(list)) => list.join("; "),
        None => String::new(),
    };
    row.urgency = report.urgency();
    row.region = cell(&text("region"));
    row.types = cell(&text("what_happened"));
    row.contact_given = !text("contact").trim().is_empty();
    if !gateway_sealed {
        row.sealed_by = cell(report.sealed_by.as_deref().unwrap_or(""));
    }
    row.attachments = report.attachments.len();
}

/// Reporter text as one short cell.
fn cell(text: &str) -> String {
    let cleaned = clean_line(text.trim());
    if cleaned.chars().count() > 200 {
        let mut cut: String = cleaned.chars().take(199).collect();
        cut.push('…');
        cut
    } else {
        cleaned
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `index.csv`: RFC 4180, formula-neutralised.
pub fn csv(rows: &[IndexRow]) -> String {
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let cells: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    };
    line(&CSV_HEADER);
    for r in rows {
        let id = r.id.to_string();
        let attachments = r.attachments.to_string();
        line(&[
            &id,
            &r.day,
            r.urgency.as_str(),
            &r.region,
            &r.types,
            yes_no(r.contact_given),
            &r.sealed_by,
            &attachments,
            &r.folder,
        ]);
    }
    out
}

/// One CSV field: neutralised against formula injection, then quoted if needed.
pub fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// The readable table (`index.txt`, `list DIR`), in the reviewer's language.
pub fn table(rows: &[IndexRow], lang: Lang) -> String {
    let urgent = |u: Urgency| match (u, lang) {
        (Urgency::Yes, Lang::En) => "YES",
        (Urgency::Yes, Lang::Es) => "SÍ",
        (Urgency::No, _) => "no",
        (Urgency::Unanswered, Lang::En) => "unanswered",
        (Urgency::Unanswered, Lang::Es) => "sin respuesta",
    };
    let header = [
        "id",
        lang.pick("day", "día"),
        lang.pick("urgent", "urgente"),
        lang.pick("region", "región"),
        lang.pick("what happened", "qué pasó"),
        lang.pick("contact", "contacto"),
        lang.pick("sealed by", "cifrado por"),
        lang.pick("files", "archivos"),
        lang.pick("folder", "carpeta"),
    ];
    let mut lines: Vec<[String; 9]> = vec![header.map(str::to_string)];
    for r in rows {
        lines.push([
            r.id.to_string(),
            r.day.clone(),
            urgent(r.urgency).to_string(),
            short(&r.region, 20),
            short(&r.types, 40),
            lang.pick(
                yes_no(r.contact_given),
                if r.contact_given { "sí" } else { "no" },
            )
            .to_string(),
            r.sealed_by.clone(),
            r.attachments.to_string(),
            r.folder.clone(),
        ]);
    }
    let mut widths = [0usize; 9];
    for line in &lines {
        for (w, c) in widths.iter_mut().zip(line) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (i, (c, w)) in line.iter().zip(widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let _ = write!(text, "{c:<w$}");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    for r in rows.iter().filter(|r| r.problem.is_some()) {
        let _ = writeln!(
            out,
            "{} {}: {}",
            lang.pick("could not read", "no se pudo leer"),
            r.folder,
            r.problem.as_deref().unwrap_or("")
        );
    }
    out
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('…');
        cut
    } else {
        text.to_string()
    }
}

/// Rebuilds `index.csv` and `index.txt` in `out`; returns how many reports they list.
pub fn rebuild(out: &Path) -> std::io::Result<usize> {
    rebuild_in(out, Lang::from_env())
}

/// [`rebuild`] with the table in `lang` instead of the language from the environment.
pub fn rebuild_in(out: &Path, lang: Lang) -> std::io::Result<usize> {
    let rows = scan(out)?;
    write_atomically(&out.join("index.csv"), csv(&rows).as_bytes())?;
    write_atomically(&out.join("index.txt"), table(&rows, lang).as_bytes())?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_cannot_become_formulas_or_break_rows() {
        assert_eq!(csv_field("cusco"), "cusco");
        assert_eq!(
            csv_field("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        assert_eq!(csv_field("+51 999"), "'+51 999");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tx"), "'\tx");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("a\nb"), "\"a\nb\"");
    }

    fn row(id: u8, day: &str, urgency: Urgency) -> IndexRow {
        IndexRow {
            id: SubmissionId::from_bytes([id; 16]),
            day: day.into(),
            urgency,
            region: "=cmd|' /C calc'!A0".into(),
            types: "threat; surveillance".into(),
            contact_given: true,
            sealed_by: "browser".into(),
            attachments: 2,
            folder: format!("{}/", SubmissionId::from_bytes([id; 16])),
            problem: None,
        }
    }

    #[test]
    fn the_csv_has_the_columns_and_crlf_rows() {
        let text = csv(&[row(1, "2026-11-29", Urgency::Yes)]);
        let mut lines = text.split("\r\n");
        assert_eq!(
            lines.next(),
            Some("id,day,urgent,region,types,contact_given,sealed_by,attachments,folder")
        );
        assert_eq!(
            lines.next(),
            Some(
                "01010101010101010101010101010101,2026-11-29,yes,'=cmd|' /C calc'!A0,\
                 threat; surveillance,yes,browser,2,01010101010101010101010101010101/"
            )
        );
        assert_eq!(lines.next(), Some(""));
    }

    #[test]
    fn the_table_is_aligned_and_localised() {
        let rows = [
            row(1, "2026-11-29", Urgency::Yes),
            row(2, "2026-11-30", Urgency::Unanswered),
        ];
        let en = table(&rows, Lang::En);
        assert!(en.starts_with("id "), "{en}");
        assert!(en.contains("YES"), "{en}");
        let es = table(&rows, Lang::Es);
        assert!(
            es.contains("urgente") && es.contains("sin respuesta"),
            "{es}"
        );
        let widths: Vec<usize> = en
            .lines()
            .map(|l| l.find("2026").unwrap_or(0))
            .skip(1)
            .collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{en}");
    }
}
