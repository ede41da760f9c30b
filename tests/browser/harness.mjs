// Shared by the browser tests: real gateways on loopback, Debian's Chromium, and the review tool.

import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, statSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const bin = (name) => join(process.env.CARGO_TARGET_DIR || join(repo, 'target'), 'debug', name);
export const fixtures = join(repo, 'tests', 'fixtures');
export const artifacts = join(repo, 'test-artifacts');
export const languages = Object.fromEntries(
  readdirSync(join(repo, 'static/i18n')).filter((f) => f.endsWith('.json'))
    .map((f) => [f.replace(/\.json$/, ''), JSON.parse(readFileSync(join(repo, 'static/i18n', f), 'utf8'))]),
);
export const es = languages.es;
export const en = languages.en;
export const errorCodes = JSON.parse(readFileSync(join(repo, 'tests/vectors/error-codes.json'), 'utf8'));

mkdirSync(artifacts, { recursive: true });

/**
 * Starts a gateway on a free loopback port with the demo keys. `extra` is appended to the
 * config (TOML), `top` goes before its first table (e.g. `key_list = "…"`); `tls: true` serves HTTPS with the gateway's self-signed certificate (browsers
 * need `ignoreHTTPSErrors`, the CLIs `--insecure-self-signed`). Resolves to { url, origin,
 * dataDir, workDir, proc, logs(), stop() }.
 */
export function startGateway(extra = '', { tls = false, top = '' } = {}) {
  const workDir = mkdtempSync(join(tmpdir(), 'resguardo-browser-'));
  const dataDir = join(workDir, 'data');
  const config = join(workDir, 'gateway.toml');
  const pow = extra.includes('[proof_of_work]') ? '' : '[proof_of_work]\nenabled = true\nbase_difficulty = 14\n';
  const form = extra.includes('[form]') ? '' : '[form]\ntoken_min_age_secs = 1\n';
  writeFileSync(config, `listen = "127.0.0.1:0"
data_dir = "${dataDir}"
reviewer_certs = ["${join(repo, 'keys-example/demo-reviewer-1.pub.asc')}", "${join(repo, 'keys-example/demo-reviewer-2.pub.asc')}"]
${top}
[tls]
mode = "${tls ? 'self-signed' : 'plain-http'}"
${pow}
${form}
${extra}
`);
  const proc = spawn(bin('resguardo-gateway'), ['serve', '--config', config], {
    env: { ...process.env, RESGUARDO_LOG: 'trace' },
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${output}`)), 30000);
    let started = false;
    const onData = (chunk) => {
      output += chunk.toString();
      const match = output.match(/Listening on (https?:\/\/[^\s]+)/);
      if (match && !started) {
        started = true;
        clearTimeout(timer);
        const url = match[1];
        resolve({
          url,
          origin: new URL(url).origin,
          dataDir,
          workDir,
          proc,
          logs: () => output,
          stop: () => proc.kill('SIGTERM'),
        });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => { if (!started) reject(new Error(`gateway exited ${code}:\n${output}`)); });
  });
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A phone-sized page (360 px wide). */
export async function phone(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 360, height: 780 }, deviceScaleFactor: 2, ...options });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return { context, page, errors };
}

export const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

/** Exports everything new and opens it with demo reviewer 1; returns the output directory. */
export function exportAndOpen(gateway, label) {
  const bundle = join(gateway.workDir, `${label}.tar`);
  execFileSync(bin('resguardo-gateway'), ['export', '--data-dir', gateway.dataDir, '--out', bundle]);
  const out = join(gateway.workDir, `opened-${label}`);
  execFileSync(bin('resguardo-review'), [
    'open', bundle, '--key', join(repo, 'keys-example/demo-reviewer-1.sec.asc'),
    '--passphrase-file', join(repo, 'keys-example/demo-reviewer-1.passphrase'), '--out', out,
  ]);
  return { out, manifest: JSON.parse(execFileSync('tar', ['-xOf', bundle, 'bundle.json']).toString()) };
}

export function allFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    const info = statSync(path);
    return info.isDirectory() ? allFiles(path) : info.isFile() ? [path] : [];
  });
}

/** The smallest valid report: what happened, and the account. */
export async function fillMinimal(page, description = 'Nos amenazaron en la asamblea.') {
  await page.check('input[name="what_happened"][value="threat"]');
  await page.fill('#f-description', description);
}

/** Waits until the page's script has taken over the form. */
export const ready = (page) => page.waitForSelector('#mode-browser:not([hidden])', { timeout: 30000 });

/** The demo keys of keys-example/ (insecure, for tests and `scripts/run` only). */
export const demoCourier = (ext) => join(repo, `keys-example/demo-courier-1.${ext}`);
export const demoReviewer = (n, ext) => join(repo, `keys-example/demo-reviewer-${n}.${ext}`);

/** Runs one of the project's programs in the C locale; asserts that it succeeded. */
export function runTool(program, args) {
  const o = spawnSync(bin(program), args, { encoding: 'utf8', env: { ...process.env, LANG: 'C', LC_ALL: 'C' } });
  if (o.status !== 0) throw new Error(`${program} ${args[0]} exited ${o.status}: ${o.stdout}${o.stderr}`);
  return o;
}

/**
 * The team's side of a conversation with `gateway`, working in `work`: the demo courier fetches
 * and pushes, demo reviewer 1 opens (into one folder, where threads build) and answers for the
 * reporter and both reviewers.
 */
export function demoTeam(gateway, work) {
  const tls = gateway.url.startsWith('https:') ? ['--insecure-self-signed'] : [];
  const courierArgs = () => ['--server', gateway.url, ...tls, '--courier-key', demoCourier('sec.asc'), '--passphrase-file', demoCourier('passphrase')];
  const out = join(work, 'reports');
  return {
    /** Fetches what is new and opens it; returns the reports folder. */
    fetchAndOpen(label) {
      const bundle = join(work, `${label}.tar`);
      runTool('resguardo-review', ['fetch', ...courierArgs(), '--out', bundle]);
      runTool('resguardo-review', ['open', bundle, '--key', demoReviewer(1, 'sec.asc'), '--passphrase-file', demoReviewer(1, 'passphrase'), '--out', out]);
      return out;
    },
    /** Writes an answer (text in file `message`) to the report folder `report` into `outbox`. */
    reply(report, message, outbox, attach) {
      return runTool('resguardo-review', ['reply', '--report', report, '--message', message,
        ...(attach ? ['--attach', attach] : []),
        '--key', demoReviewer(1, 'sec.asc'), '--passphrase-file', demoReviewer(1, 'passphrase'),
        '--team', demoReviewer(2, 'pub.asc'), '--out', outbox]);
    },
    push: (outbox) => runTool('resguardo-review', ['push', ...courierArgs(), outbox]),
  };
}
