// Quantiles by selection (shared/smi/quantile.ts) against a sort-based numpy reference, and the half-spectrum multiset.
import t from 'tap';
import { disposeFft, halfCols, initFft, rfft2 } from '../../../shared/smi/fft.ts';
import { halfSpectrumQuantile, quantile } from '../../../shared/smi/quantile.ts';
import { magnitude } from '../../../shared/smi/steps.ts';
import { dft2, halfIndex, npQuantile, randn, relErr } from './reference.ts';

await initFft();
t.teardown(() => disposeFft());

t.test('quantile against a sort-based numpy reference', async (t) => {
  const cases: [string, Float32Array][] = [
    ['N = 1', new Float32Array([3.5])],
    ['N = 2', new Float32Array([2, -1])],
    ['ties', new Float32Array([1, 3, 3, 3, 2, 3, 1, 5, 3, 3])],
    ['all equal', new Float32Array(1000).fill(0.25)],
    ['random 10', randn(10, 5)],
    ['random 1001', randn(1001, 6)],
    ['random 20000 with ties', randn(20000, 7).map((v) => Math.round(v * 4) / 4)],
  ];
  for (const [label, v] of cases) {
    const copy = v.slice();
    for (const q of [0, 0.1, 0.25, 0.5, 0.75, 0.999, 1]) {
      const got = quantile(v, q);
      const want = npQuantile(v, q);
      t.ok(got === want || Math.abs(got - want) <= 1e-12 * Math.abs(want), `${label}, q = ${q}: ${got} vs ${want}`);
    }
    t.same(v, copy, `${label}: the caller's array is not reordered`);
  }
  const v = new Float32Array([1, 2, 3]);
  t.equal(quantile(v, 0.5, [1, 0, 3]), npQuantile([1, 3, 3, 3], 0.5), 'weights repeat values');
  t.throws(() => quantile(new Float32Array(0), 0.5), RangeError, 'empty');
  t.throws(() => quantile(v, 1.5), RangeError, 'q > 1');
  t.throws(() => quantile(new Float32Array([1, NaN]), 0.5), RangeError, 'NaN');
});

t.test('quantile of large inputs (radix pre-pass in wasm) against the sort-based reference', async (t) => {
  const n = 20_011; // above the radix threshold, not a multiple of 4 (the kernels' scalar tails)
  const cases: [string, Float32Array][] = [
    ['all equal (one bucket)', new Float32Array(n).fill(0.75)],
    ['two values', randn(n, 30).map((v) => (v < 0 ? 1 : 2))],
    ['±0, negatives, ties', randn(n, 31).map((v) => (Math.abs(v) < 0.3 ? (v < 0 ? -0 : 0) : Math.round(v * 64) / 64))],
    ['40 octaves', randn(n, 32).map((v) => Math.exp(14 * v))],
    ['with ±Infinity', randn(n, 33).map((v, i) => (i % 997 === 0 ? (v < 0 ? -Infinity : Infinity) : v))],
    ['subnormals', randn(n, 34).map((v) => v * 1e-40)],
  ];
  for (const [label, v] of cases) {
    for (const q of [0, 0.25, 0.5, 0.3331, 0.999, 1]) {
      const got = quantile(v, q);
      const want = npQuantile(v, q);
      t.ok(Object.is(got, want) || got === want || Math.abs(got - want) <= 1e-12 * Math.abs(want), `${label}, q = ${q}: ${got} vs ${want}`);
    }
  }
  for (const [rows, cols] of [[128, 512], [129, 127], [64, 130]] as [number, number][]) {
    const H = randn(rows * halfCols(cols), rows).map(Math.abs);
    const full = new Float32Array(rows * cols);
    for (let k1 = 0; k1 < rows; k1++) for (let k2 = 0; k2 < cols; k2++) full[k1 * cols + k2] = H[halfIndex(k1, k2, rows, cols)];
    for (const q of [0.25, 0.5]) t.equal(halfSpectrumQuantile(H, rows, cols, q), npQuantile(full, q), `half spectrum ${rows}×${cols}, q = ${q}`);
  }
  const withNaN = randn(n, 35);
  withNaN[n - 2] = NaN;
  t.throws(() => quantile(withNaN, 0.5), RangeError, 'NaN (in the scalar tail)');
  withNaN[n - 2] = 0;
  withNaN[17] = NaN;
  t.throws(() => quantile(withNaN, 0.5), RangeError, 'NaN (in the SIMD part)');
  const v = randn(n, 36);
  t.equal(quantile(v, 0.5), npQuantile(v, 0.5), 'the histogram is clean again after a NaN');
});

t.test('half-spectrum quantile counts every full-spectrum bin once', async (t) => {
  for (const [rows, cols] of [[65, 128], [4, 9], [1, 32], [1, 1], [3, 2], [6, 10]] as [number, number][]) {
    const x = randn(rows * cols, rows + cols);
    const full = dft2(x, null, rows, cols);
    // float32 magnitudes of the full spectrum, each conjugate pair made bit-equal from its half representative
    const M = magnitude(rfft2(x, rows, cols));
    const fullM = new Float32Array(rows * cols);
    for (let k1 = 0; k1 < rows; k1++) {
      for (let k2 = 0; k2 < cols; k2++) fullM[k1 * cols + k2] = M[halfIndex(k1, k2, rows, cols)];
    }
    t.ok(relErr(fullM, Float64Array.from(full.re, (re, i) => Math.hypot(re, full.im[i]))) < 1e-5, `${rows}×${cols}: magnitudes`);
    for (const q of [0, 0.25, 0.5, 1]) {
      t.equal(halfSpectrumQuantile(M, rows, cols, q), npQuantile(fullM, q), `${rows}×${cols}, q = ${q}`);
    }
  }
});
