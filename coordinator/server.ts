// The coordinator: a ws server that shards each step's batch to workers, reduces their results and applies AdamW.
import * as tf from '@tensorflow/tfjs';
import { nanoid } from 'nanoid';
import { createHash, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { Monitor } from './monitor.ts';
import { NORM_FLOOR, OUTLIER_FACTOR, ShareNorms, blendedBound, magnitudeBound, normOf, squaredNorms } from './share-bounds.ts';
import { lrAt, type SyncedBlend, type TrainConfig } from '../shared/config.ts';
import { protocolError, ProtocolError } from '../shared/errors.ts';
import {
  SharedSpectralHistory, blendWithMasks, clipCoefficient, localSpectra, splitBatch, tokenWindows, weightedSum,
} from '../shared/parallel/spectral.ts';
import { PROTOCOL_VERSION, wireConfig, type Blended, type Grads, type Hello, type Message } from '../shared/net/protocol.ts';
import { SMI_RUNS, alphaAt, view2d } from '../shared/smi/smi.ts';
import { TrainingError, applyGradients, type RunState, type StepEngine, type StepOutcome } from '../shared/train/loop.ts';
import type { Corpus } from '../shared/model/data.ts';
import { MAX_MESSAGE_BYTES, Peer, serverOptions, type ReceiveInfo } from '../shared/net/wire.ts';
import { readInto } from '../shared/backend/backend.ts';
import { NullPhases, StepPhases, TraceWriter, summarizePhases, type StepPhaseRecord } from './phases.ts';

// Until its hello is accepted a client may make us hold no more than a hello needs: bytes on the socket
// (WebSocket framing and control part included), control-part bytes (a hello has no data sections, so it is one
// frame, and the first message must be it), time, and the number of such clients at once.
const PRE_AUTH_BYTES = 64 * 1024;
const PRE_AUTH_CONTROL_BYTES = 4096;
const HELLO_TIMEOUT_MS = 10_000;
const MAX_AWAITING_HELLO = 64;
// An authenticated worker's messages: the largest is a gradient with its spectra (set from the model in engine()).
const WORKER_CONTROL_BYTES = 64 * 1024;
// A worker id whose result was rejected (E_NONFINITE, E_OUTLIER) is refused for 30 s, doubling per repeat up to 10 min.
const REFUSE_MS = 30_000;
const REFUSE_MAX_MS = 10 * 60_000;
const CLOSE_GRACE_MS = 1000;

const digest = (s: string) => createHash('sha256').update(s).digest();
const align8 = (n: number) => Math.ceil(n / 8) * 8;

export interface CoordinatorOptions {
  cfg: TrainConfig;
  corpus: Corpus;
  host?: string; // [127.0.0.1]
  port?: number; // [0: any free port]
  token?: string; // workers must present it when set
  minWorkers?: number; // live workers before step 1 [1]
  stepTimeoutMs?: number; // a result later than this fails its worker [60 s]
  firstStepTimeoutMs?: number; // the same for a worker's first result: GPU kernels compile on first use [30 min]
  syncedBlend?: SyncedBlend; // synced mode: where the shared mask is applied ['coordinator']
  timing?: boolean; // per-phase timing in each step record [true]
  trace?: string; // write a Chrome trace-event file here
  tls?: { cert: Buffer; key: Buffer }; // serve wss:// and https:// with this certificate chain and key (PEM)
  helloTimeoutMs?: number; // a connection without an accepted hello is closed after this [10 s]
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
  private readonly answered = new Set<string>(); // ids that have sent a result: their later ones get stepTimeoutMs
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
  private readonly tokenDigest: Buffer | null;
  private awaitingHello = 0;
  private readonly refused = new Map<string, { until: number; strikes: number }>();
  private workerMessageBytes = MAX_MESSAGE_BYTES; // the largest result a worker can send, once the model is known
  private shareNorms: ShareNorms | null = null;

  constructor(private readonly o: CoordinatorOptions) {
    this.log = o.log ?? (() => {});
    this.trace = o.trace ? new TraceWriter(o.trace) : null;
    this.tokenDigest = o.token === undefined ? null : digest(o.token);
    // one port for everything: the live page and /metrics over HTTP, the workers over WebSocket upgrades
    this.monitor = new Monitor({ title: `SMI trainer: ${o.cfg.preset} preset, ${o.cfg.smi}, ${o.cfg.spectral}`, config: { ...o.cfg } });
    const handle = (req: IncomingMessage, res: ServerResponse) => this.monitor.handle(req, res);
    this.http = o.tls ? createTlsServer({ cert: o.tls.cert, key: o.tls.key }, handle) : createServer(handle);
    // slow or broken HTTP clients: a request head within 10 s, a whole request within 30 s (an SSE response may last)
    this.http.headersTimeout = 10_000;
    this.http.requestTimeout = 30_000;
    this.http.on('clientError', (err: Error & { code?: string }, socket: Duplex) => this.badRequest(err, socket));
    this.wss = new WebSocketServer(serverOptions({ server: this.http }));
    this.ready = new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve((this.http.address() as { port: number }).port));
    });
    this.wss.on('connection', (ws, req) => this.accept(ws, req));
  }

  /** A request node's parser refused (bad request line, head over 16 KiB, too slow): a status if one can still go out. */
  private badRequest(err: Error & { code?: string }, socket: Duplex): void {
    const sent = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    if (err.code === 'ECONNRESET' || !socket.writable || sent) return void socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    this.monitor.countHttp(status);
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Tells every worker the run is over and closes the server. */
  async close(reason = 'run finished'): Promise<void> {
    for (const m of this.members.values()) {
      await m.peer.send({ type: 'bye', reason }).catch((e: unknown) => this.sendFailed(null, m.id, 'bye', e));
      m.peer.close(protocolError('E_SHUTDOWN', reason));
    }
    this.members.clear();
    if (this.shareNorms) this.log(this.shareNorms.summary());
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

  /** A send that failed: logged, counted as E_SEND_FAILED, and the member (if it is one) dropped and closed, so it reconnects. */
  private sendFailed(m: Member | null, who: string, what: string, e: unknown): void {
    const message = e instanceof Error ? e.message : String(e);
    this.countError('E_SEND_FAILED');
    this.log(`sending ${what} to ${who} failed: ${message}`);
    if (!m) return;
    this.drop(m, 'E_SEND_FAILED');
    m.peer.close(protocolError('E_SEND_FAILED', `${what} not sent: ${message}`));
  }

  /** Refuses `id` for a while after a rejected result (doubling per repeat); returns the refusal in ms. */
  private strike(id: string): number {
    const strikes = (this.refused.get(id)?.strikes ?? 0) + 1;
    const ms = Math.min(REFUSE_MAX_MS, REFUSE_MS * 2 ** (strikes - 1));
    this.refused.set(id, { until: Date.now() + ms, strikes });
    return ms;
  }

  /** Rejects a member's result found bad after its phase: counted, the member dropped and its id refused. */
  private rejectResult(id: string, err: ProtocolError): void {
    this.countError(err.code);
    const ms = this.strike(id);
    this.log(`rejecting ${id}: ${err.code} ${err.message}; its share is redone, its id refused for ${ms / 1000} s`);
    const m = this.members.get(id);
    if (!m) return;
    this.drop(m, err.code);
    m.peer.close(err);
  }

  private membersChanged(): void {
    this.monitor.setWorkers([...this.members.values()].map((m) => ({ id: m.id, backend: m.hello.backend, device: m.hello.device, host: m.hello.host, pid: m.hello.pid, joinedAt: m.joinedAt })));
    this.wake();
  }

  /** Closes a client that has not authenticated: reading stops at once, the close frame gets a moment to go out. */
  private cutOff(ws: WebSocket, peer: Peer, from: string, err: ProtocolError): void {
    this.countError(err.code);
    this.log(`rejecting a new connection from ${from}: ${err.code} ${err.message}`);
    ws.pause();
    peer.close(err);
    setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const from = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    // before the hello: no data sections (a hello has none), so a message is one frame and the first must be the hello
    const peer = new Peer(ws, { maxMessageBytes: 0, maxControlBytes: PRE_AUTH_CONTROL_BYTES });
    if (this.awaitingHello >= MAX_AWAITING_HELLO) {
      return this.cutOff(ws, peer, from, protocolError('E_BUSY', `${MAX_AWAITING_HELLO} connections are already waiting for their hello`));
    }
    this.awaitingHello++;
    let member: Member | null = null;
    let preAuth = true;
    let preAuthBytes = 0;
    const socket = req.socket;
    const helloMs = this.o.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
    const endPreAuth = () => {
      if (!preAuth) return;
      preAuth = false;
      this.awaitingHello--;
      clearTimeout(deadline);
      socket.off('data', onData);
    };
    const refuse = (err: ProtocolError) => {
      endPreAuth();
      this.cutOff(ws, peer, from, err);
    };
    // every byte on the socket counts (WebSocket framing, pings, the control part): ws alone would buffer a 64 MiB frame
    const onData = (chunk: Buffer) => {
      preAuthBytes += chunk.length;
      if (preAuthBytes > PRE_AUTH_BYTES) refuse(protocolError('E_TOO_LARGE', `${preAuthBytes} bytes before a hello, over ${PRE_AUTH_BYTES}`));
    };
    socket.on('data', onData);
    const deadline = setTimeout(() => refuse(protocolError('E_HELLO_TIMEOUT', `no hello within ${helloMs} ms`)), helloMs);
    deadline.unref();
    peer.onClose((code, reason) => {
      endPreAuth();
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
          endPreAuth();
          peer.maxMessageBytes = this.workerMessageBytes;
          peer.maxControlBytes = WORKER_CONTROL_BYTES;
          member = this.join(peer, msg);
          return;
        }
        this.receive(member, msg, info);
      } catch (e) {
        const err = e instanceof ProtocolError ? e : protocolError('E_MALFORMED', (e as Error).message);
        if (!member) return refuse(err);
        this.countError(err.code);
        const refusedFor = err.code === 'E_NONFINITE' || err.code === 'E_OUTLIER' ? this.strike(member.id) : 0;
        this.log(`rejecting ${member.id}: ${err.code} ${err.message}${refusedFor ? `; its id refused for ${refusedFor / 1000} s` : ''}`);
        this.drop(member, err.code);
        peer.close(err);
      }
    });
  }

  private join(peer: Peer, hello: Hello): Member {
    if (hello.protocol !== PROTOCOL_VERSION) throw protocolError('E_VERSION', `protocol ${hello.protocol}, this coordinator speaks ${PROTOCOL_VERSION}`);
    // compared as digests, in constant time: equal lengths, and no early exit that would tell how much matched
    if (this.tokenDigest && (hello.token === null || !timingSafeEqual(digest(hello.token), this.tokenDigest))) throw protocolError('E_TOKEN', 'wrong or missing token');
    const refusal = hello.workerId === null ? undefined : this.refused.get(hello.workerId);
    if (refusal && refusal.until > Date.now()) {
      throw protocolError('E_REFUSED', `worker ${hello.workerId} sent a rejected result; refused for another ${Math.ceil((refusal.until - Date.now()) / 1000)} s`);
    }
    let id = hello.workerId ?? nanoid(10);
    if (this.members.has(id)) id = nanoid(10); // a reconnect whose old link is not yet seen closed gets a new id
    const m: Member = { id, peer, hello, inflight: 0, joinedAt: Date.now() };
    this.members.set(id, m);
    const failed = (what: string) => (e: unknown) => this.sendFailed(m, id, what, e);
    peer.send({ type: 'welcome', workerId: id, config: wireConfig(this.o.cfg), step: this.weightsStep }).catch(failed('welcome'));
    // a copy: the broadcast buffers are rewritten in place after each step, and this send is not awaited
    peer.send({ type: 'weights', step: this.weightsStep, tensors: this.weights.map((w) => w.slice()) }).catch(failed('weights'));
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
        this.answered.add(m.id);
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
    vet?: (items: Item<R>[]) => { item: Item<R>; member: string; err: ProtocolError }[],
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
        const first = !this.answered.has(m.id);
        const timeoutMs = first ? (this.o.firstStepTimeoutMs ?? 1_800_000) : (this.o.stepTimeoutMs ?? 60_000);
        const timer = setTimeout(() => {
          this.countError('E_TIMEOUT');
          this.log(`worker ${m.id} missed the ${first ? 'first-step' : 'step'} timeout (${timeoutMs} ms) on step ${step}`);
          this.drop(m, 'E_TIMEOUT');
          m.peer.close(protocolError('E_TIMEOUT', `no result for step ${step} within ${timeoutMs} ms`));
        }, timeoutMs);
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
          (e: unknown) => this.sendFailed(m, m.id, kind === 'grads' ? 'work' : 'blend', e),
        );
      }
      if (items.every((i) => i.result !== undefined)) {
        // shares judged together (the outlier rule compares them): a rejected one is redone by the others
        const bad = vet?.(items) ?? [];
        if (bad.length === 0) {
          phases.endRound();
          return;
        }
        for (const b of bad) b.item.result = undefined;
        for (const id of new Set(bad.map((b) => b.member))) this.rejectResult(id, bad.find((b) => b.member === id)!.err);
        continue;
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

  /** Checks a result's tensors (count, lengths, finiteness) and returns their squared norms, summed in float64. */
  private checkTensors(what: string, tensors: Float32Array[], sizes: number[]): number[] {
    if (tensors.length !== sizes.length) throw protocolError('E_SHAPE', `${what}: ${tensors.length} tensors, the model has ${sizes.length}`);
    tensors.forEach((t, i) => {
      if (t.length !== sizes[i]) throw protocolError('E_SHAPE', `${what}: tensor ${i} has ${t.length} values, expected ${sizes[i]}`);
    });
    const sq = squaredNorms(tensors);
    const bad = sq.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw protocolError('E_NONFINITE', `${what}: tensor ${bad} holds NaN or Inf`);
    return sq;
  }

  /** The StepEngine for runTraining: steps computed by the workers. */
  engine(state: RunState): StepEngine {
    const { cfg, corpus } = this.o;
    const names = state.model.params.map((p) => p.name);
    const shapes = state.model.params.map((p) => p.shape);
    const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
    const views = shapes.map((s) => view2d(s));
    const halfSizes = views.map(([rows, cols]) => rows * (Math.floor(cols / 2) + 1));
    // the largest message a worker has reason to send (a gradient with its spectra): a larger declared size is
    // refused before the assembler reserves memory for it
    this.workerMessageBytes = sizes.reduce((a, n, i) => a + align8(4 * n) + align8(4 * halfSizes[i]!), 0);
    for (const m of this.members.values()) m.peer.maxMessageBytes = this.workerMessageBytes;
    const norms = (this.shareNorms = new ShareNorms());
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
          await Promise.all([...this.members.values()].map((m) => m.peer.send(broadcast).then((st) => phases.encoded(m.id, st.encodeMs, true), (e: unknown) => this.sendFailed(m, m.id, 'weights', e))));
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
      type G = { n: number; loss: number; grads: Float32Array[]; norm: number; magnitudes?: Float32Array[]; holder: string; attempt: number; phases: Record<string, number> };
      const items: Item<G>[] = splitBatch(offsets, parts).map((o, index) => ({ index, offsets: o }));
      const wantMagnitudes = mode === 'synced';
      await this.phase<G>(
        k, 'grads', items, phases,
        (m, item, attempt) => m.peer.send({ type: 'work', step: k, attempt, offsets: item.offsets, tokens: tokenWindows(corpus.train, item.offsets, cfg.block_size), magnitudes: wantMagnitudes }),
        (msg, m, item) => {
          const g = msg as Grads;
          if (g.sequences !== item.offsets.length) throw protocolError('E_SHAPE', `grads for ${g.sequences} sequences, sent ${item.offsets.length}`);
          if (!Number.isFinite(g.loss)) throw protocolError('E_NONFINITE', `loss is ${g.loss}`);
          if (g.loss < 0) throw protocolError('E_OUTLIER', `loss is ${g.loss}; a cross-entropy is never negative`);
          const sq = this.checkTensors('grads', g.tensors, sizes);
          if (wantMagnitudes) {
            if (!g.magnitudes) throw protocolError('E_SHAPE', 'synced mode needs magnitudes');
            this.checkTensors('magnitudes', g.magnitudes, halfSizes).forEach((msq, p) => {
              const bound = magnitudeBound(sq[p]!, ...views[p]!);
              if (!(Math.sqrt(msq) <= bound)) throw protocolError('E_OUTLIER', `magnitudes of tensor ${p}: norm ${Math.sqrt(msq).toExponential(3)}, over the ${bound.toExponential(3)} its gradient allows (Parseval)`);
            });
          }
          return { n: g.sequences, loss: g.loss, grads: g.tensors, norm: normOf(sq), magnitudes: g.magnitudes, holder: m.id, attempt: g.attempt, phases: g.phases };
        },
        undefined,
        (all) => {
          const ns = all.map((i) => i.result!.norm);
          const out = norms.check(ns);
          if (out.length === 0) norms.accept(ns);
          return out.map((o) => ({
            item: all[o.index]!,
            member: all[o.index]!.result!.holder,
            err: protocolError('E_OUTLIER', `gradient norm ${o.norm.toExponential(3)} at step ${k}: over ${o.bound.toExponential(3)} (${OUTLIER_FACTOR}× the recent median, at least ${NORM_FLOOR})${o.stepMedian === null ? '' : ` and over ${OUTLIER_FACTOR}× the other shares' median ${o.stepMedian.toExponential(3)}`}`),
          }));
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
          const bn = normOf(this.checkTensors('blended', b.tensors, sizes));
          const bound = blendedBound(items[item.index]!.result!.norm, coef);
          if (!(bn <= bound)) throw protocolError('E_OUTLIER', `blended norm ${bn.toExponential(3)} over the ${bound.toExponential(3)} its clipped gradient allows (chunk ${item.index})`);
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
