// The two control runs (issue 15): random-mask (a random conjugate-symmetric mask of cosine's size) and shrink
// (G′ = c·G, c the energy share cosine's mask keeps), on both engines, against a complex DFT reference.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { randomFloats as rand } from '../../helpers.ts';
import { disposeFft, halfCols, initFft } from '../../../shared/smi/fft.ts';
import { Rng } from '../../../shared/model/rng.ts';
import { binMultiplicity, keptBins, randomMask } from '../../../shared/smi/spectrum.ts';
import { hostStep, setHostSimd, MASK_CHECKSUM_SEED } from '../../../shared/smi/host.ts';
import { SMI_RUNS, alphaAt, type SmiRun } from '../../../shared/smi/runs.ts';
import { SpectralMomentum, type NamedTensor } from '../../../shared/smi/smi.ts';
import { forward, magnitude, maskChecksum, maskedBlend, threshold, updateHistory } from '../../../shared/smi/steps.ts';

await tf.setBackend('cpu');
await initFft();
t.teardown(() => disposeFft());

const SHAPES: [number, number][] = [[1, 1], [1, 2], [1, 7], [2, 2], [3, 2], [2, 64], [5, 1], [4, 6], [6, 10], [7, 33], [16, 7], [64, 128], [65, 128]];

/** Index in the transposed half spectrum of the representative of full-spectrum bin (k1, k2). */
function halfIndex(k1: number, k2: number, rows: number, cols: number): number {
  return k2 < halfCols(cols) ? k2 * rows + k1 : (cols - k2) * rows + ((rows - k1) % rows);
}

/** A half-spectrum mask as the full rows × cols mask it stands for. */
function fullMask(mask: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let k1 = 0; k1 < rows; k1++) for (let k2 = 0; k2 < cols; k2++) out[k1 * cols + k2] = mask[halfIndex(k1, k2, rows, cols)]!;
  return out;
}

/** The plain complex 2-D DFT in float64 (inverse: conjugate twiddles, divided by rows·cols). */
function dft2(re: ArrayLike<number>, im: ArrayLike<number>, rows: number, cols: number, inverse: boolean): { re: Float64Array; im: Float64Array } {
  const sign = inverse ? 1 : -1;
  const outRe = new Float64Array(rows * cols);
  const outIm = new Float64Array(rows * cols);
  for (let k1 = 0; k1 < rows; k1++) {
    for (let k2 = 0; k2 < cols; k2++) {
      let sr = 0;
      let si = 0;
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const a = sign * 2 * Math.PI * (((k1 * r) % rows) / rows + ((k2 * c) % cols) / cols);
          const xr = re[r * cols + c]!;
          const xi = im[r * cols + c]!;
          sr += xr * Math.cos(a) - xi * Math.sin(a);
          si += xr * Math.sin(a) + xi * Math.cos(a);
        }
      }
      const s = inverse ? 1 / (rows * cols) : 1;
      outRe[k1 * cols + k2] = sr * s;
      outIm[k1 * cols + k2] = si * s;
    }
  }
  return { re: outRe, im: outIm };
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / (den || 1));
}

const sameBits = (a: Float32Array, b: Float32Array) => a.length === b.length && new Uint32Array(a.buffer, a.byteOffset, a.length).every((v, i) => v === new Uint32Array(b.buffer, b.byteOffset, b.length)[i]);

/** The history and τ of one cosine step from H0 (null: the first), by the separable steps. */
function cosineState(G: Float32Array, rows: number, cols: number, H0: Float32Array | null, run: SmiRun): { H: Float32Array; tau: number } {
  const H = updateHistory(H0 ? H0.slice() : null, magnitude(forward(G, rows, cols)), run.beta);
  return { H, tau: threshold(H, rows, cols, run.q) };
}

t.test('randomMask keeps the requested number of bins, conjugate-symmetric, every count from 0 to rows·cols', async (t) => {
  for (const [rows, cols] of SHAPES) {
    const N = rows * cols;
    const counts = N <= 24 ? Array.from({ length: N + 1 }, (_, k) => k) : [0, 1, 2, 3, Math.floor(N / 2), Math.floor(0.75 * N), N - 1, N];
    let ok = true;
    for (const count of counts) {
      const m = randomMask(rows, cols, count, new Rng(1, 2, count));
      const full = fullMask(m, rows, cols);
      const kept = full.reduce((a, v) => a + v, 0);
      const symmetric = full.every((v, i) => {
        const k1 = Math.floor(i / cols);
        const k2 = i % cols;
        return v === full[((rows - k1) % rows) * cols + ((cols - k2) % cols)];
      });
      const binary = m.every((v) => v === 0 || v === 1);
      if (kept !== count || !symmetric || !binary || keptBins(m, rows, cols, 0.5) !== count) {
        ok = false;
        t.fail(`${rows}×${cols}, ${count} bins: kept ${kept}, symmetric ${symmetric}, 0/1 ${binary}`);
      }
    }
    t.ok(ok, `${rows}×${cols}: ${counts.length} counts, each kept exactly, symmetric under (k1, k2) → (−k1, −k2)`);
  }
  t.throws(() => randomMask(2, 2, 5, new Rng(1)), RangeError, 'more bins than the spectrum has');
  t.throws(() => randomMask(2, 2, 1.5, new Rng(1)), RangeError, 'a fractional count');
});

t.test('randomMask is uniform over the conjugate-symmetric subsets of that size (3×2: 3 and 4 of them)', async (t) => {
  // 3×2: columns 0 and 1 are self-conjugate; (0, c) are self-conjugate bins, (1, c) ↔ (2, c) pairs.
  // 2 bins: both self-conjugate bins, or one of the 2 pairs (3 subsets); 3 bins: 2 × 2 = 4 subsets.
  for (const [count, subsets] of [[2, 3], [3, 4]] as const) {
    const freq = new Map<string, number>();
    const draws = 6000;
    for (let d = 0; d < draws; d++) {
      const key = Array.from(randomMask(3, 2, count, new Rng(99, d))).join('');
      freq.set(key, (freq.get(key) ?? 0) + 1);
    }
    t.equal(freq.size, subsets, `${count} bins: all ${subsets} symmetric subsets occur, no other`);
    const worst = Math.max(...[...freq.values()].map((f) => Math.abs(f / draws - 1 / subsets) * subsets));
    t.ok(worst < 0.1, `${count} bins: each subset within 10% of 1/${subsets} (worst ${(worst * 100).toFixed(1)}%)`);
  }
});

t.test('random-mask: G′ is Re(IFFT2(Ĝ ⊙ R)) of the full complex spectrum, whose imaginary part is 0 (R Hermitian)', async (t) => {
  const run = SMI_RUNS['random-mask'];
  for (const simd of [true, false]) {
    setHostSimd(simd);
    for (const [rows, cols] of [[4, 6], [6, 10], [7, 33], [16, 7], [3, 2], [1, 7], [2, 2]] as [number, number][]) {
      const G = rand(rows * cols, rows * 31 + cols, 1e-2);
      const { H: Hc, tau } = cosineState(G, rows, cols, null, run);
      const H = new Float32Array(Hc.length);
      const out = new Float32Array(G.length);
      const sum = hostStep(G, rows, cols, H, true, { beta: run.beta, q: run.q, alpha: 1, control: { kind: 'random-mask', rng: new Rng(5, 6) } }, MASK_CHECKSUM_SEED, () => ({ G, out }));
      t.ok(sameBits(H, Hc), `${rows}×${cols}: the history is cosine's`);
      const R = randomMask(rows, cols, keptBins(Hc, rows, cols, tau), new Rng(5, 6));
      t.equal(sum, maskChecksum(R, 0.5, MASK_CHECKSUM_SEED), `${rows}×${cols}: the checksum is that of the mask applied`);
      const X = dft2(G, new Float64Array(G.length), rows, cols, false);
      const Rf = fullMask(R, rows, cols);
      const back = dft2(X.re.map((v, i) => v * Rf[i]!), X.im.map((v, i) => v * Rf[i]!), rows, cols, true);
      const imag = Math.max(...back.im.map(Math.abs)) / Math.max(...back.re.map(Math.abs), 1e-30);
      t.ok(imag < 1e-12, `${rows}×${cols}${simd ? '' : ' (JS)'}: the masked inverse is real (|Im| / max|Re| = ${imag.toExponential(1)})`);
      const err = relErr(out, back.re);
      t.ok(err < 1e-5, `${rows}×${cols}${simd ? '' : ' (JS)'}: G′ against the float64 reference, rel err ${err.toExponential(2)}`);
      const kept = Rf.reduce((a, v) => a + v, 0);
      t.equal(kept, keptBins(Hc, rows, cols, tau), `${rows}×${cols}: as many bins as cosine's mask (${kept} of ${rows * cols})`);
    }
  }
  setHostSimd(true);
});

/** Runs `grads` (a list per step of named gradients) through a SpectralMomentum; outputs, checksums, states. */
function runSteps(smi: SpectralMomentum, grads: (s: number) => NamedTensor[], from: number, to: number, T = 20): { outs: Float32Array[][]; sums: number[] } {
  const outs: Float32Array[][] = [];
  const sums: number[] = [];
  for (let s = from; s < to; s++) {
    const ins = grads(s);
    const out = smi.apply(ins, s, alphaAt(smi.run, s, T));
    outs.push(out.map((o) => Float32Array.from(o.tensor.dataSync())));
    sums.push(smi.lastMaskChecksum);
    tf.dispose([...ins, ...out].map((x) => x.tensor));
  }
  return { outs, sums };
}

const PARAMS: { name: string; shape: number[] }[] = [
  { name: 'wte', shape: [16, 12] },
  { name: 'ln.weight', shape: [12] },
  { name: 'c_attn', shape: [12, 9] },
  { name: 'mlp', shape: [32, 64] },
];
const stepGrads = (s: number): NamedTensor[] => PARAMS.map((p, i) => ({ name: p.name, tensor: tf.tensor(rand(p.shape.reduce((a, b) => a * b, 1), 1000 * s + i, 1e-2), p.shape) }));

/** A fresh SpectralMomentum over steps from..to−1, disposed after. */
function once(run: SmiRun, engine: 'host' | 'tf', seed: number, from: number, to: number): { outs: Float32Array[][]; sums: number[] } {
  const smi = new SpectralMomentum(run, engine, seed);
  try {
    return runSteps(smi, stepGrads, from, to);
  } finally {
    smi.dispose();
  }
}

/** β = 0.5 so that masks change between steps. */
const fast = (name: 'cosine' | 'random-mask' | 'shrink'): SmiRun => ({ ...SMI_RUNS[name], beta: 0.5 });

t.test('the controls run on the cosine schedule, β and q; their histories evolve exactly as cosine\'s (host and tf)', async (t) => {
  for (const name of ['random-mask', 'shrink'] as const) {
    const { control, ...rest } = SMI_RUNS[name];
    t.equal(control, name);
    t.same(rest, SMI_RUNS.cosine, `${name}: the cosine run's α schedule, β 0.99, q 0.25`);
  }
  for (const engine of ['host', 'tf'] as const) {
    const cos = new SpectralMomentum(fast('cosine'), engine, 1337);
    const states: Float32Array[][] = [];
    for (let s = 1; s <= 4; s++) {
      runSteps(cos, stepGrads, s, s + 1);
      states.push(cos.getState().map((e) => e.data));
    }
    for (const name of ['random-mask', 'shrink'] as const) {
      const smi = new SpectralMomentum(fast(name), engine, 1337);
      let same = true;
      for (let s = 1; s <= 4; s++) {
        runSteps(smi, stepGrads, s, s + 1);
        same &&= smi.getState().every((e, i) => sameBits(e.data, states[s - 1]![i]!));
      }
      t.ok(same, `${engine} ${name}: the histories equal cosine's bit for bit after each of 4 steps`);
      smi.dispose();
    }
    cos.dispose();
  }
});

t.test('shrink equals SMI (cosine) where the mask keeps every bin (q = 0), and is α·c·G + (1−α)·G with c = ‖G′‖²/‖G‖²', async (t) => {
  for (const engine of ['host', 'tf'] as const) {
    const all = (name: 'cosine' | 'shrink') => once({ ...fast(name), q: 0 }, engine, 0, 1, 4);
    const a = all('cosine');
    const b = all('shrink');
    const err = Math.max(...a.outs.flatMap((step, s) => step.map((o, i) => relErr(b.outs[s]![i]!, o))));
    t.ok(err < 1e-6, `${engine}, q = 0: shrink = cosine over 3 steps and 4 parameters (rel err ${err.toExponential(2)})`);
    t.same(b.sums, a.sums, `${engine}, q = 0: the same mask checksums (every bin)`);
  }
  // q = 0.25: the factor against cosine's G′ measured in real space (Parseval: ‖G′‖² = ⟨G′, G⟩ = Σ_kept|Ĝ|²/N)
  const run = SMI_RUNS.shrink;
  for (const [rows, cols] of [[64, 128], [65, 128], [16, 7], [7, 33], [1, 32], [2, 2]] as [number, number][]) {
    const grads = [1, 2, 3].map((s) => rand(rows * cols, rows * cols + s, 1e-2));
    let Hprev: Float32Array | null = null;
    const H = new Float32Array(rows * halfCols(cols));
    grads.forEach((G, s) => {
      const { H: Hc, tau } = cosineState(G, rows, cols, Hprev, run);
      Hprev = Hc;
      const g1 = maskedBlend(forward(G, rows, cols), G, Hc, tau, 1); // cosine's G′
      let gg = 0;
      let g1g1 = 0;
      let g1g = 0;
      for (let i = 0; i < G.length; i++) {
        gg += G[i]! ** 2;
        g1g1 += g1[i]! ** 2;
        g1g += g1[i]! * G[i]!;
      }
      const c = g1g1 / gg;
      t.ok(Math.abs(g1g / gg - c) < 1e-5, `${rows}×${cols} step ${s + 1}: ⟨G′, G⟩ = ‖G′‖² (the filter's component along G), c = ${c.toFixed(4)}`);
      const alpha = alphaAt(run, s + 1, 20);
      const out = new Float32Array(G.length);
      hostStep(G, rows, cols, H, s === 0, { beta: run.beta, q: run.q, alpha, control: { kind: 'shrink' } }, MASK_CHECKSUM_SEED, () => ({ G, out }));
      const want = Float64Array.from(G, (g) => alpha * c * g + (1 - alpha) * g);
      const err = relErr(out, want);
      t.ok(err < 1e-6, `${rows}×${cols} step ${s + 1}: out = α·c·G + (1−α)·G (rel err ${err.toExponential(2)})`);
    });
  }
  t.same(Array.from(binMultiplicity(3, 4)), [1, 1, 1, 2, 2, 2, 1, 1, 1], '3×4: columns 0 and 2 count once, column 1 twice');
});

t.test('host and tf engines agree on the controls (the same random masks)', async (t) => {
  for (const name of ['random-mask', 'shrink'] as const) {
    const [h, g] = (['host', 'tf'] as const).map((engine) => once(fast(name), engine, 7, 1, 4));
    const err = Math.max(...h!.outs.flatMap((step, s) => step.map((o, i) => relErr(g!.outs[s]![i]!, o))));
    t.ok(err < 1e-5, `${name}: host vs tf over 3 steps, rel err ${err.toExponential(2)}`);
    if (name === 'random-mask') t.same(g!.sums, h!.sums, `${name}: the same masks (checksums)`);
  }
});

t.test('random-mask is reproducible from the seed, differs across steps and seeds; the cosine mask is not what it applies', async (t) => {
  const run = fast('random-mask');
  const a = once(run, 'host', 1337, 1, 5);
  const b = once(run, 'host', 1337, 1, 5);
  const c = once(run, 'host', 1338, 1, 5);
  const cos = once(fast('cosine'), 'host', 1337, 1, 5);
  t.ok(a.outs.every((step, s) => step.every((o, i) => sameBits(o, b.outs[s]![i]!))), 'the same seed: the same outputs, bit for bit');
  t.same(a.sums, b.sums, 'and the same masks');
  t.ok(a.sums.every((x, s) => x !== c.sums[s]), 'another seed: other masks at every step');
  t.equal(new Set(a.sums).size, a.sums.length, 'a new mask at every step');
  t.ok(a.sums.every((x, s) => x !== cos.sums[s]), "never cosine's mask");
  // the same history and τ at two steps: two different masks of the same size
  const [rows, cols] = [64, 128];
  const { H, tau } = cosineState(rand(rows * cols, 3, 1e-2), rows, cols, null, run);
  const k = keptBins(H, rows, cols, tau);
  const m1 = randomMask(rows, cols, k, new Rng(1337, 7, 1, 42));
  const m2 = randomMask(rows, cols, k, new Rng(1337, 7, 2, 42));
  t.ok(k > 0.7 * rows * cols && k < 0.8 * rows * cols, `q = 0.25 keeps about 75% (${k} of ${rows * cols})`);
  t.notOk(sameBits(m1, m2), 'steps 1 and 2 draw different masks');
  t.equal(keptBins(m1, rows, cols, 0.5), keptBins(m2, rows, cols, 0.5), 'of the same size');
});

t.test('controls: checkpoint → restore → continue equals an uninterrupted run, bit for bit (host and tf)', async (t) => {
  for (const engine of ['host', 'tf'] as const) {
    for (const name of ['random-mask', 'shrink'] as const) {
      const run = fast(name);
      const whole = new SpectralMomentum(run, engine, 1337);
      const a = runSteps(whole, stepGrads, 1, 7);
      const first = new SpectralMomentum(run, engine, 1337);
      runSteps(first, stepGrads, 1, 4);
      const saved = first.getState();
      first.dispose();
      const resumed = new SpectralMomentum(run, engine, 1337);
      resumed.setState(saved);
      const b = runSteps(resumed, stepGrads, 4, 7);
      t.ok(b.outs.every((step, s) => step.every((o, i) => sameBits(o, a.outs[s + 3]![i]!))), `${engine} ${name}: steps 4–6 equal`);
      t.same(b.sums, a.sums.slice(3), `${engine} ${name}: mask checksums equal`);
      t.ok(resumed.getState().every((e, i) => sameBits(e.data, whole.getState()[i]!.data)), `${engine} ${name}: final histories equal`);
      whole.dispose();
      resumed.dispose();
    }
  }
});

t.test('controls: tf.memory().numTensors stays flat (host engine on cpu and wasm, tf engine on cpu)', async (t) => {
  for (const backend of ['cpu', 'wasm'] as const) {
    await tf.setBackend(backend);
    for (const engine of backend === 'cpu' ? (['host', 'tf'] as const) : (['host'] as const)) { // wasm has no complex kernels
      for (const name of ['random-mask', 'shrink'] as const) {
        const smi = new SpectralMomentum(fast(name), engine, 1);
        runSteps(smi, stepGrads, 1, 2);
        const before = tf.memory().numTensors;
        runSteps(smi, stepGrads, 2, 6);
        t.equal(tf.memory().numTensors, before, `${backend} ${engine} ${name}: flat over 4 steps`);
        smi.dispose();
      }
    }
  }
  await tf.setBackend('cpu');
});

t.test('controls: the wasm backend (gradients read and written in tensor memory) gives the cpu backend\'s bits', async (t) => {
  for (const name of ['random-mask', 'shrink'] as const) {
    const onCpu = once(fast(name), 'host', 3, 1, 4);
    await tf.setBackend('wasm');
    try {
      const onWasm = once(fast(name), 'host', 3, 1, 4);
      t.ok(onWasm.outs.every((step, s) => step.every((o, i) => sameBits(o, onCpu.outs[s]![i]!))), `${name}: outputs equal`);
      t.same(onWasm.sums, onCpu.sums, `${name}: checksums equal`);
    } finally {
      await tf.setBackend('cpu');
    }
  }
});
