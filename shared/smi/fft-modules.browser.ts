// The FFT libraries in the browser worker: the same Emscripten modules, bundled, with their .wasm fetched from the coordinator's /worker/assets/.
import loadKiss from 'kissfft-wasm/lib/kissfft.js';
import loadPffft from '@echogarden/pffft-wasm/simd';
import type { EmscriptenFactory } from './fft-modules.ts';

/** A file the coordinator serves beside the worker's script (/worker/assets/NAME). */
async function asset(name: string): Promise<Uint8Array<ArrayBuffer>> {
  const url = new URL(`assets/${name}`, globalThis.location.href);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url.pathname}: ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

export async function loadKissModule<M>(): Promise<M> {
  // given the bytes, Emscripten neither fetches nor looks for the file beside the script
  return (loadKiss as unknown as (o: { wasmBinary: Uint8Array }) => Promise<M>)({ wasmBinary: await asset('kissfft.wasm') });
}

export async function pffftFactory<M>(): Promise<EmscriptenFactory<M>> {
  return loadPffft as EmscriptenFactory<M>;
}

export function pffftWasmBytes(): Promise<Uint8Array<ArrayBuffer> | undefined> {
  return asset('pffft.wasm');
}
