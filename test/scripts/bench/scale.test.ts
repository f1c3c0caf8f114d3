// bench scale (scripts/bench/scale.ts) and its sizes (scale-model.ts): reading logs into figures, repetitions, the report; no timing.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { combine, figures, scaleMarkdown, specsFor, type Figures, type Spec } from '../../../scripts/bench/scale.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL_LEAVES_OUT, exchangeBytes, modelMarkdown, modelSizes, modelStep, modelTables, paramShapes } from '../../../scripts/bench/scale-model.ts';
import { ROOT } from '../../helpers.ts';
import { PRESETS, resolveConfig } from '../../../shared/config.ts';
import { GPT } from '../../../shared/model/gpt.ts';

const worker = (compute: number, toWorker: number, fromWorker: number) => ({ compute, spectral: 1, encode: 2, transfer: 3, wait: 4, bytes_sent: toWorker, bytes_received: fromWorker });
const step = (n: number, ms: number, cpu: number, w: Record<string, ReturnType<typeof worker>>, coordinator: Record<string, number> = {}) => ({
  kind: 'step', step: n, loss: 4, lr: 1e-3, alpha: 0.1, ms: ms + 1, tokens: 32, workers: Object.keys(w).length, grad_norm: 1, cpu_ms: cpu,
  phases: { coordinator: { step: ms, reduce: 10, spectral: 20, optimizer: 30, broadcast: 5, encode: 1, wait: 2, ...coordinator }, workers: w },
});

t.test('figures: medians over the steps after the warmup; bytes from each process\'s own side; the coordinator\'s as the sum in the star', async (t) => {
  const records = [
    { kind: 'start', step: 0, backend: 'wasm', device: 'cpu', params: 1000, resumed: false },
    step(1, 9999, 999, { zz: worker(9000, 1, 1), aa: worker(1, 1, 1) }), // warmup: left out
    step(2, 300, 5, { zz: worker(200, 4000, 4100), aa: worker(150, 4000, 4200) }),
    step(3, 320, 7, { zz: worker(220, 4000, 4100), aa: worker(100, 4000, 4200) }),
    step(4, 310, 6, { zz: worker(210, 4000, 4100), aa: worker(260, 4000, 4200) }),
    { kind: 'eval', step: 4, train_loss: 3, val_loss: 3 },
  ];
  const f = figures(records, { warmup: 1, tokens: 32 });
  t.equal(f.steps, 3);
  t.equal(f.params, 1000);
  t.equal(f.msPerStep, 310, 'the coordinator\'s wall time of the step, not the loop\'s ms');
  t.equal(f.computeMs, 220, 'the slowest worker of each step (200, 220, 260), median');
  t.equal(f.outsideMs, 100, 'step − slowest compute: 100, 100, 50');
  t.equal(f.tokensPerSec, (32 * 1000) / 310);
  t.equal(f.cpuMs, 6);
  t.same(Object.keys(f.phases), ['coordinator', 'worker 1', 'worker 2'], 'workers named in the order they first appear');
  t.equal(f.phases['worker 1']!.compute, 210, 'zz appeared first: worker 1');
  t.equal(f.phases.coordinator!.optimizer, 30);
  t.notOk('bytes_sent' in f.phases['worker 1']!, 'bytes are not phases');
  t.same(f.bytes, [
    { process: 'coordinator', sent: 8000, received: 8300 },
    { process: 'worker 1', sent: 4100, received: 4000 },
    { process: 'worker 2', sent: 4200, received: 4000 },
  ]);
  // a coordinator that logs its own bytes (the sharded design: a few control messages) is taken as it says
  const own = figures([step(2, 300, 1, { a: worker(100, 50, 60) }, { bytes_sent: 7, bytes_received: 9 })], { warmup: 0, tokens: 32 });
  t.same(own.bytes[0], { process: 'coordinator', sent: 7, received: 9 });
  // --local: no phases, the loop's ms and compute_ms; no bytes
  const local = figures([{ kind: 'step', step: 3, ms: 50, compute_ms: 40, cpu_ms: 49 }], { warmup: 0, tokens: 32 });
  t.same([local.msPerStep, local.computeMs, local.outsideMs, local.cpuMs, local.bytes.length], [50, 40, 10, 49, 0]);
  t.ok(Number.isNaN(figures([{ kind: 'step', step: 3, ms: 50 }], { warmup: 0, tokens: 1 }).cpuMs), 'a log without cpu_ms: NaN, not 0');
});

t.test('figures under --update owners: each worker\'s own phases and bytes from owners_step; no coordinator bytes', async (t) => {
  const step = (k: number, a: number) => ({ kind: 'step', step: k, ms: 100, compute_ms: 40, owners_step: { wA: { phases: { compute: 40, update: a }, sent: 1000 + k, received: 2000, cpu_ms: 80 + k }, wB: { phases: { compute: 30, update: 5 }, sent: 3000, received: 4000, cpu_ms: 81 } } });
  const f = figures([{ kind: 'start', params: 10 }, step(1, 9), step(2, 7), step(3, 8)] as never, { warmup: 0, tokens: 8 });
  t.equal(f.update, 'owners');
  t.same(f.bytes, [{ process: 'worker 1', sent: 1002, received: 2000 }, { process: 'worker 2', sent: 3000, received: 4000 }], 'median bytes per worker, its own side');
  t.equal(f.phases['worker 1']!.update, 8, 'median of its update phase');
  t.equal(f.outsideMs, 60, 'outside the slowest compute');
  t.equal(f.workerCpuMs, 82, 'the busiest worker\'s CPU per step (max over workers: 81, 82, 83), median over steps');
  t.equal(figures([{ kind: 'step', step: 1, ms: 5 }] as never, { warmup: 0, tokens: 1 }).update, 'coordinator', 'no owners_step: the star');
  t.ok(Number.isNaN(figures([{ kind: 'step', step: 1, ms: 5 }] as never, { warmup: 0, tokens: 1 }).workerCpuMs), 'no worker CPU logged: NaN');
});

t.test('figures under --update owners with coordinator_bytes: the coordinator\'s own control-link bytes, median per step', async (t) => {
  const step = (k: number) => ({ kind: 'step', step: k, ms: 100, compute_ms: 40, owners_step: { wA: { phases: { compute: 40 }, sent: 10, received: 20 } }, coordinator_bytes: { sent: 500 + k, received: 60 } });
  const f = figures([{ kind: 'start', params: 10 }, step(1), step(2), step(3)] as never, { warmup: 0, tokens: 8 });
  t.same(f.bytes, [{ process: 'coordinator', sent: 502, received: 60 }, { process: 'worker 1', sent: 10, received: 20 }], 'the coordinator first, then the workers');
});

const fig = (tps: number, ms = 1000 / tps): Figures => ({ steps: 20, update: 'coordinator', params: 10, msPerStep: ms, computeMs: ms / 2, outsideMs: ms / 2, tokensPerSec: tps, cpuMs: 1, workerCpuMs: NaN, phases: {}, bytes: [{ process: 'coordinator', sent: 80, received: 80 }, { process: 'worker 1', sent: 40, received: 40 }] });
const spec = (id: string, group: Spec['group'], workers: number, base: string): Spec => ({ id, group, label: id, workers, batch: 4, block: 8, flags: [], base, model: { params: 10, magnitudes: 6 }, mode: 'global' });

t.test('combine: each ratio against the base of the same repetition; E(N) against the group\'s 1-worker run; medians', async (t) => {
  const specs = [spec('local', 'cpu', 0, 'local'), spec('one', 'cpu', 1, 'local'), spec('two', 'cpu', 2, 'local'), spec('probe', 'probe', 2, 'local')];
  const reps = [
    new Map([['local', fig(100)], ['one', fig(90)], ['two', fig(171)]]),
    new Map([['local', fig(50)], ['one', fig(45)], ['two', fig(90)]]), // a slow spell: every run slower, the ratios hold
    new Map([['local', fig(100)], ['one', fig(100)], ['two', fig(150)]]),
  ];
  const rows = combine(specs, reps);
  t.same(rows.map((r) => r.spec.id), ['local', 'one', 'two'], 'a spec with no runs has no row');
  const two = rows[2]!;
  t.same(two.vsBase.map((x) => +x.toFixed(3)), [1.71, 1.8, 1.5]);
  t.same(two.efficiency.map((x) => +x.toFixed(3)), [0.95, 1, 0.75]);
  t.equal(two.figures.tokensPerSec, 150, 'each figure is the median over the repetitions');
  t.same(rows[1]!.efficiency, [1, 1, 1]);
  t.same(rows[0]!.efficiency, [], '--local has no E(N) against a worker run');
  const md = scaleMarkdown({ machine: 'm', quick: false, repeat: 3, warmup: 5, rows: combine([...specs, spec('two-hosts', 'two-hosts', 2, 'two')], [...reps.slice(0, 2), new Map([...reps[2]!, ['probe', fig(100)], ['two-hosts', fig(75)]])]), skipped: ['the two-host run: needs root'] });
  t.match(md, /\| two \| 4 \| 6\.7 \| 150 \| 1\.71 \(1\.50–1\.80\) \| 0\.95 \(0\.75–1\.00\) \|/, 'the cpu table: ratio and E(N) with their ranges');
  t.match(md, /\| probe \| 32 \| 10\.0 \| 1\.00 \|/, 'the probe table');
  t.match(md, /\| two-hosts \| 13\.3 \| 0\.50 \| [\d.]+ \| [\d.–]+ \|/, 'the two-host run against the same run on loopback, and its bytes');
  t.match(md, /Skipped: the two-host run: needs root\./);
  t.match(md, /\| cpu: two \| 2 \| 10 \| 160 \| 160 \| 80 \| 80 \| 80 \|/, 'bytes beside the formulas (global mode: no magnitudes)');
});

t.test('the probes are issue 14\'s: flags, batches, bars; --quick is the test preset', async (t) => {
  const { specs, warmup } = specsFor({ quick: false, workers: [1, 2, 3, 4], twoHosts: true });
  t.equal(warmup, 5, 'median step after the first 5');
  const probe = ['--preset', 'paper', '--block-size', '8', '--dropout', '0', '--eval-iters', '1', '--eval-interval', '1000', '--max-iters', '25', '--smi', 'cosine'];
  const flags = (id: string) => specs.find((s) => s.id === id)!.flags;
  t.same(flags('probe-local'), [...probe, '--local', '--batch-size', '4']);
  t.same(flags('probe-synced-weak'), [...probe, '--workers', '2', '--spectral', 'synced', '--batch-size', '8']);
  t.same(flags('probe-global-strong'), [...probe, '--workers', '2', '--spectral', 'global', '--batch-size', '4']);
  t.same(specs.filter((s) => s.group === 'cpu').map((s) => [s.workers, s.batch]), [[0, 12], [1, 12], [2, 24], [3, 36], [4, 48]]);
  t.same(specs.find((s) => s.id === 'probe-synced-weak')!.target, { vsLocal: 1.8, outsideMs: 250, cpuMs: 10 });
  t.same(specs.find((s) => s.id === 'probe-global-strong')!.target!.vsLocal, 1.3);
  t.same(specs.find((s) => s.id === 'cpu-2')!.target, { vsLocal: 1.7, efficiency: 0.9 });
  t.same(specs.slice(-2).map((s) => s.id), ['two-hosts', 'two-hosts-bf16'], 'the two-host runs last, fp32 and bf16');
  t.same(flags('two-hosts-bf16'), [...flags('probe-global-weak'), '--wire-dtype', 'bf16']);
  t.notOk(specsFor({ quick: false, workers: [1], twoHosts: false }).specs.some((s) => s.group === 'two-hosts'), 'no two-host run where namespaces cannot be made');
  t.ok(specsFor({ quick: true, workers: [1, 2], twoHosts: false }).specs.every((s) => s.flags[1] === 'test'), '--quick: the test preset');
});

t.test('sizes: the shapes are the model\'s (10.7M parameters at the paper preset); the exchange formulas', async (t) => {
  await tf.setBackend('cpu');
  for (const preset of ['test', 'cpu'] as const) {
    const cfg = resolveConfig({ preset });
    const gpt = new GPT(cfg, 1);
    t.same(paramShapes(cfg), gpt.params.map((p) => p.shape), `${preset}: the shapes of shared/model/gpt.ts`);
    gpt.params.forEach((p) => p.variable.dispose());
  }
  t.equal(modelSizes(paramShapes({ ...PRESETS.paper })).params, 10_745_088, 'paper preset: 10.7M');
  t.same(modelSizes([[3, 8], [5]]), { params: 29, magnitudes: 3 * 5 + 3 }, 'half spectra: floor(cols/2)+1 per row');
  t.same(exchangeBytes(4, 1000), { starWorker: 8000, starCoordinator: 32000, sharded: 12000 }, 'N = 4: the star coordinator 4 × 8 kB, a sharded process 2 · 3/4 · 8 kB');
  t.same(exchangeBytes(2, 1000, { magnitudes: 100, gradBytes: 2 }), { starWorker: 2000 + 400 + 4000, starCoordinator: 12800, sharded: 2000 + 4000 }, 'bf16 gradients, fp32 weights and (the star\'s) magnitudes; the owners send none');
  t.equal(exchangeBytes(1, 1000).sharded, 0, 'one process exchanges nothing');
});

t.test('the E(N) model: its arithmetic on round numbers, and docs/scaling/model.md holds its tables verbatim', async (t) => {
  const costs = { adamwNs: 10, smiNs: 10, reduceNs: 1, codecNsPerByte: 0, wsBytesPerSec: 1e9 };
  const o = { computeMs: 30, params: 1e6, magnitudes: 0, linkGbit: 8, update: 'host' as const, reduce: 'host' as const, costs, wsCap: true };
  // 1e6 parameters: 4 MB each way per worker; an 8 Gbit/s link is 1 GB/s; the update 20 ms, a reduce 1 ms per gradient
  const star4 = modelStep('star', 4, o);
  t.same(star4.parts, { compute: 30, wire: 32, codec: 0, reduce: 4, update: 20 }, 'star, N = 4: 32 MB both ways through one process at 1 GB/s; 4 reduces; the whole update');
  t.equal(star4.e, 50 / 86, 't(1) = compute + update = 50 ms');
  const sharded4 = modelStep('sharded', 4, o);
  t.same(sharded4.parts, { compute: 30, wire: 12, codec: 0, reduce: 1, update: 5 }, 'sharded, N = 4: 2 · 3/4 · 8 MB; P values reduced; a quarter of the update');
  t.same(modelStep('sharded', 1, o).parts, { compute: 30, wire: 0, codec: 0, reduce: 0, update: 20 }, 'one process: no exchange, no reduce');
  t.equal(modelStep('sharded', 1, o).e, 1);
  const linkBound = modelStep('sharded', 4, { ...o, wsCap: false, linkGbit: 0.8 });
  t.equal(linkBound.parts.wire, 60, 'without the ceiling: 6 MB each way at 0.1 GB/s (full duplex)');
  t.equal(modelStep('sharded', 4, { ...o, update: 'device', reduce: 'device' }).stepMs, 42, 'device: the update and reduce left out');
  t.equal(modelStep('sharded', 4, { ...o, gradBytes: 2 }).parts.wire, 9, 'bf16 gradients: 6 of 8 bytes per parameter');
  const tables = modelTables();
  t.same(tables[0]!.rows.map((r) => r.n), Array.from({ length: 64 }, (_, i) => i + 1), 'every N from 1 to 64');
  t.ok(tables.every((x) => x.rows.every((r) => r.sharded.every((s, i) => s.e >= r.star[i]!.e))), 'sharded is never below the star in any table');
  const doc = readFileSync(join(ROOT, 'docs/scaling/model.md'), 'utf8');
  t.ok(doc.includes(modelMarkdown(tables)), 'docs/scaling/model.md holds the tables of npm run bench -- scale --model verbatim (regenerate it after changing a cost)');
  t.match(doc, /\*\*This is a model, not a measurement\.\*\*/);
  for (const line of MODEL_LEAVES_OUT) t.ok(doc.includes(`- ${line}\n`), `it says what it leaves out: ${line.split(':')[0]}`);
});
