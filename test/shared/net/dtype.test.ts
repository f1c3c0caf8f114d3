// The bf16 wire codec (shared/net/dtype.ts): property tests (fast-check, seeded) against a float64 reference rounding;
// its wasm SIMD path (shared/wasm/bf16.ts) against its JS loops, bit for bit.
import fc from 'fast-check';
import t from 'tap';
import { fromBf16, roundToBf16, toBf16 } from '../../../shared/net/dtype.ts';
import { initWasmAsm } from '../../../shared/wasm/asm.ts';
import { bf16SimdActive, setBf16Simd } from '../../../shared/wasm/bf16.ts';

const SEED = 0xbf16;
const RUNS = 20_000;
const f32bits = (bits: number) => new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0]!;
const bitsOfF32 = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0]!;
const enc = (x: number) => toBf16(Float32Array.of(x))[0]!;
const dec = (h: number) => fromBf16(Uint16Array.of(h))[0]!;
const isNaNBf16 = (h: number) => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;

/**
 * The nearest bf16 to a finite float32 by comparing distances in float64 (exact for these), ties to the even
 * pattern; the step past the largest finite bf16 counts as 2^128 (so that values from half a unit above it go to Inf).
 */
function reference(x: number): number {
  const bits = bitsOfF32(x);
  const lo = bits >>> 16; // toward zero
  const hi = lo + 1; // away from zero (same sign bit: lo's magnitude is below Inf)
  const value = (h: number) => ((h & 0x7fff) === 0x7f80 ? Math.sign(x) * 2 ** 128 : f32bits(h << 16));
  const dLo = Math.abs(x - value(lo));
  const dHi = Math.abs(value(hi) - x);
  if (dLo !== dHi) return dLo < dHi ? lo : hi;
  return lo % 2 === 0 ? lo : hi;
}

const finiteF32 = fc.float({ noNaN: true, noDefaultInfinity: true });

t.test('every finite float32 encodes to the nearest bf16, ties to even (float64 reference)', async (t) => {
  fc.assert(fc.property(finiteF32, (x) => enc(x) === reference(x)), { seed: SEED, numRuns: RUNS });
  // and on raw bit patterns, which reach every exponent and every pattern of the dropped bits evenly
  const finiteBits = fc.integer({ min: 0, max: 0xffffffff }).filter((b) => (b & 0x7f800000) !== 0x7f800000);
  fc.assert(fc.property(finiteBits, (b) => enc(f32bits(b)) === reference(f32bits(b))), { seed: SEED + 1, numRuns: RUNS });
  t.pass(`${2 * RUNS} values`);
});

t.test('a bf16-representable value goes through exactly, both ways', async (t) => {
  const bf = fc.integer({ min: 0, max: 0xffff }).filter((h) => !isNaNBf16(h));
  fc.assert(fc.property(bf, (h) => enc(dec(h)) === h && Object.is(roundToBf16(Float32Array.of(dec(h)))[0], dec(h))), { seed: SEED, numRuns: RUNS });
  t.equal(enc(0), 0x0000, '+0');
  t.equal(enc(-0), 0x8000, '−0 keeps its sign');
  t.equal(enc(Infinity), 0x7f80, '+Inf');
  t.equal(enc(-Infinity), 0xff80, '−Inf');
  t.equal(dec(0xff80), -Infinity);
});

t.test('the relative error of a normal number is at most 2^-8', async (t) => {
  const normal = finiteF32.filter((x) => Math.abs(x) >= 2 ** -126 && Math.abs(x) < 3.3e38);
  fc.assert(fc.property(normal, (x) => Math.abs(dec(enc(x)) - x) <= 2 ** -8 * Math.abs(x)), { seed: SEED, numRuns: RUNS });
  // the worst case is a tie just above a power of two: 1 + 2^-8 is halfway between 1 and 1 + 2^-7
  t.equal(dec(enc(1 + 2 ** -8)), 1, 'a tie below goes to the even pattern (1)');
  t.equal(dec(enc(1 + 3 * 2 ** -8)), 1 + 2 ** -6, 'a tie above an odd pattern goes up to the even one');
});

t.test('exact ties go to the even pattern; just above or below a tie, to the nearer', async (t) => {
  // a finite bf16 pattern h and the float32 halfway to h+1 in magnitude
  const pattern = fc.integer({ min: 0, max: 0xffff }).filter((h) => (h & 0x7fff) < 0x7f7f);
  fc.assert(fc.property(pattern, (h) => {
    const tie = f32bits((h << 16) | 0x8000);
    const even = h % 2 === 0 ? h : h + 1;
    return enc(tie) === even && enc(f32bits((h << 16) | 0x8001)) === h + 1 && enc(f32bits((h << 16) | 0x7fff)) === h;
  }), { seed: SEED, numRuns: RUNS });
  t.equal(enc(f32bits(0x7f7f8000)), 0x7f80, 'halfway past the largest finite bf16 (odd pattern 0x7f7f): to +Inf');
  t.equal(enc(f32bits(0x7f7f7fff)), 0x7f7f, 'just below that: the largest finite bf16');
});

t.test('NaN stays NaN (with its sign), also when its payload lies only in the dropped bits', async (t) => {
  const nanBits = fc.integer({ min: 0, max: 0xffffffff }).filter((b) => (b & 0x7fffffff) > 0x7f800000);
  fc.assert(fc.property(nanBits, (b) => {
    const h = enc(f32bits(b));
    const r = roundToBf16(Float32Array.of(f32bits(b)))[0]!;
    return isNaNBf16(h) && h >>> 15 === b >>> 31 && Number.isNaN(dec(h)) && Number.isNaN(r) && bitsOfF32(r) >>> 31 === b >>> 31;
  }), { seed: SEED, numRuns: RUNS });
  t.ok(isNaNBf16(enc(f32bits(0x7f800001))), 'a signalling NaN with payload 1: NaN, not Inf');
  t.ok(isNaNBf16(enc(f32bits(0xff800001))));
});

t.test('roundToBf16 equals encode then decode, and works in place', async (t) => {
  fc.assert(fc.property(fc.float32Array({ maxLength: 64 }), (a) => {
    const viaWire = fromBf16(toBf16(a));
    const direct = roundToBf16(a);
    const into = roundToBf16(a, new Float32Array(a.length));
    const same = (x: Float32Array) => x.every((v, i) => Object.is(v, viaWire[i]) || (Number.isNaN(v) && Number.isNaN(viaWire[i]!)));
    const copy = Float32Array.from(a);
    roundToBf16(copy, copy);
    return same(direct) && same(into) && same(copy);
  }), { seed: SEED, numRuns: 2000 });
  t.pass();
});

t.test('zero-copy: encodes into a section of a larger buffer and decodes views at an offset', async (t) => {
  const frame = new ArrayBuffer(64 + 4 * 10);
  const src = new Float32Array(frame, 64, 10); // a section at byte 64 of a received frame
  src.set([1, -2.5, 3.140625, 1e-3, -0, Infinity, 65504, 1 / 3, -7, 0.1]);
  const out = new Uint16Array(new ArrayBuffer(100), 6, 10); // an outgoing section at an even, non-multiple-of-4 offset
  t.equal(toBf16(src, out), out, 'writes into the given view and returns it');
  t.equal(out.buffer.byteLength, 100);
  const back = new Float32Array(new ArrayBuffer(48), 8, 10);
  t.equal(fromBf16(out, back), back);
  t.same([...back.slice(0, 4)], [1, -2.5, 3.140625, dec(enc(1e-3))]);
  t.ok(Object.is(back[4], -0) && back[5] === Infinity);
  t.throws(() => toBf16(src, new Uint16Array(9)), RangeError, 'a view of the wrong length is refused');
  t.throws(() => fromBf16(out, new Float32Array(11)), RangeError);
});

t.test('the wasm SIMD conversions (shared/wasm/bf16.ts) give the JS loops\' bits, for every length and every kind of value', async (t) => {
  t.equal(bf16SimdActive(), false, 'before initWasmAsm(): the JS loops');
  await initWasmAsm();
  t.equal(bf16SimdActive(), true, 'after it: the SIMD kernels');
  // random bit patterns (every exponent, NaNs with payloads anywhere, ±Inf, subnormals) plus ties and the edges
  let seed = 0x5eed;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  const edges = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7f800001, 0xff800001, 0x7fc00000, 0xffffffff, 0x7f7f8000, 0x7f7f7fff, 0x3f808000, 0x3f818000, 0x00008000, 0x00018000, 0x807f8000];
  for (const n of [1, 7, 8, 9, 16_383, 16_384, 16_385, 40_003]) {
    const bits = Uint32Array.from({ length: n }, (_, i) => (i < edges.length ? edges[i]! : next()));
    const x = new Float32Array(bits.buffer);
    setBf16Simd(false);
    const h0 = toBf16(x);
    const r0 = new Uint32Array(roundToBf16(x).buffer);
    const d0 = new Uint32Array(fromBf16(h0).buffer);
    setBf16Simd(true);
    const h1 = toBf16(x);
    const r1 = new Uint32Array(roundToBf16(x).buffer);
    const d1 = new Uint32Array(fromBf16(h1).buffer);
    const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => v === b[i]);
    t.ok(same(h0, h1) && same(r0, r1) && same(d0, d1), `${n} values: toBf16, roundToBf16 and fromBf16 bit for bit`);
  }
  // into views of a larger buffer, at an offset: a sender's section of an outgoing frame
  const x = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e-3);
  const buf = new Uint16Array(1016);
  toBf16(x, buf.subarray(8, 1008));
  t.same([...buf.subarray(8, 1008)], [...toBf16(x)], 'into a view at an offset');
  t.equal(buf[7], 0, 'nothing written before the view');
  t.equal(buf[1008], 0, 'nor after it');
});
