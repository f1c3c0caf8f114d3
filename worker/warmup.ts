// One forward+backward and one spectral step on a small model when a worker starts, before it says hello.
//
// On a GPU whose architecture libtensorflow 2.9.1 has no kernel binaries for (Hopper, Blackwell), CUDA compiles
// each kernel from PTX on its first use (TensorFlow warns this can take 30 minutes; CUDA_CACHE_MAXSIZE decides
// whether the results survive to the next start, README "Backends"). Doing that here, before the worker joins,
// keeps it out of the first step, which the coordinator would otherwise time out. Sizes differ from the run's
// (the worker learns the model only in `welcome`), so kernels chosen by size may still compile in the first step:
// the coordinator gives a worker's first result --first-step-timeout.
import * as tf from '@tensorflow/tfjs';
import type { BackendInfo } from '../shared/backend/backend.ts';
import { resolveConfig } from '../shared/config.ts';
import { GPT } from '../shared/model/gpt.ts';
import { spectrumMagnitudes, tfGradientMagnitudes } from '../shared/parallel/spectral.ts';
import { Rng, STREAM } from '../shared/model/rng.ts';
import { SMI_RUNS, alphaAt } from '../shared/smi/runs.ts';
import { SpectralMomentum } from '../shared/smi/smi.ts';

/** A fixed batch of random token ids for a small probe step (seeded: the same on every machine). */
export function probeBatch(cfg: { batch_size: number; block_size: number; vocab_size: number }): { x: Int32Array; y: Int32Array } {
  const rng = new Rng(0, STREAM.train);
  const n = cfg.batch_size * cfg.block_size;
  const x = Int32Array.from({ length: n }, () => rng.int(cfg.vocab_size));
  const y = Int32Array.from({ length: n }, () => rng.int(cfg.vocab_size));
  return { x, y };
}

/** Runs the kernels of a training step once (dropout, forward, backward, the spectra, an SMI step); returns ms. */
export function warmUp(backend: BackendInfo): number {
  const t0 = performance.now();
  const cfg = resolveConfig({ preset: 'test', overrides: { dropout: 0.1, batch_size: 2 } });
  const model = new GPT(cfg, 1);
  const smi = new SpectralMomentum(SMI_RUNS.cosine, backend.spectral);
  try {
    const { x, y } = probeBatch(cfg);
    const { grads } = model.gradients(x, y, cfg.batch_size, [cfg.seed, STREAM.dropout, 0]);
    try {
      // synced mode's magnitudes, the way computeGrads takes them on this backend
      if (backend.spectral === 'tf') tfGradientMagnitudes(grads);
      else spectrumMagnitudes(grads.map((g) => g.dataSync() as Float32Array), grads.map((g) => g.shape));
      tf.dispose(smi.apply(grads.map((tensor, i) => ({ name: model.params[i]!.name, tensor })), 1, alphaAt(SMI_RUNS.cosine, 1, cfg.max_iters)).map((n) => n.tensor)); // local mode's (and a GPU coordinator's) forward and inverse transforms
    } finally {
      tf.dispose(grads);
    }
  } finally {
    smi.dispose();
    model.dispose();
  }
  return performance.now() - t0;
}
