// Benchmarks stock vs supplied tfjs wasm kernels (BatchMatMul, Slice/Unpack/SplitV, GPT fwd+bwd).
//
// Usage: npx tsx scripts/bench-wasm-kernels.ts [--runs N] [--big]
//   --runs N  timed runs per measurement (median is printed; default 7; matmuls 3N, GPT step max(3, N/2))
//   --big     also unstack a [384,256,256] tensor with the stock kernel (takes ~20 s)
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmKernels, WASM_KERNELS } from '../../shared/wasm/kernels.ts';

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

interface GptConfig {
  vocab: number;
  block: number;
  layers: number;
  heads: number;
  width: number;
  batch: number;
}

/** Builds a small nanoGPT-style model from plain tf ops; returns a function computing loss + grads. */
function buildGpt(cfg: GptConfig): { step: () => tf.Tensor[]; dispose: () => void } {
  const { vocab: V, block: T, layers: L, heads: H, width: C, batch: B } = cfg;
  const hs = C / H;
  // tidy disposes the initial-value tensors; the variables keep their data alive.
  const init = (shape: number[], std = 0.02): tf.Variable => tf.tidy(() => tf.variable(tf.randomNormal(shape, 0, std)));
  const ones = (n: number): tf.Variable => tf.tidy(() => tf.variable(tf.ones([n])));
  const zeros = (n: number): tf.Variable => tf.tidy(() => tf.variable(tf.zeros([n])));
  const wte = init([V, C]);
  const wpe = init([T, C]);
  const layers = Array.from({ length: L }, () => ({
    ln1g: ones(C), ln1b: zeros(C),
    wqkv: init([C, 3 * C]), bqkv: zeros(3 * C),
    wo: init([C, C]), bo: zeros(C),
    ln2g: ones(C), ln2b: zeros(C),
    w1: init([C, 4 * C]), b1: zeros(4 * C),
    w2: init([4 * C, C]), b2: zeros(C),
  }));
  const lnfg = ones(C);
  const lnfb = zeros(C);
  const vars: tf.Variable[] = [wte, wpe, lnfg, lnfb, ...layers.flatMap((l) => Object.values(l))];

  const maskData = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) maskData[i * T + j] = -1e9;
  const mask = tf.tensor(maskData, [1, 1, T, T]);
  const rand = (): number => Math.floor(Math.random() * V);
  const idx = tf.tensor1d(Array.from({ length: B * T }, rand), 'int32');
  const targets = tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: B * T }, rand), 'int32'), V));
  const pos = tf.range(0, T, 1, 'int32');

  const layerNorm = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor => {
    const { mean, variance } = tf.moments(x, -1, true);
    return x.sub(mean).mul(tf.rsqrt(variance.add(1e-5))).mul(g).add(b);
  };
  const gelu = (x: tf.Tensor): tf.Tensor =>
    x.mul(0.5).mul(tf.tanh(x.add(x.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI))).add(1));

  const loss = (): tf.Scalar => {
    const tok = tf.gather(wte, idx).reshape([B, T, C]);
    let x = tok.add(tf.gather(wpe, pos)).reshape([B * T, C]);
    for (const l of layers) {
      const h = layerNorm(x, l.ln1g, l.ln1b);
      const qkv = tf.matMul(h, l.wqkv).add(l.bqkv).reshape([B, T, 3 * C]);
      const [q, k, v] = tf.split(qkv, 3, 2).map((t) => t.reshape([B, T, H, hs]).transpose([0, 2, 1, 3]));
      const att = tf.softmax(tf.matMul(q, k, false, true).mul(1 / Math.sqrt(hs)).add(mask));
      const y = tf.matMul(att, v).transpose([0, 2, 1, 3]).reshape([B * T, C]);
      x = x.add(tf.matMul(y, l.wo).add(l.bo));
      const h2 = layerNorm(x, l.ln2g, l.ln2b);
      x = x.add(tf.matMul(gelu(tf.matMul(h2, l.w1).add(l.b1)), l.w2).add(l.b2));
    }
    const logits = tf.matMul(layerNorm(x, lnfg, lnfb), wte, false, true); // tied head
    return tf.neg(tf.sum(tf.logSoftmax(logits).mul(targets))).div(B * T) as tf.Scalar;
  };

  return {
    step: () => {
      const { value, grads } = tf.variableGrads(loss, vars);
      return [value, ...Object.values(grads)];
    },
    dispose: () => tf.dispose([...vars, mask, idx, targets, pos]),
  };
}

function benchGpt(): void {
  const cfg: GptConfig = { vocab: 65, block: 64, layers: 4, heads: 4, width: 128, batch: 12 };
  console.log(
    `\n(c) GPT fwd+bwd (tf.variableGrads), ${cfg.layers} layers, ${cfg.heads} heads, width ${cfg.width}, ` +
      `block ${cfg.block}, batch ${cfg.batch}, vocab ${cfg.vocab}; median ms`,
  );
  row('kernels', ['ms/step', 'loss']);
  const model = buildGpt(cfg);
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
      lossVal = out[0].dataSync()[0];
      return out;
    }, runs);
    row(mode === 'stock' ? 'stock (+UnsortedSegmentSum)' : `supplied (matMulSlices=${mode})`, [ms, lossVal.toFixed(4)]);
  }
  model.dispose();
}

await tf.setBackend('wasm');
await tf.ready();
console.log(`tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}, node ${process.version}, runs ${RUNS}`);
benchMatMul();
benchSlices();
benchGpt();
console.log(`\nnumTensors at exit: ${tf.memory().numTensors}`);
