// The log schema: log.jsonl's records (start, step with its phases, eval, done), its writer, and the figures derived from them.
//
// The format is documented in docs/log-format.md; the derived figures (docs/metrics.md) are defined here once and
// used by the writer's console summary, the live page (coordinator/monitor.ts), the report (scripts/report/) and
// the benchmarks (scripts/bench/).
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './safetensors.ts';

/** A worker's share of one step, in ms on the coordinator's clock (coordinator/phases.ts), and its bytes. */
export interface WorkerPhases {
  compute: number; // forward + backward, as the worker measured it
  spectral: number; // the worker's FFTs, magnitudes and blends
  encode: number; // serialisation both ways: the coordinator's encode and decode for this worker, the worker's decode
  transfer: number; // the rest of each round trip: bytes on the wire both ways (and the worker's queueing)
  wait: number; // idle after its result, until the slowest worker's result arrived
  bytes_sent: number; // coordinator → worker, this step
  bytes_received: number; // worker → coordinator, this step
}

/** The coordinator's side of one step, in ms. */
export interface CoordinatorPhases {
  step: number; // wall time of the whole step
  reduce: number; // weighted means, clip coefficient
  spectral: number; // the coordinator's part of SMI (global: all of it; synced: history, quantile, masks)
  optimizer: number; // AdamW
  broadcast: number; // reading the weights and sending them to every worker
  encode: number; // all serialisation on the coordinator
  wait: number; // first result → last result, summed over the step's rounds
}

/** A step's `phases` field: the coordinator's parts and every worker's. */
export interface StepPhaseRecord {
  coordinator: CoordinatorPhases;
  workers: Record<string, WorkerPhases>;
}

export const WORKER_PHASES = ['compute', 'spectral', 'encode', 'transfer', 'wait'] as const;
export const COORDINATOR_PHASES = ['reduce', 'spectral', 'optimizer', 'broadcast', 'encode', 'wait'] as const;

export interface StartRecord { kind: 'start'; step: number; backend: string; device: string; params: number; resumed: boolean; init_from?: InitFromRecord }

/** What --init-from loaded into a run: the file, the names dropped on purpose, and what was accepted as nanoGPT accepts it. */
export interface InitFromRecord {
  file: string;
  dropped: string[];
  notes: string[];
}
export interface StepRecord {
  kind: 'step';
  step: number;
  loss: number; // mean training loss of the step's batch
  lr: number;
  alpha: number; // SMI's α_t (0 for the baseline)
  ms: number; // wall time of the step in the training loop
  tokens: number; // batch_size × block_size
  workers: number; // processes that computed a share (1 for --local)
  grad_norm: number; // global gradient norm before clipping
  compute_ms?: number; // forward + backward (distributed: the slowest chunk's)
  cpu_ms?: number; // CPU time (user + system, all threads) of the process running the loop during the step: the coordinator's, or --local's
  mask_checksum?: number; // synced mode: the shared mask's checksum
  mask_checksums?: number[]; // --synced-blend workers: the checksum each worker reported for the masks it applied
  phases?: StepPhaseRecord; // distributed runs with --timing on (--update coordinator)
  /**
   * --update owners: per worker, its phases (ms: compute, spectral, reduce_scatter, reduce, update, all_gather_send),
   * its bytes sent and received on every link this step (the coordinator's included), and of those, the bytes on
   * its exchange links toward the owners (shares_*: gradients, magnitudes, blends) and back (values_*: values, masks)
   */
  owners_step?: Record<string, OwnersStepWorker>;
  coordinator_cpu_ms?: number; // --update owners: the coordinator process's CPU time (user + system) during the step
  coordinator_bytes?: { sent: number; received: number }; // --update owners: the coordinator's bytes on the control links in the step
  owners_plan?: OwnersPlanRecord; // --update owners: the plan, on the first step under each plan
  offsets?: number[]; // with --log-batches: the batch's start offsets
}
/** Who owns what (--update owners): per owner its tensor count and values; the workers that only compute. */
export interface OwnersPlanRecord {
  version: number;
  owners: { worker: string; tensors: number; params: number }[];
  compute_only: string[];
}

/** One worker's part of an owners' step in the log (`owners_step`). */
export interface OwnersStepWorker {
  phases: Record<string, number>;
  sent: number;
  received: number;
  one_way_ms?: number; // the one-way trip its phases were placed on the coordinator's clock with (coordinator/phases.ts onCoordinatorClock)
  shares_sent?: number;
  shares_received?: number;
  values_sent?: number;
  values_received?: number;
  cpu_ms?: number; // its process's CPU time (user + system, all threads) since its previous step's done; absent for a browser tab
}
export interface EvalRecord { kind: 'eval'; step: number; train_loss: number; val_loss: number; eval_workers?: number }
export interface DoneRecord { kind: 'done'; step: number; ms: number; tokens_per_sec: number; train_loss: number; val_loss: number }

export type LogRecord = StartRecord | StepRecord | EvalRecord | DoneRecord;

/** Appends records to log.jsonl, one JSON object a line. */
export class RunLog {
  readonly path: string;
  constructor(dir: string, private readonly onRecord?: (r: LogRecord) => void) {
    this.path = join(dir, 'log.jsonl');
  }
  write(r: LogRecord): void {
    appendFileSync(this.path, JSON.stringify(r) + '\n');
    this.onRecord?.(r);
  }
  read(): LogRecord[] {
    if (!existsSync(this.path)) return [];
    return readFileSync(this.path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogRecord);
  }
  /** On resume: drop what was logged after the checkpoint's step, since those steps run again. */
  truncateAfter(step: number): void {
    const keep = this.read().filter((r) => r.kind !== 'done' && (r.kind === 'start' || r.step <= step));
    writeFileAtomic(this.path, keep.map((r) => JSON.stringify(r) + '\n').join(''));
  }
}

// ---- derived figures (docs/metrics.md) ---------------------------------------------------------------------

/** A step record as read back from a file or the wire: any field may be missing or of another type. */
type LooseStep = Pick<StepRecord, 'ms'> & { compute_ms?: unknown; phases?: { coordinator?: { step?: unknown }; workers?: Record<string, { compute?: unknown }> } };

/**
 * A step's phases in the star's shape ({ coordinator, workers }) for those that watch them (the live page, /metrics):
 * the record's own `phases`, else, under --update owners, each worker's phases from `owners_step` with the bytes it
 * sent and received on all its links as `bytes_sent`/`bytes_received` (its own side; the coordinator, which only
 * waits for the owners, has no phases of its own); undefined when the step has neither.
 */
export function stepPhases(r: Pick<StepRecord, 'phases' | 'owners_step'>): { coordinator: Record<string, number>; workers: Record<string, Record<string, number>> } | undefined {
  if (r.phases) return r.phases as unknown as { coordinator: Record<string, number>; workers: Record<string, Record<string, number>> };
  if (!r.owners_step) return undefined;
  const workers = Object.fromEntries(Object.entries(r.owners_step).map(([id, w]) => [id, { ...w.phases, bytes_sent: w.sent, bytes_received: w.received }]));
  return { coordinator: {}, workers };
}

/**
 * Bytes each process sent and received in a step, from its own side: under --update owners each worker's own
 * counts over all its links and the coordinator's on its control links (`coordinator_bytes`); in the star, the
 * coordinator's link to each worker seen from both ends. Empty when the record has neither.
 */
export function processBytes(r: Pick<StepRecord, 'phases' | 'owners_step' | 'coordinator_bytes'>): Record<string, { sent: number; received: number }> {
  const n = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : 0);
  const out: Record<string, { sent: number; received: number }> = {};
  if (r.owners_step) {
    if (r.coordinator_bytes) out.coordinator = { sent: n(r.coordinator_bytes.sent), received: n(r.coordinator_bytes.received) };
    for (const [id, w] of Object.entries(r.owners_step)) out[id] = { sent: n(w.sent), received: n(w.received) };
    return out;
  }
  if (!r.phases) return out;
  const c = { sent: 0, received: 0 };
  for (const [id, w] of Object.entries(r.phases.workers ?? {})) {
    out[id] = { sent: n(w.bytes_received), received: n(w.bytes_sent) }; // the worker's side of the coordinator's link
    c.sent += n(w.bytes_sent);
    c.received += n(w.bytes_received);
  }
  return { coordinator: c, ...out };
}

/**
 * CPU milliseconds of each process in a step: under --update owners the coordinator's (`coordinator_cpu_ms`) and
 * each worker's (`owners_step.*.cpu_ms`) where logged; the star's (a record with phases) its coordinator's (`cpu_ms`);
 * nothing for one process (its `cpu_ms` is the step's own). Processes that logged none are left out.
 */
export function processCpu(r: Pick<StepRecord, 'cpu_ms' | 'owners_step' | 'coordinator_cpu_ms' | 'phases'>): Record<string, number> {
  const ok = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  const out: Record<string, number> = {};
  if (r.owners_step) {
    if (ok(r.coordinator_cpu_ms)) out.coordinator = r.coordinator_cpu_ms;
    for (const [id, w] of Object.entries(r.owners_step)) if (ok(w.cpu_ms)) out[id] = w.cpu_ms;
    return out;
  }
  if (r.phases && ok(r.cpu_ms)) out.coordinator = r.cpu_ms;
  return out;
}

/** Wall time of a step at the coordinator (`phases.coordinator.step`), else the loop's `ms` (one process: the whole step). */
export function stepWallMs(r: LooseStep): number {
  const s = r.phases?.coordinator?.step;
  return typeof s === 'number' ? s : r.ms;
}

/** Forward + backward of the step's slowest worker (from its phases, else `compute_ms`); null when the record has none. */
export function slowestComputeMs(r: LooseStep): number | null {
  const fromPhases = Object.values(r.phases?.workers ?? {}).map((w) => w.compute).filter((c): c is number => typeof c === 'number');
  if (fromPhases.length > 0) return Math.max(...fromPhases);
  return typeof r.compute_ms === 'number' ? r.compute_ms : null;
}

/**
 * The scaling overhead of a step: the share of its wall time outside the slowest worker's compute,
 * 1 − compute / wall, held to [0, 1]; null without a compute time.
 */
export function overhead(r: LooseStep): number | null {
  const compute = slowestComputeMs(r);
  const wall = stepWallMs(r);
  return compute !== null && wall > 0 ? Math.min(1, Math.max(0, 1 - compute / wall)) : null;
}

/** The median of `overhead` over steps (those without a compute time left out); NaN for none. */
export function medianOverhead(steps: readonly LooseStep[]): number {
  const xs = steps.map(overhead).filter((o): o is number => o !== null).sort((a, b) => a - b);
  const n = xs.length;
  if (n === 0) return NaN;
  return n % 2 ? xs[(n - 1) / 2]! : (xs[n / 2 - 1]! + xs[n / 2]!) / 2;
}

/** Training tokens per second of `tokens` processed in `ms`. */
export const tokensPerSec = (tokens: number, ms: number): number => (ms > 0 ? (tokens * 1000) / ms : 0);

/**
 * Scaling efficiency E(N) = throughput(N) / (N · throughput(1)), with the baseline measured on `baseWorkers`
 * workers (1, or a --local run; else E relative to it, scaled by its workers).
 */
export const efficiency = (tps: number, workers: number, baseTps: number, baseWorkers = 1): number => (tps * baseWorkers) / (workers * baseTps);
