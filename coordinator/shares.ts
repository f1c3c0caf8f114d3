// What the coordinator accepts as a worker's share: the shapes and finiteness of its tensors, and the bounds of share-bounds.ts.
import { protocolError } from '../shared/errors.ts';
import type { Blended, Grads } from '../shared/net/protocol.ts';
import { NORM_FLOOR, OUTLIER_FACTOR, blendedBound, magnitudeBound, normOf, squaredNorms, type ShareNorms } from '../shared/parallel/share-bounds.ts';
import type { Item } from './rounds.ts';

/** A chunk's accepted gradient: its weight (sequences), loss, tensors, norm, magnitudes (synced) and who computed it. */
export interface GradShare {
  n: number;
  loss: number;
  grads: Float32Array[];
  norm: number;
  magnitudes?: Float32Array[];
  holder: string;
  attempt: number; // the work request it answered: a blend names it as its source
  phases: Record<string, number>;
}

/** A chunk's accepted blend and the checksum of the masks the worker applied (absent when blended here). */
export interface BlendShare {
  tensors: Float32Array[];
  checksum?: number;
}

/** The model's tensor sizes and 2-D views, for the checks. */
export interface ModelShape {
  sizes: number[];
  views: [number, number][];
  halfSizes: number[];
}

/** Checks a result's tensors (count, lengths, finiteness) and returns their squared norms, summed in float64. */
export function checkTensors(what: string, tensors: Float32Array[], sizes: number[]): number[] {
  if (tensors.length !== sizes.length) throw protocolError('E_SHAPE', `${what}: ${tensors.length} tensors, the model has ${sizes.length}`);
  tensors.forEach((t, i) => {
    if (t.length !== sizes[i]) throw protocolError('E_SHAPE', `${what}: tensor ${i} has ${t.length} values, expected ${sizes[i]}`);
  });
  const sq = squaredNorms(tensors);
  const bad = sq.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw protocolError('E_NONFINITE', `${what}: tensor ${bad} holds NaN or Inf`);
  return sq;
}

/** A `grads` for a chunk of `offsets.length` sequences: loss, tensors and (synced) magnitudes within their bounds. */
export function acceptGrads(g: Grads, holder: string, sequences: number, shape: ModelShape, wantMagnitudes: boolean): GradShare {
  if (g.sequences !== sequences) throw protocolError('E_SHAPE', `grads for ${g.sequences} sequences, sent ${sequences}`);
  if (!Number.isFinite(g.loss)) throw protocolError('E_NONFINITE', `loss is ${g.loss}`);
  if (g.loss < 0) throw protocolError('E_OUTLIER', `loss is ${g.loss}; a cross-entropy is never negative`);
  const sq = checkTensors('grads', g.tensors, shape.sizes);
  if (wantMagnitudes) {
    if (!g.magnitudes) throw protocolError('E_SHAPE', 'synced mode needs magnitudes');
    checkTensors('magnitudes', g.magnitudes, shape.halfSizes).forEach((msq, p) => {
      const bound = magnitudeBound(sq[p]!, ...shape.views[p]!);
      if (!(Math.sqrt(msq) <= bound)) throw protocolError('E_OUTLIER', `magnitudes of tensor ${p}: norm ${Math.sqrt(msq).toExponential(3)}, over the ${bound.toExponential(3)} its gradient allows (Parseval)`);
    });
  }
  return { n: g.sequences, loss: g.loss, grads: g.tensors, norm: normOf(sq), magnitudes: g.magnitudes, holder, attempt: g.attempt, phases: g.phases };
}

/** A `blended` for chunk `index`: within κ‖g_c‖ of its gradient, with the shared masks' checksum when there are shared masks. */
export function acceptBlended(b: Blended, index: number, share: GradShare, coef: number, sizes: number[], checksum: number | undefined): BlendShare {
  const bn = normOf(checkTensors('blended', b.tensors, sizes));
  const bound = blendedBound(share.norm, coef);
  if (!(bn <= bound)) throw protocolError('E_OUTLIER', `blended norm ${bn.toExponential(3)} over the ${bound.toExponential(3)} its clipped gradient allows (chunk ${index})`);
  if (checksum !== undefined && b.maskChecksum !== checksum) {
    throw protocolError('E_UNEXPECTED', `worker applied masks with checksum ${b.maskChecksum}, the shared masks have ${checksum} (chunk ${index})`);
  }
  return { tensors: b.tensors, checksum: b.maskChecksum };
}

/** The step's shares judged together by the outlier rule; accepted norms join the history. */
export function vetNorms(norms: ShareNorms, items: Item<GradShare>[], step: number) {
  const ns = items.map((i) => i.result!.norm);
  const out = norms.check(ns);
  if (out.length === 0) norms.accept(ns);
  return out.map((o) => ({
    item: items[o.index]!,
    member: items[o.index]!.result!.holder,
    err: protocolError('E_OUTLIER', `gradient norm ${o.norm.toExponential(3)} at step ${step}: over ${o.bound.toExponential(3)} (${OUTLIER_FACTOR}× the recent median, at least ${NORM_FLOOR})${o.stepMedian === null ? '' : ` and over ${OUTLIER_FACTOR}× the other shares' median ${o.stepMedian.toExponential(3)}`}`),
  }));
}
