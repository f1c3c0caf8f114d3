// The coordinator: a ws server that shards each step's batch to workers, reduces their results and applies AdamW.
import * as tf from '@tensorflow/tfjs';
import { nanoid } from 'nanoid';
import { createServer, type Server } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { Monitor } from './monitor.ts';
import { lrAt, type SyncedBlend, type TrainConfig } from '../shared/config.ts';
import { protocolError, ProtocolError } from '../shared/errors.ts';
import {
  SharedSpectralHistory, allFinite, blendWithMasks, clipCoefficient, localSpectra, splitBatch, tokenWindows, weightedSum,
} from '../shared/parallel.ts';
import { PROTOCOL_VERSION, type Blended, type Grads, type Hello, type Message } from '../shared/protocol.ts';
import { SMI_RUNS, alphaAt, view2d } from '../shared/smi.ts';
import { TrainingError, applyGradients, type RunState, type StepEngine, type StepOutcome } from '../shared/train.ts';
import type { Corpus } from '../shared/data.ts';
import { MAX_MESSAGE_BYTES, Peer, serverOptions, type ReceiveInfo } from '../shared/wire.ts';
import { readInto } from '../shared/backend.ts';
import { NullPhases, StepPhases, TraceWriter, summarizePhases, type StepPhaseRecord } from './phases.ts';

const PRE_AUTH_MESSAGE_BYTES = 1 << 20;

export interface CoordinatorOptions {
  cfg: TrainConfig;
  corpus: Corpus;
  host?: string; // [127.0.0.1]
  port?: number; // [0: any free port]
  token?: string; // workers must present it when set
  minWorkers?: number; // live workers before step 1 [1]
  stepTimeoutMs?: number; // a result later than this fails its worker [60 s]
  syncedBlend?: SyncedBlend; // synced mode: where the shared mask is applied ['coordinator']
  timing?: boolean; // per-phase timing in each step record [true]
  trace?: string; // write a Chrome trace-event file here
  log?: (line: string) => void;
}

interface Member {
  id: string;
  peer: Peer;
  hello: Hello;
  inflight: number;
  joinedAt: number;
}

/** One unit of work in a phase: a chunk of the batch, to be done by some worker. */
interface Item<R> {
  index: number;
  offsets: number[];
  holder?: string; // the worker that must do it (phase 2 of synced/local: it holds the chunk's state)
  result?: R;
}

interface Pending {
  member: string;
  step: number;
  kind: 'grads' | 'blended';
  item: Item<unknown>;
  timer: NodeJS.Timeout;
  accept: (msg: Grads | Blended, member: Member) => unknown;
  phases: StepPhases;
  sent: number; // performance.now() when the request was handed to the socket
  encodeMs: number;
  answered: boolean; // the result came before the send's own bookkeeping did (possible under load)
}

class RestartStep extends Error {}

/**
 * Serves workers and computes steps with them. `engine(state)` gives runTraining its StepEngine; the
 * coordinator keeps the model, the optimizer and (synced/global) the spectral history, and broadcasts weights.
 */
export class Coordinator {
  private readonly wss: WebSocketServer;
  private readonly members = new Map<string, Member>();
  private readonly pending = new Map<number, Pending>();
  private wakers: (() => void)[] = [];
  private weights: Float32Array[] = [];
  private weightsStep = 0;
  private nextAttempt = 0;
  private round = 0;
  private readonly log: (line: string) => void;
  readonly ready: Promise<number>; // resolves with the listening port
  private readonly trace: TraceWriter | null;
  readonly monitor: Monitor;
  private readonly http: Server;

  constructor(private readonly o: CoordinatorOptions) {
    this.log = o.log ?? (() => {});
    this.trace = o.trace ? new TraceWriter(o.trace) : null;
    // one port for everything: the live page and /metrics over HTTP, the workers over WebSocket upgrades
    this.monitor = new Monitor({ title: `SMI trainer: ${o.cfg.preset} preset, ${o.cfg.smi}, ${o.cfg.spectral}`, config: { ...o.cfg } });
    this.http = createServer((req, res) => this.monitor.handle(req, res));
    this.wss = new WebSocketServer(serverOptions({ server: this.http }));
    this.ready = new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve((this.http.address() as { port: number }).port));
    });
    this.wss.on('connection', (ws) => this.accept(ws));
  }

  /** Tells every worker the run is over and closes the server. */
  async close(reason = 'run finished'): Promise<void> {
    for (const m of this.members.values()) {
      await m.peer.send({ type: 'bye', reason }).catch(() => {});
      m.peer.close(protocolError('E_SHUTDOWN', reason));
    }
    this.members.clear();
    this.trace?.close();
    this.monitor.close();
    await new Promise<void>((r) => this.wss.close(() => r()));
    this.http.closeAllConnections();
    await new Promise<void>((r) => this.http.close(() => r()));
  }

  private wake(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }

  private nextEvent(): Promise<void> {
    return new Promise((r) => this.wakers.push(r));
  }

  /** Protocol errors by code go to the live page and /metrics. */
  private countError(code: string): void {
    this.monitor.countError(code);
  }

  private membersChanged(): void {
    this.monitor.setWorkers([...this.members.values()].map((m) => ({ id: m.id, backend: m.hello.backend, device: m.hello.device, host: m.hello.host, pid: m.hello.pid, joinedAt: m.joinedAt })));
    this.wake();
  }

  private accept(ws: WebSocket): void {
    // until its hello is accepted a client may not make us allocate more than a hello needs
    const peer = new Peer(ws, { maxMessageBytes: PRE_AUTH_MESSAGE_BYTES });
    let member: Member | null = null;
    peer.onClose((code, reason) => {
      if (member) this.drop(member, `link closed (${code} ${reason})`);
    });
    peer.onError((err: ProtocolError) => {
      this.countError(err.code);
      this.log(`protocol error from ${member?.id ?? 'a new connection'}: ${err.code} ${err.message}`);
    });
    peer.onMessage((msg: Message, info: ReceiveInfo) => {
      try {
        if (!member) {
          if (msg.type !== 'hello') throw protocolError('E_UNEXPECTED', `expected hello, got ${msg.type}`);
          member = this.join(peer, msg);
          peer.maxMessageBytes = MAX_MESSAGE_BYTES;
          return;
        }
        this.receive(member, msg, info);
      } catch (e) {
        const err = e instanceof ProtocolError ? e : protocolError('E_MALFORMED', (e as Error).message);
        this.countError(err.code);
        this.log(`rejecting ${member?.id ?? 'a new connection'}: ${err.code} ${err.message}`);
        if (member) this.drop(member, err.code);
        peer.close(err);
      }
    });
  }

  private join(peer: Peer, hello: Hello): Member {
    if (hello.protocol !== PROTOCOL_VERSION) throw protocolError('E_VERSION', `protocol ${hello.protocol}, this coordinator speaks ${PROTOCOL_VERSION}`);
    if (this.o.token !== undefined && hello.token !== this.o.token) throw protocolError('E_TOKEN', 'wrong or missing token');
    let id = hello.workerId ?? nanoid(10);
    if (this.members.has(id)) id = nanoid(10); // a reconnect whose old link is not yet seen closed gets a new id
    const m: Member = { id, peer, hello, inflight: 0, joinedAt: Date.now() };
    this.members.set(id, m);
    void peer.send({ type: 'welcome', workerId: id, config: this.o.cfg, step: this.weightsStep });
    // a copy: the broadcast buffers are rewritten in place after each step, and this send is not awaited
    void peer.send({ type: 'weights', step: this.weightsStep, tensors: this.weights.map((w) => w.slice()) });
    this.log(`worker ${id} joined: ${hello.backend} on ${hello.device}, ${(hello.memoryBytes / 2 ** 30).toFixed(1)} GiB, ${hello.host} pid ${hello.pid} (${this.members.size} live)`);
    this.membersChanged();
    return m;
  }

  private drop(m: Member, why: string): void {
    if (!this.members.has(m.id)) return;
    this.members.delete(m.id);
    for (const [attempt, p] of this.pending) {
      if (p.member === m.id) {
        clearTimeout(p.timer);
        this.pending.delete(attempt);
      }
    }
    this.log(`worker ${m.id} left: ${why} (${this.members.size} live)`);
    this.membersChanged();
  }

  private receive(m: Member, msg: Message, info: ReceiveInfo): void {
    switch (msg.type) {
      case 'grads':
      case 'blended': {
        const p = this.pending.get(msg.attempt);
        if (!p || p.member !== m.id || p.step !== msg.step || p.kind !== msg.type) {
          throw protocolError('E_UNEXPECTED', `${msg.type} for step ${msg.step} attempt ${msg.attempt}, which is not outstanding for this worker`);
        }
        clearTimeout(p.timer);
        this.pending.delete(msg.attempt);
        m.inflight--;
        p.item.result = p.accept(msg, m); // throws ProtocolError on a bad result: the worker is dropped, the item redone
        p.answered = true;
        p.phases.roundTrip(m.id, msg.type, p.sent, performance.now(), msg.phases, p.encodeMs, info.decodeMs);
        this.wake();
        return;
      }
      case 'pong':
      case 'error':
        if (msg.type === 'error') this.log(`worker ${m.id} reports ${msg.code}: ${msg.message}`);
        return;
      case 'hello':
      case 'welcome':
      case 'weights':
      case 'work':
      case 'blend':
      case 'ping':
      case 'bye':
        throw protocolError('E_UNEXPECTED', `a worker may not send ${msg.type}`);
      default: {
        const never: never = msg;
        throw protocolError('E_MALFORMED', `unknown message ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Runs one phase: every item gets done by some live worker (its holder, if it has one). A worker that
   * fails has its items handed to the others. `orphan` handles an item whose holder is gone.
   */
  private async phase<R>(
    step: number, kind: 'grads' | 'blended', items: Item<R>[], phases: StepPhases,
    send: (m: Member, item: Item<R>, attempt: number) => Promise<{ encodeMs: number }>,
    accept: (msg: Grads | Blended, m: Member, item: Item<R>) => R,
    orphan?: (item: Item<R>) => R,
  ): Promise<void> {
    let waitingLogged = false;
    phases.beginRound();
    for (;;) {
      const busy = new Set([...this.pending.values()].map((p) => p.item));
      for (const item of items) {
        if (item.result !== undefined || busy.has(item as Item<unknown>)) continue;
        if (item.holder && !this.members.has(item.holder)) {
          if (!orphan) throw new RestartStep(`worker ${item.holder} left holding chunk ${item.index}`);
          item.result = orphan(item);
          continue;
        }
        const m = item.holder ? this.members.get(item.holder)! : [...this.members.values()].sort((a, b) => a.inflight - b.inflight)[0];
        if (!m) break;
        const attempt = this.round * 1000 + (this.nextAttempt++ % 1000);
        m.inflight++;
        const timer = setTimeout(() => {
          this.countError('E_TIMEOUT');
          this.log(`worker ${m.id} missed the step timeout (${this.o.stepTimeoutMs ?? 60_000} ms) on step ${step}`);
          this.drop(m, 'E_TIMEOUT');
          m.peer.close(protocolError('E_TIMEOUT', `no result for step ${step} within ${this.o.stepTimeoutMs ?? 60_000} ms`));
        }, this.o.stepTimeoutMs ?? 60_000);
        const p: Pending = { member: m.id, step, kind, item: item as Item<unknown>, timer, accept: (msg, mm) => accept(msg, mm, item), phases, sent: performance.now(), encodeMs: 0, answered: false };
        this.pending.set(attempt, p);
        send(m, item, attempt).then(
          (st) => {
            if (p.answered) phases.lateEncode(m.id, st.encodeMs);
            else {
              p.encodeMs = st.encodeMs;
              phases.encoded(m.id, st.encodeMs);
            }
          },
          () => this.drop(m, 'send failed'),
        );
      }
      if (items.every((i) => i.result !== undefined)) {
        phases.endRound();
        return;
      }
      if (this.members.size === 0 && !waitingLogged) {
        this.log(`step ${step}: no live workers; waiting for one to join`);
        waitingLogged = true;
      }
      await this.nextEvent();
    }
  }

  /** Waits until `n` workers are live (before step 1). */
  async waitForWorkers(n: number): Promise<void> {
    while (this.members.size < n) {
      this.log(`waiting for workers: ${this.members.size}/${n}`);
      await this.nextEvent();
    }
  }

  /** Checks a result's tensors: count, lengths, finiteness. */
  private checkTensors(what: string, tensors: Float32Array[], sizes: number[]): void {
    if (tensors.length !== sizes.length) throw protocolError('E_SHAPE', `${what}: ${tensors.length} tensors, the model has ${sizes.length}`);
    tensors.forEach((t, i) => {
      if (t.length !== sizes[i]) throw protocolError('E_SHAPE', `${what}: tensor ${i} has ${t.length} values, expected ${sizes[i]}`);
      if (!allFinite(t)) throw protocolError('E_NONFINITE', `${what}: tensor ${i} holds NaN or Inf`);
    });
  }

  /** The StepEngine for runTraining: steps computed by the workers. */
  engine(state: RunState): StepEngine {
    const { cfg, corpus } = this.o;
    const names = state.model.params.map((p) => p.name);
    const shapes = state.model.params.map((p) => p.shape);
    const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
    const halfSizes = shapes.map((s) => {
      const [rows, cols] = view2d(s);
      return rows * (Math.floor(cols / 2) + 1);
    });
    const run = SMI_RUNS[cfg.smi];
    const mode = cfg.smi === 'baseline' ? 'global' : cfg.spectral;
    const shared = mode === 'synced' ? new SharedSpectralHistory(run.beta, run.q) : null;
    if (shared) this.log(`synced spectral history: the shared mask is applied ${(this.o.syncedBlend ?? 'coordinator') === 'coordinator' ? 'once, to the mean gradient, at the coordinator (one round trip)' : 'by each worker to its own spectrum (two round trips)'}`);
    const vars = state.model.params.map((p) => p.variable);
    // Host buffers reused every step (fresh multi-MB arrays each step keep V8's collector busy, on the cores the
    // workers compute on): the weights as broadcast, and the mean gradient.
    const weightsBuf = sizes.map((n) => new Float32Array(n));
    const meanBuf = sizes.map((n) => new Float32Array(n));
    const refreshWeights = (step: number) => {
      vars.forEach((v, i) => readInto(v, weightsBuf[i]!));
      this.weights = weightsBuf;
      this.weightsStep = step;
    };
    refreshWeights(state.step);

    const timing = this.o.timing ?? true;
    const recent: StepPhaseRecord[] = []; // since the last progress line, for the console summary
    const step = async (k: number, offsets: number[]): Promise<StepOutcome> => {
      const phases = timing ? new StepPhases() : new NullPhases();
      const bytesAt = new Map([...this.members.values()].map((m) => [m.id, [m.peer.bytesSent, m.peer.bytesReceived] as const]));
      for (;;) {
        try {
          const out = await attemptStep(k, offsets, phases);
          refreshWeights(k);
          const broadcast = { type: 'weights' as const, step: k, tensors: this.weights };
          await Promise.all([...this.members.values()].map((m) => m.peer.send(broadcast).then((st) => phases.encoded(m.id, st.encodeMs, true), () => this.drop(m, 'send failed'))));
          if (!timing) return out;
          for (const m of this.members.values()) {
            const [sent, received] = bytesAt.get(m.id) ?? [0, 0];
            phases.bytes(m.id, m.peer.bytesSent - sent, m.peer.bytesReceived - received);
          }
          const record = phases.finish();
          this.trace?.step(k, phases);
          recent.push(record);
          return { ...out, extra: { ...out.extra, phases: record } };
        } catch (e) {
          if (!(e instanceof RestartStep)) throw e;
          this.round++;
          this.log(`step ${k}: ${e.message}; redoing the step with the remaining workers`);
        }
      }
    };

    const attemptStep = async (k: number, offsets: number[], phases: StepPhases): Promise<StepOutcome> => {
      const parts = Math.max(1, Math.min(this.members.size, offsets.length));
      type G = { n: number; loss: number; grads: Float32Array[]; magnitudes?: Float32Array[]; holder: string; attempt: number; phases: Record<string, number> };
      const items: Item<G>[] = splitBatch(offsets, parts).map((o, index) => ({ index, offsets: o }));
      const wantMagnitudes = mode === 'synced';
      await this.phase<G>(
        k, 'grads', items, phases,
        (m, item, attempt) => m.peer.send({ type: 'work', step: k, attempt, offsets: item.offsets, tokens: tokenWindows(corpus.train, item.offsets, cfg.block_size), magnitudes: wantMagnitudes }),
        (msg, m, item) => {
          const g = msg as Grads;
          if (g.sequences !== item.offsets.length) throw protocolError('E_SHAPE', `grads for ${g.sequences} sequences, sent ${item.offsets.length}`);
          if (!Number.isFinite(g.loss)) throw protocolError('E_NONFINITE', `loss is ${g.loss}`);
          this.checkTensors('grads', g.tensors, sizes);
          if (wantMagnitudes) {
            if (!g.magnitudes) throw protocolError('E_SHAPE', 'synced mode needs magnitudes');
            this.checkTensors('magnitudes', g.magnitudes, halfSizes);
          }
          return { n: g.sequences, loss: g.loss, grads: g.tensors, magnitudes: g.magnitudes, holder: m.id, attempt: g.attempt, phases: g.phases };
        },
      );
      const B = offsets.length;
      const w = items.map((i) => i.result!.n / B);
      const loss = items.reduce((a, i, c) => a + w[c]! * i.result!.loss, 0);
      const mean = weightedSum(items.map((i) => i.result!.grads), w, meanBuf);
      const alpha = alphaAt(run, k, cfg.max_iters);
      const workers = new Set(items.map((i) => i.result!.holder)).size;
      // the slowest chunk's forward+backward: the step's compute on the critical path
      const computeMs = Math.max(...items.map((i) => i.result!.phases.compute ?? 0));

      if (mode === 'global') {
        const tensors = mean.map((g, i) => tf.tensor(g, shapes[i]!));
        phases.mark('reduce');
        const { gradNorm, ms } = applyGradients(state.model, state.opt, state.smi, cfg, k, tensors);
        phases.split([['reduce', ms.clip], ['spectral', ms.spectral], ['optimizer', ms.optimizer]]); // clip → SMI → AdamW
        return { loss, gradNorm, alpha, workers, extra: { compute_ms: computeMs } };
      }
      const { norm, coef } = clipCoefficient(mean, cfg.grad_clip);
      if (!Number.isFinite(norm)) throw new TrainingError('E_NONFINITE_GRAD', `gradient norm is ${norm} at step ${k}: update refused, weights unchanged`);
      phases.mark('reduce');
      if (shared && (this.o.syncedBlend ?? 'coordinator') === 'coordinator') {
        const mags = items.map((i) => i.result!.magnitudes!);
        const { tensors: blended, checksum } = shared.blendMean(names, shapes, mean, mags, w, coef, alpha);
        phases.mark('spectral');
        const tensors = blended.map((g, i) => tf.tensor(g, shapes[i]!));
        state.opt.apply(vars, tensors, lrAt(cfg, k - 1));
        tf.dispose(tensors);
        shared.commit();
        phases.mark('optimizer');
        return { loss, gradNorm: norm, alpha, workers, extra: { compute_ms: computeMs, mask_checksum: checksum } };
      }
      let checksum: number | undefined;
      let masks: Uint8Array[] | undefined;
      if (shared) {
        ({ masks, checksum } = shared.prepare(names, shapes, items.map((i) => i.result!.magnitudes!), w, coef));
        phases.mark('spectral');
      }
      type Bl = { tensors: Float32Array[]; checksum?: number };
      const blendItems: Item<Bl>[] = items.map((i) => ({ index: i.index, offsets: i.offsets, holder: i.result!.holder }));
      await this.phase<Bl>(
        k, 'blended', blendItems, phases,
        (m, item, attempt) => {
          // `source` names the work attempt whose gradient (and spectra) the holder kept for this chunk
          const source = items[item.index]!.result!.attempt;
          return m.peer.send({ type: 'blend', step: k, attempt, source, clip: coef, alpha, ...(masks ? { masks, maskChecksum: checksum } : {}) });
        },
        (msg, _m, item) => {
          const b = msg as Blended;
          this.checkTensors('blended', b.tensors, sizes);
          if (checksum !== undefined && b.maskChecksum !== checksum) {
            throw protocolError('E_UNEXPECTED', `worker applied masks with checksum ${b.maskChecksum}, the shared masks have ${checksum} (chunk ${item.index})`);
          }
          return { tensors: b.tensors, checksum: b.maskChecksum };
        },
        // synced: a holder that left is replaced by the same arithmetic here, from the gradient it sent
        shared ? (item) => {
          const { kept } = localSpectra(items[item.index]!.result!.grads, shapes);
          return { tensors: blendWithMasks(kept, masks!, coef, alpha) };
        } : undefined,
      );
      const blended = weightedSum(blendItems.map((i) => i.result!.tensors), w);
      const tensors = blended.map((g, i) => tf.tensor(g, shapes[i]!));
      phases.mark('reduce');
      state.opt.apply(vars, tensors, lrAt(cfg, k - 1));
      tf.dispose(tensors);
      shared?.commit();
      phases.mark('optimizer');
      // the checksums the workers reported for the masks they applied (absent for chunks blended here)
      const reported = blendItems.map((i) => i.result!.checksum).filter((c) => c !== undefined);
      return { loss, gradNorm: norm, alpha, workers, extra: { compute_ms: computeMs, ...(checksum !== undefined ? { mask_checksum: checksum, mask_checksums: reported } : {}) } };
    };

    return {
      step,
      start: () => this.waitForWorkers(this.o.minWorkers ?? 1),
      summary: () => (recent.length ? summarizePhases(recent.splice(0)) : undefined),
      ...(shared
        ? { spectralState: { get: () => shared.getState(), set: (e) => shared.setState(e, new Map(names.map((n, i) => [n, shapes[i]!]))) } }
        : {}),
    };
  }
}
