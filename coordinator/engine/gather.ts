// The rounds every spectral mode shares: the gradients of the batch's chunks (with their reduce), and the workers' blends.
import type { SyncedBlend, TrainConfig } from '../../shared/config.ts';
import type { Corpus } from '../../shared/model/data.ts';
import { splitBatch, tokenWindows } from '../../shared/parallel/batch.ts';
import { weightedSum } from '../../shared/parallel/reduce.ts';
import type { SmiRun } from '../../shared/smi/runs.ts';
import type { StepOutcome } from '../../shared/train/engine.ts';
import type { Shard } from '../../shared/train/step.ts';
import type { Blend, Blended, Grads } from '../../shared/net/protocol.ts';
import type { StepPhases } from '../phases.ts';
import type { Item } from '../rounds.ts';
import type { Server } from '../server.ts';
import type { ShareNorms } from '../../shared/parallel/share-bounds.ts';
import { acceptBlended, acceptGrads, vetNorms, type BlendShare, type GradShare, type ModelShape } from '../shares.ts';

/** What a mode's step works with: the server and its rounds, the run, the shard it updates and the buffers it reuses. */
export interface ModeContext {
  server: Server;
  cfg: TrainConfig;
  corpus: Corpus;
  run: SmiRun;
  shard: Shard;
  shape: ModelShape;
  norms: ShareNorms;
  meanBuf: Float32Array[]; // the mean gradient, reused from step to step
  syncedBlend: SyncedBlend;
}

/** One attempt at step k in a spectral mode; RestartStep makes the engine try it again. */
export type ModeStep = (ctx: ModeContext, k: number, offsets: number[], phases: StepPhases) => Promise<StepOutcome>;

/** The gradient round and its reduce: the mean ḡ = Σ (n_c / B) g_c in chunk order, the weighted loss. */
export interface Gathered {
  items: Item<GradShare>[];
  weights: number[]; // n_c / B per chunk
  loss: number;
  mean: Float32Array[];
  workers: number; // distinct workers that computed a chunk
  computeMs: number; // the slowest chunk's forward+backward: the step's compute on the critical path
}

export async function gatherGrads(ctx: ModeContext, k: number, offsets: number[], phases: StepPhases, wantMagnitudes: boolean): Promise<Gathered> {
  const { server, cfg, corpus } = ctx;
  const parts = Math.max(1, Math.min(server.members.size, offsets.length));
  const items: Item<GradShare>[] = splitBatch(offsets, parts).map((o, index) => ({ index, offsets: o }));
  await server.rounds.run<GradShare>(k, {
    kind: 'grads',
    items,
    send: (m, item, ids) => m.peer.send({ type: 'work', ...ids, offsets: item.offsets, tokens: tokenWindows(corpus.train, item.offsets, cfg.block_size), magnitudes: wantMagnitudes }),
    accept: (msg, m, item) => acceptGrads(msg as Grads, m.id, item.offsets.length, ctx.shape, wantMagnitudes),
    vet: (all) => vetNorms(ctx.norms, all, k),
  }, phases);
  const B = offsets.length;
  const weights = items.map((i) => i.result!.n / B);
  return {
    items,
    weights,
    loss: items.reduce((a, i, c) => a + weights[c]! * i.result!.loss, 0),
    mean: weightedSum(items.map((i) => i.result!.grads), weights, ctx.meanBuf),
    workers: new Set(items.map((i) => i.result!.holder)).size,
    computeMs: Math.max(...items.map((i) => i.result!.phases.compute ?? 0)),
  };
}

/**
 * The blend round (--synced-blend workers, local mode): each chunk's holder blends the gradient it kept, with κ
 * and α (and the shared masks in synced mode), and the blends are averaged with the chunks' weights. `orphan`
 * blends here a chunk whose holder left (synced); without it the step is restarted (local: the history is the
 * worker's own).
 */
export async function gatherBlends(
  ctx: ModeContext, k: number, g: Gathered, phases: StepPhases,
  o: { coef: number; alpha: number; masks?: Uint8Array[]; checksum?: number; orphan?: (share: GradShare) => Float32Array[] },
): Promise<{ blended: Float32Array[]; reported: number[] }> {
  const items: Item<BlendShare>[] = g.items.map((i) => ({ index: i.index, offsets: i.offsets, holder: i.result!.holder }));
  const share = (item: Item<BlendShare>) => g.items[item.index]!.result!;
  await ctx.server.rounds.run<BlendShare>(k, {
    kind: 'blended',
    items,
    // `source` names the work attempt whose gradient (and spectra) the holder kept for this chunk
    send: (m, item, ids) => m.peer.send({ type: 'blend', ...ids, source: share(item).attempt, clip: o.coef, alpha: o.alpha, ...(o.masks ? { masks: o.masks, maskChecksum: o.checksum } : {}) } satisfies Blend),
    accept: (msg, _m, item) => acceptBlended(msg as Blended, item.index, share(item), o.coef, ctx.shape.sizes, o.checksum),
    orphan: o.orphan ? (item) => ({ tensors: o.orphan!(share(item)) }) : undefined,
  }, phases);
  return {
    blended: weightedSum(items.map((i) => i.result!.tensors), g.weights),
    // the checksums the workers reported for the masks they applied (absent for chunks blended here)
    reported: items.map((i) => i.result!.checksum).filter((c): c is number => c !== undefined),
  };
}
