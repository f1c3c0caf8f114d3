// The only access to the tfjs wasm backend's internals outside its kernels: tensor memory read and written in place in its heap.
import * as tf from '@tensorflow/tfjs';
import type { DataId, DataType, TensorInfo } from '@tensorflow/tfjs';

/** The parts of the tfjs wasm backend that read and write tensor memory in place (as shared/wasm/kernels.ts does). */
export interface HeapBackend {
  dataIdMap: { has(dataId: DataId): boolean };
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  disposeData(dataId: DataId, force?: boolean): boolean;
}

/** The wasm backend holding g, or null (another backend: then dataSync() and tf.tensor()). */
export function heapBackendOf(g: tf.Tensor): HeapBackend | null {
  if (tf.getBackend() !== 'wasm') return null;
  const be = tf.backend() as unknown as Partial<HeapBackend>;
  const ok = typeof be.typedArrayFromHeap === 'function' && typeof be.makeOutput === 'function' && be.dataIdMap?.has(g.dataId) === true;
  return ok ? (be as HeapBackend) : null;
}


/**
 * Copies the float32 tensor t into `out` and returns it. On the wasm backend the values are read from its heap in
 * place (dataSync() would allocate a fresh array per call: at one a step per parameter that makes garbage the
 * collector has to chase while the other processes on the machine compute).
 */
export function readInto(t: tf.Tensor, out: Float32Array): Float32Array {
  if (t.size !== out.length) throw new RangeError(`readInto: a tensor of ${t.size} values into ${out.length}`);
  const heap = t.dtype === 'float32' ? heapBackendOf(t) : null;
  if (heap) {
    out.set(heap.typedArrayFromHeap(t));
    return out;
  }
  out.set(t.dataSync() as Float32Array);
  return out;
}
