// Float64 references for the SMI tests, written out here: a complex 2-D DFT, numpy's quantile, the 9 steps of docs/algorithm.md.
import { halfCols, type HalfSpectrum } from '../../../shared/smi/fft.ts';
import type { SmiRun } from '../../../shared/smi/runs.ts';

/** mulberry32 + Box–Muller: reproducible normal float32 matrices. */
export function randn(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

/** ‖a − b‖ / ‖b‖ (Frobenius; b the reference). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

/** The same for complex arrays given as re / im. */
export function relErrC(aRe: ArrayLike<number>, aIm: ArrayLike<number>, bRe: ArrayLike<number>, bIm: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < bRe.length; i++) {
    num += (aRe[i] - bRe[i]) ** 2 + (aIm[i] - bIm[i]) ** 2;
    den += bRe[i] ** 2 + bIm[i] ** 2;
  }
  return Math.sqrt(num / den);
}

export interface Complex2 {
  re: Float64Array;
  im: Float64Array;
}

/**
 * The reference: the full complex DFT of a rows × cols matrix in float64, written out as the separable sum
 * X[k1][k2] = Σ_r e^{∓2πi·k1·r/rows} Σ_c x[r][c]·e^{∓2πi·k2·c/cols}; the inverse also divides by rows·cols.
 */
export function dft2(xr: ArrayLike<number>, xi: ArrayLike<number> | null, rows: number, cols: number, inverse = false): Complex2 {
  const sign = inverse ? 1 : -1;
  const tw = (n: number) => {
    const c = new Float64Array(n);
    const s = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      c[j] = Math.cos((2 * Math.PI * j) / n);
      s[j] = sign * Math.sin((2 * Math.PI * j) / n);
    }
    return { c, s };
  };
  const tc = tw(cols);
  const tr = tw(rows);
  const yr = new Float64Array(rows * cols);
  const yi = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      let sr = 0;
      let si = 0;
      for (let c = 0, j = 0; c < cols; c++, j = (j + k) % cols) {
        const ar = xr[r * cols + c];
        const ai = xi ? xi[r * cols + c] : 0;
        sr += ar * tc.c[j] - ai * tc.s[j];
        si += ar * tc.s[j] + ai * tc.c[j];
      }
      yr[r * cols + k] = sr;
      yi[r * cols + k] = si;
    }
  }
  const re = new Float64Array(rows * cols);
  const im = new Float64Array(rows * cols);
  const scale = inverse ? 1 / (rows * cols) : 1;
  for (let k1 = 0; k1 < rows; k1++) {
    for (let k = 0; k < cols; k++) {
      let sr = 0;
      let si = 0;
      for (let r = 0, j = 0; r < rows; r++, j = (j + k1) % rows) {
        const ar = yr[r * cols + k];
        const ai = yi[r * cols + k];
        sr += ar * tr.c[j] - ai * tr.s[j];
        si += ar * tr.s[j] + ai * tr.c[j];
      }
      re[k1 * cols + k] = sr * scale;
      im[k1 * cols + k] = si * scale;
    }
  }
  return { re, im };
}

/** The first floor(cols/2)+1 columns of a full spectrum, transposed to [half, rows], as float32 (shared/smi/fft.ts). */
export function halfOf(full: Complex2, rows: number, cols: number): HalfSpectrum {
  const half = halfCols(cols);
  const re = new Float32Array(rows * half);
  const im = new Float32Array(rows * half);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < half; k++) {
      re[k * rows + r] = full.re[r * cols + k];
      im[k * rows + r] = full.im[r * cols + k];
    }
  }
  return { rows, cols, half, re, im };
}

/** Index in the transposed half spectrum of the representative of full-spectrum bin (k1, k2). */
export function halfIndex(k1: number, k2: number, rows: number, cols: number): number {
  return k2 < halfCols(cols) ? k2 * rows + k1 : (cols - k2) * rows + ((rows - k1) % rows);
}

/** numpy.quantile(v, q) by sorting (the independent reference for selection). */
export function npQuantile(v: ArrayLike<number>, q: number): number {
  const s = Float64Array.from(v).sort();
  const pos = q * (s.length - 1);
  const k = Math.floor(pos);
  const f = pos - k;
  if (f === 0) return s[k];
  const diff = s[k + 1] - s[k];
  return f >= 0.5 ? s[k + 1] - diff * (1 - f) : s[k] + diff * f;
}

/** α_t written out again from docs/algorithm.md §3 step 8. */
export function refAlpha(run: SmiRun, t: number, T: number): number {
  if (run.schedule === 'none') return 0;
  const r = run.schedule === 'linear' ? t / T : (1 - Math.cos((Math.PI * t) / T)) / 2;
  return run.alpha0 + (run.alpha1 - run.alpha0) * r;
}

/**
 * docs/algorithm.md §3 steps 1–9 with the full complex spectrum in float64, over a sequence of gradients. Conjugate bins
 * have equal magnitudes in exact arithmetic; here they differ in the last bit, which would let τ fall
 * between the two members of a pair, so each pair gets the mean of its two magnitudes.
 */
export function refSmi(grads: Float32Array[], rows: number, cols: number, run: SmiRun, T: number): Float64Array[] {
  let H: Float64Array | null = null;
  return grads.map((G, s) => {
    const step = s + 1;
    const X = dft2(G, null, rows, cols);
    const n = rows * cols;
    const abs = new Float64Array(n);
    for (let i = 0; i < n; i++) abs[i] = Math.hypot(X.re[i], X.im[i]);
    const M = new Float64Array(n);
    for (let k1 = 0; k1 < rows; k1++) {
      for (let k2 = 0; k2 < cols; k2++) {
        const mirror = ((rows - k1) % rows) * cols + ((cols - k2) % cols);
        M[k1 * cols + k2] = (abs[k1 * cols + k2] + abs[mirror]) / 2;
      }
    }
    if (H === null) H = M;
    else for (let i = 0; i < n; i++) H[i] = run.beta * H[i] + (1 - run.beta) * M[i];
    const tau = npQuantile(H, run.q);
    const mr = new Float64Array(n);
    const mi = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      if (H[i] >= tau) {
        mr[i] = X.re[i];
        mi[i] = X.im[i];
      }
    }
    const g1 = dft2(mr, mi, rows, cols, true).re;
    const alpha = refAlpha(run, step, T);
    return Float64Array.from(G, (g, i) => alpha * g1[i] + (1 - alpha) * g);
  });
}
