// The browser's payload and metadata code, run directly in Node (no browser needed).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { paddedLength, buildPayload, attachmentPath } = await import(join(repo, 'static/js/payload.js'));
const { stripJpeg, stripPng } = await import(join(repo, 'static/js/metadata.js'));

test('the archive is ustar with a valid checksum and the padded length', () => {
  const report = { schema: 'resguardo.report/1' };
  const out = buildPayload(report, [{ path: 'files/001.txt', bytes: new TextEncoder().encode('hi') }]);
  assert.equal(out.length % 512, 0);
  assert.equal(out.length, paddedLength(out.length));
  const header = out.subarray(0, 512);
  assert.equal(new TextDecoder().decode(header.subarray(0, 11)), 'report.json');
  assert.equal(new TextDecoder().decode(header.subarray(257, 262)), 'ustar');
  const stored = parseInt(new TextDecoder().decode(header.subarray(148, 154)), 8);
  let sum = 0;
  header.forEach((b, i) => { sum += i >= 148 && i < 156 ? 32 : b; });
  assert.equal(stored, sum);
  assert.equal(attachmentPath(0, 'Foto.JPG'), 'files/001.jpg');
  assert.equal(attachmentPath(11, '../x'), 'files/012');
});

test('JPEG and PNG metadata is removed, image data kept', () => {
  const jpeg = new Uint8Array(readFileSync(join(repo, 'tests/fixtures/photo-with-gps.jpg')));
  const stripped = stripJpeg(jpeg);
  assert.ok(stripped && stripped.length < jpeg.length);
  const text = Buffer.from(stripped).toString('latin1');
  for (const marker of ['Exif', 'GPS-Model-X1', 'CanaryCam']) assert.ok(!text.includes(marker), marker);
  assert.deepEqual([...stripped.subarray(0, 2)], [0xff, 0xd8]);
  assert.deepEqual([...stripped.subarray(-2)], [0xff, 0xd9]);
  const png = new Uint8Array(readFileSync(join(repo, 'tests/fixtures/screenshot-with-text.png')));
  const strippedPng = stripPng(png);
  assert.ok(strippedPng && !Buffer.from(strippedPng).toString('latin1').includes('CanaryAuthor'));
  assert.equal(stripJpeg(new Uint8Array([1, 2, 3])), null);
  assert.equal(stripPng(jpeg), null);
  assert.equal(stripJpeg(jpeg.subarray(0, 200)), null, 'a truncated JPEG is not "stripped"');
});

test('regression: a stray byte or a missing end marker no longer leaves EXIF in a "cleaned" JPEG', async () => {
  const { cleanImage, jpegIsClean, pngIsClean } = await import(join(repo, 'static/js/metadata.js'));
  const jpeg = new Uint8Array(readFileSync(join(repo, 'tests/fixtures/photo-with-gps.jpg')));
  assert.equal(jpegIsClean(jpeg), false, 'the fixture carries EXIF');
  const stray = new Uint8Array([...jpeg.subarray(0, 2), 0x00, ...jpeg.subarray(2)]);
  const noEnd = jpeg.subarray(0, jpeg.length - 2);
  for (const [name, input] of [['stray byte', stray], ['no end marker', noEnd]]) {
    const { bytes, cleaned } = cleanImage('jpeg', input);
    assert.ok(cleaned, name);
    assert.ok(jpegIsClean(bytes), name);
    assert.ok(!Buffer.from(bytes).toString('latin1').includes('Exif'), `${name}: Exif left`);
  }
  // A segment longer than the file: cannot be cleaned safely, so it is not called cleaned.
  const broken = new Uint8Array(jpeg);
  broken[4] = 0xff; broken[5] = 0xff;
  assert.deepEqual(cleanImage('jpeg', broken), { bytes: broken, cleaned: false });
  // Not a JPEG at all under a .jpg name.
  assert.equal(cleanImage('jpeg', new Uint8Array([1, 2, 3])).cleaned, false);
  const png = new Uint8Array(readFileSync(join(repo, 'tests/fixtures/screenshot-with-text.png')));
  assert.equal(pngIsClean(png), false, 'the fixture carries text chunks');
  assert.ok(cleanImage('png', png).cleaned);
  // Trailing garbage after IEND: not a well-formed PNG, so not "cleaned".
  assert.equal(cleanImage('png', new Uint8Array([...png, 1, 2, 3])).cleaned, false);
});
