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
//
// Big files on small phones (docs/uploads-v1.md, part 3): the payload is made as a stream, read
// from the files a piece at a time, and sealed as it is read into a Blob (the browser's blob
// storage, not the JavaScript heap); that Blob is what is uploaded, sent again, or saved. Above
// RESUMABLE_FROM it goes by the resumable route (tus, part 1): a lost connection continues from
// the last byte that arrived while the page stays open. "Seal now, send later" (part 2): the
// sealed report can be saved as a file and sent later, from any device, through "send a sealed
// report".

import * as openpgp from './vendor/openpgp.min.mjs';
// tus-js-client's browser bundle: a self-contained UMD file that sets window.tus.
import './vendor/tus.min.js';
import { payloadStream, sha256Hex, sha256HexOfBlob, paddedLength } from './js/payload.js';
import { reportFromAnswers } from './js/report.js';
import { cleanImage, cleanedName, imageKind } from './js/metadata.js';
import { wordlist } from './vendor/bip39-spanish.mjs';
import { receiptWords, startConversation, wordList } from './js/replies.js';
import {
  POW_RETRY_CODES, errorMessage as refusal, humanSize, loadKeys as fetchKeys,
  proofOfWork as solveChallenge, renderFileList as listFiles, RESUMABLE_FROM, sealStream,
  sealTriage as sealTriageTo, shownFingerprints, translator, upload as uploadTo, uploadResumable,
} from './js/send.js';
import { grouped, shownOrganisation } from './js/keylist.js';
import { readSealedReport, writeSealedReport } from './js/sealed.js';

const main = document.getElementById('main');
const form = document.getElementById('report');
const lang = main.dataset.lang;
const maxBytes = Number(main.dataset.maxBytes);
// An upload that makes no progress for this long has failed (the gateway drops it too).
const stallSeconds = Number(main.dataset.stallSeconds || 60);
// A resumable upload goes on trying for this long after its bytes last moved (the page open):
// ten times the gateway's own bound on an idle upload (10 minutes by default).
const RESUME_SECONDS = 10 * stallSeconds;
const tus = window.tus;
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
const saveButton = document.getElementById('seal-save');
const savedSection = document.getElementById('sealed-saved');
const sealedInput = document.getElementById('sealed-file');
const sealedSendButton = document.getElementById('sealed-send');
const sealedProgress = document.getElementById('sealed-progress');
const sealedStatus = document.getElementById('sealed-status');
const sealedResult = document.getElementById('sealed-result');

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
let busy = false; // a report is being sealed, saved or sent
let cancelRequested = false;
let powWorker = null;
// The report being sent, from its sealing until the gateway has it: { conversation, tries,
// digest, sealed }. `conversation` (null once the report goes without one) is { header, ref,
// words, uncertain }: `uncertain` holds the digests of the sealed messages whose upload ended
// with no answer, which may have arrived. `digest` is the SHA-256 of the report.json that
// `sealed` (a Blob) seals: it names every file by its SHA-256, so it stands for the whole payload.
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

/**
 * Describes the chosen files (cleaned images as cleaned); returns the report and the archive's
 * files, each `{ path, bytes }` (an image, in memory) or `{ path, blob, size }` (read a piece at a
 * time while it is sealed). A file's SHA-256 is kept with it, for retries.
 */
async function attachFiles(answers) {
  const described = [];
  const contents = [];
  setStatus(t('page.status.preparing'));
  mark('hash');
  for (const [index, entry] of chosen.entries()) {
    const cleaned = entry.state === 'cleaned' && entry.bytes;
    const inMemory = Boolean(cleaned);
    // A phone names a photo by the moment it was taken ("IMG_20240512_143022.jpg"): a cleaned
    // image goes under a neutral name, so its name does not say what its data no longer does.
    const name = cleaned ? cleanedName(entry.kind, index) : entry.file.name;
    if (!entry.sha256) entry.sha256 = inMemory ? await sha256Hex(entry.bytes) : await sha256HexOfBlob(entry.file);
    const size = inMemory ? entry.bytes.length : entry.file.size;
    described.push({ name, size, sha256: entry.sha256, media_type: entry.file.type });
    contents.push(inMemory ? { bytes: entry.bytes } : { blob: entry.file, size });
  }
  mark('hashed');
  const { report, missing, notAllowed } = makeReport(answers, described);
  if (!report) throw new Error(t('page.error.missing') + ' ' + [...(missing || []), notAllowed].filter(Boolean).map(labelOf).join(', '));
  const files = report.attachments.map((a, i) => ({ path: a.path, ...contents[i] }));
  return { report, files };
}

/** A named moment of a send, for the benchmark (tests/browser/bench-send.mjs); nothing leaves. */
function mark(name) {
  performance.mark(`resguardo:${name}`);
}

/**
 * Gets and solves a proof-of-work challenge if the gateway asks for one; resolves the header.
 * `quiet`: solved while the report is sealed, so the status line says what the sealing does.
 */
function proofOfWork(quiet = false) {
  return solveChallenge(t, {
    onSeconds: (seconds) => { if (!quiet) setStatus(t('page.status.pow', { seconds })); },
    onWorker: (worker) => { powWorker = worker; },
  });
}

/** A proof of work started now, to be used later: `take()` resolves it (a failure is met only
 * when it is taken, and then a fresh one is solved in its place). */
function earlyProofOfWork() {
  const started = proofOfWork(true).then((solution) => ({ solution }), (error) => ({ error }));
  return { take: () => started.then((r) => ('solution' in r ? r.solution : proofOfWork())) };
}

/** Stops here if the reporter pressed Cancel. */
function checkCancelled() {
  if (cancelRequested) throw new Error(t('page.error.cancelled'));
}

/** The triage envelope for the people on call (js/send.js), or null without couriers. */
const sealTriage = (report) => sealTriageTo(openpgp, courierKeys, report);

/**
 * Uploads a sealed message (a Blob) with its headers: in one piece up to RESUMABLE_FROM, else by
 * the resumable route, which goes on from where a lost connection stopped. Resolves
 * { status, body }; rejects with a reason (network, stalled, cancelled).
 */
function upload(blob, headers, ui = { bar: progress, say: setStatus }, resume = {}) {
  const onAbort = (abort) => { sending = abort ? { abort } : null; };
  mark('upload');
  if (blob.size <= RESUMABLE_FROM) {
    const onPercent = (percent) => {
      ui.bar.value = percent;
      ui.say(t('page.status.uploading', { percent }));
    };
    // Small: sent as bytes (a request body the browser's tools can show, as before).
    return blob.arrayBuffer().then((bytes) => uploadTo(t, { bytes, headers, stallSeconds, onPercent, onAbort }));
  }
  // How much has arrived, in the units the reporter chose the files in.
  const onPercent = (percent) => {
    ui.bar.value = percent;
    const arrived = humanSize(Math.floor((blob.size * percent) / 100));
    ui.say(t('page.status.arrived', { percent, arrived, total: humanSize(blob.size) }));
  };
  return uploadResumable(t, tus, {
    blob,
    headers,
    stallSeconds,
    resumeSeconds: RESUME_SECONDS,
    onPercent,
    onWaiting: (percent) => ui.say(t('page.status.resume_wait', { percent })),
    onAbort,
    uploadUrl: resume.url ?? null,
    onUrl: (url) => { resume.url = url; },
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

/** The form cleared and put away: the report is received, or sealed and saved. */
function putFormAway() {
  form.reset();
  chosen = [];
  renderFileList();
  form.hidden = true;
  clearMessage();
}

/** The report is received: the form cleared and put away, and `parts` said under "Received". */
function showResult(urgent, parts) {
  putFormAway();
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
  const full = ref ? { ...report, conversation: ref } : report;
  // report.json names every file by its SHA-256: its digest stands for the whole payload.
  const digest = await sha256Hex(new TextEncoder().encode(JSON.stringify(full)));
  if (digest === outgoing.digest) return;
  setStatus(t('page.status.encrypting'));
  mark('seal');
  outgoing.sealed = await sealStream(openpgp, payloadStream(full, files).stream, keys);
  mark('sealed');
  outgoing.digest = digest;
}

/**
 * One upload of the outgoing message. When it ends with no answer from the gateway, the gateway
 * may have stored it all the same: remembered, so that a retry refused with "conversation
 * exists" is known to have been preceded by an arrival.
 */
async function uploadOutgoing(headers) {
  // A try that stopped half way is gone on with, while this same sealed message is sent.
  if (outgoing.resume?.sealed !== outgoing.sealed) outgoing.resume = { sealed: outgoing.sealed, url: null };
  try {
    return await upload(outgoing.sealed, headers, undefined, outgoing.resume);
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
async function sendOutgoing(report, files, keys, triage, early = null) {
  let envelope = triage;
  let answer;
  for (let attempt = 0; attempt < 4 + CONVERSATION_TRIES; attempt += 1) {
    checkCancelled();
    mark('pow');
    const solution = attempt === 0 && early ? await early.take() : await proofOfWork();
    mark('powed');
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
  busy = on;
  submitButton.disabled = on || keysRefused;
  saveButton.disabled = on || keysRefused;
  sealedSendButton.disabled = on;
  cancelButton.hidden = !on;
  sendingNote.hidden = !on;
  progress.hidden = !on;
  if (!on) setStatus('');
}

/**
 * The form's answers if the report can be sealed: every required answer given, the files within
 * the limit, every image checked and decided; else null, with what is wrong said.
 */
async function readyAnswers() {
  if (keysRefused) {
    showKeysRefused();
    return null;
  }
  clearMessage();
  const answers = readAnswers();
  const missing = missingAnswers(answers);
  markMissing(missing);
  if (missing.length) {
    showMessage([t('page.error.missing')], missing.map((id) => ({ id, label: labelOf(id) })));
    return null;
  }
  if (tooLarge()) {
    showMessage([t('page.files.too_large', { limit: humanSize(maxBytes) })]);
    return null;
  }
  // Every image is checked before anything is decided about it.
  startChecks();
  await Promise.all(chosen.map((c) => c.pending));
  if (chosen.some((c) => c.state === 'checking' || (c.state === 'not_cleaned' && !c.sendAnyway))) {
    showMessage([t('page.files.must_decide')]);
    fileList.querySelector('[data-state="not_cleaned"] input')?.focus();
    return null;
  }
  return answers;
}

/**
 * Reads the files and seals the report (into `outgoing`) with its note for the people on call,
 * as sending and saving both do. Throws if the sealed report is over the size limit.
 */
async function sealAnswers(answers, keys) {
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
  if (outgoing.sealed.size > maxBytes) throw new Error(t('page.files.too_large', { limit: humanSize(maxBytes) }));
  return { report, files, triage };
}

async function onSubmit(event) {
  event.preventDefault();
  if (sending || busy) return;
  mark('click');
  const answers = await readyAnswers();
  if (!answers) return;
  setSending(true);
  try {
    const keys = await ensureKeys();
    checkCancelled();
    // The proof of work is solved while the report is read and sealed (another thread).
    const early = earlyProofOfWork();
    const { report, files, triage } = await sealAnswers(answers, keys);
    const answer = await sendOutgoing(report, files, keys, triage, early);
    mark('answered');
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

// ---------------------------------------------------------------------------------------------
// Seal now, send later (docs/uploads-v1.md, part 2)

/** A neutral file name: nothing of the report, the day or the device in it. */
function neutralName() {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `sealed-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}.bin`;
}

/** Offers `blob` as a download named `name`; the object URL is revoked soon after. */
function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** The report is sealed and saved, not sent: the file's name, its words, what a carrier learns. */
function showSaved(name, words) {
  putFormAway();
  const h = document.createElement('h2');
  h.textContent = t('page.seal.saved_title');
  savedSection.replaceChildren(h, paragraph(t('page.seal.saved', { name })),
    paragraph(t('page.seal.carrier')), receiptSection(words));
  savedSection.hidden = false;
  savedSection.focus();
}

/** "Save sealed report": seals the report with its conversation and triage, and saves it. */
async function onSaveSealed() {
  if (sending || busy) return;
  const answers = await readyAnswers();
  if (!answers) return;
  setSending(true);
  progress.hidden = true;
  try {
    const keys = await ensureKeys();
    checkCancelled();
    const { triage } = await sealAnswers(answers, keys);
    checkCancelled();
    const file = writeSealedReport({
      triage, conversation: outgoing.conversation?.header ?? null, touch: null, message: outgoing.sealed,
    });
    const name = neutralName();
    download(file, name);
    const words = outgoing.conversation?.words ?? null;
    forgetOutgoing();
    setSending(false);
    showSaved(name, words);
  } catch (error) {
    if (error.notVouched) showKeysRefused();
    else showMessage([error.message, t('page.error.kept')]);
  } finally {
    setSending(false);
  }
}

/** What the page says of a file that is not a sealed report it can send, by the reader's code. */
const SEALED_ERRORS = {
  not_sealed_report: 'page.sealed.error.not_sealed_report',
  unsupported_version: 'page.sealed.error.unsupported_version',
  truncated: 'page.sealed.error.truncated',
  empty_message: 'page.sealed.error.truncated',
  message_too_large: 'page.sealed.error.too_large',
};

/** Shows `parts` under "Send a sealed report"; `kind` as data-kind (tests read it). */
function showSealedResult(kind, ...parts) {
  const box = document.createElement('div');
  box.className = 'message';
  box.dataset.kind = kind;
  if (kind !== 'sent') box.setAttribute('role', 'alert');
  box.append(...parts);
  sealedResult.replaceChildren(box);
  sealedResult.focus();
}

/** Reads a sealed report file; resolves its parts, or null with the reason shown. */
async function readSealed(file) {
  try {
    return await readSealedReport(file, { maxMessageBytes: maxBytes });
  } catch (error) {
    // A SealedFileError names what is wrong; anything else is a file the browser could not read.
    const known = error.name === 'SealedFileError';
    const key = known ? SEALED_ERRORS[error.code] || 'page.sealed.error.damaged' : 'page.sealed.error.unreadable';
    showSealedResult(`bad-${known ? error.code : 'unreadable'}`, paragraph(t(key, { limit: humanSize(maxBytes) })));
    return null;
  }
}

/**
 * "Send a sealed report": the file as saved by "save sealed report", from this device or
 * another. The proof of work is solved here; the message goes as any sealed message does
 * (resumable when large); its triage and conversation go with it as they were sealed.
 */
async function onSendSealed() {
  if (sending || busy) return;
  const file = sealedInput.files[0];
  if (!file) {
    showSealedResult('none', paragraph(t('page.sealed.none')));
    return;
  }
  sealedResult.replaceChildren();
  const sealed = await readSealed(file);
  if (!sealed) return;
  setSending(true);
  progress.hidden = true;
  sealedProgress.hidden = false;
  sealedProgress.value = 0;
  const ui = { bar: sealedProgress, say: (text) => { sealedStatus.textContent = text; } };
  try {
    let triage = sealed.triage;
    let answer;
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const solution = await solveChallenge(t, {
        onSeconds: (seconds) => ui.say(t('page.status.pow', { seconds })),
        onWorker: (worker) => { powWorker = worker; },
      });
      checkCancelled();
      answer = await upload(sealed.message, {
        'Resguardo-PoW': solution,
        'Resguardo-Triage': triage,
        'Resguardo-Conversation': sealed.conversation,
        'Resguardo-Conversation-Touch': sealed.touch,
      }, ui);
      if (answer.status === 400 && answer.body.error === 'bad_triage' && triage) {
        triage = null; // the report never waits on the note for the people on call
        continue;
      }
      if (!(answer.status >= 400 && POW_RETRY_CODES.has(answer.body.error))) break;
    }
    if (answer.status === 201 && answer.body.id) {
      const p = document.createElement('p');
      p.append(`${t('page.success.id')} `);
      const code = document.createElement('code');
      code.id = 'sealed-submission-id';
      code.textContent = answer.body.id;
      p.append(code);
      const sequence = answer.body.sequence;
      const logged = Number.isSafeInteger(sequence) && sequence > 0
        ? [paragraph(t('page.success.sequence', { n: String(sequence) }), 'sequence')] : [];
      sealedInput.value = '';
      showSealedResult('sent', paragraph(t('page.sealed.sent')), p, ...logged);
    } else if (answer.status === 409 && answer.body.error === 'conversation_exists') {
      // The conversation exists: this very file (its locator is random) arrived before.
      sealedInput.value = '';
      showSealedResult('arrived-before', paragraph(t('page.sealed.arrived_before')));
    } else {
      showSealedResult('refused', paragraph(errorMessage(answer.status, answer.body)), paragraph(t('page.sealed.not_sent')));
    }
  } catch (error) {
    showSealedResult('failed', paragraph(error.message), paragraph(t('page.sealed.not_sent')));
  } finally {
    setSending(false);
    sealedProgress.hidden = true;
    ui.say('');
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
  saveButton.addEventListener('click', onSaveSealed);
  sealedSendButton.addEventListener('click', onSendSealed);
  document.getElementById('seal-later').hidden = false;
  document.getElementById('send-sealed').hidden = false;
  document.getElementById('help-connection').hidden = false;
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
