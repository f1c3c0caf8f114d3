// Where a step's time goes (docs/metrics.md): per-worker and coordinator phases on the coordinator's clock, and the trace.
import { closeSync, openSync, writeSync } from 'node:fs';
import { medianOverhead, type CoordinatorPhases, type StepPhaseRecord, type WorkerPhases } from '../shared/train/log.ts';

export type { StepPhaseRecord };

type CoordinatorPart = Exclude<keyof CoordinatorPhases, 'step' | 'wait' | 'encode'>;

/** A span for the trace, in ms on the coordinator's clock (performance.now()). */
export interface TraceSpan {
  track: string; // 'coordinator' or a worker id
  name: string;
  start: number;
  dur: number;
}

const zeroWorker = (): WorkerPhases => ({ compute: 0, spectral: 0, encode: 0, transfer: 0, wait: 0, bytes_sent: 0, bytes_received: 0 });

/**
 * Accumulates one step's phases. Round trips are placed on the coordinator's clock: a worker's reported
 * compute and spectral time sit between the send and the arrival of its result, the rest is transfer.
 */
export class StepPhases {
  readonly t0 = performance.now();
  readonly coordinator: CoordinatorPhases = { step: 0, reduce: 0, spectral: 0, optimizer: 0, broadcast: 0, encode: 0, wait: 0 };
  private readonly workers = new Map<string, WorkerPhases>();
  readonly spans: TraceSpan[] = [];
  private arrivals = new Map<string, number>();
  private firstArrival = Infinity;
  private roundStart = this.t0;
  private cursor = this.t0; // phases are contiguous: each coordinator part runs from the cursor to now

  worker(id: string): WorkerPhases {
    let w = this.workers.get(id);
    if (!w) this.workers.set(id, (w = zeroWorker()));
    return w;
  }

  /** The time since the previous mark (or the round's end) was spent in `part`. */
  mark(part: CoordinatorPart): void {
    this.split([[part, Infinity]]);
  }

  /**
   * The time since the previous mark, shared among parts by their measured ms in order; the last part takes
   * whatever remains, so the parts stay contiguous and add up to the step even when the process was descheduled.
   */
  split(parts: [CoordinatorPart, number][]): void {
    const end = performance.now();
    parts.forEach(([part, ms], i) => {
      const dur = i === parts.length - 1 ? Math.max(0, end - this.cursor) : Math.max(0, Math.min(ms, end - this.cursor));
      this.coordinator[part] += dur;
      if (dur > 0) this.spans.push({ track: 'coordinator', name: part, start: this.cursor, dur });
      this.cursor += dur;
    });
  }

  /** The coordinator encoded a request for worker `id` (ms); `broadcast` encodes count within the broadcast phase. */
  encoded(id: string, ms: number, broadcast = false): void {
    if (!broadcast) this.worker(id).encode += ms;
    this.coordinator.encode += ms;
  }

  /** A round of requests begins (work, or blend): its time is shared out among the workers' phases. */
  beginRound(): void {
    this.roundStart = this.cursor;
  }

  /** Encode time learnt only after the round trip was booked as transfer: move it from transfer to encode. */
  lateEncode(id: string, ms: number): void {
    const w = this.worker(id);
    const moved = Math.min(ms, w.transfer);
    w.transfer -= moved;
    w.encode += moved;
    this.coordinator.encode += moved;
  }

  /**
   * A result arrived from worker `id`: the round trip began at `sent`; the worker reports compute, spectral and
   * decode ms; the coordinator spent `encodeMs` encoding the request and `decodeMs` decoding the answer.
   */
  roundTrip(id: string, name: string, sent: number, arrived: number, reported: Record<string, number>, encodeMs: number, decodeMs: number): void {
    const w = this.worker(id);
    if (!this.arrivals.has(id)) sent = this.roundStart; // a worker's first answer this round: its time from the round's start
    const compute = reported.compute ?? 0;
    const spectral = reported.spectral ?? 0;
    const workerDecode = reported.decode ?? 0;
    const transfer = Math.max(0, arrived - sent - compute - spectral - workerDecode - encodeMs - decodeMs);
    w.compute += compute;
    w.spectral += spectral;
    w.encode += workerDecode + decodeMs;
    this.coordinator.encode += decodeMs;
    w.transfer += transfer;
    let t = sent + encodeMs;
    const span = (n: string, d: number) => {
      if (d > 0) this.spans.push({ track: id, name: n, start: t, dur: d });
      t += d;
    };
    span('transfer', transfer / 2);
    span('encode', workerDecode);
    span(name === 'blended' ? 'spectral' : 'compute', name === 'blended' ? spectral : compute);
    if (name !== 'blended') span('spectral', spectral);
    span('transfer', Math.max(0, arrived - decodeMs - t));
    span('encode', decodeMs);
    this.arrivals.set(id, arrived);
    this.firstArrival = Math.min(this.firstArrival, arrived);
  }

  /** A round of results is complete: every worker waited from its last arrival until now. */
  endRound(): void {
    const last = performance.now();
    this.cursor = last;
    if (this.arrivals.size === 0) return;
    for (const [id, at] of this.arrivals) {
      this.worker(id).wait += last - at;
      if (last > at) this.spans.push({ track: id, name: 'wait', start: at, dur: last - at });
    }
    this.coordinator.wait += last - this.firstArrival;
    if (last > this.firstArrival) this.spans.push({ track: 'coordinator', name: 'wait', start: this.firstArrival, dur: last - this.firstArrival });
    this.arrivals = new Map();
    this.firstArrival = Infinity;
  }

  bytes(id: string, sent: number, received: number): void {
    const w = this.worker(id);
    w.bytes_sent += sent;
    w.bytes_received += received;
  }

  finish(): StepPhaseRecord {
    this.mark('broadcast'); // the step ends with the broadcast
    const end = this.cursor;
    this.coordinator.step = end - this.t0;
    this.spans.push({ track: 'coordinator', name: 'step', start: this.t0, dur: end - this.t0 });
    const round = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 1000) / 1000]));
    return {
      coordinator: round({ ...this.coordinator }) as unknown as CoordinatorPhases,
      workers: Object.fromEntries([...this.workers].map(([id, w]) => [id, round({ ...w }) as unknown as WorkerPhases])),
    };
  }
}

/**
 * Chrome trace-event JSON (the JSON array format), which Perfetto and chrome://tracing open: one process, one
 * track (thread) for the coordinator and one per worker, a complete event per phase per step.
 */
export class TraceWriter {
  private readonly fd: number;
  private readonly tids = new Map<string, number>();
  private readonly origin = performance.now();
  private first = true;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'w');
    writeSync(this.fd, '[\n');
    this.event({ name: 'process_name', ph: 'M', pid: 1, tid: 0, args: { name: 'smi-trainer' } });
    this.tid('coordinator');
  }

  private event(e: Record<string, unknown>): void {
    writeSync(this.fd, (this.first ? '' : ',\n') + JSON.stringify(e));
    this.first = false;
  }

  private tid(track: string): number {
    let tid = this.tids.get(track);
    if (tid === undefined) {
      tid = this.tids.size;
      this.tids.set(track, tid);
      this.event({ name: 'thread_name', ph: 'M', pid: 1, tid, args: { name: track === 'coordinator' ? 'coordinator' : `worker ${track}` } });
      this.event({ name: 'thread_sort_index', ph: 'M', pid: 1, tid, args: { sort_index: tid } });
    }
    return tid;
  }

  /** Writes a step's spans (timestamps in µs since the writer was opened). */
  step(step: number, phases: StepPhases): void {
    for (const s of phases.spans) {
      this.event({ name: s.name, cat: 'phase', ph: 'X', pid: 1, tid: this.tid(s.track), ts: Math.round((s.start - this.origin) * 1000), dur: Math.max(1, Math.round(s.dur * 1000)), args: { step } });
    }
  }

  /** Writes spans in time order, an enclosing span before those it holds (--update owners: every process's). */
  write(step: number, spans: readonly TraceSpan[]): void {
    const sorted = [...spans].sort((a, b) => a.start - b.start || b.dur - a.dur);
    for (const s of sorted) {
      this.event({ name: s.name, cat: 'phase', ph: 'X', pid: 1, tid: this.tid(s.track), ts: Math.round((s.start - this.origin) * 1000), dur: Math.max(1, Math.round(s.dur * 1000)), args: { step } });
    }
  }

  close(): void {
    writeSync(this.fd, '\n]\n');
    closeSync(this.fd);
  }
}

/**
 * A worker's spans (ms from its task's arrival, on its clock) placed on the coordinator's clock, NTP-style: the
 * task left at `sentAt` and the worker's `done` arrived at `arrivedAt`; of that round trip the worker spent
 * `elapsed` between the two, so the rest is taken as two equal one-way trips. The task then arrived at
 * sentAt + oneWay; the error is at most oneWay, from links that are slower one way than the other. Spans are held
 * to the interval the worker was busy in, so one step's never overlap the next's on a track.
 */
export function onCoordinatorClock(d: { spans?: readonly { name: string; start: number; dur: number }[]; elapsed?: number }, sentAt: number, arrivedAt: number): { oneWayMs: number; spans: { name: string; start: number; dur: number }[] } {
  const rtt = Math.max(0, arrivedAt - sentAt);
  const elapsed = Math.min(Math.max(0, d.elapsed ?? 0), rtt);
  const oneWayMs = (rtt - elapsed) / 2;
  const from = sentAt + oneWayMs;
  const to = arrivedAt - oneWayMs;
  const spans = (d.spans ?? []).map((sp) => {
    const start = Math.min(Math.max(from + sp.start, from), to);
    return { name: sp.name, start, dur: Math.min(Math.max(0, sp.dur), to - start) };
  });
  return { oneWayMs, spans };
}

/** StepPhases that records nothing: what `--timing off` uses, to measure what the timing costs. */
export class NullPhases extends StepPhases {
  override mark(): void {}
  override split(): void {}
  override encoded(): void {}
  override lateEncode(): void {}
  override roundTrip(): void {}
  override endRound(): void {}
  override beginRound(): void {}
  override bytes(): void {}
}

/**
 * The console summary of a log interval: the median overhead of its steps (shared/train/log.ts), the slowest
 * worker by compute and how much slower than the fastest, MB/s on the wire.
 */
export function summarizePhases(records: StepPhaseRecord[]): string {
  let step = 0;
  let bytes = 0;
  const perWorker = new Map<string, number>();
  for (const r of records) {
    step += r.coordinator.step;
    for (const [id, w] of Object.entries(r.workers)) {
      bytes += w.bytes_sent + w.bytes_received;
      perWorker.set(id, (perWorker.get(id) ?? 0) + w.compute);
    }
  }
  const ranked = [...perWorker].sort((a, b) => b[1] - a[1]);
  const slowest = ranked[0];
  const fastest = ranked.at(-1);
  const slowText = slowest && fastest && ranked.length > 1 ? `slowest ${slowest[0]} (+${((100 * (slowest[1] - fastest[1])) / Math.max(fastest[1], 1e-9)).toFixed(0)}% compute vs fastest)` : slowest ? `worker ${slowest[0]}` : 'no workers';
  const avg = (x: number) => x / Math.max(records.length, 1);
  const overhead = medianOverhead(records.map((r) => ({ ms: r.coordinator.step, phases: r })));
  return `  overhead ${Number.isFinite(overhead) ? (100 * overhead).toFixed(1) : '–'}% of ${avg(step).toFixed(1)} ms/step | ${slowText} | wire ${((bytes / 1e6) / (step / 1000)).toFixed(1)} MB/s`;
}
