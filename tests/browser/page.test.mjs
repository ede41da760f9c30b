// The submission page in a real headless Chromium against the real gateway on loopback.
//
// Run by scripts/test (after `cargo build`), or: cd tests/browser && npm ci && npm test.
// Screenshots go to test-artifacts/ at the repository root.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  fixtures, artifacts, es, en, startGateway, launchBrowser, exportAndOpen, allFiles,
} from './harness.mjs';

let gateway;
let url;
let origin;
let dataDir;
let browser;
const logs = () => gateway.logs();

async function fillForm(page, canary, { files }) {
  await page.check('input[name="what_happened"][value="threat"]');
  await page.check('input[name="what_happened"][value="surveillance"]');
  await page.fill('#f-when', '2026-11-20');
  await page.check('#f-when_approximate');
  await page.selectOption('#f-region', 'cusco');
  await page.fill('#f-place', 'Espinar');
  await page.selectOption('#f-affected', 'community');
  await page.selectOption('#f-defender_field', 'land_environment');
  await page.check('input[name="responsible"][value="company"]');
  await page.click('label[for="urgent-yes"]');
  await page.fill('#f-description', `Nos siguieron después de la asamblea. ${canary}`);
  await page.fill('#f-contact', 'Signal, por la tarde');
  await page.setInputFiles('#f-attachments', files);
}

const attachments = [
  join(fixtures, 'photo-with-gps.jpg'),
  join(fixtures, 'screenshot-with-text.png'),
  join(fixtures, 'acta.pdf'),
];

before(async () => {
  gateway = await startGateway();
  ({ url, origin, dataDir } = gateway);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  gateway?.stop();
});

test('the language files have the same keys, and English leaves no Spanish behind', async () => {
  assert.deepEqual(Object.keys(en).sort(), Object.keys(es).sort());
  const page = await browser.newPage();
  await page.goto(url);
  await page.click('a[hreflang="en"]');
  await page.waitForURL(/lang=en/);
  assert.equal(await page.textContent('h1'), en['page.heading']);
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  const text = await page.evaluate(() => document.body.innerText);
  for (const [key, value] of Object.entries(es)) {
    if (value !== en[key] && value.length > 3 && key !== 'language.name') {
      assert.ok(!text.includes(value), `untranslated on the English page: ${key} = ${value}`);
    }
  }
  await page.close();
});

test('JavaScript on: the report is encrypted in the browser, and only ciphertext leaves it', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const requests = [];
  let bytes = 0;
  page.on('request', (r) => requests.push(r));
  page.on('response', async (r) => {
    try { bytes += (await r.body()).length; } catch { /* redirects have no body */ }
  });
  await page.goto(url);
  await page.waitForSelector('#mode-browser:not([hidden])');
  assert.ok(await page.isHidden('#mode-loading'), 'the loading notice is gone');
  assert.equal(await page.locator('#mode-server').count(), 0, 'no "without JavaScript" text with it on');

  // Every control is labelled, and the keyboard reaches the submit button.
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label')).map((el) => el.name || el.id));
  assert.deepEqual(unlabelled, []);
  let reached = false;
  for (let i = 0; i < 80 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement?.id === 'submit');
  }
  assert.ok(reached, 'Tab reaches the submit button');

  const canary = `CANARY${randomBytes(8).toString('hex')}`;
  await fillForm(page, canary, { files: attachments });
  await page.waitForFunction(() => document.querySelectorAll('#file-list li').length === 3);
  assert.ok(await page.isVisible('.urgent-help'), 'urgent advice shows when "yes" is ticked');
  await page.screenshot({ path: join(artifacts, 'page-1280.png'), fullPage: true });

  await page.click('#submit');
  await page.waitForSelector('#submission-id', { timeout: 60000 });
  const id = (await page.textContent('#submission-id')).trim();
  assert.match(id, /^[0-9a-f]{32}$/);
  await page.screenshot({ path: join(artifacts, 'page-1280-sent.png'), fullPage: true });

  for (const r of requests) assert.equal(new URL(r.url()).origin, origin, `request to ${r.url()}`);
  const posts = requests.filter((r) => r.method() === 'POST');
  assert.equal(posts.length, 1);
  assert.match(posts[0].headers()['resguardo-pow'] || '', /^[0-9a-f]{116}\.\d+$/, 'a proof of work came along');
  assert.equal(new URL(posts[0].url()).pathname, '/api/v1/submissions');
  const body = posts[0].postDataBuffer();
  assert.ok(body[0] & 0x80, 'the upload is a binary OpenPGP message');
  assert.ok(!body.includes(Buffer.from(canary)), 'no canary in the upload');
  assert.ok(!body.includes(Buffer.from('what_happened')), 'not even a field name');
  assert.ok(bytes < 1_000_000, `page weight ${bytes} bytes`);
  await context.close();

  const { out, manifest } = exportAndOpen(gateway, 'js');
  assert.equal(manifest.submissions.find((s) => s.id === id).sealing, 'by_sender');
  const dir = join(out, id);
  const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
  assert.equal(report.sealed_by, 'browser');
  assert.equal(report.urgent, true);
  assert.equal(report.language, 'es');
  assert.deepEqual(report.fields.what_happened, ['threat', 'surveillance']);
  assert.equal(report.fields.when, '2026-11-20');
  assert.equal(report.fields.when_approximate, 'yes');
  assert.equal(report.fields.region, 'cusco');
  assert.equal(report.fields.place, 'Espinar');
  assert.equal(report.fields.affected, 'community');
  assert.equal(report.fields.defender_field, 'land_environment');
  assert.deepEqual(report.fields.responsible, ['company']);
  assert.equal(report.fields.contact, 'Signal, por la tarde');
  assert.ok(report.description.includes(canary));
  // Cleaned images travel under neutral names: a camera's file name says when the photo was taken.
  assert.deepEqual(report.attachments.map((a) => a.name), ['imagen-1.jpg', 'imagen-2.png', 'acta.pdf']);
  const pdf = readFileSync(join(dir, 'files', '003-acta.pdf'));
  assert.deepEqual(pdf, readFileSync(join(fixtures, 'acta.pdf')), 'the PDF arrives byte for byte');
  const jpeg = readFileSync(join(dir, 'files', '001-imagen-1.jpg'));
  assert.equal(jpeg[0], 0xff); assert.equal(jpeg[1], 0xd8);
  assert.equal(jpeg[jpeg.length - 2], 0xff); assert.equal(jpeg[jpeg.length - 1], 0xd9);
  for (const marker of ['Exif', 'GPS-Model-X1', 'CanaryCam', '2026:11:20']) {
    assert.ok(!jpeg.includes(Buffer.from(marker)), `${marker} left in the JPEG`);
  }
  const png = readFileSync(join(dir, 'files', '002-imagen-2.png'));
  for (const marker of ['CanaryAuthor', 'tEXt', '-13.5179']) {
    assert.ok(!png.includes(Buffer.from(marker)), `${marker} left in the PNG`);
  }
  const txt = readFileSync(join(dir, 'report.txt'), 'utf8');
  assert.ok(txt.startsWith('!!! URGENTE'), txt);
  assert.ok(txt.includes('Cifrado por: el navegador de quien reporta'), txt);
});

test('JavaScript off: the same form is sealed on arrival and no plaintext is kept', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(url);
  assert.ok(await page.isVisible('#mode-server'));
  assert.match(await page.textContent('#mode-server'), /no usa JavaScript/i);
  assert.ok(await page.isHidden('#mode-loading'), 'no "loading" notice when there is no script to load');
  const canary = `CANARY${randomBytes(8).toString('hex')}`;
  await fillForm(page, canary, { files: [join(fixtures, 'acta.pdf')] });
  await page.screenshot({ path: join(artifacts, 'page-nojs-1280.png'), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  const id = (await page.textContent('#submission-id')).trim();
  assert.match(id, /^[0-9a-f]{32}$/);
  assert.match(await page.textContent('main'), /protegió tu reporte apenas llegó/);
  assert.ok(await page.isVisible('#urgent-after'), 'an urgent report repeats the hotlines');
  await context.close();

  // Nothing of the plaintext is in the data directory or in anything the gateway printed.
  for (const file of allFiles(dataDir)) {
    assert.ok(!readFileSync(file).includes(Buffer.from(canary)), `canary in ${file}`);
    assert.ok(!readFileSync(file).includes(Buffer.from('Espinar')), `plaintext in ${file}`);
  }
  assert.ok(!logs().includes(canary), 'canary in the logs');
  assert.ok(!logs().includes('Espinar'), 'plaintext in the logs');

  const { out, manifest } = exportAndOpen(gateway, 'nojs');
  assert.equal(manifest.submissions.find((s) => s.id === id).sealing, 'on_arrival');
  const dir = join(out, id);
  const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
  assert.equal(report.sealed_by, 'gateway');
  assert.equal(report.urgent, true);
  assert.deepEqual(report.fields.what_happened, ['threat', 'surveillance']);
  assert.equal(report.fields.region, 'cusco');
  assert.ok(report.description.includes(canary));
  assert.deepEqual(readFileSync(join(dir, 'files', '001-acta.pdf')), readFileSync(join(fixtures, 'acta.pdf')));
  assert.ok(readFileSync(join(dir, 'report.txt'), 'utf8').includes('el servidor al recibirlo'));
});

test('JavaScript off: every missing answer is listed at the top, linked and marked, with what was typed', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 360, height: 780 } });
  const page = await context.newPage();
  await page.goto(url);
  await page.fill('#f-place', 'texto <b>sin</b> respuestas');
  await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  const summary = page.locator('#error-summary');
  assert.match(await summary.textContent(), /NO se envió/);
  assert.deepEqual(await summary.locator('a').evaluateAll((as) => as.map((a) => a.getAttribute('href'))),
    ['#f-what_happened', '#f-description']);
  assert.equal(await page.getAttribute('#f-what_happened', 'aria-invalid'), 'true');
  assert.equal(await page.getAttribute('#f-description', 'aria-invalid'), 'true');
  assert.equal(await page.inputValue('#f-place'), 'texto <b>sin</b> respuestas');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'error-summary', 'focus moves to the list');
  await page.screenshot({ path: join(artifacts, 'page-nojs-360-missing.png'), fullPage: true });
  await context.close();
});

test('360 px wide: no horizontal scrolling, and a screenshot', async () => {
  const context = await browser.newContext({ viewport: { width: 360, height: 780 }, deviceScaleFactor: 2 });
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForSelector('#mode-browser:not([hidden])');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 360, `page is ${width}px wide`);
  await page.screenshot({ path: join(artifacts, 'page-360.png'), fullPage: true });
  assert.ok(existsSync(join(artifacts, 'page-360.png')));
  await context.close();
});
