// The fused AdamW pass on the wasm backend (shared/wasm/adamw.ts) against AdamW's tensor ops: the same bits, no leaks.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { AdamW, type AdamWOptions } from '../../../shared/model/adamw.ts';
import { initWasmAsm } from '../../../shared/wasm/asm.ts';
import { wasmAdamW, wasmAdamWAvailable } from '../../../shared/wasm/adamw.ts';

await initWasmAsm();

/** Deterministic values (mulberry32) in [-scale, scale), with exact zeros and a few large ones mixed in. */
function values(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    const u = ((x ^ (x >>> 14)) >>> 0) / 4294967296;
    out[i] = i % 17 === 0 ? 0 : i % 29 === 0 ? (u - 0.5) * 1e3 : (u * 2 - 1) * scale;
  }
  return out;
}

// odd sizes (the scalar tail of the pass), a vector (no weight decay), one of a single value
const SHAPES = [[37, 29], [6], [128, 64], [1], [5, 3]];
const OPTS: AdamWOptions = { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
const LRS = [1e-3, 2e-3, 6e-3, 5e-3, 1e-4, 3e-3, 1e-2];

/** Weights and moments after LRS.length steps, as bit patterns. */
async function run(backend: 'wasm' | 'cpu', engine: 'auto' | 'tensor', opts: AdamWOptions = OPTS): Promise<Uint32Array[]> {
  await tf.setBackend(backend);
  const params = SHAPES.map((s, i) => tf.variable(tf.tensor(values(s.reduce((a, b) => a * b, 1), 100 + i, 0.5), s)));
  const opt = new AdamW({ ...opts, engine });
  LRS.forEach((lr, step) => {
    const grads = SHAPES.map((s, i) => tf.tensor(values(s.reduce((a, b) => a * b, 1), 1000 * step + i, 0.02), s));
    opt.apply(params, grads, lr);
    tf.dispose(grads);
  });
  const bits = [...params.map((p) => p.dataSync() as Float32Array), ...opt.getState().moments].map((a) => new Uint32Array(Float32Array.from(a).buffer));
  opt.dispose();
  tf.dispose(params);
  return bits;
}

t.test('the fused pass is there on wasm, not on cpu', async (t) => {
  await tf.setBackend('wasm');
  t.ok(wasmAdamWAvailable(), 'wasm: available');
  await tf.setBackend('cpu');
  t.notOk(wasmAdamWAvailable(), 'cpu: not (AdamW takes its tensor ops)');
});

t.test('seven steps: weights and both moments equal to the bit to the tensor ops on wasm and on cpu', async (t) => {
  const fused = await run('wasm', 'auto');
  const ops = await run('wasm', 'tensor');
  const cpu = await run('cpu', 'tensor');
  t.equal(fused.length, 3 * SHAPES.length);
  fused.forEach((f, i) => {
    const what = i < SHAPES.length ? `weights of [${SHAPES[i]}]` : `moment ${i - SHAPES.length}`;
    t.same(f, ops[i], `${what}: fused = tensor ops on wasm`);
    t.same(f, cpu[i], `${what}: fused = tensor ops on cpu`);
  });
  const noDecay = await run('wasm', 'auto', { ...OPTS, weightDecay: 0 });
  t.notSame(noDecay[0], fused[0], 'and the comparison can fail: without weight decay the matrix\'s weights differ');
  t.same(noDecay, await run('wasm', 'tensor', { ...OPTS, weightDecay: 0 }), 'without weight decay too');
});

t.test('a parameter gets a new tensor: what shared its old data keeps the old values', async (t) => {
  await tf.setBackend('wasm');
  const p = tf.variable(tf.tensor(values(35, 7, 0.5), [5, 7]));
  const alias = tf.clone(p); // shares p's data, as a product's packed weights or a kept activation might
  const before = alias.dataSync().slice();
  const opt = new AdamW(OPTS);
  const g = tf.tensor(values(35, 8, 0.1), [5, 7]);
  opt.apply([p], [g], 1e-2);
  t.same(alias.dataSync(), before, 'the old data is untouched');
  t.notSame(p.dataSync(), before, 'the parameter moved');
  opt.dispose();
  tf.dispose([p, alias, g]);
});

t.test('numTensors and bytes flat over 30 fused steps; getState/setState continues to the bit; dispose frees all', async (t) => {
  await tf.setBackend('wasm');
  const shape = [33, 9];
  const grad = (s: number) => tf.tensor(values(297, s, 0.05), shape);
  const a = tf.variable(tf.tensor(values(297, 1, 0.3), shape));
  const b = tf.variable(tf.tensor(values(297, 1, 0.3), shape));
  const start = tf.memory();
  const optA = new AdamW(OPTS);
  const optB = new AdamW(OPTS);
  const step = (opt: AdamW, p: tf.Variable, s: number) => {
    const g = grad(s);
    opt.apply([p], [g], 1e-3);
    g.dispose();
  };
  step(optA, a, 1);
  const after1 = tf.memory();
  for (let s = 2; s <= 30; s++) step(optA, a, s);
  t.equal(tf.memory().numTensors, after1.numTensors, `numTensors ${after1.numTensors} after step 1 and after step 30`);
  t.equal(tf.memory().numBytes, after1.numBytes, 'bytes too');
  for (let s = 1; s <= 12; s++) step(optB, b, s);
  const saved = optB.getState();
  optB.dispose();
  const optC = new AdamW(OPTS);
  optC.setState([b], saved);
  for (let s = 13; s <= 30; s++) step(optC, b, s);
  t.same(b.dataSync(), a.dataSync(), 'restored after 12 steps, 18 more: the uninterrupted weights');
  t.same(optC.getState().moments, optA.getState().moments, 'and moments');
  optA.dispose();
  optC.dispose();
  t.equal(tf.memory().numTensors, start.numTensors, 'disposed: numTensors as before the optimizers');
  t.equal(tf.memory().numBytes, start.numBytes, 'and bytes');
  tf.dispose([a, b]);
});

t.test('sizes that differ are refused before anything is written, in any tensor of the step', async (t) => {
  await tf.setBackend('wasm');
  const p = [tf.variable(tf.ones([4, 4])), tf.variable(tf.ones([2, 3]))];
  const m = [tf.variable(tf.zeros([4, 4])), tf.variable(tf.zeros([2, 3]))];
  const v = [tf.variable(tf.zeros([4, 4])), tf.variable(tf.zeros([2, 3]))];
  const g = [tf.ones([4, 4]), tf.ones([3, 3])]; // the first fits, the second does not
  const c = { beta1: 0.9, oneMinusBeta1: 0.1, beta2: 0.99, oneMinusBeta2: 0.01, bc2Sqrt: 0.1, eps: 1e-8, stepSize: 0.01 };
  t.throws(() => wasmAdamW(p, g, m, v, [1, 1], c), RangeError);
  t.same([...p[0]!.dataSync()], new Array(16).fill(1), 'the first tensor\'s weights unchanged');
  t.same([...m[0]!.dataSync()], new Array(16).fill(0), 'and its moments');
  t.same([...p[1]!.dataSync()], new Array(6).fill(1), 'the second\'s too');
  const opt = new AdamW(OPTS);
  t.throws(() => opt.apply(p, g, 1e-3), RangeError, 'through AdamW.apply too');
  t.equal(opt.step, 0, 'and the refused step is not counted');
  t.same([...p[0]!.dataSync()], new Array(16).fill(1), 'weights still unchanged');
  opt.dispose();
  tf.dispose([...p, ...m, ...v, ...g]);
});
