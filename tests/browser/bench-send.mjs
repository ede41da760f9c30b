// Benchmark: a report with one 10 MiB attachment, from the click on Send to the gateway's 201,
// in Debian's Chromium against a real gateway on loopback (proof of work on, difficulty 14 as in
// the browser tests). One command; prints a table, nothing asserted (speed is a benchmark here).
//
//   node tests/browser/bench-send.mjs [--runs N] [--mib M] TARGET_DIR [TARGET_DIR…]
//
// Each TARGET_DIR is a cargo target directory holding debug/resguardo-gateway (e.g. `target`,
// or the target of an older commit built in a worktree); they are measured back to back, in
// turns, so that the machine's load weighs on each alike. For a build whose page marks its steps
// (performance marks `resguardo:*`, docs/uploads-v1.md part 3) the steps are listed too, and
// the page's primitives are timed one by one on the same file: reading it, SHA-256, making the
// payload stream, sealing it, the proof of work, and the upload (loopback transfer + the
// gateway's check + fsync).

import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startGateway, launchBrowser, fillMinimal, ready } from './harness.mjs';

const args = process.argv.slice(2);
let runs = 3;
let mib = 10;
const targets = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--runs') runs = Number(args[++i]);
  else if (args[i] === '--mib') mib = Number(args[++i]);
  else targets.push(resolve(args[i]));
}
if (!targets.length || !(runs > 0) || !(mib > 0)) {
  console.error('usage: node bench-send.mjs [--runs N] [--mib M] TARGET_DIR [TARGET_DIR…]');
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), 'resguardo-bench-'));
const attachment = join(work, 'video.bin');
writeFileSync(attachment, randomBytes(mib * 1024 * 1024));
const extra = `[limits]\nmax_submission_bytes = ${256 * 1024 * 1024}\n`;

/** Starts the gateway of a target dir (the harness reads CARGO_TARGET_DIR at each start). */
async function gatewayOf(target) {
  process.env.CARGO_TARGET_DIR = target;
  return startGateway(extra);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One send: click → 201, and the page's marks (ms after the click) if it makes them. */
async function oneSend(browser, gateway) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(gateway.url);
  await ready(page);
  await fillMinimal(page);
  await page.setInputFiles('#f-attachments', attachment);
  await page.waitForFunction(() => document.querySelectorAll('#file-list li').length === 1);
  const created = page.waitForResponse((r) => r.status() === 201
    && /\/api\/v1\/(submissions|uploads)/.test(new URL(r.url()).pathname), { timeout: 120000 });
  const clicked = performance.now();
  await page.click('#submit');
  await created;
  const ms = performance.now() - clicked;
  await page.waitForSelector('#submission-id', { timeout: 60000 });
  const marks = await page.evaluate(() => {
    const all = performance.getEntriesByType('mark').filter((m) => m.name.startsWith('resguardo:'));
    const click = all.find((m) => m.name === 'resguardo:click');
    return click ? Object.fromEntries(all.map((m) => [m.name.slice(10), m.startTime - click.startTime])) : null;
  });
  await context.close();
  return { ms, marks };
}

/** The page's primitives, one by one, on the same file (builds that have them). */
async function primitives(browser, gateway) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(gateway.url);
  await ready(page);
  const input = await page.evaluateHandle(() => {
    const el = document.createElement('input');
    el.type = 'file';
    el.id = 'bench-file';
    document.body.append(el);
    return el;
  });
  await input.asElement().setInputFiles(attachment);
  const result = await page.evaluate(async () => {
    const base = document.querySelector('script[type=module]').src.replace(/\/app\.js$/, '');
    let payload;
    let send;
    try {
      payload = await import(`${base}/js/payload.js`);
      send = await import(`${base}/js/send.js`);
    } catch {
      return null;
    }
    const openpgp = await import(`${base}/vendor/openpgp.min.mjs`);
    const file = document.getElementById('bench-file').files[0];
    const time = async (fn) => { const t0 = performance.now(); const v = await fn(); return [performance.now() - t0, v]; };
    const response = await fetch('/api/v1/keys', { cache: 'no-store' });
    const keys = await Promise.all((await response.json()).reviewers.map((r) => openpgp.readKey({ armoredKey: r.cert })));
    const post = (body, solution) => fetch('/api/v1/submissions', {
      method: 'POST', body, headers: { 'Content-Type': 'application/pgp-encrypted', 'Resguardo-PoW': solution },
    }).then((r) => r.status);
    if (!payload.payloadStream) {
      // A build before streaming: the whole file, payload and ciphertext in memory, as its
      // app.js did (read, SHA-256 of the file, buildPayload, SHA-256 of the payload, seal).
      const [read, buffer] = await time(() => file.arrayBuffer());
      const bytes = new Uint8Array(buffer);
      const [sha] = await time(() => payload.sha256Hex(bytes));
      const [build, plain] = await time(() => payload.buildPayload({ schema: 'bench', attachments: [] }, [{ path: 'files/001.bin', bytes }]));
      const [shaPlain] = await time(() => payload.sha256Hex(plain));
      const [seal, sealed] = await time(() => send.seal(openpgp, plain, keys));
      const [pow, solution] = await time(() => send.proofOfWork((k) => k));
      const [upload, status] = await time(() => post(sealed, solution));
      return { read, sha, stream: build, shaPlain, seal, pow, upload, status, sealedBytes: sealed.length, whole: true };
    }
    const [read] = await time(() => file.arrayBuffer());
    const [sha] = await time(() => payload.sha256HexOfBlob(file));
    const report = { schema: 'bench', attachments: [] };
    const files = [{ path: 'files/001.bin', blob: file, size: file.size }];
    const [stream] = await time(async () => {
      const reader = payload.payloadStream(report, files).stream.getReader();
      for (;;) if ((await reader.read()).done) break;
    });
    const [seal, sealed] = await time(() => send.sealStream(openpgp, payload.payloadStream(report, files).stream, keys));
    const [pow, solution] = await time(() => send.proofOfWork((k) => k));
    const [upload, status] = await time(() => post(sealed, solution));
    return { read, sha, stream, seal, pow, upload, status, sealedBytes: sealed.size };
  });
  await context.close();
  return result;
}

const browser = await launchBrowser();
const results = Object.fromEntries(targets.map((t) => [t, { ms: [], marks: [], primitives: null }]));
try {
  const gateways = {};
  for (const target of targets) gateways[target] = await gatewayOf(target);
  // A warm-up send each (the first page load compiles openpgp.js), not counted.
  for (const target of targets) await oneSend(browser, gateways[target]);
  for (let run = 0; run < runs; run++) {
    for (const target of targets) {
      const { ms, marks } = await oneSend(browser, gateways[target]);
      results[target].ms.push(ms);
      if (marks) results[target].marks.push(marks);
    }
  }
  for (const target of targets) results[target].primitives = await primitives(browser, gateways[target]);
  for (const target of targets) gateways[target].stop();
} finally {
  await browser.close();
}

const f = (x) => (x === undefined ? '-' : `${Math.round(x)} ms`);
console.log(`\n${mib} MiB attachment, click → 201, ${runs} runs each (median; all runs)`);
const base = median(results[targets[0]].ms);
for (const target of targets) {
  const { ms } = results[target];
  const m = median(ms);
  console.log(`  ${target}: ${f(m)} (${ms.map((x) => Math.round(x)).join(', ')}); ${(m / base).toFixed(2)} × the first`);
}
for (const target of targets) {
  const { marks, primitives: p } = results[target];
  if (marks.length) {
    const step = (a, b) => median(marks.map((m) => (m[b] ?? NaN) - (m[a] ?? NaN)).filter((x) => !Number.isNaN(x)));
    console.log(`\nsteps of a send (${target}; ms after the click, medians):`);
    console.log(`  keys and checks before reading:  ${f(median(marks.map((m) => m.hash)))}`);
    console.log(`  read + SHA-256 of the files:     ${f(step('hash', 'hashed'))}`);
    console.log(`  payload + encryption (streamed): ${f(step('seal', 'sealed'))}`);
    console.log(`  proof of work (parallel; wait):  ${f(step('pow', 'powed'))}`);
    console.log(`  upload → answer:                 ${f(step('upload', 'answered'))}`);
    console.log(`  click → answer (page):           ${f(median(marks.map((m) => m.answered)))}`);
  }
  if (p) {
    console.log(`\nprimitives, one at a time (${target}; ${p.sealedBytes} sealed bytes, upload status ${p.status}):`);
    console.log(`  read the file (arrayBuffer):     ${f(p.read)}`);
    console.log(`  SHA-256 of the file:             ${f(p.sha)}`);
    if (p.whole) {
      console.log(`  buildPayload (whole, in memory): ${f(p.stream)}`);
      console.log(`  SHA-256 of the payload:          ${f(p.shaPlain)}`);
      console.log(`  encryption of the payload:       ${f(p.seal)}`);
    } else {
      console.log(`  payload stream, drained:         ${f(p.stream)}`);
      console.log(`  payload + encryption into Blob:  ${f(p.seal)}`);
    }
    console.log(`  proof of work (alone):           ${f(p.pow)}`);
    console.log(`  one-piece upload (loopback transfer + gateway check + fsync): ${f(p.upload)}`);
  }
}
