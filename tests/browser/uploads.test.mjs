// Uploads that resume and sealed reports sent later, from the page (issue 15,
// docs/uploads-v1.md), in Debian's Chromium against the real gateway on loopback:
// - a large report goes by the resumable route through a loopback proxy that drops the
//   connection at 30 %, 60 % and 90 %; it arrives whole, with at most 1.15 × its sealed size
//   sent through the proxy, and opens with the demo reviewer key;
// - a report sealed and saved in one browser context ("save sealed report") is sent from a
//   second, fresh one ("send a sealed report"); it opens offline with the receipt's
//   conversation intact, and the gateway holds that conversation;
// - a garbled or cut sealed file is refused with its own sentence and nothing is sent.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import {
  repo, es, startGateway, launchBrowser, phone, ready, fillMinimal, shot, exportAndOpen, runTool,
} from './harness.mjs';

const R = await import(join(repo, 'static/js/replies.js'));
const { wordlist } = await import(join(repo, 'static/node_modules/@scure/bip39/wordlists/spanish.js'));
const list = R.wordList(wordlist);

let gateway;
let browser;
let work;

before(async () => {
  gateway = await startGateway(`[limits]\nmax_submission_bytes = ${64 * 1024 * 1024}\n`);
  browser = await launchBrowser();
  work = mkdtempSync(join(tmpdir(), 'resguardo-uploads-'));
});

after(async () => {
  await browser?.close();
  gateway?.stop();
});

/**
 * An HTTP proxy on loopback in front of `target` that counts the request body bytes it takes in
 * from the moment the page creates an upload, and drops the connection (both sides) the first
 * time that count passes each of `cuts` (fractions of the upload's Upload-Length). Every answer
 * closes its connection, so that Chromium never sends a request again on a reused one.
 */
function droppingProxy(target, cuts) {
  const upstream = new URL(target);
  const state = { length: null, counted: 0, dropped: [], requests: [] };
  const server = http.createServer((req, res) => {
    state.requests.push(`${req.method} ${req.url}`);
    if (req.method === 'POST' && req.url.startsWith('/api/v1/uploads') && state.length === null) {
      state.length = Number(req.headers['upload-length']);
    }
    const headers = { ...req.headers, connection: 'close' };
    const forward = http.request({
      host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers,
    }, (answer) => {
      res.writeHead(answer.statusCode, { ...answer.headers, connection: 'close' });
      answer.pipe(res);
    });
    forward.on('error', () => res.destroy());
    let cutOff = false;
    req.on('data', (chunk) => {
      if (cutOff) return;
      let piece = chunk;
      if (state.length !== null) {
        state.counted += chunk.length;
        const cut = cuts.find((c) => !state.dropped.includes(c) && state.counted >= c * state.length);
        if (cut !== undefined) {
          // What came before the cut goes on; then both sides are dropped.
          state.dropped.push(cut);
          cutOff = true;
          piece = chunk.subarray(0, chunk.length - (state.counted - Math.ceil(cut * state.length)));
          forward.write(piece, () => setTimeout(() => forward.destroy(), 50));
          req.socket.destroy();
          return;
        }
      }
      if (!forward.write(piece)) {
        req.pause();
        forward.once('drain', () => req.resume());
      }
    });
    req.on('end', () => { if (!cutOff) forward.end(); });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}/`, state, close: () => server.close() }));
  });
}

/** The words the page shows, one line of three per entry. */
const shownWords = (page, within) => page.$$eval(`${within} #receipt-words > div`, (divs) => divs.map((d) => d.textContent));

test('a report dropped at 30, 60 and 90 % continues where it stopped and arrives whole', async () => {
  const proxy = await droppingProxy(gateway.url, [0.3, 0.6, 0.9]);
  const { context, page, errors } = await phone(browser);
  const statuses = [];
  try {
    await page.goto(proxy.url);
    await ready(page);
    await fillMinimal(page, 'Video de la asamblea.');
    const video = join(work, 'video.bin');
    const bytes = randomBytes(8 * 1024 * 1024);
    writeFileSync(video, bytes);
    await page.setInputFiles('#f-attachments', video);
    await page.waitForFunction(() => document.querySelectorAll('#file-list li').length === 1);
    // What the status line says while it waits to resume.
    await page.exposeFunction('noteStatus', (text) => statuses.push(text));
    await page.evaluate(() => {
      const line = document.getElementById('status');
      new MutationObserver(() => window.noteStatus(line.textContent)).observe(line, { childList: true, characterData: true, subtree: true });
    });
    await page.click('#submit');
    await page.waitForSelector('#submission-id, #page-message .message', { timeout: 120000 });
    const top = await page.textContent('#page-message');
    assert.equal(await page.locator('#submission-id').count(), 1, `not received: ${top}`);
    await shot(page, 'uploads-resumed');
    const id = (await page.textContent('#submission-id')).trim();
    assert.deepEqual(proxy.state.dropped, [0.3, 0.6, 0.9], 'the connection was dropped three times');
    assert.ok(proxy.state.length > bytes.length, 'the upload is the sealed report');
    assert.ok(proxy.state.counted <= 1.15 * proxy.state.length,
      `${proxy.state.counted} bytes sent for ${proxy.state.length}: the upload started over`);
    assert.ok(proxy.state.requests.some((r) => r.startsWith('HEAD /api/v1/uploads/')), 'it asked where to go on from');
    assert.ok(!proxy.state.requests.some((r) => r.startsWith('POST /api/v1/submissions')), 'not the one-piece route');
    const waiting = statuses.filter((s) => /^Se cortó la conexión/.test(s));
    assert.ok(waiting.length >= 1, `a message while it waits to resume: ${statuses.join(' | ')}`);
    const prefix = es['page.status.resume_wait'].split('{percent}')[0];
    assert.ok(waiting.every((s) => s.startsWith(prefix)), waiting.join(' | '));
    assert.deepEqual(errors, []);
    const stored = await page.evaluate(() => localStorage.length + sessionStorage.length);
    assert.equal(stored, 0, 'nothing kept on the device (no tus fingerprint)');

    const { out } = exportAndOpen(gateway, 'resumed');
    const report = JSON.parse(readFileSync(join(out, id, 'report.json'), 'utf8'));
    assert.equal(report.description, 'Video de la asamblea.');
    assert.deepEqual(readFileSync(join(out, id, 'files', '001-video.bin')), bytes, 'the video arrives byte for byte');
  } finally {
    await context.close();
    proxy.close();
  }
});

test('a report sealed and saved in one browser is sent from another and keeps its conversation', async () => {
  const canary = `CANARIO-SELLADO-${randomBytes(4).toString('hex')}`;
  const first = await phone(browser, { acceptDownloads: true });
  const sent = [];
  first.page.on('request', (r) => { if (r.method() !== 'GET') sent.push(`${r.method()} ${r.url()}`); });
  await first.page.goto(gateway.url);
  await ready(first.page);
  await fillMinimal(first.page, `Nos amenazaron. ${canary}`);
  const downloaded = first.page.waitForEvent('download', { timeout: 60000 });
  await first.page.click('#seal-save');
  const download = await downloaded;
  assert.match(download.suggestedFilename(), /^sealed-[0-9a-f]{8}\.bin$/, 'a neutral name');
  const file = join(work, download.suggestedFilename());
  await download.saveAs(file);
  await first.page.waitForSelector('#sealed-saved:not([hidden])');
  const saved = await first.page.textContent('#sealed-saved');
  assert.ok(saved.includes(es['page.seal.carrier']), 'what a carrier learns');
  assert.ok(saved.includes(download.suggestedFilename()));
  const words = (await shownWords(first.page, '#sealed-saved')).join('\n');
  assert.equal(words.split(/\s+/).length, 12, 'the receipt words are shown');
  assert.deepEqual(sent, [], 'nothing was sent');
  await shot(first.page, 'uploads-sealed-saved');
  assert.deepEqual(first.errors, []);
  await first.context.close();

  const bytes = readFileSync(file);
  assert.ok(bytes.subarray(0, 26).equals(Buffer.from('resguardo.sealed-report/1\n')), 'a sealed report file');
  assert.ok(!bytes.includes(Buffer.from(canary)), 'no plaintext in the file');
  assert.ok(!bytes.includes(Buffer.from(words.split('\n')[0].split(' ')[0])), 'no receipt word in the file');

  // A fresh browser, nothing shared with the first: the file alone carries the report.
  const second = await phone(browser);
  await second.page.goto(gateway.url);
  await ready(second.page);
  assert.ok(await second.page.isVisible('#send-sealed'));
  await second.page.setInputFiles('#sealed-file', file);
  await second.page.click('#sealed-send');
  await second.page.waitForSelector('#sealed-result .message', { timeout: 60000 });
  assert.equal(await second.page.getAttribute('#sealed-result .message', 'data-kind'), 'sent',
    await second.page.textContent('#sealed-result'));
  const id = (await second.page.textContent('#sealed-submission-id')).trim();
  assert.match(id, /^[0-9a-f]{32}$/);
  await shot(second.page, 'uploads-sealed-sent');
  // The same file again: it arrived already (its conversation exists).
  await second.page.setInputFiles('#sealed-file', file);
  await second.page.click('#sealed-send');
  await second.page.waitForSelector('#sealed-result .message[data-kind="arrived-before"]', { timeout: 60000 });
  assert.deepEqual(second.errors, []);
  await second.context.close();

  const { out } = exportAndOpen(gateway, 'sealed');
  const report = JSON.parse(readFileSync(join(out, id, 'report.json'), 'utf8'));
  assert.ok(report.description.includes(canary));
  const { entropy } = await R.parseReceipt(words, list);
  assert.equal(report.conversation.token, await R.followUpTokenOf(entropy), 'the conversation of the words shown');
  const receipt = join(work, 'receipt.txt');
  writeFileSync(receipt, words);
  const check = runTool('resguardo-submit', ['check', '--server', gateway.url, '--receipt-file', receipt]);
  assert.match(check.stdout, /No answers yet/, 'the gateway holds the conversation');
});

test('a garbled or cut sealed file is refused with its own sentence, and nothing is sent', async () => {
  const { context, page, errors } = await phone(browser);
  const posts = [];
  page.on('request', (r) => { if (r.method() !== 'GET') posts.push(r.url()); });
  await page.goto(gateway.url);
  await ready(page);
  const cases = [
    ['garbled.bin', randomBytes(4096), 'not_sealed_report'],
    ['cut.bin', Buffer.from('resguardo.sealed-report/1\ntriage: -\nconversation: -\n'), 'truncated'],
  ];
  for (const [name, content, code] of cases) {
    const path = join(work, name);
    writeFileSync(path, content);
    await page.setInputFiles('#sealed-file', path);
    await page.click('#sealed-send');
    await page.waitForSelector(`#sealed-result .message[data-kind="bad-${code}"]`, { timeout: 30000 });
    assert.equal((await page.textContent('#sealed-result')).trim(), es[`page.sealed.error.${code}`]);
  }
  // No file chosen.
  await page.setInputFiles('#sealed-file', []);
  await page.click('#sealed-send');
  await page.waitForSelector('#sealed-result .message[data-kind="none"]');
  assert.deepEqual(posts, [], 'nothing was sent');
  assert.deepEqual(errors, []);
  await context.close();
});
