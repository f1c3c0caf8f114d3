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
import { halfCols, irfft2Heap, pffftScratchBuffer, rfft2Heap, type Memory } from './fft.ts';
import { halfSpectrumQuantile } from './quantile.ts';
import type { Rng } from '../model/rng.ts';
import { FNV_PRIME, kernelsFor, type SimdKernels } from './host-kernels.ts';
import { keptBins, pairedEndOf, randomMask, selfConjugateColumns } from './spectrum.ts';
import { weightedSumInto } from '../wasm/reduce.ts';

/** FNV-1a offset basis: the seed of a new mask checksum. */
export const MASK_CHECKSUM_SEED = 0x811c9dc5;

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

/**
 * The synced history's magnitudes as their weighted sum M = Σ_c w_c·M_c (weightedSumInto's bits: the products in
 * double, in chunk order), which hostStep computes where it uses them, so that M is never a separate pass.
 */
export interface WeightedMagnitudes {
  arrays: readonly Float32Array[];
  weights: readonly number[];
}

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
 * the synced mode's coordinator, whose M is the workers' averaged magnitudes, not those of the mean gradient; given
 * as WeightedMagnitudes, the average is taken here (into pffft's heap, where the EMA reads it).
 */
export function hostStep(
  G0: Float32Array, rows: number, cols: number, H: Float32Array, first: boolean, p: HostStepParams, seed: number, io: HostStepIo,
  profile?: HostStepProfile, magnitudes?: Float32Array | WeightedMagnitudes,
): number {
  let t = profile ? performance.now() : 0;
  const half = halfCols(cols);
  const n = rows * half;
  const size = rows * cols;
  if (H.length !== n) throw new RangeError(`SMI: history has ${H.length} values, the ${rows}×${cols} spectrum ${n}`);
  if (G0.length !== size) throw new RangeError(`SMI: gradient has ${G0.length} values, not ${rows}×${cols}`);
  for (const m of magnitudes === undefined ? [] : magnitudes instanceof Float32Array ? [magnitudes] : magnitudes.arrays) {
    if (m.length !== n) throw new RangeError(`SMI: ${m.length} magnitudes, the ${rows}×${cols} spectrum has ${n}`);
  }
  const b = Math.fround(p.beta);
  const c = Math.fround(1 - p.beta);
  const fwd = rfft2Heap(G0, rows, cols);
  t = lap(profile, 1, t);
  const k = simdEnabled ? kernelsFor(fwd.mem) : undefined;
  // Column 0 and (even cols) cols/2 are self-conjugate; the paired columns in between are one contiguous run.
  const pairedEnd = pairedEndOf(rows, cols);

  if (!k) {
    const heap = fwd.mem.HEAPF32;
    if (magnitudes) emaRange(H, magnitudesOf(magnitudes, n), first, b, c);
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
  const mAt = magnitudes ? pffftScratchBuffer(3, n) : 0;
  let heap = fwd.mem.HEAPF32; // after the allocations above
  heap.set(G0, gAt);
  if (!first) heap.set(H, hAt);
  const Hh = heap.subarray(hAt, hAt + n);
  if (magnitudes) {
    // M into the heap (the weighted sum written there), then the EMA as a SIMD pass (emaRange's bits)
    const Mh = heap.subarray(mAt, mAt + n);
    if (magnitudes instanceof Float32Array) Mh.set(magnitudes);
    else weightedSumInto(magnitudes.arrays, magnitudes.weights, Mh); // its own module's memory: this heap stays
    if (first) Hh.set(Mh);
    else {
      const n4 = n & ~3;
      k.ema(4 * hAt, 4 * mAt, n4, b, c);
      for (let i = n4; i < n; i++) Hh[i] = Math.fround(b * Hh[i]!) + Math.fround(c * Mh[i]!);
    }
  } else magnitudesSimd(k, heap, fwd.spec, rows, cols, hAt, Hh, first, b, c);
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

/** |X| + EMA into Hh = heap[hAt…] with the SIMD kernel where it applies, JS for the rest (as hostStep). */
function magnitudesSimd(k: SimdKernels, heap: Float32Array, spec: number, rows: number, cols: number, hAt: number, Hh: Float32Array, first: boolean, b: number, c: number): void {
  const pairedEnd = pairedEndOf(rows, cols);
  const simdEnd = rows + ((pairedEnd - rows) & ~3);
  k.mag_ema(4 * (spec + 2 * rows), 4 * (hAt + rows), simdEnd - rows, b, c, first ? 1 : 0);
  magnitudeRange(heap, spec, Hh, simdEnd, pairedEnd, first, b, c);
  for (const col of selfConjugateColumns(cols)) magnitudeSelfConjugate(heap, spec, rows, Hh, col, first, b, c);
}

// ---- the three passes in JS --------------------------------------------------------------------------------

let weightedBuf = new Float32Array(0);

/** The magnitudes as an array: given, or their weighted sum in a buffer reused from call to call (the JS path). */
function magnitudesOf(m: Float32Array | WeightedMagnitudes, n: number): Float32Array {
  if (m instanceof Float32Array) return m;
  if (weightedBuf.length < n) weightedBuf = new Float32Array(n);
  const out = weightedBuf.subarray(0, n);
  weightedSumInto(m.arrays, m.weights, out);
  return out;
}

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
