// Chooses and starts the tfjs backend: TensorFlow on a GPU, TensorFlow on the CPU, wasm (with our kernels), or pure JS.
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import type { BackendChoice } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { TFJS_NODE_PACKAGES, backendAdvice, isNotInstalled, type BackendProblem } from './advice.ts';
import { parseNvidiaSmiList, tensorflowEnvDefaults, visibleDevices, type Gpu } from './gpus.ts';

/** What a worker runs on: a choice of --backend, or (a browser worker only) tfjs's WebGPU backend. */
export type BackendName = Exclude<BackendChoice, 'auto'> | 'webgpu';

export interface BackendInfo {
  name: BackendName; // what we run on
  reason: string; // why auto took it (or "requested")
  device: string; // e.g. "GPU 0: NVIDIA H100 80GB HBM3" or "CPU (2 cores)"
  spectral: 'host' | 'tf'; // where SMI's FFT runs: host FFT on wasm/cpu, tf.spectral on TensorFlow
  gelu: 'erf' | 'tanh';
}

const TFJS_NODE = TFJS_NODE_PACKAGES;

/** The GPUs `nvidia-smi -L` lists; without nvidia-smi, one per /dev/nvidiaN device node (no UUIDs, no MIG). */
export function systemGpus(): Gpu[] {
  try {
    const out = execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    return parseNvidiaSmiList(out);
  } catch {
    try {
      return readdirSync('/dev').filter((f) => /^nvidia\d+$/.test(f)).map((f) => Number(f.slice(6))).sort((a, b) => a - b)
        .map((index) => ({ index, name: '(nvidia-smi unavailable)', uuid: '', migs: [] }));
    } catch {
      return [];
    }
  }
}

/** The devices this process may use (GPUs, or MIG devices of GPUs in MIG mode), as CUDA_VISIBLE_DEVICES leaves them. */
export function listGpus(): string[] {
  return visibleDevices(systemGpus(), process.env.CUDA_VISIBLE_DEVICES).devices.map((d) => d.label);
}

/**
 * The device label of a TensorFlow GPU process: the one device it sees, or the first and how many more (a hello's
 * device is at most 256 characters; with several visible, tfjs-node keeps one of them).
 */
export function gpuLabel(devices: readonly string[]): string {
  const label = devices.length <= 1 ? (devices[0] ?? '') : `${devices[0]} and ${devices.length - 1} more visible`;
  return label.length > 200 ? `${label.slice(0, 197)}...` : label;
}

/** Sets TENSORFLOW_ENV (shared/backend/gpus.ts) in this process where unset; before tfjs-node loads, as CUDA and TensorFlow read them then. */
export function applyTensorflowEnv(): void {
  Object.assign(process.env, tensorflowEnvDefaults(process.env));
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
  const { registerWasmKernels } = await import('../wasm/kernels.ts');
  registerWasmKernels();
}

/** Whether the loaded TensorFlow backend found a GPU device (tfjs-node's NodeJSKernelBackend.isUsingGpuDevice). */
function tensorflowUsesGpu(): boolean {
  return (tf.backend() as { isUsingGpuDevice?: unknown }).isUsingGpuDevice === true;
}

const NO_GPU_DEVICE =
  'TensorFlow found no usable GPU device and runs on the CPU (isUsingGpuDevice is false: libtensorflow 2.9.1 needs CUDA 11.2 and ' +
  'cuDNN 8.1; on a CUDA-12-only host it cannot load libcudart.so.11.0)';

/**
 * Starts the requested backend. `auto` takes tfjs-node-gpu when a GPU is visible and it loads, else tfjs-node,
 * else wasm, else cpu. Naming a backend that is not installed throws a ConfigError (exit 2) with the install
 * command, and so does `tensorflow-gpu` when TensorFlow loads without a GPU device; `auto` then says it fell back.
 * TENSORFLOW_ENV is set first, before tfjs-node loads.
 */
export async function initBackend(choice: BackendChoice, log: (line: string) => void = () => {}): Promise<BackendInfo> {
  applyTensorflowEnv();
  tf.enableProdMode(); // skips per-op debug checks and the "install tfjs-node" banner; shapes are still checked
  const cpuDevice = `CPU (${(await import('node:os')).cpus().length} cores)`;
  const tensorflowInfo = (name: 'tensorflow-gpu' | 'tensorflow', reason: string, device: string): BackendInfo => ({
    name, reason, device, spectral: 'tf', gelu: 'erf',
  });
  const loadTf = async (name: 'tensorflow-gpu' | 'tensorflow'): Promise<string | null> => {
    const err = await tryImport(TFJS_NODE[name]);
    if (err) return err;
    if (!(await tf.setBackend('tensorflow'))) return 'the tensorflow backend did not start';
    await tf.ready();
    return null;
  };

  let info: BackendInfo;
  let gpuProblem: BackendProblem | undefined; // auto with GPUs visible that it does not use: what to do, after the backend line
  switch (choice) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      const gpus = choice === 'tensorflow-gpu' ? listGpus() : [];
      if (choice === 'tensorflow-gpu' && gpus.length === 0) {
        throw new ConfigError('E_BACKEND_MISSING', `backend tensorflow-gpu: no NVIDIA GPU is visible (CUDA_VISIBLE_DEVICES=${process.env.CUDA_VISIBLE_DEVICES ?? '<unset>'}): ${backendAdvice('tensorflow-gpu', 'no-gpu-visible')}`);
      }
      const err = await loadTf(choice);
      if (err) throw new ConfigError('E_BACKEND_MISSING', `backend ${choice} is not available (${err}): ${backendAdvice(choice, isNotInstalled(choice, err) ? 'not-installed' : 'load-failed')}`);
      if (choice === 'tensorflow-gpu' && !tensorflowUsesGpu()) {
        throw new ConfigError('E_NO_GPU_DEVICE', `backend tensorflow-gpu: @tensorflow/tfjs-node-gpu loaded, but ${NO_GPU_DEVICE}: ${backendAdvice('tensorflow-gpu', 'no-gpu-device')}`);
      }
      info = tensorflowInfo(choice, 'requested', choice === 'tensorflow-gpu' ? gpuLabel(gpus) : cpuDevice);
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
        if (!err && tensorflowUsesGpu()) {
          info = tensorflowInfo('tensorflow-gpu', `${gpus.length} GPU(s) visible and @tensorflow/tfjs-node-gpu loaded`, gpuLabel(gpus));
          break;
        }
        if (!err) {
          // libtensorflow is loaded and on the CPU: keep it (faster than wasm), and say so
          info = tensorflowInfo('tensorflow', `${gpus.length} GPU(s) visible, @tensorflow/tfjs-node-gpu loaded, but ${NO_GPU_DEVICE}: fell back to TensorFlow on the CPU (see README "Backends")`, cpuDevice);
          gpuProblem = 'no-gpu-device';
          break;
        }
        why.push(`tfjs-node-gpu did not load (${err})`);
        gpuProblem = isNotInstalled('tensorflow-gpu', err) ? 'not-installed' : 'load-failed';
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
  // The host FFT on every backend: the tf engine's gradients go through tf.spectral, but synced mode's shared
  // blend (the coordinator), --synced-blend workers and the quantile's wasm kernels run on the host.
  await (await import('../smi/fft.ts')).initFft();
  log(`backend: ${info.name} on ${info.device} (${info.reason}); GELU: exact (erf)`);
  if (gpuProblem) log(`the GPUs are not used: ${backendAdvice('tensorflow-gpu', gpuProblem)}`);
  if (info.name === 'tensorflow' || info.name === 'tensorflow-gpu') {
    log(`TensorFlow environment: ${['CUDA_VISIBLE_DEVICES', 'CUDA_DEVICE_ORDER', 'TF_FORCE_GPU_ALLOW_GROWTH'].map((k) => `${k}=${process.env[k] ?? '<unset>'}`).join(' ')}`);
  }
  return info;
}
