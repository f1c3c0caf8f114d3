// The FFT libraries' Emscripten modules and pffft's wasm bytes, as Node loads them from node_modules; the browser bundle takes fft-modules.browser.ts.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** An Emscripten module factory; `instantiateWasm` is its hook for instantiating the wasm ourselves. */
export type EmscriptenFactory<M> = (o?: { instantiateWasm?: (imports: WebAssembly.Imports, receive: (i: WebAssembly.Instance, m: WebAssembly.Module) => void) => object }) => Promise<M>;

const PFFFT = '@echogarden/pffft-wasm/simd';

/** kissfft-wasm's module, instantiated. */
export async function loadKissModule<M>(): Promise<M> {
  // kissfft-wasm's Emscripten loader prefers fetch() whenever it exists, and fetch cannot read file paths
  // under Node ≥ 18: hide it while the module instantiates. Its package index also starts a load at import
  // time (with fetch visible), so require the raw Emscripten module instead.
  const loadKiss = createRequire(import.meta.url)('kissfft-wasm/lib/kissfft.js') as () => Promise<M>;
  const savedFetch = Object.getOwnPropertyDescriptor(globalThis, 'fetch');
  Object.defineProperty(globalThis, 'fetch', { value: undefined, configurable: true, writable: true });
  try {
    return await loadKiss();
  } finally {
    if (savedFetch) Object.defineProperty(globalThis, 'fetch', savedFetch);
    else delete (globalThis as { fetch?: unknown }).fetch;
  }
}

/** pffft-wasm's (SIMD build) module factory. */
export async function pffftFactory<M>(): Promise<EmscriptenFactory<M>> {
  // (its type is declared in pffft-wasm.d.ts: the package ships none)
  return (await import('@echogarden/pffft-wasm/simd')).default as EmscriptenFactory<M>;
}

/** pffft-wasm's .wasm, or undefined where it cannot be read (the factory then loads it itself). */
export async function pffftWasmBytes(): Promise<Uint8Array<ArrayBuffer> | undefined> {
  try {
    return new Uint8Array(readFileSync(createRequire(import.meta.url).resolve(PFFFT).replace(/\.js$/, '.wasm')));
  } catch {
    return undefined;
  }
}
