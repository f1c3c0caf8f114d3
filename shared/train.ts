// One-process training, top to bottom as nanoGPT's train.py: lr → eval/checkpoint → gradients → clip → SMI → AdamW → log.
import * as tf from '@tensorflow/tfjs';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, clipGlobalNorm } from './adamw.ts';
import type { BackendInfo } from './backend.ts';
import { loadCheckpoint, saveCheckpoint, type TrainState } from './checkpoint.ts';
import { ConfigError, lrAt, microBatchFor, type TrainConfig } from './config.ts';
import { evalOffsets, makeBatch, trainOffsets, type Corpus } from './data.ts';
import { GPT } from './model.ts';
import { Progress, progressLine } from './progress.ts';
import { STREAM } from './rng.ts';
import { loadSafetensors, saveSafetensors, writeFileAtomic } from './safetensors.ts';
import { SMI_RUNS, SpectralMomentum, alphaAt } from './smi.ts';

export type LogRecord =
  | { kind: 'start'; step: number; backend: string; device: string; params: number; resumed: boolean; init_from?: InitFromRecord }
  | { kind: 'step'; step: number; loss: number; lr: number; alpha: number; ms: number; tokens: number; workers: number; grad_norm: number; offsets?: number[]; [more: string]: unknown }
  | { kind: 'eval'; step: number; train_loss: number; val_loss: number }
  | { kind: 'done'; step: number; ms: number; tokens_per_sec: number; train_loss: number; val_loss: number };

/** What --init-from loaded into a run: the file, the names dropped on purpose, and what was accepted as nanoGPT accepts it. */
export interface InitFromRecord {
  file: string;
  dropped: string[];
  notes: string[];
}

/** A step that cannot be applied; the weights are left as they were. */
export class TrainingError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'TrainingError';
    this.code = code;
  }
}

/** Appends records to log.jsonl, one JSON object a line. */
export class RunLog {
  readonly path: string;
  constructor(dir: string, private readonly onRecord?: (r: LogRecord) => void) {
    this.path = join(dir, 'log.jsonl');
  }
  write(r: LogRecord): void {
    appendFileSync(this.path, JSON.stringify(r) + '\n');
    this.onRecord?.(r);
  }
  read(): LogRecord[] {
    if (!existsSync(this.path)) return [];
    return readFileSync(this.path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogRecord);
  }
  /** On resume: drop what was logged after the checkpoint's step, since those steps run again. */
  truncateAfter(step: number): void {
    const keep = this.read().filter((r) => r.kind !== 'done' && (r.kind === 'start' || r.step <= step));
    writeFileAtomic(this.path, keep.map((r) => JSON.stringify(r) + '\n').join(''));
  }
}

/** Mean loss over `eval_iters` batches of each split, as nanoGPT's estimate_loss; batches depend on (seed, step). */
export function evaluate(model: GPT, corpus: Corpus, cfg: TrainConfig, step: number): { train_loss: number; val_loss: number } {
  const micro = microBatchFor(cfg, tf.getBackend()); // the wasm heap cannot hold a paper-preset batch's forward pass
  const mean = (split: 'train' | 'val') => {
    const data = corpus[split];
    let sum = 0;
    for (let i = 0; i < cfg.eval_iters; i++) {
      const { x, y } = makeBatch(data, evalOffsets(cfg.seed, split, step, i, cfg.batch_size, cfg.block_size, data.length), cfg.block_size);
      sum += model.loss(x, y, cfg.batch_size, micro);
    }
    return sum / cfg.eval_iters;
  };
  return { train_loss: mean('train'), val_loss: mean('val') };
}

/**
 * The optimizer side of one step: clip → SMI → AdamW. Disposes `grads`. Returns the pre-clip norm, α, and the
 * milliseconds of each part (clip, spectral, optimizer).
 */
export function applyGradients(
  model: GPT, opt: AdamW, smi: SpectralMomentum | null, cfg: TrainConfig, step: number, grads: tf.Tensor[],
): { gradNorm: number; alpha: number; ms: { clip: number; spectral: number; optimizer: number } } {
  const t0 = performance.now();
  const { norm, grads: clipped } = clipGlobalNorm(grads, cfg.grad_clip);
  tf.dispose(grads);
  if (!Number.isFinite(norm)) {
    tf.dispose(clipped);
    throw new TrainingError('E_NONFINITE_GRAD', `gradient norm is ${norm} at step ${step}: update refused, weights unchanged`);
  }
  let final = clipped;
  const t1 = performance.now();
  if (smi) {
    const named = clipped.map((tensor, i) => ({ name: model.params[i]!.name, tensor }));
    final = smi.apply(named, step, cfg.max_iters).map((n) => n.tensor);
    tf.dispose(clipped);
  }
  const t2 = performance.now();
  opt.apply(model.params.map((p) => p.variable), final, lrAt(cfg, step - 1));
  tf.dispose(final);
  const t3 = performance.now();
  return { gradNorm: norm, alpha: alphaAt(SMI_RUNS[cfg.smi], step, cfg.max_iters), ms: { clip: t1 - t0, spectral: t2 - t1, optimizer: t3 - t2 } };
}

/** Everything a run needs in memory; created fresh or from a checkpoint. */
export interface RunState {
  model: GPT;
  opt: AdamW;
  smi: SpectralMomentum | null;
  step: number;
}

/** A fresh model, optimizer and (unless `smi: false`, for engines that keep SMI state elsewhere) SMI state. */
export function createRunState(cfg: TrainConfig, backend: BackendInfo, opts: { smi?: boolean } = {}): RunState {
  return {
    model: new GPT(cfg, cfg.seed),
    opt: new AdamW({ beta1: cfg.beta1, beta2: cfg.beta2, eps: 1e-8, weightDecay: cfg.weight_decay }),
    smi: cfg.smi === 'baseline' || opts.smi === false ? null : new SpectralMomentum(SMI_RUNS[cfg.smi], backend.spectral, cfg.seed),
    step: 0,
  };
}

export function snapshot(s: RunState, cfg: TrainConfig): TrainState {
  return {
    step: s.step,
    config: cfg,
    weights: s.model.params.map((p) => ({ name: p.name, shape: p.shape, data: p.variable.dataSync() as Float32Array })),
    adam: s.opt.getState(),
    smi: s.smi ? s.smi.getState() : [],
  };
}

export function restore(s: RunState, ckpt: TrainState): void {
  s.model.assignAll(s.model.params.map((p) => {
    const w = ckpt.weights.find((x) => x.name === p.name);
    if (!w || w.shape.join() !== p.shape.join()) throw new ConfigError('E_CHECKPOINT', `checkpoint lacks ${p.name} [${p.shape}]`);
    return w.data;
  }));
  s.opt.setState(s.model.params.map((p) => p.variable), ckpt.adam);
  s.smi?.setState(ckpt.smi);
  s.step = ckpt.step;
}

export function disposeRunState(s: RunState): void {
  s.model.dispose();
  s.opt.dispose();
  s.smi?.dispose();
}

/** Writes the final weights under nanoGPT's names and layouts. */
export function saveModel(dir: string, model: GPT, cfg: TrainConfig): void {
  saveSafetensors(join(dir, 'model.safetensors'), model.exportWeights(), {
    format: 'pt',
    config: JSON.stringify({ n_layer: cfg.n_layer, n_head: cfg.n_head, n_embd: cfg.n_embd, block_size: cfg.block_size, vocab_size: cfg.vocab_size, bias: false, dropout: cfg.dropout }),
  });
}

export interface RunOptions {
  cfg: TrainConfig;
  corpus: Corpus;
  dataPath: string;
  outDir: string;
  backend: BackendInfo;
  resume: boolean; // continue from outDir/checkpoint
  initFrom?: string;
  initFromDropExtra?: boolean; // --init-from-drop-extra: drop the file's tensors the model has no place for, and log them
  logBatches?: boolean;
  stopAt?: number; // stop after this step with a checkpoint
  checkpointInterval?: number;
  progress?: Progress;
  signal?: AbortSignal; // abort = checkpoint after the current step and return
  onRecord?: (r: LogRecord) => void; // every record as it is written to log.jsonl (e.g. the live page)
}

export interface RunResult {
  step: number;
  finished: boolean; // reached max_iters
  trainLoss?: number;
  valLoss?: number;
}

/** What one optimizer step reports back to the loop. */
export interface StepOutcome {
  loss: number;
  gradNorm: number;
  alpha: number;
  workers: number;
  extra?: Record<string, unknown>; // more fields for the step record (e.g. the synced mask checksum)
}

/**
 * How steps are computed: in this process (trainLocal) or by workers (the coordinator). `step` must leave
 * state.model and state.opt updated by exactly one optimizer step, or throw and leave them untouched.
 */
export interface StepEngine {
  step(step: number, offsets: number[]): Promise<StepOutcome>;
  /** A console line for the last log interval (e.g. where the step time went), printed after the progress line. */
  summary?(): string | undefined;
  /** Called once before the first step (e.g. to wait for --min-workers), outside the step timing. */
  start?(): Promise<void>;
  /** The SMI state for checkpoints, where it does not live in RunState.smi (e.g. the shared synced history). */
  spectralState?: { get(): TrainState['smi']; set(entries: TrainState['smi']): void };
}

/** The one-process engine: gradients here, then clip → SMI → AdamW. */
export function localEngine(state: RunState, cfg: TrainConfig, corpus: Corpus, backend: string): StepEngine {
  const micro = microBatchFor(cfg, backend);
  return {
    async step(step, offsets) {
      const { x, y } = makeBatch(corpus.train, offsets, cfg.block_size);
      const t0 = performance.now();
      const { loss, grads } = state.model.gradients(x, y, cfg.batch_size, [cfg.seed, STREAM.dropout, step], micro, offsets);
      const computeMs = performance.now() - t0;
      if (!Number.isFinite(loss)) {
        tf.dispose(grads);
        throw new TrainingError('E_NONFINITE_LOSS', `loss is ${loss} at step ${step}: training diverged; update refused (resume from the last checkpoint)`);
      }
      const { gradNorm, alpha } = applyGradients(state.model, state.opt, state.smi, cfg, step, grads);
      return { loss, gradNorm, alpha, workers: 1, extra: { compute_ms: computeMs } };
    },
  };
}

/** Trains in this process. Writes config.json, log.jsonl, checkpoint/ and, at the end, model.safetensors. */
export function trainLocal(o: RunOptions): Promise<RunResult> {
  return runTraining(o, (state) => localEngine(state, o.cfg, o.corpus, o.backend.name));
}

/**
 * The training loop, top to bottom: resume or init → eval at step 0 → for each step: batch → engine.step
 * (gradients → clip → SMI → AdamW) → log → eval / checkpoint → stop. Writes config.json, log.jsonl,
 * checkpoint/ and, at the end, model.safetensors.
 */
export async function runTraining(o: RunOptions, makeEngine: (state: RunState) => StepEngine | Promise<StepEngine>, stateOptions: { smi?: boolean } = {}): Promise<RunResult> {
  const { cfg, corpus, outDir, backend } = o;
  const progress = o.progress ?? new Progress();
  const init = o.initFrom && !o.resume ? loadSafetensors(o.initFrom).tensors : undefined; // fail before writing anything
  const ckpt = o.resume ? loadCheckpoint(outDir) : undefined;
  const state = createRunState(cfg, backend, stateOptions);
  try {
    let initFrom: InitFromRecord | undefined;
    if (init) {
      try {
        const { dropped, notes } = state.model.importWeights(init, { dropExtra: o.initFromDropExtra });
        initFrom = { file: o.initFrom!, dropped, notes };
      } catch (e) {
        throw new ConfigError('E_INIT_FROM', `--init-from ${o.initFrom}: ${(e as Error).message}`);
      }
    }
    if (ckpt) restore(state, ckpt);
    const engine = await makeEngine(state);
    if (ckpt) engine.spectralState?.set(ckpt.smi);
    mkdirSync(outDir, { recursive: true });
    const log = new RunLog(outDir, o.onRecord);
    if (ckpt) {
      log.truncateAfter(ckpt.step);
      progress.print(`resumed ${outDir} at step ${ckpt.step}`);
    } else {
      writeFileSync(join(outDir, 'config.json'), JSON.stringify({ ...cfg, backend: backend.name, data: o.dataPath, vocab: corpus.chars.join('') }, null, 2) + '\n');
    }
    const params = state.model.numParams();
    log.write({ kind: 'start', step: state.step, backend: backend.name, device: backend.device, params, resumed: o.resume, ...(initFrom ? { init_from: initFrom } : {}) });
    if (initFrom && initFrom.dropped.length > 0) progress.print(`--init-from ${initFrom.file}: dropped ${initFrom.dropped.length} tensor(s) on purpose (--init-from-drop-extra; listed in log.jsonl's start record): ${initFrom.dropped.join(', ')}`);
    if (!ckpt) progress.print(`${cfg.preset} preset, ${(params / 1e6).toFixed(2)}M parameters, SMI run ${cfg.smi}, ${cfg.max_iters} steps → ${outDir}`);
    const save = () => {
      const snap = snapshot(state, cfg);
      if (engine.spectralState) snap.smi = engine.spectralState.get();
      saveCheckpoint(outDir, snap);
    };

    const ckptEvery = o.checkpointInterval ?? cfg.eval_interval;
    const tokensPerStep = cfg.batch_size * cfg.block_size;
    const runEval = (step: number) => {
      const e = evaluate(state.model, corpus, cfg, step);
      log.write({ kind: 'eval', step, ...e });
      progress.print(`step ${step}: train loss ${e.train_loss.toFixed(4)}, val loss ${e.val_loss.toFixed(4)}`);
      return e;
    };
    let last: { train_loss: number; val_loss: number } | undefined;
    if (state.step === 0) last = runEval(0);
    await engine.start?.();

    let windowMs = 0;
    let windowSteps = 0;
    let trainMs = 0;
    let trainSteps = 0;
    while (state.step < cfg.max_iters) {
      const step = state.step + 1;
      const offsets = trainOffsets(cfg.seed, step, cfg.batch_size, cfg.block_size, corpus.train.length);
      const t0 = performance.now();
      const { loss, gradNorm, alpha, workers, extra } = await engine.step(step, offsets);
      state.step = step;
      const ms = performance.now() - t0;
      windowMs += ms;
      windowSteps += 1;
      trainMs += ms;
      trainSteps += 1;
      const lr = lrAt(cfg, step - 1);
      log.write({
        kind: 'step', step, loss, lr, alpha, ms, tokens: tokensPerStep, workers, grad_norm: gradNorm,
        ...extra,
        ...(o.logBatches ? { offsets } : {}),
      });
      if (step % cfg.log_interval === 0 || step === cfg.max_iters) {
        const msPerStep = windowMs / windowSteps;
        progress.update(progressLine({
          step, maxIters: cfg.max_iters, loss, lr, alpha, msPerStep,
          tokensPerSec: (tokensPerStep * 1000) / msPerStep, etaMs: msPerStep * (cfg.max_iters - step),
        }));
        windowMs = 0;
        windowSteps = 0;
        const line = engine.summary?.();
        if (line) progress.print(line);
      }
      if (step % cfg.eval_interval === 0 || step === cfg.max_iters) last = runEval(step);
      const stopping = step === o.stopAt || o.signal?.aborted === true;
      if (step % ckptEvery === 0 || step === cfg.max_iters || stopping) save();
      if (stopping && step < cfg.max_iters) {
        progress.print(`stopped after step ${step}; checkpoint written: continue with --resume ${outDir}`);
        return { step, finished: false };
      }
    }
    saveModel(outDir, state.model, cfg);
    const msPerStep = trainSteps > 0 ? trainMs / trainSteps : 0;
    log.write({
      kind: 'done', step: state.step, ms: trainMs, tokens_per_sec: msPerStep > 0 ? (tokensPerStep * 1000) / msPerStep : 0,
      train_loss: last?.train_loss ?? NaN, val_loss: last?.val_loss ?? NaN,
    });
    progress.print(`done: ${state.step} steps, val loss ${last?.val_loss.toFixed(4)}, model → ${join(outDir, 'model.safetensors')}`);
    return { step: state.step, finished: true, trainLoss: last?.train_loss, valLoss: last?.val_loss };
  } finally {
    disposeRunState(state);
  }
}
