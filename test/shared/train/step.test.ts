// The one update step (shared/train/step.ts): torch's clip, the global norm from per-shard sums, and each form's arithmetic.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { TrainingError } from '../../../shared/errors.ts';
import { AdamW } from '../../../shared/model/adamw.ts';
import { SharedSpectralHistory } from '../../../shared/parallel/spectral.ts';
import { disposeFft, initFft } from '../../../shared/smi/fft.ts';
import { SMI_RUNS, alphaAt, view2d } from '../../../shared/smi/runs.ts';
import { SpectralMomentum } from '../../../shared/smi/smi.ts';
import { applyUpdate, clipAndFilter, globalClip, sumOfSquares, type Shard } from '../../../shared/train/step.ts';
import { randomFloats } from '../../helpers.ts';

await initFft();
t.teardown(() => disposeFft());
const SHAPES = [[16, 24], [24], [8, 12]];
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const halfSize = (s: number[]) => {
  const [rows, cols] = view2d(s);
  return rows * (Math.floor(cols / 2) + 1);
};
const grads = (seed: number, scale = 1) => SHAPES.map((s, i) => randomFloats(size(s), seed * 10 + i, scale));

function shard(smi: SpectralMomentum | null, shared: SharedSpectralHistory | null = null): Shard {
  const params = SHAPES.map((s, i) => tf.variable(tf.tensor(randomFloats(size(s), 100 + i, 0.02), s)));
  return { names: SHAPES.map((_, i) => `p${i}`), shapes: SHAPES, params, opt: new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 }), smi, shared };
}
const weights = (s: Shard) => s.params.map((p) => Array.from(p.dataSync()));
const dispose = (s: Shard) => {
  tf.dispose([...s.params]);
  s.opt.dispose();
  s.smi?.dispose();
};

t.test('globalClip is torch clip_grad_norm_: norm 5 clips to 1/(5 + 1e-6), below the threshold nothing, grad_clip 0 off', async (t) => {
  const g = [new Float32Array([3, 0]), new Float32Array([0, 4])];
  const { norm, coef } = globalClip([sumOfSquares(g)], 1, 1, false);
  t.equal(norm, 5);
  t.equal(coef, 1 / (5 + 1e-6));
  t.equal(globalClip([sumOfSquares(g)], 10, 1, false).coef, 1, 'under the threshold');
  t.equal(globalClip([sumOfSquares(g)], 0, 1, false).coef, 1, 'grad_clip 0 disables it');
  t.throws(() => globalClip([NaN], 1, 7, true), TrainingError, 'a NaN norm refuses the step');
  t.throws(() => globalClip([Infinity], 1, 7, false), /gradient norm is Infinity at step 7/);
});

for (const backend of ['cpu', 'wasm']) {
  t.test(`${backend}: the tensor form's norm is tf.sqrt of the float32 sum, bit for bit; per-shard sums give the whole norm`, async (t) => {
    await tf.setBackend(backend);
    for (let seed = 1; seed <= 20; seed++) {
      const ts = grads(seed, seed).map((g, i) => tf.tensor(g, SHAPES[i]!));
      const ref = tf.tidy(() => tf.sqrt(tf.addN(ts.map((g) => tf.sum(tf.square(g))))).dataSync()[0]!);
      const { norm } = globalClip([sumOfSquares(ts)], 1, 1, true);
      t.ok(Object.is(norm, ref), `seed ${seed}: ${norm} = ${ref}`);
      const host = grads(seed, seed);
      const whole = globalClip([sumOfSquares(host)], 1, 1, false).norm;
      const sharded = globalClip([sumOfSquares(host.slice(0, 1)), sumOfSquares(host.slice(1))], 1, 1, false).norm;
      t.ok(Math.abs(sharded - whole) <= 1e-12 * whole, `seed ${seed}: two shards' sums ${sharded} ≈ one ${whole}`);
      tf.dispose(ts);
    }
  });
}

t.test('tensor form: clip → SMI → AdamW as written out by hand, bit for bit; numTensors flat over 30 steps', async (t) => {
  await tf.setBackend('wasm');
  const run = SMI_RUNS.cosine;
  const a = shard(new SpectralMomentum(run, 'host', 1337));
  const b = shard(new SpectralMomentum(run, 'host', 1337));
  let flat = -1;
  let clipped = 0;
  for (let k = 1; k <= 30; k++) {
    const g = grads(k, 3);
    const alpha = alphaAt(run, k, 30);
    const ta = g.map((x, i) => tf.tensor(x, SHAPES[i]!));
    const { coef } = globalClip([sumOfSquares(ta)], 1, k, true);
    if (coef < 1) clipped++;
    applyUpdate(a, ta, { clip: coef, step: k, lr: 1e-3, alpha });
    // by hand: the same ops in the same order
    const tb = g.map((x, i) => tf.tensor(x, SHAPES[i]!));
    const filtered = clipAndFilter(b.smi, b.names, tb, coef, k, alpha);
    b.opt.apply([...b.params], filtered, 1e-3);
    tf.dispose([...tb, ...filtered]);
    if (k === 2) flat = tf.memory().numTensors;
    if (k > 2) t.equal(tf.memory().numTensors, flat, `step ${k}: numTensors flat`);
  }
  t.same(weights(a), weights(b), 'the same weights');
  t.equal(clipped, 30, 'every step was clipped');
  dispose(a);
  dispose(b);
});

t.test('synced form: the shared history blends κḡ and AdamW applies it, as SharedSpectralHistory.blendMean + AdamW; committed after', async (t) => {
  await tf.setBackend('wasm');
  const run = SMI_RUNS.cosine;
  const a = shard(null, new SharedSpectralHistory(run.beta, run.q));
  const b = shard(null);
  const ref = new SharedSpectralHistory(run.beta, run.q);
  for (let k = 1; k <= 4; k++) {
    const mean = grads(k, 2);
    const spectra = [0, 1].map((c) => SHAPES.map((s, p) => randomFloats(halfSize(s), 1000 * k + 10 * c + p).map(Math.abs)));
    const w = [0.5, 0.5];
    const { coef } = globalClip([sumOfSquares(mean)], 1, k, false);
    const alpha = alphaAt(run, k, 10);
    const { maskChecksum } = applyUpdate(a, mean, { clip: coef, step: k, lr: 1e-3, alpha, magnitudes: { spectra, weights: w } });
    const { tensors, checksum } = ref.blendMean(b.names, SHAPES, mean, spectra, w, coef, alpha);
    const ts = tensors.map((x, i) => tf.tensor(x, SHAPES[i]!));
    b.opt.apply([...b.params], ts, 1e-3);
    tf.dispose(ts);
    ref.commit();
    t.equal(maskChecksum, checksum, `step ${k}: the same masks`);
  }
  t.same(weights(a), weights(b), 'the same weights');
  t.same(a.shared!.getState(), ref.getState(), 'the same committed history');
  dispose(a);
  dispose(b);
});

t.test('blended form: AdamW alone on the averaged blends', async (t) => {
  await tf.setBackend('cpu');
  const a = shard(new SpectralMomentum(SMI_RUNS.cosine, 'host'));
  const b = shard(null);
  const g = grads(5);
  applyUpdate(a, g, { clip: 0.5, step: 1, lr: 1e-3, alpha: 0.3, blended: true });
  const ts = g.map((x, i) => tf.tensor(x, SHAPES[i]!));
  b.opt.apply([...b.params], ts, 1e-3);
  tf.dispose(ts);
  t.same(weights(a), weights(b), 'no clip, no SMI: the blends are already both');
  t.same(a.smi!.getState(), [], 'SMI untouched');
  t.throws(() => applyUpdate(a, g.slice(1), { clip: 1, step: 2, lr: 1e-3, alpha: 0, blended: true }), RangeError, 'a gradient per tensor of the shard');
  dispose(a);
  dispose(b);
});
