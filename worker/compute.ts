// A worker's model side, apart from its connection so that it survives reconnects: gradients, spectra and blends of its chunks.
import * as tf from '@tensorflow/tfjs';
import type { BackendInfo } from '../shared/backend/backend.ts';
import { microBatchFor, type TrainConfig } from '../shared/config.ts';
import { GPT } from '../shared/model/gpt.ts';
import { STREAM } from '../shared/model/rng.ts';
import { protocolError } from '../shared/errors.ts';
import type { Blend, EvalBatch, Work } from '../shared/net/protocol.ts';
import { windowsToBatch } from '../shared/parallel/batch.ts';
import { blendWithMasks, localSpectra, packedMaskChecksum, spectrumMagnitudes, tfGradientMagnitudes } from '../shared/parallel/spectral.ts';
import { SMI_RUNS } from '../shared/smi/runs.ts';
import { SpectralMomentum } from '../shared/smi/smi.ts';
import { clipAndFilter } from '../shared/train/step.ts';
import { readInto } from '../shared/wasm/heap.ts';

/** The model-side state of a worker, separate from the connection so it survives reconnects. */
export class WorkerCompute {
  readonly model: GPT;
  readonly shapes: number[][];
  readonly names: string[];
  private readonly localSmi: SpectralMomentum | null;
  private keptStep = -1;
  private raw = new Map<number, Float32Array[]>(); // gradients by attempt, current step only, for a `blend`
  // Host buffers reused from step to step (fresh multi-MB arrays each step keep V8's collector busy, on the
  // cores the other workers compute on). A result's buffers are free again once it is sent, as the next
  // message is handled only then; the gradients are also free once no `raw` entry holds them.
  private gradPool: Float32Array[] | null = null;
  private magnitudePool: Float32Array[] | null = null;
  private smiSnapshot: { step: number; round: number; state: ReturnType<SpectralMomentum['getState']> } | null = null;
  weightsStep = -1;
  private readonly microBatch: number;
  private readonly spectral: BackendInfo['spectral'];

  constructor(readonly cfg: TrainConfig, backend: BackendInfo) {
    this.microBatch = microBatchFor(cfg, backend.name);
    this.spectral = backend.spectral;
    this.model = new GPT(cfg, cfg.seed);
    this.shapes = this.model.params.map((p) => p.shape);
    this.names = this.model.params.map((p) => p.name);
    this.localSmi = cfg.spectral === 'local' && cfg.smi !== 'baseline' ? new SpectralMomentum(SMI_RUNS[cfg.smi], backend.spectral, cfg.seed) : null;
  }

  setWeights(step: number, tensors: Float32Array[]): void {
    this.model.assignAll(tensors);
    this.weightsStep = step;
  }

  /** Each evaluation batch's mean loss on this replica, as the one-process evaluation computes it (shared/train/state.ts). */
  evaluate(batches: readonly EvalBatch[]): number[] {
    return batches.map((b) => {
      const { x, y, n } = windowsToBatch(b.tokens, this.cfg.block_size);
      if (n !== this.cfg.batch_size) throw protocolError('E_SHAPE', `evaluation batch ${b.split} ${b.iter}: ${n} sequences, the run's batch is ${this.cfg.batch_size}`);
      return this.model.loss(x, y, n, this.microBatch);
    });
  }

  /**
   * Forward + backward on the windows; gradients (and magnitudes when `w.magnitudes`: the star's synced mode) as
   * host arrays. `keep`: hold the gradients for a later `blend` of this step (the owners' synced mode, which may
   * blend here under --synced-blend workers) as the star's synced and local modes do.
   */
  computeGrads(w: Work, o: { keep?: boolean } = {}): { loss: number; grads: Float32Array[]; magnitudes?: Float32Array[]; phases: Record<string, number> } {
    if (w.step !== this.keptStep) {
      this.raw.clear();
      this.keptStep = w.step;
    }
    const t0 = performance.now();
    const { x, y, n } = windowsToBatch(w.tokens, this.cfg.block_size);
    const { loss, grads } = this.model.gradients(x, y, n, [this.cfg.seed, STREAM.dropout, w.step], this.microBatch, w.offsets);
    const pool = this.gradPool && ![...this.raw.values()].includes(this.gradPool) ? this.gradPool : null;
    const host = grads.map((g, i) => readInto(g, pool?.[i] ?? new Float32Array(g.size)));
    this.gradPool ??= host;
    const t1 = performance.now();
    // on TensorFlow the spectra come from tf.spectral where the gradients are, not from the host copies
    const tfMags = w.magnitudes && this.spectral === 'tf' ? tfGradientMagnitudes(grads, this.magnitudePool ?? undefined) : undefined;
    tf.dispose(grads);
    const phases: Record<string, number> = { compute: t1 - t0 };
    // kept for a `blend` (synced with --synced-blend workers, local mode); held by reference, no copy
    if (w.magnitudes || o.keep || this.localSmi) this.raw.set(w.attempt, host);
    if (w.magnitudes) {
      const magnitudes = tfMags ?? spectrumMagnitudes(host, this.shapes, this.magnitudePool ?? undefined);
      this.magnitudePool ??= magnitudes;
      phases.spectral = performance.now() - t1;
      return { loss, grads: host, magnitudes, phases };
    }
    return { loss, grads: host, phases };
  }

  /** Blends a chunk computed earlier this step: with the shared masks (synced) or this worker's own history (local). */
  blend(b: Blend): { tensors: Float32Array[]; maskChecksum: number; phases: Record<string, number> } {
    const t0 = performance.now();
    if (b.step !== this.keptStep) throw new Error(`blend for step ${b.step}, but this worker computed step ${this.keptStep}`);
    if (b.masks) {
      const grads = this.raw.get(b.source);
      if (!grads) throw new Error(`blend of work ${b.source}, which this worker did not compute`);
      const { kept } = localSpectra(grads, this.shapes); // the forward transform again, not kept from `work`: the default one-round mode never blends here
      const tensors = blendWithMasks(kept, b.masks, b.clip, b.alpha);
      // the checksum of the masks this worker actually applied, for the coordinator to compare across workers
      const sizes = kept.spectra.map((s) => s.rows * s.half);
      return { tensors, maskChecksum: packedMaskChecksum(b.masks, sizes), phases: { spectral: performance.now() - t0 } };
    }
    const raw = this.raw.get(b.source);
    if (!raw || !this.localSmi) throw new Error(`blend of work ${b.source}, which this worker did not compute`);
    // A step redone after a failure (a higher round) starts again from the history before the step.
    if (this.smiSnapshot?.step === b.step && this.smiSnapshot.round < b.round) this.localSmi.setState(this.smiSnapshot.state);
    if (this.smiSnapshot?.step !== b.step) this.smiSnapshot = { step: b.step, round: b.round, state: this.localSmi.getState() };
    this.smiSnapshot.round = b.round;
    // the one clip → SMI of shared/train/step.ts, on this worker's own history
    const grads = raw.map((g, i) => tf.tensor(g, this.shapes[i]!));
    const out = clipAndFilter(this.localSmi, this.names, grads, b.clip, b.step, b.alpha);
    const tensors = out.map((o) => o.dataSync() as Float32Array);
    tf.dispose([...grads, ...out]);
    return { tensors, maskChecksum: this.localSmi.lastMaskChecksum, phases: { spectral: performance.now() - t0 } };
  }

  dispose(): void {
    this.model.dispose();
    this.localSmi?.dispose();
  }
}
