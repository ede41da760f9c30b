// static/js/replies.js in Node, with the page's own openpgp.js: a conversation as the page starts
// it (header, box, reply key, follow-up token), replies read as the team's only when they are (a
// forged, a moved, an unsigned, a malformed or unnumbered reply and one for another key are each
// flagged), and answers put in the team's order (repeats and gaps named). The browser run
// against the real reviewers' tools is replies.test.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { repo } from './harness.mjs';

const openpgp = await import(join(repo, 'static/node_modules/openpgp/dist/openpgp.min.mjs'));
const R = await import(join(repo, 'static/js/replies.js'));

const person = async (name) => (await openpgp.generateKey({
  type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name }], format: 'object',
})).privateKey;

test('a conversation as the page starts it: header, box and a certification-only reply key', async () => {
  const reviewers = [(await person('r1')).toPublic(), (await person('r2')).toPublic()];
  const started = await R.startConversation(openpgp, reviewers);
  assert.equal(started.header.length, 4200, 'base64 of 32 + 3,116 bytes');
  const bytes = R.fromBase64(started.header);
  const locator = bytes.subarray(0, 32);
  assert.equal(R.toHex(locator), started.locatorHex);
  assert.deepEqual(started.conversation.locator, started.locatorHex);
  assert.match(started.conversation.reply_key, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
  // In ConversationRef's order: what report.json carries, as Rust writes it.
  assert.deepEqual(Object.keys(started.conversation), ['locator', 'reply_key', 'token']);
  assert.equal(started.conversation.token, await R.followUpTokenOf(started.entropy), 'the receipt\'s follow-up token');
  const derived = await R.deriveReceipt(started.entropy);
  assert.equal(derived.token, started.conversation.token, 'what /check puts in a follow-up');
  const contents = await R.openBox(derived.lockKey, derived.locator, bytes.subarray(32));
  assert.deepEqual(contents.reviewers, reviewers.map((k) => k.getFingerprint().toUpperCase()));
  const key = await openpgp.readPrivateKey({ binaryKey: R.fromBase64(contents.key) });
  assert.equal(key.keyPacket.version, 4);
  assert.equal(key.isDecrypted(), true, 'no passphrase: the box is its protection');
  assert.deepEqual(key.getUserIDs(), [R.REPLY_KEY_USER_ID]);
  assert.equal(key.getFingerprint(), (await openpgp.readKey({ armoredKey: started.conversation.reply_key })).getFingerprint());
  const self = (await key.getPrimaryUser()).selfCertification;
  assert.deepEqual([...self.keyFlags], [openpgp.enums.keyFlags.certifyKeys], 'the primary key certifies only');
  await assert.rejects(key.getSigningKey(), 'the reply key cannot sign');
  assert.ok(await key.getEncryptionKey(), 'it has an encryption subkey');
  assert.equal(key.getCreationTime().getTime(), 0, 'no date of the report in it');
});

test('replies are the team\'s only when signed by a listed reviewer for this conversation', async () => {
  const reviewer = await person('reviewer');
  const stranger = await person('stranger');
  const replyKey = await R.generateReplyKey(openpgp);
  const other = await R.generateReplyKey(openpgp);
  const here = 'ab'.repeat(32);
  const team = [reviewer.toPublic()];
  const plaintext = (conversation, extra = {}) => ({
    schema: R.REPLY_SCHEMA, conversation, sequence: 3, day: '2026-11-30', language: 'es', message: 'Pedimos protección.', attachments: [
      { name: 'nota.txt', media_type: 'text/plain', data: R.toBase64(new TextEncoder().encode('hola')) },
    ], ...extra,
  });
  const seal = async (body, { signer = reviewer, to = replyKey } = {}) => openpgp.encrypt({
    message: await openpgp.createMessage({ binary: new TextEncoder().encode(JSON.stringify(body)) }),
    encryptionKeys: [to.toPublic(), ...team],
    signingKeys: signer || undefined,
    format: 'binary',
  });
  const read = async (sealed) => R.readReply(openpgp, { sealed, replyKey, team, locatorHex: here });

  const good = await read(await seal(plaintext(here)));
  assert.equal(good.signer, reviewer.getFingerprint().toUpperCase());
  assert.equal(good.why, null);
  assert.equal(good.reply.message, 'Pedimos protección.');
  assert.equal(good.reply.sequence, 3);
  assert.equal(good.reply.day, '2026-11-30');
  assert.equal(new TextDecoder().decode(R.fromBase64(good.reply.attachments[0].data)), 'hola');

  const cases = [
    ['forged', await seal(plaintext(here), { signer: stranger }), 'not_signed'],
    ['unsigned', await seal(plaintext(here), { signer: null }), 'not_signed'],
    ['moved', await seal(plaintext('cd'.repeat(32))), 'other_conversation'],
    ['another schema', await seal(plaintext(here, { schema: 'resguardo.reply/9' })), 'unknown_schema'],
    ['too long', await seal(plaintext(here, { message: 'x'.repeat(20001) })), 'too_large'],
  ];
  for (const [name, sealed, why] of cases) {
    const got = await read(sealed);
    assert.equal(got.signer, null, name);
    assert.equal(got.why, why, name);
    assert.ok(got.reply, `${name}: still shown, as a warning`);
  }
  const unnumbered = plaintext(here);
  delete unnumbered.sequence;
  const undated = plaintext(here);
  delete undated.day;
  for (const [name, sealed, why] of [
    ['an unknown field', await seal(plaintext(here, { extra: 1 })), 'not_a_reply'],
    ['no sequence', await seal(unnumbered), 'not_a_reply'],
    ['no day', await seal(undated), 'not_a_reply'],
    ...await Promise.all([0, R.MAX_REPLY_SEQUENCE + 1, 1.5, '3', -1, null].map(async (sequence) =>
      [`sequence ${JSON.stringify(sequence)}`, await seal(plaintext(here, { sequence })), 'not_a_reply'])),
    ...await Promise.all(['2026-02-30', '2026-13-01', '2026-1-30', '30-11-2026', '2026-11-30T00:00', 20261130].map(async (day) =>
      [`day ${JSON.stringify(day)}`, await seal(plaintext(here, { day })), 'not_a_reply'])),
    ['not JSON', await openpgp.encrypt({ message: await openpgp.createMessage({ binary: new Uint8Array([1, 2]) }), encryptionKeys: replyKey.toPublic(), signingKeys: reviewer, format: 'binary' }), 'not_a_reply'],
    ['for another reply key', await seal(plaintext(here), { to: other }), 'unreadable'],
    ['not OpenPGP', new Uint8Array([1, 2, 3]), 'unreadable'],
  ]) {
    const got = await read(sealed);
    assert.deepEqual(got, { reply: null, signer: null, why }, name);
  }
  // The bounds themselves are answers: the first, the last number, a leap day.
  for (const extra of [{ sequence: 1 }, { sequence: R.MAX_REPLY_SEQUENCE }, { day: '2028-02-29' }]) {
    assert.equal((await read(await seal(plaintext(here, extra)))).why, null, JSON.stringify(extra));
  }
});

test('answers go in the team\'s order; an identical repeat is a warning and the missing numbers are named', () => {
  // As the Rust client's test: arrived in the gateway's order 1..5: answer 3, answer 1, answer 3
  // again, a forgery claiming 2, answer 5. Answers 2 and 4 never came.
  const arrived = (n, sequence, verified) => ({
    n,
    day: '2026-12-01',
    read: {
      reply: { sequence, day: '2026-11-30', message: `answer ${sequence}` },
      signer: verified ? 'C95C29B449920DED0872A622F1F1AA6FAE2F54AD' : null,
      why: verified ? null : 'not_signed',
    },
  });
  // A sixth, a different answer the team also numbered 5 (written again after a failure): both
  // are the team's.
  const renumbered = arrived(6, 5, true);
  renumbered.read.reply = { ...renumbered.read.reply, message: 'another answer the team also numbered 5' };
  const { replies, missing } = R.inOrder([
    arrived(1, 3, true), arrived(2, 1, true), arrived(3, 3, true), arrived(4, 2, false), arrived(5, 5, true), renumbered,
  ]);
  assert.deepEqual(replies.map((r) => [r.number, r.read.signer !== null]), [[1, true], [3, true], [5, true], [5, true], [3, false], [4, false]]);
  assert.equal(replies[4].read.why, 'repeated');
  assert.equal(replies[4].read.reply.sequence, 3, 'the repeat names the answer it copies');
  assert.deepEqual(missing, [2, 4]);
  // Nothing verified: no number is missing, and the warnings keep the gateway's order.
  const unsigned = R.inOrder([arrived(1, 9, false), arrived(2, 4, false)]);
  assert.deepEqual(unsigned.missing, []);
  assert.deepEqual(unsigned.replies.map((r) => r.number), [1, 2]);
});
