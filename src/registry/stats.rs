//! Statistics of the registry (`docs/registry-v1.md`, "Statistics and the published CSV"):
//! counts of **incidents** (linked cases count once, with the fields of the incident's smallest
//! case) by up to three dimensions, computed in SQL, printed as a table, CSV or JSON.

use rusqlite::params_from_iter;

use super::{Registry, RegistryError};
use crate::submission::UtcDay;

/// Most dimensions one `stats` call counts by.
pub const MAX_DIMENSIONS: usize = 3;

/// The value counted when an incident has none for a dimension (no region given, no type…).
pub const NONE: &str = "(none)";

/// What incidents are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// `type`: the incident types (`what_happened`); multi-valued.
    Type,
    /// `region`: the region's option id.
    Region,
    /// `perpetrator`: the perpetrator types (`responsible`); multi-valued.
    Perpetrator,
    /// `month`: `YYYY-MM` of the incident day if given, else of the received day.
    Month,
    /// `year`: `YYYY`, taken like `month`.
    Year,
    /// `affected`: who was affected (option id).
    Affected,
    /// `defender_field`: the defender's field of work (option id).
    DefenderField,
    /// `urgent`: `yes` for early alerts, else `no`.
    Urgent,
    /// `status`: the case's status id.
    Status,
}

impl Dimension {
    /// Every dimension, in the order the docs list them.
    pub const ALL: [Dimension; 9] = [
        Dimension::Type,
        Dimension::Region,
        Dimension::Perpetrator,
        Dimension::Month,
        Dimension::Year,
        Dimension::Affected,
        Dimension::DefenderField,
        Dimension::Urgent,
        Dimension::Status,
    ];

    /// The name `--by` takes and the CSV and JSON use.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Type => "type",
            Dimension::Region => "region",
            Dimension::Perpetrator => "perpetrator",
            Dimension::Month => "month",
            Dimension::Year => "year",
            Dimension::Affected => "affected",
            Dimension::DefenderField => "defender_field",
            Dimension::Urgent => "urgent",
            Dimension::Status => "status",
        }
    }

    /// Whether an incident may have several values (types, perpetrators): it then counts once
    /// under each of them.
    pub fn is_multi_valued(self) -> bool {
        matches!(self, Dimension::Type | Dimension::Perpetrator)
    }

    /// Reads one name (case ignored, `-` taken for `_`).
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let wanted = text.trim().to_lowercase().replace('-', "_");
        Dimension::ALL
            .into_iter()
            .find(|d| d.name() == wanted)
            .ok_or_else(|| {
                RegistryError::Unknown(format!(
                    "unknown dimension {:?}: one of {}",
                    crate::terminal::clean_line(&text.chars().take(40).collect::<String>()),
                    Dimension::ALL.map(Dimension::name).join(", ")
                ))
            })
    }

    /// Reads `--by`: names separated by commas, at most [`MAX_DIMENSIONS`], none twice. An empty
    /// text is no dimension (one total).
    pub fn parse_list(text: &str) -> Result<Vec<Self>, RegistryError> {
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let mut out: Vec<Dimension> = Vec::new();
        for name in text.split(',') {
            let d = Dimension::parse(name)?;
            if out.contains(&d) {
                return Err(RegistryError::Unknown(format!(
                    "dimension {} given twice",
                    d.name()
                )));
            }
            out.push(d);
        }
        if out.len() > MAX_DIMENSIONS {
            return Err(RegistryError::Unknown(format!(
                "at most {MAX_DIMENSIONS} dimensions (for example --by type,region,month)"
            )));
        }
        Ok(out)
    }

    /// The SQL value of this dimension for the incident's case `c` (joined as `t`, `p` when
    /// multi-valued): never NULL.
    pub(super) fn sql(self) -> &'static str {
        match self {
            Dimension::Type => "COALESCE(NULLIF(t.type, ''), '(none)')",
            Dimension::Region => "COALESCE(NULLIF(c.region, ''), '(none)')",
            Dimension::Perpetrator => "COALESCE(NULLIF(p.perpetrator, ''), '(none)')",
            Dimension::Month => "substr(COALESCE(c.incident_day, c.received_day), 1, 7)",
            Dimension::Year => "substr(COALESCE(c.incident_day, c.received_day), 1, 4)",
            Dimension::Affected => "COALESCE(NULLIF(c.affected, ''), '(none)')",
            Dimension::DefenderField => "COALESCE(NULLIF(c.defender_field, ''), '(none)')",
            Dimension::Urgent => "CASE WHEN c.urgent THEN 'yes' ELSE 'no' END",
            Dimension::Status => "c.status",
        }
    }

    /// The join a multi-valued dimension needs.
    fn join(self) -> Option<&'static str> {
        match self {
            Dimension::Type => Some(" LEFT JOIN case_types t ON t.case_id = c.id"),
            Dimension::Perpetrator => Some(" LEFT JOIN case_perpetrators p ON p.case_id = c.id"),
            _ => None,
        }
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of [`Stats`]: a combination of values and how many incidents have it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatsRow {
    /// One value per dimension of [`Stats::by`], in that order.
    pub values: Vec<String>,
    /// Incidents with all these values.
    pub incidents: u64,
}

/// Incident counts (`registry stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The dimensions counted by, in the order asked.
    pub by: Vec<Dimension>,
    /// Only incidents whose first case was received on or after this day.
    pub since: Option<UtcDay>,
    /// The combinations that occur, sorted by their values; with no dimension, one row (no
    /// values) holding the total. An incident with several types (perpetrators) is in a row for
    /// each: the rows may add up to more than [`Stats::incidents`].
    pub rows: Vec<StatsRow>,
    /// The number of incidents counted (each once).
    pub incidents: u64,
}

/// An incident's case, and the filter on its received day: the `FROM … WHERE` every count shares.
fn incidents_sql(by: &[Dimension], since: Option<UtcDay>) -> (String, Vec<String>) {
    let mut sql = String::from(" FROM cases c");
    for d in by {
        if let Some(join) = d.join() {
            sql.push_str(join);
        }
    }
    sql.push_str(" WHERE c.id = c.incident");
    let mut args = Vec::new();
    if let Some(day) = since {
        sql.push_str(" AND c.received_day >= ?");
        args.push(day.to_string());
    }
    (sql, args)
}

fn count_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Registry {
    /// Counts incidents by `by` (at most [`MAX_DIMENSIONS`], none twice; none: one total),
    /// only those whose first case was received on or after `since`.
    pub fn stats(&self, by: &[Dimension], since: Option<UtcDay>) -> Result<Stats, RegistryError> {
        if by.len() > MAX_DIMENSIONS {
            return Err(RegistryError::Unknown(format!(
                "at most {MAX_DIMENSIONS} dimensions"
            )));
        }
        if by.iter().enumerate().any(|(i, d)| by[..i].contains(d)) {
            return Err(RegistryError::Unknown("a dimension given twice".into()));
        }
        let conn = self.conn();
        let (from, args) = incidents_sql(&[], since);
        let incidents: i64 = conn.query_row(
            &format!("SELECT COUNT(*){from}"),
            params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        let incidents = count_of(incidents);
        let rows = if by.is_empty() {
            vec![StatsRow {
                values: Vec::new(),
                incidents,
            }]
        } else {
            self.counts(by, since, None)?
                .into_iter()
                .map(|(values, incidents)| StatsRow { values, incidents })
                .collect()
        };
        Ok(Stats {
            by: by.to_vec(),
            since,
            rows,
            incidents,
        })
    }

    /// Incidents per combination of values of `by` (at least one dimension), sorted by values.
    /// With `labels`, each dimension's value goes through that SQL expression of the plain value
    /// (`?` placeholders bound to the returned strings, in order); an incident is then counted
    /// once per combination however many of its values map to it.
    pub(super) fn counts(
        &self,
        by: &[Dimension],
        since: Option<UtcDay>,
        labels: Option<&dyn Fn(Dimension) -> (String, Vec<String>)>,
    ) -> Result<Vec<(Vec<String>, u64)>, RegistryError> {
        let mut select = Vec::with_capacity(by.len());
        let mut args: Vec<String> = Vec::new();
        for d in by {
            match labels {
                Some(label) => {
                    let (expr, mut bound) = label(*d);
                    select.push(expr);
                    args.append(&mut bound);
                }
                None => select.push(d.sql().to_string()),
            }
        }
        let (from, mut filter) = incidents_sql(by, since);
        args.append(&mut filter);
        let positions: Vec<String> = (1..=by.len()).map(|i| i.to_string()).collect();
        let count = if labels.is_some() {
            "COUNT(DISTINCT c.id)"
        } else {
            // (case, type) and (case, perpetrator) are keys: each combination once per case.
            "COUNT(*)"
        };
        let sql = format!(
            "SELECT {}, {count}{from} GROUP BY {} ORDER BY {}",
            select.join(", "),
            positions.join(", "),
            positions.join(", ")
        );
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let n = by.len();
        let rows = stmt
            .query_map(params_from_iter(args.iter()), |r| {
                let mut values = Vec::with_capacity(n);
                for i in 0..n {
                    values.push(r.get::<_, String>(i)?);
                }
                Ok((values, count_of(r.get(n)?)))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

/// Label of the total line of [`Stats::table`].
const TOTAL_LABEL: &str = "total";

impl Stats {
    /// Whether a multi-valued dimension is counted by (rows then add up to more than the total).
    fn multi_valued(&self) -> bool {
        self.by.iter().any(|d| d.is_multi_valued())
    }

    /// Aligned text for a terminal: a header line, the rows, a total line (the number of
    /// incidents, each once), and a note when an incident may be in several rows.
    pub fn table(&self) -> String {
        use crate::terminal::clean_line;
        let header: Vec<String> = self
            .by
            .iter()
            .map(|d| d.name().to_string())
            .chain(["incidents".to_string()])
            .collect();
        let mut lines: Vec<Vec<String>> = vec![header];
        if !self.by.is_empty() {
            for row in &self.rows {
                lines.push(
                    row.values
                        .iter()
                        .map(|v| clean_line(v))
                        .chain([row.incidents.to_string()])
                        .collect(),
                );
            }
        }
        let mut total = vec![String::new(); self.by.len()];
        if let Some(first) = total.first_mut() {
            *first = TOTAL_LABEL.to_string();
        }
        total.push(self.incidents.to_string());
        lines.push(total);
        let columns = self.by.len() + 1;
        let mut widths = vec![0usize; columns];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in &lines {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i + 1 == columns {
                    // The count, right-aligned.
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(&text);
            out.push('\n');
        }
        if self.multi_valued() {
            out.push_str(
                "(an incident counts once under each of its types and perpetrators: \
                 the rows add up to more than the total)\n",
            );
        }
        out
    }

    /// CSV (RFC 4180, CRLF lines, formula-neutralised): a header with the dimension names then
    /// `incidents`, one line per row. The total is not a line (with multi-valued dimensions it
    /// is not the sum of the lines): it is [`Stats::incidents`].
    pub fn csv(&self) -> String {
        use crate::review::index::csv_field;
        let mut out = String::new();
        let header: Vec<&str> = self
            .by
            .iter()
            .map(|d| d.name())
            .chain(["incidents"])
            .collect();
        out.push_str(&header.join(","));
        out.push_str("\r\n");
        for row in &self.rows {
            let mut cells: Vec<String> = row.values.iter().map(|v| csv_field(v)).collect();
            cells.push(row.incidents.to_string());
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }

    /// JSON: `{"by": [names], "rows": [{name: value, …, "incidents": n}, …], "total": n}`, the
    /// keys of each row in the order of `by` (one row per line).
    pub fn json(&self) -> String {
        let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let by: Vec<String> = self.by.iter().map(|d| quote(d.name())).collect();
        let mut out = format!("{{\"by\": [{}], \"rows\": [", by.join(", "));
        for (i, row) in self.rows.iter().enumerate() {
            out.push_str(if i == 0 { "\n  {" } else { ",\n  {" });
            for (d, v) in self.by.iter().zip(&row.values) {
                out.push_str(&format!("{}: {}, ", quote(d.name()), quote(v)));
            }
            out.push_str(&format!("\"incidents\": {}}}", row.incidents));
        }
        if !self.rows.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("], \"total\": {}}}\n", self.incidents));
        out
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::registry::now;
    use std::collections::{BTreeMap, BTreeSet};

    /// A case as the tests write it.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Case {
        pub received: &'static str,
        pub incident_day: Option<&'static str>,
        pub region: Option<&'static str>,
        pub types: Vec<&'static str>,
        pub perpetrators: Vec<&'static str>,
        pub urgent: bool,
        pub status: &'static str,
    }

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::in_folder(dir.path()).expect("new registry");
        (dir, registry)
    }

    /// Inserts `cases` (in one transaction); returns their ids.
    pub(crate) fn insert(registry: &mut Registry, cases: &[Case]) -> Vec<i64> {
        registry
            .write(|tx| {
                let mut ids = Vec::new();
                let mut case = tx.prepare(
                    "INSERT INTO cases (source, received_day, incident_day, region, urgent,
                                        status, recorded_at, incident)
                     VALUES ('import', ?1, ?2, ?3, ?4, ?5, ?6, 0)",
                )?;
                let mut own = tx.prepare("UPDATE cases SET incident = id WHERE id = ?1")?;
                let mut typ =
                    tx.prepare("INSERT INTO case_types (case_id, type) VALUES (?1, ?2)")?;
                let mut perp = tx.prepare(
                    "INSERT INTO case_perpetrators (case_id, perpetrator) VALUES (?1, ?2)",
                )?;
                let at = now();
                for c in cases {
                    let status = if c.status.is_empty() {
                        "recibido"
                    } else {
                        c.status
                    };
                    case.execute(rusqlite::params![
                        c.received,
                        c.incident_day,
                        c.region,
                        c.urgent,
                        status,
                        at
                    ])?;
                    let id = tx.last_insert_rowid();
                    own.execute([id])?;
                    for t in &c.types {
                        typ.execute(rusqlite::params![id, t])?;
                    }
                    for p in &c.perpetrators {
                        perp.execute(rusqlite::params![id, p])?;
                    }
                    ids.push(id);
                }
                Ok(ids)
            })
            .expect("cases")
    }

    fn as_map(stats: &Stats) -> BTreeMap<Vec<String>, u64> {
        stats
            .rows
            .iter()
            .map(|r| (r.values.clone(), r.incidents))
            .collect()
    }

    fn case(received: &'static str, region: &'static str, types: &[&'static str]) -> Case {
        Case {
            received,
            region: Some(region),
            types: types.to_vec(),
            ..Case::default()
        }
    }

    #[test]
    fn dimensions_are_read_by_name_at_most_three_and_none_twice() {
        assert_eq!(
            Dimension::parse_list("type,region,month").expect("list"),
            [Dimension::Type, Dimension::Region, Dimension::Month]
        );
        assert_eq!(
            Dimension::parse_list(" Defender-Field , urgent").expect("list"),
            [Dimension::DefenderField, Dimension::Urgent]
        );
        assert_eq!(Dimension::parse_list("").expect("empty"), []);
        let unknown = Dimension::parse_list("type,colour").expect_err("unknown");
        assert!(
            matches!(&unknown, RegistryError::Unknown(m)
                if m.starts_with("unknown dimension \"colour\": one of type, region")),
            "{unknown}"
        );
        assert!(matches!(
            Dimension::parse_list("type,region,month,year"),
            Err(RegistryError::Unknown(_))
        ));
        assert!(matches!(
            Dimension::parse_list("type,region,type"),
            Err(RegistryError::Unknown(m)) if m.contains("twice")
        ));
        assert!(matches!(
            Dimension::parse_list("type,,region"),
            Err(RegistryError::Unknown(_))
        ));
        for d in Dimension::ALL {
            assert_eq!(Dimension::parse(d.name()).expect("own name"), d);
        }
    }

    #[test]
    fn counts_match_the_cases_inserted_computed_independently() {
        let (_dir, mut registry) = registry();
        let regions = ["puno", "cusco", "loreto"];
        let types = [
            "threat",
            "surveillance",
            "legal_harassment",
            "physical_attack",
        ];
        let perps = ["company", "public_officials", "unknown"];
        // A small deterministic generator: varied regions, days, types (0 to 2), perpetrators.
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let days = [
            "2025-01-10",
            "2025-02-03",
            "2025-02-28",
            "2026-01-15",
            "2026-07-01",
        ];
        let mut cases = Vec::new();
        for _ in 0..300 {
            let mut ts: BTreeSet<&'static str> = BTreeSet::new();
            for _ in 0..next(3) {
                ts.insert(types[next(4) as usize]);
            }
            let mut ps: BTreeSet<&'static str> = BTreeSet::new();
            for _ in 0..next(3) {
                ps.insert(perps[next(3) as usize]);
            }
            cases.push(Case {
                received: days[next(5) as usize],
                incident_day: (next(2) == 0).then(|| days[next(5) as usize]),
                region: (next(5) != 0).then(|| regions[next(3) as usize]),
                types: ts.into_iter().collect(),
                perpetrators: ps.into_iter().collect(),
                urgent: next(4) == 0,
                status: "",
            });
        }
        insert(&mut registry, &cases);

        // By region, type and month, computed here from `cases`.
        let mut expected: BTreeMap<Vec<String>, u64> = BTreeMap::new();
        for c in &cases {
            let types: Vec<String> = if c.types.is_empty() {
                vec![NONE.into()]
            } else {
                c.types.iter().map(|t| t.to_string()).collect()
            };
            let month = c.incident_day.unwrap_or(c.received)[..7].to_string();
            for t in types {
                let key = vec![c.region.unwrap_or(NONE).to_string(), t, month.clone()];
                *expected.entry(key).or_default() += 1;
            }
        }
        let by = Dimension::parse_list("region,type,month").expect("by");
        let stats = registry.stats(&by, None).expect("stats");
        assert_eq!(as_map(&stats), expected);
        assert_eq!(stats.incidents, cases.len() as u64);
        let keys: Vec<_> = stats.rows.iter().map(|r| r.values.clone()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "sorted by values");

        // By perpetrator and urgency, and by year.
        let mut expected: BTreeMap<Vec<String>, u64> = BTreeMap::new();
        for c in &cases {
            let perps: Vec<&str> = if c.perpetrators.is_empty() {
                vec![NONE]
            } else {
                c.perpetrators.clone()
            };
            for p in perps {
                let key = vec![
                    p.to_string(),
                    if c.urgent { "yes" } else { "no" }.to_string(),
                ];
                *expected.entry(key).or_default() += 1;
            }
        }
        let stats = registry
            .stats(&[Dimension::Perpetrator, Dimension::Urgent], None)
            .expect("stats");
        assert_eq!(as_map(&stats), expected);
        let mut expected: BTreeMap<Vec<String>, u64> = BTreeMap::new();
        for c in &cases {
            let year = c.incident_day.unwrap_or(c.received)[..4].to_string();
            *expected.entry(vec![year]).or_default() += 1;
        }
        let stats = registry.stats(&[Dimension::Year], None).expect("stats");
        assert_eq!(as_map(&stats), expected);
        assert_eq!(
            stats.rows.iter().map(|r| r.incidents).sum::<u64>(),
            stats.incidents
        );

        // No dimension: one total.
        let total = registry.stats(&[], None).expect("total");
        assert_eq!(total.rows.len(), 1);
        assert_eq!(total.rows[0].incidents, cases.len() as u64);
    }

    #[test]
    fn linked_cases_count_once_with_the_fields_of_the_first() {
        let (_dir, mut registry) = registry();
        let ids = insert(
            &mut registry,
            &[
                case("2026-03-01", "puno", &["threat"]),
                case("2026-03-05", "cusco", &["surveillance"]),
                case("2026-03-09", "cusco", &["threat"]),
                case("2026-04-01", "lima", &["threat"]),
            ],
        );
        registry.link(ids[2], ids[0]).expect("link");
        registry.link(ids[0], ids[1]).expect("link");
        let stats = registry
            .stats(&[Dimension::Region, Dimension::Type], None)
            .expect("stats");
        assert_eq!(stats.incidents, 2);
        let expected: BTreeMap<Vec<String>, u64> = [
            (vec!["lima".to_string(), "threat".to_string()], 1),
            (vec!["puno".to_string(), "threat".to_string()], 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(as_map(&stats), expected);
        assert_eq!(registry.stats(&[], None).expect("total").incidents, 2);
    }

    #[test]
    fn a_multi_typed_incident_counts_in_each_type_and_once_in_the_total() {
        let (_dir, mut registry) = registry();
        insert(
            &mut registry,
            &[
                case(
                    "2026-05-01",
                    "puno",
                    &["threat", "surveillance", "physical_attack"],
                ),
                case("2026-05-02", "puno", &["threat"]),
                case("2026-05-03", "puno", &[]),
            ],
        );
        let stats = registry.stats(&[Dimension::Type], None).expect("stats");
        let expected: BTreeMap<Vec<String>, u64> = [
            (vec![NONE.to_string()], 1),
            (vec!["physical_attack".to_string()], 1),
            (vec!["surveillance".to_string()], 1),
            (vec!["threat".to_string()], 2),
        ]
        .into_iter()
        .collect();
        assert_eq!(as_map(&stats), expected);
        assert_eq!(stats.incidents, 3);
        assert_eq!(stats.rows.iter().map(|r| r.incidents).sum::<u64>(), 5);
        let table = stats.table();
        assert!(table.contains("more than the total"), "{table}");
        let last_row = table.lines().nth(5).expect("total line");
        assert!(
            last_row.starts_with("total") && last_row.ends_with(" 3"),
            "{table}"
        );
    }

    #[test]
    fn since_counts_only_incidents_received_from_that_day() {
        let (_dir, mut registry) = registry();
        let ids = insert(
            &mut registry,
            &[
                case("2026-01-31", "puno", &["threat"]),
                case("2026-02-01", "puno", &["threat"]),
                case("2026-02-02", "lima", &["surveillance"]),
                // Received late, but linked to the first: its incident was received before.
                case("2026-03-01", "lima", &["threat"]),
            ],
        );
        registry.link(ids[0], ids[3]).expect("link");
        let since: UtcDay = "2026-02-01".parse().expect("day");
        let stats = registry
            .stats(&[Dimension::Region], Some(since))
            .expect("stats");
        let expected: BTreeMap<Vec<String>, u64> =
            [(vec!["lima".to_string()], 1), (vec!["puno".to_string()], 1)]
                .into_iter()
                .collect();
        assert_eq!(as_map(&stats), expected);
        assert_eq!(stats.incidents, 2);
        let later: UtcDay = "2027-01-01".parse().expect("day");
        let none = registry
            .stats(&[Dimension::Region], Some(later))
            .expect("stats");
        assert_eq!((none.rows.len(), none.incidents), (0, 0));
    }

    #[test]
    fn month_is_the_incident_day_else_the_received_day() {
        let (_dir, mut registry) = registry();
        insert(
            &mut registry,
            &[
                Case {
                    incident_day: Some("2025-12-30"),
                    ..case("2026-01-04", "puno", &["threat"])
                },
                case("2026-01-04", "puno", &["threat"]),
            ],
        );
        let stats = registry.stats(&[Dimension::Month], None).expect("stats");
        let months: Vec<&str> = stats.rows.iter().map(|r| r.values[0].as_str()).collect();
        assert_eq!(months, ["2025-12", "2026-01"]);
    }

    #[test]
    fn table_csv_and_json_show_the_same_counts() {
        let (_dir, mut registry) = registry();
        insert(
            &mut registry,
            &[
                case("2026-05-01", "puno", &["threat"]),
                case("2026-05-02", "puno", &["threat"]),
                case("2026-05-03", "madre_de_dios", &["legal_harassment"]),
            ],
        );
        // A value that must be quoted in CSV and escaped in JSON (imports may bring anything).
        registry
            .write(|tx| {
                tx.execute("UPDATE cases SET region = '=a,\"b\"' WHERE id = 3", [])?;
                Ok(())
            })
            .expect("odd region");
        let stats = registry
            .stats(&[Dimension::Region, Dimension::Type], None)
            .expect("stats");
        assert_eq!(
            stats.csv(),
            "region,type,incidents\r\n\"'=a,\"\"b\"\"\",legal_harassment,1\r\npuno,threat,2\r\n"
        );
        let json: serde_json::Value = serde_json::from_str(&stats.json()).expect("valid json");
        assert_eq!(
            json,
            serde_json::json!({
                "by": ["region", "type"],
                "rows": [
                    {"region": "=a,\"b\"", "type": "legal_harassment", "incidents": 1},
                    {"region": "puno", "type": "threat", "incidents": 2},
                ],
                "total": 3
            })
        );
        assert!(stats
            .json()
            .contains("{\"region\": \"puno\", \"type\": \"threat\", \"incidents\": 2}"));
        let table = stats.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "region  type              incidents");
        assert_eq!(lines[1], "=a,\"b\"  legal_harassment          1");
        assert_eq!(lines[2], "puno    threat                    2");
        assert_eq!(lines[3], "total                             3");
        let total = registry.stats(&[], None).expect("total");
        assert_eq!(total.table(), "incidents\n        3\n");
        assert_eq!(total.csv(), "incidents\r\n3\r\n");
        assert_eq!(
            total.json(),
            "{\"by\": [], \"rows\": [\n  {\"incidents\": 3}\n], \"total\": 3}\n"
        );
    }
}
