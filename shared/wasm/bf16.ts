// float32 ↔ bfloat16 for --wire-dtype bf16 (shared/net/dtype.ts) as wasm SIMD kernels over blocks copied into a
// small memory of their own (WAT, assembled at load), the same bits as the JS loops of dtype.ts.
//
// In JS each conversion costs 1.6–2.4 ns per value on this project's VM (a branch and a typed-array store per
// value), ~8–13 ms over an owner's half of the paper preset (5.3M values), and a bf16 step makes three of them per
// share: the sender's encoding, the owner's rounding of its own part, the owner's decoding of the others'. Here a
// block of 16K values is copied in (a memcpy), converted 8 at a time, and copied out: 0.77–0.89 ns per value, into
// a given array (5.3M values, 2026-12-03).
import { instantiate, wasmAsmReady } from './asm.ts';

const BLOCK = 16384; // values per block: a multiple of 8
const F = 0; // byte offsets: the float32 block (64 KiB), the bf16 block (32 KiB), the float32 output (64 KiB)
const H = BLOCK * 4;
const O = BLOCK * 6;
const PAGES = (BLOCK * 10 + 65535) >> 16;

/** The RNE of the four float32 bit patterns in local `x` to bf16 in the low 16 bits of each lane, NaN made quiet (dtype.ts's toBf16). */
const RNE = `
        local.get $x i32.const 16 i32x4.shr_u local.set $hi
        ;; NaN: (b >>> 16) | 0x40; else (b + 0x7fff + ((b >>> 16) & 1)) >>> 16
        local.get $hi v128.const i32x4 0x40 0x40 0x40 0x40 v128.or
        local.get $x v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff i32x4.add
        local.get $hi v128.const i32x4 1 1 1 1 v128.and i32x4.add
        i32.const 16 i32x4.shr_u
        local.get $x v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff v128.and
        v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000 i32x4.gt_u
        v128.bitselect`;

const BF16_WAT = `
(module
  (memory (export "memory") ${PAGES})
  ;; n float32 at $src (a multiple of 8) → n bf16 at $dst
  (func (export "to") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $x v128) (local $hi v128) (local $lo v128)
    local.get $src local.get $n i32.const 2 i32.shl i32.add local.set $end
    block $done
      local.get $src local.get $end i32.ge_u br_if $done
      loop $top
        local.get $src v128.load local.set $x${RNE}
        local.set $lo
        local.get $src v128.load offset=16 local.set $x${RNE}
        local.set $x
        local.get $dst local.get $lo local.get $x i16x8.narrow_i32x4_u v128.store
        local.get $dst i32.const 16 i32.add local.set $dst
        local.get $src i32.const 32 i32.add local.tee $src
        local.get $end i32.lt_u br_if $top
      end
    end)
  ;; n float32 at $src (a multiple of 4) → each rounded to bf16 and back, at $dst
  (func (export "round") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $x v128) (local $hi v128)
    local.get $src local.get $n i32.const 2 i32.shl i32.add local.set $end
    block $done
      local.get $src local.get $end i32.ge_u br_if $done
      loop $top
        local.get $dst
        local.get $src v128.load local.set $x${RNE}
        i32.const 16 i32x4.shl v128.store
        local.get $dst i32.const 16 i32.add local.set $dst
        local.get $src i32.const 16 i32.add local.tee $src
        local.get $end i32.lt_u br_if $top
      end
    end)
  ;; n bf16 at $src (a multiple of 8) → n float32 at $dst (each the top half of its float32)
  (func (export "from") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $x v128)
    local.get $src local.get $n i32.const 1 i32.shl i32.add local.set $end
    block $done
      local.get $src local.get $end i32.ge_u br_if $done
      loop $top
        local.get $src v128.load local.set $x
        local.get $dst local.get $x i32x4.extend_low_i16x8_u i32.const 16 i32x4.shl v128.store
        local.get $dst local.get $x i32x4.extend_high_i16x8_u i32.const 16 i32x4.shl v128.store offset=16
        local.get $dst i32.const 32 i32.add local.set $dst
        local.get $src i32.const 16 i32.add local.tee $src
        local.get $end i32.lt_u br_if $top
      end
    end))
`;

interface Bf16Exports {
  memory: WebAssembly.Memory;
  to(src: number, dst: number, n: number): void;
  round(src: number, dst: number, n: number): void;
  from(src: number, dst: number, n: number): void;
}

interface Bf16Kernels {
  k: Bf16Exports;
  f32: Float32Array;
  u16: Uint16Array;
}

let kernels: Bf16Kernels | null | undefined;
let enabled = true;

function get(): Bf16Kernels | null {
  if (!enabled) return null;
  if (kernels !== undefined) return kernels;
  if (!wasmAsmReady()) return null; // not cached: initWasmAsm() may still come
  try {
    const k = instantiate<Bf16Exports>(BF16_WAT, {}, 'bf16.wat');
    kernels = { k, f32: new Float32Array(k.memory.buffer), u16: new Uint16Array(k.memory.buffer) };
  } catch {
    kernels = null; // no SIMD in this engine: dtype.ts's JS loops
  }
  return kernels;
}

/** Turns the kernels off (the JS loops) or on again: for the tests and benchmarks that compare the two. */
export function setBf16Simd(on: boolean): void {
  enabled = on;
}

/** Whether the next conversion runs on the kernels. */
export function bf16SimdActive(): boolean {
  return get() !== null;
}

/**
 * Runs `kernel` over the first `n` values (a multiple of its lane count) block by block: `load` copies values
 * [j, j + m) into the module's memory, `kernel` converts them, `store` copies the result out to j.
 */
function blocks(n: number, load: (j: number, m: number) => void, kernel: (m: number) => void, store: (j: number, m: number) => void): number {
  for (let j = 0; j < n; j += BLOCK) {
    const m = Math.min(BLOCK, n - j);
    load(j, m);
    kernel(m);
    store(j, m);
  }
  return n;
}

/** float32 → bf16 (RNE, NaN quiet) for the first multiple of 8 values; returns how many it converted (0 without the kernels). */
export function toBf16Simd(src: Float32Array, out: Uint16Array): number {
  const kk = get();
  if (!kk) return 0;
  return blocks(src.length & ~7, (j, m) => kk.f32.set(src.subarray(j, j + m), F >> 2), (m) => kk.k.to(F, H, m), (j, m) => out.set(kk.u16.subarray(H >> 1, (H >> 1) + m), j));
}

/** float32 → rounded to bf16 and back, for the first multiple of 4 values; returns how many (0 without the kernels). */
export function roundToBf16Simd(src: Float32Array, out: Float32Array): number {
  const kk = get();
  if (!kk) return 0;
  return blocks(src.length & ~3, (j, m) => kk.f32.set(src.subarray(j, j + m), F >> 2), (m) => kk.k.round(F, O, m), (j, m) => out.set(kk.f32.subarray(O >> 2, (O >> 2) + m), j));
}

/** bf16 → float32 for the first multiple of 8 values; returns how many (0 without the kernels). */
export function fromBf16Simd(src: Uint16Array, out: Float32Array): number {
  const kk = get();
  if (!kk) return 0;
  return blocks(src.length & ~7, (j, m) => kk.u16.set(src.subarray(j, j + m), H >> 1), (m) => kk.k.from(H, O, m), (j, m) => out.set(kk.f32.subarray(O >> 2, (O >> 2) + m), j));
}
