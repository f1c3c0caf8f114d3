// The spectral modes' arithmetic (shared/parallel/spectral.ts): mask packing, and synced mode's two equivalent forms: each worker blending its own spectrum with the shared mask (two round
// trips) against the coordinator applying that mask once to the mean gradient (one round trip).
import t from 'tap';
import { randomFloats as rand } from '../../helpers.ts';
import { disposeFft, initFft } from '../../../shared/smi/fft.ts';
import { weightedSum } from '../../../shared/parallel/reduce.ts';
import {
  SharedSpectralHistory, blendWithMasks, localSpectra, packMask, packedMaskChecksum, spectrumMagnitudes, unpackMask,
} from '../../../shared/parallel/spectral.ts';
import { globalClip, sumOfSquares } from '../../../shared/train/step.ts';
import { SMI_RUNS, alphaAt } from '../../../shared/smi/runs.ts';

await initFft();
t.teardown(() => disposeFft());

/** The largest |a − b| relative to max |b| over a list of arrays. */
function relDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let num = 0;
  let den = 0;
  a.forEach((x, p) => x.forEach((v, i) => {
    num = Math.max(num, Math.abs(v - b[p]![i]!));
    den = Math.max(den, Math.abs(b[p]![i]!));
  }));
  return num / den;
}

t.test('packMask / unpackMask round trip, and a wrong length is refused', async (t) => {
  const H = rand(37, 4);
  const bits = packMask(H, 0.1);
  t.same([...unpackMask(bits, 37)], [...H].map((h) => (h >= 0.1 ? 1 : 0)));
  t.throws(() => unpackMask(bits, 45), RangeError);
});

t.test('synced: the mask applied once to the mean gradient equals the mean of the workers\' blends', async (t) => {
  const shapes = [[64, 96], [96], [33, 48], [16, 7]];
  const names = ['a', 'b', 'c', 'd'];
  const run = SMI_RUNS.cosine;
  const sizes = shapes.map((s) => s.reduce((x, y) => x * y, 1));
  const workers = new SharedSpectralHistory(run.beta, run.q); // two round trips
  const coordinator = new SharedSpectralHistory(run.beta, run.q); // one
  for (let step = 1; step <= 4; step++) {
    for (const split of [[5, 7], [12], [4, 4, 4]]) {
      const B = split.reduce((x, y) => x + y, 0);
      const w = split.map((n) => n / B);
      const chunks = split.map((_, c) => sizes.map((n, p) => rand(n, 1000 * step + 31 * c + p, 3e-2)));
      const spectra = chunks.map((g) => localSpectra(g, shapes));
      const mags = chunks.map((g) => spectrumMagnitudes(g, shapes));
      t.ok(mags.every((m, c) => m.every((x, p) => x.every((v, i) => Object.is(v, spectra[c]!.magnitudes[p]![i])))), 'spectrumMagnitudes = localSpectra\'s, bit for bit');
      const mean = weightedSum(chunks, w);
      const { coef } = globalClip([sumOfSquares(mean)], 0.5 * globalClip([sumOfSquares(mean)], 0, 1, false).norm, 1, false); // clipped to half its norm
      t.ok(coef < 1, 'the clip is active');
      const alpha = alphaAt(run, step, 10);
      const { masks, checksum } = workers.prepare(names, shapes, mags, w, coef);
      const twoRounds = weightedSum(spectra.map((s) => blendWithMasks(s.kept, masks, coef, alpha)), w);
      const oneRound = coordinator.blendMean(names, shapes, mean, mags, w, coef, alpha);
      t.equal(oneRound.checksum, checksum, `step ${step}, split ${split}: the same masks`);
      t.equal(oneRound.checksum, packedMaskChecksum(masks, shapes.map(sizesHalf)), 'and the packed masks say so');
      t.ok(relDiff(oneRound.tensors, twoRounds) < 1e-5, `step ${step}, split ${split}: blends agree (${relDiff(oneRound.tensors, twoRounds).toExponential(2)})`);
      if (split.length === 3) {
        workers.commit();
        coordinator.commit();
      }
    }
    const a = workers.getState();
    const b = coordinator.getState();
    t.ok(a.every((e, i) => e.name === b[i]!.name && e.data.every((v, j) => Object.is(v, b[i]!.data[j]))), `step ${step}: the committed histories are bit-equal`);
  }
});

/** Values in a [-1, last] view's half spectrum. */
function sizesHalf(shape: number[]): number {
  const cols = shape[shape.length - 1]!;
  const rows = shape.length === 1 ? 1 : shape.slice(0, -1).reduce((x, y) => x * y, 1);
  return rows * (Math.floor(cols / 2) + 1);
}
