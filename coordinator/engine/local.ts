// Local spectral mode (an ablation): each worker filters its own chunk with its own history; the coordinator averages the blends.
import { lrAt } from '../../shared/config.ts';
import { alphaAt } from '../../shared/smi/runs.ts';
import { applyUpdate, globalClip, sumOfSquares } from '../../shared/train/step.ts';
import { gatherBlends, gatherGrads, type ModeStep } from './gather.ts';

/** Gradients, then κ back to every holder, which clips and runs SMI on its chunk (a second round); AdamW takes the mean blend. */
export const localStep: ModeStep = async (ctx, k, offsets, phases) => {
  const { cfg, shard } = ctx;
  const g = await gatherGrads(ctx, k, offsets, phases, false);
  const { norm, coef } = globalClip([sumOfSquares(g.mean)], cfg.grad_clip, k, false);
  phases.mark('reduce');
  const alpha = alphaAt(ctx.run, k, cfg.max_iters);
  // no orphan: a chunk's history lives on the worker that left, so the step starts again (RestartStep)
  const { blended } = await gatherBlends(ctx, k, g, phases, { coef, alpha });
  phases.mark('reduce');
  applyUpdate(shard, blended, { clip: coef, step: k, lr: lrAt(cfg, k - 1), alpha, blended: true });
  phases.mark('optimizer');
  return { loss: g.loss, gradNorm: norm, alpha, workers: g.workers, extra: { compute_ms: g.computeMs } };
};
