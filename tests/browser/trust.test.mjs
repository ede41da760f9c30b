// The organisation key on the page (docs/trust-v1.md, part 1): its fingerprint is shown in groups
// of four and fits a phone's width, the page encrypts only to the keys the key list signed by
// that key vouches for (a gateway that swaps /api/v1/keys gets nothing), and a report's number in
// the gateway's log is shown once it is received. Runs the embedded default from the repository root (it signs a demo key list with
// the demo organisation key at start).
//
// cargo build --bins && cd tests/browser && node --test --test-concurrency=1 trust.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  repo, bin, es, en, launchBrowser, phone, shot, fillMinimal, ready,
} from './harness.mjs';

/** The demo organisation key's fingerprint (keys-example/README.md), as the page groups it. */
const DEMO_ORG = '876724495736AF632E5F668F44928851A04C42B3';
const grouped = DEMO_ORG.match(/.{4}/g).join(' ');

let gateway;
let browser;

/** The embedded default on a free loopback port, its data in a new directory. */
function startEmbedded() {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'resguardo-trust-')), 'data');
  const proc = spawn(bin('resguardo-gateway'), ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    cwd: repo,
    env: { ...process.env, RESGUARDO_LOG: 'info' },
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${output}`)), 30000);
    const onData = (chunk) => {
      output += chunk.toString();
      const match = output.match(/Listening on (https?:\/\/[^\s]+)/);
      if (match) {
        clearTimeout(timer);
        resolve({ url: match[1], dataDir, logs: () => output, stop: () => proc.kill('SIGTERM') });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => reject(new Error(`gateway exited ${code}:\n${output}`)));
  });
}

before(async () => {
  gateway = await startEmbedded();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  gateway?.stop();
});

test('the embedded default says its organisation key is the public demo one', () => {
  assert.match(gateway.logs(), /Organisation key \(DEMO, its secret is public/);
  assert.ok(gateway.logs().includes('8767 2449 5736 AF63 2E5F  668F 4492 8851 A04C 42B3'));
});

test('the organisation fingerprint is shown in groups of four and wraps at 360 px', async () => {
  const { context, page, errors } = await phone(browser, { ignoreHTTPSErrors: true });
  await page.goto(gateway.url);
  const code = page.locator('#org-key .org-key-fingerprint code');
  assert.equal((await code.textContent()).trim(), grouped);
  assert.equal(await page.getAttribute('#org-key .org-key-fingerprint', 'data-fingerprint'), DEMO_ORG);
  assert.equal((await page.textContent('#org-key h2')).trim(), es['page.org_key.title']);
  assert.ok((await page.textContent('#org-key')).includes(es['page.org_key.compare']));
  const layout = await page.evaluate(() => {
    const el = document.querySelector('#org-key .org-key-fingerprint code');
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return {
      scrollWidth: document.documentElement.scrollWidth,
      right: box.right,
      lines: Math.round(box.height / parseFloat(style.lineHeight || '0')),
      height: box.height,
      fontSize: parseFloat(style.fontSize),
      family: style.fontFamily,
    };
  });
  assert.ok(layout.scrollWidth <= 360, `no sideways scroll: ${JSON.stringify(layout)}`);
  assert.ok(layout.right <= 360, `the fingerprint fits: ${JSON.stringify(layout)}`);
  assert.ok(layout.height > 1.5 * layout.fontSize, `it wraps onto more lines: ${JSON.stringify(layout)}`);
  assert.match(layout.family, /mono/i);
  // It is near the top: above the form.
  const [orgTop, formTop] = await page.evaluate(() => [
    document.querySelector('#org-key').getBoundingClientRect().top,
    document.querySelector('#report').getBoundingClientRect().top,
  ]);
  assert.ok(orgTop < formTop);
  await shot(page, 'trust-fingerprint-360');
  assert.deepEqual(errors, []);
  await context.close();
});

/** How many submissions the gateway holds (its operator status, which reads the store). */
function stored() {
  const out = execFileSync(bin('resguardo-gateway'), ['status', '--data-dir', gateway.dataDir], { encoding: 'utf8' });
  return Number(out.match(/waiting for export: (\d+)/)[1]);
}

const vector = (name) => JSON.parse(readFileSync(join(repo, 'tests/vectors/key-lists', name), 'utf8'));
const REVIEWER_1 = 'C95C29B449920DED0872A622F1F1AA6FAE2F54AD';

/** An attacker's own encryption key, as a gateway that swaps keys would serve it. */
async function attackerKey() {
  const openpgp = await import(join(repo, 'static/node_modules/openpgp/dist/openpgp.min.mjs'));
  const { publicKey } = await openpgp.generateKey({ userIDs: [{ name: 'Revisora 1' }], type: 'curve25519', format: 'object' });
  return { cert: publicKey.armor(), fingerprint: publicKey.getFingerprint().toUpperCase() };
}

/**
 * Ways a gateway could swap the keys while the page shows the genuine organisation fingerprint:
 * each rewrites the /api/v1/keys answer (and, where the old check by the reviewers' fingerprints
 * on the page would catch it, the page's list of them too).
 */
const swaps = {
  // The attacker's key instead of reviewer 1's, in the answer and in the page's fingerprints.
  'a reviewer key swapped': async () => {
    const attacker = await attackerKey();
    return {
      keys: (body) => {
        body.reviewers[0] = { fingerprint: attacker.fingerprint, name: body.reviewers[0].name, cert: attacker.cert };
        return body;
      },
      html: (text) => text.replaceAll(REVIEWER_1, attacker.fingerprint)
        .replaceAll(REVIEWER_1.match(/.{4}/g).join(' '), attacker.fingerprint.match(/.{4}/g).join(' ')),
    };
  },
  // A list that verifies, with the same reviewers, but signed by another organisation key.
  'a list signed by another organisation key': async () => ({
    keys: (body) => ({ ...body, key_list: vector('fail_other_organisation.json').signed }),
  }),
  // The genuine list's text changed after it was signed.
  'the signed text altered': async () => ({
    keys: (body) => ({ ...body, key_list: { ...body.key_list, key_list: body.key_list.key_list.replace('"version":1', '"version":2') } }),
  }),
};

for (const [name, makeSwap] of Object.entries(swaps)) {
  test(`the page refuses keys the organisation did not vouch for (${name}) and sends nothing`, async () => {
    const swap = await makeSwap();
    const before = stored();
    const { context, page, errors } = await phone(browser, { ignoreHTTPSErrors: true });
    const sent = [];
    page.on('request', (r) => { if (/\/api\/v1\/(submissions|challenge)/.test(r.url())) sent.push(r.url()); });
    await page.route('**/api/v1/keys', async (route) => {
      const response = await route.fetch();
      const body = swap.keys(await response.json());
      await route.fulfill({ response, body: JSON.stringify(body) });
    });
    if (swap.html) {
      await page.route((url) => url.pathname === '/', async (route) => {
        const response = await route.fetch();
        await route.fulfill({ response, body: swap.html(await response.text()) });
      });
    }
    await page.goto(gateway.url);
    const message = page.locator('#page-message [data-kind="keys-refused"]');
    await message.waitFor({ timeout: 30000 });
    assert.ok((await message.textContent()).includes(es['page.keys.not_vouched']));
    assert.equal(await page.getAttribute('#main', 'data-keys'), 'refused');
    // The page still shows the genuine fingerprint: that is the attack.
    assert.equal((await page.textContent('#org-key .org-key-fingerprint code')).trim(), grouped);
    assert.ok(await page.isDisabled('#submit'));
    assert.ok(await page.isHidden('#mode-browser'), 'the page no longer says the report is protected');
    await shot(page, `trust-refused-${name.replaceAll(' ', '-')}-360`);
    // A filled form submitted anyway (Enter, or a script) sends nothing either.
    await fillMinimal(page);
    await page.evaluate(() => document.getElementById('report').requestSubmit());
    await message.waitFor();
    assert.ok(await page.isDisabled('#submit'));
    await page.waitForTimeout(500);
    assert.deepEqual(sent, [], 'no challenge fetched, nothing uploaded');
    assert.equal(stored(), before, 'nothing stored');
    assert.deepEqual(errors, []);
    await context.close();
  });
}

test('the English page says it in English', async () => {
  const { context, page } = await phone(browser, { ignoreHTTPSErrors: true });
  await page.route('**/api/v1/keys', async (route) => {
    const response = await route.fetch();
    await route.fulfill({ response, body: JSON.stringify({ ...(await response.json()), key_list: vector('fail_other_organisation.json').signed }) });
  });
  await page.goto(`${gateway.url}?lang=en`);
  const message = page.locator('#page-message [data-kind="keys-refused"]');
  await message.waitFor({ timeout: 30000 });
  assert.ok((await message.textContent()).includes(en['page.keys.not_vouched']));
  await context.close();
});

test('a page whose shown fingerprint disagrees with the one its script checks refuses too', async () => {
  const { context, page } = await phone(browser, { ignoreHTTPSErrors: true });
  await page.route((url) => url.pathname === '/', async (route) => {
    const response = await route.fetch();
    const text = (await response.text()).replace(/("fingerprint":")[0-9A-F]{40}/, '$1' + 'B'.repeat(40));
    await route.fulfill({ response, body: text });
  });
  await page.goto(gateway.url);
  await page.locator('#page-message [data-kind="keys-refused"]').waitFor({ timeout: 30000 });
  assert.ok(await page.isDisabled('#submit'));
  await context.close();
});

test('checking the key list costs little before the first send (measured)', async () => {
  const { context, page, errors } = await phone(browser, { ignoreHTTPSErrors: true });
  await page.goto(gateway.url);
  await ready(page);
  assert.equal(await page.locator('#page-message [data-kind="keys-refused"]').count(), 0);
  const timings = await page.evaluate(async (pin) => {
    const base = new URL(document.querySelector('script[type="module"]').src);
    const root = base.href.replace(/app\.js$/, '');
    const openpgp = await import(`${root}vendor/openpgp.min.mjs`);
    const { loadKeys } = await import(`${root}js/send.js`);
    const { verifyKeyList } = await import(`${root}js/keylist.js`);
    const time = async (fn) => { const t0 = performance.now(); await fn(); return performance.now() - t0; };
    const out = { plain: [], pinned: [], verifyOnly: [] };
    const body = await (await fetch('/api/v1/keys', { cache: 'no-store' })).json();
    const today = new Date().toISOString().slice(0, 10);
    for (let i = 0; i < 5; i += 1) {
      out.pinned.push(await time(() => loadKeys(openpgp, null, pin)));
      out.plain.push(await time(() => loadKeys(openpgp, null, null)));
      out.verifyOnly.push(await time(() => verifyKeyList(openpgp, body.key_list, pin, today)));
    }
    return out;
  }, DEMO_ORG);
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const summary = Object.fromEntries(Object.entries(timings).map(([k, xs]) => [k, { first: Math.round(xs[0]), median: Math.round(median(xs)) }]));
  console.log(`# key list check in Chromium (ms): ${JSON.stringify(summary)}`);
  assert.ok(median(timings.verifyOnly) < 2000, JSON.stringify(summary));
  assert.deepEqual(errors, []);
  await context.close();
});

test("after a report is received, its number in the gateway's log is shown", async () => {
  const { context, page, errors } = await phone(browser, { ignoreHTTPSErrors: true });
  await page.goto(gateway.url);
  await ready(page);
  await fillMinimal(page);
  await page.click('#submit');
  await page.waitForSelector('#submission-id', { timeout: 90000 });
  const said = (await page.textContent('#result .sequence')).trim();
  assert.equal(said, es['page.success.sequence'].replace('{n}', '1'));
  await shot(page, 'trust-sequence-360');
  assert.deepEqual(errors, []);
  await context.close();
});
