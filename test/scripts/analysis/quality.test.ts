// Parameter-quality metrics (scripts/analysis/quality.ts) and inference speed on known matrices and a small model.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { resolveConfig } from '../../../shared/config.ts';
import { forwardFlopsPerToken, measureInference, speedRatio } from '../../../scripts/analysis/inference.ts';
import { GPT } from '../../../shared/model/gpt.ts';
import {
  activationSparsity, conditionNumber, effectiveRankRatio, forwardWithActivations, kurtosis, matrixQuality, median, singularValues,
  sparsity, spectralNorm, variance, weightQuality,
} from '../../../scripts/analysis/quality.ts';
import { Rng } from '../../../shared/model/rng.ts';

await tf.setBackend('cpu');
tf.enableProdMode();

const close = (t: { ok: (c: boolean, m: string) => unknown }, a: number, b: number, tol: number, msg: string) => t.ok(Math.abs(a - b) <= tol, `${msg}: ${a} ≈ ${b}`);

t.test('a diagonal matrix: singular values, spectral norm, condition number', async (t) => {
  // 3×5, diag(2, −5, 0.5): singular values are |diagonal| sorted
  const A = new Float32Array(15);
  A[0] = 2;
  A[1 * 5 + 1] = -5;
  A[2 * 5 + 2] = 0.5;
  const sv = singularValues(A, 3, 5);
  t.equal(sv.length, 3, 'min(m, n) values');
  sv.forEach((s, i) => close(t, s, [5, 2, 0.5][i]!, 1e-12, `σ${i + 1}`));
  close(t, spectralNorm(sv), 5, 1e-12, 'spectral norm');
  close(t, conditionNumber(sv), 10, 1e-10, 'condition number');
  const tall = singularValues(Float32Array.from([3, 0, 0, 4, 0, 0]), 3, 2); // [[3,0],[0,4],[0,0]]
  t.same(tall.map((s) => +s.toFixed(12)), [4, 3], 'tall matrices too');
  t.equal(conditionNumber([1, 0]), Infinity, 'singular: ∞');
});

t.test('effective-rank ratio: 1 for an orthogonal matrix, 1/n for rank one', async (t) => {
  const h = 0.5; // Hadamard(4) / 2 is orthogonal
  const H = Float32Array.from([h, h, h, h, h, -h, h, -h, h, h, -h, -h, h, -h, -h, h]);
  const sv = singularValues(H, 4, 4);
  sv.forEach((s) => close(t, s, 1, 1e-7, 'σ = 1'));
  close(t, effectiveRankRatio(sv), 1, 1e-6, 'orthogonal: ratio 1');
  close(t, conditionNumber(sv), 1, 1e-6, 'orthogonal: condition 1');
  const u = [1, 2, 3];
  const v = [1, -1, 0.5, 2];
  const R = Float32Array.from(u.flatMap((a) => v.map((b) => a * b)));
  close(t, effectiveRankRatio(singularValues(R, 3, 4)), 1 / 3, 1e-6, 'rank one: 1/min(m, n)');
  close(t, effectiveRankRatio([2, 2, 0, 0]), 0.5, 1e-12, 'two equal values of four: 2/4');
});

t.test('singular values of a random matrix keep the Frobenius norm (Σσ² = ‖A‖²)', async (t) => {
  const rng = new Rng(7);
  const A = Float32Array.from({ length: 40 * 24 }, () => rng.normal());
  const sv = singularValues(A, 40, 24);
  const fro = A.reduce((a, x) => a + x * x, 0);
  close(t, sv.reduce((a, s) => a + s * s, 0), fro, fro * 1e-10, 'Σσ²');
  t.ok(sv.every((s, i) => i === 0 || s <= sv[i - 1]!), 'largest first');
  const q = matrixQuality('x', A, 40, 24);
  t.equal(q.spectralNorm, sv[0]);
  t.ok(q.effectiveRankRatio > 0.8 && q.effectiveRankRatio < 1, `a Gaussian matrix is nearly full rank (${q.effectiveRankRatio})`);
});

t.test('kurtosis: Pearson by default, excess on request, on known distributions', async (t) => {
  close(t, kurtosis([-1, 1, -1, 1]), 1, 1e-12, 'two-point symmetric: 1');
  close(t, kurtosis([-1, 1, -1, 1], true), -2, 1e-12, 'excess: −2');
  const n = 10;
  const uniform = Array.from({ length: n }, (_, i) => i + 1); // discrete uniform: excess −6(n²+1)/(5(n²−1))
  close(t, kurtosis(uniform, true), (-6 * (n * n + 1)) / (5 * (n * n - 1)), 1e-12, 'discrete uniform 1..10');
  const rng = new Rng(11);
  const normal = Float64Array.from({ length: 200_000 }, () => rng.normal());
  close(t, kurtosis(normal), 3, 0.05, 'normal sample: 3');
  close(t, variance([1, 2, 3, 4]), 1.25, 1e-12, 'population variance');
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 2, 3]), 2.5);
});

t.test('sparsity of a hand-made activation array: |a| < eps, strictly', async (t) => {
  t.equal(sparsity([0, 0.005, -0.009, 0.01, -0.5, 2]), 0.5, 'eps 0.01: 0, 0.005, −0.009 count; 0.01 does not');
  t.equal(sparsity([0.3, -0.1], 0.2), 0.5);
});

t.test('weightQuality: 2-D weights only, lm_head counted once, pooled statistics', async (t) => {
  const w = new Map([
    ['transformer.wte.weight', { shape: [2, 2], data: Float32Array.from([3, 0, 0, -1]) }],
    ['lm_head.weight', { shape: [2, 2], data: Float32Array.from([3, 0, 0, -1]) }],
    ['transformer.ln_f.weight', { shape: [2], data: Float32Array.from([1, 1]) }],
    ['x.weight', { shape: [1, 4], data: Float32Array.from([1, 1, 1, 1]) }],
  ]);
  const q = weightQuality(w);
  t.same(q.matrices.map((m) => m.name), ['transformer.wte.weight', 'x.weight']);
  t.equal(q.parameters, 8);
  close(t, q.spectralNormMean, 2.5, 1e-12, 'mean of σ_max 3 and 2');
  close(t, q.spectralNormVariance, 0.25, 1e-12, 'population variance of 3 and 2');
  close(t, q.conditionNumberMean, 2, 1e-12, 'cond 3 and 1');
  close(t, q.magnitudeVariance, variance([3, 0, 0, 1, 1, 1, 1, 1]), 1e-12, '|w| pooled');
});

t.test('the mirrored forward pass gives the model\'s logits; activation counts on known weights', async (t) => {
  const cfg = { ...resolveConfig({ preset: 'test' }), vocab_size: 11, block_size: 8, n_embd: 16, n_head: 2, n_layer: 2 };
  const model = new GPT(cfg, 5);
  const B = 3;
  const T = 8;
  const x = Int32Array.from({ length: B * T }, (_, i) => (i * 5 + 1) % 11);
  const y = Int32Array.from({ length: B * T }, (_, i) => (i * 3 + 2) % 11);
  const ref = tf.tidy(() => model.forward(tf.tensor2d(x, [B, T], 'int32'))).dataSync();
  const { logits, counts } = forwardWithActivations(model, x, B);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ref[i]! - logits[i]!));
  t.ok(worst < 1e-5, `logits equal GPT.forward's (max diff ${worst})`);
  const C = 16;
  const L = 2;
  t.equal(counts.attention[1], B * 2 * ((T * (T + 1)) / 2) * L, 'attention: causal entries only');
  t.equal(counts.mlp[1], B * T * 4 * C * L, 'mlp: every GELU output');
  t.equal(counts.layerNorm[1], B * T * C * (2 * L + 1), 'layerNorm: ln_1, ln_2 per block and ln_f');
  const s = activationSparsity(model, [{ x, y }], B);
  close(t, s.loss, model.loss(x, y, B), 1e-4, 'its loss is the model\'s');
  // known answers: zero c_attn → q = k = 0 → uniform attention 1/(i+1); zero c_fc → GELU(0) = 0 everywhere
  for (const p of model.params) if (/c_attn|c_fc/.test(p.name)) p.variable.assign(tf.zerosLike(p.variable));
  const z = activationSparsity(model, [{ x, y }], B, 0.2);
  t.equal(z.mlp, 1, 'GELU(0) = 0: all sparse');
  close(t, z.attention, (6 + 7 + 8) / 36, 1e-12, 'uniform attention: rows 6, 7, 8 have 1/(i+1) < 0.2');
  close(t, z.overall, (z.attention + z.mlp + z.layerNorm) / 3, 1e-12, 'overall = mean of the three');
  model.dispose();
});

t.test('inference: FLOPs per token and interleaved timing', async (t) => {
  t.equal(forwardFlopsPerToken(resolveConfig({ preset: 'cpu' })), 2 * (804096 - 64 * 128) + 2 * 4 * 64 * 128, 'cpu: 2N + 2·L·T·C, N without wpe');
  t.equal(forwardFlopsPerToken(resolveConfig({ preset: 'paper' })), 2 * (10745088 - 256 * 384) + 2 * 6 * 256 * 384, 'paper preset');
  const cfg = { ...resolveConfig({ preset: 'test' }), vocab_size: 11, block_size: 8, n_embd: 16, n_head: 2, n_layer: 1 };
  const chars = [...'\nabcdefghij'];
  const a = new GPT(cfg, 1);
  const b = new GPT(cfg, 2);
  const order: number[] = [];
  const r = measureInference([{ label: 'a', model: a, chars }, { label: 'b', model: b, chars }], { tokens: 10, rounds: 3, warmup: 2, onRound: (i) => order.push(i) });
  t.same(order, [0, 1, 2]);
  t.same(r.models.map((m) => m.samples.length), [3, 3]);
  t.ok(r.models.every((m) => m.median > 0 && Number.isFinite(m.median)));
  const ratio = speedRatio(r, 'b', 'a');
  t.ok(ratio.min <= ratio.q1 && ratio.q1 <= ratio.median && ratio.median <= ratio.q3 && ratio.q3 <= ratio.max, 'ordered spread');
  t.equal(speedRatio(r, 'a', 'a').median, 1);
  a.dispose();
  b.dispose();
});
