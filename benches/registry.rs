//! Registry benchmark: `cargo bench --bench registry`.
//!
//! 10,000 synthetic report folders, written as `open` writes them (`bundle-entry.json` and
//! `report.json`; nothing sealed or opened), recorded in batches of 1,000 the way `open` records
//! after each run (the registry opened, then `record_folder` on the whole `--out`). Prints the
//! time per new report of every batch, the first and last and their ratio (goal: the last within
//! 1.2× of the first). Then `stats --by region,type,month` over the 10,000 cases: the registry
//! opened (with its integrity check) and `Registry::stats` by region, type and month (checked
//! against the SQL `GROUP BY` on the file), median of 10 runs (goal: at most 200 ms).
//!
//! After the batches, what a recording pass spends on the folders already recorded (listing,
//! reading each folder, threads) is printed, to show what grows with `--out`.
//!
//! `REGISTRY_BENCH_REPORTS` and `REGISTRY_BENCH_BATCH` change the sizes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use resguardo::bundle::BundleEntry;
use resguardo::form::FormDefinition;
use resguardo::payload::{self, FieldValue};
use resguardo::registry::stats::Dimension;
use resguardo::registry::{Registry, REGISTRY_FILE};
use resguardo::review::opened::OpenedReport;
use resguardo::submission::{Sealing, SubmissionId, UtcDay};

/// SplitMix64, seeded: every run writes the same reports.
struct Rng(resguardo::testing::SeededRng);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    /// An option, the first ones (the few that dominate) far likelier than the rest.
    fn skewed<'a>(&mut self, options: &'a [String]) -> &'a str {
        let i = if self.below(100) < 70 {
            self.below(4.min(options.len() as u64))
        } else {
            self.below(options.len() as u64)
        };
        &options[i as usize]
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes report folder `n` into `out` as `open` would: its bundle entry (received over two
/// years, oldest first) and its report.json.
fn write_folder(
    out: &Path,
    form: &FormDefinition,
    rng: &mut Rng,
    n: usize,
    total: usize,
) -> SubmissionId {
    let options = |field: &str| {
        form.field(field)
            .map(|f| f.options.clone())
            .unwrap_or_default()
    };
    let (regions, types, responsible) = (
        options("region"),
        options("what_happened"),
        options("responsible"),
    );
    let first = "2023-09-01"
        .parse::<UtcDay>()
        .expect("day")
        .days_since_epoch();
    let received = first + (n * 730 / total.max(1)) as i32;
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&rng.next().to_le_bytes());
    id[8..].copy_from_slice(&rng.next().to_le_bytes());
    let id = SubmissionId::from_bytes(id);
    let urgent = rng.below(100) < 7;
    let mut fields = BTreeMap::new();
    let mut text = |k: &str, v: &str| fields.insert(k.to_string(), FieldValue::Text(v.into()));
    text("urgent", if urgent { "yes" } else { "no" });
    fields.insert(
        "region".into(),
        FieldValue::Text(rng.skewed(&regions).to_string()),
    );
    fields.insert(
        "when".into(),
        FieldValue::Text(
            UtcDay::from_days_since_epoch(received - rng.below(60) as i32).to_string(),
        ),
    );
    let mut chosen: Vec<String> = (0..1 + rng.below(3))
        .map(|_| rng.skewed(&types).to_string())
        .collect();
    chosen.sort();
    chosen.dedup();
    fields.insert("what_happened".into(), FieldValue::Choices(chosen));
    let mut who: Vec<String> = (0..rng.below(3))
        .map(|_| rng.skewed(&responsible).to_string())
        .collect();
    who.sort();
    who.dedup();
    if !who.is_empty() {
        fields.insert("responsible".into(), FieldValue::Choices(who));
    }
    let report = OpenedReport {
        schema: payload::SCHEMA.into(),
        language: "es".into(),
        urgent,
        sealed_by: Some("browser".into()),
        fields,
        description: format!("Reporte sintético {n}: amenazas en la asamblea comunal."),
        attachments: Vec::new(),
        conversation: None,
    };
    let entry = BundleEntry {
        id,
        day: UtcDay::from_days_since_epoch(received),
        size: 32 * 1024 + 700,
        sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, id.as_bytes())),
        sealing: Sealing::BySender,
    };
    let dir = out.join(id.to_string());
    std::fs::create_dir(&dir).expect("report folder");
    std::fs::write(
        dir.join("bundle-entry.json"),
        serde_json::to_vec_pretty(&entry).expect("json"),
    )
    .expect("bundle-entry.json");
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_vec_pretty(&report).expect("json"),
    )
    .expect("report.json");
    id
}

/// `stats --by region,type,month` as SQL (`docs/registry-v1.md`): incidents (each counted once,
/// by its smallest case), by region, incident type and month of the incident (or of arrival when
/// the report gave no day). A cross-check of `Registry::stats`.
const STATS_SQL: &str = "SELECT COUNT(*), COALESCE(SUM(n), 0) FROM (
     SELECT COUNT(*) AS n
     FROM cases c LEFT JOIN case_types t ON t.case_id = c.id
     WHERE c.id = c.incident
     GROUP BY COALESCE(c.region, '(none)'), COALESCE(t.type, '(none)'),
              substr(COALESCE(c.incident_day, c.received_day), 1, 7))";

/// One `registry stats --by region,type,month` as the command does it: open the registry
/// (integrity check included), then count. Returns the number of rows and their total.
fn stats_once(out: &Path) -> (usize, u64) {
    let registry = Registry::in_folder(out).expect("the registry");
    let stats = registry
        .stats(
            &[Dimension::Region, Dimension::Type, Dimension::Month],
            None,
        )
        .expect("stats");
    (
        stats.rows.len(),
        stats.rows.iter().map(|r| r.incidents).sum(),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo test --all-targets` (CI) runs this without `--bench`: a small run that still
    // exercises every step; `cargo bench` gets the real sizes.
    let measured = std::env::args().any(|a| a == "--bench");
    let (reports, batches) = if measured {
        (10_000, 1_000)
    } else {
        (500, 100)
    };
    let total = env_number("REGISTRY_BENCH_REPORTS", reports);
    let batch = env_number("REGISTRY_BENCH_BATCH", batches).max(1);
    let form = FormDefinition::embedded().expect("the form");
    let scratch = resguardo::testing::bench_scratch_dir();
    let out = scratch.path().join("reports");
    std::fs::create_dir_all(&out).expect("out");
    let mut rng = Rng(resguardo::testing::SeededRng(0x5245_4753_4245_4e43));

    println!("registry: {total} report folders recorded in batches of {batch}");
    let mut per_report: Vec<Duration> = Vec::new();
    let mut written = 0;
    while written < total {
        let this = batch.min(total - written);
        let ids: Vec<SubmissionId> = (written..written + this)
            .map(|n| write_folder(&out, &form, &mut rng, n, total))
            .collect();
        written += this;
        // As `open` records after writing a batch of reports.
        let start = Instant::now();
        let recorded = Registry::record_opened(&out, &ids).expect("recording");
        let took = start.elapsed();
        assert_eq!(recorded.added, this, "each new report recorded once");
        let each = took / this as u32;
        println!(
            "  batch {:>2} ({:>6} folders): {:>8.1} ms, {:>7.1} µs per new report",
            per_report.len() + 1,
            written,
            ms(took),
            each.as_secs_f64() * 1e6
        );
        per_report.push(each);
    }
    let (first, last) = (per_report[0], per_report[per_report.len() - 1]);
    let ratio = last.as_secs_f64() / first.as_secs_f64();
    println!(
        "first batch {:.1} µs/report, last batch {:.1} µs/report: ratio {ratio:.2}× (goal ≤ 1.2×: {})",
        first.as_secs_f64() * 1e6,
        last.as_secs_f64() * 1e6,
        if ratio <= 1.2 { "met" } else { "NOT met" }
    );
    // Where a recording pass spends its time once every folder is known: what grows with the
    // number of folders rather than with the new reports.
    let timed = |what: &str, work: &dyn Fn() -> usize| {
        let start = Instant::now();
        let n = work();
        println!("  {what}: {:.1} ms ({n})", ms(start.elapsed()));
    };
    println!("with {written} folders, all recorded:");
    timed("list the report folders", &|| {
        resguardo::review::index::report_folders(&out)
            .expect("folders")
            .len()
    });
    timed(
        "read every folder (bundle-entry.json, report.json)",
        &|| {
            resguardo::review::index::report_folders(&out)
                .expect("folders")
                .iter()
                .filter(|(_, dir)| resguardo::review::opened::read_folder(dir).entry.is_ok())
                .count()
        },
    );
    timed("threads of every folder", &|| {
        resguardo::review::thread::threads(&out)
            .expect("threads")
            .len()
    });
    timed("a recording pass that adds nothing", &|| {
        Registry::in_folder(&out)
            .and_then(|mut r| r.record_folder(&out))
            .expect("recording")
            .known
    });
    let size = std::fs::metadata(out.join(REGISTRY_FILE)).map_or(0, |m| m.len());
    println!("registry file: {:.1} MiB", size as f64 / (1024.0 * 1024.0));

    let mut runs = Vec::new();
    let mut groups = (0, 0);
    for _ in 0..10 {
        let start = Instant::now();
        groups = stats_once(&out);
        runs.push(start.elapsed());
    }
    let by_sql: (i64, i64) = rusqlite::Connection::open_with_flags(
        out.join(REGISTRY_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|c| c.query_row(STATS_SQL, [], |r| Ok((r.get(0)?, r.get(1)?))))
    .expect("the same counts in SQL");
    assert_eq!(
        (groups.0 as i64, groups.1 as i64),
        by_sql,
        "Registry::stats and the SQL agree"
    );
    let fastest = *runs.iter().min().expect("runs");
    let med = median(runs);
    println!(
        "stats --by region,type,month over {total} cases ({} groups, {} counted): median {:.1} ms of 10 runs (fastest {:.1} ms; goal ≤ 200 ms: {})",
        groups.0,
        groups.1,
        ms(med),
        ms(fastest),
        if med <= Duration::from_millis(200) { "met" } else { "NOT met" }
    );
}
