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

import * as openpgp from './vendor/openpgp.min.mjs';
import { buildPayload, sha256Hex, paddedLength } from './js/payload.js';
import { reportFromAnswers } from './js/report.js';
import { paddedTriage, triageOfReport, utcDay } from './js/triage.js';
import { cleanImage, imageKind } from './js/metadata.js';

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

const strings = JSON.parse(document.getElementById('strings').textContent);
const formDefinition = JSON.parse(document.getElementById('form-definition').textContent);
let reviewerKeys = null;
let courierKeys = [];
// Chosen files: { file, kind, state: 'checking' | 'cleaned' | 'not_cleaned' | 'other', bytes,
// sendAnyway }.
let chosen = [];
let sending = null; // { abort } while an upload runs
let cancelRequested = false;
let powWorker = null;

const POW_RETRY_CODES = new Set(['pow_invalid', 'pow_expired', 'pow_outdated', 'pow_insufficient',
  'pow_replayed', 'pow_malformed', 'pow_missing']);

/** A page string; never a key name (the server embeds every page and error string). */
const t = (key, vars = {}) =>
  Object.entries(vars).reduce((s, [k, v]) => s.replaceAll(`{${k}}`, v), strings[key] ?? strings['page.error.other']);

function humanSize(bytes) {
  return bytes >= 1048576 ? `${Math.round(bytes / 1048576)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

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
  const response = await fetch('/api/v1/keys', { cache: 'no-store', credentials: 'omit' });
  if (!response.ok) throw new Error(`keys: HTTP ${response.status}`);
  const body = await response.json();
  const keys = await Promise.all(body.reviewers.map((r) => openpgp.readKey({ armoredKey: r.cert })));
  // The people on call: each report's triage envelope is sealed to them (none: no envelope).
  courierKeys = await Promise.all((body.couriers || []).map((c) => openpgp.readKey({ armoredKey: c.cert })));
  // The page lists the fingerprints it was rendered with; the keys must be exactly those.
  const shown = [...document.querySelectorAll('#key-list [data-fingerprint]')].map((li) => li.dataset.fingerprint);
  const fetched = keys.map((k) => k.getFingerprint().toUpperCase());
  if (shown.length !== fetched.length || fetched.some((f) => !shown.includes(f))) {
    throw Object.assign(new Error('mismatch'), { mismatch: true });
  }
  return keys;
}

/** The keys, fetched again if an earlier try failed. */
async function ensureKeys() {
  if (reviewerKeys) return reviewerKeys;
  setStatus(t('page.status.keys_retry'));
  try {
    reviewerKeys = await loadKeys();
    return reviewerKeys;
  } catch (error) {
    throw new Error(error.mismatch ? t('page.keys.mismatch') : t('page.keys.failed'));
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

function renderFileList() {
  fileList.replaceChildren();
  chosen.forEach((entry, index) => {
    const li = document.createElement('li');
    li.append(`${entry.file.name} (${humanSize(entry.file.size)}) `);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'link';
    remove.textContent = t('page.files.remove');
    remove.addEventListener('click', () => {
      chosen.splice(index, 1);
      renderFileList();
    });
    li.append(remove);
    const note = document.createElement('span');
    note.className = 'note';
    const noteKey = {
      checking: 'page.files.checking',
      cleaned: 'page.files.stripped',
      not_cleaned: 'page.files.not_stripped',
      other: 'page.files.warning',
    }[entry.state];
    note.textContent = t(noteKey);
    li.dataset.state = entry.state;
    li.append(note);
    if (entry.state === 'not_cleaned') {
      li.classList.add('warning');
      const label = document.createElement('label');
      label.className = 'choice';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.checked = entry.sendAnyway;
      box.addEventListener('change', () => { entry.sendAnyway = box.checked; });
      label.append(box, ` ${t('page.files.send_anyway')}`);
      li.append(label);
    }
    fileList.append(li);
  });
  // Refused as soon as chosen, before anything is read or encrypted.
  if (tooLarge()) {
    submitButton.disabled = true;
    showMessage([t('page.files.too_large', { limit: humanSize(maxBytes) })], [], 'too-large');
  } else {
    submitButton.disabled = sending !== null;
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
async function proofOfWork() {
  const response = await fetch('/api/v1/challenge', { cache: 'no-store', credentials: 'omit' });
  if (!response.ok) throw new Error(t(response.status === 429 ? 'error.too_many_requests' : 'page.error.busy'));
  const challenge = await response.json();
  if (!challenge.required) return null;
  const started = performance.now();
  const worker = new Worker(new URL('./js/pow-worker.js', import.meta.url), { type: 'module' });
  powWorker = worker;
  try {
    return await new Promise((resolve, reject) => {
      worker.addEventListener('error', () => reject(new Error(t('page.error.other'))));
      worker.cancel = () => reject(new Error(t('page.error.cancelled')));
      worker.addEventListener('message', (e) => {
        if (e.data.solution) resolve(e.data.solution);
        else setStatus(t('page.status.pow', { seconds: Math.round((performance.now() - started) / 1000) }));
      });
      setStatus(t('page.status.pow', { seconds: 0 }));
      worker.postMessage({ challenge: challenge.challenge, difficulty: challenge.difficulty });
    });
  } finally {
    worker.terminate();
    powWorker = null;
  }
}

/** Stops here if the reporter pressed Cancel. */
function checkCancelled() {
  if (cancelRequested) throw new Error(t('page.error.cancelled'));
}

/**
 * Uploads the sealed message. Resolves { status, body }; rejects with a reason (network,
 * stalled, cancelled). An upload that makes no progress for `stallSeconds` is aborted.
 */
/**
 * The triage envelope (docs/early-alerts.md): urgency, types, region and day only, padded to one
 * size and sealed to every courier, as base64 for the Resguardo-Triage header; null without
 * couriers.
 */
async function sealTriage(report) {
  if (!courierKeys.length) return null;
  const note = paddedTriage(triageOfReport(report, utcDay()));
  const message = await openpgp.createMessage({ binary: note, format: 'binary', date: new Date(0) });
  const sealed = await openpgp.encrypt({
    message,
    encryptionKeys: courierKeys,
    format: 'binary',
    config: { preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed },
  });
  let text = '';
  for (const byte of sealed) text += String.fromCharCode(byte);
  return btoa(text);
}

function upload(bytes, solution, triage) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    let lastProgress = performance.now();
    let reason = null;
    let uploaded = false;
    const watchdog = setInterval(() => {
      if (performance.now() - lastProgress > stallSeconds * 1000) {
        reason = uploaded ? 'no_answer' : 'stalled';
        xhr.abort();
      }
    }, 1000);
    const done = () => { clearInterval(watchdog); sending = null; };
    sending = { abort: () => { reason = 'cancelled'; xhr.abort(); } };
    xhr.open('POST', '/api/v1/submissions');
    xhr.setRequestHeader('Content-Type', 'application/pgp-encrypted');
    if (solution) xhr.setRequestHeader('Resguardo-PoW', solution);
    if (triage) xhr.setRequestHeader('Resguardo-Triage', triage);
    xhr.upload.addEventListener('progress', (e) => {
      lastProgress = performance.now();
      if (e.lengthComputable) {
        const percent = Math.round((100 * e.loaded) / e.total);
        progress.value = percent;
        setStatus(t('page.status.uploading', { percent }));
      }
    });
    // Once every byte is sent the gateway checks and stores it, which takes seconds; an answer
    // that never comes is bounded too, and then the page cannot know whether it arrived.
    xhr.upload.addEventListener('load', () => {
      lastProgress = performance.now() + 30000;
      uploaded = true;
    });
    xhr.addEventListener('load', () => {
      done();
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON: handled by status */ }
      resolve({ status: xhr.status, body });
    });
    xhr.addEventListener('error', () => { done(); reject(new Error(t('page.error.network'))); });
    xhr.addEventListener('abort', () => {
      done();
      reject(new Error({
        cancelled: t('page.error.cancelled'),
        no_answer: t('page.error.no_answer'),
      }[reason] || t('page.error.stalled', { seconds: stallSeconds })));
    });
    xhr.send(bytes);
  });
}

/** The sentence for a refused upload, in the page's language. */
function errorMessage(status, body) {
  const code = typeof body.error === 'string' ? body.error : '';
  if (code && strings[`error.${code}`]) return t(`error.${code}`);
  if (status === 413) return t('error.too_large');
  if (status === 429 || status === 503) return t('page.error.busy');
  if (status === 507) return t('page.error.full');
  return t('page.error.other');
}

function showSuccess(id, urgent) {
  form.reset();
  chosen = [];
  renderFileList();
  form.hidden = true;
  clearMessage();
  result.replaceChildren();
  const h = document.createElement('h2');
  h.textContent = t('page.success.title');
  const p1 = document.createElement('p');
  p1.append(`${t('page.success.id')} `);
  const code = document.createElement('code');
  code.id = 'submission-id';
  code.textContent = id;
  p1.append(code);
  const p2 = document.createElement('p');
  p2.textContent = t('page.success.advice');
  result.append(h, p1, p2);
  result.hidden = false;
  document.getElementById('urgent-after').hidden = !urgent;
  result.focus();
}

function setSending(on) {
  if (on) cancelRequested = false;
  submitButton.disabled = on;
  cancelButton.hidden = !on;
  sendingNote.hidden = !on;
  progress.hidden = !on;
  if (!on) setStatus('');
}

async function onSubmit(event) {
  event.preventDefault();
  if (sending) return;
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
    const plain = buildPayload(report, files);
    setStatus(t('page.status.encrypting'));
    const message = await openpgp.createMessage({ binary: plain, format: 'binary', date: new Date(0) });
    const sealed = await openpgp.encrypt({
      message,
      encryptionKeys: keys,
      format: 'binary',
      config: { preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed },
    });
    plain.fill(0);
    // The note for the people on call must never cost the report: if it cannot be made (a
    // courier key expired or changed since the page loaded), the report goes without it.
    let triage = await sealTriage(report).catch(() => null);
    if (sealed.length > maxBytes) throw new Error(t('page.files.too_large', { limit: humanSize(maxBytes) }));
    // A refused proof of work that is not the reporter's doing (a restart, an expired or
    // outdated challenge) is fetched and solved again, quietly, a few times.
    let answer;
    for (let attempt = 0; attempt < 4; attempt += 1) {
      checkCancelled();
      const solution = await proofOfWork();
      checkCancelled();
      progress.value = 0;
      setStatus(t('page.status.uploading', { percent: 0 }));
      answer = await upload(sealed, solution, triage);
      if (answer.status === 400 && answer.body.error === 'bad_triage' && triage) {
        triage = null;
        continue;
      }
      if (!(answer.status >= 400 && POW_RETRY_CODES.has(answer.body.error))) break;
    }
    if (answer.status === 201 && answer.body.id) {
      setSending(false);
      showSuccess(answer.body.id, report.urgent);
      return;
    }
    if (answer.body.error === 'unknown_recipient') reviewerKeys = null;
    showMessage([errorMessage(answer.status, answer.body), t('page.error.kept')]);
  } catch (error) {
    showMessage([error.message, t('page.error.kept')]);
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
  try {
    reviewerKeys = await loadKeys();
  } catch (error) {
    showMessage([error.mismatch ? t('page.keys.mismatch') : t('page.keys.failed')]);
  }
}

start();
