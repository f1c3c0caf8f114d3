// The half spectrum's layout ([half, rows], shared/smi/fft.ts): self-conjugate columns, bin multiplicities, kept-bin counts, random symmetric masks.
import type { Rng } from '../model/rng.ts';
import { halfCols } from './fft.ts';

/** Spectral columns c (0, and cols/2 for even cols) whose rows k1 and (rows−k1) % rows are conjugates. */
export function selfConjugateColumns(cols: number): number[] {
  const half = halfCols(cols);
  return cols % 2 === 0 && half > 1 ? [0, half - 1] : [0];
}

/** How many bins of the full rows × cols spectrum the half-spectrum entry i stands for: 1 in a self-conjugate column, else 2. */
export function binMultiplicity(rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * halfCols(cols)).fill(2);
  out.fill(1, 0, rows);
  out.fill(1, pairedEndOf(rows, cols));
  return out;
}

/** The number of bins of the full rows × cols spectrum whose half-spectrum entry has H ≥ τ. */
export function keptBins(H: Float32Array, rows: number, cols: number, tau: number): number {
  const pairedEnd = pairedEndOf(rows, cols);
  let n = 0;
  for (let i = 0; i < H.length; i++) if (H[i] >= tau) n += i < rows || i >= pairedEnd ? 1 : 2;
  return n;
}

/**
 * A uniformly random conjugate-symmetric mask over the rows × cols spectrum keeping exactly `count` of its bins,
 * as 0/1 floats in the half-spectrum layout [half, rows] (into `out`). Symmetric subsets are made of units: a
 * self-conjugate bin (weight 1: the 1, 2 or 4 bins (0 or rows/2, 0 or cols/2)), a conjugate pair of bins in a
 * self-conjugate column (weight 2, two entries), a bin of a paired column (weight 2: it stands for its conjugate
 * too). Every symmetric subset of `count` bins is equally likely: the number s of self-conjugate bins is drawn
 * with weight C(S, s)·C(P, (count − s)/2), then s of the S and (count − s)/2 of the P pair units by selection
 * sampling, in a fixed order, from `rng`.
 */
export function randomMask(rows: number, cols: number, count: number, rng: Rng, out: Float32Array = new Float32Array(rows * halfCols(cols))): Float32Array {
  const n = rows * halfCols(cols);
  if (out.length !== n) throw new RangeError(`randomMask: out has ${out.length} values, the ${rows}×${cols} spectrum ${n}`);
  const selfCols = selfConjugateColumns(cols);
  const selfRows = rows % 2 === 0 ? [0, rows / 2] : [0];
  const S = selfCols.length * selfRows.length;
  const pairsPerCol = Math.floor((rows - 1) / 2);
  const P = selfCols.length * pairsPerCol + (pairedEndOf(rows, cols) - rows);
  if (!Number.isInteger(count) || count < 0 || count > rows * cols) throw new RangeError(`randomMask: ${count} bins of a ${rows}×${cols} spectrum`);
  // s ≡ count (mod 2), s ≤ S, 0 ≤ m = (count − s)/2 ≤ P; weights relative to the smallest valid s, C(P, m−1)/C(P, m) = m/(P−m+1)
  const options: { s: number; m: number; w: number }[] = [];
  let rel = 1;
  for (let s = count % 2; s <= S; s += 2) {
    const m = (count - s) / 2;
    if (m > P) continue;
    if (m < 0) break;
    if (options.length > 0) rel *= (m + 1) / (P - m);
    options.push({ s, m, w: binomial(S, s) * rel });
  }
  if (options.length === 0) throw new RangeError(`randomMask: no conjugate-symmetric set of ${count} bins in a ${rows}×${cols} spectrum`);
  let u = rng.uniform() * options.reduce((a, o) => a + o.w, 0);
  let pick = options[options.length - 1]!;
  for (const o of options) {
    if (u < o.w) {
      pick = o;
      break;
    }
    u -= o.w;
  }
  out.fill(0);
  // selection sampling: unit k of `left` is kept with probability need / left
  let need = pick.s;
  let left = S;
  for (const c of selfCols) {
    for (const k1 of selfRows) {
      if (need > 0 && rng.int(left) < need) {
        out[c * rows + k1] = 1;
        need--;
      }
      left--;
    }
  }
  need = pick.m;
  left = P;
  for (const c of selfCols) {
    for (let k1 = 1; 2 * k1 < rows; k1++) {
      if (need > 0 && rng.int(left) < need) {
        out[c * rows + k1] = out[c * rows + rows - k1] = 1;
        need--;
      }
      left--;
    }
  }
  for (let i = rows, end = pairedEndOf(rows, cols); i < end && need > 0; i++) {
    if (rng.int(left) < need) {
      out[i] = 1;
      need--;
    }
    left--;
  }
  return out;
}

/** C(n, k) in double (n ≤ 4 here: the self-conjugate bins). */
function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

/** The end of the paired (not self-conjugate) columns' run in a [half, rows] spectrum. */
export function pairedEndOf(rows: number, cols: number): number {
  const half = halfCols(cols);
  return (cols % 2 === 0 ? half - 1 : half) * rows;
}
