//! Importing cases recorded before Resguardo (`docs/registry-v1.md`, "Importing earlier cases"):
//! a CSV file (RFC 4180), one case per row, checked whole before anything is written. The first
//! bad row is reported with its line number and nothing is imported; a good file is imported in
//! one transaction.
//!
//! The file is the reviewers' own, but it may come from anywhere (a spreadsheet, another
//! organisation's export): it is read as untrusted input, bounded ([`MAX_FILE_BYTES`],
//! [`MAX_ROWS`], [`MAX_FIELD_CHARS`]), and text from it reaches error messages only cleaned and
//! cut short.

use std::io::Read;
use std::path::Path;

use rusqlite::params;

use super::{now, Registry, RegistryError, Status};
use crate::form::FormDefinition;
use crate::submission::UtcDay;
use crate::terminal::clean_line;

/// Largest file imported, in bytes.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Most rows imported at once (not counting the header).
pub const MAX_ROWS: usize = 100_000;

/// Longest field, in characters (after unquoting).
pub const MAX_FIELD_CHARS: usize = 1_000;

/// The columns an import file may have, as its header names them. `received_day` and `types`
/// are required; the others may be left out (or left empty in a row).
pub const COLUMNS: [&str; 9] = [
    "received_day",
    "incident_day",
    "region",
    "types",
    "perpetrators",
    "affected",
    "defender_field",
    "urgent",
    "status",
];

/// The columns every import file must have.
const REQUIRED: [Column; 2] = [Column::ReceivedDay, Column::Types];

/// One of [`COLUMNS`], by position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    ReceivedDay = 0,
    IncidentDay,
    Region,
    Types,
    Perpetrators,
    Affected,
    DefenderField,
    Urgent,
    Status,
}

impl Column {
    fn name(self) -> &'static str {
        COLUMNS[self as usize]
    }
}

impl Registry {
    /// Imports the cases of a CSV file (`docs/registry-v1.md`, "Importing earlier cases") and
    /// returns how many. Every row is checked before anything is written: the first bad row is
    /// returned as [`RegistryError::BadRow`] with its line number, and then nothing is imported.
    /// Imported cases have no submission, `source = 'import'`, `recorded_at` now, their own
    /// incident, and one history row.
    pub fn import_csv(&mut self, path: &Path) -> Result<usize, RegistryError> {
        let form = FormDefinition::embedded().map_err(|e| RegistryError::Unknown(e.to_string()))?;
        let bad = |line: usize, reason: String| RegistryError::BadRow {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let bytes = read_bounded(path).map_err(|e| match e {
            ReadError::Io(e) => RegistryError::Io(format!(
                "{}: {}",
                clean_line(&path.display().to_string()),
                clean_line(&e)
            )),
            ReadError::Row(line, reason) => bad(line, reason),
        })?;
        let text = utf8(&bytes).map_err(|line| {
            bad(
                line,
                "not UTF-8 text (save the file as \"CSV UTF-8\")".to_string(),
            )
        })?;
        let cases = parse_cases(text, &form, UtcDay::today()).map_err(|(l, r)| bad(l, r))?;
        if cases.is_empty() {
            return Ok(0);
        }
        let file_name = path
            .file_name()
            .map(|n| clean_line(&n.to_string_lossy()))
            .unwrap_or_default();
        self.write(|tx| {
            let at = now();
            let mut case_stmt = tx.prepare_cached(
                "INSERT INTO cases (submission, source, received_day, incident_day, region,
                                    affected, defender_field, urgent, status, recorded_at,
                                    incident)
                 VALUES (NULL, 'import', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)",
            )?;
            let mut incident_stmt =
                tx.prepare_cached("UPDATE cases SET incident = id WHERE id = ?1")?;
            let mut type_stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO case_types (case_id, type) VALUES (?1, ?2)",
            )?;
            let mut perpetrator_stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO case_perpetrators (case_id, perpetrator) VALUES (?1, ?2)",
            )?;
            let mut history_stmt = tx.prepare_cached(
                "INSERT INTO case_history (case_id, at, status, note) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for case in &cases {
                case_stmt.execute(params![
                    case.received_day,
                    case.incident_day,
                    case.region,
                    case.affected,
                    case.defender_field,
                    case.urgent,
                    case.status.id(),
                    at,
                ])?;
                let id = tx.last_insert_rowid();
                incident_stmt.execute([id])?;
                for t in &case.types {
                    type_stmt.execute(params![id, t])?;
                }
                for p in &case.perpetrators {
                    perpetrator_stmt.execute(params![id, p])?;
                }
                history_stmt.execute(params![
                    id,
                    at,
                    case.status.id(),
                    format!("imported from {file_name}, line {}", case.line),
                ])?;
            }
            Ok(cases.len())
        })
    }
}

/// Why the file could not be read.
enum ReadError {
    /// It could not be opened or read (the message).
    Io(String),
    /// It is too large: the line where the limit is crossed, and why.
    Row(usize, String),
}

/// The file's bytes, at most [`MAX_FILE_BYTES`]; only a regular file is read (a FIFO or a
/// device would block or never end).
fn read_bounded(path: &Path) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path).map_err(|e| ReadError::Io(e.to_string()))?;
    if !meta.is_file() {
        return Err(ReadError::Io("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| ReadError::Io(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let within = bytes.get(..MAX_FILE_BYTES as usize).unwrap_or(&bytes);
        let line = 1 + within.iter().filter(|b| **b == b'\n').count();
        return Err(ReadError::Row(
            line,
            format!(
                "the file is larger than {} MiB: split it and import the parts",
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        ));
    }
    Ok(bytes)
}

/// The file as text, without a leading byte-order mark (spreadsheets write one); or the line of
/// the first byte that is not UTF-8.
fn utf8(bytes: &[u8]) -> Result<&str, usize> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = bytes.get(..e.valid_up_to()).unwrap_or(&[]);
        1 + valid.iter().filter(|b| **b == b'\n').count()
    })
}

/// One row, checked: what is written for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImportedCase {
    line: usize,
    received_day: String,
    incident_day: Option<String>,
    region: Option<String>,
    types: Vec<String>,
    perpetrators: Vec<String>,
    affected: Option<String>,
    defender_field: Option<String>,
    urgent: bool,
    status: Status,
}

/// Every row of `text` as a case, or the first bad row's line and what is wrong with it.
fn parse_cases(
    text: &str,
    form: &FormDefinition,
    today: UtcDay,
) -> Result<Vec<ImportedCase>, (usize, String)> {
    let mut rows = Records::new(text, COLUMNS.len());
    let (header_line, header) = match rows.next() {
        None => {
            return Err((
                1,
                format!(
                    "no header row: the first line names the columns ({})",
                    COLUMNS.join(",")
                ),
            ))
        }
        Some(Err((line, problem))) => {
            let reason = match problem {
                Problem::TooManyFields => format!(
                    "the header names more than the {} columns an import may have ({})",
                    COLUMNS.len(),
                    COLUMNS.join(",")
                ),
                other => other.describe(COLUMNS.len()),
            };
            return Err((line, reason));
        }
        Some(Ok(record)) => record,
    };
    let positions = header_positions(&header).map_err(|r| (header_line, r))?;
    rows.max_fields = header.len();
    let mut cases = Vec::new();
    for record in rows {
        let (line, fields) = record.map_err(|(line, p)| (line, p.describe(header.len())))?;
        if cases.len() == MAX_ROWS {
            return Err((
                line,
                format!("more than {MAX_ROWS} rows: split the file and import the parts"),
            ));
        }
        if fields.len() < header.len() {
            return Err((
                line,
                format!(
                    "too few columns: {} where the header has {}",
                    fields.len(),
                    header.len()
                ),
            ));
        }
        let cell = |c: Column| -> &str {
            positions[c as usize]
                .and_then(|i| fields.get(i))
                .map(|v| v.trim())
                .unwrap_or("")
        };
        let case = check_row(line, &cell, form, today).map_err(|r| (line, r))?;
        cases.push(case);
    }
    Ok(cases)
}

/// Where each of [`COLUMNS`] is in a row (by the header), or why the header is not usable.
fn header_positions(header: &[String]) -> Result<[Option<usize>; COLUMNS.len()], String> {
    let mut positions = [None; COLUMNS.len()];
    for (i, name) in header.iter().enumerate() {
        let name = name.trim();
        let Some(c) = COLUMNS.iter().position(|known| *known == name) else {
            return Err(format!(
                "unknown column {} (the columns are {})",
                quoted(name),
                COLUMNS.join(",")
            ));
        };
        if positions[c].replace(i).is_some() {
            return Err(format!("the column {name} is named twice"));
        }
    }
    for c in REQUIRED {
        if positions[c as usize].is_none() {
            return Err(format!(
                "the header has no {} column (required: {})",
                c.name(),
                REQUIRED.map(Column::name).join(", ")
            ));
        }
    }
    Ok(positions)
}

/// Checks one row's cells (already trimmed; an absent column reads as empty).
fn check_row<'a>(
    line: usize,
    cell: &dyn Fn(Column) -> &'a str,
    form: &FormDefinition,
    today: UtcDay,
) -> Result<ImportedCase, String> {
    let day = |c: Column| -> Result<Option<UtcDay>, String> {
        match cell(c) {
            "" => Ok(None),
            text => text.parse::<UtcDay>().map(Some).map_err(|_| {
                format!(
                    "{}: {} is not a day (YYYY-MM-DD, e.g. 2024-03-09)",
                    c.name(),
                    quoted(text)
                )
            }),
        }
    };
    let received = day(Column::ReceivedDay)?.ok_or_else(|| {
        "received_day is empty: the day the case was received is required".to_string()
    })?;
    if received > today {
        return Err(format!("received_day {received} is after today ({today})"));
    }
    let incident = day(Column::IncidentDay)?;
    if let Some(incident) = incident.filter(|d| *d > received) {
        return Err(format!(
            "incident_day {incident} is after received_day {received}"
        ));
    }
    let types = options(form, "what_happened", Column::Types, cell(Column::Types))?;
    if types.is_empty() {
        return Err(format!(
            "types is empty: at least one incident type is needed ({})",
            allowed(form, "what_happened")
        ));
    }
    let urgent = match cell(Column::Urgent).to_lowercase().as_str() {
        "" | "no" => false,
        "si" | "sí" | "yes" => true,
        _ => {
            return Err(format!(
                "urgent: {} is not si, yes or no",
                quoted(cell(Column::Urgent))
            ))
        }
    };
    let status = match cell(Column::Status) {
        "" => Status::Received,
        text => Status::parse(text).map_err(|e| format!("status: {e}"))?,
    };
    Ok(ImportedCase {
        line,
        received_day: received.to_string(),
        incident_day: incident.map(|d| d.to_string()),
        region: one_option(form, "region", Column::Region, cell(Column::Region))?,
        types,
        perpetrators: options(
            form,
            "responsible",
            Column::Perpetrators,
            cell(Column::Perpetrators),
        )?,
        affected: one_option(form, "affected", Column::Affected, cell(Column::Affected))?,
        defender_field: one_option(
            form,
            "defender_field",
            Column::DefenderField,
            cell(Column::DefenderField),
        )?,
        urgent,
        status,
    })
}

/// The option ids of a `;`-separated list (spaces around each ignored, empty items skipped),
/// each one of the form field's options.
fn options(
    form: &FormDefinition,
    field: &str,
    column: Column,
    text: &str,
) -> Result<Vec<String>, String> {
    let known = form
        .field(field)
        .map(|f| f.options.as_slice())
        .unwrap_or(&[]);
    let mut out: Vec<String> = Vec::new();
    for item in text.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        if !known.iter().any(|k| k == item) {
            return Err(format!(
                "{}: unknown option {} (one of {})",
                column.name(),
                quoted(item),
                allowed(form, field)
            ));
        }
        if !out.iter().any(|o| o == item) {
            out.push(item.to_string());
        }
    }
    Ok(out)
}

/// At most one option id of the form field (empty: none).
fn one_option(
    form: &FormDefinition,
    field: &str,
    column: Column,
    text: &str,
) -> Result<Option<String>, String> {
    if text.contains(';') {
        return Err(format!(
            "{}: one option only, not {}",
            column.name(),
            quoted(text)
        ));
    }
    Ok(options(form, field, column, text)?.into_iter().next())
}

/// The options of a form field, for messages.
fn allowed(form: &FormDefinition, field: &str) -> String {
    form.field(field)
        .map(|f| f.options.join(", "))
        .unwrap_or_default()
}

/// Text from the file as a message may show it: cleaned, at most 40 characters, quoted.
fn quoted(text: &str) -> String {
    let short: String = text.chars().take(40).collect();
    let more = if text.chars().nth(40).is_some() {
        "…"
    } else {
        ""
    };
    format!("\"{}{more}\"", clean_line(&short))
}

/// What makes a record unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    /// A quoted field that never ends.
    Unterminated,
    /// A `"` inside a field that does not begin with one.
    QuoteInUnquoted,
    /// Something other than `,` or the line's end after a closing quote.
    TextAfterQuote,
    /// A carriage return that does not end a line, outside quotes.
    BareCarriageReturn,
    /// A field longer than [`MAX_FIELD_CHARS`].
    TooLong,
    /// More fields than the header (or, for the header, than [`COLUMNS`]).
    TooManyFields,
}

impl Problem {
    fn describe(self, columns: usize) -> String {
        match self {
            Problem::Unterminated => {
                "unterminated quote: a quoted field that begins here never ends".into()
            }
            Problem::QuoteInUnquoted => {
                "a quote inside an unquoted field (quote the whole field and double the quote)"
                    .into()
            }
            Problem::TextAfterQuote => "text after a closing quote (quote the whole field)".into(),
            Problem::BareCarriageReturn => {
                "a carriage return inside an unquoted field (quote the field)".into()
            }
            Problem::TooLong => format!("a field longer than {MAX_FIELD_CHARS} characters"),
            Problem::TooManyFields => format!("too many columns: the header has {columns}"),
        }
    }
}

/// The records of an RFC 4180 text: fields separated by `,`, records by CRLF or LF; a field
/// either has no `"` or is wholly quoted, with `""` for a quote, and may then hold `,` and line
/// breaks. Empty lines are skipped. Each record comes with the line it begins on; the first
/// problem ends the iteration (nothing after it is read).
struct Records<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    max_fields: usize,
    failed: bool,
}

type Record = (usize, Vec<String>);

impl<'a> Records<'a> {
    fn new(text: &'a str, max_fields: usize) -> Self {
        Records {
            chars: text.chars().peekable(),
            line: 1,
            max_fields,
            failed: false,
        }
    }

    /// Consumes a line end at the cursor (CRLF or LF), if there is one.
    fn line_end(&mut self) -> Result<bool, Problem> {
        match self.chars.peek() {
            Some('\n') => {
                self.chars.next();
                self.line += 1;
                Ok(true)
            }
            Some('\r') => {
                self.chars.next();
                if self.chars.next_if_eq(&'\n').is_none() {
                    return Err(Problem::BareCarriageReturn);
                }
                self.line += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// One record; the cursor is at its first character.
    fn record(&mut self) -> Result<Vec<String>, Problem> {
        let mut fields = Vec::new();
        loop {
            if fields.len() == self.max_fields {
                return Err(Problem::TooManyFields);
            }
            let mut value = String::new();
            let mut count = 0usize;
            let mut push = |value: &mut String, c: char| {
                count += 1;
                value.push(c);
                if count > MAX_FIELD_CHARS {
                    Err(Problem::TooLong)
                } else {
                    Ok(())
                }
            };
            if self.chars.next_if_eq(&'"').is_some() {
                loop {
                    match self.chars.next() {
                        None => return Err(Problem::Unterminated),
                        Some('"') if self.chars.next_if_eq(&'"').is_some() => {
                            push(&mut value, '"')?
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                self.line += 1;
                            }
                            push(&mut value, c)?;
                        }
                    }
                }
                fields.push(value);
                match self.chars.peek() {
                    None => return Ok(fields),
                    Some(',') => {
                        self.chars.next();
                    }
                    Some(_) => {
                        if self.line_end().map_err(|_| Problem::TextAfterQuote)? {
                            return Ok(fields);
                        }
                        return Err(Problem::TextAfterQuote);
                    }
                }
            } else {
                loop {
                    match self.chars.peek() {
                        None => {
                            fields.push(value);
                            return Ok(fields);
                        }
                        Some(',') => {
                            self.chars.next();
                            fields.push(value);
                            break;
                        }
                        Some('\n' | '\r') => {
                            self.line_end()?;
                            fields.push(value);
                            return Ok(fields);
                        }
                        Some('"') => return Err(Problem::QuoteInUnquoted),
                        Some(&c) => {
                            self.chars.next();
                            push(&mut value, c)?;
                        }
                    }
                }
            }
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record, (usize, Problem)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            match self.line_end() {
                Ok(true) => continue,
                Ok(false) => break,
                Err(p) => {
                    self.failed = true;
                    return Some(Err((self.line, p)));
                }
            }
        }
        self.chars.peek()?;
        let start = self.line;
        match self.record() {
            Ok(fields) => Some(Ok((start, fields))),
            Err(p) => {
                self.failed = true;
                Some(Err((start, p)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "received_day,incident_day,region,types,perpetrators,affected,defender_field,urgent,status";

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::in_folder(dir.path()).expect("new registry");
        (dir, registry)
    }

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    /// Everything in the registry's tables, to compare before and after.
    fn snapshot(registry: &Registry) -> Vec<String> {
        let mut out = Vec::new();
        for sql in [
            "SELECT id || '|' || source || '|' || received_day || '|' || status FROM cases ORDER BY id",
            "SELECT case_id || '|' || type FROM case_types ORDER BY 1",
            "SELECT case_id || '|' || perpetrator FROM case_perpetrators ORDER BY 1",
            "SELECT id || '|' || case_id || '|' || status FROM case_history ORDER BY id",
        ] {
            let mut stmt = registry.conn().prepare(sql).expect("prepare");
            let rows: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            out.push(rows.join("\n"));
        }
        out
    }

    fn count(registry: &Registry, sql: &str) -> i64 {
        registry
            .conn()
            .query_row(sql, [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn a_good_file_imports_every_row() {
        let (dir, mut registry) = registry();
        // A byte-order mark, CRLF line ends, columns quoted or not, a quoted field over two
        // lines (in a row that is otherwise fine: it only moves the next row's line), spaces
        // around ids, Spanish and English values, empty optional cells, a blank last line.
        let text = format!(
            "\u{feff}{HEADER}\r\n\
             2023-05-02,2023-04-30,puno,threat,state_security_forces;company,myself,land_environment,si,\r\n\
             \"2023-06-10\",,cusco,\"threat; surveillance\",,,,no,evaluacion_riesgo\r\n\
             2023-07-01,,lima,\"legal_harassment\",unknown,community,,YES,\"medida de protección solicitada\"\r\n\
             2024-01-15,2024-01-01,,stigmatisation;threat;threat,,,journalism,,closed\r\n\
             \r\n"
        );
        let path = file(&dir, "antes.csv", &text);
        assert_eq!(registry.import_csv(&path).expect("imported"), 4);
        let rows = registry
            .list(&crate::registry::CaseFilter::default())
            .expect("list");
        assert_eq!(rows.len(), 4);
        let first = registry.case(1).expect("case 1");
        assert_eq!(first.received_day, "2023-05-02");
        assert_eq!(first.incident_day.as_deref(), Some("2023-04-30"));
        assert_eq!(first.region.as_deref(), Some("puno"));
        assert_eq!(first.types, ["threat"]);
        assert_eq!(first.perpetrators, ["company", "state_security_forces"]);
        assert!(first.urgent);
        assert_eq!(first.status, "recibido");
        assert_eq!(first.incident, 1);
        assert_eq!(first.submission, None);
        let second = registry.case(2).expect("case 2");
        assert_eq!(second.types, ["surveillance", "threat"]);
        assert_eq!(second.status, "evaluacion_riesgo");
        assert!(!second.urgent);
        assert_eq!(registry.case(3).expect("3").status, "medida_solicitada");
        assert!(registry.case(3).expect("3").urgent);
        let fourth = registry.case(4).expect("case 4");
        assert_eq!(fourth.types, ["stigmatisation", "threat"]);
        assert_eq!(fourth.region, None);
        assert_eq!(fourth.status, "cerrado");
        assert_eq!(
            count(&registry, "SELECT COUNT(*) FROM cases WHERE source = 'import' AND submission IS NULL AND incident = id AND recorded_at LIKE '____-__-__T__:__:__Z' AND first_acted_at IS NULL"),
            4
        );
        let history = registry.history(4).expect("history");
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].status, "cerrado");
        assert_eq!(
            history[0].note.as_deref(),
            Some("imported from antes.csv, line 5")
        );
        let affected: Option<String> = registry
            .conn()
            .query_row("SELECT affected FROM cases WHERE id = 3", [], |r| r.get(0))
            .expect("affected");
        assert_eq!(affected.as_deref(), Some("community"));

        // Only the required columns, in another order; LF line ends, no final line end.
        let path = file(
            &dir,
            "min.csv",
            "types,received_day\nthreat,2022-12-31\nobstruction;other,2023-01-01",
        );
        assert_eq!(registry.import_csv(&path).expect("imported"), 2);
        assert_eq!(count(&registry, "SELECT COUNT(*) FROM cases"), 6);
        assert_eq!(registry.case(6).expect("6").types, ["obstruction", "other"]);

        // A header and nothing else: nothing to do.
        let path = file(&dir, "empty.csv", &format!("{HEADER}\n"));
        assert_eq!(registry.import_csv(&path).expect("nothing"), 0);
        assert_eq!(count(&registry, "SELECT COUNT(*) FROM cases"), 6);
    }

    /// Imports `rows` (after the full header and two good rows) into a registry that holds one
    /// case already; expects the error at `line` with `reason` in it and nothing changed.
    fn refused(rows: &str, line: usize, reason: &str) {
        let (dir, mut registry) = registry();
        let seed = file(&dir, "seed.csv", "received_day,types\n2022-01-01,threat\n");
        registry.import_csv(&seed).expect("seed");
        let before = snapshot(&registry);
        let text = format!(
            "{HEADER}\n2023-01-01,,lima,threat,,,,,\n2023-01-02,,cusco,surveillance,,,,,\n{rows}"
        );
        let path = file(&dir, "bad.csv", &text);
        match registry.import_csv(&path) {
            Err(RegistryError::BadRow {
                path: p,
                line: l,
                reason: r,
            }) => {
                assert_eq!(p, path);
                assert_eq!((l, r.contains(reason)), (line, true), "{r}");
                let shown = RegistryError::BadRow {
                    path: p,
                    line: l,
                    reason: r,
                }
                .to_string();
                assert!(shown.ends_with("nothing was imported"), "{shown}");
                assert!(
                    !shown.contains(['\n', '\r', '\u{1b}', '\u{202e}']),
                    "one clean line: {shown:?}"
                );
            }
            other => panic!("{rows:?}: expected a bad row at line {line}, got {other:?}"),
        }
        assert_eq!(snapshot(&registry), before, "{rows:?}: nothing imported");
    }

    #[test]
    fn an_unknown_region_is_refused_with_its_line() {
        refused(
            "2023-01-03,,lmia,threat,,,,,\n2023-01-04,,cusco,threat,,,,,\n",
            4,
            "region: unknown option \"lmia\" (one of amazonas,",
        );
        // Another field's option in the wrong column is as unknown.
        refused(
            "2023-01-03,,lima,threat,company,lima,,,\n",
            4,
            "affected: unknown option \"lima\"",
        );
        refused(
            "2023-01-03,,lima;cusco,threat,,,,,\n",
            4,
            "region: one option only",
        );
        refused(
            "2023-01-03,,lima,threat;amenaza,,,,,\n",
            4,
            "types: unknown option \"amenaza\"",
        );
        refused(
            "2023-01-03,,lima,threat,police,,,,\n",
            4,
            "perpetrators: unknown option \"police\"",
        );
    }

    #[test]
    fn a_bad_day_is_refused_with_its_line() {
        refused(
            "\n\n2023-02-30,,lima,threat,,,,,\n",
            6,
            "received_day: \"2023-02-30\" is not a day",
        );
        refused(
            "03/01/2023,,lima,threat,,,,,\n",
            4,
            "received_day: \"03/01/2023\" is not a day",
        );
        refused(",,lima,threat,,,,,\n", 4, "received_day is empty");
        refused(
            "2023-01-03,2023-1-2,lima,threat,,,,,\n",
            4,
            "incident_day: \"2023-1-2\" is not a day",
        );
        refused(
            "2023-01-03,2023-01-09,lima,threat,,,,,\n",
            4,
            "incident_day 2023-01-09 is after received_day 2023-01-03",
        );
        refused(
            "2999-01-03,,lima,threat,,,,,\n",
            4,
            "received_day 2999-01-03 is after today",
        );
    }

    #[test]
    fn missing_types_are_refused_with_their_line() {
        refused(
            "2023-01-03,,lima,,,,,,\n",
            4,
            "types is empty: at least one incident type",
        );
        refused("2023-01-03,,lima, ; ,,,,,\n", 4, "types is empty");
        let (dir, mut registry) = registry();
        let path = file(
            &dir,
            "no-types.csv",
            "received_day,region\n2023-01-01,lima\n",
        );
        assert!(matches!(
            registry.import_csv(&path),
            Err(RegistryError::BadRow { line: 1, reason, .. }) if reason.contains("no types column")
        ));
    }

    #[test]
    fn an_unknown_status_or_urgency_is_refused_with_its_line() {
        refused(
            "2023-01-03,,lima,threat,,,,,archivado\n",
            4,
            "status: unknown status \"archivado\"",
        );
        refused(
            "2023-01-03,,lima,threat,,,,tal vez,\n",
            4,
            "urgent: \"tal vez\" is not si, yes or no",
        );
    }

    #[test]
    fn too_many_or_too_few_columns_are_refused_with_their_line() {
        refused(
            "2023-01-03,,lima,threat,,,,,,\n",
            4,
            "too many columns: the header has 9",
        );
        refused(
            "2023-01-03,,lima,threat,,,,\n",
            4,
            "too few columns: 8 where the header has 9",
        );
        // A header naming an unknown column, or one twice.
        let (dir, mut registry) = registry();
        for (header, reason) in [
            ("received_day,types,lugar", "unknown column \"lugar\""),
            (
                "received_day,types,region,region",
                "the column region is named twice",
            ),
            ("received_day,types,,", "unknown column \"\""),
            ("", "no header row"),
        ] {
            let path = file(&dir, "h.csv", &format!("{header}\n"));
            match registry.import_csv(&path) {
                Err(RegistryError::BadRow {
                    line: 1, reason: r, ..
                }) => {
                    assert!(r.contains(reason), "{header}: {r}")
                }
                other => panic!("{header}: {other:?}"),
            }
        }
        let path = file(&dir, "h.csv", &format!("{HEADER},a,b,c\n"));
        assert!(matches!(
            registry.import_csv(&path),
            Err(RegistryError::BadRow { line: 1, reason, .. }) if reason.contains("more than the 9 columns")
        ));
    }

    #[test]
    fn bad_quoting_is_refused_with_its_line() {
        // The unterminated quote's row is where the quoted field begins.
        refused(
            "2023-01-03,,lima,\"threat,,,,,\n2023-01-04,,lima,threat,,,,,\n",
            4,
            "unterminated quote",
        );
        refused(
            "2023-01-03,,lima,thr\"eat,,,,,\n",
            4,
            "a quote inside an unquoted field",
        );
        refused(
            "2023-01-03,,lima,\"threat\"x,,,,,\n",
            4,
            "text after a closing quote",
        );
        refused(
            "2023-01-03,,lima,threat\r,,,,,\n",
            4,
            "a carriage return inside an unquoted field",
        );
        // A quoted line break is part of its field: the rows after it keep their real lines.
        refused(
            "2023-01-03,,lima,threat,,,,,\"cer\nrado\"\n2023-01-05,,marte,threat,,,,,\n",
            6,
            "region: unknown option \"marte\"",
        );
        refused(
            "2023-01-03,,lima,\"threat;\nsurveillance\",,,,,\n2023-01-05,,marte,threat,,,,,\n",
            6,
            "region: unknown option \"marte\"",
        );
    }

    #[test]
    fn the_first_bad_row_is_the_one_reported() {
        refused(
            "2023-01-03,,lima,threat,,,,,archivado\n2023-01-04,,lmia,threat,,,,,\n2023-01-05,,lima,\"threat\n",
            4,
            "unknown status",
        );
    }

    #[test]
    fn the_bounds_hold() {
        let long = "a".repeat(MAX_FIELD_CHARS + 1);
        refused(
            &format!("2023-01-03,,lima,threat,,,,,\"{long}\"\n"),
            4,
            "a field longer than 1000 characters",
        );
        refused(
            &format!("2023-01-03,,{long},threat,,,,,\n"),
            4,
            "longer than 1000",
        );
        // Text from the file reaches a message cleaned and cut short.
        refused(
            &format!(
                "2023-01-03,,\u{202e}lima\u{1b}[31m{},threat,,,,,\n",
                "x".repeat(100)
            ),
            4,
            "…\" (one of",
        );

        let (dir, mut registry) = registry();
        let mut text = String::from("received_day,types\n");
        for _ in 0..MAX_ROWS {
            text.push_str("2023-03-01,threat\n");
        }
        let path = file(&dir, "full.csv", &text);
        assert_eq!(registry.import_csv(&path).expect("the most rows"), MAX_ROWS);
        text.push_str("2023-03-01,threat\n");
        let path = file(&dir, "over.csv", &text);
        assert!(matches!(
            registry.import_csv(&path),
            Err(RegistryError::BadRow { line, reason, .. })
                if line == MAX_ROWS + 2 && reason.contains("more than 100000 rows")
        ));
        assert_eq!(
            count(&registry, "SELECT COUNT(*) FROM cases"),
            MAX_ROWS as i64
        );

        // Larger than 16 MiB: refused before parsing, at the line where the limit is crossed.
        let line = "2023-03-01,threat\n";
        let lines = MAX_FILE_BYTES as usize / line.len() + 1;
        let path = file(&dir, "huge.csv", &line.repeat(lines));
        assert!(matches!(
            registry.import_csv(&path),
            Err(RegistryError::BadRow { line: l, reason, .. })
                if l == lines && reason.contains("larger than 16 MiB")
        ));
        // Not UTF-8, not a regular file, missing.
        let path = dir.path().join("latin1.csv");
        std::fs::write(
            &path,
            b"received_day,types\n2023-01-01,threat\n2023-01-02,amenaza \xe9\n",
        )
        .expect("write");
        assert!(matches!(
            registry.import_csv(&path),
            Err(RegistryError::BadRow { line: 3, reason, .. }) if reason.contains("not UTF-8")
        ));
        assert!(matches!(
            registry.import_csv(dir.path()),
            Err(RegistryError::Io(m)) if m.contains("not a regular file")
        ));
        assert!(matches!(
            registry.import_csv(&dir.path().join("missing.csv")),
            Err(RegistryError::Io(_))
        ));
        assert_eq!(
            count(&registry, "SELECT COUNT(*) FROM cases"),
            MAX_ROWS as i64
        );
    }
}
