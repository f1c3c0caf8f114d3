// The live monitor: a bounded in-memory history of the run, served as a page, JSON, Server-Sent Events and Prometheus metrics.
import { readFile } from 'node:fs/promises';
import type http from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ERROR_CODE_NAMES } from '../shared/errors.ts';
import { overhead, processBytes, processCpu, slowestComputeMs, stepPhases, tokensPerSec, type DoneRecord, type EvalRecord, type LogRecord, type OwnersPlanRecord, type StartRecord, type StepRecord } from '../shared/train/log.ts';

export interface WorkerInfo {
  id: string;
  backend: string;
  device: string;
  host: string;
  pid: number;
  joinedAt: number; // ms since the epoch
}


/** A step's `phases` (docs/log-format.md), read loosely: any numeric field is a phase in ms, except the `bytes_*` counts. */
interface Phases {
  coordinator?: Record<string, number>;
  workers?: Record<string, Record<string, number>>;
}

/** A step as the monitor keeps it: the record (without its batch offsets) and what is derived from it once. */
export interface StepEntry {
  record: StepRecord;
  tokens_per_sec: number; // this step's tokens / its wall time
  compute_ms: number | null; // the slowest worker's compute; null when the record has none
  overhead: number | null; // 1 − compute/step (shared/train/log.ts overhead); null without a compute time
  process_bytes: Record<string, { sent: number; received: number }>; // this step's bytes by process, each from its own side (shared/train/log.ts processBytes)
  process_cpu_ms: Record<string, number>; // this step's CPU ms by process, where logged (shared/train/log.ts processCpu)
}

/** What GET /api/state returns; the page starts from it and then applies /events with a larger `seq`. */
export interface MonitorState {
  title: string;
  config: Record<string, unknown>;
  seq: number; // the last event sent; events with a larger seq are newer than this state
  now: number;
  startedAt: number; // when the monitor was created (ms since the epoch)
  start: StartRecord | null;
  done: DoneRecord | null;
  workers: WorkerInfo[];
  errors: Record<string, number>; // every known code (0 if never seen), and any other code counted
  steps: StepEntry[]; // the most recent, oldest first
  plan: OwnersPlanRecord | null; // --update owners: who owns what, from the latest step record that carried it
  evals: EvalRecord[];
  totals: { steps: number; tokens: number; bytes_sent: number; bytes_received: number; errors: number };
  historyLimit: number;
  memory: ProcessMemory; // of the process serving this (the coordinator)
}

/** process.memoryUsage() in bytes, and the peak resident set size so far. */
export interface ProcessMemory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  maxRss: number;
}

export interface MonitorOptions {
  title?: string; // the page's heading [smi-trainer]
  config?: Record<string, unknown>; // shown on the page and in /api/state
  historyLimit?: number; // steps kept in memory; evals are all kept [2000]
  heartbeatMs?: number; // SSE comment interval that keeps proxies from closing idle streams [15 s]
}

const PAGE_DIR = join(import.meta.dirname, 'page');
// chart.js does not export its package.json; its main entry sits in dist/ next to the UMD build.
const CHART_UMD = join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.js');

const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: join(PAGE_DIR, 'index.html'), type: 'text/html; charset=utf-8' },
  '/index.html': { file: join(PAGE_DIR, 'index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { file: join(PAGE_DIR, 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/vendor/chart.umd.js': { file: CHART_UMD, type: 'text/javascript; charset=utf-8' },
};

// Phase times run from well under a millisecond (reduce on a tiny model) to tens of seconds (a slow worker).
const PHASE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
// An SSE client this far behind is not reading; it is dropped rather than buffered without bound.
const MAX_SSE_BACKLOG = 4 << 20;
// tokens/s gauge: over the last few steps, so one slow step (an eval, a checkpoint) does not make it jump.
const RATE_WINDOW = 10;
// Requests are bounded: the longest request target served (a longer one is 414; node's parser already refuses a
// request head over 16 KiB with 431), and the largest body read and dropped (no endpoint takes one; larger is 413).
export const MAX_URL_LENGTH = 2048;
export const MAX_BODY_BYTES = 1024;
const ENDPOINTS = ['/api/state', '/events', '/metrics'];

// prom-client counters throw on a negative increment; a bad number in a record must not reach the training loop.
const count = (x: unknown): number => (typeof x === 'number' && Number.isFinite(x) && x > 0 ? x : 0);
const isPhase = (k: string, v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && !k.startsWith('bytes_');

/**
 * Watches one run: `record` every log record, `setWorkers` on every membership change, `countError` on every
 * protocol error, and mount `handle` on the coordinator's HTTP server. Everything is in memory and bounded.
 */
export class Monitor {
  private readonly title: string;
  private readonly config: Record<string, unknown>;
  private readonly historyLimit: number;
  private readonly startedAt = Date.now();
  private seq = 0;
  private start: StartRecord | null = null;
  private done: DoneRecord | null = null;
  private workers: WorkerInfo[] = [];
  private steps: StepEntry[] = [];
  private evals: EvalRecord[] = [];
  private plan: OwnersPlanRecord | null = null;
  private readonly errors = new Map<string, number>(ERROR_CODE_NAMES.map((c) => [c, 0]));
  private readonly totals = { steps: 0, tokens: 0, bytes_sent: 0, bytes_received: 0, errors: 0 };
  private readonly clients = new Set<http.ServerResponse>();
  private readonly heartbeat: NodeJS.Timeout;
  private closed = false;

  private readonly registry = new Registry();
  private readonly m = metrics(this.registry);

  constructor(opts: MonitorOptions = {}) {
    this.title = opts.title ?? 'smi-trainer';
    this.config = opts.config ?? {};
    this.historyLimit = opts.historyLimit ?? 2000;
    // Zero series exist from the start, so rate() and alerts see them before the first event.
    for (const d of ['sent', 'received'] as const) this.m.bytes.inc({ direction: d }, 0);
    for (const c of ERROR_CODE_NAMES) this.m.errors.inc({ code: c }, 0);
    this.m.liveWorkers.set(0);
    this.heartbeat = setInterval(() => this.broadcast(': ping\n\n'), opts.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  /** Every record written to log.jsonl. */
  record(r: LogRecord): void {
    switch (r.kind) {
      case 'start':
        this.start = r;
        this.done = null;
        // A resumed run logs again from the checkpoint's step, as RunLog.truncateAfter does to the file.
        this.steps = this.steps.filter((s) => s.record.step <= r.step);
        this.evals = this.evals.filter((e) => e.step <= r.step);
        this.emit('start', { record: r });
        return;
      case 'step':
        return this.recordStep(r);
      case 'eval':
        this.evals.push(r);
        this.m.trainLoss.set(r.train_loss);
        this.m.valLoss.set(r.val_loss);
        this.emit('eval', { record: r });
        return;
      case 'done':
        this.done = r;
        if (Number.isFinite(r.train_loss)) this.m.trainLoss.set(r.train_loss);
        if (Number.isFinite(r.val_loss)) this.m.valLoss.set(r.val_loss);
        this.emit('done', { record: r });
        return;
      default: {
        const _unknown: never = r; // a kind added to LogRecord lands here until the monitor shows it
        return; // never throw into the training loop over a record the page cannot show
      }
    }
  }

  private recordStep(full: StepRecord): void {
    const { offsets: _offsets, ...r } = full; // the batch offsets are for reproduction, not for watching
    // under --update owners the page and /metrics read each worker's own phases and bytes in the star's shape
    const phases = stepPhases(r) as Phases | undefined;
    if (phases && !r.phases) (r as { phases?: unknown }).phases = phases;
    const entry: StepEntry = {
      record: r,
      tokens_per_sec: tokensPerSec(r.tokens, r.ms),
      compute_ms: slowestComputeMs(r),
      overhead: overhead(r),
      process_bytes: processBytes(r),
      process_cpu_ms: processCpu(r),
    };
    this.steps.push(entry);
    if (this.steps.length > this.historyLimit) this.steps.splice(0, this.steps.length - this.historyLimit);

    this.totals.steps++;
    this.totals.tokens += count(r.tokens);
    this.m.step.set(r.step);
    this.m.stepsTotal.inc();
    this.m.tokensTotal.inc(count(r.tokens));
    this.m.stepLoss.set(r.loss);
    this.m.lr.set(r.lr);
    this.m.alpha.set(r.alpha);
    this.m.gradNorm.set(r.grad_norm);
    const recent = this.steps.slice(-RATE_WINDOW);
    const ms = recent.reduce((a, s) => a + s.record.ms, 0);
    if (ms > 0) this.m.tokensPerSec.set(tokensPerSec(recent.reduce((a, s) => a + s.record.tokens, 0), ms));
    if (entry.overhead !== null) this.m.overhead.set(entry.overhead);

    for (const [k, v] of Object.entries(phases?.coordinator ?? {})) {
      if (isPhase(k, v)) this.m.phase.observe({ phase: k, process: 'coordinator' }, Math.max(0, v) / 1000);
    }
    for (const [id, w] of Object.entries(phases?.workers ?? {})) {
      for (const [k, v] of Object.entries(w)) if (isPhase(k, v)) this.m.phase.observe({ phase: k, process: id }, Math.max(0, v) / 1000);
      const sent = count(w.bytes_sent);
      const received = count(w.bytes_received);
      this.totals.bytes_sent += sent;
      this.totals.bytes_received += received;
      this.m.bytes.inc({ direction: 'sent' }, sent);
      this.m.bytes.inc({ direction: 'received' }, received);
    }
    this.m.processStepCpu.reset();
    for (const [proc, ms] of Object.entries(entry.process_cpu_ms)) this.m.processStepCpu.set({ process: proc }, ms / 1000);
    this.m.processStepBytes.reset(); // the last step's processes only: a worker that left is not shown with its old count
    for (const [proc, b] of Object.entries(entry.process_bytes)) {
      for (const d of ['sent', 'received'] as const) {
        this.m.processStepBytes.set({ process: proc, direction: d }, b[d]);
        this.m.processBytes.inc({ process: proc, direction: d }, count(b[d]));
      }
    }
    if (r.owners_plan) this.setPlan(r.owners_plan);
    this.emit('step', { entry });
  }

  /** The owners' plan (from a step record): gauges per owner, replaced whole when the plan changes. */
  private setPlan(p: OwnersPlanRecord): void {
    this.plan = p;
    this.m.planVersion.set(p.version);
    this.m.ownerTensors.reset();
    this.m.ownerParams.reset();
    for (const o of p.owners ?? []) {
      this.m.ownerTensors.set({ worker: o.worker }, count(o.tensors));
      this.m.ownerParams.set({ worker: o.worker }, count(o.params));
    }
    for (const id of p.compute_only ?? []) {
      this.m.ownerTensors.set({ worker: id }, 0);
      this.m.ownerParams.set({ worker: id }, 0);
    }
  }

  /** The live workers, whenever membership changes. */
  setWorkers(list: WorkerInfo[]): void {
    this.workers = list.map((w) => ({ ...w }));
    this.m.liveWorkers.set(list.length);
    this.emit('workers', { workers: this.workers });
  }

  /** A protocol error by its stable code (E_TOKEN, E_SHAPE, …). */
  countError(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
    this.totals.errors++;
    this.m.errors.inc({ code });
    this.emit('errors', { errors: Object.fromEntries(this.errors) });
  }

  /** The state the page starts from; `steps` limits the step history returned (newest kept). */
  state(steps = this.historyLimit): MonitorState {
    return {
      title: this.title,
      config: this.config,
      seq: this.seq,
      now: Date.now(),
      startedAt: this.startedAt,
      start: this.start,
      done: this.done,
      workers: this.workers,
      errors: Object.fromEntries(this.errors),
      steps: steps > 0 ? this.steps.slice(-steps) : [],
      plan: this.plan,
      evals: this.evals,
      totals: { ...this.totals },
      historyLimit: this.historyLimit,
      memory: { ...process.memoryUsage(), maxRss: process.resourceUsage().maxRSS * 1024 },
    };
  }

  /** An HTTP request refused with a 4xx status (by the monitor, or by the server before it: node's parser). */
  countHttp(status: number): void {
    this.m.httpRejected.inc({ status: String(status) });
  }

  /**
   * Serves GET /, /app.js, /vendor/chart.umd.js, /api/state, /events and /metrics; anything else gets a status:
   * 414 (target over MAX_URL_LENGTH), 400 (a target that is not a path), 413 (a body over MAX_BODY_BYTES, or
   * chunked), 404, 405. Never throws: whatever a request does stays in its response.
   */
  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    try {
      this.route(req, res);
    } catch (err) {
      failed(res, err);
    }
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    const target = req.url ?? '/';
    if (target.length > MAX_URL_LENGTH) return this.refuse(res, 414, `request target over ${MAX_URL_LENGTH} characters\n`);
    // the path as sent, never parsed as a URL ('//x' would be a host): only exact paths are served
    if (!target.startsWith('/')) return this.refuse(res, 400, 'the request target must be a path\n');
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : target.slice(q + 1));
    const declared = Number(req.headers['content-length'] ?? 0);
    if (req.headers['transfer-encoding'] !== undefined || !(declared <= MAX_BODY_BYTES)) {
      res.setHeader('Connection', 'close'); // the body is not read
      return this.refuse(res, 413, `no endpoint takes a body over ${MAX_BODY_BYTES} bytes\n`);
    }
    const known = Object.hasOwn(STATIC, path) || ENDPOINTS.includes(path);
    if (!known) return this.refuse(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return this.refuse(res, 405, 'method not allowed\n');
    }
    const file = STATIC[path];
    if (file) return void serveFile(req, res, file.file, file.type).catch((err: unknown) => failed(res, err));
    switch (path) {
      case '/api/state': {
        const n = Number(query.get('steps') ?? this.historyLimit);
        return send(req, res, 200, 'application/json; charset=utf-8', JSON.stringify(this.state(Number.isFinite(n) ? Math.max(0, Math.floor(n)) : this.historyLimit)));
      }
      case '/metrics':
        this.registry.metrics().then(
          (body) => send(req, res, 200, this.registry.contentType, body),
          (err: unknown) => text(res, 500, `metrics failed: ${String(err)}\n`),
        ).catch((err: unknown) => failed(res, err));
        return;
      case '/events':
        return this.subscribe(req, res);
    }
  }

  private refuse(res: http.ServerResponse, status: number, body: string): void {
    this.countHttp(status);
    text(res, status, body);
  }

  /** Ends every SSE stream and stops the heartbeat; the monitor keeps answering plain requests. */
  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private subscribe(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.closed) return void res.writeHead(204).end(); // 204 tells EventSource to stop reconnecting
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no', // nginx: pass events through as they come
    });
    if (req.method === 'HEAD') return void res.end();
    // retry: how long EventSource waits before reconnecting; the page reloads /api/state when it does.
    res.write(`retry: 2000\n: seq ${this.seq}\n\n`);
    this.clients.add(res);
    const drop = () => this.clients.delete(res);
    req.on('close', drop);
    res.on('error', drop);
  }

  private emit(event: string, data: Record<string, unknown>): void {
    const seq = ++this.seq;
    if (this.clients.size === 0) return;
    this.broadcast(`event: ${event}\nid: ${seq}\ndata: ${JSON.stringify({ seq, ...data })}\n\n`);
  }

  private broadcast(chunk: string): void {
    for (const res of this.clients) {
      if (res.writableLength > MAX_SSE_BACKLOG) {
        this.clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(chunk);
    }
  }
}

/** The monitor's Prometheus metrics, in a registry of its own so that several monitors can share a process. */
function metrics(registry: Registry) {
  const registers = [registry];
  return {
    step: new Gauge({ name: 'smi_step', help: 'The last step logged', registers }),
    stepsTotal: new Counter({ name: 'smi_steps_total', help: 'Steps logged since the coordinator started', registers }),
    tokensTotal: new Counter({ name: 'smi_tokens_total', help: 'Training tokens processed since the coordinator started', registers }),
    stepLoss: new Gauge({ name: 'smi_step_loss', help: 'Training loss of the last step (one batch)', registers }),
    trainLoss: new Gauge({ name: 'smi_train_loss', help: 'Train-split loss at the last evaluation', registers }),
    valLoss: new Gauge({ name: 'smi_val_loss', help: 'Validation loss at the last evaluation', registers }),
    lr: new Gauge({ name: 'smi_learning_rate', help: 'Learning rate of the last step', registers }),
    alpha: new Gauge({ name: 'smi_alpha', help: 'SMI blend factor of the last step', registers }),
    gradNorm: new Gauge({ name: 'smi_grad_norm', help: 'Global gradient norm of the last step, before clipping', registers }),
    tokensPerSec: new Gauge({ name: 'smi_tokens_per_second', help: `Training throughput over the last ${RATE_WINDOW} steps`, registers }),
    overhead: new Gauge({ name: 'smi_overhead_ratio', help: 'Scaling overhead of the last step: 1 - slowest worker compute / step wall time', registers }),
    phase: new Histogram({
      name: 'smi_phase_seconds', help: 'Time per step in each phase (docs/metrics.md), by process (coordinator or a worker id)',
      labelNames: ['phase', 'process'] as const, buckets: PHASE_BUCKETS, registers,
    }),
    liveWorkers: new Gauge({ name: 'smi_live_workers', help: 'Workers connected now', registers }),
    bytes: new Counter({ name: 'smi_bytes_total', help: 'Bytes the coordinator sent to / received from workers', labelNames: ['direction'] as const, registers }),
    processStepBytes: new Gauge({ name: 'smi_process_step_bytes', help: 'Bytes each process (coordinator or a worker id) sent / received in the last step, on all its links, from its own side', labelNames: ['process', 'direction'] as const, registers }),
    processStepCpu: new Gauge({ name: 'smi_process_step_cpu_seconds', help: 'CPU time (user + system, all threads) of each process (coordinator or a worker id) in the last step, where it reports one', labelNames: ['process'] as const, registers }),
    processBytes: new Counter({ name: 'smi_process_bytes_total', help: 'Bytes each process sent / received over the logged steps, on all its links, from its own side', labelNames: ['process', 'direction'] as const, registers }),
    planVersion: new Gauge({ name: 'smi_plan_version', help: 'The owners plan in force (--update owners); 0 before the first', registers }),
    ownerTensors: new Gauge({ name: 'smi_owner_tensors', help: 'Parameter tensors each worker owns under the plan (0: it only computes)', labelNames: ['worker'] as const, registers }),
    ownerParams: new Gauge({ name: 'smi_owner_params', help: 'Parameter values each worker owns under the plan (their AdamW moments and SMI history live there)', labelNames: ['worker'] as const, registers }),
    errors: new Counter({ name: 'smi_protocol_errors_total', help: 'Protocol errors by stable code (docs/errors.md)', labelNames: ['code'] as const, registers }),
    httpRejected: new Counter({ name: 'smi_http_rejected_total', help: 'HTTP requests refused with a 4xx status, by status', labelNames: ['status'] as const, registers }),
  };
}

function send(req: http.IncomingMessage, res: http.ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-cache' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** A handler's own failure: a 500 if nothing was sent yet, else the response is cut. */
function failed(res: http.ServerResponse, err: unknown): void {
  if (res.headersSent) return void res.destroy();
  text(res, 500, `internal error: ${err instanceof Error ? err.message : String(err)}\n`);
}

function text(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

async function serveFile(req: http.IncomingMessage, res: http.ServerResponse, file: string, type: string): Promise<void> {
  let body: Buffer;
  try {
    body = await readFile(file); // read per request: small files, and an edited page shows on reload
  } catch (err) {
    return text(res, 500, `cannot read ${file}: ${(err as Error).message}\n`);
  }
  send(req, res, 200, type, body);
}
