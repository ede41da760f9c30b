// Benchmark: peak JavaScript memory of the page while it sends a report with one 100 MiB
// attachment (docs/uploads-v1.md, part 3; goal: at most 64 MiB), in Debian's Chromium against a
// real gateway on loopback. One command; prints a table, nothing asserted.
//
//   node tests/browser/bench-heap.mjs [--mib M] TARGET_DIR [TARGET_DIR…]
//
// Each TARGET_DIR is a cargo target directory holding debug/resguardo-gateway; they are measured
// one after the other in the same run. The page's heap is sampled every 50 ms through the
// DevTools protocol (`Runtime.getHeapUsage`) from the click until the answer: `usedSize` is the
// V8 heap; `backingStorageSize` is the memory of ArrayBuffers, which live outside that heap but
// are JavaScript memory all the same: their sum is the figure that counts. Every tenth sample
// follows a forced garbage collection (`HeapProfiler.collectGarbage`): its peak is what the page
// holds; the others' peak also counts garbage the collector had not reclaimed yet. Blob storage
// (where the sealed message is gathered) is the browser's, not the page's heap.
//
// Chromium is driven over a bare DevTools connection, not Playwright: a page that posts 100 MiB
// from memory (as the page before streaming did) makes DevTools events too large for
// Playwright's transport. Node's WebSocket is used (the script restarts itself with
// --experimental-websocket on Node 20).

import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startGateway } from './harness.mjs';

if (typeof WebSocket === 'undefined') {
  const again = spawnSync(process.execPath, ['--experimental-websocket', ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(again.status ?? 1);
}

const args = process.argv.slice(2);
let mib = 100;
const targets = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--mib') mib = Number(args[++i]);
  else targets.push(resolve(args[i]));
}
if (!targets.length || !(mib > 0)) {
  console.error('usage: node bench-heap.mjs [--mib M] TARGET_DIR [TARGET_DIR…]');
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'resguardo-bench-heap-'));
const attachment = join(work, 'video.bin');
// Written in 1 MiB pieces: no 100 MiB buffer in this process either.
writeFileSync(attachment, Buffer.alloc(0));
for (let i = 0; i < mib; i++) writeFileSync(attachment, randomBytes(1024 * 1024), { flag: 'a' });
const extra = `[limits]\nmax_submission_bytes = ${2 * mib * 1024 * 1024 + 64 * 1024 * 1024}\nbody_idle_timeout_secs = 300\n`;
const MiB = 1024 * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Chromium with a DevTools port; resolves { send(method, params), close() } on one page. */
async function chromium() {
  const profile = mkdtempSync(join(tmpdir(), 'resguardo-bench-profile-'));
  const proc = spawn(process.env.CHROMIUM || '/usr/bin/chromium', [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, '--remote-debugging-port=0', 'about:blank',
  ]);
  const endpoint = await new Promise((res, rej) => {
    let err = '';
    proc.stderr.on('data', (c) => {
      err += c;
      const m = err.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) res(m[1]);
    });
    proc.on('exit', (code) => rej(new Error(`chromium exited ${code}: ${err}`)));
  });
  const ws = new WebSocket(endpoint);
  await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
  let next = 1;
  const waiting = new Map();
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.id && waiting.has(msg.id)) {
      const { res, rej } = waiting.get(msg.id);
      waiting.delete(msg.id);
      if (msg.error) rej(new Error(`${msg.error.message}`)); else res(msg.result);
    }
  };
  const raw = (method, params = {}, sessionId) => new Promise((res, rej) => {
    const id = next++;
    waiting.set(id, { res, rej });
    ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
  });
  const { targetId } = await raw('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await raw('Target.attachToTarget', { targetId, flatten: true });
  return {
    send: (method, params) => raw(method, params, sessionId),
    close: () => { ws.close(); proc.kill('SIGKILL'); },
  };
}

/** Evaluates `expression` in the page; resolves its value. */
async function evaluate(page, expression) {
  const r = await page.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true });
  if (r.exceptionDetails) throw new Error(r.exceptionDetails.exception?.description || r.exceptionDetails.text);
  return r.result.value;
}

async function until(page, expression, seconds) {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    if (await evaluate(page, expression)) return;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${expression}`);
}

async function measure(target) {
  process.env.CARGO_TARGET_DIR = target;
  const gateway = await startGateway(extra);
  const page = await chromium();
  try {
    await page.send('Page.enable');
    await page.send('Page.navigate', { url: gateway.url });
    await until(page, "!!document.querySelector('#mode-browser:not([hidden])')", 60);
    await evaluate(page, `(() => {
      document.querySelector('input[name="what_happened"][value="threat"]').click();
      const d = document.getElementById('f-description');
      d.value = 'Nos amenazaron en la asamblea.';
      d.dispatchEvent(new Event('input', { bubbles: true }));
    })()`);
    const { root } = await page.send('DOM.getDocument', {});
    const { nodeId } = await page.send('DOM.querySelector', { nodeId: root.nodeId, selector: '#f-attachments' });
    await page.send('DOM.setFileInputFiles', { nodeId, files: [attachment] });
    await until(page, "document.querySelectorAll('#file-list li').length === 1", 30);
    await page.send('HeapProfiler.enable');
    await page.send('HeapProfiler.collectGarbage');
    const baseline = await page.send('Runtime.getHeapUsage');
    const base = baseline.usedSize + (baseline.backingStorageSize ?? 0);
    const peak = { used: baseline.usedSize, backing: baseline.backingStorageSize ?? 0, sum: base, live: base };
    let sampling = true;
    const sampler = (async () => {
      for (let n = 1; sampling; n++) {
        if (n % 10 === 0) await page.send('HeapProfiler.collectGarbage');
        const h = await page.send('Runtime.getHeapUsage');
        const backing = h.backingStorageSize ?? 0;
        peak.used = Math.max(peak.used, h.usedSize);
        peak.backing = Math.max(peak.backing, backing);
        peak.sum = Math.max(peak.sum, h.usedSize + backing);
        if (n % 10 === 0) peak.live = Math.max(peak.live, h.usedSize + backing);
        await sleep(50);
      }
    })();
    const started = performance.now();
    await evaluate(page, "document.getElementById('submit').click()");
    await until(page, "!!document.querySelector('#submission-id, #page-message .message')", 600);
    const seconds = (performance.now() - started) / 1000;
    sampling = false;
    await sampler;
    const sent = await evaluate(page, "!!document.getElementById('submission-id')");
    return { sent, seconds, baseline: base, peak, reportsBacking: 'backingStorageSize' in baseline };
  } finally {
    page.close();
    gateway.stop();
  }
}

const results = [];
for (const target of targets) results.push([target, await measure(target)]);
const m = (x) => `${(x / MiB).toFixed(1)} MiB`;
console.log(`\npeak JavaScript memory while sending a ${mib} MiB attachment (sampled every 50 ms)`);
for (const [target, r] of results) {
  console.log(`  ${target}: ${r.sent ? 'sent' : 'NOT sent'} in ${r.seconds.toFixed(1)} s; before the click ${m(r.baseline)}`);
  console.log(`    peak V8 heap ${m(r.peak.used)}; peak ArrayBuffers ${r.reportsBacking ? m(r.peak.backing) : 'not reported'}; `
    + `peak of both ${m(r.peak.sum)}`);
  console.log(`    peak of both after a forced collection (what the page holds): ${m(r.peak.live)}`);
}
