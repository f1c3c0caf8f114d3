// The live page in headless Chromium: it loads, its charts draw, and records pushed after load appear.
import http from 'node:http';
import { once } from 'node:events';
import t from 'tap';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Monitor, type WorkerInfo } from '../../coordinator/monitor.ts';
import type { LogRecord } from '../../shared/train/log.ts';
import { findBrowser, isCi } from '../browser.ts';

// CHROMIUM, else the usual places (test/browser.ts); CI installs Debian's chromium. Without one: skipped, under CI failed.
const BROWSER = await findBrowser();
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const CANVASES = ['chart-loss', 'chart-throughput', 'chart-overhead', 'chart-breakdown', 'chart-phases'];

const worker = (id: string, i: number): WorkerInfo => ({ id, backend: 'tensorflow', device: 'cpu', host: `host${i}`, pid: 100 + i, joinedAt: Date.now() - 60_000 });

function step(n: number, ids: string[]): LogRecord {
  const workers = Object.fromEntries(ids.map((id, i) => [id, { compute: 50 + 10 * i, spectral: 4, encode: 2, transfer: 8, wait: 10 * (ids.length - 1 - i), bytes_sent: 4096, bytes_received: 4096 }]));
  return {
    kind: 'step', step: n, loss: 4 * Math.exp(-n / 20) + 1, lr: 1e-3, alpha: 0.5, ms: 100 + (n % 3), tokens: 1024, workers: ids.length, grad_norm: 1,
    phases: { coordinator: { step: 100 + (n % 3), reduce: 2, spectral: 5, optimizer: 4, broadcast: 3, encode: 4, wait: 10 }, workers },
  };
}

/**
 * Share of a canvas's pixels that are not transparent (a drawn chart has axes, grid lines and data), or, given
 * `rgb`, of the plot area's pixels that are opaque and within 8 of that colour (data drawn in it, not an empty frame).
 */
const inkShare = (page: Page, id: string, rgb?: [number, number, number]) =>
  page.evaluate(([id, rgb]) => {
    const c = document.getElementById(id) as HTMLCanvasElement;
    if (!c || c.width === 0 || c.height === 0) return 0;
    // With a colour, look only inside the plot area: the legend's boxes carry the same colours.
    const chart = (window as any).Chart.getChart(c);
    const r = chart.currentDevicePixelRatio;
    const a = rgb ? chart.chartArea : { left: 0, top: 0, width: c.width / r, height: c.height / r };
    const [x, y, w, h] = [a.left, a.top, a.width, a.height].map((v) => Math.round(v * r));
    const px = c.getContext('2d')!.getImageData(x, y, w, h).data;
    let ink = 0;
    for (let i = 0; i < px.length; i += 4) {
      if (rgb ? px[i + 3] === 255 && Math.abs(px[i] - rgb[0]) <= 8 && Math.abs(px[i + 1] - rgb[1]) <= 8 && Math.abs(px[i + 2] - rgb[2]) <= 8 : px[i + 3] > 0) ink++;
    }
    return ink / (w * h);
  }, [id, rgb] as const);

t.test('live page in headless Chromium', { skip: !BROWSER.found && !isCi() ? BROWSER.reason : false }, async (t) => {
  if (!BROWSER.found) {
    t.fail(`CI=${process.env.CI}: the page test must run: ${BROWSER.reason}`);
    return;
  }
  const ids = ['w1', 'w2'];
  const monitor = new Monitor({ title: 'page test run', config: { preset: 'test', max_iters: 100, spectral: 'global' } });
  monitor.record({ kind: 'start', step: 0, backend: 'tensorflow', device: 'cpu', params: 100_000, resumed: false });
  monitor.setWorkers(ids.map(worker));
  for (let n = 1; n <= 30; n++) monitor.record(step(n, ids));
  monitor.record({ kind: 'eval', step: 15, train_loss: 2.1, val_loss: 2.3 });
  monitor.record({ kind: 'eval', step: 30, train_loss: 1.6, val_loss: 1.8 });
  monitor.countError('E_TOKEN');

  const server = http.createServer((req, res) => monitor.handle(req, res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  let browser: Browser | undefined;
  t.teardown(async () => {
    await browser?.close();
    monitor.close();
    server.closeAllConnections();
    server.close();
  });

  browser = await chromium.launch({ executablePath: BROWSER.path, args: CHROMIUM_ARGS, timeout: 30_000 });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console error: ${m.text()}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  page.setDefaultTimeout(10_000);

  await page.goto(base);
  await page.waitForFunction(() => (window as any).smiState?.loaded && document.getElementById('t-step')?.textContent === '30');

  await t.test('it loads the state', async (t) => {
    t.equal(await page.title(), 'step 30 · page test run · live');
    t.equal(await page.textContent('#title'), 'page test run');
    t.equal(await page.textContent('#status'), 'live');
    t.equal(await page.textContent('#t-val'), '1.8000');
    t.equal(await page.textContent('#t-workers'), '2');
    t.equal(await page.textContent('#t-errors'), '1');
    t.match(await page.textContent('#t-overhead'), /^\d+\.\d %$/);
    t.same(await page.$$eval('#workers tr td:first-child', (tds) => tds.map((td) => td.textContent)), ['w1', 'w2']);
    t.same(await page.$$eval('#errors tr.hot td', (tds) => tds.map((td) => td.textContent)), ['E_TOKEN', '1']);
  });

  await t.test('the charts draw', async (t) => {
    for (const id of CANVASES) {
      const share = await inkShare(page, id);
      t.ok(share > 0.01, `${id} has ink (${(share * 100).toFixed(1)} % of pixels)`);
    }
    const drawn: [string, [number, number, number], number, string][] = [
      ['chart-loss', [225, 87, 89], 0.001, 'the val-loss points (red)'],
      ['chart-phases', [78, 121, 167], 0.05, 'the compute bars (blue)'],
      ['chart-breakdown', [160, 203, 232], 0.01, "the coordinator's in-flight bar (light blue)"],
    ];
    for (const [id, rgb, min, what] of drawn) {
      const share = await inkShare(page, id, rgb);
      t.ok(share > min, `${what}: ${(share * 100).toFixed(2)} % of the plot area`);
    }
    const lengths = await page.evaluate(() => {
      const c = (window as any).smiCharts;
      return { loss: c.loss.data.datasets[0].data.length, evals: c.loss.data.datasets[2].data.length, breakdown: c.breakdown.data.labels, phases: c.phases.data.labels.length };
    });
    t.same(lengths, { loss: 30, evals: 2, breakdown: ['coordinator', 'w1', 'w2'], phases: 30 });
  });

  await t.test('records pushed after load appear', async (t) => {
    monitor.record(step(31, ids));
    await page.waitForFunction(() => document.getElementById('t-step')?.textContent === '31');
    t.equal(await page.evaluate(() => (window as any).smiCharts.loss.data.datasets[0].data.length), 31, 'the loss curve grew');
    t.equal(await page.evaluate(() => (window as any).smiCharts.phases.data.labels.at(-1)), 31, 'the per-step phase chart shows it');

    monitor.record({ kind: 'eval', step: 31, train_loss: 1.5, val_loss: 1.7 });
    monitor.setWorkers([...ids, 'w3'].map(worker));
    monitor.countError('E_SHAPE');
    await page.waitForFunction(() => document.getElementById('t-val')?.textContent === '1.7000');
    await page.waitForFunction(() => document.querySelectorAll('#workers tr').length === 3);
    await page.waitForFunction(() => document.getElementById('t-errors')?.textContent === '2');
    t.equal(await page.evaluate(() => (window as any).smiCharts.loss.data.datasets[2].data.length), 3, 'the val curve grew');

    monitor.record({ kind: 'done', step: 31, ms: 5000, tokens_per_sec: 6000, train_loss: 1.5, val_loss: 1.7 });
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'finished');
    t.pass('done shows as finished');
  });

  await t.test('the Processes table: bytes (and CPU) per process in the last step, then the owner plan under --update owners', async (t) => {
    const rows = () => page.$$eval('#processes tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    t.same(await rows(), [['coordinator', '–', '–', '8.0 KiB', '8.0 KiB', '–'], ['w1', '–', '–', '4.0 KiB', '4.0 KiB', '–'], ['w2', '–', '–', '4.0 KiB', '4.0 KiB', '–']], "the star: the coordinator's links from both ends (no CPU in these records)");
    monitor.record({
      kind: 'step', step: 32, loss: 1, lr: 1e-3, alpha: 0.5, ms: 100, tokens: 1024, workers: 3, grad_norm: 1,
      owners_step: { w1: { phases: { compute: 50 }, sent: 3072, received: 2048, cpu_ms: 47.2 }, w2: { phases: { compute: 40 }, sent: 1024, received: 2048 }, w3: { phases: { compute: 45 }, sent: 1024, received: 1024 } },
      coordinator_bytes: { sent: 512, received: 256 }, coordinator_cpu_ms: 3.5,
      owners_plan: { version: 2, owners: [{ worker: 'w1', tensors: 8, params: 60_000 }, { worker: 'w2', tensors: 7, params: 40_000 }], compute_only: ['w3'] },
    } as LogRecord);
    await page.waitForFunction(() => document.querySelector('#processes tr td')?.textContent === 'coordinator' && document.querySelectorAll('#processes tr').length === 4 && document.getElementById('processes-note')?.textContent?.includes('plan 2'));
    t.same(await rows(), [
      ['coordinator', '–', '–', '512 B', '256 B', '3.5'],
      ['w1', '8', '60.0k', '3.0 KiB', '2.0 KiB', '47.2'],
      ['w2', '7', '40.0k', '1.0 KiB', '2.0 KiB', '–'],
      ['w3', '0', '0', '1.0 KiB', '1.0 KiB', '–'],
    ], 'each worker: what it owns, its own bytes and its CPU where it reported one; a compute-only worker owns nothing');
  });

  t.same(problems, [], 'no page errors, console errors or failed requests');
});
