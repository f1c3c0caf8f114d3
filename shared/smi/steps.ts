// SMI's separable steps on the host (Float32Array in and out): forward, magnitude, history, threshold, masked blend, checksum.
//
// Spectra and histories are half spectra stored transposed: [half, rows], half = floor(cols/2)+1 (shared/smi/fft.ts).
// A distributed trainer splits the algorithm along these steps (docs/distributed.md); SpectralMomentum's host
// engine runs them fused (shared/smi/host.ts, the same bits).
import { irfft2, rfft2, type HalfSpectrum } from './fft.ts';
import { MASK_CHECKSUM_SEED, float32AtLeast } from './host.ts';
import { selfConjugateColumns } from './spectrum.ts';
import { halfSpectrumQuantile } from './quantile.ts';

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
