// What per-phase timing costs: the bookkeeping itself, timed in a loop, and whole runs with --timing on and off.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NODE_HEAP_FLAGS } from '../../shared/cli/node-flags.ts';
import { StepPhases, TraceWriter } from '../../coordinator/phases.ts';
import { median } from '../../shared/stats.ts';
import { parseWithTable } from '../../shared/cli/options.ts';
import { DEFAULT_DATA_PATH } from '../../shared/model/data.ts';
import { S } from './flags.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** µs of phase bookkeeping for one step of `workers` workers and two rounds (synced mode), trace included. */
export function bookkeepingMicros(workers: number, reps = 2000): number {
  const dir = mkdtempSync(join(tmpdir(), 'smi-timing-'));
  const trace = new TraceWriter(join(dir, 'trace.json'));
  const ids = Array.from({ length: workers }, (_, i) => `w${i}`);
  const reported = { compute: 170, spectral: 4, decode: 0.2 };
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) {
    const p = new StepPhases();
    for (const round of ['grads', 'blended']) {
      p.beginRound();
      const now = performance.now();
      for (const id of ids) p.encoded(id, 0.1);
      for (const id of ids) p.roundTrip(id, round, now, now + 180, reported, 0.1, 0.2);
      p.endRound();
      p.mark('reduce');
      p.mark('spectral');
    }
    p.mark('optimizer');
    for (const id of ids) p.bytes(id, 3e6, 5e6);
    p.finish();
    trace.step(r, p);
  }
  const us = ((performance.now() - t0) * 1000) / reps;
  trace.close();
  rmSync(dir, { recursive: true, force: true });
  return us;
}

function run(args: string[]): Promise<number[]> {
  const out = join(mkdtempSync(join(tmpdir(), 'smi-timing-run-')), 'run');
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [...NODE_HEAP_FLAGS, '--import', 'tsx', join(ROOT, 'scripts', 'train.ts'), ...args, '--out', out], { cwd: ROOT, stdio: 'ignore' });
    child.on('exit', (code) => {
      if (code !== 0) return fail(new Error(`train ${args.join(' ')} exited ${code}`));
      const ms = readFileSync(join(out, 'log.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.kind === 'step' && r.step > 5).map((r) => r.ms as number);
      done(ms);
    });
  });
}

/** Whole runs alternating --timing on / off; the median step time of each. */
export async function endToEnd(pairs: number, steps: number, data?: string): Promise<{ on: number; off: number }> {
  const base = ['--preset', 'cpu', '--workers', '2', '--max-iters', String(steps), '--eval-interval', String(steps), '--eval-iters', '1', ...(data ? ['--data', data] : [])];
  const on: number[] = [];
  const off: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const order = i % 2 ? ['off', 'on'] : ['on', 'off'];
    for (const t of order) (t === 'on' ? on : off).push(...(await run([...base, '--timing', t])));
  }
  return { on: median(on), off: median(off) };
}

export async function main(argv: string[]): Promise<number> {
  const v = parseWithTable(argv, {
    pairs: { type: 'string' as const, arg: 'N', section: S, help: 'on/off run pairs [2]' },
    steps: { type: 'string' as const, arg: 'N', section: S, help: 'steps per run [30]' },
    data: { type: 'string' as const, arg: 'FILE', section: S, help: `corpus [${DEFAULT_DATA_PATH}]` },
    help: { type: 'boolean' as const, section: S, help: 'this text' },
  });
  if (v.help) {
    console.log('Usage: npm run bench -- timing [--pairs 2] [--steps 30]\n\nWhat per-phase timing costs: the bookkeeping per step, timed in a loop (trace included), and the median step time of\ncpu-preset runs with 2 workers and --timing on vs off, alternated.');
    return 0;
  }
  const us = bookkeepingMicros(2);
  console.log(`phase bookkeeping + trace, 2 workers, 2 rounds: ${us.toFixed(1)} µs per step`);
  const { on, off } = await endToEnd(Number(v.pairs ?? 2), Number(v.steps ?? 30), v.data as string | undefined);
  console.log(`cpu preset, 2 workers, median ms/step: timing on ${on.toFixed(1)}, off ${off.toFixed(1)} (on/off ${(on / off).toFixed(3)}); the bookkeeping is ${((100 * us) / 1000 / off).toFixed(3)}% of a step`);
  return 0;
}
