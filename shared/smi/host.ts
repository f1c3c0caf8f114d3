// SMI's host step on one gradient, fused and allocation-free: SpectralMomentum's host engine.
//
// The same arithmetic as the separable steps in shared/smi/smi.ts (forward → magnitude → updateHistory →
// threshold → maskedBlend → maskChecksum), to the bit, but with the spectrum left in the FFT's wasm heap
// (shared/smi/fft.ts rfft2Heap / irfft2Heap) and the passes over it merged: |Ĝ| and the EMA in one pass, the mask
// and its checksum in the pass that writes the inverse's input, the 1/(rows·cols) scaling and the blend in the
// pass that writes the output. Nothing is allocated per call.
//
// Where the spectrum is in pffft's heap, the three passes run as wasm SIMD kernels in that heap (SIMD_WAT);
// otherwise (a transform axis on kissfft) in JS. Both give the same bits: float32 SIMD arithmetic rounds
// once per operation as Math.fround(double op) does for +, − and × of float32 values (a double holds their
// exact product, and rounding a double sum to float32 equals rounding the exact sum, as 53 ≥ 2·24 + 2), and
// what must be double (|X| = √(re² + im²), the 1/(rows·cols) scaling) is done in f64x2 lanes.
import { halfCols, irfft2Heap, pffftHeap, pffftScratchBuffer, rfft2Heap, type Memory } from './fft.ts';
import { halfSpectrumQuantile } from './quantile.ts';
import type { Rng } from '../model/rng.ts';
import { instantiate } from '../wasm/asm.ts';

/** FNV-1a offset basis: the seed of a new mask checksum. */
export const MASK_CHECKSUM_SEED = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** The smallest float32 ≥ x (so that, for float32 h, h ≥ x ⇔ h ≥ result). */
export function float32AtLeast(x: number): number {
  const f = Math.fround(x);
  if (f >= x) return f;
  if (f === 0) return 1.401298464324817e-45; // x in (0, smallest subnormal)
  // Next float32 up: one more unit in the last place for a positive f, one less for a negative f.
  const bits = new Int32Array(new Float32Array([f]).buffer);
  bits[0] += f > 0 ? 1 : -1;
  return new Float32Array(bits.buffer)[0];
}

/** Spectral columns c (0, and cols/2 for even cols) whose rows k1 and (rows−k1) % rows are conjugates. */
export function selfConjugateColumns(cols: number): number[] {
  const half = halfCols(cols);
  return cols % 2 === 0 && half > 1 ? [0, half - 1] : [0];
}

/** The parameters of one step; α is per step, β and q per run. */
export interface HostStepParams {
  beta: number;
  q: number;
  alpha: number;
  /** a control run's G′ in place of the filter's (H and τ as without it) */
  control?: HostControl;
}

/**
 * The controls of issue 15, after H and τ are computed exactly as for SMI (the checksum is that of the mask
 * applied; for shrink, of [H ≥ τ]):
 * - random-mask: G′ = Re(IFFT2(Ĝ ⊙ R)), R a uniformly random conjugate-symmetric mask with as many bins of the
 *   full spectrum as [H ≥ τ], drawn from `rng` (randomMask());
 * - shrink: G′ = c·G, c = Σ_kept |Ĝ|² / Σ |Ĝ|² over the full spectrum (= ‖G′_smi‖² / ‖G‖² by Parseval): no filtering.
 */
export type HostControl = { kind: 'random-mask'; rng: Rng } | { kind: 'shrink' };

/** Where the gradient is read and the result written, asked for only when the output is written. */
export type HostStepIo = () => { G: Float32Array; out: Float32Array };

/** Use the wasm kernels where they apply (false: JS everywhere, for tests and benchmarks). */
let simdEnabled = true;

export function setHostSimd(on: boolean): void {
  simdEnabled = on;
}

/**
 * The stages of a host SMI step, as timed with a HostStepProfile (scripts/bench/fft.ts --stages): hostStep()
 * times 1–6, SpectralMomentum the reading of the gradient (0) and the making of the output tensor (7).
 */
export const HOST_STAGES = ['read G', 'forward FFT', '|X| + EMA', 'quantile', 'mask', 'inverse FFT', 'blend + out', 'tensor'] as const;

/** Milliseconds per stage of HOST_STAGES, added to by every hostStep() it is given to. */
export type HostStepProfile = Float64Array;

/** Adds the time since `last` to profile[stage] and returns now (nothing without a profile). */
export function lap(profile: HostStepProfile | undefined, stage: number, last: number): number {
  if (!profile) return 0;
  const now = performance.now();
  profile[stage] += now - last;
  return now;
}

/**
 * One parameter's SMI step: G (rows × cols, row-major) → out = α·Re(IFFT2(Ĝ ⊙ [H ≥ τ])) + (1−α)·G.
 * H ([half, rows]) is updated in place to β·H + (1−β)·|Ĝ|, or filled with |Ĝ| when `first`. `io` is called
 * once, at the end, for fresh views of G and out (G must hold the same values as `G0`; both may be views into
 * a wasm heap that an allocation in between has replaced). Returns the mask checksum continued from `seed`
 * (maskChecksum(H, τ, seed)). Needs `await initFft()`.
 *
 * With `magnitudes` ([half, rows]) the history takes them in place of |Ĝ| (updateHistory(H, magnitudes, β)):
 * the synced mode's coordinator, whose M is the workers' averaged magnitudes, not those of the mean gradient.
 */
export function hostStep(
  G0: Float32Array, rows: number, cols: number, H: Float32Array, first: boolean, p: HostStepParams, seed: number, io: HostStepIo,
  profile?: HostStepProfile, magnitudes?: Float32Array,
): number {
  let t = profile ? performance.now() : 0;
  const half = halfCols(cols);
  const n = rows * half;
  const size = rows * cols;
  if (H.length !== n) throw new RangeError(`SMI: history has ${H.length} values, the ${rows}×${cols} spectrum ${n}`);
  if (G0.length !== size) throw new RangeError(`SMI: gradient has ${G0.length} values, not ${rows}×${cols}`);
  if (magnitudes && magnitudes.length !== n) throw new RangeError(`SMI: ${magnitudes.length} magnitudes, the ${rows}×${cols} spectrum has ${n}`);
  const b = Math.fround(p.beta);
  const c = Math.fround(1 - p.beta);
  const fwd = rfft2Heap(G0, rows, cols);
  t = lap(profile, 1, t);
  const k = simdEnabled ? kernelsFor(fwd.mem) : undefined;
  // Column 0 and (even cols) cols/2 are self-conjugate; the paired columns in between are one contiguous run.
  const pairedEnd = pairedEndOf(rows, cols);

  if (!k) {
    const heap = fwd.mem.HEAPF32;
    if (magnitudes) emaRange(H, magnitudes, first, b, c);
    else {
      for (const col of selfConjugateColumns(cols)) magnitudeSelfConjugate(heap, fwd.spec, rows, H, col, first, b, c);
      magnitudeRange(heap, fwd.spec, H, rows, pairedEnd, first, b, c);
    }
    t = lap(profile, 2, t);
    const tau = float32AtLeast(halfSpectrumQuantile(H, rows, cols, p.q));
    t = lap(profile, 3, t);
    if (p.control) return controlTail(fwd, H, rows, cols, tau, p, seed, io, profile, t);
    const sum = maskRange(heap, fwd.spec, fwd.inverse, H, 0, tau, seed);
    t = lap(profile, 4, t);
    const inv = irfft2Heap(rows, cols);
    t = lap(profile, 5, t);
    const { G, out } = io();
    blendRange(inv.mem.HEAPF32, inv.base, inv.stride, 1 / size, G, out, 0, p.alpha);
    lap(profile, 6, t);
    return sum;
  }

  // G and H are copied into pffft's heap next to the spectrum; out is written there, then copied out.
  const gAt = pffftScratchBuffer(0, size);
  const hAt = pffftScratchBuffer(1, n);
  const outAt = pffftScratchBuffer(2, size);
  let heap = fwd.mem.HEAPF32; // after the allocations above
  heap.set(G0, gAt);
  if (!first) heap.set(H, hAt);
  const Hh = heap.subarray(hAt, hAt + n);
  if (magnitudes) emaRange(Hh, magnitudes, first, b, c);
  else magnitudesSimd(k, heap, fwd.spec, rows, cols, hAt, Hh, first, b, c);
  t = lap(profile, 2, t);
  const tau = float32AtLeast(halfSpectrumQuantile(Hh, rows, cols, p.q));
  t = lap(profile, 3, t);
  if (p.control) {
    H.set(Hh);
    return controlTail(fwd, H, rows, cols, tau, p, seed, io, profile, t);
  }
  const n8 = n & ~7;
  let sum = k.mask(4 * fwd.spec, 4 * fwd.inverse, 4 * hAt, n8, tau, seed) >>> 0;
  sum = maskRange(heap, fwd.spec, fwd.inverse, Hh, n8, tau, sum);
  H.set(Hh);
  t = lap(profile, 4, t);
  const inv = irfft2Heap(rows, cols);
  t = lap(profile, 5, t);
  heap = inv.mem.HEAPF32;
  if (inv.mem !== fwd.mem || inv.stride !== 1) {
    // The row pass is on kissfft: blend from its heap in JS.
    const { G, out } = io();
    blendRange(heap, inv.base, inv.stride, 1 / size, G, out, 0, p.alpha);
    lap(profile, 6, t);
    return sum;
  }
  const size4 = size & ~3;
  const a = Math.fround(p.alpha);
  const ca = Math.fround(1 - p.alpha);
  k.blend(4 * inv.base, 4 * gAt, 4 * outAt, size4, 1 / size, a, ca);
  const G = heap.subarray(gAt, gAt + size);
  const outH = heap.subarray(outAt, outAt + size);
  blendRange(heap, inv.base, 1, 1 / size, G, outH, size4, p.alpha);
  io().out.set(outH);
  lap(profile, 6, t);
  return sum;
}

/**
 * Steps 2–3 alone: out ([half, rows]) = |FFT2(G)|, the self-conjugate columns' conjugate pairs averaged: the
 * same bits as magnitude(forward(G)) in shared/smi/smi.ts, with the spectrum left in the FFT's heap (a synced
 * worker's share of the spectral work). Needs `await initFft()`.
 */
export function hostMagnitude(G: Float32Array, rows: number, cols: number, out: Float32Array = new Float32Array(rows * halfCols(cols))): Float32Array {
  const n = rows * halfCols(cols);
  if (out.length !== n) throw new RangeError(`SMI: ${out.length} magnitudes, the ${rows}×${cols} spectrum has ${n}`);
  if (G.length !== rows * cols) throw new RangeError(`SMI: gradient has ${G.length} values, not ${rows}×${cols}`);
  const fwd = rfft2Heap(G, rows, cols);
  const k = simdEnabled ? kernelsFor(fwd.mem) : undefined;
  if (!k) {
    const heap = fwd.mem.HEAPF32;
    for (const col of selfConjugateColumns(cols)) magnitudeSelfConjugate(heap, fwd.spec, rows, out, col, true, 0, 0);
    magnitudeRange(heap, fwd.spec, out, rows, pairedEndOf(rows, cols), true, 0, 0);
    return out;
  }
  const hAt = pffftScratchBuffer(1, n);
  const heap = fwd.mem.HEAPF32; // after the allocation
  const Hh = heap.subarray(hAt, hAt + n);
  magnitudesSimd(k, heap, fwd.spec, rows, cols, hAt, Hh, true, 0, 0);
  out.set(Hh);
  return out;
}

// ---- the controls (HostControl) ------------------------------------------------------------------------------

let controlMask = new Float32Array(0);

/** hostStep's end for a control run (in JS: controls are measured for what they do, not for speed). */
function controlTail(
  fwd: { mem: Memory; spec: number; inverse: number }, H: Float32Array, rows: number, cols: number, tau: number, p: HostStepParams,
  seed: number, io: HostStepIo, profile: HostStepProfile | undefined, t: number,
): number {
  const control = p.control!;
  const heap = fwd.mem.HEAPF32;
  if (control.kind === 'shrink') {
    const c = keptEnergyShare(heap, fwd.spec, H, rows, cols, tau);
    // the checksum of [H ≥ τ]; the masked spectrum this writes is not used (and may overwrite Ĝ: rows = 1)
    const sum = maskRange(heap, fwd.spec, fwd.inverse, H, 0, tau, seed);
    t = lap(profile, 4, t);
    const { G, out } = io();
    shrinkBlend(G, out, c, p.alpha);
    lap(profile, 6, t);
    return sum;
  }
  const n = H.length;
  if (controlMask.length < n) controlMask = new Float32Array(n);
  const mask = randomMask(rows, cols, keptBins(H, rows, cols, tau), control.rng, controlMask.subarray(0, n));
  const sum = maskRange(heap, fwd.spec, fwd.inverse, mask, 0, 0.5, seed); // 0/1 floats against 0.5: exactly these bins
  t = lap(profile, 4, t);
  const inv = irfft2Heap(rows, cols);
  t = lap(profile, 5, t);
  const { G, out } = io();
  blendRange(inv.mem.HEAPF32, inv.base, inv.stride, 1 / (rows * cols), G, out, 0, p.alpha);
  lap(profile, 6, t);
  return sum;
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
 * Σ_kept |X|² / Σ |X|² over the full spectrum (each half-spectrum entry weighted by its multiplicity), kept = H ≥ τ,
 * X_i at heap[spec + 2i]; in double; 1 for an all-zero spectrum (then c·G = G = 0 anyway).
 */
function keptEnergyShare(heap: Float32Array, spec: number, H: Float32Array, rows: number, cols: number, tau: number): number {
  const pairedEnd = pairedEndOf(rows, cols);
  let kept = 0;
  let all = 0;
  for (let i = 0, s = spec; i < H.length; i++, s += 2) {
    const e = (heap[s] * heap[s] + heap[s + 1] * heap[s + 1]) * (i < rows || i >= pairedEnd ? 1 : 2);
    all += e;
    if (H[i] >= tau) kept += e; // every bin kept: the same sums, c = 1 exactly
  }
  return all > 0 ? kept / all : 1;
}

/** out[i] = α·(c·G[i]) + (1−α)·G[i], c·G[i] rounded to float32 as G′ is, then as blendRange(). */
function shrinkBlend(G: Float32Array, out: Float32Array, c: number, alpha: number): void {
  const cf = Math.fround(c);
  const a = Math.fround(alpha);
  const ca = Math.fround(1 - alpha);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(a * Math.fround(cf * G[i])) + Math.fround(ca * G[i]);
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
function pairedEndOf(rows: number, cols: number): number {
  const half = halfCols(cols);
  return (cols % 2 === 0 ? half - 1 : half) * rows;
}

/** |X| + EMA into Hh = heap[hAt…] with the SIMD kernel where it applies, JS for the rest (as hostStep). */
function magnitudesSimd(k: SimdKernels, heap: Float32Array, spec: number, rows: number, cols: number, hAt: number, Hh: Float32Array, first: boolean, b: number, c: number): void {
  const pairedEnd = pairedEndOf(rows, cols);
  const simdEnd = rows + ((pairedEnd - rows) & ~3);
  k.mag_ema(4 * (spec + 2 * rows), 4 * (hAt + rows), simdEnd - rows, b, c, first ? 1 : 0);
  magnitudeRange(heap, spec, Hh, simdEnd, pairedEnd, first, b, c);
  for (const col of selfConjugateColumns(cols)) magnitudeSelfConjugate(heap, spec, rows, Hh, col, first, b, c);
}

// ---- the three passes in JS --------------------------------------------------------------------------------

/** H ← β·H + (1−β)·M (M itself when `first`), float32 rounding after each operation (updateHistory()). */
function emaRange(H: Float32Array, M: Float32Array, first: boolean, b: number, c: number): void {
  if (first) {
    H.set(M);
    return;
  }
  for (let i = 0; i < H.length; i++) H[i] = Math.fround(b * H[i]) + Math.fround(c * M[i]);
}

/**
 * H[i] ← β·H[i] + (1−β)·|X_i| (or |X_i| when `first`) for i in [from, to), X_i at heap[spec + 2i], float32
 * rounding after each operation (as magnitude() and updateHistory() in shared/smi/smi.ts).
 */
function magnitudeRange(heap: Float32Array, spec: number, H: Float32Array, from: number, to: number, first: boolean, b: number, c: number): void {
  let s = spec + 2 * from;
  if (first) {
    for (let i = from; i < to; i++, s += 2) {
      const re = heap[s];
      const im = heap[s + 1];
      H[i] = Math.sqrt(re * re + im * im);
    }
  } else {
    for (let i = from; i < to; i++, s += 2) {
      const re = heap[s];
      const im = heap[s + 1];
      H[i] = Math.fround(b * H[i]) + Math.fround(c * Math.fround(Math.sqrt(re * re + im * im)));
    }
  }
}

/**
 * The same for the self-conjugate spectral column `col`: rows k1 and rows−k1 get the mean of their two
 * magnitudes (bit-equal, so that the mask stays Hermitian); row 0 (and rows/2 for even rows) its own.
 */
function magnitudeSelfConjugate(heap: Float32Array, spec: number, rows: number, H: Float32Array, col: number, first: boolean, b: number, c: number): void {
  const o = col * rows;
  const s = spec + 2 * o;
  for (let k1 = 0; 2 * k1 <= rows; k1++) {
    const k2 = (rows - k1) % rows;
    const ra = heap[s + 2 * k1];
    const ia = heap[s + 2 * k1 + 1];
    let m = Math.fround(Math.sqrt(ra * ra + ia * ia));
    if (k2 !== k1) {
      const rb = heap[s + 2 * k2];
      const ib = heap[s + 2 * k2 + 1];
      m = Math.fround((m + Math.fround(Math.sqrt(rb * rb + ib * ib))) * 0.5);
      H[o + k2] = first ? m : Math.fround(Math.fround(b * H[o + k2]) + Math.fround(c * m));
    }
    H[o + k1] = first ? m : Math.fround(Math.fround(b * H[o + k1]) + Math.fround(c * m));
  }
}

/**
 * Writes X ⊙ [H ≥ τ] from heap[src…] to heap[dst…] (interleaved; dst may be src) for i in [from, H.length)
 * (`from` a multiple of 8) and returns the FNV-1a checksum of those mask bits continued from `seed`
 * (maskChecksum() in shared/smi/smi.ts, in the same order).
 */
function maskRange(heap: Float32Array, src: number, dst: number, H: Float32Array, from: number, tau: number, seed: number): number {
  let h = seed >>> 0;
  const n = H.length;
  let i = from;
  let s = src + 2 * from;
  let d = dst + 2 * from;
  while (i < n) {
    let byte = 0;
    for (let j = 0, end = Math.min(8, n - i); j < end; j++, i++, s += 2, d += 2) {
      const keep = +(H[i] >= tau); // a number, not a branch: the mask is unpredictable
      heap[d] = heap[s] * keep;
      heap[d + 1] = heap[s + 1] * keep;
      byte |= keep << j;
    }
    h = Math.imul(h ^ byte, FNV_PRIME);
  }
  return h >>> 0;
}

/**
 * out[i] = α·(y_i·scale) + (1−α)·G[i] for i in [from, out.length), y_i at heap[base + stride·i], rounding to
 * float32 after each operation (as irfft2 and maskedBlend() in shared/smi/smi.ts).
 */
function blendRange(heap: Float32Array, base: number, stride: number, scale: number, G: Float32Array, out: Float32Array, from: number, alpha: number): void {
  const a = Math.fround(alpha);
  const c = Math.fround(1 - alpha);
  const n = out.length;
  for (let i = from, o = base + stride * from; i < n; i++, o += stride) {
    out[i] = Math.fround(a * Math.fround(heap[o] * scale)) + Math.fround(c * G[i]);
  }
}

// ---- the same passes as wasm SIMD kernels in pffft's heap ----------------------------------------------------

/** Pointers in bytes; counts a multiple of 4 (mag_ema, blend) or 8 (mask). */
interface SimdKernels {
  /** magnitudeRange over n values (no self-conjugate column among them) */
  mag_ema(spec: number, h: number, n: number, b: number, c: number, first: number): void;
  /** maskRange over n values; returns the checksum as an int32 */
  mask(src: number, dst: number, h: number, n: number, tau: number, seed: number): number;
  /** blendRange with stride 1 over n values, a = fround(α) and c = fround(1 − α) */
  blend(y: number, g: number, out: number, n: number, scale: number, a: number, c: number): void;
}

// Lane patterns (i8x16.shuffle byte indices; a second operand's bytes are 16–31).
const EVEN_F32 = '0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27'; // f32 lanes 0, 2 of a and of b: the re of 4 complex
const ODD_F32 = '4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31'; // lanes 1, 3 of a and b: the im
const HIGH_HALF = '8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7'; // lanes 2, 3 moved down (to promote them)
const LOW_HALVES = '0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23'; // lanes 0, 1 of a, then lanes 0, 1 of b
const PAIR_LO = '0 1 2 3 0 1 2 3 4 5 6 7 4 5 6 7'; // (k0, k0, k1, k1): a keep factor per complex (re, im)
const PAIR_HI = '8 9 10 11 8 9 10 11 12 13 14 15 12 13 14 15'; // (k2, k2, k3, k3)

const SIMD_WAT = `
(module
  (import "env" "memory" (memory 0))
  (func $mag_ema (export "mag_ema") (param $spec i32) (param $h i32) (param $n i32) (param $b f32) (param $c f32) (param $first i32)
    (local $end i32) (local $bv v128) (local $cv v128) (local $x v128) (local $y v128) (local $re v128) (local $im v128)
    (local $lo v128) (local $m v128)
    local.get $h local.get $n i32.const 2 i32.shl i32.add local.set $end
    local.get $b f32x4.splat local.set $bv
    local.get $c f32x4.splat local.set $cv
    block $done
      local.get $h local.get $end i32.ge_u br_if $done
      loop $top
        local.get $spec v128.load local.set $x
        local.get $spec v128.load offset=16 local.set $y
        local.get $x local.get $y i8x16.shuffle ${EVEN_F32} local.set $re
        local.get $x local.get $y i8x16.shuffle ${ODD_F32} local.set $im
        ;; m = f32(sqrt(re² + im²)) in double, lanes 0, 1 then 2, 3
        local.get $re f64x2.promote_low_f32x4 local.tee $x local.get $x f64x2.mul
        local.get $im f64x2.promote_low_f32x4 local.tee $y local.get $y f64x2.mul
        f64x2.add f64x2.sqrt f32x4.demote_f64x2_zero local.set $lo
        local.get $re local.get $re i8x16.shuffle ${HIGH_HALF} f64x2.promote_low_f32x4 local.tee $x local.get $x f64x2.mul
        local.get $im local.get $im i8x16.shuffle ${HIGH_HALF} f64x2.promote_low_f32x4 local.tee $y local.get $y f64x2.mul
        f64x2.add f64x2.sqrt f32x4.demote_f64x2_zero
        local.set $m local.get $lo local.get $m i8x16.shuffle ${LOW_HALVES} local.set $m
        local.get $first
        if
          local.get $h local.get $m v128.store
        else
          ;; H = f32(b·H) + f32(c·m)
          local.get $h
          local.get $bv local.get $h v128.load f32x4.mul
          local.get $cv local.get $m f32x4.mul
          f32x4.add v128.store
        end
        local.get $spec i32.const 32 i32.add local.set $spec
        local.get $h i32.const 16 i32.add local.tee $h
        local.get $end i32.lt_u br_if $top
      end
    end)

  (func $mask (export "mask") (param $src i32) (param $dst i32) (param $h i32) (param $n i32) (param $tau f32) (param $seed i32) (result i32)
    (local $end i32) (local $tv v128) (local $one v128) (local $m0 v128) (local $m1 v128) (local $hash i32)
    local.get $seed local.set $hash
    local.get $h local.get $n i32.const 2 i32.shl i32.add local.set $end
    local.get $tau f32x4.splat local.set $tv
    f32.const 1 f32x4.splat local.set $one
    block $done
      local.get $h local.get $end i32.ge_u br_if $done
      loop $top
        local.get $h v128.load local.get $tv f32x4.ge local.set $m0
        local.get $h v128.load offset=16 local.get $tv f32x4.ge local.set $m1
        ;; FNV-1a step on the byte of these 8 mask bits
        local.get $hash
        local.get $m0 i32x4.bitmask local.get $m1 i32x4.bitmask i32.const 4 i32.shl i32.or
        i32.xor i32.const ${FNV_PRIME} i32.mul local.set $hash
        ;; keep factors 1.0 / 0.0, each multiplying a complex value (a product, as in JS: −0 and NaN alike)
        local.get $m0 local.get $one v128.and local.set $m0
        local.get $m1 local.get $one v128.and local.set $m1
        local.get $dst local.get $src v128.load local.get $m0 local.get $m0 i8x16.shuffle ${PAIR_LO} f32x4.mul v128.store
        local.get $dst local.get $src v128.load offset=16 local.get $m0 local.get $m0 i8x16.shuffle ${PAIR_HI} f32x4.mul v128.store offset=16
        local.get $dst local.get $src v128.load offset=32 local.get $m1 local.get $m1 i8x16.shuffle ${PAIR_LO} f32x4.mul v128.store offset=32
        local.get $dst local.get $src v128.load offset=48 local.get $m1 local.get $m1 i8x16.shuffle ${PAIR_HI} f32x4.mul v128.store offset=48
        local.get $src i32.const 64 i32.add local.set $src
        local.get $dst i32.const 64 i32.add local.set $dst
        local.get $h i32.const 32 i32.add local.tee $h
        local.get $end i32.lt_u br_if $top
      end
    end
    local.get $hash)

  (func $blend (export "blend") (param $y i32) (param $g i32) (param $out i32) (param $n i32) (param $scale f64) (param $a f32) (param $c f32)
    (local $end i32) (local $sv v128) (local $av v128) (local $cv v128) (local $v v128)
    local.get $out local.get $n i32.const 2 i32.shl i32.add local.set $end
    local.get $scale f64x2.splat local.set $sv
    local.get $a f32x4.splat local.set $av
    local.get $c f32x4.splat local.set $cv
    block $done
      local.get $out local.get $end i32.ge_u br_if $done
      loop $top
        local.get $y v128.load local.set $v
        local.get $out
        ;; s = f32(y·scale), the product in double
        local.get $v f64x2.promote_low_f32x4 local.get $sv f64x2.mul f32x4.demote_f64x2_zero
        local.get $v local.get $v i8x16.shuffle ${HIGH_HALF} f64x2.promote_low_f32x4 local.get $sv f64x2.mul f32x4.demote_f64x2_zero
        i8x16.shuffle ${LOW_HALVES}
        ;; out = f32(a·s) + f32(c·G)
        local.get $av f32x4.mul
        local.get $cv local.get $g v128.load f32x4.mul
        f32x4.add v128.store
        local.get $y i32.const 16 i32.add local.set $y
        local.get $g i32.const 16 i32.add local.set $g
        local.get $out i32.const 16 i32.add local.tee $out
        local.get $end i32.lt_u br_if $top
      end
    end))
`;

let simd: { memory: WebAssembly.Memory; kernels: SimdKernels } | undefined;

/** The kernels when `mem` is pffft's heap and it could be caught (shared/smi/fft.ts pffftHeap), else undefined. */
function kernelsFor(mem: Memory): SimdKernels | undefined {
  const heap = pffftHeap();
  if (!heap || heap.mem !== mem) return undefined;
  if (simd?.memory !== heap.memory) simd = { memory: heap.memory, kernels: instantiate<SimdKernels>(SIMD_WAT, { env: { memory: heap.memory } }, 'smi-host.wat') };
  return simd.kernels;
}
