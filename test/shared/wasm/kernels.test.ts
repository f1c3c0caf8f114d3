// Tests the supplied/replaced wasm kernels against the cpu backend (values, gradients, leaks).
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmKernels, unregisterWasmKernels, WASM_KERNELS } from '../../../shared/wasm/kernels.ts';
import { initWasmAsm } from '../../../shared/wasm/asm.ts';

type Host = { data: number[]; shape: number[] };

/** Deterministic PRNG (mulberry32) so failures are reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = rng(1234);

/** Random float values in [-1, 1) for a shape. */
function randData(shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = rand() * 2 - 1;
  return d;
}

/** Downloads a tensor to a host copy and disposes it. */
function host(x: tf.Tensor): Host {
  const r = { data: Array.from(x.dataSync()), shape: x.shape.slice() };
  x.dispose();
  return r;
}

/** Runs `f` on the cpu backend and then on the wasm backend; returns both host results. */
async function onBoth<T>(f: () => T): Promise<{ cpu: T; wasm: T }> {
  await tf.setBackend('cpu');
  const cpu = tf.tidy(() => f() as unknown as tf.TensorContainer) as unknown as T;
  await tf.setBackend('wasm');
  const wasm = tf.tidy(() => f() as unknown as tf.TensorContainer) as unknown as T;
  return { cpu, wasm };
}

/** Asserts two host tensors have equal shapes and values within `atol + rtol*|ref|`. */
function close(tt: Tap, got: Host, want: Host, msg: string, atol = 1e-4, rtol = 1e-4): void {
  tt.same(got.shape, want.shape, `${msg}: shape`);
  let worst = 0;
  let worstIdx = -1;
  for (let i = 0; i < want.data.length; i++) {
    const err = Math.abs(got.data[i] - want.data[i]) - rtol * Math.abs(want.data[i]);
    if (!(err <= worst)) {
      worst = err;
      worstIdx = i;
      if (Number.isNaN(err)) break;
    }
  }
  tt.ok(
    got.data.length === want.data.length && worst <= atol,
    `${msg}: max excess error ${worst} at ${worstIdx} (got ${got.data[worstIdx]}, want ${want.data[worstIdx]})`,
  );
}

/** The tap subtest object type (argument of the `t.test` callback). */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

/**
 * Computes `f` on both backends (inputs re-created from host arrays inside `f`) and compares.
 * `ref`, when given, replaces `f` for the cpu reference.
 */
async function compare(
  tt: Tap, msg: string, f: () => tf.Tensor | tf.Tensor[], atol = 1e-4, ref?: () => tf.Tensor | tf.Tensor[],
): Promise<void> {
  const toHost = (out: tf.Tensor | tf.Tensor[]): Host[] =>
    (Array.isArray(out) ? out : [out]).map((x) => ({ data: Array.from(x.dataSync()), shape: x.shape.slice() }));
  const r = await onBoth(() => toHost(tf.getBackend() === 'cpu' && ref != null ? ref() : f()));
  tt.equal(r.wasm.length, r.cpu.length, `${msg}: output count`);
  r.cpu.forEach((c, i) => close(tt, r.wasm[i], c, `${msg}[${i}]`, atol));
}

/** Live C++ tensor-id tracking on the wasm module, to catch leaked temporary view ids. */
interface WasmInternals {
  wasm: { tfjs: { registerTensor(id: number, size: number, off: number): void; disposeData(id: number): void } };
  numDataIds(): number;
}

t.before(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  await tf.setBackend('cpu');
  await tf.ready();
  await tf.setBackend('wasm');
  registerWasmKernels();
  registerWasmKernels(); // idempotent
});

t.test('registration', async (tt) => {
  for (const name of WASM_KERNELS) tt.ok(tf.getKernel(name, 'wasm'), `${name} registered on wasm`);
  tt.ok(WASM_KERNELS.includes('UnsortedSegmentSum'));
  unregisterWasmKernels();
  tt.notOk(tf.getKernel('UnsortedSegmentSum', 'wasm'), 'unregister removes UnsortedSegmentSum');
  tt.ok(tf.getKernel('BatchMatMul', 'wasm'), 'unregister restores stock BatchMatMul');
  registerWasmKernels({ kernels: ['UnsortedSegmentSum'] });
  const stockBmm = tf.getKernel('BatchMatMul', 'wasm');
  tt.ok(tf.getKernel('UnsortedSegmentSum', 'wasm'), 'subset: UnsortedSegmentSum installed');
  registerWasmKernels();
  tt.not(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc, stockBmm?.kernelFunc, 'BatchMatMul replaced again');
  tt.ok(tf.getKernel('UnsortedSegmentSum', 'wasm'), 're-registered');
});

t.test('BatchMatMul matches cpu', async (tt) => {
  /** [a shape, b shape] for transposeA=false/transposeB=false; transposed variants derived. */
  const base: Array<[number[], number[]]> = [
    [[65, 33], [33, 17]],
    [[1, 9], [9, 1]],
    [[5, 65, 33], [5, 33, 17]],
    [[2, 3, 17, 9], [2, 3, 9, 11]],
    // batch broadcasting
    [[4, 7, 5], [5, 6]],
    [[7, 5], [4, 5, 6]],
    [[1, 7, 5], [3, 5, 6]],
    [[3, 7, 5], [1, 5, 6]],
    [[2, 1, 7, 5], [1, 3, 5, 6]],
    [[2, 3, 7, 5], [3, 5, 6]],
    // a few rows against a large b, computed swapped: a·bᵀ as (b·aᵀ)ᵀ, a new b's a·b as (bᵀ·aᵀ)ᵀ (linear layers at small batches)
    [[4, 96], [96, 80]],
    [[2, 3, 96], [96, 80]],
    [[3, 96], [1, 96, 80]],
    [[1, 2, 2, 64], [64, 50]],
  ];
  const swap = (s: number[]): number[] => [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]];
  for (const [sa, sb] of base) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const aShape = ta ? swap(sa) : sa;
        const bShape = tb ? swap(sb) : sb;
        const ad = randData(aShape);
        const bd = randData(bShape);
        // Reference: cpu with both operands explicitly broadcast to the full batch shape (the cpu
        // kernel indexes mixed broadcasts like [2,1]x[1,3] modulo-wise, not numpy-style).
        const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(aShape.slice(0, -2), bShape.slice(0, -2));
        const full = (x: tf.Tensor, s: number[]): tf.Tensor =>
          outBatch.length === 0 ? x : tf.broadcastTo(x, [...outBatch, ...s.slice(-2)]);
        await compare(
          tt, `matMul ${aShape} x ${bShape} tA=${ta} tB=${tb}`,
          () => tf.matMul(tf.tensor(ad, aShape), tf.tensor(bd, bShape), ta, tb),
          1e-4,
          () => tf.matMul(full(tf.tensor(ad, aShape), aShape), full(tf.tensor(bd, bShape), bShape), ta, tb),
        );
      }
    }
  }
  // Copy-based slice mode gives the same results.
  registerWasmKernels({ matMulSlices: 'copy' });
  const ad = randData([3, 2, 9, 7]);
  const bd = randData([3, 2, 5, 9]);
  await compare(tt, 'matMul copy mode', () => tf.matMul(tf.tensor(ad, [3, 2, 9, 7]), tf.tensor(bd, [3, 2, 5, 9]), true, true));
  registerWasmKernels({ matMulSlices: 'view' });
});

t.test('few-row products: swapped equals the plain path to the bit, on a new b and on one used again', async (tt) => {
  await tf.setBackend('wasm');
  const cases: Array<[number[], number[], boolean]> = [
    [[16, 384], [384, 1536], false], // a linear layer's forward, 2 sequences of 8
    [[16, 1536], [1536, 384], false],
    [[2, 8, 384], [384, 1152], false], // rows from a batch
    [[16, 1536], [384, 1536], true], // its input gradient
    [[32, 384], [1152, 384], true],
  ];
  for (const [sa, sb, tb] of cases) {
    const a = tf.tensor(randData(sa), sa);
    const bd = randData(sb);
    const run = (swap: boolean): Float32Array[] => {
      registerWasmKernels({ swapSmallRows: swap });
      const b = tf.tensor(bd, sb);
      const outs = [0, 1, 2].map(() => tf.matMul(a, b, false, tb)); // a new b, then the same b twice
      const host = outs.map((o) => o.dataSync() as Float32Array);
      tf.dispose([b, ...outs]);
      return host;
    };
    const plain = run(false);
    const swapped = run(true);
    const label = `${sa} x ${sb}${tb ? '^T' : ''}`;
    tt.same(swapped[0]!.length, plain[0]!.length, `${label}: size`);
    for (let i = 0; i < 3; i++) {
      let same = swapped[i]!.length === plain[i]!.length;
      for (let j = 0; same && j < plain[i]!.length; j++) same = Object.is(swapped[i]![j], plain[i]![j]);
      tt.ok(same, `${label}, use ${i + 1} of b: equal to the bit`);
    }
    a.dispose();
  }
  registerWasmKernels({ swapSmallRows: true });
});

t.test('the products\' SIMD transposes equal the stock Transpose kernel\'s to the bit, and replace it', async (tt) => {
  await initWasmAsm(); // the assembler the SIMD transpose is built with (initBackend() loads it)
  await tf.setBackend('wasm');
  // products that transpose: a few rows against a new b (b turned), aᵀ·b (a turned), a·bᵀ batched (b turned per entry)
  const cases: Array<[number[], number[], boolean, boolean]> = [
    [[8, 384], [384, 1152], false, false],
    [[6, 37], [37, 333], false, false], // edges that are not a multiple of 4
    [[16, 130], [16, 66], true, false],
    [[3, 5, 9], [3, 7, 9], false, true],
    [[2, 4, 4], [2, 4, 6], true, false],
    [[33, 5], [33, 7], true, false],
  ];
  const stock = tf.getKernel('Transpose', 'wasm')!;
  let stockCalls = 0;
  const data = cases.map(([sa, sb]) => [randData(sa), randData(sb)] as const);
  const run = (simd: boolean): Float32Array[] => {
    registerWasmKernels({ simdTranspose: simd });
    stockCalls = 0;
    return cases.map(([sa, sb, ta, tb], i) => {
      const a = tf.tensor(data[i]![0], sa);
      const b = tf.tensor(data[i]![1], sb);
      const o = tf.matMul(a, b, ta, tb);
      const d = o.dataSync() as Float32Array;
      tf.dispose([a, b, o]);
      return d;
    });
  };
  tf.unregisterKernel('Transpose', 'wasm');
  tf.registerKernel({ ...stock, kernelFunc: (args) => (stockCalls++, stock.kernelFunc(args)) });
  try {
    const plain = run(false);
    const plainCalls = stockCalls;
    const simd = run(true);
    tt.ok(plainCalls > 0, `the stock kernel does the products' transposes when switched off (${plainCalls} calls)`);
    tt.equal(stockCalls, 0, 'the SIMD transpose does all of them');
    cases.forEach(([sa, sb, ta, tb], i) => {
      let same = simd[i]!.length === plain[i]!.length;
      for (let j = 0; same && j < plain[i]!.length; j++) same = Object.is(simd[i]![j], plain[i]![j]);
      tt.ok(same, `${sa}${ta ? 'ᵀ' : ''} × ${sb}${tb ? 'ᵀ' : ''}: equal to the bit`);
    });
  } finally {
    tf.unregisterKernel('Transpose', 'wasm');
    tf.registerKernel(stock);
    registerWasmKernels({ simdTranspose: true });
  }
  // and the values are the transpose: against cpu
  for (const [sa, sb, ta, tb] of cases) {
    const ad = randData(sa);
    const bd = randData(sb);
    const { cpu, wasm } = await onBoth(() => host(tf.matMul(tf.tensor(ad, sa), tf.tensor(bd, sb), ta, tb)));
    close(tt, wasm, cpu, `${sa}${ta ? 'ᵀ' : ''} × ${sb}${tb ? 'ᵀ' : ''} vs cpu`);
  }
});

t.test('Slice matches cpu', async (tt) => {
  const shape = [7, 9, 11];
  const d = randData(shape);
  const cases: Array<[number[], number[]]> = [
    [[0, 0, 0], [7, 9, 11]],
    [[2, 0, 0], [3, 9, 11]],
    [[0, 3, 0], [7, 4, 11]],
    [[0, 0, 3], [7, 9, 5]],
    [[1, 2, 3], [4, 5, 6]],
    [[6, 8, 10], [1, 1, 1]],
    [[0, 0, 1], [-1, -1, 10]],
    [[0, 4, 0], [-1, 1, -1]],
    [[3, 0, 0], [0, 9, 11]],
  ];
  for (const [begin, size] of cases) {
    await compare(tt, `slice [${shape}] begin=${begin} size=${size}`, () => tf.slice(tf.tensor(d, shape), begin, size));
  }
  const d1 = randData([100]);
  await compare(tt, 'slice rank 1', () => tf.slice(tf.tensor(d1, [100]), 17, 40));
  const d4 = randData([3, 4, 5, 70]);
  await compare(tt, 'slice rank 4 inner', () => tf.slice(tf.tensor(d4, [3, 4, 5, 70]), [1, 1, 1, 10], [2, 3, 3, 50]));
  const d5 = randData([2, 3, 2, 3, 4]);
  await compare(tt, 'slice rank 5', () => tf.slice(tf.tensor(d5, [2, 3, 2, 3, 4]), [1, 0, 1, 1, 1], [1, 3, 1, 2, 2]));
  const ints = Array.from({ length: 60 }, (_, i) => i * 3 - 7);
  await compare(tt, 'slice int32', () => tf.slice(tf.tensor(ints, [6, 10], 'int32'), [1, 2], [3, 5]));
  await compare(tt, 'slice bool', () =>
    tf.slice(tf.tensor(ints.map((v) => v % 2 === 0), [6, 10], 'bool'), [1, 2], [3, 5]),
  );
});

t.test('Unpack matches cpu', async (tt) => {
  const shape = [4, 5, 6];
  const d = randData(shape);
  for (const axis of [0, 1, 2, -1]) {
    await compare(tt, `unstack axis ${axis}`, () => tf.unstack(tf.tensor(d, shape), axis));
  }
  const ints = Array.from({ length: 12 }, (_, i) => i);
  await compare(tt, 'unstack int32', () => tf.unstack(tf.tensor(ints, [3, 4], 'int32'), 1));
});

t.test('SplitV matches cpu', async (tt) => {
  const shape = [3, 10, 12];
  const d = randData(shape);
  await compare(tt, 'split uneven axis 1', () => tf.split(tf.tensor(d, shape), [3, 5, 2], 1));
  await compare(tt, 'split uneven axis -1', () => tf.split(tf.tensor(d, shape), [1, 7, 4], -1));
  await compare(tt, 'split with -1 size', () => tf.split(tf.tensor(d, shape), [2, -1], 0));
  await compare(tt, 'split into 3 along last (qkv)', () => tf.split(tf.tensor(d, shape), 3, 2));
  const d2 = randData([2, 5]);
  await compare(tt, 'split into 2 along axis 0 (1 each)', () => tf.split(tf.tensor(d2, [2, 5]), 2, 0));
});

t.test('StridedSlice matches cpu', async (tt) => {
  const shape = [6, 7, 8];
  const d = randData(shape);
  await compare(tt, 'stridedSlice simple', () => tf.stridedSlice(tf.tensor(d, shape), [1, 2, 3], [4, 6, 8], [1, 1, 1]));
  await compare(tt, 'stridedSlice dim0', () => tf.stridedSlice(tf.tensor(d, shape), [2, 0, 0], [5, 7, 8], [1, 1, 1]));
  await compare(tt, 'stridedSlice identity', () => tf.stridedSlice(tf.tensor(d, shape), [0, 0, 0], [6, 7, 8], [1, 1, 1]));
  await compare(tt, 'stridedSlice shrink', () =>
    tf.stridedSlice(tf.tensor(d, shape), [0, 3, 0], [6, 4, 8], [1, 1, 1], 0, 0, 0, 0, 2),
  );
  await compare(tt, 'stridedSlice strided (stock path)', () =>
    tf.stridedSlice(tf.tensor(d, shape), [0, 1, 7], [6, 7, 0], [2, 3, -2]),
  );
});

t.test('UnsortedSegmentSum matches cpu', async (tt) => {
  const d1 = randData([10]);
  const ids1 = [0, 2, 2, 1, 0, 4, 4, 4, 3, 0];
  await compare(tt, 'uss 1-D', () => tf.unsortedSegmentSum(tf.tensor(d1, [10]), tf.tensor1d(ids1, 'int32'), 5));
  const d2 = randData([12, 7]);
  const ids2 = [3, 3, 0, 1, 3, 5, 5, 0, 2, 6, 6, 6];
  await compare(tt, 'uss 2-D rows repeated ids', () =>
    tf.unsortedSegmentSum(tf.tensor(d2, [12, 7]), tf.tensor1d(ids2, 'int32'), 8),
  );
  const d3 = randData([9, 4, 5]);
  const ids3 = [1, 0, 1, 1, 2, 0, 2, 2, 1];
  await compare(tt, 'uss 3-D', () => tf.unsortedSegmentSum(tf.tensor(d3, [9, 4, 5]), tf.tensor1d(ids3, 'int32'), 3));
  const idsOut = [1, -1, 3, 7, 0, 2, 9, 1, 0];
  await compare(tt, 'uss ids out of range ignored', () =>
    tf.unsortedSegmentSum(tf.tensor(d3, [9, 4, 5]), tf.tensor1d(idsOut, 'int32'), 4),
  );
  const ids2d = Array.from({ length: 36 }, (_, i) => (i * 7) % 3);
  // Rank-2 ids: TF semantics (segments over the flattened id positions); the cpu kernel cannot
  // do this, so its reference is the equivalent 1-D problem.
  await compare(
    tt, 'uss rank-2 ids on 3-D data (TF semantics)',
    () => tf.unsortedSegmentSum(tf.tensor(d3, [9, 4, 5]), tf.tensor2d(ids2d, [9, 4], 'int32') as unknown as tf.Tensor1D, 3),
    1e-4,
    () => tf.unsortedSegmentSum(tf.tensor(d3, [36, 5]), tf.tensor1d(ids2d, 'int32'), 3),
  );
  const big = randData([768, 128]);
  const bigIds = Array.from({ length: 768 }, () => Math.floor(rand() * 65));
  await compare(tt, 'uss embedding-sized', () =>
    tf.unsortedSegmentSum(tf.tensor(big, [768, 128]), tf.tensor1d(bigIds, 'int32'), 65),
  );
});

t.test('gradients through gather + matMul(transposes) + split match cpu', async (tt) => {
  const V = 11;
  const B = 3;
  const T = 5;
  const C = 8;
  const embD = randData([V, C]);
  const wqkvD = randData([C, 3 * C]);
  const woD = randData([C, C]); // used transposed
  const idx = Array.from({ length: B * T }, () => Math.floor(rand() * V));
  const r = await onBoth(() => {
    const emb = tf.tensor(embD, [V, C]);
    const wqkv = tf.tensor(wqkvD, [C, 3 * C]);
    const wo = tf.tensor(woD, [C, C]);
    const ids = tf.tensor1d(idx, 'int32');
    const f = (e: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor): tf.Scalar => {
      const x = tf.gather(e, ids).reshape([B, T, C]);
      const qkv = tf.matMul(x.reshape([B * T, C]), w1).reshape([B, T, 3 * C]);
      const [q, k, v] = tf.split(qkv, 3, 2);
      const qh = q.reshape([B, T, 2, C / 2]).transpose([0, 2, 1, 3]);
      const kh = k.reshape([B, T, 2, C / 2]).transpose([0, 2, 1, 3]);
      const vh = v.reshape([B, T, 2, C / 2]).transpose([0, 2, 1, 3]);
      const att = tf.softmax(tf.matMul(qh, kh, false, true).mul(1 / Math.sqrt(C / 2)));
      const y = tf.matMul(att, vh).transpose([0, 2, 1, 3]).reshape([B * T, C]);
      const rows = tf.unstack(y.reshape([B, T, C]), 1); // exercises Unpack + its gradient
      const out = tf.matMul(tf.stack(rows, 1).reshape([B * T, C]), w2, false, true);
      return tf.sum(tf.square(tf.slice(out, [0, 1], [-1, C - 2])));
    };
    const grads = tf.grads(f)([emb, wqkv, wo]);
    return [...grads.map((g) => host(g)), host(f(emb, wqkv, wo))];
  });
  ['dEmb', 'dWqkv', 'dWo', 'loss'].forEach((name, i) => close(tt, r.wasm[i], r.cpu[i], name, 1e-4, 1e-4));
});

t.test('embedding via variableGrads on wasm matches cpu', async (tt) => {
  const embD = randData([20, 6]);
  const idx = [3, 3, 7, 0, 19, 3, 7];
  const r = await onBoth(() => {
    const emb = tf.variable(tf.tensor(embD, [20, 6]), true, `emb_${tf.getBackend()}`);
    const ids = tf.tensor1d(idx, 'int32');
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(tf.gather(emb, ids))) as tf.Scalar, [emb]);
    const out = [host(value), host(grads[emb.name])];
    emb.dispose();
    return out;
  });
  close(tt, r.wasm[0], r.cpu[0], 'loss');
  close(tt, r.wasm[1], r.cpu[1], 'dEmb');
});

t.test('Identity shares its input\'s data: a clone costs no heap copy, outlives its source, and gradients are unchanged', async (tt) => {
  await tf.setBackend('wasm');
  const be = tf.backend() as unknown as WasmInternals;
  const x = tf.tensor(randData([3, 5]), [3, 5]);
  const want = Array.from(x.dataSync());
  const ids0 = be.numDataIds();
  const c = tf.clone(x);
  tt.equal(be.numDataIds(), ids0, 'no new heap tensor for the clone');
  x.dispose();
  tt.same(Array.from(c.dataSync()), want, 'the clone keeps the values after its source is disposed');
  c.dispose();
  tt.equal(be.numDataIds(), ids0 - 1, 'the data is freed with its last reference');
  const s = tf.clone(tf.tensor(['a', 'b']));
  tt.same(s.dataSync(), ['a', 'b'], 'strings take the stock kernel');
  s.dispose();
  // gradients through products that save their operands (the engine clones them): wasm equals cpu
  const a = randData([4, 6]);
  const w = randData([6, 5]);
  const f = (): Host[] => {
    const av = tf.tensor(a, [4, 6]);
    const wv = tf.tensor(w, [6, 5]);
    const g = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(tf.matMul(tf.tanh(p), q))))([av, wv]);
    tf.dispose([av, wv]);
    return g.map(host);
  };
  const { cpu, wasm } = await onBoth(f);
  for (let i = 0; i < 2; i++) {
    tt.same(wasm[i]!.shape, cpu[i]!.shape);
    tt.ok(wasm[i]!.data.every((v, j) => Math.abs(v - cpu[i]!.data[j]!) < 1e-4), `gradient ${i} equals cpu's`);
  }
});

t.test('no leaks of tensors, data ids or temporary view ids', async (tt) => {
  await tf.setBackend('wasm');
  const be = tf.backend() as unknown as WasmInternals;
  const mod = be.wasm.tfjs;
  const live = new Set<number>();
  const origReg = mod.registerTensor;
  const origDisp = mod.disposeData;
  mod.registerTensor = (id, size, off) => {
    live.add(id);
    origReg(id, size, off);
  };
  mod.disposeData = (id) => {
    live.delete(id);
    origDisp(id);
  };
  try {
    const a3 = tf.tensor(randData([6, 16, 8]), [6, 16, 8]);
    const b3 = tf.tensor(randData([6, 16, 8]), [6, 16, 8]);
    const big = tf.tensor(randData([8, 9, 10]), [8, 9, 10]);
    const emb = tf.tensor(randData([10, 4]), [10, 4]);
    const ids = tf.tensor1d([1, 2, 2, 9], 'int32');
    const rows2 = tf.tensor(randData([2, 96]), [2, 96]);
    const step = (): void => {
      tf.tidy(() => {
        tf.matMul(a3, b3, false, true);
        tf.matMul(a3, b3, true, false);
        tf.matMul(a3, b3.reshape([6 * 16, 8]), false, true);
        tf.matMul(a3.reshape([2, 3, 16, 8]), b3.slice([0, 0, 0], [3, 16, 8]).reshape([1, 3, 16, 8]), true, false);
        // few rows against a large b: the swapped products (a new b, then the same b again), a·bᵀ
        const wide = tf.tensor(randData([96, 80]), [96, 80]);
        tf.matMul(rows2, wide);
        tf.matMul(rows2, wide);
        tf.matMul(tf.tensor(randData([2, 80]), [2, 80]), wide, false, true);
        tf.unstack(big, 1);
        tf.split(big, [2, 3, 5], 2);
        tf.slice(big, [1, 1, 1], [3, 3, 3]);
        tf.stridedSlice(big, [1, 0, 0], [4, 9, 10], [1, 1, 1]);
        tf.grad((e: tf.Tensor) => tf.sum(tf.gather(e, ids)))(emb);
        tf.grad((e: tf.Tensor) => tf.sum(tf.matMul(e, e, false, true)))(emb); // saves (clones) its inputs
        tf.clone(big);
      });
    };
    step();
    const tensors0 = tf.memory().numTensors;
    const dataIds0 = be.numDataIds();
    const live0 = live.size;
    for (let i = 0; i < 5; i++) step();
    tt.equal(tf.memory().numTensors, tensors0, 'tf.memory().numTensors stable');
    tt.equal(be.numDataIds(), dataIds0, 'backend numDataIds stable');
    tt.equal(live.size, live0, 'no C++ tensor ids left registered (view ids disposed)');
    tf.dispose([a3, b3, big, emb, ids, rows2]);
  } finally {
    mod.registerTensor = origReg;
    mod.disposeData = origDisp;
  }
});
