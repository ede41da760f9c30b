// Accessibility (issue 15): axe-core (tags wcag2a, wcag2aa, wcag21a, wcag21aa) on every state of
// every page the gateway serves, in every language its own picker offers, must find nothing
// serious or critical; the report page is filled and sent with the keyboard alone, every stop
// showing its focus, with no trap and a skip link first; at 200 % zoom on a 360 px phone (a 180
// CSS px viewport) nothing scrolls sideways, every control can be used and the fingerprint and
// the receipt words wrap; status changes land in live regions, refusals are alerts.
//
// States: the report page (form, missing answers, urgent help and files chosen, a file to decide
// on, a file over the limit, refused by the gateway, connection lost, sending, received with the
// receipt words, a cut connection waiting to go on; a sealed report saved, and "send a sealed
// report": offered, a file that is none, sent); without JavaScript (form, missing answers, a post
// refused, received with the words; with sealing on arrival off: the page and the refusal page);
// /check (form, a word not in the list, no conversation, the thread with the team's answer, a
// follow-up sending and sent) and /check without JavaScript (form, 422, 404, the thread page, the
// follow-up sent page). About 125 audits; A11Y_TRACE=1 prints each as it is done.
//
// axe-core is injected through the DevTools protocol (page.evaluate), which the page's strict CSP
// does not govern: the pages are audited as served, CSP and all (no bypassCSP).
//
// cargo build --bins && cd tests/browser && npm ci && node --test --test-concurrency=1 a11y.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  repo, bin, fixtures, artifacts, languages, es, errorCodes, launchBrowser, shot, fillMinimal, ready, demoCourier,
  demoReviewer, demoTeam, runTool, startGateway,
} from './harness.mjs';

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const BLOCKING = new Set(['serious', 'critical']);
/** The demo organisation key (keys-example/README.md): the page shows its fingerprint. */
const DEMO_ORG = '876724495736AF632E5F668F44928851A04C42B3';
/** RESUMABLE_FROM of static/js/send.js: a larger report goes by the resumable route. */
const RESUMABLE_FROM = 1024 * 1024;

// The form's own budget (6 posts a minute) would pace this test's posts by 10 s each.
const formPace = 'posts_per_minute = 600\npost_burst = 100\n';
let browser;
let gateway; // sealing on arrival on, a signed key list, a courier: every page there is
let sealingOff; // sealing on arrival switched off
let work;
let langs; // what the page's language picker offers
let sent; // { id, words } of a report sent from the page in Spanish, which the team answers
const findings = [];
const audited = [];
const minor = new Map();
/** Pages of contexts with JavaScript off. */
const scriptless = new WeakSet();
const started = Date.now();

/** Proof of work off and budgets wide, so that the states come quickly. */
const quickTables = `[proof_of_work]
enabled = false
[rate_limits]
per_connection_per_second = 1000
per_connection_burst = 1000
submissions_per_minute = 600
submission_burst = 100
checks_per_minute = 600
check_burst = 100
`;

/** A gateway (the harness's) with `quickTables`; `top` goes before its first table. */
const startQuickGateway = ({ top = '', tables = '' } = {}) => startGateway(`${quickTables}${tables}`, { top });

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'resguardo-a11y-'));
  // A key list signed by the demo organisation key, so the page shows its fingerprint.
  const manifest = join(work, 'manifest.json');
  writeFileSync(manifest, execFileSync(bin('resguardo-gateway'), ['page-manifest']));
  const keyList = join(work, 'keylist.json');
  runTool('resguardo-review', ['sign-keys', '--org-key', join(repo, 'keys-example/demo-org.sec.asc'),
    '--reviewers', demoReviewer(1, 'pub.asc'), demoReviewer(2, 'pub.asc'), '--couriers', demoCourier('pub.asc'),
    '--version', '1', '--valid-days', '30', '--page-manifest', manifest,
    '--passphrase-file', join(repo, 'keys-example/demo-org.passphrase'), '--out', keyList]);
  [gateway, sealingOff, browser] = await Promise.all([
    startQuickGateway({
      top: `key_list = "${keyList}"`,
      tables: `[form]\ntoken_min_age_secs = 1\n${formPace}[limits]\nmax_submission_bytes = 4194304\n`
        + `[organisation]\nkey_fingerprint = "${DEMO_ORG}"\n[[couriers]]\ncert = "${demoCourier('pub.asc')}"\n`,
    }),
    startQuickGateway({ tables: `[form]\ntoken_min_age_secs = 1\n${formPace}server_sealing = false\n` }),
    launchBrowser(),
  ]);
  const page = await browser.newPage();
  await page.goto(gateway.url);
  langs = await page.$$eval('header nav a[hreflang]', (as) => as.map((a) => a.getAttribute('hreflang')));
  await page.close();
});

after(async () => {
  await browser?.close();
  gateway?.stop();
  sealingOff?.stop();
});

/** Runs axe-core on the page as it is now; serious and critical findings are kept under `where`. */
async function audit(page, where) {
  if (!(await page.evaluate('typeof window.axe === "object"'))) {
    // With JavaScript off the page runs no script of its own, and its timers never fire: axe's
    // are run as microtasks instead.
    if (scriptless.has(page)) await page.evaluate('window.setTimeout = (f, ms, ...a) => { Promise.resolve().then(() => f(...a)); return 0; }; window.clearTimeout = () => {};');
    await page.evaluate(axeSource);
  }
  const violations = await page.evaluate(async (tags) => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, targets: v.nodes.map((n) => n.target.join(' ')) }));
  }, TAGS);
  audited.push(where);
  if (process.env.A11Y_TRACE) console.log(`${((Date.now() - started) / 1000).toFixed(1)} s ${where}`);
  for (const v of violations) {
    if (BLOCKING.has(v.impact)) findings.push(`${where}: ${v.id} (${v.impact}) at ${v.targets.join(', ')}`);
    else minor.set(`${v.id} (${v.impact})`, (minor.get(`${v.id} (${v.impact})`) || 0) + 1);
  }
}

/** Asserts that no audit so far found anything serious or critical; prints what was audited. */
function assertClean(label) {
  const found = findings.splice(0);
  console.log(`${label}: ${audited.length} states audited so far${minor.size ? `; minor/moderate: ${[...minor].map(([k, n]) => `${k} ×${n}`).join(', ')}` : ''}`);
  assert.deepEqual(found, [], `axe found serious or critical violations:\n${found.join('\n')}`);
}

/** A phone-sized tab (360 px, or what `options` say); JavaScript errors are collected. */
async function tab(options = {}) {
  const context = await browser.newContext({ viewport: { width: 360, height: 780 }, ...options });
  const page = await context.newPage();
  if (options.javaScriptEnabled === false) scriptless.add(page);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return { context, page, errors };
}

const topMessage = (page) => page.waitForSelector('#page-message .message', { timeout: 30000 });
const clearTop = (page) => page.evaluate(() => document.getElementById('page-message').replaceChildren());
const sealedSendOffered = (page) => page.evaluate(() => {
  const s = document.getElementById('send-sealed');
  return Boolean(s && !s.hidden);
});
const saveOffered = (page) => page.evaluate(() => {
  const b = document.getElementById('seal-save');
  return Boolean(b && b.checkVisibility());
});

/** Holds the next upload request to the gateway until `release()`; resolves once it is held. */
async function holdUpload(page, pattern = '**/api/v1/submissions') {
  let release;
  let held;
  const isHeld = new Promise((resolve) => { held = resolve; });
  const released = new Promise((resolve) => { release = resolve; });
  await page.route(pattern, async (route) => {
    held();
    await released;
    await route.continue();
  }, { times: 1 });
  return { isHeld, release };
}

/** A JPEG whose segment claims more bytes than it has: the page cannot clean it and asks. */
function brokenPhoto() {
  const broken = Buffer.from(readFileSync(join(fixtures, 'photo-with-gps.jpg')));
  broken[4] = 0xff; broken[5] = 0xff;
  const path = join(work, 'broken.jpg');
  writeFileSync(path, broken);
  return path;
}

test('the language picker offers at least Spanish and English, each by its own name', () => {
  assert.ok(langs.includes('es') && langs.includes('en'), `offered: ${langs}`);
});

test('the report page with JavaScript: every state in every language, nothing serious for axe', async () => {
  const broken = brokenPhoto();
  const big = join(work, 'too-big.bin');
  writeFileSync(big, randomBytes(5 * 1024 * 1024));
  const resumable = join(work, 'grabacion.bin');
  writeFileSync(resumable, randomBytes(RESUMABLE_FROM + 256 * 1024));
  for (const lang of langs) {
    const at = (state) => `/?lang=${lang} [${state}]`;
    const { context, page, errors } = await tab();
    await page.goto(`${gateway.url}?lang=${lang}`);
    await ready(page);
    await audit(page, at('form'));

    await page.click('#submit');
    await topMessage(page);
    await audit(page, at('missing answers'));

    await page.click('label[for="urgent-yes"]');
    await fillMinimal(page);
    await page.setInputFiles('#f-attachments', [join(fixtures, 'photo-with-gps.jpg'), broken, join(fixtures, 'acta.pdf')]);
    await page.waitForFunction(() => [...document.querySelectorAll('#file-list li')].length === 3
      && [...document.querySelectorAll('#file-list li')].every((li) => li.dataset.state !== 'checking'));
    await audit(page, at('urgent help, files chosen'));
    await page.click('#submit');
    await topMessage(page);
    await audit(page, at('a file to decide on'));
    await page.check('#file-list li[data-state="not_cleaned"] input[type=checkbox]');

    await page.setInputFiles('#f-attachments', big);
    await page.waitForSelector('#page-message .message[data-kind="too-large"]');
    await audit(page, at('a file over the limit'));
    await page.click('#file-list li:last-child button');
    await page.waitForSelector('#submit:not([disabled])');

    // Refused by the gateway, then a lost connection.
    await page.route('**/api/v1/submissions', (route) => route.fulfill({
      status: 422, contentType: 'application/json', body: JSON.stringify({ error: errorCodes[0] }),
    }), { times: 1 });
    await clearTop(page);
    await page.click('#submit');
    await topMessage(page);
    await audit(page, at(`refused: ${errorCodes[0]}`));
    await page.waitForSelector('#submit:not([disabled])');
    await page.route('**/api/v1/submissions', (route) => route.abort('connectionreset'), { times: 1 });
    await clearTop(page);
    await page.click('#submit');
    await topMessage(page);
    await audit(page, at('connection lost'));
    await page.waitForSelector('#submit:not([disabled])');

    // Sending (held at the gateway's door), then received.
    const hold = await holdUpload(page);
    await clearTop(page);
    await page.click('#submit');
    await hold.isHeld;
    await page.waitForSelector('#cancel:not([hidden])');
    await audit(page, at('sending'));
    hold.release();
    await page.waitForSelector('#submission-id', { timeout: 60000 });
    await audit(page, at('received, with the receipt words and the urgent help'));
    if (lang === 'es') {
      sent = {
        id: (await page.textContent('#submission-id')).trim(),
        words: (await page.$$eval('#result #receipt-words > div', (ds) => ds.map((d) => d.textContent))).join('\n'),
      };
      await shot(page, 'a11y-received-360');
    }

    // A larger report goes by the resumable route: a cut connection waits and goes on.
    await page.goto(`${gateway.url}?lang=${lang}`);
    await ready(page);
    await fillMinimal(page);
    await page.setInputFiles('#f-attachments', resumable);
    // The first piece is cut; what follows waits until the page has been audited.
    let pieces = 0;
    let goOn;
    const audited = new Promise((resolve) => { goOn = resolve; });
    await page.route('**/api/v1/uploads/**', async (route) => {
      pieces += 1;
      if (pieces === 1) return route.abort('connectionreset');
      await audited;
      return route.continue();
    });
    await page.click('#submit');
    const waiting = (languages[lang]['page.status.resume_wait'] || '').split('{')[0];
    const resumes = waiting && await page.waitForFunction((w) => document.getElementById('status').textContent.startsWith(w),
      waiting, { timeout: 15000 }).then(() => true, () => false);
    if (waiting) assert.ok(resumes, `${lang}: the page says it waits to go on (${waiting})`);
    if (resumes) await audit(page, at('a cut connection, the upload waiting to go on'));
    goOn();
    await page.waitForSelector('#submission-id', { timeout: 60000 });
    await page.unroute('**/api/v1/uploads/**');

    // Seal now, send later: saved on this device, then sent from "send a sealed report".
    await page.goto(`${gateway.url}?lang=${lang}`);
    await ready(page);
    if (await saveOffered(page)) {
      await fillMinimal(page);
      const download = page.waitForEvent('download');
      await page.click('#seal-save');
      const file = join(work, `sealed-${lang}.bin`);
      await (await download).saveAs(file);
      await page.waitForSelector('#sealed-saved:not([hidden])');
      await audit(page, at('sealed report saved'));
      await page.goto(`${gateway.url}?lang=${lang}`);
      await ready(page);
      if (await sealedSendOffered(page)) {
        await audit(page, at('send a sealed report'));
        await page.setInputFiles('#sealed-file', { name: 'no-es.bin', mimeType: 'application/octet-stream', buffer: Buffer.from('not a sealed report') });
        await page.click('#sealed-send');
        await page.waitForSelector('#sealed-result .message');
        await audit(page, at('send a sealed report: not a sealed report'));
        await page.setInputFiles('#sealed-file', file);
        await page.click('#sealed-send');
        await page.waitForSelector('#sealed-result .message[data-kind="sent"]', { timeout: 60000 });
        await audit(page, at('send a sealed report: sent'));
      }
    }
    assert.deepEqual(errors, [], `script errors on /?lang=${lang}`);
    await context.close();
  }
  assert.ok(sent?.words, 'the Spanish report showed its receipt words');
  assertClean('report page, JavaScript on');
});

test('the report page without JavaScript, and with sealing on arrival off: nothing serious for axe', async () => {
  for (const lang of langs) {
    const at = (state) => `/?lang=${lang}, no JavaScript [${state}]`;
    const { context, page } = await tab({ javaScriptEnabled: false });
    await page.goto(`${gateway.url}?lang=${lang}`);
    await audit(page, at('form'));
    await Promise.all([page.waitForNavigation(), page.click('#submit')]);
    await page.waitForSelector('#error-summary');
    await audit(page, at('missing answers'));
    // A post whose form token is not one the gateway issued: refused, with how to go back.
    await fillMinimal(page);
    await page.evaluate(() => { document.getElementById('report').action = '/submit?t=not-a-token'; });
    const [refused] = await Promise.all([page.waitForNavigation(), page.click('#submit')]);
    assert.ok(refused.status() >= 400, `refused: ${refused.status()}`);
    await page.waitForSelector('#page-message .message');
    await audit(page, at('refused: not a form of this gateway'));
    await page.goto(`${gateway.url}?lang=${lang}`);
    await page.click('label[for="urgent-yes"]');
    await fillMinimal(page);
    await Promise.all([page.waitForNavigation({ timeout: 60000 }), page.click('#submit')]);
    await page.waitForSelector('#submission-id');
    await audit(page, at('received, with the receipt words and the urgent help'));
    if (lang === 'es') await shot(page, 'a11y-nojs-received-360');

    await page.goto(`${sealingOff.url}?lang=${lang}`);
    await audit(page, at('sealing on arrival off'));
    await context.close();

    // A post when sealing on arrival is off (a page from before the switch): the refusal page.
    const js = await tab();
    await js.page.goto(`${sealingOff.url}?lang=${lang}`);
    await Promise.all([js.page.waitForNavigation(), js.page.evaluate((l) => {
      const form = document.createElement('form');
      form.method = 'post';
      form.action = `/submit?lang=${l}`;
      document.body.append(form);
      form.submit();
    }, lang)]);
    await js.page.waitForSelector('main h1');
    await audit(js.page, `/submit?lang=${lang} [sealing on arrival off: refused]`);
    await js.context.close();
  }
  assertClean('report page, JavaScript off');
});

test('/check with and without JavaScript: every state in every language, nothing serious for axe', async () => {
  assert.ok(sent, 'the report page test sent a report');
  // The team answers the report sent from the page.
  const team = demoTeam(gateway, work);
  const out = team.fetchAndOpen('a11y');
  const message = join(work, 'answer.txt');
  writeFileSync(message, 'Recibimos tu reporte. Llama al 105 si hay peligro.\nEstamos en contacto.');
  team.reply(join(out, sent.id), message, join(work, 'outbox.json'));
  team.push(join(work, 'outbox.json'));
  const stranger = JSON.parse(readFileSync(join(repo, 'tests/vectors/replies/ok_receipt_2.json'), 'utf8')).words;
  const unknown = sent.words.replace(/^\S+/, 'xyzzy');

  for (const lang of langs) {
    const at = (state) => `/check?lang=${lang} [${state}]`;
    const { context, page, errors } = await tab();
    const checkIn = async (words) => {
      await clearTop(page);
      await page.fill('#receipt-input', words);
      await page.click('#check-submit');
      await page.waitForSelector('#thread:not([hidden]), #page-message .message', { timeout: 60000 });
    };
    await page.goto(`${gateway.url}check?lang=${lang}`);
    await page.waitForSelector('#check-form:not([hidden])');
    await audit(page, at('form'));
    await checkIn(unknown);
    await audit(page, at('a word not in the list'));
    await checkIn(stranger);
    await audit(page, at('no conversation'));
    await checkIn(sent.words);
    await page.waitForSelector('#follow-up:not([hidden])');
    assert.equal(await page.locator('#replies .reply').count(), 1);
    await audit(page, at('the thread with the answer'));
    if (lang === 'es') await shot(page, 'a11y-check-thread-360');
    await page.fill('#f-follow-text', 'La amenaza sigue.');
    await page.setInputFiles('#f-follow-files', { name: 'nota.txt', mimeType: 'text/plain', buffer: Buffer.from('nota') });
    const hold = await holdUpload(page);
    await page.click('#follow-submit');
    await hold.isHeld;
    await audit(page, at('a follow-up sending'));
    hold.release();
    await page.waitForSelector('#follow-up-id', { timeout: 60000 });
    await audit(page, at('a follow-up sent'));
    assert.deepEqual(errors, [], `script errors on /check?lang=${lang}`);
    await context.close();

    const nojs = await tab({ javaScriptEnabled: false });
    const post = async (words) => {
      await nojs.page.goto(`${gateway.url}check?lang=${lang}`);
      await nojs.page.fill('#receipt-nojs', words);
      const [answer] = await Promise.all([nojs.page.waitForNavigation({ timeout: 60000 }), nojs.page.click('#check-form-nojs button[type="submit"]')]);
      return answer.status();
    };
    const nat = (state) => `/check?lang=${lang}, no JavaScript [${state}]`;
    await nojs.page.goto(`${gateway.url}check?lang=${lang}`);
    await audit(nojs.page, nat('form'));
    assert.equal(await post(unknown), 422);
    await audit(nojs.page, nat('a word not in the list'));
    assert.equal(await post(stranger), 404);
    await audit(nojs.page, nat('no conversation'));
    assert.equal(await post(sent.words), 200);
    await audit(nojs.page, nat('the thread page'));
    await nojs.page.fill('#f-follow-text', 'Otra vez.');
    await Promise.all([nojs.page.waitForNavigation({ timeout: 60000 }), nojs.page.click('#follow-submit')]);
    await nojs.page.waitForSelector('#follow-up-id');
    await audit(nojs.page, nat('the follow-up sent page'));
    await nojs.context.close();
  }
  assertClean('check-in pages');
});

/** What is focused now, and whether it shows that (outline or box-shadow, on it or its label). */
const focusNow = (page) => page.evaluate(() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const radio = el.matches('.big-choices input');
  const shown = radio ? el.nextElementSibling : el;
  const style = getComputedStyle(shown);
  const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
  const ring = style.boxShadow !== 'none';
  const name = el.id ? `#${el.id}` : el.name ? `${el.tagName.toLowerCase()}[name=${el.name}][value=${el.value}]`
    : `${el.tagName.toLowerCase()} ${el.getAttribute('href') || el.textContent.trim().slice(0, 30)}`;
  return { name, group: el.type === 'radio' ? `radio ${el.name}` : name, visible: outline || ring, focusVisible: el.matches(':focus-visible') };
});

/** Presses Tab (or Shift+Tab) until `selector` is focused; fails after `max` presses. */
async function tabTo(page, selector, { back = false, max = 120 } = {}) {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
  }
  assert.fail(`${back ? 'Shift+Tab' : 'Tab'} never reached ${selector}`);
}

test('keyboard only: every control is reached with its focus shown, no trap, and a report is sent', async () => {
  const { context, page, errors } = await tab();
  await page.goto(gateway.url);
  await ready(page);
  // What should be reachable: every visible control, one stop per group of radio buttons.
  const expected = await page.evaluate(() => {
    const seen = new Set();
    return [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex="-1"])')]
      .filter((el) => !el.disabled && (el.checkVisibility() || el.matches('.big-choices input')))
      .filter((el) => {
        if (el.type !== 'radio') return true;
        if (seen.has(el.name)) return false;
        seen.add(el.name);
        return true;
      })
      .map((el) => (el.type === 'radio' ? `radio ${el.name}` : el.id ? `#${el.id}` : el.name ? `${el.tagName.toLowerCase()}[name=${el.name}][value=${el.value}]`
        : `${el.tagName.toLowerCase()} ${el.getAttribute('href') || el.textContent.trim().slice(0, 30)}`));
  });
  // Forward through the whole page: each stop shows its focus; the last stop leads out.
  const stops = [];
  let previous = null;
  let repeats = 0;
  for (let i = 0; i < 200; i++) {
    await page.keyboard.press('Tab');
    const now = await focusNow(page);
    if (!now) break; // focus left the page: no trap
    // A date field takes a few presses (day, month, year); more on one control is a trap.
    repeats = now.name === previous ? repeats + 1 : 0;
    assert.ok(repeats < 6, `focus stuck on ${now.name}`);
    if (now.name !== previous && stops.some((s) => s.name === now.name)) break; // round the page once
    if (now.name !== previous) stops.push(now);
    previous = now.name;
  }
  const reached = new Set(stops.map((s) => s.group));
  const missed = expected.filter((e) => !reached.has(e));
  assert.deepEqual(missed, [], `not reached with Tab: ${missed}`);
  const hidden = stops.filter((s) => !s.visible || !s.focusVisible).map((s) => s.name);
  assert.deepEqual(hidden, [], `no visible focus on: ${hidden}`);
  assert.ok(stops.length >= 15, `${stops.length} stops`);
  // The first stop skips the header's links: shown when focused, it leads into the content.
  assert.equal(stops[0].name, 'a #main');
  await page.goto(gateway.url);
  await ready(page);
  await page.keyboard.press('Tab');
  const skip = await page.locator('.skip-link').boundingBox();
  assert.ok(skip && skip.y >= 0 && skip.height >= 24, `the skip link shows when focused: ${JSON.stringify(skip)}`);
  await page.keyboard.press('Enter');
  await page.keyboard.press('Tab');
  assert.ok(await page.evaluate(() => document.getElementById('main').contains(document.activeElement)), 'Tab goes on inside the content');
  // Backwards: Shift+Tab retraces the same stops.
  await tabTo(page, '#submit');
  await tabTo(page, '#f-description', { back: true });

  // Fill and send with keys alone.
  await page.goto(gateway.url);
  await ready(page);
  await tabTo(page, '.big-choices input');
  await page.keyboard.press('Space');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.evaluate(() => document.querySelector('input[name=urgent]:checked')?.value), 'no', 'arrows move in the radio group');
  await page.keyboard.press('ArrowLeft');
  assert.equal(await page.evaluate(() => document.querySelector('input[name=urgent]:checked')?.value), 'yes');
  assert.ok(await page.isVisible('.urgent-help'));
  await tabTo(page, 'input[name=what_happened][value=threat]');
  await page.keyboard.press('Space');
  await tabTo(page, '#f-region');
  await page.keyboard.press('ArrowDown');
  assert.notEqual(await page.inputValue('#f-region'), '', 'the arrow keys choose in a list');
  await tabTo(page, '#f-description');
  await page.keyboard.type('Nos amenazaron, escrito solo con el teclado.');
  await tabTo(page, '#submit');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#submission-id', { timeout: 60000 });
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'result', 'focus moves to what was received');
  assert.ok(await page.isVisible('#urgent-after'));
  // The receipt's "I wrote them down" is reached from there.
  await tabTo(page, '#receipt button');
  assert.ok((await focusNow(page)).visible);
  assert.deepEqual(errors, []);
  await context.close();
});

/** Sideways overflow at the current viewport: the document, and controls or words past its edge. */
const overflow = (page, width) => page.evaluate((w) => {
  const out = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > w) {
    // Name the innermost elements that stick out.
    const wide = [...document.body.querySelectorAll('*')]
      .filter((el) => el.getBoundingClientRect().right + parseFloat(getComputedStyle(el).marginRight) > w + 0.5);
    // Text that runs past its box shows in no element's box: each text node's own.
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const range = document.createRange();
      range.selectNodeContents(node);
      if (range.getBoundingClientRect().right > w + 0.5) wide.push(node.parentElement);
    }
    const inner = wide.filter((el) => !wide.some((other) => other !== el && el.contains(other)));
    out.push(`document ${doc.scrollWidth} px wide: ${inner.slice(0, 5).map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}.${el.className} "${el.textContent.trim().slice(0, 30)}"`).join(', ')}`);
  }
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, label, h1, h2, h3, p, li, code, .receipt-words span';
  for (const el of document.querySelectorAll(selector)) {
    if (!el.checkVisibility() || el.closest('.big-choices') && el.matches('input')) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0) continue;
    if (box.left < -0.5 || box.right > w + 0.5) out.push(`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} ${box.left.toFixed(0)}–${box.right.toFixed(0)}: ${el.textContent.trim().slice(0, 40)}`);
  }
  return out;
}, width);

test('200 % zoom on a 360 px phone (180 CSS px): nothing scrolls sideways, every control works, long words wrap', async () => {
  const width = 180;
  for (const lang of langs) {
    const { context, page, errors } = await tab({ viewport: { width, height: 390 }, deviceScaleFactor: 4 });
    await page.goto(`${gateway.url}?lang=${lang}`);
    await ready(page);
    await page.click('label[for="urgent-yes"]');
    await page.click('.how summary');
    assert.deepEqual(await overflow(page, width), [], `/?lang=${lang}`);
    const fingerprint = await page.evaluate(() => {
      const el = document.querySelector('#org-key .org-key-fingerprint code');
      const box = el.getBoundingClientRect();
      return { right: box.right, lines: box.height / parseFloat(getComputedStyle(el).lineHeight) };
    });
    assert.ok(fingerprint.right <= width && fingerprint.lines >= 2, `the fingerprint wraps: ${JSON.stringify(fingerprint)}`);
    // Operable: every control takes its input at this size.
    await page.check('input[name="what_happened"][value="threat"]');
    await page.selectOption('#f-region', { index: 1 });
    await page.fill('#f-description', 'Con la pantalla ampliada.');
    await page.setInputFiles('#f-attachments', join(fixtures, 'acta.pdf'));
    await page.waitForSelector('#file-list li');
    assert.deepEqual(await overflow(page, width), [], `/?lang=${lang} with a file chosen`);
    await page.click('#file-list li button');
    await page.click('#submit');
    await page.waitForSelector('#submission-id', { timeout: 60000 });
    assert.deepEqual(await overflow(page, width), [], `/?lang=${lang} received, with the receipt words`);
    if (lang === 'es') await page.locator('#result').screenshot({ path: join(artifacts, 'a11y-zoom-received.png') });
    await page.goto(`${gateway.url}check?lang=${lang}`);
    await page.waitForSelector('#check-form:not([hidden])');
    await page.fill('#receipt-input', sent?.words ?? '');
    await page.click('#check-submit');
    await page.waitForSelector('#thread:not([hidden]), #page-message .message', { timeout: 60000 });
    assert.deepEqual(await overflow(page, width), [], `/check?lang=${lang} with the thread`);
    assert.deepEqual(errors, []);
    await context.close();

    const nojs = await tab({ viewport: { width, height: 390 }, deviceScaleFactor: 4, javaScriptEnabled: false });
    await nojs.page.goto(`${gateway.url}?lang=${lang}`);
    assert.deepEqual(await overflow(nojs.page, width), [], `/?lang=${lang} without JavaScript`);
    await fillMinimal(nojs.page);
    await Promise.all([nojs.page.waitForNavigation({ timeout: 60000 }), nojs.page.click('#submit')]);
    await nojs.page.waitForSelector('#submission-id');
    assert.deepEqual(await overflow(nojs.page, width), [], `/?lang=${lang} without JavaScript, received`);
    if (lang === 'es') await shot(nojs.page, 'a11y-zoom-nojs-received');
    await nojs.context.close();
  }
});

test('status changes during a send land in a live region; errors are alerts', async () => {
  const { context, page, errors } = await tab();
  await page.goto(gateway.url);
  await ready(page);
  const region = await page.evaluate(() => {
    const el = document.getElementById('status');
    return { role: el.getAttribute('role'), live: el.getAttribute('aria-live'), shown: el.checkVisibility() };
  });
  assert.deepEqual(region, { role: 'status', live: 'polite', shown: true }, 'the status line is a polite live region, there before the send');
  // Every text the status line takes, as it changes.
  await page.evaluate(() => {
    window.said = [];
    const el = document.getElementById('status');
    new MutationObserver(() => { if (el.textContent) window.said.push(el.textContent); })
      .observe(el, { childList: true, characterData: true, subtree: true });
  });
  await fillMinimal(page);
  const hold = await holdUpload(page);
  await page.click('#submit');
  await hold.isHeld;
  hold.release();
  await page.waitForSelector('#submission-id', { timeout: 60000 });
  const said = await page.evaluate(() => window.said);
  assert.ok(said.includes(es['page.status.encrypting']), `said: ${said}`);
  const uploading = es['page.status.uploading'].split('{')[0];
  assert.ok(said.some((s) => s.startsWith(uploading)), `said: ${said}`);
  // What was received takes the focus, so it is read out.
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'result');
  // A refusal is an alert.
  await page.goto(gateway.url);
  await ready(page);
  await page.click('#submit');
  await topMessage(page);
  assert.equal(await page.getAttribute('#page-message .message', 'role'), 'alert');

  // /check: its status line too.
  await page.goto(`${gateway.url}check`);
  await page.waitForSelector('#check-form:not([hidden])');
  const check = await page.evaluate(() => {
    const el = document.getElementById('check-status');
    window.said = [];
    new MutationObserver(() => { if (el.textContent) window.said.push(el.textContent); })
      .observe(el, { childList: true, characterData: true, subtree: true });
    return { role: el.getAttribute('role'), live: el.getAttribute('aria-live') };
  });
  assert.deepEqual(check, { role: 'status', live: 'polite' });
  const stranger = JSON.parse(readFileSync(join(repo, 'tests/vectors/replies/ok_receipt_2.json'), 'utf8')).words;
  await page.fill('#receipt-input', stranger);
  await page.click('#check-submit');
  await page.waitForSelector('#thread:not([hidden]), #page-message .message', { timeout: 60000 });
  assert.ok((await page.evaluate(() => window.said)).includes(es['page.check.status.asking']), 'the check-in said what it was doing');
  // The sealed report's status line, when the page has that part.
  const sealed = await page.goto(gateway.url).then(() => page.evaluate(() => {
    const el = document.getElementById('sealed-status');
    return el && { role: el.getAttribute('role'), live: el.getAttribute('aria-live') };
  }));
  if (sealed) assert.deepEqual(sealed, { role: 'status', live: 'polite' });
  assert.deepEqual(errors, []);
  await context.close();
});
