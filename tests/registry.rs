//! The incident registry (issue 13, `docs/registry-v1.md`) with the real gateway and the real
//! `resguardo-review open`: a few hundred synthetic reports drawn by a seeded generator (a few
//! regions and types dominate, as in real registries; days over two years; some urgent), sealed,
//! submitted, exported and opened; then the registry, read through the library, holds each of
//! them once with the generator's own counts (by the library's lists, `Registry::stats` and SQL on
//! the file). Two commands on one registry at once both complete; a damaged registry costs no
//! report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use resguardo::form::FormDefinition;
use resguardo::payload::{self, FieldValue, Report};
use resguardo::registry::stats::Dimension;
use resguardo::registry::{CaseFilter, CaseUpdate, Registry, REGISTRY_FILE};
use resguardo::submission::UtcDay;

use crate::common::*;

/// SplitMix64: a small deterministic generator, so every run draws the same reports.
struct Rng(resguardo::testing::SeededRng);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`, each as likely as its weight.
    fn weighted(&mut self, items: &[(String, u64)]) -> String {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut pick = self.below(total);
        for (item, weight) in items {
            if pick < *weight {
                return item.clone();
            }
            pick -= weight;
        }
        unreachable!("the weights add up")
    }

    /// `n` distinct items drawn by weight.
    fn distinct(&mut self, items: &[(String, u64)], n: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        while out.len() < n.min(items.len()) {
            let item = self.weighted(items);
            if !out.contains(&item) {
                out.push(item);
            }
        }
        out
    }
}

/// Every option of a form field, weighted: the ones named take their weight, the rest 1.
fn weights(form: &FormDefinition, field: &str, heavy: &[(&str, u64)]) -> Vec<(String, u64)> {
    let options = &form.field(field).expect("a field of the form").options;
    for (id, _) in heavy {
        assert!(
            options.iter().any(|o| o == id),
            "{field} has no option {id}"
        );
    }
    options
        .iter()
        .map(|o| {
            let weight = heavy.iter().find(|(id, _)| id == o).map_or(1, |(_, w)| *w);
            (o.clone(), weight)
        })
        .collect()
}

/// One synthetic report, as the generator drew it.
#[derive(Debug, Clone)]
struct Synthetic {
    region: Option<String>,
    types: Vec<String>,
    perpetrators: Vec<String>,
    when: Option<String>,
    approximate: bool,
    urgent: bool,
    affected: String,
    defender_field: String,
}

/// `n` reports from `seed`: Lima, Cusco, Puno and Cajamarca hold most of them; threats,
/// stigmatisation and legal harassment most of the types; incident days spread over the two
/// years before 2025-09-01; about one in fifteen urgent.
fn generate(seed: u64, n: usize) -> Vec<Synthetic> {
    let form = FormDefinition::embedded().expect("the form");
    let regions = weights(
        &form,
        "region",
        &[
            ("lima", 40),
            ("cusco", 22),
            ("puno", 18),
            ("cajamarca", 14),
            ("loreto", 8),
            ("junin", 6),
        ],
    );
    let types = weights(
        &form,
        "what_happened",
        &[
            ("threat", 40),
            ("stigmatisation", 18),
            ("legal_harassment", 14),
            ("surveillance", 10),
            ("physical_attack", 6),
            ("property_damage", 4),
            ("obstruction", 4),
            ("forced_displacement", 3),
        ],
    );
    let perpetrators = weights(
        &form,
        "responsible",
        &[
            ("unknown", 14),
            ("state_security_forces", 12),
            ("company", 10),
            ("public_officials", 7),
            ("illegal_economies", 7),
            ("community_members", 3),
        ],
    );
    let affected = weights(&form, "affected", &[("myself", 5), ("community", 3)]);
    let fields = weights(
        &form,
        "defender_field",
        &[
            ("land_environment", 8),
            ("indigenous_peoples", 5),
            ("journalism", 3),
        ],
    );
    let last = "2025-09-01"
        .parse::<UtcDay>()
        .expect("day")
        .days_since_epoch();
    let mut rng = Rng(resguardo::testing::SeededRng(seed));
    (0..n)
        .map(|_| {
            let type_count = 1 + usize::from(rng.chance(35)) + usize::from(rng.chance(10));
            let perpetrator_count = rng.below(3) as usize;
            Synthetic {
                region: (!rng.chance(4)).then(|| rng.weighted(&regions)),
                types: rng.distinct(&types, type_count),
                perpetrators: rng.distinct(&perpetrators, perpetrator_count),
                when: rng.chance(85).then(|| {
                    UtcDay::from_days_since_epoch(last - rng.below(730) as i32).to_string()
                }),
                approximate: rng.chance(20),
                urgent: rng.chance(7),
                affected: rng.weighted(&affected),
                defender_field: rng.weighted(&fields),
            }
        })
        .collect()
}

/// The report as the page or `resguardo-submit` would send it, sealed to both demo reviewers.
fn seal(s: &Synthetic, n: usize) -> Vec<u8> {
    let mut fields = BTreeMap::new();
    let mut text = |k: &str, v: &str| fields.insert(k.to_string(), FieldValue::Text(v.into()));
    text("urgent", if s.urgent { "yes" } else { "no" });
    text("affected", &s.affected);
    text("defender_field", &s.defender_field);
    text("place", &format!("Comunidad sintética {n}"));
    if let Some(region) = &s.region {
        text("region", region);
    }
    if let Some(when) = &s.when {
        text("when", when);
    }
    if s.approximate {
        text("when_approximate", "yes");
    }
    fields.insert("what_happened".into(), FieldValue::Choices(s.types.clone()));
    if !s.perpetrators.is_empty() {
        fields.insert(
            "responsible".into(),
            FieldValue::Choices(s.perpetrators.clone()),
        );
    }
    let report = Report {
        schema: payload::SCHEMA.into(),
        language: "es".into(),
        urgent: s.urgent,
        sealed_by: Some("terminal".into()),
        fields,
        description: format!("Reporte sintético número {n} para las pruebas del registro."),
        attachments: Vec::new(),
        conversation: None,
    };
    let (plain, _) = payload::write_payload(Vec::new(), &report, Vec::new()).expect("payload");
    sealed(&plain)
}

/// Seals `reports` on `threads` threads; in the generator's order.
fn seal_all(reports: &[Synthetic], threads: usize) -> Vec<Vec<u8>> {
    let reports = Arc::new(reports.to_vec());
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let reports = reports.clone();
            std::thread::spawn(move || {
                (t..reports.len())
                    .step_by(threads)
                    .map(|i| (i, seal(&reports[i], i)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut sealed: Vec<(usize, Vec<u8>)> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("sealer"))
        .collect();
    sealed.sort_by_key(|(i, _)| *i);
    sealed.into_iter().map(|(_, m)| m).collect()
}

/// How many of each, from the generator's list.
fn tally<'a>(items: impl Iterator<Item = &'a str>) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for item in items {
        *out.entry(item.to_string()).or_insert(0) += 1;
    }
    out
}

/// `SELECT key, COUNT(*) … GROUP BY key` on the registry file, as an analyst's sqlite3 would.
fn counted(out: &Path, sql: &str) -> BTreeMap<String, i64> {
    let conn = rusqlite::Connection::open_with_flags(
        out.join(REGISTRY_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the registry opens read-only");
    let mut stmt = conn.prepare(sql).expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?
                    .unwrap_or_else(|| "(none)".into()),
                r.get::<_, i64>(1)?,
            ))
        })
        .expect("query")
        .collect::<Result<BTreeMap<_, _>, _>>()
        .expect("rows");
    rows
}

/// The report folders `open` wrote in `out` (named by a submission id).
fn report_folders(out: &Path) -> BTreeSet<String> {
    std::fs::read_dir(out)
        .expect("out")
        .map(|e| e.expect("entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

const REPORTS: usize = 240;

#[test]
fn every_opened_report_is_a_case_once_with_the_generators_counts() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = Gateway::start_with(
        dir.path(),
        "plain-http",
        "[rate_limits]\nsubmissions_per_minute = 100000\nsubmission_burst = 10000\n",
    );
    let reports = generate(0x5245_4753_5452_4f31, REPORTS);
    let sealed = seal_all(&reports, 8);
    // Submitted over HTTP as the page and resguardo-submit do (a POST of the sealed message).
    let mut by_id: BTreeMap<String, &Synthetic> = BTreeMap::new();
    let agent = agent();
    for (message, report) in sealed.iter().zip(&reports) {
        let mut response = agent
            .post(format!("{}api/v1/submissions", gateway.url))
            .header("Content-Type", "application/pgp-encrypted")
            .send(&message[..])
            .expect("the gateway answers");
        let body = response.body_mut().read_to_string().expect("body");
        assert_eq!(response.status().as_u16(), 201, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        let id = json["id"].as_str().expect("an id").to_string();
        assert!(by_id.insert(id, report).is_none(), "ids are unique");
    }
    let bundle = dir.path().join("bundle.tar");
    assert_eq!(export(&gateway.data_dir, &bundle).len(), REPORTS);
    gateway.stop();

    let out = dir.path().join("reports");
    let o = open_as_demo_reviewer(&bundle, &out);
    assert!(o.status.success(), "open: {}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(REGISTRY_FILE), "{}", stdout(&o));
    assert!(!stderr(&o).contains("registry"), "{}", stderr(&o));
    let folders = report_folders(&out);
    assert_eq!(folders.len(), REPORTS);
    assert_eq!(folders, by_id.keys().cloned().collect());

    // Opening the same bundle again (and recording again) adds nothing.
    let again = open_as_demo_reviewer(&bundle, &out);
    assert!(again.status.success(), "{}", stderr(&again));
    let mut registry = Registry::in_folder(&out).expect("the registry");
    let recorded = registry.record_folder(&out).expect("records");
    assert_eq!((recorded.added, recorded.known), (0, REPORTS));

    // Every report is a case exactly once, with the fields it was sent with.
    let rows = registry.list(&CaseFilter::default()).expect("list");
    assert_eq!(rows.len(), REPORTS);
    let submissions: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            r.submission
                .clone()
                .expect("a report's case has its submission")
        })
        .collect();
    assert_eq!(submissions.len(), REPORTS, "no report twice");
    assert_eq!(submissions, folders);
    for row in &rows {
        let id = row.submission.as_deref().unwrap_or_default();
        let sent = by_id[id];
        let mut types = sent.types.clone();
        types.sort();
        let mut perpetrators = sent.perpetrators.clone();
        perpetrators.sort();
        assert_eq!(row.region, sent.region, "{id}");
        assert_eq!(row.types, types, "{id}");
        assert_eq!(row.perpetrators, perpetrators, "{id}");
        assert_eq!(row.incident_day, sent.when, "{id}");
        assert_eq!(row.urgent, sent.urgent, "{id}");
        assert_eq!(row.status, "recibido");
        assert_eq!(row.incident, row.id, "no report here continues another");
        let entry: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(id).join("bundle-entry.json")).expect("entry"),
        )
        .expect("json");
        assert_eq!(Some(row.received_day.as_str()), entry["day"].as_str());
    }

    // The counts the generator made, by region, type, perpetrator, month and urgency, are the
    // registry's: through the library's filters and by SQL on the file.
    let regions = tally(
        reports
            .iter()
            .map(|r| r.region.as_deref().unwrap_or("(none)")),
    );
    let types = tally(
        reports
            .iter()
            .flat_map(|r| r.types.iter().map(String::as_str)),
    );
    let perpetrators = tally(
        reports
            .iter()
            .flat_map(|r| r.perpetrators.iter().map(String::as_str)),
    );
    let months = tally(
        reports
            .iter()
            .map(|r| r.when.as_deref().map_or("(none)", |d| &d[..7])),
    );
    let top: i64 = {
        let mut counts: Vec<i64> = regions.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        counts.iter().take(4).sum()
    };
    assert!(
        top * 2 > REPORTS as i64,
        "a few regions dominate: {regions:?}"
    );
    assert!(types["threat"] * 4 > REPORTS as i64, "{types:?}");
    assert!(months.len() > 20, "two years of months: {months:?}");
    let urgent = reports.iter().filter(|r| r.urgent).count();
    assert!((5..40).contains(&urgent), "{urgent} urgent");

    for (region, n) in &regions {
        if region == "(none)" {
            continue;
        }
        let filter = CaseFilter {
            region: Some(region.clone()),
            ..CaseFilter::default()
        };
        assert_eq!(
            registry.list(&filter).expect("list").len() as i64,
            *n,
            "{region}"
        );
    }
    for (t, n) in &types {
        let filter = CaseFilter {
            incident_type: Some(t.clone()),
            ..CaseFilter::default()
        };
        assert_eq!(
            registry.list(&filter).expect("list").len() as i64,
            *n,
            "{t}"
        );
    }
    let urgent_only = CaseFilter {
        urgent_only: true,
        ..CaseFilter::default()
    };
    assert_eq!(registry.list(&urgent_only).expect("list").len(), urgent);

    // `registry stats` counts the same (incidents: here every case is its own). It takes the
    // month of the received day when the report gave no incident day, and counts an incident
    // without perpetrators under "(none)".
    let received_month: BTreeMap<&str, String> = rows
        .iter()
        .map(|r| {
            (
                r.submission.as_deref().unwrap_or_default(),
                r.received_day[..7].to_string(),
            )
        })
        .collect();
    let stats_months = tally(by_id.iter().map(|(id, r)| match &r.when {
        Some(day) => &day[..7],
        None => received_month[id.as_str()].as_str(),
    }));
    let mut stats_perpetrators = perpetrators.clone();
    let without = reports.iter().filter(|r| r.perpetrators.is_empty()).count() as i64;
    if without > 0 {
        stats_perpetrators.insert("(none)".into(), without);
    }
    let stats_by = |d: Dimension| -> BTreeMap<String, i64> {
        let stats = registry.stats(&[d], None).expect("stats");
        assert_eq!(stats.incidents, REPORTS as u64, "{d}");
        stats
            .rows
            .into_iter()
            .map(|r| (r.values.join("|"), r.incidents as i64))
            .collect()
    };
    assert_eq!(stats_by(Dimension::Region), regions);
    assert_eq!(stats_by(Dimension::Type), types);
    assert_eq!(stats_by(Dimension::Perpetrator), stats_perpetrators);
    assert_eq!(stats_by(Dimension::Month), stats_months);
    let by_three = registry
        .stats(
            &[Dimension::Region, Dimension::Type, Dimension::Month],
            None,
        )
        .expect("stats by region, type and month");
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (id, r) in &by_id {
        let month = r
            .when
            .as_deref()
            .map_or(received_month[id.as_str()].as_str(), |d| &d[..7]);
        for t in &r.types {
            let region = r.region.as_deref().unwrap_or("(none)");
            *expected.entry(format!("{region}|{t}|{month}")).or_insert(0) += 1;
        }
    }
    let got: BTreeMap<String, u64> = by_three
        .rows
        .into_iter()
        .map(|r| (r.values.join("|"), r.incidents))
        .collect();
    assert_eq!(got, expected);
    drop(registry);

    assert_eq!(
        counted(&out, "SELECT region, COUNT(*) FROM cases GROUP BY region"),
        regions
    );
    assert_eq!(
        counted(&out, "SELECT type, COUNT(*) FROM case_types GROUP BY type"),
        types
    );
    assert_eq!(
        counted(
            &out,
            "SELECT perpetrator, COUNT(*) FROM case_perpetrators GROUP BY perpetrator"
        ),
        perpetrators
    );
    assert_eq!(
        counted(
            &out,
            "SELECT substr(incident_day, 1, 7), COUNT(*) FROM cases GROUP BY 1"
        ),
        months
    );
    assert_eq!(
        counted(
            &out,
            "SELECT 'urgent', COUNT(*) FROM cases WHERE urgent = 1 GROUP BY 1"
        ),
        BTreeMap::from([("urgent".to_string(), urgent as i64)])
    );
    println!(
        "{REPORTS} reports sealed, submitted, exported, opened twice and checked in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A bundle of `n` generated reports (fresh ids, today), without a gateway.
fn bundle_of(path: &Path, seed: u64, n: usize) -> Vec<String> {
    let sealed = seal_all(&generate(seed, n), 8);
    let file = std::fs::File::create(path).expect("create");
    let (_, ids) = resguardo::testing::write_bundle_of(file, &sealed);
    ids.iter().map(ToString::to_string).collect()
}

#[test]
fn an_open_and_a_case_update_at_once_both_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("reports");
    let first = dir.path().join("first.tar");
    let second = dir.path().join("second.tar");
    let mut ids = bundle_of(&first, 11, 20);
    ids.extend(bundle_of(&second, 12, 80));
    let o = open_as_demo_reviewer(&first, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let case = Registry::in_folder(&out)
        .expect("registry")
        .list(&CaseFilter::default())
        .expect("list")
        .first()
        .expect("a case")
        .id;

    // The real `open` (which records at its end), the recording itself in a loop, and a
    // reviewer updating one case in a loop, all on the same registry at the same moment.
    let done = Arc::new(AtomicBool::new(false));
    let updater = {
        let (out, done) = (out.clone(), done.clone());
        std::thread::spawn(move || {
            let mut registry = Registry::in_folder(&out).expect("registry");
            let mut updates = 0usize;
            while !done.load(Ordering::Relaxed) || updates < 20 {
                let update = CaseUpdate {
                    note: Some(format!("seguimiento {updates}")),
                    ..CaseUpdate::default()
                };
                registry
                    .update_case(case, &update)
                    .expect("an update waits its turn and completes");
                updates += 1;
                // A breath between updates: a tight loop of writers can starve SQLite's
                // sleeping waiters past the busy timeout; people are never that fast.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            updates
        })
    };
    let recorder = {
        let (out, done) = (out.clone(), done.clone());
        std::thread::spawn(move || {
            let mut passes = 0usize;
            let mut added = 0usize;
            let mut during = 0usize;
            while !done.load(Ordering::Relaxed) || passes < 5 {
                if !done.load(Ordering::Relaxed) {
                    during += 1;
                }
                let mut registry = Registry::in_folder(&out).expect("registry");
                added += registry
                    .record_folder(&out)
                    .expect("recording waits its turn and completes")
                    .added;
                passes += 1;
            }
            (passes, during, added)
        })
    };
    let o = open_as_demo_reviewer(&second, &out);
    done.store(true, Ordering::Relaxed);
    let updates = updater.join().expect("the updater");
    let (passes, during, added) = recorder.join().expect("the recorder");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        !stderr(&o).contains("registry"),
        "open recorded without trouble: {}",
        stderr(&o)
    );
    println!(
        "{updates} updates and {passes} recording passes ({during} while open ran; {added} cases \
         added by them) alongside open"
    );

    // Nothing lost: every report a case once, every update in the history.
    let registry = Registry::in_folder(&out).expect("registry");
    let rows = registry.list(&CaseFilter::default()).expect("list");
    let submissions: BTreeSet<String> = rows.iter().filter_map(|r| r.submission.clone()).collect();
    assert_eq!(rows.len(), ids.len());
    assert_eq!(submissions, ids.iter().cloned().collect());
    assert_eq!(submissions, report_folders(&out));
    let history = registry.history(case).expect("history");
    assert_eq!(
        history.len(),
        1 + updates,
        "the recording's row and every update"
    );
    for (n, entry) in history.iter().skip(1).enumerate() {
        assert_eq!(
            entry.note.as_deref(),
            Some(format!("seguimiento {n}").as_str())
        );
    }
}

#[test]
fn a_damaged_registry_costs_no_report_and_the_next_open_records_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("reports");
    std::fs::create_dir_all(&out).expect("out");
    // Earlier cases, imported, so the file spans many pages.
    let csv = dir.path().join("antes.csv");
    let mut text = String::from("received_day,region,types,perpetrators,urgent\n");
    for n in 0..400 {
        text.push_str(&format!(
            "2024-{:02}-{:02},lima,threat;surveillance,company,{}\n",
            n % 12 + 1,
            n % 28 + 1,
            if n % 9 == 0 { "si" } else { "no" }
        ));
    }
    std::fs::write(&csv, text).expect("csv");
    let registry_file = out.join(REGISTRY_FILE);
    {
        let mut registry = Registry::in_folder(&out).expect("registry");
        assert_eq!(registry.import_csv(&csv).expect("imported"), 400);
    }
    let backup = dir.path().join("backup.sqlite3");
    std::fs::copy(&registry_file, &backup).expect("backup");
    let mut bytes = std::fs::read(&registry_file).expect("read");
    assert!(bytes.len() > 3 * 4096, "{} bytes", bytes.len());
    for b in &mut bytes[4096 + 100..2 * 4096] {
        *b = 0x5a;
    }
    std::fs::write(&registry_file, &bytes).expect("damage");
    let refused = Registry::in_folder(&out);
    assert!(
        refused.as_ref().is_err_and(|e| e.is_about_the_file()),
        "{:?}",
        refused.err()
    );

    let bundle = dir.path().join("bundle.tar");
    let ids = bundle_of(&bundle, 21, 12);
    let o = open_as_demo_reviewer(&bundle, &out);
    let said = format!("{}{}", stdout(&o), stderr(&o));
    println!(
        "open beside a damaged registry: exit {:?}\n{said}",
        o.status.code()
    );
    assert!(o.status.code().is_some(), "not killed: {said}");
    assert_eq!(
        report_folders(&out),
        ids.iter().cloned().collect(),
        "{said}"
    );
    for id in &ids {
        assert!(out.join(id).join("report.json").is_file(), "{id}: {said}");
        assert!(out.join(id).join("report.txt").is_file(), "{id}: {said}");
    }
    assert!(
        stderr(&o).contains("registry") && stderr(&o).contains("damaged"),
        "open says the registry could not record: {said}"
    );
    assert_eq!(
        std::fs::read(&registry_file).expect("read"),
        bytes,
        "the damaged file is left as it was, not rebuilt"
    );

    // Restored from the backup, the next open (of the same bundle: nothing new to open)
    // records what the last one could not.
    std::fs::copy(&backup, &registry_file).expect("restore");
    let o = open_as_demo_reviewer(&bundle, &out);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let registry = Registry::in_folder(&out).expect("the restored registry");
    let rows = registry.list(&CaseFilter::default()).expect("list");
    assert_eq!(rows.len(), 400 + ids.len());
    let submissions: BTreeSet<String> = rows.iter().filter_map(|r| r.submission.clone()).collect();
    assert_eq!(submissions, ids.iter().cloned().collect());
}
