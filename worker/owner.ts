// An owner's tensors: their AdamW moments and SMI history, every chunk's share of a step reduced in chunk order, the one update step.
import * as tf from '@tensorflow/tfjs';
import type { BackendInfo } from '../shared/backend/backend.ts';
import type { TrainConfig } from '../shared/config.ts';
import { protocolError } from '../shared/errors.ts';
import { AdamW } from '../shared/model/adamw.ts';
import type { GPT } from '../shared/model/gpt.ts';
import type { OwnedState } from '../shared/net/protocol.ts';
import { weightedSum } from '../shared/parallel/reduce.ts';
import { blendedBound } from '../shared/parallel/share-bounds.ts';
import { SharedSpectralHistory, spectrumMagnitudes, tfGradientMagnitudes } from '../shared/parallel/spectral.ts';
import { SMI_RUNS } from '../shared/smi/runs.ts';
import { SpectralMomentum } from '../shared/smi/smi.ts';
import { applyUpdate, sumOfSquares, type Shard, type UpdatePart } from '../shared/train/step.ts';
import { readInto } from '../shared/wasm/heap.ts';
import { partFields, partRuns } from './wire.ts';
import { sumOfSquares64, sumOfSquaresInOrder } from '../shared/wasm/reduce.ts';

/**
 * The values an owner sends in parts, each part once it is updated, so that the next part's update hides the
 * previous part's transfer: a part is a run of consecutive owned tensors of at least this many values (the last
 * may be smaller). 2^20 values are 4 MB at fp32; the cpu preset's owners have one part, the paper preset's 5 (2
 * owners; 2–4 with 3 or 4).
 */
export const VALUES_PART = 1 << 20;

/** One part of an owner's new values (the owner's order) and the `first`/`more` fields its message carries (none: whole). */
export interface ValuesPart {
  values: Float32Array[];
  fields: { first?: number; more?: boolean };
}

/** A step's reduced gradient, kept from `reduced` to `commit`. */
interface Reduction {
  step: number;
  round: number;
  tensors: tf.Tensor[]; // global: ḡ of the owned tensors, for applyUpdate
  mean?: Float32Array[]; // synced: ḡ on the host
  magnitudes?: Float32Array[][]; // synced: each chunk's |FFT2(g_c)|, chunk order (this owner's, from the shares)
  weights?: number[]; // synced: n_c / B
}

interface Kept {
  tensors: Float32Array[];
  magnitudes?: Float32Array[];
  ss: number; // Σ g_c² over its tensors, float64, from the check on arrival
}

/**
 * The tensors this worker owns under the current plan. Their variables are the worker's own replica's (so the
 * owner's copy is updated in place); AdamW's moments and SMI's history live here only. Shares are checked
 * (count, lengths, finiteness) when they arrive, before they can reach a mean.
 */
export class OwnedTensors {
  readonly shard: Shard;
  readonly sizes: number[];
  private readonly shares = new Map<string, Map<number, Kept>>(); // `step/round` → chunk → its share
  readonly synced: boolean; // synced mode: each share's magnitudes computed here, one shared history, the mask applied once to κḡ
  readonly local: boolean; // local mode: a second round of shares, each holder's own clip → SMI of its chunk; AdamW alone here
  private readonly blends = new Map<string, Map<number, Float32Array[]>>(); // local: `step/round` → chunk → b_c
  private chunkSS: number[] = []; // the reduced step's Σ g_c² over the owned tensors, per chunk (the blends' bound)
  private blending = false; // this step's update takes the holders' blends: local mode, or synced after masks()
  private readonly meanBuf: Float32Array[];
  private readonly valuesBuf: Float32Array[];
  private reduction: Reduction | null = null;
  private readonly magnitudePool = new Map<number, Float32Array[]>(); // synced: per chunk index, the buffers of its last magnitudes
  private readonly sharePool = new Map<number, Float32Array[]>(); // per chunk index, the buffers its last decoded share went into
  private readonly spectral: BackendInfo['spectral'];
  /** the update's parts: runs [start, end) of consecutive owned tensors of at least `o.partValues` (VALUES_PART) values */
  readonly parts: [number, number][];

  constructor(model: GPT, readonly tensors: readonly number[], cfg: TrainConfig, backend: Pick<BackendInfo, 'spectral'>, state?: OwnedState, o: { partValues?: number } = {}) {
    const params = tensors.map((i) => model.params[i]!);
    this.spectral = backend.spectral;
    const opt = new AdamW({ beta1: cfg.beta1, beta2: cfg.beta2, eps: 1e-8, weightDecay: cfg.weight_decay });
    this.synced = cfg.smi !== 'baseline' && cfg.spectral === 'synced';
    this.local = cfg.smi !== 'baseline' && cfg.spectral === 'local';
    const run = SMI_RUNS[cfg.smi];
    const smi = cfg.smi === 'baseline' || this.synced || this.local ? null : new SpectralMomentum(run, backend.spectral, cfg.seed);
    const shared = this.synced ? new SharedSpectralHistory(run.beta, run.q) : null;
    this.shard = { names: params.map((p) => p.name), shapes: params.map((p) => p.shape), params: params.map((p) => p.variable), opt, smi, shared };
    this.sizes = params.map((p) => p.variable.size);
    this.meanBuf = this.sizes.map((n) => new Float32Array(n));
    this.valuesBuf = this.sizes.map((n) => new Float32Array(n));
    this.parts = partRuns(this.sizes, o.partValues ?? VALUES_PART);
    if (state) {
      const moments = state.m.flatMap((m, i) => [m, state.v[i]!]);
      opt.setState([...this.shard.params], { step: state.adamStep, moments });
      smi?.setState(state.smi);
      shared?.setState(state.smi, new Map(params.map((p) => [p.name, p.shape])));
    }
  }

  /**
   * Checks a chunk's share (tensor count, lengths, finiteness) and keeps it for its step and round; synced, with
   * its magnitudes |FFT2(g_c)|, computed here from the share's gradient (as the worker that computed g_c would:
   * tf.spectral on the TensorFlow backends, the host FFT otherwise), so that none travel and none need trusting.
   * Returns the milliseconds spent on the magnitudes (the owner's `spectral` phase; 0 outside synced mode).
   */
  accept(step: number, round: number, chunk: number, tensors: Float32Array[]): number {
    const sq = this.check(`share of chunk ${chunk}`, tensors, this.sizes);
    const key = `${step}/${round}`;
    let m = this.shares.get(key);
    if (!m) this.shares.set(key, (m = new Map()));
    if (m.has(chunk)) throw protocolError('E_UNEXPECTED', `a second share of chunk ${chunk} for step ${step} round ${round}`);
    const t0 = performance.now();
    const magnitudes = this.synced ? this.magnitudesOf(chunk, tensors) : undefined;
    m.set(chunk, { tensors, magnitudes, ss: sq.reduce((a, b) => a + b, 0) });
    return magnitudes ? performance.now() - t0 : 0;
  }

  /** |FFT2(g_c)| of a checked share, into its chunk's buffers of the last step unless a kept share or the reduction still holds them. */
  private magnitudesOf(chunk: number, tensors: Float32Array[]): Float32Array[] {
    let pool = this.magnitudePool.get(chunk);
    const held = (x: Float32Array[]) => this.reduction?.magnitudes?.includes(x) || [...this.shares.values()].some((m) => [...m.values()].some((k) => k.magnitudes === x));
    if (pool && held(pool)) pool = undefined;
    let out: Float32Array[];
    if (this.spectral === 'tf') {
      const ts = tensors.map((g, i) => tf.tensor(g, this.shard.shapes[i]!));
      try {
        out = tfGradientMagnitudes(ts, pool);
      } finally {
        tf.dispose(ts);
      }
    } else out = spectrumMagnitudes(tensors, this.shard.shapes, pool);
    this.magnitudePool.set(chunk, out);
    return out;
  }

  /**
   * Buffers (one per owned tensor) for chunk `chunk`'s share as this owner holds it (a bf16 share decoded, its own
   * part rounded or copied): those of the chunk's share of an earlier step, once no kept share still holds them (a
   * reduce lets go of its shares), else new ones. Fresh buffers of 20 MB cost more than the conversion into them.
   */
  shareBuffers(chunk: number): Float32Array[] {
    const pool = this.sharePool.get(chunk);
    const held = (x: Float32Array[]) => [...this.shares.values()].some((m) => [...m.values()].some((k) => x.some((b) => k.tensors.includes(b))));
    if (pool && !held(pool)) return pool;
    const out = this.sizes.map((n) => new Float32Array(n));
    this.sharePool.set(chunk, out);
    return out;
  }

  /** Count, lengths and finiteness of a share's arrays; their squared norms in float64. */
  private check(what: string, arrays: Float32Array[], sizes: number[]): number[] {
    if (arrays.length !== sizes.length) throw protocolError('E_SHAPE', `${what}: ${arrays.length} tensors, this owner holds ${sizes.length}`);
    return arrays.map((t, i) => {
      if (t.length !== sizes[i]) throw protocolError('E_SHAPE', `${what}: tensor ${this.tensors[i]} has ${t.length} values, expected ${sizes[i]}`);
      const s = sumOfSquares64(t);
      if (!Number.isFinite(s)) throw protocolError('E_NONFINITE', `${what}: tensor ${this.tensors[i]} holds NaN or Inf`);
      return s;
    });
  }

  /** Local mode: a chunk's blend b_c (count, lengths, finiteness now; its bound at the update, once κ is known). */
  acceptBlend(step: number, round: number, chunk: number, tensors: Float32Array[]): void {
    if (!this.local && !this.synced) throw protocolError('E_UNEXPECTED', `a blended share of chunk ${chunk} in global mode`);
    this.check(`blend of chunk ${chunk}`, tensors, this.sizes);
    const key = `${step}/${round}`;
    let m = this.blends.get(key);
    if (!m) this.blends.set(key, (m = new Map()));
    if (m.has(chunk)) throw protocolError('E_UNEXPECTED', `a second blend of chunk ${chunk} for step ${step} round ${round}`);
    m.set(chunk, tensors);
  }

  /**
   * Synced, --synced-blend workers: the step's shared history from the chunks' magnitudes and κ, and its masks
   * (committed with AdamW), for the holders to blend their own spectra with; the update then takes their blends.
   */
  masks(step: number, round: number, clip: number): { masks: Uint8Array[]; checksums: number[] } {
    const r = this.reduction;
    if (!this.synced || !r || r.step !== step || r.round !== round) throw protocolError('E_UNEXPECTED', `masks of step ${step} round ${round}, which this owner has not reduced`);
    this.blending = true;
    if (this.sizes.length === 0) return { masks: [], checksums: [] };
    const { masks, checksums } = this.shard.shared!.prepare(this.shard.names, this.shard.shapes, r.magnitudes!, r.weights!, clip, { perTensor: true });
    return { masks, checksums: checksums! };
  }

  /** Whether this step's update waits for the holders' blends. */
  get awaitsBlends(): boolean {
    return this.blending;
  }

  /**
   * The first blend of (step, round) over the bound its chunk's clipped gradient sets (‖b_c‖ ≤ 2κ‖g_c‖ over the owned
   * tensors: masking is a projection), or null when all stand; checked before any is averaged.
   */
  badBlend(step: number, round: number, clip: number): { chunk: number; message: string } | null {
    const got = this.blends.get(`${step}/${round}`);
    for (const [c, l] of [...(got ?? new Map<number, Float32Array[]>())].sort((a, b) => a[0] - b[0])) {
      const bn = Math.sqrt(l.reduce((a, t) => a + sumOfSquaresInOrder(t), 0));
      const bound = blendedBound(Math.sqrt(this.chunkSS[c] ?? 0), clip);
      if (!(bn <= bound)) return { chunk: c, message: `blend of chunk ${c}: norm ${bn.toExponential(3)} over the ${bound.toExponential(3)} its clipped gradient allows` };
    }
    return null;
  }

  /** Local mode: whether every chunk's blend of (step, round) is in. */
  blendsComplete(step: number, round: number, chunks: number): boolean {
    return (this.blends.get(`${step}/${round}`)?.size ?? 0) === chunks;
  }

  /** Whether every chunk's share of (step, round) is in. */
  complete(step: number, round: number, chunks: number): boolean {
    return (this.shares.get(`${step}/${round}`)?.size ?? 0) === chunks;
  }

  /**
   * The weighted mean ḡ = Σ (n_c / B) g_c in chunk-index order (the coordinator's reduce, to the bit), per owned
   * tensor Σ ḡ² as tf.sum(tf.square(ḡ)) in float32 (--local's norm; synced: in float64 on the host, the star's
   * synced norm), and per chunk Σ g_c² in float64 (the outlier rule).
   */
  reduce(step: number, round: number, sequences: readonly number[]): { ss: number[]; chunkSS: number[] } {
    const key = `${step}/${round}`;
    const got = this.shares.get(key)!;
    this.shares.delete(key);
    const B = sequences.reduce((a, b) => a + b, 0);
    const kept = sequences.map((_, c) => got.get(c)!);
    const lists = kept.map((k) => k.tensors);
    const chunkSS = kept.map((k) => k.ss);
    this.dropReduction();
    if (this.sizes.length === 0) {
      this.blending = this.local;
      this.reduction = { step, round, tensors: [] };
      return { ss: [], chunkSS };
    }
    const weights = sequences.map((n) => n / B);
    const mean = weightedSum(lists, weights, this.meanBuf);
    this.chunkSS = chunkSS;
    this.blending = this.local;
    if (this.local) {
      // the norm of ḡ for κ; the update waits for the holders' blends
      this.reduction = { step, round, tensors: [], weights };
      return { ss: mean.map((g) => sumOfSquares([g])), chunkSS }; // float64, index order: the star's synced norm
    }
    if (this.synced) {
      this.reduction = { step, round, tensors: [], mean, magnitudes: kept.map((k) => k.magnitudes!), weights };
      return { ss: mean.map((g) => sumOfSquares([g])), chunkSS }; // float64, index order: the star's synced norm
    }
    const tensors = mean.map((x, i) => tf.tensor(x, this.shard.shapes[i]!));
    this.reduction = { step, round, tensors };
    const ss = tensors.map((t) => {
      const s = tf.tidy(() => tf.sum(tf.square(t)));
      const v = s.dataSync()[0]!;
      s.dispose();
      return v;
    });
    return { ss, chunkSS };
  }

  /**
   * The one clip → SMI → AdamW step on the reduced gradient of (step, round) (synced: the shared history's one mask
   * applied to κḡ); returns the new values (buffers reused next step) and, synced, each tensor's mask checksum.
   */
  update(step: number, round: number, o: { clip: number; lr: number; alpha: number }): { values: Float32Array[]; maskChecksums?: number[] } {
    const parts = this.updateParts(step, round, o);
    for (let r = parts.next(); ; r = parts.next()) if (r.done) return { values: this.valuesBuf, ...r.value };
  }

  /**
   * update() in parts (this.parts), one per next(): each yields its tensors' new values, read into this owner's
   * buffers (reused next step), so that they can go out while the next part is updated; done, it returns the synced
   * mask checksums. Every tensor's arithmetic is the whole update's (applyUpdate in parts); AdamW counts the step
   * and the synced history is committed with the last part. A part's values stay valid until the next step.
   */
  *updateParts(step: number, round: number, o: { clip: number; lr: number; alpha: number }): Generator<ValuesPart, { maskChecksums?: number[] }, void> {
    const r = this.reduction;
    if (!r || r.step !== step || r.round !== round) throw protocolError('E_UNEXPECTED', `commit of step ${step} round ${round}, which this owner has not reduced`);
    this.reduction = null;
    if (this.sizes.length === 0) {
      yield { values: [], fields: {} };
      return this.synced ? { maskChecksums: [] } : {};
    }
    const opts = { clip: o.clip, step, lr: o.lr, alpha: o.alpha };
    let grads: readonly (tf.Tensor | Float32Array)[];
    let form: { blended: true } | { magnitudes: { spectra: Float32Array[][]; weights: number[]; perTensor: true } } | Record<string, never>;
    if (this.blending) {
      this.blending = false;
      const key = `${step}/${round}`;
      const got = this.blends.get(key)!;
      this.blends.delete(key);
      grads = weightedSum(r.weights!.map((_, c) => got.get(c)!), r.weights!, this.meanBuf);
      form = { blended: true };
    } else if (r.mean) {
      grads = r.mean;
      form = { magnitudes: { spectra: r.magnitudes!, weights: r.weights!, perTensor: true } };
    } else {
      grads = r.tensors; // applyUpdate disposes each part's tensors
      form = {};
    }
    const checksums: number[] = [];
    let chain: number | undefined;
    let handed = 0; // tensors whose gradients went to applyUpdate (which disposes them)
    try {
      for (const [k, [a, b]] of this.parts.entries()) {
        const indices = Array.from({ length: b - a }, (_, i) => a + i);
        const part: UpdatePart = { indices, last: k === this.parts.length - 1, chain };
        handed = b;
        const res = applyUpdate(this.shard, grads.slice(a, b) as tf.Tensor[] | Float32Array[], { ...opts, ...form }, part);
        if (res.maskChecksums) checksums.push(...res.maskChecksums);
        chain = this.shard.smi ? this.shard.smi.lastMaskChecksum : res.maskChecksum;
        for (const i of indices) readInto(this.shard.params[i]!, this.valuesBuf[i]!);
        yield { values: this.valuesBuf.slice(a, b), fields: partFields(this.parts, k) };
      }
    } finally {
      // an update left before its end (an error): the global form's remaining gradient tensors
      tf.dispose(r.tensors.slice(handed));
    }
    return 'magnitudes' in form ? { maskChecksums: checksums } : {};
  }

  /** The owned tensors' current values. */
  values(): Float32Array[] {
    this.shard.params.forEach((v, i) => readInto(v, this.valuesBuf[i]!));
    return this.valuesBuf;
  }

  /** AdamW's step and moments and SMI's histories of the owned tensors (copies). */
  state(): OwnedState {
    const { step, moments } = this.shard.opt.getState();
    return {
      adamStep: step,
      m: moments.filter((_, i) => i % 2 === 0),
      v: moments.filter((_, i) => i % 2 === 1),
      smi: this.shard.smi?.getState() ?? this.shard.shared?.getState() ?? [],
    };
  }

  /** Forgets the shares of steps and rounds before (step, round): a step started again, or one that went by. */
  forgetBefore(step: number, round: number): void {
    for (const map of [this.shares, this.blends] as Map<string, unknown>[]) {
      for (const k of [...map.keys()]) {
        const [s, r] = k.split('/').map(Number) as [number, number];
        if (s < step || (s === step && r < round)) map.delete(k);
      }
    }
  }

  /** Forgets a step in progress (a new plan). */
  reset(): void {
    this.shares.clear();
    this.blends.clear();
    this.dropReduction();
  }

  private dropReduction(): void {
    if (this.reduction) tf.dispose(this.reduction.tensors);
    this.reduction = null;
  }

  dispose(): void {
    this.reset();
    this.shard.opt.dispose();
    this.shard.smi?.dispose();
  }
}
