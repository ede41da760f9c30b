// The organisation key on the page (docs/trust-v1.md, part 1): its fingerprint is shown in groups
// of four and fits a phone's width, and a report's number in the gateway's log is shown once it
// is received. Runs the embedded default from the repository root (it signs a demo key list with
// the demo organisation key at start).
//
// cargo build --bins && cd tests/browser && node --test --test-concurrency=1 trust.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  repo, bin, es, launchBrowser, phone, shot, fillMinimal, ready,
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
