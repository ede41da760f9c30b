// Resguardo submission page: encrypts the report in the browser before anything leaves it.
//
// Progressive enhancement of the server-rendered form. Without JavaScript the form posts to
// /submit and the gateway seals it on arrival; with JavaScript this module takes over: it builds
// payload v1 (docs/payload-v1.md), removes image metadata (and says so only when it checked),
// encrypts with openpgp.js to every reviewer key the gateway publishes, and uploads only the
// ciphertext. Nothing is sent in the clear, not even a field name; nothing is fetched from
// anywhere but this gateway.
//
// What a reporter on a bad connection and a cheap phone needs, and this file does: every message
// at the top of the page in the page's language; every missing answer listed at once; files over
// the limit refused before they are read; the keys fetched again if they failed once; a clear
// "NOT sent" when the upload stalls, with a way to cancel; and a quiet retry when the proof of
// work is refused for reasons that are not the reporter's (a restart, an expired challenge).
//
// Every report starts an anonymous conversation (docs/replies-v1.md): a receipt of twelve words
// made here and a reply key locked under it. The words are shown as soon as the report is sealed,
// while it uploads: if the gateway's answer is lost, the report may have arrived all the same,
// and the reporter must already hold its words. A retry sends the same receipt (and, if nothing
// was changed, the same sealed message); a "conversation exists" then means the first try
// arrived. Nothing of it is kept on this device.

import * as openpgp from './vendor/openpgp.min.mjs';
import { buildPayload, sha256Hex, paddedLength } from './js/payload.js';
import { reportFromAnswers } from './js/report.js';
import { cleanImage, imageKind } from './js/metadata.js';
import { wordlist } from './vendor/bip39-spanish.mjs';
import { receiptWords, startConversation, wordList } from './js/replies.js';
import {
  POW_RETRY_CODES, errorMessage as refusal, humanSize, loadKeys as fetchKeys,
  proofOfWork as solveChallenge, renderFileList as listFiles, seal, sealTriage as sealTriageTo,
  shownFingerprints, translator, upload as uploadTo,
} from './js/send.js';
import { grouped, shownOrganisation } from './js/keylist.js';

const main = document.getElementById('main');
const form = document.getElementById('report');
const lang = main.dataset.lang;
const maxBytes = Number(main.dataset.maxBytes);
// An upload that makes no progress for this long has failed (the gateway drops it too).
const stallSeconds = Number(main.dataset.stallSeconds || 60);
const submitButton = document.getElementById('submit');
const cancelButton = document.getElementById('cancel');
const sendingNote = document.getElementById('sending-note');
const statusLine = document.getElementById('status');
const progress = document.getElementById('progress');
const fileInput = document.getElementById('f-attachments');
const fileList = document.getElementById('file-list');
const pageMessage = document.getElementById('page-message');
const result = document.getElementById('result');
const sendingReceipt = document.getElementById('receipt-sending');

const strings = JSON.parse(document.getElementById('strings').textContent);
const formDefinition = JSON.parse(document.getElementById('form-definition').textContent);
let reviewerKeys = null;
let courierKeys = [];
// The organisation fingerprint the page shows (null: no key list): the keys must be the ones its
// signed key list vouches for. Once they are not, the page refuses to send for good.
let organisationPin = null;
let keysRefused = false;
// Chosen files: { file, kind, state: 'checking' | 'cleaned' | 'not_cleaned' | 'other', bytes,
// sendAnyway }.
let chosen = [];
let sending = null; // { abort } while an upload runs
let cancelRequested = false;
let powWorker = null;
// The report being sent, from its sealing until the gateway has it: { conversation, tries,
// digest, sealed }. `conversation` (null once the report goes without one) is { header, ref,
// words, uncertain }: `uncertain` holds the digests of the sealed messages whose upload ended
// with no answer, which may have arrived. `digest` is the SHA-256 of what `sealed` seals.
let outgoing = null;

/** A page string; never a key name (the server embeds every page and error string). */
const t = translator(strings);
const receiptList = wordList(wordlist);
/** A refused conversation (400 bad_conversation, or 409 conversation_exists when no try of
 * ours can have started it) gets a new receipt this many times; then the report goes without
 * one, never lost for it. */
const CONVERSATION_TRIES = 3;

function setStatus(text) {
  statusLine.textContent = text;
}

/**
 * Shows a message at the top of the page and moves focus there: a title, sentences, and links
 * to fields ([{ id, label }]).
 */
function showMessage(sentences, links = [], kind = 'error') {
  const box = document.createElement('div');
  box.className = 'message';
  box.dataset.kind = kind;
  const title = t('page.error.title');
  box.setAttribute('role', 'alert');
  const heading = document.createElement('p');
  const strong = document.createElement('strong');
  strong.textContent = title;
  heading.append(strong);
  box.append(heading);
  for (const sentence of sentences) {
    const p = document.createElement('p');
    p.textContent = sentence;
    box.append(p);
  }
  if (links.length) {
    const ul = document.createElement('ul');
    for (const { id, label } of links) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = `#f-${id}`;
      a.textContent = label;
      a.addEventListener('click', (e) => {
        e.preventDefault();
        const target = document.getElementById(`f-${id}`);
        target?.focus();
        target?.scrollIntoView({ block: 'center' });
      });
      li.append(a);
      ul.append(li);
    }
    box.append(ul);
  }
  pageMessage.replaceChildren(box);
  pageMessage.focus();
  pageMessage.scrollIntoView({ block: 'start' });
}

function clearMessage() {
  pageMessage.replaceChildren();
}

async function loadKeys() {
  if (keysRefused) throw Object.assign(new Error('not vouched'), { notVouched: true });
  const { reviewers, couriers } = await fetchKeys(openpgp, shownFingerprints(), organisationPin);
  courierKeys = couriers;
  return reviewers;
}

/** The sentence for keys that could not be used; keys the organisation did not vouch for
 * disable sending for the life of the page. */
function keysProblem(error) {
  if (error.notVouched) {
    keysRefused = true;
    reviewerKeys = null;
    courierKeys = [];
    submitButton.disabled = true;
    main.dataset.keys = 'refused';
    // "Ready: your report is protected here" is no longer true.
    document.getElementById('mode-browser').hidden = true;
    return t('page.keys.not_vouched');
  }
  return error.mismatch ? t('page.keys.mismatch') : t('page.keys.failed');
}

function showKeysRefused() {
  showMessage([t('page.keys.not_vouched')], [], 'keys-refused');
}

/** The keys, fetched again if an earlier try failed. */
async function ensureKeys() {
  if (reviewerKeys) return reviewerKeys;
  setStatus(t('page.status.keys_retry'));
  try {
    reviewerKeys = await loadKeys();
    return reviewerKeys;
  } catch (error) {
    throw Object.assign(new Error(keysProblem(error)), { notVouched: keysRefused });
  } finally {
    setStatus('');
  }
}

/** What the sealed message will weigh, roughly, for the chosen files (padding included). */
function estimatedSealedSize() {
  const block = (n) => Math.ceil(n / 512) * 512;
  const files = chosen.reduce((n, c) => n + 512 + block(c.file.size), 0);
  const description = document.getElementById('f-description')?.value.length || 0;
  const text = 512 + block(4096 + 4 * description);
  return paddedLength(text + files + 512 + 1024) + 4096;
}

function tooLarge() {
  return estimatedSealedSize() > maxBytes;
}

/** What the page says of each file, by its state. */
const FILE_NOTES = {
  checking: 'page.files.checking',
  cleaned: 'page.files.stripped',
  not_cleaned: 'page.files.not_stripped',
  other: 'page.files.warning',
};

function renderFileList() {
  listFiles(t, fileList, chosen, {
    noteOf: (entry) => FILE_NOTES[entry.state],
    mustDecide: (entry) => entry.state === 'not_cleaned',
    onRemove: (index) => {
      chosen.splice(index, 1);
      renderFileList();
    },
  });
  // Refused as soon as chosen, before anything is read or encrypted.
  if (tooLarge()) {
    submitButton.disabled = true;
    showMessage([t('page.files.too_large', { limit: humanSize(maxBytes) })], [], 'too-large');
  } else {
    submitButton.disabled = sending !== null || keysRefused;
    if (pageMessage.querySelector('[data-kind="too-large"]')) clearMessage();
    startChecks();
  }
}

/** Starts the check of every image not checked yet (never while the files are over the limit). */
function startChecks() {
  for (const entry of chosen) {
    if (entry.state === 'checking' && !entry.pending) entry.pending = checkImage(entry);
  }
}

/** Images are read and cleaned as soon as they are chosen, so the page can say what it did. */
async function checkImage(entry) {
  try {
    const bytes = new Uint8Array(await entry.file.arrayBuffer());
    const { bytes: cleaned, cleaned: ok } = cleanImage(entry.kind, bytes);
    entry.bytes = cleaned;
    entry.state = ok ? 'cleaned' : 'not_cleaned';
  } catch {
    entry.state = 'not_cleaned';
  }
  if (chosen.includes(entry)) renderFileList();
}

function addFiles(files) {
  for (const file of files) {
    const kind = imageKind(file);
    chosen.push({ file, kind, state: kind === 'other' ? 'other' : 'checking', bytes: null, sendAnyway: false });
  }
  renderFileList(); // starts the image checks, unless the files are over the limit
}

/** The label of a field, as the page shows it. */
function labelOf(id) {
  const label = document.querySelector(`label[for="f-${id}"]`) || document.querySelector(`#f-${id} legend`);
  const text = label ? label.childNodes[0]?.textContent || label.textContent : id;
  return text.trim();
}

function markMissing(ids) {
  for (const el of form.querySelectorAll('.field.invalid')) el.classList.remove('invalid');
  for (const el of form.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll('.field-error.js')) el.remove();
  for (const id of ids) {
    const control = document.getElementById(`f-${id}`);
    if (!control) continue;
    const container = control.closest('.field') || control;
    container.classList.add('invalid');
    control.setAttribute('aria-invalid', 'true');
    const note = document.createElement('p');
    note.className = 'field-error js';
    note.id = `e-${id}`;
    note.textContent = t('page.error.field_missing');
    container.insertBefore(note, container.children[1] || null);
    control.setAttribute('aria-describedby', [note.id, control.getAttribute('aria-describedby')].filter(Boolean).join(' '));
  }
}

/** The form's answers: every text value given, by field id (files are not answers). */
function readAnswers() {
  const data = new FormData(form);
  const answers = {};
  for (const field of formDefinition.fields) {
    answers[field.id] = data.getAll(field.id).filter((v) => typeof v === 'string');
  }
  return answers;
}

/** The report for these answers and files (js/report.js, the rule src/form.rs applies too). */
function makeReport(answers, files) {
  return reportFromAnswers(formDefinition, { language: lang, sealedBy: 'browser', answers, files });
}

/** Every required answer not given, at once (a refused answer is marked like a missing one). */
function missingAnswers(answers) {
  // The files are not read yet: only how many there are matters here.
  const outcome = makeReport(answers, chosen.map((c) => ({ name: c.file.name, size: 0, sha256: '', media_type: '' })));
  return outcome.missing || (outcome.notAllowed ? [outcome.notAllowed] : []);
}

/** Reads the chosen files (cleaned images as cleaned); returns the report and the archive's files. */
async function attachFiles(answers) {
  const described = [];
  const contents = [];
  setStatus(t('page.status.preparing'));
  for (const [index, entry] of chosen.entries()) {
    const cleaned = entry.state === 'cleaned' && entry.bytes;
    const bytes = cleaned ? entry.bytes : new Uint8Array(await entry.file.arrayBuffer());
    // A phone names a photo by the moment it was taken ("IMG_20240512_143022.jpg"): a cleaned
    // image goes under a neutral name, so its name does not say what its data no longer does.
    const name = cleaned ? `imagen-${index + 1}.${entry.kind === 'png' ? 'png' : 'jpg'}` : entry.file.name;
    described.push({ name, size: bytes.length, sha256: await sha256Hex(bytes), media_type: entry.file.type });
    contents.push(bytes);
  }
  const { report, missing, notAllowed } = makeReport(answers, described);
  if (!report) throw new Error(t('page.error.missing') + ' ' + [...(missing || []), notAllowed].filter(Boolean).map(labelOf).join(', '));
  const files = report.attachments.map((a, i) => ({ path: a.path, bytes: contents[i] }));
  return { report, files };
}

/** Gets and solves a proof-of-work challenge if the gateway asks for one; returns the header. */
function proofOfWork() {
  return solveChallenge(t, {
    onSeconds: (seconds) => setStatus(t('page.status.pow', { seconds })),
    onWorker: (worker) => { powWorker = worker; },
  });
}

/** Stops here if the reporter pressed Cancel. */
function checkCancelled() {
  if (cancelRequested) throw new Error(t('page.error.cancelled'));
}

/** The triage envelope for the people on call (js/send.js), or null without couriers. */
const sealTriage = (report) => sealTriageTo(openpgp, courierKeys, report);

/**
 * Uploads the sealed message with its headers. Resolves { status, body }; rejects with a reason
 * (network, stalled, cancelled). An upload that makes no progress for `stallSeconds` is aborted.
 */
function upload(bytes, headers) {
  return uploadTo(t, {
    bytes,
    headers,
    stallSeconds,
    onPercent: (percent) => {
      progress.value = percent;
      setStatus(t('page.status.uploading', { percent }));
    },
    onAbort: (abort) => { sending = abort ? { abort } : null; },
  });
}

/** The sentence for a refused upload, in the page's language. */
const errorMessage = (status, body) => refusal(t, strings, status, body);

/** A paragraph of page text. */
function paragraph(text, className = '') {
  const p = document.createElement('p');
  if (className) p.className = className;
  p.textContent = text;
  return p;
}

/** The twelve words: 4 lines of 3, selectable. */
function wordsBlock(words) {
  const shown = document.createElement('div');
  shown.className = 'receipt-words';
  shown.id = 'receipt-words';
  shown.lang = 'es';
  for (let line = 0; line < 4; line += 1) {
    const div = document.createElement('div');
    // Spaces between the words, so the line copies as "uno dos tres".
    words.slice(3 * line, 3 * line + 3).forEach((word, i) => {
      const span = document.createElement('span');
      span.textContent = word;
      div.append(...(i ? [' ', span] : [span]));
    });
    shown.append(div);
  }
  return shown;
}

/** How the receipt is shown, while sending and once received: title, intro, words, advice. */
function receiptParts(words) {
  const h = document.createElement('h3');
  h.textContent = t('page.receipt.title');
  return [h, paragraph(t('page.receipt.intro')), wordsBlock(words), paragraph(t('page.receipt.advice'), 'receipt-advice')];
}

/**
 * The receipt once the report is received, with where to read the answers and a way to hide
 * it for good. `words` is null when the report went without a conversation.
 */
function receiptSection(words) {
  const section = document.createElement('section');
  section.className = 'receipt';
  section.id = 'receipt';
  if (!words) {
    const h = document.createElement('h3');
    h.textContent = t('page.receipt.none_title');
    section.append(h, paragraph(t('page.receipt.none')));
    return section;
  }
  const [h, intro, shown, advice] = receiptParts(words);
  const later = document.createElement('p');
  later.append(`${t('page.receipt.later')} `);
  const link = document.createElement('a');
  link.href = `/check?lang=${encodeURIComponent(lang)}`;
  link.id = 'check-link';
  link.textContent = t('page.receipt.check_link');
  later.append(link);
  const hide = document.createElement('button');
  hide.type = 'button';
  hide.className = 'secondary';
  hide.textContent = t('page.receipt.hide');
  hide.addEventListener('click', () => {
    shown.replaceChildren();
    shown.replaceWith(paragraph(t('page.receipt.hidden')));
    hide.remove();
  });
  section.append(h, intro, shown, advice, later, hide);
  return section;
}

/**
 * The words of the report being sent, from its sealing until it is received, and after a failed
 * try: an answer may be lost after the gateway stored the report, and its words must already be
 * on paper. Says so when they replace words the gateway refused.
 */
function showSendingReceipt() {
  const conversation = outgoing?.conversation;
  sendingReceipt.hidden = !conversation;
  if (!conversation) {
    sendingReceipt.replaceChildren();
    return;
  }
  const [h, ...rest] = receiptParts(conversation.words);
  const replaced = outgoing.tries > 1 ? [paragraph(t('page.receipt.replaced'), 'receipt-advice')] : [];
  sendingReceipt.replaceChildren(h, ...replaced, ...rest, paragraph(t('page.receipt.write_now'), 'receipt-advice'));
}

/** Drops the report being sent, and its words from the page. */
function forgetOutgoing() {
  outgoing = null;
  showSendingReceipt();
}

/** The report is received: the form cleared and put away, and `parts` said under "Received". */
function showResult(urgent, parts) {
  form.reset();
  chosen = [];
  renderFileList();
  form.hidden = true;
  clearMessage();
  const h = document.createElement('h2');
  h.textContent = t('page.success.title');
  result.replaceChildren(h, ...parts, paragraph(t('page.success.advice')));
  result.hidden = false;
  document.getElementById('urgent-after').hidden = !urgent;
  result.focus();
}

function showSuccess(id, urgent, words, sequence) {
  const p = document.createElement('p');
  p.append(`${t('page.success.id')} `);
  const code = document.createElement('code');
  code.id = 'submission-id';
  code.textContent = id;
  p.append(code);
  // Its number in the gateway's log of accepted reports (docs/trust-v1.md), when it says.
  const logged = Number.isSafeInteger(sequence) && sequence > 0
    ? [paragraph(t('page.success.sequence', { n: String(sequence) }), 'sequence')]
    : [];
  showResult(urgent, [p, ...logged, receiptSection(words)]);
}

/**
 * A retry found the report's conversation at the gateway: a try whose answer was lost arrived
 * (its number is unknown), and the words shown are its own. `changed`: the report was changed
 * after that try, and the changes did not go with it.
 */
function showArrived(urgent, words, changed) {
  const said = [paragraph(t('page.success.arrived_before'))];
  if (changed) said.push(paragraph(t('page.success.changes_not_sent')));
  showResult(urgent, [...said, receiptSection(words)]);
}

/**
 * A new conversation for a report sealed to `keys` (js/replies.js), or null when one cannot be
 * made here: the report never waits on it. Its words are made at once and the receipt's bytes
 * zeroed: the words on the page are all that is kept of it.
 */
async function newConversation(keys) {
  let started = null;
  try {
    started = await startConversation(openpgp, keys);
    const words = (await receiptWords(started.entropy, receiptList)).map((w) => w.normalize('NFC'));
    return { header: started.header, ref: started.conversation, words, uncertain: new Set() };
  } catch {
    return null;
  } finally {
    started?.entropy.fill(0);
  }
}

/**
 * Seals the report with its conversation (if any) to `keys`, unless the very same report is
 * sealed already: a retry then sends the message an earlier try may have delivered.
 */
async function sealOutgoing(report, files, keys) {
  const ref = outgoing.conversation?.ref;
  const plain = buildPayload(ref ? { ...report, conversation: ref } : report, files);
  try {
    const digest = await sha256Hex(plain);
    if (digest === outgoing.digest) return;
    setStatus(t('page.status.encrypting'));
    outgoing.sealed = await seal(openpgp, plain, keys);
    outgoing.digest = digest;
  } finally {
    plain.fill(0);
  }
}

/**
 * One upload of the outgoing message. When it ends with no answer from the gateway, the gateway
 * may have stored it all the same: remembered, so that a retry refused with "conversation
 * exists" is known to have been preceded by an arrival.
 */
async function uploadOutgoing(headers) {
  try {
    return await upload(outgoing.sealed, headers);
  } catch (error) {
    outgoing.conversation?.uncertain.add(outgoing.digest);
    throw error;
  }
}

/** The gateway holds the conversation already, and a try of ours may have started it. */
const arrivedBefore = (answer) => answer.status === 409 && answer.body.error === 'conversation_exists'
  && outgoing.conversation?.uncertain.size > 0;

/**
 * The gateway refused the conversation of a report it did not store: a header it would not
 * read, or a locator it holds although no try of ours can have started it.
 */
function refusedConversation(answer) {
  if (!outgoing.conversation) return false;
  if (answer.status === 400 && answer.body.error === 'bad_conversation') return true;
  return answer.status === 409 && answer.body.error === 'conversation_exists' && !arrivedBefore(answer);
}

/**
 * A new receipt in place of a refused one, its words shown in place of the old; after a few,
 * none, and the report goes without a conversation (never lost for it).
 */
async function replaceConversation(report, files, keys) {
  outgoing.conversation = outgoing.tries < CONVERSATION_TRIES ? await newConversation(keys) : null;
  outgoing.tries += 1;
  checkCancelled();
  await sealOutgoing(report, files, keys);
  showSendingReceipt();
}

/**
 * Sends the outgoing report; resolves the gateway's last answer. A refused proof of work that is
 * not the reporter's doing (a restart, an expired or outdated challenge) is fetched and solved
 * again, quietly, a few times; so is a refused conversation, with a new receipt.
 */
async function sendOutgoing(report, files, keys, triage) {
  let envelope = triage;
  let answer;
  for (let attempt = 0; attempt < 4 + CONVERSATION_TRIES; attempt += 1) {
    checkCancelled();
    const solution = await proofOfWork();
    checkCancelled();
    progress.value = 0;
    setStatus(t('page.status.uploading', { percent: 0 }));
    answer = await uploadOutgoing({
      'Resguardo-PoW': solution,
      'Resguardo-Triage': envelope,
      'Resguardo-Conversation': outgoing.conversation?.header,
    });
    if (answer.status === 400 && answer.body.error === 'bad_triage' && envelope) {
      envelope = null;
      continue;
    }
    if (refusedConversation(answer)) {
      await replaceConversation(report, files, keys);
      continue;
    }
    if (!(answer.status >= 400 && POW_RETRY_CODES.has(answer.body.error))) break;
  }
  return answer;
}

function setSending(on) {
  if (on) cancelRequested = false;
  submitButton.disabled = on || keysRefused;
  cancelButton.hidden = !on;
  sendingNote.hidden = !on;
  progress.hidden = !on;
  if (!on) setStatus('');
}

async function onSubmit(event) {
  event.preventDefault();
  if (sending) return;
  if (keysRefused) {
    showKeysRefused();
    return;
  }
  clearMessage();
  const answers = readAnswers();
  const missing = missingAnswers(answers);
  markMissing(missing);
  if (missing.length) {
    showMessage([t('page.error.missing')], missing.map((id) => ({ id, label: labelOf(id) })));
    return;
  }
  if (tooLarge()) {
    showMessage([t('page.files.too_large', { limit: humanSize(maxBytes) })]);
    return;
  }
  // Every image is checked before anything is decided about it.
  startChecks();
  await Promise.all(chosen.map((c) => c.pending));
  if (chosen.some((c) => c.state === 'checking' || (c.state === 'not_cleaned' && !c.sendAnyway))) {
    showMessage([t('page.files.must_decide')]);
    fileList.querySelector('[data-state="not_cleaned"] input')?.focus();
    return;
  }
  setSending(true);
  try {
    const keys = await ensureKeys();
    checkCancelled();
    const { report, files } = await attachFiles(answers);
    checkCancelled();
    // One receipt per report: a retry keeps the one whose words are already shown.
    if (!outgoing) outgoing = { conversation: await newConversation(keys), tries: 1, digest: null, sealed: null };
    checkCancelled();
    await sealOutgoing(report, files, keys);
    showSendingReceipt();
    // The note for the people on call must never cost the report: if it cannot be made (a
    // courier key expired or changed since the page loaded), the report goes without it.
    const triage = await sealTriage(report).catch(() => null);
    if (outgoing.sealed.length > maxBytes) throw new Error(t('page.files.too_large', { limit: humanSize(maxBytes) }));
    const answer = await sendOutgoing(report, files, keys, triage);
    const words = outgoing.conversation?.words ?? null;
    if (answer.status === 201 && answer.body.id) {
      forgetOutgoing();
      setSending(false);
      showSuccess(answer.body.id, report.urgent, words, answer.body.sequence);
      return;
    }
    if (arrivedBefore(answer)) {
      const changed = [...outgoing.conversation.uncertain].some((digest) => digest !== outgoing.digest);
      forgetOutgoing();
      setSending(false);
      showArrived(report.urgent, words, changed);
      return;
    }
    if (answer.body.error === 'unknown_recipient') {
      // A reviewer's key changed: fetched again, and the report sealed again to it.
      reviewerKeys = null;
      outgoing.digest = null;
    }
    showMessage([errorMessage(answer.status, answer.body), t('page.error.kept')]);
  } catch (error) {
    if (error.notVouched) showKeysRefused();
    else showMessage([error.message, t('page.error.kept')]);
  } finally {
    setSending(false);
  }
}

async function start() {
  // From here on the browser encrypts: say so, and take over the form.
  document.getElementById('mode-loading').hidden = true;
  document.getElementById('mode-browser').hidden = false;
  for (const note of document.querySelectorAll('.server-only')) note.hidden = true;
  const filesHint = document.getElementById('h-attachments');
  if (filesHint) filesHint.textContent = t('page.files.hint', { limit: humanSize(maxBytes) });
  submitButton.textContent = submitButton.dataset.labelBrowser;
  form.hidden = false;
  form.addEventListener('submit', onSubmit);
  cancelButton.addEventListener('click', () => {
    cancelRequested = true;
    powWorker?.cancel?.();
    sending?.abort();
  });
  fileInput.addEventListener('change', () => {
    addFiles([...fileInput.files]);
    fileInput.value = '';
  });
  // Leaving while sending loses the report: the browser asks first.
  window.addEventListener('beforeunload', (e) => {
    if (sending) e.preventDefault();
  });
  // The words are shown once: nothing of them outlives the page, not even in the back/forward
  // cache.
  window.addEventListener('pagehide', () => {
    forgetOutgoing();
    document.getElementById('receipt-words')?.replaceChildren();
  });
  try {
    organisationPin = shownOrganisation();
    // What is shown is what is checked: the fingerprint on the page is written from the pin.
    const shown = organisationPin && document.querySelector('#org-key .org-key-fingerprint code');
    if (shown) shown.textContent = grouped(organisationPin);
    reviewerKeys = await loadKeys();
  } catch (error) {
    const sentence = keysProblem(error);
    if (keysRefused) showKeysRefused();
    else showMessage([sentence]);
  }
}

start();
