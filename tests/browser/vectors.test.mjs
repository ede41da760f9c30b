// The page's JavaScript over the shared vectors in tests/vectors/ (the Rust side:
// tests/shared_vectors.rs). Both must agree on every file; a new vector needs no code here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const vectors = join(repo, 'tests/vectors');
const { paddedLength, buildPayload, isValidFieldId } = await import(join(repo, 'static/js/payload.js'));
const { reportFromAnswers } = await import(join(repo, 'static/js/report.js'));

const read = (path) => JSON.parse(readFileSync(path, 'utf8'));

/** Every ok_* and fail_* vector of an area, by name. */
function cases(area) {
  const names = readdirSync(join(vectors, area)).filter((n) => /^(ok|fail)_.*\.json$/.test(n)).sort();
  assert.ok(names.length >= 2, `no vectors in ${area}`);
  return names.map((name) => [name, read(join(vectors, area, name))]);
}

test('answers make the report the vectors give', () => {
  const form = read(join(vectors, 'report/form.json'));
  for (const [name, v] of cases('report')) {
    const got = reportFromAnswers(form, { language: v.language, sealedBy: v.sealed_by, answers: v.answers, files: v.files });
    if (name.startsWith('ok_')) assert.deepEqual(got, { report: v.report }, name);
    else if (name.startsWith('fail_missing_')) assert.deepEqual(got, { missing: v.missing }, name);
    else if (name.startsWith('fail_not_allowed_')) assert.deepEqual(got, { notAllowed: v.not_allowed }, name);
    else assert.fail(`${name}: not named by its outcome`);
  }
});

test('payloads have the layout and bytes the vectors give', () => {
  for (const [name, v] of cases('payload')) {
    const report = JSON.parse(v.report_json);
    assert.equal(JSON.stringify(report), v.report_json, `${name}: report.json as the writer writes it`);
    const files = report.attachments.map((a, i) => ({ path: a.path, bytes: new Uint8Array(a.size).fill(v.fill[i]) }));
    if (name.startsWith('fail_')) {
      assert.throws(() => buildPayload(report, files), (e) => e.message.includes(v.error), name);
      continue;
    }
    const archive = buildPayload(report, files);
    assert.equal(archive.length, v.total, name);
    // Walk the ustar headers as a reader would.
    const entries = [];
    for (let at = 0; at < archive.length && archive[at] !== 0;) {
      const header = archive.subarray(at, at + 512);
      const nameEnd = header.indexOf(0);
      const size = parseInt(new TextDecoder().decode(header.subarray(124, 135)), 8);
      entries.push({ name: new TextDecoder().decode(header.subarray(0, nameEnd)), offset: at, size });
      at += 512 + Math.ceil(size / 512) * 512;
    }
    assert.deepEqual(entries, v.entries, name);
    assert.equal(createHash('sha256').update(archive).digest('hex'), v.sha256, `${name}: the archive's bytes`);
  }
});

test('Padmé lengths are the vectors', () => {
  const { lengths } = read(join(vectors, 'payload/padme.json'));
  assert.ok(lengths.length >= 10);
  for (const [len, padded] of lengths) assert.equal(paddedLength(len), padded, `${len}`);
});

test('field ids are valid exactly as the vectors say', () => {
  const ids = read(join(vectors, 'field-ids.json'));
  for (const id of ids.ok) assert.ok(isValidFieldId(id), `${JSON.stringify(id)} should be valid`);
  for (const id of ids.fail) assert.ok(!isValidFieldId(id), `${JSON.stringify(id)} should be refused`);
});

test('triage notes are the vectors', async () => {
  const { triageOfReport, paddedTriage, TRIAGE_BYTES } = await import(join(repo, 'static/js/triage.js'));
  for (const [name, v] of cases('triage')) {
    if (!name.startsWith('ok_')) continue; // fail_ vectors are for the reader, which is Rust only
    const padded = paddedTriage(triageOfReport(v.report, v.day));
    assert.equal(padded.length, TRIAGE_BYTES, name);
    const text = new TextDecoder().decode(padded);
    assert.equal(text.trimEnd(), v.note, name);
    assert.ok(!text.includes('CANARY'), name);
  }
});
