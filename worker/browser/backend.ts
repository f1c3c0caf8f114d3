// A browser worker's backend: WebGPU where the browser gives an adapter and a probe step on it matches wasm's, else wasm (SIMD), else cpu; and why.
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { BackendInfo } from '../../shared/backend/backend.ts';
import { resolveConfig } from '../../shared/config.ts';
import { GPT } from '../../shared/model/gpt.ts';
import { STREAM } from '../../shared/model/rng.ts';
import { initFft } from '../../shared/smi/fft.ts';
import { registerWasmKernels } from '../../shared/wasm/kernels.ts';
import { probeBatch } from '../warmup.ts';

export type BrowserBackendChoice = 'auto' | 'webgpu' | 'wasm' | 'cpu';

/** Largest relative difference (max |a−b| / max |b| per tensor) a WebGPU probe may show against wasm. */
const PROBE_TOLERANCE = 1e-4;

/** The gradients of one forward+backward of the test preset (fixed weights and batch, no dropout) on the current backend. */
function probeGradients(): Float32Array[] {
  const cfg = resolveConfig({ preset: 'test', overrides: { dropout: 0, batch_size: 2 } });
  const model = new GPT(cfg, 1);
  try {
    const { x, y } = probeBatch(cfg);
    const { grads } = model.gradients(x, y, cfg.batch_size, [cfg.seed, STREAM.dropout, 0]);
    const out = grads.map((g) => g.dataSync() as Float32Array);
    tf.dispose(grads);
    return out;
  } finally {
    model.dispose();
  }
}

function relativeDiff(a: Float32Array[], b: Float32Array[]): number {
  let worst = 0;
  a.forEach((x, i) => {
    const y = b[i]!;
    let d = 0;
    let m = 0;
    for (let j = 0; j < x.length; j++) {
      d = Math.max(d, Math.abs(x[j]! - y[j]!));
      m = Math.max(m, Math.abs(y[j]!));
    }
    worst = Math.max(worst, m > 0 ? d / m : d);
  });
  return worst;
}

async function startWasm(assets: string): Promise<void> {
  // the .wasm files the coordinator serves from node_modules (tfjs-backend-wasm.wasm, -simd.wasm); no threads (they need a cross-origin-isolated page)
  setWasmPaths(assets);
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
  await tf.ready();
  registerWasmKernels();
}

/** Whether this browser's wasm runs SIMD (the wasm backend then loads its SIMD build); a one-instruction module checks. */
function wasmSimd(): boolean {
  // (module (func (result v128) i32.const 0 i8x16.splat i8x16.popcnt)) — the probe tfjs-backend-wasm itself uses
  const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);
  return WebAssembly.validate(bytes);
}

/**
 * Starts the backend of `choice` ('auto': WebGPU, then wasm, then cpu) with the project's wasm kernels and the host
 * FFT, and says which and why. `assets`: the URL of the coordinator's /worker/assets/.
 */
export async function initBrowserBackend(choice: BrowserBackendChoice, assets: string, log: (l: string) => void): Promise<BackendInfo> {
  tf.enableProdMode();
  await initFft(); // the host FFT and the WAT kernels: SMI's transforms run on the host on every browser backend
  const cores = `browser, ${globalThis.navigator.hardwareConcurrency ?? '?'} logical cores`;
  const info = (name: BackendInfo['name'], reason: string, device = cores): BackendInfo => ({ name, reason, device, spectral: 'host', gelu: 'erf' });
  const why: string[] = [];
  if (choice === 'cpu') {
    await tf.setBackend('cpu');
    return info('cpu', 'requested');
  }
  let wasmOk = false;
  try {
    await startWasm(assets);
    wasmOk = true;
  } catch (e) {
    why.push(`wasm failed (${(e as Error).message})`);
  }
  if (choice === 'auto' || choice === 'webgpu') {
    type Adapter = { info?: { vendor?: string; architecture?: string; description?: string } };
    const gpu = (globalThis.navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    const adapter = gpu ? ((await gpu.requestAdapter().catch(() => null)) as Adapter | null) : null;
    if (!gpu) why.push(globalThis.isSecureContext === false ? 'no WebGPU on a page that is not a secure context (open it over https://, or as localhost)' : 'navigator.gpu is absent (no WebGPU in this browser)');
    else if (!adapter) why.push('navigator.gpu gave no adapter');
    else {
      const label = [adapter.info?.vendor, adapter.info?.architecture, adapter.info?.description].filter(Boolean).join(' ') || 'an adapter';
      try {
        await import('@tensorflow/tfjs-backend-webgpu');
        const ref = wasmOk ? probeGradients() : null;
        if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend(webgpu) failed');
        await tf.ready();
        const t0 = performance.now();
        const got = probeGradients();
        const ms = performance.now() - t0;
        const diff = ref ? relativeDiff(got, ref) : 0;
        if (ref && !(diff <= PROBE_TOLERANCE)) throw new Error(`its probe step's gradients differ from wasm's by ${diff.toExponential(2)} (> ${PROBE_TOLERANCE})`);
        return info('webgpu', `WebGPU adapter ${label}; a probe forward+backward ran every kernel (${ms.toFixed(0)} ms)${ref ? `, gradients within ${diff.toExponential(1)} of wasm's` : ''}${choice === 'webgpu' ? '; requested' : ''}`, `WebGPU: ${label}`);
      } catch (e) {
        why.push(`WebGPU (${label}) cannot train this model: ${(e as Error).message.split('\n')[0]}`);
        if (choice === 'webgpu') throw new Error(why.join('; '));
        if (wasmOk) await tf.setBackend('wasm');
      }
    }
    if (choice === 'webgpu') throw new Error(why.join('; '));
  }
  if (wasmOk) {
    return info('wasm', `${choice === 'wasm' ? 'requested' : why.join('; ')}; wasm ${wasmSimd() ? 'with SIMD' : 'without SIMD'} and the project's kernels`);
  }
  await tf.setBackend('cpu');
  return info('cpu', `${why.join('; ')}; falling back to the pure-JS cpu backend (slow)`);
}
