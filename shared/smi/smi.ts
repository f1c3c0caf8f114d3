// Spectral Momentum Integration (docs/algorithm.md): SpectralMomentum keeps one magnitude history per parameter and filters a step's gradients.
//
// Two engines with the same data layout and the same float32 bits: host (the fused step of shared/smi/host.ts, for
// the wasm and cpu backends: on wasm the gradient is read and the result written in place in tensor memory) and
// tf (the steps of shared/smi/tf.ts with tf.spectral, for tfjs-node and GPUs; only the quantile on the host). The
// runs are in runs.ts, the separable host steps in steps.ts.
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import { Rng, STREAM } from '../model/rng.ts';
import { heapBackendOf } from '../wasm/heap.ts';
import { halfCols } from './fft.ts';
import { MASK_CHECKSUM_SEED, hostStep, lap, type HostControl, type HostStepParams, type HostStepProfile } from './host.ts';
import { view2d, type SmiRun } from './runs.ts';
import { maskChecksum, threshold } from './steps.ts';
import { disposeTfSpectrum, tfControl, tfForward, tfMagnitude, tfMaskedBlend, tfUpdateHistory } from './tf.ts';

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
   * tensors in the same order, owned by the caller. `chain`: the checksum to chain this call's masks onto (a later
   * part of one step's tensors: the previous part's lastMaskChecksum).
   */
  apply(list: readonly NamedTensor[], t: number, alpha: number, chain = MASK_CHECKSUM_SEED): NamedTensor[] {
    const seen = new Set<string>();
    for (const { name } of list) {
      if (seen.has(name)) throw new Error(`SMI: gradient ${name} given twice`);
      seen.add(name);
    }
    let checksum = chain;
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

function checkHistory(name: string, h: { rows: number; half: number }, rows: number, cols: number): void {
  if (h.rows !== rows || h.half !== halfCols(cols)) {
    throw new RangeError(`SMI: gradient ${name} is ${rows}×${cols}, its history [${h.half}, ${h.rows}] does not fit`);
  }
}
