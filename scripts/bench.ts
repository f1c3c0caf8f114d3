// `npm run bench -- compute`: training-step speed on the chosen backend and SMI's overhead, measured interleaved.
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../shared/backend/backend.ts';
import { parseWithTable } from '../shared/cli/options.ts';
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { BACKENDS, ConfigError, PRESET_NAMES, SPECTRAL_MODES, closest, oneOf, resolveConfig, type SmiRunName } from '../shared/config.ts';
import { benchScaling, scalingTable } from './bench/scaling.ts';
import { benchContention } from './bench/contention.ts';
import { benchDropout, dropoutTable } from './bench/dropout.ts';
import { bookkeepingMicros, endToEnd } from './bench/timing.ts';
import { DEFAULT_DATA_PATH, loadCorpus, makeBatch, trainOffsets } from '../shared/model/data.ts';
import { STREAM } from '../shared/model/rng.ts';
import { applyGradients, createRunState, disposeRunState } from '../shared/train/loop.ts';
import { runMain } from '../shared/cli/main.ts';
import { median } from '../shared/stats.ts';

const S = 'run' as const;
const OPTIONS = {
  preset: { type: 'string' as const, arg: 'P', section: S, help: 'preset [cpu]' },
  backend: { type: 'string' as const, arg: 'B', section: S, help: `${BACKENDS.join('|')} [auto]` },
  steps: { type: 'string' as const, arg: 'N', section: S, help: 'measured steps per variant [20]' },
  warmup: { type: 'string' as const, arg: 'N', section: S, help: 'unmeasured steps per variant first [3]' },
  data: { type: 'string' as const, arg: 'FILE', section: S, help: `corpus [${DEFAULT_DATA_PATH}]` },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};
const HELP = `Usage: npm run bench -- compute [--preset cpu] [--backend auto] [--steps 20] [--warmup 3]

compute: trains the preset with the baseline (plain AdamW) and the cosine SMI run side by side in one process,
alternating one step of each, and prints the median ms/step, tokens/s, and the SMI overhead ratio
(cosine step time / baseline step time) with its spread. Also splits the step into forward+backward and the
optimizer side (clip, SMI, AdamW).`;

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

async function compute(argv: string[]): Promise<number> {
  const v = parseWithTable(argv, OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const preset = oneOf('preset', (v.preset as string | undefined) ?? 'cpu', PRESET_NAMES);
  const steps = Number(v.steps ?? 20);
  const warmup = Number(v.warmup ?? 3);
  if (!Number.isInteger(steps) || steps < 3 || !Number.isInteger(warmup) || warmup < 0) throw new ConfigError('E_BAD_FLAG', '--steps must be an integer >= 3 and --warmup >= 0');
  const corpus = loadCorpus((v.data as string | undefined) ?? DEFAULT_DATA_PATH);
  const backend = await initBackend(v.backend === undefined ? 'auto' : oneOf('backend', v.backend as string, BACKENDS), (l) => console.log(l));
  const variants: SmiRunName[] = ['baseline', 'cosine'];
  const runs = variants.map((smi) => {
    const cfg = resolveConfig({ preset, smi }, corpus.chars.length);
    return { smi, cfg, state: createRunState(cfg, backend), total: [] as number[], fwdbwd: [] as number[], opt: [] as number[] };
  });
  const cfg = runs[0]!.cfg;
  const tokens = cfg.batch_size * cfg.block_size;
  console.log(`${preset} preset: ${(runs[0]!.state.model.numParams() / 1e6).toFixed(3)}M params, batch ${cfg.batch_size}×${cfg.block_size} = ${tokens} tokens/step, ${warmup} warm-up + ${steps} measured steps per variant, alternating`);
  for (let step = 1; step <= warmup + steps; step++) {
    const offsets = trainOffsets(cfg.seed, step, cfg.batch_size, cfg.block_size, corpus.train.length);
    const { x, y } = makeBatch(corpus.train, offsets, cfg.block_size);
    for (const r of step % 2 ? runs : [...runs].reverse()) { // alternate who goes first, so drift and cache effects cancel
      const t0 = performance.now();
      const { grads } = r.state.model.gradients(x, y, cfg.batch_size, [cfg.seed, STREAM.dropout, step], cfg.batch_size, offsets);
      const t1 = performance.now();
      applyGradients(r.state.model, r.state.opt, r.state.smi, r.cfg, step, grads);
      r.state.step = step;
      const t2 = performance.now();
      if (step > warmup) {
        r.total.push(t2 - t0);
        r.fwdbwd.push(t1 - t0);
        r.opt.push(t2 - t1);
      }
    }
  }
  console.log('');
  console.log('| run | ms/step (median) | p10–p90 | tokens/s | forward+backward ms | clip+SMI+AdamW ms |');
  console.log('|---|---|---|---|---|---|');
  for (const r of runs) {
    const m = median(r.total);
    console.log(`| ${r.smi} | ${m.toFixed(1)} | ${quantile(r.total, 0.1).toFixed(1)}–${quantile(r.total, 0.9).toFixed(1)} | ${Math.round((tokens * 1000) / m)} | ${median(r.fwdbwd).toFixed(1)} | ${median(r.opt).toFixed(1)} |`);
  }
  const ratios = runs[1]!.total.map((c, i) => c / runs[0]!.total[i]!);
  console.log('');
  console.log(`backend: ${backend.name}`);
  console.log(`SMI overhead ratio (cosine / baseline step time, per pair): median ${median(ratios).toFixed(3)}, p10–p90 ${quantile(ratios, 0.1).toFixed(3)}–${quantile(ratios, 0.9).toFixed(3)}; ratio of medians ${(median(runs[1]!.total) / median(runs[0]!.total)).toFixed(3)}`);
  console.log(`tf.memory().numTensors at the end: ${tf.memory().numTensors}`);
  for (const r of runs) disposeRunState(r.state);
  return 0;
}

const BENCHES = ['compute', 'scaling', 'transport', 'timing', 'contention', 'dropout'];

const DROPOUT_OPTIONS = {
  preset: { type: 'string' as const, arg: 'P', section: S, help: 'preset [cpu]' },
  backend: { type: 'string' as const, arg: 'B', section: S, help: `${BACKENDS.join('|')} [wasm]` },
  rate: { type: 'string' as const, arg: 'R', section: S, help: 'dropout [0.2]' },
  steps: { type: 'string' as const, arg: 'N', section: S, help: 'measured steps per variant [30]' },
  warmup: { type: 'string' as const, arg: 'N', section: S, help: 'unmeasured steps per variant first [3]' },
  data: { type: 'string' as const, arg: 'FILE', section: S, help: `corpus [${DEFAULT_DATA_PATH}]` },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};

async function dropout(argv: string[]): Promise<number> {
  const v = parseWithTable(argv, DROPOUT_OPTIONS);
  if (v.help) {
    console.log('Usage: npm run bench -- dropout [--preset cpu] [--backend wasm] [--rate 0.2] [--steps 30] [--warmup 3]\n\nForward+backward of the preset with dropout: masks drawn on the host as tf.dropout draws them (before issue 16),\nthe on-device hash (shared/dropout.ts), and no dropout, alternating step by step in one process; median ms/step,\nthe time to make the masks alone, and the hash/host-drawn ratio.');
    return 0;
  }
  const rate = Number(v.rate ?? 0.2);
  if (!(rate > 0 && rate < 1)) throw new ConfigError('E_BAD_FLAG', `--rate takes a number in (0, 1), got ${String(v.rate)}`);
  const corpus = loadCorpus((v.data as string | undefined) ?? DEFAULT_DATA_PATH);
  const backend = await initBackend(oneOf('backend', (v.backend as string | undefined) ?? 'wasm', BACKENDS), (l) => console.log(l));
  const preset = oneOf('preset', (v.preset as string | undefined) ?? 'cpu', PRESET_NAMES);
  const cfg = resolveConfig({ preset, overrides: { dropout: rate } }, corpus.chars.length);
  const steps = positiveInt(v, 'steps', 30);
  console.log(`${preset} preset, dropout ${rate}, batch ${cfg.batch_size}×${cfg.block_size}, on ${backend.name}: ${steps} measured steps per variant, alternating\n`);
  console.log(dropoutTable(benchDropout(cfg, corpus, steps, Number(v.warmup ?? 3))));
  return 0;
}

async function timing(argv: string[]): Promise<number> {
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

const SCALING_OPTIONS = {
  workers: { type: 'string' as const, arg: '1,2', section: S, help: 'worker counts [1,2]' },
  steps: { type: 'string' as const, arg: 'N', section: S, help: 'steps per run [40]' },
  repeat: { type: 'string' as const, arg: 'R', section: S, help: 'make every run R times, interleaved; E(N) is the median over repetitions [5]' },
  warmup: { type: 'string' as const, arg: 'N', section: S, help: 'first steps not counted [5]' },
  spectral: { type: 'string' as const, arg: 'MODES', section: S, help: 'spectral modes to run [synced,global]' },
  kinds: { type: 'string' as const, arg: 'weak,strong', section: S, help: 'weak (fixed per-worker batch) and/or strong (fixed global batch) [weak,strong]' },
  out: { type: 'string' as const, arg: 'DIR', section: S, help: 'write the report (Markdown + PNG) here [report/scaling]' },
  data: { type: 'string' as const, arg: 'FILE', section: S, help: `corpus [${DEFAULT_DATA_PATH}]` },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};

async function scaling(argv: string[]): Promise<number> {
  const v = parseWithTable(argv, SCALING_OPTIONS);
  if (v.help) {
    console.log('Usage: npm run bench -- scaling [--workers 1,2] [--kinds weak,strong] [--spectral synced,global] [--steps 40] [--repeat 5] [--warmup 5] [--out report/scaling]\n\nThe cpu preset on 1, 2, … local workers: weak scaling (12 sequences per worker) and strong scaling (a fixed global batch),\nwith tokens/s, efficiency E(N) = tps(N) / (N·tps(1)), and the share of the step per phase (the slowest worker\'s view).\nE(N) is taken within each repetition (runs made side by side) and the median is reported, with its range.\nWrites the table and plots through the report command.');
    return 0;
  }
  const workers = String(v.workers ?? '1,2').split(',').map(Number);
  if (workers.some((n) => !Number.isInteger(n) || n < 1)) throw new ConfigError('E_BAD_FLAG', `--workers takes a list of positive integers, got ${String(v.workers)}`);
  const modes = String(v.spectral ?? 'synced,global').split(',').map((m) => oneOf('spectral mode', m, SPECTRAL_MODES));
  const kinds = String(v.kinds ?? 'weak,strong').split(',').map((k) => oneOf('scaling kind', k, ['weak', 'strong'] as const));
  const { rows, report } = await benchScaling({ workers, modes, kinds, steps: positiveInt(v, 'steps', 40), repeat: positiveInt(v, 'repeat', 5), warmup: Number(v.warmup ?? 5), data: v.data as string | undefined, out: (v.out as string | undefined) ?? join('report', 'scaling') });
  console.log(`cpu preset, cosine SMI, on ${cpus().length} cores (the coordinator and the workers share them)\n`);
  console.log(scalingTable(rows));
  if (report) console.log(`\nreport: ${report}`);
  return 0;
}

/** A flag's value as a positive integer (`d` when absent), else an E_BAD_FLAG ConfigError. */
function positiveInt(v: Record<string, string | boolean | undefined>, flag: string, d: number): number {
  const n = Number(v[flag] ?? d);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError('E_BAD_FLAG', `--${flag} takes a positive integer, got ${String(v[flag])}`);
  return n;
}

const CONTENTION_OPTIONS = {
  processes: { type: 'string' as const, arg: 'N', section: S, help: 'processes side by side [2]' },
  steps: { type: 'string' as const, arg: 'N', section: S, help: 'measured passes per process [60]' },
  repeat: { type: 'string' as const, arg: 'R', section: S, help: 'alone-then-together pairs; the ratio reported is their median [5]' },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};

async function contention(argv: string[]): Promise<number> {
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

runMain(async () => {
  const [sub, ...rest] = process.argv.slice(2);
  switch (sub) {
    case 'compute':
      return compute(rest);
    case 'scaling':
      return scaling(rest);
    case 'timing':
      return timing(rest);
    case 'contention':
      return contention(rest);
    case 'dropout':
      return dropout(rest);
    case 'transport': {
      // its own process: the transport bench starts a worker child and may set ws environment flags
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'bench', 'transport.ts'), ...rest], { stdio: 'inherit' });
      return r.status ?? 1;
    }
    case undefined:
    case '--help':
      console.log(HELP);
      return sub ? 0 : 2;
    default:
      throw new ConfigError('E_BAD_FLAG', `unknown benchmark '${sub}': did you mean '${closest(sub, BENCHES)}'? (available: ${BENCHES.join(', ')})`);
  }
});
