//! The case workflow (`docs/registry-v1.md`, "The case workflow"): statuses in the protocol's
//! order, risk levels, the history every change leaves, links between cases of one incident, and
//! the lists reviewers read.

use rusqlite::{params, OptionalExtension};

use super::{now, Registry, RegistryError};

/// A case's step, in the protocol's order. Ids are Spanish; English names are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// `recibido`: recorded, nobody has acted yet.
    Received,
    /// `evaluacion_riesgo`: the risk is being assessed.
    RiskAssessment,
    /// `medida_solicitada`: a protection measure was requested.
    MeasureRequested,
    /// `medida_otorgada`: the measure was granted.
    MeasureGranted,
    /// `medida_denegada`: the measure was denied.
    MeasureDenied,
    /// `cerrado`: nothing more to do.
    Closed,
}

impl Status {
    /// Every status, in order.
    pub const ALL: [Status; 6] = [
        Status::Received,
        Status::RiskAssessment,
        Status::MeasureRequested,
        Status::MeasureGranted,
        Status::MeasureDenied,
        Status::Closed,
    ];

    /// The id stored in the registry.
    pub fn id(self) -> &'static str {
        self.names().0
    }

    /// (id, Spanish, English).
    pub fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Status::Received => ("recibido", "recibido", "received"),
            Status::RiskAssessment => (
                "evaluacion_riesgo",
                "evaluación de riesgo",
                "risk assessment",
            ),
            Status::MeasureRequested => (
                "medida_solicitada",
                "medida de protección solicitada",
                "protection measure requested",
            ),
            Status::MeasureGranted => ("medida_otorgada", "medida otorgada", "measure granted"),
            Status::MeasureDenied => ("medida_denegada", "medida denegada", "measure denied"),
            Status::Closed => ("cerrado", "cerrado", "closed"),
        }
    }

    /// Reads an id, a Spanish or an English name (case, accents, spaces, `-` and `_` ignored).
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let wanted = fold(text);
        Status::ALL
            .into_iter()
            .find(|s| {
                let (id, es, en) = s.names();
                [id, es, en].iter().any(|n| fold(n) == wanted)
            })
            .ok_or_else(|| {
                RegistryError::Unknown(format!(
                    "unknown status {:?}: one of {}",
                    crate::terminal::clean_line(&text.chars().take(40).collect::<String>()),
                    Status::ALL.map(Status::id).join(", ")
                ))
            })
    }

    /// Whether a case may go from `self` to `to`: forward only; granted and denied are both
    /// after requested; closing is always allowed (but nothing follows it).
    fn may_become(self, to: Status) -> bool {
        match (self, to) {
            (Status::Closed, _) => false,
            (_, Status::Closed) => true,
            (Status::MeasureGranted | Status::MeasureDenied, _) => false,
            (from, to) => to > from,
        }
    }

    fn from_id(id: &str) -> Option<Self> {
        Status::ALL.into_iter().find(|s| s.id() == id)
    }
}

/// The assessed risk of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    /// `bajo`.
    Low,
    /// `medio`.
    Medium,
    /// `alto`.
    High,
    /// `extremo`.
    Extreme,
}

impl Risk {
    const ALL: [Risk; 4] = [Risk::Low, Risk::Medium, Risk::High, Risk::Extreme];

    /// (id, English).
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Risk::Low => ("bajo", "low"),
            Risk::Medium => ("medio", "medium"),
            Risk::High => ("alto", "high"),
            Risk::Extreme => ("extremo", "extreme"),
        }
    }

    /// The id stored in the registry.
    pub fn id(self) -> &'static str {
        self.names().0
    }

    /// Reads an id or an English name.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let wanted = fold(text);
        Risk::ALL
            .into_iter()
            .find(|r| fold(r.names().0) == wanted || fold(r.names().1) == wanted)
            .ok_or_else(|| {
                RegistryError::Unknown(format!(
                    "unknown risk level {:?}: one of bajo, medio, alto, extremo",
                    crate::terminal::clean_line(&text.chars().take(40).collect::<String>())
                ))
            })
    }
}

/// Lowercase, accents and separators dropped: how names are compared.
fn fold(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfd()
        .filter(|c| c.is_alphanumeric() && !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A change to a case (`registry case`).
#[derive(Debug, Clone, Default)]
pub struct CaseUpdate {
    /// The new status (forward only).
    pub status: Option<Status>,
    /// The assessed risk.
    pub risk: Option<Risk>,
    /// Who follows the case.
    pub assign: Option<String>,
    /// A note kept in the history.
    pub note: Option<String>,
}

/// Longest note or assignee kept, in characters.
const MAX_NOTE_CHARS: usize = 4000;

/// One case as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CaseRow {
    /// The case number.
    pub id: i64,
    /// The submission it was opened from (none for imported cases).
    pub submission: Option<String>,
    /// The day the gateway received it.
    pub received_day: String,
    /// The day of the incident, if the report gave one.
    pub incident_day: Option<String>,
    /// The region's option id.
    pub region: Option<String>,
    /// Incident types (option ids of `what_happened`).
    pub types: Vec<String>,
    /// Perpetrator types (option ids of `responsible`).
    pub perpetrators: Vec<String>,
    /// Someone was at imminent risk (an early alert).
    pub urgent: bool,
    /// The status id.
    pub status: String,
    /// The risk level id.
    pub risk: Option<String>,
    /// Who follows it.
    pub assigned: Option<String>,
    /// Its incident (the smallest case id of the cases linked to it).
    pub incident: i64,
}

/// What `registry list` filters on.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only cases with this status.
    pub status: Option<Status>,
    /// Only cases in this region (option id).
    pub region: Option<String>,
    /// Only cases with this incident type (option id).
    pub incident_type: Option<String>,
    /// Only cases received on or after this day.
    pub since: Option<crate::submission::UtcDay>,
    /// Only early alerts.
    pub urgent_only: bool,
}

/// One entry of a case's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HistoryEntry {
    /// When (UTC, to the second).
    pub at: String,
    /// The status after the change.
    pub status: String,
    /// The risk after the change.
    pub risk: Option<String>,
    /// The assignee after the change.
    pub assigned: Option<String>,
    /// The note given with the change.
    pub note: Option<String>,
}

impl Registry {
    /// Applies `update` to case `id`, keeping its history; the first move away from `recibido`
    /// is when the case was first acted on.
    pub fn update_case(&mut self, id: i64, update: &CaseUpdate) -> Result<(), RegistryError> {
        let clip = |s: &Option<String>| {
            s.as_ref()
                .map(|t| t.chars().take(MAX_NOTE_CHARS).collect::<String>())
        };
        self.write(|tx| {
            let current: Option<String> = tx
                .query_row("SELECT status FROM cases WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            let current = current
                .as_deref()
                .and_then(Status::from_id)
                .ok_or(RegistryError::UnknownCase(id))?;
            let status = match update.status {
                Some(to) if to != current && !current.may_become(to) => {
                    return Err(RegistryError::BadTransition {
                        case: id,
                        from: current.id(),
                        to: to.id(),
                    })
                }
                Some(to) => to,
                None => current,
            };
            let at = now();
            tx.execute(
                "UPDATE cases SET status = ?2,
                    risk = COALESCE(?3, risk),
                    assigned = COALESCE(?4, assigned),
                    first_acted_at = CASE WHEN first_acted_at IS NULL AND ?2 != 'recibido'
                                          THEN ?5 ELSE first_acted_at END
                 WHERE id = ?1",
                params![
                    id,
                    status.id(),
                    update.risk.map(Risk::id),
                    clip(&update.assign),
                    at
                ],
            )?;
            tx.execute(
                "INSERT INTO case_history (case_id, at, status, risk, assigned, note)
                 SELECT id, ?2, status, risk, assigned, ?3 FROM cases WHERE id = ?1",
                params![id, at, clip(&update.note)],
            )?;
            Ok(())
        })
    }

    /// Puts cases `a` and `b` (and all already linked to either) in one incident, named by the
    /// smallest case id among them.
    pub fn link(&mut self, a: i64, b: i64) -> Result<i64, RegistryError> {
        self.write(|tx| link_in(tx, a, b))
    }

    /// The cases `filter` selects, newest first.
    pub fn list(&self, filter: &CaseFilter) -> Result<Vec<CaseRow>, RegistryError> {
        let mut sql = String::from("SELECT id FROM cases c WHERE 1");
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(status) = filter.status {
            sql.push_str(" AND status = ?");
            args.push(Box::new(status.id()));
        }
        if let Some(region) = &filter.region {
            sql.push_str(" AND region = ?");
            args.push(Box::new(region.clone()));
        }
        if let Some(t) = &filter.incident_type {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM case_types t WHERE t.case_id = c.id AND t.type = ?)",
            );
            args.push(Box::new(t.clone()));
        }
        if let Some(since) = filter.since {
            sql.push_str(" AND received_day >= ?");
            args.push(Box::new(since.to_string()));
        }
        if filter.urgent_only {
            sql.push_str(" AND urgent = 1");
        }
        sql.push_str(" ORDER BY received_day DESC, id DESC");
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let ids: Vec<i64> = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter().map(|id| self.case(id)).collect()
    }

    /// One case.
    pub fn case(&self, id: i64) -> Result<CaseRow, RegistryError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT id, submission, received_day, incident_day, region, urgent, status, risk,
                        assigned, incident
                 FROM cases WHERE id = ?1",
                [id],
                |r| {
                    Ok(CaseRow {
                        id: r.get(0)?,
                        submission: r.get(1)?,
                        received_day: r.get(2)?,
                        incident_day: r.get(3)?,
                        region: r.get(4)?,
                        urgent: r.get(5)?,
                        status: r.get(6)?,
                        risk: r.get(7)?,
                        assigned: r.get(8)?,
                        incident: r.get(9)?,
                        types: Vec::new(),
                        perpetrators: Vec::new(),
                    })
                },
            )
            .optional()?
            .ok_or(RegistryError::UnknownCase(id))?;
        let strings = |sql: &str| -> Result<Vec<String>, RegistryError> {
            let mut stmt = conn.prepare(sql)?;
            let out = stmt
                .query_map([id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(out)
        };
        Ok(CaseRow {
            types: strings("SELECT type FROM case_types WHERE case_id = ?1 ORDER BY type")?,
            perpetrators: strings(
                "SELECT perpetrator FROM case_perpetrators WHERE case_id = ?1 ORDER BY perpetrator",
            )?,
            ..row
        })
    }

    /// A case's history, oldest first.
    pub fn history(&self, id: i64) -> Result<Vec<HistoryEntry>, RegistryError> {
        self.case(id)?;
        let mut stmt = self.conn().prepare(
            "SELECT at, status, risk, assigned, note FROM case_history
             WHERE case_id = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(HistoryEntry {
                    at: r.get(0)?,
                    status: r.get(1)?,
                    risk: r.get(2)?,
                    assigned: r.get(3)?,
                    note: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

/// [`Registry::link`] inside a transaction (recording links follow-ups the same way).
pub(super) fn link_in(
    tx: &rusqlite::Transaction<'_>,
    a: i64,
    b: i64,
) -> Result<i64, RegistryError> {
    let incident_of = |id: i64| -> Result<i64, RegistryError> {
        tx.query_row("SELECT incident FROM cases WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or(RegistryError::UnknownCase(id))
    };
    let (ia, ib) = (incident_of(a)?, incident_of(b)?);
    let joined = ia.min(ib);
    tx.execute(
        "UPDATE cases SET incident = ?1 WHERE incident IN (?2, ?3)",
        params![joined, ia, ib],
    )?;
    Ok(joined)
}

/// The cases as an aligned table for the terminal (`lang` "es" or "en" for the header and the
/// status names). Every value is cleaned of terminal controls.
pub fn table(rows: &[CaseRow], lang: &str) -> String {
    use std::fmt::Write as _;
    let es = lang == "es";
    let header = if es {
        [
            "caso",
            "recibido",
            "urgente",
            "estado",
            "región",
            "tipos",
            "incidente",
        ]
    } else {
        [
            "case", "received", "urgent", "status", "region", "types", "incident",
        ]
    };
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                r.received_day.clone(),
                if r.urgent { "!".into() } else { String::new() },
                status_name(&r.status, es),
                r.region.clone().unwrap_or_default(),
                r.types.join(","),
                if r.incident == r.id {
                    String::new()
                } else {
                    format!("= {}", r.incident)
                },
            ]
            .map(|c| crate::terminal::clean_line(&c))
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, values: &[&str]| {
        let mut text = String::new();
        for (v, w) in values.iter().zip(widths) {
            let _ = write!(text, "{v:<w$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut out, &header);
    for row in &cells {
        let values: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut out, &values);
    }
    let _ = write!(out, "{} {}", rows.len(), if es { "casos" } else { "cases" });
    out
}

/// One case and its history for the terminal.
pub fn describe(row: &CaseRow, history: &[HistoryEntry], lang: &str) -> String {
    use std::fmt::Write as _;
    let es = lang == "es";
    let clean = |s: &str| crate::terminal::clean_line(s);
    let label =
        |es_label: &'static str, en_label: &'static str| if es { es_label } else { en_label };
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", label("Caso", "Case"), row.id);
    let mut field = |name: &str, value: String| {
        if !value.is_empty() {
            let _ = writeln!(out, "  {name}: {}", clean(&value));
        }
    };
    field(
        label("reporte", "report"),
        row.submission.clone().unwrap_or_default(),
    );
    field(label("recibido", "received"), row.received_day.clone());
    field(
        label("día del hecho", "incident day"),
        row.incident_day.clone().unwrap_or_default(),
    );
    field(
        label("región", "region"),
        row.region.clone().unwrap_or_default(),
    );
    field(label("tipos", "types"), row.types.join(", "));
    field(
        label("responsables", "perpetrators"),
        row.perpetrators.join(", "),
    );
    field(
        label("alerta temprana", "early alert"),
        if row.urgent {
            label("sí", "yes").into()
        } else {
            String::new()
        },
    );
    field(label("estado", "status"), status_name(&row.status, es));
    field(
        label("riesgo", "risk"),
        row.risk.clone().unwrap_or_default(),
    );
    field(
        label("asignado a", "assigned to"),
        row.assigned.clone().unwrap_or_default(),
    );
    if row.incident != row.id {
        field(
            label("mismo incidente que", "same incident as"),
            row.incident.to_string(),
        );
    }
    let _ = writeln!(out, "{}:", label("Historia", "History"));
    for h in history {
        let _ = write!(out, "  {}  {}", clean(&h.at), status_name(&h.status, es));
        if let Some(note) = &h.note {
            let _ = write!(out, "  — {}", clean(note));
        }
        out.push('\n');
    }
    out
}

/// A status id as a person reads it, in Spanish or English (an unknown id as it is).
fn status_name(id: &str, es: bool) -> String {
    match Status::from_id(id) {
        Some(s) => {
            let (_, spanish, english) = s.names();
            if es { spanish } else { english }.to_string()
        }
        None => id.to_string(),
    }
}
