// Early alerts from the page (issue 11, docs/early-alerts.md): an urgent report sent from the
// page in Chromium carries a triage envelope for the couriers, and `resguardo-review watch` rings
// for it (its --on-alert command runs with the triage fields only); a calm one is listed, not rung.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { repo, bin, startGateway, launchBrowser, phone, ready, fillMinimal } from './harness.mjs';

const courier = (ext) => join(repo, `keys-example/demo-courier-1.${ext}`);
let gateway;
let browser;

before(async () => {
  gateway = await startGateway(`[[couriers]]\ncert = "${courier('pub.asc')}"\n`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  gateway?.stop();
});

async function send(urgent, canary) {
  const { context, page, errors } = await phone(browser);
  await page.goto(gateway.url);
  await ready(page);
  await fillMinimal(page, `Nos amenazaron. ${canary}`);
  await page.click(`label[for="urgent-${urgent ? 'yes' : 'no'}"]`);
  await page.click('#submit');
  await page.waitForSelector('#submission-id', { timeout: 60000 });
  const id = (await page.textContent('#submission-id')).trim();
  await context.close();
  assert.deepEqual(errors, [], 'no script errors');
  return id;
}

test('an urgent report from the page makes watch ring; a calm one is listed only', async () => {
  const canary = `CANARY${randomBytes(6).toString('hex')}`;
  const urgentId = await send(true, canary);
  const calmId = await send(false, canary);
  const work = mkdtempSync(join(tmpdir(), 'resguardo-watch-'));
  const alerts = join(work, 'alerts-out');
  mkdirSync(alerts);
  const started = Date.now();
  const watch = spawnSync(bin('resguardo-review'), [
    'watch', '--once', '--server', gateway.url,
    '--courier-key', courier('sec.asc'), '--passphrase-file', courier('passphrase'),
    '--state', join(work, 'state'),
    '--on-alert', `env > ${alerts}/$RESGUARDO_ID.env`,
  ], { encoding: 'utf8', env: { ...process.env, LANG: 'C' } });
  assert.equal(watch.status, 0, watch.stderr);
  assert.match(watch.stdout, new RegExp(`^URGENT .*${urgentId}`, 'm'));
  assert.match(watch.stdout, new RegExp(`^report .*${calmId}`, 'm'));
  assert.ok(!watch.stdout.includes(canary));
  const envFile = join(alerts, `${urgentId}.env`);
  while (!existsSync(envFile) && Date.now() - started < 60000) await new Promise((r) => setTimeout(r, 100));
  assert.ok(existsSync(envFile), 'the urgent report rang within 60 s');
  await new Promise((r) => setTimeout(r, 300));
  const env = readFileSync(envFile, 'utf8');
  assert.match(env, /RESGUARDO_URGENT=yes/);
  assert.ok(!env.includes(canary), 'nothing the reporter wrote reaches --on-alert');
  assert.ok(!existsSync(join(alerts, `${calmId}.env`)), 'a calm report does not ring');
});
