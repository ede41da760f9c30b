// The submission page as reporters reach it: at its .onion address, through Tor. A real headless
// Chromium talks only to the SOCKS port of a Tor client on a private Tor network on 127.0.0.1
// (tests/support/private-tor, the same script the Rust tests use); the onion service has
// deploy/torrc's defences and the gateway deploy/gateway.toml's settings (plain HTTP on loopback,
// proof of work on). Chromium's NetLog shows it resolved no name itself and connected nowhere
// but that SOCKS port.
//
// Run by scripts/test (after `cargo build`), or: cd tests/browser && npm ci && npm test.
// Needs tor and tor-gencert (Debian package `tor`): without them this fails, it never skips.
// The screenshot goes to test-artifacts/onion-sent.png at the repository root.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = (name) => join(process.env.CARGO_TARGET_DIR || join(repo, 'target'), 'debug', name);
const privateTor = join(repo, 'tests', 'support', 'private-tor');
const artifacts = join(repo, 'test-artifacts');

let workDir;
let dataDir;
let gateway;
let gatewayLogs = '';
let torDir;
let socks;
let onion;
let browser;
let netLog;

/** The gateway with deploy/gateway.toml, changing only what is the operator's own. */
function startGateway() {
  dataDir = join(workDir, 'data');
  const deployed = readFileSync(join(repo, 'deploy', 'gateway.toml'), 'utf8');
  const own = [
    [/^listen = .*$/m, 'listen = "127.0.0.1:0"'],
    [/^data_dir = .*$/m, `data_dir = "${dataDir}"`],
    [/^reviewer_certs = \[[^\]]*\]/m, `reviewer_certs = ["${join(repo, 'keys-example/demo-reviewer-1.pub.asc')}", "${join(repo, 'keys-example/demo-reviewer-2.pub.asc')}"]`],
  ];
  let config = deployed;
  for (const [pattern, line] of own) {
    assert.match(config, pattern, `deploy/gateway.toml has no ${pattern}`);
    config = config.replace(pattern, line);
  }
  assert.match(config, /^mode = "plain-http"$/m, 'behind the onion the gateway serves plain HTTP');
  assert.match(config, /^\[proof_of_work\][^[]*^enabled = true$/m, 'proof of work is on as deployed');
  const path = join(workDir, 'gateway.toml');
  writeFileSync(path, config);
  gateway = spawn(bin('resguardo-gateway'), ['serve', '--config', path]);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${gatewayLogs}`)), 30000);
    const onData = (chunk) => {
      gatewayLogs += chunk.toString();
      const match = gatewayLogs.match(/Listening on http:\/\/(127\.0\.0\.1:\d+)\//);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    gateway.stdout.on('data', onData);
    gateway.stderr.on('data', onData);
  });
}

function stopTor() {
  if (!torDir) return;
  execFileSync(privateTor, ['down', torDir], { stdio: 'inherit' });
  rmSync(torDir, { recursive: true, force: true });
  torDir = undefined;
}

/** The last lines of the Tor client's and the onion service's logs, for failure messages. */
function torLogs() {
  return ['client', 'hs'].map((node) => {
    let text = '';
    try { text = readFileSync(join(torDir, node, 'notice.log'), 'utf8'); } catch { /* not there */ }
    return `--- last lines of ${node}/notice.log\n${text.split('\n').slice(-15).join('\n')}`;
  }).join('\n');
}

/** Every event of Chromium's NetLog, with its type's name. */
function readNetLog(path) {
  const log = JSON.parse(readFileSync(path, 'utf8'));
  const names = Object.fromEntries(Object.entries(log.constants.logEventTypes).map(([name, id]) => [id, name]));
  return { types: log.constants.logEventTypes, events: log.events.map((e) => ({ ...e, name: names[e.type] })) };
}

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  workDir = mkdtempSync(join(tmpdir(), 'resguardo-onion-'));
  process.on('exit', () => {
    stopTor();
    gateway?.kill('SIGKILL');
  });
  const target = await startGateway();
  torDir = mkdtempSync(join(tmpdir(), 'resguardo-tor-'));
  let up;
  try {
    up = await promisify(execFile)(privateTor, ['up', torDir, '--target', target, '--owner', String(process.pid)]);
  } catch (error) {
    rmSync(torDir, { recursive: true, force: true });
    torDir = undefined; // the script stopped what it had started
    throw new Error(`the private Tor network did not come up:\n${error.stderr}${error.stdout}`);
  }
  process.stderr.write(up.stderr);
  socks = up.stdout.match(/^SOCKS=(127\.0\.0\.1:\d+)$/m)[1];
  onion = up.stdout.match(/^ONION=([a-z2-7]{56}\.onion)$/m)[1];
  netLog = join(workDir, 'netlog.json');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // Everything through the Tor client. With socks5:// Chromium sends host names to the
      // proxy and resolves nothing itself (checked below in its NetLog).
      `--proxy-server=socks5://${socks}`,
      // Tor Browser treats .onion pages as secure contexts (the onion service authenticates
      // and encrypts); Chromium does not, and without one there is no WebCrypto, which
      // openpgp.js needs. This makes Chromium behave as Tor Browser does for this one origin.
      `--unsafely-treat-insecure-origin-as-secure=http://${onion}`,
      `--log-net-log=${netLog}`],
  });
}, { timeout: 300_000 });

after(async () => {
  await browser?.close();
  stopTor();
  gateway?.kill('SIGTERM');
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test('a report sent from the .onion page through Tor is encrypted in the browser and opens offline', { timeout: 300_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r));
  const origin = `http://${onion}`;
  try {
    await page.goto(`${origin}/`, { timeout: 120_000 });
  } catch (error) {
    throw new Error(`${error.message}\n${torLogs()}`);
  }
  assert.equal(await page.getAttribute('html', 'lang'), 'es');
  await page.waitForSelector('#mode-browser:not([hidden])');
  assert.ok(await page.evaluate(() => window.isSecureContext && Boolean(crypto.subtle)));

  const canary = `CANARY${randomBytes(8).toString('hex')}`;
  await page.check('input[name="what_happened"][value="threat"]');
  await page.check('input[name="what_happened"][value="legal_harassment"]');
  await page.selectOption('#f-region', 'cusco');
  await page.fill('#f-place', 'Chumbivilcas');
  await page.fill('#f-description', `Llegó una citación falsa a la comunidad. ${canary}`);
  await page.setInputFiles('#f-attachments', join(repo, 'tests', 'fixtures', 'acta.pdf'));
  await page.click('#submit');
  try {
    await page.waitForSelector('#submission-id', { timeout: 120_000 });
  } catch (error) {
    throw new Error(`${error.message}\nstatus: ${await page.textContent('#status')}\n${torLogs()}`);
  }
  const id = (await page.textContent('#submission-id')).trim();
  assert.match(id, /^[0-9a-f]{32}$/);
  await page.screenshot({ path: join(artifacts, 'onion-sent.png'), fullPage: true });

  // Every request went to the onion; the upload carried a proof of work and only ciphertext.
  for (const r of requests) assert.equal(new URL(r.url()).origin, origin, `request to ${r.url()}`);
  const posts = requests.filter((r) => r.method() === 'POST');
  assert.equal(posts.length, 1);
  assert.equal(new URL(posts[0].url()).pathname, '/api/v1/submissions');
  assert.match(posts[0].headers()['resguardo-pow'] || '', /^[0-9a-f]{116}\.\d+$/, 'a proof of work came along');
  const body = posts[0].postDataBuffer();
  assert.ok(body[0] & 0x80, 'the upload is a binary OpenPGP message');
  assert.ok(!body.includes(Buffer.from(canary)), 'no canary in the upload');
  await context.close();

  // Exported, then opened offline with demo reviewer 1's key.
  const bundle = join(workDir, 'onion.tar');
  execFileSync(bin('resguardo-gateway'), ['export', '--data-dir', dataDir, '--out', bundle]);
  const out = join(workDir, 'opened');
  execFileSync(bin('resguardo-review'), [
    'open', bundle, '--key', join(repo, 'keys-example/demo-reviewer-1.sec.asc'),
    '--passphrase-file', join(repo, 'keys-example/demo-reviewer-1.passphrase'), '--out', out,
  ]);
  const report = JSON.parse(readFileSync(join(out, id, 'report.json'), 'utf8'));
  assert.ok(report.description.includes(canary), report.description);
  assert.equal(report.sealed_by, 'browser');
  assert.equal(report.language, 'es');
  assert.deepEqual(report.fields.what_happened, ['threat', 'legal_harassment']);
  assert.equal(report.fields.region, 'cusco');
  assert.equal(report.fields.place, 'Chumbivilcas');
  assert.deepEqual(readFileSync(join(out, id, 'files', '001-acta.pdf')), readFileSync(join(repo, 'tests', 'fixtures', 'acta.pdf')));
});

test('Chromium resolved no name itself and connected only to the Tor client', async (t) => {
  await browser.close(); // writes the end of the NetLog
  browser = undefined;
  const { types, events } = readNetLog(netLog);
  // Name resolution in Chromium's own resolver (system or DNS): none at all, not even for the
  // .onion name (the proxy got it as a name). These event types must exist, or this proves nothing.
  const lookups = ['HOST_RESOLVER_MANAGER_JOB', 'HOST_RESOLVER_SYSTEM_TASK', 'HOST_RESOLVER_DNS_TASK', 'DNS_TRANSACTION'];
  for (const name of lookups) assert.ok(name in types, `no ${name} in this Chromium's NetLog`);
  assert.deepEqual(events.filter((e) => lookups.includes(e.name)).map((e) => e.params), []);
  // Every TCP connection went to the SOCKS port; no UDP datagram left (Chromium's IPv6
  // reachability probe connect()s a UDP socket without sending anything).
  const connects = events.filter((e) => e.name === 'TCP_CONNECT_ATTEMPT' && e.phase === 1).map((e) => e.params.address);
  assert.ok(connects.length > 0, 'no TCP connection in the NetLog');
  assert.deepEqual([...new Set(connects)], [socks]);
  assert.deepEqual(events.filter((e) => e.name === 'UDP_BYTES_SENT' || e.name === 'UDP_SEND_ERROR'), []);
  // The onion name went to the proxy in SOCKS5 handshakes, which succeeded. (A socket pool
  // group reads "[pm/]<destination> <partition>": the destination is its first word.)
  const jobs = new Map();
  for (const e of events) {
    if (e.name === 'SOCKET_POOL_CONNECT_JOB_CREATED') {
      jobs.set(e.source.id, { to: e.params.group_id.replace(/^pm\//, '').split(' ')[0] });
    }
    if (e.name === 'SOCKS_CONNECT_JOB_CONNECT' && e.phase === 2 && jobs.has(e.source.id)) {
      jobs.get(e.source.id).error = e.params?.net_error ?? 0;
    }
  }
  const viaSocks = [...jobs.values()].filter((j) => 'error' in j);
  const toOnion = viaSocks.filter((j) => j.to === `http://${onion}`);
  assert.ok(toOnion.length > 0 && toOnion.every((j) => j.error === 0), JSON.stringify(viaSocks));
  assert.ok(events.some((e) => e.name === 'SOCKS5_CONNECT'), 'no SOCKS5 handshake');
  // Chromium's own requests elsewhere (Google's update, sign-in and autofill servers) went only
  // to the proxy too, and got nowhere: the private network has no exit.
  const others = viaSocks.filter((j) => j.to !== `http://${onion}`);
  assert.ok(others.every((j) => j.error !== 0), JSON.stringify(others));
  if (others.length > 0) t.diagnostic(`Chromium's own requests, stopped in Tor: ${[...new Set(others.map((j) => j.to))].join(' ')}`);
});
