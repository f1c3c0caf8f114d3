// checkpoint/: everything needed to resume to an identical run, in one safetensors file replaced atomically.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainConfig } from '../config.ts';
import { CheckpointError } from '../errors.ts';
import { loadSafetensors, saveSafetensors, type NamedTensor } from './safetensors.ts';

export const CHECKPOINT_VERSION = 1;

/**
 * The resumable state. Sampling and dropout are pure functions of (seed, step), so `step` is their whole state.
 * Tensor order in the file: model weights (our layout), then AdamW m and v per parameter, then SMI histories.
 */
export interface TrainState {
  step: number; // optimizer updates applied
  config: TrainConfig;
  weights: { name: string; shape: number[]; data: Float32Array }[];
  adam: { step: number; moments: Float32Array[] }; // m0, v0, m1, v1, … in weights order
  smi: { name: string; shape: number[]; data: Float32Array }[]; // spectral histories (empty for baseline or step 0)
  extra?: Record<string, unknown>; // e.g. the distributed coordinator's own state
}


export const checkpointFile = (runDir: string) => join(runDir, 'checkpoint', 'state.safetensors');

/** Writes the state atomically: readers see the previous checkpoint or this one, never a partial file. */
export function saveCheckpoint(runDir: string, s: TrainState): void {
  const dir = join(runDir, 'checkpoint');
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, NamedTensor>();
  for (const w of s.weights) tensors.set(`model/${w.name}`, { shape: w.shape, data: w.data });
  s.weights.forEach((w, i) => {
    if (s.adam.moments.length === 0) return;
    tensors.set(`adam_m/${w.name}`, { shape: w.shape, data: s.adam.moments[2 * i]! });
    tensors.set(`adam_v/${w.name}`, { shape: w.shape, data: s.adam.moments[2 * i + 1]! });
  });
  for (const h of s.smi) tensors.set(`smi_h/${h.name}`, { shape: h.shape, data: h.data });
  saveSafetensors(checkpointFile(runDir), tensors, {
    format: 'smi-trainer-checkpoint',
    version: String(CHECKPOINT_VERSION),
    step: String(s.step),
    adam_step: String(s.adam.step),
    config: JSON.stringify(s.config),
    extra: JSON.stringify(s.extra ?? {}),
  });
}

/** Reads a checkpoint written by saveCheckpoint; a missing or foreign file is a CheckpointError. */
export function loadCheckpoint(runDir: string): TrainState {
  const file = checkpointFile(runDir);
  if (!existsSync(file)) throw new CheckpointError(`no checkpoint at ${file}: nothing to resume`);
  const { tensors, metadata } = loadSafetensors(file);
  if (metadata.format !== 'smi-trainer-checkpoint') throw new CheckpointError(`${file} is not an smi-trainer checkpoint`);
  if (Number(metadata.version) !== CHECKPOINT_VERSION) {
    throw new CheckpointError(`${file} has checkpoint version ${metadata.version}, this build reads ${CHECKPOINT_VERSION}`);
  }
  const weights: TrainState['weights'] = [];
  const moments: Float32Array[] = [];
  const smi: TrainState['smi'] = [];
  for (const [key, t] of tensors) {
    const slash = key.indexOf('/');
    const kind = key.slice(0, slash);
    const name = key.slice(slash + 1);
    if (kind === 'model') weights.push({ name, shape: t.shape, data: t.data });
    else if (kind === 'smi_h') smi.push({ name, shape: t.shape, data: t.data });
  }
  for (const w of weights) {
    const m = tensors.get(`adam_m/${w.name}`);
    const v = tensors.get(`adam_v/${w.name}`);
    if (m && v) moments.push(m.data, v.data);
  }
  return {
    step: Number(metadata.step),
    config: JSON.parse(metadata.config!) as TrainConfig,
    weights,
    adam: { step: Number(metadata.adam_step), moments },
    smi,
    extra: JSON.parse(metadata.extra ?? '{}') as Record<string, unknown>,
  };
}
