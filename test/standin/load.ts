// Loads the stand-in tfjs-node(-gpu) into this test process (the hook of register.mjs, then the package), for
// in-process tests on the 'tensorflow' backend. tf's backend is 'tensorflow' afterwards, as with the real package.
import { register } from 'node:module';
import type { StandInBackend } from './tfjs-node.ts';

let hooked = false;

/** Installs the stand-in's resolution hook (once) and imports `pkg` through it; returns the stand-in backend. */
export async function loadStandIn(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node' = '@tensorflow/tfjs-node-gpu'): Promise<StandInBackend> {
  if (!hooked) register('./hooks.mjs', import.meta.url);
  hooked = true;
  await import(pkg); // a variable specifier: TypeScript does not resolve it (the package is not installed)
  const tf = await import('@tensorflow/tfjs');
  return tf.engine().findBackend('tensorflow') as unknown as StandInBackend;
}
