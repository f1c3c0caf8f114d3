// AdamW's update of a tensor as one wasm SIMD pass in the tfjs wasm backend's heap (WAT, assembled at load).
//
// shared/model/adamw.ts writes the update as eleven tensor ops, each a pass over the tensor with a new output in
// the heap: ~10 ns per parameter on this machine, the largest part of an owner's update at the paper preset's size.
// Here the same operations, in the same order, on the same float32 values, run in one pass that reads g, p, m and v
// once and writes m and v in place and p into a new tensor. f32x4 and f32 mul, add, sub, div and sqrt round once to
// float32 as the backend's kernels do (IEEE 754), so the moments and weights are those of the tensor ops to the bit
// (test/shared/model/adamw.test.ts compares them bit for bit).
import * as tf from '@tensorflow/tfjs';
import type { DataId, TensorInfo } from '@tensorflow/tfjs';
import { instantiate, wasmAsmReady } from './asm.ts';

/** AdamW's float32 constants of one step, as the tensor ops see them (each a float32 scalar). */
export interface AdamWConstants {
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  /** √(1 − β₂ᵗ) */
  bc2Sqrt: number;
  eps: number;
  /** lr / (1 − β₁ᵗ) */
  stepSize: number;
}

interface AdamWKernel {
  /** pointers in bytes, n values; decay 1 for a tensor without weight decay */
  adamw(g: number, p: number, out: number, m: number, v: number, n: number, b1: number, c1: number, b2: number, c2: number, bc: number, eps: number, ss: number, decay: number): void;
}

/**
 * One loop of the pass over [out, end): `v` = 4 lanes of v128 at a time (the constants splat into $…v locals), `s` =
 * one f32 at a time (the tail). The same instructions in both, so the tail rounds as the lanes do.
 */
function adamwLoop(w: 'v' | 's', end: string): string {
  const [t, load, store, bytes, k] = w === 'v' ? ['f32x4', 'v128.load', 'v128.store', 16, 'v'] : ['f32', 'f32.load', 'f32.store', 4, ''];
  return `
    block $done_${w}
      local.get $out local.get ${end} i32.ge_u br_if $done_${w}
      loop $top_${w}
        local.get $g ${load} local.set $g${w}
        local.get $m ${load} local.get $b1${k} ${t}.mul
        local.get $g${w} local.get $c1${k} ${t}.mul
        ${t}.add local.set $m${w}
        local.get $m local.get $m${w} ${store}
        local.get $v ${load} local.get $b2${k} ${t}.mul
        local.get $g${w} local.get $g${w} ${t}.mul local.get $c2${k} ${t}.mul
        ${t}.add local.set $v${w}
        local.get $v local.get $v${w} ${store}
        local.get $out
        local.get $p ${load} local.get $dec${k} ${t}.mul
        local.get $m${w}
        local.get $v${w} ${t}.sqrt local.get $bc${k} ${t}.div local.get $eps${k} ${t}.add
        ${t}.div local.get $ss${k} ${t}.mul
        ${t}.sub ${store}
        local.get $g i32.const ${bytes} i32.add local.set $g
        local.get $p i32.const ${bytes} i32.add local.set $p
        local.get $m i32.const ${bytes} i32.add local.set $m
        local.get $v i32.const ${bytes} i32.add local.set $v
        local.get $out i32.const ${bytes} i32.add local.tee $out
        local.get ${end} i32.lt_u br_if $top_${w}
      end
    end`;
}

const CONSTANTS = ['b1', 'c1', 'b2', 'c2', 'bc', 'eps', 'ss', 'dec'];

const ADAMW_WAT = `
(module
  (import "env" "memory" (memory 0))
  ;; m = f32(m·b1) + f32(g·c1); v = f32(v·b2) + f32(f32(g·g)·c2); den = f32(f32(√v / bc) + eps);
  ;; out = f32(p·decay) − f32(f32(m / den)·ss): 4 lanes at a time, then one at a time
  (func $adamw (export "adamw") (param $g i32) (param $p i32) (param $out i32) (param $m i32) (param $v i32) (param $n i32)
    ${CONSTANTS.map((c) => `(param $${c} f32)`).join(' ')}
    (local $end4 i32) (local $end i32)
    ${CONSTANTS.map((c) => `(local $${c}v v128)`).join(' ')}
    (local $gv v128) (local $mv v128) (local $vv v128) (local $gs f32) (local $ms f32) (local $vs f32)
    local.get $out local.get $n i32.const -4 i32.and i32.const 2 i32.shl i32.add local.set $end4
    local.get $out local.get $n i32.const 2 i32.shl i32.add local.set $end
    ${CONSTANTS.map((c) => `local.get $${c} f32x4.splat local.set $${c}v`).join('\n    ')}${adamwLoop('v', '$end4')}${adamwLoop('s', '$end')}))
`;

/** The parts of the (partly private) wasm backend this reaches: its module's memory and its tensors' places in it. */
interface WasmBackendLike {
  wasm: { asm?: { memory?: unknown } };
  dataIdMap: { get(dataId: DataId): { memoryOffset: number; dtype: string } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
}

let compiled: { memory: WebAssembly.Memory; kernel: AdamWKernel } | undefined;

/** The kernel in the current backend's heap, or undefined: not the wasm backend, a shared (threaded) heap, no assembler loaded. */
function kernelOf(be: WasmBackendLike): AdamWKernel | undefined {
  const memory = be.wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory) || !(memory.buffer instanceof ArrayBuffer) || !wasmAsmReady()) return undefined;
  if (compiled?.memory !== memory) compiled = { memory, kernel: instantiate<AdamWKernel>(ADAMW_WAT, { env: { memory } }, 'adamw.wat') };
  return compiled.kernel;
}

/** Whether wasmAdamW() can run here: the wasm backend is current and its heap can be reached. */
export function wasmAdamWAvailable(): boolean {
  return tf.getBackend() === 'wasm' && kernelOf(tf.backend() as unknown as WasmBackendLike) !== undefined;
}

/**
 * One AdamW step of every params[i] with grads[i], its moments m[i] and v[i] updated in place (they must be this
 * optimizer's own: no other tensor may share their data) and params[i] assigned a new tensor (other tensors may
 * hold its old data, e.g. a product's packed weights). `decay[i]`: the float32 factor 1 − lr·wd, or 1.
 * Needs wasmAdamWAvailable(); all tensors float32 on the wasm backend.
 */
export function wasmAdamW(params: readonly tf.Variable[], grads: readonly tf.Tensor[], m: readonly tf.Variable[], v: readonly tf.Variable[], decay: readonly number[], c: AdamWConstants): void {
  const be = tf.backend() as unknown as WasmBackendLike;
  const k = kernelOf(be);
  if (!k || tf.getBackend() !== 'wasm') throw new Error('wasmAdamW: the wasm backend with a reachable heap is needed (wasmAdamWAvailable())');
  const at = (t: TensorInfo, what: string): number => {
    const d = be.dataIdMap.get(t.dataId);
    if (!d || d.dtype !== 'float32') throw new TypeError(`wasmAdamW: ${what} is not a float32 tensor of the wasm backend`);
    return d.memoryOffset;
  };
  // every tensor checked (and placed) before any is written: a refused step leaves weights and moments as they were
  const places = params.map((p, i) => {
    const g = grads[i];
    if (!g || g.size !== p.size || m[i]?.size !== p.size || v[i]?.size !== p.size) throw new RangeError(`wasmAdamW: tensor ${i}: sizes differ (p ${p.size}, g ${g?.size})`);
    return { g: at(g, 'a gradient'), p: at(p, 'a parameter'), m: at(m[i]!, 'a moment'), v: at(v[i]!, 'a moment') };
  });
  params.forEach((p, i) => {
    const o = places[i]!; // tensors do not move in the heap: an allocation that grows it keeps every offset
    const out = be.makeOutput(p.shape.slice(), 'float32');
    k.adamw(o.g, o.p, at(out, 'the output'), o.m, o.v, p.size, c.beta1, c.oneMinusBeta1, c.beta2, c.oneMinusBeta2, c.bc2Sqrt, c.eps, c.stepSize, decay[i]!);
    const t = tf.engine().makeTensorFromTensorInfo(out);
    p.assign(t);
    t.dispose();
  });
}
