// The registry's report (docs/registry-v1.md, "The report"): a registry filled through the
// review tool's own commands (`registry import`, `registry case`), its report written with
// `registry report`, then opened from disk in Chromium. It must load nothing but itself, show the
// 25 regions of the map with their counts, give every chart a text alternative and a data table
// with the same numbers, and fit a 360 px screen without scrolling sideways.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { repo, bin, launchBrowser, phone, shot, artifacts } from './harness.mjs';

const form = JSON.parse(readFileSync(join(repo, 'static/form.json'), 'utf8'));
const options = (id) => form.fields.find((f) => f.id === id).options;
const regions = options('region');
const types = options('what_happened');
const perpetrators = options('responsible');

let browser;
let report;
let expected;

/** `resguardo-review registry …` in `reports`; fails the test on a non-zero exit. */
function registry(reports, ...args) {
  const run = spawnSync(bin('resguardo-review'), ['registry', ...args, '--reports', reports], {
    encoding: 'utf8', env: { ...process.env, LANG: 'C' },
  });
  assert.equal(run.status, 0, `registry ${args.join(' ')}: ${run.stderr}${run.stdout}`);
  return run.stdout;
}

/** The UTC day `n` days before today, YYYY-MM-DD. */
const daysAgo = (n) => new Date(Date.now() - n * 86400000).toISOString().slice(0, 10);

before(async () => {
  assert.ok(existsSync(bin('resguardo-review')), 'cargo build --bins first');
  const work = mkdtempSync(join(tmpdir(), 'resguardo-report-'));
  const reports = join(work, 'reports');
  mkdirSync(reports);
  // Every region of the form (abroad too) gets 1 to 4 cases; types and perpetrators rotate;
  // days spread over the last two years; a few cases give no region.
  const rows = [];
  let n = 0;
  regions.forEach((region, r) => {
    for (let k = 0; k <= r % 4; k += 1) {
      rows.push({
        received_day: daysAgo((n * 37) % 650),
        region,
        types: [types[n % types.length], types[(n + 3) % types.length]],
        perpetrators: n % 5 === 0 ? [] : [perpetrators[n % perpetrators.length]],
        urgent: n % 6 === 0 ? 'si' : 'no',
      });
      n += 1;
    }
  });
  for (let k = 0; k < 3; k += 1) {
    rows.push({ received_day: daysAgo(5 + k), region: '', types: ['threat'], perpetrators: ['unknown'], urgent: 'no' });
  }
  const csv = join(work, 'earlier.csv');
  writeFileSync(csv, ['received_day,region,types,perpetrators,urgent',
    ...rows.map((c) => [c.received_day, c.region, c.types.join(';'), c.perpetrators.join(';'), c.urgent].join(','))].join('\n') + '\n');
  registry(reports, 'import', '--csv', csv);
  registry(reports, 'case', '1', '--status', 'evaluacion_riesgo');
  registry(reports, 'case', '2', '--status', 'medida_solicitada');
  registry(reports, 'case', '3', '--status', 'cerrado');

  // The same numbers, counted here from the rows (each imported case is its own incident).
  const count = (list) => list.reduce((m, k) => m.set(k, (m.get(k) || 0) + 1), new Map());
  expected = {
    regions: count(rows.map((c) => c.region || 'none')),
    types: count(rows.flatMap((c) => [...new Set(c.types)])),
    perpetrators: count(rows.flatMap((c) => c.perpetrators)),
    incidents: rows.length,
  };

  report = join(work, 'informe.html');
  registry(reports, 'report', '--out', report);
  assert.ok(existsSync(report), 'the report was written');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

/** The data table `data-<id>` as key → number. */
function tableOf(page, id) {
  return page.$$eval(`table#data-${id} tr[data-key]`, (trs) => Object.fromEntries(trs.map((tr) => {
    const cell = tr.querySelector('td');
    return [tr.dataset.key, Number(cell.dataset.seconds ?? cell.textContent.trim())];
  })));
}

test('the report opens from disk, loads nothing else and fits 360 px', async () => {
  const { context, page, errors } = await phone(browser);
  const requests = [];
  const consoleErrors = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  const url = pathToFileURL(report).href;
  await page.goto(url);
  await page.waitForLoadState('load');
  assert.deepEqual(requests, [url], 'the file itself and nothing else');
  assert.deepEqual(errors, []);
  assert.deepEqual(consoleErrors, [], 'no blocked loads, no violations of the page policy');
  assert.equal(await page.$$eval('script', (s) => s.length), 0, 'no script');
  const csp = await page.$eval('meta[http-equiv="Content-Security-Policy"]', (m) => m.content);
  assert.equal(csp, "default-src 'none'; style-src 'unsafe-inline'; img-src data:");

  // Readable at 360 px: nothing wider than the screen, the month chart in two rows.
  const widths = await page.evaluate(() => ({
    page: document.documentElement.scrollWidth,
    body: document.body.scrollWidth,
    screen: document.documentElement.clientWidth,
  }));
  assert.ok(widths.page <= widths.screen && widths.body <= widths.screen, JSON.stringify(widths));
  assert.ok(await page.isVisible('#chart-months-narrow'));
  assert.ok(!(await page.isVisible('#chart-months')));
  const smallest = await page.$$eval('body *:not(svg *)', (els) => Math.min(...els
    .filter((e) => e.offsetParent !== null && [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()))
    .map((e) => parseFloat(getComputedStyle(e).fontSize))));
  assert.ok(smallest >= 11, `smallest text ${smallest}px`);
  await shot(page, 'registry-report-360');
  await context.close();

  const wide = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const desk = await wide.newPage();
  await desk.goto(url);
  assert.ok(await desk.isVisible('#chart-months'));
  await desk.screenshot({ path: join(artifacts, 'registry-report-1280.png'), fullPage: true });
  await wide.close();
});

test('the map shows the 25 regions of Peru with their counts, abroad apart', async () => {
  const { context, page } = await phone(browser);
  await page.goto(pathToFileURL(report).href);
  const tiles = await page.$$eval('svg#map g.tile', (gs) => gs.map((g) => ({
    region: g.dataset.region,
    count: g.querySelector('text.count')?.textContent.trim(),
    code: g.querySelector('text.code')?.textContent.trim(),
    title: g.querySelector('title')?.textContent,
  })));
  assert.equal(tiles.length, 25);
  assert.deepEqual(tiles.map((t) => t.region).sort(), regions.filter((r) => r !== 'outside_peru').sort());
  for (const t of tiles) {
    assert.match(t.count, /^\d+$/, `${t.region} shows its count`);
    assert.equal(Number(t.count), expected.regions.get(t.region) || 0, t.region);
    assert.match(t.code, /^[A-Z]{3}$/);
    assert.ok(t.title?.includes(t.count), t.title);
  }
  const table = await tableOf(page, 'regions');
  assert.equal(table.outside_peru, expected.regions.get('outside_peru'));
  assert.equal(table.none, expected.regions.get('none'));
  for (const t of tiles) assert.equal(table[t.region], Number(t.count), `table and map agree on ${t.region}`);
  // Tumbes top left, Loreto on the top row to its right, Tacna on the bottom row.
  const box = async (r) => page.$eval(`g.tile[data-region="${r}"] rect`, (e) => {
    const b = e.getBBox();
    return { x: b.x, y: b.y };
  });
  const [tumbes, loreto, tacna, puno] = await Promise.all(['tumbes', 'loreto', 'tacna', 'puno'].map(box));
  assert.ok(tumbes.x === 0 && tumbes.y === 0);
  assert.ok(loreto.y === 0 && loreto.x > tumbes.x);
  assert.ok(tacna.y > puno.y && tacna.x >= puno.x);
  await context.close();
});

test('every chart has a text alternative and a table with the same numbers', async () => {
  const { context, page } = await phone(browser);
  await page.goto(pathToFileURL(report).href);
  const charts = await page.$$eval('svg.chart', (svgs) => svgs.map((s) => ({
    id: s.id,
    role: s.getAttribute('role'),
    label: s.getAttribute('aria-label') || '',
    title: s.querySelector(':scope > title')?.textContent || '',
  })));
  assert.deepEqual(charts.map((c) => c.id).sort(), [
    'chart-months', 'chart-months-narrow', 'chart-perpetrators', 'chart-statuses', 'chart-types',
    'chart-waits', 'map'].sort());
  for (const c of charts) {
    assert.equal(c.role, 'img', c.id);
    assert.ok(c.title.includes(' / '), `${c.id}: a Spanish / English title`);
    assert.ok(c.label.length > c.title.length, `${c.id}: its numbers in words`);
  }
  for (const id of ['months', 'types', 'perpetrators', 'regions', 'waits', 'statuses']) {
    assert.ok(Object.keys(await tableOf(page, id)).length > 0, `data table ${id}`);
  }
  const months = await tableOf(page, 'months');
  assert.equal(Object.keys(months).length, 24);
  assert.equal(Object.values(months).reduce((a, b) => a + b, 0), expected.incidents, 'all within two years');
  assert.equal(await page.textContent('#total-incidents'), String(expected.incidents));
  const typesTable = await tableOf(page, 'types');
  for (const t of types) assert.equal(typesTable[t], expected.types.get(t) || 0, t);
  const perpetratorTable = await tableOf(page, 'perpetrators');
  for (const p of perpetrators) assert.equal(perpetratorTable[p], expected.perpetrators.get(p) || 0, p);
  // Each bar's number is written beside it, and the text alternative says the same.
  const typeLabel = charts.find((c) => c.id === 'chart-types').label;
  assert.ok(typeLabel.includes(`Amenaza / Threat: ${typesTable.threat}`), typeLabel);
  const statuses = await tableOf(page, 'statuses');
  assert.equal(statuses.evaluacion_riesgo, 1);
  assert.equal(statuses.medida_solicitada, 1);
  assert.equal(statuses.recibido, expected.incidents - 3);
  assert.equal(statuses.cerrado, undefined, 'closed cases are not open');
  await context.close();
});
