// Resguardo submission page: encrypts the report in the browser before anything leaves it.
//
// Progressive enhancement of the server-rendered form. Without JavaScript the form posts to
// /submit and the gateway seals it on arrival; with JavaScript this module takes over: it builds
// payload v1 (docs/payload-v1.md), removes image metadata, encrypts with openpgp.js to every
// reviewer key the gateway publishes, and uploads only the ciphertext. Nothing is sent in the
// clear, not even a field name; nothing is fetched from anywhere but this gateway.

import * as openpgp from '/vendor/openpgp.min.mjs';
import { buildPayload, attachmentPath, sha256Hex } from '/js/payload.js';
import { prepareFile } from '/js/metadata.js';

const main = document.getElementById('main');
const form = document.getElementById('report');
const lang = main.dataset.lang;
const maxBytes = Number(main.dataset.maxBytes);
const submitButton = document.getElementById('submit');
const statusLine = document.getElementById('status');
const progress = document.getElementById('progress');
const fileInput = document.getElementById('f-attachments');
const fileList = document.getElementById('file-list');
const result = document.getElementById('result');

let strings = {};
let formDefinition = null;
let reviewerKeys = null;
let chosen = []; // File objects, in the order they were picked

const t = (key, vars = {}) =>
  Object.entries(vars).reduce((s, [k, v]) => s.replaceAll(`{${k}}`, v), strings[key] || key);

function humanSize(bytes) {
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.setAttribute('role', isError ? 'alert' : 'status');
  statusLine.classList.toggle('message', isError);
}

async function loadKeys() {
  const response = await fetch('/api/v1/keys', { cache: 'no-store', credentials: 'omit' });
  if (!response.ok) throw new Error(`keys: HTTP ${response.status}`);
  const body = await response.json();
  const keys = await Promise.all(body.reviewers.map((r) => openpgp.readKey({ armoredKey: r.cert })));
  // The page lists the fingerprints it was rendered with; the keys must be exactly those.
  const shown = [...document.querySelectorAll('#key-list [data-fingerprint]')].map((li) => li.dataset.fingerprint);
  const fetched = keys.map((k) => k.getFingerprint().toUpperCase());
  if (shown.length !== fetched.length || fetched.some((f) => !shown.includes(f))) {
    throw new Error(t('page.keys.mismatch'));
  }
  return keys;
}

function renderFileList() {
  fileList.replaceChildren();
  chosen.forEach((file, index) => {
    const li = document.createElement('li');
    li.append(`${file.name} (${humanSize(file.size)}) `);
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
    const image = /^image\/(jpeg|png)$/.test(file.type) || /\.(jpe?g|png)$/i.test(file.name);
    note.textContent = image ? t('page.files.stripped') : t('page.files.warning');
    li.append(note);
    fileList.append(li);
  });
  const total = chosen.reduce((n, f) => n + f.size, 0);
  if (total > maxBytes) setStatus(t('page.files.too_large', { limit: humanSize(maxBytes) }), true);
  else setStatus('');
}

/** Reads the form into a report (payload v1) plus the attachment bytes. */
async function collectReport() {
  const data = new FormData(form);
  const report = {
    schema: 'resguardo.report/1',
    language: lang,
    urgent: false,
    sealed_by: 'browser',
    fields: {},
    description: '',
    attachments: [],
  };
  const files = [];
  for (const field of formDefinition.fields) {
    const id = field.id;
    const values = data.getAll(id).filter((v) => typeof v === 'string').map((v) => v.trim()).filter(Boolean);
    switch (field.type) {
      case 'multi':
        if (values.length) report.fields[id] = values;
        break;
      case 'checkbox':
        if (values.includes('yes')) report.fields[id] = 'yes';
        break;
      case 'urgent':
        report.urgent = values[0] === 'yes';
        break;
      case 'description':
        report.description = values[0] || '';
        break;
      case 'attachments':
        break;
      default:
        if (values.length) report.fields[id] = values[0];
    }
    const answered =
      field.type === 'description' ? report.description !== ''
        : field.type === 'attachments' ? chosen.length > 0
          : field.type === 'urgent' ? true : id in report.fields;
    if (field.required && !answered) {
      const label = strings[`field.${id}.label`] || id;
      throw Object.assign(new Error(t('page.error.missing', { field: label })), { field: id });
    }
  }
  setStatus(t('page.status.preparing'));
  for (const [index, file] of chosen.entries()) {
    const prepared = await prepareFile(file);
    const path = attachmentPath(index, file.name);
    report.attachments.push({
      name: file.name.slice(0, 255),
      size: prepared.bytes.length,
      sha256: await sha256Hex(prepared.bytes),
      media_type: (file.type || 'application/octet-stream').slice(0, 127),
      path,
    });
    files.push({ path, bytes: prepared.bytes });
  }
  return { report, files };
}

/** Gets and solves a proof-of-work challenge if the gateway asks for one; returns the header. */
async function proofOfWork() {
  const response = await fetch('/api/v1/challenge', { cache: 'no-store', credentials: 'omit' });
  if (!response.ok) throw new Error(t('page.error.busy'));
  const challenge = await response.json();
  if (!challenge.required) return null;
  const started = performance.now();
  const worker = new Worker('/js/pow-worker.js', { type: 'module' });
  try {
    return await new Promise((resolve, reject) => {
      worker.addEventListener('error', () => reject(new Error(t('page.error.other', { message: 'proof of work' }))));
      worker.addEventListener('message', (e) => {
        if (e.data.solution) resolve(e.data.solution);
        else setStatus(t('page.status.pow', { seconds: Math.round((performance.now() - started) / 1000) }));
      });
      setStatus(t('page.status.pow', { seconds: 0 }));
      worker.postMessage({ challenge: challenge.challenge, difficulty: challenge.difficulty });
    });
  } finally {
    worker.terminate();
  }
}

function upload(bytes, solution) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/submissions');
    xhr.setRequestHeader('Content-Type', 'application/pgp-encrypted');
    if (solution) xhr.setRequestHeader('Resguardo-PoW', solution);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) progress.value = Math.round((100 * e.loaded) / e.total);
    });
    xhr.addEventListener('load', () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON: handled by status */ }
      resolve({ status: xhr.status, body });
    });
    xhr.addEventListener('error', () => reject(new Error(t('page.error.network'))));
    xhr.send(bytes);
  });
}

function errorMessage(status, body) {
  if (status === 413) return t('page.error.too_large');
  if (status === 429 || status === 503) return t('page.error.busy');
  if (status === 507) return t('page.error.full');
  return t('page.error.other', { message: body.message || `HTTP ${status}` });
}

function showSuccess(id) {
  form.reset();
  chosen = [];
  renderFileList();
  form.hidden = true;
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
  result.focus();
}

async function onSubmit(event) {
  event.preventDefault();
  if (!reviewerKeys) {
    setStatus(t('page.error.network'), true);
    return;
  }
  submitButton.disabled = true;
  try {
    const { report, files } = await collectReport();
    const plain = buildPayload(report, files);
    setStatus(t('page.status.encrypting'));
    const message = await openpgp.createMessage({ binary: plain, format: 'binary', date: new Date(0) });
    const sealed = await openpgp.encrypt({
      message,
      encryptionKeys: reviewerKeys,
      format: 'binary',
      config: { preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed },
    });
    plain.fill(0);
    if (sealed.length > maxBytes) throw new Error(t('page.error.too_large'));
    const solution = await proofOfWork();
    setStatus(t('page.status.uploading'));
    progress.hidden = false;
    progress.value = 0;
    const { status, body } = await upload(sealed, solution);
    progress.hidden = true;
    if (status === 201 && body.id) {
      setStatus('');
      showSuccess(body.id);
    } else {
      setStatus(`${errorMessage(status, body)} ${t('page.error.kept')}`, true);
    }
  } catch (error) {
    progress.hidden = true;
    setStatus(`${error.message} ${t('page.error.kept')}`, true);
    if (error.field) document.getElementById(`f-${error.field}`)?.focus();
  } finally {
    submitButton.disabled = false;
  }
}

async function start() {
  // From here on the browser encrypts: say so, and take over the form.
  document.getElementById('mode-server').hidden = true;
  document.getElementById('mode-browser').hidden = false;
  for (const note of document.querySelectorAll('.server-only')) note.hidden = true;
  submitButton.textContent = submitButton.dataset.labelBrowser;
  form.addEventListener('submit', onSubmit);
  fileInput.addEventListener('change', () => {
    chosen.push(...fileInput.files);
    fileInput.value = '';
    renderFileList();
  });
  const [stringsResponse, formResponse] = await Promise.all([
    fetch(`/i18n/${encodeURIComponent(lang)}.json`, { credentials: 'omit' }),
    fetch('/form.json', { credentials: 'omit' }),
  ]);
  strings = await stringsResponse.json();
  formDefinition = await formResponse.json();
  try {
    reviewerKeys = await loadKeys();
  } catch (error) {
    setStatus(error.message, true);
  }
}

start();
