// `npm run report`: a Markdown summary with PNG charts (loss, where a step's time goes, scaling) of one or more run directories.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { ChartConfiguration } from 'chart.js';
import { parseWithTable } from '../shared/cli.ts';
import { ConfigError } from '../shared/config.ts';
import { PALETTE, renderChart } from './charts.ts';
import { runMain } from './cli-main.ts';
import { median } from '../shared/stats.ts';

// ---------------------------------------------------------------------------------------------------------------
// Log records (shared/train.ts writes them; `phases` comes from coordinator/phases.ts on distributed runs)

export interface WorkerPhases {
  compute: number; // forward + backward
  spectral: number;
  encode: number;
  transfer: number;
  wait: number;
  bytes_sent: number; // coordinator → worker, this step
  bytes_received: number; // worker → coordinator, this step
}

export interface CoordinatorPhases {
  step: number; // wall time of the whole step
  reduce: number;
  spectral: number;
  optimizer: number;
  broadcast: number;
  encode: number;
  wait: number;
}

export interface StepPhaseRecord {
  coordinator: CoordinatorPhases;
  workers: Record<string, WorkerPhases>;
}

export interface StartRecord { kind: 'start'; step: number; backend: string; device: string; params: number; resumed: boolean }
export interface StepRecord {
  kind: 'step'; step: number; loss: number; lr: number; alpha: number; ms: number; tokens: number; workers: number; grad_norm: number;
  compute_ms?: number; // forward + backward (distributed: the slowest worker's)
  phases?: StepPhaseRecord;
}
export interface EvalRecord { kind: 'eval'; step: number; train_loss: number; val_loss: number }
export interface DoneRecord { kind: 'done'; step: number; ms: number; tokens_per_sec: number; train_loss: number; val_loss: number }

/** A run directory, read: its resolved config and its log, each step once (the last write wins after a resume). */
export interface Run {
  dir: string;
  label: string; // how charts and tables name it: the directory's name unless the caller sets one
  config: Record<string, unknown>;
  starts: StartRecord[]; // one per (re)start
  steps: StepRecord[]; // by step
  evals: EvalRecord[]; // by step
  done?: DoneRecord;
}

const WORKER_PHASES = ['compute', 'spectral', 'encode', 'transfer', 'wait'] as const;
const COORDINATOR_PHASES = ['reduce', 'spectral', 'optimizer', 'broadcast', 'encode', 'wait'] as const;
/** Stacking order of the phase chart and column order of the phase tables; `other` = step − the listed phases. */
export const PHASE_ORDER = ['compute', 'spectral', 'encode', 'transfer', 'wait', 'reduce', 'optimizer', 'broadcast', 'other'] as const;
export type PhaseName = (typeof PHASE_ORDER)[number];
const PHASE_COLOR: Record<PhaseName, string> = {
  compute: PALETTE[0]!, spectral: PALETTE[1]!, encode: PALETTE[2]!, transfer: PALETTE[3]!, wait: PALETTE[7]!,
  reduce: PALETTE[4]!, optimizer: PALETTE[5]!, broadcast: PALETTE[6]!, other: '#c7c7c7',
};

const badRun = (dir: string, why: string) => new ConfigError('E_BAD_RUN', `${dir}: ${why} (a run directory holds config.json and log.jsonl, as written by npm run train -- --out DIR)`);

/** Reads a run directory; a missing or malformed one is a ConfigError (exit 2). A half-written last log line is skipped. */
export function loadRun(dir: string): Run {
  if (!existsSync(dir)) throw badRun(dir, 'no such directory');
  if (!statSync(dir).isDirectory()) throw badRun(dir, 'not a directory');
  const cfgFile = join(dir, 'config.json');
  const logFile = join(dir, 'log.jsonl');
  if (!existsSync(cfgFile)) throw badRun(dir, 'no config.json');
  if (!existsSync(logFile)) throw badRun(dir, 'no log.jsonl');
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw badRun(dir, `config.json is not JSON (${(e as Error).message})`);
  }
  const text = readFileSync(logFile, 'utf8');
  const lines = text.split('\n');
  const starts: StartRecord[] = [];
  const steps = new Map<number, StepRecord>();
  const evals = new Map<number, EvalRecord>();
  let done: DoneRecord | undefined;
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let r: { kind?: unknown; step?: unknown };
    try {
      r = JSON.parse(line) as typeof r;
    } catch (e) {
      if (i === lines.length - 1) return; // no trailing newline: the run is still writing this line
      throw badRun(dir, `log.jsonl line ${i + 1} is not JSON (${(e as Error).message})`);
    }
    if (typeof r.step !== 'number') throw badRun(dir, `log.jsonl line ${i + 1} has no step`);
    switch (r.kind) {
      case 'start': starts.push(r as StartRecord); break;
      case 'step': steps.set(r.step, r as StepRecord); break;
      case 'eval': evals.set(r.step, r as EvalRecord); break;
      case 'done': done = r as DoneRecord; break;
      default: break; // a kind from a newer trainer: not ours to judge
    }
  });
  if (steps.size === 0) throw badRun(dir, 'log.jsonl has no step records yet');
  const byStep = <T extends { step: number }>(m: Map<number, T>) => [...m.values()].sort((a, b) => a.step - b.step);
  return { dir, label: basename(resolve(dir)), config, starts, steps: byStep(steps), evals: byStep(evals), done };
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: number[]) => (xs.length ? sum(xs) / xs.length : NaN);
const finite = (x: number | undefined): number | undefined => (x !== undefined && Number.isFinite(x) ? x : undefined);

/**
 * The steps timings are taken from: all but the first `warmup` after each (re)start, whose time is mostly
 * kernel compilation and first allocations. A run too short to spare them keeps them all.
 */
function timedSteps(run: Run, warmup: number): StepRecord[] {
  const startSteps = run.starts.length ? run.starts.map((s) => s.step) : [0];
  const kept = run.steps.filter((r) => !startSteps.some((s) => r.step > s && r.step <= s + warmup));
  return kept.length ? kept : run.steps;
}

/** Wall time of a step at the coordinator (one process: the whole step). */
const stepMs = (r: StepRecord) => r.phases?.coordinator.step ?? r.ms;
/** Forward + backward of the step's slowest worker (one process: its own). */
function computeMs(r: StepRecord): number | undefined {
  const ws = r.phases ? Object.values(r.phases.workers) : [];
  return ws.length ? Math.max(...ws.map((w) => w.compute)) : r.compute_ms;
}

export interface WorkerSummary {
  id: string;
  steps: number; // steps it took part in (of the timed ones)
  phases: Record<(typeof WORKER_PHASES)[number], number>; // mean ms per step
  mbSentPerStep: number; // coordinator → worker
  mbReceivedPerStep: number; // worker → coordinator
  mbPerSec: number; // both ways, over the wall time of its steps
}

export interface RunSummary {
  label: string;
  dir: string;
  preset: string;
  smi: string;
  spectral: string;
  backend: string;
  device: string;
  params?: number;
  model: string; // n_layer, n_head, n_embd
  batch: string; // batch_size × block_size
  distributed: boolean;
  workers: number; // most workers in one step
  steps: number; // last step logged
  timedSteps: number; // steps the timings below are over
  tokensPerStep: number;
  finalTrainLoss?: number;
  finalValLoss?: number;
  bestValLoss?: number;
  bestValStep?: number;
  medianMsPerStep: number;
  tokensPerSec: number; // tokens per step / median step time: steady state, as bench-scaling measures it
  medianOverhead?: number; // median over steps of 1 − compute/step (compute of the slowest worker)
  coordinator?: Record<(typeof COORDINATOR_PHASES)[number] | 'step', number>; // mean ms per step
  workerPhases?: WorkerSummary[];
  wireMBps?: number; // all workers' bytes, both ways, per second of step wall time (MB = 10^6 bytes)
  slowest?: { id: string; computeMs: number; fastestId: string; fastestComputeMs: number; slowerBy: number }; // slowerBy: 0.1 = 10 % slower
}

/** The headline numbers of a run; timings skip the first `warmup` steps after each (re)start. */
export function summarizeRun(run: Run, opts: { warmup?: number } = {}): RunSummary {
  const cfg = run.config;
  const str = (k: string, dflt = '?') => (cfg[k] === undefined ? dflt : String(cfg[k]));
  const timed = timedSteps(run, opts.warmup ?? 1);
  const last = run.steps.at(-1)!;
  const workers = Math.max(...run.steps.map((r) => r.workers ?? 1));
  const distributed = workers > 1 || run.steps.some((r) => r.phases !== undefined) || existsSync(join(run.dir, 'worker-0.log'));
  const lastEval = run.evals.at(-1);
  const best = run.evals.reduce<EvalRecord | undefined>((b, e) => (b === undefined || e.val_loss < b.val_loss ? e : b), undefined);
  const medianMs = median(timed.map(stepMs));
  const tokensPerStep = last.tokens ?? Number(cfg.batch_size) * Number(cfg.block_size);
  const overheads = timed.flatMap((r) => {
    const c = computeMs(r);
    return c === undefined ? [] : [1 - c / stepMs(r)];
  });
  const s: RunSummary = {
    label: run.label,
    dir: run.dir,
    preset: str('preset'),
    smi: str('smi'),
    spectral: distributed ? str('spectral') : `${str('spectral')} (one process: n/a)`,
    backend: run.starts[0]?.backend ?? str('backend'),
    device: run.starts[0]?.device ?? '?',
    params: run.starts[0]?.params,
    model: `${str('n_layer')} layers, ${str('n_head')} heads, ${str('n_embd')} wide`,
    batch: `${str('batch_size')} × ${str('block_size')}`,
    distributed,
    workers,
    steps: run.done?.step ?? last.step,
    timedSteps: timed.length,
    tokensPerStep,
    finalTrainLoss: finite(run.done?.train_loss ?? lastEval?.train_loss),
    finalValLoss: finite(run.done?.val_loss ?? lastEval?.val_loss),
    bestValLoss: best?.val_loss,
    bestValStep: best?.step,
    medianMsPerStep: medianMs,
    tokensPerSec: (tokensPerStep * 1000) / medianMs,
    medianOverhead: finite(median(overheads)),
  };
  const phased = timed.filter((r): r is StepRecord & { phases: StepPhaseRecord } => r.phases !== undefined);
  if (phased.length) {
    s.coordinator = Object.fromEntries(
      (['step', ...COORDINATOR_PHASES] as const).map((p) => [p, mean(phased.map((r) => r.phases.coordinator[p] ?? 0))]),
    ) as RunSummary['coordinator'];
    const ids = [...new Set(phased.flatMap((r) => Object.keys(r.phases.workers)))];
    s.workerPhases = ids.map((id) => {
      const mine = phased.filter((r) => r.phases.workers[id] !== undefined);
      const w = (r: (typeof mine)[number]) => r.phases.workers[id]!;
      const bytes = sum(mine.map((r) => (w(r).bytes_sent ?? 0) + (w(r).bytes_received ?? 0)));
      return {
        id,
        steps: mine.length,
        phases: Object.fromEntries(WORKER_PHASES.map((p) => [p, mean(mine.map((r) => w(r)[p] ?? 0))])) as WorkerSummary['phases'],
        mbSentPerStep: mean(mine.map((r) => w(r).bytes_sent ?? 0)) / 1e6,
        mbReceivedPerStep: mean(mine.map((r) => w(r).bytes_received ?? 0)) / 1e6,
        mbPerSec: bytes / 1e6 / (sum(mine.map(stepMs)) / 1000),
      };
    });
    const allBytes = sum(phased.flatMap((r) => Object.values(r.phases.workers).map((w) => (w.bytes_sent ?? 0) + (w.bytes_received ?? 0))));
    s.wireMBps = allBytes / 1e6 / (sum(phased.map(stepMs)) / 1000);
    if (s.workerPhases.length > 1) {
      const byCompute = [...s.workerPhases].sort((a, b) => b.phases.compute - a.phases.compute);
      const slow = byCompute[0]!;
      const fast = byCompute.at(-1)!;
      s.slowest = { id: slow.id, computeMs: slow.phases.compute, fastestId: fast.id, fastestComputeMs: fast.phases.compute, slowerBy: slow.phases.compute / fast.phases.compute - 1 };
    }
  }
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// Where a step's time goes

/** One stacked bar: a process of a run and its mean ms per step by phase; the phases add up to `stepMs`. */
export interface PhaseBar {
  run: string; // run label
  process: string; // 'process' (one-process run), 'coordinator', 'worker <id>', or 'step' (distributed run without phases)
  phases: Partial<Record<PhaseName, number>>;
  stepMs: number; // mean wall time of the step at the coordinator
}

/**
 * Mean ms per phase per process. Distributed runs with phases: one bar for the coordinator and one per worker,
 * each topped up with `other` to the step's wall time (the coordinator's `other` is mostly waiting for the first
 * result; a worker's is the coordinator's own work between its round trips). Runs without phases: compute vs other.
 */
export function phaseBreakdown(run: Run, opts: { warmup?: number } = {}): PhaseBar[] {
  const s = summarizeRun(run, opts);
  const other = (step: number, parts: number[]) => Math.max(0, step - sum(parts));
  if (s.coordinator && s.workerPhases) {
    const c = s.coordinator;
    const cParts = Object.fromEntries(COORDINATOR_PHASES.map((p) => [p, c[p]]));
    const bars: PhaseBar[] = [{ run: run.label, process: 'coordinator', phases: { ...cParts, other: other(c.step, Object.values(cParts)) }, stepMs: c.step }];
    const timed = timedSteps(run, opts.warmup ?? 1);
    for (const w of s.workerPhases) {
      const step = mean(timed.filter((r) => r.phases?.workers[w.id] !== undefined).map(stepMs));
      bars.push({ run: run.label, process: `worker ${w.id}`, phases: { ...w.phases, other: other(step, Object.values(w.phases)) }, stepMs: step });
    }
    return bars;
  }
  const timed = timedSteps(run, opts.warmup ?? 1).filter((r) => r.compute_ms !== undefined);
  const step = mean(timed.map((r) => r.ms));
  const compute = mean(timed.map((r) => r.compute_ms!));
  if (!timed.length) return [];
  return [{ run: run.label, process: s.distributed ? 'step' : 'process', phases: { compute, other: other(step, [compute]) }, stepMs: step }];
}

// ---------------------------------------------------------------------------------------------------------------
// Scaling

/** One throughput measurement; bench-scaling's ScalingRow is one. Rows of a `series` share their baseline. */
export interface ScalingPoint {
  label: string;
  workers: number;
  tokensPerSec: number;
  series?: string; // e.g. the spectral mode; default: one series
}

export interface ScalingEfficiency extends ScalingPoint {
  efficiency?: number; // throughput(N) / (N · throughput(base)) · base workers
  baseline?: string; // label of the row it is relative to
}

/**
 * E(N) = throughput(N) / (N · throughput(1)) (SPEC.md §4). The baseline is the series' own 1-worker row, else
 * any 1-worker row (such as a --local reference), else the series' smallest row (E relative to it, scaled by its workers).
 */
export function scalingEfficiency(rows: ScalingPoint[]): ScalingEfficiency[] {
  const seriesOf = (r: ScalingPoint) => r.series ?? '';
  return rows.map((r) => {
    const mine = rows.filter((o) => seriesOf(o) === seriesOf(r));
    const base = mine.find((o) => o.workers === 1) ?? rows.find((o) => o.workers === 1) ?? [...mine].sort((a, b) => a.workers - b.workers)[0];
    if (!base || !(base.tokensPerSec > 0)) return { ...r };
    return { ...r, efficiency: (r.tokensPerSec * base.workers) / (r.workers * base.tokensPerSec), baseline: base.label };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Charts (Chart.js configurations; render with renderChart from ./charts.ts)

const runColor = (i: number) => PALETTE[i % PALETTE.length]!;
const titled = (text: string) => ({ display: true, text, font: { size: 16 } });
const axis = (text: string) => ({ display: true, text });
/** A legend whose samples are short strokes, so dashed and solid lines can be told apart. */
const legend = { position: 'bottom' as const, labels: { boxWidth: 28, boxHeight: 2 } };

/** Trailing mean over `w` steps. */
function smooth(ys: number[], w: number): number[] {
  let acc = 0;
  return ys.map((y, i) => {
    acc += y;
    if (i >= w) acc -= ys[i - w]!;
    return acc / Math.min(i + 1, w);
  });
}
/** Window that smooths without hiding the trend: about 1/50 of the run, at most 100 steps. */
const smoothingWindow = (n: number) => Math.min(100, Math.max(1, Math.round(n / 50)));

/** Loss against step: each run's step loss (trailing mean) and its eval train (dashed) and val (solid, points) losses. */
export function lossChart(runs: Run[]): ChartConfiguration {
  const datasets = runs.flatMap((run, i) => {
    const color = runColor(i);
    const w = smoothingWindow(run.steps.length);
    const ys = smooth(run.steps.map((r) => r.loss), w);
    return [
      {
        label: `${run.label}: step loss${w > 1 ? ` (mean of ${w})` : ''}`,
        data: run.steps.map((r, j) => ({ x: r.step, y: ys[j]! })),
        borderColor: color, backgroundColor: color, borderWidth: 1, pointRadius: 0, tension: 0,
      },
      {
        label: `${run.label}: eval train`,
        data: run.evals.map((e) => ({ x: e.step, y: e.train_loss })),
        borderColor: color, backgroundColor: color, borderWidth: 2, borderDash: [6, 4], pointRadius: 3, pointStyle: 'rect' as const,
      },
      {
        label: `${run.label}: eval val`,
        data: run.evals.map((e) => ({ x: e.step, y: e.val_loss })),
        borderColor: color, backgroundColor: color, borderWidth: 2.5, pointRadius: 4,
      },
    ];
  });
  return {
    type: 'line',
    data: { datasets },
    options: {
      plugins: { title: titled('Loss'), legend },
      scales: {
        x: { type: 'linear', title: axis('step') },
        y: { type: 'linear', title: axis('cross-entropy loss (nats per character)') },
      },
    },
  } as ChartConfiguration;
}

/** Stacked horizontal bars, one per process per run (as phaseBreakdown gives them), mean ms per step by phase. */
export function phaseChart(runs: Run[], opts: { warmup?: number } = {}): ChartConfiguration {
  const bars = runs.flatMap((r) => phaseBreakdown(r, opts));
  const used = PHASE_ORDER.filter((p) => bars.some((b) => (b.phases[p] ?? 0) > 0));
  const shortId = (p: string) => (p.startsWith('worker ') && p.length > 24 ? `${p.slice(0, 24)}…` : p);
  return {
    type: 'bar',
    data: {
      labels: bars.map((b) => (runs.length > 1 ? `${b.run} · ${shortId(b.process)}` : shortId(b.process))),
      datasets: used.map((p) => ({
        label: p === 'other' ? 'other (rest of the step)' : p,
        data: bars.map((b) => b.phases[p] ?? 0),
        backgroundColor: PHASE_COLOR[p],
        borderColor: '#ffffff',
        borderWidth: 1,
      })),
    },
    options: {
      indexAxis: 'y',
      plugins: { title: titled("Where a step's time goes"), legend: { position: 'bottom' } },
      scales: {
        x: { stacked: true, title: axis('mean ms per step'), beginAtZero: true },
        y: { stacked: true, title: axis(runs.length > 1 ? 'run · process' : 'process') },
      },
    },
  } as ChartConfiguration;
}

/** Tokens/s (solid, left axis) and scaling efficiency (dashed, right axis) against workers, one pair of lines per series. */
export function scalingChart(rows: ScalingPoint[]): ChartConfiguration {
  const eff = scalingEfficiency(rows);
  const series = [...new Set(eff.map((r) => r.series ?? ''))];
  const datasets = series.flatMap((s, i) => {
    const mine = eff.filter((r) => (r.series ?? '') === s).sort((a, b) => a.workers - b.workers);
    // rows without a series beside named ones (a --local reference): named by their label when alone
    const name = s ? `${s}: ` : series.length > 1 ? `${mine.length === 1 ? mine[0]!.label : 'other'}: ` : '';
    const color = runColor(i);
    return [
      { label: `${name}tokens/s`, yAxisID: 'y', data: mine.map((r) => ({ x: r.workers, y: r.tokensPerSec })), borderColor: color, backgroundColor: color, pointRadius: 4 },
      {
        label: `${name}efficiency`, yAxisID: 'y1', data: mine.filter((r) => r.efficiency !== undefined).map((r) => ({ x: r.workers, y: r.efficiency! })),
        borderColor: color, backgroundColor: color, borderDash: [6, 4], pointRadius: 4, pointStyle: 'triangle' as const,
      },
    ];
  });
  const maxWorkers = Math.max(...rows.map((r) => r.workers));
  datasets.push({
    label: 'ideal efficiency (1)', yAxisID: 'y1', data: [{ x: Math.min(...rows.map((r) => r.workers)), y: 1 }, { x: maxWorkers, y: 1 }],
    borderColor: '#999999', backgroundColor: '#999999', borderDash: [2, 3], pointRadius: 0,
  } as (typeof datasets)[number]);
  return {
    type: 'line',
    data: { datasets },
    options: {
      plugins: { title: titled('Scaling'), legend },
      scales: {
        x: { type: 'linear', title: axis('workers'), ticks: { stepSize: 1, precision: 0 } },
        y: { type: 'linear', position: 'left', beginAtZero: true, title: axis('tokens/s') },
        y1: { type: 'linear', position: 'right', beginAtZero: true, suggestedMax: 1.1, title: axis('efficiency E(N) = T(N) / (N·T(1))'), grid: { drawOnChartArea: false } },
      },
    },
  } as ChartConfiguration;
}

// ---------------------------------------------------------------------------------------------------------------
// Markdown

const NA = '—';
/** Fixed decimals, or NA for a missing or non-finite number. */
const fx = (x: number | undefined, digits: number) => (x === undefined || !Number.isFinite(x) ? NA : x.toFixed(digits));
/** About three significant digits without exponents: 1234, 123.4, 12.34, 1.234, 0.123. */
const sig = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? NA : x.toFixed(Math.abs(x) >= 1000 ? 0 : Math.abs(x) >= 100 ? 1 : Math.abs(x) >= 1 ? 2 : 3));
const pct = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? NA : `${(100 * x).toFixed(1)} %`);
const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');
const table = (head: string[], rows: string[][]) =>
  [`| ${head.map(cell).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');

/** The side-by-side table: one row per quantity, one column per run. */
function summaryTable(sums: RunSummary[]): string {
  const row = (name: string, f: (s: RunSummary) => string): string[] => [name, ...sums.map(f)];
  return table(['', ...sums.map((s) => s.label)], [
    row('preset', (s) => s.preset),
    row('SMI run', (s) => s.smi),
    row('spectral mode', (s) => s.spectral),
    row('workers', (s) => (s.distributed ? String(s.workers) : '1 (one process)')),
    row('backend', (s) => `${s.backend} (${s.device})`),
    row('model', (s) => `${s.model}${s.params !== undefined ? `, ${s.params.toLocaleString('en-US')} params` : ''}`),
    row('batch × block', (s) => s.batch),
    row('steps', (s) => String(s.steps)),
    row('final train loss', (s) => fx(s.finalTrainLoss, 4)),
    row('final val loss', (s) => fx(s.finalValLoss, 4)),
    row('best val loss (step)', (s) => (s.bestValLoss === undefined ? NA : `${fx(s.bestValLoss, 4)} (${s.bestValStep})`)),
    row('median ms/step', (s) => sig(s.medianMsPerStep)),
    row('tokens/s', (s) => fx(s.tokensPerSec, 0)),
    row('median overhead (1 − compute/step)', (s) => pct(s.medianOverhead)),
    row('wire MB/s (both ways)', (s) => (s.wireMBps === undefined ? NA : sig(s.wireMBps))),
    row('slowest worker (compute ms)', (s) => (s.slowest ? `${s.slowest.id}: ${sig(s.slowest.computeMs)} ms, +${(100 * s.slowest.slowerBy).toFixed(1)} % vs ${s.slowest.fastestId}` : NA)),
  ]);
}

/** The per-run table: one row per process, mean ms per phase, and bytes for the workers. */
function phaseTable(run: Run, s: RunSummary, opts: { warmup?: number }): string {
  const bars = phaseBreakdown(run, opts);
  if (!bars.length) return '_No compute timings in this log._';
  const used = PHASE_ORDER.filter((p) => bars.some((b) => b.phases[p] !== undefined));
  const wire = s.workerPhases !== undefined;
  const head = ['process', ...used, 'step', ...(wire ? ['MB sent/step', 'MB received/step', 'MB/s'] : [])];
  const rows = bars.map((b) => {
    const w = s.workerPhases?.find((x) => `worker ${x.id}` === b.process);
    const wireCells = !wire ? [] : w ? [sig(w.mbSentPerStep), sig(w.mbReceivedPerStep), sig(w.mbPerSec)] : b.process === 'coordinator' && s.workerPhases
      ? [sig(sum(s.workerPhases.map((x) => x.mbSentPerStep))), sig(sum(s.workerPhases.map((x) => x.mbReceivedPerStep))), sig(s.wireMBps)] : [NA, NA, NA];
    return [b.process, ...used.map((p) => (b.phases[p] === undefined ? NA : sig(b.phases[p]))), sig(b.stepMs), ...wireCells];
  });
  return table(head, rows);
}

export interface ReportOptions {
  runs?: (string | Run)[]; // run directories, or runs already loaded (their `label` names them)
  scaling?: ScalingPoint[]; // throughput rows for the scaling chart and table (default: one per run)
  out?: string; // a directory (→ DIR/report.md) or a .md file; PNGs go beside it [report/report.md]
  title?: string;
  notes?: string; // Markdown placed under the title
  warmup?: number; // steps after each (re)start left out of timings [1]
}

export interface ReportResult {
  file: string; // the Markdown file
  images: string[]; // the PNGs written
  markdown: string;
}

/** Gives runs distinct labels: the directory name, then with its parent, then numbered. */
function distinctLabels(runs: Run[]): Run[] {
  const count = (l: string, rs: Run[]) => rs.filter((r) => r.label === l).length;
  let out = runs.map((r) => (count(r.label, runs) > 1 ? { ...r, label: `${basename(dirname(resolve(r.dir)))}/${r.label}` } : r));
  out = out.map((r, i) => (count(r.label, out) > 1 ? { ...r, label: `${r.label} #${i + 1}` } : r));
  return out;
}

/** Writes the Markdown report and its PNGs; returns where. Needs at least one run or one scaling row. */
export async function writeReport(opts: ReportOptions): Promise<ReportResult> {
  const runs = distinctLabels((opts.runs ?? []).map((r) => (typeof r === 'string' ? loadRun(r) : r)));
  if (!runs.length && !opts.scaling?.length) throw new ConfigError('E_BAD_FLAG', 'nothing to report: give at least one --run DIR');
  const target = opts.out ?? join('report', 'report.md');
  const file = extname(target).toLowerCase() === '.md' ? target : join(target, 'report.md');
  const dir = dirname(file);
  const stem = basename(file, extname(file));
  mkdirSync(dir, { recursive: true });
  const images: string[] = [];
  const image = async (name: string, config: ChartConfiguration, alt: string, width = 900, height = 500) => {
    const png = `${stem}-${name}.png`;
    writeFileSync(join(dir, png), await renderChart(config, width, height));
    images.push(join(dir, png));
    return `![${alt}](${png})`;
  };
  const warmup = opts.warmup ?? 1;
  const sums = runs.map((r) => summarizeRun(r, { warmup }));
  const md: string[] = [`# ${opts.title ?? (runs.length === 1 ? `Run ${runs[0]!.label}` : 'Training runs')}`, ''];
  if (opts.notes) md.push(opts.notes, '');

  if (runs.length) {
    md.push('## Runs', '', ...runs.map((r) => `- **${r.label}**: \`${r.dir}\`${r.done ? '' : ' (unfinished: no done record)'}${r.starts.length > 1 ? `, resumed ${r.starts.length - 1}×` : ''}`), '');
    md.push('## Summary', '', summaryTable(sums), '');
    md.push(
      `Timings leave out the first ${warmup === 1 ? 'step' : `${warmup} steps`} after each (re)start (compilation, first allocations). ` +
        'ms/step and tokens/s are medians over steps; overhead is 1 − compute/step with the slowest worker\'s compute (SPEC.md §4); ' +
        'MB = 10⁶ bytes, counted at the coordinator.',
      '',
    );
    md.push('## Loss', '', await image('loss', lossChart(runs), 'loss against step for each run'), '');
    md.push('## Where a step\'s time goes', '');
    for (const [i, r] of runs.entries()) {
      const s = sums[i]!;
      const what = s.coordinator ? 'mean ms per step, by process' : s.distributed ? 'mean ms per step; this log has no per-phase timings, only the slowest worker\'s compute' : 'mean ms per step: forward + backward vs the rest (clip, SMI, AdamW, logging)';
      md.push(`### ${r.label}`, '', `${what}, over ${s.timedSteps} steps:`, '', phaseTable(r, s, { warmup }), '');
    }
    if (sums.some((s) => s.coordinator)) md.push('`other` is the rest of the step\'s wall time: for the coordinator mostly waiting for the first result; for a worker, the coordinator\'s own work between its round trips.', '');
    md.push(await image('phases', phaseChart(runs, { warmup }), "stacked bars of mean ms per phase, one per process", 900, Math.max(300, 120 + 45 * sum(runs.map((r) => phaseBreakdown(r, { warmup }).length)))), '');
  }

  md.push('## Scaling', '');
  const rows: ScalingPoint[] = opts.scaling ?? sums.map((s) => ({ label: s.label, workers: s.distributed ? s.workers : 1, tokensPerSec: s.tokensPerSec }));
  const counts = new Set(rows.map((r) => r.workers));
  if (counts.size < 2) {
    md.push(`_Skipped: every run has ${[...counts][0]} worker(s); scaling needs runs that differ in worker count._`, '');
  } else {
    const eff = scalingEfficiency(rows);
    if (!opts.scaling) {
      const perWorker = new Set(sums.map((s) => s.tokensPerStep / (s.distributed ? s.workers : 1)));
      const global = new Set(sums.map((s) => s.tokensPerStep));
      md.push(global.size === 1 ? 'Same global batch in every run: strong scaling.' : perWorker.size === 1 ? 'Same batch per worker in every run: weak scaling.' : 'The runs differ in batch per worker and in global batch: neither weak nor strong scaling, read with care.', '');
    }
    md.push(
      eff.some((r) => r.series)
        ? table(['series', 'run', 'workers', 'tokens/s', 'efficiency', 'relative to'], eff.map((r) => [r.series ?? NA, r.label, String(r.workers), fx(r.tokensPerSec, 0), fx(r.efficiency, 3), r.baseline ?? NA]))
        : table(['run', 'workers', 'tokens/s', 'efficiency', 'relative to'], eff.map((r) => [r.label, String(r.workers), fx(r.tokensPerSec, 0), fx(r.efficiency, 3), r.baseline ?? NA])),
      '',
      await image('scaling', scalingChart(rows), 'tokens/s and efficiency against workers'),
      '',
    );
  }
  const markdown = md.join('\n');
  writeFileSync(file, markdown);
  return { file, images, markdown };
}

// ---------------------------------------------------------------------------------------------------------------
// CLI

const S = 'output' as const;
const OPTIONS = {
  run: { type: 'string' as const, arg: 'DIR', section: S, help: 'a run directory (config.json + log.jsonl); repeat for side by side' },
  out: { type: 'string' as const, arg: 'DIR|FILE.md', section: S, help: 'where the report goes; PNGs beside it [report/report.md]' },
  title: { type: 'string' as const, arg: 'T', section: S, help: 'the heading [Run <name>, or Training runs]' },
  warmup: { type: 'string' as const, arg: 'N', section: S, help: 'steps after each (re)start left out of timings [1]' },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};

const HELP = `Usage: npm run report -- --run DIR [--run DIR …] [--out DIR|FILE.md] [--title T] [--warmup N]

Writes a Markdown report of one or more runs side by side: a summary table (losses, ms/step, tokens/s,
overhead, per-phase ms, MB/s on the wire, slowest worker), and PNG charts of the loss curves, where a
step's time goes, and throughput and efficiency against workers when the runs differ in worker count.

Options:
${Object.entries(OPTIONS).map(([k, o]) => `  ${`--${k}${'arg' in o ? ` ${o.arg}` : ''}`.padEnd(24)} ${o.help}`).join('\n')}

Examples:
  npm run report -- --run runs/local --run runs/dist2 --out report/
  npm run report -- --run runs/2026-01-01T00-00 --out docs/run.md --title "cpu preset, cosine"

Exit codes: 0 written, 1 failed, 2 bad arguments or run directory.`;

export async function main(argv: string[]): Promise<number> {
  const v = parseWithTable(argv, OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  // parseWithTable checks the flags and keeps the last --run; the same table with `multiple` keeps them all
  const dirs = parseArgs({ args: argv, options: { ...OPTIONS, run: { type: 'string', multiple: true } }, strict: true }).values.run ?? [];
  if (!dirs.length) throw new ConfigError('E_BAD_FLAG', '--run DIR is required (see --help)');
  const warmup = v.warmup === undefined ? undefined : Number(v.warmup);
  if (warmup !== undefined && !(Number.isInteger(warmup) && warmup >= 0)) throw new ConfigError('E_BAD_FLAG', `--warmup takes a whole number >= 0, got '${String(v.warmup)}'`);
  const runs = dirs.map(loadRun); // every directory checked before anything is written
  const r = await writeReport({ runs, out: v.out as string | undefined, title: v.title as string | undefined, warmup });
  console.log(`report → ${r.file} (${r.images.length} chart(s): ${r.images.map((f) => basename(f)).join(', ')})`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) runMain(() => main(process.argv.slice(2)));
