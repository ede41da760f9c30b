// Sending from the browser, shared by the report page (app.js) and the check-in page (check.js):
// the reviewer keys, sealing a payload to them, the proof of work, an upload that says when it
// stalls, and the list of chosen files. Every message is a page string, through the page's `t`.

import { paddedTriage, triageOfReport, utcDay } from './triage.js';
import { vouchedKeys } from './keylist.js';

/** Refusals of a proof of work that are not the reporter's doing: fetched and solved again. */
export const POW_RETRY_CODES = new Set(['pow_invalid', 'pow_expired', 'pow_outdated', 'pow_insufficient',
  'pow_replayed', 'pow_malformed', 'pow_missing']);

/**
 * The reviewer and courier keys from /api/v1/keys. The page lists the fingerprints it was
 * rendered with (`shown`); the keys must be exactly those (else an error with `mismatch`). With
 * `shown` null, the keys are taken as served (to verify replies: the box names the keys to use).
 * With `pin`, the organisation fingerprint the page shows, the keys are the ones the signed key
 * list vouches for under that key (./keylist.js), else an error with `notVouched`.
 */
export async function loadKeys(openpgp, shown, pin = null) {
  const response = await fetch('/api/v1/keys', { cache: 'no-store', credentials: 'omit' });
  if (!response.ok) throw new Error(`keys: HTTP ${response.status}`);
  const body = await response.json();
  let reviewers;
  let couriers;
  if (pin) {
    ({ reviewers, couriers } = await vouchedKeys(openpgp, body, pin, utcDay()));
  } else {
    reviewers = await Promise.all(body.reviewers.map((r) => openpgp.readKey({ armoredKey: r.cert })));
    // The people on call: each report's triage envelope is sealed to them (none: no envelope).
    couriers = await Promise.all((body.couriers || []).map((c) => openpgp.readKey({ armoredKey: c.cert })));
  }
  const fetched = reviewers.map((k) => k.getFingerprint().toUpperCase());
  if (shown && (shown.length !== fetched.length || fetched.some((f) => !shown.includes(f)))) {
    throw Object.assign(new Error('mismatch'), { mismatch: true });
  }
  return { reviewers, couriers };
}

/** The fingerprints a page was rendered with (its #key-list). */
export const shownFingerprints = () =>
  [...document.querySelectorAll('#key-list [data-fingerprint]')].map((li) => li.dataset.fingerprint);

/** `bytes` encrypted to `keys`, binary, uncompressed, with no date in it. */
export async function seal(openpgp, bytes, keys) {
  const message = await openpgp.createMessage({ binary: bytes, format: 'binary', date: new Date(0) });
  return openpgp.encrypt({
    message,
    encryptionKeys: keys,
    format: 'binary',
    config: { preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed },
  });
}

/** Pieces of the sealed message are gathered into a Blob part of about this size, so the
 * ciphertext lives in the browser's blob storage, not in the JavaScript heap. */
export const SEALED_PART = 1024 * 1024;

/**
 * `stream` (a ReadableStream of the payload) encrypted to `keys` as it is read, like seal();
 * resolves a Blob of the binary message, gathered in parts of about SEALED_PART bytes.
 * `onBytes(n)` reports how much ciphertext is made.
 */
export async function sealStream(openpgp, stream, keys, onBytes = () => {}) {
  const message = await openpgp.createMessage({ binary: stream, format: 'binary', date: new Date(0) });
  const encrypted = await openpgp.encrypt({
    message,
    encryptionKeys: keys,
    format: 'binary',
    config: { preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed },
  });
  const parts = [];
  let pending = [];
  let pendingBytes = 0;
  let total = 0;
  const reader = encrypted.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending.push(value);
      pendingBytes += value.length;
      total += value.length;
      if (pendingBytes >= SEALED_PART) {
        parts.push(new Blob(pending));
        pending = [];
        pendingBytes = 0;
        onBytes(total);
      }
    }
  } finally {
    reader.releaseLock();
  }
  if (pendingBytes) parts.push(new Blob(pending));
  return new Blob(parts, { type: 'application/octet-stream' });
}

/** From this size on a sealed message goes by the resumable route (docs/uploads-v1.md). */
export const RESUMABLE_FROM = 1024 * 1024;

/** The waits before the tries of a resumed upload, in seconds: 0, 1, 3, 5, 10, 20, then 30. */
export const retryDelay = (attempt) => [0, 1, 3, 5, 10, 20][attempt] ?? 30;

/** Answers of the resumable route that end the upload (a refusal the one-piece route also
 * gives); anything else with no answer, or a passing trouble, is tried again from where it
 * stopped. */
function finalAnswer(method, status, code) {
  if (method === 'POST') return true; // creation: refused as the one-piece route would be
  if (status === 409 && code === 'offset_mismatch') return false;
  if (status === 423 || status === 429 || status === 502 || status === 503 || status === 504 || status === 500) return false;
  return status >= 400;
}

function answerOf(response) {
  let body = {};
  try { body = JSON.parse(response.getBody() || '{}'); } catch { /* not JSON: handled by status */ }
  if (!body || typeof body !== 'object') body = {};
  // A HEAD that finds the upload complete names the submission in headers (its answer was lost).
  const id = response.getHeader('Resguardo-Submission');
  if (id && !body.id) {
    body = { id };
    const sequence = Number(response.getHeader('Resguardo-Sequence'));
    if (Number.isSafeInteger(sequence) && sequence > 0) body.sequence = sequence;
  }
  return { status: response.getStatus(), body };
}

/**
 * Uploads `blob` (a sealed message) through tus to /api/v1/uploads (docs/uploads-v1.md, part 1),
 * with `headers` on the creation request only (the proof of work, the triage envelope, the
 * conversation). A broken connection, a stall (no progress for `stallSeconds`) or a passing
 * refusal is tried again after retryDelay(n), continuing from the last byte the gateway holds,
 * until `resumeSeconds` have passed since the last progress. Nothing is stored on the device.
 * Resolves { status, body } (the completing answer, or a refusal, as the one-piece route's);
 * rejects with a reason (cancelled, or "NOT sent" once the time is over). `onPercent(n)` reports
 * progress, `onWaiting(n)` a lost connection that will continue from n %, `onAbort(fn)` hands out
 * the way to cancel (null once it is over). `uploadUrl`: an upload of this very blob that an
 * earlier call left unfinished, to go on with (the gateway makes a new one if it is gone);
 * `onUrl(url)` hands out the upload's URL (in memory only) once the gateway made it.
 */
export function uploadResumable(t, tus, { blob, headers, stallSeconds, resumeSeconds, uploadUrl = null,
  onPercent = () => {}, onWaiting = () => {}, onAbort = () => {}, onUrl = () => {} }) {
  return new Promise((resolve, reject) => {
    let lastProgress = performance.now(); // bytes last moved: the time limit counts from here
    let tryStarted = performance.now(); // a try that moves nothing for stallSeconds is dropped
    let attempt = 0;
    let sent = 0;
    let retryTimer = null;
    let finished = false;
    const percentOf = (n) => Math.floor((100 * n) / blob.size);
    const finish = (fn, value) => {
      if (finished) return;
      finished = true;
      clearInterval(watchdog);
      clearTimeout(retryTimer);
      onAbort(null);
      fn(value);
    };
    const retry = () => {
      if (finished || retryTimer !== null) return;
      if (performance.now() - lastProgress > resumeSeconds * 1000) {
        upload.abort(false);
        finish(reject, new Error(t('page.error.stalled', { seconds: resumeSeconds })));
        return;
      }
      // What arrived is kept: the next try asks the gateway where to go on from.
      onWaiting(percentOf(sent));
      const delay = retryDelay(attempt);
      attempt += 1;
      retryTimer = setTimeout(() => {
        retryTimer = null;
        tryStarted = performance.now();
        upload.start();
      }, delay * 1000);
    };
    const upload = new tus.Upload(blob, {
      // tus-js-client resolves the Location against the endpoint: it must be absolute.
      endpoint: new URL('/api/v1/uploads', window.location.href).href,
      uploadUrl,
      onUploadUrlAvailable() { onUrl(upload.url); },
      retryDelays: null, // tried again here, with the page's messages and time limit
      storeFingerprintForResuming: false, // nothing in localStorage
      removeFingerprintOnSuccess: false,
      chunkSize: Infinity, // one PATCH with the rest: the gateway keeps every byte that arrives
      metadata: {}, // no file name or type ever reaches the server
      onBeforeRequest(request) {
        if (request.getMethod() !== 'POST') return;
        for (const [name, value] of Object.entries(headers)) if (value) request.setHeader(name, value);
      },
      onAfterResponse(request, response) {
        const offset = Number(response.getHeader('Upload-Offset'));
        if (response.getStatus() < 300 && Number.isSafeInteger(offset)) sent = offset;
      },
      onProgress(bytes) {
        if (bytes > sent) {
          lastProgress = performance.now();
          tryStarted = lastProgress;
          attempt = 0;
        }
        sent = bytes;
        onPercent(percentOf(bytes));
      },
      onSuccess({ lastResponse }) {
        finish(resolve, answerOf(lastResponse));
      },
      onError(error) {
        const response = error.originalResponse;
        if (response) {
          const answer = answerOf(response);
          // The completing answer always counts, even if the client found fault with it.
          if (answer.status === 201 && answer.body.id) return finish(resolve, answer);
          const method = error.originalRequest?.getMethod();
          if (finalAnswer(method, answer.status, answer.body.error)) return finish(resolve, answer);
        }
        return retry();
      },
    });
    const watchdog = setInterval(() => {
      if (retryTimer === null && performance.now() - tryStarted > stallSeconds * 1000) {
        // No progress: the connection is as good as lost; go on from what arrived.
        upload.abort(false);
        retry();
      }
    }, 1000);
    onAbort(() => {
      // The gateway deletes what arrived at once (tus termination).
      upload.abort(true).catch(() => {});
      finish(reject, new Error(t('page.error.cancelled')));
    });
    upload.start();
  });
}

/**
 * Gets and solves a proof-of-work challenge if the gateway asks for one; resolves the
 * Resguardo-PoW header value, or null. `onSeconds(n)` reports progress; `onWorker(worker)` hands
 * out the worker while it runs (its `cancel()` rejects with "cancelled").
 */
export async function proofOfWork(t, { onSeconds = () => {}, onWorker = () => {} } = {}) {
  const response = await fetch('/api/v1/challenge', { cache: 'no-store', credentials: 'omit' });
  if (!response.ok) throw new Error(t(response.status === 429 ? 'error.too_many_requests' : 'page.error.busy'));
  const challenge = await response.json();
  if (!challenge.required) return null;
  const started = performance.now();
  const worker = new Worker(new URL('./pow-worker.js', import.meta.url), { type: 'module' });
  onWorker(worker);
  try {
    return await new Promise((resolve, reject) => {
      worker.addEventListener('error', () => reject(new Error(t('page.error.other'))));
      worker.cancel = () => reject(new Error(t('page.error.cancelled')));
      worker.addEventListener('message', (e) => {
        if (e.data.solution) resolve(e.data.solution);
        else onSeconds(Math.round((performance.now() - started) / 1000));
      });
      onSeconds(0);
      worker.postMessage({ challenge: challenge.challenge, difficulty: challenge.difficulty });
    });
  } finally {
    worker.terminate();
    onWorker(null);
  }
}

/**
 * Uploads a sealed message to /api/v1/submissions with `headers`. Resolves { status, body };
 * rejects with a reason (network, stalled, no answer, cancelled). An upload that makes no
 * progress for `stallSeconds` is aborted. `onPercent(n)` reports progress; `onAbort(fn)` hands
 * out the way to cancel while it runs (and null once it is over).
 */
export function upload(t, { bytes, headers, stallSeconds, onPercent = () => {}, onAbort = () => {} }) {
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
    const done = () => { clearInterval(watchdog); onAbort(null); };
    onAbort(() => { reason = 'cancelled'; xhr.abort(); });
    xhr.open('POST', '/api/v1/submissions');
    xhr.setRequestHeader('Content-Type', 'application/pgp-encrypted');
    for (const [name, value] of Object.entries(headers)) if (value) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener('progress', (e) => {
      lastProgress = performance.now();
      if (e.lengthComputable) onPercent(Math.round((100 * e.loaded) / e.total));
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
export function errorMessage(t, strings, status, body) {
  const code = typeof body.error === 'string' ? body.error : '';
  if (code && strings[`error.${code}`]) return t(`error.${code}`);
  if (status === 413) return t('error.too_large');
  if (status === 429 || status === 503) return t('page.error.busy');
  if (status === 507) return t('page.error.full');
  return t('page.error.other');
}

/** A page-string function over the strings the server embedded (never shows a key name). */
export function translator(strings) {
  return (key, vars = {}) =>
    Object.entries(vars).reduce((s, [k, v]) => s.replaceAll(`{${k}}`, v), strings[key] ?? strings['page.error.other']);
}

/**
 * The triage envelope (docs/early-alerts.md): urgency, types, region and day only, padded to one
 * size and sealed to every courier, as base64 for the Resguardo-Triage header; null without
 * couriers.
 */
export async function sealTriage(openpgp, couriers, report) {
  if (!couriers.length) return null;
  const sealed = await seal(openpgp, paddedTriage(triageOfReport(report, utcDay())), couriers);
  let text = '';
  for (const byte of sealed) text += String.fromCharCode(byte);
  return btoa(text);
}

/** A file size as the page writes it. */
export function humanSize(bytes) {
  return bytes >= 1048576 ? `${Math.round(bytes / 1048576)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

/**
 * Lists the chosen files in `list` (a <ul>): each with its name, size and a button to remove it
 * (`onRemove(index)`), the note `noteOf(entry)` names (a page string key, or null), its `state`
 * as data-state when it has one, and, when `mustDecide(entry)`, a "send anyway" box bound to
 * `entry.sendAnyway`: an image whose hidden data could not be removed goes only if ticked.
 */
export function renderFileList(t, list, chosen, { noteOf, mustDecide, onRemove }) {
  list.replaceChildren(...chosen.map((entry, index) => {
    const li = document.createElement('li');
    li.append(`${entry.file.name} (${humanSize(entry.file.size)}) `);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'link';
    remove.textContent = t('page.files.remove');
    remove.addEventListener('click', () => onRemove(index));
    li.append(remove);
    if (entry.state) li.dataset.state = entry.state;
    const noteKey = noteOf(entry);
    if (noteKey) {
      const note = document.createElement('span');
      note.className = 'note';
      note.textContent = t(noteKey);
      li.append(note);
    }
    if (mustDecide(entry)) {
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
    return li;
  }));
}
