//! Aggregates safe to publish (`docs/registry-v1.md`, "Statistics and the published CSV"): a
//! few two-way tables of incident counts with their margins, in long CSV format, with every
//! count below `k` suppressed and enough other counts suppressed that no suppressed one can be
//! worked out again from what is published.
//!
//! How the suppression is made sound. Each table, with its totals row and column, is a grid
//! whose every line adds up (a value row to its total, the totals row to the grand total, and
//! likewise for columns). Take the suppressed cells as edges of a bipartite graph between the
//! grid's rows and columns: the published sums then determine a suppressed cell exactly when
//! that edge lies on no cycle (it is a *bridge*). So after **primary** suppression (every count
//! below `k`, zeros and totals included), **complementary** suppression closes every bridge with
//! the cheapest 4-cycle, until there are none. This is done twice: once with all suppressed
//! cells (linear arithmetic recovers nothing), once with only the non-zero ones (so that a
//! reader who knows counts are never negative cannot pin a non-zero count either: a line whose
//! hidden cells add up to 0 reveals they are all 0, and cycles through such zeros protect
//! nothing). Tables that share totals (`type_by_region` and `type_by_year` both give the
//! incidents of each type) are then checked together by exact elimination over all the
//! published equations; a cell still determined gets a cycle of its own, away from the shared
//! totals, or, if none can be made, the linked tables are suppressed whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::stats::{Dimension, NONE};
use super::{Registry, RegistryError};
use crate::form::FormDefinition;

/// The label of a table's totals row and totals column.
pub const TOTAL: &str = "(total)";

/// The label of a value the form does not list (an imported case may carry anything): free
/// text is never published.
pub const UNLISTED: &str = "(unlisted)";

/// The smallest threshold accepted.
pub const MIN_K: u64 = 2;

/// The published CSV's header.
pub const HEADER: &str = "table,row,column,incidents,suppressed";

/// The tables published, in order: name, the dimension of its rows, of its columns.
pub const TABLES: [(&str, Dimension, Dimension); 4] = [
    ("type_by_region", Dimension::Type, Dimension::Region),
    ("type_by_year", Dimension::Type, Dimension::Year),
    (
        "perpetrator_by_region",
        Dimension::Perpetrator,
        Dimension::Region,
    ),
    ("region_by_year", Dimension::Region, Dimension::Year),
];

/// Rounds of complementary suppression before giving up and suppressing everything.
const MAX_ROUNDS: usize = 10_000;

impl Registry {
    /// The published CSV ([`HEADER`], then one line per cell of each of [`TABLES`]): incident
    /// counts only, no cell below `k` shown, no shown cell letting one work out a hidden one.
    /// `k` below [`MIN_K`] is refused.
    pub fn publish(&self, k: u64) -> Result<String, RegistryError> {
        self.publish_with(k, true)
    }

    /// [`Registry::publish`], complementary suppression optional (the tests show what it stops).
    fn publish_with(&self, k: u64, complementary: bool) -> Result<String, RegistryError> {
        if k < MIN_K {
            return Err(RegistryError::Unknown(format!(
                "k must be at least {MIN_K} (a count of 1 is a person): it was {k}"
            )));
        }
        let form = FormDefinition::embedded().map_err(|e| RegistryError::Unknown(e.to_string()))?;
        let label = |d: Dimension| published_label(d, &form);
        let mut counts = Vec::new();
        for (name, rows, columns) in TABLES {
            counts.push((
                name,
                rows,
                columns,
                self.counts(&[rows, columns], None, Some(&label))?,
            ));
        }
        let mut cells = Cells::build(&counts)?;
        cells.protect(k, complementary)?;
        Ok(cells.csv())
    }
}

/// The form field whose options a dimension's values are.
fn form_field(d: Dimension) -> Option<&'static str> {
    match d {
        Dimension::Type => Some("what_happened"),
        Dimension::Region => Some("region"),
        Dimension::Perpetrator => Some("responsible"),
        Dimension::Affected => Some("affected"),
        Dimension::DefenderField => Some("defender_field"),
        _ => None,
    }
}

/// The SQL of a dimension's published value: an option of the form, `(none)` or `(unlisted)`;
/// a year of four digits or `(none)`; a month likewise (never published by [`TABLES`]).
fn published_label(d: Dimension, form: &FormDefinition) -> (String, Vec<String>) {
    let raw = d.sql();
    let vocabulary: Vec<String> = match (d, form_field(d)) {
        (Dimension::Year, _) => {
            return (
                format!("CASE WHEN {raw} GLOB '[0-9][0-9][0-9][0-9]' THEN {raw} ELSE '{NONE}' END"),
                Vec::new(),
            )
        }
        (Dimension::Month, _) => {
            return (
                format!(
                    "CASE WHEN {raw} GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]' THEN {raw} \
                     ELSE '{NONE}' END"
                ),
                Vec::new(),
            )
        }
        (Dimension::Urgent, _) => return (raw.to_string(), Vec::new()),
        (Dimension::Status, _) => super::Status::ALL
            .iter()
            .map(|s| s.id().to_string())
            .collect(),
        (_, Some(field)) => form
            .field(field)
            .map(|f| f.options.clone())
            .unwrap_or_default(),
        (_, None) => Vec::new(),
    };
    let listed = if vocabulary.is_empty() {
        String::new()
    } else {
        format!(
            "WHEN {raw} IN ({}) THEN {raw} ",
            vec!["?"; vocabulary.len()].join(", ")
        )
    };
    (
        format!("CASE {listed}WHEN {raw} = '{NONE}' THEN '{NONE}' ELSE '{UNLISTED}' END"),
        vocabulary,
    )
}

/// Which suppressed cells count as unknown to a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// All of them: what linear arithmetic on the published sums can recover.
    All,
    /// Only the non-zero ones: zeros may be pinned by a reader who knows counts are not
    /// negative, so a non-zero count must be hidden by other non-zero counts.
    Positive,
}

const MODES: [Mode; 2] = [Mode::Positive, Mode::All];

/// What a cell holds, so that cells of several tables that are the same number are one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A cell no other table has.
    Own(usize, usize, usize),
    /// The incidents with this value of a dimension (a table's total row or column, when the
    /// other dimension has exactly one value per incident).
    Margin(Dimension, String),
    /// Every incident.
    Incidents,
}

/// One table: its row and column labels (values, then [`TOTAL`]) and the variable of each cell.
#[derive(Debug)]
struct Grid {
    name: &'static str,
    rows: Vec<String>,
    columns: Vec<String>,
    var: Vec<Vec<usize>>,
}

impl Grid {
    fn total_row(&self) -> usize {
        self.rows.len() - 1
    }

    fn total_column(&self) -> usize {
        self.columns.len() - 1
    }

    /// Its equations: each line's values less its total.
    fn equations(&self) -> Vec<Vec<(usize, i64)>> {
        let (tr, tc) = (self.total_row(), self.total_column());
        if tr == 0 || tc == 0 {
            // No incidents: nothing to add up.
            return Vec::new();
        }
        let mut out = Vec::new();
        for r in 0..=tr {
            let mut eq: Vec<(usize, i64)> = (0..tc).map(|c| (self.var[r][c], 1)).collect();
            eq.push((self.var[r][tc], -1));
            out.push(eq);
        }
        for c in 0..=tc {
            let mut eq: Vec<(usize, i64)> = (0..tr).map(|r| (self.var[r][c], 1)).collect();
            eq.push((self.var[tr][c], -1));
            out.push(eq);
        }
        out
    }
}

/// The tables to publish, their cells (one variable per distinct number) and which are hidden.
#[derive(Debug)]
struct Cells {
    grids: Vec<Grid>,
    value: Vec<u64>,
    suppressed: Vec<bool>,
    /// Where each variable appears: (grid, row, column).
    places: Vec<Vec<(usize, usize, usize)>>,
}

type Counts = Vec<(Vec<String>, u64)>;

impl Cells {
    /// The grids of `tables` (name, row dimension, column dimension, counts by both).
    fn build(
        tables: &[(&'static str, Dimension, Dimension, Counts)],
    ) -> Result<Self, RegistryError> {
        let mut cells = Cells {
            grids: Vec::new(),
            value: Vec::new(),
            suppressed: Vec::new(),
            places: Vec::new(),
        };
        let mut ids: HashMap<Key, usize> = HashMap::new();
        for (g, (name, row_dim, column_dim, counts)) in tables.iter().enumerate() {
            let mut inner: BTreeMap<(String, String), u64> = BTreeMap::new();
            let mut row_values = BTreeSet::new();
            let mut column_values = BTreeSet::new();
            for (values, n) in counts {
                let (Some(r), Some(c)) = (values.first(), values.get(1)) else {
                    return Err(RegistryError::Unknown(
                        "publish: a count without its values".into(),
                    ));
                };
                row_values.insert(r.clone());
                column_values.insert(c.clone());
                *inner.entry((r.clone(), c.clone())).or_default() += n;
            }
            let rows: Vec<String> = row_values.into_iter().chain([TOTAL.to_string()]).collect();
            let columns: Vec<String> = column_values
                .into_iter()
                .chain([TOTAL.to_string()])
                .collect();
            let (tr, tc) = (rows.len() - 1, columns.len() - 1);
            let mut value = vec![vec![0u64; columns.len()]; rows.len()];
            for r in 0..tr {
                for c in 0..tc {
                    let n = inner
                        .get(&(rows[r].clone(), columns[c].clone()))
                        .copied()
                        .unwrap_or(0);
                    value[r][c] = n;
                    value[r][tc] += n;
                    value[tr][c] += n;
                    value[tr][tc] += n;
                }
            }
            let whole = |d: Dimension| {
                if d.is_multi_valued() {
                    Key::Margin(d, TOTAL.to_string())
                } else {
                    Key::Incidents
                }
            };
            let mut var = vec![vec![0usize; columns.len()]; rows.len()];
            for r in 0..=tr {
                for c in 0..=tc {
                    let key = match (r == tr, c == tc) {
                        (false, true) if !column_dim.is_multi_valued() => {
                            Key::Margin(*row_dim, rows[r].clone())
                        }
                        (true, false) if !row_dim.is_multi_valued() => {
                            Key::Margin(*column_dim, columns[c].clone())
                        }
                        (true, true) if !column_dim.is_multi_valued() => whole(*row_dim),
                        (true, true) if !row_dim.is_multi_valued() => whole(*column_dim),
                        _ => Key::Own(g, r, c),
                    };
                    let v = match ids.get(&key) {
                        Some(&v) => {
                            if cells.value[v] != value[r][c] {
                                return Err(RegistryError::Unknown(format!(
                                    "publish: {name} does not add up with the other tables; \
                                     nothing was published"
                                )));
                            }
                            v
                        }
                        None => {
                            cells.value.push(value[r][c]);
                            cells.suppressed.push(false);
                            cells.places.push(Vec::new());
                            ids.insert(key, cells.value.len() - 1);
                            cells.value.len() - 1
                        }
                    };
                    cells.places[v].push((g, r, c));
                    var[r][c] = v;
                }
            }
            cells.grids.push(Grid {
                name,
                rows,
                columns,
                var,
            });
        }
        Ok(cells)
    }

    fn unknown(&self, v: usize, mode: Mode) -> bool {
        self.suppressed[v] && (mode == Mode::All || self.value[v] > 0)
    }

    /// Whether `v` may take part in a cycle hiding cells in `mode`.
    fn usable(&self, v: usize, mode: Mode) -> bool {
        mode == Mode::All || self.value[v] > 0
    }

    fn local(&self, v: usize) -> bool {
        self.places[v].len() == 1
    }

    /// Suppresses `v`; whether it was shown.
    fn hide(&mut self, v: usize) -> bool {
        !std::mem::replace(&mut self.suppressed[v], true)
    }

    /// Primary suppression, then (if asked) complementary suppression until every hidden cell
    /// is safe in both modes.
    fn protect(&mut self, k: u64, complementary: bool) -> Result<(), RegistryError> {
        for (hidden, value) in self.suppressed.iter_mut().zip(&self.value) {
            *hidden = *value < k;
        }
        if complementary {
            self.complete()?;
        }
        Ok(())
    }

    /// Complementary suppression: hides more cells until every hidden cell is safe in both
    /// modes, in each table (no bridge) and in all tables together (exact elimination).
    fn complete(&mut self) -> Result<(), RegistryError> {
        for _ in 0..MAX_ROUNDS {
            if self.close_bridges() {
                continue;
            }
            let mut found = false;
            let mut changed = false;
            for mode in MODES {
                let Some(determined) = self.determined(mode) else {
                    found = true;
                    break;
                };
                // One at a time: making one cell safe often makes others safe too.
                if let Some(&v) = determined.first() {
                    found = true;
                    changed |= self.escalate(v, mode);
                    break;
                }
            }
            if !found {
                return Ok(());
            }
            if !changed {
                break;
            }
        }
        // Could not settle (never seen): everything hidden, which hides every cell.
        self.suppressed.fill(true);
        for mode in MODES {
            if self.determined(mode).is_none_or(|d| !d.is_empty()) {
                return Err(RegistryError::Unknown(
                    "publish: the tables could not be protected; nothing was published".into(),
                ));
            }
        }
        Ok(())
    }

    /// Closes every bridge of every grid, in both modes; whether anything was hidden.
    fn close_bridges(&mut self) -> bool {
        let mut changed = false;
        for mode in MODES {
            for g in 0..self.grids.len() {
                if self.grids[g].total_row() == 0 || self.grids[g].total_column() == 0 {
                    continue;
                }
                for (r, c) in self.bridges(g, mode) {
                    if !self.is_bridge(g, mode, r, c) {
                        continue;
                    }
                    changed |= match self.close_cycle(g, r, c, mode, false) {
                        Some(hid) => hid,
                        None => self.hide_linked(g),
                    };
                }
            }
        }
        changed
    }

    /// The hidden cells of grid `g` (in `mode`) on no cycle of hidden cells.
    fn bridges(&self, g: usize, mode: Mode) -> Vec<(usize, usize)> {
        let grid = &self.grids[g];
        let mut out = Vec::new();
        for r in 0..grid.rows.len() {
            for c in 0..grid.columns.len() {
                if self.unknown(grid.var[r][c], mode) && self.is_bridge(g, mode, r, c) {
                    out.push((r, c));
                }
            }
        }
        out
    }

    /// Whether hidden cell (`r`, `c`) of grid `g` is on no cycle: without it, its row and its
    /// column are not connected through hidden cells.
    fn is_bridge(&self, g: usize, mode: Mode, r: usize, c: usize) -> bool {
        let grid = &self.grids[g];
        let (nr, nc) = (grid.rows.len(), grid.columns.len());
        // Nodes: rows 0..nr, columns nr..nr + nc.
        let mut seen = vec![false; nr + nc];
        let mut stack = vec![r];
        seen[r] = true;
        while let Some(node) = stack.pop() {
            if node < nr {
                for (c2, &v) in grid.var[node].iter().enumerate() {
                    if (node, c2) != (r, c) && self.unknown(v, mode) && !seen[nr + c2] {
                        seen[nr + c2] = true;
                        stack.push(nr + c2);
                    }
                }
            } else {
                let c2 = node - nr;
                for (r2, row) in grid.var.iter().enumerate() {
                    if (r2, c2) != (r, c) && self.unknown(row[c2], mode) && !seen[r2] {
                        seen[r2] = true;
                        stack.push(r2);
                    }
                }
            }
        }
        !seen[nr + c]
    }

    /// Hides the cheapest other three cells of a 4-cycle through (`r`, `c`) of grid `g` (the
    /// smallest counts first; with `local_only`, cells of this table alone). `None` if no such
    /// cycle exists, else whether anything was hidden.
    fn close_cycle(
        &mut self,
        g: usize,
        r: usize,
        c: usize,
        mode: Mode,
        local_only: bool,
    ) -> Option<bool> {
        let grid = &self.grids[g];
        let mut best: Option<(u64, usize, [usize; 3])> = None;
        for r2 in (0..grid.rows.len()).filter(|&r2| r2 != r) {
            for c2 in (0..grid.columns.len()).filter(|&c2| c2 != c) {
                let others = [grid.var[r][c2], grid.var[r2][c2], grid.var[r2][c]];
                if others
                    .iter()
                    .any(|&v| !self.usable(v, mode) || (local_only && !self.local(v)))
                {
                    continue;
                }
                let new: Vec<usize> = others
                    .into_iter()
                    .filter(|&v| !self.suppressed[v])
                    .collect();
                let cost = (new.iter().map(|&v| self.value[v]).sum::<u64>(), new.len());
                if best.is_none_or(|(bc, bn, _)| cost < (bc, bn)) {
                    best = Some((cost.0, cost.1, others));
                }
            }
        }
        let (_, _, others) = best?;
        let mut hid = false;
        for v in others {
            hid |= self.hide(v);
        }
        Some(hid)
    }

    /// Makes determined variable `v` safe in `mode`; whether anything was hidden.
    fn escalate(&mut self, v: usize, mode: Mode) -> bool {
        let Some(&(g, r, c)) = self.places[v].first() else {
            return false;
        };
        let done = if self.local(v) {
            self.close_cycle(g, r, c, mode, true)
        } else {
            self.close_shared_cycle(v, mode)
        };
        match done {
            Some(hid) => hid,
            None => self.hide_linked(g),
        }
    }

    /// A total shared by several tables (in each, a cell of the totals column of the same row):
    /// hides, in every one of them, a 4-cycle through it and the same other total of that column,
    /// closed by cells of that table alone. `None` if there is none.
    fn close_shared_cycle(&mut self, v: usize, mode: Mode) -> Option<bool> {
        let places = self.places[v].clone();
        if places
            .iter()
            .any(|&(g, _, c)| c != self.grids[g].total_column())
        {
            return None;
        }
        let (g0, r0, _) = places[0];
        let label = &self.grids[g0].rows[r0];
        let mut best: Option<(u64, Vec<usize>)> = None;
        'partner: for partner in self.grids[g0].rows.iter().filter(|l| *l != label) {
            let mut cost = 0u64;
            let mut chosen: Vec<usize> = Vec::new();
            let mut partner_var = None;
            for &(g, r, _) in &places {
                let grid = &self.grids[g];
                let tc = grid.total_column();
                let Some(rp) = grid.rows.iter().position(|l| l == partner) else {
                    continue 'partner;
                };
                let pv = grid.var[rp][tc];
                if partner_var.is_some_and(|p| p != pv) || !self.usable(pv, mode) {
                    continue 'partner;
                }
                partner_var = Some(pv);
                let mut column: Option<(u64, [usize; 2])> = None;
                for c in 0..tc {
                    let pair = [grid.var[r][c], grid.var[rp][c]];
                    if pair
                        .iter()
                        .any(|&x| !self.local(x) || !self.usable(x, mode))
                    {
                        continue;
                    }
                    let price = pair
                        .iter()
                        .filter(|&&x| !self.suppressed[x])
                        .map(|&x| self.value[x])
                        .sum::<u64>();
                    if column.is_none_or(|(p, _)| price < p) {
                        column = Some((price, pair));
                    }
                }
                let (price, pair) = column?;
                cost += price;
                chosen.extend(pair);
            }
            let Some(pv) = partner_var else { continue };
            if !self.suppressed[pv] {
                cost += self.value[pv];
            }
            chosen.push(pv);
            if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                best = Some((cost, chosen));
            }
        }
        let (_, chosen) = best?;
        let mut hid = false;
        for x in chosen {
            hid |= self.hide(x);
        }
        Some(hid)
    }

    /// Hides every cell of grid `g` and of every table sharing a cell with it, directly or
    /// through others; whether anything was shown before.
    fn hide_linked(&mut self, g: usize) -> bool {
        let mut group = BTreeSet::from([g]);
        let mut todo = vec![g];
        while let Some(h) = todo.pop() {
            for row in &self.grids[h].var {
                for &v in row {
                    for &(other, _, _) in &self.places[v] {
                        if group.insert(other) {
                            todo.push(other);
                        }
                    }
                }
            }
        }
        let vars: Vec<usize> = group
            .iter()
            .flat_map(|&h| self.grids[h].var.iter().flatten().copied())
            .collect();
        let mut hid = false;
        for v in vars {
            hid |= self.hide(v);
        }
        hid
    }

    /// The hidden variables (in `mode`) the published cells and totals of all tables together
    /// determine, by exact elimination; `None` if the arithmetic overflowed.
    fn determined(&self, mode: Mode) -> Option<Vec<usize>> {
        let unknowns: Vec<usize> = (0..self.value.len())
            .filter(|&v| self.unknown(v, mode))
            .collect();
        let column: HashMap<usize, usize> =
            unknowns.iter().enumerate().map(|(i, &v)| (v, i)).collect();
        let mut matrix: Vec<Vec<i128>> = Vec::new();
        for grid in &self.grids {
            for eq in grid.equations() {
                let mut row = vec![0i128; unknowns.len()];
                let mut any = false;
                for (v, a) in eq {
                    if let Some(&i) = column.get(&v) {
                        row[i] += i128::from(a);
                        any = true;
                    }
                }
                if any {
                    matrix.push(row);
                }
            }
        }
        let determined = determined_columns(matrix, unknowns.len())?;
        Some(
            unknowns
                .into_iter()
                .zip(determined)
                .filter_map(|(v, d)| d.then_some(v))
                .collect(),
        )
    }

    /// The CSV: [`HEADER`], then each table's cells row by row, totals last.
    fn csv(&self) -> String {
        use crate::review::index::csv_field;
        let mut out = String::from(HEADER);
        out.push_str("\r\n");
        for grid in &self.grids {
            for (r, row) in grid.rows.iter().enumerate() {
                for (c, column) in grid.columns.iter().enumerate() {
                    let v = grid.var[r][c];
                    let (count, hidden) = if self.suppressed[v] {
                        (String::new(), "yes")
                    } else {
                        (self.value[v].to_string(), "no")
                    };
                    let line = [
                        csv_field(grid.name),
                        csv_field(row),
                        csv_field(column),
                        count,
                        hidden.to_string(),
                    ];
                    out.push_str(&line.join(","));
                    out.push_str("\r\n");
                }
            }
        }
        out
    }
}

/// Which columns of `matrix` (`width` unknowns, one equation a row, all equal to known values)
/// the equations determine: exact, fraction-free Gauss–Jordan elimination. `None` on overflow.
fn determined_columns(mut matrix: Vec<Vec<i128>>, width: usize) -> Option<Vec<bool>> {
    let mut pivots: Vec<(usize, usize)> = Vec::new();
    let mut next = 0;
    for col in 0..width {
        if next == matrix.len() {
            break;
        }
        let Some(p) = (next..matrix.len()).find(|&i| matrix[i][col] != 0) else {
            continue;
        };
        matrix.swap(next, p);
        let pivot = matrix[next].clone();
        let a = pivot[col];
        for (i, row) in matrix.iter_mut().enumerate() {
            let b = row[col];
            if i == next || b == 0 {
                continue;
            }
            let mut divisor = 0i128;
            for (x, &y) in row.iter_mut().zip(&pivot) {
                *x = a.checked_mul(*x)?.checked_sub(b.checked_mul(y)?)?;
                divisor = gcd(divisor, *x);
            }
            if divisor > 1 {
                for x in row.iter_mut() {
                    *x /= divisor;
                }
            }
        }
        pivots.push((next, col));
        next += 1;
    }
    let mut determined = vec![false; width];
    for (r, c) in pivots {
        determined[c] = matrix[r].iter().enumerate().all(|(j, &x)| j == c || x == 0);
    }
    Some(determined)
}

fn gcd(a: i128, b: i128) -> i128 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    i128::try_from(a).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::stats::tests::{insert, Case};
    use std::collections::HashMap;

    const REGIONS: [&str; 8] = [
        "lima", "puno", "cusco", "loreto", "junin", "piura", "tacna", "ucayali",
    ];
    const TYPES: [&str; 6] = [
        "threat",
        "legal_harassment",
        "surveillance",
        "physical_attack",
        "stigmatisation",
        "attempt_on_life",
    ];
    const PERPETRATORS: [&str; 4] = [
        "company",
        "public_officials",
        "unknown",
        "state_security_forces",
    ];
    const DAYS: [&str; 6] = [
        "2024-03-02",
        "2024-11-20",
        "2025-01-15",
        "2025-08-09",
        "2026-02-27",
        "2026-06-30",
    ];

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::in_folder(dir.path()).expect("new registry");
        (dir, registry)
    }

    /// `n` cases, skewed (a few regions and types hold most), from `seed`.
    fn random_cases(seed: u64, n: usize) -> Vec<Case> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = |m: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) as usize) % m
        };
        (0..n)
            .map(|_| {
                let mut types = BTreeSet::new();
                for _ in 0..next(3) {
                    types.insert(TYPES[next(TYPES.len()).min(next(TYPES.len()))]);
                }
                let mut perpetrators = BTreeSet::new();
                for _ in 0..next(3) {
                    perpetrators.insert(PERPETRATORS[next(PERPETRATORS.len())]);
                }
                Case {
                    received: DAYS[next(DAYS.len())],
                    incident_day: (next(3) == 0).then(|| DAYS[next(DAYS.len())]),
                    region: (next(10) != 0)
                        .then(|| REGIONS[next(REGIONS.len()).min(next(REGIONS.len()))]),
                    types: types.into_iter().collect(),
                    perpetrators: perpetrators.into_iter().collect(),
                    ..Case::default()
                }
            })
            .collect()
    }

    /// A case's values of a dimension, as the published tables label them.
    fn values_of(case: &Case, d: Dimension) -> Vec<String> {
        let listed = |v: &[&str]| -> Vec<String> {
            if v.is_empty() {
                vec![NONE.to_string()]
            } else {
                v.iter().map(|s| s.to_string()).collect()
            }
        };
        match d {
            Dimension::Type => listed(&case.types),
            Dimension::Perpetrator => listed(&case.perpetrators),
            Dimension::Region => vec![case.region.unwrap_or(NONE).to_string()],
            Dimension::Year => vec![case.incident_day.unwrap_or(case.received)[..4].to_string()],
            _ => unreachable!("not published"),
        }
    }

    type Cell = (String, String, String);

    /// Every cell of every table (totals included), computed here from the cases.
    fn truth(cases: &[Case]) -> BTreeMap<Cell, u64> {
        let mut out = BTreeMap::new();
        for (name, rd, cd) in TABLES {
            let mut inner: BTreeMap<(String, String), u64> = BTreeMap::new();
            for case in cases {
                for r in values_of(case, rd) {
                    for c in values_of(case, cd) {
                        *inner.entry((r.clone(), c)).or_default() += 1;
                    }
                }
            }
            let rows: BTreeSet<String> = inner.keys().map(|(r, _)| r.clone()).collect();
            let columns: BTreeSet<String> = inner.keys().map(|(_, c)| c.clone()).collect();
            let cell = |r: &str, c: &str| (name.to_string(), r.to_string(), c.to_string());
            for r in rows.iter().map(String::as_str).chain([TOTAL]) {
                for c in columns.iter().map(String::as_str).chain([TOTAL]) {
                    let n = inner
                        .iter()
                        .filter(|((ir, ic), _)| (r == TOTAL || ir == r) && (c == TOTAL || ic == c))
                        .map(|(_, n)| n)
                        .sum();
                    out.insert(cell(r, c), n);
                }
            }
        }
        out
    }

    /// The published CSV read back: each cell's count, `None` when suppressed.
    fn read(csv: &str) -> BTreeMap<Cell, Option<u64>> {
        let mut lines = csv.split("\r\n");
        assert_eq!(lines.next(), Some(HEADER));
        let mut out = BTreeMap::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 5, "{line}");
            let count = match (f[3], f[4]) {
                ("", "yes") => None,
                (n, "no") => Some(n.parse().expect("a count")),
                _ => panic!("bad line {line}"),
            };
            out.insert(
                (f[0].to_string(), f[1].to_string(), f[2].to_string()),
                count,
            );
        }
        out
    }

    /// What a reader knows to be one number: the totals of each type are the same in the two
    /// tables by type (each incident has one region and one year).
    fn same(cell: &Cell) -> Cell {
        let (t, r, c) = cell;
        if c == TOTAL && (t == "type_by_region" || t == "type_by_year") {
            ("(type totals)".to_string(), r.clone(), String::new())
        } else {
            cell.clone()
        }
    }

    /// Every line of every table: its cells with coefficient 1, its total with -1 (sum 0).
    fn equations(published: &BTreeMap<Cell, Option<u64>>) -> Vec<Vec<(Cell, i64)>> {
        let mut out = Vec::new();
        for (name, _, _) in TABLES {
            let cells: Vec<&Cell> = published.keys().filter(|(t, _, _)| t == name).collect();
            let rows: BTreeSet<&String> = cells.iter().map(|(_, r, _)| r).collect();
            let columns: BTreeSet<&String> = cells.iter().map(|(_, _, c)| c).collect();
            let cell = |r: &str, c: &str| same(&(name.to_string(), r.to_string(), c.to_string()));
            for r in &rows {
                let mut eq: Vec<(Cell, i64)> = columns
                    .iter()
                    .filter(|c| **c != TOTAL)
                    .map(|c| (cell(r, c), 1))
                    .collect();
                eq.push((cell(r, TOTAL), -1));
                out.push(eq);
            }
            for c in &columns {
                let mut eq: Vec<(Cell, i64)> = rows
                    .iter()
                    .filter(|r| **r != TOTAL)
                    .map(|r| (cell(r, c), 1))
                    .collect();
                eq.push((cell(TOTAL, c), -1));
                out.push(eq);
            }
        }
        out
    }

    /// The attack: what a reader works out from the published CSV. First line by line, again
    /// and again: a line with one hidden cell gives it; a line whose hidden cells (all of one
    /// sign) add up to 0 gives them all as 0 (counts are not negative). Then, with all that,
    /// Gauss–Jordan elimination (in floating point, independent of the code under test) over
    /// all the lines of all the tables at once. Returns the cells worked out and their values
    /// (the last step's only when the lines give them one value).
    fn attack(published: &BTreeMap<Cell, Option<u64>>, use_signs: bool) -> HashMap<Cell, f64> {
        let mut known: HashMap<Cell, f64> = published
            .iter()
            .filter_map(|(c, n)| n.map(|n| (same(c), n as f64)))
            .collect();
        let equations = equations(published);
        let mut found: HashMap<Cell, f64> = HashMap::new();
        loop {
            let mut progress = false;
            for eq in &equations {
                let mut rest = 0.0;
                let mut hidden: Vec<(&Cell, i64)> = Vec::new();
                for (cell, a) in eq {
                    match known.get(cell) {
                        Some(v) => rest -= *a as f64 * v,
                        None if !hidden.iter().any(|(c, _)| *c == cell) => hidden.push((cell, *a)),
                        None => {}
                    }
                }
                let solved: Vec<(Cell, f64)> = match hidden.as_slice() {
                    [(cell, a)] => vec![((*cell).clone(), rest / *a as f64)],
                    many if use_signs
                        && !many.is_empty()
                        && rest.abs() < 1e-9
                        && (many.iter().all(|(_, a)| *a > 0)
                            || many.iter().all(|(_, a)| *a < 0)) =>
                    {
                        many.iter().map(|(c, _)| ((*c).clone(), 0.0)).collect()
                    }
                    _ => Vec::new(),
                };
                for (cell, v) in solved {
                    known.insert(cell.clone(), v);
                    found.insert(cell, v);
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
        // Elimination over what is still hidden.
        let hidden: Vec<Cell> = equations
            .iter()
            .flatten()
            .map(|(c, _)| c.clone())
            .filter(|c| !known.contains_key(c))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let index: HashMap<&Cell, usize> = hidden.iter().enumerate().map(|(i, c)| (c, i)).collect();
        let width = hidden.len();
        let mut m: Vec<Vec<f64>> = Vec::new();
        for eq in &equations {
            let mut row = vec![0.0; width + 1];
            for (cell, a) in eq {
                match index.get(cell) {
                    Some(&i) => row[i] += *a as f64,
                    None => row[width] -= *a as f64 * known[cell],
                }
            }
            if row[..width].iter().any(|x| x.abs() > 1e-9) {
                m.push(row);
            }
        }
        let mut pivot_row = 0;
        let mut pivots = Vec::new();
        for col in 0..width {
            let Some(best) = (pivot_row..m.len())
                .filter(|&i| m[i][col].abs() > 1e-9)
                .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
            else {
                continue;
            };
            m.swap(pivot_row, best);
            let p = m[pivot_row][col];
            for x in m[pivot_row].iter_mut() {
                *x /= p;
            }
            let pivot = m[pivot_row].clone();
            for (i, row) in m.iter_mut().enumerate() {
                let f = row[col];
                if i != pivot_row && f.abs() > 1e-12 {
                    for (x, y) in row.iter_mut().zip(&pivot) {
                        *x -= f * y;
                    }
                }
            }
            pivots.push((pivot_row, col));
            pivot_row += 1;
            if pivot_row == m.len() {
                break;
            }
        }
        for (r, col) in pivots {
            let alone = m[r][..width]
                .iter()
                .enumerate()
                .all(|(j, x)| j == col || x.abs() < 1e-9);
            if alone {
                found.insert(hidden[col].clone(), m[r][width]);
            }
        }
        found
    }

    /// Checks `csv` against the cases: (a) no count below `k` shown and shown counts right;
    /// (b) the attack works out no hidden cell (not even a zero by linear arithmetic alone, and
    /// no non-zero count using signs), and every line has no hidden cell or at least two.
    fn assert_safe(csv: &str, cases: &[Case], k: u64) {
        let truth = truth(cases);
        let published = read(csv);
        assert_eq!(
            published.keys().collect::<Vec<_>>(),
            truth.keys().collect::<Vec<_>>(),
            "the cells published"
        );
        for (cell, shown) in &published {
            if let Some(n) = shown {
                assert!(*n >= k, "{cell:?} shown with {n} < {k}");
                assert_eq!(*n, truth[cell], "{cell:?}");
            }
        }
        let value_of = |c: &Cell| {
            truth
                .iter()
                .find(|(t, _)| same(t) == *c)
                .map(|(_, n)| *n)
                .expect("a cell")
        };
        if let Some((cell, v)) = attack(&published, false).into_iter().next() {
            panic!(
                "k={k}: {cell:?} (true {}) worked out as {v} from the sums",
                value_of(&cell)
            );
        }
        for (cell, v) in attack(&published, true) {
            let real = value_of(&cell);
            assert!((v - real as f64).abs() < 1e-6, "{cell:?}: {v} but {real}");
            assert_eq!(real, 0, "k={k}: {cell:?} (non-zero) worked out as {v}");
        }
        // Every line (totals row and column included) hides no cell or at least two.
        for (name, _, _) in TABLES {
            let mut by_row: BTreeMap<&String, usize> = BTreeMap::new();
            let mut by_column: BTreeMap<&String, usize> = BTreeMap::new();
            for ((t, r, c), shown) in &published {
                if t == name {
                    *by_row.entry(r).or_default() += usize::from(shown.is_none());
                    *by_column.entry(c).or_default() += usize::from(shown.is_none());
                }
            }
            for (line, hidden) in by_row.iter().chain(&by_column) {
                assert!(*hidden != 1, "{name}: line {line} hides exactly one cell");
            }
        }
    }

    #[test]
    fn k_below_two_is_refused() {
        let (_dir, registry) = registry();
        for k in [0, 1] {
            assert!(
                matches!(registry.publish(k), Err(RegistryError::Unknown(m)) if m.contains("at least 2"))
            );
        }
    }

    #[test]
    fn an_empty_registry_publishes_only_hidden_totals() {
        let (_dir, registry) = registry();
        let csv = registry.publish(5).expect("publish");
        let published = read(&csv);
        assert_eq!(published.len(), TABLES.len());
        assert!(published
            .iter()
            .all(|((_, r, c), n)| r == TOTAL && c == TOTAL && n.is_none()));
    }

    #[test]
    fn no_cell_below_k_is_shown_and_no_hidden_cell_can_be_worked_out() {
        for seed in 1..=12 {
            let (_dir, mut registry) = registry();
            let cases = random_cases(seed, 40 + 30 * seed as usize);
            insert(&mut registry, &cases);
            for k in [3, 5, 10] {
                let csv = registry.publish(k).expect("publish");
                assert_safe(&csv, &cases, k);
                let shown = read(&csv).values().filter(|n| n.is_some()).count();
                assert!(
                    shown > 0 || k == 10,
                    "seed {seed}, k {k}: something is shown"
                );
            }
        }
    }

    #[test]
    fn without_complementary_suppression_the_attack_works_out_hidden_counts() {
        // The attack of the test above has teeth: on primary suppression alone it recovers
        // non-zero counts below k.
        let cases = random_cases(5, 200);
        let (_dir, mut registry) = registry();
        insert(&mut registry, &cases);
        let truth = truth(&cases);
        let csv = registry.publish_with(5, false).expect("publish");
        let published = read(&csv);
        let recovered: Vec<(Cell, f64)> = attack(&published, true)
            .into_iter()
            .filter(|(cell, _)| {
                truth
                    .iter()
                    .any(|(t, n)| same(t) == *cell && *n > 0 && published[t].is_none())
            })
            .collect();
        assert!(!recovered.is_empty(), "primary suppression alone leaks");
        for (cell, v) in &recovered {
            let real = truth
                .iter()
                .find(|(t, _)| same(t) == *cell)
                .map(|(_, n)| *n);
            assert_eq!(Some(*v as u64), real, "{cell:?}");
        }
        let caught = std::panic::catch_unwind(|| assert_safe(&csv, &cases, 5));
        assert!(
            caught.is_err(),
            "assert_safe rejects primary suppression alone"
        );
    }

    #[test]
    fn the_csv_holds_aggregates_only() {
        let (_dir, mut registry) = registry();
        let mut cases = random_cases(3, 120);
        cases.push(Case {
            received: "2026-06-30",
            incident_day: Some("2026-06-29"),
            region: Some("cusco"),
            types: vec!["threat"],
            ..Case::default()
        });
        let ids = insert(&mut registry, &cases);
        let canary_place = "Ollantaytambo, calle Canario 7731";
        let canary_submission = "c0ffee00c0ffee00c0ffee00c0ffee00";
        let canary_region = "Fundo Canario km 12";
        registry
            .write(|tx| {
                tx.execute(
                    "UPDATE cases SET place = ?1, submission = ?2, source = 'report',
                                      conversation = 'abcdef0123456789'
                     WHERE id = ?3",
                    rusqlite::params![canary_place, canary_submission, ids[ids.len() - 1]],
                )?;
                tx.execute(
                    "UPDATE cases SET region = ?1 WHERE id = ?2",
                    rusqlite::params![canary_region, ids[0]],
                )?;
                tx.execute(
                    "INSERT INTO case_types (case_id, type) VALUES (?1, 'Pedro Pérez me amenazó')",
                    [ids[1]],
                )?;
                Ok(())
            })
            .expect("canaries");
        let csv = registry.publish(3).expect("publish");
        for canary in [
            "Ollantaytambo",
            "Canario",
            "c0ffee",
            "abcdef",
            "Pedro",
            "2026-06",
            "-29",
        ] {
            assert!(!csv.contains(canary), "{canary} published");
        }
        let form = FormDefinition::embedded().expect("form");
        let options: BTreeSet<&str> = ["what_happened", "region", "responsible"]
            .iter()
            .flat_map(|f| {
                form.field(f)
                    .expect("field")
                    .options
                    .iter()
                    .map(String::as_str)
            })
            .collect();
        let names: BTreeSet<&str> = TABLES.iter().map(|(n, _, _)| *n).collect();
        for line in csv.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 5, "{line}");
            assert!(names.contains(f[0]), "{line}");
            for label in &f[1..3] {
                let year = label.len() == 4 && label.bytes().all(|b| b.is_ascii_digit());
                assert!(
                    year || options.contains(label) || [NONE, TOTAL, UNLISTED].contains(label),
                    "{label} in {line}"
                );
            }
            assert!(
                f[3].is_empty() || f[3].bytes().all(|b| b.is_ascii_digit()),
                "{line}"
            );
            assert!(["yes", "no"].contains(&f[4]), "{line}");
        }
        assert!(
            csv.contains(&format!(",{UNLISTED},")),
            "the free-text region, as unlisted"
        );
    }

    #[test]
    fn linked_tables_are_protected_together() {
        // Two tables sharing the totals of each type, each safe alone (every hidden cell on a
        // cycle of hidden cells, every line hiding 0 or at least 2 cells), yet together they
        // give away the total of type `a` and with it two cells.
        let types = ["a", "b", "c", "d"];
        let by = |columns: [&str; 2]| -> Counts {
            types
                .iter()
                .flat_map(|t| columns.map(|c| (vec![t.to_string(), c.to_string()], 5)))
                .collect()
        };
        let tables = [
            (
                "type_by_region",
                Dimension::Type,
                Dimension::Region,
                by(["r1", "r2"]),
            ),
            (
                "type_by_year",
                Dimension::Type,
                Dimension::Year,
                by(["2020", "2021"]),
            ),
        ];
        let mut cells = Cells::build(&tables).expect("cells");
        let pattern = [
            [".XX", ".XX", "X.X", ".XX", "X.X"],
            [".XX", "X.X", ".XX", "X.X", ".XX"],
        ];
        for (grid, rows) in cells.grids.iter().zip(pattern) {
            for (vars, marks) in grid.var.iter().zip(rows) {
                for (&v, mark) in vars.iter().zip(marks.chars()) {
                    if mark == 'X' {
                        cells.suppressed[v] = true;
                    }
                }
            }
        }
        // Bridge-free table by table.
        for g in 0..cells.grids.len() {
            for mode in MODES {
                assert_eq!(cells.bridges(g, mode), [], "{}", cells.grids[g].name);
            }
        }
        let before = cells.suppressed.clone();
        let published = read(&cells.csv());
        let worked_out = attack(&published, false);
        let a_total = same(&(
            "type_by_region".to_string(),
            "a".to_string(),
            TOTAL.to_string(),
        ));
        assert_eq!(worked_out.get(&a_total), Some(&10.0), "{worked_out:?}");
        assert!(!cells.determined(Mode::All).expect("exact").is_empty());

        cells.complete().expect("protected");
        for mode in MODES {
            assert_eq!(cells.determined(mode).expect("exact"), Vec::<usize>::new());
        }
        assert!(
            before.iter().zip(&cells.suppressed).all(|(b, a)| *a || !*b),
            "only more hidden"
        );
        let published = read(&cells.csv());
        assert_eq!(attack(&published, false), HashMap::new());
        assert_eq!(attack(&published, true), HashMap::new());
    }
}
