// Anonymous replies from the page (issue 12, docs/replies-v1.md), over loopback TLS: a report
// sent from the page in Chromium shows its receipt once; the reviewers' side is the real CLIs
// (courier fetch, open, reply, push); the page's /check reads the answer with the words, verified
// as the team's; a wrong receipt finds nothing; a follow-up sent from /check carries the first
// report's follow-up token, arrives and `open` threads it. The Rust client reads the page's
// conversation too (`resguardo-submit check`), so the box and the reply key the page makes are
// the ones Rust makes. Answers show in the team's numbering even when the gateway reorders,
// repeats or holds them back. A report whose 201 is lost keeps its words on screen, and its
// retry is told the report arrived. The time from the words to 20 answers shown is measured and
// printed.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { repo, artifacts, es, en, startGateway, launchBrowser, phone, ready, fillMinimal, shot, allFiles, demoCourier, demoTeam, runTool } from './harness.mjs';

const R = await import(join(repo, 'static/js/replies.js'));
const { wordlist } = await import(join(repo, 'static/node_modules/@scure/bip39/wordlists/spanish.js'));
const list = R.wordList(wordlist);

const CANARY = `CANARIO-PAGINA-${randomBytes(4).toString('hex')}`;
let gateway;
let browser;
let work;
let team;

before(async () => {
  gateway = await startGateway(`[[couriers]]\ncert = "${demoCourier('pub.asc')}"\n`, { tls: true });
  assert.match(gateway.url, /^https:/);
  browser = await launchBrowser();
  work = mkdtempSync(join(tmpdir(), 'resguardo-replies-'));
  team = demoTeam(gateway, work);
});

after(async () => {
  await browser?.close();
  gateway?.stop();
});

const run = runTool;
const connection = () => ['--server', gateway.url, '--insecure-self-signed'];
const fetchAndOpen = (label) => team.fetchAndOpen(label);
const push = (outbox) => team.push(outbox);

/** An answer written offline by demo reviewer 1 (for the reporter and both reviewers). */
function reply(report, text, outbox, attach) {
  const message = join(work, `reply-${randomBytes(4).toString('hex')}.txt`);
  writeFileSync(message, text);
  team.reply(report, message, outbox, attach);
}

/** A page in Chromium on the TLS gateway (its certificate is the gateway's own). */
const tab = () => phone(browser, { ignoreHTTPSErrors: true });

/** The follow-up token of the receipt these words are, derived here as the page and Rust do. */
async function tokenOf(words) {
  const { entropy } = await R.parseReceipt(words, list);
  return R.followUpTokenOf(entropy);
}

/** The words the page shows, one line of three per entry (`within`: the section they are in). */
const shownWords = (page, within = '') => page.$$eval(`${within} #receipt-words > div`, (divs) => divs.map((d) => d.textContent));

/** Types the words into /check and waits for the answer: the thread or a message. */
async function checkIn(page, typed) {
  await page.fill('#receipt-input', typed);
  const started = performance.now();
  await page.click('#check-submit');
  await page.waitForSelector('#thread:not([hidden]), #page-message .message', { timeout: 60000 });
  return performance.now() - started;
}

let first; // { id, words, out, report }

test('a report sent from the page shows its receipt once, and the reviewers can answer it', async () => {
  const { context, page, errors } = await tab();
  await page.goto(gateway.url);
  await ready(page);
  assert.ok(await page.isVisible(`a[href="/check?lang=es"]`), 'the page links to /check');
  await fillMinimal(page, 'Nos amenazaron en la asamblea.');
  await page.click('#submit');
  await page.waitForSelector('#submission-id', { timeout: 60000 });
  const id = (await page.textContent('#submission-id')).trim();
  const lines = await shownWords(page, '#result');
  assert.equal(lines.length, 4, 'four lines');
  for (const line of lines) assert.equal(line.split(' ').length, 3, `three words: ${line}`);
  const result = await page.textContent('#result');
  assert.ok(result.includes(es['page.receipt.advice']), 'the advice, in the page language');
  assert.equal(await page.getAttribute('#check-link', 'href'), '/check?lang=es');
  await shot(page, 'replies-receipt');
  await page.locator('#receipt').screenshot({ path: join(artifacts, 'replies-receipt-words.png') });
  // Nothing of it is kept by the browser.
  const stored = await page.evaluate(() => localStorage.length + sessionStorage.length + document.cookie.length);
  assert.equal(stored, 0);
  assert.ok(!page.url().includes(lines[0].split(' ')[0]));
  // "I wrote them down": gone from the page for good.
  await page.click('#receipt button');
  assert.equal(await page.$('#receipt-words'), null);
  await context.close();
  assert.deepEqual(errors, [], 'no script errors');

  const words = lines.join('\n');
  const receiptFile = join(work, 'receipt.txt');
  writeFileSync(receiptFile, words);
  // The Rust client opens the page's box and reads its reply key: no answers yet.
  const none = run('resguardo-submit', ['check', ...connection(), '--receipt-file', receiptFile]);
  assert.match(none.stdout, /No answers yet/);

  const out = fetchAndOpen('first');
  const report = join(out, id);
  const sent = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8'));
  assert.match(sent.conversation.locator, /^[0-9a-f]{64}$/);
  assert.match(sent.conversation.reply_key, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
  assert.equal(sent.conversation.token, await tokenOf(words), 'the follow-up token of the receipt shown');
  const note = join(work, 'nota-del-equipo.txt');
  writeFileSync(note, 'adjunto del equipo');
  reply(report, `Pedimos protección policial. ${CANARY}\nLlama al 105.`, join(work, 'outbox-1.json'), note);
  assert.match(push(join(work, 'outbox-1.json')).stdout, /stored/);
  first = { id, words, out, report };
});

test('/check reads the answer with the words, verified; a wrong receipt finds nothing', async () => {
  assert.ok(first, 'the first test sent a report');
  const { context, page, errors } = await tab();
  await page.goto(`${gateway.url}check`);
  await page.waitForSelector('#check-form:not([hidden])');
  // A word that is not in the list is named before anything is sent.
  await checkIn(page, first.words.replace(/^\S+/, 'xyzzy'));
  assert.equal((await page.textContent('#page-message')).includes(es['page.check.error.unknown_word'].replace('{position}', '1')), true);
  // Sloppy typing (capitals, no accents, 4-letter prefixes) reads the same receipt.
  const sloppy = first.words.split(/\s+/).map((w, i) => {
    const plain = w.normalize('NFD').replace(/\p{M}/gu, '');
    return i % 2 ? plain.toUpperCase() : plain.slice(0, 4);
  }).join('  ');
  await checkIn(page, sloppy);
  assert.equal(await page.inputValue('#receipt-input'), '', 'the words leave the page once read');
  const replies = await page.$$('#replies .reply');
  assert.equal(replies.length, 1);
  assert.equal(await replies[0].getAttribute('data-verified'), 'yes', await page.textContent('#replies'));
  const text = await page.textContent('#replies .reply .reply-text');
  assert.ok(text.includes(CANARY) && text.includes('Llama al 105.'), text);
  assert.ok((await page.textContent('#replies .reply-origin')).includes('C95C 29B4'), 'signed by demo reviewer 1');
  const download = page.waitForEvent('download');
  await page.click('#replies .reply-files a');
  const file = await download;
  assert.equal(readFileSync(await file.path(), 'utf8'), 'adjunto del equipo');
  assert.ok(!(await page.textContent('#replies')).includes('ADVERTENCIA'));
  await shot(page, 'replies-thread');

  // A receipt of the right form with no conversation: said so, and nothing else shown.
  const { receiptWords, newEntropy, wordList } = await import(join(repo, 'static/js/replies.js'));
  const { wordlist } = await import(join(repo, 'static/node_modules/@scure/bip39/wordlists/spanish.js'));
  const stranger = (await receiptWords(newEntropy(), wordList(wordlist))).join(' ');
  await checkIn(page, stranger);
  assert.ok((await page.textContent('#page-message')).includes(es['page.check.no_conversation']));
  assert.equal(await page.isHidden('#thread'), true);
  assert.equal(await page.isHidden('#follow-up'), true);
  assert.equal(await page.$$eval('#replies > *', (n) => n.length), 0, 'nothing of the earlier thread stays');
  await context.close();
  assert.deepEqual(errors, [], 'no script errors');

  // The Rust client reads the same answer as the team's.
  const shown = run('resguardo-submit', ['check', ...connection(), '--receipt-file', join(work, 'receipt.txt')]).stdout;
  assert.ok(shown.includes('from the team') && shown.includes(CANARY), shown);
});

test('a follow-up sent from /check arrives and is threaded to the first report', async () => {
  assert.ok(first, 'the first test sent a report');
  const { context, page, errors } = await tab();
  await page.goto(`${gateway.url}check?lang=en`);
  await page.waitForSelector('#check-form:not([hidden])');
  await checkIn(page, first.words);
  await page.waitForSelector('#follow-up:not([hidden])');
  await page.fill('#f-follow-text', `La amenaza sigue. ${CANARY}-2`);
  await page.setInputFiles('#f-follow-files', { name: 'nota.txt', mimeType: 'text/plain', buffer: Buffer.from('segunda nota') });
  await page.click('#follow-submit');
  await page.waitForSelector('#follow-up-id', { timeout: 60000 });
  const followId = (await page.textContent('#follow-up-id')).trim();
  await context.close();
  assert.deepEqual(errors, [], 'no script errors');
  const out = fetchAndOpen('second');
  const followText = readFileSync(join(out, followId, 'report.txt'), 'utf8');
  assert.ok(followText.startsWith(`Follow-up to report ${first.id}`), followText.slice(0, 200));
  assert.ok(followText.includes(`${CANARY}-2`));
  const sent = JSON.parse(readFileSync(join(out, followId, 'report.json'), 'utf8'));
  const started = JSON.parse(readFileSync(join(first.report, 'report.json'), 'utf8')).conversation;
  // The same token as the first report, and no reply key: what makes it a follow-up of it.
  assert.deepEqual(sent.conversation, { locator: started.locator, token: started.token });
  assert.equal(sent.conversation.token, await tokenOf(first.words));
  assert.ok(existsSync(join(first.report, 'conversation.txt')));
  assert.ok(readFileSync(join(first.report, 'conversation.txt'), 'utf8').includes(followId));
  // Nothing readable on the server.
  for (const path of allFiles(gateway.dataDir)) {
    assert.ok(!readFileSync(path).includes(CANARY), path);
  }
});

test('20 answers waiting: the time from the words to the thread shown (printed)', async () => {
  assert.ok(first, 'the first test sent a report');
  const outbox = join(work, 'outbox-20.json');
  for (let i = 2; i <= 20; i += 1) reply(first.report, `Respuesta ${i}. ${'Texto de prueba. '.repeat(20)}`, outbox);
  push(outbox);
  const { context, page, errors } = await tab();
  await page.goto(`${gateway.url}check`);
  await page.waitForSelector('#check-form:not([hidden])');
  const times = [];
  for (let round = 0; round < 3; round += 1) {
    times.push(await checkIn(page, first.words));
    assert.equal(await page.$$eval('#replies .reply[data-verified="yes"]', (n) => n.length), 20);
  }
  // Numbered by the team, with the day it wrote each (today: the reviewers wrote them now).
  const numbers = await page.$$eval('#replies .reply', (articles) => articles.map((a) => a.dataset.n));
  assert.deepEqual(numbers, Array.from({ length: 20 }, (_, i) => String(i + 1)));
  const today = new Date().toISOString().slice(0, 10);
  assert.equal(await page.textContent('#replies .reply h3'), es['page.check.reply.heading_written'].replace('{n}', '1').replace('{day}', today));
  assert.equal(await page.$('#missing-replies'), null, 'none missing');
  await context.close();
  assert.deepEqual(errors, [], 'no script errors');
  console.log(`check-in with 20 answers over loopback TLS (words typed → thread shown, PoW difficulty 14): ${times.map((ms) => `${Math.round(ms)} ms`).join(', ')}`);
});

test('/check without JavaScript says what to do instead, with the page\'s security headers', async () => {
  const { context, page } = await phone(browser, { ignoreHTTPSErrors: true, javaScriptEnabled: false });
  const answer = await page.goto(`${gateway.url}check?lang=en`);
  assert.equal(answer.status(), 200);
  const home = await context.request.get(gateway.url);
  for (const header of ['content-security-policy', 'referrer-policy', 'x-frame-options', 'cache-control', 'strict-transport-security']) {
    assert.equal(answer.headers()[header], home.headers()[header], header);
    assert.ok(answer.headers()[header], header);
  }
  const text = await page.textContent('main');
  assert.ok(text.includes(en['page.check.nojs.title']) && text.includes('resguardo-submit check'), text);
  assert.equal(await page.isVisible('#check-form'), false, 'no form that cannot work');
  assert.equal(await page.isVisible('#mode-loading'), false);
  await shot(page, 'replies-check-nojs');
  await context.close();
});

test('a refused conversation is sent again with a new receipt, and never costs the report', async () => {
  // No try of the page can have started these conversations (each refusal is an answer): a 409
  // here is not an earlier try that arrived.
  for (const refusals of [[[409, 'conversation_exists'], [400, 'bad_conversation']], [[400, 'bad_conversation'], [400, 'bad_conversation'], [409, 'conversation_exists']]]) {
    const { context, page, errors } = await tab();
    const seen = [];
    const shown = []; // what the page showed while each try was sent
    const left = [...refusals];
    await page.route('**/api/v1/submissions', async (route) => {
      seen.push(route.request().headers()['resguardo-conversation'] ?? null);
      shown.push({ words: (await shownWords(page, '#receipt-sending')).join(' '), text: await page.textContent('#receipt-sending') });
      const refusal = left.shift();
      if (refusal) await route.fulfill({ status: refusal[0], contentType: 'application/json', body: JSON.stringify({ error: refusal[1] }) });
      else await route.continue();
    });
    await page.goto(gateway.url);
    await ready(page);
    await fillMinimal(page, 'Nos amenazaron otra vez.');
    await page.click('#submit');
    await page.waitForSelector('#submission-id', { timeout: 60000 });
    assert.equal(seen.length, refusals.length + 1);
    const locators = seen.filter(Boolean).map((h) => Buffer.from(h, 'base64').subarray(0, 32).toString('hex'));
    assert.equal(new Set(locators).size, locators.length, 'a new receipt each time');
    // Each receipt's words were on screen while it was sent; a new one says it replaces the old.
    const sentWith = shown.slice(0, locators.length);
    assert.equal(new Set(sentWith.map((w) => w.words)).size, locators.length, 'new words each time');
    sentWith.forEach(({ words, text }, i) => {
      assert.equal(words.split(' ').length, 12, `try ${i + 1}`);
      assert.equal(text.includes(es['page.receipt.replaced']), i > 0, `try ${i + 1}`);
    });
    if (refusals.length < 3) {
      assert.equal(locators.length, seen.length, 'every try starts a conversation');
      const words = (await shownWords(page, '#result')).join('\n');
      assert.equal(words.replaceAll('\n', ' '), sentWith.at(-1).words, 'the words of the last try');
      const file = join(work, `receipt-retry-${refusals.length}.txt`);
      writeFileSync(file, words);
      // The receipt shown is the one the gateway took.
      assert.match(run('resguardo-submit', ['check', ...connection(), '--receipt-file', file]).stdout, /No answers yet/);
    } else {
      assert.equal(seen.at(-1), null, 'after three refusals the report goes without a conversation');
      assert.equal(shown.at(-1).words, '', 'and shows no words while it goes');
      assert.equal(await page.$('#receipt-words'), null);
      assert.ok((await page.textContent('#receipt')).includes(es['page.receipt.none']));
    }
    await context.close();
    assert.deepEqual(errors, [], 'no script errors');
  }
});

test('a gateway that reorders, repeats or holds back answers is noticed on /check', async () => {
  assert.ok(first, 'the first test sent a report');
  const { context, page, errors } = await tab();
  // The gateway's answer, tampered with on the way: reversed, answer 3 sent again at the end, 5
  // and 7 held back. The replies were pushed in order, so the gateway's n is the team's number.
  await page.route('**/api/v1/conversations/check', async (route) => {
    const response = await route.fetch();
    const body = await response.json();
    const copy = { ...body.replies.find((r) => r.n === 3), n: 21 };
    body.replies = [...body.replies.filter((r) => r.n !== 5 && r.n !== 7).reverse(), copy];
    await route.fulfill({ response, json: body });
  });
  await page.goto(`${gateway.url}check?lang=en`);
  await page.waitForSelector('#check-form:not([hidden])');
  await checkIn(page, first.words);
  const shown = await page.$$eval('#replies .reply', (articles) => articles.map((a) => [a.dataset.n, a.dataset.verified]));
  const team = Array.from({ length: 20 }, (_, i) => String(i + 1)).filter((n) => n !== '5' && n !== '7');
  assert.deepEqual(shown, [...team.map((n) => [n, 'yes']), ['21', 'no']], 'the team\'s order, then the copy as a warning');
  const copy = await page.textContent('#replies .reply[data-verified="no"]');
  assert.ok(copy.includes(en['page.check.reply.warning']) && copy.includes(en['page.check.why.repeated'].replace('{n}', '3')), copy);
  assert.equal(await page.textContent('#missing-replies'), en['page.check.missing'].replace('{numbers}', '5, 7'));
  assert.equal(await page.$eval('#replies > :first-child', (e) => e.id), 'missing-replies', 'said before the answers');
  await shot(page, 'replies-held-back');
  await context.close();
  assert.deepEqual(errors, [], 'no script errors');
});

test('an answer lost after the report is stored: the words stay on screen, and the retry is told it arrived', async () => {
  for (const changed of [false, true]) {
    const { context, page, errors } = await tab();
    const tries = [];
    await page.route('**/api/v1/submissions', async (route) => {
      const request = route.request();
      tries.push({
        body: request.postDataBuffer(),
        header: request.headers()['resguardo-conversation'],
        words: await shownWords(page, '#receipt-sending'),
        text: await page.textContent('#receipt-sending'),
      });
      if (tries.length > 1) return route.continue();
      // The gateway stores the report and answers 201; the answer is lost on the way back.
      tries[0].status = (await route.fetch()).status();
      return route.abort('connectionreset');
    });
    await page.goto(gateway.url);
    await ready(page);
    await fillMinimal(page, 'Nos amenazaron y se cortó la conexión.');
    await page.click('#submit');
    await page.waitForSelector('#page-message .message', { timeout: 60000 });
    assert.equal(tries[0].status, 201, 'the gateway stored the first try');
    const { words } = tries[0];
    assert.equal(words.join(' ').split(' ').length, 12, 'the words were on screen while it was sent');
    assert.ok(tries[0].text.includes(es['page.receipt.write_now']) && tries[0].text.includes(es['page.receipt.advice']));
    assert.ok((await page.textContent('#page-message')).includes(es['page.error.network']));
    assert.deepEqual(await shownWords(page, '#receipt-sending'), words, 'still on screen after the failure');
    await shot(page, `replies-answer-lost${changed ? '-changed' : ''}`);
    await page.waitForSelector('#submit:not([disabled])');
    if (changed) await page.fill('#f-description', 'Nos amenazaron y se cortó la conexión. Eran tres.');
    await page.click('#submit');
    await page.waitForSelector('#result:not([hidden])', { timeout: 60000 });
    assert.equal(tries.length, 2);
    assert.equal(tries[1].header, tries[0].header, 'the same conversation start');
    assert.deepEqual(tries[1].words, words, 'the same receipt');
    assert.equal(tries[1].body.equals(tries[0].body), !changed, changed ? 'the changed report, sealed again' : 'the very same sealed message');
    const result = await page.textContent('#result');
    assert.ok(result.includes(es['page.success.arrived_before']), result);
    assert.equal(result.includes(es['page.success.changes_not_sent']), changed, result);
    assert.equal(await page.$('#submission-id'), null, 'no number: it was in the lost answer');
    assert.deepEqual(await shownWords(page, '#result'), words, 'the words to keep are the first try\'s');
    assert.ok(await page.isHidden('#receipt-sending'));
    await context.close();
    assert.deepEqual(errors, [], 'no script errors');
    // The words read the conversation the first try started.
    const check = await tab();
    await check.page.goto(`${gateway.url}check`);
    await check.page.waitForSelector('#check-form:not([hidden])');
    await checkIn(check.page, words.join('\n'));
    assert.ok(await check.page.isVisible('#thread'), await check.page.textContent('#page-message'));
    assert.ok((await check.page.textContent('#replies')).includes(es['page.check.none_yet']));
    await check.context.close();
    assert.deepEqual(check.errors, [], 'no script errors on /check');
  }
});
