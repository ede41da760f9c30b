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

// replies/: the receipt's words and typing rules, the derivations and the locked box
// (docs/replies-v1.md), over static/js/replies.js with the word list the page ships.
const replies = await import(join(repo, 'static/js/replies.js'));
const { wordlist: shippedWords } = await import(join(repo, 'static/node_modules/@scure/bip39/wordlists/spanish.js'));
const hex = (bytes) => Buffer.from(bytes).toString('hex');

test('the page ships the Rust crate\'s Spanish word list, word for word', () => {
  const rust = read(join(vectors, 'replies/wordlist-es.json'));
  assert.equal(rust.count, 2048);
  assert.deepEqual(shippedWords, rust.words);
  assert.equal(createHash('sha256').update(shippedWords.join('\n')).digest('hex'), rust.sha256);
  // 4 letters without accents name every word (what the typing rules rely on).
  replies.wordList(shippedWords);
});

test('receipts, derivations and boxes follow the vectors', async () => {
  const list = replies.wordList(shippedWords);
  let seen = 0;
  for (const [name, v] of cases('replies')) {
    const parsed = await replies.parseReceipt(v.typed ?? v.words, list);
    if (name.startsWith('fail_')) {
      const expected = { error: v.error };
      if (v.error === 'word_count') expected.count = v.count;
      if (v.error === 'unknown_word') expected.position = v.position;
      assert.deepEqual(parsed, expected, name);
      seen += 1;
      continue;
    }
    assert.ok(parsed.entropy, `${name}: ${JSON.stringify(parsed)}`);
    assert.equal(hex(parsed.entropy), v.entropy, name);
    if (v.words !== undefined) {
      const entropy = Uint8Array.from(Buffer.from(v.entropy, 'hex'));
      assert.equal((await replies.receiptWords(entropy, list)).join(' '), v.words, name);
      assert.equal(hex(await replies.locatorOf(entropy)), v.locator, name);
      assert.equal(hex(await replies.lockKeyBytesOf(entropy)), v.lock_key, name);
      assert.match(v.follow_up_token, /^[0-9a-f]{64}$/, `${name}: the vector has a follow-up token`);
      assert.equal(await replies.followUpTokenOf(entropy), v.follow_up_token, name);
      const { locator, locatorHex, lockKey, token } = await replies.deriveReceipt(entropy);
      assert.equal(locatorHex, v.locator, name);
      assert.equal(token, v.follow_up_token, `${name}: the token a follow-up from /check carries`);
      const sealed = Uint8Array.from(Buffer.from(v.box, 'base64'));
      assert.equal(sealed.length, replies.BOX_BYTES, name);
      assert.deepEqual(await replies.openBox(lockKey, locator, sealed), v.box_contents, name);
      const again = await replies.sealBox(lockKey, locator, v.box_contents, Uint8Array.from(Buffer.from(v.box_nonce, 'hex')));
      assert.equal(Buffer.from(again).toString('base64'), v.box, `${name}: the same box byte for byte`);
      // Another receipt, or the box moved to another conversation, or one flipped bit: no box.
      const other = await replies.deriveReceipt(new Uint8Array(16).fill(7));
      assert.equal(await replies.openBox(other.lockKey, locator, sealed), null, name);
      assert.equal(await replies.openBox(lockKey, other.locator, sealed), null, name);
      const flipped = sealed.slice();
      flipped[100] ^= 1;
      assert.equal(await replies.openBox(lockKey, locator, flipped), null, name);
    }
    seen += 1;
  }
  assert.ok(seen >= 8, `only ${seen} vectors`);
});

test('typing rules: forgiving where the vectors are, precise everywhere else', async () => {
  const list = replies.wordList(shippedWords);
  const entropy = new Uint8Array(16).fill(9);
  const words = await replies.receiptWords(entropy, list);
  const typed = (ws) => replies.parseReceipt(ws.join(' '), list);
  // Composed (NFC) accents, commas, hyphens and line breaks read as well as the list's NFD.
  const parsed = await replies.parseReceipt(`${words.slice(0, 6).map((w) => w.normalize('NFC')).join(', ')}\n${words.slice(6).join('-')}`, list);
  assert.equal(hex(parsed.entropy), hex(entropy));
  assert.deepEqual(await typed(words.slice(0, 11)), { error: 'word_count', count: 11 });
  assert.deepEqual(await typed([...words, words[0]]), { error: 'word_count', count: 13 });
  assert.deepEqual(await replies.parseReceipt('', list), { error: 'word_count', count: 0 });
  assert.deepEqual(await replies.parseReceipt('a '.repeat(201), list), { error: 'too_long' });
  const unknown = [...words];
  unknown[11] = 'zzzz';
  assert.deepEqual(await typed(unknown), { error: 'unknown_word', position: 12 });
  const swapped = [...words];
  [swapped[0], swapped[1]] = [swapped[1], swapped[0]];
  if (swapped[0] !== words[0]) assert.equal((await typed(swapped)).error, 'checksum');
});

// reply-messages/: sealed replies (by Rust, signed by demo reviewer 1) that readReply must judge
// as read_reply does: the team's with its signed number and day, or a warning that says why.
test('replies are judged as the vectors say', async () => {
  const openpgp = await import(join(repo, 'static/node_modules/openpgp/dist/openpgp.min.mjs'));
  const outcomes = [];
  for (const [name, v] of cases('reply-messages')) {
    const read = await replies.readReply(openpgp, {
      sealed: Uint8Array.from(Buffer.from(v.sealed, 'base64')),
      replyKey: await openpgp.readPrivateKey({ armoredKey: v.reply_key }),
      team: await Promise.all(v.team.map((armoredKey) => openpgp.readKey({ armoredKey }))),
      locatorHex: v.locator,
    });
    if (name.startsWith('ok_')) {
      assert.equal(read.why, null, name);
      assert.equal(read.signer, v.expect.signer, name);
      const { sequence, day, message } = read.reply;
      assert.deepEqual({ sequence, day, message }, { sequence: v.expect.sequence, day: v.expect.day, message: v.expect.message }, name);
    } else {
      assert.equal(read.signer, null, name);
      assert.equal(read.why, v.expect.why, name);
      assert.ok(read.reply, `${name}: read, and shown as a warning`);
    }
    outcomes.push(read.why ?? 'ok');
  }
  for (const outcome of ['ok', 'not_signed', 'other_conversation']) assert.ok(outcomes.includes(outcome), `a vector for ${outcome}`);
});

// key-lists/: signed key lists (by Rust, with the demo organisation key) that the page's
// keylist.js must judge as SignedKeyList::verify does under the pinned organisation fingerprint.
const keylist = await import(join(repo, 'static/js/keylist.js'));

test('key lists are judged as the vectors say', async () => {
  const openpgp = await import(join(repo, 'static/node_modules/openpgp/dist/openpgp.min.mjs'));
  const outcomes = new Set();
  for (const [name, v] of cases('key-lists')) {
    let got;
    try {
      const list = await keylist.verifyKeyList(openpgp, v.signed, v.pin, v.today);
      const fingerprints = (members) => members.map((m) => m.fingerprint);
      got = { ok: { version: list.version, reviewers: fingerprints(list.reviewers), couriers: fingerprints(list.couriers) } };
      assert.equal(list.organisation, v.pin, name);
    } catch (e) {
      if (!(e instanceof keylist.KeyListRefused)) throw e;
      got = { refused: e.kind };
    }
    if (name.startsWith('ok_')) assert.deepEqual(got, { ok: v.vouches }, name);
    else assert.deepEqual(got, { refused: v.expect }, `${name}: ${v.about}`);
    outcomes.add(v.expect);
  }
  for (const outcome of ['ok', 'not_pinned', 'bad_signature', 'expired', 'fingerprint_mismatch', 'duplicate', 'version_zero']) {
    assert.ok(outcomes.has(outcome), `a vector for ${outcome}`);
  }
});

test('the page encrypts only to the keys the list vouches for, and only when they are the ones served', async () => {
  const openpgp = await import(join(repo, 'static/node_modules/openpgp/dist/openpgp.min.mjs'));
  const v = read(join(vectors, 'key-lists/ok_demo_list.json'));
  const list = JSON.parse(v.signed.key_list);
  const served = (entries) => entries.map(({ fingerprint, name, cert }) => ({ fingerprint, name, cert }));
  const body = () => ({
    reviewers: served(list.reviewers), couriers: served(list.couriers), max_submission_bytes: 1,
    key_list: v.signed, organisation: v.pin,
  });
  const vouched = (b, pin = v.pin) => keylist.vouchedKeys(openpgp, b, pin, v.today);
  const kind = (promise) => promise.then(() => 'ok', (e) => { if (!e.notVouched) throw e; return e.kind; });
  const keys = await vouched(body());
  assert.deepEqual(keys.reviewers.map((k) => k.getFingerprint().toUpperCase()), v.vouches.reviewers);
  assert.deepEqual(keys.couriers.map((k) => k.getFingerprint().toUpperCase()), v.vouches.couriers);
  // A served certificate is never used: the list's is (a swapped cert under the listed
  // fingerprint changes nothing).
  const swappedCert = body();
  swappedCert.reviewers[0].cert = list.reviewers[1].cert;
  const fromList = await vouched(swappedCert);
  assert.deepEqual(fromList.reviewers.map((k) => k.getFingerprint().toUpperCase()), v.vouches.reviewers);
  // Served sets that differ from the list's.
  const swapped = body();
  swapped.reviewers[0] = { ...swapped.reviewers[0], fingerprint: 'AAAA'.repeat(10) };
  assert.equal(await kind(vouched(swapped)), 'keys_differ');
  const extra = body();
  extra.reviewers.push(extra.couriers[0]);
  assert.equal(await kind(vouched(extra)), 'keys_differ');
  const twice = body();
  twice.reviewers = [twice.reviewers[0], twice.reviewers[0]];
  assert.equal(await kind(vouched(twice)), 'keys_differ');
  const noCourier = body();
  noCourier.couriers = [];
  assert.equal(await kind(vouched(noCourier)), 'keys_differ');
  // No list, or a list under another organisation than the page shows.
  const none = body();
  delete none.key_list;
  assert.equal(await kind(vouched(none)), 'no_key_list');
  const otherOrganisation = body();
  otherOrganisation.organisation = 'BBBB'.repeat(10);
  assert.equal(await kind(vouched(otherOrganisation)), 'not_pinned');
  assert.equal(await kind(vouched(body(), 'BBBB'.repeat(10))), 'not_pinned');
  const other = read(join(vectors, 'key-lists/fail_other_organisation.json'));
  const replayed = { ...body(), key_list: other.signed };
  assert.equal(await kind(vouched(replayed)), 'not_pinned');
});
