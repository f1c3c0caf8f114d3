// The owners' engine (--update owners): the coordinator is the control plane; workers own the tensors, exchange gradients and values among themselves.
//
// One file of ~410 lines: the step, its two-round forms, commits, rollback and re-planning share one state machine
// (the plan, the last commit, the step in flight), which is read more easily whole than split across modules.
import * as tf from '@tensorflow/tfjs';
import type { BackendInfo } from '../../shared/backend/backend.ts';
import { lrAt, type SyncedBlend, type TrainConfig } from '../../shared/config.ts';
import { protocolError } from '../../shared/errors.ts';
import { trainOffsets, type Corpus } from '../../shared/model/data.ts';
import type { Computed, Done, Evaluated, Loaded, OwnedState, PlanOwner, Reduced, Rejected, State } from '../../shared/net/protocol.ts';
import { splitBatch, tokenWindows } from '../../shared/parallel/batch.ts';
import { planOwners } from '../../shared/parallel/plan.ts';
import { SharedSpectralHistory, combineChecksums } from '../../shared/parallel/spectral.ts';
import { SMI_RUNS, alphaAt } from '../../shared/smi/runs.ts';
import { inProcess, type Engine, type StepOutcome } from '../../shared/train/engine.ts';
import { globalClip } from '../../shared/train/step.ts';
import { createModelState, evalPlan, evaluate, meanLosses, type Losses } from '../../shared/train/state.ts';
import { RestartStep, type Member } from '../rounds.ts';
import type { Server } from '../server.ts';
import { NORM_FLOOR, OUTLIER_FACTOR, ShareNorms } from '../../shared/parallel/share-bounds.ts';
import { TraceWriter, onCoordinatorClock, type TraceSpan } from '../phases.ts';

export interface OwnersEngineOptions {
  backend: Pick<BackendInfo, 'spectral'>;
  syncedBlend?: SyncedBlend; // synced: 'workers' sends the owners' masks to the holders, who blend their own spectra (two rounds)
  minWorkers?: number;
  commitInterval?: number; // gather a commit from the owners every K steps [50]; an owner's loss replays at most K steps
  stepTimeoutMs?: number;
  firstStepTimeoutMs?: number;
  trace?: string; // write a Chrome trace-event file here: the coordinator's phases and every worker's, on the coordinator's clock
}

/** An owner left: its tensors' moments and history are gone; the run goes back to the last commit and replays. */
class Rollback extends Error {}

interface Plan {
  version: number;
  members: string[]; // join order
  owners: PlanOwner[];
  ownerIds: Set<string>;
}

const align8 = (n: number) => Math.ceil(n / 8) * 8;

/**
 * The Engine of a run whose update the workers own. Per step the coordinator sends the chunk table and each
 * worker's windows (`task`), combines the owners' sums of squares into κ (`reduced` → `commit`) and waits for every
 * worker's `done`: it handles no per-parameter data. Its own copy of the model is the last commit (gathered from
 * the owners every `commitInterval` steps and whenever the loop reads the state: evaluation, checkpoints, the final
 * model); a `load` from it starts every plan, and an owner's loss rolls back to it and replays (batches are a pure
 * function of (seed, step)). Global spectral mode, the baseline, synced mode with the mask applied once (by the
 * owners, to κḡ: the one-round form), and local mode (two rounds: κ back to the holders, their blends to the owners).
 */
export function ownersEngine(server: Server, cfg: TrainConfig, corpus: Corpus, o: OwnersEngineOptions): Engine {
  const run = SMI_RUNS[cfg.smi];
  const synced = cfg.smi !== 'baseline' && cfg.spectral === 'synced';
  const local = cfg.smi !== 'baseline' && cfg.spectral === 'local'; // two rounds: κ to the holders, their own SMI, blends to the owners
  const twoRound = synced && o.syncedBlend === 'workers'; // two rounds: the owners' masks to the holders, their blends to the owners
  // the commit: weights, moments, histories after storeStep (synced: the one shared history; local: none here)
  const store = createModelState(cfg, o.backend, { smi: !synced && !local });
  const shared = synced ? new SharedSpectralHistory(run.beta, run.q) : null;
  const params = store.model.params;
  const shapesByName = new Map(params.map((p) => [p.name, p.shape]));
  const sizes = params.map((p) => p.variable.size);
  const commitInterval = o.commitInterval ?? 50;
  // the largest message a worker sends here: an owner's state of (at most) every tensor, weights + m + v + history
  server.setMessageLimit(sizes.reduce((a, n) => a + 4 * align8(4 * n), 0) + 2 ** 20);
  const norms = new ShareNorms();
  server.whenClosed(() => server.log(norms.summary()));

  let storeStep = 0; // the step the store holds
  let doneStep = 0; // the last step every owner has applied under the current plan
  let loopStep = 0; // the last step the loop has been given back
  let plan: Plan | null = null;
  let planVersion = 0;
  let round = 0; // unique per attempt at a step in this run
  const unreachableOwners = new Set<string>(); // workers whose exchange another could not reach: they only compute
  let loggedPlan = 0; // the plan version the log last described (a step record carries the plan when it changed)
  // Steps each member has finished under its current tensors: its first two get --first-step-timeout, as kernels
  // compile on first use and an owner's SMI runs its first-step form (no history yet) in one and its update form
  // from the next. A member whose owned tensors change in a new plan starts again (new shapes to compile).
  const answered = new Map<string, number>();
  const warm = (id: string) => (answered.get(id) ?? 0) >= 2;
  const inbox = {
    loaded: new Set<string>(),
    unreachable: new Map<string, string[]>(), // this plan's load: the owners each worker could not link to
    computed: new Map<number, Computed>(),
    reduced: new Map<string, Reduced>(),
    done: new Map<string, Done>(),
    states: new Map<string, State>(),
    evaluated: new Map<string, Evaluated>(),
  };
  let evaluating: { attempt: number; counts: Map<string, number> } | null = null; // the evaluation out to the workers: batches per worker
  let evalAttempts = 0; // requests so far; an answer to an earlier one is stale
  let current: { step: number; round: number; holders: string[]; sequences: number[] } | null = null;
  const taskSentAt = new Map<string, number>(); // this attempt's task to each worker, performance.now()
  const doneAt = new Map<string, number>(); // its done's arrival
  const trace = o.trace ? new TraceWriter(o.trace) : null;
  if (trace) server.whenClosed(() => trace.close());
  let gatherStep = -1;

  server.ownersHandler = (m: Member, msg: Loaded | Computed | Reduced | Rejected | Done | State | Evaluated) => {
    const cur = current;
    const stale = (s: number, r: number) => !cur || s < cur.step || (s === cur.step && r < cur.round);
    switch (msg.type) {
      case 'loaded':
        if (plan && msg.planVersion === plan.version) {
          inbox.loaded.add(m.id);
          if (msg.unreachable?.length) inbox.unreachable.set(m.id, msg.unreachable.filter((id) => plan!.ownerIds.has(id) && id !== m.id));
        }
        break;
      case 'computed': {
        if (stale(msg.step, msg.round)) return;
        if (msg.step !== cur!.step || msg.round !== cur!.round || cur!.holders[msg.chunk] !== m.id) throw protocolError('E_UNEXPECTED', `computed of chunk ${msg.chunk} for step ${msg.step} round ${msg.round}, which is not this worker's`);
        if (msg.sequences !== cur!.sequences[msg.chunk]) throw protocolError('E_SHAPE', `computed for ${msg.sequences} sequences, chunk ${msg.chunk} has ${cur!.sequences[msg.chunk]}`);
        if (!Number.isFinite(msg.loss)) throw protocolError('E_NONFINITE', `loss is ${msg.loss}`);
        if (msg.loss < 0) throw protocolError('E_OUTLIER', `loss is ${msg.loss}; a cross-entropy is never negative`);
        inbox.computed.set(msg.chunk, msg);
        break;
      }
      case 'reduced': {
        if (stale(msg.step, msg.round)) return;
        const owner = plan?.owners.find((x) => x.workerId === m.id);
        if (!owner || msg.step !== cur!.step || msg.round !== cur!.round) throw protocolError('E_UNEXPECTED', `reduced for step ${msg.step} round ${msg.round} from a worker that owns nothing then`);
        if (msg.ss.length !== owner.tensors.length || msg.chunkSS.length !== cur!.sequences.length) throw protocolError('E_SHAPE', `reduced: ${msg.ss.length} sums for ${owner.tensors.length} tensors, ${msg.chunkSS.length} for ${cur!.sequences.length} chunks`);
        if (![...msg.ss, ...msg.chunkSS].every((x) => x >= 0)) throw protocolError('E_NONFINITE', 'reduced: a sum of squares that is negative or not a number');
        inbox.reduced.set(m.id, msg);
        break;
      }
      case 'rejected': {
        if (stale(msg.step, msg.round)) return;
        if (msg.step !== cur!.step || msg.round !== cur!.round || !plan?.ownerIds.has(m.id)) throw protocolError('E_UNEXPECTED', `rejected for step ${msg.step} round ${msg.round} from a worker that owns nothing then`);
        const holder = cur!.holders[msg.chunk];
        if (holder === undefined) throw protocolError('E_UNEXPECTED', `rejected names chunk ${msg.chunk}, the step has ${cur!.holders.length}`);
        // the holder sent a share its owner refused: dropped (its id refused for a while after E_NONFINITE and E_OUTLIER), the step redone
        server.log(`owner ${m.id} refused chunk ${msg.chunk}'s share from ${holder}: ${msg.code} ${msg.message}`);
        if (msg.code === 'E_NONFINITE' || msg.code === 'E_OUTLIER') server.reject(holder, protocolError(msg.code, msg.message));
        else {
          const h = server.members.get(holder);
          if (h) {
            server.countError(msg.code);
            server.drop(h, msg.code);
            h.peer.close(protocolError(msg.code, `your share of chunk ${msg.chunk} was refused by its owner: ${msg.message}`));
          }
        }
        break;
      }
      case 'done':
        if (stale(msg.step, msg.round)) return;
        doneAt.set(m.id, performance.now());
        inbox.done.set(m.id, msg);
        answered.set(m.id, (answered.get(m.id) ?? 0) + 1);
        break;
      case 'state':
        if (msg.step !== gatherStep || !plan?.ownerIds.has(m.id)) throw protocolError('E_UNEXPECTED', `state for step ${msg.step}, not gathered from this worker`);
        inbox.states.set(m.id, msg);
        break;
      case 'evaluated': {
        if (msg.attempt < evalAttempts && msg.attempt !== evaluating?.attempt) return; // asked before a member was lost: stale
        const n = evaluating?.attempt === msg.attempt ? evaluating.counts.get(m.id) : undefined;
        if (n === undefined || inbox.evaluated.has(m.id)) throw protocolError('E_UNEXPECTED', `evaluated for step ${msg.step}, not asked of this worker`);
        if (msg.losses.length !== n) throw protocolError('E_SHAPE', `evaluated: ${msg.losses.length} losses for ${n} batches`);
        inbox.evaluated.set(m.id, msg);
        break;
      }
    }
    server.wake();
  };

  /**
   * Waits until `ready()`; `awaited()` names who is still to answer (dropped with E_TIMEOUT after the step timeout).
   * A member of the plan lost: an owner → Rollback; another → RestartStep, unless `lateLossOk` (after the commit).
   */
  async function until(ready: () => boolean, awaited: () => string[], lateLossOk = false, critical: ReadonlySet<string> = new Set(), compiles = true, timeoutMs?: number): Promise<void> {
    const p = plan!;
    // a worker's first step may compile kernels for minutes; a load or a gather compiles nothing
    const first = compiles && awaited().some((id) => !warm(id));
    const ms = timeoutMs ?? (first ? (o.firstStepTimeoutMs ?? 1_800_000) : (o.stepTimeoutMs ?? 60_000));
    const timer = setTimeout(() => {
      for (const id of awaited()) {
        const m = server.members.get(id);
        if (!m) continue;
        server.countError('E_TIMEOUT');
        server.log(`worker ${id} missed the ${first ? 'first-step' : 'step'} timeout (${ms} ms)${current ? ` on step ${current.step}` : ''}`);
        server.drop(m, 'E_TIMEOUT');
        m.peer.close(protocolError('E_TIMEOUT', `no answer within ${ms} ms`));
      }
    }, ms);
    try {
      for (;;) {
        const lost = p.members.filter((id) => !server.members.has(id));
        const ownerLost = lost.find((id) => p.ownerIds.has(id));
        if (ownerLost) throw new Rollback(`owner ${ownerLost} left`);
        const holderLost = lost.find((id) => critical.has(id));
        if (holderLost) throw new Rollback(`worker ${holderLost} left holding a chunk it must blend after the commit`);
        if (lost.length > 0 && !lateLossOk) throw new RestartStep(`worker ${lost[0]} left`);
        if (ready()) return;
        await server.nextEvent();
      }
    } finally {
      clearTimeout(timer);
    }
  }

  const live = (id: string) => server.members.has(id);
  const send = (id: string, msg: Parameters<Member['peer']['send']>[0]) => {
    const m = server.members.get(id);
    if (!m) return;
    m.peer.send(msg).catch((e: unknown) => server.sendFailed(m, id, msg.type, e));
  };

  /** The owners' tensors, weights and state into the store: the store is then at doneStep. */
  async function gatherState(): Promise<void> {
    const p = plan!;
    inbox.states.clear();
    gatherStep = doneStep;
    for (const ow of p.owners) send(ow.workerId, { type: 'gather', step: doneStep });
    await until(() => p.owners.every((ow) => inbox.states.has(ow.workerId)), () => p.owners.map((ow) => ow.workerId).filter((id) => !inbox.states.has(id)), true, undefined, false);
    const moments: Float32Array[] = [];
    const smi: OwnedState['smi'] = [];
    let adamStep = -1;
    for (const ow of p.owners) {
      const s = inbox.states.get(ow.workerId)!;
      if (s.tensors.join() !== ow.tensors.join() || s.weights.length !== ow.tensors.length) throw protocolError('E_SHAPE', `state of ${ow.workerId}: tensors [${s.tensors}], it owns [${ow.tensors}]`);
      if (ow.tensors.length > 0 && adamStep !== -1 && s.state.adamStep !== adamStep) throw protocolError('E_UNEXPECTED', `owners disagree on AdamW's step (${adamStep}, ${s.state.adamStep})`);
      if (ow.tensors.length > 0) adamStep = s.state.adamStep;
      ow.tensors.forEach((j, i) => {
        const pj = params[j]!;
        if (s.weights[i]!.length !== sizes[j]) throw protocolError('E_SHAPE', `state of ${ow.workerId}: ${pj.name} has ${s.weights[i]!.length} values`);
        tf.tidy(() => pj.variable.assign(tf.tensor(s.weights[i]!, pj.shape)));
        if (s.state.m.length > 0) {
          moments[2 * j] = s.state.m[i]!;
          moments[2 * j + 1] = s.state.v[i]!;
        }
      });
      smi.push(...s.state.smi);
    }
    const full = moments.length === 2 * params.length && moments.every((x) => x !== undefined);
    store.opt.setState(params.map((x) => x.variable), { step: Math.max(0, adamStep), moments: full ? moments : [] });
    if (shared) shared.setState(smi, shapesByName);
    else store.smi?.setState(smi);
    inbox.states.clear();
    storeStep = doneStep;
  }

  /** A new plan over the live workers, and every worker loaded from the store. */
  async function loadPlan(): Promise<void> {
    const members = [...server.members.values()];
    const ids = members.map((m) => m.id);
    const listening = members.filter((m) => m.hello.listen !== null && !unreachableOwners.has(m.id));
    // the members changed since ensurePlan looked (a gather awaited them): none left that can own, wait for one
    if (listening.length === 0) throw new RestartStep('no live worker can own tensors');
    const version = ++planVersion;
    const op = planOwners(sizes, listening.map((m) => m.id), version);
    const owners: PlanOwner[] = op.owners.map((id, i) => ({ workerId: id, url: server.members.get(id)!.hello.listen!, tensors: op.tensorsOf[i]! }));
    for (const ow of owners) {
      const before = plan?.owners.find((x) => x.workerId === ow.workerId)?.tensors.join();
      if (before !== ow.tensors.join()) answered.delete(ow.workerId);
    }
    plan = { version, members: ids, owners, ownerIds: new Set(op.owners) };
    const weights = params.map((x) => (x.variable.dataSync() as Float32Array).slice());
    const adam = store.opt.getState();
    const hist = shared?.getState() ?? store.smi?.getState() ?? [];
    inbox.loaded.clear();
    inbox.unreachable.clear();
    for (const id of ids) {
      const ow = owners.find((x) => x.workerId === id);
      const names = new Set(ow?.tensors.map((j) => params[j]!.name));
      const state: OwnedState | undefined = ow && {
        adamStep: adam.step,
        m: adam.moments.length ? ow.tensors.map((j) => adam.moments[2 * j]!) : [],
        v: adam.moments.length ? ow.tensors.map((j) => adam.moments[2 * j + 1]!) : [],
        smi: hist.filter((h) => names.has(h.name)),
      };
      send(id, { type: 'load', planVersion: version, step: storeStep, members: ids, owners, weights, ...(state ? { state } : {}) });
    }
    server.log(`plan ${version} at step ${storeStep}: ${owners.map((x) => `${x.workerId} owns ${x.tensors.length} tensors (${(op.load[op.owners.indexOf(x.workerId)]! / 1e6).toFixed(2)}M values)`).join(', ')}; ${ids.length - owners.length} compute-only`);
    doneStep = storeStep;
    await until(() => ids.every((id) => inbox.loaded.has(id)), () => ids.filter((id) => !inbox.loaded.has(id)), false, undefined, false);
    if (inbox.unreachable.size > 0) judgeUnreachable(plan);
  }

  /**
   * Some workers could not open a link to some owners. A worker that reached none of the owners that every other
   * worker reached is the one cut off: it is dropped (E_CUT_OFF). Any other owner someone could not reach is
   * the one at fault (a wrong --advertise, a firewall in front of its port): it only computes from now on, over
   * links it opens itself, and the plan is made again without it.
   */
  function judgeUnreachable(p: Plan): never {
    const reports = [...inbox.unreachable].filter(([, owners]) => owners.length > 0);
    const reachedByOthers = (owner: string, reporter: string) => p.members.some((id) => id !== reporter && id !== owner && !(inbox.unreachable.get(id) ?? []).includes(owner));
    for (const [reporter, owners] of reports) {
      const others = p.owners.map((ow) => ow.workerId).filter((id) => id !== reporter);
      if (others.length > 1 && others.every((id) => owners.includes(id) && reachedByOthers(id, reporter))) {
        const m = server.members.get(reporter);
        server.log(`worker ${reporter} could not reach any owner, which the others reached: dropping it (E_CUT_OFF)`);
        if (m) {
          server.countError('E_CUT_OFF');
          server.drop(m, 'E_CUT_OFF');
          m.peer.close(protocolError('E_CUT_OFF', 'you could not open a link to any owner that the other workers reached'));
        }
        throw new RestartStep(`worker ${reporter} is cut off from the owners`);
      }
    }
    for (const [reporter, owners] of reports) {
      for (const id of owners) {
        if (unreachableOwners.has(id)) continue;
        unreachableOwners.add(id);
        server.log(`owner ${id} could not be reached by ${reporter} at ${p.owners.find((ow) => ow.workerId === id)?.url}: it only computes from now on (its exchange address is not reachable)`);
      }
    }
    throw new RestartStep(`owner(s) ${[...unreachableOwners].join(', ')} unreachable: a new plan without them`);
  }

  /** The plan matches the live workers, and the store is where the owners are (gathered, or rolled back to). */
  async function ensurePlan(): Promise<void> {
    for (;;) {
      const ids = [...server.members.keys()];
      if (plan && plan.members.join() === ids.join()) return;
      if (![...server.members.values()].some((m) => m.hello.listen !== null && !unreachableOwners.has(m.id))) {
        server.log(`waiting for a worker that can own tensors (one that listens; ${ids.length} compute-only live)`);
        await server.nextEvent();
        continue;
      }
      try {
        if (plan && doneStep > storeStep && plan.owners.every((ow) => live(ow.workerId))) await gatherState();
      } catch (e) {
        if (!(e instanceof Rollback || e instanceof RestartStep)) throw e;
      }
      if (doneStep > storeStep) server.log(`an owner left: rolling back to the commit of step ${storeStep} and replaying ${doneStep - storeStep} step(s)`);
      doneStep = storeStep;
      try {
        await loadPlan();
        return;
      } catch (e) {
        if (!(e instanceof Rollback || e instanceof RestartStep)) throw e;
        plan = null;
      }
    }
  }

  /** One attempt at step k under the current plan. */
  async function runStep(k: number, offsets: number[]): Promise<StepOutcome> {
    const p = plan!;
    const ids = p.members;
    const parts = Math.max(1, Math.min(ids.length, offsets.length));
    const chunks = splitBatch(offsets, parts);
    const holders = ids.slice(0, parts);
    const sequences = chunks.map((c) => c.length);
    round++;
    current = { step: k, round, holders, sequences };
    inbox.computed.clear();
    inbox.reduced.clear();
    inbox.done.clear();
    taskSentAt.clear();
    doneAt.clear();
    const t0 = performance.now();
    const spans: TraceSpan[] = [];
    for (const id of ids) {
      const mine = chunks.flatMap((c, index) => (holders[index] === id ? [{ index, offsets: c, tokens: tokenWindows(corpus.train, c, cfg.block_size) }] : []));
      taskSentAt.set(id, performance.now());
      send(id, { type: 'task', step: k, round, planVersion: p.version, sequences, holders, mine });
    }
    const t1 = performance.now();
    spans.push({ track: 'coordinator', name: 'task', start: t0, dur: t1 - t0 });
    const owners = p.owners.map((x) => x.workerId);
    await until(
      () => inbox.computed.size === parts && owners.every((id) => inbox.reduced.has(id)),
      () => [...holders.filter((_, c) => !inbox.computed.has(c)), ...owners.filter((id) => !inbox.reduced.has(id))],
    );
    const t2 = performance.now();
    spans.push({ track: 'coordinator', name: 'await_reduced', start: t1, dur: t2 - t1 });
    // the global norm: the owners' float32 sums per tensor, added in parameter order as tf.addN adds them in --local
    // (synced: float64 sums, added in float64, the star's synced norm)
    const perTensor = new Array<number>(sizes.length).fill(0);
    for (const ow of p.owners) inbox.reduced.get(ow.workerId)!.ss.forEach((s, i) => (perTensor[ow.tensors[i]!] = s));
    let total = 0;
    for (const s of perTensor) total = synced || local ? total + s : Math.fround(total + s);
    // the outlier rule on each chunk's norm, over the whole gradient (Σ over the owners)
    const ns = sequences.map((_, c) => Math.sqrt(owners.reduce((a, id) => a + inbox.reduced.get(id)!.chunkSS[c]!, 0)));
    const out = norms.check(ns);
    if (out.length > 0) {
      for (const x of out) {
        server.reject(holders[x.index]!, protocolError('E_OUTLIER', `gradient norm ${x.norm.toExponential(3)} at step ${k}: over ${x.bound.toExponential(3)} (${OUTLIER_FACTOR}× the recent median, at least ${NORM_FLOOR})${x.stepMedian === null ? '' : ` and over ${OUTLIER_FACTOR}× the other shares' median ${x.stepMedian.toExponential(3)}`}`));
      }
      throw new RestartStep(`chunk(s) ${out.map((x) => x.index).join(', ')} rejected`);
    }
    norms.accept(ns);
    const clip = globalClip([total], cfg.grad_clip, k, !synced && !local);
    const alpha = alphaAt(run, k, cfg.max_iters);
    // local: each holder filters its own chunks with κ and its own history and sends the owners b_c; an owner applies
    // AdamW to their mean once every blend is in, so a holder lost from here on rolls the step back
    if (local) for (const id of new Set(holders)) send(id, { type: 'clip', step: k, round, clip: clip.coef, alpha });
    for (const id of owners) send(id, { type: 'commit', step: k, round, clip: clip.coef, lr: lrAt(cfg, k - 1), alpha, ...(twoRound ? { masks: true } : {}) });
    const t3 = performance.now();
    spans.push({ track: 'coordinator', name: 'clip', start: t2, dur: t3 - t2 });
    await until(() => ids.every((id) => !live(id) || inbox.done.has(id)), () => ids.filter((id) => !inbox.done.has(id)), true, local || twoRound ? new Set(holders) : undefined);
    const t4 = performance.now();
    spans.push({ track: 'coordinator', name: 'await_done', start: t3, dur: t4 - t3 }, { track: 'coordinator', name: 'step', start: t0, dur: t4 - t0 });
    const clocks: Record<string, number> = {};
    for (const [id, d] of inbox.done) {
      const placed = onCoordinatorClock(d, taskSentAt.get(id) ?? t0, doneAt.get(id) ?? t4);
      clocks[id] = placed.oneWayMs;
      for (const sp of placed.spans) spans.push({ track: id, ...sp });
    }
    trace?.write(k, spans);
    doneStep = k;
    current = null;
    const B = offsets.length;
    const loss = sequences.reduce((a, n, c) => a + (n / B) * inbox.computed.get(c)!.loss, 0);
    const computeMs = Math.max(...[...inbox.computed.values()].map((c) => c.phases.compute ?? 0));
    const ownersStep = Object.fromEntries([...inbox.done].map(([id, d]) => [id, {
      phases: d.phases, sent: d.bytesSent, received: d.bytesReceived, one_way_ms: Math.round(clocks[id]! * 1000) / 1000,
      ...(d.links ? { shares_sent: d.links.sharesSent, shares_received: d.links.sharesReceived, values_sent: d.links.valuesSent, values_received: d.links.valuesReceived } : {}),
      ...(d.cpuMs !== undefined ? { cpu_ms: Math.round(d.cpuMs * 1000) / 1000 } : {}),
    }]));
    const extra: Record<string, unknown> = { compute_ms: computeMs, owners_step: ownersStep };
    if (synced) {
      // each owner's per-tensor mask checksums, combined in parameter order
      const sums = new Array<number>(sizes.length);
      for (const ow of p.owners) {
        const d = inbox.done.get(ow.workerId);
        // an owner that left after the commit sent none (its step is then rolled back at the next step boundary)
        if (!d?.maskChecksums || d.maskChecksums.length !== ow.tensors.length) server.log(`step ${k}: owner ${ow.workerId} reported ${d?.maskChecksums?.length ?? 'no'} mask checksums for ${ow.tensors.length} tensors`);
        else ow.tensors.forEach((j, i) => (sums[j] = d.maskChecksums![i]!));
      }
      extra.mask_checksum = combineChecksums(sums);
      if (twoRound) {
        // what each holder reports it applied, per chunk in chunk order: every one must be the owners' masks
        const applied = holders.flatMap((id, c) => (holders.indexOf(id) === c ? inbox.done.get(id)?.appliedChecksums ?? [] : []));
        extra.mask_checksums = applied;
        if (applied.length !== parts || applied.some((x) => x !== extra.mask_checksum)) server.log(`step ${k}: the holders applied masks with checksums [${applied}], the owners made ${String(extra.mask_checksum)}`);
      }
    }
    return { loss, gradNorm: clip.norm, alpha, workers: parts, extra };
  }

  const offsetsOf = (k: number) => trainOffsets(cfg.seed, k, cfg.batch_size, cfg.block_size, corpus.train.length);

  /** Steps up to `k` done under a live plan (replaying after a rollback); `then` runs step k itself when given. */
  async function advance(k: number, offsets?: number[]): Promise<StepOutcome | undefined> {
    for (;;) {
      try {
        await ensurePlan();
        while (doneStep < (offsets ? k - 1 : k)) await runStep(doneStep + 1, offsetsOf(doneStep + 1));
        return offsets ? await runStep(k, offsets) : undefined;
      } catch (e) {
        if (!(e instanceof Rollback || e instanceof RestartStep)) throw e;
        current = null;
        server.log(`step ${doneStep + 1}: ${e.message}; ${e instanceof Rollback ? 'rolling back to the last commit' : 'starting the step again with the live workers'}`);
      }
    }
  }

  /** The store brought to the loop's step (gathered from the owners); nothing to do when it is there. */
  async function sync(): Promise<void> {
    while (storeStep < loopStep) {
      await advance(loopStep);
      try {
        await gatherState();
      } catch (e) {
        if (!(e instanceof Rollback || e instanceof RestartStep)) throw e;
      }
    }
  }

  /**
   * The evaluation on the workers' replicas (each holds the weights after the loop's step): batch j of evalPlan to
   * the j mod N-th member, the losses back, the means added in batch order as the one-process evaluation adds them,
   * so the figures are those of the coordinator's own evaluation on the same backend. A member lost meanwhile: the
   * run re-plans (and replays, if an owner left) and asks again.
   */
  async function evaluateOnWorkers(step: number): Promise<Losses> {
    for (;;) {
      try {
        await advance(loopStep);
        const p = plan!;
        const batches = evalPlan(corpus, cfg, step);
        const ids = p.members;
        const mine = new Map(ids.map((id) => [id, [] as number[]]));
        batches.forEach((_, j) => mine.get(ids[j % ids.length]!)!.push(j));
        const attempt = evalAttempts++;
        evaluating = { attempt, counts: new Map([...mine].map(([id, js]) => [id, js.length])) };
        inbox.evaluated.clear();
        for (const [id, js] of mine) {
          send(id, { type: 'evaluate', step, attempt, batches: js.map((j) => ({ split: batches[j]!.split, iter: batches[j]!.iter, tokens: tokenWindows(corpus[batches[j]!.split], batches[j]!.offsets, cfg.block_size) })) });
        }
        // a batch is a forward pass of batch_size sequences, less than a step's share of work: a step's timeout per batch
        const most = Math.max(...[...mine.values()].map((js) => js.length));
        const ms = (o.firstStepTimeoutMs ?? 1_800_000) + most * (o.stepTimeoutMs ?? 60_000);
        await until(() => ids.every((id) => inbox.evaluated.has(id)), () => ids.filter((id) => !inbox.evaluated.has(id)), false, undefined, false, ms);
        const losses = new Array<number>(batches.length);
        for (const [id, js] of mine) js.forEach((j, i) => (losses[j] = inbox.evaluated.get(id)!.losses[i]!));
        return { ...meanLosses(batches, losses, cfg), eval_workers: ids.length };
      } catch (e) {
        if (!(e instanceof Rollback || e instanceof RestartStep)) throw e;
        server.log(`evaluation at step ${step}: ${e.message}; asking the live workers again`);
      } finally {
        evaluating = null;
        inbox.evaluated.clear();
      }
    }
  }

  const base = inProcess(store, corpus, cfg, shared ? { get: () => shared.getState(), set: (e) => shared.setState(e, shapesByName) } : undefined);
  return {
    ...base,
    initFrom: (weights, opts) => {
      const match = base.initFrom(weights, opts);
      plan = null;
      return match;
    },
    restore: (ckpt) => {
      base.restore(ckpt);
      storeStep = doneStep = loopStep = ckpt.step;
      plan = null;
    },
    evaluate: async (step) => {
      // nobody to ask, and the store is at the loop's step (before any worker joined): this process evaluates
      if (server.members.size === 0 && storeStep === loopStep) return evaluate(store.model, corpus, cfg, step);
      return evaluateOnWorkers(step);
    },
    sync,
    start: () => server.waitForWorkers(o.minWorkers ?? 1),
    step: async (k, offsets) => {
      const cpu0 = process.cpuUsage();
      const bytes0 = new Map([...server.members].map(([id, m]) => [id, [m.peer.bytesSent, m.peer.bytesReceived] as const]));
      const out = (await advance(k, offsets))!;
      const cpu = process.cpuUsage(cpu0);
      // the coordinator's own traffic in the step, on the control links of the workers live at its end
      let sent = 0;
      let received = 0;
      for (const [id, m] of server.members) {
        const [s0, r0] = bytes0.get(id) ?? [0, 0];
        sent += Math.max(0, m.peer.bytesSent - s0);
        received += Math.max(0, m.peer.bytesReceived - r0);
      }
      out.extra = { ...out.extra, coordinator_cpu_ms: (cpu.user + cpu.system) / 1000, coordinator_bytes: { sent, received } };
      // the plan that ran step k, on the first logged step under it (replayed steps are not logged)
      const p = plan;
      if (p && p.version !== loggedPlan) {
        loggedPlan = p.version;
        out.extra.owners_plan = {
          version: p.version,
          owners: p.owners.map((ow) => ({ worker: ow.workerId, tensors: ow.tensors.length, params: ow.tensors.reduce((a, j) => a + sizes[j]!, 0) })),
          compute_only: p.members.filter((id) => !p.ownerIds.has(id)),
        };
      }
      loopStep = k;
      if (k % commitInterval === 0) await sync();
      return out;
    },
  };
}
