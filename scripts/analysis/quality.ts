// Parameter-quality metrics of a trained model (docs/metrics.md, the paper's Tables 2–4), with the definitions stated.
//
// The paper does not define its metrics; these are the definitions used here (also in QUALITY_DEFINITIONS, which
// the report and `npm run analyze` print next to the numbers):
// - the matrices: every 2-D weight (wte, wpe, and per block attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj);
//   lm_head is tied to wte and counted once; LayerNorm gains (1-D) are left out.
// - per matrix: singular values by ml-matrix's SVD (Golub–Kahan, in float64); spectral norm = σ_max;
//   condition number = σ_max / σ_min over the min(m, n) singular values; effective-rank ratio =
//   exp(H(p)) / min(m, n) with p_i = σ_i / Σσ and H the Shannon entropy in nats (Roy & Vetterli's effective
//   rank, divided by the largest possible rank: 1 for an orthogonal matrix, 1/min(m, n) for rank one).
// - across layers: mean and population variance (divide by n, numpy's np.var) of the spectral norms over the
//   matrices above; mean (and median) condition number; mean effective-rank ratio.
// - parameter magnitude variance: population variance of |w| pooled over all entries of those matrices.
// - kurtosis: Pearson's (NOT excess: a normal distribution has 3), biased moment estimator m4 / m2²
//   (scipy.stats.kurtosis(fisher=False)), of each matrix's entries, averaged over the matrices; the pooled
//   value over all entries is given too (it mixes matrices of different scales, so it is larger).
// - activation sparsity on validation text: the fraction of values with |a| < ε (ε = 0.01) among
//   (attention) the causal attention probabilities (entries j ≤ i only: the masked ones are zero by
//   construction), (mlp) the MLP's GELU outputs, (layerNorm) the outputs of every LayerNorm (ln_1, ln_2,
//   ln_f, after the gain); overall = the mean of the three, as the paper's "overall average" is the mean of its
//   three rows. Computed by the model's own GPT.forward (shared/model/gpt.ts, dropout off) through its activation hook.
import * as tf from '@tensorflow/tfjs';
import { SVD, Matrix } from 'ml-matrix';
import { evalOffsets, makeBatch } from '../../shared/model/data.ts';
import type { ActivationHook, GPT } from '../../shared/model/gpt.ts';
import { median } from '../../shared/stats.ts';

export { median };

export const ACTIVATION_EPS = 0.01;

export const QUALITY_DEFINITIONS: Record<string, string> = {
  matrices: 'every 2-D weight: wte, wpe, attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj (lm_head = wte, counted once)',
  spectralNorm: 'σ_max (largest singular value, ml-matrix SVD in float64)',
  spectralNormVariance: 'population variance (÷n) of the spectral norms across those matrices',
  conditionNumber: 'σ_max / σ_min over the min(m, n) singular values; mean (and median) over matrices',
  effectiveRankRatio: 'exp(entropy of p_i = σ_i/Σσ, nats) / min(m, n), mean over matrices',
  magnitudeVariance: 'population variance of |w| over all entries of those matrices',
  kurtosis: "Pearson's kurtosis m4/m2² (not excess: normal = 3) of each matrix's entries, mean over matrices; pooled = over all entries",
  activationSparsity: `fraction of |a| < ${ACTIVATION_EPS} on validation text: attention = causal attention probabilities (j ≤ i), mlp = GELU outputs, layerNorm = LayerNorm outputs (ln_1, ln_2, ln_f); overall = mean of the three`,
};

// ---- pure statistics -------------------------------------------------------------------------------------

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return s / xs.length;
}

/** Population variance (divide by n, numpy's default). */
export function variance(xs: ArrayLike<number>): number {
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += (xs[i]! - m) ** 2;
  return s / xs.length;
}


/** Kurtosis from the biased central moments, m4 / m2²; Pearson's (normal = 3), or excess (normal = 0) with `excess`. */
export function kurtosis(xs: ArrayLike<number>, excess = false): number {
  const m = mean(xs);
  let m2 = 0;
  let m4 = 0;
  for (let i = 0; i < xs.length; i++) {
    const d = (xs[i]! - m) ** 2;
    m2 += d;
    m4 += d * d;
  }
  m2 /= xs.length;
  m4 /= xs.length;
  return m4 / (m2 * m2) - (excess ? 3 : 0);
}

/** The fraction of values with |v| < eps. */
export function sparsity(values: ArrayLike<number>, eps = ACTIVATION_EPS): number {
  let n = 0;
  for (let i = 0; i < values.length; i++) if (Math.abs(values[i]!) < eps) n++;
  return n / values.length;
}

// ---- matrices --------------------------------------------------------------------------------------------

/** The min(rows, cols) singular values of a row-major rows × cols matrix, largest first. */
export function singularValues(data: ArrayLike<number>, rows: number, cols: number): number[] {
  if (data.length !== rows * cols) throw new RangeError(`singularValues: ${data.length} values for ${rows}×${cols}`);
  const m = new Matrix(rows, cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) m.set(r, c, data[r * cols + c]!);
  const svd = new SVD(m, { computeLeftSingularVectors: false, computeRightSingularVectors: false, autoTranspose: true });
  return svd.diagonal.slice(0, Math.min(rows, cols)).map(Math.abs).sort((a, b) => b - a);
}

export const spectralNorm = (sv: readonly number[]): number => sv[0]!;

/** σ_max / σ_min (Infinity for a singular matrix). */
export const conditionNumber = (sv: readonly number[]): number => (sv.at(-1)! === 0 ? Infinity : sv[0]! / sv.at(-1)!);

/** exp(Shannon entropy of σ_i / Σσ) / min(m, n), with min(m, n) = the number of singular values given. */
export function effectiveRankRatio(sv: readonly number[]): number {
  const total = sv.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  let h = 0;
  for (const s of sv) {
    const p = s / total;
    if (p > 0) h -= p * Math.log(p);
  }
  return Math.exp(h) / sv.length;
}

export interface MatrixQuality {
  name: string;
  rows: number;
  cols: number;
  spectralNorm: number;
  conditionNumber: number;
  effectiveRankRatio: number;
  kurtosis: number;
}

export function matrixQuality(name: string, data: ArrayLike<number>, rows: number, cols: number): MatrixQuality {
  const sv = singularValues(data, rows, cols);
  return { name, rows, cols, spectralNorm: spectralNorm(sv), conditionNumber: conditionNumber(sv), effectiveRankRatio: effectiveRankRatio(sv), kurtosis: kurtosis(data) };
}

export interface WeightQuality {
  matrices: MatrixQuality[];
  spectralNormMean: number;
  spectralNormVariance: number;
  conditionNumberMean: number;
  conditionNumberMedian: number;
  effectiveRankRatioMean: number;
  magnitudeVariance: number;
  kurtosis: number;
  kurtosisPooled: number;
  parameters: number;
}

/** The weight metrics of a model given as nanoGPT-named tensors (model.safetensors, GPT.exportWeights()). */
export function weightQuality(weights: Map<string, { shape: number[]; data: Float32Array }>): WeightQuality {
  const mats = [...weights].filter(([name, t]) => t.shape.length === 2 && name !== 'lm_head.weight');
  if (mats.length === 0) throw new RangeError('weightQuality: no 2-D weights');
  const matrices = mats.map(([name, t]) => matrixQuality(name, t.data, t.shape[0]!, t.shape[1]!));
  const n = mats.reduce((a, [, t]) => a + t.data.length, 0);
  const all = new Float64Array(n);
  let o = 0;
  for (const [, t] of mats) {
    all.set(t.data, o);
    o += t.data.length;
  }
  const abs = all.map(Math.abs);
  const norms = matrices.map((m) => m.spectralNorm);
  const conds = matrices.map((m) => m.conditionNumber);
  return {
    matrices,
    spectralNormMean: mean(norms),
    spectralNormVariance: variance(norms),
    conditionNumberMean: mean(conds),
    conditionNumberMedian: median(conds),
    effectiveRankRatioMean: mean(matrices.map((m) => m.effectiveRankRatio)),
    magnitudeVariance: variance(abs),
    kurtosis: mean(matrices.map((m) => m.kurtosis)),
    kurtosisPooled: kurtosis(all),
    parameters: n,
  };
}

// ---- activations -----------------------------------------------------------------------------------------

export interface ActivationSparsity {
  attention: number;
  mlp: number;
  layerNorm: number;
  overall: number;
  eps: number;
  /** tokens the statistics were taken over */
  tokens: number;
  /** mean cross-entropy on the same text (a check that the mirrored forward pass is the model's) */
  loss: number;
}

interface Counts {
  attention: [number, number];
  mlp: [number, number];
  layerNorm: [number, number];
}

/**
 * The model's own forward pass (GPT.forward, dropout off) with a hook that counts activations with |a| < eps.
 * Returns the logits (B·T, V) as host floats and the counts [small, total] per kind.
 */
export function forwardWithActivations(model: GPT, x: Int32Array, batch: number, eps = ACTIVATION_EPS): { logits: Float32Array; counts: Counts } {
  const T = x.length / batch;
  const B = batch;
  const small: Record<keyof Counts, tf.Scalar[]> = { attention: [], mlp: [], layerNorm: [] };
  const total: Record<keyof Counts, number> = { attention: 0, mlp: 0, layerNorm: 0 };
  const { logits, counts } = tf.tidy(() => {
    const causal = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = 0; j <= i; j++) causal[i * T + j] = 1;
    const causalT = tf.tensor2d(causal, [T, T]);
    const hook: ActivationHook = (kind, t) => {
      const hit = tf.cast(tf.less(tf.abs(t), eps), 'float32');
      if (kind === 'attention') {
        // the causal entries j ≤ i only: the masked ones are zero by construction
        small.attention.push(tf.sum(tf.mul(hit, causalT)) as tf.Scalar);
        total.attention += (t.size / (T * T)) * ((T * (T + 1)) / 2);
      } else {
        small[kind].push(tf.sum(hit) as tf.Scalar);
        total[kind] += t.size;
      }
    };
    const out = model.forward(tf.tensor2d(x, [B, T], 'int32'), undefined, false, hook);
    const sums = (['attention', 'mlp', 'layerNorm'] as const).map((k) => tf.addN(small[k]));
    return { logits: out, counts: tf.stack(sums) };
  });
  const c = counts.dataSync();
  const result = { logits: logits.dataSync() as Float32Array, counts: { attention: [c[0]!, total.attention], mlp: [c[1]!, total.mlp], layerNorm: [c[2]!, total.layerNorm] } as Counts };
  logits.dispose();
  counts.dispose();
  return result;
}

/** Mean cross-entropy of row-major logits (N, V) against targets (N), in float64. */
export function crossEntropy(logits: Float32Array, targets: Int32Array, V: number): number {
  let s = 0;
  for (let n = 0; n < targets.length; n++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[n * V + v]!);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[n * V + v]! - max);
    s += Math.log(z) + max - logits[n * V + targets[n]!]!;
  }
  return s / targets.length;
}

/** Activation sparsity over batches of validation text (x, y row-major [batch, T]). */
export function activationSparsity(model: GPT, batches: readonly { x: Int32Array; y: Int32Array }[], batch: number, eps = ACTIVATION_EPS): ActivationSparsity {
  const acc: Counts = { attention: [0, 0], mlp: [0, 0], layerNorm: [0, 0] };
  let loss = 0;
  let tokens = 0;
  for (const b of batches) {
    const { logits, counts } = forwardWithActivations(model, b.x, batch, eps);
    for (const k of ['attention', 'mlp', 'layerNorm'] as const) {
      acc[k][0] += counts[k][0];
      acc[k][1] += counts[k][1];
    }
    loss += crossEntropy(logits, b.y, model.config.vocab_size) * b.y.length;
    tokens += b.y.length;
  }
  const attention = acc.attention[0] / acc.attention[1];
  const mlp = acc.mlp[0] / acc.mlp[1];
  const layerNorm = acc.layerNorm[0] / acc.layerNorm[1];
  return { attention, mlp, layerNorm, overall: (attention + mlp + layerNorm) / 3, eps, tokens, loss: loss / tokens };
}

// ---- a whole model ---------------------------------------------------------------------------------------

/**
 * `count` batches of validation text, the same for every model of the given batch and block size: the
 * validation batches the trainer evaluates at step 0 with seed `seed` (shared/model/data.ts evalOffsets).
 */
export function validationBatches(val: Uint8Array, batch: number, block: number, count: number, seed = 1337): { x: Int32Array; y: Int32Array }[] {
  return Array.from({ length: count }, (_, i) => makeBatch(val, evalOffsets(seed, 'val', 0, i, batch, block, val.length), block));
}

export interface ModelQuality {
  weights: WeightQuality;
  /** null when no validation text was given */
  activation: ActivationSparsity | null;
}

/** Weight metrics, and activation sparsity on `batches` validation batches of the model's batch size when `val` is given. */
export function modelQuality(model: GPT, val?: Uint8Array, o: { batches?: number; batchSize?: number; seed?: number; eps?: number } = {}): ModelQuality {
  const weights = weightQuality(model.exportWeights());
  if (!val) return { weights, activation: null };
  const B = o.batchSize ?? 8;
  const data = validationBatches(val, B, model.config.block_size, o.batches ?? 4, o.seed ?? 1337);
  return { weights, activation: activationSparsity(model, data, B, o.eps ?? ACTIVATION_EPS) };
}
