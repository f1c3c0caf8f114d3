// A model's training state in this process: the GPT, AdamW and SMI, and what the loop asks of it (evaluate, snapshot, restore).
import * as tf from '@tensorflow/tfjs';
import type { BackendInfo } from '../backend/backend.ts';
import { ConfigError } from '../errors.ts';
import { microBatchFor, type TrainConfig } from '../config.ts';
import { AdamW } from '../model/adamw.ts';
import { evalOffsets, makeBatch, type Corpus } from '../model/data.ts';
import { GPT } from '../model/gpt.ts';
import { SMI_RUNS } from '../smi/runs.ts';
import { SpectralMomentum } from '../smi/smi.ts';
import type { TrainState } from './checkpoint.ts';
import type { Shard } from './step.ts';

/** What a checkpoint holds of the model's state (the loop adds the step and the config). */
export type ModelSnapshot = Pick<TrainState, 'weights' | 'adam' | 'smi'>;

/** Mean training and validation loss of an evaluation. */
export interface Losses {
  train_loss: number;
  val_loss: number;
  eval_workers?: number; // how many workers computed its batches (absent: this process did)
}

/** The model, its optimizer and (when SMI runs on the mean gradient in this process) its SMI state. */
export interface ModelState {
  model: GPT;
  opt: AdamW;
  smi: SpectralMomentum | null;
}

/** A fresh model, optimizer and (unless `smi: false`, for engines that keep SMI state elsewhere) SMI state. */
export function createModelState(cfg: TrainConfig, backend: Pick<BackendInfo, 'spectral'>, opts: { smi?: boolean } = {}): ModelState {
  return {
    model: new GPT(cfg, cfg.seed),
    opt: new AdamW({ beta1: cfg.beta1, beta2: cfg.beta2, eps: 1e-8, weightDecay: cfg.weight_decay }),
    smi: cfg.smi === 'baseline' || opts.smi === false ? null : new SpectralMomentum(SMI_RUNS[cfg.smi], backend.spectral, cfg.seed),
  };
}

/** The whole model as one shard (--local, and the coordinator while it holds the weights). */
export function wholeModel(s: ModelState, shared: Shard['shared'] = null): Shard {
  return { names: s.model.params.map((p) => p.name), shapes: s.model.params.map((p) => p.shape), params: s.model.params.map((p) => p.variable), opt: s.opt, smi: s.smi, shared };
}

/** One batch of an evaluation: its split, its index in that split, its sequences' offsets. */
export interface EvalBatchPlan {
  split: 'train' | 'val';
  iter: number;
  offsets: number[];
}

/** An evaluation's batches, as nanoGPT's estimate_loss draws them: eval_iters of train, then of val; they depend on (seed, split, step, i). */
export function evalPlan(corpus: Corpus, cfg: TrainConfig, step: number): EvalBatchPlan[] {
  return (['train', 'val'] as const).flatMap((split) => Array.from({ length: cfg.eval_iters }, (_, iter) => ({
    split, iter, offsets: evalOffsets(cfg.seed, split, step, iter, cfg.batch_size, cfg.block_size, corpus[split].length),
  })));
}

/** Each split's mean of its batches' losses (in evalPlan's order), added in batch order in double. */
export function meanLosses(plan: readonly EvalBatchPlan[], losses: readonly number[], cfg: TrainConfig): Losses {
  const mean = (split: 'train' | 'val') => plan.reduce((a, b, j) => (b.split === split ? a + losses[j]! : a), 0) / cfg.eval_iters;
  return { train_loss: mean('train'), val_loss: mean('val') };
}

/** Mean loss over `eval_iters` batches of each split, as nanoGPT's estimate_loss; batches depend on (seed, step). */
export function evaluate(model: GPT, corpus: Corpus, cfg: TrainConfig, step: number): Losses {
  const micro = microBatchFor(cfg, tf.getBackend()); // the wasm heap cannot hold a paper-preset batch's forward pass
  const plan = evalPlan(corpus, cfg, step);
  const losses = plan.map((b) => {
    const { x, y } = makeBatch(corpus[b.split], b.offsets, cfg.block_size);
    return model.loss(x, y, cfg.batch_size, micro);
  });
  return meanLosses(plan, losses, cfg);
}

/** Weights (our layout), AdamW's moments and SMI's histories (`smi` where they live elsewhere, e.g. the synced history). */
export function snapshotOf(s: ModelState, smi: ModelSnapshot['smi'] = s.smi ? s.smi.getState() : []): ModelSnapshot {
  return {
    weights: s.model.params.map((p) => ({ name: p.name, shape: p.shape, data: p.variable.dataSync() as Float32Array })),
    adam: s.opt.getState(),
    smi,
  };
}

/** Sets weights, moments and (in s.smi) histories from a checkpoint. */
export function restoreInto(s: ModelState, ckpt: ModelSnapshot): void {
  s.model.assignAll(s.model.params.map((p) => {
    const w = ckpt.weights.find((x) => x.name === p.name);
    if (!w || w.shape.join() !== p.shape.join()) throw new ConfigError('E_CHECKPOINT', `checkpoint lacks ${p.name} [${p.shape}]`);
    return w.data;
  }));
  s.opt.setState(s.model.params.map((p) => p.variable), ckpt.adam);
  s.smi?.setState(ckpt.smi);
}

export function disposeModelState(s: ModelState): void {
  s.model.dispose();
  s.opt.dispose();
  s.smi?.dispose();
}
