// Benchmark, not a test (no timing is asserted): how long a reporter waits at /check, over
// loopback TLS against the real gateway, in Debian's Chromium.
//
//   node tests/browser/bench-checkin.mjs            (after `cargo build --bins`)
//
// Two conversations are started with `resguardo-submit --receipt-out`; the reviewers' side is the
// real CLIs (courier fetch, open, 20 answers by demo reviewer 1 in one outbox, push), as in
// replies.test.mjs. Then, alternating between the two so drift hits both alike:
//   - JavaScript on: from the click on "See answers" (the words already typed) until the thread
//     is shown with every answer rendered and verified (20), or with "no answers yet" (0). This is
//     the proof of work + the check-in + opening the box (the reply key) + decrypting and
//     verifying each answer; the 0-answer conversation is the baseline, so the ratio shows what
//     the 20 answers cost beyond the work and the key.
//   - JavaScript off (Tor Browser "Safest"): from the click on the <noscript> form's button until
//     the thread page the gateway rendered has loaded (POST /check: the gateway opens and checks
//     everything in memory). [form] token_min_age_secs = 0 here, so the form token's wait (5 s
//     by default, which a person typing 12 words spends anyway) is not in the figure.
// Each series: 1 warm-up run (not counted), then RUNS runs, each in a new browser context (a
// fresh page load, as a reporter coming back). The proof-of-work difficulty is the gateway's
// default (no [proof_of_work] difficulty is set); the one the page was given is printed.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { es, startGateway, launchBrowser, phone, demoCourier, demoTeam, runTool } from './harness.mjs';

const RUNS = Number(process.env.RUNS || 7);
const ANSWERS = 20;

const run = (program, args) => runTool(program, args).stdout;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ms = (x) => `${Math.round(x)} ms`;
const summary = (xs) => `median ${ms(median(xs))}, max ${ms(Math.max(...xs))}  [${xs.map((x) => Math.round(x)).join(', ')}]`;

const gateway = await startGateway(
  `[[couriers]]\ncert = "${demoCourier('pub.asc')}"\n`
  // The gateway's default difficulty: an empty [proof_of_work] keeps the harness from setting 14.
  + '[proof_of_work]\nenabled = true\n'
  // Check-ins without JavaScript are admitted like form posts: enough of those too.
  + '[form]\ntoken_min_age_secs = 0\nposts_per_minute = 600\npost_burst = 100\n'
  // Enough check-ins for every run at once (the default budget is 30 at once, 120 a minute).
  + '[rate_limits]\nchecks_per_minute = 600\ncheck_burst = 200\n',
  { tls: true },
);
const browser = await launchBrowser();
const work = mkdtempSync(join(tmpdir(), 'resguardo-bench-checkin-'));

try {
  const connection = ['--server', gateway.url, '--insecure-self-signed'];
  const team = demoTeam(gateway, work);

  // Two reports, each starting a conversation; their words kept in files.
  const start = (name) => {
    const message = join(work, `${name}.txt`);
    writeFileSync(message, `Reporte de prueba (${name}).`);
    const receipt = join(work, `${name}-receipt.txt`);
    const out = run('resguardo-submit', [...connection, '--message', message, '--receipt-out', receipt]);
    const id = out.match(/\b[0-9a-f]{32}\b/)?.[0];
    assert.ok(id, `no submission id in: ${out}`);
    return { id, words: readFileSync(receipt, 'utf8').trim() };
  };
  const busy = start('veinte');
  const quiet = start('ninguna');

  // The reviewers: fetch, open, 20 answers to the first report in one outbox, push.
  const opened = team.fetchAndOpen('bundle');
  const outbox = join(work, 'outbox.json');
  for (let i = 1; i <= ANSWERS; i += 1) {
    const message = join(work, `reply-${i}.txt`);
    writeFileSync(message, `Respuesta ${i}. ${'Texto de prueba. '.repeat(20)}`);
    team.reply(join(opened, busy.id), message, outbox);
  }
  team.push(outbox);

  const difficulties = new Set();

  /**
   * One check-in with JavaScript on: ms from the click to the thread shown in full, and of that
   * the proof of work (from the challenge's answer to the check-in request).
   */
  async function withScript(words, expected) {
    const { context, page, errors } = await phone(browser, { ignoreHTTPSErrors: true });
    let challengeAt = 0;
    let pow = NaN;
    page.on('response', async (r) => {
      if (new URL(r.url()).pathname === '/api/v1/challenge') {
        challengeAt = performance.now();
        try { difficulties.add((await r.json()).difficulty); } catch { /* counted as missing below */ }
      }
    });
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/api/v1/conversations/check' && challengeAt) pow = performance.now() - challengeAt;
    });
    await page.goto(`${gateway.url}check`);
    await page.waitForSelector('#check-form:not([hidden])');
    await page.fill('#receipt-input', words);
    const started = performance.now();
    await page.click('#check-submit');
    if (expected) {
      await page.waitForFunction((n) => !document.getElementById('thread').hidden
        && document.querySelectorAll('#replies .reply').length === n, expected, { timeout: 120000, polling: 'raf' });
    } else {
      await page.waitForFunction(() => !document.getElementById('thread').hidden
        && document.getElementById('replies').textContent.trim() !== '', null, { timeout: 120000, polling: 'raf' });
    }
    const elapsed = performance.now() - started;
    const verified = await page.$$eval('#replies .reply[data-verified="yes"]', (n) => n.length);
    assert.equal(verified, expected, 'every answer shown as the team\'s');
    if (!expected) assert.ok((await page.textContent('#replies')).includes(es['page.check.none_yet']));
    assert.deepEqual(errors, [], 'no script errors');
    assert.ok(Number.isFinite(pow), 'the check-in paid a proof of work');
    await context.close();
    return { elapsed, pow };
  }

  /** One check-in with JavaScript off: ms from the click to the gateway's thread page loaded. */
  async function withoutScript(words, expected) {
    const { context, page } = await phone(browser, { ignoreHTTPSErrors: true, javaScriptEnabled: false });
    await page.goto(`${gateway.url}check`);
    await page.fill('#receipt-nojs', words);
    const started = performance.now();
    const [response] = await Promise.all([
      page.waitForNavigation({ waitUntil: 'load', timeout: 120000 }),
      page.click('#check-form-nojs button[type="submit"]'),
    ]);
    const elapsed = performance.now() - started;
    assert.equal(response.status(), 200, await page.textContent('main'));
    assert.equal(await page.$$eval('#replies article.reply.verified', (n) => n.length), expected);
    assert.equal(await page.$$eval('#replies article.reply.warning', (n) => n.length), 0);
    await context.close();
    return elapsed;
  }

  const times = { js20: [], js0: [], pow20: [], pow0: [], nojs20: [], nojs0: [] };
  // Warm-up (not counted): the first page load compiles the page's scripts.
  await withScript(busy.words, ANSWERS);
  await withScript(quiet.words, 0);
  await withoutScript(busy.words, ANSWERS);
  await withoutScript(quiet.words, 0);
  for (let i = 0; i < RUNS; i += 1) {
    const busyRun = await withScript(busy.words, ANSWERS);
    times.js20.push(busyRun.elapsed);
    times.pow20.push(busyRun.pow);
    const quietRun = await withScript(quiet.words, 0);
    times.js0.push(quietRun.elapsed);
    times.pow0.push(quietRun.pow);
  }
  const beyond20 = times.js20.map((t, i) => t - times.pow20[i]);
  const beyond0 = times.js0.map((t, i) => t - times.pow0[i]);
  for (let i = 0; i < RUNS; i += 1) {
    times.nojs20.push(await withoutScript(busy.words, ANSWERS));
    times.nojs0.push(await withoutScript(quiet.words, 0));
  }

  const cpus = (await import('node:os')).cpus();
  console.log(`check-in at /check over loopback TLS, Chromium (${cpus.length} × ${cpus[0]?.model?.trim()}), ${RUNS} runs each after 1 warm-up`);
  console.log(`proof-of-work difficulty: ${[...difficulties].join(', ')} leading zero bits (the gateway's default; none set)`);
  console.log(`JavaScript on,  ${ANSWERS} answers: ${summary(times.js20)}`);
  console.log(`JavaScript on,   0 answers: ${summary(times.js0)}   (baseline: proof of work + check-in + box/reply key)`);
  console.log(`  ratio of medians ${ANSWERS}/0: ${(median(times.js20) / median(times.js0)).toFixed(2)} `
    + `(${ms(median(times.js20) - median(times.js0))} more)`);
  console.log(`  proof of work in those runs (challenge answered → check-in sent): ${summary([...times.pow20, ...times.pow0])}`);
  console.log(`  each run without its own proof of work: ${ANSWERS} answers ${summary(beyond20)}`);
  console.log(`                                           0 answers ${summary(beyond0)}`);
  console.log(`  ratio of those medians ${ANSWERS}/0: ${(median(beyond20) / median(beyond0)).toFixed(2)} `
    + `(the ${ANSWERS} answers: ${ms(median(beyond20) - median(beyond0))} more)`);
  console.log(`JavaScript off, ${ANSWERS} answers (POST /check, opened by the gateway): ${summary(times.nojs20)}`);
  console.log(`JavaScript off,  0 answers: ${summary(times.nojs0)}`);
} finally {
  await browser.close();
  gateway.stop();
  rmSync(work, { recursive: true, force: true });
}
