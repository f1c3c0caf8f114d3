// The one update step, clip → SMI → AdamW, on a shard of the model's tensors: --local and every distributed mode call it.
//
// A shard is a subset of the model's tensors with their optimizer and SMI state; --local and today's coordinator
// hold one shard, the whole model. Global-norm clipping needs the norm of the whole mean gradient, so the clip
// coefficient κ is computed first, from one sum of squares per shard (sumOfSquares → globalClip), and then every
// shard runs applyUpdate with that κ.
//
// Three forms of the step exist, and each keeps the arithmetic it has always had, so that no run's numbers change:
// - tensors (--local, global mode): Σg² by tf ops in float32 and the norm rounded to float32 (as tf.sqrt of that
//   sum gives it: torch's clip_grad_norm_, as the tensor clip always computed it); κ·g by tf.mul (κ rounded to
//   float32); SMI by SpectralMomentum on the shard's backend; AdamW.
// - host arrays with the workers' magnitudes (synced mode, --synced-blend coordinator): Σg² and the norm in
//   float64; κ·g on the host with κ in double; the shared history's one mask applied to κḡ
//   (SharedSpectralHistory.blendMean, the fused host step); AdamW.
// - host arrays already clipped and blended by the workers (--synced-blend workers, local mode): AdamW alone.
import * as tf from '@tensorflow/tfjs';
import type { AdamW } from '../model/adamw.ts';
import type { SharedSpectralHistory } from '../parallel/spectral.ts';
import type { SpectralMomentum } from '../smi/smi.ts';
import { TrainingError } from '../errors.ts';
import { sumOfSquaresInOrder } from '../wasm/reduce.ts';

/** Tensors updated together: their names, shapes and variables (parameter order), AdamW's moments and SMI's history. */
export interface Shard {
  names: readonly string[];
  shapes: readonly number[][];
  params: readonly tf.Variable[];
  opt: AdamW;
  /** SMI on the clipped mean gradient (one process, global mode); null for the baseline and where SMI runs elsewhere */
  smi: SpectralMomentum | null;
  /** synced mode: the one history of the workers' averaged magnitudes */
  shared: SharedSpectralHistory | null;
}

/** The mean gradient of a shard's tensors, in its parameter order: tensors, or host arrays. */
export type MeanGradient = readonly tf.Tensor[] | readonly Float32Array[];

const isTensors = (g: MeanGradient): g is readonly tf.Tensor[] => g.length > 0 && g[0] instanceof tf.Tensor;

/**
 * Σ g² over a shard's mean gradient: over tensors by tf ops in float32 (the sum of each tensor's squares, then
 * their sum), over host arrays in float64, in parameter order.
 */
export function sumOfSquares(grads: MeanGradient): number {
  if (grads.length === 0) return 0;
  if (isTensors(grads)) {
    const t = tf.tidy(() => tf.addN(grads.map((g) => tf.sum(tf.square(g)))));
    const s = t.dataSync()[0]!;
    t.dispose();
    return s;
  }
  let sq = 0;
  for (const g of grads) sq = sumOfSquaresInOrder(g, sq);
  return sq;
}

/**
 * The global norm √(Σ of the shards' sums of squares) and torch's clip_grad_norm_ coefficient
 * κ = min(1, maxNorm / (norm + 1e-6)) (1 when maxNorm is 0). `float32`: the norm as tf.sqrt of the float32 sum
 * gives it (the tensor form), else the double square root (the host form). A non-finite norm refuses the step
 * (TrainingError E_NONFINITE_GRAD) before anything is applied.
 */
export function globalClip(sums: readonly number[], maxNorm: number, step: number, float32: boolean): { norm: number; coef: number } {
  const total = sums.reduce((a, b) => a + b, 0);
  const norm = float32 ? Math.fround(Math.sqrt(Math.fround(total))) : Math.sqrt(total);
  if (!Number.isFinite(norm)) throw new TrainingError('E_NONFINITE_GRAD', `gradient norm is ${norm} at step ${step}: update refused, weights unchanged`);
  return { norm, coef: maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1 };
}

/**
 * κ·g, then SMI at step `step` with blend factor α when `smi` is given: new tensors the caller owns (the inputs
 * are left as they are). κ = 1 copies. A worker's own filter in local mode is this too.
 */
export function clipAndFilter(smi: SpectralMomentum | null, names: readonly string[], grads: readonly tf.Tensor[], clip: number, step: number, alpha: number, chain?: number): tf.Tensor[] {
  const clipped = grads.map((g) => (clip < 1 ? tf.mul(g, clip) : tf.clone(g)));
  if (!smi) return clipped;
  try {
    return smi.apply(clipped.map((tensor, i) => ({ name: names[i]!, tensor })), step, alpha, chain).map((n) => n.tensor);
  } finally {
    tf.dispose(clipped);
  }
}

export interface UpdateOptions {
  clip: number; // κ, from globalClip
  step: number; // 1-based, SMI's t (a control's random-mask stream follows it); AdamW counts its own steps
  lr: number;
  alpha: number; // SMI's α_t
  /** synced mode: each chunk's magnitude spectra and weight n_c / B, for the shared history */
  magnitudes?: { spectra: readonly (readonly Float32Array[])[]; weights: readonly number[]; perTensor?: boolean };
  /** the gradients are the workers' clipped, filtered and averaged blends: AdamW alone */
  blended?: boolean;
}

export interface UpdateResult {
  maskChecksum?: number; // synced: the shared masks' chained checksum
  maskChecksums?: number[]; // synced with magnitudes.perTensor: each tensor's mask checksum (maskChecksum is then combineChecksums of them)
  ms: { spectral: number; optimizer: number }; // clip and SMI (or the shared blend); AdamW
}

/**
 * A part of one update of a shard: its tensors `indices`, the gradients given being theirs in that order. The
 * parts of one update are contiguous and in order, the first starting at tensor 0.
 */
export interface UpdatePart {
  indices: readonly number[];
  /** the last part of the update: AdamW counts the step, the synced history is committed */
  last: boolean;
  /** the parts before: their chained mask checksum (SMI's lastMaskChecksum; synced without perTensor, its checksum) */
  chain?: number;
}

/**
 * One optimizer step of a shard from its mean gradient (see the file's head for the three forms). Tensors given
 * are disposed. The synced shared history is committed once AdamW has run (a step redone after a failure starts
 * from the history before it). In parts (an owner sending each part's values while it updates the next): call
 * it once per part, in order, with the same options; each tensor's arithmetic is the one the whole update does.
 */
export function applyUpdate(shard: Shard, grads: MeanGradient, o: UpdateOptions, part?: UpdatePart): UpdateResult {
  const t0 = performance.now();
  const idx = part ? part.indices : shard.params.map((_, i) => i);
  if (grads.length !== idx.length) throw new RangeError(`applyUpdate: ${grads.length} gradients for ${idx.length} tensors of the shard`);
  const names = part ? idx.map((i) => shard.names[i]!) : shard.names;
  const shapes = part ? idx.map((i) => shard.shapes[i]!) : shard.shapes;
  let final: tf.Tensor[];
  let maskChecksum: number | undefined;
  let maskChecksums: number[] | undefined;
  const asTensors = (g: MeanGradient) => (isTensors(g) ? [...g] : g.map((x, i) => tf.tensor(x, shapes[i]!)));
  if (o.blended) {
    final = asTensors(grads);
  } else if (o.magnitudes) {
    if (!shard.shared) throw new RangeError('applyUpdate: magnitudes for a shard without a shared history');
    if (isTensors(grads)) throw new TypeError('applyUpdate: the synced blend takes the mean gradient as host arrays');
    const spectra = part ? o.magnitudes.spectra.map((c) => idx.map((i) => c[i]!)) : o.magnitudes.spectra;
    const { tensors, checksum, checksums } = shard.shared.blendMean(names, shapes, grads, spectra, o.magnitudes.weights, o.clip, o.alpha, { perTensor: o.magnitudes.perTensor, part: part !== undefined && idx[0] !== 0, chain: part?.chain });
    maskChecksum = checksum;
    maskChecksums = checksums;
    final = tensors.map((g, i) => tf.tensor(g, shapes[i]!));
  } else {
    const tensors = asTensors(grads);
    try {
      final = clipAndFilter(shard.smi, names, tensors, o.clip, o.step, o.alpha, part?.chain);
    } finally {
      tf.dispose(tensors);
    }
  }
  const t1 = performance.now();
  shard.opt.apply([...shard.params], final, o.lr, part);
  tf.dispose(final);
  if (!part || part.last) shard.shared?.commit();
  const t2 = performance.now();
  return { maskChecksum, maskChecksums, ms: { spectral: t1 - t0, optimizer: t2 - t1 } };
}
