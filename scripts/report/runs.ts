// Reading a run directory (config.json and log.jsonl, shared/train/log.ts) and summarizing it: losses, timings, phases, scaling.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ConfigError } from '../../shared/errors.ts';
import { median } from '../../shared/stats.ts';
import {
  COORDINATOR_PHASES, WORKER_PHASES, efficiency, medianOverhead, stepWallMs, tokensPerSec,
  type DoneRecord, type EvalRecord, type StartRecord, type StepPhaseRecord, type StepRecord,
} from '../../shared/train/log.ts';

export type { DoneRecord, EvalRecord, StartRecord, StepPhaseRecord, StepRecord };

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

/** Stacking order of the phase chart and column order of the phase tables; `other` = step − the listed phases. */
export const PHASE_ORDER = ['compute', 'spectral', 'encode', 'transfer', 'wait', 'reduce', 'optimizer', 'broadcast', 'other'] as const;
export type PhaseName = (typeof PHASE_ORDER)[number];

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
const stepMs = (r: StepRecord) => stepWallMs(r);

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
    tokensPerSec: tokensPerSec(tokensPerStep, medianMs),
    medianOverhead: finite(medianOverhead(timed)),
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
 * E(N) = throughput(N) / (N · throughput(1)) (docs/metrics.md). The baseline is the series' own 1-worker row, else
 * any 1-worker row (such as a --local reference), else the series' smallest row (E relative to it, scaled by its workers).
 */
export function scalingEfficiency(rows: ScalingPoint[]): ScalingEfficiency[] {
  const seriesOf = (r: ScalingPoint) => r.series ?? '';
  return rows.map((r) => {
    const mine = rows.filter((o) => seriesOf(o) === seriesOf(r));
    const base = mine.find((o) => o.workers === 1) ?? rows.find((o) => o.workers === 1) ?? [...mine].sort((a, b) => a.workers - b.workers)[0];
    if (!base || !(base.tokensPerSec > 0)) return { ...r };
    return { ...r, efficiency: efficiency(r.tokensPerSec, r.workers, base.tokensPerSec, base.workers), baseline: base.label };
  });
}

