// `npm run bench -- SUBCOMMAND`: the benchmarks, one file each in scripts/bench/ (compute, scaling, scale, transport, timing, contention, dropout, fft, kernels, browser).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { runMain } from '../shared/cli/main.ts';
import { ConfigError } from '../shared/errors.ts';
import { closest } from '../shared/config.ts';
import { main as browser } from './bench/browser.ts';
import { main as compute } from './bench/compute.ts';
import { main as contention } from './bench/contention.ts';
import { main as dropout } from './bench/dropout.ts';
import { main as scale } from './bench/scale.ts';
import { main as scaling } from './bench/scaling.ts';
import { main as timing } from './bench/timing.ts';

const BENCHES = ['compute', 'scaling', 'scale', 'transport', 'timing', 'contention', 'dropout', 'fft', 'kernels', 'browser'];
const HELP = `Usage: npm run bench -- SUBCOMMAND [--help]

  compute     ms/step, tokens/s and the SMI overhead ratio, one process (scripts/bench/compute.ts)
  scaling     tokens/s with 1 and 2 workers, weak-scaling efficiency, time outside compute (scaling.ts)
  scale       issue 14's figures: the paper-size probe, 1–4 workers, bytes per process, two emulated hosts;
              --model: the E(N) model of docs/scaling/model.md (scale.ts, scale-model.ts)
  transport   GB/s of a paper-sized gradient-and-weights exchange over loopback (transport.ts)
  timing      what the per-phase timing costs (timing.ts)
  contention  forward+backward alone vs N processes side by side (contention.ts)
  dropout     step time with host-drawn vs on-device dropout masks, interleaved (dropout.ts)
  fft         the host FFT libraries and a full SMI step on the presets' gradient shapes (fft.ts)
  kernels     stock vs supplied tfjs wasm kernels, and the real model's forward+backward (kernels.ts)
  browser     a browser worker (headless Chromium on /worker) on wasm vs WebGPU (SwiftShader here) (browser.ts)`;

/** Runs a bench that is its own process (it starts children or sets process-wide flags). */
function ownProcess(file: string, argv: string[]): number {
  return spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'bench', file), ...argv], { stdio: 'inherit' }).status ?? 1;
}

runMain(async () => {
  const [sub, ...rest] = process.argv.slice(2);
  switch (sub) {
    case 'compute':
      return compute(rest);
    case 'scaling':
      return scaling(rest);
    case 'scale':
      return scale(rest);
    case 'timing':
      return timing(rest);
    case 'contention':
      return contention(rest);
    case 'dropout':
      return dropout(rest);
    case 'transport': // starts a worker child and may set ws environment flags
      return ownProcess('transport.ts', rest);
    case 'fft':
      return ownProcess('fft.ts', rest);
    case 'kernels':
      return ownProcess('kernels.ts', rest);
    case 'browser':
      return browser(rest);
    case undefined:
    case '--help':
      console.log(HELP);
      return sub ? 0 : 2;
    default:
      throw new ConfigError('E_BAD_FLAG', `unknown benchmark '${sub}': did you mean '${closest(sub, BENCHES)}'? (available: ${BENCHES.join(', ')})`);
  }
});
