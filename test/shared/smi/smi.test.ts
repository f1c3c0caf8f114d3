// SMI (docs/algorithm.md): the host and tf engines' steps and SpectralMomentum against the float64 references of reference.ts.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { disposeFft, halfCols, initFft, irfft2, rfft2, setFftLibrary, type FftLibrary, type HalfSpectrum } from '../../../shared/smi/fft.ts';
import { SMI_RUNS, alphaAt, type SmiRun } from '../../../shared/smi/runs.ts';
import { SpectralMomentum, type NamedTensor } from '../../../shared/smi/smi.ts';
import { forward, magnitude, maskChecksum, maskedBlend, threshold, updateHistory } from '../../../shared/smi/steps.ts';
import { tfForward, tfMaskedBlend, tfThreshold, tfUpdateHistory, disposeTfSpectrum } from '../../../shared/smi/tf.ts';
import { halfSpectrumQuantile } from '../../../shared/smi/quantile.ts';
import { dft2, halfIndex, halfOf, npQuantile, randn, refAlpha, refSmi, relErr, relErrC } from './reference.ts';

await tf.setBackend('cpu');
await initFft();
t.teardown(() => disposeFft());

/** tfForward of x, downloaded. */
function tfSpectrumOf(x: Float32Array, rows: number, cols: number): HalfSpectrum {
  const G = tf.tensor2d(x, [rows, cols]);
  const spec = tfForward(G);
  const out = {
    rows,
    cols,
    half: halfCols(cols),
    re: spec.re.dataSync() as Float32Array,
    im: spec.im.dataSync() as Float32Array,
  };
  disposeTfSpectrum(spec);
  G.dispose();
  return out;
}

const TF_SHAPES: [number, number][] = [
  [6, 10],
  [5, 8],
  [1, 32],
  [5, 7],
  [4, 9],
  [2, 2],
  [3, 1],
];

t.test('tf engine forward / inverse against the float64 DFT (cpu backend)', async (t) => {
  const before = tf.memory().numTensors;
  for (const [rows, cols] of TF_SHAPES) {
    const x = randn(rows * cols, rows * 100 + cols);
    const full = dft2(x, null, rows, cols);
    const ref = halfOf(full, rows, cols);
    const spec = tfSpectrumOf(x, rows, cols);
    const fwd = relErrC(spec.re, spec.im, ref.re, ref.im);
    t.ok(fwd < 1e-5, `forward ${rows}×${cols}: rel err ${fwd.toExponential(2)}`);
    // The inverse alone: keep every bin (H = 1 ≥ τ = 1) and take all of G′ (α = 1).
    const back = tf.tidy(() => {
      const s = { rows, cols, re: tf.tensor2d(ref.re, [ref.half, rows]), im: tf.tensor2d(ref.im, [ref.half, rows]) };
      return tfMaskedBlend(s, tf.zeros([rows, cols]), tf.ones([ref.half, rows]), 1, 1).dataSync() as Float32Array;
    });
    const inv = relErr(back, x);
    t.ok(inv < 1e-5, `inverse ${rows}×${cols}: rel err ${inv.toExponential(2)}`);
  }
  t.equal(tf.memory().numTensors, before, 'no tensors left behind');
});

// ---- the whole algorithm against the reference -------------------------------------------------------------

/** Runs `steps` steps of SpectralMomentum on one gradient of rows × cols; returns the host arrays. */
function runSmi(engine: 'host' | 'tf', run: SmiRun, grads: Float32Array[], rows: number, cols: number, T: number): Float32Array[] {
  const smi = new SpectralMomentum(run, engine);
  const outs = grads.map((g, s) => {
    const input = tf.tensor2d(g, [rows, cols]);
    const [out] = smi.apply([{ name: 'w', tensor: input }], s + 1, alphaAt(run, s + 1, T));
    const data = out.tensor.dataSync() as Float32Array;
    tf.dispose([input, out.tensor]);
    return data;
  });
  smi.dispose();
  return outs;
}

t.test('g_final of both engines against the 9 steps in float64 (full spectrum, sorted quantile)', async (t) => {
  const T = 10;
  const cases: { engine: 'host' | 'tf'; shapes: [number, number][] }[] = [
    // pffft rows and kissfft columns, pffft on both axes, one row, odd rows (kissfft complex), kissfft real rows
    { engine: 'host', shapes: [[65, 128], [96, 160], [1, 32], [7, 33], [128, 384], [6, 10], [3, 2]] },
    { engine: 'tf', shapes: [[6, 10], [5, 8], [1, 32], [5, 7]] },
  ];
  for (const { engine, shapes } of cases) {
    for (const [rows, cols] of shapes) {
      for (const name of ['linear-0.9', 'top75', 'cosine'] as const) {
        const run = SMI_RUNS[name];
        const grads = [0, 1, 2].map((s) => randn(rows * cols, 7 * rows + cols + 1000 * s));
        const ref = refSmi(grads, rows, cols, run, T);
        const got = runSmi(engine, run, grads, rows, cols, T);
        const err = Math.max(...got.map((g, s) => relErr(g, ref[s])));
        t.ok(err < 1e-5, `${engine} ${name} ${rows}×${cols}, 3 steps: rel err ${err.toExponential(2)}`);
      }
    }
  }
});

// ---- properties ----------------------------------------------------------------------------------------------

t.test('q = 0 keeps every bin: G′ = G', async (t) => {
  const [rows, cols] = [65, 128];
  const G = randn(rows * cols, 1);
  const spec = forward(G, rows, cols);
  const H = updateHistory(null, magnitude(spec), 0.9);
  const tau = threshold(H, rows, cols, 0);
  t.ok(H.every((h) => h >= tau), 'every bin passes the mask');
  const g1 = maskedBlend(spec, G, H, tau, 1);
  t.ok(relErr(g1, G) < 1e-6, `host: rel err ${relErr(g1, G).toExponential(2)}`);
  const tfOut = runSmi('tf', { ...SMI_RUNS.top75, q: 0, alpha0: 1, alpha1: 1 }, [randn(30, 2)], 5, 6, 10)[0];
  t.ok(relErr(tfOut, randn(30, 2)) < 1e-6, 'tf engine too');
});

t.test('α = 0 gives the raw gradient exactly', async (t) => {
  const run: SmiRun = { schedule: 'linear', alpha0: 0, alpha1: 0, beta: 0.9, q: 0.5 };
  const g = randn(6 * 10, 3);
  for (const engine of ['host', 'tf'] as const) {
    const [out] = runSmi(engine, run, [g], 6, 10, 10);
    t.same(Array.from(out), Array.from(g), engine);
  }
});

t.test('schedules: end points, cosine midpoint, the six runs', async (t) => {
  for (const name of ['linear-0.9', 'linear-0.5', 'ema-0.99', 'top75', 'cosine'] as const) {
    const run = SMI_RUNS[name];
    t.equal(alphaAt(run, 0, 100), run.alpha0, `${name} t = 0 → α0`);
    t.ok(Math.abs(alphaAt(run, 100, 100) - run.alpha1) < 1e-15, `${name} t = T → α1`);
    t.ok(Math.abs(alphaAt(run, 37, 100) - refAlpha(run, 37, 100)) < 1e-15, `${name} t = 37`);
  }
  t.ok(Math.abs(alphaAt(SMI_RUNS.cosine, 50, 100) - 0.3) < 1e-15, 'cosine midpoint = (α0 + α1)/2');
  t.ok(Math.abs(alphaAt(SMI_RUNS['linear-0.5'], 25, 100) - 0.2) < 1e-15, 'linear quarter point');
  t.equal(alphaAt(SMI_RUNS.baseline, 50, 100), 0, 'baseline: 0');
  const table: [string, string, number, number, number, number][] = [
    ['linear-0.9', 'linear', 0.1, 0.9, 0.9, 0.5],
    ['linear-0.5', 'linear', 0.1, 0.5, 0.9, 0.5],
    ['ema-0.99', 'linear', 0.1, 0.5, 0.99, 0.5],
    ['top75', 'linear', 0.1, 0.5, 0.99, 0.25],
    ['cosine', 'cosine', 0.1, 0.5, 0.99, 0.25],
  ];
  for (const [name, schedule, alpha0, alpha1, beta, q] of table) {
    t.same(SMI_RUNS[name as keyof typeof SMI_RUNS], { schedule, alpha0, alpha1, beta, q }, name);
  }
  t.equal(SMI_RUNS.baseline.schedule, 'none');
});

t.test('history EMA over 3 steps (host and tf engines agree bit for bit)', async (t) => {
  const beta = 0.9;
  const Ms = [1, 2, 3].map((s) => randn(12, s).map(Math.abs));
  let H: Float32Array | null = null;
  for (const M of Ms) H = updateHistory(H, M, beta);
  const expected = Ms[0].map((m0, i) => beta * beta * m0 + beta * (1 - beta) * Ms[1][i] + (1 - beta) * Ms[2][i]);
  t.ok(relErr(H!, expected) < 1e-6, `H₃ = β²M₁ + β(1−β)M₂ + (1−β)M₃ (rel err ${relErr(H!, expected).toExponential(2)})`);
  t.not(updateHistory(null, Ms[0], beta), Ms[0], 'the first step copies M');
  let V: tf.Variable | null = null;
  for (const M of Ms) {
    const m = tf.tensor2d(M, [3, 4]);
    V = tfUpdateHistory(V, m, beta);
    m.dispose();
  }
  t.same(Array.from(V!.dataSync()), Array.from(H!), 'tf engine: the same float32 values');
  V!.dispose();
  // Through the class: the stored history is the EMA of the step magnitudes.
  const [rows, cols] = [4, 6];
  const grads = [1, 2, 3].map((s) => randn(rows * cols, 10 + s));
  const smi = new SpectralMomentum(SMI_RUNS['linear-0.5'], 'host');
  let Hm: Float32Array | null = null;
  for (const [s, g] of grads.entries()) {
    const x = tf.tensor2d(g, [rows, cols]);
    tf.dispose(smi.apply([{ name: 'w', tensor: x }], s + 1, alphaAt(smi.run, s + 1, 10)).map((n) => n.tensor));
    x.dispose();
    Hm = updateHistory(Hm, magnitude(forward(g, rows, cols)), 0.9);
  }
  t.same(smi.getState(), [{ name: 'w', shape: [halfCols(cols), rows], data: Hm }], 'getState holds that EMA');
  smi.dispose();
});

t.test('a mask comes from H alone: the same H masks two spectra identically (distributed use)', async (t) => {
  const [rows, cols] = [65, 128];
  const GA = randn(rows * cols, 21);
  const GB = randn(rows * cols, 22);
  const specA = forward(GA, rows, cols);
  const specB = forward(GB, rows, cols);
  // The coordinator's shared history: the mean of the workers' magnitudes.
  const MA = magnitude(specA);
  const MB = magnitude(specB);
  const H = MA.map((a, i) => (a + MB[i]) / 2);
  const tau = threshold(H, rows, cols, 0.5);
  const kept = H.reduce((n, h) => n + (h >= tau ? 1 : 0), 0);
  t.ok(kept > 0 && kept < H.length, `a proper subset kept (${kept} of ${H.length})`);
  t.equal(maskChecksum(H, tau), maskChecksum(Float32Array.from(H), tau), 'checksum is a function of H and τ');
  t.not(maskChecksum(H, tau), maskChecksum(MA, threshold(MA, rows, cols, 0.5)), 'a different H, a different mask');
  // Each worker's output is its own spectrum under exactly the mask [H ≥ τ] (checked against the DFT).
  for (const [G, spec, seed] of [[GA, specA, 'A'], [GB, specB, 'B']] as const) {
    const g1 = maskedBlend(spec, G, H, tau, 1);
    const full = dft2(G, null, rows, cols);
    const half = halfCols(cols);
    for (let k1 = 0; k1 < rows; k1++) {
      for (let k2 = 0; k2 < cols; k2++) {
        // The full-spectrum mask of bin (k1, k2) is that of its representative in the half spectrum.
        if (!(H[halfIndex(k1, k2, rows, cols)] >= tau)) full.re[k1 * cols + k2] = full.im[k1 * cols + k2] = 0;
      }
    }
    const ref = dft2(full.re, full.im, rows, cols, true).re;
    t.ok(relErr(g1, ref) < 1e-5, `worker ${seed}: rel err ${relErr(g1, ref).toExponential(2)}`);
    // The tf engine applies the same mask from the same H.
    const gt = tf.tidy(() => {
      const s = { rows, cols, re: tf.tensor2d(spec.re, [half, rows]), im: tf.tensor2d(spec.im, [half, rows]) };
      return tfMaskedBlend(s, tf.tensor2d(G, [rows, cols]), tf.tensor2d(H, [half, rows]), tau, 1).dataSync();
    });
    t.ok(relErr(gt, ref) < 1e-5, `worker ${seed}, tf engine: rel err ${relErr(gt, ref).toExponential(2)}`);
  }
  const Ht = tf.tensor2d(H, [halfCols(cols), rows]);
  t.equal(tfThreshold(Ht, cols, 0.5), tau, 'tfThreshold = threshold');
  Ht.dispose();
});

t.test('τ is rounded up to float32, so H ≥ τ means the same for float32 and double comparisons', async (t) => {
  // 1 × 2 has two self-conjugate bins, each counted once: the median lies halfway between two adjacent floats.
  const next = Math.fround(1 + 2 ** -23);
  const H = new Float32Array([1, next]);
  t.equal(halfSpectrumQuantile(H, 1, 2, 0.5), 1 + 2 ** -24, 'the exact quantile is not a float32');
  const tau = threshold(H, 1, 2, 0.5);
  t.equal(tau, next, 'τ = the next float32 up');
  t.same(Array.from(H, (h) => h >= tau), [false, true], 'only the larger bin is kept, as with the exact τ');
  t.equal(threshold(new Float32Array([-3, -3]), 1, 2, 0.5), -3, 'a float32 quantile is returned as is');
});


// ---- state and memory ----------------------------------------------------------------------------------------

function stepGrads(s: number): NamedTensor[] {
  return [
    { name: 'wte', tensor: tf.tensor2d(randn(6 * 8, 100 + s), [6, 8]) },
    { name: 'ln.bias', tensor: tf.tensor1d(randn(8, 200 + s)) },
    { name: 'c_attn', tensor: tf.tensor2d(randn(8 * 5, 300 + s), [8, 5]) },
  ];
}

/** Steps from..to-1 of a run with T = 20; returns the outputs and the mask checksums. */
function steps(smi: SpectralMomentum, from: number, to: number): { outs: number[][]; sums: number[] } {
  const outs: number[][] = [];
  const sums: number[] = [];
  for (let s = from; s < to; s++) {
    const grads = stepGrads(s);
    const out = smi.apply(grads, s, alphaAt(smi.run, s, 20));
    outs.push(out.flatMap((o) => Array.from(o.tensor.dataSync())));
    sums.push(smi.lastMaskChecksum);
    tf.dispose([...grads.map((g) => g.tensor), ...out.map((o) => o.tensor)]);
  }
  return { outs, sums };
}

t.test('getState / setState: save → restore → continue equals an uninterrupted run, bit for bit', async (t) => {
  // β = 0.5 rather than the run's 0.99 so that the masks, and their checksums, change from step to step.
  const run: SmiRun = { ...SMI_RUNS.cosine, beta: 0.5 };
  for (const engine of ['host', 'tf'] as const) {
    const whole = new SpectralMomentum(run, engine);
    const a = steps(whole, 1, 6);
    const first = new SpectralMomentum(run, engine);
    steps(first, 1, 4);
    const saved = first.getState();
    t.same(saved.map((e) => e.name), ['c_attn', 'ln.bias', 'wte'], `${engine}: state sorted by name`);
    first.dispose();
    const resumed = new SpectralMomentum(run, engine);
    resumed.setState(saved);
    const b = steps(resumed, 4, 6);
    t.same(b.outs, a.outs.slice(3), `${engine}: steps 4–5 equal`);
    t.same(b.sums, a.sums.slice(3), `${engine}: mask checksums equal`);
    t.same(resumed.getState(), whole.getState(), `${engine}: final histories equal`);
    t.ok(new Set(a.sums).size > 1, `${engine}: checksums change between steps`);
    whole.dispose();
    resumed.dispose();
  }
});

t.test('tf.memory().numTensors stays flat over repeated apply()', async (t) => {
  for (const engine of ['host', 'tf'] as const) {
    for (const run of [SMI_RUNS.top75, SMI_RUNS.baseline]) {
      const smi = new SpectralMomentum(run, engine);
      steps(smi, 1, 2); // creates the histories (variables on the tf engine)
      const before = tf.memory().numTensors;
      steps(smi, 2, 8);
      t.equal(tf.memory().numTensors, before, `${engine} ${run.schedule}: flat`);
      smi.dispose();
    }
  }
  const g = tf.ones([4, 4]);
  const before = tf.memory().numTensors;
  const smi = new SpectralMomentum(SMI_RUNS.top75, 'tf');
  const m = smi.apply([{ name: 'w', tensor: g }], 1, alphaAt(smi.run, 1, 10));
  t.equal(m[0]!.tensor.shape.join(), '4,4', 'named in, named out');
  tf.dispose(m.map((n) => n.tensor));
  smi.dispose();
  t.equal(tf.memory().numTensors, before, 'dispose() frees the histories');
  g.dispose();
});
