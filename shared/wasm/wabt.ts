// Loads wabt (the WAT assembler) as Node does, by require(); the browser bundle takes wabt.browser.ts.
import { createRequire } from 'node:module';
import type loadWabt from 'wabt';

/** wabt's module factory. */
export function wabtFactory(): typeof loadWabt {
  // Required here, not imported at the top: its 0.7 MB of JavaScript is parsed only by processes that build
  // kernels, and require() skips the scan for named exports that import() of a CommonJS file does (~12 ms
  // against ~40 ms to load it).
  return createRequire(import.meta.url)('wabt') as typeof loadWabt;
}
