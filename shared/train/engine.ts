// What the training loop asks of whoever holds the model's state (an Engine), and the one-process engine of --local.
import * as tf from '@tensorflow/tfjs';
import type { BackendInfo } from '../backend/backend.ts';
import { lrAt, microBatchFor, type TrainConfig } from '../config.ts';
import { TrainingError } from '../errors.ts';
import { makeBatch, type Corpus } from '../model/data.ts';
import { STREAM } from '../model/rng.ts';
import { SMI_RUNS, alphaAt } from '../smi/runs.ts';
import type { WeightMatch } from '../model/nanogpt-weights.ts';
import type { TrainState } from './checkpoint.ts';
import { createModelState, disposeModelState, evaluate, restoreInto, snapshotOf, wholeModel, type Losses, type ModelSnapshot, type ModelState } from './state.ts';
import { applyUpdate, globalClip, sumOfSquares } from './step.ts';

/** What one optimizer step reports back to the loop. */
export interface StepOutcome {
  loss: number;
  gradNorm: number;
  alpha: number;
  workers: number;
  extra?: Record<string, unknown>; // more fields for the step record (e.g. the synced mask checksum)
}

/**
 * Everything the loop does to the model's state goes through its engine: steps, evaluation, snapshots for
 * checkpoints and the final model, restoring, and waiting for what the first step needs. The engine may hold the
 * weights in this process (--local, today's coordinator) or elsewhere. `step` leaves the state updated by exactly
 * one optimizer step, or throws and leaves it as it was.
 */
export interface Engine {
  numParams(): number;
  /** --init-from: weights in nanoGPT's names and layouts, exactly this model's (or with `dropExtra`, the extras dropped and named). */
  initFrom(weights: Map<string, { shape: number[]; data: Float32Array }>, opts?: { dropExtra?: boolean }): WeightMatch;
  /** --resume: the weights, moments and histories of a checkpoint taken after `step` steps. */
  restore(state: TrainState): void;
  /** Mean losses of the (seed, step) evaluation batches. */
  evaluate(step: number): Promise<Losses>;
  /** Called once before the first step (e.g. to wait for --min-workers), outside the step timing. */
  start(): Promise<void>;
  step(step: number, offsets: number[]): Promise<StepOutcome>;
  /** Brings the state snapshot() and exportModel() read up to date, when it lives elsewhere (the owners'). */
  sync?(): Promise<void>;
  /** The state a checkpoint keeps. */
  snapshot(): ModelSnapshot;
  /** The weights under nanoGPT's names and PyTorch layouts (model.safetensors). */
  exportModel(): Map<string, { shape: number[]; data: Float32Array }>;
  /** A console line for the last log interval (e.g. where the step time went), printed after the progress line. */
  summary?(): string | undefined;
  dispose(): void;
}

/**
 * The parts of an Engine that a model held in this process gives directly; `smi` reads and sets SMI's histories
 * where they do not live in s.smi (the coordinator's synced history).
 */
export function inProcess(s: ModelState, corpus: Corpus, cfg: TrainConfig, smi?: { get(): ModelSnapshot['smi']; set(e: ModelSnapshot['smi']): void }): Pick<Engine, 'numParams' | 'initFrom' | 'restore' | 'evaluate' | 'snapshot' | 'exportModel' | 'dispose'> {
  return {
    numParams: () => s.model.numParams(),
    initFrom: (weights, opts) => s.model.importWeights(weights, opts),
    restore: (ckpt) => {
      restoreInto(s, ckpt);
      smi?.set(ckpt.smi);
    },
    evaluate: async (step) => evaluate(s.model, corpus, cfg, step),
    snapshot: () => snapshotOf(s, smi?.get()),
    exportModel: () => s.model.exportWeights(),
    dispose: () => disposeModelState(s),
  };
}

/** The one-process engine of --local: gradients here, then the one update step (clip → SMI → AdamW). */
export function localEngine(cfg: TrainConfig, corpus: Corpus, backend: BackendInfo): Engine {
  const state = createModelState(cfg, backend);
  const shard = wholeModel(state);
  const micro = microBatchFor(cfg, backend.name);
  const run = SMI_RUNS[cfg.smi];
  return {
    ...inProcess(state, corpus, cfg),
    start: async () => {},
    async step(step, offsets) {
      const { x, y } = makeBatch(corpus.train, offsets, cfg.block_size);
      const t0 = performance.now();
      const { loss, grads } = state.model.gradients(x, y, cfg.batch_size, [cfg.seed, STREAM.dropout, step], micro, offsets);
      const computeMs = performance.now() - t0;
      try {
        if (!Number.isFinite(loss)) throw new TrainingError('E_NONFINITE_LOSS', `loss is ${loss} at step ${step}: training diverged; update refused (resume from the last checkpoint)`);
        const { norm, coef } = globalClip([sumOfSquares(grads)], cfg.grad_clip, step, true);
        const alpha = alphaAt(run, step, cfg.max_iters);
        applyUpdate(shard, grads, { clip: coef, step, lr: lrAt(cfg, step - 1), alpha });
        return { loss, gradNorm: norm, alpha, workers: 1, extra: { compute_ms: computeMs } };
      } catch (e) {
        tf.dispose(grads);
        throw e;
      }
    },
  };
}
