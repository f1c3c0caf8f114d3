// Fast, complete tfjs `wasm` backend kernels for transformer training (UnsortedSegmentSum, BatchMatMul, slicing,
// Identity).
//
// Why one file of ~790 lines: every kernel here is registered and unregistered together and shares the few helpers
// that reach the wasm backend's tensor data (its heap, its native matMul); each kernel is tested against the cpu
// backend in test/shared/wasm/kernels.test.ts.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type {
  BatchMatMulAttrs,
  DataId,
  DataType,
  KernelConfig,
  KernelFunc,
  NamedAttrMap,
  NamedTensorInfoMap,
  SliceAttrs,
  SplitVAttrs,
  StridedSliceAttrs,
  TensorInfo,
  TypedArray,
  UnpackAttrs,
  UnsortedSegmentSumAttrs,
} from '@tensorflow/tfjs';
import { instantiate, wasmAsmReady } from './asm.ts';

/*
 * Design notes
 * ------------
 * - Everything here reads and writes the wasm heap directly (no `readSync`, which copies the
 *   whole input tensor out of the heap on every call; that is what makes the stock Slice /
 *   Unpack / SplitV slow).
 * - BatchMatMul: the native wasm kernel only takes the XNNPACK path for a single
 *   [1,M,K]x[1,K,N] product without transpose flags; every other case runs a scalar loop.
 *   We therefore (1) materialise transposed operands with the native Transpose kernel,
 *   (2) fold a batch-1 `b` into the rows of `a` (one big 2-D product), and (3) otherwise run
 *   one native 2-D product per batch entry.  For (3) each slice is handed to the native
 *   kernel as a temporary *view id*: `wasm.tfjs.registerTensor(id, size, offset)` registers a
 *   C++ tensor record pointing into existing heap memory, and `wasm.tfjs.disposeData(id)`
 *   removes it again.  The raw `wasm.tfjs.disposeData` only erases the C++ record and runs
 *   its disposal callbacks (which delete the XNNPACK operator cached for that id); it never
 *   frees memory (the JS `BackendWasm.disposeData` is what calls `_free`).  View ids are
 *   never put into `backend.dataIdMap`, so they are invisible to the engine, and they are
 *   always disposed in a `finally`.  A copy-based variant (`matMulSlices: 'copy'`) is kept
 *   for benchmarking; both measured the same within noise (the per-slice cost is dominated
 *   by XNNPACK operator creation / weight packing), views are the default as they need no
 *   scratch allocations or extra memory traffic.
 * - Ids for views come from the backend's own counter (`dataIdNextNumber`), so they can
 *   never collide with ids of real tensors.
 * - XNNPACK packs b (its "weights") for every new b id, a pass that costs ~5 ms for a 384×1536
 *   matrix, about three times the product itself when a has 16 rows. Training makes new weight
 *   tensors every step, so at small batches (the paper preset at block 8: 8 rows per sequence)
 *   the packing dominated a forward + backward. A few rows against a large b are therefore
 *   computed swapped, `(b·aᵀ)ᵀ` for a·bᵀ and `(bᵀ·aᵀ)ᵀ` for a new b's a·b: the small aᵀ is
 *   packed, the large operand streamed. Equal to the bit (tested); `npm run bench -- kernels` (d).
 * - Identity: the stock wasm kernel copies its input into a new heap tensor, and the engine runs it for every
 *   tensor a kernel saves for its gradient (Engine.saveTensorsForBackwardMode → clone): every weight matrix of a
 *   forward pass was copied once a step (about 10 ms of a paper-preset worker's step at block 8). Here it shares
 *   the input's data and counts a reference, as the cpu and webgl backends' Identity and the stock wasm Reshape
 *   do. That is sound because no tfjs kernel writes into its inputs; the one in-place writer of this project,
 *   the fused AdamW (shared/wasm/adamw.ts), writes only into its own moments, which nothing clones.
 */

/** Kernel names this module registers for the `wasm` backend. */
export const WASM_KERNELS: string[] = [
  'UnsortedSegmentSum',
  'BatchMatMul',
  'Slice',
  'Unpack',
  'SplitV',
  'StridedSlice',
  'Identity',
];

/** Options for {@link registerWasmKernels}. */
export interface WasmKernelOptions {
  /**
   * How batch slices are passed to the native 2-D matmul: `'view'` (default) registers
   * temporary tensor ids pointing into the operands' heap memory (zero copy); `'copy'`
   * copies every slice into scratch tensors first. Kept for benchmarking.
   */
  matMulSlices?: 'view' | 'copy';
  /**
   * A product of a few rows of a with a large b (a linear layer at small batches) is computed as `(b·aᵀ)ᵀ` (or
   * `(bᵀ·aᵀ)ᵀ`), so that XNNPACK packs the small operand, not b (default true); false: the plain path. Kept for
   * benchmarking.
   */
  swapSmallRows?: boolean;
  /**
   * The products' transposes (of a new b, of aᵀ, of a swapped result) as a cache-blocked SIMD pass in the heap
   * (default true); false: the stock Transpose kernel. Kept for benchmarking.
   */
  simdTranspose?: boolean;
  /**
   * Subset of {@link WASM_KERNELS} to install (default: all). Kernels of this module that are
   * not listed are put back to stock. E.g. `['UnsortedSegmentSum']` gives the stock backend plus
   * the one kernel it lacks (what the benchmark uses as its "stock" baseline).
   */
  kernels?: string[];
}

// ---------------------------------------------------------------------------------------
// Minimal structural view of the (partly private) BackendWasm internals we rely on.
// ---------------------------------------------------------------------------------------

interface WasmTensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: DataType;
  refCount: number;
}

type CwrapArg = 'number' | 'array';

interface WasmModuleLike {
  HEAPU8: Uint8Array;
  tfjs: {
    registerTensor(id: number, size: number, memoryOffset: number): void;
    disposeData(id: number): void;
  };
  cwrap(name: string, ret: null, args: CwrapArg[]): (...args: Array<number | boolean | Uint8Array>) => void;
}

interface WasmBackendLike {
  wasm: WasmModuleLike;
  dataIdNextNumber: number;
  dataIdMap: { get(dataId: DataId): WasmTensorData | undefined };
  makeOutput(shape: number[], dtype: DataType, memoryOffset?: number): TensorInfo;
  disposeData(dataId: DataId, force?: boolean): boolean;
  incRef(dataId: DataId): void;
  typedArrayFromHeap(t: TensorInfo): TypedArray;
}

type KernelArgs = { inputs: NamedTensorInfoMap; backend: {}; attrs?: NamedAttrMap };

type NativeBatchMatMul = (
  aId: number, aShape: Uint8Array, aRank: number,
  bId: number, bShape: Uint8Array, bRank: number,
  transposeA: boolean, transposeB: boolean, outId: number,
) => void;

const BACKEND = 'wasm';

/** Original (stock) kernel configs, captured the first time we replace them. */
const originals = new Map<string, KernelConfig>();
/** Our kernel configs, keyed by kernel name. */
const ours = new Map<string, KernelConfig>();
/** Per-backend-instance cwrapped native functions. */
const nativeCache = new WeakMap<object, NativeBatchMatMul>();
let matMulSlices: 'view' | 'copy' = 'view';
let swapSmallRows = true;
/** The b operands of a·b products computed swapped so far: their next product packs them (see batchMatMulKernel). */
let multiplied = new WeakSet<DataId>();

/** Reinterprets the opaque kernel backend as the wasm backend internals used here. */
function asWasm(backend: {}): WasmBackendLike {
  return backend as unknown as WasmBackendLike;
}

/** Returns the heap record of a tensor, throwing if it is not a wasm tensor. */
function dataOf(be: WasmBackendLike, t: TensorInfo): WasmTensorData {
  const d = be.dataIdMap.get(t.dataId);
  if (d == null) throw new Error('wasm-kernels: tensor is not on the wasm backend');
  return d;
}

/** Returns the native `BatchMatMul` entry point for this backend instance (cwrapped once). */
function nativeBatchMatMul(be: WasmBackendLike): NativeBatchMatMul {
  let fn = nativeCache.get(be);
  if (fn == null) {
    fn = be.wasm.cwrap('BatchMatMul', null, [
      'number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number',
    ]) as unknown as NativeBatchMatMul;
    nativeCache.set(be, fn);
  }
  return fn;
}

/** Encodes a shape the way the native kernels expect it (int32 bytes). */
function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

/** Calls the stock kernel that this module replaced (or throws if there is none). */
function callOriginal(name: string, args: KernelArgs): TensorInfo | TensorInfo[] {
  const orig = originals.get(name);
  if (orig == null) throw new Error(`wasm-kernels: no stock '${name}' kernel to fall back to`);
  return orig.kernelFunc(args);
}

/** Returns the named kernel input, throwing if it is missing. */
function input(args: KernelArgs, name: string): TensorInfo {
  const t = args.inputs[name];
  if (t == null) throw new Error(`wasm-kernels: missing input '${name}'`);
  return t;
}

/** Product of a shape's dimensions (1 for a scalar). */
function sizeOf(shape: number[]): number {
  let s = 1;
  for (const d of shape) s *= d;
  return s;
}

/** Row-major strides (in elements) of a shape; the last stride is 1. */
function stridesOf(shape: number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

// ---------------------------------------------------------------------------------------
// Slice family
// ---------------------------------------------------------------------------------------

/**
 * Copies the box `begin`/`size` of the row-major array `src` (shape `shape`) into `dst`
 * starting at element 0. Collapses trailing full dimensions into one contiguous run and
 * copies runs with `TypedArray.set` (memcpy) or a plain loop for short runs.
 */
function copyBox(src: TypedArray, shape: number[], begin: number[], size: number[], dst: TypedArray): void {
  const rank = shape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return;
  }
  const strides = stridesOf(shape);
  // d = innermost dimension that is not taken whole (or 0); dims after d are full.
  let d = rank - 1;
  while (d > 0 && size[d] === shape[d]) d--;
  const run = size[d] * strides[d];
  let srcOff = 0;
  for (let i = 0; i <= d; i++) srcOff += begin[i] * strides[i];
  let outer = 1;
  for (let i = 0; i < d; i++) outer *= size[i];
  const idx = new Array<number>(d).fill(0);
  let dstOff = 0;
  const short = run < 32;
  for (let o = 0; o < outer; o++) {
    if (short) {
      for (let k = 0; k < run; k++) dst[dstOff + k] = src[srcOff + k];
    } else {
      dst.set(src.subarray(srcOff, srcOff + run), dstOff);
    }
    dstOff += run;
    // Odometer over the outer dimensions 0..d-1.
    for (let i = d - 1; i >= 0; i--) {
      idx[i]++;
      srcOff += strides[i];
      if (idx[i] < size[i]) break;
      srcOff -= size[i] * strides[i];
      idx[i] = 0;
    }
  }
}

/**
 * Slices `x` at `begin`/`size` (already normalised, same rank as `x`) into a new heap tensor,
 * reading the input in place from the wasm heap.
 */
function sliceHeap(be: WasmBackendLike, x: TensorInfo, begin: number[], size: number[]): TensorInfo {
  const out = be.makeOutput(size.slice(), x.dtype);
  if (sizeOf(size) === 0) return out;
  // Views are taken after makeOutput: a malloc may grow (and so replace) the heap buffer.
  const src = be.typedArrayFromHeap(x);
  const dst = be.typedArrayFromHeap(out);
  copyBox(src, x.shape, begin, size, dst);
  return out;
}

/** `Slice` kernel: copies only the requested box, reading the input in place. */
function sliceKernel(args: KernelArgs): TensorInfo | TensorInfo[] {
  const x = input(args, 'x');
  if (x.dtype === 'string') return callOriginal('Slice', args);
  const { begin, size } = args.attrs as unknown as SliceAttrs;
  const [begin_, size_] = tf.slice_util.parseSliceParams(x, begin, size);
  return sliceHeap(asWasm(args.backend), x, begin_, size_);
}

/** `Unpack` kernel (tf.unstack): one in-place-read slice per index along `axis`. */
function unpackKernel(args: KernelArgs): TensorInfo | TensorInfo[] {
  const value = input(args, 'value');
  if (value.dtype === 'string') return callOriginal('Unpack', args);
  const be = asWasm(args.backend);
  const rank = value.shape.length;
  let { axis } = args.attrs as unknown as UnpackAttrs;
  if (axis < 0) axis += rank;
  const outShape = value.shape.filter((_, i) => i !== axis);
  const begin = new Array<number>(rank).fill(0);
  const size = value.shape.slice();
  size[axis] = 1;
  const outs: TensorInfo[] = [];
  for (let i = 0; i < value.shape[axis]; i++) {
    begin[axis] = i;
    const s = sliceHeap(be, value, begin, size);
    outs.push({ dataId: s.dataId, dtype: s.dtype, shape: outShape.slice() });
  }
  return outs;
}

/** `SplitV` kernel (tf.split): one in-place-read slice per piece. */
function splitVKernel(args: KernelArgs): TensorInfo | TensorInfo[] {
  const x = input(args, 'x');
  if (x.dtype === 'string') return callOriginal('SplitV', args);
  const be = asWasm(args.backend);
  const { numOrSizeSplits, axis } = args.attrs as unknown as SplitVAttrs;
  const ax = tf.util.parseAxisParam(axis, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x, numOrSizeSplits, ax);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const size = x.shape.slice();
    size[ax] = s;
    const out = sliceHeap(be, x, begin, size);
    begin[ax] += s;
    return out;
  });
}

/**
 * `StridedSlice` kernel: the stock kernel's identity / simple-slice paths call the stock
 * (whole-input-copying) slice internally; those paths are served here, everything with real
 * strides goes to the stock native kernel.
 */
function stridedSliceKernel(args: KernelArgs): TensorInfo | TensorInfo[] {
  const x = input(args, 'x');
  if (x.dtype === 'string') return callOriginal('StridedSlice', args);
  const be = asWasm(args.backend);
  const a = args.attrs as unknown as StridedSliceAttrs;
  const info = tf.slice_util.sliceInfo(
    x.shape, a.begin, a.end, a.strides, a.beginMask, a.endMask, a.ellipsisMask, a.newAxisMask, a.shrinkAxisMask,
  );
  if (info.isIdentity) {
    be.incRef(x.dataId);
    return { dataId: x.dataId, shape: info.finalShape, dtype: x.dtype };
  }
  if (info.sliceDim0 || info.isSimpleSlice) {
    const size = tf.slice_util.computeOutShape(info.begin, info.end, info.strides);
    const out = sliceHeap(be, x, info.begin, size);
    return { dataId: out.dataId, shape: info.finalShape, dtype: out.dtype };
  }
  return callOriginal('StridedSlice', args);
}

// ---------------------------------------------------------------------------------------
// UnsortedSegmentSum
// ---------------------------------------------------------------------------------------

/**
 * `UnsortedSegmentSum` kernel (the gradient of `tf.gather`; missing from the stock wasm
 * backend). With 1-D `segmentIds` of length `x.shape[0]` (the documented tfjs case, and the
 * only one `gather`'s gradient produces) the output has shape `[numSegments, ...x.shape.slice(1)]`
 * and `out[s] = sum of x[i] over all i with segmentIds[i] == s`, like the cpu backend.
 * Higher-rank ids follow TensorFlow (ids shape = a prefix of `x.shape`, output
 * `[numSegments, ...x.shape.slice(ids.rank)]`); the cpu backend does not support that case.
 * Ids outside `[0, numSegments)` are ignored. float32 data, int32 ids.
 */
function unsortedSegmentSumKernel(args: KernelArgs): TensorInfo | TensorInfo[] {
  const x = input(args, 'x');
  const segmentIds = input(args, 'segmentIds');
  const { numSegments } = args.attrs as unknown as UnsortedSegmentSumAttrs;
  const be = asWasm(args.backend);
  if (x.dtype !== 'float32') throw new Error(`UnsortedSegmentSum (wasm): data must be float32, got ${x.dtype}`);
  if (segmentIds.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum (wasm): segmentIds must be int32, got ${segmentIds.dtype}`);
  }
  const r = segmentIds.shape.length;
  if (r < 1 || r > x.shape.length || segmentIds.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(
      `UnsortedSegmentSum (wasm): segmentIds shape [${segmentIds.shape}] must be a prefix of x shape [${x.shape}]`,
    );
  }
  const inner = sizeOf(x.shape.slice(r));
  const out = be.makeOutput([numSegments, ...x.shape.slice(r)], 'float32');
  const n = sizeOf(segmentIds.shape);
  const dst = be.typedArrayFromHeap(out) as Float32Array;
  dst.fill(0);
  const src = be.typedArrayFromHeap(x) as Float32Array;
  const ids = be.typedArrayFromHeap(segmentIds) as Int32Array;
  for (let i = 0; i < n; i++) {
    const s = ids[i];
    if (!(s >= 0 && s < numSegments)) continue;
    const so = i * inner;
    const d0 = s * inner;
    for (let k = 0; k < inner; k++) dst[d0 + k] += src[so + k];
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// BatchMatMul
// ---------------------------------------------------------------------------------------

/**
 * A cache-blocked float32 transpose in the backend's heap: dst (C × R) = srcᵀ for src (R × C), both row-major, over
 * the rows [0, r4) and columns [0, c4) (multiples of 4): 4 × 4 blocks loaded as 4 vectors and transposed with
 * shuffles, 32 × 32 tiles so that the strided writes stay in cache. The stock Transpose kernel's element loop
 * cost ~4.6 ns a value here, most of it cache misses: with it the paper preset's forward spent ~49 ms a step
 * turning its weights (the swapped products above transpose every new b). A copy: equal to the bit.
 */
const TRANSPOSE_WAT = `
(module
  (import "env" "memory" (memory 0))
  (func (export "transpose") (param $src i32) (param $dst i32) (param $R i32) (param $C i32) (param $r4 i32) (param $c4 i32)
    (local $rt i32) (local $ct i32) (local $re i32) (local $ce i32) (local $r i32) (local $c i32)
    (local $sRow i32) (local $dRow i32) (local $p i32) (local $q i32)
    (local $a v128) (local $b v128) (local $x v128) (local $y v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    local.get $C i32.const 2 i32.shl local.set $sRow ;; bytes per source row
    local.get $R i32.const 2 i32.shl local.set $dRow ;; bytes per destination row
    block $rtDone loop $rtTop
      local.get $rt local.get $r4 i32.ge_u br_if $rtDone
      local.get $rt i32.const 32 i32.add local.tee $re local.get $r4 i32.gt_u if local.get $r4 local.set $re end
      i32.const 0 local.set $ct
      block $ctDone loop $ctTop
        local.get $ct local.get $c4 i32.ge_u br_if $ctDone
        local.get $ct i32.const 32 i32.add local.tee $ce local.get $c4 i32.gt_u if local.get $c4 local.set $ce end
        local.get $rt local.set $r
        block $rDone loop $rTop
          local.get $r local.get $re i32.ge_u br_if $rDone
          local.get $ct local.set $c
          block $cDone loop $cTop
            local.get $c local.get $ce i32.ge_u br_if $cDone
            ;; p = src + (r·C + c)·4: rows r … r+3 at column c
            local.get $src local.get $r local.get $C i32.mul local.get $c i32.add i32.const 2 i32.shl i32.add local.tee $p
            v128.load local.set $a
            local.get $p local.get $sRow i32.add local.tee $p v128.load local.set $b
            local.get $p local.get $sRow i32.add local.tee $p v128.load local.set $x
            local.get $p local.get $sRow i32.add v128.load local.set $y
            local.get $a local.get $b i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 local.set $t0 ;; a0 b0 a1 b1
            local.get $a local.get $b i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 local.set $t1 ;; a2 b2 a3 b3
            local.get $x local.get $y i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 local.set $t2 ;; x0 y0 x1 y1
            local.get $x local.get $y i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 local.set $t3 ;; x2 y2 x3 y3
            ;; q = dst + (c·R + r)·4: columns c … c+3 become rows
            local.get $dst local.get $c local.get $R i32.mul local.get $r i32.add i32.const 2 i32.shl i32.add local.tee $q
            local.get $t0 local.get $t2 i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 v128.store
            local.get $q local.get $dRow i32.add local.tee $q
            local.get $t0 local.get $t2 i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 v128.store
            local.get $q local.get $dRow i32.add local.tee $q
            local.get $t1 local.get $t3 i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 v128.store
            local.get $q local.get $dRow i32.add
            local.get $t1 local.get $t3 i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 v128.store
            local.get $c i32.const 4 i32.add local.set $c
            br $cTop
          end end
          local.get $r i32.const 4 i32.add local.set $r
          br $rTop
        end end
        local.get $ce local.set $ct
        br $ctTop
      end end
      local.get $re local.set $rt
      br $rtTop
    end end))
`;

type TransposeFn = (src: number, dst: number, R: number, C: number, r4: number, c4: number) => void;
let transposer: { memory: WebAssembly.Memory; fn: TransposeFn } | undefined;
/** false: the stock Transpose kernel for every transposeLast2 (kept for benchmarking and tests). */
let simdTranspose = true;

/** The SIMD transpose in this backend's heap, or undefined (a shared heap, no assembler loaded, switched off). */
function transposerOf(be: WasmBackendLike): TransposeFn | undefined {
  const memory = (be.wasm as unknown as { asm?: { memory?: unknown } }).asm?.memory;
  if (!simdTranspose || !(memory instanceof WebAssembly.Memory) || !(memory.buffer instanceof ArrayBuffer) || !wasmAsmReady()) return undefined;
  if (transposer?.memory !== memory) transposer = { memory, fn: instantiate<{ transpose: TransposeFn }>(TRANSPOSE_WAT, { env: { memory } }, 'transpose.wat').transpose };
  return transposer.fn;
}

/**
 * Swaps the last two axes of float32 `t` (new heap tensor): the SIMD transpose above for each batch entry where it
 * can run (the edges that are not a multiple of 4 in JS), else the native Transpose kernel.
 */
function transposeLast2(be: WasmBackendLike, t: TensorInfo): TensorInfo {
  const rank = t.shape.length;
  const R = t.shape[rank - 2]!;
  const C = t.shape[rank - 1]!;
  const fn = t.dtype === 'float32' && R >= 4 && C >= 4 ? transposerOf(be) : undefined;
  if (fn) {
    const shape = t.shape.slice();
    shape[rank - 2] = C;
    shape[rank - 1] = R;
    const out = be.makeOutput(shape, 'float32');
    const src = dataOf(be, t).memoryOffset;
    const dst = dataOf(be, out).memoryOffset;
    const r4 = R & ~3;
    const c4 = C & ~3;
    const batch = sizeOf(t.shape.slice(0, -2));
    const heap = new Float32Array(be.wasm.HEAPU8.buffer); // after makeOutput's malloc
    for (let b = 0; b < batch; b++) {
      const s0 = src + 4 * b * R * C;
      const d0 = dst + 4 * b * R * C;
      fn(s0, d0, R, C, r4, c4);
      if (r4 === R && c4 === C) continue;
      const s = s0 >> 2;
      const d = d0 >> 2;
      for (let r = 0; r < R; r++) for (let c = r < r4 ? c4 : 0; c < C; c++) heap[d + c * R + r] = heap[s + r * C + c]!;
    }
    return out;
  }
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  const k = tf.getKernel('Transpose', BACKEND);
  if (k == null) throw new Error('wasm-kernels: no wasm Transpose kernel');
  return k.kernelFunc({ inputs: { x: t }, backend: be, attrs: { perm } }) as TensorInfo;
}

/**
 * For each flat index of the broadcast batch shape `outBatch`, the flat batch index into an
 * operand with batch shape `batch` (numpy-style broadcasting, right-aligned).
 */
function broadcastBatchIndex(outBatch: number[], batch: number[]): Int32Array {
  const total = sizeOf(outBatch);
  const res = new Int32Array(total);
  const pad = outBatch.length - batch.length;
  const st = stridesOf(batch);
  for (let o = 0; o < total; o++) {
    let rem = o;
    let idx = 0;
    for (let i = outBatch.length - 1; i >= 0; i--) {
      const c = rem % outBatch[i];
      rem = (rem - c) / outBatch[i];
      const j = i - pad;
      if (j >= 0 && batch[j] !== 1) idx += c * st[j];
    }
    res[o] = idx;
  }
  return res;
}

/**
 * Runs `out[o] = a[aIdx[o]] @ b[bIdx[o]]` for every batch entry `o` through the native
 * 2-D XNNPACK path, passing each slice as a temporary view id (zero copy).
 */
function batchedViaViews(
  be: WasmBackendLike, native: NativeBatchMatMul,
  a: TensorInfo, b: TensorInfo, out: TensorInfo,
  aIdx: Int32Array, bIdx: Int32Array, batchA: number, batchB: number, M: number, K: number, N: number,
): void {
  const wasm = be.wasm;
  const aData = dataOf(be, a);
  const bData = dataOf(be, b);
  const oData = dataOf(be, out);
  const aShape = shapeBytes([1, M, K]);
  const bShape = shapeBytes([1, K, N]);
  const live: number[] = [];
  /** Registers a view of `size` floats at byte offset `offset`; returns its id. */
  const view = (offset: number, size: number): number => {
    const id = be.dataIdNextNumber++;
    wasm.tfjs.registerTensor(id, size, offset);
    live.push(id);
    return id;
  };
  try {
    for (let o = 0; o < aIdx.length; o++) {
      // Operands without a batch (batch size 1) are used through their own id.
      const aId = batchA === 1 ? aData.id : view(aData.memoryOffset + aIdx[o] * M * K * 4, M * K);
      const bId = batchB === 1 ? bData.id : view(bData.memoryOffset + bIdx[o] * K * N * 4, K * N);
      const outId = view(oData.memoryOffset + o * M * N * 4, M * N);
      native(aId, aShape, 3, bId, bShape, 3, false, false, outId);
      // Drop the views now (this also deletes the XNNPACK operator cached on the b view).
      while (live.length > 0) wasm.tfjs.disposeData(live.pop() as number);
    }
  } finally {
    while (live.length > 0) wasm.tfjs.disposeData(live.pop() as number);
  }
}

/**
 * Same contract as {@link batchedViaViews}, but copies each slice into scratch heap tensors
 * (memcpy via `TypedArray.set`) and copies the result back. Benchmark alternative.
 */
function batchedViaCopies(
  be: WasmBackendLike, native: NativeBatchMatMul,
  a: TensorInfo, b: TensorInfo, out: TensorInfo,
  aIdx: Int32Array, bIdx: Int32Array, M: number, K: number, N: number,
): void {
  const aShape = shapeBytes([1, M, K]);
  const bShape = shapeBytes([1, K, N]);
  const sa = be.makeOutput([1, M, K], 'float32');
  const so = be.makeOutput([1, M, N], 'float32');
  try {
    for (let o = 0; o < aIdx.length; o++) {
      // b gets a fresh tensor (fresh id) per product: XNNPACK caches packed weights by b's id.
      const sb = be.makeOutput([1, K, N], 'float32');
      try {
        const heap = new Float32Array(be.wasm.HEAPU8.buffer);
        const aOff = dataOf(be, a).memoryOffset / 4 + aIdx[o] * M * K;
        const bOff = dataOf(be, b).memoryOffset / 4 + bIdx[o] * K * N;
        heap.set(heap.subarray(aOff, aOff + M * K), dataOf(be, sa).memoryOffset / 4);
        heap.set(heap.subarray(bOff, bOff + K * N), dataOf(be, sb).memoryOffset / 4);
        native(dataOf(be, sa).id, aShape, 3, dataOf(be, sb).id, bShape, 3, false, false, dataOf(be, so).id);
        const h2 = new Float32Array(be.wasm.HEAPU8.buffer);
        const src = dataOf(be, so).memoryOffset / 4;
        h2.set(h2.subarray(src, src + M * N), dataOf(be, out).memoryOffset / 4 + o * M * N);
      } finally {
        be.disposeData(sb.dataId);
      }
    }
  } finally {
    be.disposeData(sa.dataId);
    be.disposeData(so.dataId);
  }
}

/**
 * `a·bᵀ` as `(b·aᵀ)ᵀ`, or (`bLayout` 'KN') `a·b` as `(bᵀ·aᵀ)ᵀ`: a is `rows` × K (its batch entries stacked), b one
 * matrix. The native product then packs the small aᵀ as its weights and streams the large operand once; only the
 * small operand and the small result are transposed, and b too in the 'KN' case (a transpose costs less than the
 * packing XNNPACK does for new weights: bench kernels (d)). Same sums in the same order: equal to the bit.
 */
function swappedProduct(
  be: WasmBackendLike, native: NativeBatchMatMul, a: TensorInfo, b: TensorInfo, bLayout: 'NK' | 'KN',
  rows: number, K: number, N: number, outShape: number[],
): TensorInfo {
  const temps: TensorInfo[] = [];
  try {
    const lhs = bLayout === 'NK' ? b : transposeLast2(be, { dataId: b.dataId, shape: [K, N], dtype: 'float32' });
    if (lhs !== b) temps.push(lhs);
    const aT = transposeLast2(be, { dataId: a.dataId, shape: [rows, K], dtype: 'float32' });
    temps.push(aT);
    const bt = be.makeOutput([N, rows], 'float32');
    temps.push(bt);
    native(dataOf(be, lhs).id, shapeBytes([1, N, K]), 3, dataOf(be, aT).id, shapeBytes([1, K, rows]), 3, false, false, dataOf(be, bt).id);
    const out = transposeLast2(be, bt); // [rows, N]: the output's layout, under its batch shape
    return { dataId: out.dataId, shape: outShape, dtype: 'float32' };
  } finally {
    for (const t of temps) be.disposeData(t.dataId);
  }
}

/**
 * `BatchMatMul` kernel: routes every float32 product of rank >= 2 (any transpose flags,
 * broadcast batch dims) through the native XNNPACK 2-D path; anything unusual (non-float32,
 * empty tensors, shape errors) goes to the stock kernel.
 */
function batchMatMulKernel(args: KernelArgs): TensorInfo | TensorInfo[] {
  const a = input(args, 'a');
  const b = input(args, 'b');
  const { transposeA, transposeB } = args.attrs as unknown as BatchMatMulAttrs;
  const be = asWasm(args.backend);
  const aRank = a.shape.length;
  const bRank = b.shape.length;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || aRank < 2 || bRank < 2) {
    return callOriginal('BatchMatMul', args);
  }
  const M = transposeA ? a.shape[aRank - 1] : a.shape[aRank - 2];
  const K = transposeA ? a.shape[aRank - 2] : a.shape[aRank - 1];
  const Kb = transposeB ? b.shape[bRank - 1] : b.shape[bRank - 2];
  const N = transposeB ? b.shape[bRank - 2] : b.shape[bRank - 1];
  const aBatchShape = a.shape.slice(0, -2);
  const bBatchShape = b.shape.slice(0, -2);
  const batchA = sizeOf(aBatchShape);
  const batchB = sizeOf(bBatchShape);
  if (K !== Kb || M * K * N * batchA * batchB === 0) return callOriginal('BatchMatMul', args);
  let outBatch: number[];
  try {
    outBatch = tf.broadcast_util.assertAndGetBroadcastShape(aBatchShape, bBatchShape);
  } catch {
    return callOriginal('BatchMatMul', args); // lets the stock kernel raise its usual error
  }
  const native = nativeBatchMatMul(be);
  // A few rows of a against a large b (a linear layer at small batches): XNNPACK packs b as its weights, a pass
  // over all of it that costs more than the product; (b·aᵀ)ᵀ packs the small aᵀ instead. For a·b (the forward)
  // only while b is new: packed weights are kept by b's id, so a b used again (evaluation batches) takes the
  // stock path and its cache from its second use on.
  const rows = batchA * M;
  if (swapSmallRows && !transposeA && batchB === 1 && rows * (K + N) < N * K) {
    if (transposeB) return swappedProduct(be, native, a, b, 'NK', rows, K, N, [...outBatch, M, N]);
    if (!multiplied.has(b.dataId)) {
      multiplied.add(b.dataId);
      return swappedProduct(be, native, a, b, 'KN', rows, K, N, [...outBatch, M, N]);
    }
  }
  // Already the fast path in the stock kernel (and it keeps XNNPACK's packed-weight cache
  // on b's id across calls): plain 2-D product.
  if (!transposeA && !transposeB && batchA === 1 && batchB === 1) return callOriginal('BatchMatMul', args);
  const temps: TensorInfo[] = [];
  try {
    let aa = a;
    let bb = b;
    if (transposeA) temps.push((aa = transposeLast2(be, a)));
    if (transposeB) temps.push((bb = transposeLast2(be, b)));
    const out = be.makeOutput([...outBatch, M, N], 'float32');
    if (batchB === 1) {
      // Every batch entry of a multiplies the same b: stack them as rows of one 2-D product.
      native(
        dataOf(be, aa).id, shapeBytes([1, batchA * M, K]), 3,
        dataOf(be, bb).id, shapeBytes([1, K, N]), 3, false, false, dataOf(be, out).id,
      );
      return out;
    }
    const aIdx = broadcastBatchIndex(outBatch, aBatchShape);
    const bIdx = broadcastBatchIndex(outBatch, bBatchShape);
    // View ids come from the backend's private id counter; should a future tfjs drop it, copy.
    if (matMulSlices === 'copy' || typeof be.dataIdNextNumber !== 'number') {
      batchedViaCopies(be, native, aa, bb, out, aIdx, bIdx, M, K, N);
    } else {
      batchedViaViews(be, native, aa, bb, out, aIdx, bIdx, batchA, batchB, M, K, N);
    }
    return out;
  } finally {
    for (const t of temps) be.disposeData(t.dataId);
  }
}

/** `Identity` kernel: the output shares x's data (one more reference), no copy; strings go to the stock kernel. */
function identityKernel(args: KernelArgs): TensorInfo | TensorInfo[] {
  const x = input(args, 'x');
  if (x.dtype === 'string') return callOriginal('Identity', args);
  asWasm(args.backend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
}

// ---------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------

const kernelFuncs: Record<string, (args: KernelArgs) => TensorInfo | TensorInfo[]> = {
  UnsortedSegmentSum: unsortedSegmentSumKernel,
  BatchMatMul: batchMatMulKernel,
  Slice: sliceKernel,
  Unpack: unpackKernel,
  SplitV: splitVKernel,
  StridedSlice: stridedSliceKernel,
  Identity: identityKernel,
};

/**
 * Registers this module's kernels for the `wasm` backend (see {@link WASM_KERNELS}),
 * replacing the stock ones where they exist. Idempotent: calling it again only applies the
 * new `options`. Safe to call before or after `tf.setBackend('wasm')`: importing this module
 * imports `@tensorflow/tfjs-backend-wasm`, so the stock kernels are registered by then, and
 * the stock kernels' `setupFunc`s are chained so they still run if the backend initialises
 * later. Recommended: `await tf.setBackend('wasm'); await tf.ready(); registerWasmKernels();`.
 */
export function registerWasmKernels(options: WasmKernelOptions = {}): void {
  if (options.matMulSlices != null) matMulSlices = options.matMulSlices;
  if (options.swapSmallRows != null) swapSmallRows = options.swapSmallRows;
  if (options.simdTranspose != null) simdTranspose = options.simdTranspose;
  multiplied = new WeakSet<DataId>();
  const wanted = options.kernels ?? WASM_KERNELS;
  for (const name of wanted) {
    if (!WASM_KERNELS.includes(name)) throw new Error(`wasm-kernels: unknown kernel '${name}'`);
  }
  for (const name of WASM_KERNELS) {
    if (wanted.includes(name)) install(name);
    else uninstall(name);
  }
}

/**
 * Undoes {@link registerWasmKernels}: restores the stock kernels (and removes kernels that
 * had no stock version, i.e. UnsortedSegmentSum). Used by the benchmark and tests.
 */
export function unregisterWasmKernels(): void {
  for (const name of WASM_KERNELS) uninstall(name);
}

/** Installs our kernel `name` unless it is already the registered one. */
function install(name: string): void {
  const current = tf.getKernel(name, BACKEND);
  const mine = ours.get(name);
  if (mine != null && current != null && current.kernelFunc === mine.kernelFunc) return;
  if (current != null) {
    originals.set(name, { ...current });
    tf.unregisterKernel(name, BACKEND);
  }
  const orig = originals.get(name);
  const config: KernelConfig = {
    kernelName: name,
    backendName: BACKEND,
    kernelFunc: kernelFuncs[name] as unknown as KernelFunc,
  };
  if (orig?.setupFunc != null) config.setupFunc = orig.setupFunc;
  if (orig?.disposeFunc != null) config.disposeFunc = orig.disposeFunc;
  ours.set(name, config);
  tf.registerKernel(config);
}

/** Puts the stock kernel `name` back if ours is the registered one. */
function uninstall(name: string): void {
  const current = tf.getKernel(name, BACKEND);
  const mine = ours.get(name);
  if (mine == null || current == null || current.kernelFunc !== mine.kernelFunc) return;
  tf.unregisterKernel(name, BACKEND);
  const orig = originals.get(name);
  if (orig != null) tf.registerKernel(orig);
}
