// The environment that puts a process and its children on the stand-ins (test/standin): fake tfjs-node(-gpu)
// through a module-resolution hook (NODE_OPTIONS), and a fake nvidia-smi first on PATH.
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const HERE = import.meta.dirname;

export interface StandInOptions {
  listing?: 'h100x4' | 'mig' | 'none'; // what the stand-in nvidia-smi -L prints [h100x4]
  gpuDevice?: boolean; // whether tfjs-node-gpu reports a GPU device (isUsingGpuDevice) [true]
  packages?: string; // which tfjs-node packages are "installed": gpu, cpu [gpu]
  jit?: number; // ms each kernel's first use (per input shapes) blocks, as a compile from PTX would [0]
}

/** Variables to add to a child's environment (test/helpers runScript / startScript `env`). */
export function standInEnv(o: StandInOptions = {}): NodeJS.ProcessEnv {
  const register = `--import=${pathToFileURL(join(HERE, 'register.mjs')).href}`;
  return {
    NODE_OPTIONS: [process.env.NODE_OPTIONS, register].filter(Boolean).join(' '),
    PATH: [join(HERE, 'bin'), process.env.PATH].filter(Boolean).join(delimiter),
    SMI_STANDIN_NVIDIA_SMI: o.listing ?? 'h100x4',
    SMI_STANDIN_GPU_DEVICE: o.gpuDevice === false ? '0' : '1',
    SMI_STANDIN_PACKAGES: o.packages ?? 'gpu',
    SMI_STANDIN_JIT_MS: String(o.jit ?? 0),
  };
}
