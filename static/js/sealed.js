// The sealed report file, resguardo.sealed-report/1 (docs/uploads-v1.md, part 2), in the page:
// "seal now, send later". The same format, the same checks in the same order and the same error
// codes as src/sealed_file.rs, pinned for both by tests/vectors/sealed-reports/. No DOM: node
// runs it (tests/browser/sealed.test.mjs).
//
// The message is never read into the JavaScript heap: the reader reads at most the header's
// 16 KiB and hands back the rest as a Blob slice; the writer puts the header before the message
// in a new Blob.

import { BOX_BYTES, fromBase64 } from './replies.js';

/** The first line of every sealed report file (without its LF). */
export const FORMAT = 'resguardo.sealed-report/1';
/** The header (first line to blank line, both included) is at most this long. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** The largest message read unless told less: the largest limit a gateway may have. */
export const MAX_MESSAGE_BYTES = 2 * 1024 * 1024 * 1024;
/** The largest sealed triage envelope (src/triage.rs MAX_SEALED_BYTES). */
export const MAX_TRIAGE_BYTES = 6 * 1024;

const PREFIX = 'resguardo.sealed-report/';
const LF = 10;
const CR = 13;
const MAX_TRIAGE_CHARS = Math.ceil(MAX_TRIAGE_BYTES / 3) * 4;
const CONVERSATION_BYTES = 32 + BOX_BYTES;
const CONVERSATION_CHARS = Math.ceil(CONVERSATION_BYTES / 3) * 4;

/** A refusal: `code` is the name of the Rust SealedFileError (not_sealed_report, truncated, …). */
export class SealedFileError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'SealedFileError';
    this.code = code;
  }
}

const MESSAGES = {
  not_sealed_report: `not a sealed report file (it does not begin with ${FORMAT})`,
  unsupported_version: `a sealed report file of another version than ${FORMAT}`,
  truncated: 'the sealed report file is cut short (it ends inside its header)',
  header_too_long: `the sealed report file's header is longer than ${MAX_HEADER_BYTES} bytes`,
  crlf: "the sealed report file's header has CR LF line ends",
  bad_line: "the sealed report file's header is malformed",
  bad_triage: "the sealed report file's triage line is malformed",
  bad_conversation: "the sealed report file's conversation line is malformed",
  bad_touch: "the sealed report file's touch line is malformed",
  conversation_and_touch: 'the sealed report file both starts and continues a conversation',
  empty_message: 'the sealed report file holds no message after its header',
  message_too_large: 'the sealed message is too large',
};

const fail = (code, detail) => new SealedFileError(code, detail ? `${MESSAGES[code]}: ${detail}` : MESSAGES[code]);

// Values, checked as the gateway's header parsers check them.

function triageValue(text) {
  const bytes = text.length <= MAX_TRIAGE_CHARS ? fromBase64(text) : null;
  if (!bytes || bytes.length === 0 || bytes.length > MAX_TRIAGE_BYTES) throw fail('bad_triage');
  return text;
}

function conversationValue(text) {
  const bytes = text.length === CONVERSATION_CHARS ? fromBase64(text) : null;
  if (!bytes || bytes.length !== CONVERSATION_BYTES) throw fail('bad_conversation');
  return text;
}

function touchValue(text) {
  if (!/^[0-9a-f]{64}$/.test(text)) throw fail('bad_touch');
  return text;
}

function checkMessageLength(length, limit) {
  if (length === 0) throw fail('empty_message');
  if (length > limit) throw fail('message_too_large', `over ${limit} bytes`);
}

const ascii = (bytes) => {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return text;
};

/**
 * Reads a sealed report file (a Blob or File). Resolves to `{ triage, conversation, touch,
 * message }` (the first three the header values as strings, or null; `message` a Blob), or
 * rejects with a SealedFileError. `maxMessageBytes` is the gateway's limit when known.
 */
export async function readSealedReport(blob, { maxMessageBytes = MAX_MESSAGE_BYTES } = {}) {
  const bytes = new Uint8Array(await blob.slice(0, MAX_HEADER_BYTES).arrayBuffer());
  let at = 0;
  const raw = () => {
    const lf = bytes.indexOf(LF, at);
    const line = bytes.subarray(at, lf < 0 ? bytes.length : lf + 1);
    at += line.length;
    return line;
  };
  const terminated = (line) => {
    if (line[line.length - 1] !== LF) throw fail(at >= MAX_HEADER_BYTES ? 'header_too_long' : 'truncated');
    if (line.includes(CR)) throw fail('crlf');
    return line.subarray(0, line.length - 1);
  };
  const value = (name) => {
    const line = ascii(terminated(raw()));
    if (!line.startsWith(`${name}: `)) throw fail('bad_line', `expected the ${name} line`);
    const text = line.slice(name.length + 2);
    return text === '-' ? null : text;
  };

  const first = raw();
  const seen = ascii(first.subarray(0, PREFIX.length));
  if (!PREFIX.startsWith(seen)) throw fail('not_sealed_report');
  if (ascii(terminated(first)) !== FORMAT) throw fail('unsupported_version');
  let triage = value('triage');
  if (triage !== null) triage = triageValue(triage);
  let conversation = value('conversation');
  if (conversation !== null) conversation = conversationValue(conversation);
  let touch = value('touch');
  if (touch !== null) touch = touchValue(touch);
  if (conversation !== null && touch !== null) throw fail('conversation_and_touch');
  if (terminated(raw()).length !== 0) throw fail('bad_line', 'expected the blank line');
  checkMessageLength(blob.size - at, maxMessageBytes);
  return { triage, conversation, touch, message: blob.slice(at, blob.size, 'application/octet-stream') };
}

/**
 * Writes a sealed report file: `triage` (base64 of the sealed triage envelope), `conversation`
 * (the Resguardo-Conversation value) and `touch` (the locator, hex) are strings or null;
 * `message` is the sealed message, a Blob or a Uint8Array. Returns a Blob; throws a
 * SealedFileError for a value the reader would refuse.
 */
export function writeSealedReport({ triage = null, conversation = null, touch = null, message }) {
  const line = (name, text, check) => {
    if (text === null || text === undefined) return `${name}: -\n`;
    if (typeof text !== 'string') throw fail(`bad_${name}`);
    return `${name}: ${check(text)}\n`;
  };
  const header = `${FORMAT}\n${line('triage', triage, triageValue)}${line('conversation', conversation, conversationValue)}${line('touch', touch, touchValue)}\n`;
  if (conversation != null && touch != null) throw fail('conversation_and_touch');
  const size = message instanceof Blob ? message.size : message?.length;
  if (typeof size !== 'number') throw new TypeError('message must be a Blob or a Uint8Array');
  checkMessageLength(size, MAX_MESSAGE_BYTES);
  return new Blob([header, message], { type: 'application/octet-stream' });
}
