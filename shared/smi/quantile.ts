// Quantiles by selection (numpy's default 'linear' method), including the full-spectrum multiset of a half spectrum.
//
// numpy.quantile(v, q) sorts v into v₀ ≤ … ≤ v_{N−1}, takes the position q·(N−1) = k + f and interpolates
// between v_k and v_{k+1}. Sorting is not needed: Floyd–Rivest selection puts v_k in place with everything
// after it ≥ v_k, and v_{k+1} is then the minimum of that tail. On 590k floats (a 384×1536 spectrum): 2.8 ms
// against 51 ms for Float32Array.sort.
// Inputs of 4096 values and more first go through a radix pass, in wasm: a histogram of the top 16 bits of
// an order-preserving integer key of each float32 finds the bucket that holds v_k (and the one that holds
// v_{k+1}); only the values in those buckets are copied out and selected among, usually well under 1% of them.
// The same order statistics, so the same quantile to the bit. A half spectrum is read as weighted blocks,
// never expanded to the full multiset. 384×1536 spectrum: 0.24 ms instead of 3.1 ms; 128×512: 0.03 ms, not 0.5.
// The radix pass needs the WAT assembler loaded (initWasmAsm() in shared/wasm/asm.ts; initFft() does it):
// until then every input takes the selection path alone, which gives the same results, only slower.
import { instantiate, wasmAsmReady } from '../wasm/asm.ts';

let scratch = new Float32Array(0);

function scratchOf(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(Math.max(n, Math.ceil(scratch.length * 1.5)));
  return scratch.subarray(0, n);
}

/**
 * Reorders arr[left..right] so that arr[k] is the value that would be there after sorting, with every
 * element before it ≤ arr[k] and every element after it ≥ arr[k] (Floyd–Rivest, as in mourner/quickselect).
 * NaN must not occur.
 */
export function selectKth(arr: Float32Array, k: number, left = 0, right = arr.length - 1): void {
  while (right > left) {
    if (right - left > 600) {
      // Recurse on a sample around the expected position so the pivot below lands near k.
      const n = right - left + 1;
      const m = k - left + 1;
      const z = Math.log(n);
      const s = 0.5 * Math.exp((2 * z) / 3);
      const sd = 0.5 * Math.sqrt((z * s * (n - s)) / n) * (m - n / 2 < 0 ? -1 : 1);
      const newLeft = Math.max(left, Math.floor(k - (m * s) / n + sd));
      const newRight = Math.min(right, Math.floor(k + ((n - m) * s) / n + sd));
      selectKth(arr, k, newLeft, newRight);
    }
    const t = arr[k];
    let i = left;
    let j = right;
    let tmp = arr[left];
    arr[left] = arr[k];
    arr[k] = tmp;
    if (arr[right] > t) {
      tmp = arr[left];
      arr[left] = arr[right];
      arr[right] = tmp;
    }
    while (i < j) {
      tmp = arr[i];
      arr[i] = arr[j];
      arr[j] = tmp;
      i++;
      j--;
      while (arr[i] < t) i++;
      while (arr[j] > t) j--;
    }
    if (arr[left] === t) {
      tmp = arr[left];
      arr[left] = arr[j];
      arr[j] = tmp;
    } else {
      j++;
      tmp = arr[j];
      arr[j] = arr[right];
      arr[right] = tmp;
    }
    if (j <= k) left = j + 1;
    if (k <= j) right = j - 1;
  }
}

/** numpy's _lerp between v_k = a and v_{k+1} = b at fraction f: the form that is exact at the nearer end. */
function lerp(a: number, b: number, f: number): number {
  const diff = b - a;
  return f >= 0.5 ? b - diff * (1 - f) : a + diff * f;
}

// ---- radix pre-pass ---------------------------------------------------------------------------------------

/** Below this many stored values, expanding and selecting directly is as fast as the radix pass. */
const RADIX_MIN = 4096;
const BUCKETS = 1 << 16;

/** A run of values that counts `weight` times each in the multiset: values[from..to). */
interface Block {
  values: Float32Array;
  from: number;
  to: number;
  weight: number;
}

// The two passes as wasm, in a memory of their own: the histogram (BUCKETS uint32, all zero between calls)
// at byte 0, then the blocks' values copied in one after the other, then the candidates.
// The bucket of a float32 with bits b (as int32) is the top 16 bits of the key that orders like the float
// (negative values: all bits flipped; others: the sign bit set), so a lower bucket never holds a larger value.
// Only −0 and +0 land in different buckets while comparing equal; either may then be returned, as by sorting.
const LANES = [0, 1, 2, 3];
const KEY = (x: string) => `local.get ${x} local.get ${x} i32.const 31 i32x4.shr_s v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000 v128.or v128.xor i32.const 16 i32x4.shr_u`;
const QUANTILE_WAT = `
(module
  (import "env" "memory" (memory 0))
  ;; hist[bucket] += w for the n values at v; returns (lowest bucket << 16) | highest bucket, or −1 for a NaN
  ;; (the histogram is then partly updated: clear all of it). n ≥ 1.
  (func $histogram (export "histogram") (param $v i32) (param $n i32) (param $w i32) (param $hist i32) (result i32)
    (local $end i32) (local $end4 i32) (local $x v128) (local $u v128) (local $lo v128) (local $hi v128) (local $bad v128)
    (local $s i32) (local $a i32) (local $loS i32) (local $hiS i32)
    v128.const i32x4 -1 -1 -1 -1 local.set $lo
    local.get $v local.get $n i32.const 2 i32.shl i32.add local.set $end
    local.get $v local.get $n i32.const -4 i32.and i32.const 2 i32.shl i32.add local.set $end4
    block $simdDone
      local.get $v local.get $end4 i32.ge_u br_if $simdDone
      loop $top
        local.get $v v128.load local.set $x
        ;; NaN: (x & 0x7fffffff) > 0x7f800000
        local.get $bad
        local.get $x v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff v128.and
        v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000 i32x4.gt_u
        v128.or local.set $bad
        ${KEY('$x')} local.tee $u
        local.get $lo i32x4.min_u local.set $lo
        local.get $u local.get $hi i32x4.max_u local.set $hi
        ${LANES.map((l) => `local.get $hist local.get $u i32x4.extract_lane ${l} i32.const 2 i32.shl i32.add local.tee $a
        local.get $a i32.load local.get $w i32.add i32.store`).join('\n        ')}
        local.get $v i32.const 16 i32.add local.tee $v
        local.get $end4 i32.lt_u br_if $top
      end
    end
    block $tailDone
      loop $tail
        local.get $v local.get $end i32.ge_u br_if $tailDone
        local.get $v i32.load local.tee $s
        i32.const 0x7fffffff i32.and i32.const 0x7f800000 i32.gt_u
        if
          i32.const -1 return
        end
        local.get $s local.get $s i32.const 31 i32.shr_s i32.const 0x80000000 i32.or i32.xor i32.const 16 i32.shr_u local.set $s
        local.get $hist local.get $s i32.const 2 i32.shl i32.add local.tee $a
        local.get $a i32.load local.get $w i32.add i32.store
        local.get $lo local.get $s i32x4.splat i32x4.min_u local.set $lo
        local.get $hi local.get $s i32x4.splat i32x4.max_u local.set $hi
        local.get $v i32.const 4 i32.add local.set $v
        br $tail
      end
    end
    local.get $bad v128.any_true
    if
      i32.const -1 return
    end
    local.get $lo i32x4.extract_lane 0 local.set $loS
    local.get $hi i32x4.extract_lane 0 local.set $hiS
    ${LANES.slice(1).map((l) => `local.get $lo i32x4.extract_lane ${l} local.tee $s local.get $loS local.get $s local.get $loS i32.lt_u select local.set $loS
    local.get $hi i32x4.extract_lane ${l} local.tee $s local.get $hiS local.get $s local.get $hiS i32.gt_u select local.set $hiS`).join('\n    ')}
    local.get $loS i32.const 16 i32.shl local.get $hiS i32.or)

  ;; Appends each of the n values at v whose bucket lies in [bLo, bLo + span], w times, at out; returns the new end.
  (func $gather (export "gather") (param $v i32) (param $n i32) (param $w i32) (param $bLo i32) (param $span i32) (param $out i32) (result i32)
    (local $end i32) (local $end4 i32) (local $x v128) (local $in v128) (local $lov v128) (local $spanv v128)
    (local $s i32) (local $k i32)
    local.get $bLo i32x4.splat local.set $lov
    local.get $span i32x4.splat local.set $spanv
    local.get $v local.get $n i32.const 2 i32.shl i32.add local.set $end
    local.get $v local.get $n i32.const -4 i32.and i32.const 2 i32.shl i32.add local.set $end4
    block $simdDone
      local.get $v local.get $end4 i32.ge_u br_if $simdDone
      loop $top
        local.get $v v128.load local.set $x
        ${KEY('$x')} local.get $lov i32x4.sub local.get $spanv i32x4.le_u local.tee $in
        v128.any_true
        if
          ${LANES.map((l) => `local.get $in i32x4.extract_lane ${l}
          if
            local.get $w local.set $k
            loop $copy${l}
              local.get $out local.get $v i32.load offset=${4 * l} i32.store
              local.get $out i32.const 4 i32.add local.set $out
              local.get $k i32.const 1 i32.sub local.tee $k br_if $copy${l}
            end
          end`).join('\n          ')}
        end
        local.get $v i32.const 16 i32.add local.tee $v
        local.get $end4 i32.lt_u br_if $top
      end
    end
    block $tailDone
      loop $tail
        local.get $v local.get $end i32.ge_u br_if $tailDone
        local.get $v i32.load local.tee $s
        local.get $s i32.const 31 i32.shr_s i32.const 0x80000000 i32.or i32.xor i32.const 16 i32.shr_u
        local.get $bLo i32.sub local.get $span i32.le_u
        if
          local.get $w local.set $k
          loop $copy
            local.get $out local.get $s i32.store
            local.get $out i32.const 4 i32.add local.set $out
            local.get $k i32.const 1 i32.sub local.tee $k br_if $copy
          end
        end
        local.get $v i32.const 4 i32.add local.set $v
        br $tail
      end
    end
    local.get $out))
`;

interface QuantileKernels {
  histogram(v: number, n: number, w: number, hist: number): number;
  gather(v: number, n: number, w: number, bLo: number, span: number, out: number): number;
}

let radix: { memory: WebAssembly.Memory; k: QuantileKernels } | undefined;

/** The kernels, with at least `bytes` of memory. */
function radixKernels(bytes: number): { memory: WebAssembly.Memory; k: QuantileKernels } {
  if (!radix) {
    const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
    radix = { memory, k: instantiate<QuantileKernels>(QUANTILE_WAT, { env: { memory } }, 'quantile.wat') };
  }
  const have = radix.memory.buffer.byteLength;
  if (have < bytes) radix.memory.grow(Math.ceil((bytes - have) / 65536));
  return radix;
}

/** [v_k, v_{k+1}] of the multiset the blocks make (v_{k+1} = v_k when !needNext). Throws on NaN. */
function selectPairRadix(blocks: readonly Block[], k: number, needNext: boolean, who: string): [number, number] {
  const stored = blocks.reduce((n, b) => n + b.to - b.from, 0);
  const valuesAt = 4 * BUCKETS;
  let { memory, k: kern } = radixKernels(valuesAt + 4 * stored);
  let f32 = new Float32Array(memory.buffer);
  const at: number[] = [];
  for (let i = 0, o = valuesAt >> 2; i < blocks.length; o += blocks[i].to - blocks[i].from, i++) {
    const { values, from, to } = blocks[i];
    f32.set(values.subarray(from, to), o);
    at.push(4 * o);
  }
  // Pass 1: the histogram (weighted), the NaN check, and the range of buckets used.
  let lo = BUCKETS;
  let hi = -1;
  for (const [i, { from, to, weight }] of blocks.entries()) {
    if (to === from) continue;
    const r = kern.histogram(at[i], to - from, weight, 0);
    if (r === -1) {
      new Uint32Array(memory.buffer, 0, BUCKETS).fill(0);
      throw new RangeError(`${who}: NaN in input`);
    }
    lo = Math.min(lo, r >>> 16);
    hi = Math.max(hi, r & 0xffff);
  }
  // The bucket of rank k, the count below it, and the bucket of rank k + 1 (no other lies between them).
  const histogram = new Uint32Array(memory.buffer, 0, BUCKETS);
  let below = 0;
  let bk = lo;
  while (below + histogram[bk] <= k) below += histogram[bk++];
  let bNext = bk;
  if (needNext && below + histogram[bk] <= k + 1) {
    bNext = bk + 1;
    while (histogram[bNext] === 0) bNext++;
  }
  const count = bNext === bk ? histogram[bk] : histogram[bk] + histogram[bNext];
  histogram.fill(0, lo, hi + 1);
  // Pass 2: the values of those buckets, weighted, then select among them.
  const candAt = valuesAt + 4 * stored;
  ({ memory, k: kern } = radixKernels(candAt + 4 * count));
  let end = candAt;
  for (const [i, { from, to, weight }] of blocks.entries()) {
    if (to > from) end = kern.gather(at[i], to - from, weight, bk, bNext - bk, end);
  }
  f32 = new Float32Array(memory.buffer, candAt, count);
  return selectPair(f32, k - below, needNext);
}

/** [v_k, v_{k+1}] of `work` (reordered in place); v_{k+1} = v_k when !needNext. */
function selectPair(work: Float32Array, k: number, needNext: boolean): [number, number] {
  selectKth(work, k);
  const a = work[k];
  if (!needNext) return [a, a];
  let b = Infinity;
  for (let i = k + 1; i < work.length; i++) if (work[i] < b) b = work[i];
  return [a, b];
}

/** numpy's linear quantile of the multiset the blocks make (total values, ≥ 1; throws on NaN). */
function blocksQuantile(blocks: readonly Block[], total: number, q: number, who: string): number {
  const pos = q * (total - 1);
  const k = Math.floor(pos);
  const f = pos - k;
  const [a, b] = selectPairRadix(blocks, k, f !== 0, who);
  return f === 0 ? a : lerp(a, b, f);
}

/** A Block over values[from..to). */
function block(values: Float32Array, from: number, to: number, weight: number): Block {
  return { values, from, to, weight };
}

/** numpy's linear quantile of the values in `work` (reordered in place; length ≥ 1, no NaN). */
function quantileInPlace(work: Float32Array, q: number): number {
  const pos = q * (work.length - 1);
  const k = Math.floor(pos);
  const f = pos - k;
  const [a, b] = selectPair(work, k, f !== 0);
  return f === 0 ? a : lerp(a, b, f);
}

function checkQ(q: number): void {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile: q must be in [0, 1], got ${q}`);
}

/**
 * The q-quantile of `values` as numpy.quantile(values, q) (method 'linear'), computed in double precision.
 * With `weights`, value i counts weights[i] times (non-negative integers), as if repeated in the input.
 * The caller's arrays are not reordered (the values are copied into a reused scratch buffer).
 * Throws RangeError for q outside [0, 1], an empty multiset, a NaN value, or a bad weight.
 */
export function quantile(values: Float32Array, q: number, weights?: ArrayLike<number>): number {
  checkQ(q);
  let work: Float32Array;
  if (weights === undefined && values.length >= RADIX_MIN && wasmAsmReady()) {
    return blocksQuantile([block(values, 0, values.length, 1)], values.length, q, 'quantile');
  }
  if (weights === undefined) {
    work = scratchOf(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v !== v) throw new RangeError('quantile: NaN in input');
      work[i] = v;
    }
  } else {
    if (weights.length !== values.length) throw new RangeError('quantile: weights and values differ in length');
    let total = 0;
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i];
      if (!(Number.isInteger(w) && w >= 0)) throw new RangeError(`quantile: weight ${w} is not a non-negative integer`);
      total += w;
    }
    work = scratchOf(total);
    for (let i = 0, o = 0; i < values.length; i++) {
      const v = values[i];
      if (v !== v) throw new RangeError('quantile: NaN in input');
      for (let w = weights[i]; w > 0; w--) work[o++] = v;
    }
  }
  if (work.length === 0) throw new RangeError('quantile: no values');
  return quantileInPlace(work, q);
}

/**
 * The q-quantile over the full rows × cols spectrum that a half spectrum H stands for; H is stored transposed
 * as in shared/smi/fft.ts: [half, rows], half = floor(cols/2)+1, spectral column k2 in H[k2·rows … (k2+1)·rows).
 * Each full-spectrum bin counts once: a bin in spectral columns 1 … ceil(cols/2)−1 stands for itself and its
 * conjugate (counted twice); columns 0 and, for even cols, cols/2 are their own mirror images (row k1 pairs
 * with row rows−k1 inside the column), so each of their entries is one bin (counted once). H is not modified.
 */
export function halfSpectrumQuantile(H: Float32Array, rows: number, cols: number, q: number): number {
  checkQ(q);
  const half = (cols >> 1) + 1;
  if (H.length !== rows * half || rows < 1 || cols < 1) {
    throw new RangeError(`halfSpectrumQuantile: ${H.length} values do not form a ${half}×${rows} half spectrum of ${rows}×${cols}`);
  }
  // Contiguous blocks: column 0 once, the paired columns twice, the Nyquist column (even cols) once.
  const pairedEnd = (cols % 2 === 0 ? half - 1 : half) * rows;
  if (H.length >= RADIX_MIN && wasmAsmReady()) {
    const blocks = [block(H, 0, rows, 1), block(H, rows, pairedEnd, 2), block(H, pairedEnd, H.length, 1)];
    return blocksQuantile(blocks, rows * cols, q, 'halfSpectrumQuantile');
  }
  for (let i = 0; i < H.length; i++) if (H[i] !== H[i]) throw new RangeError('halfSpectrumQuantile: NaN in input');
  const work = scratchOf(rows * cols);
  work.set(H.subarray(0, pairedEnd));
  work.set(H.subarray(rows, pairedEnd), pairedEnd);
  work.set(H.subarray(pairedEnd), 2 * pairedEnd - rows);
  return quantileInPlace(work, q);
}
