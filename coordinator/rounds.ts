// A step's rounds of requests: every chunk done by some live worker, reassigned when one fails, late or bad answers refused.
import { protocolError, type ProtocolError } from '../shared/errors.ts';
import type { Blended, Grads, Hello } from '../shared/net/protocol.ts';
import type { Peer, ReceiveInfo } from '../shared/net/peer.ts';
import type { StepPhases } from './phases.ts';

/** A live worker, as the server keeps it. */
export interface Member {
  id: string;
  peer: Peer;
  hello: Hello;
  inflight: number;
  joinedAt: number;
}

/** What the rounds need of the server: its members, its events, and how it drops or refuses one. */
export interface Membership {
  readonly members: ReadonlyMap<string, Member>;
  nextEvent(): Promise<void>;
  wake(): void;
  drop(m: Member, why: string): void;
  /** A result found bad after its round (the outlier rule): counted, its member dropped and its id refused for a while. */
  reject(id: string, err: ProtocolError): void;
  sendFailed(m: Member | null, who: string, what: string, e: unknown): void;
  countError(code: string): void;
  log(line: string): void;
}

/** One unit of work in a round: a chunk of the batch, to be done by some worker. */
export interface Item<R> {
  index: number;
  offsets: number[];
  holder?: string; // the worker that must do it (the blend round: it holds the chunk's gradient and spectra)
  result?: R;
}

/** Where a request goes and what it carries: the step, the step's round (bumped when the step is redone), a unique attempt. */
export interface RequestIds {
  step: number;
  round: number;
  attempt: number;
}

/** A worker left holding a chunk it must blend itself (local mode): the step starts again with the others. */
export class RestartStep extends Error {}

interface Pending {
  member: string;
  ids: RequestIds;
  kind: 'grads' | 'blended';
  item: Item<unknown>;
  timer: NodeJS.Timeout;
  accept: (msg: Grads | Blended, member: Member) => unknown;
  phases: StepPhases;
  sent: number; // performance.now() when the request was handed to the socket
  encodeMs: number;
  answered: boolean; // the result came before the send's own bookkeeping did (possible under load)
}

export interface RoundOptions {
  stepTimeoutMs?: number; // a result later than this fails its worker [60 s]
  firstStepTimeoutMs?: number; // the same for a worker's first result: GPU kernels compile on first use [30 min]
}

export interface Round<R> {
  kind: 'grads' | 'blended';
  items: Item<R>[];
  send: (m: Member, item: Item<R>, ids: RequestIds) => Promise<{ encodeMs: number }>;
  /** Checks a result and makes it the item's (throws ProtocolError: the worker is dropped, the item redone). */
  accept: (msg: Grads | Blended, m: Member, item: Item<R>) => R;
  /** An item whose holder is gone, done here; without it, the step is restarted (RestartStep). */
  orphan?: (item: Item<R>) => R;
  /** The round's results judged together (the outlier rule): the rejected ones are redone by the others. */
  vet?: (items: Item<R>[]) => { item: Item<R>; member: string; err: ProtocolError }[];
}

/** The requests outstanding and their ids: attempts are unique in a run; `round` counts the redos of the current step. */
export class Rounds {
  private readonly pending = new Map<number, Pending>();
  private readonly answered = new Set<string>(); // ids that have sent a result: their later ones get stepTimeoutMs
  private nextAttempt = 0;
  round = 0;

  constructor(private readonly server: Membership, private readonly o: RoundOptions = {}) {}

  /** The step is done again from the start (a holder of its state left). */
  redo(): void {
    this.round++;
  }

  /** Forgets a member's outstanding requests (it left). */
  forget(id: string): void {
    for (const [attempt, p] of this.pending) {
      if (p.member === id) {
        clearTimeout(p.timer);
        this.pending.delete(attempt);
      }
    }
  }

  /** A `grads` or `blended` from member `m`: it must answer a request outstanding for it. */
  answer(m: Member, msg: Grads | Blended, info: ReceiveInfo): void {
    const p = this.pending.get(msg.attempt);
    if (!p || p.member !== m.id || p.ids.step !== msg.step || p.ids.round !== msg.round || p.kind !== msg.type) {
      throw protocolError('E_UNEXPECTED', `${msg.type} for step ${msg.step} round ${msg.round} attempt ${msg.attempt}, which is not outstanding for this worker`);
    }
    clearTimeout(p.timer);
    this.pending.delete(msg.attempt);
    m.inflight--;
    this.answered.add(m.id);
    p.item.result = p.accept(msg, m); // throws ProtocolError on a bad result: the worker is dropped, the item redone
    p.answered = true;
    p.phases.roundTrip(m.id, msg.type, p.sent, performance.now(), msg.phases, p.encodeMs, info.decodeMs);
    this.server.wake();
  }

  /**
   * Runs one round of step `step`: every item gets done by some live worker (its holder, if it has one). A
   * worker that fails has its items handed to the others; an item whose holder is gone goes to `orphan`.
   */
  async run<R>(step: number, r: Round<R>, phases: StepPhases): Promise<void> {
    const { members } = this.server;
    let waitingLogged = false;
    phases.beginRound();
    for (;;) {
      const busy = new Set([...this.pending.values()].map((p) => p.item));
      for (const item of r.items) {
        if (item.result !== undefined || busy.has(item as Item<unknown>)) continue;
        if (item.holder && !members.has(item.holder)) {
          if (!r.orphan) throw new RestartStep(`worker ${item.holder} left holding chunk ${item.index}`);
          item.result = r.orphan(item);
          continue;
        }
        const m = item.holder ? members.get(item.holder)! : [...members.values()].sort((a, b) => a.inflight - b.inflight)[0];
        if (!m) break;
        this.request(step, r, item, m, phases);
      }
      if (r.items.every((i) => i.result !== undefined)) {
        const bad = r.vet?.(r.items) ?? [];
        if (bad.length === 0) {
          phases.endRound();
          return;
        }
        for (const b of bad) b.item.result = undefined;
        for (const id of new Set(bad.map((b) => b.member))) this.server.reject(id, bad.find((b) => b.member === id)!.err);
        continue;
      }
      if (members.size === 0 && !waitingLogged) {
        this.server.log(`step ${step}: no live workers; waiting for one to join`);
        waitingLogged = true;
      }
      await this.server.nextEvent();
    }
  }

  private request<R>(step: number, r: Round<R>, item: Item<R>, m: Member, phases: StepPhases): void {
    const ids: RequestIds = { step, round: this.round, attempt: this.nextAttempt++ };
    m.inflight++;
    const first = !this.answered.has(m.id);
    const timeoutMs = first ? (this.o.firstStepTimeoutMs ?? 1_800_000) : (this.o.stepTimeoutMs ?? 60_000);
    const timer = setTimeout(() => {
      this.server.countError('E_TIMEOUT');
      this.server.log(`worker ${m.id} missed the ${first ? 'first-step' : 'step'} timeout (${timeoutMs} ms) on step ${step}`);
      this.server.drop(m, 'E_TIMEOUT');
      m.peer.close(protocolError('E_TIMEOUT', `no result for step ${step} within ${timeoutMs} ms`));
    }, timeoutMs);
    const p: Pending = { member: m.id, ids, kind: r.kind, item: item as Item<unknown>, timer, accept: (msg, mm) => r.accept(msg, mm, item), phases, sent: performance.now(), encodeMs: 0, answered: false };
    this.pending.set(ids.attempt, p);
    r.send(m, item, ids).then(
      (st) => {
        if (p.answered) phases.lateEncode(m.id, st.encodeMs);
        else {
          p.encodeMs = st.encodeMs;
          phases.encoded(m.id, st.encodeMs);
        }
      },
      (e: unknown) => this.server.sendFailed(m, m.id, r.kind === 'grads' ? 'work' : 'blend', e),
    );
  }
}
