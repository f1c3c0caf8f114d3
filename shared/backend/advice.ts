// The one-line advice for a TensorFlow backend that cannot be used here: initBackend's errors and `npm run doctor` print these same words.

export type TensorflowBackend = 'tensorflow-gpu' | 'tensorflow';

/** Why a TensorFlow backend cannot be used, in the order initBackend finds out. */
export type BackendProblem = 'no-gpu-visible' | 'not-installed' | 'load-failed' | 'no-gpu-device';

export const TFJS_NODE_PACKAGES = { 'tensorflow-gpu': '@tensorflow/tfjs-node-gpu', tensorflow: '@tensorflow/tfjs-node' } as const;

/** The install command: --foreground-scripts shows the install script's output (an optional dependency that fails is otherwise removed without a word). */
export function installCommand(name: TensorflowBackend): string {
  return `npm install --foreground-scripts ${TFJS_NODE_PACKAGES[name]}@4.22.0`;
}

/** Whether an import error says the package itself is absent (not one of its files or libraries). */
export function isNotInstalled(name: TensorflowBackend, message: string): boolean {
  return message.includes(`Cannot find package '${TFJS_NODE_PACKAGES[name]}'`) || message.includes(`Cannot find module '${TFJS_NODE_PACKAGES[name]}'`);
}

/** What to do, in one line, naming `npm run doctor` (which shows what this machine lacks) and docs/gpu.md. */
export function backendAdvice(name: TensorflowBackend, problem: BackendProblem): string {
  const doctor = `\`npm run doctor -- --backend ${name}\``;
  switch (problem) {
    case 'no-gpu-visible':
      return `nvidia-smi lists no NVIDIA GPU here, or CUDA_VISIBLE_DEVICES hides them all: ${doctor} shows which; docs/gpu.md`;
    case 'not-installed':
      return `install it with \`${installCommand(name)}\`${name === 'tensorflow-gpu' ? ' (Linux x86-64)' : ''}: its install script (allowed in package.json's allowScripts) downloads libtensorflow 2.9.1 and the prebuilt binding from storage.googleapis.com; then ${doctor}; docs/gpu.md`;
    case 'load-failed':
      return `it is installed but does not load: ${doctor} shows the error and what is missing (its native binding, libtensorflow, or a library they need); docs/gpu.md`;
    case 'no-gpu-device':
      return `libtensorflow 2.9.1 needs the CUDA 11 libraries (libcudart.so.11.0, libcudnn.so.8, cuBLAS, cuFFT, cuRAND, cuSOLVER, cuSPARSE 11) beside the driver, which a CUDA-12-only host lacks: ${doctor} lists the missing ones, docs/gpu.md "A CUDA 12 host" the set-up; or use TensorFlow on the CPU on purpose with --backend tensorflow`;
    default: {
      const never: never = problem;
      return never;
    }
  }
}
