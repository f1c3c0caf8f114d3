// Reduced precision on the wire: float32 ↔ bfloat16 (round to nearest, ties to even; NaN stays NaN, ±Inf kept).
//
// bf16 is the top 16 bits of a float32: the same sign and 8-bit exponent, 7 of the 23 fraction bits. Encoding
// rounds the dropped 16 bits to nearest, ties to the even result; the relative error of a normal number is at most
// 2^-8, and a number at or beyond the largest bf16 (≈ 3.39e38) plus half a unit rounds to ±Inf, as RNE does.
// Both directions read and write typed-array views in place (no intermediate copies), so a sender can encode
// straight into a section of an outgoing buffer and a receiver decode a section of a received frame.
// `--wire-dtype` (shared/cli/options.ts, TrainConfig.wire_dtype) chooses it for gradients; weights stay fp32.
// Where the WAT assembler is loaded, the bulk of each conversion runs as wasm SIMD (shared/wasm/bf16.ts), the rest
// in the loops below; the bits are the same (test/shared/net/dtype.test.ts).
import { fromBf16Simd, roundToBf16Simd, toBf16Simd } from '../wasm/bf16.ts';

/** Bytes per value on the wire for each wire dtype. */
export const WIRE_DTYPE_BYTES = { fp32: 4, bf16: 2 } as const;

/** A 32-bit view of a Float32Array's bytes (the same memory). */
const bitsOf = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/**
 * float32 → bf16 bit patterns, round to nearest even, into `out` (a new Uint16Array by default; it may be a view
 * into a larger buffer). A NaN becomes a quiet NaN with its sign (a NaN whose payload lies only in the dropped
 * bits would otherwise truncate to ±Inf); ±Inf and ±0 keep their sign.
 */
export function toBf16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (out.length !== src.length) throw new RangeError(`toBf16: ${src.length} values into a Uint16Array of ${out.length}`);
  const bits = bitsOf(src);
  for (let i = toBf16Simd(src, out); i < bits.length; i++) {
    const b = bits[i]!;
    if ((b & 0x7fffffff) > 0x7f800000) out[i] = (b >>> 16) | 0x0040;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16; // +half−1, +1 more when the kept part is odd: ties go to even
  }
  return out;
}

/** bf16 bit patterns → float32 (exact: every bf16 is a float32), into `out` (a new Float32Array by default). */
export function fromBf16(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length !== src.length) throw new RangeError(`fromBf16: ${src.length} values into a Float32Array of ${out.length}`);
  const bits = bitsOf(out);
  for (let i = fromBf16Simd(src, out); i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}

/** What a receiver of `src` sent as bf16 holds: each value rounded to bf16 and back, into `out` (may be `src`). */
export function roundToBf16(src: Float32Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length !== src.length) throw new RangeError(`roundToBf16: ${src.length} values into a Float32Array of ${out.length}`);
  const from = bitsOf(src);
  const to = bitsOf(out);
  for (let i = roundToBf16Simd(src, out); i < from.length; i++) {
    const b = from[i]!;
    to[i] = (b & 0x7fffffff) > 0x7f800000 ? (b | 0x00400000) & 0xffff0000 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
  }
  return out;
}
