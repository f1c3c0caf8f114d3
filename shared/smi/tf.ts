// SMI's steps on tensors with tf.spectral (the tf engine, for tfjs-node and GPUs); only the quantile runs on the host.
import * as tf from '@tensorflow/tfjs';
import { halfCols } from './fft.ts';
import { binMultiplicity, keptBins, randomMask, selfConjugateColumns } from './spectrum.ts';
import { type HostControl } from './host.ts';
import { maskChecksum, threshold } from './steps.ts';

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

/**
 * A control's step on the tf engine (shared/smi/host.ts HostControl), from the history downloaded for τ: the
 * random mask is drawn on the host and uploaded; shrink's energy share is summed where the spectrum lives.
 * Returns the output [shape] and the checksum of the mask applied (shrink: of [H ≥ τ]).
 */
export function tfControl(control: HostControl, spec: TfSpectrum, G: tf.Tensor2D, shape: number[], Hdata: Float32Array, tau: number, alpha: number, seed: number): [tf.Tensor, number] {
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
