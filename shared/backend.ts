// Chooses and starts the tfjs backend: TensorFlow on a GPU, TensorFlow on the CPU, wasm (with our kernels), or pure JS.
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { BackendChoice } from './config.ts';
import { ConfigError } from './config.ts';

export type BackendName = Exclude<BackendChoice, 'auto'>;

export interface BackendInfo {
  name: BackendName; // what we run on
  reason: string; // why auto took it (or "requested")
  device: string; // e.g. "NVIDIA H100 (GPU 0)" or "CPU (2 cores)"
  spectral: 'host' | 'tf'; // where SMI's FFT runs: host FFT on wasm/cpu, tf.spectral on TensorFlow
  gelu: 'erf' | 'tanh';
}

const INSTALL_HINT: Record<'tensorflow-gpu' | 'tensorflow', string> = {
  'tensorflow-gpu':
    'install it with `npm install @tensorflow/tfjs-node-gpu@4.22.0` on a Linux x86-64 machine with CUDA 11.2 and cuDNN 8.1 ' +
    '(its install script downloads libtensorflow; with npm >= 11 allow it: `npm install-scripts approve @tensorflow/tfjs-node-gpu`); see README "Backends"',
  tensorflow:
    'install it with `npm install @tensorflow/tfjs-node@4.22.0` (its install script downloads libtensorflow; with npm >= 11 allow it: ' +
    '`npm install-scripts approve @tensorflow/tfjs-node`); see README "Backends"',
};

/** GPUs the NVIDIA driver lists, without loading CUDA (so that auto can decide before importing tfjs-node-gpu). */
export function listGpus(): string[] {
  try {
    const out = execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    const all = out.split('\n').filter((l) => l.startsWith('GPU '));
    const visible = process.env.CUDA_VISIBLE_DEVICES;
    if (visible === undefined || visible === '') return all;
    const ids = new Set(visible.split(',').map((s) => s.trim()));
    return all.filter((_, i) => ids.has(String(i)));
  } catch {
    return existsSync('/dev/nvidia0') ? ['GPU 0: (nvidia-smi unavailable)'] : [];
  }
}

async function tryImport(pkg: string): Promise<string | null> {
  try {
    await import(pkg);
    return null;
  } catch (e) {
    return (e as Error).message.split('\n')[0] ?? String(e);
  }
}

async function startWasm(): Promise<void> {
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
  await tf.ready();
  const { registerWasmKernels } = await import('./wasm-kernels.ts');
  registerWasmKernels();
}

/**
 * Starts the requested backend. `auto` takes tfjs-node-gpu when a GPU is visible and it loads, else tfjs-node,
 * else wasm, else cpu. Naming a backend that is not installed throws a ConfigError (exit 2) with the install command.
 */
export async function initBackend(choice: BackendChoice, log: (line: string) => void = () => {}): Promise<BackendInfo> {
  tf.enableProdMode(); // skips per-op debug checks and the "install tfjs-node" banner; shapes are still checked
  const cpuDevice = `CPU (${(await import('node:os')).cpus().length} cores)`;
  const tensorflowInfo = (name: 'tensorflow-gpu' | 'tensorflow', reason: string, device: string): BackendInfo => ({
    name, reason, device, spectral: 'tf', gelu: 'erf',
  });
  const loadTf = async (name: 'tensorflow-gpu' | 'tensorflow'): Promise<string | null> => {
    const err = await tryImport(name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');
    if (err) return err;
    if (!(await tf.setBackend('tensorflow'))) return 'the tensorflow backend did not start';
    await tf.ready();
    return null;
  };

  let info: BackendInfo;
  switch (choice) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      const gpus = choice === 'tensorflow-gpu' ? listGpus() : [];
      if (choice === 'tensorflow-gpu' && gpus.length === 0) {
        throw new ConfigError('E_BACKEND_MISSING', 'backend tensorflow-gpu: no NVIDIA GPU is visible (nvidia-smi lists none; check CUDA_VISIBLE_DEVICES)');
      }
      const err = await loadTf(choice);
      if (err) throw new ConfigError('E_BACKEND_MISSING', `backend ${choice} is not available (${err}): ${INSTALL_HINT[choice]}`);
      info = tensorflowInfo(choice, 'requested', choice === 'tensorflow-gpu' ? gpus.join('; ') : cpuDevice);
      break;
    }
    case 'wasm':
      await startWasm();
      info = { name: 'wasm', reason: 'requested', device: cpuDevice, spectral: 'host', gelu: 'erf' };
      break;
    case 'cpu':
      await tf.setBackend('cpu');
      await tf.ready();
      info = { name: 'cpu', reason: 'requested', device: cpuDevice, spectral: 'host', gelu: 'erf' };
      break;
    case 'auto': {
      const gpus = listGpus();
      const why: string[] = [];
      if (gpus.length > 0) {
        const err = await loadTf('tensorflow-gpu');
        if (!err) {
          info = tensorflowInfo('tensorflow-gpu', `${gpus.length} GPU(s) visible and @tensorflow/tfjs-node-gpu loaded`, gpus.join('; '));
          break;
        }
        why.push(`tfjs-node-gpu did not load (${err})`);
      } else {
        why.push('no GPU visible');
      }
      const err = await loadTf('tensorflow');
      if (!err) {
        info = tensorflowInfo('tensorflow', `${why.join('; ')}; @tensorflow/tfjs-node loaded`, cpuDevice);
        break;
      }
      why.push('tfjs-node not installed');
      try {
        await startWasm();
        info = { name: 'wasm', reason: `${why.join('; ')}; wasm is the fastest CPU backend here`, device: cpuDevice, spectral: 'host', gelu: 'erf' };
      } catch (e) {
        why.push(`wasm failed (${(e as Error).message})`);
        await tf.setBackend('cpu');
        info = { name: 'cpu', reason: `${why.join('; ')}; falling back to the pure-JS cpu backend (slow)`, device: cpuDevice, spectral: 'host', gelu: 'erf' };
      }
      break;
    }
    default: {
      const never: never = choice;
      throw new ConfigError('E_BAD_VALUE', `unknown backend ${String(never)}`);
    }
  }
  // The host engine's FFTs; the tf engine still selects its thresholds on the host (shared/quantile.ts), whose
  // wasm kernels need the WAT assembler (initFft() loads it too).
  if (info.spectral === 'host') await (await import('./fft.ts')).initFft();
  else await (await import('./wasm-asm.ts')).initWasmAsm();
  log(`backend: ${info.name} on ${info.device} (${info.reason}); GELU: exact (erf)`);
  return info;
}

/**
 * Copies the float32 tensor t into `out` and returns it. On the wasm backend the values are read from its heap in
 * place (dataSync() would allocate a fresh array per call: at one a step per parameter that makes garbage the
 * collector has to chase while the other processes on the machine compute).
 */
export function readInto(t: tf.Tensor, out: Float32Array): Float32Array {
  if (t.size !== out.length) throw new RangeError(`readInto: a tensor of ${t.size} values into ${out.length}`);
  if (tf.getBackend() === 'wasm') {
    const be = tf.backend() as unknown as { dataIdMap?: { has(id: unknown): boolean }; typedArrayFromHeap?: (t: tf.TensorInfo) => Float32Array };
    if (typeof be.typedArrayFromHeap === 'function' && be.dataIdMap?.has(t.dataId) === true && t.dtype === 'float32') {
      out.set(be.typedArrayFromHeap(t));
      return out;
    }
  }
  out.set(t.dataSync() as Float32Array);
  return out;
}
