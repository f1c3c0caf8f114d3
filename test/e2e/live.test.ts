// A real coordinator serves the live page, /api/state and /metrics on its WebSocket port while it trains. (The star, --update coordinator: the owners' step records owners_step, not the phases this page shows.)
import t from 'tap';
import { join } from 'node:path';
import { DATA, startScript, tempDir, waitForStep } from '../helpers.ts';

/** The value of an unlabelled Prometheus sample, e.g. `smi_steps_total 12`. */
const sample = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

t.test('a real coordinator serves the live page, /api/state and /metrics on its WebSocket port while it trains', async (t) => {
  const out = join(tempDir('smi-live-'), 'run');
  const coord = startScript('coordinator/main', ['--preset', 'test', '--data', DATA, '--batch-size', '32', '--block-size', '32', '--n-embd', '64', '--max-iters', '150', '--eval-interval', '50', '--out', out, '--port', '0', '--host', '127.0.0.1', '--token', 'tok', '--update', 'coordinator']);
  const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
  const base = `http://127.0.0.1:${port}`;
  const worker = startScript('worker/main', ['--connect', `ws://127.0.0.1:${port}`, '--token', 'tok']);
  await waitForStep(out, 5);

  const page = await fetch(`${base}/`);
  t.equal(page.status, 200);
  t.match(await page.text(), /<canvas/i, 'the page has its charts');
  t.equal((await fetch(`${base}/vendor/chart.umd.js`)).status, 200, 'Chart.js served from node_modules');
  const state = (await (await fetch(`${base}/api/state`)).json()) as { workers: unknown[]; steps: { record: { step: number; phases?: unknown } }[] };
  t.equal(state.workers.length, 1, 'the live worker is listed');
  t.ok(state.steps.length >= 5 && state.steps.every((s) => s.record.phases), 'steps with their phases');

  const m1 = await (await fetch(`${base}/metrics`)).text();
  await waitForStep(out, 40);
  const m2 = await (await fetch(`${base}/metrics`)).text();
  t.ok(sample(m2, 'smi_steps_total') > sample(m1, 'smi_steps_total'), `smi_steps_total moves (${sample(m1, 'smi_steps_total')} → ${sample(m2, 'smi_steps_total')})`);
  t.equal(sample(m2, 'smi_live_workers'), 1);
  t.match(m2, /smi_phase_seconds_count\{phase="compute",process="[^"]+"\} \d+/, 'per-phase histograms per worker');
  t.match(m2, /smi_bytes_total\{direction="sent"\} \d+/);
  t.equal(await coord.exited, 0, 'the run finishes', { output: coord.output() });
  await worker.exited;
});
