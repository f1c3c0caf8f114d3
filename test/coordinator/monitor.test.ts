// The live monitor over a real HTTP server on port 0: /api/state, /metrics as Prometheus text, SSE, static files, 404.
import http from 'node:http';
import { once } from 'node:events';
import t from 'tap';
import { Monitor, type MonitorState, type WorkerInfo } from '../../coordinator/monitor.ts';
import type { LogRecord } from '../../shared/train/log.ts';

const WORKERS: WorkerInfo[] = [
  { id: 'w1', backend: 'tensorflow', device: 'cpu', host: 'a', pid: 11, joinedAt: 1_700_000_000_000 },
  { id: 'w2', backend: 'wasm', device: 'wasm-simd', host: 'b', pid: 12, joinedAt: 1_700_000_001_000 },
];

/** A step as the coordinator logs it: two workers, w2 the slower; compute 60 and 80 ms of a 100 ms step. */
function step(n: number): LogRecord {
  const w = (compute: number, wait: number) => ({ compute, spectral: 5, encode: 2, transfer: 10, wait, bytes_sent: 1000, bytes_received: 1500 });
  return {
    kind: 'step', step: n, loss: 4 - n / 100, lr: 1e-3, alpha: 0.5, ms: 100, tokens: 2048, workers: 2, grad_norm: 1.25, compute_ms: 80,
    offsets: [1, 2, 3],
    phases: { coordinator: { step: 100, reduce: 1, spectral: 3, optimizer: 4, broadcast: 2, encode: 6, wait: 20 }, workers: { w1: w(60, 20), w2: w(80, 0) } },
  };
}

async function serve(monitor: Monitor) {
  const server = http.createServer((req, res) => monitor.handle(req, res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    base,
    close: () => {
      monitor.close();
      server.closeAllConnections();
      server.close();
    },
  };
}

interface Sample { name: string; labels: Record<string, string>; value: number }

/**
 * Parses the Prometheus text exposition format (0.0.4) strictly enough to catch a broken body: every line is
 * a comment, blank, or `name{label="value",…} number`; every sample's family has a # TYPE line before it.
 */
function parseProm(body: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const sampleRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?(?:[0-9.]+(?:e[+-]?\d+)?|NaN|\+Inf|-Inf))(?: \d+)?$/;
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1], type[2]);
      continue;
    }
    const m = sampleRe.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${JSON.stringify(line)}`);
    const family = m[1].replace(/_(bucket|sum|count)$/, '');
    if (!types.has(m[1]) && !types.has(family)) throw new Error(`sample before its # TYPE: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(labelRe)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { types, samples };
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

async function metrics(base: string) {
  const res = await fetch(`${base}/metrics`);
  return { res, ...parseProm(await res.text()) };
}

/** Reads Server-Sent Events from `url` until `until` returns true for one, or the stream ends; resolves with all events read. */
function readEvents(url: string, until: (ev: { event: string; data: any }) => boolean, timeoutMs = 5000) {
  let connected!: () => void;
  const ready = new Promise<void>((r) => (connected = r));
  const done = new Promise<{ event: string; data: any }[]>((resolve, reject) => {
    const events: { event: string; data: any }[] = [];
    const req = http.get(url, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
      connected();
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const fields = Object.fromEntries(block.split('\n').filter((l) => !l.startsWith(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trimStart()]));
          if (!fields.event) continue;
          const ev = { event: fields.event, data: JSON.parse(fields.data) };
          events.push(ev);
          if (until(ev)) {
            clearTimeout(timer);
            req.destroy();
            resolve(events);
          }
        }
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve(events);
      });
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no matching event in ${timeoutMs} ms; got ${JSON.stringify(events)}`));
    }, timeoutMs);
  });
  return { ready, done };
}

t.test('monitor: state, metrics, events, files', async (t) => {
  const monitor = new Monitor({ title: 'unit run', config: { preset: 'test', max_iters: 100 } });
  const srv = await serve(monitor);
  t.teardown(srv.close);

  monitor.record({ kind: 'start', step: 0, backend: 'tensorflow', device: 'cpu', params: 1234, resumed: false });
  monitor.setWorkers(WORKERS);
  for (let n = 1; n <= 10; n++) monitor.record(step(n));
  monitor.record({ kind: 'eval', step: 10, train_loss: 3.9, val_loss: 4.1 });
  monitor.countError('E_TOKEN');
  monitor.countError('E_SHAPE');
  monitor.countError('E_TOKEN');

  await t.test('/api/state', async (t) => {
    const res = await fetch(`${srv.base}/api/state`);
    t.match(res.headers.get('content-type'), /^application\/json/);
    const s = (await res.json()) as MonitorState;
    t.equal(s.title, 'unit run');
    t.same(s.config, { preset: 'test', max_iters: 100 });
    t.equal(s.start?.params, 1234);
    t.same(s.workers.map((w) => w.id), ['w1', 'w2']);
    t.same(s.steps.map((e) => e.record.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const last = s.steps[9];
    t.same(Object.keys((last.record.phases as { workers: object }).workers), ['w1', 'w2'], 'phases kept per worker');
    t.notOk('offsets' in last.record, 'batch offsets are not kept');
    t.equal(last.compute_ms, 80, 'the slowest worker');
    t.equal(last.overhead, 1 - 80 / 100, 'overhead = 1 − compute/step');
    t.equal(last.tokens_per_sec, 20480);
    t.same(s.evals, [{ kind: 'eval', step: 10, train_loss: 3.9, val_loss: 4.1 }]);
    t.same(s.totals, { steps: 10, tokens: 20480, bytes_sent: 20 * 1000, bytes_received: 20 * 1500, errors: 3 });
    t.equal(s.errors.E_TOKEN, 2);
    t.equal(s.errors.E_SHAPE, 1);
    t.equal(s.errors.E_VERSION, 0, 'every known code is listed');
    t.ok(s.seq > 0);
    const few = (await (await fetch(`${srv.base}/api/state?steps=3`)).json()) as MonitorState;
    t.same(few.steps.map((e) => e.record.step), [8, 9, 10], '?steps=N keeps the newest N');
  });

  await t.test('/metrics is Prometheus text and the counters move', async (t) => {
    const a = await metrics(srv.base);
    t.match(a.res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    const types = Object.fromEntries(a.types);
    t.match(types, {
      smi_step: 'gauge', smi_train_loss: 'gauge', smi_val_loss: 'gauge', smi_step_loss: 'gauge', smi_tokens_per_second: 'gauge',
      smi_phase_seconds: 'histogram', smi_live_workers: 'gauge', smi_bytes_total: 'counter', smi_protocol_errors_total: 'counter', smi_steps_total: 'counter',
    });
    t.equal(value(a.samples, 'smi_step'), 10);
    t.equal(value(a.samples, 'smi_steps_total'), 10);
    t.equal(value(a.samples, 'smi_step_loss'), 4 - 10 / 100);
    t.equal(value(a.samples, 'smi_train_loss'), 3.9);
    t.equal(value(a.samples, 'smi_val_loss'), 4.1);
    t.equal(value(a.samples, 'smi_tokens_per_second'), 20480);
    t.equal(value(a.samples, 'smi_live_workers'), 2);
    t.equal(value(a.samples, 'smi_bytes_total', { direction: 'sent' }), 20_000);
    t.equal(value(a.samples, 'smi_bytes_total', { direction: 'received' }), 30_000);
    t.equal(value(a.samples, 'smi_protocol_errors_total', { code: 'E_TOKEN' }), 2);
    t.equal(value(a.samples, 'smi_protocol_errors_total', { code: 'E_VERSION' }), 0, 'zero series exist before the first error');
    t.equal(value(a.samples, 'smi_phase_seconds_count', { phase: 'compute', process: 'w2' }), 10);
    t.ok(Math.abs(value(a.samples, 'smi_phase_seconds_sum', { phase: 'compute', process: 'w2' })! - 0.8) < 1e-9, '_sum: 10 × 80 ms in seconds');
    t.equal(value(a.samples, 'smi_phase_seconds_count', { phase: 'step', process: 'coordinator' }), 10);
    t.equal(value(a.samples, 'smi_phase_seconds_bucket', { phase: 'compute', process: 'w2', le: '0.1' }), 10, '80 ms ≤ 0.1 s');
    t.equal(value(a.samples, 'smi_phase_seconds_bucket', { phase: 'compute', process: 'w2', le: '0.05' }), 0);
    t.notOk(a.samples.some((s) => s.name.startsWith('smi_phase_seconds') && s.labels.phase?.startsWith('bytes_')), 'bytes are not a phase');

    for (let n = 11; n <= 15; n++) monitor.record(step(n));
    monitor.countError('E_SHAPE');
    monitor.setWorkers(WORKERS.slice(0, 1));
    const b = await metrics(srv.base);
    t.equal(value(b.samples, 'smi_steps_total'), 15, 'smi_steps_total increased');
    t.equal(value(b.samples, 'smi_phase_seconds_count', { phase: 'compute', process: 'w2' }), 15, 'histogram _count grew');
    t.equal(value(b.samples, 'smi_bytes_total', { direction: 'sent' }), 30_000);
    t.equal(value(b.samples, 'smi_protocol_errors_total', { code: 'E_SHAPE' }), 2);
    t.equal(value(b.samples, 'smi_live_workers'), 1);
  });

  await t.test('/events delivers new records and worker changes as they land', async (t) => {
    const before = (await (await fetch(`${srv.base}/api/state`)).json()) as MonitorState;
    const sse = readEvents(`${srv.base}/events`, (ev) => ev.event === 'workers');
    await sse.ready;
    monitor.record(step(16));
    monitor.record({ kind: 'eval', step: 16, train_loss: 3.8, val_loss: 4.0 });
    monitor.setWorkers(WORKERS);
    const events = await sse.done;
    t.same(events.map((e) => e.event), ['step', 'eval', 'workers']);
    t.equal(events[0].data.entry.record.step, 16);
    t.equal(events[0].data.entry.overhead, 1 - 80 / 100);
    t.same(events[1].data.record, { kind: 'eval', step: 16, train_loss: 3.8, val_loss: 4.0 });
    t.same(events[2].data.workers.map((w: WorkerInfo) => w.id), ['w1', 'w2']);
    t.same(events.map((e) => e.data.seq), [before.seq + 1, before.seq + 2, before.seq + 3], 'seq continues the state\'s');
  });

  await t.test('files, unknown paths and methods', async (t) => {
    const page = await fetch(`${srv.base}/`);
    t.match(page.headers.get('content-type'), /^text\/html/);
    const html = await page.text();
    t.match(html, /<canvas id="chart-loss"/);
    t.match(html, /src="\/vendor\/chart\.umd\.js"/);
    const app = await fetch(`${srv.base}/app.js`);
    t.match(app.headers.get('content-type'), /^text\/javascript/);
    t.match(await app.text(), /EventSource\('\/events'\)/);
    const vendor = await fetch(`${srv.base}/vendor/chart.umd.js`);
    t.equal(vendor.status, 200);
    t.match(vendor.headers.get('content-type'), /^text\/javascript/);
    const js = await vendor.text();
    t.ok(js.length > 100_000, 'the whole UMD build');
    t.match(js.slice(0, 300), /Chart\.js v4/);
    for (const path of ['/nope', '/api', '/vendor/other.js', '/../package.json', '/page/index.html']) {
      const res = await fetch(`${srv.base}${path}`);
      t.equal(res.status, 404, path);
      await res.arrayBuffer();
    }
    const post = await fetch(`${srv.base}/api/state`, { method: 'POST' });
    t.equal(post.status, 405);
    t.equal(post.headers.get('allow'), 'GET, HEAD');
    await post.arrayBuffer();
  });
});

t.test('monitor: bounded history, a resumed start, close', async (t) => {
  const monitor = new Monitor({ historyLimit: 5 });
  const srv = await serve(monitor);
  t.teardown(srv.close);
  for (let n = 1; n <= 12; n++) monitor.record(step(n));
  for (const n of [4, 8, 12]) monitor.record({ kind: 'eval', step: n, train_loss: 1, val_loss: 2 });
  let s = monitor.state();
  t.same(s.steps.map((e) => e.record.step), [8, 9, 10, 11, 12], 'the last historyLimit steps');
  t.equal(s.totals.steps, 12, 'totals count every step');

  monitor.record({ kind: 'start', step: 10, backend: 'wasm', device: 'cpu', params: 1, resumed: true });
  s = monitor.state();
  t.same(s.steps.map((e) => e.record.step), [8, 9, 10], 'steps after the checkpoint are dropped, as in log.jsonl');
  t.same(s.evals.map((e) => e.step), [4, 8]);

  const local = monitor.state();
  monitor.record({ kind: 'step', step: 11, loss: 1, lr: 1, alpha: 0, ms: 50, tokens: 100, workers: 1, grad_norm: 1 });
  t.equal(monitor.state().steps.at(-1)?.overhead, null, 'no compute time → no overhead');
  t.equal(local.steps.length, 3);

  t.doesNotThrow(() => monitor.record({ kind: 'checkpoint', step: 11 } as unknown as LogRecord), 'an unknown kind is ignored, not thrown into the loop');
  const bad = step(12) as Extract<LogRecord, { kind: 'step' }>;
  (bad.phases as unknown as { workers: Record<string, Record<string, number>> }).workers.w1!.bytes_sent = -5;
  t.doesNotThrow(() => monitor.record({ ...bad, tokens: Number.NaN }), 'bad numbers do not reach prom-client');

  const sse = readEvents(`${srv.base}/events`, () => false);
  await sse.ready;
  monitor.close();
  t.same(await sse.done, [], 'close() ends SSE streams');
  const again = await fetch(`${srv.base}/events`);
  t.equal(again.status, 204, 'after close, /events says: stop reconnecting');
  const state = await fetch(`${srv.base}/api/state`);
  t.equal(state.status, 200, 'plain requests still answer');
  await state.arrayBuffer();
});

t.test('two monitors in one process have their own registries', async (t) => {
  const a = new Monitor({});
  const b = new Monitor({});
  a.record(step(1));
  const ma = parseProm(await (await serveOnce(a, '/metrics')).text());
  const mb = parseProm(await (await serveOnce(b, '/metrics')).text());
  t.equal(value(ma.samples, 'smi_steps_total'), 1);
  t.equal(value(mb.samples, 'smi_steps_total'), 0);
  a.close();
  b.close();
});

async function serveOnce(monitor: Monitor, path: string) {
  const srv = await serve(monitor);
  try {
    const res = await fetch(`${srv.base}${path}`);
    const body = await res.text();
    return new Response(body, { status: res.status, headers: res.headers });
  } finally {
    srv.close();
  }
}

t.test('--update owners: a step\'s owners_step reaches /metrics and the page as each worker\'s phases and bytes', async (t) => {
  const monitor = new Monitor({});
  const owners = (n: number) => ({
    kind: 'step', step: n, loss: 1, lr: 1, alpha: 0, ms: 100, tokens: 64, workers: 2, grad_norm: 1, compute_ms: 60,
    owners_step: { wa: { phases: { compute: 60, reduce_scatter: 5, reduce: 4, update: 12, all_gather_send: 3 }, sent: 1000, received: 1500 }, wb: { phases: { compute: 50, update: 10 }, sent: 2000, received: 2500 } },
  }) as unknown as LogRecord;
  for (let n = 1; n <= 3; n++) monitor.record(owners(n));
  const m = parseProm(await (await serveOnce(monitor, '/metrics')).text());
  t.equal(value(m.samples, 'smi_bytes_total', { direction: 'sent' }), 3 * 3000, 'every worker\'s own bytes sent, summed');
  t.equal(value(m.samples, 'smi_bytes_total', { direction: 'received' }), 3 * 4000);
  t.equal(value(m.samples, 'smi_phase_seconds_count', { phase: 'update', process: 'wa' }), 3, 'the owner\'s update is a phase of its process');
  t.ok(Math.abs(value(m.samples, 'smi_phase_seconds_sum', { phase: 'reduce_scatter', process: 'wa' })! - 0.015) < 1e-9);
  const state = (await (await serveOnce(monitor, '/api/state')).json()) as { steps: { record: { phases?: { workers: Record<string, Record<string, number>> } }; overhead: number | null }[] };
  t.same(state.steps.at(-1)!.record.phases!.workers.wb, { compute: 50, update: 10, bytes_sent: 2000, bytes_received: 2500 }, 'the page reads them in the star\'s shape');
  t.ok(Math.abs(state.steps.at(-1)!.overhead! - 0.4) < 1e-9, 'overhead: 1 − the slowest compute / the step');
  monitor.close();
});

t.test('bytes per process per step and the owner plan: /metrics gauges and counters, /api/state; a new plan replaces the old one whole', async (t) => {
  const monitor = new Monitor({});
  const plan = (version: number, owners: [string, number, number][], computeOnly: string[] = []) => ({ version, owners: owners.map(([worker, tensors, params]) => ({ worker, tensors, params })), compute_only: computeOnly });
  const owners = (n: number, extra: object = {}) => ({
    kind: 'step', step: n, loss: 1, lr: 1, alpha: 0, ms: 100, tokens: 64, workers: 2, grad_norm: 1, compute_ms: 60,
    owners_step: { wa: { phases: { compute: 60 }, sent: 1000 * n, received: 1500, cpu_ms: 90 + n }, wb: { phases: { compute: 50 }, sent: 2000, received: 2500 } },
    coordinator_bytes: { sent: 300, received: 400 }, coordinator_cpu_ms: 4.5,
    ...extra,
  }) as unknown as LogRecord;
  monitor.record(owners(1, { owners_plan: plan(1, [['wa', 8, 600], ['wb', 7, 500]]) }));
  monitor.record(owners(2));
  let m = parseProm(await (await serveOnce(monitor, '/metrics')).text());
  t.equal(m.types.get('smi_process_step_bytes'), 'gauge');
  t.equal(m.types.get('smi_process_bytes_total'), 'counter');
  t.equal(value(m.samples, 'smi_process_step_bytes', { process: 'wa', direction: 'sent' }), 2000, "a worker's bytes in the last step, its own count");
  t.equal(value(m.samples, 'smi_process_step_bytes', { process: 'wb', direction: 'received' }), 2500);
  t.equal(value(m.samples, 'smi_process_step_bytes', { process: 'coordinator', direction: 'sent' }), 300, "the coordinator's, on its control links");
  t.equal(value(m.samples, 'smi_process_bytes_total', { process: 'wa', direction: 'sent' }), 3000, 'summed over the steps');
  t.equal(m.types.get('smi_process_step_cpu_seconds'), 'gauge');
  t.equal(value(m.samples, 'smi_process_step_cpu_seconds', { process: 'wa' }), 0.092, "a worker's CPU in the last step, as it reported it");
  t.equal(value(m.samples, 'smi_process_step_cpu_seconds', { process: 'coordinator' }), 0.0045, "the coordinator's");
  t.notOk(m.samples.some((x) => x.name === 'smi_process_step_cpu_seconds' && x.labels.process === 'wb'), 'a worker that reported none (a browser tab) has no sample');
  t.equal(value(m.samples, 'smi_plan_version'), 1);
  t.equal(value(m.samples, 'smi_owner_tensors', { worker: 'wa' }), 8, 'tensors per owner');
  t.equal(value(m.samples, 'smi_owner_params', { worker: 'wb' }), 500, 'values per owner');
  let state = (await (await serveOnce(monitor, '/api/state')).json()) as MonitorState;
  t.same(state.plan, plan(1, [['wa', 8, 600], ['wb', 7, 500]]), '/api/state carries the plan');
  t.same(state.steps.at(-1)!.process_bytes, { coordinator: { sent: 300, received: 400 }, wa: { sent: 2000, received: 1500 }, wb: { sent: 2000, received: 2500 } }, 'and each step its bytes per process');
  t.same(state.steps.at(-1)!.process_cpu_ms, { coordinator: 4.5, wa: 92 }, 'and its CPU ms per process, where reported');
  // wb left: a plan with one owner and a compute-only worker
  monitor.record(owners(3, { owners_plan: plan(2, [['wa', 15, 1100]], ['wc']) }));
  m = parseProm(await (await serveOnce(monitor, '/metrics')).text());
  t.equal(value(m.samples, 'smi_plan_version'), 2);
  t.equal(value(m.samples, 'smi_owner_tensors', { worker: 'wa' }), 15);
  t.equal(value(m.samples, 'smi_owner_tensors', { worker: 'wc' }), 0, 'a compute-only worker owns nothing');
  t.equal(value(m.samples, 'smi_owner_tensors', { worker: 'wb' }), undefined, 'the old owner is gone from the gauge');
  state = (await (await serveOnce(monitor, '/api/state')).json()) as MonitorState;
  t.equal(state.plan!.version, 2);
  monitor.close();
});

t.test('the star: bytes per process from the coordinator\'s links, seen from both ends', async (t) => {
  const monitor = new Monitor({});
  monitor.record(step(1));
  const state = (await (await serveOnce(monitor, '/api/state')).json()) as MonitorState;
  t.same(state.steps.at(-1)!.process_bytes, { coordinator: { sent: 2000, received: 3000 }, w1: { sent: 1500, received: 1000 }, w2: { sent: 1500, received: 1000 } });
  t.equal(state.plan, null, 'no plan');
  monitor.close();
});
