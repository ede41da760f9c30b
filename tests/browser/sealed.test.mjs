// The page's sealed report file (static/js/sealed.js) over the shared vectors in
// tests/vectors/sealed-reports/ (the Rust side: tests/sealed_reports.rs). Plain node, no
// Chromium: the module uses no DOM. A new vector needs no code here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { readSealedReport, writeSealedReport, SealedFileError, MAX_HEADER_BYTES } from '../../static/js/sealed.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'vectors', 'sealed-reports');

function cases() {
  const names = readdirSync(dir).filter((n) => /^(ok|fail)_.*\.json$/.test(n)).sort();
  assert.ok(names.length >= 20, 'the sealed report vectors are missing');
  return names.map((name) => [name, JSON.parse(readFileSync(join(dir, name), 'utf8'))]);
}

const bytesOf = async (blob) => new Uint8Array(await blob.arrayBuffer());

test('sealed report files read as the vectors say, and write back to the same bytes', async () => {
  for (const [name, v] of cases()) {
    const file = new Blob([Buffer.from(v.file_base64, 'base64')]);
    const options = v.max_message === undefined ? {} : { maxMessageBytes: v.max_message };
    assert.equal(name.startsWith('ok_'), v.expect === 'ok', `${name}: named by its outcome`);
    if (v.expect !== 'ok') {
      await assert.rejects(readSealedReport(file, options), (e) => {
        assert.ok(e instanceof SealedFileError, `${name}: ${e}`);
        assert.equal(e.code, v.expect, `${name}: ${e.message}`);
        return true;
      });
      continue;
    }
    const got = await readSealedReport(file, options);
    assert.equal(got.triage, v.triage, name);
    assert.equal(got.conversation, v.conversation, name);
    assert.equal(got.touch, v.touch, name);
    assert.ok(got.message instanceof Blob, name);
    const message = await bytesOf(got.message);
    assert.equal(message.length, v.message_len, name);
    assert.equal(createHash('sha256').update(message).digest('hex'), v.message_sha256, name);
    // The writer, from the message as a Blob and as bytes, writes exactly the file.
    for (const m of [got.message, message]) {
      const written = writeSealedReport({ triage: got.triage, conversation: got.conversation, touch: got.touch, message: m });
      assert.deepEqual(await bytesOf(written), await bytesOf(file), `${name}: the writer's bytes`);
    }
  }
});

test('the reader reads no more than the header of a large file', async () => {
  // A Blob whose every slice is recorded: the reader may look at the first 16 KiB only.
  const [, v] = cases().find(([name]) => name.startsWith('ok_first_report'));
  const header = Buffer.from(v.file_base64, 'base64').subarray(0, Buffer.from(v.file_base64, 'base64').length - v.message_len);
  const big = new Blob([header, new Uint8Array(64 * 1024 * 1024)]);
  const reads = [];
  const watched = {
    size: big.size,
    slice: (start, end, type) => { reads.push([start, end]); return big.slice(start, end, type); },
  };
  const got = await readSealedReport(watched);
  assert.equal(got.message.size, 64 * 1024 * 1024);
  assert.deepEqual(reads[0], [0, MAX_HEADER_BYTES]);
  assert.equal(reads.length, 2, 'one read of the header, one slice for the message');
});

test('the writer refuses what the reader would refuse, with the same codes', () => {
  const message = new Uint8Array([0xc1]);
  const code = (fields) => {
    try { writeSealedReport({ message, ...fields }); return 'ok'; } catch (e) { return e.code; }
  };
  assert.equal(code({}), 'ok');
  assert.equal(code({ triage: '' }), 'bad_triage');
  assert.equal(code({ triage: 'wcBM' }), 'ok');
  assert.equal(code({ triage: 'wcB' }), 'bad_triage');
  assert.equal(code({ conversation: 'AAAA' }), 'bad_conversation');
  assert.equal(code({ touch: 'AB'.repeat(32) }), 'bad_touch');
  assert.equal(code({ touch: 'ab'.repeat(32) }), 'ok');
  assert.equal(code({ message: new Uint8Array(0) }), 'empty_message');
  assert.equal(code({ message: new Blob([]) }), 'empty_message');
});
