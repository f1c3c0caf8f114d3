// The outlier rule and the derived bounds on shares, on numbers and on real spectra and blends (no network).
import t from 'tap';
import { DERIVED_SLACK, HISTORY, NORM_FLOOR, OUTLIER_FACTOR, ShareNorms, blendedBound, magnitudeBound, normOf, squaredNorms } from '../../../shared/parallel/share-bounds.ts';
import { initFft } from '../../../shared/smi/fft.ts';
import { blendWithMasks, localSpectra, packMask, spectrumMagnitudes } from '../../../shared/parallel/spectral.ts';
import { view2d } from '../../../shared/smi/runs.ts';
import { randomFloats } from '../../helpers.ts';

t.test('float64 norms: exact for float32 values whose float32 sum of squares would overflow; NaN/Inf show as non-finite', async (t) => {
  const big = new Float32Array(1000).fill(1e30);
  const sq = squaredNorms([big]);
  t.ok(Number.isFinite(sq[0]!), 'a finite float32 gradient has a finite float64 norm');
  t.ok(Math.abs(normOf(sq) / (Math.sqrt(1000) * 1e30) - 1) < 1e-6, `‖1e30 × 1000‖ = ${normOf(sq).toExponential(3)}`);
  t.notOk(Number.isFinite(squaredNorms([Float32Array.of(1, NaN)])[0]!), 'NaN');
  t.notOk(Number.isFinite(squaredNorms([Float32Array.of(-Infinity)])[0]!), '-Inf');
});

t.test('outlier rule: a 1e30 share is rejected with or without history; honest spread and a spike every share shows are not', async (t) => {
  const r = new ShareNorms();
  t.same(r.check([1.2, 1e30]).map((o) => o.index), [1], 'step 1, two shares: the 1e30 one (no history: the floor and the other share)');
  t.same(r.check([1e30]), [{ index: 0, norm: 1e30, bound: NORM_FLOOR, stepMedian: null }], 'step 1, one share: over the floor');
  t.same(r.check([5, 900]), [], 'step 1: anything under the floor stands, however far apart');
  for (let k = 0; k < 100; k++) {
    const ns = [1 + 0.5 * Math.sin(k), 1 + 0.5 * Math.cos(k)];
    t.same(r.check(ns), [], `step ${k + 2}: honest spread`);
    r.accept(ns);
  }
  t.same(r.check([1e30, 1.1]).map((o) => o.index), [0], 'with history: the 1e30 share, whichever order');
  t.same(r.check([1.1, 1e30, 0.9]).map((o) => o.index), [1], 'one of three');
  t.same(r.check([3e3, 2e3]), [], 'a spike all shares show (a loss spike) is not an outlier, though far above the recent median');
  t.same(r.check([4e3]).map((o) => o.index), [0], 'one share alone far above the recent median: rejected (documented: a lone worker has no peer to agree with)');
  t.same(r.check([OUTLIER_FACTOR * 1.4]), [], 'up to the floor, a lone share stands');
  t.ok(r.maxRecentRatio > 1 && r.maxRecentRatio < 2, `largest accepted ratio to the recent median ${r.maxRecentRatio.toFixed(2)}`);
  t.ok(r.maxStepRatio > 1 && r.maxStepRatio < 4, `largest accepted ratio to the step's other share ${r.maxStepRatio.toFixed(2)}`);
  t.match(r.summary(), /rejected as outliers/);
});

t.test('outlier rule: the recent median follows the norms as they drift (a slowly rising norm is never rejected)', async (t) => {
  const r = new ShareNorms();
  let norm = 1e-3;
  let rejected = 0;
  for (let k = 0; k < 2000; k++) {
    norm *= 1.01; // ×4e8 over the run, far more than training ever drifts
    const ns = [norm, norm * 1.3];
    rejected += r.check(ns).length;
    r.accept(ns);
  }
  t.equal(rejected, 0, `no rejections while norms rose from 1e-3 to ${norm.toExponential(1)}`);
  t.ok(r.maxRecentRatio < 2, `ratio to the median of the last ${HISTORY} shares stayed ${r.maxRecentRatio.toFixed(2)}`);
});

t.test('derived bounds: honest magnitudes are within Parseval, honest blends within κ‖g‖ (masking is a projection)', async (t) => {
  await initFft();
  const shapes = [[65, 32], [96, 32], [32], [128, 128], [7, 9]];
  const grads = shapes.map((s, i) => randomFloats(s.reduce((a, b) => a * b, 1), 100 + i, 0.01));
  const gsq = squaredNorms(grads);
  const mags = spectrumMagnitudes(grads, shapes);
  mags.forEach((m, p) => {
    const [rows, cols] = view2d(shapes[p]!);
    const ratio = normOf(squaredNorms([m])) / Math.sqrt(rows * cols * gsq[p]!);
    t.ok(ratio >= Math.SQRT1_2 - 1e-6 && ratio <= 1 + 1e-6, `${shapes[p]}: ‖M‖ / (√(rows·cols)‖g‖) = ${ratio.toFixed(4)} in [1/√2, 1]`);
    t.ok(normOf(squaredNorms([m])) <= magnitudeBound(gsq[p]!, rows, cols), 'within the bound');
    const scaled = m.map((x) => x * 3);
    t.notOk(normOf(squaredNorms([scaled])) <= magnitudeBound(gsq[p]!, rows, cols), `×3 magnitudes are over it (slack ${DERIVED_SLACK})`);
  });
  const { kept, magnitudes } = localSpectra(grads, shapes);
  const norm = normOf(gsq);
  for (const [coef, alpha, keep] of [[1, 0.5, 0.75], [0.3, 0.9, 0.5], [0.05, 0.1, 0.1], [1, 1, 0.01]] as const) {
    // a mask keeping the largest `keep` of each history (here: this gradient's own magnitudes)
    const masks = magnitudes.map((m) => packMask(m, [...m].sort((a, b) => a - b)[Math.floor((1 - keep) * m.length)]!));
    const b = blendWithMasks(kept, masks, coef, alpha);
    const bn = normOf(squaredNorms(b));
    t.ok(bn <= coef * norm * (1 + 1e-5), `κ ${coef}, α ${alpha}, ${keep * 100}% kept: ‖b‖ / κ‖g‖ = ${(bn / (coef * norm)).toFixed(4)} ≤ 1`);
    t.ok(bn <= blendedBound(norm, coef), 'within the bound');
  }
});
