// Spectral Momentum Integration (docs/algorithm.md): gradients masked in the 2-D Fourier domain by a magnitude history.
//
// The algorithm is exposed as separable steps so that a distributed trainer can split it (each worker:
// forward + magnitude; coordinator: average magnitudes, updateHistory, threshold; each worker: maskedBlend
// with the shared H and τ), on two engines with the same data layout:
//   host: Float32Array in/out, FFTs from shared/smi/fft.ts (wasm); for the wasm and cpu tfjs backends.
//         SpectralMomentum runs these steps fused (shared/smi/host.ts: the same bits, no per-step arrays,
//         the passes as wasm kernels; on the wasm backend the gradient is read and the result written in
//         place in tensor memory).
//   tf:   the same steps as tensors with tf.spectral ops; for tfjs-node / GPU. Only the quantile runs on
//         the host (H is downloaded and selected there).
// Spectra and histories are half spectra stored transposed: [half, rows], half = floor(cols/2)+1, spectral
// column k2 of row k1 at index k2·rows + k1 (shared/smi/fft.ts; numpy: np.fft.rfft2(G).T).
// The quantile counts every bin of the full rows × cols spectrum once (shared/smi/quantile.ts).
//
// Float32 semantics are the same on both engines: the EMA and the blend round after every product and sum
// (as tfjs's float32 kernels do), and τ is returned rounded up to float32 so that `H ≥ τ` gives the same mask
// whether H is compared as float32 (tf) or as a double (host).
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import { halfCols, irfft2, rfft2, type HalfSpectrum } from './fft.ts';
import { halfSpectrumQuantile } from './quantile.ts';
import { MASK_CHECKSUM_SEED, binMultiplicity, float32AtLeast, hostStep, keptBins, lap, randomMask, selfConjugateColumns, type HostControl, type HostStepParams, type HostStepProfile } from './host.ts';
import type { SmiRunName } from '../config.ts';
import { Rng, STREAM } from '../model/rng.ts';
import { heapBackendOf } from '../wasm/heap.ts';

export { MASK_CHECKSUM_SEED };

export type { SmiRunName };

// ---- runs and schedules ----------------------------------------------------------------------------------

export type SmiSchedule = 'none' | 'linear' | 'cosine';

/** A control's G′ in place of the filter's (shared/smi/host.ts HostControl): a random mask of the same size, or c·G. */
export type SmiControl = 'random-mask' | 'shrink';

export interface SmiRun {
  /** how α moves from alpha0 (t = 0) to alpha1 (t = T); 'none' = plain AdamW, SMI off */
  schedule: SmiSchedule;
  alpha0: number;
  alpha1: number;
  /** EMA factor of the magnitude history: H = β·H + (1−β)·M */
  beta: number;
  /** quantile of H used as the threshold: bins with H ≥ τ are kept (q = 0.25 keeps 75%) */
  q: number;
  /** a control run: H and τ as SMI's, G′ replaced (absent for the paper's runs) */
  control?: SmiControl;
}

/** The paper's six runs (docs/algorithm.md, the paper's Table 1), and two controls with the cosine run's α, β and q (issue 15). */
export const SMI_RUNS: Record<SmiRunName, SmiRun> = {
  baseline: { schedule: 'none', alpha0: 0, alpha1: 0, beta: 0, q: 0 },
  'linear-0.9': { schedule: 'linear', alpha0: 0.1, alpha1: 0.9, beta: 0.9, q: 0.5 },
  'linear-0.5': { schedule: 'linear', alpha0: 0.1, alpha1: 0.5, beta: 0.9, q: 0.5 },
  'ema-0.99': { schedule: 'linear', alpha0: 0.1, alpha1: 0.5, beta: 0.99, q: 0.5 },
  top75: { schedule: 'linear', alpha0: 0.1, alpha1: 0.5, beta: 0.99, q: 0.25 },
  cosine: { schedule: 'cosine', alpha0: 0.1, alpha1: 0.5, beta: 0.99, q: 0.25 },
  'random-mask': { schedule: 'cosine', alpha0: 0.1, alpha1: 0.5, beta: 0.99, q: 0.25, control: 'random-mask' },
  shrink: { schedule: 'cosine', alpha0: 0.1, alpha1: 0.5, beta: 0.99, q: 0.25, control: 'shrink' },
};

/** α_t at step t of T (docs/algorithm.md §3 step 8); 0 for the baseline. */
export function alphaAt(run: SmiRun, t: number, T: number): number {
  const { alpha0: a0, alpha1: a1 } = run;
  switch (run.schedule) {
    case 'none':
      return 0;
    case 'linear':
      return a0 + ((a1 - a0) * t) / T;
    case 'cosine':
      return a0 + ((a1 - a0) * (1 - Math.cos((Math.PI * t) / T))) / 2;
    default: {
      const never: never = run.schedule;
      throw new Error(`unknown SMI schedule ${String(never)}`);
    }
  }
}

/** The 2-D view [rows, cols] = [-1, last_dim] of a gradient of this shape; 1-D → [1, d], scalar → [1, 1]. */
export function view2d(shape: readonly number[]): [number, number] {
  const cols = shape.length === 0 ? 1 : shape[shape.length - 1];
  const size = shape.reduce((a, b) => a * b, 1);
  if (cols === 0 || size === 0) throw new RangeError(`SMI: empty gradient of shape [${shape.join(', ')}]`);
  return [size / cols, cols];
}

// ---- host engine -----------------------------------------------------------------------------------------

/** A half spectrum (re / im of shape [half, rows], see shared/smi/fft.ts), as made by forward(). */
export type Spectrum = HalfSpectrum;

/** Step 2: Ĝ = FFT2(G) of the rows × cols matrix G (row-major), as a half spectrum. Needs `await initFft()`. */
export function forward(G: Float32Array, rows: number, cols: number): Spectrum {
  return rfft2(G, rows, cols);
}

/**
 * Step 3: M = |Ĝ| ([half, rows]). In the self-conjugate columns each conjugate pair of rows gets the mean of
 * its two magnitudes: they are equal in exact arithmetic, and making them bit-equal keeps the mask Hermitian.
 */
export function magnitude(spec: Spectrum): Float32Array {
  const { rows, half, re, im } = spec;
  const M = new Float32Array(rows * half);
  for (let i = 0; i < M.length; i++) M[i] = Math.sqrt(re[i] * re[i] + im[i] * im[i]);
  for (const c of selfConjugateColumns(spec.cols)) {
    for (let k1 = 1, o = c * rows; 2 * k1 < rows; k1++) {
      M[o + k1] = M[o + rows - k1] = Math.fround((M[o + k1] + M[o + rows - k1]) * 0.5);
    }
  }
  return M;
}

/**
 * Step 4: the history. With H = null (the first step) returns a copy of M; otherwise updates H in place to
 * β·H + (1−β)·M (float32 rounding after each operation) and returns it.
 */
export function updateHistory(H: Float32Array | null, M: Float32Array, beta: number): Float32Array {
  if (H === null) return M.slice();
  if (H.length !== M.length) throw new RangeError(`updateHistory: H has ${H.length} values, M ${M.length}`);
  const b = Math.fround(beta);
  const c = Math.fround(1 - beta);
  for (let i = 0; i < H.length; i++) H[i] = Math.fround(Math.fround(b * H[i]) + Math.fround(c * M[i]));
  return H;
}

/**
 * Step 5: τ = the q-quantile of the full rows × cols spectrum whose half is H (numpy 'linear'), rounded up
 * to float32. Step 6 is then Ω = [H ≥ τ].
 */
export function threshold(H: Float32Array, rows: number, cols: number, q: number): number {
  return float32AtLeast(halfSpectrumQuantile(H, rows, cols, q));
}

let maskedRe = new Float32Array(0);
let maskedIm = new Float32Array(0);

/**
 * Steps 6, 7 and 9: Ω = [H ≥ τ], G′ = Re(IFFT2(Ĝ ⊙ Ω)), returns α·G′ + (1−α)·G (a new rows × cols array).
 * `spec` and G are left unchanged. H may be any history (e.g. the coordinator's shared one): the mask
 * depends on H and τ only.
 */
export function maskedBlend(spec: Spectrum, G: Float32Array, H: Float32Array, tau: number, alpha: number): Float32Array {
  const { rows, cols, half, re, im } = spec;
  const n = rows * half;
  if (H.length !== n) throw new RangeError(`maskedBlend: H has ${H.length} values, the spectrum ${n}`);
  if (G.length !== rows * cols) throw new RangeError(`maskedBlend: G has ${G.length} values, not ${rows}×${cols}`);
  if (maskedRe.length < n) {
    maskedRe = new Float32Array(n);
    maskedIm = new Float32Array(n);
  }
  const mr = maskedRe.subarray(0, n);
  const mi = maskedIm.subarray(0, n);
  for (let i = 0; i < n; i++) {
    const keep = +(H[i] >= tau); // a number, not a branch: the mask is unpredictable
    mr[i] = re[i] * keep;
    mi[i] = im[i] * keep;
  }
  const out = irfft2({ rows, cols, half, re: mr, im: mi });
  const a = Math.fround(alpha);
  const c = Math.fround(1 - alpha);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(Math.fround(a * out[i]) + Math.fround(c * G[i]));
  return out;
}

/**
 * FNV-1a (32-bit) over the mask bits [H[i] ≥ τ] packed into bytes (bit j of byte b is H[8b + j] ≥ τ, the
 * last byte zero-padded), in the half-spectrum order, continuing from `seed` (chain parameters by passing
 * the previous result). Equal masks give equal checksums.
 */
export function maskChecksum(H: Float32Array, tau: number, seed = MASK_CHECKSUM_SEED): number {
  let h = seed >>> 0;
  const n = H.length;
  const n8 = n - (n % 8);
  let i = 0;
  for (; i < n8; i += 8) {
    const byte =
      +(H[i] >= tau) |
      (+(H[i + 1] >= tau) << 1) |
      (+(H[i + 2] >= tau) << 2) |
      (+(H[i + 3] >= tau) << 3) |
      (+(H[i + 4] >= tau) << 4) |
      (+(H[i + 5] >= tau) << 5) |
      (+(H[i + 6] >= tau) << 6) |
      (+(H[i + 7] >= tau) << 7);
    h = Math.imul(h ^ byte, 0x01000193);
  }
  if (i < n) {
    let byte = 0;
    for (let j = 0; i < n; i++, j++) byte |= +(H[i] >= tau) << j;
    h = Math.imul(h ^ byte, 0x01000193);
  }
  return h >>> 0;
}

// ---- tf engine -------------------------------------------------------------------------------------------
// Same steps on tensors. Every function runs inside tf.tidy; the caller owns what it returns. Only real
// tensors cross the API (complex64 lives inside the transforms), because several backends lack complex
// slice / reverse / gather kernels.

/** A half spectrum as two float32 tensors [half, rows] (the transposed layout of shared/smi/fft.ts). */
export interface TfSpectrum {
  rows: number;
  cols: number;
  re: tf.Tensor2D;
  im: tf.Tensor2D;
}

/** Step 2 on tensors: G [rows, cols] float32 → its half spectrum. */
export function tfForward(G: tf.Tensor2D): TfSpectrum {
  const [rows, cols] = G.shape;
  const { re, im } = tf.tidy(() => {
    const x = tf.spectral.rfft(G); // (rows, half) complex
    let re = tf.transpose(tf.real(x)) as tf.Tensor2D; // (half, rows)
    let im = tf.transpose(tf.imag(x)) as tf.Tensor2D;
    if (rows > 1) {
      const y = tf.spectral.fft(tf.complex(re, im)); // along rows, (half, rows)
      re = tf.real(y) as tf.Tensor2D;
      im = tf.imag(y) as tf.Tensor2D;
    }
    return { re, im };
  });
  return { rows, cols, re, im };
}

/** Frees the tensors of a TfSpectrum. */
export function disposeTfSpectrum(spec: TfSpectrum): void {
  spec.re.dispose();
  spec.im.dispose();
}

/** Step 3 on tensors: |Ĝ| [half, rows], with the same symmetrisation as magnitude(). */
export function tfMagnitude(spec: TfSpectrum): tf.Tensor2D {
  const { rows, cols } = spec;
  return tf.tidy(() => {
    const M = tf.abs(tf.complex(spec.re, spec.im)) as tf.Tensor2D;
    if (rows < 3) return M; // rows 1 and 2: every row is its own conjugate partner
    const half = halfCols(cols);
    const partner = Array.from({ length: rows }, (_, k1) => (rows - k1) % rows);
    const mean = tf.mul(tf.add(M, tf.gather(M, partner, 1)), 0.5);
    const selfCols = new Array<boolean>(half).fill(false);
    for (const c of selfConjugateColumns(cols)) selfCols[c] = true;
    const cond = tf.broadcastTo(tf.tensor2d(selfCols, [half, 1], 'bool'), [half, rows]);
    return tf.where(cond, mean, M) as tf.Tensor2D;
  });
}

/**
 * Step 4 on tensors. With H = null returns a new non-trainable variable holding M; otherwise assigns
 * β·H + (1−β)·M to H and returns it. M stays owned by the caller.
 */
export function tfUpdateHistory(H: tf.Variable | null, M: tf.Tensor, beta: number): tf.Variable {
  if (H === null) return tf.variable(M, false);
  if (!tf.util.arraysEqual(H.shape, M.shape)) throw new RangeError(`tfUpdateHistory: H is [${H.shape}], M [${M.shape}]`);
  tf.tidy(() => {
    H.assign(tf.add(tf.mul(H, beta), tf.mul(M, 1 - beta)));
  });
  return H;
}

/** Step 5 on tensors: downloads H [half, rows] and selects on the host (see threshold()). */
export function tfThreshold(H: tf.Tensor, cols: number, q: number): number {
  return threshold(H.dataSync() as Float32Array, H.shape[1] ?? 1, cols, q);
}

/** Steps 6, 7 and 9 on tensors: α·Re(IFFT2(Ĝ ⊙ [H ≥ τ])) + (1−α)·G, shape [rows, cols]. */
export function tfMaskedBlend(spec: TfSpectrum, G: tf.Tensor2D, H: tf.Tensor, tau: number, alpha: number): tf.Tensor2D {
  const { rows, cols } = spec;
  const half = halfCols(cols);
  return tf.tidy(() => {
    const mask = tf.cast(tf.greaterEqual(H, tf.scalar(tau)), 'float32');
    let re = tf.mul(spec.re, mask) as tf.Tensor2D; // (half, rows)
    let im = tf.mul(spec.im, mask) as tf.Tensor2D;
    if (rows > 1) {
      const y = tf.spectral.ifft(tf.complex(re, im)); // along rows
      re = tf.real(y) as tf.Tensor2D;
      im = tf.imag(y) as tf.Tensor2D;
    }
    re = tf.transpose(re); // (rows, half)
    im = tf.transpose(im);
    // Row inverse by a full complex IFFT: tf.spectral.irfft assumes an even length. The left-out columns
    // cols−k2 (k2 = 1 … cols−half) are the conjugates of columns k2.
    const missing = cols - half;
    if (missing > 0) {
      re = tf.concat([re, tf.reverse(tf.slice(re, [0, 1], [rows, missing]), 1)], 1);
      im = tf.concat([im, tf.neg(tf.reverse(tf.slice(im, [0, 1], [rows, missing]), 1))], 1);
    }
    const g1 = tf.real(tf.spectral.ifft(tf.complex(re, im))); // (rows, cols)
    return tf.add(tf.mul(g1, alpha), tf.mul(G, 1 - alpha)) as tf.Tensor2D;
  });
}

// ---- per-run state ---------------------------------------------------------------------------------------

export type SmiEngine = 'host' | 'tf';

export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

/** One parameter's history in a checkpoint. */
export interface SmiStateEntry {
  name: string;
  /**
   * the shape of data: [half, rows], the transposed half-spectrum history of a gradient whose 2-D view is
   * [rows, cols], half = floor(cols/2)+1 (cols itself is taken from the gradient on the next apply)
   */
  shape: number[];
  data: Float32Array;
}

interface History<H> {
  rows: number;
  half: number;
  H: H;
}

/**
 * SMI for one run: a magnitude history per parameter (keyed by name, created on first use), applied to a
 * step's gradients. The host engine needs `await initFft()` (shared/smi/fft.ts) before the first apply().
 *
 * Gradients come named ({name, tensor}): a history is keyed by its parameter's name.
 * Ownership: apply() never disposes or modifies its input tensors and always returns new tensors, in the
 * same order, that the caller owns (for the baseline, clones of the inputs).
 * dispose() frees the histories.
 * A control run's random masks are drawn from (seed, step, parameter name): a resumed run draws the same.
 */
export class SpectralMomentum {
  /**
   * maskChecksum() of every parameter's mask in the last apply(), chained in call order (the tf engine
   * computes it on the host from the H it downloads for the quantile); 0 before any apply and for the baseline.
   */
  lastMaskChecksum = 0;
  /** When set, host-engine steps add their time per stage (HOST_STAGES in shared/smi/host.ts) to it. */
  hostProfile: HostStepProfile | null = null;
  private readonly hostHist = new Map<string, History<Float32Array>>();
  private readonly tfHist = new Map<string, History<tf.Variable>>();

  constructor(
    readonly run: SmiRun,
    readonly engine: SmiEngine,
    readonly seed = 0,
  ) {
    if (!(run.q >= 0 && run.q <= 1)) throw new RangeError(`SMI: q must be in [0, 1], got ${run.q}`);
    if (!(run.beta >= 0 && run.beta <= 1)) throw new RangeError(`SMI: beta must be in [0, 1], got ${run.beta}`);
  }

  /**
   * Applies SMI at step `t` (1-based) with blend factor α (alphaAt(run, t, T)) to every gradient; returns new
   * tensors in the same order, owned by the caller.
   */
  apply(list: readonly NamedTensor[], t: number, alpha: number): NamedTensor[] {
    const seen = new Set<string>();
    for (const { name } of list) {
      if (seen.has(name)) throw new Error(`SMI: gradient ${name} given twice`);
      seen.add(name);
    }
    let checksum = MASK_CHECKSUM_SEED;
    const out = list.map(({ name, tensor }) => {
      if (this.run.schedule === 'none') return { name, tensor: tf.clone(tensor) };
      if (tensor.dtype !== 'float32') throw new TypeError(`SMI: gradient ${name} is ${tensor.dtype}, not float32`);
      const [rows, cols] = view2d(tensor.shape);
      const [g, sum] =
        this.engine === 'host'
          ? this.stepHost(name, tensor, rows, cols, alpha, checksum, t)
          : this.stepTf(name, tensor, rows, cols, alpha, checksum, t);
      checksum = sum;
      return { name, tensor: g };
    });
    this.lastMaskChecksum = this.run.schedule === 'none' ? 0 : checksum;
    return out;
  }

  /**
   * The host engine's step (shared/smi/host.ts: the separable steps' arithmetic, fused). On the wasm backend
   * the gradient is read from, and the result written into, tensor memory in the wasm heap.
   */
  private stepHost(name: string, g: tf.Tensor, rows: number, cols: number, alpha: number, seed: number, step: number): [tf.Tensor, number] {
    const prev = this.hostHist.get(name);
    if (prev) checkHistory(name, prev, rows, cols);
    const hist = prev ?? { rows, half: halfCols(cols), H: new Float32Array(rows * halfCols(cols)) };
    const params: HostStepParams = { beta: this.run.beta, q: this.run.q, alpha, control: this.controlFor(name, step) };
    const profile = this.hostProfile ?? undefined;
    let t = profile ? performance.now() : 0;
    let out: tf.Tensor;
    let sum: number;
    const heap = heapBackendOf(g);
    if (heap) {
      let info: TensorInfo | undefined;
      try {
        const G0 = heap.typedArrayFromHeap(g) as Float32Array;
        t = lap(profile, 0, t);
        sum = hostStep(G0, rows, cols, hist.H, !prev, params, seed, () => {
          info = heap.makeOutput([...g.shape], 'float32');
          // Views after makeOutput: its malloc may have grown the heap (and replaced its buffer).
          return { G: heap.typedArrayFromHeap(g) as Float32Array, out: heap.typedArrayFromHeap(info) as Float32Array };
        }, profile);
      } catch (e) {
        if (info) heap.disposeData(info.dataId, true);
        throw e;
      }
      if (profile) t = performance.now();
      out = tf.engine().makeTensorFromTensorInfo(info!);
    } else {
      const G = g.dataSync() as Float32Array;
      const data = new Float32Array(G.length); // a new array each time: other backends keep what tf.tensor gets
      t = lap(profile, 0, t);
      sum = hostStep(G, rows, cols, hist.H, !prev, params, seed, () => ({ G, out: data }), profile);
      if (profile) t = performance.now();
      out = tf.tensor(data, g.shape, 'float32');
    }
    lap(profile, 7, t);
    if (!prev) this.hostHist.set(name, hist);
    return [out, sum];
  }

  /** The control of this run at this step for this parameter, or undefined (the paper's runs). */
  private controlFor(name: string, step: number): HostControl | undefined {
    const c = this.run.control;
    if (c === undefined) return undefined;
    return c === 'shrink' ? { kind: 'shrink' } : { kind: 'random-mask', rng: new Rng(this.seed, STREAM.smiMask, step, nameKey(name)) };
  }

  private stepTf(name: string, g: tf.Tensor, rows: number, cols: number, alpha: number, seed: number, step: number): [tf.Tensor, number] {
    const prev = this.tfHist.get(name);
    if (prev) checkHistory(name, prev, rows, cols);
    const G = tf.reshape(g, [rows, cols]) as tf.Tensor2D;
    const spec = tfForward(G);
    try {
      const M = tfMagnitude(spec);
      let H: tf.Variable;
      try {
        H = tfUpdateHistory(prev?.H ?? null, M, this.run.beta);
      } finally {
        M.dispose();
      }
      if (!prev) this.tfHist.set(name, { rows, half: halfCols(cols), H });
      // One download of H serves the quantile and the checksum.
      const Hdata = H.dataSync() as Float32Array;
      const tau = threshold(Hdata, rows, cols, this.run.q);
      const control = this.controlFor(name, step);
      if (control) return tfControl(control, spec, G, g.shape, Hdata, tau, alpha, seed);
      const out = tf.tidy(() => tf.reshape(tfMaskedBlend(spec, G, H, tau, alpha), g.shape));
      return [out, maskChecksum(Hdata, tau, seed)];
    } finally {
      disposeTfSpectrum(spec);
      G.dispose();
    }
  }

  /** The histories sorted by parameter name (code-unit order), as copies. Empty for the baseline. */
  getState(): SmiStateEntry[] {
    const names = [...(this.engine === 'host' ? this.hostHist.keys() : this.tfHist.keys())].sort();
    return names.map((name) => {
      if (this.engine === 'host') {
        const h = this.hostHist.get(name)!;
        return { name, shape: [h.half, h.rows], data: h.H.slice() };
      }
      const h = this.tfHist.get(name)!;
      return { name, shape: [h.half, h.rows], data: (h.H.dataSync() as Float32Array).slice() };
    });
  }

  /** Replaces all histories with the given ones (copied; bit-exact), e.g. from getState() of either engine. */
  setState(entries: readonly SmiStateEntry[]): void {
    const names = new Set<string>();
    for (const { name, shape, data } of entries) {
      if (shape.length !== 2 || data.length !== shape[0] * shape[1] || names.has(name)) {
        throw new RangeError(`SMI state ${name}: bad or repeated entry (shape [${shape}], ${data.length} values)`);
      }
      names.add(name);
    }
    this.clear();
    for (const { name, shape, data } of entries) {
      const [half, rows] = shape;
      if (this.engine === 'host') {
        this.hostHist.set(name, { rows, half, H: Float32Array.from(data) });
      } else {
        const init = tf.tensor2d(Float32Array.from(data), [half, rows], 'float32');
        this.tfHist.set(name, { rows, half, H: tf.variable(init, false) });
        init.dispose();
      }
    }
  }

  /** Frees every history; the object can be used again (histories restart on the next apply). */
  dispose(): void {
    this.clear();
  }

  private clear(): void {
    for (const h of this.tfHist.values()) h.H.dispose();
    this.tfHist.clear();
    this.hostHist.clear();
  }
}

/** A parameter name as a 32-bit key of the random-mask stream (FNV-1a over its UTF-16 code units). */
function nameKey(name: string): number {
  let h = MASK_CHECKSUM_SEED;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * A control's step on the tf engine (shared/smi/host.ts HostControl), from the history downloaded for τ: the
 * random mask is drawn on the host and uploaded; shrink's energy share is summed where the spectrum lives.
 * Returns the output [shape] and the checksum of the mask applied (shrink: of [H ≥ τ]).
 */
function tfControl(control: HostControl, spec: TfSpectrum, G: tf.Tensor2D, shape: number[], Hdata: Float32Array, tau: number, alpha: number, seed: number): [tf.Tensor, number] {
  const { rows, cols } = spec;
  const half = halfCols(cols);
  if (control.kind === 'random-mask') {
    const mask = randomMask(rows, cols, keptBins(Hdata, rows, cols, tau), control.rng);
    const out = tf.tidy(() => tf.reshape(tfMaskedBlend(spec, G, tf.tensor2d(mask, [half, rows]), 0.5, alpha), shape));
    return [out, maskChecksum(mask, 0.5, seed)];
  }
  const sums = tf.tidy(() => {
    const e = tf.mul(tf.add(tf.square(spec.re), tf.square(spec.im)), tf.tensor2d(binMultiplicity(rows, cols), [half, rows]));
    const keep = tf.cast(tf.greaterEqual(tf.tensor2d(Hdata, [half, rows]), tf.scalar(tau)), 'float32');
    return tf.stack([tf.sum(tf.mul(e, keep)), tf.sum(e)]);
  });
  const [kept, all] = sums.dataSync();
  sums.dispose();
  const c = Math.fround(all > 0 ? kept / all : 1);
  // as the host's shrinkBlend: G′ = c·G in float32, then α·G′ + (1−α)·G
  const out = tf.tidy(() => tf.reshape(tf.add(tf.mul(tf.mul(G, c), alpha), tf.mul(G, 1 - alpha)), shape));
  return [out, maskChecksum(Hdata, tau, seed)];
}

function checkHistory(name: string, h: { rows: number; half: number }, rows: number, cols: number): void {
  if (h.rows !== rows || h.half !== halfCols(cols)) {
    throw new RangeError(`SMI: gradient ${name} is ${rows}×${cols}, its history [${h.half}, ${h.rows}] does not fit`);
  }
}
