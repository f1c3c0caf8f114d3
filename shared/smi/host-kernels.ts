// The fused host step's passes as wasm SIMD kernels in pffft's heap (WAT, assembled at load): |X| + EMA (or the EMA
// of given magnitudes), mask + checksum, blend.
//
// They give the bits of the JS passes in host.ts: float32 SIMD arithmetic rounds once per operation as
// Math.fround(double op) does for +, − and × of float32 values, and what must be double (|X| = √(re² + im²), the
// 1/(rows·cols) scaling) is done in f64x2 lanes.
import { pffftHeap, type Memory } from './fft.ts';
import { instantiate } from '../wasm/asm.ts';

/** FNV-1a's prime: the mask checksum's multiplier (host.ts and the mask kernel). */
export const FNV_PRIME = 0x01000193;

/** Pointers in bytes; counts a multiple of 4 (mag_ema, ema, blend) or 8 (mask). */
export interface SimdKernels {
  /** magnitudeRange over n values (no self-conjugate column among them) */
  mag_ema(spec: number, h: number, n: number, b: number, c: number, first: number): void;
  /** H ← f32(b·H) + f32(c·M) over n values (host.ts emaRange without `first`) */
  ema(h: number, m: number, n: number, b: number, c: number): void;
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

  (func $ema (export "ema") (param $h i32) (param $m i32) (param $n i32) (param $b f32) (param $c f32)
    (local $end i32) (local $bv v128) (local $cv v128)
    local.get $h local.get $n i32.const 2 i32.shl i32.add local.set $end
    local.get $b f32x4.splat local.set $bv
    local.get $c f32x4.splat local.set $cv
    block $done
      local.get $h local.get $end i32.ge_u br_if $done
      loop $top
        local.get $h
        local.get $bv local.get $h v128.load f32x4.mul
        local.get $cv local.get $m v128.load f32x4.mul
        f32x4.add v128.store
        local.get $m i32.const 16 i32.add local.set $m
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
export function kernelsFor(mem: Memory): SimdKernels | undefined {
  const heap = pffftHeap();
  if (!heap || heap.mem !== mem) return undefined;
  if (simd?.memory !== heap.memory) simd = { memory: heap.memory, kernels: instantiate<SimdKernels>(SIMD_WAT, { env: { memory: heap.memory } }, 'smi-host.wat') };
  return simd.kernels;
}
