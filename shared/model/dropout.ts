// Dropout masks drawn on the device: a counter-based hash of (seed, step, site, sequence, position) in tensor ops.
//
// tf.dropout draws its uniforms on the host (randomUniform fills a JS array and uploads it): for the paper preset
// about 233M values a step, seconds of CPU and ~0.9 GB of uploads per GPU. Here only a few numbers per sequence
// come from the host (hashKey of the sequence id); every per-element value is computed where the activations are.
//
// The hash works on integers below 2²². Every intermediate is an integer below 2²⁴, which float32 holds exactly,
// and the ops are +, ×, floor, mod and ≥ (×2⁻¹¹ is exact too): no rounding ever happens, so the masks are the same
// bits however they are computed. On TensorFlow (GPU or CPU) they are float32 tensor ops where the activations are
// (float32, not int32: TensorFlow keeps the int32 tensors of its GPU kernels in host memory, and tfjs has no xor).
// On wasm and cpu, whose device is this CPU, the same integers are computed in one JS pass with int32 arithmetic
// and written straight into the tensor's memory (26 tensor ops cost ~30× more there: wasm's Mod alone ~100 ns a
// value). Tests hold the tensor ops on cpu, wasm and the TensorFlow stand-in to the host pass, bit for bit.
//
// The value at (sequence b, row r, column c) of a site viewed as [rows per sequence, cols]:
//   A1, A2 = rowTable(b, r)   (two independent 22-bit values per row, from the sequence's keys)
//   C1, C2 = colTable(c)      (two per column, from the site's key)
//   x  = (A1 + C1) mod 2²²
//   v  = (x² + A2) mod 2²²         — the square in 11-bit limbs: x = hi·2¹¹ + lo, x² ≡ lo² + 2¹²·((hi·lo) mod 2¹⁰)
//   u  = (rot(v)² + A2 + C2) mod 2²², rot swaps v's two 11-bit halves (a "squares"-style round, Widynski 2020)
//   keep ⇔ u ≥ ⌈rate·2²²⌉
// The tables are the same round applied three times to (key + index). test/shared/dropout.test.ts checks the
// keep rate, uniformity, and independence across neighbouring rows and columns, sites, steps and sequences.
//
// A sequence is identified by a number the caller gives (the training loop: its offset in the corpus), so a
// sequence gets the same masks whichever micro-batch or worker computes it: gradient accumulation and any split
// of the batch across workers see the masks of the one-process run. (Two copies of one window in a step's batch
// get the same masks.)
import * as tf from '@tensorflow/tfjs';
import { hashKey } from './rng.ts';

const M22 = 4194304; // 2²²
const M11 = 2048; // 2¹¹
const INV_M11 = 1 / M11;

/** One site's layout: each sequence contributes `rows` rows of `cols` values (e.g. attention [heads·T, T]). */
export interface DropoutSite {
  rows: number;
  cols: number;
}

/** The four 22-bit keys of one sequence (row tables) or of one site (column tables). */
function keys22(key: number): [number, number, number, number] {
  return [hashKey(key, 1) % M22, hashKey(key, 2) % M22, hashKey(key, 3) % M22, hashKey(key, 4) % M22];
}

// ---- the arithmetic on tensors (TensorFlow backends) ----------------------------------------------------------

/** v = (lo² + 2¹²·((hi·lo) mod 2¹⁰) + Σw) mod 2²²: x² + w mod 2²² for x = hi·2¹¹ + lo (every sum below 2²⁴). */
function squareAdd(hi: tf.Tensor, lo: tf.Tensor, w: tf.Tensor[]): tf.Tensor {
  return tf.tidy(() => {
    let s = tf.add(tf.mul(lo, lo), tf.mul(tf.mod(tf.mul(hi, lo), 1024), 4096));
    for (const t of w) s = tf.add(s, t);
    return tf.mod(s, M22);
  });
}

/** x's 11-bit halves [hi, lo]. */
function split(x: tf.Tensor): [tf.Tensor, tf.Tensor] {
  return [tf.floor(tf.mul(x, INV_M11)), tf.mod(x, M11)];
}

/** The three-round table over indices [0, n) for each base (a [bases, 1] column or a scalar): [bases, n]. */
function table(base: tf.Tensor, w: tf.Tensor, n: number): tf.Tensor {
  return tf.tidy(() => {
    let [hi, lo] = split(tf.mod(tf.add(base, tf.range(0, n, 1, 'float32')), M22));
    for (let i = 0; i < 3; i++) {
      const [vh, vl] = split(squareAdd(hi, lo, [w]));
      [hi, lo] = [vl, vh]; // rot(v): the halves swap
    }
    return tf.add(tf.mul(hi, M11), lo);
  });
}

/**
 * The 22-bit uniforms of one site for the sequences `seqIds`, as float32 tensor ops: [seqIds.length · rows,
 * cols], integers in [0, 2²²). `key` is the step's dropout key (hashKey(seed, STREAM.dropout, step)), `site` the
 * site's number in the forward pass. Equal to dropoutUniformsHost() bit for bit.
 */
export function dropoutUniforms(key: number, site: number, seqIds: readonly number[], s: DropoutSite): tf.Tensor2D {
  return tf.tidy(() => {
    const B = seqIds.length;
    const seqKeys = seqIds.map((id) => keys22(hashKey(key, site, id)));
    const keyColumn = (k: number) => tf.tensor2d(seqKeys.map((q) => q[k]!), [B, 1], 'float32');
    const A1 = tf.reshape(table(keyColumn(0), keyColumn(1), s.rows), [B * s.rows, 1]);
    const A2 = tf.reshape(table(keyColumn(2), keyColumn(3), s.rows), [B * s.rows, 1]);
    const [c0, c1, c2, c3] = keys22(hashKey(key, site));
    const C1 = table(tf.scalar(c0), tf.scalar(c1), s.cols); // [1, cols]
    const C2 = table(tf.scalar(c2), tf.scalar(c3), s.cols);
    const v = tf.tidy(() => {
      const [hi, lo] = split(tf.mod(tf.add(A1, C1), M22));
      return squareAdd(hi, lo, [A2]);
    });
    const [vh, vl] = split(v);
    return squareAdd(vl, vh, [A2, C2]) as tf.Tensor2D;
  });
}

// ---- the same integers on the host (wasm, cpu; and the reference for the tensor ops) --------------------------

/** (x² + w) mod 2²² in int32 arithmetic (lo², the shifted cross term and w add up to less than 2²⁴). */
function squareAddInt(x: number, w: number): number {
  const hi = x >>> 11;
  const lo = x & 2047;
  return (lo * lo + (((hi * lo) & 1023) << 12) + w) & 0x3fffff;
}

/** v with its two 11-bit halves swapped. */
const rot = (v: number) => ((v & 2047) << 11) | (v >>> 11);

function tableInt(base: number, w: number, n: number, out: Int32Array): Int32Array {
  for (let r = 0; r < n; r++) {
    let x = (base + r) % M22;
    for (let i = 0; i < 3; i++) x = rot(squareAddInt(x, w));
    out[r] = x;
  }
  return out;
}

/**
 * The site's uniforms, row-major [seqIds.length · rows, cols], into `out`; with `thr` set, the mask instead:
 * `scale` where the uniform is ≥ thr, 0 elsewhere.
 */
function fillHost(key: number, site: number, seqIds: readonly number[], s: DropoutSite, out: Float32Array, thr = -1, scale = 0): void {
  const { rows, cols } = s;
  const [c0, c1, c2, c3] = keys22(hashKey(key, site));
  const C1 = tableInt(c0, c1, cols, new Int32Array(cols));
  const C2 = tableInt(c2, c3, cols, new Int32Array(cols));
  const A1 = new Int32Array(rows);
  const A2 = new Int32Array(rows);
  for (let b = 0; b < seqIds.length; b++) {
    const [k0, k1, k2, k3] = keys22(hashKey(key, site, seqIds[b]!));
    tableInt(k0, k1, rows, A1);
    tableInt(k2, k3, rows, A2);
    for (let r = 0; r < rows; r++) {
      const a1 = A1[r]!;
      const a2 = A2[r]!;
      const o = (b * rows + r) * cols;
      for (let c = 0; c < cols; c++) {
        // the two rounds, inlined (this loop runs for every value of every site)
        const x = (a1 + C1[c]!) & 0x3fffff;
        const xh = x >>> 11;
        const xl = x & 2047;
        const v = (xl * xl + (((xh * xl) & 1023) << 12) + a2) & 0x3fffff;
        const lo = v >>> 11; // rot(v): the halves swap
        const hi = v & 2047;
        const u = (lo * lo + (((hi * lo) & 1023) << 12) + a2 + C2[c]!) & 0x3fffff;
        out[o + c] = thr < 0 ? u : u >= thr ? scale : 0;
      }
    }
  }
}

/** dropoutUniforms() computed on the host, row-major [seqIds.length · rows, cols] (integers below 2²², exact in float32). */
export function dropoutUniformsHost(key: number, site: number, seqIds: readonly number[], s: DropoutSite): Float32Array {
  const out = new Float32Array(seqIds.length * s.rows * s.cols);
  fillHost(key, site, seqIds, s, out);
  return out;
}

// ---- masks ----------------------------------------------------------------------------------------------------

/** The uniforms below this are dropped: ⌈rate·2²²⌉, so the keep probability is 1 − rate to within 2⁻²². */
export function dropThreshold(rate: number): number {
  return Math.ceil(rate * M22);
}

/** How a mask is computed: tensor ops ('tensor'), the host pass ('host'), or by the current backend ('auto'). */
export type MaskEngine = 'auto' | 'tensor' | 'host';

/** The parts of the wasm backend that let a result be written in its heap (as shared/smi/smi.ts does). */
interface HeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}

/**
 * The site's mask [seqIds.length · rows, cols]: 1/(1 − rate) where the uniform is ≥ dropThreshold(rate) (kept),
 * 0 where dropped. 'auto' takes the host pass on wasm and cpu (their device is this CPU), tensor ops elsewhere.
 */
export function dropoutMask(key: number, site: number, seqIds: readonly number[], s: DropoutSite, rate: number, engine: MaskEngine = 'auto'): tf.Tensor2D {
  if (!(rate > 0 && rate < 1)) throw new RangeError(`dropout rate must be in (0, 1), got ${rate}`);
  const thr = dropThreshold(rate);
  const scale = Math.fround(1 / (1 - rate));
  const backend = tf.getBackend();
  const host = engine === 'host' || (engine === 'auto' && (backend === 'wasm' || backend === 'cpu'));
  if (!host) {
    return tf.tidy(() => tf.mul(tf.cast(tf.greaterEqual(dropoutUniforms(key, site, seqIds, s), thr), 'float32'), scale) as tf.Tensor2D);
  }
  const shape = [seqIds.length * s.rows, s.cols];
  if (backend === 'wasm') {
    // written in place in the wasm heap: no host array per site and step for the collector to chase
    const be = tf.backend() as unknown as HeapBackend;
    const info = be.makeOutput(shape, 'float32');
    try {
      fillHost(key, site, seqIds, s, be.typedArrayFromHeap(info), thr, scale);
    } catch (e) {
      tf.backend().disposeData(info.dataId, true);
      throw e;
    }
    return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D;
  }
  const data = new Float32Array(shape[0]! * shape[1]!); // a new array: the cpu backend keeps what tf.tensor gets
  fillHost(key, site, seqIds, s, data, thr, scale);
  return tf.tensor2d(data, shape as [number, number], 'float32');
}
