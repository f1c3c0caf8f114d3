// Benchmarks stock vs supplied tfjs wasm kernels (BatchMatMul, Slice/Unpack/SplitV, GPT fwd+bwd), a·bᵀ with few rows, AdamW, and the reduce's host passes.
//
// Usage: npm run bench -- kernels [--runs N] [--big]
//   --runs N  timed runs per measurement (median is printed; default 7; matmuls 3N, GPT step max(3, N/2))
//   --big     also unstack a [384,256,256] tensor with the stock kernel (takes ~20 s)
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { resolveConfig, type TrainConfig } from '../../shared/config.ts';
import { GPT } from '../../shared/model/gpt.ts';
import { Rng, STREAM } from '../../shared/model/rng.ts';
import { AdamW } from '../../shared/model/adamw.ts';
import { initWasmAsm } from '../../shared/wasm/asm.ts';
import { registerWasmKernels, WASM_KERNELS } from '../../shared/wasm/kernels.ts';
import { allFinite, setReduceSimd, sumOfSquares64, sumOfSquaresInOrder } from '../../shared/wasm/reduce.ts';
import { weightedSum } from '../../shared/parallel/reduce.ts';

const argv = process.argv.slice(2);
const runsArg = argv.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(argv[runsArg + 1]) : 7;
const BIG = argv.includes('--big');

type Mode = 'stock' | 'view' | 'copy';

/** Switches kernels: 'stock' = stock wasm + UnsortedSegmentSum (which stock lacks). */
function useMode(mode: Mode): void {
  if (mode === 'stock') registerWasmKernels({ kernels: ['UnsortedSegmentSum'] });
  else registerWasmKernels({ kernels: WASM_KERNELS, matMulSlices: mode });
}

/** Median wall time (ms) of `runs` calls of `f` (after `warmup` untimed calls); outputs are synced and disposed. */
function timeMs(f: () => tf.Tensor | tf.Tensor[], runs = RUNS, warmup = 1): number {
  const once = (): number => {
    const t0 = performance.now();
    const out = f();
    const outs = Array.isArray(out) ? out : [out];
    for (const o of outs) o.dataSync();
    const dt = performance.now() - t0;
    tf.dispose(outs);
    return dt;
  };
  for (let i = 0; i < warmup; i++) once();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) ts.push(once());
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)];
}

/** Formats a row of the result table. */
function row(label: string, cols: Array<string | number>): void {
  const fmt = (c: string | number): string => (typeof c === 'number' ? c.toFixed(2) : c).padStart(11);
  console.log(label.padEnd(44) + cols.map(fmt).join(''));
}

// ---------------------------------------------------------------------------------------
// (a) BatchMatMul
// ---------------------------------------------------------------------------------------

function benchMatMul(): void {
  console.log('\n(a) BatchMatMul, median ms (GFLOP/s of the fastest supplied mode in the last column)');
  row('shape', ['stock', 'view', 'copy', 'speedup', 'GFLOP/s']);
  const cases: Array<[string, number[], number[], boolean, boolean]> = [
    ['att q@kT [48,64,32]x[48,64,32]^T', [48, 64, 32], [48, 64, 32], false, true],
    ['att a@v [48,64,64]x[48,64,32]', [48, 64, 64], [48, 64, 32], false, false],
    ['bwd dAtt^T@q [48,64,64]^Tx[48,64,32]', [48, 64, 64], [48, 64, 32], true, false],
    ['bwd dq=dAtt@k [48,64,64]x[48,64,32]', [48, 64, 64], [48, 64, 32], false, false],
    ['4-D [12,4,64,32]x[12,4,64,32]^T', [12, 4, 64, 32], [12, 4, 64, 32], false, true],
    ['bcast [12,64,128]x[128,512]', [12, 64, 128], [128, 512], false, false],
    ['fc [768,128]x[128,512]', [768, 128], [128, 512], false, false],
    ['fc dX [768,512]x[128,512]^T', [768, 512], [128, 512], false, true],
    ['fc dW [768,128]^Tx[768,512]', [768, 128], [768, 512], true, false],
    ['qkv dW [768,128]^Tx[768,384]', [768, 128], [768, 384], true, false],
  ];
  for (const [label, sa, sb, ta, tb] of cases) {
    const a = tf.randomNormal(sa);
    const b = tf.randomNormal(sb);
    const res: Record<Mode, number> = { stock: 0, view: 0, copy: 0 };
    for (const mode of ['stock', 'view', 'copy'] as Mode[]) {
      useMode(mode);
      res[mode] = timeMs(() => tf.matMul(a, b, ta, tb), 3 * RUNS, 2); // cheap: more runs, less noise
    }
    const outShape = tf.matMul(a, b, ta, tb);
    const M = outShape.shape[outShape.shape.length - 2];
    const N = outShape.shape[outShape.shape.length - 1];
    const batch = outShape.size / (M * N);
    const K = ta ? sa[sa.length - 2] : sa[sa.length - 1];
    outShape.dispose();
    const best = Math.min(res.view, res.copy);
    row(label, [res.stock, res.view, res.copy, `${(res.stock / best).toFixed(1)}x`, (2 * batch * M * N * K) / best / 1e6]);
    tf.dispose([a, b]);
  }
}

// ---------------------------------------------------------------------------------------
// (b) Slice / Unpack / SplitV
// ---------------------------------------------------------------------------------------

function benchSlices(): void {
  console.log('\n(b) Slice / Unpack / SplitV, median ms');
  row('op', ['stock', 'supplied', 'speedup']);
  const big = tf.randomNormal([384, 256, 256]);
  const mid = tf.randomNormal([384, 64, 64]);
  const qkv = tf.randomNormal([12, 64, 384]);
  const cases: Array<[string, () => tf.Tensor | tf.Tensor[], number]> = [
    ['slice [1,256,256] of [384,256,256]', () => tf.slice(big, [100, 0, 0], [1, 256, 256]), RUNS],
    ['slice inner [384,256,16] of [384,256,256]', () => tf.slice(big, [0, 0, 32], [384, 256, 16]), 3],
    ['unstack [384,64,64] axis 0', () => tf.unstack(mid, 0), 3],
    ['unstack [384,64,64] axis 1', () => tf.unstack(mid, 1), 3],
    ['split qkv [12,64,384] -> 3x[12,64,128]', () => tf.split(qkv, 3, 2), RUNS],
  ];
  if (BIG) cases.push(['unstack [384,256,256] axis 0', () => tf.unstack(big, 0), 1]);
  for (const [label, f, runs] of cases) {
    useMode('stock');
    const stock = timeMs(f, runs, runs > 1 ? 1 : 0);
    useMode('view');
    const ours = timeMs(f, Math.max(runs, 3));
    row(label, [stock, ours, `${(stock / ours).toFixed(0)}x`]);
  }
  tf.dispose([big, mid, qkv]);
}

// ---------------------------------------------------------------------------------------
// (c) GPT forward + backward
// ---------------------------------------------------------------------------------------

/**
 * The project's GPT (shared/model/gpt.ts, the model that is trained), by default on the cpu preset, fed a fixed
 * random batch. `step` returns the loss and the gradients; `freshWeights` makes new weight tensors first, as each
 * training step does (XNNPACK keeps packed weights by tensor id).
 */
function buildGpt(cfg = resolveConfig({ preset: 'cpu' })): {
  cfg: TrainConfig; step: (o?: { freshWeights?: boolean }) => tf.Tensor[]; dispose: () => void;
} {
  const model = new GPT(cfg, cfg.seed);
  const weights = model.params.map((p) => p.variable.dataSync().slice() as Float32Array);
  const rng = new Rng(0, STREAM.train);
  const n = cfg.batch_size * cfg.block_size;
  const x = Int32Array.from({ length: n }, () => rng.int(cfg.vocab_size));
  const y = Int32Array.from({ length: n }, () => rng.int(cfg.vocab_size));
  return {
    cfg,
    step: (o = {}) => {
      if (o.freshWeights) model.assignAll(weights);
      const { loss, grads } = model.gradients(x, y, cfg.batch_size);
      return [tf.scalar(loss), ...grads];
    },
    dispose: () => model.dispose(),
  };
}

function benchGpt(): void {
  const model = buildGpt();
  const { cfg } = model;
  console.log(
    `\n(c) the trained GPT's forward+backward (shared/model/gpt.ts: no biases, exact GELU), cpu preset: ${cfg.n_layer} layers, ${cfg.n_head} heads, ` +
      `width ${cfg.n_embd}, block ${cfg.block_size}, batch ${cfg.batch_size}, vocab ${cfg.vocab_size}; median ms`,
  );
  row('kernels', ['ms/step', 'loss']);
  const runs = Math.max(3, Math.floor(RUNS / 2));
  // Untimed warm-up of the supplied kernels first, so the first timed mode does not pay for
  // heap growth / JIT warm-up that the later ones then get for free.
  for (const mode of ['view', 'copy'] as Mode[]) {
    useMode(mode);
    tf.dispose(model.step());
  }
  for (const mode of ['stock', 'view', 'copy'] as Mode[]) {
    useMode(mode);
    let lossVal = 0;
    const ms = timeMs(() => {
      const out = model.step();
      lossVal = out[0]!.dataSync()[0]!;
      return out;
    }, runs);
    row(mode === 'stock' ? 'stock (+UnsortedSegmentSum)' : `supplied (matMulSlices=${mode})`, [ms, lossVal.toFixed(4)]);
  }
  model.dispose();
}

// ---------------------------------------------------------------------------------------
// (d) a·bᵀ with few rows: transposing b against computing (b·aᵀ)ᵀ
// ---------------------------------------------------------------------------------------

/**
 * The paper preset at block 8 (issue 14's cheap-compute probe): every linear layer's product has 8 rows per sequence.
 * Each product gets a new b, as in training, where each step's weights are new tensors (XNNPACK keeps packed
 * weights by b's id, so a b used again is cheap on the plain path).
 */
function benchSmallRows(): void {
  console.log('\n(d) few rows against a large b (linear layers at small batches), a new b per product, median ms');
  row('shape', ['plain', 'swapped', 'speedup']);
  const cases: Array<[string, number[], number[], boolean]> = [
    ['fwd, 2 seq: [16,384]x[384,1536]', [16, 384], [384, 1536], false],
    ['fwd, 2 seq: [16,1536]x[1536,384]', [16, 1536], [1536, 384], false],
    ['dX, 2 seq: [16,1536]x[384,1536]^T', [16, 1536], [384, 1536], true],
    ['dX, 2 seq: [16,384]x[1536,384]^T', [16, 384], [1536, 384], true],
    ['fwd, 4 seq: [32,384]x[384,1152]', [32, 384], [384, 1152], false],
    ['dX, 4 seq: [32,1152]x[384,1152]^T', [32, 1152], [384, 1152], true],
  ];
  for (const [label, sa, sb, tb] of cases) {
    const a = tf.randomNormal(sa);
    const bRandom = tf.randomNormal(sb);
    const bd = bRandom.dataSync() as Float32Array;
    bRandom.dispose();
    const product = (): tf.Tensor => tf.tidy(() => tf.matMul(a, tf.tensor(bd, sb), false, tb));
    registerWasmKernels({ swapSmallRows: false });
    const plain = timeMs(product, 3 * RUNS, 2);
    registerWasmKernels({ swapSmallRows: true });
    const swapped = timeMs(product, 3 * RUNS, 2);
    row(label, [plain, swapped, `${(plain / swapped).toFixed(1)}x`]);
    a.dispose();
  }
  console.log('\nthe trained GPT, paper preset at block 8, dropout 0, new weights each step: forward+backward, median ms; largest gradient difference');
  row('batch', ['plain', 'swapped', 'speedup', 'max |dg|']);
  for (const batch of [2, 4]) {
    const model = buildGpt(resolveConfig({ preset: 'paper', overrides: { block_size: 8, dropout: 0, batch_size: batch } }));
    const step = (): tf.Tensor[] => model.step({ freshWeights: true });
    const ms: number[] = [];
    const seen: Float32Array[][] = [];
    for (const swap of [false, true]) {
      registerWasmKernels({ swapSmallRows: swap });
      const g = step(); // also the warm-up
      seen.push(g.map((t) => t.dataSync() as Float32Array));
      tf.dispose(g);
      ms.push(timeMs(step, Math.max(3, RUNS)));
    }
    let diff = 0;
    seen[0]!.forEach((g, i) => g.forEach((v, j) => { diff = Math.max(diff, Math.abs(v - seen[1]![i]![j]!)); }));
    row(`${batch} sequences (${batch * model.cfg.block_size} tokens)`, [ms[0]!, ms[1]!, `${(ms[0]! / ms[1]!).toFixed(1)}x`, diff.toExponential(1)]);
    model.dispose();
  }
}

// ---------------------------------------------------------------------------------------
// (e) AdamW: its tensor ops against the fused pass (shared/wasm/adamw.ts)
// ---------------------------------------------------------------------------------------

/** One AdamW step of all the paper preset's parameters, both engines interleaved, and the largest weight difference. */
function benchAdamW(): void {
  console.log('\n(e) AdamW, one step of every paper-preset parameter, median ms (tensor ops, then the fused pass, interleaved)');
  row('parameters', ['tensor ops', 'fused', 'speedup', 'ns/param', 'max |dp|']);
  const cfg = resolveConfig({ preset: 'paper' });
  const model = new GPT(cfg, cfg.seed);
  const init = model.params.map((p) => p.variable.dataSync().slice() as Float32Array);
  const shapes = model.params.map((p) => p.variable.shape);
  const count = init.reduce((a, x) => a + x.length, 0);
  model.dispose();
  const rng = new Rng(1, STREAM.train);
  const grads = shapes.map((s) => tf.tensor(Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => (rng.uniform() - 0.5) * 0.02), s));
  const engines = ['tensor', 'auto'] as const;
  const runs = engines.map((engine) => ({
    params: shapes.map((s, i) => tf.tidy(() => tf.variable(tf.tensor(init[i]!, s)))), // the variable outlives the tidy, its initial tensor not
    opt: new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, engine }),
    ms: [] as number[],
  }));
  for (let i = 0; i < 2 + RUNS; i++) {
    for (const r of runs) {
      const t0 = performance.now();
      r.opt.apply(r.params, grads, 1e-3);
      r.params[r.params.length - 1]!.dataSync();
      if (i >= 2) r.ms.push(performance.now() - t0);
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  let diff = 0;
  runs[0]!.params.forEach((p, i) => {
    const a = p.dataSync();
    const b = runs[1]!.params[i]!.dataSync();
    for (let j = 0; j < a.length; j++) diff = Math.max(diff, Math.abs(a[j]! - b[j]!));
  });
  const [opsMs, fusedMs] = runs.map((r) => med(r.ms)) as [number, number];
  row(`${count} (${shapes.length} tensors)`, [opsMs, fusedMs, `${(opsMs / fusedMs).toFixed(1)}x`, `${((opsMs * 1e6) / count).toFixed(1)} / ${((fusedMs * 1e6) / count).toFixed(1)}`, diff.toExponential(1)]);
  for (const r of runs) {
    r.opt.dispose();
    tf.dispose(r.params);
  }
  tf.dispose(grads);
}

// (f) the reduce's host passes: JS against the SIMD kernels (shared/wasm/reduce.ts)
// ---------------------------------------------------------------------------------------

/** Whether two results hold the same bits: numbers by Object.is, float32 arrays value by value, lists element by element. */
function sameBits(x: unknown, y: unknown): boolean {
  if (x instanceof Float32Array && y instanceof Float32Array) {
    const [p, q] = [new Uint32Array(x.buffer, x.byteOffset, x.length), new Uint32Array(y.buffer, y.byteOffset, y.length)];
    return p.length === q.length && p.every((v, i) => v === q[i]);
  }
  if (Array.isArray(x) && Array.isArray(y)) return x.length === y.length && x.every((v, i) => sameBits(v, y[i]));
  return Object.is(x, y);
}

/** The four host passes over an owner's half of the paper preset, JS against SIMD, interleaved, and whether their bits agree. */
function benchReduce(): void {
  const cfg = resolveConfig({ preset: 'paper' });
  const model = new GPT(cfg, cfg.seed);
  const sizes = model.params.map((p) => p.variable.size);
  model.dispose();
  const half: number[] = [];
  let total = 0;
  for (const n of sizes) {
    if (total >= 5_400_000) break; // about the half an owner of two holds
    half.push(n);
    total += n;
  }
  console.log(`\n(f) the reduce's host passes over ${total} values (about half the paper preset's parameters), median ms (JS, then SIMD, interleaved)`);
  row('pass', ['JS', 'SIMD', 'speedup', 'ns/value', 'same bits']);
  const rng = new Rng(2, STREAM.train);
  const make = () => half.map((n) => Float32Array.from({ length: n }, () => (rng.uniform() - 0.5) * 0.02));
  const [a, b] = [make(), make()];
  const outs = [half.map((n) => new Float32Array(n)), half.map((n) => new Float32Array(n))];
  const passes: [string, (simd: number) => unknown][] = [
    ['check: Σ x² (float64), one share', () => a.map((x) => sumOfSquares64(x))],
    ['Σ x² in order (float64: synced norm)', () => a.map((x) => sumOfSquaresInOrder(x))],
    ['new values finite? (one owner\'s)', () => a.map((x) => allFinite(x))],
    ['mean of two shares (1/3, 2/3)', (simd) => weightedSum([a, b], [1 / 3, 2 / 3], outs[simd])],
  ];
  for (const [label, f] of passes) {
    const ms: number[][] = [[], []];
    const got: unknown[] = [];
    for (let i = 0; i < 2 + RUNS; i++) {
      for (const simd of [0, 1]) {
        setReduceSimd(simd === 1);
        const t0 = performance.now();
        got[simd] = f(simd);
        if (i >= 2) ms[simd]!.push(performance.now() - t0);
      }
    }
    setReduceSimd(true);
    const same = sameBits(got[0], got[1]);
    const med = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1]!;
    const [js, simd] = ms.map(med) as [number, number];
    row(label, [js, simd, `${(js / simd).toFixed(1)}x`, `${((js * 1e6) / total).toFixed(2)}/${((simd * 1e6) / total).toFixed(2)}`, same ? 'yes' : 'NO']);
  }
}

// ---------------------------------------------------------------------------------------
// (g) the products' transposes: the stock Transpose kernel against the SIMD pass (shared/wasm/kernels.ts)
// ---------------------------------------------------------------------------------------

/** The swapped forward of a new b turns all of b: the stock kernel against the SIMD one, and a whole forward + backward. */
function benchTranspose(): void {
  console.log('\n(g) the products\' transposes, a new b per product (the swapped forward turns b), median ms (stock Transpose, then SIMD)');
  row('shape', ['stock', 'SIMD', 'speedup']);
  const cases: Array<[string, number[], number[]]> = [
    ['fwd, 4 seq: [32,384]x[384,1152]', [32, 384], [384, 1152]],
    ['fwd, 4 seq: [32,384]x[384,1536]', [32, 384], [384, 1536]],
    ['fwd, 4 seq: [32,1536]x[1536,384]', [32, 1536], [1536, 384]],
  ];
  for (const [label, sa, sb] of cases) {
    const a = tf.randomNormal(sa);
    const bRandom = tf.randomNormal(sb);
    const bd = bRandom.dataSync() as Float32Array;
    bRandom.dispose();
    const product = (): tf.Tensor => tf.tidy(() => tf.matMul(a, tf.tensor(bd, sb)));
    registerWasmKernels({ simdTranspose: false });
    const stock = timeMs(product, 3 * RUNS, 2);
    registerWasmKernels({ simdTranspose: true });
    const simd = timeMs(product, 3 * RUNS, 2);
    row(label, [stock, simd, `${(stock / simd).toFixed(1)}x`]);
    a.dispose();
  }
  const model = buildGpt(resolveConfig({ preset: 'paper', overrides: { block_size: 8, dropout: 0, batch_size: 4 } }));
  const step = (): tf.Tensor[] => model.step({ freshWeights: true });
  const seen: Float32Array[][] = [];
  for (const simd of [false, true]) {
    registerWasmKernels({ simdTranspose: simd });
    const g = step(); // also the warm-up
    seen.push(g.map((t) => t.dataSync() as Float32Array));
    tf.dispose(g);
  }
  // interleaved, one step of each in turn: the machine's drift falls on both
  const times: [number[], number[]] = [[], []];
  for (let r = 0; r < Math.max(5, RUNS); r++) {
    for (const k of [0, 1] as const) {
      registerWasmKernels({ simdTranspose: k === 1 });
      const t0 = performance.now();
      tf.dispose(step());
      times[k].push(performance.now() - t0);
    }
  }
  const [stock, simd] = times.map((ts) => [...ts].sort((a, b) => a - b)[ts.length >> 1]!) as [number, number];
  const same = seen[0]!.every((g, i) => g.every((v, j) => Object.is(v, seen[1]![i]![j])));
  row('paper GPT, 4 sequences of 8: fwd+bwd', [stock, simd, `${(stock / simd).toFixed(1)}x`, same ? 'same bits' : 'BITS DIFFER']);
  model.dispose();
}

await initWasmAsm();
await tf.setBackend('wasm');
await tf.ready();
console.log(`tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}, node ${process.version}, runs ${RUNS}`);
benchMatMul();
benchSlices();
benchGpt();
benchSmallRows();
benchAdamW();
benchReduce();
benchTranspose();
console.log(`\nnumTensors at exit: ${tf.memory().numTensors}`);
