// The coordinator's server: one port for the live page, /metrics and the workers; membership (hello, token, refusals, join, drop).
import { customAlphabet, nanoid } from 'nanoid';
import { createHash, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES, createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { TrainConfig } from '../shared/config.ts';
import { protocolError, ProtocolError } from '../shared/errors.ts';
import { PROTOCOL_VERSION, wireConfig, type Computed, type Done, type Hello, type Loaded, type Message, type Reduced, type Rejected, type State, type Evaluated } from '../shared/net/protocol.ts';
import { MAX_MESSAGE_BYTES } from '../shared/net/frames.ts';
import { Peer, serverOptions, type ReceiveInfo } from '../shared/net/peer.ts';
import { Monitor } from './monitor.ts';
import { handleWorkerPage } from './worker-page.ts';
import { HELLO_TIMEOUT_MS, MAX_AWAITING_HELLO, PRE_AUTH_CONTROL_BYTES, PreAuth } from '../shared/net/pre-auth.ts';
import { Rounds, type Member, type Membership, type RoundOptions } from './rounds.ts';

/** A token for --token when none is given: alphanumeric, as one starting with '-' would read as a flag on the worker's command line. */
export const newToken = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 20);

// An authenticated worker's messages: the largest is a gradient with its spectra (set from the model by the engine).
const WORKER_CONTROL_BYTES = 64 * 1024;
// A worker id whose result was rejected (E_NONFINITE, E_OUTLIER) is refused for 30 s, doubling per repeat up to 10 min.
const REFUSE_MS = 30_000;
const REFUSE_MAX_MS = 10 * 60_000;
const CLOSE_GRACE_MS = 1000;

const digest = (s: string) => createHash('sha256').update(s).digest();

export interface ServerOptions extends RoundOptions {
  cfg: TrainConfig;
  host: string; // the listen address (npm run coordinator: 0.0.0.0; npm run train: 127.0.0.1)
  port?: number; // [0: any free port]
  token?: string; // workers must present it when set
  tls?: { cert: Buffer; key: Buffer }; // serve wss:// and https:// with this certificate chain and key (PEM)
  helloTimeoutMs?: number; // a connection without an accepted hello is closed after this [10 s]
  /** before step 1: fail with `error(joined, wanted)` when the workers have not all joined after `ms` (a cluster launch's world size) */
  joinTimeout?: { ms: number; error: (joined: number, wanted: number) => Error };
  update?: 'owners' | 'coordinator'; // owners: a joiner gets its weights in the engine's `load`, not on joining
  log?: (line: string) => void;
}

/**
 * The coordinator's server: the live page and /metrics over HTTP and the workers over WebSocket upgrades on one
 * port; who is a member (hello, token, refusals, join, drop) and the rounds of requests they answer. The engine
 * (coordinator/engine/) decides what a step asks of them.
 */
export class Server implements Membership {
  private readonly wss: WebSocketServer;
  readonly members = new Map<string, Member>();
  readonly rounds: Rounds;
  private wakers: (() => void)[] = [];
  private weights: Float32Array[] = [];
  private weightsStep = 0;
  readonly log: (line: string) => void;
  readonly ready: Promise<number>; // resolves with the listening port
  readonly monitor: Monitor;
  private readonly http: HttpServer;
  private readonly tokenDigest: Buffer | null;
  private awaitingHello = 0;
  private readonly refused = new Map<string, { until: number; strikes: number }>();
  private workerMessageBytes = MAX_MESSAGE_BYTES; // the largest result a worker can send, once the model is known
  private readonly onClose: (() => void)[] = [];
  /** The owners' engine's messages from workers (loaded, computed, reduced, done, state); throws ProtocolError on a bad one. */
  ownersHandler: ((m: Member, msg: Loaded | Computed | Reduced | Rejected | Done | State | Evaluated, info: ReceiveInfo) => void) | null = null;

  constructor(private readonly o: ServerOptions) {
    this.log = o.log ?? (() => {});
    this.rounds = new Rounds(this, o);
    this.tokenDigest = o.token === undefined ? null : digest(o.token);
    // one port for everything: the live page and /metrics over HTTP, the workers over WebSocket upgrades
    this.monitor = new Monitor({ title: `SMI trainer: ${o.cfg.preset} preset, ${o.cfg.smi}, ${o.cfg.spectral}`, config: { ...o.cfg } });
    // the browser worker's page and files (/worker…), then the live page's
    const handle = (req: IncomingMessage, res: ServerResponse) => void (handleWorkerPage(req, res) || this.monitor.handle(req, res));
    this.http = o.tls ? createTlsServer({ cert: o.tls.cert, key: o.tls.key }, handle) : createServer(handle);
    // slow or broken HTTP clients: a request head within 10 s, a whole request within 30 s (an SSE response may last)
    this.http.headersTimeout = 10_000;
    this.http.requestTimeout = 30_000;
    this.http.on('clientError', (err: Error & { code?: string }, socket: Duplex) => this.badRequest(err, socket));
    this.wss = new WebSocketServer(serverOptions({ server: this.http }));
    // ws re-emits the http server's errors: a listen error (a port in use) rejects `ready` below, not an uncaught 'error' event; a later one is logged
    let listening = false;
    this.wss.on('error', (e) => listening && this.log(`server error: ${e.message}`));
    this.ready = new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(o.port ?? 0, o.host, () => {
        listening = true;
        resolve((this.http.address() as { port: number }).port);
      });
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
    for (const f of this.onClose) f();
    this.monitor.close();
    await new Promise<void>((r) => this.wss.close(() => r()));
    this.http.closeAllConnections();
    await new Promise<void>((r) => this.http.close(() => r()));
  }

  /** Runs `f` when the server closes (the engine's summaries and trace). */
  whenClosed(f: () => void): void {
    this.onClose.push(f);
  }

  /** The weights a joining worker gets (the broadcast buffers, rewritten in place after each step) and their step. */
  setWeights(step: number, weights: Float32Array[]): void {
    this.weights = weights;
    this.weightsStep = step;
  }

  /** The largest message a worker has reason to send (a gradient with its spectra): a larger declared size is refused before memory is reserved. */
  setMessageLimit(bytes: number): void {
    this.workerMessageBytes = bytes;
    for (const m of this.members.values()) m.peer.maxMessageBytes = bytes;
  }

  wake(): void {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  }

  nextEvent(): Promise<void> {
    return new Promise((r) => this.wakers.push(r));
  }

  /** Protocol errors by code go to the live page and /metrics. */
  countError(code: string): void {
    this.monitor.countError(code);
  }

  /** A send that failed: logged, counted as E_SEND_FAILED, and the member (if it is one) dropped and closed, so it reconnects. */
  sendFailed(m: Member | null, who: string, what: string, e: unknown): void {
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

  /** Rejects a member's result found bad after its round: counted, the member dropped and its id refused. */
  reject(id: string, err: ProtocolError): void {
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
    const cut = (err: ProtocolError) => this.cutOff(ws, peer, from, err);
    const pre = new PreAuth(req.socket, this.o.helloTimeoutMs ?? HELLO_TIMEOUT_MS, cut, () => this.awaitingHello--);
    const endPreAuth = () => pre.end();
    const refuse = (err: ProtocolError) => {
      pre.end();
      cut(err);
    };
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
    if (this.o.update !== 'owners') peer.send({ type: 'weights', step: this.weightsStep, tensors: this.weights.map((w) => w.slice()) }).catch(failed('weights'));
    this.log(`worker ${id} joined: ${hello.backend} on ${hello.device}, ${(hello.memoryBytes / 2 ** 30).toFixed(1)} GiB, ${hello.host} pid ${hello.pid} (${this.members.size} live)`);
    this.membersChanged();
    return m;
  }

  drop(m: Member, why: string): void {
    if (!this.members.has(m.id)) return;
    this.members.delete(m.id);
    this.rounds.forget(m.id);
    this.log(`worker ${m.id} left: ${why} (${this.members.size} live)`);
    this.membersChanged();
  }

  private receive(m: Member, msg: Message, info: ReceiveInfo): void {
    switch (msg.type) {
      case 'grads':
      case 'blended':
        return this.rounds.answer(m, msg, info);
      case 'loaded':
      case 'computed':
      case 'reduced':
      case 'rejected':
      case 'done':
      case 'state':
      case 'evaluated':
        if (!this.ownersHandler) throw protocolError('E_UNEXPECTED', `${msg.type} in a run whose coordinator applies the update (--update coordinator)`);
        return this.ownersHandler(m, msg, info);
      case 'error':
        this.log(`worker ${m.id} reports ${msg.code}: ${msg.message}`);
        return;
      case 'hello':
      case 'welcome':
      case 'weights':
      case 'work':
      case 'blend':
      case 'bye':
      case 'load':
      case 'task':
      case 'commit':
      case 'clip':
      case 'masks':
      case 'gather':
      case 'link':
      case 'share':
      case 'values':
      case 'evaluate':
        throw protocolError('E_UNEXPECTED', `a worker may not send ${msg.type}`);
      default: {
        const never: never = msg;
        throw protocolError('E_MALFORMED', `unknown message ${JSON.stringify(never)}`);
      }
    }
  }

  /** Waits until `n` workers are live (before step 1); throws joinTimeout's error when they are not by then. */
  async waitForWorkers(n: number): Promise<void> {
    const jt = this.o.joinTimeout;
    let timedOut = false;
    const timer = jt && setTimeout(() => {
      timedOut = true;
      this.wake();
    }, jt.ms);
    try {
      while (this.members.size < n) {
        if (timedOut) throw jt!.error(this.members.size, n);
        this.log(`waiting for workers: ${this.members.size}/${n}`);
        await this.nextEvent();
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
