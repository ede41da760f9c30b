// Triage v1 in the browser: the same note as src/triage.rs (docs/early-alerts.md), pinned for
// both by tests/vectors/triage/. Urgency, incident types, region and day only: never free text.

export const TRIAGE_BYTES = 1024;
const TYPES_FIELD = 'what_happened';
const REGION_FIELD = 'region';

const isOptionId = (v) => typeof v === 'string' && /^[a-z0-9_-]{1,64}$/.test(v);

/** The urgency answer as the review tool reads it (payload::urgency_of in Rust). */
function urgencyOf(report) {
  const answer = report.fields.urgent;
  if (answer === 'yes' || report.urgent) return 'yes';
  if (answer === 'no') return 'no';
  return 'unanswered';
}

/** The note for a report sealed on `day` (YYYY-MM-DD, UTC), as an object in the written order. */
export function triageOfReport(report, day) {
  const given = report.fields[TYPES_FIELD];
  const types = (Array.isArray(given) ? given : given === undefined ? [] : [given]).filter(isOptionId);
  const note = { schema: 'resguardo.triage/1', urgent: urgencyOf(report), types };
  const region = report.fields[REGION_FIELD];
  if (isOptionId(region)) note.region = region;
  note.day = day;
  return note;
}

/** The note's plaintext: its JSON, then spaces up to TRIAGE_BYTES (types cut to fit). */
export function paddedTriage(note) {
  const encoder = new TextEncoder();
  let current = { ...note, types: [...note.types] };
  for (;;) {
    const json = encoder.encode(JSON.stringify(current));
    if (json.length <= TRIAGE_BYTES) {
      const out = new Uint8Array(TRIAGE_BYTES).fill(0x20);
      out.set(json, 0);
      return out;
    }
    // Rebuilt in the written order (schema, urgent, types, region, day, types_cut); as in
    // Rust, a type goes first, the region only when no type is left.
    const { schema, urgent, types, day } = current;
    let { region } = current;
    if (types.length) types.pop();
    else region = undefined;
    current = { schema, urgent, types };
    if (region !== undefined) current.region = region;
    current.day = day;
    current.types_cut = true;
  }
}

/** Today's UTC day, as the note carries it. */
export function utcDay(date = new Date()) {
  return date.toISOString().slice(0, 10);
}
