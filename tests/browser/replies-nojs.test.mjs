// Anonymous replies without JavaScript (docs/replies-v1.md, "No JavaScript"): Chromium with
// JavaScript off, as Tor Browser at "Safest", against the real gateway on loopback. The report
// form (sealed on arrival) shows the 12 words the gateway made; the reviewers' side is the real
// CLIs (courier fetch, open, reply with a file, push); the <noscript> form of /check takes the
// words typed as a person would (capitals, no accents, line breaks) and the gateway shows the
// answer verified as the team's, its file as a download, no warning; a follow-up with a file sent
// from that page arrives and `open` threads it after the answer. A receipt with no conversation
// gets 404 and "no conversation for these words"; words that are no receipt get 422 and the
// reason. Neither the words (in any spelling), nor what they derive, nor the answer's text are
// in the gateway's data directory or its log.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { repo, es, en, startGateway, launchBrowser, phone, fillMinimal, shot, allFiles, demoCourier, demoTeam, runTool } from './harness.mjs';

const R = await import(join(repo, 'static/js/replies.js'));
const { wordlist } = await import(join(repo, 'static/node_modules/@scure/bip39/wordlists/spanish.js'));
const list = R.wordList(wordlist);

// Demo reviewer 1, who signs the answers here.
const REVIEWER_1 = 'C95C29B449920DED0872A622F1F1AA6FAE2F54AD';
const CANARY = `CANARIO-NOJS-${randomBytes(4).toString('hex')}`;
const TEAM_FILE = 'adjunto del equipo, sin JavaScript';
let gateway;
let browser;
let work;
let team;

before(async () => {
  // Plain HTTP, as an onion service is reached from Tor Browser. The harness's [form] makes a
  // form token good after 1 s (5 s by default): every post below waits that long, as a person would.
  gateway = await startGateway(`[[couriers]]\ncert = "${demoCourier('pub.asc')}"\n`);
  assert.match(gateway.url, /^http:/);
  browser = await launchBrowser();
  work = mkdtempSync(join(tmpdir(), 'resguardo-replies-nojs-'));
  team = demoTeam(gateway, work);
});

after(async () => {
  await browser?.close();
  gateway?.stop();
});

const run = runTool;

/** A browser without JavaScript (Tor Browser at "Safest"), phone-sized. */
const noScript = () => phone(browser, { javaScriptEnabled: false });

/** Clicks a submit button of a plain HTML form and waits for the page it posts to. */
async function post(page, button) {
  const [response] = await Promise.all([page.waitForNavigation({ timeout: 60000 }), page.click(button)]);
  return response;
}

/** Loads /check without JavaScript, types `typed` into the <noscript> form and sends it. */
async function checkIn(page, typed, lang) {
  await page.goto(`${gateway.url}check${lang ? `?lang=${lang}` : ''}`);
  assert.ok(await page.isVisible('#check-form-nojs'), 'the form for the words without JavaScript');
  assert.ok(await page.isHidden('#check-form'), 'not the scripted one, which cannot work');
  await page.fill('#receipt-nojs', typed);
  return post(page, '#check-form-nojs button[type="submit"]');
}

/** What a receipt derives, as hex: none of it may be kept by the gateway. */
async function derived(words) {
  const parsed = await R.parseReceipt(words, list);
  assert.ok(parsed.entropy, `a receipt: ${words} (${parsed.error})`);
  const { locatorHex, token } = await R.deriveReceipt(parsed.entropy);
  return {
    entropy: R.toHex(parsed.entropy),
    lockKey: R.toHex(await R.lockKeyBytesOf(parsed.entropy)),
    locator: locatorHex,
    token,
  };
}

/** The ways a receipt could have been written down by the gateway. */
function spellings(words) {
  const forms = new Set();
  for (const w of [words.map((x) => x.normalize('NFC')), words.map((x) => x.normalize('NFD'))]) {
    for (const sep of [' ', '+', '\n', ', ', '","']) forms.add(w.join(sep));
    forms.add(w.join(' ').toUpperCase());
    forms.add(encodeURIComponent(w.join(' ')));
    forms.add(encodeURIComponent(w.join(' ')).replaceAll('%20', '+'));
  }
  forms.add(words.map(R.fold).join(' '));
  forms.add(words.map(R.fold).join('+'));
  forms.add(words.map(R.fold).join('+').toUpperCase());
  return [...forms];
}

let first; // { id, words, typed, report, out }
let followId;

test('without JavaScript, the report form is sealed on arrival and shows the 12 words the gateway made, with the advice', async () => {
  const { context, page } = await noScript();
  const home = await page.goto(gateway.url);
  assert.equal(home.status(), 200);
  assert.ok(await page.isVisible('#mode-server'), 'the page says the form works without JavaScript');
  assert.ok(await page.isHidden('#mode-loading'));
  await fillMinimal(page, `Nos amenazaron en la asamblea. ${CANARY}-reporte`);
  const answer = await post(page, '#submit');
  assert.equal(answer.status(), 200, await page.textContent('main'));
  assert.match(new URL(page.url()).pathname, /^\/submit$/);
  assert.match(answer.headers()['cache-control'] ?? '', /no-store/, 'the page with the words is not cached');
  const id = (await page.textContent('#submission-id')).trim();
  assert.match(id, /^[0-9a-f]{32}$/);
  const words = (await page.$$eval('ol.receipt-words li', (lis) => lis.map((li) => li.textContent))).map((w) => w.trim());
  assert.equal(words.length, 12, `twelve words: ${words}`);
  const known = new Set(wordlist.map((w) => w.normalize('NFC')));
  for (const w of words) assert.ok(known.has(w.normalize('NFC')), `a word of the Spanish list: ${w}`);
  const receipt = await page.textContent('#receipt');
  assert.ok(receipt.includes(es['page.receipt.advice']), `the advice, in Spanish: ${receipt}`);
  assert.ok(receipt.includes(es['page.receipt.title']));
  assert.equal(await page.getAttribute('#receipt a', 'href'), '/check?lang=es', 'where to read the answers');
  for (const w of words) assert.ok(!page.url().includes(encodeURIComponent(w)) && !page.url().includes(w), 'not in the URL');
  await shot(page, 'replies-nojs-receipt');
  await context.close();
  const receiptDerived = await derived(words.join(' '));

  // The reviewers: fetched by the courier, opened offline; the report carries the conversation
  // of the words the page showed (the gateway made them, in memory).
  const out = team.fetchAndOpen('first');
  const report = join(out, id);
  const sent = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8'));
  assert.equal(sent.sealed_by, 'gateway');
  assert.ok(sent.description.includes(`${CANARY}-reporte`));
  assert.equal(sent.conversation.locator, receiptDerived.locator, 'the locator of the words shown');
  assert.equal(sent.conversation.token, receiptDerived.token, 'the follow-up token of the words shown');
  assert.match(sent.conversation.reply_key, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);

  // An answer with a file, written offline by demo reviewer 1 for the reporter and both
  // reviewers, pushed by the courier.
  const message = join(work, 'answer.txt');
  writeFileSync(message, `Pedimos protección policial. ${CANARY}\nLlama al 105.`);
  const note = join(work, 'nota-del-equipo.txt');
  writeFileSync(note, TEAM_FILE);
  const outbox = join(work, 'outbox-1.json');
  team.reply(report, message, outbox, note);
  assert.match(team.push(outbox).stdout, /stored/);
  first = { id, words, report, out };
});

test('without JavaScript, /check opens the answer with the words typed sloppily: verified, with its file, no warning', async () => {
  assert.ok(first, 'the first test sent a report');
  const { context, page } = await noScript();
  // Capitals, accents dropped, a line break after every third word and extra spaces: as a person
  // copies them from paper.
  const typed = first.words.map((w, i) => R.fold(w).toUpperCase() + ((i + 1) % 3 === 0 ? '\n' : '  ')).join('');
  assert.notEqual(typed.replace(/\s+/g, ' ').trim(), first.words.join(' '), 'not as shown');
  first.typed = typed;
  const answer = await checkIn(page, typed);
  assert.equal(answer.status(), 200, await page.textContent('main'));
  assert.match(answer.headers()['cache-control'] ?? '', /no-store/);
  const url = new URL(page.url());
  assert.equal(url.pathname, '/check');
  for (const w of first.words) assert.ok(!decodeURIComponent(url.search).toLowerCase().includes(R.fold(w)), `no word in the URL: ${page.url()}`);
  assert.ok((await page.textContent('main')).includes(es['page.check.nojs.opened']), 'says the gateway opened them in memory');

  const replies = await page.$$('#replies article.reply');
  assert.equal(replies.length, 1, await page.textContent('#replies'));
  const text = await page.textContent('#replies article.reply .reply-text');
  assert.ok(text.includes(`Pedimos protección policial. ${CANARY}`) && text.includes('Llama al 105.'), text);
  const status = (await page.textContent('#replies article.reply .status')).trim();
  // In groups of four, as the key list shows it (and as it fits a phone's width).
  const grouped = REVIEWER_1.match(/.{4}/g).join(' ');
  assert.equal(status, es['page.check.reply.verified'].replace('{fingerprint}', grouped), 'from the team, signed by demo reviewer 1');
  assert.ok(status.startsWith('Del equipo'), status);
  const today = new Date().toISOString().slice(0, 10);
  assert.equal((await page.textContent('#replies article.reply h3')).trim(),
    es['page.check.reply.heading_written'].replace('{n}', '1').replace('{day}', today));
  assert.equal(await page.$$eval('#replies article.reply.warning', (n) => n.length), 0, 'no warning');
  const thread = await page.textContent('main');
  for (const warning of ['page.check.reply.warning', 'page.check.reply.unreadable', 'page.check.missing']) {
    assert.ok(!thread.includes(es[warning].slice(0, 30)), `no ${warning}`);
  }
  assert.equal(await page.$('.message[role="alert"]'), null, 'no alert on the page');

  // The file: a download inside the page, the team's bytes.
  const link = page.locator('#replies article.reply a[download]');
  assert.equal(await link.count(), 1);
  assert.equal(await link.getAttribute('download'), 'nota-del-equipo.txt');
  const href = await link.getAttribute('href');
  assert.ok(href.startsWith('data:application/octet-stream;base64,'), href.slice(0, 60));
  assert.equal(Buffer.from(href.split(',')[1], 'base64').toString('utf8'), TEAM_FILE);
  const download = page.waitForEvent('download');
  await link.click();
  const file = await download;
  assert.equal(file.suggestedFilename(), 'nota-del-equipo.txt');
  assert.equal(readFileSync(await file.path(), 'utf8'), TEAM_FILE, 'downloaded as the team sent it');

  // The follow-up form carries the words in a hidden field, never in its URL.
  assert.ok(await page.isVisible('#follow-up-form'));
  const action = await page.getAttribute('#follow-up-form', 'action');
  assert.match(action, /^\/check\/follow-up\?t=[0-9a-f]+(&lang=[a-z]+)?$/, 'a token (and the language), nothing else');
  assert.equal(await page.getAttribute('#follow-up-form', 'enctype'), 'multipart/form-data');
  const hidden = await page.inputValue('#follow-up-form input[type="hidden"][name="receipt"]');
  assert.equal((await derived(hidden)).locator, (await derived(first.words.join(' '))).locator, 'the same receipt');
  await shot(page, 'replies-nojs-thread');
  first.threadPage = { context, page };
});

test('without JavaScript, a follow-up with a file is sent from the thread page and the reviewers see it threaded', async () => {
  assert.ok(first?.threadPage, 'the thread page of the check-in before');
  const { context, page } = first.threadPage;
  await page.fill('#follow-up-form textarea[name="description"]', `La amenaza sigue. ${CANARY}-2`);
  await page.setInputFiles('#follow-up-form input[name="attachments"]',
    { name: 'cartel.txt', mimeType: 'text/plain', buffer: Buffer.from('la foto del cartel, sin JavaScript') });
  const answer = await post(page, '#follow-submit');
  assert.equal(answer.status(), 200, await page.textContent('main'));
  assert.equal(new URL(page.url()).pathname, '/check/follow-up');
  followId = (await page.textContent('#follow-up-id')).trim();
  assert.match(followId, /^[0-9a-f]{32}$/);
  assert.notEqual(followId, first.id);
  assert.ok((await page.textContent('main')).includes(es['page.followup.sent']));
  await shot(page, 'replies-nojs-followed');
  await context.close();

  const out = team.fetchAndOpen('second');
  const followText = readFileSync(join(out, followId, 'report.txt'), 'utf8');
  assert.ok(followText.startsWith(`Follow-up to report ${first.id}`)
    || followText.startsWith(`Seguimiento del reporte ${first.id}`), followText.slice(0, 300));
  assert.ok(followText.includes(`${CANARY}-2`), followText);
  const sent = JSON.parse(readFileSync(join(out, followId, 'report.json'), 'utf8'));
  assert.equal(sent.sealed_by, 'gateway');
  const started = JSON.parse(readFileSync(join(first.report, 'report.json'), 'utf8')).conversation;
  // The first report's locator and token and no reply key: what makes it a follow-up of it.
  assert.deepEqual(sent.conversation, { locator: started.locator, token: started.token });
  const files = readdirSync(join(out, followId, 'files'));
  assert.equal(files.length, 1, `${files}`);
  assert.match(files[0], /cartel\.txt$/);
  assert.equal(readFileSync(join(out, followId, 'files', files[0]), 'utf8'), 'la foto del cartel, sin JavaScript');

  // The first report's thread: the report, the answer, then the follow-up.
  const thread = readFileSync(join(first.report, 'conversation.txt'), 'utf8');
  const lines = thread.split('\n');
  const at = (needle) => lines.findIndex((l) => l.includes(needle));
  const reportLine = at(`report ${first.id}`);
  const answerLine = at('answer sent');
  const followLine = at(`follow-up ${followId}`);
  assert.ok(reportLine >= 0 && answerLine > reportLine && followLine > answerLine, thread);
  assert.ok(!thread.includes('NOT A FOLLOW-UP') && !thread.includes('CONTESTED'), thread);
});

test('without JavaScript, a receipt with no conversation gets 404 and words that are no receipt get the reason', async () => {
  assert.ok(first, 'the first test sent a report');
  const { context, page } = await noScript();
  // Twelve words that pass the checksum, of a receipt no one used on this gateway.
  const stranger = JSON.parse(readFileSync(join(repo, 'tests/vectors/replies/ok_receipt_2.json'), 'utf8')).words;
  assert.ok((await R.parseReceipt(stranger, list)).entropy, 'a valid receipt');
  let answer = await checkIn(page, stranger, 'en');
  assert.equal(answer.status(), 404);
  let message = await page.textContent('#page-message');
  assert.ok(message.includes(en['page.check.no_conversation']), message);
  assert.ok(await page.$('#replies article') === null, 'no thread');
  assert.ok(await page.$('form[action^="/check/follow-up"]') === null, 'no follow-up form');
  assert.ok(await page.$('input[name="receipt"][type="hidden"]') === null, 'no words carried');
  assert.ok(await page.isVisible('#check-form-nojs'), 'the form again, to try once more');
  await shot(page, 'replies-nojs-no-conversation');

  // A word not in the list: named by its position.
  const words = first.words.map(R.fold);
  const unknown = [...words.slice(0, 4), 'xyzzy', ...words.slice(5)].join(' ');
  answer = await checkIn(page, unknown, 'en');
  assert.equal(answer.status(), 422);
  message = await page.textContent('#page-message');
  assert.ok(message.includes(en['page.check.error.unknown_word'].replace('{position}', '5')), message);

  // Two words swapped (each in the list): the checksum says it is no receipt.
  let swapped;
  for (let i = 0; i < 11 && !swapped; i += 1) {
    const w = [...words];
    [w[i], w[i + 1]] = [w[i + 1], w[i]];
    if (w[i] !== w[i + 1] && (await R.parseReceipt(w.join(' '), list)).error === 'checksum') swapped = w.join(' ');
  }
  assert.ok(swapped, 'a swap the checksum catches');
  answer = await checkIn(page, swapped, 'en');
  assert.equal(answer.status(), 422);
  message = await page.textContent('#page-message');
  assert.ok(message.includes(en['page.check.error.checksum']), message);

  // Eleven words: the count.
  answer = await checkIn(page, words.slice(0, 11).join(' '), 'en');
  assert.equal(answer.status(), 422);
  message = await page.textContent('#page-message');
  assert.ok(message.includes(en['page.check.error.word_count'].replace('{count}', '11')), message);
  await context.close();
});

test('neither the words nor what they derive nor the answer are in the gateway\'s data directory or log', async () => {
  assert.ok(first?.typed, 'the check-in ran');
  const d = await derived(first.words.join(' '));
  const typed = first.typed;
  const needles = [
    ...spellings(first.words),
    typed, encodeURIComponent(typed), encodeURIComponent(typed).replaceAll('%20', '+'),
    d.entropy, d.lockKey, d.token,
    CANARY, 'Llama al 105', TEAM_FILE, Buffer.from(TEAM_FILE).toString('base64'), 'la foto del cartel',
  ];
  const files = allFiles(gateway.dataDir);
  assert.ok(files.length > 0);
  for (const path of files) {
    const bytes = readFileSync(path);
    for (const needle of needles) assert.ok(!bytes.includes(Buffer.from(needle)), `${JSON.stringify(needle)} in ${path}`);
  }
  const logs = gateway.logs();
  assert.ok(logs.length > 0, 'the gateway logged (at trace)');
  for (const needle of needles) assert.ok(!logs.includes(needle), `${JSON.stringify(needle)} in the log`);
  // The locator is the conversation's key in the store: it must be there, or the scan above
  // looked in the wrong place.
  assert.ok(files.some((path) => readFileSync(path).includes(Buffer.from(d.locator))
    || readFileSync(path).includes(Buffer.from(d.locator, 'hex'))), 'the conversation is in the data directory');
});
