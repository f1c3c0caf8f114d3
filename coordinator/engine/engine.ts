// The coordinator's engine: the model in this process, each step computed by the workers in the run's spectral mode, the weights broadcast after it.
import type { BackendInfo } from '../../shared/backend/backend.ts';
import type { SyncedBlend, TrainConfig, UpdateAt } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';
import type { Corpus } from '../../shared/model/data.ts';
import { SharedSpectralHistory } from '../../shared/parallel/spectral.ts';
import { SMI_RUNS, view2d } from '../../shared/smi/runs.ts';
import { inProcess, type Engine, type StepOutcome } from '../../shared/train/engine.ts';
import type { StepPhaseRecord } from '../../shared/train/log.ts';
import { createModelState, wholeModel } from '../../shared/train/state.ts';
import { readInto } from '../../shared/wasm/heap.ts';
import { NullPhases, StepPhases, TraceWriter, summarizePhases } from '../phases.ts';
import { RestartStep } from '../rounds.ts';
import type { Server } from '../server.ts';
import { ShareNorms } from '../../shared/parallel/share-bounds.ts';
import type { ModelShape } from '../shares.ts';
import { globalStep } from './global.ts';
import { localStep } from './local.ts';
import { syncedStep } from './synced.ts';
import type { ModeContext, ModeStep } from './gather.ts';
import { ownersEngine } from './owners.ts';

export interface CoordinatorEngineOptions {
  backend: Pick<BackendInfo, 'spectral'>;
  minWorkers?: number; // live workers before step 1 [1]
  syncedBlend?: SyncedBlend; // synced mode: where the shared mask is applied ['coordinator']
  timing?: boolean; // per-phase timing in each step record [true]
  trace?: string; // write a Chrome trace-event file here
  update?: UpdateAt; // who applies the update [updateAt(cfg)]
  commitInterval?: number; // --update owners: steps between commits gathered from the owners [50]
  stepTimeoutMs?: number;
  firstStepTimeoutMs?: number;
}

/**
 * Who applies the update: the owners (the default) in every mode, or the coordinator when asked (--update
 * coordinator, the star; kept to compare against).
 */
export function updateAt(requested?: UpdateAt): UpdateAt {
  return requested ?? 'owners';
}

const MODES: Record<TrainConfig['spectral'], ModeStep> = { global: globalStep, synced: syncedStep, local: localStep };
const align8 = (n: number) => Math.ceil(n / 8) * 8;

/**
 * The Engine of a distributed run: the coordinator keeps the model, the optimizer and (synced, global) the
 * spectral history; a step gathers, reduces and runs the one update step in the mode's module, then broadcasts.
 */
export function coordinatorEngine(server: Server, cfg: TrainConfig, corpus: Corpus, o: CoordinatorEngineOptions): Engine {
  if (updateAt(o.update) === 'owners') {
    if (o.commitInterval !== undefined && !(o.commitInterval >= 1)) throw new ConfigError('E_BAD_FLAG', `--commit-interval takes a positive number of steps, got ${o.commitInterval}`);
    server.log(`update: the owners run clip → SMI → AdamW on their tensors; gradients (${cfg.wire_dtype} on the wire) and values (fp32) go worker to worker (--update owners)`);
    return ownersEngine(server, cfg, corpus, o);
  }
  // the star's messages are fp32: reduced precision is the owners' exchange's (worker/wire.ts)
  if (cfg.wire_dtype !== 'fp32') throw new ConfigError('E_BAD_FLAG', `--wire-dtype ${cfg.wire_dtype} applies to the owners' exchange; --update coordinator sends fp32`);
  const mode = cfg.smi === 'baseline' ? 'global' : cfg.spectral;
  const run = SMI_RUNS[cfg.smi];
  const state = createModelState(cfg, o.backend, { smi: mode === 'global' });
  const shared = mode === 'synced' ? new SharedSpectralHistory(run.beta, run.q) : null;
  const syncedBlend = o.syncedBlend ?? 'coordinator';
  if (shared) server.log(`synced spectral history: the shared mask is applied ${syncedBlend === 'coordinator' ? 'once, to the mean gradient, at the coordinator (one round trip)' : 'by each worker to its own spectrum (two round trips)'}`);
  const shard = wholeModel(state, shared);
  const sizes = shard.shapes.map((s) => s.reduce((a, b) => a * b, 1));
  const views = shard.shapes.map((s) => view2d(s));
  const shape: ModelShape = { sizes, views, halfSizes: views.map(([rows, cols]) => rows * (Math.floor(cols / 2) + 1)) };
  // the largest message a worker has reason to send (a gradient with its spectra)
  server.setMessageLimit(sizes.reduce((a, n, i) => a + align8(4 * n) + align8(4 * shape.halfSizes[i]!), 0));
  const norms = new ShareNorms();
  server.whenClosed(() => server.log(norms.summary()));
  const trace = o.trace ? new TraceWriter(o.trace) : null;
  if (trace) server.whenClosed(() => trace.close());
  // Host buffers reused every step (fresh multi-MB arrays each step keep V8's collector busy, on the cores the
  // workers compute on): the weights as broadcast, and the mean gradient.
  const weightsBuf = sizes.map((n) => new Float32Array(n));
  const ctx: ModeContext = { server, cfg, corpus, run, shard, shape, norms, meanBuf: sizes.map((n) => new Float32Array(n)), syncedBlend };
  const refreshWeights = (step: number) => {
    shard.params.forEach((v, i) => readInto(v, weightsBuf[i]!));
    server.setWeights(step, weightsBuf);
  };
  // a broadcast not awaited before the buffers change again sends copies
  const broadcast = (step: number, phases?: StepPhases, copy = false) => Promise.all([...server.members.values()].map((m) =>
    m.peer.send({ type: 'weights', step, tensors: copy ? weightsBuf.map((w) => w.slice()) : weightsBuf }).then((st) => phases?.encoded(m.id, st.encodeMs, true), (e: unknown) => server.sendFailed(m, m.id, 'weights', e))));
  refreshWeights(0);

  const timing = o.timing ?? true;
  const recent: StepPhaseRecord[] = []; // since the last progress line, for the console summary
  const attempt = MODES[mode];
  const step = async (k: number, offsets: number[]): Promise<StepOutcome> => {
    const phases = timing ? new StepPhases() : new NullPhases();
    const bytesAt = new Map([...server.members.values()].map((m) => [m.id, [m.peer.bytesSent, m.peer.bytesReceived] as const]));
    for (;;) {
      try {
        const out = await attempt(ctx, k, offsets, phases);
        refreshWeights(k);
        await broadcast(k, phases);
        if (!timing) return out;
        for (const m of server.members.values()) {
          const [sent, received] = bytesAt.get(m.id) ?? [0, 0];
          phases.bytes(m.id, m.peer.bytesSent - sent, m.peer.bytesReceived - received);
        }
        const record = phases.finish();
        trace?.step(k, phases);
        recent.push(record);
        return { ...out, extra: { ...out.extra, phases: record } };
      } catch (e) {
        if (!(e instanceof RestartStep)) throw e;
        server.rounds.redo();
        server.log(`step ${k}: ${e.message}; redoing the step with the remaining workers`);
      }
    }
  };

  const names = new Map(shard.names.map((n, i) => [n, shard.shapes[i]!]));
  const base = inProcess(state, corpus, cfg, shared ? { get: () => shared.getState(), set: (e) => shared.setState(e, names) } : undefined);
  return {
    ...base,
    // weights set before the first step reach the workers that joined meanwhile too
    initFrom: (weights, opts) => {
      const match = base.initFrom(weights, opts);
      refreshWeights(0);
      void broadcast(0, undefined, true);
      return match;
    },
    restore: (ckpt) => {
      base.restore(ckpt);
      refreshWeights(ckpt.step);
      void broadcast(ckpt.step, undefined, true);
    },
    start: () => server.waitForWorkers(o.minWorkers ?? 1),
    step,
    summary: () => (recent.length ? summarizePhases(recent.splice(0)) : undefined),
  };
}
