// wabt in the browser worker: bundled (its wasm is inlined in its JavaScript).
import loadWabt from 'wabt';

export function wabtFactory(): typeof loadWabt {
  return loadWabt;
}
