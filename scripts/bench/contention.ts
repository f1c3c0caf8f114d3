// `npm run bench -- contention [--processes 2] [--steps 60]`: what sharing the machine costs compute alone, with no
// network: the cpu preset's forward+backward (batch 12, as one worker's share) in one process, then in N processes
// side by side. Their ratio is the part of a distributed step's slowdown that no protocol can remove.
import * as tf from '@tensorflow/tfjs';
import { spawn } from 'node:child_process';
import { initBackend } from '../../shared/backend/backend.ts';
import { resolveConfig } from '../../shared/config.ts';
import { GPT } from '../../shared/model/gpt.ts';
import { NODE_HEAP_FLAGS } from '../../shared/cli/node-flags.ts';
import { median } from '../../shared/stats.ts';
import { cpus } from 'node:os';
import { parseWithTable } from '../../shared/cli/options.ts';
import { S, positiveInt } from './flags.ts';

/** Child: times `steps` forward+backward passes (first 10 left out) and prints their median ms as JSON. */
async function loop(steps: number): Promise<void> {
  await initBackend('auto');
  const cfg = resolveConfig({ preset: 'cpu' });
  const model = new GPT(cfg, 1337);
  const n = cfg.batch_size;
  const x = new Int32Array(n * cfg.block_size).map((_, i) => (i * 7) % 65);
  const y = new Int32Array(n * cfg.block_size).map((_, i) => (i * 11) % 65);
  const times: number[] = [];
  for (let s = 0; s < steps + 10; s++) {
    const t0 = performance.now();
    const { grads } = model.gradients(x, y, n, [1, 2, s], n);
    for (const g of grads) g.dataSync();
    tf.dispose(grads);
    times.push(performance.now() - t0);
  }
  console.log(JSON.stringify({ medianMs: median(times.slice(10)) }));
}

function child(steps: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [...NODE_HEAP_FLAGS, '--import', 'tsx', import.meta.filename, '--child', String(steps)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!).medianMs as number) : reject(new Error(`compute loop exited ${code}`))));
  });
}

/** Median forward+backward ms of one process alone, then of each of `processes` run side by side. */
export async function benchContention(processes: number, steps: number): Promise<{ alone: number; together: number[] }> {
  const alone = await child(steps);
  const together = await Promise.all(Array.from({ length: processes }, () => child(steps)));
  return { alone, together };
}

if (process.argv[2] === '--child') await loop(Number(process.argv[3]));

const CONTENTION_OPTIONS = {
  processes: { type: 'string' as const, arg: 'N', section: S, help: 'processes side by side [2]' },
  steps: { type: 'string' as const, arg: 'N', section: S, help: 'measured passes per process [60]' },
  repeat: { type: 'string' as const, arg: 'R', section: S, help: 'alone-then-together pairs; the ratio reported is their median [5]' },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};

export async function main(argv: string[]): Promise<number> {
  const v = parseWithTable(argv, CONTENTION_OPTIONS);
  if (v.help) {
    console.log('Usage: npm run bench -- contention [--processes 2] [--steps 60] [--repeat 5]\n\nThe cpu preset\'s forward+backward (batch 12) in one process alone, then in N processes side by side, no network:\nthe slowdown from sharing the machine alone (caches, memory bandwidth), which caps weak-scaling efficiency.');
    return 0;
  }
  const processes = positiveInt(v, 'processes', 2);
  const steps = positiveInt(v, 'steps', 60);
  const repeat = positiveInt(v, 'repeat', 5);
  console.log(`forward+backward, cpu preset, batch 12, on ${cpus().length} cores; median ms per process:`);
  const slowdowns: number[] = [];
  const caps: number[] = [];
  for (let r = 0; r < repeat; r++) {
    const { alone, together } = await benchContention(processes, steps);
    slowdowns.push(median(together) / alone);
    caps.push(alone / Math.max(...together));
    console.log(`  ${r + 1}: alone ${alone.toFixed(1)}; ${processes} side by side ${together.map((m) => m.toFixed(1)).join(', ')}`);
  }
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)}`;
  console.log(`slowdown ×${median(slowdowns).toFixed(3)} (median over ${repeat} pairs of side-by-side median / alone; range ${range(slowdowns)})`);
  console.log(`weak-scaling efficiency cap from this alone (alone / slowest side by side): ${median(caps).toFixed(3)} (range ${range(caps)})`);
  return 0;
}
