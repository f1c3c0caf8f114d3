// WebAssembly text (WAT) → instance, for the short SIMD kernels written as WAT in shared/smi/fft.ts,
// shared/smi/quantile.ts and shared/smi/host.ts (so they can be read and reviewed as such), built at load time.
// The assembler is wabt (the WebAssembly Binary Toolkit, compiled to wasm): it loads asynchronously, once,
// in initWasmAsm() (initFft() and initBackend() call it); instantiate() is synchronous after that.
import type loadWabt from 'wabt';
import { wabtFactory } from './wabt.ts';

type Wabt = Awaited<ReturnType<typeof loadWabt>>;

let wabt: Wabt | undefined;
let loading: Promise<void> | undefined;

/** Loads the assembler once; every later call returns the same promise. */
export function initWasmAsm(): Promise<void> {
  loading ??= (async () => {
    wabt = await wabtFactory()();
  })();
  return loading;
}

/** Whether initWasmAsm() has finished, i.e. instantiate() can be called. */
export function wasmAsmReady(): boolean {
  return wabt !== undefined;
}

/** Assembles a WAT module (SIMD enabled) to its binary; throws wabt's messages (with line:column) on bad text. */
export function assemble(text: string, name = 'kernel.wat'): Uint8Array<ArrayBuffer> {
  if (!wabt) throw new Error('wasm-asm: not loaded, await initWasmAsm() first');
  const mod = wabt.parseWat(name, text, { simd: true });
  try {
    mod.validate(); // (wabt's default features, SIMD among them)
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

/** Assembles `text` (a whole module) and instantiates it with `imports`; returns its exports. */
export function instantiate<T>(text: string, imports: WebAssembly.Imports, name?: string): T {
  return new WebAssembly.Instance(new WebAssembly.Module(assemble(text, name)), imports).exports as T;
}
