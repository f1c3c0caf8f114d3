// Data-parallel arithmetic without a network: batch splitting, weighted means, the three spectral modes' math.
//
// How a step is shared (docs/distributed.md). The global batch (a pure function of seed and step) is cut into
// chunks, one per live worker; a chunk whose worker fails is handed to another. Each chunk c of n_c sequences
// gives the mean-loss gradient g_c of its sequences; the global gradient is ḡ = Σ_c (n_c / B) g_c.
//
// Global-norm clipping needs ‖ḡ‖, known only once every chunk is in; SMI runs on the clipped gradient. So:
// - global: workers return g_c; the coordinator clips ḡ and runs SMI on it exactly as one process would.
// - synced: workers return g_c and M_c = |FFT2(g_c)|. The coordinator computes the clip coefficient κ from ḡ,
//   averages κ·Σ (n_c/B) M_c into the one shared history H and takes τ and the mask Ω = [H ≥ τ]. Each chunk's
//   blend is b_c = α·Re(IFFT2(κĜ_c ⊙ Ω)) + (1−α)·κg_c, and the step uses their mean b̄ = Σ (n_c/B) b_c. For a
//   fixed Ω, b_c is linear in g_c, so b̄ = α·Re(IFFT2(FFT2(κḡ) ⊙ Ω)) + (1−α)·κḡ: the same mask applied once, to
//   the mean gradient. The coordinator does that by default (--synced-blend coordinator: one round trip, the
//   workers' spectral work is M_c alone); with --synced-blend workers it sends Ω and κ back, each worker blends
//   its own spectrum and the coordinator averages the b_c (two round trips; each worker reports a checksum
//   of the masks it applied). Both agree to float rounding (test/coordinator/distributed.test.ts); with one
//   worker either is the one-process run up to float rounding.
// - local: workers return g_c; the coordinator sends κ back; each worker runs SMI with its own history on
//   κg_c and returns b_c, which are averaged. No synchronisation: an ablation.
import * as tf from '@tensorflow/tfjs';
import { forward, magnitude, maskedBlend, threshold, updateHistory, maskChecksum, type Spectrum } from '../smi/steps.ts';
import { tfForward, tfMagnitude } from '../smi/tf.ts';
import { MASK_CHECKSUM_SEED, hostMagnitude, hostStep } from '../smi/host.ts';
import { view2d } from '../smi/runs.ts';
import { weightedSum } from './reduce.ts';
import { weightedSumInto } from '../wasm/reduce.ts';

/** Packs the mask [H ≥ τ] into bits (bit j of byte b is element 8b + j), as maskChecksum reads it. */
export function packMask(H: Float32Array, tau: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(H.length / 8));
  for (let i = 0; i < H.length; i++) if (H[i]! >= tau) out[i >> 3]! |= 1 << (i & 7);
  return out;
}

/** The mask as 0/1 floats, so maskedBlend(spec, G, mask, 0.5, α) applies exactly these bits. */
export function unpackMask(bits: Uint8Array, n: number): Float32Array {
  if (bits.length !== Math.ceil(n / 8)) throw new RangeError(`mask has ${bits.length} bytes, expected ${Math.ceil(n / 8)}`);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (bits[i >> 3]! >> (i & 7)) & 1;
  return out;
}

/** Checksum of packed masks, chained over parameters exactly like SpectralMomentum.lastMaskChecksum. */
export function packedMaskChecksum(masks: readonly Uint8Array[], sizes: readonly number[]): number {
  let sum = MASK_CHECKSUM_SEED;
  masks.forEach((bits, p) => (sum = maskChecksum(unpackMask(bits, sizes[p]!), 0.5, sum)));
  return sum;
}

/**
 * The masks' checksum when the tensors' masks are made by several owners (--update owners): FNV-1a over the bytes
 * of each tensor's own checksum (each from the seed), little-endian, in parameter order.
 */
export function combineChecksums(perTensor: readonly number[]): number {
  let h = MASK_CHECKSUM_SEED;
  for (const c of perTensor) for (let b = 0; b < 4; b++) h = Math.imul(h ^ ((c >>> (8 * b)) & 0xff), 0x01000193);
  return h >>> 0;
}

/** A chunk's local spectra, kept by a worker between returning magnitudes and blending (synced mode). */
export interface KeptSpectra {
  grads: Float32Array[];
  spectra: Spectrum[];
}

/** Worker side, synced mode: the spectrum of each gradient (copied, so later transforms cannot reuse it) and |Ĝ|. */
export function localSpectra(grads: readonly Float32Array[], shapes: readonly number[][]): { kept: KeptSpectra; magnitudes: Float32Array[] } {
  const spectra = grads.map((g, p) => {
    const [rows, cols] = view2d(shapes[p]!);
    const s = forward(g, rows, cols);
    return { ...s, re: s.re.slice(), im: s.im.slice() };
  });
  return { kept: { grads: [...grads], spectra }, magnitudes: spectra.map((s) => magnitude(s)) };
}

/** Worker side, synced mode: M_c = |FFT2(g_c)| of each gradient ([half, rows]; magnitude(forward(g)) to the bit), into `into` when given. */
export function spectrumMagnitudes(grads: readonly Float32Array[], shapes: readonly number[][], into?: readonly Float32Array[]): Float32Array[] {
  return grads.map((g, p) => {
    const [rows, cols] = view2d(shapes[p]!);
    return hostMagnitude(g, rows, cols, into?.[p]);
  });
}

/**
 * Worker side, synced mode on a TensorFlow backend: M_c = |FFT2(g_c)| with tf.spectral where the gradients are
 * (only the magnitudes are read back), in spectrumMagnitudes()'s layout [half, rows]; into `into` when given.
 */
export function tfGradientMagnitudes(grads: readonly tf.Tensor[], into?: readonly Float32Array[]): Float32Array[] {
  return grads.map((g, p) => {
    const [rows, cols] = view2d(g.shape);
    const M = tf.tidy(() => tfMagnitude(tfForward(tf.reshape(g, [rows, cols]) as tf.Tensor2D)));
    const out = into?.[p] ?? new Float32Array(M.size);
    out.set(M.dataSync() as Float32Array);
    M.dispose();
    return out;
  });
}

/** κ·a as a new array (a itself when κ = 1; into `into` when given), float32 rounding as maskedBlend's inputs expect. */
function scaled(a: Float32Array, coef: number, into?: Float32Array): Float32Array {
  if (coef === 1) return a;
  const out = into ?? new Float32Array(a.length);
  weightedSumInto([a], [coef], out); // out[i] = f32(a[i]·κ), the product in double: wasm SIMD where it runs, the same bits
  return out;
}

/** Worker side, synced mode: b = α·Re(IFFT2(κĜ ⊙ Ω)) + (1−α)·κg for each parameter, with the shared masks. */
export function blendWithMasks(kept: KeptSpectra, masks: readonly Uint8Array[], coef: number, alpha: number): Float32Array[] {
  return kept.spectra.map((s, p) => {
    const n = s.rows * s.half;
    const spec = { ...s, re: scaled(s.re, coef), im: scaled(s.im, coef) };
    return maskedBlend(spec, scaled(kept.grads[p]!, coef), unpackMask(masks[p]!, n), 0.5, alpha);
  });
}

/** One parameter's shared history on the coordinator (synced mode), in SpectralMomentum's layout [half, rows]. */
interface SharedHistory {
  rows: number;
  cols: number;
  H: Float32Array;
}

/** blendMean's per-parameter buffers, reused from step to step: the next H, κḡ and b̄. */
interface BlendBuffers {
  H: Float32Array;
  G: Float32Array;
  out: Float32Array;
}

/**
 * Coordinator side, synced mode: the one shared history. `prepare` computes the step's H, τ and masks from the
 * chunks' magnitudes without committing; `commit` keeps them once the step is applied (so a step that must be
 * redone after a failure starts from the same history).
 */
export class SharedSpectralHistory {
  private hist = new Map<string, SharedHistory>();
  private pending: Map<string, SharedHistory> | null = null;
  private buffers = new Map<string, BlendBuffers>();

  constructor(readonly beta: number, readonly q: number) {}

  /** M̄ = κ·Σ_c w_c M_c per parameter → H (EMA) → τ → packed masks and their chained checksum. */
  prepare(names: readonly string[], shapes: readonly number[][], magnitudes: readonly (readonly Float32Array[])[], weights: readonly number[], coef: number, o: { perTensor?: boolean } = {}): { masks: Uint8Array[]; checksum: number; checksums?: number[] } {
    const mean = weightedSum(magnitudes, weights.map((w) => w * coef));
    this.pending = new Map();
    const masks: Uint8Array[] = [];
    const checksums: number[] = [];
    let checksum = MASK_CHECKSUM_SEED;
    names.forEach((name, p) => {
      const [rows, cols] = view2d(shapes[p]!);
      const prev = this.hist.get(name);
      const H = updateHistory(prev ? prev.H.slice() : null, mean[p]!, this.beta);
      const tau = threshold(H, rows, cols, this.q);
      masks.push(packMask(H, tau));
      checksum = maskChecksum(H, tau, o.perTensor ? MASK_CHECKSUM_SEED : checksum);
      checksums.push(checksum);
      this.pending!.set(name, { rows, cols, H });
    });
    return o.perTensor ? { masks, checksum: combineChecksums(checksums), checksums } : { masks, checksum };
  }

  /**
   * The one-round form (--synced-blend coordinator): the step's H from the chunks' magnitudes as prepare(),
   * and the shared mask applied once to the clipped mean gradient, b̄ = α·Re(IFFT2(FFT2(κḡ) ⊙ Ω)) + (1−α)·κḡ
   * (fused: shared/smi/host.ts hostStep). Returns b̄ per parameter and the masks' chained checksum (the same
   * value prepare() gives for these inputs). Nothing is committed. The returned arrays are reused by the next
   * call: use them (e.g. copy them into tensors) before. Needs `await initFft()`. `o.part`: these tensors are a
   * later part of the same step (an owner updating its tensors in parts): the earlier parts' pending H stay, and
   * the chained checksum (without perTensor) goes on from `o.chain`.
   */
  blendMean(names: readonly string[], shapes: readonly number[][], mean: readonly Float32Array[], magnitudes: readonly (readonly Float32Array[])[], weights: readonly number[], coef: number, alpha: number, o: { perTensor?: boolean; part?: boolean; chain?: number } = {}): { tensors: Float32Array[]; checksum: number; checksums?: number[] } {
    const bufs = names.map((name, p) => {
      let b = this.buffers.get(name);
      if (!b || b.G.length !== mean[p]!.length) {
        const n = magnitudes[0]![p]!.length;
        b = { H: new Float32Array(n), G: new Float32Array(mean[p]!.length), out: new Float32Array(mean[p]!.length) };
        this.buffers.set(name, b);
      }
      return b;
    });
    const wk = weights.map((w) => w * coef); // M̄ = Σ (κ·w_c) M_c, taken by hostStep where its EMA reads it
    if (!o.part || !this.pending) this.pending = new Map();
    const tensors: Float32Array[] = [];
    const checksums: number[] = [];
    let checksum = o.part && o.chain !== undefined ? o.chain : MASK_CHECKSUM_SEED;
    names.forEach((name, p) => {
      const [rows, cols] = view2d(shapes[p]!);
      const prev = this.hist.get(name);
      const b = bufs[p]!;
      if (o.perTensor) checksum = MASK_CHECKSUM_SEED;
      const H = b.H; // the committed history's buffer and this one trade places on commit()
      if (prev) H.set(prev.H);
      const G = scaled(mean[p]!, coef, b.G);
      const out = b.out;
      const mbar = { arrays: magnitudes.map((c) => c[p]!), weights: wk };
      checksum = hostStep(G, rows, cols, H, !prev, { beta: this.beta, q: this.q, alpha }, checksum, () => ({ G, out }), undefined, mbar);
      checksums.push(checksum);
      tensors.push(out);
      this.pending!.set(name, { rows, cols, H });
    });
    return o.perTensor ? { tensors, checksum: combineChecksums(checksums), checksums } : { tensors, checksum };
  }

  commit(): void {
    if (this.pending) {
      for (const [k, v] of this.pending) {
        const old = this.hist.get(k);
        const b = this.buffers.get(k);
        // the old history's buffer is the next step's (never the committed one: a redone step must find it intact)
        if (b && b.H === v.H) b.H = old && old.H.length === v.H.length ? old.H : new Float32Array(v.H.length);
        this.hist.set(k, v);
      }
    }
    this.pending = null;
  }

  /** As SpectralMomentum.getState(): entries sorted by name, shape [half, rows]. */
  getState(): { name: string; shape: number[]; data: Float32Array }[] {
    return [...this.hist.keys()].sort().map((name) => {
      const h = this.hist.get(name)!;
      return { name, shape: [h.H.length / h.rows, h.rows], data: h.H.slice() };
    });
  }

  setState(entries: readonly { name: string; shape: number[]; data: Float32Array }[], shapes: Map<string, number[]>): void {
    this.hist = new Map();
    for (const e of entries) {
      const shape = shapes.get(e.name);
      if (!shape) throw new RangeError(`spectral history for unknown parameter ${e.name}`);
      const [rows, cols] = view2d(shape);
      this.hist.set(e.name, { rows, cols, H: e.data.slice() });
    }
  }
}
