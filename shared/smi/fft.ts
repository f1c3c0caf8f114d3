// 2-D real FFTs of float32 matrices on the host (pffft-wasm where it applies, kissfft-wasm elsewhere).
//
// Why one file of ~690 lines: the two libraries' modules, plans, scratch buffers and heap views are one piece of
// state that every transform and both transposes share; split, each part would reach into the others' internals.
//
// A half spectrum: for x of rows × cols (row-major), X[k1][k2] = Σ x[r][c]·e^{−2πi(k1·r/rows + k2·c/cols)}
// for k1 in 0..rows−1 and k2 in 0..half−1, half = floor(cols/2) + 1. It is stored TRANSPOSED, shape
// [half, rows], in two Float32Arrays `re` and `im` of half·rows values: X[k1][k2] = re[k2·rows + k1] +
// i·im[k2·rows + k1] (numpy: np.fft.rfft2(x).T). Transposed because the column FFTs leave it that way, so the
// layout costs no transpose here or in the tf engine (shared/smi/smi.ts), and because it puts each spectral
// column in one contiguous block (the quantile weighting works per block).
// The forward transform is unnormalised; the inverse divides by rows·cols, so irfft2(rfft2(x)) ≈ x.
// The columns the half spectrum leaves out follow from X[k1][k2] = conj(X[(rows−k1) % rows][cols−k2]).
//
// Both axes are done separately: a batch of real FFTs along each row, a cache-blocked transpose, then a
// batch of complex FFTs along each of the `half` columns (skipped when rows = 1). Each axis independently uses
// pffft when its length allows it (real rows: a multiple of 32 of the form 2^a·3^b·5^c; complex columns: a
// multiple of 16 of that form) and kissfft otherwise (any length; odd row lengths go through a complex FFT
// with zero imaginary part). Plans are cached per length; the wasm-side scratch buffers grow to the largest
// shape seen. All of it is freed by disposeFft(). Not re-entrant (a single JS thread never needs it to be).
// When both passes are pffft's, the transposes between them run as small wasm kernels in pffft's memory (JS
// loops cost about 1 ns a value here). rfft2Heap / irfft2Heap leave the spectrum in that heap, for callers that
// work on it in place (shared/smi/host.ts); rfft2 / irfft2 copy it out to / in from re / im arrays.
import { loadKissModule, pffftFactory, pffftWasmBytes } from './fft-modules.ts';
import { initWasmAsm, instantiate } from '../wasm/asm.ts';

/** 'auto' = pffft on each axis whose length it supports, kissfft on the others; 'kissfft' = kissfft only. */
export type FftLibrary = 'auto' | 'kissfft';

/** A half spectrum, stored transposed: re / im of shape [half, rows] (see the top of this file). */
export interface HalfSpectrum {
  rows: number;
  cols: number;
  /** floor(cols / 2) + 1 */
  half: number;
  re: Float32Array;
  im: Float32Array;
}

/** floor(cols / 2) + 1: the number of spectral columns of a real signal with `cols` columns. */
export function halfCols(cols: number): number {
  return (cols >> 1) + 1;
}

// ---- the two wasm modules -------------------------------------------------------------------------------

type Ptr = number;

interface KissModule {
  HEAPF32: Float32Array;
  _malloc(bytes: number): Ptr;
  _free(ptr: Ptr): void;
  _kiss_fft_alloc(nfft: number, inverse: number, mem: number, lenmem: number): Ptr;
  _kiss_fft(cfg: Ptr, fin: Ptr, fout: Ptr): void;
  _kiss_fftr_alloc(nfft: number, inverse: number, mem: number, lenmem: number): Ptr;
  _kiss_fftr(cfg: Ptr, timedata: Ptr, freqdata: Ptr): void;
  _kiss_fftri(cfg: Ptr, freqdata: Ptr, timedata: Ptr): void;
}

interface PffftModule {
  HEAPF32: Float32Array;
  _pffft_aligned_malloc(bytes: number): Ptr;
  _pffft_aligned_free(ptr: Ptr): void;
  _pffft_new_setup(n: number, transform: number): Ptr;
  _pffft_destroy_setup(setup: Ptr): void;
  _pffft_transform_ordered(setup: Ptr, input: Ptr, output: Ptr, work: Ptr, direction: number): void;
}

const PFFFT_REAL = 0;
const PFFFT_COMPLEX = 1;
const PFFFT_FORWARD = 0;
const PFFFT_BACKWARD = 1;

let kiss: KissModule | undefined;
let pffft: PffftModule | undefined;
/** pffft's WebAssembly.Memory (caught at instantiation), for the kernels below that work in it. */
let pffftMemory: WebAssembly.Memory | undefined;
let kernels: TransposeKernels | undefined;
let loading: Promise<void> | undefined;
let library: FftLibrary = 'auto';

/** Loads the wasm FFT modules and the WAT assembler (shared/wasm/asm.ts) once; every later call returns the same promise. */
export function initFft(): Promise<void> {
  loading ??= load();
  return loading;
}

async function load(): Promise<void> {
  const asm = initWasmAsm(); // the WAT assembler for TRANSPOSE_WAT and the kernels of quantile.ts / smi-host.ts
  kiss = await loadKissModule<KissModule>();
  type Instantiate = (imports: WebAssembly.Imports, receive: (i: WebAssembly.Instance, m: WebAssembly.Module) => void) => object;
  const loadPffft = await pffftFactory<PffftModule>();
  // Instantiate it ourselves (Emscripten's instantiateWasm hook) to get hold of its WebAssembly.Memory, which
  // the module does not export to JS: our kernels import it. Without it, everything still works in JS.
  const wasmBytes = await pffftWasmBytes();
  let instantiated: Promise<unknown> = Promise.resolve();
  const instantiateWasm: Instantiate = (imports, receive) => {
    instantiated = WebAssembly.instantiate(wasmBytes!, imports).then(({ instance, module }) => {
      pffftMemory = Object.values(instance.exports).find((e): e is WebAssembly.Memory => e instanceof WebAssembly.Memory);
      receive(instance, module);
    });
    return {};
  };
  const loaded = loadPffft(wasmBytes ? { instantiateWasm } : undefined);
  await instantiated; // rejects (rather than leaving `loaded` pending) if our instantiation fails
  pffft = await loaded;
  if (pffftMemory && pffftMemory.buffer !== pffft.HEAPF32.buffer) pffftMemory = undefined;
  await asm;
  kernels = pffftMemory ? instantiate<TransposeKernels>(TRANSPOSE_WAT, { env: { memory: pffftMemory } }, 'transpose.wat') : undefined;
}

/**
 * pffft's memory and its Emscripten module, for kernels that work on transform results where they lie
 * (shared/smi/host.ts); undefined before initFft() or when the memory could not be caught.
 */
export function pffftHeap(): { memory: WebAssembly.Memory; mem: Memory } | undefined {
  return pffftMemory && pffft ? { memory: pffftMemory, mem: pffft } : undefined;
}

/**
 * A grow-only scratch buffer of `floats` floats in pffft's heap for callers of this module (slot 0, 1, …, kept
 * apart from the transforms' own); returns its float index into HEAPF32. Freed by disposeFft().
 */
export function pffftScratchBuffer(slot: number, floats: number): number {
  if (!Number.isInteger(slot) || slot < 0 || slot >= CALLER_SLOTS) throw new RangeError(`pffftScratchBuffer: no slot ${slot}`);
  return pffftBuffer(SLOTS + slot, floats) >> 2;
}

/** Chooses the library for later transforms (for benchmarks and tests; the default 'auto' is the fast one). */
export function setFftLibrary(lib: FftLibrary): void {
  library = lib;
}

function kissModule(): KissModule {
  if (!kiss) throw new Error('FFT not initialised: await initFft() first');
  return kiss;
}

function pffftModule(): PffftModule {
  if (!pffft) throw new Error('FFT not initialised: await initFft() first');
  return pffft;
}

/** Only factors 2, 3 and 5 (pffft's radices). */
function is235(n: number): boolean {
  for (const p of [2, 3, 5]) while (n % p === 0) n /= p;
  return n === 1;
}

/** Checked here because pffft_new_setup asserts (aborting the whole wasm instance) on other lengths. */
function pffftSupports(n: number, complex: boolean): boolean {
  return n > 0 && n % (complex ? 16 : 32) === 0 && is235(n);
}

// ---- wasm scratch buffers (grow-only; slots 0–2 for the row pass, 3–5 for the column pass) -------------

interface Scratch {
  ptr: Ptr;
  floats: number;
}

const SLOTS = 6;
/** pffft scratch slots after the transforms' own, for pffftScratchBuffer(). */
const CALLER_SLOTS = 4;
const kissScratch: Scratch[] = Array.from({ length: SLOTS }, () => ({ ptr: 0, floats: 0 }));
const pffftScratch: Scratch[] = Array.from({ length: SLOTS + CALLER_SLOTS }, () => ({ ptr: 0, floats: 0 }));

function kissBuffer(slot: number, floats: number): Ptr {
  const s = kissScratch[slot];
  if (s.floats < floats) {
    const m = kissModule();
    if (s.ptr) m._free(s.ptr);
    s.ptr = m._malloc(floats * 4);
    if (!s.ptr) throw new Error(`kissfft: out of wasm memory allocating ${floats} floats`);
    s.floats = floats;
  }
  return s.ptr;
}

function pffftBuffer(slot: number, floats: number): Ptr {
  const s = pffftScratch[slot];
  if (s.floats < floats) {
    const m = pffftModule();
    if (s.ptr) m._pffft_aligned_free(s.ptr);
    s.ptr = m._pffft_aligned_malloc(floats * 4);
    if (!s.ptr) throw new Error(`pffft: out of wasm memory allocating ${floats} floats`);
    s.floats = floats;
  }
  return s.ptr;
}

// ---- plans (cached per kind, length and direction) --------------------------------------------------------

const kissPlans = new Map<string, Ptr>();
const pffftPlans = new Map<string, Ptr>();

function kissPlan(kind: 'c' | 'r', n: number, inverse: boolean): Ptr {
  const key = `${kind}${n}${inverse ? 'i' : 'f'}`;
  let p = kissPlans.get(key);
  if (p === undefined) {
    const m = kissModule();
    p = kind === 'c' ? m._kiss_fft_alloc(n, inverse ? 1 : 0, 0, 0) : m._kiss_fftr_alloc(n, inverse ? 1 : 0, 0, 0);
    if (!p) throw new Error(`kissfft: cannot plan ${kind === 'c' ? 'complex' : 'real'} FFT of length ${n}`);
    kissPlans.set(key, p);
  }
  return p;
}

/** One pffft setup serves both directions. */
function pffftPlan(complex: boolean, n: number): Ptr {
  const key = `${complex ? 'c' : 'r'}${n}`;
  let p = pffftPlans.get(key);
  if (p === undefined) {
    p = pffftModule()._pffft_new_setup(n, complex ? PFFFT_COMPLEX : PFFFT_REAL);
    if (!p) throw new Error(`pffft: cannot plan ${complex ? 'complex' : 'real'} FFT of length ${n}`);
    pffftPlans.set(key, p);
  }
  return p;
}

/** Frees every plan and scratch buffer (the modules stay loaded; later transforms re-create what they need). */
export function disposeFft(): void {
  if (kiss) {
    for (const p of kissPlans.values()) kiss._free(p);
    for (const s of kissScratch) if (s.ptr) kiss._free(s.ptr);
  }
  if (pffft) {
    for (const p of pffftPlans.values()) pffft._pffft_destroy_setup(p);
    for (const s of pffftScratch) if (s.ptr) pffft._pffft_aligned_free(s.ptr);
  }
  kissPlans.clear();
  pffftPlans.clear();
  for (const s of [...kissScratch, ...pffftScratch]) {
    s.ptr = 0;
    s.floats = 0;
  }
}

// ---- the row pass: real rows x[r][·] <-> per-row half spectra in a wasm buffer ----------------------------
// Per-row spectra sit in `heap` from float index `base`, row r at base + r·stride, in one of two forms:
//   interleaved: X[k] at (2k, 2k+1) for k = 0 … half−1 (kissfft);
//   packed (pffft's ordered real format): X[0].re at 0, X[cols/2].re at 1, X[k] at (2k, 2k+1) for 0 < k < cols/2.

/** A wasm module's memory; HEAPF32 is re-read at each use because a malloc may grow (and detach) it. */
export interface Memory {
  HEAPF32: Float32Array;
}

interface RowBuffer {
  mem: Memory;
  base: number;
  stride: number;
  packed: boolean;
}

type RowEngine = 'pffft' | 'kiss-real' | 'kiss-complex';

function rowEngine(cols: number): RowEngine {
  if (library === 'auto' && pffftSupports(cols, false)) return 'pffft';
  return cols % 2 === 0 ? 'kiss-real' : 'kiss-complex';
}

/** Row FFTs of x; returns where the per-row spectra are. */
function rowsForward(x: Float32Array, rows: number, cols: number): RowBuffer {
  const engine = rowEngine(cols);
  if (engine === 'pffft') {
    const m = pffftModule();
    const plan = pffftPlan(false, cols);
    const inp = pffftBuffer(0, rows * cols);
    const out = pffftBuffer(1, rows * cols);
    const work = pffftBuffer(2, cols);
    m.HEAPF32.set(x, inp >> 2);
    for (let r = 0; r < rows; r++) {
      m._pffft_transform_ordered(plan, inp + r * cols * 4, out + r * cols * 4, work, PFFFT_FORWARD);
    }
    return { mem: m, base: out >> 2, stride: cols, packed: true };
  }
  const m = kissModule();
  if (engine === 'kiss-real') {
    const half = halfCols(cols);
    const plan = kissPlan('r', cols, false);
    const inp = kissBuffer(0, rows * cols);
    const out = kissBuffer(1, rows * half * 2);
    m.HEAPF32.set(x, inp >> 2);
    for (let r = 0; r < rows; r++) m._kiss_fftr(plan, inp + r * cols * 4, out + r * half * 8);
    return { mem: m, base: out >> 2, stride: 2 * half, packed: false };
  }
  // Odd length: kiss_fftr needs an even one, so each row goes through a complex FFT with zero imaginary part.
  const plan = kissPlan('c', cols, false);
  const inp = kissBuffer(0, rows * cols * 2);
  const out = kissBuffer(1, rows * cols * 2);
  const heap = m.HEAPF32.fill(0, inp >> 2, (inp >> 2) + rows * cols * 2);
  for (let i = 0, o = inp >> 2; i < x.length; i++, o += 2) heap[o] = x[i];
  for (let r = 0; r < rows; r++) m._kiss_fft(plan, inp + r * cols * 8, out + r * cols * 8);
  return { mem: m, base: out >> 2, stride: 2 * cols, packed: false };
}

/** Where the inverse row pass wants its per-row half spectra written (then call rowsInverseRun). */
function rowsInverseBuffer(rows: number, cols: number): RowBuffer {
  const engine = rowEngine(cols);
  if (engine === 'pffft') {
    const inp = pffftBuffer(0, rows * cols);
    return { mem: pffftModule(), base: inp >> 2, stride: cols, packed: true };
  }
  if (engine === 'kiss-real') {
    const inp = kissBuffer(0, rows * halfCols(cols) * 2);
    return { mem: kissModule(), base: inp >> 2, stride: 2 * halfCols(cols), packed: false };
  }
  const inp = kissBuffer(0, rows * cols * 2);
  return { mem: kissModule(), base: inp >> 2, stride: 2 * cols, packed: false };
}

/**
 * Unscaled inverse row FFTs of the spectra written into rowsInverseBuffer(); returns where the real rows ×
 * cols result is: value (r, c) at heap[base + stride·(r·cols + c)] (stride 2 for odd cols: the real parts of
 * a complex result). The imaginary parts of X[0] and, for even cols, X[cols/2] are ignored (taking the
 * Hermitian part).
 */
function rowsInverseRun(rows: number, cols: number): HeapResult {
  const engine = rowEngine(cols);
  if (engine === 'pffft') {
    const m = pffftModule();
    const plan = pffftPlan(false, cols);
    const inp = pffftBuffer(0, rows * cols);
    const out = pffftBuffer(1, rows * cols);
    const work = pffftBuffer(2, cols);
    for (let r = 0; r < rows; r++) {
      m._pffft_transform_ordered(plan, inp + r * cols * 4, out + r * cols * 4, work, PFFFT_BACKWARD);
    }
    return { mem: m, base: out >> 2, stride: 1 };
  }
  const m = kissModule();
  if (engine === 'kiss-real') {
    const half = halfCols(cols);
    const plan = kissPlan('r', cols, true);
    const inp = kissBuffer(0, rows * half * 2);
    const out = kissBuffer(1, rows * cols);
    for (let r = 0; r < rows; r++) m._kiss_fftri(plan, inp + r * half * 8, out + r * cols * 4);
    return { mem: m, base: out >> 2, stride: 1 };
  }
  // Odd length: complete each row's spectrum by conjugate symmetry, complex inverse, keep the real part.
  const half = halfCols(cols);
  const plan = kissPlan('c', cols, true);
  const inp = kissBuffer(0, rows * cols * 2);
  const out = kissBuffer(1, rows * cols * 2);
  const heap = m.HEAPF32;
  for (let r = 0, b = inp >> 2; r < rows; r++, b += 2 * cols) {
    heap[b + 1] = 0;
    for (let k = 1; k < half; k++) {
      heap[b + 2 * (cols - k)] = heap[b + 2 * k];
      heap[b + 2 * (cols - k) + 1] = -heap[b + 2 * k + 1];
    }
  }
  for (let r = 0; r < rows; r++) m._kiss_fft(plan, inp + r * cols * 8, out + r * cols * 8);
  return { mem: m, base: out >> 2, stride: 2 };
}

// ---- the transpose between the passes (blocked: BLOCK rows at a time keep the reads in cache) -------------

const BLOCK = 16;

/**
 * Per-row spectra (RowBuffer) → column-major interleaved complex: X[k1][k2] at dst[dBase + 2(k2·rows + k1)].
 */
function rowsToColumns(src: RowBuffer, rows: number, half: number, dstMem: Memory, dBase: number): void {
  const { base, stride, packed } = src;
  if (kernels && packed && src.mem === pffft && dstMem === pffft) {
    kernels.rows_to_cols(base << 2, dBase << 2, rows, stride);
    return;
  }
  const heap = src.mem.HEAPF32;
  const dst = dstMem.HEAPF32;
  // Columns read from (2k, 2k+1): all of them when interleaved; all but the first and the last when packed.
  const kEnd = packed ? half - 1 : half;
  const kStart = packed ? 1 : 0;
  for (let r0 = 0; r0 < rows; r0 += BLOCK) {
    const r1 = Math.min(rows, r0 + BLOCK);
    for (let k = kStart; k < kEnd; k++) {
      let s = base + r0 * stride + 2 * k;
      let d = dBase + 2 * (k * rows + r0);
      for (let r = r0; r < r1; r++, s += stride, d += 2) {
        dst[d] = heap[s];
        dst[d + 1] = heap[s + 1];
      }
    }
  }
  if (packed) {
    const last = dBase + 2 * (half - 1) * rows;
    for (let r = 0, s = base; r < rows; r++, s += stride) {
      dst[dBase + 2 * r] = heap[s];
      dst[dBase + 2 * r + 1] = 0;
      dst[last + 2 * r] = heap[s + 1];
      dst[last + 2 * r + 1] = 0;
    }
  }
}

/** The reverse of rowsToColumns: column-major interleaved complex → per-row spectra in `dst`. */
function columnsToRows(srcMem: Memory, sBase: number, rows: number, half: number, dst: RowBuffer): void {
  const { base, stride, packed } = dst;
  if (kernels && packed && srcMem === pffft && dst.mem === pffft) {
    kernels.cols_to_rows(sBase << 2, base << 2, rows, stride);
    return;
  }
  const src = srcMem.HEAPF32;
  const heap = dst.mem.HEAPF32;
  const kEnd = packed ? half - 1 : half;
  const kStart = packed ? 1 : 0;
  for (let r0 = 0; r0 < rows; r0 += BLOCK) {
    const r1 = Math.min(rows, r0 + BLOCK);
    for (let k = kStart; k < kEnd; k++) {
      let s = sBase + 2 * (k * rows + r0);
      let d = base + r0 * stride + 2 * k;
      for (let r = r0; r < r1; r++, s += 2, d += stride) {
        heap[d] = src[s];
        heap[d + 1] = src[s + 1];
      }
    }
  }
  if (packed) {
    const last = sBase + 2 * (half - 1) * rows;
    for (let r = 0, d = base; r < rows; r++, d += stride) {
      heap[d] = src[sBase + 2 * r];
      heap[d + 1] = src[last + 2 * r];
    }
  }
}

/** The two transposes for pffft's packed rows (cols even), in pffft's memory; pointers in bytes. */
interface TransposeKernels {
  rows_to_cols(src: number, dst: number, rows: number, cols: number): void;
  cols_to_rows(src: number, dst: number, rows: number, cols: number): void;
}

// rowsToColumns and columnsToRows for packed rows, as wasm: the same copies, BLOCK = 16 rows at a time, each
// complex value moved as one i64 (bit for bit). Spectral columns 1 … cols/2 − 1 are complex; columns 0 and
// cols/2 are the real values pffft packs at floats 0 and 1 of a row (their imaginary parts are written as 0).
const TRANSPOSE_WAT = `
(module
  (import "env" "memory" (memory 0))
  (func $rows_to_cols (export "rows_to_cols") (param $src i32) (param $dst i32) (param $rows i32) (param $cols i32)
    (local $rowBytes i32) (local $colBytes i32) (local $kEnd i32) (local $r0 i32) (local $r1 i32) (local $k i32)
    (local $s i32) (local $d i32) (local $e i32) (local $last i32)
    local.get $cols i32.const 2 i32.shl local.set $rowBytes
    local.get $rows i32.const 3 i32.shl local.set $colBytes
    local.get $cols i32.const 1 i32.shr_u local.set $kEnd
    block $rowsDone
      loop $rowBlock
        local.get $r0 local.get $rows i32.ge_u br_if $rowsDone
        ;; r1 = min(rows, r0 + 16)
        local.get $r0 i32.const 16 i32.add local.set $r1
        local.get $r1 local.get $rows local.get $r1 local.get $rows i32.lt_u select local.set $r1
        i32.const 1 local.set $k
        block $kDone
          loop $kLoop
            local.get $k local.get $kEnd i32.ge_u br_if $kDone
            ;; s = src + r0·rowBytes + 8k (row r0, column k); d … e = dst + k·colBytes + 8·(r0 … r1)
            local.get $src local.get $r0 local.get $rowBytes i32.mul i32.add local.get $k i32.const 3 i32.shl i32.add local.set $s
            local.get $dst local.get $k local.get $colBytes i32.mul i32.add local.tee $d
            local.get $r1 i32.const 3 i32.shl i32.add local.set $e
            local.get $d local.get $r0 i32.const 3 i32.shl i32.add local.set $d
            loop $copy
              local.get $d local.get $s i64.load i64.store
              local.get $s local.get $rowBytes i32.add local.set $s
              local.get $d i32.const 8 i32.add local.tee $d
              local.get $e i32.lt_u br_if $copy
            end
            local.get $k i32.const 1 i32.add local.set $k
            br $kLoop
          end
        end
        local.get $r1 local.set $r0
        br $rowBlock
      end
    end
    ;; columns 0 and cols/2
    local.get $dst local.get $kEnd local.get $colBytes i32.mul i32.add local.set $last
    local.get $src local.set $s
    local.get $dst local.tee $d local.get $colBytes i32.add local.set $e
    loop $edge
      local.get $d local.get $s i32.load i32.store
      local.get $d i32.const 0 i32.store offset=4
      local.get $last local.get $s i32.load offset=4 i32.store
      local.get $last i32.const 0 i32.store offset=4
      local.get $s local.get $rowBytes i32.add local.set $s
      local.get $last i32.const 8 i32.add local.set $last
      local.get $d i32.const 8 i32.add local.tee $d
      local.get $e i32.lt_u br_if $edge
    end)

  (func $cols_to_rows (export "cols_to_rows") (param $src i32) (param $dst i32) (param $rows i32) (param $cols i32)
    (local $rowBytes i32) (local $colBytes i32) (local $kEnd i32) (local $r0 i32) (local $r1 i32) (local $k i32)
    (local $s i32) (local $d i32) (local $e i32) (local $last i32)
    local.get $cols i32.const 2 i32.shl local.set $rowBytes
    local.get $rows i32.const 3 i32.shl local.set $colBytes
    local.get $cols i32.const 1 i32.shr_u local.set $kEnd
    block $rowsDone
      loop $rowBlock
        local.get $r0 local.get $rows i32.ge_u br_if $rowsDone
        local.get $r0 i32.const 16 i32.add local.set $r1
        local.get $r1 local.get $rows local.get $r1 local.get $rows i32.lt_u select local.set $r1
        i32.const 1 local.set $k
        block $kDone
          loop $kLoop
            local.get $k local.get $kEnd i32.ge_u br_if $kDone
            ;; s … e = src + k·colBytes + 8·(r0 … r1); d = dst + r0·rowBytes + 8k
            local.get $src local.get $k local.get $colBytes i32.mul i32.add local.tee $s
            local.get $r1 i32.const 3 i32.shl i32.add local.set $e
            local.get $s local.get $r0 i32.const 3 i32.shl i32.add local.set $s
            local.get $dst local.get $r0 local.get $rowBytes i32.mul i32.add local.get $k i32.const 3 i32.shl i32.add local.set $d
            loop $copy
              local.get $d local.get $s i64.load i64.store
              local.get $d local.get $rowBytes i32.add local.set $d
              local.get $s i32.const 8 i32.add local.tee $s
              local.get $e i32.lt_u br_if $copy
            end
            local.get $k i32.const 1 i32.add local.set $k
            br $kLoop
          end
        end
        local.get $r1 local.set $r0
        br $rowBlock
      end
    end
    ;; columns 0 and cols/2: their real parts
    local.get $src local.get $kEnd local.get $colBytes i32.mul i32.add local.set $last
    local.get $dst local.set $d
    local.get $src local.tee $s local.get $colBytes i32.add local.set $e
    loop $edge
      local.get $d local.get $s i32.load i32.store
      local.get $d local.get $last i32.load i32.store offset=4
      local.get $d local.get $rowBytes i32.add local.set $d
      local.get $last i32.const 8 i32.add local.set $last
      local.get $s i32.const 8 i32.add local.tee $s
      local.get $e i32.lt_u br_if $edge
    end))
`;

// ---- the column pass: complex FFTs of length rows over column-major interleaved data ----------------------

/**
 * A column-major interleaved buffer of rows·half complex values in the module the column pass uses (for one
 * row, where there is no column pass: the module of the row pass).
 */
function columnBuffer(rows: number, cols: number): { mem: Memory; base: number } {
  const half = halfCols(cols);
  const usePffft = rows === 1 ? rowEngine(cols) === 'pffft' : library === 'auto' && pffftSupports(rows, true);
  const ptr = usePffft ? pffftBuffer(3, 2 * rows * half) : kissBuffer(3, 2 * rows * half);
  return { mem: usePffft ? pffftModule() : kissModule(), base: ptr >> 2 };
}

/** Transforms the columnBuffer() data; returns where the result is (column-major interleaved). */
function columnsRun(rows: number, half: number, inverse: boolean): { mem: Memory; base: number } {
  const n = 2 * rows * half;
  if (library === 'auto' && pffftSupports(rows, true)) {
    const m = pffftModule();
    const plan = pffftPlan(true, rows);
    const inp = pffftBuffer(3, n);
    const out = pffftBuffer(4, n);
    const work = pffftBuffer(5, 2 * rows);
    const dir = inverse ? PFFFT_BACKWARD : PFFFT_FORWARD;
    for (let c = 0; c < half; c++) m._pffft_transform_ordered(plan, inp + c * rows * 8, out + c * rows * 8, work, dir);
    return { mem: m, base: out >> 2 };
  }
  const m = kissModule();
  const plan = kissPlan('c', rows, inverse);
  const inp = kissBuffer(3, n);
  const out = kissBuffer(4, n);
  for (let c = 0; c < half; c++) m._kiss_fft(plan, inp + c * rows * 8, out + c * rows * 8);
  return { mem: m, base: out >> 2 };
}

// ---- public transforms -----------------------------------------------------------------------------------

function checkShape(length: number, rows: number, cols: number): void {
  if (!(Number.isInteger(rows) && Number.isInteger(cols) && rows > 0 && cols > 0)) {
    throw new RangeError(`bad FFT shape ${rows}×${cols}`);
  }
  if (length !== rows * cols) throw new RangeError(`FFT input has ${length} values, shape ${rows}×${cols} needs ${rows * cols}`);
}

/** Where a transform left a result: float index `base` of `mem.HEAPF32` (re-read HEAPF32: a malloc may replace it). */
export interface HeapResult {
  mem: Memory;
  base: number;
  /** floats between consecutive values (real results only; spectra are interleaved complex) */
  stride: number;
}

/**
 * The forward transform of rfft2 without the copy out. The half spectrum stays in a wasm heap, column-major
 * interleaved: X[k1][k2] = heap[spec + 2i] + i·heap[spec + 2i + 1] with i = k2·rows + k1 (the index of
 * HalfSpectrum's re / im). `inverse` is where irfft2Heap() will read the spectrum it inverts, in the same
 * layout and the same heap (it may be `spec` itself: then write in place). Both stay valid until the next
 * transform of another shape; x may live in any memory (e.g. another wasm module's heap).
 */
export function rfft2Heap(x: Float32Array, rows: number, cols: number): { mem: Memory; spec: number; inverse: number } {
  checkShape(x.length, rows, cols);
  const half = halfCols(cols);
  const rowOut = rowsForward(x, rows, cols);
  const col = columnBuffer(rows, cols);
  rowsToColumns(rowOut, rows, half, col.mem, col.base);
  // One row: its spectrum already is the result; otherwise the column FFTs.
  const res = rows === 1 ? col : columnsRun(rows, half, false);
  return { mem: res.mem, spec: res.base, inverse: col.base };
}

/**
 * The inverse transform of irfft2 on the spectrum written at rfft2Heap(...).inverse (which must be the last
 * rfft2Heap call's, for this shape), without the scaling and the copy out: returns where Re(IFFT2)·rows·cols
 * is, value (r, c) at heap[base + stride·(r·cols + c)]. The spectrum there is overwritten.
 */
export function irfft2Heap(rows: number, cols: number): HeapResult {
  const half = halfCols(cols);
  const col = columnBuffer(rows, cols);
  const res = rows === 1 ? col : columnsRun(rows, half, true);
  const rowIn = rowsInverseBuffer(rows, cols);
  columnsToRows(res.mem, res.base, rows, half, rowIn);
  return rowsInverseRun(rows, cols);
}

/**
 * Forward 2-D FFT of the real matrix x (rows × cols, row-major) → its half spectrum, stored transposed
 * ([half, rows], see the top of this file). `out` is reused when given (its re / im must hold rows·half values).
 */
export function rfft2(x: Float32Array, rows: number, cols: number, out?: HalfSpectrum): HalfSpectrum {
  checkShape(x.length, rows, cols);
  const half = halfCols(cols);
  const n = rows * half;
  const spec = out ?? { rows, cols, half, re: new Float32Array(n), im: new Float32Array(n) };
  if (spec.re.length !== n || spec.im.length !== n) throw new RangeError('rfft2: out has the wrong size');
  spec.rows = rows;
  spec.cols = cols;
  spec.half = half;
  const { re, im } = spec;
  const res = rfft2Heap(x, rows, cols);
  const heap = res.mem.HEAPF32;
  for (let i = 0, o = res.spec; i < n; i++, o += 2) {
    re[i] = heap[o];
    im[i] = heap[o + 1];
  }
  return spec;
}

/**
 * Inverse 2-D FFT of a half spectrum ([half, rows]) → the real matrix rows × cols, divided by rows·cols.
 * The result is Re(IFFT2) of the full spectrum that the half spectrum stands for (spectral columns 0 and, for
 * even cols, cols/2 contribute their Hermitian part). `spec` is left unchanged; `out` is reused when given.
 */
export function irfft2(spec: HalfSpectrum, out?: Float32Array): Float32Array {
  const { rows, cols, half, re, im } = spec;
  checkShape(rows * cols, rows, cols);
  const n = rows * half;
  if (half !== halfCols(cols) || re.length !== n || im.length !== n) {
    throw new RangeError(`irfft2: spectrum arrays do not match ${rows}×${cols}`);
  }
  const y = out ?? new Float32Array(rows * cols);
  if (y.length !== rows * cols) throw new RangeError('irfft2: out has the wrong size');
  const col = columnBuffer(rows, cols);
  const heap = col.mem.HEAPF32;
  for (let i = 0, o = col.base; i < n; i++, o += 2) {
    heap[o] = re[i];
    heap[o + 1] = im[i];
  }
  const res = irfft2Heap(rows, cols);
  const scale = 1 / (rows * cols);
  const h = res.mem.HEAPF32;
  for (let i = 0, o = res.base, n2 = rows * cols, st = res.stride; i < n2; i++, o += st) y[i] = h[o] * scale;
  return y;
}
