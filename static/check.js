// Resguardo check-in page (GET /check, docs/replies-v1.md): the reporter types the receipt's
// twelve words and reads the team's answers, then may add to the report.
//
// Everything happens here, in the browser: the words are read and checked on this device (a
// mistyped word is named by its position before anything is sent), the locator and the lock key
// are derived from them, and only the locator goes to the gateway, with a proof of work. The
// gateway answers every locator alike; only opening the locked box tells a real conversation
// from a wrong receipt. Each answer is decrypted with the reply key from the box and shown as the
// team's only when a reviewer key the report was sent to signed it for this conversation;
// anything else is a warning. The team numbers its answers and signs the numbers: they are shown
// in that order, a repeat is a warning, and numbers that never arrived are named (a gateway can
// hold answers back, but cannot renumber them). A follow-up is sealed here like a report, to the
// reviewer keys, with the receipt's follow-up token inside.
//
// The words leave the page as soon as they are read; the receipt, the lock key and the reply key
// are dropped once the answers are read. Nothing is written to storage, a URL or the console.
// Reply text is untrusted: it is only ever set as text.

import * as openpgp from './vendor/openpgp.min.mjs';
import { wordlist } from './vendor/bip39-spanish.mjs';
import { deriveReceipt, fromBase64, inOrder, openBox, parseReceipt, readReply, wordList } from './js/replies.js';
import { buildPayload, sha256Hex } from './js/payload.js';
import { reportFromAnswers } from './js/report.js';
import { cleanImage, cleanedName, imageKind } from './js/metadata.js';
import {
  POW_RETRY_CODES, errorMessage, humanSize, loadKeys, proofOfWork, renderFileList as listFiles, seal,
  sealTriage, shownFingerprints, translator, upload,
} from './js/send.js';

const main = document.getElementById('main');
const lang = main.dataset.lang;
const maxBytes = Number(main.dataset.maxBytes);
const stallSeconds = Number(main.dataset.stallSeconds || 60);
const strings = JSON.parse(document.getElementById('strings').textContent);
const t = translator(strings);
const list = wordList(wordlist);

const pageMessage = document.getElementById('page-message');
const checkForm = document.getElementById('check-form');
const receiptInput = document.getElementById('receipt-input');
const checkButton = document.getElementById('check-submit');
const checkStatus = document.getElementById('check-status');
const thread = document.getElementById('thread');
const repliesBox = document.getElementById('replies');
const followUp = document.getElementById('follow-up');
const followForm = document.getElementById('follow-up-form');
const followText = document.getElementById('f-follow-text');
const fileInput = document.getElementById('f-follow-files');
const fileList = document.getElementById('file-list');
const followButton = document.getElementById('follow-submit');
const cancelButton = document.getElementById('cancel');
const sendingNote = document.getElementById('sending-note');
const progress = document.getElementById('progress');
const statusLine = document.getElementById('status');
const followResult = document.getElementById('follow-result');

// What a follow-up carries of the open conversation: { locator, token } (hex). Not the receipt,
// and no key.
let conversationRef = null;
let checking = false;
let sending = null; // { abort } while an upload runs
let sendingFollowUp = false;
let cancelRequested = false;
let powWorker = null;
// Chosen files: { file, kind, sendAnyway, needsDecision }.
let chosen = [];
// Object URLs of the answers' attachments, revoked when the page goes.
let blobUrls = [];

const MAX_DESCRIPTION_CHARS = 200000;
// A follow-up is the reporter's text and files: no form fields (docs/replies-v1.md).
const FOLLOW_UP_FORM = {
  default_language: lang,
  fields: [{ id: 'description', type: 'description' }, { id: 'attachments', type: 'attachments' }],
};

/** A message at the top of the page, focused: a title and sentences. */
function showMessage(sentences) {
  const box = document.createElement('div');
  box.className = 'message';
  box.setAttribute('role', 'alert');
  const heading = document.createElement('p');
  const strong = document.createElement('strong');
  strong.textContent = t('page.error.title');
  heading.append(strong);
  box.append(heading);
  for (const sentence of sentences) {
    const p = document.createElement('p');
    p.textContent = sentence;
    box.append(p);
  }
  pageMessage.replaceChildren(box);
  pageMessage.focus();
  pageMessage.scrollIntoView({ block: 'start' });
}

const clearMessage = () => pageMessage.replaceChildren();

/** The sentence for words that are not a receipt. */
function receiptError(parsed) {
  switch (parsed.error) {
    case 'word_count': return t('page.check.error.word_count', { count: parsed.count });
    case 'unknown_word': return t('page.check.error.unknown_word', { position: parsed.position });
    case 'checksum': return t('page.check.error.checksum');
    default: return t('page.check.error.too_long');
  }
}

function markReceipt(invalid) {
  if (invalid) receiptInput.setAttribute('aria-invalid', 'true');
  else receiptInput.removeAttribute('aria-invalid');
  receiptInput.closest('.field').classList.toggle('invalid', invalid);
}

function revokeBlobs() {
  for (const url of blobUrls) URL.revokeObjectURL(url);
  blobUrls = [];
}

/** POST /api/v1/conversations/check with a proof of work (solved again if refused for that). */
async function fetchConversation(locator) {
  for (let attempt = 0; attempt < 4; attempt += 1) {
    const solution = await proofOfWork(t, {
      onSeconds: (seconds) => { checkStatus.textContent = t('page.status.pow', { seconds }); },
    });
    checkStatus.textContent = t('page.check.status.asking');
    const headers = { 'Content-Type': 'application/json' };
    if (solution) headers['Resguardo-PoW'] = solution;
    let response;
    try {
      response = await fetch('/api/v1/conversations/check', {
        method: 'POST', headers, body: JSON.stringify({ locator }), cache: 'no-store', credentials: 'omit',
      });
    } catch {
      throw new Error(t('page.error.network'));
    }
    let body = {};
    try { body = await response.json(); } catch { /* not JSON: handled by status */ }
    if (response.status === 200 && typeof body.box === 'string' && Array.isArray(body.replies)) return body;
    if (response.status >= 400 && POW_RETRY_CODES.has(body.error)) continue;
    throw new Error(errorMessage(t, strings, response.status, body));
  }
  throw new Error(t('page.error.busy'));
}

/** A fingerprint in groups of four, as the page lists keys. */
const grouped = (fingerprint) => fingerprint.match(/.{1,4}/g).join(' ');

/** A name made here for a downloaded attachment: letters, digits, '.', '-', '_' of its own. */
function safeName(n, index, name) {
  const kept = Array.from(name).filter((c) => /[\p{L}\p{N}._-]/u.test(c)).slice(0, 80).join('').replace(/^\.+/, '');
  return `${String(n).padStart(3, '0')}-${String(index + 1).padStart(2, '0')}-${kept || 'archivo'}`;
}

/** One answer as the page shows it (an entry of inOrder): the team's, or a warning. */
function renderReply(entry) {
  const { read } = entry;
  const verified = read.signer !== null && read.reply !== null;
  // Verified: the team's number and the day it wrote, both signed. Else the gateway's number and
  // day, untrusted: checked for shape only.
  const n = verified ? entry.number : (Number.isSafeInteger(entry.n) ? entry.n : '?');
  const day = typeof entry.day === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(entry.day) ? entry.day : '?';
  const article = document.createElement('article');
  article.className = 'reply';
  article.dataset.n = String(n);
  const head = document.createElement('h3');
  head.textContent = verified
    ? t('page.check.reply.heading_written', { n, day: read.reply.day })
    : t('page.check.reply.heading', { n, day });
  article.append(head);
  article.dataset.verified = verified ? 'yes' : 'no';
  const note = document.createElement('p');
  note.className = 'reply-origin';
  if (verified) {
    note.textContent = t('page.check.reply.verified', { fingerprint: grouped(read.signer) });
  } else {
    article.classList.add('unverified');
    const strong = document.createElement('strong');
    strong.textContent = t(read.reply ? 'page.check.reply.warning' : 'page.check.reply.unreadable');
    // A repeat names the answer it copies (its signed number).
    note.append(strong, ` ${t(`page.check.why.${read.why}`, { n: read.reply?.sequence })}`);
  }
  article.append(note);
  if (!read.reply) return article;
  const text = document.createElement('div');
  text.className = 'reply-text';
  text.textContent = read.reply.message;
  article.append(text);
  if (read.reply.attachments.length) {
    const ul = document.createElement('ul');
    ul.className = 'reply-files';
    read.reply.attachments.forEach((attachment, index) => {
      const li = document.createElement('li');
      const bytes = fromBase64(attachment.data);
      if (!verified || !bytes) {
        // An answer not verified as the team's offers no file to open.
        li.textContent = t('page.check.reply.file_withheld', { name: attachment.name });
      } else {
        // Downloaded, never shown here: a file is never rendered in this page's origin.
        const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
        blobUrls.push(url);
        const a = document.createElement('a');
        a.href = url;
        a.download = safeName(n, index, attachment.name);
        a.textContent = `${attachment.name} (${humanSize(bytes.length)})`;
        li.append(`${t('page.check.reply.file')} `, a);
      }
      ul.append(li);
    });
    article.append(ul);
  }
  return article;
}

/** The answers in the team's order, after a warning naming the ones that did not arrive. */
function renderThread({ replies, missing }) {
  const shown = replies.map(renderReply);
  if (missing.length) {
    const warning = document.createElement('p');
    warning.id = 'missing-replies';
    warning.className = 'message';
    warning.textContent = t('page.check.missing', { numbers: missing.join(', ') });
    shown.unshift(warning);
  }
  if (!replies.length) {
    const none = document.createElement('p');
    none.id = 'no-replies';
    none.textContent = t('page.check.none_yet');
    shown.push(none);
  }
  return shown;
}

async function onCheck(event) {
  event.preventDefault();
  if (checking) return;
  // A new check starts clean: no message, and nothing of an earlier thread.
  clearMessage();
  thread.hidden = true;
  followUp.hidden = true;
  repliesBox.replaceChildren();
  revokeBlobs();
  conversationRef = null;
  const parsed = await parseReceipt(receiptInput.value, list);
  if (parsed.error) {
    markReceipt(true);
    showMessage([receiptError(parsed)]);
    receiptInput.focus();
    return;
  }
  markReceipt(false);
  // The words leave the page as soon as they are read.
  receiptInput.value = '';
  checking = true;
  checkButton.disabled = true;
  let replyKey = null;
  let secret = null;
  try {
    const derived = await deriveReceipt(parsed.entropy);
    parsed.entropy.fill(0);
    const answer = await fetchConversation(derived.locatorHex);
    checkStatus.textContent = t('page.check.status.reading');
    const sealedBox = fromBase64(answer.box);
    const contents = sealedBox && await openBox(derived.lockKey, derived.locator, sealedBox);
    if (!contents) {
      showMessage([t('page.check.no_conversation')]);
      receiptInput.focus();
      return;
    }
    // openpgp.js keeps views of these bytes as the key's secret parts: zeroed only once used.
    secret = fromBase64(contents.key);
    contents.key = '';
    try {
      replyKey = secret && await openpgp.readPrivateKey({ binaryKey: secret });
    } catch {
      replyKey = null;
    }
    if (!replyKey) {
      showMessage([t('page.check.no_conversation')]);
      return;
    }
    // Verified only against the reviewers the report was sent to, as the box lists them: a
    // gateway that swaps the keys it serves cannot swap these.
    const served = answer.replies.length ? (await loadKeys(openpgp, null)).reviewers : [];
    const team = served.filter((k) => contents.reviewers.includes(k.getFingerprint().toUpperCase()));
    const readings = [];
    for (const { n, day, message } of answer.replies) {
      const sealed = typeof message === 'string' ? fromBase64(message) : null;
      const read = sealed
        ? await readReply(openpgp, { sealed, replyKey, team, locatorHex: derived.locatorHex })
        : { reply: null, signer: null, why: 'unreadable' };
      readings.push({ n, day, read });
    }
    repliesBox.replaceChildren(...renderThread(inOrder(readings)));
    conversationRef = { locator: derived.locatorHex, token: derived.token };
    thread.hidden = false;
    followUp.hidden = false;
    followResult.hidden = true;
    thread.focus();
  } catch (error) {
    showMessage([error.message || t('page.error.other')]);
  } finally {
    // The reply key is dropped once the answers are read.
    if (replyKey) for (const key of [replyKey.keyPacket, ...replyKey.subkeys.map((s) => s.keyPacket)]) key.clearPrivateParams?.();
    replyKey = null;
    secret?.fill(0);
    checking = false;
    checkButton.disabled = false;
    checkStatus.textContent = '';
  }
}

// ---------------------------------------------------------------------------------------------
// Follow-up

/** The chosen files; an image is cleaned when sent, and asked about only if that failed. */
function renderFileList() {
  listFiles(t, fileList, chosen, {
    noteOf: (entry) => (entry.kind === 'other' ? null : 'page.followup.files.image'),
    mustDecide: (entry) => entry.needsDecision,
    onRemove: (index) => {
      chosen.splice(index, 1);
      renderFileList();
    },
  });
}

const chosenBytes = () => chosen.reduce((n, c) => n + c.file.size, 0);

/** The follow-up's report and archive files: images cleaned, under neutral names. */
async function followUpReport(text, conversation) {
  const read = [];
  for (const entry of chosen) {
    const original = new Uint8Array(await entry.file.arrayBuffer());
    read.push(entry.kind === 'other' ? { bytes: original, cleaned: false } : cleanImage(entry.kind, original));
  }
  // An image whose hidden data could not be removed goes only if the reporter says so.
  const undecided = chosen.filter((entry, i) => entry.kind !== 'other' && !read[i].cleaned && !entry.sendAnyway);
  if (undecided.length) {
    for (const entry of undecided) entry.needsDecision = true;
    renderFileList();
    throw new Error(t('page.followup.files.not_cleaned', { names: undecided.map((e) => e.file.name).join(', ') }));
  }
  const described = [];
  const contents = [];
  for (const [index, entry] of chosen.entries()) {
    const { bytes, cleaned } = read[index];
    const name = cleaned ? cleanedName(entry.kind, index) : entry.file.name;
    described.push({ name, size: bytes.length, sha256: await sha256Hex(bytes), media_type: entry.file.type });
    contents.push(bytes);
  }
  const { report } = reportFromAnswers(FOLLOW_UP_FORM, {
    language: lang, sealedBy: 'browser', answers: { description: [text] }, files: described,
  });
  report.conversation = conversation;
  return { report, files: report.attachments.map((a, i) => ({ path: a.path, bytes: contents[i] })) };
}

function setSending(on) {
  if (on) cancelRequested = false;
  sendingFollowUp = on;
  followButton.disabled = on;
  cancelButton.hidden = !on;
  sendingNote.hidden = !on;
  progress.hidden = !on;
  if (!on) statusLine.textContent = '';
}

function checkCancelled() {
  if (cancelRequested) throw new Error(t('page.error.cancelled'));
}

function showFollowUpSent(id) {
  followForm.reset();
  chosen = [];
  renderFileList();
  clearMessage();
  const h = document.createElement('h3');
  h.textContent = t('page.followup.sent');
  const p = document.createElement('p');
  p.append(`${t('page.success.id')} `);
  const code = document.createElement('code');
  code.id = 'follow-up-id';
  code.textContent = id;
  p.append(code);
  followResult.replaceChildren(h, p);
  followResult.hidden = false;
  followResult.focus();
}

async function onFollowUp(event) {
  event.preventDefault();
  if (sendingFollowUp || !conversationRef) return;
  // This conversation's, even if another check starts while it is sent.
  const conversation = { ...conversationRef };
  clearMessage();
  const text = followText.value.trim();
  if (!text && !chosen.length) {
    showMessage([t('page.followup.empty')]);
    followText.focus();
    return;
  }
  if (Array.from(text).length > MAX_DESCRIPTION_CHARS || chosenBytes() > maxBytes) {
    showMessage([t('page.files.too_large', { limit: humanSize(maxBytes) })]);
    return;
  }
  setSending(true);
  try {
    const { reviewers, couriers } = await loadKeys(openpgp, shownFingerprints()).catch((error) => {
      throw new Error(error.mismatch ? t('page.keys.mismatch') : t('page.keys.failed'));
    });
    checkCancelled();
    statusLine.textContent = t('page.status.preparing');
    const { report, files } = await followUpReport(text, conversation);
    statusLine.textContent = t('page.status.encrypting');
    const plain = buildPayload(report, files);
    const sealed = await seal(openpgp, plain, reviewers);
    plain.fill(0);
    if (sealed.length > maxBytes) throw new Error(t('page.files.too_large', { limit: humanSize(maxBytes) }));
    let triage = await sealTriage(openpgp, couriers, report).catch(() => null);
    let answer;
    for (let attempt = 0; attempt < 4; attempt += 1) {
      checkCancelled();
      const solution = await proofOfWork(t, {
        onSeconds: (seconds) => { statusLine.textContent = t('page.status.pow', { seconds }); },
        onWorker: (worker) => { powWorker = worker; },
      });
      checkCancelled();
      progress.value = 0;
      answer = await upload(t, {
        bytes: sealed,
        headers: { 'Resguardo-PoW': solution, 'Resguardo-Triage': triage, 'Resguardo-Conversation-Touch': conversation.locator },
        stallSeconds,
        onPercent: (percent) => {
          progress.value = percent;
          statusLine.textContent = t('page.status.uploading', { percent });
        },
        onAbort: (abort) => { sending = abort ? { abort } : null; },
      });
      if (answer.status === 400 && answer.body.error === 'bad_triage' && triage) {
        triage = null;
        continue;
      }
      if (!(answer.status >= 400 && POW_RETRY_CODES.has(answer.body.error))) break;
    }
    if (answer.status === 201 && answer.body.id) {
      setSending(false);
      showFollowUpSent(answer.body.id);
      return;
    }
    showMessage([errorMessage(t, strings, answer.status, answer.body), t('page.error.kept')]);
  } catch (error) {
    showMessage([error.message, t('page.error.kept')]);
  } finally {
    setSending(false);
  }
}

function start() {
  document.getElementById('mode-loading').hidden = true;
  checkForm.hidden = false;
  document.getElementById('h-follow-files').textContent = t('page.files.hint', { limit: humanSize(maxBytes) });
  checkForm.addEventListener('submit', onCheck);
  followForm.addEventListener('submit', onFollowUp);
  fileInput.addEventListener('change', () => {
    for (const file of fileInput.files) chosen.push({ file, kind: imageKind(file), sendAnyway: false, needsDecision: false });
    fileInput.value = '';
    renderFileList();
    if (chosenBytes() > maxBytes) showMessage([t('page.files.too_large', { limit: humanSize(maxBytes) })]);
  });
  cancelButton.addEventListener('click', () => {
    cancelRequested = true;
    powWorker?.cancel?.();
    sending?.abort();
  });
  window.addEventListener('beforeunload', (e) => {
    if (sending) e.preventDefault();
  });
  window.addEventListener('pagehide', revokeBlobs);
}

start();
