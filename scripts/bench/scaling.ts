// The scaling study: the cpu preset on 1, 2, … local workers, weak (fixed per-worker batch) and strong (fixed global batch).
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { writeReport } from '../report/report.ts';
import { loadRun, phaseBreakdown, type Run } from '../report/runs.ts';
import { efficiency, medianOverhead, tokensPerSec } from '../../shared/train/log.ts';
import { median } from '../../shared/stats.ts';
import { NODE_HEAP_FLAGS } from '../../shared/cli/node-flags.ts';
import { parseWithTable } from '../../shared/cli/options.ts';
import { ConfigError } from '../../shared/errors.ts';
import { SPECTRAL_MODES, oneOf } from '../../shared/config.ts';
import { DEFAULT_DATA_PATH } from '../../shared/model/data.ts';
import { S, positiveInt } from './flags.ts';
import { findBrowser } from '../browser/find.ts';
import { runWithBrowserWorker } from '../browser/run.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');

export interface ScalingRow {
  label: string;
  series: string; // e.g. 'weak, synced'
  workers: number;
  batch: number; // global batch
  msPerStep: number; // median step wall time at the coordinator
  computeMs: number; // median slowest-worker forward+backward
  tokensPerSec: number;
  outsideCompute: number; // the median over steps of 1 − compute/step (shared/train/log.ts overhead)
  shares: Record<string, number>; // mean share of the step per phase, for the slowest worker's view
  dir: string;
  base?: string; // the series whose 1-worker row E(N) is taken against [series]
  efficiencies?: number[]; // E(N) of each repetition, each against the 1-worker run of the same repetition
}

function train(args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [...NODE_HEAP_FLAGS, '--import', 'tsx', join(ROOT, 'scripts', 'train.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? done() : fail(new Error(`train ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

/**
 * Shares of the step: the worker-side phases of the worker that computes longest, and the coordinator's own
 * parts (reduce, spectral at the coordinator, optimizer, broadcast); for that worker they add up to the step.
 */
function shares(run: Run, warmup: number): Record<string, number> {
  const bars = phaseBreakdown(run, { warmup });
  const coordinator = bars.find((b) => b.process === 'coordinator');
  const slowest = bars.filter((b) => b !== coordinator).sort((a, b) => (b.phases.compute ?? 0) - (a.phases.compute ?? 0))[0];
  if (!slowest) return {};
  const out: Record<string, number> = {};
  for (const p of ['compute', 'spectral', 'encode', 'transfer', 'wait'] as const) if (slowest.phases[p] !== undefined) out[p] = slowest.phases[p]! / slowest.stepMs;
  if (coordinator) {
    for (const p of ['reduce', 'optimizer', 'broadcast'] as const) out[p] = (coordinator.phases[p] ?? 0) / coordinator.stepMs;
    out['coordinator spectral'] = (coordinator.phases.spectral ?? 0) / coordinator.stepMs;
  } else if (slowest.phases.other !== undefined) out.other = slowest.phases.other / slowest.stepMs;
  return out;
}

async function measure(series: string, flags: string[], workers: number, batch: number, steps: number, warmup: number, block: number, root: string, rep = 0, chromium?: string): Promise<ScalingRow> {
  const dir = join(root, `${series.replace(/[^a-z0-9]+/gi, '-')}-${workers}w${rep > 0 ? `-r${rep + 1}` : ''}`);
  const all = [...flags, '--max-iters', String(steps), '--eval-interval', String(steps), '--eval-iters', '1', '--batch-size', String(batch), '--out', dir];
  // with a browser: `npm run coordinator`, workers − 1 Node workers and one headless Chromium tab on /worker (wasm)
  if (chromium) await runWithBrowserWorker({ flags: all, chromium, nodeWorkers: workers - 1 });
  else await train(all);
  const run = loadRun(dir);
  const recs = run.steps.filter((r) => r.step > warmup);
  const ms = median(recs.map((r) => r.ms));
  const compute = median(recs.map((r) => r.compute_ms ?? NaN));
  return {
    label: `${series}, ${workers} worker${workers > 1 ? 's' : ''}`, series, workers, batch, msPerStep: ms, computeMs: compute,
    tokensPerSec: tokensPerSec(batch * block, ms), outsideCompute: medianOverhead(recs), shares: shares(run, warmup), dir,
  };
}

export interface ScalingOptions {
  workers: number[];
  steps: number;
  warmup: number;
  modes: string[];
  kinds: ('weak' | 'strong')[];
  repeat?: number; // repetitions of the whole set of runs, interleaved [1]
  browser?: string; // a Chromium: each weak series also runs 1 Node worker + 1 browser worker (a tab on /worker)
  data?: string;
  out?: string; // report directory
}

/**
 * Runs the study; returns its rows, one per (kind, mode, workers), plus a --local reference row.
 *
 * With `repeat` R > 1 the whole set of runs is made R times, one set after the other, so that each E(N) is a
 * ratio of runs made side by side; on a machine whose speed drifts for tens of seconds at a time (this VM's
 * does) a single pair can land on either side of a slow spell. A row is then the repetition whose E(N) is the
 * median, with the 1-worker run of the same repetition, and carries every repetition's E(N).
 */
export async function benchScaling(o: ScalingOptions): Promise<{ rows: ScalingRow[]; report?: string }> {
  const perWorker = 12; // the cpu preset's batch
  const block = 64;
  const strongBatch = perWorker * Math.max(...o.workers);
  const root = mkdtempSync(join(tmpdir(), 'smi-scaling-'));
  const common = ['--preset', 'cpu', ...(o.data ? ['--data', o.data] : [])];
  const rows: ScalingRow[] = [];
  rows.push(await measure('local', [...common, '--local'], 1, perWorker, o.steps, o.warmup, block, root));
  const reps: ScalingRow[][] = [];
  for (let rep = 0; rep < Math.max(1, o.repeat ?? 1); rep++) {
    const set: ScalingRow[] = [];
    for (const kind of o.kinds) {
      for (const mode of o.modes) {
        for (const n of o.workers) {
          const batch = kind === 'weak' ? perWorker * n : strongBatch;
          set.push(await measure(`${kind}, ${mode}`, [...common, '--workers', String(n), '--spectral', mode], n, batch, o.steps, o.warmup, block, root, rep));
        }
        if (kind === 'weak' && o.browser) {
          const row = await measure(`${kind}, ${mode}, Node + browser`, [...common, '--spectral', mode], 2, perWorker * 2, o.steps, o.warmup, block, root, rep, o.browser);
          set.push({ ...row, label: `${kind}, ${mode}, 1 Node + 1 browser worker`, base: `${kind}, ${mode}` });
        }
      }
    }
    reps.push(set);
  }
  rows.push(...combineRepetitions(reps));
  let report: string | undefined;
  if (o.out) {
    const res = await writeReport({
      runs: rows.filter((r) => r.series !== 'local').map((r) => ({ ...loadRun(r.dir), label: r.label })),
      scaling: rows.filter((r) => r.series !== 'local').map((r) => ({ label: r.label, workers: r.workers, tokensPerSec: r.tokensPerSec, series: r.series })),
      out: o.out,
      title: 'Scaling study: cpu preset',
      notes: `Weak scaling: ${perWorker} sequences × ${block} tokens per worker. Strong scaling: a global batch of ${strongBatch}. ${o.steps} steps per run, the first ${o.warmup} left out.${(o.repeat ?? 1) > 1 ? ` Every run made ${o.repeat} times, one whole set after the other; E(N) is the median over the repetitions of E(N) within each (range in brackets), and each row shows the repetition with that median, its 1-worker run beside it.` : ''}\n\n${scalingTable(rows)}`,
      warmup: o.warmup,
    });
    report = res.file;
  }
  return { rows, report };
}

/** E(N) of `r` against the 1-worker row of its series in `set` (1 for that row itself). */
function efficiencyIn(set: readonly ScalingRow[], r: ScalingRow): number {
  const b = set.find((o) => o.series === (r.base ?? r.series) && o.workers === 1);
  return b && b !== r ? efficiency(r.tokensPerSec, r.workers, b.tokensPerSec) : 1;
}

/**
 * One row per configuration from R repetitions of the same runs (see benchScaling). All rows of a series (e.g.
 * 'weak, synced') come from one repetition, the one whose E(N) at the largest N is the median, so that the rows
 * shown are runs made side by side; each row carries every repetition's E(N).
 */
export function combineRepetitions(reps: readonly (readonly ScalingRow[])[]): ScalingRow[] {
  if (reps.length === 1) return [...reps[0]!];
  const first = reps[0]!;
  const chosen = new Map<string, number>(); // series → repetition
  for (const series of new Set(first.map((r) => r.series))) {
    const i = first.reduce((best, r, j) => (r.series === series && r.workers > first[best]!.workers ? j : best), first.findIndex((r) => r.series === series));
    const effs = reps.map((set) => efficiencyIn(set, set[i]!));
    const order = effs.map((_, k) => k).sort((a, b) => effs[a]! - effs[b]!);
    chosen.set(series, order[Math.floor((order.length - 1) / 2)]!); // the median (the lower one of two)
  }
  return first.map((r, i) => ({ ...reps[chosen.get(r.series)!]![i]!, efficiencies: reps.map((set) => efficiencyIn(set, set[i]!)) }));
}

export function scalingTable(rows: ScalingRow[]): string {
  const phases = ['compute', 'spectral', 'encode', 'transfer', 'wait', 'reduce', 'coordinator spectral', 'optimizer', 'broadcast', 'other'];
  const base = (r: ScalingRow) => rows.find((o) => o.series === (r.base ?? r.series) && o.workers === 1);
  const lines = [
    `| run | batch | ms/step | tokens/s | efficiency | outside compute | ${phases.join(' | ')} |`,
    `|---|---|---|---|---|---|${phases.map(() => '---').join('|')}|`,
  ];
  for (const r of rows) {
    const b = base(r);
    // weak: E = tps(N) / (N·tps(1)); strong: the same formula, with the global batch held fixed
    const range = (e: number[]) => (e.length > 1 ? ` (${Math.min(...e).toFixed(3)}–${Math.max(...e).toFixed(3)})` : '');
    const eff = b === r ? '1 (base)' : !b ? '–' : r.efficiencies ? `${median(r.efficiencies).toFixed(3)}${range(r.efficiencies)}` : efficiencyIn(rows, r).toFixed(3);
    const share = (p: string) => (r.shares[p] === undefined ? '–' : `${(100 * r.shares[p]!).toFixed(1)}%`);
    lines.push(`| ${r.label} | ${r.batch} | ${r.msPerStep.toFixed(1)} | ${Math.round(r.tokensPerSec)} | ${eff} | ${Number.isFinite(r.outsideCompute) ? (100 * r.outsideCompute).toFixed(1) + '%' : '–'} | ${phases.map(share).join(' | ')} |`);
  }
  return lines.join('\n');
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
  browser: { type: 'string' as const, arg: 'auto|off', section: S, help: 'weak series: also 1 Node worker + 1 browser worker (headless Chromium on /worker, wasm) where a Chromium is found (CHROMIUM) [auto]' },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};

export async function main(argv: string[]): Promise<number> {
  const v = parseWithTable(argv, SCALING_OPTIONS);
  if (v.help) {
    console.log('Usage: npm run bench -- scaling [--workers 1,2] [--kinds weak,strong] [--spectral synced,global] [--steps 40] [--repeat 5] [--warmup 5] [--browser auto|off] [--out report/scaling]\n\nThe cpu preset on 1, 2, … local workers: weak scaling (12 sequences per worker) and strong scaling (a fixed global batch),\nand (where a Chromium is found) each weak series with 1 Node worker + 1 browser worker (a headless tab on the coordinator\'s /worker),\nwith tokens/s, efficiency E(N) = tps(N) / (N·tps(1)), and the share of the step per phase (the slowest worker\'s view).\nE(N) is taken within each repetition (runs made side by side) and the median is reported, with its range.\nWrites the table and plots through the report command.');
    return 0;
  }
  const workers = String(v.workers ?? '1,2').split(',').map(Number);
  if (workers.some((n) => !Number.isInteger(n) || n < 1)) throw new ConfigError('E_BAD_FLAG', `--workers takes a list of positive integers, got ${String(v.workers)}`);
  const modes = String(v.spectral ?? 'synced,global').split(',').map((m) => oneOf('spectral mode', m, SPECTRAL_MODES));
  const kinds = String(v.kinds ?? 'weak,strong').split(',').map((k) => oneOf('scaling kind', k, ['weak', 'strong'] as const));
  const browserFlag = oneOf('--browser', String(v.browser ?? 'auto'), ['auto', 'off'] as const);
  const found = browserFlag === 'auto' ? await findBrowser() : null;
  if (found && !found.found) console.log(`no browser-worker row: ${found.reason}`);
  const browser = found?.found ? found.path : undefined;
  const { rows, report } = await benchScaling({ workers, modes, kinds, browser, steps: positiveInt(v, 'steps', 40), repeat: positiveInt(v, 'repeat', 5), warmup: Number(v.warmup ?? 5), data: v.data as string | undefined, out: (v.out as string | undefined) ?? join('report', 'scaling') });
  console.log(`cpu preset, cosine SMI, on ${cpus().length} cores (the coordinator and the workers share them)\n`);
  console.log(scalingTable(rows));
  if (report) console.log(`\nreport: ${report}`);
  return 0;
}
