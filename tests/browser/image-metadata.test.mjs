// The page's metadata stripper (static/js/metadata.js) over the shared image vectors in
// tests/vectors/images/ (the Rust side: tests/image_metadata.rs). Both must reach the same
// outcome, orientation and output bytes on every vector; a new vector needs no code here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = join(repo, 'tests/vectors/images');
const { cleanBytes, cleanImage, imageKind, cleanedName } = await import(join(repo, 'static/js/metadata.js'));

const vectors = readdirSync(dir).filter((n) => /^(ok|fail)_.*\.json$/.test(n)).sort()
  .map((name) => [name, JSON.parse(readFileSync(join(dir, name), 'utf8'))]);

const has = (bytes, text) => Buffer.from(bytes).includes(Buffer.from(text, 'latin1'));

/** The picture itself, as tests/image_metadata.rs reads it: it must come out byte for byte. */
function imageData(kind, b) {
  const buf = Buffer.from(b);
  if (kind === 'jpeg') {
    const sos = buf.indexOf(Buffer.from([0xff, 0xda]));
    const eoi = buf.indexOf(Buffer.from([0xff, 0xd9]), sos);
    return buf.subarray(sos, eoi < 0 ? buf.length : eoi);
  }
  const parts = [];
  if (kind === 'png') {
    for (let i = 8; i + 12 <= buf.length;) {
      const len = buf.readUInt32BE(i);
      if (buf.toString('latin1', i + 4, i + 8) === 'IDAT') parts.push(buf.subarray(i + 8, i + 8 + len));
      i += 12 + len;
    }
  } else {
    for (let i = 12; i + 8 <= buf.length;) {
      const len = buf.readUInt32LE(i + 4);
      if (['ALPH', 'VP8 ', 'VP8L', 'ANMF'].includes(buf.toString('latin1', i, i + 4))) parts.push(buf.subarray(i + 8, i + 8 + len));
      i += 8 + len + (len & 1);
    }
  }
  return Buffer.concat(parts);
}

test('there are vectors of every kind and outcome', () => {
  const names = vectors.map(([n]) => n).join(' ');
  for (const part of ['ok_jpeg', 'ok_png', 'ok_webp', 'fail_jpeg', 'fail_png', 'fail_webp', 'fail_heic']) {
    assert.ok(names.includes(part), part);
  }
});

for (const [name, v] of vectors) {
  test(`image vector ${name}`, () => {
    const input = new Uint8Array(Buffer.from(v.input_base64, 'base64'));
    for (const canary of v.canaries) assert.ok(has(input, canary), `the input carries ${canary}`);
    const result = cleanBytes(input);
    assert.equal(result.kind, v.expect.kind);
    if (v.expect.outcome === 'not_cleaned') {
      assert.equal(result.cleaned, false);
      assert.equal(result.bytes, input, 'not cleaned: the original, untouched');
      return;
    }
    assert.equal(result.cleaned, true);
    assert.equal(result.orientation, v.expect.orientation);
    assert.equal(result.bytes.length, v.expect.output_length);
    assert.equal(createHash('sha256').update(result.bytes).digest('hex'), v.expect.output_sha256, 'the same bytes as Rust');
    for (const canary of v.canaries) assert.ok(!has(result.bytes, canary), `${canary} left`);
    assert.ok(imageData(result.kind, result.bytes).equals(imageData(result.kind, input)), 'the picture is kept byte for byte');
    // Cleaning a cleaned file changes nothing.
    const again = cleanBytes(result.bytes);
    assert.ok(again.cleaned && Buffer.from(again.bytes).equals(Buffer.from(result.bytes)));
  });
}

test('the page sends HEIC photos to the reporter to decide, and names cleaned WebP as WebP', () => {
  assert.equal(imageKind({ type: 'image/heic', name: 'IMG_0001.HEIC' }), 'heic');
  assert.equal(imageKind({ type: '', name: 'foto.avif' }), 'heic');
  assert.equal(imageKind({ type: 'image/webp', name: 'x' }), 'webp');
  const heic = vectors.find(([n]) => n === 'fail_heic_photo.json')[1];
  assert.equal(cleanImage('heic', new Uint8Array(Buffer.from(heic.input_base64, 'base64'))).cleaned, false);
  assert.equal(cleanedName('webp', 0), 'imagen-1.webp');
  assert.equal(cleanedName('jpeg', 2), 'imagen-3.jpg');
  // A PNG under a .jpg name is not "cleaned" as a JPEG.
  const png = vectors.find(([n]) => n === 'ok_png_text_time_icc_private.json')[1];
  assert.equal(cleanImage('jpeg', new Uint8Array(Buffer.from(png.input_base64, 'base64'))).cleaned, false);
});
