// AdamW (shared/model/adamw.ts) against torch.optim.AdamW written out in float64; state round trip; no leaks.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { AdamW } from '../../../shared/model/adamw.ts';

await tf.setBackend('cpu');

/** torch.optim.AdamW written out in float64 for one tensor, the independent reference. */
function torchAdamW(p: number[], grads: number[][], lrs: number[], decay: boolean, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1): number[] {
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  p = [...p];
  grads.forEach((g, s) => {
    const step = s + 1;
    const lr = lrs[s]!;
    for (let i = 0; i < p.length; i++) {
      if (decay) p[i]! *= 1 - lr * wd;
      m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
      v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
      const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - b2 ** step) + eps;
      p[i]! -= (lr / (1 - b1 ** step)) * (m[i]! / denom);
    }
  });
  return p;
}

t.test('first step by hand: p·(1 − lr·wd) − lr·sign(g) for a matrix, no decay for a vector', async (t) => {
  const w = tf.variable(tf.tensor2d([[1, -2], [0.5, 3]]));
  const g = tf.tensor2d([[0.1, -0.3], [2, -1e-3]]);
  const ln = tf.variable(tf.tensor1d([1, 1]));
  const gl = tf.tensor1d([0.5, -0.5]);
  const opt = new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  opt.apply([w, ln], [g, gl], 0.01);
  const lr = 0.01;
  // m̂ = g and v̂ = g² after one step, so the update is lr·g/(|g| + eps) ≈ lr·sign(g)
  const expectW = [1 * (1 - lr * 0.1) - lr, -2 * (1 - lr * 0.1) + lr, 0.5 * (1 - lr * 0.1) - lr, 3 * (1 - lr * 0.1) + lr * (1e-3 / (1e-3 + 1e-8))];
  const gotW = Array.from(w.dataSync());
  expectW.forEach((e, i) => t.ok(Math.abs(gotW[i]! - e) < 1e-6, `w[${i}] ${gotW[i]} ≈ ${e}`));
  t.same(Array.from(ln.dataSync()).map((x) => +x.toFixed(6)), [0.99, 1.01], 'LayerNorm gain: no weight decay');
  opt.dispose();
  tf.dispose([w, g, ln, gl]);
});

t.test('five steps match torch.optim.AdamW written in float64', async (t) => {
  const p0 = [0.3, -0.7, 1.2, 0.05, -0.4, 0.9];
  const gs = [1, 2, 3, 4, 5].map((s) => p0.map((_, i) => Math.sin(s * 1.7 + i) * (i + 1) * 0.1));
  const lrs = [1e-3, 2e-3, 3e-3, 2.5e-3, 1e-3];
  for (const rank2 of [true, false]) {
    const shape = rank2 ? [2, 3] : [6];
    const w = tf.variable(tf.tensor(p0, shape));
    const opt = new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
    gs.forEach((g, s) => tf.tidy(() => opt.apply([w], [tf.tensor(g, shape)], lrs[s]!)));
    const want = torchAdamW(p0, gs, lrs, rank2);
    const got = Array.from(w.dataSync());
    t.ok(got.every((x, i) => Math.abs(x - want[i]!) < 1e-6), `rank ${shape.length}: ${got} ≈ ${want}`);
    t.equal(opt.step, 5);
    opt.dispose();
    w.dispose();
  }
});

t.test('getState/setState continues identically; numTensors flat over steps', async (t) => {
  const shape = [3, 4];
  const grad = (s: number) => tf.tensor(Array.from({ length: 12 }, (_, i) => Math.cos(s + i)), shape);
  const a = tf.variable(tf.ones(shape));
  const optA = new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  for (let s = 1; s <= 6; s++) tf.tidy(() => optA.apply([a], [grad(s)], 1e-2));
  const b = tf.variable(tf.ones(shape));
  const optB = new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  for (let s = 1; s <= 3; s++) tf.tidy(() => optB.apply([b], [grad(s)], 1e-2));
  const saved = optB.getState();
  const optC = new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  optC.setState([b], saved);
  const before = tf.memory().numTensors;
  for (let s = 4; s <= 6; s++) tf.tidy(() => optC.apply([b], [grad(s)], 1e-2));
  t.equal(tf.memory().numTensors, before, 'no tensors leak per step');
  t.same(Array.from(b.dataSync()), Array.from(a.dataSync()), 'bit-identical after restore');
  for (const x of [optA, optB, optC]) x.dispose();
  tf.dispose([a, b]);
});

t.test('tf.memory().numTensors flat over 50 steps once the moments exist', async (t) => {
  const p = [tf.variable(tf.ones([8, 6])), tf.variable(tf.ones([6]))];
  const opt = new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  const step = (s: number) => {
    const g = p.map((v) => tf.fill(v.shape, Math.sin(s)));
    opt.apply(p, g, 1e-3);
    tf.dispose(g);
  };
  step(1);
  const before = tf.memory().numTensors;
  for (let s = 2; s <= 50; s++) step(s);
  t.equal(tf.memory().numTensors, before, `numTensors ${before} after step 1 and after step 50`);
  opt.dispose();
  tf.dispose(p);
});

t.test('dispose() frees every tensor the moments made, whether created on the first step or by setState (numTensors and bytes back where they were)', async (t) => {
  const p = [tf.variable(tf.ones([8, 6])), tf.variable(tf.ones([6]))];
  const before = tf.memory();
  const opt = new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  const g = p.map((v) => tf.fill(v.shape, 0.5));
  opt.apply(p, g, 1e-3);
  tf.dispose(g);
  const state = opt.getState();
  opt.dispose();
  t.equal(tf.memory().numTensors, before.numTensors, 'after the first step\'s moments: numTensors as before');
  t.equal(tf.memory().numBytes, before.numBytes, 'and their bytes freed');
  const again = new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  again.setState(p, state);
  t.same(again.getState().moments.map((m) => [...m]), state.moments.map((m) => [...m]), 'setState holds the moments given');
  again.dispose();
  t.equal(tf.memory().numTensors, before.numTensors, 'after setState\'s moments too');
  t.equal(tf.memory().numBytes, before.numBytes);
  tf.dispose(p);
});
