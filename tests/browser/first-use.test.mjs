// A defender on a 360 px phone, first time: what a first-use trial found, each tried again in a
// real Chromium against the real gateway. Screenshots of every state go to test-artifacts/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  fixtures, languages, es, errorCodes, startGateway, launchBrowser, phone, shot, exportAndOpen,
  fillMinimal, ready,
} from './harness.mjs';

let browser;
const gateways = [];

async function gatewayWith(extra) {
  const g = await startGateway(extra);
  gateways.push(g);
  return g;
}

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const g of gateways) g.stop();
});

/** The text of the message box at the top, once there is one. */
async function topMessage(page, timeout = 30000) {
  await page.waitForSelector('#page-message .message', { timeout });
  return (await page.textContent('#page-message')).replace(/\s+/g, ' ');
}

test('a stalled upload says it will continue, then NOT sent after a bound, offers cancel, and asks not to close the page', async () => {
  // The gateway gives up an upload idle for 4 s; the page gives up at the same bound.
  const gateway = await gatewayWith('[limits]\nbody_idle_timeout_secs = 4\n');
  const { context, page, errors } = await phone(browser);
  const cdp = await context.newCDPSession(page);
  await page.goto(gateway.url);
  await ready(page);
  await fillMinimal(page);
  // Larger than what the kernel's socket buffers can absorb once the server stops reading.
  const big = join(gateway.workDir, 'video.bin');
  writeFileSync(big, randomBytes(24 * 1024 * 1024));
  await page.setInputFiles('#f-attachments', big);
  // A slow uplink (1 MB/s), so the upload takes long enough to be stopped in the middle.
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 1024 * 1024,
  });
  await page.click('#submit');
  await page.waitForFunction(() => Number(document.getElementById('progress').value) >= 40, null, { timeout: 60000 });
  assert.ok(await page.isVisible('#cancel'), 'a cancel button while sending');
  assert.match(await page.textContent('#sending-note'), /No cierres esta página/);
  await shot(page, 'stall-sending-360');
  // The server stops answering at about 40 %.
  gateway.proc.kill('SIGSTOP');
  const stoppedAt = Date.now();
  try {
    // A report this large goes by the resumable route (docs/uploads-v1.md): first the page says
    // it will continue from where it stopped, and keeps trying...
    const waiting = es['page.status.resume_wait'].split('{percent}')[0];
    await page.waitForFunction((text) => document.getElementById('status').textContent.startsWith(text), waiting, { timeout: 30000 });
    assert.equal(await page.locator('#page-message .message').count(), 0, 'not given up yet');
    await shot(page, 'stall-waiting-360');
    // ...for ten times the gateway's 4 s bound on an idle upload; then it says NOT sent.
    const message = await topMessage(page, 120000);
    const waited = (Date.now() - stoppedAt) / 1000;
    assert.match(message, /NO se envió/);
    assert.ok(message.includes(es['page.error.stalled'].replace('{seconds}', '40')), message);
    // Buffers keep taking bytes for a while after the stop; then the 40 s bound applies.
    assert.ok(waited >= 35 && waited < 90, `the failure came ${waited} s after the stall`);
    assert.ok(await page.isHidden('#cancel'));
    assert.ok(await page.isEnabled('#submit'), 'the reporter can try again');
    assert.equal(await page.inputValue('#f-description'), 'Nos amenazaron en la asamblea.', 'nothing typed is lost');
    await shot(page, 'stall-failed-360');
  } finally {
    gateway.proc.kill('SIGCONT');
  }
  // Cancel: the reporter stops it themselves.
  await page.click('#submit');
  await page.waitForFunction(() => Number(document.getElementById('progress').value) >= 10, null, { timeout: 60000 });
  await page.click('#cancel');
  assert.match(await topMessage(page), new RegExp(es['page.error.cancelled'].replace(/[.]/g, '\\.')));
  assert.deepEqual(errors, []);
  await context.close();
});

test('if the keys fail to load once, the page says so at the top in Spanish and fetches them again', async () => {
  const gateway = await gatewayWith('');
  const { context, page, errors } = await phone(browser);
  let keyRequests = 0;
  await page.route('**/api/v1/keys', (route) => {
    keyRequests += 1;
    return keyRequests === 1 ? route.abort('connectionreset') : route.continue();
  });
  await page.goto(gateway.url);
  await ready(page);
  const message = await topMessage(page);
  assert.ok(message.includes(es['page.keys.failed']), message);
  assert.ok(!/Failed to fetch|TypeError/.test(message), 'no browser error text');
  await shot(page, 'keys-failed-360');
  await fillMinimal(page);
  await page.click('#submit');
  await page.waitForSelector('#submission-id', { timeout: 60000 });
  assert.equal(keyRequests, 2, 'the keys were fetched again when needed');
  assert.deepEqual(errors, []);
  await context.close();
});

test('every error the gateway can give is a sentence in the page\'s language, at the top', async () => {
  // One connection asks for a challenge per error, faster than a person could: its own share of
  // the budget is raised so that no "too many requests" stands in for the error under test.
  const gateway = await gatewayWith('[proof_of_work]\nenabled = false\n[rate_limits]\nper_connection_per_second = 1000\nper_connection_burst = 1000\n');
  for (const [lang, strings] of Object.entries(languages)) {
    const { context, page } = await phone(browser);
    let answer = null;
    let posts = 0;
    await page.route('**/api/v1/submissions', (route) => {
      posts += 1;
      return route.fulfill({ status: answer.status, contentType: 'application/json', body: JSON.stringify({ error: answer.code, message: 'English text the page must not show' }) });
    });
    await page.goto(`${gateway.url}?lang=${lang}`);
    await ready(page);
    await fillMinimal(page);
    for (const code of errorCodes) {
      answer = { code, status: code.startsWith('pow_') ? 403 : 422 };
      await page.evaluate(() => document.getElementById('page-message').replaceChildren());
      await page.click('#submit');
      const message = await topMessage(page);
      assert.ok(message.includes(strings[`error.${code}`]), `${lang} ${code}: ${message}`);
      assert.ok(!message.includes('English text'), `${lang} ${code}: the server's English text leaked`);
      await page.waitForSelector('#submit:not([disabled])');
    }
    assert.ok(posts >= errorCodes.length);
    await context.close();
  }
});

test('a proof of work refused after a restart is fetched and solved again, quietly', async () => {
  const gateway = await gatewayWith('');
  const { context, page, errors } = await phone(browser);
  let challenges = 0;
  let posts = 0;
  page.on('request', (r) => { if (r.url().endsWith('/api/v1/challenge')) challenges += 1; });
  await page.route('**/api/v1/submissions', (route) => {
    posts += 1;
    if (posts === 1) {
      return route.fulfill({ status: 403, contentType: 'application/json', body: JSON.stringify({ error: 'pow_invalid', message: 'the challenge was not issued by this gateway' }) });
    }
    return route.continue();
  });
  await page.goto(gateway.url);
  await ready(page);
  await fillMinimal(page);
  await page.click('#submit');
  await page.waitForSelector('#submission-id', { timeout: 60000 });
  assert.equal(posts, 2);
  assert.equal(challenges, 2, 'a new challenge was fetched and solved');
  assert.equal(await page.locator('#page-message .message').count(), 0, 'no error was shown');
  assert.deepEqual(errors, []);
  await context.close();
});

test('sealing on arrival switched off: without JavaScript no form is shown, and the page says what to do', async () => {
  const gateway = await gatewayWith('[form]\nserver_sealing = false\n');
  const nojs = await phone(browser, { javaScriptEnabled: false });
  await nojs.page.goto(gateway.url);
  assert.ok(await nojs.page.isHidden('#report'), 'no form that cannot be sent');
  const text = await nojs.page.textContent('main');
  for (const key of ['page.nojs.disabled', 'page.nojs.step1', 'page.nojs.step2', 'page.nojs.other_ways']) {
    assert.ok(text.includes(es[key]), key);
  }
  assert.ok(await nojs.page.isHidden('#mode-loading'));
  await shot(nojs.page, 'sealing-off-nojs-360');
  await nojs.context.close();
  const js = await phone(browser);
  await js.page.goto(gateway.url);
  await ready(js.page);
  assert.ok(await js.page.isVisible('#report'), 'with JavaScript the form is there');
  await js.context.close();
});

test('urgency is asked first with large targets; "yes" shows help and the organisation\'s promise, also after sending', async () => {
  const gateway = await gatewayWith(`[organisation]
name = "Colectivo de prueba"
who_reads = { es = "Dos abogadas del colectivo, en una computadora sin internet.", en = "Two of the collective's lawyers, offline." }
urgent_review_hours = 6
`);
  const { context, page, errors } = await phone(browser);
  await page.goto(gateway.url);
  await ready(page);
  assert.ok((await page.textContent('.organisation')).includes('Dos abogadas del colectivo'));
  const first = await page.evaluate(() => document.querySelector('#report [name]:not([type=hidden])')?.name);
  assert.equal(first, 'urgent', 'the first question is the urgency');
  const box = await page.locator('label[for="urgent-yes"]').boundingBox();
  assert.ok(box.height >= 44 && box.width >= 120, `target ${box.width}×${box.height}`);
  assert.ok(await page.isHidden('.urgent-help'));
  await page.click('label[for="urgent-yes"]');
  assert.ok(await page.isVisible('.urgent-help'));
  const help = await page.textContent('.urgent-help');
  assert.match(help, /105/);
  assert.match(help, /cada 6 horas/);
  await shot(page, 'urgent-yes-360');
  await fillMinimal(page);
  await page.click('#submit');
  await page.waitForSelector('#submission-id', { timeout: 60000 });
  assert.ok(await page.isVisible('#urgent-after'));
  const after = await page.textContent('#urgent-after');
  assert.match(after, /cada 6 horas/);
  assert.equal(await page.locator('#urgent-after a[href="tel:105"]').count(), 1);
  await shot(page, 'urgent-sent-360');
  // A report that is not urgent gets the ordinary confirmation.
  await page.goto(gateway.url);
  await ready(page);
  await page.click('label[for="urgent-no"]');
  await fillMinimal(page);
  await page.click('#submit');
  await page.waitForSelector('#submission-id', { timeout: 60000 });
  assert.ok(await page.isHidden('#urgent-after'));
  assert.deepEqual(errors, []);
  await context.close();
  // "No" and "not answered" stay apart in what reviewers get.
  const { out, manifest } = exportAndOpen(gateway, 'urgency');
  const answers = manifest.submissions.map((s) => JSON.parse(readFileSync(join(out, s.id, 'report.json'), 'utf8')).fields.urgent);
  assert.deepEqual(answers.sort(), ['no', 'yes']);
});

test('every missing answer is listed at the top with links, marked, and focus moves there', async () => {
  const gateway = await gatewayWith('');
  const { context, page, errors } = await phone(browser);
  await page.goto(gateway.url);
  await ready(page);
  await page.fill('#f-place', 'Espinar');
  await page.click('#submit');
  const message = await topMessage(page);
  assert.ok(message.includes(es['page.error.missing']), message);
  const links = await page.locator('#page-message a').evaluateAll((as) => as.map((a) => [a.getAttribute('href'), a.textContent]));
  assert.deepEqual(links, [['#f-what_happened', es['field.what_happened.label']], ['#f-description', es['field.description.label']]]);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'page-message');
  assert.equal(await page.getAttribute('#f-what_happened', 'aria-invalid'), 'true');
  assert.equal(await page.getAttribute('#f-description', 'aria-invalid'), 'true');
  const top = await page.evaluate(() => document.getElementById('page-message').getBoundingClientRect().top);
  // Sub-pixel layout (a 2x screen) may leave it a fraction of a pixel above the top.
  assert.ok(top > -1 && top < 780, `the list is on screen: ${top}`);
  await shot(page, 'missing-360');
  await page.click('#page-message a[href="#f-description"]');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'f-description');
  assert.deepEqual(errors, []);
  await context.close();
});

test('on a slow connection the page says "loading", not "JavaScript is off", and its files come compressed and cacheable', async () => {
  const gateway = await gatewayWith('');
  const { context, page, errors } = await phone(browser);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  // 40 KB/s, as a rural 3G link.
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 300, downloadThroughput: 40 * 1024, uploadThroughput: 20 * 1024,
  });
  const responses = [];
  page.on('response', (r) => responses.push(r));
  const started = Date.now();
  // Module scripts run before DOMContentLoaded: look as soon as the markup is there.
  await page.goto(gateway.url, { waitUntil: 'commit' });
  await page.waitForSelector('#mode-loading', { state: 'attached' });
  assert.ok(await page.isVisible('#mode-loading'));
  assert.match(await page.textContent('#mode-loading'), /Cargando/);
  assert.ok(!/JavaScript/.test(await page.locator('.mode').innerText()), 'no "JavaScript is off" while loading');
  await shot(page, 'loading-40kbps-360');
  await ready(page);
  const seconds = (Date.now() - started) / 1000;
  const script = responses.find((r) => r.url().endsWith('/vendor/openpgp.min.mjs'));
  assert.ok(script, 'openpgp.js was loaded');
  const headers = await script.allHeaders();
  assert.equal(headers['content-encoding'], 'gzip');
  assert.match(headers['cache-control'], /immutable/);
  assert.match(new URL(script.url()).pathname, /^\/v\/[0-9a-f]{16}\/vendor\//, 'a versioned URL');
  const transferred = Number(headers['content-length']);
  assert.ok(transferred < 200_000, `openpgp.js weighs ${transferred} bytes on the wire`);
  console.log(`page ready after ${seconds.toFixed(1)} s at 40 KB/s; openpgp.js ${transferred} bytes gzipped`);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a file over the limit is refused as soon as it is chosen, before anything reads it', async () => {
  const gateway = await gatewayWith('[limits]\nmax_submission_bytes = 1048576\n');
  const { context, page, errors } = await phone(browser, { bypassCSP: true });
  // Count every way a page can read a file.
  await page.addInitScript(() => {
    window.fileReads = 0;
    for (const name of ['arrayBuffer', 'text', 'stream', 'slice']) {
      const original = Blob.prototype[name];
      Blob.prototype[name] = function (...args) { window.fileReads += 1; return original.apply(this, args); };
    }
    const read = FileReader.prototype.readAsArrayBuffer;
    FileReader.prototype.readAsArrayBuffer = function (...args) { window.fileReads += 1; return read.apply(this, args); };
  });
  await page.goto(gateway.url);
  await ready(page);
  await fillMinimal(page);
  const big = join(gateway.workDir, 'video.mp4');
  writeFileSync(big, randomBytes(2 * 1024 * 1024));
  await page.setInputFiles('#f-attachments', big);
  const message = await topMessage(page);
  assert.ok(message.includes(es['page.files.too_large'].replace('{limit}', '1 MB')), message);
  assert.match(message, /córtalo en partes/);
  assert.ok(await page.isDisabled('#submit'), 'the button cannot send it');
  assert.equal(await page.evaluate(() => window.fileReads), 0, 'the file was not read');
  await shot(page, 'too-large-360');
  // Removing it makes the form sendable again.
  await page.click('#file-list button');
  assert.ok(await page.isEnabled('#submit'));
  // Regression: a photo chosen together with an oversized file was never checked once that file
  // was removed, and went out with its location.
  await page.setInputFiles('#f-attachments', [big, join(fixtures, 'photo-with-gps.jpg')]);
  await page.click('#file-list li:first-child button');
  await page.waitForFunction(() => document.querySelector('#file-list li')?.dataset.state === 'cleaned');
  assert.deepEqual(errors, []);
  await context.close();
});

test('image metadata: "removed" only when removal was checked; otherwise the reporter is asked', async () => {
  const gateway = await gatewayWith('');
  const photo = readFileSync(join(fixtures, 'photo-with-gps.jpg'));
  // A stray byte between two segments, and one with its end marker missing: both are cleaned.
  const stray = Buffer.concat([photo.subarray(0, 2), Buffer.from([0x00]), photo.subarray(2)]);
  const noEnd = photo.subarray(0, photo.length - 2);
  // A segment that claims more bytes than the file has: it cannot be cleaned safely.
  const broken = Buffer.from(photo);
  broken[4] = 0xff; broken[5] = 0xff;
  const files = { 'stray.jpg': stray, 'noend.jpg': noEnd, 'broken.jpg': broken };
  const paths = Object.entries(files).map(([name, bytes]) => {
    const path = join(gateway.workDir, name);
    writeFileSync(path, bytes);
    return path;
  });
  const { context, page, errors } = await phone(browser);
  await page.goto(gateway.url);
  await ready(page);
  await fillMinimal(page);
  await page.setInputFiles('#f-attachments', paths);
  await page.waitForFunction(() => [...document.querySelectorAll('#file-list li')].every((li) => li.dataset.state !== 'checking'));
  const states = await page.locator('#file-list li').evaluateAll((lis) => lis.map((li) => li.dataset.state));
  assert.deepEqual(states, ['cleaned', 'cleaned', 'not_cleaned']);
  const notes = await page.locator('#file-list .note').allTextContents();
  assert.equal(notes[0], es['page.files.stripped']);
  assert.equal(notes[2], es['page.files.not_stripped']);
  await shot(page, 'metadata-ask-360');
  await page.click('#submit');
  assert.ok((await topMessage(page)).includes(es['page.files.must_decide']));
  await page.check('#file-list li[data-state="not_cleaned"] input[type=checkbox]');
  await page.click('#submit');
  await page.waitForSelector('#submission-id', { timeout: 60000 });
  assert.deepEqual(errors, []);
  await context.close();
  const { out, manifest } = exportAndOpen(gateway, 'metadata');
  const dir = join(out, manifest.submissions[0].id, 'files');
  for (const name of ['001-imagen-1.jpg', '002-imagen-2.jpg']) {
    const bytes = readFileSync(join(dir, name));
    for (const marker of ['Exif', 'GPS-Model-X1', 'CanaryCam']) {
      assert.ok(!bytes.includes(Buffer.from(marker)), `${marker} left in ${name}`);
    }
    assert.deepEqual([...bytes.subarray(-2)], [0xff, 0xd9], `${name} ends with an end marker`);
  }
  assert.deepEqual(readFileSync(join(dir, '003-broken.jpg')), broken, 'sent as it was, by the reporter\'s choice');
});
