// The organisation's signed key list, checked by the page (docs/trust-v1.md, part 1): the page
// shows the organisation key's fingerprint, which the reporter compares with the printed card;
// this module makes that comparison mean something. The keys the page encrypts to must be the
// ones a key list signed by exactly that organisation key vouches for, else nothing is sent.
//
// The rules are the Rust reader's (`SignedKeyList::verify` in src/trust/keylist.rs), pinned by
// the shared vectors in tests/vectors/key-lists/ that both test suites read. Not checked here:
// the page manifest inside the list (the couriers' page watch checks the page) and the finer
// role rules of reviewer and courier keys (the gateway and the reviewers' tools check those;
// a key the page cannot encrypt to is refused here all the same).
//
// openpgp.js is handed in, so Node runs exactly this file over the vectors.

/** `format` of the signed key list (the outer object). */
export const SIGNED_FORMAT = 'resguardo.signed-key-list/1';
/** `format` of the key list (the signed text). */
export const LIST_FORMAT = 'resguardo.key-list/1';
/** How far ahead of this device's clock the list's signature may be dated (the organisation
 * key lives on an offline machine whose clock may run ahead), as in Rust. */
const CLOCK_SKEW_MS = 86400000;
const MAX_REVIEWERS = 32;
const MAX_COURIERS = 16;

/** A refusal: `kind` names the rule, as the vectors' `expect` does (the Rust error's variant in
 * snake case). */
export class KeyListRefused extends Error {
  constructor(kind, detail = '') {
    super(`key list refused: ${kind}${detail ? ` (${detail})` : ''}`);
    this.kind = kind;
    this.notVouched = true;
  }
}

const refuse = (kind, detail) => { throw new KeyListRefused(kind, detail); };

/** A fingerprint as the card prints it: groups of four. */
export const grouped = (fingerprint) => fingerprint.match(/.{1,4}/g).join(' ');

const FINGERPRINT = /^(?:[0-9A-F]{40}|[0-9A-F]{64})$/;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** True for a "YYYY-MM-DD" that names a real day. */
function isDay(text) {
  const m = typeof text === 'string' && DAY.exec(text);
  if (!m) return false;
  const [year, month, day] = m.slice(1).map(Number);
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/** An object with exactly `fields` (serde's deny_unknown_fields, and none missing). */
function exactly(value, fields) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === fields.length && fields.every((f) => Object.hasOwn(value, f));
}

/** Exactly one certificate in `armoredKey`, or null. */
async function oneCert(openpgp, armoredKey) {
  try {
    const keys = await openpgp.readKeys({ armoredKeys: armoredKey });
    return keys.length === 1 ? keys[0] : null;
  } catch {
    return null;
  }
}

const fingerprintOf = (key) => key.getFingerprint().toUpperCase();

/**
 * Checks the detached signature: the organisation key valid now and able to sign, one binary
 * signature by its primary key over `bytes`, not dated more than a day ahead.
 */
async function checkSignature(openpgp, org, armoredSignature, bytes, now) {
  try {
    await org.getSigningKey(org.getKeyID(), now);
  } catch (e) {
    refuse('organisation_invalid', e.message);
  }
  if (typeof armoredSignature !== 'string' || armoredSignature.length > 16 * 1024) refuse('bad_signature', 'too large');
  let signature;
  try {
    signature = await openpgp.readSignature({ armoredSignature });
  } catch {
    refuse('bad_signature', 'not one OpenPGP signature');
  }
  const packets = signature.packets;
  if (packets.length !== 1) refuse('bad_signature', 'not one OpenPGP signature');
  const packet = packets[0];
  if (packet.signatureType !== openpgp.enums.signature.binary) refuse('bad_signature', 'not a binary document signature');
  const primary = org.getKeyID();
  const issuerFingerprint = packet.issuerFingerprint && [...packet.issuerFingerprint]
    .map((b) => b.toString(16).padStart(2, '0')).join('').toUpperCase();
  if (!packet.issuerKeyID.equals(primary) || (issuerFingerprint && issuerFingerprint !== fingerprintOf(org))) {
    refuse('bad_signature', 'made by another key');
  }
  try {
    const { signatures } = await openpgp.verify({
      message: await openpgp.createMessage({ binary: bytes }),
      signature,
      verificationKeys: org,
      date: new Date(now.getTime() + CLOCK_SKEW_MS),
    });
    if (signatures.length !== 1 || !signatures[0].keyID.equals(primary)) refuse('bad_signature', 'made by another key');
    await signatures[0].verified;
  } catch (e) {
    if (e instanceof KeyListRefused) throw e;
    refuse('bad_signature', e.message);
  }
}

/** The certificates of a role's entries, as `entry_certs` in Rust. */
async function entryCerts(openpgp, role, entries, min, max) {
  if (entries.length < min || entries.length > max) refuse('count', `${entries.length} ${role}`);
  const out = [];
  for (const [i, entry] of entries.entries()) {
    const key = await oneCert(openpgp, entry.cert);
    if (!key) refuse('bad_entry', `${role} ${i + 1}: not one OpenPGP certificate`);
    if ([...entry.name].length > 200 || /[\u0000-\u001f\u007f-\u009f]/.test(entry.name)) {
      refuse('bad_entry', `${role} ${i + 1}: name`);
    }
    if (key.isPrivate()) refuse('secret_key_material', `${role} ${i + 1}`);
    if (entry.fingerprint !== fingerprintOf(key)) refuse('fingerprint_mismatch', `${role} ${i + 1}`);
    out.push({ fingerprint: entry.fingerprint, name: entry.name, key });
  }
  return out;
}

/**
 * Verifies a signed key list (the object `/api/v1/keys` carries as `key_list`) under the pinned
 * organisation fingerprint `pin` (uppercase hex), on UTC day `today` ("YYYY-MM-DD"). Resolves
 * { organisation, version, issued, expires, reviewers, couriers }, each member { fingerprint,
 * name, key } with `key` an openpgp.js key; rejects with a KeyListRefused.
 */
export async function verifyKeyList(openpgp, signed, pin, today, now = new Date()) {
  if (!exactly(signed, ['format', 'organisation_cert', 'key_list', 'signature'])
    || !['format', 'organisation_cert', 'key_list', 'signature'].every((f) => typeof signed[f] === 'string')) {
    refuse('malformed', 'the signed key list');
  }
  if (signed.format !== SIGNED_FORMAT) refuse('format', 'the signed key list');
  const org = await oneCert(openpgp, signed.organisation_cert);
  if (!org) refuse('organisation_cert');
  if (org.isPrivate()) refuse('organisation_secret');
  const organisation = fingerprintOf(org);
  if (pin && organisation !== pin.toUpperCase()) refuse('not_pinned', organisation);
  const bytes = new TextEncoder().encode(signed.key_list);
  await checkSignature(openpgp, org, signed.signature, bytes, now);
  let list;
  try {
    list = JSON.parse(signed.key_list);
  } catch {
    refuse('malformed', 'key_list');
  }
  const isEntry = (e) => exactly(e, ['fingerprint', 'name', 'cert'])
    && ['fingerprint', 'name', 'cert'].every((f) => typeof e[f] === 'string');
  if (!exactly(list, ['format', 'organisation', 'version', 'issued', 'expires', 'reviewers', 'couriers', 'page'])
    || typeof list.format !== 'string' || typeof list.organisation !== 'string'
    || !Number.isSafeInteger(list.version) || list.version < 0
    || !isDay(list.issued) || !isDay(list.expires)
    || !Array.isArray(list.reviewers) || !list.reviewers.every(isEntry)
    || !Array.isArray(list.couriers) || !list.couriers.every(isEntry)
    || list.page === null || typeof list.page !== 'object' || Array.isArray(list.page)) {
    refuse('malformed', 'key_list');
  }
  if (list.format !== LIST_FORMAT) refuse('format', 'key_list');
  if (list.organisation !== organisation) refuse('wrong_organisation');
  if (list.version === 0) refuse('version_zero');
  if (list.issued > list.expires) refuse('bad_dates');
  if (today > list.expires) refuse('expired', `${list.expires}, today ${today}`);
  const reviewers = await entryCerts(openpgp, 'reviewers', list.reviewers, 1, MAX_REVIEWERS);
  const couriers = await entryCerts(openpgp, 'couriers', list.couriers, 0, MAX_COURIERS);
  const seen = new Set();
  for (const { fingerprint } of [...reviewers, ...couriers]) {
    if (seen.has(fingerprint)) refuse('duplicate', fingerprint);
    seen.add(fingerprint);
  }
  return { organisation, version: list.version, issued: list.issued, expires: list.expires, reviewers, couriers };
}

/** True when `served` (the entries of a role in `/api/v1/keys`) names exactly `listed`'s keys. */
function sameFingerprints(served, listed) {
  if (!Array.isArray(served)) return false;
  const fingerprints = served.map((s) => String(s?.fingerprint ?? '').toUpperCase());
  return fingerprints.length === listed.length && new Set(fingerprints).size === listed.length
    && listed.every((l) => fingerprints.includes(l.fingerprint));
}

/**
 * The keys to encrypt to, from a `/api/v1/keys` answer, when the page shows the organisation
 * fingerprint `pin`: the answer must carry a key list and name `pin` as its organisation, the
 * list must verify under `pin` on `today`, the reviewers and couriers served must be exactly the
 * list's, and every listed key must be one the page can encrypt to now. Resolves { reviewers,
 * couriers } (openpgp.js keys, the list's own certificates) and the verified `list`.
 */
export async function vouchedKeys(openpgp, body, pin, today, now = new Date()) {
  if (!body || body.key_list === undefined || body.key_list === null) refuse('no_key_list');
  if (body.organisation !== pin) refuse('not_pinned', String(body.organisation).slice(0, 80));
  const list = await verifyKeyList(openpgp, body.key_list, pin, today, now);
  if (!sameFingerprints(body.reviewers, list.reviewers)) refuse('keys_differ', 'reviewers');
  if (!sameFingerprints(body.couriers ?? [], list.couriers)) refuse('keys_differ', 'couriers');
  for (const member of [...list.reviewers, ...list.couriers]) {
    try {
      await member.key.getEncryptionKey(undefined, now);
    } catch (e) {
      refuse('keys', `${member.fingerprint}: ${e.message}`);
    }
  }
  return { reviewers: list.reviewers.map((m) => m.key), couriers: list.couriers.map((m) => m.key), list };
}

/**
 * The organisation fingerprint the page shows (its `#organisation-key` data block, which must
 * agree with the `#org-key` section it displays), uppercase; null when the page shows none (no
 * key list configured). A data block that is malformed or disagrees with the display is refused.
 */
export function shownOrganisation(doc = document) {
  const block = doc.getElementById('organisation-key');
  const display = doc.querySelector('#org-key [data-fingerprint]');
  let pin = null;
  if (block) {
    try {
      pin = JSON.parse(block.textContent).fingerprint ?? null;
    } catch {
      refuse('page', 'the organisation data block is not JSON');
    }
  }
  if (pin === null && !display) return null;
  if (typeof pin !== 'string' || !FINGERPRINT.test(pin)) refuse('page', 'no fingerprint to check against');
  if (!display || display.dataset.fingerprint !== pin) refuse('page', 'the fingerprint shown is not the one checked');
  return pin;
}
