//! The registry's report (`docs/registry-v1.md`, "The report"): one self-contained HTML file,
//! Spanish first with English beside it, that opens offline in any browser and can be printed.
//!
//! It shows incidents per month, by type, by perpetrator and by region (a tile map of Peru), the
//! early alerts and how long they waited, and the open cases by status. Each chart is an inline
//! SVG with a text alternative and a data table holding the same numbers. It loads nothing (a
//! strict Content-Security-Policy says so), runs no script, and holds no free text and no place
//! from the reports: only option ids turned into their labels, days, counts and case numbers.

use std::collections::{BTreeMap, BTreeSet};

use super::stats::{Dimension, NONE};
use super::{Registry, RegistryError, Status};
use crate::form::FormDefinition;
use crate::i18n::Catalog;
use crate::submission::UtcDay;

/// How many months the monthly chart shows, ending with the report day's month.
const MONTHS_SHOWN: i32 = 24;

/// The region option outside the map.
const OUTSIDE_PERU: &str = "outside_peru";

/// The tile map: (region option id, ISO 3166-2:PE code, row, column), laid out roughly as the
/// regions lie (the north coast top left, Loreto top right, Tacna and Puno at the bottom).
const REGION_TILES: [(&str, &str, u8, u8); 25] = [
    ("tumbes", "TUM", 0, 0),
    ("amazonas", "AMA", 0, 2),
    ("loreto", "LOR", 0, 3),
    ("piura", "PIU", 1, 0),
    ("cajamarca", "CAJ", 1, 1),
    ("san_martin", "SAM", 1, 2),
    ("lambayeque", "LAM", 2, 0),
    ("la_libertad", "LAL", 2, 1),
    ("huanuco", "HUC", 2, 2),
    ("ucayali", "UCA", 2, 3),
    ("madre_de_dios", "MDD", 2, 4),
    ("ancash", "ANC", 3, 1),
    ("pasco", "PAS", 3, 2),
    ("junin", "JUN", 3, 3),
    ("cusco", "CUS", 3, 4),
    ("callao", "CAL", 4, 0),
    ("lima", "LIM", 4, 1),
    ("huancavelica", "HUV", 4, 2),
    ("ayacucho", "AYA", 4, 3),
    ("apurimac", "APU", 4, 4),
    ("puno", "PUN", 4, 5),
    ("ica", "ICA", 5, 2),
    ("arequipa", "ARE", 5, 3),
    ("moquegua", "MOQ", 5, 4),
    ("tacna", "TAC", 5, 5),
];

/// Fills of the map's shades, lightest (no incident) to darkest, and the text colour on each
/// (every pair above 4.5:1 contrast).
const SHADES: [(&str, &str); 5] = [
    ("#ffffff", "#111111"),
    ("#c6dbef", "#111111"),
    ("#6baed6", "#111111"),
    ("#2171b5", "#ffffff"),
    ("#08306b", "#ffffff"),
];

/// The fill of every bar (8.9:1 against white).
const BAR: &str = "#1d4f91";

/// The report's Content-Security-Policy: nothing may be loaded.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// Buckets of the time urgent cases waited before someone acted: (key, upper bound in seconds
/// (exclusive), Spanish, English).
const WAIT_BUCKETS: [(&str, i64, &str, &str); 5] = [
    ("lt1h", 3_600, "menos de 1 hora", "under 1 hour"),
    ("1to6h", 6 * 3_600, "de 1 a 6 horas", "1 to 6 hours"),
    ("6to24h", 24 * 3_600, "de 6 a 24 horas", "6 to 24 hours"),
    ("1to3d", 72 * 3_600, "de 1 a 3 días", "1 to 3 days"),
    ("gt3d", i64::MAX, "más de 3 días", "over 3 days"),
];

impl Registry {
    /// The report as one self-contained HTML file (`docs/registry-v1.md`, "The report"): the
    /// months shown end with `today`'s month, and urgent cases not acted on yet have waited until
    /// now (or until the end of `today`, when `today` is not the clock's day).
    pub fn report_html(&self, today: UtcDay) -> Result<String, RegistryError> {
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let start = i64::from(today.days_since_epoch()) * 86_400;
        let as_of = if (start..start + 86_400).contains(&clock) {
            clock
        } else {
            start + 86_400
        };
        self.report_at(today, as_of)
    }

    /// [`Registry::report_html`] with the moment waits are measured to (seconds since 1970).
    fn report_at(&self, today: UtcDay, as_of: i64) -> Result<String, RegistryError> {
        let figures = self.figures(today, as_of)?;
        let labels = Labels::new()?;
        Ok(render(&figures, &labels, today))
    }

    /// Every number the report shows.
    fn figures(&self, today: UtcDay, as_of: i64) -> Result<Figures, RegistryError> {
        let conn = self.conn();
        let cases: usize =
            conn.query_row("SELECT COUNT(*) FROM cases", [], |r| r.get(0).map(count))?;

        // Incidents (linked cases once, each with its own case's fields) as `registry stats`
        // counts them: one rule for both.
        let by = |dimension: Dimension| -> Result<BTreeMap<String, usize>, RegistryError> {
            Ok(self
                .stats(&[dimension], None)?
                .rows
                .into_iter()
                .filter_map(|row| {
                    let value = row.values.into_iter().next()?;
                    Some((value, usize::try_from(row.incidents).unwrap_or(usize::MAX)))
                })
                .collect())
        };
        let months = months_ending(today);
        let mut per_month: BTreeMap<String, usize> =
            months.iter().map(|m| (m.clone(), 0)).collect();
        let mut outside_months = 0;
        for (month, n) in by(Dimension::Month)? {
            match per_month.get_mut(&month) {
                Some(shown) => *shown += n,
                None => outside_months += n,
            }
        }
        let mut regions = by(Dimension::Region)?;
        let no_region = regions.remove(NONE).unwrap_or(0);
        // An incident without a type (perpetrator) has no bar in those charts.
        let mut types = by(Dimension::Type)?;
        types.remove(NONE);
        let mut perpetrators = by(Dimension::Perpetrator)?;
        perpetrators.remove(NONE);

        let counted = |sql: &str| -> Result<BTreeMap<String, usize>, RegistryError> {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1).map(count)?)))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        };
        let statuses = counted("SELECT status, COUNT(*) FROM cases GROUP BY status")?;

        // Early alerts: every urgent case from a report is its own alert (an imported case has no
        // time of its first action: it is counted apart).
        let mut stmt = conn.prepare(
            "SELECT id, received_day, recorded_at, first_acted_at, source = 'import' FROM cases
             WHERE urgent = 1 ORDER BY id",
        )?;
        let urgent_rows: Vec<(i64, String, String, Option<String>, bool)> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut alerts = Alerts::default();
        for (id, received_day, recorded_at, first_acted_at, imported) in urgent_rows {
            if imported {
                alerts.imported += 1;
                continue;
            }
            let Some(recorded) = seconds(&recorded_at) else {
                alerts.unknown_times += 1;
                continue;
            };
            let acted = match first_acted_at.as_deref().map(seconds) {
                None => None,
                Some(Some(acted)) => Some(acted),
                Some(None) => {
                    alerts.unknown_times += 1;
                    continue;
                }
            };
            if recorded > as_of {
                continue;
            }
            alerts.total += 1;
            match acted {
                Some(acted) if acted <= as_of => alerts.acted.push((acted - recorded).max(0)),
                _ => alerts.waiting.push(Waiting {
                    case: id,
                    days: received_day.parse::<UtcDay>().ok().map(|d| {
                        i64::from(today.days_since_epoch()) - i64::from(d.days_since_epoch())
                    }),
                    received_day,
                    waited: (as_of - recorded).max(0),
                }),
            }
        }
        alerts.acted.sort_unstable();
        alerts
            .waiting
            .sort_by(|a, b| b.waited.cmp(&a.waited).then(a.case.cmp(&b.case)));

        Ok(Figures {
            incidents: usize::try_from(self.stats(&[], None)?.incidents).unwrap_or(usize::MAX),
            cases,
            months: months
                .into_iter()
                .map(|m| {
                    let n = per_month.get(&m).copied().unwrap_or(0);
                    (m, n)
                })
                .collect(),
            outside_months,
            types,
            perpetrators,
            regions,
            no_region,
            statuses,
            alerts,
        })
    }
}

/// What the report counts.
struct Figures {
    /// Incidents (linked cases count once).
    incidents: usize,
    /// Cases.
    cases: usize,
    /// (`YYYY-MM`, incidents), oldest first.
    months: Vec<(String, usize)>,
    /// Incidents whose month is not among those shown.
    outside_months: usize,
    /// Type id → incidents.
    types: BTreeMap<String, usize>,
    /// Perpetrator id → incidents.
    perpetrators: BTreeMap<String, usize>,
    /// Region id → incidents.
    regions: BTreeMap<String, usize>,
    /// Incidents with no region.
    no_region: usize,
    /// Status id → cases.
    statuses: BTreeMap<String, usize>,
    /// Early alerts.
    alerts: Alerts,
}

/// The urgent cases and how long they waited.
#[derive(Default)]
struct Alerts {
    /// Urgent cases recorded by the report's moment.
    total: usize,
    /// Seconds each acted-on urgent case waited, shortest first.
    acted: Vec<i64>,
    /// Urgent cases nobody has acted on, longest wait first.
    waiting: Vec<Waiting>,
    /// Urgent cases whose times cannot be read.
    unknown_times: usize,
    /// Imported urgent cases (when they were first acted on is not known).
    imported: usize,
}

/// An urgent case not acted on yet.
struct Waiting {
    case: i64,
    received_day: String,
    /// Days from the day it was received to the report's day.
    days: Option<i64>,
    /// Seconds since it was recorded.
    waited: i64,
}

/// The `YYYY-MM` of the [`MONTHS_SHOWN`] months ending with `today`'s, oldest first.
fn months_ending(today: UtcDay) -> Vec<String> {
    let text = today.to_string();
    let year: i32 = text.get(..4).and_then(|y| y.parse().ok()).unwrap_or(1970);
    let month: i32 = text.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    let last = year * 12 + (month - 1);
    (last - MONTHS_SHOWN + 1..=last)
        .map(|m| format!("{:04}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1))
        .collect()
}

/// A count from SQLite (never negative).
fn count(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// Seconds since 1970 of a registry time (`YYYY-MM-DDTHH:MM:SSZ`).
fn seconds(at: &str) -> Option<i64> {
    let day: UtcDay = at.get(..10)?.parse().ok()?;
    let clock = at.get(10..)?.strip_prefix('T')?.strip_suffix('Z')?;
    let mut parts = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || h > 23 || m > 59 || s > 60 || h < 0 || m < 0 || s < 0 {
        return None;
    }
    Some(i64::from(day.days_since_epoch()) * 86_400 + h * 3_600 + m * 60 + s)
}

/// A wait as hours and minutes.
fn duration(secs: i64) -> String {
    let minutes = secs.max(0) / 60;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(n / 2).copied(),
        _ => Some((sorted.get(n / 2 - 1)? + sorted.get(n / 2)?) / 2),
    }
}

/// The text with its first letter capitalised.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Text safe anywhere in HTML: element content and quoted attributes (the page's own escaping).
use crate::gateway::page_render::escape as esc;

/// The form's options and their Spanish and English labels.
struct Labels {
    catalog: Catalog,
    form: FormDefinition,
}

impl Labels {
    fn new() -> Result<Self, RegistryError> {
        Ok(Labels {
            catalog: Catalog::embedded(),
            form: FormDefinition::embedded().map_err(|e| RegistryError::Unknown(e.to_string()))?,
        })
    }

    /// The field's options, in the form's order.
    fn options(&self, field: &str) -> Vec<String> {
        self.form
            .field(field)
            .map(|f| f.options.clone())
            .unwrap_or_default()
    }

    /// (Spanish, English) of one option; an id the form does not know is shown as it is.
    fn option(&self, field: &str, id: &str) -> (String, String) {
        let key = format!("field.{field}.option.{id}");
        let es = self.catalog.exact("es", &key).unwrap_or(id);
        let en = self.catalog.exact("en", &key).unwrap_or(es);
        (es.to_string(), en.to_string())
    }
}

/// One bar of a chart, one row of its table.
struct Row {
    key: String,
    es: String,
    en: String,
    count: usize,
}

/// The rows of a field's counts: every option of the form (most incidents first, then the
/// form's order), then ids the form does not know.
fn option_rows(labels: &Labels, field: &str, counts: &BTreeMap<String, usize>) -> Vec<Row> {
    let options = labels.options(field);
    let known: BTreeSet<&str> = options.iter().map(String::as_str).collect();
    let mut rows: Vec<Row> = options
        .iter()
        .chain(counts.keys().filter(|k| !known.contains(k.as_str())))
        .map(|id| {
            let (es, en) = labels.option(field, id);
            Row {
                key: id.clone(),
                es,
                en,
                count: counts.get(id).copied().unwrap_or(0),
            }
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.count));
    rows
}

/// A heading or label: Spanish, and English on a smaller line.
fn both(es: &str, en: &str) -> String {
    format!(
        "{} <span class=\"en\" lang=\"en\">{}</span>",
        esc(es),
        esc(en)
    )
}

/// A chart's text alternative: its title, then each label with its number.
fn alternative(title_es: &str, title_en: &str, rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            if r.es == r.en {
                format!("{}: {}", r.es, r.count)
            } else {
                format!("{} / {}: {}", r.es, r.en, r.count)
            }
        })
        .collect();
    format!("{title_es} / {title_en}. {}", items.join("; "))
}

/// The data table beside a chart.
fn data_table(id: &str, head: (&str, &str), unit: (&str, &str), rows: &[Row]) -> String {
    let mut out = format!(
        "<details open><summary>{}</summary>\n<table id=\"data-{}\"><thead><tr><th scope=\"col\">{}</th>\
         <th scope=\"col\" class=\"n\">{}</th></tr></thead><tbody>\n",
        both("Datos del gráfico", "Chart data"),
        esc(id),
        both(head.0, head.1),
        both(unit.0, unit.1),
    );
    for r in rows {
        let label = if r.es == r.en {
            esc(&r.es)
        } else {
            both(&r.es, &r.en)
        };
        out.push_str(&format!(
            "<tr data-key=\"{}\"><th scope=\"row\">{label}</th><td class=\"n\">{}</td></tr>\n",
            esc(&r.key),
            r.count
        ));
    }
    out.push_str("</tbody></table></details>\n");
    out
}

/// Horizontal bars: each label (Spanish, English below) above its bar, the number at the bar's
/// end.
fn hbars(id: &str, title: (&str, &str), rows: &[Row]) -> String {
    const WIDTH: usize = 360;
    const ROW: usize = 50;
    const BAR_MAX: usize = WIDTH - 56;
    let max = rows.iter().map(|r| r.count).max().unwrap_or(0).max(1);
    let height = rows.len().max(1) * ROW + 6;
    let mut out = format!(
        "<svg id=\"chart-{id}\" class=\"chart\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"{}\"><title>{}</title>\n",
        esc(&alternative(title.0, title.1, rows)),
        esc(&format!("{} / {}", title.0, title.1)),
    );
    for (i, r) in rows.iter().enumerate() {
        let y = i * ROW;
        let bar = r.count * BAR_MAX / max;
        let bar = if r.count > 0 { bar.max(2) } else { 0 };
        out.push_str(&format!(
            "<text x=\"0\" y=\"{}\" class=\"l\">{}</text>",
            y + 14,
            esc(&r.es)
        ));
        if r.en != r.es {
            out.push_str(&format!(
                "<text x=\"0\" y=\"{}\" class=\"le\" lang=\"en\">{}</text>",
                y + 27,
                esc(&r.en)
            ));
        }
        if bar > 0 {
            out.push_str(&format!(
                "<rect x=\"0\" y=\"{}\" width=\"{bar}\" height=\"14\" fill=\"{BAR}\"/>",
                y + 32
            ));
        }
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" class=\"v\">{}</text>\n",
            bar + 5,
            y + 44,
            r.count
        ));
    }
    out.push_str("</svg>\n");
    out
}

/// Vertical bars, one per month, `per_row` months a row: the number above each bar that has
/// incidents, the month's number below it, and below those each year centred under its months.
fn month_chart(id: &str, class: &str, rows: &[Row], per_row: usize) -> String {
    const PITCH: usize = 26;
    const LEFT: usize = 6;
    const TALL: usize = 130;
    const PANEL: usize = 212;
    let per_row = per_row.max(1);
    let lines = rows.len().div_ceil(per_row).max(1);
    let width = LEFT * 2 + per_row * PITCH;
    let max = rows.iter().map(|r| r.count).max().unwrap_or(0).max(1);
    let mut out = format!(
        "<svg id=\"{id}\" class=\"chart {class}\" viewBox=\"0 0 {width} {}\" role=\"img\" \
         aria-label=\"{}\"><title>{}</title>\n",
        lines * PANEL,
        esc(&alternative(
            "Incidentes por mes",
            "Incidents per month",
            rows
        )),
        esc("Incidentes por mes / Incidents per month"),
    );
    for (line, chunk) in rows.chunks(per_row).enumerate() {
        let base = line * PANEL + 26 + TALL;
        out.push_str(&format!(
            "<line x1=\"0\" y1=\"{base}\" x2=\"{width}\" y2=\"{base}\" stroke=\"#111\"/>\n"
        ));
        for (i, r) in chunk.iter().enumerate() {
            let x = LEFT + i * PITCH;
            let mid = x + PITCH / 2;
            let h = r.count * TALL / max;
            let h = if r.count > 0 { h.max(2) } else { 0 };
            if h > 0 {
                out.push_str(&format!(
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{h}\" fill=\"{BAR}\"/>\
                     <text x=\"{mid}\" y=\"{}\" class=\"v\" text-anchor=\"middle\">{}</text>",
                    x + 4,
                    base - h,
                    PITCH - 8,
                    base - h - 4,
                    r.count
                ));
            }
            let month = r.key.get(5..7).unwrap_or("");
            out.push_str(&format!(
                "<text x=\"{mid}\" y=\"{}\" class=\"m\" text-anchor=\"middle\">{}</text>\n",
                base + 16,
                esc(month.trim_start_matches('0'))
            ));
        }
        // Each year once, centred under its months of this row.
        let mut start = 0;
        while start < chunk.len() {
            let year = chunk.get(start).and_then(|r| r.key.get(..4)).unwrap_or("");
            let run = chunk
                .iter()
                .skip(start)
                .take_while(|r| r.key.get(..4) == Some(year))
                .count()
                .max(1);
            let (x1, x2) = (LEFT + start * PITCH + 2, LEFT + (start + run) * PITCH - 2);
            out.push_str(&format!(
                "<line x1=\"{x1}\" y1=\"{}\" x2=\"{x2}\" y2=\"{}\" stroke=\"#555\"/>\
                 <text x=\"{}\" y=\"{}\" class=\"y\" text-anchor=\"middle\">{}</text>\n",
                base + 22,
                base + 22,
                (x1 + x2) / 2,
                base + 38,
                esc(year)
            ));
            start += run;
        }
    }
    out.push_str("</svg>\n");
    out
}

/// The tile map: one square per region, its code and count written in it, shaded by count.
fn region_map(labels: &Labels, regions: &BTreeMap<String, usize>) -> String {
    const TILE: usize = 60;
    const PITCH: usize = 64;
    let count = |id: &str| regions.get(id).copied().unwrap_or(0);
    let max = REGION_TILES
        .iter()
        .map(|(id, ..)| count(id))
        .max()
        .unwrap_or(0);
    // Shade 0 is no incident; 1 to 4 split the counts up to the largest in four.
    let shade = |n: usize| {
        if n == 0 {
            0
        } else {
            (n * 4).div_ceil(max).clamp(1, 4)
        }
    };
    let rows: Vec<Row> = REGION_TILES
        .iter()
        .map(|(id, ..)| {
            let (es, en) = labels.option("region", id);
            Row {
                key: id.to_string(),
                es,
                en,
                count: count(id),
            }
        })
        .collect();
    let legend_y = 6 * PITCH + 14;
    let mut out = format!(
        "<svg id=\"map\" class=\"chart map\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{}\">\
         <title>{}</title>\n",
        6 * PITCH,
        legend_y + 44,
        esc(&alternative(
            "Incidentes por región del Perú",
            "Incidents by region of Peru",
            &rows
        )),
        esc("Mapa de regiones del Perú / Map of Peru's regions"),
    );
    for ((id, code, row, col), r) in REGION_TILES.iter().zip(&rows) {
        let (x, y) = (usize::from(*col) * PITCH, usize::from(*row) * PITCH);
        let (fill, ink) = SHADES[shade(r.count)];
        out.push_str(&format!(
            "<g class=\"tile\" data-region=\"{}\"><title>{}: {}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{TILE}\" height=\"{TILE}\" fill=\"{fill}\" \
             stroke=\"#555\" stroke-width=\"1\"/>\
             <text x=\"{}\" y=\"{}\" class=\"code\" fill=\"{ink}\" text-anchor=\"middle\">{code}</text>\
             <text x=\"{}\" y=\"{}\" class=\"count\" fill=\"{ink}\" text-anchor=\"middle\">{}</text></g>\n",
            esc(id),
            esc(&r.es),
            r.count,
            x + TILE / 2,
            y + 19,
            x + TILE / 2,
            y + 47,
            r.count
        ));
    }
    // The legend: each shade with the counts it stands for.
    let mut ranges: Vec<(usize, usize, usize)> = vec![(0, 0, 0)];
    for n in 1..=max {
        match ranges.last_mut() {
            Some(last) if last.0 == shade(n) => last.2 = n,
            _ => ranges.push((shade(n), n, n)),
        }
    }
    out.push_str(&format!(
        "<text x=\"0\" y=\"{}\" class=\"le\">Incidentes por región / Incidents per region</text>\n",
        legend_y
    ));
    for (i, (s, low, high)) in ranges.iter().enumerate() {
        let x = i * 76;
        let (fill, _) = SHADES[*s];
        let text = if low == high {
            low.to_string()
        } else {
            format!("{low}–{high}")
        };
        out.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"18\" height=\"18\" fill=\"{fill}\" stroke=\"#555\"/>\
             <text x=\"{}\" y=\"{}\" class=\"v\">{text}</text>\n",
            legend_y + 10,
            x + 24,
            legend_y + 24
        ));
    }
    out.push_str("</svg>\n");
    out
}

/// The whole page.
fn render(f: &Figures, labels: &Labels, today: UtcDay) -> String {
    let mut out = String::with_capacity(64 * 1024);
    out.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"es\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>Registro de incidentes: informe al {day} / Incident registry: report as of {day}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>{}</h1>\n\
         <p>Datos al <strong>{day}</strong> \
         <span class=\"en\" lang=\"en\">Data as of <strong>{day}</strong></span></p>\n",
        both("Informe del registro de incidentes", "Incident registry report"),
        day = esc(&today.to_string()),
    ));
    out.push_str(&format!(
        "<dl class=\"totals\"><div><dt>{}</dt><dd id=\"total-incidents\">{}</dd></div>\
         <div><dt>{}</dt><dd id=\"total-cases\">{}</dd></div></dl>\n",
        both("Incidentes", "Incidents"),
        f.incidents,
        both("Casos", "Cases"),
        f.cases,
    ));
    out.push_str(&format!(
        "<p class=\"note\">{}</p>\n<p class=\"note\">{}</p>\n</header>\n<main>\n",
        both(
            "Se cuentan incidentes: los casos vinculados cuentan una vez, con los datos de su \
             caso de número menor.",
            "Incidents are counted: linked cases count once, with the details of their \
             lowest-numbered case."
        ),
        both(
            "Sin nombres, lugares ni textos de los reportes; sí lleva números de caso: \
             guárdelo con el mismo cuidado que el registro.",
            "No names, places or words from the reports; it does hold case numbers: keep it \
             as carefully as the registry."
        ),
    ));

    // Incidents per month.
    let month_rows: Vec<Row> = f
        .months
        .iter()
        .map(|(m, n)| Row {
            key: m.clone(),
            es: m.clone(),
            en: m.clone(),
            count: *n,
        })
        .collect();
    out.push_str(&format!(
        "<section id=\"months\">\n<h2>{}</h2>\n<p class=\"note\">{}</p>\n",
        both("Incidentes por mes", "Incidents per month"),
        both(
            &format!(
                "Últimos {MONTHS_SHOWN} meses, por el mes del incidente (o el de recepción, si \
                 el reporte no dio fecha). Fuera de estos meses: {}.",
                f.outside_months
            ),
            &format!(
                "The last {MONTHS_SHOWN} months, by the month of the incident (or of receipt, \
                 when the report gave no day). Outside these months: {}.",
                f.outside_months
            ),
        ),
    ));
    out.push_str(&month_chart(
        "chart-months",
        "wide",
        &month_rows,
        month_rows.len(),
    ));
    out.push_str(&month_chart(
        "chart-months-narrow",
        "narrow",
        &month_rows,
        12,
    ));
    out.push_str(&data_table(
        "months",
        ("Mes", "Month"),
        ("Incidentes", "Incidents"),
        &month_rows,
    ));
    out.push_str("</section>\n");

    // By type and by perpetrator.
    for (id, field, counts, title, head, note) in [
        (
            "types",
            "what_happened",
            &f.types,
            ("Incidentes por tipo", "Incidents by type"),
            ("Tipo", "Type"),
            (
                "Un incidente con varios tipos cuenta una vez en cada uno: las barras pueden \
                 sumar más que el total de incidentes.",
                "An incident of several types counts once in each: the bars may add up to more \
                 than the number of incidents.",
            ),
        ),
        (
            "perpetrators",
            "responsible",
            &f.perpetrators,
            (
                "Incidentes por presunto responsable",
                "Incidents by alleged perpetrator",
            ),
            ("Presunto responsable", "Alleged perpetrator"),
            (
                "Un incidente con varios presuntos responsables cuenta una vez con cada uno: las \
                 barras pueden sumar más que el total de incidentes.",
                "An incident with several alleged perpetrators counts once for each: the bars \
                 may add up to more than the number of incidents.",
            ),
        ),
    ] {
        let rows = option_rows(labels, field, counts);
        out.push_str(&format!(
            "<section id=\"{id}\">\n<h2>{}</h2>\n<p class=\"note\">{}</p>\n",
            both(title.0, title.1),
            both(note.0, note.1)
        ));
        out.push_str(&hbars(id, title, &rows));
        out.push_str(&data_table(id, head, ("Incidentes", "Incidents"), &rows));
        out.push_str("</section>\n");
    }

    // The map.
    out.push_str(&format!(
        "<section id=\"regions\">\n<h2>{}</h2>\n<p class=\"note\">{}</p>\n",
        both("Incidentes por región", "Incidents by region"),
        both(
            "Un cuadro por región, ubicados aproximadamente como en el mapa; en cada uno, su \
             código y el número de incidentes.",
            "One square per region, placed roughly as on the map; in each, its code and the \
             number of incidents."
        )
    ));
    out.push_str(&region_map(labels, &f.regions));
    let mut region_rows: Vec<Row> = REGION_TILES
        .iter()
        .map(|(id, code, ..)| {
            let (es, en) = labels.option("region", id);
            Row {
                key: id.to_string(),
                es: format!("{es} ({code})"),
                en: format!("{en} ({code})"),
                count: f.regions.get(*id).copied().unwrap_or(0),
            }
        })
        .collect();
    region_rows.sort_by(|a, b| a.key.cmp(&b.key));
    let (outside_es, outside_en) = labels.option("region", OUTSIDE_PERU);
    let mut apart = vec![Row {
        key: OUTSIDE_PERU.into(),
        es: outside_es,
        en: outside_en,
        count: f.regions.get(OUTSIDE_PERU).copied().unwrap_or(0),
    }];
    for (id, n) in &f.regions {
        if id != OUTSIDE_PERU && !REGION_TILES.iter().any(|(r, ..)| r == id) {
            let (es, en) = labels.option("region", id);
            apart.push(Row {
                key: id.clone(),
                es,
                en,
                count: *n,
            });
        }
    }
    apart.push(Row {
        key: "none".into(),
        es: "Sin región".into(),
        en: "No region given".into(),
        count: f.no_region,
    });
    out.push_str("<ul class=\"apart\" id=\"regions-apart\">\n");
    for r in &apart {
        out.push_str(&format!(
            "<li data-key=\"{}\">{}: <strong>{}</strong></li>\n",
            esc(&r.key),
            both(&r.es, &r.en),
            r.count
        ));
    }
    out.push_str("</ul>\n");
    region_rows.extend(apart);
    out.push_str(&data_table(
        "regions",
        ("Región", "Region"),
        ("Incidentes", "Incidents"),
        &region_rows,
    ));
    out.push_str("</section>\n");

    // Early alerts.
    let a = &f.alerts;
    let wait = |secs: Option<i64>| match secs {
        Some(s) => format!("<td class=\"n\" data-seconds=\"{s}\">{}</td>", duration(s)),
        None => "<td class=\"n\">—</td>".to_string(),
    };
    out.push_str(&format!(
        "<section id=\"alerts\">\n<h2>{}</h2>\n<p class=\"note\">{}</p>\n",
        both("Alertas tempranas", "Early alerts"),
        both(
            "Casos urgentes (cada caso es una alerta). La espera va desde que la máquina \
             fuera de línea registró el reporte hasta la primera acción.",
            "Urgent cases (each case is an alert). The wait runs from when the offline \
             machine recorded the report to the first action."
        )
    ));
    out.push_str(&format!(
        "<table id=\"data-alerts\"><tbody>\n\
         <tr data-key=\"total\"><th scope=\"row\">{}</th><td class=\"n\">{}</td></tr>\n\
         <tr data-key=\"acted\"><th scope=\"row\">{}</th><td class=\"n\">{}</td></tr>\n\
         <tr data-key=\"median\"><th scope=\"row\">{}</th>{}</tr>\n\
         <tr data-key=\"max\"><th scope=\"row\">{}</th>{}</tr>\n\
         <tr data-key=\"waiting\"><th scope=\"row\">{}</th><td class=\"n\">{}</td></tr>\n",
        both("Alertas (casos urgentes)", "Alerts (urgent cases)"),
        a.total,
        both("Atendidas", "Acted on"),
        a.acted.len(),
        both(
            "Espera mediana hasta la primera acción",
            "Median wait for the first action"
        ),
        wait(median(&a.acted)),
        both(
            "Espera máxima hasta la primera acción",
            "Longest wait for the first action"
        ),
        wait(a.acted.last().copied()),
        both("Sin atender todavía", "Not acted on yet"),
        a.waiting.len(),
    ));
    if a.imported > 0 {
        out.push_str(&format!(
            "<tr data-key=\"imported\"><th scope=\"row\">{}</th><td class=\"n\">{}</td></tr>\n",
            both(
                "Importadas (sin hora de la primera acción; no cuentan arriba)",
                "Imported (no time of the first action; not counted above)"
            ),
            a.imported
        ));
    }
    if a.unknown_times > 0 {
        out.push_str(&format!(
            "<tr data-key=\"unknown\"><th scope=\"row\">{}</th><td class=\"n\">{}</td></tr>\n",
            both("Con horas ilegibles", "With unreadable times"),
            a.unknown_times
        ));
    }
    out.push_str("</tbody></table>\n");
    let bucket_rows: Vec<Row> = WAIT_BUCKETS
        .iter()
        .enumerate()
        .map(|(i, (key, below, es, en))| {
            let above = i
                .checked_sub(1)
                .and_then(|p| WAIT_BUCKETS.get(p))
                .map_or(i64::MIN, |b| b.1);
            Row {
                key: key.to_string(),
                es: es.to_string(),
                en: en.to_string(),
                count: a
                    .acted
                    .iter()
                    .filter(|w| **w >= above && **w < *below)
                    .count(),
            }
        })
        .collect();
    let title = (
        "Alertas atendidas según su espera",
        "Alerts acted on, by how long they waited",
    );
    out.push_str(&format!("<h3>{}</h3>\n", both(title.0, title.1)));
    out.push_str(&hbars("waits", title, &bucket_rows));
    out.push_str(&data_table(
        "waits",
        ("Espera", "Wait"),
        ("Alertas", "Alerts"),
        &bucket_rows,
    ));
    out.push_str(&format!(
        "<h3>{}</h3>\n",
        both("Alertas sin atender", "Alerts not acted on yet")
    ));
    if a.waiting.is_empty() {
        out.push_str(&format!(
            "<p id=\"no-waiting\">{}</p>\n",
            both("Ninguna.", "None.")
        ));
    } else {
        out.push_str(&format!(
            "<table id=\"data-waiting\"><thead><tr><th scope=\"col\">{}</th>\
             <th scope=\"col\" class=\"n\">{}</th><th scope=\"col\">{}</th>\
             <th scope=\"col\" class=\"n\">{}</th></tr></thead><tbody>\n",
            both("Caso", "Case"),
            both("Espera desde el registro", "Waiting since recorded"),
            both("Recibido", "Received"),
            both("Días desde la recepción", "Days since received"),
        ));
        for w in &a.waiting {
            out.push_str(&format!(
                "<tr data-key=\"{}\"><th scope=\"row\">{}</th>{}<td>{}</td>\
                 <td class=\"n\">{}</td></tr>\n",
                w.case,
                w.case,
                wait(Some(w.waited)),
                esc(&w.received_day),
                w.days.map_or_else(|| "—".to_string(), |d| d.to_string()),
            ));
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n");

    // Open cases by status.
    let open: Vec<Row> = Status::ALL
        .into_iter()
        .filter(|s| *s != Status::Closed)
        .map(|s| {
            let (id, es, en) = s.names();
            Row {
                key: id.into(),
                es: capitalised(es),
                en: capitalised(en),
                count: f.statuses.get(id).copied().unwrap_or(0),
            }
        })
        .collect();
    let closed = f.statuses.get(Status::Closed.id()).copied().unwrap_or(0);
    let other: usize = f
        .statuses
        .iter()
        .filter(|(id, _)| !Status::ALL.iter().any(|s| s.id() == id.as_str()))
        .map(|(_, n)| n)
        .sum();
    let title = ("Casos abiertos por estado", "Open cases by status");
    out.push_str(&format!(
        "<section id=\"statuses\">\n<h2>{}</h2>\n<p class=\"note\">{}</p>\n",
        both(title.0, title.1),
        both(
            &format!(
                "Casos, en el orden del protocolo. Cerrados: {closed}.{}",
                if other > 0 {
                    format!(" Con un estado desconocido: {other}.")
                } else {
                    String::new()
                }
            ),
            &format!(
                "Cases, in the protocol's order. Closed: {closed}.{}",
                if other > 0 {
                    format!(" With an unknown status: {other}.")
                } else {
                    String::new()
                }
            ),
        )
    ));
    out.push_str(&hbars("statuses", title, &open));
    out.push_str(&data_table(
        "statuses",
        ("Estado", "Status"),
        ("Casos", "Cases"),
        &open,
    ));
    out.push_str("</section>\n</main>\n</body>\n</html>\n");
    out
}

/// The page's style: readable on a phone and on paper, without colour.
const STYLE: &str = "
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0 auto;max-width:52rem;padding:1rem;font:1rem/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans',sans-serif;color:#111;background:#fff;overflow-wrap:break-word}
h1{font-size:1.6rem;line-height:1.2;margin:.5rem 0}
h2{font-size:1.3rem;line-height:1.25;margin:2rem 0 .5rem;padding-top:.75rem;border-top:2px solid #111}
h3{font-size:1.1rem;margin:1.25rem 0 .5rem}
.en{display:block;font-size:.8em;font-weight:normal;color:#444}
th .en,td .en,li .en,dt .en{display:inline;font-size:.85em}
th .en::before,li .en::before,dt .en::before{content:'/ '}
.note{font-size:.9rem;color:#333}
.totals{display:flex;flex-wrap:wrap;gap:1rem 2rem;margin:1rem 0}
.totals dt{font-size:.9rem}
.totals dd{margin:0;font-size:1.8rem;font-weight:bold}
svg.chart{display:block;width:100%;max-width:28rem;height:auto;margin:.5rem 0}
svg.wide{max-width:46rem}
svg.narrow{max-width:26rem;display:none}
@media screen and (max-width:599px){svg.wide{display:none}svg.narrow{display:block}}
svg.map{max-width:28rem}
svg text{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans',sans-serif}
svg .l{font-size:14px}
svg .le{font-size:12px;fill:#444}
svg .v{font-size:13px;font-weight:bold}
svg .m{font-size:11px}
svg .y{font-size:12px;font-weight:bold}
svg .code{font-size:13px;font-weight:bold}
svg .count{font-size:20px;font-weight:bold}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0}
th,td{border-bottom:1px solid #999;padding:.3rem .4rem;text-align:left;vertical-align:top;font-weight:normal}
thead th{font-weight:bold;border-bottom:2px solid #111}
.n{text-align:right;font-variant-numeric:tabular-nums}
td.n{white-space:nowrap}
details{margin:.5rem 0 1rem}
summary{font-weight:bold;cursor:pointer}
.apart{padding-left:1.2rem}
section{break-inside:auto}
svg,table{break-inside:avoid}
@media print{body{max-width:none;padding:0;font-size:11pt}h2{break-after:avoid}}
";

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::in_folder(dir.path()).expect("new registry");
        (dir, registry)
    }

    /// A case as the tests make it.
    #[derive(Clone, Default)]
    struct Spec {
        received_day: &'static str,
        incident_day: Option<&'static str>,
        region: Option<&'static str>,
        place: Option<&'static str>,
        types: &'static [&'static str],
        perpetrators: &'static [&'static str],
        urgent: bool,
        status: &'static str,
        recorded_at: &'static str,
        first_acted_at: Option<&'static str>,
        imported: bool,
    }

    fn insert(registry: &mut Registry, s: &Spec) -> i64 {
        registry
            .write(|tx| {
                tx.execute(
                    "INSERT INTO cases (source, received_day, incident_day, region, place, urgent,
                                        status, recorded_at, first_acted_at, assigned, incident)
                     VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'Rosa <b>', 0)",
                    rusqlite::params![
                        s.received_day,
                        s.incident_day,
                        s.region,
                        s.place,
                        s.urgent,
                        s.status,
                        s.recorded_at,
                        s.first_acted_at,
                        if s.imported { "import" } else { "report" }
                    ],
                )?;
                let id = tx.last_insert_rowid();
                tx.execute("UPDATE cases SET incident = id WHERE id = ?1", [id])?;
                for t in s.types {
                    tx.execute(
                        "INSERT INTO case_types (case_id, type) VALUES (?1, ?2)",
                        rusqlite::params![id, t],
                    )?;
                }
                for p in s.perpetrators {
                    tx.execute(
                        "INSERT INTO case_perpetrators (case_id, perpetrator) VALUES (?1, ?2)",
                        rusqlite::params![id, p],
                    )?;
                }
                tx.execute(
                    "INSERT INTO case_history (case_id, at, status, note)
                     VALUES (?1, ?2, ?3, 'nota secreta')",
                    rusqlite::params![id, s.recorded_at, s.status],
                )?;
                Ok(id)
            })
            .expect("case")
    }

    /// The rows of the data table `data-<id>`: key → the number in its first cell.
    fn table(html: &str, id: &str) -> BTreeMap<String, i64> {
        let start = html
            .find(&format!("<table id=\"data-{id}\""))
            .unwrap_or_else(|| panic!("no table {id}"));
        let body = &html[start..];
        let body = &body[..body.find("</table>").expect("table end")];
        body.split("<tr data-key=\"")
            .skip(1)
            .map(|row| {
                let key = &row[..row.find('"').expect("key end")];
                let cell = &row[row.find("<td").expect("a cell")..];
                let value = if let Some(at) = cell.find("data-seconds=\"") {
                    let rest = &cell[at + 14..];
                    &rest[..rest.find('"').expect("seconds end")]
                } else {
                    let rest = &cell[cell.find('>').expect("cell start") + 1..];
                    &rest[..rest.find("</td>").expect("cell end")]
                };
                (key.to_string(), value.parse().expect("a number"))
            })
            .collect()
    }

    const CANARY: &str = "Caserío <i>Canario</i> 7731";
    const TODAY: &str = "2026-11-10";
    /// 2026-11-10T12:00:00Z.
    const AS_OF: i64 = 20_767 * 86_400 + 12 * 3_600;

    fn scenario() -> (Vec<Spec>, Vec<(usize, usize)>) {
        let base = Spec {
            received_day: "2026-10-05",
            status: "recibido",
            recorded_at: "2026-10-05T08:00:00Z",
            place: Some(CANARY),
            ..Spec::default()
        };
        let specs = vec![
            // 0: a threat in Lima by a company, urgent, acted on after 2 h.
            Spec {
                incident_day: Some("2026-10-01"),
                region: Some("lima"),
                types: &["threat", "surveillance"],
                perpetrators: &["company"],
                urgent: true,
                status: "evaluacion_riesgo",
                first_acted_at: Some("2026-10-05T10:00:00Z"),
                ..base.clone()
            },
            // 1: its follow-up (linked to 0): counts once; its extra type counts for the incident.
            Spec {
                received_day: "2026-10-20",
                incident_day: Some("2026-10-19"),
                region: Some("cusco"),
                types: &["threat", "physical_attack"],
                perpetrators: &["company", "public_officials"],
                urgent: true,
                recorded_at: "2026-10-20T09:00:00Z",
                ..base.clone()
            },
            // 2: Puno, no incident day (counted in its received month), acted on after 30 h.
            Spec {
                received_day: "2025-12-24",
                region: Some("puno"),
                types: &["legal_harassment"],
                perpetrators: &["state_security_forces"],
                urgent: true,
                status: "cerrado",
                recorded_at: "2025-12-24T00:00:00Z",
                first_acted_at: Some("2025-12-25T06:00:00Z"),
                ..base.clone()
            },
            // 3: Lima again, long ago (outside the 24 months).
            Spec {
                received_day: "2023-03-01",
                incident_day: Some("2023-02-11"),
                region: Some("lima"),
                types: &["threat"],
                perpetrators: &["unknown"],
                status: "medida_solicitada",
                recorded_at: "2023-03-01T00:00:00Z",
                ..base.clone()
            },
            // 4: outside Peru, urgent, never acted on.
            Spec {
                received_day: "2026-11-09",
                region: Some("outside_peru"),
                types: &["threat"],
                urgent: true,
                recorded_at: "2026-11-09T12:00:00Z",
                ..base.clone()
            },
            // 5: no region, linked with 6 and 7 (6 links to 7, then 7 to 5).
            Spec {
                received_day: "2026-02-14",
                types: &["stigmatisation"],
                perpetrators: &["other"],
                status: "medida_otorgada",
                ..base.clone()
            },
            Spec {
                received_day: "2026-02-15",
                region: Some("tacna"),
                types: &["stigmatisation", "threat"],
                ..base.clone()
            },
            Spec {
                received_day: "2026-02-16",
                region: Some("loreto"),
                types: &["obstruction"],
                perpetrators: &["other"],
                ..base.clone()
            },
            // 8: Loreto, urgent, acted on after 10 min.
            Spec {
                received_day: "2026-11-01",
                incident_day: Some("2026-11-01"),
                region: Some("loreto"),
                types: &["threat"],
                perpetrators: &["illegal_economies"],
                urgent: true,
                status: "medida_denegada",
                recorded_at: "2026-11-01T10:00:00Z",
                first_acted_at: Some("2026-11-01T10:10:00Z"),
                ..base.clone()
            },
        ];
        let mut specs = specs;
        // 9: imported, urgent, closed: when it was first acted on is not known.
        specs.push(Spec {
            received_day: "2022-01-10",
            region: Some("arequipa"),
            types: &["threat"],
            urgent: true,
            status: "cerrado",
            recorded_at: "2026-11-02T00:00:00Z",
            imported: true,
            ..base.clone()
        });
        (specs, vec![(1, 0), (6, 7), (7, 5)])
    }

    /// The scenario in a registry, and its report.
    fn report() -> (Vec<Spec>, Vec<usize>, String) {
        let (specs, links) = scenario();
        let (_dir, mut registry) = registry();
        let ids: Vec<i64> = specs.iter().map(|s| insert(&mut registry, s)).collect();
        for (a, b) in &links {
            registry.link(ids[*a], ids[*b]).expect("link");
        }
        // Independently: each case's incident is the smallest index reachable through links.
        let mut head: Vec<usize> = (0..specs.len()).collect();
        for (a, b) in &links {
            let (low, high) = (head[*a].min(head[*b]), head[*a].max(head[*b]));
            for h in head.iter_mut().filter(|h| **h == high) {
                *h = low;
            }
        }
        let html = registry
            .report_at(TODAY.parse().expect("day"), AS_OF)
            .expect("report");
        (specs, head, html)
    }

    #[test]
    fn the_tables_hold_the_counts_of_the_inserted_incidents() {
        let (specs, head, html) = report();
        let incidents: BTreeSet<usize> = head.iter().copied().collect();
        assert_eq!(incidents.len(), 7, "{head:?}");

        let mut months: BTreeMap<String, i64> = BTreeMap::new();
        let mut regions: BTreeMap<String, i64> = BTreeMap::new();
        let mut types: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        let mut perpetrators: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for &i in &incidents {
            let s = &specs[i];
            let day = s.incident_day.unwrap_or(s.received_day);
            *months.entry(day[..7].to_string()).or_default() += 1;
            *regions
                .entry(s.region.unwrap_or("none").to_string())
                .or_default() += 1;
        }
        // Types and perpetrators, like every field, are the incident's own case's.
        for &i in &incidents {
            for t in specs[i].types {
                types.entry(t.to_string()).or_default().insert(i);
            }
            for p in specs[i].perpetrators {
                perpetrators.entry(p.to_string()).or_default().insert(i);
            }
        }
        let nonzero = |m: BTreeMap<String, i64>| -> BTreeMap<String, i64> {
            m.into_iter().filter(|(_, n)| *n > 0).collect()
        };
        let sizes = |m: BTreeMap<String, BTreeSet<usize>>| -> BTreeMap<String, i64> {
            m.into_iter().map(|(k, v)| (k, v.len() as i64)).collect()
        };

        let shown = table(&html, "months");
        assert_eq!(shown.len(), 24);
        assert_eq!(shown.keys().next().map(String::as_str), Some("2024-12"));
        assert_eq!(shown.keys().last().map(String::as_str), Some("2026-11"));
        let mut in_window = months.clone();
        in_window.retain(|m, _| shown.contains_key(m));
        assert_eq!(nonzero(shown), in_window);
        assert_eq!(
            in_window.values().sum::<i64>(),
            5,
            "two incidents are older"
        );
        assert!(html.contains("Outside these months: 2."));

        assert_eq!(nonzero(table(&html, "regions")), regions);
        assert_eq!(nonzero(table(&html, "types")), sizes(types));
        assert_eq!(nonzero(table(&html, "perpetrators")), sizes(perpetrators));
        assert_eq!(
            table(&html, "types")["threat"],
            5,
            "linked cases count once"
        );
        assert_eq!(
            table(&html, "types")["physical_attack"],
            0,
            "only the incident's case"
        );
        assert_eq!(
            table(&html, "regions")["cusco"],
            0,
            "fields come from the incident's case"
        );
        assert_eq!(
            table(&html, "regions").len(),
            25 + 2,
            "every tile, abroad, none"
        );
        assert!(html.contains(&format!("id=\"total-incidents\">{}<", incidents.len())));
        assert!(html.contains(&format!("id=\"total-cases\">{}<", specs.len())));

        // Open cases by status: cases, not incidents.
        let mut statuses: BTreeMap<String, i64> = BTreeMap::new();
        for s in specs.iter().filter(|s| s.status != "cerrado") {
            *statuses.entry(s.status.to_string()).or_default() += 1;
        }
        assert_eq!(nonzero(table(&html, "statuses")), statuses);
        assert!(html.contains("Closed: 2."));

        // Early alerts: acted on after 2 h, 30 h and 10 min; two still waiting.
        let alerts = table(&html, "alerts");
        assert_eq!(alerts["total"], 5);
        assert_eq!(alerts["acted"], 3);
        assert_eq!(alerts["median"], 2 * 3_600);
        assert_eq!(alerts["max"], 30 * 3_600);
        assert_eq!(alerts["waiting"], 2);
        assert_eq!(alerts["imported"], 1, "an imported case is not waiting");
        let waiting = table(&html, "waiting");
        let waited = |received: &str| AS_OF - seconds(received).expect("time");
        assert_eq!(
            waiting.into_iter().collect::<Vec<_>>(),
            [
                ("2".to_string(), waited("2026-10-20T09:00:00Z")),
                ("5".to_string(), waited("2026-11-09T12:00:00Z")),
            ]
        );
        assert!(
            html.contains(">507 h 0 min<"),
            "case 2 waited 21 days 3 hours"
        );
        let waits = nonzero(table(&html, "waits"));
        assert_eq!(
            waits.into_iter().collect::<Vec<_>>(),
            [
                ("1to3d".to_string(), 1),
                ("1to6h".to_string(), 1),
                ("lt1h".to_string(), 1)
            ]
        );
    }

    #[test]
    fn the_report_loads_nothing_and_shows_no_place_or_free_text() {
        let (_, _, html) = report();
        let lower = html.to_lowercase();
        let banned = [
            "http:", "https:", "//", "<script", "<link", "<img", "<iframe", "<object", "<embed",
            "src=", "href=", "@import", "url(", "onload=", "onerror=",
        ];
        for banned in banned {
            assert!(!lower.contains(banned), "{banned} in the report");
        }
        assert!(html.contains(&format!("content=\"{CSP}\"")));
        for secret in ["Canario", "Caserío", "7731", "Rosa", "nota secreta"] {
            assert!(!html.contains(secret), "{secret} in the report");
        }
        // Each chart has a text alternative and a data table.
        for chart in [
            "chart-months",
            "chart-months-narrow",
            "chart-types",
            "chart-perpetrators",
            "map",
            "chart-waits",
            "chart-statuses",
        ] {
            let at = html
                .find(&format!("<svg id=\"{chart}\""))
                .unwrap_or_else(|| panic!("no {chart}"));
            let tag = &html[at..at + html[at..].find('>').expect("tag end")];
            assert!(
                tag.contains("role=\"img\"") && tag.contains("aria-label=\""),
                "{tag}"
            );
            assert!(html[at..].find("<title>") < html[at..].find("</svg>"));
        }
        assert_eq!(html.matches("<g class=\"tile\"").count(), 25);
        assert!(html.contains("Amenaza <span class=\"en\" lang=\"en\">Threat</span>"));
        assert!(html.contains("Evaluación de riesgo") || html.contains("evaluación de riesgo"));
    }

    #[test]
    fn values_from_the_database_are_escaped() {
        let (_dir, mut registry) = registry();
        insert(
            &mut registry,
            &Spec {
                received_day: "2026-11-01",
                region: Some("<b>x</b>"),
                types: &["<script>alert(1)</script>"],
                perpetrators: &["\"onload=x"],
                status: "recibido",
                urgent: true,
                recorded_at: "2026-11-01T00:00:00Z",
                ..Spec::default()
            },
        );
        let html = registry
            .report_at(TODAY.parse().expect("day"), AS_OF)
            .expect("report");
        assert!(!html.contains("<script"));
        assert!(!html.contains("<b>x"));
        assert!(!html.contains("\"onload"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("data-key=\"&lt;b&gt;x&lt;/b&gt;\""));
    }

    #[test]
    fn an_empty_registry_makes_a_report() {
        let (_dir, registry) = registry();
        let html = registry
            .report_html(TODAY.parse().expect("day"))
            .expect("report");
        assert_eq!(table(&html, "months").values().sum::<i64>(), 0);
        assert_eq!(html.matches("<g class=\"tile\"").count(), 25);
        assert!(html.contains("id=\"no-waiting\""));
    }

    #[test]
    fn every_form_region_but_abroad_has_one_tile() {
        let labels = Labels::new().expect("labels");
        let mut form: Vec<String> = labels.options("region");
        form.retain(|r| r != OUTSIDE_PERU);
        form.sort();
        let mut tiles: Vec<String> = REGION_TILES.iter().map(|t| t.0.to_string()).collect();
        tiles.sort();
        assert_eq!(tiles, form);
        let places: BTreeSet<(u8, u8)> = REGION_TILES.iter().map(|t| (t.2, t.3)).collect();
        assert_eq!(places.len(), 25, "no two tiles on one square");
        for (id, ..) in REGION_TILES {
            let key = format!("field.region.option.{id}");
            assert!(labels.catalog.exact("es", &key).is_some(), "{key}");
        }
    }

    #[test]
    fn times_medians_and_months() {
        assert_eq!(seconds("1970-01-02T01:00:05Z"), Some(86_400 + 3_605));
        assert_eq!(seconds(&format!("{TODAY}T12:00:00Z")), Some(AS_OF));
        assert_eq!(seconds("2026-11-10 12:00:00"), None);
        assert_eq!(seconds("2026-11-10T25:00:00Z"), None);
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1, 5, 9]), Some(5));
        assert_eq!(median(&[1, 5, 9, 11]), Some(7));
        assert_eq!(duration(59), "0 min");
        assert_eq!(duration(3_600 * 26 + 120), "26 h 2 min");
        let months = months_ending("2026-01-31".parse().expect("day"));
        assert_eq!(months.first().map(String::as_str), Some("2024-02"));
        assert_eq!(months.last().map(String::as_str), Some("2026-01"));
    }
}
