// The page's streamed payload (docs/uploads-v1.md, part 3), run in Node: the stream gives the
// very bytes buildPayload gives for every payload vector of tests/vectors/payload/ (files given
// as Blobs, read a piece at a time), and the incremental SHA-256 used for large files agrees
// with Node's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const vectors = join(repo, 'tests/vectors/payload');
const { buildPayload, payloadStream, Sha256, sha256HexOfBlob, WHOLE_HASH_LIMIT } = await import(join(repo, 'static/js/payload.js'));

async function drain(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return { bytes: Buffer.concat(chunks), chunks };
}

test('the payload stream is byte for byte buildPayload, for every payload vector', async () => {
  const names = readdirSync(vectors).filter((n) => /^ok_.*\.json$/.test(n)).sort();
  assert.ok(names.length >= 1, 'no payload vectors');
  for (const name of names) {
    const v = JSON.parse(readFileSync(join(vectors, name), 'utf8'));
    const report = JSON.parse(v.report_json);
    const contents = report.attachments.map((a, i) => new Uint8Array(a.size).fill(v.fill[i]));
    const whole = buildPayload(report, report.attachments.map((a, i) => ({ path: a.path, bytes: contents[i] })));
    // Every other file as a Blob read in small pieces, the rest in memory (a cleaned image).
    const files = report.attachments.map((a, i) => (i % 2 === 0
      ? { path: a.path, blob: new Blob([contents[i]]), size: a.size }
      : { path: a.path, bytes: contents[i] }));
    const { stream, length } = payloadStream(report, files, 1024);
    const { bytes } = await drain(stream);
    assert.equal(length, v.total, name);
    assert.equal(bytes.length, v.total, name);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), v.sha256, `${name}: the stream's bytes`);
    assert.ok(bytes.equals(Buffer.from(whole)), name);
  }
});

test('the stream goes in large chunks and errors when a file is not its size any more', async () => {
  const big = randomBytes(3 * 1024 * 1024 + 5);
  const report = { schema: 'resguardo.report/1' };
  const files = [{ path: 'files/001.bin', blob: new Blob([big]), size: big.length }];
  const { chunks, bytes } = await drain(payloadStream(report, files).stream);
  assert.ok(bytes.equals(Buffer.from(buildPayload(report, [{ path: 'files/001.bin', bytes: big }]))));
  assert.ok(chunks.length <= 8, `${chunks.length} chunks`);
  const shrunk = [{ path: 'files/001.bin', blob: new Blob([big.subarray(1)]), size: big.length }];
  await assert.rejects(drain(payloadStream(report, shrunk).stream), (e) => e.code === 'file_changed');
});

test('the incremental SHA-256 agrees with Node, across block boundaries and pieces', async () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 70000]) {
    const data = randomBytes(n);
    const hash = new Sha256();
    hash.update(data.subarray(0, n >> 1));
    hash.update(data.subarray(n >> 1));
    assert.equal(Buffer.from(hash.digest()).toString('hex'), createHash('sha256').update(data).digest('hex'), `${n} bytes`);
  }
  // A file over the one-piece limit is hashed a piece at a time.
  const big = randomBytes(WHOLE_HASH_LIMIT + 12345);
  assert.equal(await sha256HexOfBlob(new Blob([big])), createHash('sha256').update(big).digest('hex'));
});
