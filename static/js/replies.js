// Replies v1 in the browser (docs/replies-v1.md): the receipt (twelve words of the BIP-39 Spanish
// list), what is derived from it, the locked reply key, and how a reply is read and checked. The
// same rules as src/replies/ in Rust, pinned for both by tests/vectors/replies/.
//
// No DOM and no imports: the word list (/vendor/bip39-spanish.mjs, from @scure/bip39) and
// openpgp.js are handed in, so Node runs exactly this file over the vectors. Secrets stay in
// memory only: nothing here writes to storage, a URL or the console, and the byte arrays that held
// a secret are zeroed once used (the lock key lives as a non-extractable CryptoKey).

/** Words in a receipt. */
export const WORDS = 12;
/** Letters that identify a word of the Spanish list (accents dropped). */
export const PREFIX_LETTERS = 4;
/** Longest receipt text read (12 words of at most 9 letters, with generous room for spaces). */
export const MAX_RECEIPT_CHARS = 400;
/** The locked box's plaintext, padded with spaces to this size. */
export const PLAINTEXT_BYTES = 3088;
/** A locked box: nonce, ciphertext, tag. */
export const BOX_BYTES = 12 + PLAINTEXT_BYTES + 16;
/** The schema of a reply's plaintext. */
export const REPLY_SCHEMA = 'resguardo.reply/1';
/** The user ID of every reply key: it names nobody. */
export const REPLY_KEY_USER_ID = 'Resguardo reply key';

const MAX_REPLY_CHARS = 20000;
const MAX_REPLY_ATTACHMENTS = 10;
const MAX_REPLY_ATTACHMENT_BYTES = 8 * 1024 * 1024;
const MAX_SEALED_REPLY_BYTES = 12 * 1024 * 1024;
/** Highest sequence number a reply may carry (MAX_REPLY_SEQUENCE in message.rs). */
export const MAX_REPLY_SEQUENCE = 100000;

const encoder = new TextEncoder();
const SALT = encoder.encode('resguardo receipt/1');
const LOCATOR_INFO = encoder.encode('conversation locator');
const LOCK_INFO = encoder.encode('reply key lock');
const TOKEN_INFO = encoder.encode('follow-up token');
const AAD_PREFIX = encoder.encode('resguardo.locked-reply-key/1');

// ---------------------------------------------------------------------------------------------
// Bytes

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Exactly `length` bytes of lowercase hex, else null. */
export function fromHex(text, length) {
  if (typeof text !== 'string' || text.length !== 2 * length || !/^[0-9a-f]*$/.test(text)) return null;
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 1) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toBase64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

/** Standard base64 with padding, strictly (as Rust's STANDARD engine reads it), else null. */
export function fromBase64(text) {
  if (typeof text !== 'string' || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  let binary;
  try { binary = atob(text); } catch { return null; }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) out[i] = binary.charCodeAt(i);
  // Non-canonical trailing bits are refused, as Rust does: the text must round-trip.
  return toBase64(out) === text ? out : null;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The receipt

/** Lowercase, accents dropped (NFD without combining marks), as `fold` in receipt.rs. */
export function fold(word) {
  return word.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
}

const chars = (text) => Array.from(text).length;

/**
 * The receipt's word list, checked: 2,048 distinct words that their first 4 letters (accents
 * dropped) identify. `words` is the list as @scure/bip39 ships it.
 */
export function wordList(words) {
  if (!Array.isArray(words) || words.length !== 2048 || !words.every((w) => typeof w === 'string' && w)) {
    throw new Error('the receipt word list must have 2048 words');
  }
  const folded = words.map(fold);
  if (new Set(folded.map((w) => Array.from(w).slice(0, PREFIX_LETTERS).join(''))).size !== 2048) {
    throw new Error('the receipt word list is not unique in 4 letters');
  }
  return Object.freeze({ words: Object.freeze([...words]), folded: Object.freeze(folded) });
}

async function checksum(entropy) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', entropy))[0] & 0xf0;
}

function readBits(bytes, start) {
  let value = 0;
  for (let i = 0; i < 11; i += 1) {
    const bit = start + i;
    value = (value << 1) | ((bytes[bit >> 3] >> (7 - (bit & 7))) & 1);
  }
  return value;
}

function writeBits(bytes, start, value) {
  for (let i = 0; i < 11; i += 1) {
    if ((value >> (10 - i)) & 1) {
      const bit = start + i;
      bytes[bit >> 3] |= 1 << (7 - (bit & 7));
    }
  }
}

/** 16 bytes from the browser's CSPRNG: a new receipt. */
export function newEntropy() {
  return crypto.getRandomValues(new Uint8Array(16));
}

/** The twelve words of a receipt, as the list spells them (BIP-39: NFKD). */
export async function receiptWords(entropy, list) {
  if (!(entropy instanceof Uint8Array) || entropy.length !== 16) throw new Error('a receipt is 16 bytes');
  const bits = concat(entropy, Uint8Array.of(await checksum(entropy)));
  const words = [];
  for (let i = 0; i < WORDS; i += 1) words.push(list.words[readBits(bits, i * 11)]);
  bits.fill(0);
  return words;
}

/**
 * Reads typed words: case, accents and extra spaces (or commas, dots, hyphens) do not matter,
 * and a word may be cut after its first 4 letters. Resolves { entropy } or, when refused, one
 * of { error: 'too_long' }, { error: 'word_count', count }, { error: 'unknown_word', position }
 * (1-based) or { error: 'checksum' } (every word is in the list, but a word is wrong or two are
 * swapped).
 */
export async function parseReceipt(text, list) {
  if (typeof text !== 'string' || chars(text) > MAX_RECEIPT_CHARS) return { error: 'too_long' };
  const tokens = text.split(/[\p{White_Space},.-]/u).filter((t) => t !== '').map(fold);
  if (tokens.length !== WORDS) return { error: 'word_count', count: tokens.length };
  const bits = new Uint8Array(17);
  for (const [i, token] of tokens.entries()) {
    const long = chars(token) >= PREFIX_LETTERS;
    const index = list.folded.findIndex((w) => w.startsWith(token) && (long || w === token));
    if (index < 0) {
      bits.fill(0);
      return { error: 'unknown_word', position: i + 1 };
    }
    writeBits(bits, i * 11, index);
  }
  const entropy = bits.slice(0, 16);
  const ok = (bits[16] & 0xf0) === await checksum(entropy);
  bits.fill(0);
  if (!ok) {
    entropy.fill(0);
    return { error: 'checksum' };
  }
  return { entropy };
}

// ---------------------------------------------------------------------------------------------
// Derivations

/** HKDF-SHA256(ikm = entropy, salt = "resguardo receipt/1", info, 32 bytes). */
export async function hkdf(entropy, info) {
  const key = await crypto.subtle.importKey('raw', entropy, 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: SALT, info }, key, 256);
  return new Uint8Array(bits);
}

/** The conversation's locator (32 bytes). */
export const locatorOf = (entropy) => hkdf(entropy, LOCATOR_INFO);

/** The lock key's bytes: for the vectors only; use `deriveReceipt`. */
export const lockKeyBytesOf = (entropy) => hkdf(entropy, LOCK_INFO);

/**
 * The follow-up token (64 hex): inside every report of the conversation, so reviewers thread a
 * follow-up only if it was sent with the receipt (the gateway knows the locator, not this).
 */
export const followUpTokenOf = async (entropy) => toHex(await hkdf(entropy, TOKEN_INFO));

/** A lock key's bytes as a non-extractable AES-256-GCM key; the bytes are zeroed. */
export async function importLockKey(bytes) {
  try {
    return await crypto.subtle.importKey('raw', bytes, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
  } finally {
    bytes.fill(0);
  }
}

/** What a receipt gives: { locator (32 bytes), locatorHex, lockKey (CryptoKey), token (hex) }. */
export async function deriveReceipt(entropy) {
  const locator = await locatorOf(entropy);
  const lockKey = await importLockKey(await lockKeyBytesOf(entropy));
  return { locator, locatorHex: toHex(locator), lockKey, token: await followUpTokenOf(entropy) };
}

// ---------------------------------------------------------------------------------------------
// The locked box (resguardo.locked-reply-key/1)

const aad = (locator) => concat(AAD_PREFIX, locator);

/**
 * Seals { key: base64 secret key, reviewers: [fingerprint hex] } for the conversation at
 * `locator`: nonce || AES-256-GCM(plaintext padded with spaces to 3,088 bytes). `nonce` is
 * random unless given (the vectors only).
 */
export async function sealBox(lockKey, locator, contents, nonce = crypto.getRandomValues(new Uint8Array(12))) {
  const json = encoder.encode(JSON.stringify({ key: contents.key, reviewers: contents.reviewers }));
  if (json.length > PLAINTEXT_BYTES) {
    json.fill(0);
    throw new Error('the reply key and the reviewers do not fit in a locked box');
  }
  const plain = new Uint8Array(PLAINTEXT_BYTES).fill(0x20);
  plain.set(json);
  json.fill(0);
  try {
    const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad(locator), tagLength: 128 }, lockKey, plain);
    return concat(nonce, new Uint8Array(sealed));
  } finally {
    plain.fill(0);
  }
}

const exactKeys = (value, keys) => value !== null && typeof value === 'object' && !Array.isArray(value)
  && Object.keys(value).length === keys.length && keys.every((k) => Object.hasOwn(value, k));

/**
 * Opens a box: its contents, or null when it is not a box of this receipt (a wrong receipt, the
 * gateway's decoy, damage: the same to us).
 */
export async function openBox(lockKey, locator, sealed) {
  if (!(sealed instanceof Uint8Array) || sealed.length !== BOX_BYTES) return null;
  let plain;
  try {
    plain = new Uint8Array(await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: sealed.subarray(0, 12), additionalData: aad(locator), tagLength: 128 },
      lockKey, sealed.subarray(12),
    ));
  } catch {
    return null;
  }
  try {
    const contents = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plain).replace(/ +$/, ''));
    const ok = exactKeys(contents, ['key', 'reviewers']) && typeof contents.key === 'string'
      && Array.isArray(contents.reviewers) && contents.reviewers.every((r) => typeof r === 'string');
    return ok ? contents : null;
  } catch {
    return null;
  } finally {
    plain.fill(0);
  }
}

// ---------------------------------------------------------------------------------------------
// Starting a conversation

/**
 * A new reply key, as src/replies/message.rs makes one: OpenPGP v4, Ed25519 certification-only
 * primary key, X25519 encryption subkey, user ID "Resguardo reply key", no expiry, no
 * passphrase (the box is its protection). Created at time 0, so it says nothing of when the
 * report was written and a device whose clock is ahead cannot make a key "not yet valid".
 */
export async function generateReplyKey(openpgp) {
  const date = new Date(0);
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name: REPLY_KEY_USER_ID }],
    date,
    format: 'object',
    config: { v6Keys: false, aeadProtect: false },
  });
  // openpgp.js makes the primary key "certify and sign"; the reply key certifies only, so its
  // self-signature is made again with that flag alone.
  const [user] = privateKey.users;
  const [selfSignature] = user.selfCertifications;
  selfSignature.keyFlags = [openpgp.enums.keyFlags.certifyKeys];
  selfSignature.rawNotations = [];
  await selfSignature.sign(privateKey.keyPacket, { userID: user.userID, key: privateKey.keyPacket }, date, false, openpgp.config);
  return privateKey;
}

/**
 * Everything a first report needs to start a conversation (docs/replies-v1.md): a new receipt
 * (`entropy`: show its words once, then zero it), the report's `conversation` object and the
 * Resguardo-Conversation header. `reviewers` are the keys the report is encrypted to.
 */
export async function startConversation(openpgp, reviewers) {
  const entropy = newEntropy();
  const { locator, locatorHex, lockKey, token } = await deriveReceipt(entropy);
  const replyKey = await generateReplyKey(openpgp);
  const secret = replyKey.write();
  const contents = {
    key: toBase64(secret),
    reviewers: reviewers.map((k) => k.getFingerprint().toUpperCase()),
  };
  secret.fill(0);
  const sealed = await sealBox(lockKey, locator, contents);
  contents.key = '';
  return {
    entropy,
    locatorHex,
    conversation: { locator: locatorHex, reply_key: replyKey.toPublic().armor(), token },
    header: toBase64(concat(locator, sealed)),
  };
}

// ---------------------------------------------------------------------------------------------
// Reading replies

/** A day as Rust's UtcDay reads it: YYYY-MM-DD, and a date that exists. */
function isDay(text) {
  const parts = typeof text === 'string' && /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!parts) return false;
  const [year, month, day] = parts.slice(1).map(Number);
  // setUTCFullYear, unlike Date.UTC, does not read years 0-99 as 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

function checkReply(value) {
  const fields = ['schema', 'conversation', 'sequence', 'day', 'language', 'message', 'attachments'];
  if (!exactKeys(value, fields)) return 'not_a_reply';
  const { schema, conversation, sequence, day, language, message, attachments } = value;
  if (typeof schema !== 'string' || typeof language !== 'string' || typeof message !== 'string'
    || fromHex(conversation, 32) === null || !Number.isInteger(sequence) || sequence < 1
    || sequence > MAX_REPLY_SEQUENCE || !isDay(day) || !Array.isArray(attachments)
    || !attachments.every((a) => exactKeys(a, ['name', 'media_type', 'data'])
      && typeof a.name === 'string' && typeof a.media_type === 'string' && typeof a.data === 'string')) {
    return 'not_a_reply';
  }
  if (schema !== REPLY_SCHEMA) return 'unknown_schema';
  // Over a bound: the text (20,000 characters), the attachments (10, 8 MiB in all), a name.
  if (chars(message) > MAX_REPLY_CHARS || attachments.length > MAX_REPLY_ATTACHMENTS
    || attachments.reduce((n, a) => n + Math.floor(a.data.length / 4) * 3, 0) > MAX_REPLY_ATTACHMENT_BYTES
    || attachments.some((a) => chars(a.name) > 255 || chars(a.media_type) > 127)) {
    return 'too_large';
  }
  return null;
}

/**
 * Decrypts a sealed reply with the reply key and checks it, as read_reply in Rust: verified only
 * with a good signature by a signing key of one of `team` (the reviewer certificates the box
 * lists) over a reply whose `conversation` is `locatorHex`. Resolves { reply, signer, why }:
 * `signer` is the reviewer's fingerprint (uppercase hex) when verified, else null and `why`
 * says what failed: 'too_large', 'unreadable' (not for this reply key, or damaged),
 * 'not_a_reply', 'unknown_schema', 'not_signed' (by a reviewer key the report was sent to),
 * 'other_conversation' (a real reply moved here). `reply` is null when it could not be read;
 * else it has the team's signed `sequence` and `day` (a reply without them is 'not_a_reply').
 */
export async function readReply(openpgp, { sealed, replyKey, team, locatorHex }) {
  const failed = (why) => ({ reply: null, signer: null, why });
  if (!(sealed instanceof Uint8Array) || sealed.length > MAX_SEALED_REPLY_BYTES) return failed('too_large');
  let data;
  let signatures;
  try {
    const message = await openpgp.readMessage({ binaryMessage: sealed });
    ({ data, signatures } = await openpgp.decrypt({
      message,
      decryptionKeys: replyKey,
      verificationKeys: team.length ? team : undefined,
      expectSigned: false,
      format: 'binary',
    }));
  } catch {
    return failed('unreadable');
  }
  let reply;
  try {
    reply = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch {
    reply = null;
  }
  const shape = reply === null ? 'not_a_reply' : checkReply(reply);
  if (shape === 'not_a_reply') {
    data.fill(0);
    return failed(shape);
  }
  let signer = null;
  for (const signature of signatures || []) {
    try {
      await signature.verified;
      const cert = team.find((k) => k.getKeys(signature.keyID).length > 0);
      if (cert) {
        signer = cert.getFingerprint().toUpperCase();
        break;
      }
    } catch {
      // A bad or unknown signature verifies nothing; the reply is shown as a warning.
    }
  }
  data.fill(0);
  let why = shape;
  if (!why && !signer) why = 'not_signed';
  if (!why && reply.conversation !== locatorHex) why = 'other_conversation';
  return { reply, signer: why ? null : signer, why };
}

/**
 * The answers in the team's order, as in_order in src/submit/conversation.rs: a gateway can hold
 * back, repeat or reorder answers, but cannot renumber them. `readings` are [{ n, day, read }]
 * in the gateway's order (`read` from readReply). Verified answers come first, by their signed
 * sequence numbers; a verified answer identical to one already seen becomes a warning (`why`
 * 'repeated'; a different answer with the same number stays the team's); the rest follow as
 * they came. Each gets `number`: the team's once verified, else
 * the gateway's `n`. `missing` lists the numbers below the highest verified one that did not
 * arrive (held back or dropped by the gateway, or not yet pushed).
 */
export function inOrder(readings) {
  // sequence → the first answer with it (as JSON: the team's writer is deterministic).
  const seen = new Map();
  const marked = readings.map((r) => {
    if (r.read.signer === null) return r;
    const { sequence } = r.read.reply;
    const text = JSON.stringify(r.read.reply);
    // The very same answer again: the gateway repeated it. Two different answers numbered alike
    // (a reply written again after a failure) are both the team's.
    if (seen.get(sequence) === text) return { ...r, read: { ...r.read, signer: null, why: 'repeated' } };
    if (!seen.has(sequence)) seen.set(sequence, text);
    return r;
  });
  const verified = marked.filter((r) => r.read.signer !== null)
    .sort((a, b) => a.read.reply.sequence - b.read.reply.sequence)
    .map((r) => ({ ...r, number: r.read.reply.sequence }));
  const warnings = marked.filter((r) => r.read.signer === null).map((r) => ({ ...r, number: r.n }));
  const highest = Math.max(0, ...seen.keys());
  const missing = [];
  for (let n = 1; n < highest; n += 1) if (!seen.has(n)) missing.push(n);
  return { replies: [...verified, ...warnings], missing };
}
