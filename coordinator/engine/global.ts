// Global spectral mode: the workers' gradients averaged, then the one update step on the mean, as one process would run it.
import * as tf from '@tensorflow/tfjs';
import { lrAt } from '../../shared/config.ts';
import { alphaAt } from '../../shared/smi/runs.ts';
import { applyUpdate, globalClip, sumOfSquares } from '../../shared/train/step.ts';
import { gatherGrads, type ModeStep } from './gather.ts';

/** One round (gradients), then clip → SMI → AdamW on ḡ as tensors: the arithmetic of --local, for any number of workers. */
export const globalStep: ModeStep = async (ctx, k, offsets, phases) => {
  const { cfg, shard } = ctx;
  const g = await gatherGrads(ctx, k, offsets, phases, false);
  const tensors = g.mean.map((x, i) => tf.tensor(x, shard.shapes[i]!));
  let clip: { norm: number; coef: number };
  try {
    clip = globalClip([sumOfSquares(tensors)], cfg.grad_clip, k, true);
  } catch (e) {
    tf.dispose(tensors);
    throw e;
  }
  phases.mark('reduce');
  const alpha = alphaAt(ctx.run, k, cfg.max_iters);
  const { ms } = applyUpdate(shard, tensors, { clip: clip.coef, step: k, lr: lrAt(cfg, k - 1), alpha });
  phases.split([['spectral', ms.spectral], ['optimizer', ms.optimizer]]);
  return { loss: g.loss, gradNorm: clip.norm, alpha, workers: g.workers, extra: { compute_ms: g.computeMs } };
};
