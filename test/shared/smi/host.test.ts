// The fused host SMI step (shared/smi/host.ts): the same bits as the separable steps, on every FFT path, with
// and without its wasm kernels, on the cpu and wasm tfjs backends; no state shared between parameters.
import t from 'tap';
import { randomFloats as rand } from '../../helpers.ts';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { disposeFft, initFft, setFftLibrary } from '../../../shared/smi/fft.ts';
import { HOST_STAGES, hostMagnitude, hostStep, setHostSimd, MASK_CHECKSUM_SEED } from '../../../shared/smi/host.ts';
import { SMI_RUNS, alphaAt, view2d, type SmiRun } from '../../../shared/smi/runs.ts';
import { SpectralMomentum, type NamedTensor } from '../../../shared/smi/smi.ts';
import { forward, magnitude, maskChecksum, maskedBlend, threshold, updateHistory } from '../../../shared/smi/steps.ts';
import { weightedSumInto } from '../../../shared/wasm/reduce.ts';

await tf.setBackend('cpu');
await initFft();
t.teardown(() => disposeFft());

// Every path through shared/smi/fft.ts and shared/smi/host.ts: pffft on both axes (wasm kernels), one row (kernels),
// pffft columns with kissfft rows (kernels, then the JS blend), kissfft columns (JS), odd rows / cols, tiny.
const SHAPES: number[][] = [
  [64, 128], [1, 128], [1, 32], [32, 96], [48, 160], [16, 7], [16, 10], [65, 128], [2, 64],
  [7, 33], [6, 10], [3, 2], [2, 2], [5, 1], [1, 1], [1, 7], [128],
];

/** β = 0.5 so that the masks change from step to step. */
const RUN: SmiRun = { ...SMI_RUNS.cosine, beta: 0.5 };
const T = 20;

/** The separable steps of shared/smi/smi.ts over `steps` gradients of one shape: outputs and chained checksums. */
function reference(shape: number[], grads: Float32Array[], run: SmiRun): { outs: Float32Array[]; sums: number[]; H: Float32Array } {
  const [rows, cols] = view2d(shape);
  let H: Float32Array | null = null;
  const outs: Float32Array[] = [];
  const sums: number[] = [];
  grads.forEach((G, s) => {
    const spec = forward(G, rows, cols);
    H = updateHistory(H, magnitude(spec), run.beta);
    const tau = threshold(H, rows, cols, run.q);
    outs.push(maskedBlend(spec, G, H, tau, alphaAt(run, s + 1, T)));
    sums.push(maskChecksum(H, tau, MASK_CHECKSUM_SEED));
  });
  return { outs, sums, H: H! };
}

/** The class on the current backend over the same gradients, one parameter. */
function fused(shape: number[], grads: Float32Array[], run: SmiRun): { outs: Float32Array[]; sums: number[]; H: Float32Array } {
  const smi = new SpectralMomentum(run, 'host');
  const outs: Float32Array[] = [];
  const sums: number[] = [];
  grads.forEach((G, s) => {
    const g = tf.tensor(G, shape);
    const [out] = smi.apply([{ name: 'w', tensor: g }], s + 1, alphaAt(run, s + 1, T)).map((n) => n.tensor);
    outs.push(Float32Array.from(out!.dataSync()));
    sums.push(smi.lastMaskChecksum);
    tf.dispose([g, out!]);
  });
  const H = smi.getState()[0].data;
  smi.dispose();
  return { outs, sums, H };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.every((v, i) => v === y[i]);
}

function gradsFor(shape: number[], steps: number, seed: number): Float32Array[] {
  const n = shape.reduce((a, b) => a * b, 1);
  return Array.from({ length: steps }, (_, s) => rand(n, seed + 7919 * s, 1e-3));
}

t.test('the fused step equals the separable steps bit for bit (outputs, histories, checksums)', async (t) => {
  for (const simd of [true, false]) {
    setHostSimd(simd);
    for (const lib of ['auto', 'kissfft'] as const) {
      setFftLibrary(lib);
      for (const shape of SHAPES) {
        const grads = gradsFor(shape, 4, shape.reduce((a, b) => 31 * a + b, 17));
        const want = reference(shape, grads, RUN);
        const got = fused(shape, grads, RUN);
        const label = `[${shape}] ${lib}${simd ? '' : ', JS passes'}`;
        t.ok(got.outs.every((o, s) => sameBits(o, want.outs[s])), `${label}: outputs`);
        t.ok(sameBits(got.H, want.H), `${label}: history`);
        t.same(got.sums, want.sums, `${label}: checksums`);
      }
    }
  }
  setHostSimd(true);
  setFftLibrary('auto');
});

t.test('hostMagnitude equals magnitude(forward(G)) bit for bit on every path', async (t) => {
  for (const simd of [true, false]) {
    setHostSimd(simd);
    for (const lib of ['auto', 'kissfft'] as const) {
      setFftLibrary(lib);
      for (const shape of SHAPES) {
        const [rows, cols] = view2d(shape);
        const [G] = gradsFor(shape, 1, shape.reduce((a, b) => 13 * a + b, 3));
        const want = magnitude(forward(G, rows, cols));
        t.ok(sameBits(hostMagnitude(G, rows, cols), want), `[${shape}] ${lib}${simd ? '' : ', JS passes'}`);
      }
    }
  }
  setHostSimd(true);
  setFftLibrary('auto');
  t.throws(() => hostMagnitude(new Float32Array(6), 2, 3, new Float32Array(3)), RangeError, 'an output of the wrong size');
});

t.test('hostStep with given magnitudes: the history takes them in place of |Ĝ|, the mask is applied to Ĝ (bit for bit)', async (t) => {
  for (const simd of [true, false]) {
    setHostSimd(simd);
    for (const shape of [[64, 128], [65, 128], [16, 7], [32, 96], [1, 32], [128]]) {
      const [rows, cols] = view2d(shape);
      const grads = gradsFor(shape, 3, 11);
      const mags = gradsFor(shape, 3, 99).map((g) => magnitude(forward(g, rows, cols))); // another gradient's
      let Hr: Float32Array | null = null;
      const H = new Float32Array(mags[0].length);
      grads.forEach((G, s) => {
        const alpha = alphaAt(RUN, s + 1, T);
        Hr = updateHistory(Hr, mags[s], RUN.beta);
        const tau = threshold(Hr, rows, cols, RUN.q);
        const want = maskedBlend(forward(G, rows, cols), G, Hr, tau, alpha);
        const out = new Float32Array(G.length);
        const sum = hostStep(G, rows, cols, H, s === 0, { beta: RUN.beta, q: RUN.q, alpha }, MASK_CHECKSUM_SEED, () => ({ G, out }), undefined, mags[s]);
        const label = `[${shape}] step ${s + 1}${simd ? '' : ', JS passes'}`;
        t.ok(sameBits(out, want), `${label}: output`);
        t.ok(sameBits(H, Hr), `${label}: history`);
        t.equal(sum, maskChecksum(Hr, tau, MASK_CHECKSUM_SEED), `${label}: checksum`);
      });
    }
  }
  setHostSimd(true);
});

t.test('hostStep with weighted magnitudes: Σ w_c·M_c taken where the EMA reads it, as the separable steps on that sum (bit for bit)', async (t) => {
  const beta = 0.9; // β ≠ 1 − β: the EMA's two factors told apart
  for (const simd of [true, false]) {
    setHostSimd(simd);
    for (const shape of [[64, 128], [65, 128], [16, 7], [1, 32], [3, 5]]) {
      const [rows, cols] = view2d(shape);
      const grads = gradsFor(shape, 3, 21);
      const magsA = gradsFor(shape, 3, 31).map((g) => magnitude(forward(g, rows, cols)));
      const magsB = gradsFor(shape, 3, 41).map((g) => magnitude(forward(g, rows, cols)));
      const weights = [0.375 * 0.8123, 0.625 * 0.8123]; // n_c / B times a clip coefficient: products in double
      let Hr: Float32Array | null = null;
      const H = new Float32Array(magsA[0].length);
      grads.forEach((G, s) => {
        const alpha = alphaAt(RUN, s + 1, T);
        const sum = new Float32Array(magsA[s].length);
        weightedSumInto([magsA[s], magsB[s]], weights, sum);
        Hr = updateHistory(Hr, sum, beta);
        const tau = threshold(Hr, rows, cols, RUN.q);
        const want = maskedBlend(forward(G, rows, cols), G, Hr, tau, alpha);
        const out = new Float32Array(G.length);
        const got = hostStep(G, rows, cols, H, s === 0, { beta, q: RUN.q, alpha }, MASK_CHECKSUM_SEED, () => ({ G, out }), undefined, { arrays: [magsA[s], magsB[s]], weights });
        const label = `[${shape}] step ${s + 1}${simd ? '' : ', JS passes'}`;
        t.ok(sameBits(out, want), `${label}: output`);
        t.ok(sameBits(H, Hr), `${label}: history`);
        t.equal(got, maskChecksum(Hr, tau, MASK_CHECKSUM_SEED), `${label}: checksum`);
      });
    }
  }
  setHostSimd(true);
  t.throws(() => hostStep(new Float32Array(6), 2, 3, new Float32Array(4), true, { beta, q: 0.5, alpha: 0.5 }, MASK_CHECKSUM_SEED, () => ({ G: new Float32Array(6), out: new Float32Array(6) }), undefined, { arrays: [new Float32Array(4), new Float32Array(3)], weights: [0.5, 0.5] }), RangeError, 'a chunk\'s magnitudes of the wrong size');
});

t.test('top75 and linear-0.9 runs (q = 0.25, 0.5) also match, over a sequence with a zero gradient', async (t) => {
  for (const name of ['top75', 'linear-0.9'] as const) {
    for (const shape of [[64, 128], [65, 128], [1, 128]]) {
      const grads = gradsFor(shape, 3, 5);
      grads.splice(1, 0, new Float32Array(grads[0].length)); // all-zero step: |X| = 0 everywhere
      const want = reference(shape, grads, SMI_RUNS[name]);
      const got = fused(shape, grads, SMI_RUNS[name]);
      t.ok(got.outs.every((o, s) => sameBits(o, want.outs[s])), `${name} [${shape}]: outputs`);
      t.same(got.sums, want.sums, `${name} [${shape}]: checksums`);
    }
  }
});

t.test('parameters of the same shape share scratch buffers but not state', async (t) => {
  const shape = [64, 128];
  const a = gradsFor(shape, 3, 11);
  const b = gradsFor(shape, 3, 12);
  const together = new SpectralMomentum(RUN, 'host');
  const outs: Float32Array[][] = [[], []];
  for (let s = 0; s < 3; s++) {
    const ins = [{ name: 'a', tensor: tf.tensor(a[s], shape) }, { name: 'b', tensor: tf.tensor(b[s], shape) }];
    const out = together.apply(ins, s + 1, alphaAt(RUN, s + 1, T));
    out.forEach((o, i) => outs[i].push(Float32Array.from(o.tensor.dataSync())));
    tf.dispose([...ins, ...out].map((x) => x.tensor));
  }
  const alone = [fused(shape, a, RUN), fused(shape, b, RUN)];
  for (const i of [0, 1]) {
    t.ok(outs[i].every((o, s) => sameBits(o, alone[i].outs[s])), `${'ab'[i]}: same outputs as when alone`);
    t.ok(sameBits(together.getState()[i].data, alone[i].H), `${'ab'[i]}: same history as when alone`);
  }
  together.dispose();
});

t.test('a step that throws (NaN gradient) leaves no tensor behind and other parameters usable', async (t) => {
  const smi = new SpectralMomentum(RUN, 'host');
  const bad = rand(64 * 128, 1);
  bad[100] = NaN;
  const before = tf.memory().numTensors;
  const g = tf.tensor(bad, [64, 128]);
  t.throws(() => smi.apply([{ name: 'w', tensor: g }], 1, alphaAt(smi.run, 1, T)), RangeError, 'NaN is refused by the quantile');
  g.dispose();
  t.equal(tf.memory().numTensors, before, 'no tensors left behind');
  const shape = [64, 128];
  const grads = gradsFor(shape, 2, 3);
  t.ok(fused(shape, grads, RUN).outs.every((o, s) => sameBits(o, reference(shape, grads, RUN).outs[s])), 'the next run is exact');
  smi.dispose();
});

t.test('wasm backend: tensor memory read and written in place, same bits as the cpu backend, numTensors flat', async (t) => {
  const shapes = [[64, 128], [65, 128], [128], [16, 7], [3, 2]];
  const steps = 4;
  const grads = shapes.map((s, i) => gradsFor(s, steps, 100 + i));
  const run = (): { outs: Float32Array[][]; sums: number[]; state: Float32Array[] } => {
    const smi = new SpectralMomentum(RUN, 'host');
    const outs: Float32Array[][] = [];
    const sums: number[] = [];
    let flat = -1;
    for (let s = 0; s < steps; s++) {
      const ins: NamedTensor[] = shapes.map((shape, i) => ({ name: `p${i}`, tensor: tf.tensor(grads[i][s], shape) }));
      const out = smi.apply(ins, s + 1, alphaAt(smi.run, s + 1, T));
      outs.push(out.map((o) => Float32Array.from(o.tensor.dataSync())));
      sums.push(smi.lastMaskChecksum);
      t.same(out.map((o) => o.tensor.shape), shapes, `${tf.getBackend()} step ${s + 1}: shapes kept`);
      tf.dispose([...ins, ...out].map((x) => x.tensor));
      if (s === 0) flat = tf.memory().numTensors;
      else t.equal(tf.memory().numTensors, flat, `${tf.getBackend()} step ${s + 1}: numTensors flat`);
    }
    const state = smi.getState().map((e) => e.data);
    smi.dispose();
    return { outs, sums, state };
  };
  const onCpu = run();
  await tf.setBackend('wasm');
  try {
    const onWasm = run();
    t.ok(onWasm.outs.every((step, s) => step.every((o, i) => sameBits(o, onCpu.outs[s][i]))), 'outputs equal');
    t.same(onWasm.sums, onCpu.sums, 'checksums equal');
    t.ok(onWasm.state.every((h, i) => sameBits(h, onCpu.state[i])), 'histories equal');
  } finally {
    await tf.setBackend('cpu');
  }
});

t.test('hostProfile: every stage is timed, and only when asked', async (t) => {
  const smi = new SpectralMomentum(RUN, 'host');
  const g = tf.tensor(rand(64 * 128, 9), [64, 128]);
  const step = (s: number) => tf.dispose(smi.apply([{ name: 'w', tensor: g }], s, alphaAt(RUN, s, T)).map((n) => n.tensor));
  step(1);
  const profile = new Float64Array(HOST_STAGES.length);
  smi.hostProfile = profile;
  step(2);
  t.ok(profile.every((ms) => ms >= 0) && profile.some((ms) => ms > 0), `stages timed: ${[...profile].map((m) => m.toFixed(3))}`);
  smi.hostProfile = null;
  const copy = profile.slice();
  step(3);
  t.same(profile, copy, 'not touched once unset');
  g.dispose();
  smi.dispose();
});
