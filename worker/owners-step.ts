// A worker's part of the owners' step: compute its chunks, send each owner its share, reduce and update what it owns, take in the others' values.
import * as tf from '@tensorflow/tfjs';
import type { BackendInfo } from '../shared/backend/backend.ts';
import { ProtocolError, protocolError } from '../shared/errors.ts';
import { MAX_SPANS, type Clip, type Commit, type Evaluate, type Gather, type Load, type Masks, type Message, type PlanOwner, type Share, type Span, type Task, type Values } from '../shared/net/protocol.ts';
import { combineChecksums, packedMaskChecksum } from '../shared/parallel/spectral.ts';
import { view2d } from '../shared/smi/runs.ts';
import type { Peer } from '../shared/net/peer.ts';
import type { WorkerCompute } from './compute.ts';
import type { Exchange } from './exchange.ts';
import { fault, faultArmed } from './fault.ts';
import { OwnedTensors, VALUES_PART } from './owner.ts';
import { asReceived, decodeShare, encodeArrays, partEnd, shareDtype } from './wire.ts';
import { allFinite } from '../shared/wasm/reduce.ts';

type ToCoordinator = (msg: Message) => Promise<unknown>;

const key = (step: number, round: number) => `${step}/${round}`;

/** One turn of the event loop, its I/O included (setImmediate runs after the poll phase; a browser has none). */
const yieldToIo = (): Promise<void> => new Promise((r) => (typeof setImmediate === 'function' ? setImmediate(r) : setTimeout(r, 0)));

/**
 * One worker's side of a step under a plan (docs/distributed.md, "The owners' step"): nothing reaches its weights
 * but checked values, and nothing reaches an owned tensor's state before the coordinator's `commit`. A `load`
 * resets everything: the plan, the weights, the owned state.
 */
export class OwnersStep {
  private plan: { version: number; members: string[]; owners: PlanOwner[] } | null = null;
  private owned: OwnedTensors | null = null;
  private task: Task | null = null;
  private reducedSent = false;
  private ownUpdated = false;
  private valuesFrom = new Set<string>(); // owners all of whose values of this step are in
  private valuesGot = new Map<string, number>(); // per owner, how many of its tensors' values of this step are in (parts come in order)
  private readonly early = new Map<string, { msg: Share | Values | Masks; from: string; link?: Peer }[]>(); // data for a step/round whose task is not in yet
  // shares (and values) that come in while this worker's own shares are still going out: checking and taking them in
  // would block the event loop, and with it the outbound data the others wait for, until it was done (an owner's
  // values go out in parts under its update, and the others' are taken in as they come)
  private sending = false;
  private held: { msg: Share | Values; from: string; link?: Peer }[] = [];
  private readonly phases: Record<string, number> = {};
  private spans: Span[] = []; // this step's phases, ms from the task's arrival on this worker's clock
  private taskAt = 0; // performance.now() when the task arrived
  private maskChecksums: number[] | undefined; // synced, an owner: this step's, for `done`
  private pendingCommit: Commit | null = null; // local mode, --synced-blend workers: a commit waiting for the holders' blends
  private masksFrom = new Map<string, Masks>(); // --synced-blend workers, a holder: this step's masks, by owner
  private applied: number[] = []; // --synced-blend workers, a holder: the checksums of the masks it applied, per chunk
  private cpuAt: { user: number; system: number } | undefined; // process.cpuUsage() at the last done (or load)
  private readonly sendBuffers = new Map<string, Uint16Array[]>(); // --wire-dtype bf16: per owner, the buffers this worker's last share to it was encoded into
  private bytesAt = { sent: 0, received: 0, sharesSent: 0, sharesReceived: 0, valuesSent: 0, valuesReceived: 0 }; // the counts at the last done (or load)
  selfId = '';
  /** at least how many values each part of an owner's values holds (OwnedTensors' partValues; tests make it small to have many parts) */
  partValues = VALUES_PART;

  constructor(
    private readonly compute: () => WorkerCompute,
    private readonly exchange: Exchange,
    private readonly backend: Pick<BackendInfo, 'spectral'>,
    private readonly toCoordinator: ToCoordinator,
    private readonly controlBytes: () => { sent: number; received: number },
    private readonly log: (l: string) => void,
    /** This worker's own failure in a step (not a peer's bad data): the session closes its control link, so the coordinator drops it and replans. */
    private readonly fail: (what: string, e: unknown) => void = (what, e) => log(`${what}: ${(e as Error).message}`),
  ) {}

  async load(msg: Load): Promise<void> {
    const c = this.compute();
    this.reset();
    c.setWeights(msg.step, msg.weights);
    this.owned?.dispose();
    this.owned = null;
    const mine = msg.owners.find((o) => o.workerId === this.selfId);
    if (mine) this.owned = new OwnedTensors(c.model, mine.tensors, c.cfg, this.backend, msg.state, { partValues: this.partValues });
    this.plan = { version: msg.planVersion, members: msg.members, owners: msg.owners };
    const unreachable = await this.exchange.connect(msg.owners);
    this.markBytes();
    await this.toCoordinator({ type: 'loaded', planVersion: msg.planVersion, ...(unreachable.length ? { unreachable } : {}) });
  }

  private reset(): void {
    this.task = null;
    this.pendingCommit = null;
    this.reducedSent = false;
    this.ownUpdated = false;
    this.valuesFrom = new Set();
    this.valuesGot = new Map();
    this.early.clear();
    this.sending = false;
    this.held = [];
    this.owned?.reset();
  }

  /** The step's chunks this worker holds: forward+backward, each owner's share to it, `computed` to the coordinator. */
  async runTask(t: Task): Promise<void> {
    if (!this.plan || t.planVersion !== this.plan.version) throw protocolError('E_UNEXPECTED', `task for plan ${t.planVersion}, this worker has plan ${this.plan?.version ?? 'none'}`);
    this.task = t;
    this.pendingCommit = null;
    this.masksFrom = new Map();
    this.applied = [];
    this.reducedSent = false;
    this.ownUpdated = false;
    this.valuesFrom = new Set();
    this.valuesGot = new Map();
    for (const k of Object.keys(this.phases)) delete this.phases[k];
    this.taskAt = performance.now();
    this.spans = [];
    this.owned?.forgetBefore(t.step, t.round);
    this.held = [];
    const pending = this.early.get(key(t.step, t.round)) ?? [];
    this.early.clear();
    this.sending = t.mine.length > 0; // early shares wait for this worker's own too
    this.replay(pending);
    const c = this.compute();
    const synced = c.cfg.smi !== 'baseline' && c.cfg.spectral === 'synced';
    const wire = c.cfg.wire_dtype;
    this.maskChecksums = undefined;
    for (const chunk of t.mine) {
      const tc = performance.now();
      const r = c.computeGrads({ type: 'work', step: t.step, round: t.round, attempt: chunk.index, offsets: chunk.offsets, tokens: chunk.tokens, magnitudes: false }, { keep: synced });
      this.phase('compute', tc, r.phases.compute ?? 0);
      const t0 = performance.now();
      const sends: Promise<unknown>[] = [];
      fault('before-shares', t.step);
      this.sending = true;
      for (const o of this.plan.owners) {
        if (o.workerId === this.selfId) continue; // its own part while the others' drain (below)
        const tensors = o.tensors.map((j) => r.grads[j]!);
        const link = this.exchange.linkTo(o.workerId);
        if (!link) continue; // that owner is gone: the coordinator sees it and loads a new plan
        // bf16: into this worker's buffers of its last share to that owner, whose send is out (awaited below)
        const encoded = encodeArrays(wire, tensors, this.sendBuffers.get(o.workerId));
        if (wire === 'bf16') this.sendBuffers.set(o.workerId, encoded as Uint16Array[]);
        const sent = this.exchange.send(link, { type: 'share', step: t.step, round: t.round, chunk: chunk.index, tensors: encoded, ...shareDtype(wire) });
        sends.push(sent.catch((e: Error) => this.log(`share to ${o.workerId}: ${e.message}`)));
        if (sends.length === 1 && faultArmed('after-share')) await sent.then(() => fault('after-share', t.step), () => {});
      }
      // its own part while the others' drain: what is not yet written waits for an owner still computing, and
      // the check (and, synced, the magnitudes) of the own part must come before the reduce in any case
      const own = this.owned ? this.plan.owners.find((o) => o.workerId === this.selfId) : undefined;
      let ownMs = 0;
      if (own) {
        const ta = performance.now();
        // the gradient buffers are reused by the next chunk's compute: this owner's part is copied only then
        const copy = t.mine.length > 1;
        const tensors = own.tensors.map((j) => r.grads[j]!);
        const into = wire === 'bf16' || copy ? this.owned!.shareBuffers(chunk.index) : undefined;
        this.spectralPhase(this.owned!.accept(t.step, t.round, chunk.index, asReceived(wire, tensors, copy, into)));
        ownMs = performance.now() - ta;
      }
      await Promise.all(sends);
      this.phase('reduce_scatter', t0, performance.now() - t0 - ownMs);
      this.sending = false;
      this.replay(this.held.splice(0));
      await this.toCoordinator({ type: 'computed', step: t.step, round: t.round, chunk: chunk.index, sequences: chunk.offsets.length, loss: r.loss, phases: r.phases });
    }
    await this.maybeReduce();
    await this.maybeDone();
  }

  /** A message on a link: a share (to this owner) or values (from an owner). */
  data(msg: Message, from: string, link?: Peer): void {
    if (msg.type !== 'share' && msg.type !== 'values' && msg.type !== 'masks') throw protocolError('E_UNEXPECTED', `${msg.type} on a data link`);
    const t = this.task;
    if (!t || msg.step > t.step || (msg.step === t.step && msg.round > t.round)) {
      const k = key(msg.step, msg.round);
      this.early.set(k, [...(this.early.get(k) ?? []), { msg, from, link }]);
      return;
    }
    if (msg.step !== t.step || msg.round !== t.round) return; // a step or round that went by
    if ((msg.type === 'share' || msg.type === 'values') && this.sending) {
      this.held.push({ msg, from, link });
      return;
    }
    if (msg.type === 'share') {
      if (!this.owned) throw protocolError('E_UNEXPECTED', 'a share for a worker that owns nothing');
      if (t.holders[msg.chunk] !== from) throw protocolError('E_UNEXPECTED', `share of chunk ${msg.chunk} from ${from}; its holder is ${t.holders[msg.chunk] ?? 'nobody'}`);
      try {
        const wire = this.compute().cfg.wire_dtype;
        const tensors = decodeShare(wire, msg, wire === 'bf16' && !msg.blended ? this.owned.shareBuffers(msg.chunk) : undefined);
        if (msg.blended) this.owned.acceptBlend(msg.step, msg.round, msg.chunk, tensors);
        else this.spectralPhase(this.owned.accept(msg.step, msg.round, msg.chunk, tensors));
      } catch (e) {
        // the link is closed with the code (the throw); the coordinator is told whose chunk it was, to drop its holder
        if (e instanceof ProtocolError) void this.toCoordinator({ type: 'rejected', step: msg.step, round: msg.round, chunk: msg.chunk, code: e.code, message: e.message }).catch(() => {});
        throw e;
      }
      if (msg.blended) void this.apply().catch((e: unknown) => this.fail('update', e));
      else void this.maybeReduce().catch((e: unknown) => this.fail('reduce', e));
      return;
    }
    if (msg.type === 'masks') {
      this.takeMasks(msg, from);
      void this.blendWithMasks().catch((e: unknown) => this.fail('blend', e));
      return;
    }
    this.takeValues(msg, from);
    void this.maybeDone().catch((e: unknown) => this.fail('done', e));
  }

  /** Messages kept for later (early, or held while this worker's shares went out), handled now in arrival order. */
  private replay(list: { msg: Share | Values | Masks; from: string; link?: Peer }[]): void {
    for (const p of list) {
      try {
        this.data(p.msg, p.from, p.link);
      } catch (e) {
        // as if it had failed on arrival: that link is closed with the code, the control connection is not
        const err = e instanceof ProtocolError ? e : protocolError('E_INTERNAL', (e as Error).message);
        this.log(`link ${p.from}: ${err.code} ${err.message}`);
        p.link?.close(err);
      }
    }
  }

  private takeMasks(m: Masks, from: string): void {
    const owner = this.plan?.owners.find((o) => o.workerId === from);
    if (!owner) throw protocolError('E_UNEXPECTED', `masks from ${from}, which owns nothing in this plan`);
    if (this.masksFrom.has(from)) throw protocolError('E_UNEXPECTED', `second masks from ${from} for step ${m.step}`);
    const params = this.compute().model.params;
    if (m.masks.length !== owner.tensors.length || m.checksums.length !== owner.tensors.length) throw protocolError('E_SHAPE', `masks from ${from}: ${m.masks.length} masks, it owns ${owner.tensors.length} tensors`);
    m.masks.forEach((bits, i) => {
      const [rows, cols] = view2d(params[owner.tensors[i]!]!.shape);
      const n = rows * (Math.floor(cols / 2) + 1);
      if (bits.length !== Math.ceil(n / 8)) throw protocolError('E_SHAPE', `mask of ${params[owner.tensors[i]!]!.name}: ${bits.length} bytes, expected ${Math.ceil(n / 8)}`);
    });
    this.masksFrom.set(from, m);
  }

  /** --synced-blend workers, at a holder: once every owner's masks are in, its own spectrum of each chunk blended with them, b_c to the owners. */
  private async blendWithMasks(): Promise<void> {
    const t = this.task;
    const p = this.plan;
    if (!t || !p || this.applied.length > 0 || !p.owners.every((o) => this.masksFrom.has(o.workerId))) return;
    const params = this.compute().model.params;
    const full: Uint8Array[] = new Array(params.length);
    for (const o of p.owners) o.tensors.forEach((j, i) => (full[j] = this.masksFrom.get(o.workerId)!.masks[i]!));
    const first = this.masksFrom.get(p.owners[0]!.workerId)!;
    const sizes = params.map((x) => {
      const [rows, cols] = view2d(x.shape);
      return rows * (Math.floor(cols / 2) + 1);
    });
    // the checksum of the masks this worker applies, as the owners made it: per tensor, combined in parameter order
    const applied = combineChecksums(full.map((m, j) => packedMaskChecksum([m], [sizes[j]!])));
    for (const chunk of t.mine) {
      const tb = performance.now();
      const b = this.compute().blend({ type: 'blend', step: t.step, round: t.round, attempt: 0, source: chunk.index, clip: first.clip, alpha: first.alpha, masks: full, maskChecksum: applied });
      this.phase('spectral', tb, b.phases.spectral ?? 0);
      this.applied.push(applied);
      await this.sendBlends(t.step, t.round, chunk.index, b.tensors);
    }
    await this.apply();
  }

  /** A chunk's blend b_c, each owner its tensors' part. */
  private async sendBlends(step: number, round: number, chunk: number, all: Float32Array[]): Promise<void> {
    const sends: Promise<unknown>[] = [];
    const wire = this.compute().cfg.wire_dtype;
    for (const o of this.plan!.owners) {
      const tensors = o.tensors.map((j) => all[j]!);
      if (o.workerId === this.selfId) {
        this.owned!.acceptBlend(step, round, chunk, asReceived(wire, tensors, false));
        continue;
      }
      const link = this.exchange.linkTo(o.workerId);
      if (link) sends.push(this.exchange.send(link, { type: 'share', step, round, chunk, tensors: encodeArrays(wire, tensors), blended: true, ...shareDtype(wire) }).catch((e: Error) => this.log(`blend to ${o.workerId}: ${e.message}`)));
    }
    await Promise.all(sends);
  }

  /**
   * An owner's values, whole or a part of them (protocol.ts, Values; the parts in order): each part checked whole
   * (its place, shapes, finiteness) before any of it is assigned. A bad part closes the link with its code, so this
   * step's values never complete here: the coordinator loads the plan again, with the committed weights, whatever
   * earlier parts had set.
   */
  private takeValues(v: Values, from: string): void {
    const owner = this.plan?.owners.find((o) => o.workerId === from);
    if (!owner) throw protocolError('E_UNEXPECTED', `values from ${from}, which owns nothing in this plan`);
    if (this.valuesFrom.has(from)) throw protocolError('E_UNEXPECTED', `values from ${from} for step ${v.step} after all of its tensors came in`);
    const first = this.valuesGot.get(from) ?? 0;
    const end = partEnd(`values from ${from}`, v, first, owner.tensors.length);
    const params = this.compute().model.params;
    const at = (i: number) => params[owner.tensors[first + i]!]!;
    v.tensors.forEach((x, i) => {
      const p = at(i);
      if (x.length !== p.variable.size) throw protocolError('E_SHAPE', `values of ${p.name}: ${x.length} values, expected ${p.variable.size}`);
      if (!allFinite(x)) throw protocolError('E_NONFINITE', `values of ${p.name} hold NaN or Inf`);
    });
    // checked whole before any is assigned: a bad part leaves the replica's tensors as they were
    v.tensors.forEach((x, i) => {
      const p = at(i);
      tf.tidy(() => p.variable.assign(tf.tensor(x, p.shape)));
    });
    this.valuesGot.set(from, end);
    if (end === owner.tensors.length) this.valuesFrom.add(from);
  }

  private async maybeReduce(): Promise<void> {
    const t = this.task;
    if (!t || !this.owned || this.reducedSent || !this.owned.complete(t.step, t.round, t.sequences.length)) return;
    this.reducedSent = true;
    fault('after-reduce', t.step);
    const t0 = performance.now();
    const { ss, chunkSS } = this.owned.reduce(t.step, t.round, t.sequences);
    this.phase('reduce', t0, performance.now() - t0);
    await this.toCoordinator({ type: 'reduced', step: t.step, round: t.round, ss, chunkSS, phases: { reduce: this.phases.reduce! } });
  }

  /**
   * Local mode's second round, at a chunk's holder: its own clip → SMI (its own history; a higher round of the same
   * step starts again from the history before the step) of each chunk it computed, b_c to each owner.
   */
  async clip(c: Clip): Promise<void> {
    const t = this.task;
    if (!t || !this.plan || t.step !== c.step || t.round !== c.round) throw protocolError('E_UNEXPECTED', `clip of step ${c.step} round ${c.round}, not this worker's current step`);
    const comp = this.compute();
    for (const chunk of t.mine) {
      const tb = performance.now();
      const b = comp.blend({ type: 'blend', step: c.step, round: c.round, attempt: 0, source: chunk.index, clip: c.clip, alpha: c.alpha });
      this.phase('spectral', tb, b.phases.spectral ?? 0);
      await this.sendBlends(c.step, c.round, chunk.index, b.tensors);
    }
    await this.apply();
  }

  /** The coordinator's go: this owner's update (local mode: once every blend is in), then its values to every other member of the plan. */
  async commit(c: Commit): Promise<void> {
    const t = this.task;
    if (!t || !this.owned || t.step !== c.step || t.round !== c.round) throw protocolError('E_UNEXPECTED', `commit of step ${c.step} round ${c.round}, not this owner's current step`);
    if (c.masks) {
      // the shared masks of this owner's tensors to every holder (itself included), whose blends the update then waits for
      const { masks, checksums } = this.owned.masks(c.step, c.round, c.clip);
      this.maskChecksums = checksums;
      const msg: Masks = { type: 'masks', step: c.step, round: c.round, clip: c.clip, alpha: c.alpha, masks, checksums };
      this.pendingCommit = c;
      await Promise.all([...new Set(t.holders)].map(async (id) => {
        if (id === this.selfId) {
          this.takeMasks(msg, id);
          return this.blendWithMasks();
        }
        const link = await this.exchange.inboundFrom(id);
        await this.exchange.send(link, msg).catch((e: Error) => this.log(`masks to ${id}: ${e.message}`));
      }));
      return this.apply();
    }
    this.pendingCommit = c;
    await this.apply();
  }

  private async apply(): Promise<void> {
    const t = this.task;
    const c = this.pendingCommit;
    if (!t || !c || !this.owned) return;
    if (this.owned.awaitsBlends && !this.owned.blendsComplete(t.step, t.round, t.sequences.length)) return;
    this.pendingCommit = null;
    const bad = this.owned.awaitsBlends ? this.owned.badBlend(t.step, t.round, c.clip) : null;
    if (bad) {
      // nothing applied: the coordinator drops the blend's holder and rolls the step back
      this.log(`refusing ${t.holders[bad.chunk]}'s ${bad.message}`);
      await this.toCoordinator({ type: 'rejected', step: t.step, round: t.round, chunk: bad.chunk, code: 'E_OUTLIER', message: bad.message });
      return;
    }
    // the update in parts (OwnedTensors.parts), each part's values to every other member as soon as it is
    // updated: the event loop runs between parts, so those values go out, and the other owners' come in and are
    // taken, while the next part is updated
    const others = this.plan!.members.filter((m) => m !== this.selfId);
    const links = await Promise.all(others.map((id) => this.exchange.inboundFrom(id)));
    const sends: Promise<unknown>[] = [];
    let sentTo = 0;
    const parts = this.owned.updateParts(c.step, c.round, c);
    let t1 = performance.now();
    for (;;) {
      const t0 = performance.now();
      const r = parts.next();
      if (r.done) {
        if (r.value.maskChecksums) this.maskChecksums = r.value.maskChecksums;
        break;
      }
      t1 = performance.now();
      this.phase('update', t0, t1 - t0);
      const { values, fields } = r.value;
      others.forEach((id, k) => {
        const sent = this.exchange.send(links[k]!, { type: 'values', step: c.step, round: c.round, ...fields, tensors: values });
        sends.push(sent.then(() => (++sentTo === 1 ? fault('mid-values', c.step) : undefined), (e: Error) => this.log(`values to ${id}: ${e.message}`)));
      });
      await yieldToIo();
    }
    await Promise.all(sends);
    this.phase('all_gather_send', t1, performance.now() - t1);
    this.ownUpdated = true;
    await this.maybeDone();
  }

  private async maybeDone(): Promise<void> {
    const t = this.task;
    if (!t || !this.plan) return;
    if (this.owned && !this.ownUpdated) return;
    if (!this.plan.owners.every((o) => o.workerId === this.selfId || this.valuesFrom.has(o.workerId))) return;
    this.task = null;
    const b = this.exchange.bytes();
    const cb = this.controlBytes();
    const at = this.bytesAt;
    const cpuMs = this.cpuSince();
    this.markBytes();
    await this.toCoordinator({
      type: 'done', step: t.step, round: t.round, phases: { ...this.phases },
      spans: this.spans.slice(0, MAX_SPANS), elapsed: performance.now() - this.taskAt,
      bytesSent: Math.max(0, b.sent + cb.sent - at.sent), bytesReceived: Math.max(0, b.received + cb.received - at.received),
      links: {
        sharesSent: Math.max(0, b.sharesSent - at.sharesSent), sharesReceived: Math.max(0, b.sharesReceived - at.sharesReceived),
        valuesSent: Math.max(0, b.valuesSent - at.valuesSent), valuesReceived: Math.max(0, b.valuesReceived - at.valuesReceived),
      },
      ...(this.maskChecksums ? { maskChecksums: this.maskChecksums } : {}),
      ...(this.applied.length ? { appliedChecksums: this.applied } : {}),
      ...(cpuMs !== undefined ? { cpuMs } : {}),
    });
  }

  /** This process's CPU ms (user + system, all threads) since markBytes() (the previous done, or the load); undefined in a browser. */
  private cpuSince(): number | undefined {
    const usage = globalThis.process?.cpuUsage?.();
    if (!usage || !this.cpuAt) return undefined;
    return (usage.user - this.cpuAt.user + usage.system - this.cpuAt.system) / 1000;
  }

  /** A synced owner's magnitudes of a share, just computed in `ms`. */
  private spectralPhase(ms: number): void {
    if (this.owned?.synced) this.phase('spectral', performance.now() - ms, ms);
  }

  /** `ms` spent in phase `name` from `start` (performance.now()): summed into the step's phases, and a span for the trace. */
  private phase(name: string, start: number, ms: number): void {
    this.phases[name] = (this.phases[name] ?? 0) + ms;
    this.spans.push({ name, start: Math.max(0, start - this.taskAt), dur: Math.max(0, ms) });
  }

  /** Byte counts from here on belong to the next `done`: a step's are those since the previous step's done (or the load), early shares included. */
  private markBytes(): void {
    const b = this.exchange.bytes();
    const cb = this.controlBytes();
    this.bytesAt = { ...b, sent: b.sent + cb.sent, received: b.received + cb.received };
    this.cpuAt = globalThis.process?.cpuUsage?.();
  }

  /** The losses of the coordinator's evaluation batches on this replica, between steps (the weights after e.step). */
  async evaluate(e: Evaluate): Promise<void> {
    if (this.task) throw protocolError('E_UNEXPECTED', `evaluate of step ${e.step} while step ${this.task.step} is in progress`);
    fault('evaluate', e.step);
    const losses = this.compute().evaluate(e.batches);
    await this.toCoordinator({ type: 'evaluated', step: e.step, attempt: e.attempt, losses });
  }

  /** Reports this worker's own failure in a step (the session's handler). */
  failed(what: string, e: unknown): void {
    this.fail(what, e);
  }

  /** The owned tensors' weights and state, for a commit, a checkpoint or an evaluation. */
  async gather(g: Gather): Promise<void> {
    if (!this.owned) throw protocolError('E_UNEXPECTED', 'gather to a worker that owns nothing');
    fault('gather', g.step);
    await this.toCoordinator({ type: 'state', step: g.step, tensors: [...this.owned.tensors], weights: this.owned.values().map((x) => x.slice()), state: this.owned.state() });
  }

  dispose(): void {
    this.owned?.dispose();
    this.owned = null;
  }
}
