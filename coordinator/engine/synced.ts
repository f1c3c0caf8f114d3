// Synced spectral mode: one shared history of the workers' magnitudes and one mask, applied once at the coordinator or by each worker.
import { lrAt } from '../../shared/config.ts';
import { blendWithMasks, localSpectra } from '../../shared/parallel/spectral.ts';
import { alphaAt } from '../../shared/smi/runs.ts';
import { applyUpdate, globalClip, sumOfSquares } from '../../shared/train/step.ts';
import { gatherBlends, gatherGrads, type ModeStep } from './gather.ts';

/**
 * Gradients and magnitude spectra in one round; κ from the float64 norm of ḡ. `--synced-blend coordinator`: the
 * update step averages κ·M_c into the shared history and applies its mask once, to κḡ. `--synced-blend workers`:
 * the masks go back to every worker, which blends its own spectrum (a second round), and AdamW takes the mean blend.
 */
export const syncedStep: ModeStep = async (ctx, k, offsets, phases) => {
  const { cfg, shard } = ctx;
  const shared = shard.shared!;
  const g = await gatherGrads(ctx, k, offsets, phases, true);
  const { norm, coef } = globalClip([sumOfSquares(g.mean)], cfg.grad_clip, k, false);
  phases.mark('reduce');
  const alpha = alphaAt(ctx.run, k, cfg.max_iters);
  const lr = lrAt(cfg, k - 1);
  const spectra = g.items.map((i) => i.result!.magnitudes!);
  const base = { loss: g.loss, gradNorm: norm, alpha, workers: g.workers };
  if (ctx.syncedBlend === 'coordinator') {
    const { maskChecksum, ms } = applyUpdate(shard, g.mean, { clip: coef, step: k, lr, alpha, magnitudes: { spectra, weights: g.weights } });
    phases.split([['spectral', ms.spectral], ['optimizer', ms.optimizer]]);
    return { ...base, extra: { compute_ms: g.computeMs, mask_checksum: maskChecksum } };
  }
  const { masks, checksum } = shared.prepare(shard.names, shard.shapes, spectra, g.weights, coef);
  phases.mark('spectral');
  const { blended, reported } = await gatherBlends(ctx, k, g, phases, {
    coef, alpha, masks, checksum,
    // a holder that left is replaced by the same arithmetic here, from the gradient it sent
    orphan: (share) => blendWithMasks(localSpectra(share.grads, shard.shapes).kept, masks, coef, alpha),
  });
  phases.mark('reduce');
  applyUpdate(shard, blended, { clip: coef, step: k, lr, alpha, blended: true });
  phases.mark('optimizer');
  return { ...base, extra: { compute_ms: g.computeMs, mask_checksum: checksum, mask_checksums: reported } };
};
