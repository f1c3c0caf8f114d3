// The reduce's host passes, the weighted sum of the shares and the float64 sums of squares that check each one on
// arrival and give the synced norm, as wasm SIMD kernels over blocks copied into a small memory of their own (WAT, assembled at load).
//
// In JS each pass costs ~2.3–2.8 ns per value on this machine (compute-bound: a double product and a rounding per
// value): 11–15 ms over an owner's half of the paper preset (5.4M values), and a step makes one check per share and
// one weighted sum. Here a block of 16K values is copied into the module's memory (a memcpy, ~0.2 ns per value) and
// reduced there 4 lanes at a time: the check 4.7× faster (~12 → ~2.5 ms), the weighted sum of two shares 1.2×
// (~15 → ~12.5 ms: its double products and roundings keep it compute-bound). The arithmetic is
// the JS passes', lane for lane: the products and sums that JS does in double are done in f64x2 lanes and rounded to
// float32 where JS rounds (Math.fround, a store into a Float32Array), so the results are the same bits
// (test/shared/wasm/reduce.test.ts compares them bit for bit).
import { instantiate, wasmAsmReady } from './asm.ts';

const BLOCK = 16384; // values per block (64 KiB; three fit in L2): a multiple of 4, so value j stays in lane j mod 4 across blocks
const A = 0; // byte offsets of the three blocks and the four float64 accumulators in the module's memory
const B = BLOCK * 4;
const OUT = BLOCK * 8;
const ACC = BLOCK * 12;

const HIGH_HALF = '8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7'; // f32 lanes 2, 3 moved down (to promote them)
const LOW_HALVES = '0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23'; // lanes 0, 1 of a, then lanes 0, 1 of b

/** Lanes 0, 1 (`lo`) or 2, 3 (`hi`) of the f32x4 in local `x`, as f64x2. */
const half = (x: string, h: 'lo' | 'hi'): string => (h === 'lo' ? `local.get ${x} f64x2.promote_low_f32x4` : `local.get ${x} local.get ${x} i8x16.shuffle ${HIGH_HALF} f64x2.promote_low_f32x4`);

/** A loop over n values (a multiple of 4) at $out: `body(h)` leaves half h of the result as f32x4 (two lanes, zeros). */
function lanesLoop(loads: string, body: (h: 'lo' | 'hi') => string, pointers: string[]): string {
  return `
    local.get $out local.get $n i32.const 2 i32.shl i32.add local.set $end
    block $done
      local.get $out local.get $end i32.ge_u br_if $done
      loop $top
        ${loads}
        local.get $out
        ${body('lo')}
        ${body('hi')}
        i8x16.shuffle ${LOW_HALVES} v128.store
        ${pointers.map((p) => `local.get ${p} i32.const 16 i32.add local.set ${p}`).join('\n        ')}
        local.get $out i32.const 16 i32.add local.tee $out
        local.get $end i32.lt_u br_if $top
      end
    end`;
}

const REDUCE_WAT = `
(module
  (memory (export "memory") ${(ACC + 32 + 65535) >> 16})
  ;; acc[0..1] += (x0², x1²), acc[2..3] += (x2², x3²) over n values at $p (a multiple of 4), products and sums in double
  (func (export "ss") (param $p i32) (param $n i32)
    (local $end i32) (local $x v128) (local $y v128) (local $lo v128) (local $hi v128)
    i32.const ${ACC} v128.load local.set $lo
    i32.const ${ACC + 16} v128.load local.set $hi
    local.get $p local.get $n i32.const 2 i32.shl i32.add local.set $end
    block $done
      local.get $p local.get $end i32.ge_u br_if $done
      loop $top
        local.get $p v128.load local.set $x
        ${half('$x', 'lo')} local.tee $y local.get $y f64x2.mul local.get $lo f64x2.add local.set $lo
        ${half('$x', 'hi')} local.tee $y local.get $y f64x2.mul local.get $hi f64x2.add local.set $hi
        local.get $p i32.const 16 i32.add local.tee $p
        local.get $end i32.lt_u br_if $top
      end
    end
    i32.const ${ACC} local.get $lo v128.store
    i32.const ${ACC + 16} local.get $hi v128.store)
  ;; acc + x_0² + x_1² + … over n values at $p, one after the other, in double (the order of a plain JS loop)
  (func (export "ssq") (param $p i32) (param $n i32) (param $acc f64) (result f64)
    (local $end i32) (local $x f64)
    local.get $p local.get $n i32.const 2 i32.shl i32.add local.set $end
    block $done
      local.get $p local.get $end i32.ge_u br_if $done
      loop $top
        local.get $acc local.get $p f32.load f64.promote_f32 local.tee $x local.get $x f64.mul f64.add local.set $acc
        local.get $p i32.const 4 i32.add local.tee $p
        local.get $end i32.lt_u br_if $top
      end
    end
    local.get $acc)
  ;; 1 if every one of n values at $p (a multiple of 4) is finite: Σ (x − x) is 0 then, NaN otherwise
  (func (export "finite") (param $p i32) (param $n i32) (result i32)
    (local $end i32) (local $acc v128) (local $x v128)
    local.get $p local.get $n i32.const 2 i32.shl i32.add local.set $end
    block $done
      local.get $p local.get $end i32.ge_u br_if $done
      loop $top
        local.get $p v128.load local.tee $x local.get $x f32x4.sub local.get $acc f32x4.add local.set $acc
        local.get $p i32.const 16 i32.add local.tee $p
        local.get $end i32.lt_u br_if $top
      end
    end
    local.get $acc v128.const f32x4 0 0 0 0 f32x4.eq i32x4.all_true)
  ;; out = f32(a·w0) (one chunk)
  (func (export "first") (param $a i32) (param $out i32) (param $n i32) (param $w0 f64)
    (local $end i32) (local $x v128) (local $w0v v128)
    local.get $w0 f64x2.splat local.set $w0v${lanesLoop('local.get $a v128.load local.set $x', (h) => `${half('$x', h)} local.get $w0v f64x2.mul f32x4.demote_f64x2_zero`, ['$a'])})
  ;; out = f32(f32(a·w0) + b·w1), the products and the sum in double (the first two chunks)
  (func (export "first2") (param $a i32) (param $b i32) (param $out i32) (param $n i32) (param $w0 f64) (param $w1 f64)
    (local $end i32) (local $x v128) (local $y v128) (local $w0v v128) (local $w1v v128)
    local.get $w0 f64x2.splat local.set $w0v
    local.get $w1 f64x2.splat local.set $w1v${lanesLoop('local.get $a v128.load local.set $x local.get $b v128.load local.set $y', (h) => `${half('$x', h)} local.get $w0v f64x2.mul f32x4.demote_f64x2_zero f64x2.promote_low_f32x4 ${half('$y', h)} local.get $w1v f64x2.mul f64x2.add f32x4.demote_f64x2_zero`, ['$a', '$b'])})
  ;; out = f32(out + a·w), in double (every further chunk)
  (func (export "add") (param $a i32) (param $out i32) (param $n i32) (param $w f64)
    (local $end i32) (local $x v128) (local $y v128) (local $wv v128)
    local.get $w f64x2.splat local.set $wv${lanesLoop('local.get $a v128.load local.set $x local.get $out v128.load local.set $y', (h) => `${half('$y', h)} ${half('$x', h)} local.get $wv f64x2.mul f64x2.add f32x4.demote_f64x2_zero`, ['$a'])}))
`;

interface ReduceKernels {
  memory: WebAssembly.Memory;
  ss(p: number, n: number): void;
  ssq(p: number, n: number, acc: number): number;
  finite(p: number, n: number): number;
  first(a: number, out: number, n: number, w0: number): void;
  first2(a: number, b: number, out: number, n: number, w0: number, w1: number): void;
  add(a: number, out: number, n: number, w: number): void;
}

let kernels: { k: ReduceKernels; f32: Float32Array; acc: Float64Array } | null | undefined;
let enabled = true;

/** The kernels, or null where they cannot run (the assembler not loaded, no wasm SIMD); built once. */
function get(): { k: ReduceKernels; f32: Float32Array; acc: Float64Array } | null {
  if (!enabled) return null;
  if (kernels !== undefined) return kernels;
  if (!wasmAsmReady()) return null; // not cached: initWasmAsm() may still come
  try {
    const k = instantiate<ReduceKernels>(REDUCE_WAT, {}, 'reduce.wat');
    kernels = { k, f32: new Float32Array(k.memory.buffer), acc: new Float64Array(k.memory.buffer, ACC, 4) };
  } catch {
    kernels = null; // no SIMD in this engine: the JS passes
  }
  return kernels;
}

/** Turns the kernels off (JS passes) or on again: for the tests and benchmarks that compare the two. */
export function setReduceSimd(on: boolean): void {
  enabled = on;
}

/** Whether the next pass runs on the kernels. */
export function reduceSimdActive(): boolean {
  return get() !== null;
}

/** Σ x² in float64 in four interleaved sums (lane j mod 4), then (s0 + s1) + (s2 + s3); NaN or ±Inf if any x is. */
export function sumOfSquares64(t: Float32Array): number {
  const n4 = t.length & ~3;
  const kk = get();
  let a0 = 0;
  let a1 = 0;
  let a2 = 0;
  let a3 = 0;
  let j = 0;
  if (kk) {
    kk.acc.fill(0);
    for (; j < n4; j += BLOCK) {
      const m = Math.min(BLOCK, n4 - j);
      kk.f32.set(t.subarray(j, j + m), A >> 2);
      kk.k.ss(A, m);
    }
    [a0, a1, a2, a3] = kk.acc as unknown as [number, number, number, number];
  } else {
    for (; j < n4; j += 4) {
      const x0 = t[j]!;
      const x1 = t[j + 1]!;
      const x2 = t[j + 2]!;
      const x3 = t[j + 3]!;
      a0 += x0 * x0;
      a1 += x1 * x1;
      a2 += x2 * x2;
      a3 += x3 * x3;
    }
  }
  for (j = n4; j < t.length; j++) a0 += t[j]! * t[j]!;
  return a0 + a1 + (a2 + a3);
}

/**
 * acc + Σ x² in float64, the values added one after the other (the order of `for (…) acc += x[i] * x[i]`, where the
 * bits must be a sequential sum's: the synced norm, the star's checks); NaN or ±Inf if any x is. On the kernel where
 * it runs (a chain of double additions: about twice as fast as JS's, not more), else in JS; the same bits either way.
 */
export function sumOfSquaresInOrder(t: Float32Array, acc = 0): number {
  const kk = get();
  if (!kk) {
    for (let i = 0; i < t.length; i++) acc += t[i]! * t[i]!;
    return acc;
  }
  for (let j = 0; j < t.length; j += BLOCK) {
    const m = Math.min(BLOCK, t.length - j);
    kk.f32.set(t.subarray(j, j + m), A >> 2);
    acc = kk.k.ssq(A, m, acc);
  }
  return acc;
}

/** Whether every value is finite (no NaN, no ±Inf): the check of an owner's new values before a replica takes them. */
export function allFinite(x: Float32Array): boolean {
  const kk = get();
  const n4 = kk ? x.length & ~3 : 0;
  if (kk) {
    for (let j = 0; j < n4; j += BLOCK) {
      const m = Math.min(BLOCK, n4 - j);
      kk.f32.set(x.subarray(j, j + m), A >> 2);
      if (!kk.k.finite(A, m)) return false;
    }
  }
  let a = 0;
  let b = 0;
  const n2 = n4 + ((x.length - n4) & ~1);
  let j = n4;
  for (; j < n2; j += 2) {
    a += x[j]! - x[j]!;
    b += x[j + 1]! - x[j + 1]!;
  }
  for (; j < x.length; j++) a += x[j]! - x[j]!;
  return a + b === 0;
}

/**
 * out = Σ_c w_c·a_c for one tensor's arrays, in chunk order: out = f32(w_0·a_0), with a second chunk in the same pass
 * f32(f32(w_0·a_0) + w_1·a_1), then out = f32(out + w_c·a_c) (products and sums in double, one float32 rounding per
 * addition). On the kernels where they run, else in JS; the same bits either way.
 */
export function weightedSumInto(arrays: readonly Float32Array[], weights: readonly number[], out: Float32Array): void {
  const n = out.length;
  const kk = get();
  const n4 = kk ? n & ~3 : 0;
  if (kk) {
    const { k, f32 } = kk;
    for (let j = 0; j < n4; j += BLOCK) {
      const m = Math.min(BLOCK, n4 - j);
      f32.set(arrays[0]!.subarray(j, j + m), A >> 2);
      if (arrays.length >= 2) {
        f32.set(arrays[1]!.subarray(j, j + m), B >> 2);
        k.first2(A, B, OUT, m, weights[0]!, weights[1]!);
      } else k.first(A, OUT, m, weights[0]!);
      for (let c = 2; c < arrays.length; c++) {
        f32.set(arrays[c]!.subarray(j, j + m), A >> 2);
        k.add(A, OUT, m, weights[c]!);
      }
      out.set(f32.subarray(OUT >> 2, (OUT >> 2) + m), j);
    }
  }
  const w0 = weights[0]!;
  const a0 = arrays[0]!;
  let c = 1;
  if (arrays.length >= 2) {
    // the first two chunks in one pass (memory-bound: one read of each, one write), the same two roundings
    const a1 = arrays[1]!;
    const w1 = weights[1]!;
    for (let i = n4; i < n; i++) out[i] = Math.fround(w0 * a0[i]!) + w1 * a1[i]!;
    c = 2;
  } else for (let i = n4; i < n; i++) out[i] = w0 * a0[i]!; // = 0 + w0·a0[i], rounded once
  for (; c < arrays.length; c++) {
    const a = arrays[c]!;
    const w = weights[c]!;
    for (let i = n4; i < n; i++) out[i] += w * a[i]!;
  }
}
