// The GPU path, run as far as it can be without a GPU: workers and coordinators on stand-in libtensorflow (tfjs's
// cpu kernels registered as tfjs-node's 'tensorflow' backend, test/standin) with a stand-in nvidia-smi listing four
// H100s. Nothing here has run on a real GPU.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA, maxRelativeDiff, readLog, runScript, tempDir, weights } from '../helpers.ts';
import { standInEnv } from '../standin/env.ts';

const small = ['--preset', 'test', '--data', DATA, '--max-iters', '10', '--eval-interval', '5', '--smi', 'cosine'];
const steps = (dir: string) => readLog(dir).filter((r) => r.kind === 'step');
const losses = (dir: string) => steps(dir).map((s) => s.loss as number);
const workerLog = (dir: string, i: number) => readFileSync(join(dir, `worker-${i}.log`), 'utf8');
const STANDIN_LINE = /\[stand-in libtensorflow: tfjs cpu kernels, no real GPU\] (\S+) loaded: isUsingGpuDevice=(\w+) CUDA_VISIBLE_DEVICES=(\S*) CUDA_DEVICE_ORDER=(\S+) TF_FORCE_GPU_ALLOW_GROWTH=(\S+)/;

async function train(t: Test, dir: string, name: string, flags: string[], env: NodeJS.ProcessEnv = {}): Promise<{ out: string; stdout: string }> {
  const out = join(dir, name);
  const r = await runScript('train', [...flags, '--out', out], { env });
  t.equal(r.code, 0, `${name} exits 0`, { output: r.stdout + r.stderr });
  return { out, stdout: r.stdout + r.stderr };
}

t.test('stand-in libtensorflow (tfjs cpu kernels), no real GPU: the default synced run, 2 workers on tensorflow-gpu, trains to the end and matches 1 worker as the wasm runs do', async (t) => {
  const dir = tempDir('smi-standin-synced-');
  const si = standInEnv();
  const two = (await train(t, dir, 'standin-2', [...small, '--workers', '2'], si)).out;
  const one = (await train(t, dir, 'standin-1', [...small, '--workers', '1'], si)).out;
  const wasm2 = (await train(t, dir, 'wasm-2', [...small, '--workers', '2'])).out;
  const wasm1 = (await train(t, dir, 'wasm-1', [...small, '--workers', '1'])).out;
  t.same(steps(two).map((s) => s.workers), new Array(10).fill(2), 'every step of the 10 made by both stand-in workers (before issue 16 they failed every step and rejoined forever)');
  for (const i of [0, 1]) {
    t.match(workerLog(two, i), /backend: tensorflow-gpu on GPU \d: NVIDIA H100/, `worker ${i} on stand-in tensorflow-gpu`);
    t.match(workerLog(two, i), STANDIN_LINE);
  }
  // Same algorithm, other engines: tf.spectral on tfjs's cpu kernels for the workers' spectra (and cpu kernels for
  // their forward+backward) instead of the host FFT and wasm. Both round in float32; 1e-5 is the tolerance of
  // every distributed equivalence in this suite (measured here: 4e-7).
  const engines = maxRelativeDiff(weights(two), weights(wasm2));
  t.ok(engines < 1e-5, `stand-in 2 workers = wasm 2 workers within 1e-5 relative (${engines.toExponential(2)})`);
  const lw2 = losses(wasm2);
  t.ok(losses(two).every((l, i) => Math.abs(l - lw2[i]!) < 1e-5), 'and the loss of every step within 1e-5');
  // Synced mode averages the chunks' magnitude spectra into the shared history (docs/distributed.md), and the mean of |FFT2(g_c)|
  // is not |FFT2(mean g_c)|: 2 workers differ from 1 by design (measured on wasm, 10 steps: up to 1.3e-3 in the
  // loss). On the stand-in that difference must be the algorithm's own, i.e. the wasm pair's, to engine rounding.
  const l2 = losses(two), l1 = losses(one), lw1 = losses(wasm1);
  t.ok(l2.every((l, i) => Math.abs(l - l1[i]!) < 5e-3), `2 workers vs 1: every step's loss within 5e-3 (largest ${Math.max(...l2.map((l, i) => Math.abs(l - l1[i]!))).toExponential(2)})`);
  const gap = Math.max(...l2.map((l, i) => Math.abs((l - l1[i]!) - (lw2[i]! - lw1[i]!))));
  t.ok(gap < 1e-5, `the 2-vs-1 difference on the stand-in is the wasm runs' 2-vs-1 difference within 1e-5 per step (${gap.toExponential(2)})`);
});

t.test('stand-in libtensorflow (tfjs cpu kernels), no real GPU: global and local modes with 2 workers on tensorflow-gpu train to the end; global and 1-worker local equal the one-process run', async (t) => {
  const dir = tempDir('smi-standin-modes-');
  const si = standInEnv();
  const ref = (await train(t, dir, 'one-process', [...small, '--local', '--backend', 'tensorflow-gpu'], si)).out;
  const global2 = (await train(t, dir, 'global-2', [...small, '--workers', '2', '--spectral', 'global'], si)).out;
  const local2 = (await train(t, dir, 'local-2', [...small, '--workers', '2', '--spectral', 'local'], si)).out;
  const local1 = (await train(t, dir, 'local-1', [...small, '--workers', '1', '--spectral', 'local'], si)).out;
  t.match(readLog(ref)[0], { kind: 'start', backend: 'tensorflow-gpu' }, 'the one-process run on stand-in tensorflow-gpu (its SMI on the tf engine)');
  const lr = losses(ref);
  for (const [name, out, n] of [['global, 2 workers', global2, 2], ['local, 2 workers', local2, 2], ['local, 1 worker', local1, 1]] as const) {
    t.same(steps(out).map((s) => s.workers), new Array(10).fill(n), `${name}: every step on ${n} worker(s)`);
  }
  // global: the coordinator (wasm, host FFT) filters the mean gradient exactly as the one process does on tf.spectral
  const g = maxRelativeDiff(weights(global2), weights(ref));
  t.ok(g < 1e-5, `global, 2 workers = one process within 1e-5 relative (${g.toExponential(2)})`);
  t.ok(losses(global2).every((l, i) => Math.abs(l - lr[i]!) < 1e-5), 'the loss of every step too');
  // local: each worker keeps its own history (tf engine on the worker); with one worker that is the one-process run
  const l = maxRelativeDiff(weights(local1), weights(ref));
  t.ok(l < 1e-5, `local, 1 worker = one process within 1e-5 relative (${l.toExponential(2)})`);
  const e = readLog(local2).filter((r) => r.kind === 'eval');
  t.ok((e.at(-1)!.val_loss as number) < (e[0]!.val_loss as number) - 0.2, `local, 2 workers: the loss falls (${e[0]!.val_loss} → ${e.at(-1)!.val_loss}); it differs from 1 worker by design (two histories)`);
});

t.test("stand-in libtensorflow and nvidia-smi, no real GPU: each worker's CUDA_VISIBLE_DEVICES and the coordinator's environment, seen by libtensorflow as it loads", async (t) => {
  const dir = tempDir('smi-standin-env-');
  const quick = [...small, '--max-iters', '2', '--eval-interval', '2'];
  // a scheduler gave this job GPUs 2 and 3; three workers
  const a = await train(t, dir, 'parent-2-3', [...quick, '--workers', '3'], { ...standInEnv({ packages: 'gpu,cpu' }), CUDA_VISIBLE_DEVICES: '2,3' });
  const seen = [0, 1, 2].map((i) => workerLog(a.out, i).match(STANDIN_LINE));
  t.same(seen.map((m) => m?.[3]), ['2', '3', '2'], "worker i got the parent's i-th device, round robin for the third");
  t.ok(seen.every((m) => m?.[1] === '@tensorflow/tfjs-node-gpu' && m[4] === 'PCI_BUS_ID' && m[5] === 'true'), 'each loaded tfjs-node-gpu with CUDA_DEVICE_ORDER=PCI_BUS_ID and TF_FORCE_GPU_ALLOW_GROWTH=true already set');
  t.match(a.stdout, /devices: 3 workers on 2 device\(s\), round robin .*GPU 2: NVIDIA H100 80GB HBM3 ×2; GPU 3: NVIDIA H100 80GB HBM3 ×1/, 'the launcher says it doubled up');
  const coord = a.stdout.match(STANDIN_LINE);
  t.same(coord?.slice(1), ['@tensorflow/tfjs-node', 'false', '', 'PCI_BUS_ID', 'true'], "the coordinator loaded TensorFlow (CPU) with no GPU visible, allow-growth and PCI order set");
  t.match(a.stdout, /coordinator: on the CPU, kept off the workers' GPUs/);
  t.match(a.stdout, /backend: tensorflow on CPU/);

  // GPU 0 in MIG mode; the coordinator on a device of its own
  const b = await train(t, dir, 'mig-coordinator-gpu', [...quick, '--workers', '2', '--coordinator-gpu', '0'], standInEnv({ listing: 'mig' }));
  const listing = readFileSync(join(import.meta.dirname, '../standin/nvidia-smi-L.mig.txt'), 'utf8');
  const migs = [...listing.matchAll(/UUID: (MIG-[^)]+)\)/g)].map((m) => m[1]);
  t.equal(b.stdout.match(STANDIN_LINE)?.[3], migs[0], 'the coordinator: the first MIG device');
  t.match(b.stdout, /backend: tensorflow-gpu on GPU 0: NVIDIA H100 80GB HBM3, MIG 3g\.40gb device 0/);
  t.same([0, 1].map((i) => workerLog(b.out, i).match(STANDIN_LINE)?.[3]), [migs[1], '1'], 'the workers: the second MIG device, then GPU 1');
});

t.test('stand-in libtensorflow with a simulated first-use kernel compile, no real GPU: the warm-up runs before hello, the first step has its own timeout', async (t) => {
  const dir = tempDir('smi-standin-jit-');
  const jit = standInEnv({ jit: 20 });
  // the baseline: under --update owners the worker also runs the update, and SMI on tf.spectral over the stand-in's
  // pure-JS kernels takes seconds every step (not a compile), which no 1 s --step-timeout allows
  const quick = [...small, '--max-iters', '3', '--eval-interval', '3', '--workers', '1', '--spectral', 'global', '--smi', 'baseline'];
  // The first step compiles every kernel of the run's shapes (the warm-up's model is smaller): seconds here.
  const a = await train(t, dir, 'first-step-allowed', [...quick, '--step-timeout', '1000'], jit);
  t.notMatch(a.stdout, /missed the/, 'the first step may take longer than --step-timeout');
  const log = workerLog(a.out, 0);
  t.ok(/warm-up: .* ms/.test(log) && log.indexOf('warm-up:') < log.indexOf('joined as'), 'the worker warmed up before it joined');
  const b = await train(t, dir, 'first-step-too-short', [...quick, '--first-step-timeout', '1000', '--step-timeout', '20000'], jit);
  t.match(b.stdout, /missed the first-step timeout \(1000 ms\) on step 1/, 'a first step over --first-step-timeout fails its worker');
  t.same(steps(b.out).map((s) => s.step), [1, 2, 3], 'it reconnects (its kernels now compiled) and the run ends, each step once');
});
