// worker/compute.ts WorkerCompute in this process, in each spectral mode: tf.memory().numTensors flat over many steps.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../shared/backend/backend.ts';
import { resolveConfig, type SpectralMode } from '../../shared/config.ts';
import { loadCorpus, trainOffsets } from '../../shared/model/data.ts';
import { tokenWindows } from '../../shared/parallel/batch.ts';
import { SharedSpectralHistory } from '../../shared/parallel/spectral.ts';
import { disposeFft } from '../../shared/smi/fft.ts';
import { SMI_RUNS, alphaAt } from '../../shared/smi/runs.ts';
import { WorkerCompute } from '../../worker/compute.ts';
import { DATA } from '../helpers.ts';

t.teardown(() => disposeFft());
const corpus = loadCorpus(DATA);
const STEPS = 12;

for (const backend of ['cpu', 'wasm'] as const) {
  for (const [mode, blend] of [['global', false], ['synced', false], ['synced', true], ['local', true]] as [SpectralMode, boolean][]) {
    const what = `${backend}, ${mode}${mode === 'synced' ? (blend ? ' (--synced-blend workers)' : ' (--synced-blend coordinator)') : ''}`;
    t.test(`${what}: a worker's gradients${blend ? ' and blends' : ''} over ${STEPS} steps leave numTensors flat`, async (t) => {
      const info = await initBackend(backend); // wasm: with the project's kernels
      const cfg = resolveConfig({ preset: 'test', smi: 'cosine', spectral: mode, overrides: { max_iters: STEPS } }, corpus.chars.length);
      const compute = new WorkerCompute(cfg, info);
      const shared = new SharedSpectralHistory(SMI_RUNS.cosine.beta, SMI_RUNS.cosine.q);
      const counts: number[] = [];
      let attempt = 0;
      for (let step = 1; step <= STEPS; step++) {
        const offsets = trainOffsets(cfg.seed, step, 4, cfg.block_size, corpus.train.length);
        const work = { type: 'work' as const, step, round: 0, attempt: attempt++, offsets, tokens: tokenWindows(corpus.train, offsets, cfg.block_size), magnitudes: mode === 'synced' };
        const r = compute.computeGrads(work);
        t.ok(Number.isFinite(r.loss), `step ${step}: a finite loss`);
        if (blend) {
          const alpha = alphaAt(SMI_RUNS.cosine, step, STEPS);
          const masks = mode === 'synced' ? shared.prepare(compute.names, compute.shapes, [r.magnitudes!], [1], 0.9) : undefined;
          shared.commit();
          const b = compute.blend({ type: 'blend', step, round: 0, attempt: attempt++, source: work.attempt, clip: 0.9, alpha, ...(masks ? { masks: masks.masks, maskChecksum: masks.checksum } : {}) });
          t.equal(b.tensors.length, compute.shapes.length, `step ${step}: a blend per tensor`);
          if (masks) t.equal(b.maskChecksum, masks.checksum, `step ${step}: the shared masks applied`);
        }
        counts.push(tf.memory().numTensors);
      }
      t.equal(new Set(counts.slice(1)).size, 1, `numTensors flat after the first step: ${counts.join(' ')}`);
      compute.dispose();
    });
  }
}
