// The reduce's SIMD passes (shared/wasm/reduce.ts) against the JS passes: the same bits for every size and chunk count.
import t from 'tap';
import { initWasmAsm } from '../../../shared/wasm/asm.ts';
import { allFinite, reduceSimdActive, setReduceSimd, sumOfSquares64, sumOfSquaresInOrder, weightedSumInto } from '../../../shared/wasm/reduce.ts';
import { weightedSum } from '../../../shared/parallel/reduce.ts';
import { randomFloats } from '../../helpers.ts';

/** Reproducible float32 values (test/helpers.ts randomFloats) in [-scale, scale), with zeros, large values and subnormals mixed in. */
function values(n: number, seed: number, scale: number): Float32Array {
  const out = randomFloats(n, seed, scale);
  const u = randomFloats(n, seed + 1);
  for (let i = 0; i < n; i++) if (i % 17 === 0) out[i] = 0;
  else if (i % 29 === 0) out[i] = u[i]! * 0.5e30;
  else if (i % 31 === 0) out[i] = u[i]! * 0.5e-40;
  return out;
}

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** The index of the first value whose bits differ, or -1. */
function firstDiff(a: Float32Array, b: Float32Array): number {
  const x = bits(a);
  const y = bits(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return x.length === y.length ? -1 : Math.min(x.length, y.length);
}

/** f() with the kernels on, then off: [simd, js]. */
function both<T>(f: () => T): [T, T] {
  setReduceSimd(true);
  const simd = f();
  setReduceSimd(false);
  try {
    return [simd, f()];
  } finally {
    setReduceSimd(true);
  }
}

// 0, below one vector, the scalar tail, one block and one over, several blocks with a tail, a paper-size matrix
const SIZES = [0, 1, 3, 4, 7, 16384, 16385, 2 * 16384 + 7, 384 * 1152 + 3];

t.test('the kernels run once the assembler is loaded, not before', async (t) => {
  // (a fresh module: this file's first use)
  t.equal(reduceSimdActive(), false, 'before initWasmAsm(): the JS passes');
  await initWasmAsm();
  t.equal(reduceSimdActive(), true, 'after it: the SIMD kernels');
  setReduceSimd(false);
  t.equal(reduceSimdActive(), false, 'turned off: JS');
  setReduceSimd(true);
});

t.test('sumOfSquares64: the bits of the JS pass at every size', async (t) => {
  await initWasmAsm();
  for (const n of SIZES) {
    const x = values(n, 11 + n, 3);
    const [s, j] = both(() => sumOfSquares64(x));
    t.ok(Object.is(s, j), `n = ${n}: ${s} = ${j}`);
    if (n > 8) t.not(s, 0, `n = ${n}: a real sum`);
  }
  // a subarray that does not start at a buffer's start, as the wire's sections do
  const big = values(200_003, 5, 1);
  const sub = big.subarray(9, 199_990);
  const [s, j] = both(() => sumOfSquares64(sub));
  t.ok(Object.is(s, j), 'a view at an odd offset');
  // the order is JS's: four interleaved sums; moving a large value to another lane changes the last bits of both alike
  const y = values(70_001, 3, 1);
  y[1] = 1e19;
  const [s2, j2] = both(() => sumOfSquares64(y));
  t.ok(Object.is(s2, j2), 'a value that dwarfs the rest');
});

t.test('sumOfSquares64: NaN or ±Inf anywhere makes the sum non-finite', async (t) => {
  await initWasmAsm();
  for (const [at, v] of [[5, NaN], [70_000, Infinity], [131_073, -Infinity], [131_074, NaN]] as const) {
    const x = values(131_075, 7, 1); // 131_072 in the kernels' (8) blocks, 3 in the tail
    x[at] = v;
    const [s, j] = both(() => sumOfSquares64(x));
    t.notOk(Number.isFinite(s), `${v} at ${at}: simd ${s}`);
    t.notOk(Number.isFinite(j), `${v} at ${at}: js ${j}`);
  }
});

t.test('sumOfSquaresInOrder: the bits of a plain JS loop (one value after the other), continued from an accumulator', async (t) => {
  await initWasmAsm();
  const plain = (x: Float32Array, acc = 0) => {
    for (let i = 0; i < x.length; i++) acc += x[i]! * x[i]!;
    return acc;
  };
  for (const n of SIZES) {
    const x = values(n, 21 + n, 3);
    const [s] = both(() => sumOfSquaresInOrder(x));
    t.ok(Object.is(s, plain(x)), `n = ${n}: ${s}`);
    const [c] = both(() => sumOfSquaresInOrder(x, 0.1234));
    t.ok(Object.is(c, plain(x, 0.1234)), `n = ${n}, continued from 0.1234`);
  }
  // the order matters and is kept: the four-lane sum of the same values differs in its last bits
  const y = values(40_000, 9, 1);
  y[0] = 1e10;
  t.ok(Object.is(sumOfSquaresInOrder(y), plain(y)), 'a large first value: the sequential bits');
  t.not(sumOfSquaresInOrder(y), sumOfSquares64(y), 'and not the interleaved sum (the test can tell the orders apart)');
  const z = values(20_000, 4, 1);
  z[17_000] = NaN;
  t.notOk(Number.isFinite(sumOfSquaresInOrder(z)), 'NaN in a block: non-finite');
});

t.test('allFinite: false for a NaN or ±Inf anywhere (a block, the tail), true for every finite value', async (t) => {
  await initWasmAsm();
  for (const on of [true, false]) {
    setReduceSimd(on);
    const how = on ? 'simd' : 'js';
    for (const n of [0, 1, 5, 16_384, 16_387, 50_001]) {
      const x = values(n, 31 + n, 1);
      if (n > 3) x.set([3.4028234663852886e38, -3.4028234663852886e38, 1e-45], 1); // the largest floats and the smallest subnormal
      t.equal(allFinite(x), true, `${how}, n = ${n}: finite`);
      for (const at of n ? [0, n - 1, n >> 1] : []) {
        for (const v of [NaN, Infinity, -Infinity]) {
          const y = x.slice();
          y[at] = v;
          if (!t.equal(allFinite(y), false, `${how}, n = ${n}: ${v} at ${at}`)) return;
        }
      }
    }
  }
  setReduceSimd(true);
});

t.test('weightedSumInto: the bits of the JS passes for 1 to 4 chunks, weights that float32 cannot hold', async (t) => {
  await initWasmAsm();
  const WEIGHTS = [[1], [1 / 3, 2 / 3], [0.1, 0.3, 0.6], [2 / 7, 1 / 7, 3 / 7, 1 / 7]];
  for (const n of SIZES) {
    for (const w of WEIGHTS) {
      const arrays = w.map((_, c) => values(n, 100 * c + n, 2 + c));
      const [s, j] = both(() => {
        const out = new Float32Array(n).fill(123); // stale values: every one must be overwritten
        weightedSumInto(arrays, w, out);
        return out;
      });
      t.equal(firstDiff(s, j), -1, `n = ${n}, ${w.length} chunk(s): every value's bits equal`);
    }
  }
  // and a mean that is what it says: (a + b) / 2 of exactly representable values
  const a = Float32Array.from({ length: 65_541 }, (_, i) => i);
  const b = Float32Array.from({ length: 65_541 }, (_, i) => 2 * i);
  const out = new Float32Array(a.length);
  weightedSumInto([a, b], [0.5, 0.5], out);
  t.equal(out[65_540], 1.5 * 65_540, 'the last value (the tail)');
  t.equal(out[12_345], 1.5 * 12_345, 'a value in a block');
});

t.test('weightedSum: refuses arrays of another length (no stale block values in the mean)', async (t) => {
  await initWasmAsm();
  const a = [new Float32Array(8)];
  const b = [new Float32Array(7)];
  t.throws(() => weightedSum([a, b], [0.5, 0.5]), RangeError);
});
