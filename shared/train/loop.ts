// The training loop, top to bottom as nanoGPT's train.py: init or resume → eval → for each step: batch → engine.step (clip → SMI → AdamW) → log → eval / checkpoint.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BackendInfo } from '../backend/backend.ts';
import { ConfigError } from '../errors.ts';
import { lrAt, type TrainConfig } from '../config.ts';
import { trainOffsets, type Corpus } from '../model/data.ts';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.ts';
import { localEngine, type Engine } from './engine.ts';
import { RunLog, tokensPerSec, type InitFromRecord, type LogRecord } from './log.ts';
import { Progress, progressLine } from './progress.ts';
import { loadSafetensors, saveSafetensors } from './safetensors.ts';

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

/** Writes the final weights under nanoGPT's names and layouts. */
export function saveModel(dir: string, weights: Map<string, { shape: number[]; data: Float32Array }>, cfg: TrainConfig): void {
  saveSafetensors(join(dir, 'model.safetensors'), weights, {
    format: 'pt',
    config: JSON.stringify({ n_layer: cfg.n_layer, n_head: cfg.n_head, n_embd: cfg.n_embd, block_size: cfg.block_size, vocab_size: cfg.vocab_size, bias: false, dropout: cfg.dropout }),
  });
}

/** Trains in this process. Writes config.json, log.jsonl, checkpoint/ and, at the end, model.safetensors. */
export function trainLocal(o: RunOptions): Promise<RunResult> {
  return runTraining(o, (cfg) => localEngine(cfg, o.corpus, o.backend));
}

/**
 * The training loop, top to bottom: the engine → init or resume → eval at step 0 → for each step: batch →
 * engine.step (gradients → clip → SMI → AdamW) → log → eval / checkpoint → stop. Writes config.json, log.jsonl,
 * checkpoint/ and, at the end, model.safetensors. Everything that touches the model's state goes through the engine.
 */
export async function runTraining(o: RunOptions, makeEngine: (cfg: TrainConfig) => Engine | Promise<Engine>): Promise<RunResult> {
  const { cfg, corpus, outDir, backend } = o;
  const progress = o.progress ?? new Progress();
  const init = o.initFrom && !o.resume ? loadSafetensors(o.initFrom).tensors : undefined; // fail before writing anything
  const ckpt = o.resume ? loadCheckpoint(outDir) : undefined;
  const engine = await makeEngine(cfg);
  try {
    let initFrom: InitFromRecord | undefined;
    if (init) {
      try {
        const { dropped, notes } = engine.initFrom(init, { dropExtra: o.initFromDropExtra });
        initFrom = { file: o.initFrom!, dropped, notes };
      } catch (e) {
        throw new ConfigError('E_INIT_FROM', `--init-from ${o.initFrom}: ${(e as Error).message}`);
      }
    }
    if (ckpt) engine.restore(ckpt);
    let step = ckpt?.step ?? 0;
    mkdirSync(outDir, { recursive: true });
    const log = new RunLog(outDir, o.onRecord);
    if (ckpt) {
      log.truncateAfter(ckpt.step);
      progress.print(`resumed ${outDir} at step ${ckpt.step}`);
    } else {
      writeFileSync(join(outDir, 'config.json'), JSON.stringify({ ...cfg, backend: backend.name, data: o.dataPath, vocab: corpus.chars.join('') }, null, 2) + '\n');
    }
    const params = engine.numParams();
    log.write({ kind: 'start', step, backend: backend.name, device: backend.device, params, resumed: o.resume, ...(initFrom ? { init_from: initFrom } : {}) });
    if (initFrom && initFrom.dropped.length > 0) progress.print(`--init-from ${initFrom.file}: dropped ${initFrom.dropped.length} tensor(s) on purpose (--init-from-drop-extra; listed in log.jsonl's start record): ${initFrom.dropped.join(', ')}`);
    if (!ckpt) progress.print(`${cfg.preset} preset, ${(params / 1e6).toFixed(2)}M parameters, SMI run ${cfg.smi}, ${cfg.max_iters} steps → ${outDir}`);
    const save = async () => {
      await engine.sync?.();
      saveCheckpoint(outDir, { step, config: cfg, ...engine.snapshot() });
    };

    const ckptEvery = o.checkpointInterval ?? cfg.eval_interval;
    const tokensPerStep = cfg.batch_size * cfg.block_size;
    const runEval = async (at: number) => {
      const e = await engine.evaluate(at);
      log.write({ kind: 'eval', step: at, ...e });
      progress.print(`step ${at}: train loss ${e.train_loss.toFixed(4)}, val loss ${e.val_loss.toFixed(4)}`);
      return e;
    };
    let last: { train_loss: number; val_loss: number } | undefined;
    // the workers first: under the owners' update they evaluate (a paper-preset evaluation on a CPU coordinator takes an hour)
    await engine.start();
    if (step === 0) last = await runEval(0);

    let windowMs = 0;
    let windowSteps = 0;
    let trainMs = 0;
    let trainSteps = 0;
    while (step < cfg.max_iters) {
      const next = step + 1;
      const offsets = trainOffsets(cfg.seed, next, cfg.batch_size, cfg.block_size, corpus.train.length);
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const { loss, gradNorm, alpha, workers, extra } = await engine.step(next, offsets);
      step = next;
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      windowMs += ms;
      windowSteps += 1;
      trainMs += ms;
      trainSteps += 1;
      const lr = lrAt(cfg, step - 1);
      log.write({
        kind: 'step', step, loss, lr, alpha, ms, tokens: tokensPerStep, workers, grad_norm: gradNorm,
        cpu_ms: (cpu.user + cpu.system) / 1000,
        ...extra,
        ...(o.logBatches ? { offsets } : {}),
      });
      if (step % cfg.log_interval === 0 || step === cfg.max_iters) {
        const msPerStep = windowMs / windowSteps;
        progress.update(progressLine({
          step, maxIters: cfg.max_iters, loss, lr, alpha, msPerStep,
          tokensPerSec: tokensPerSec(tokensPerStep, msPerStep), etaMs: msPerStep * (cfg.max_iters - step),
        }));
        windowMs = 0;
        windowSteps = 0;
        const line = engine.summary?.();
        if (line) progress.print(line);
      }
      if (step % cfg.eval_interval === 0 || step === cfg.max_iters) last = await runEval(step);
      const stopping = step === o.stopAt || o.signal?.aborted === true;
      if (step % ckptEvery === 0 || step === cfg.max_iters || stopping) await save();
      if (stopping && step < cfg.max_iters) {
        progress.print(`stopped after step ${step}; checkpoint written: continue with --resume ${outDir}`);
        return { step, finished: false };
      }
    }
    await engine.sync?.();
    saveModel(outDir, engine.exportModel(), cfg);
    const msPerStep = trainSteps > 0 ? trainMs / trainSteps : 0;
    log.write({
      kind: 'done', step, ms: trainMs, tokens_per_sec: msPerStep > 0 ? tokensPerSec(tokensPerStep, msPerStep) : 0,
      train_loss: last?.train_loss ?? NaN, val_loss: last?.val_loss ?? NaN,
    });
    progress.print(`done: ${step} steps, val loss ${last?.val_loss.toFixed(4)}, model → ${join(outDir, 'model.safetensors')}`);
    return { step, finished: true, trainLoss: last?.train_loss, valLoss: last?.val_loss };
  } finally {
    engine.dispose();
  }
}
