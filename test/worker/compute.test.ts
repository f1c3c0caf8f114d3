// worker/compute.ts WorkerCompute and worker/warmup.ts on stand-in libtensorflow (tfjs cpu kernels, no real GPU):
// synced mode's magnitudes come from tf.spectral where the gradients are, not from the host FFT.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import type { BackendInfo } from '../../shared/backend/backend.ts';
import { resolveConfig } from '../../shared/config.ts';
import { loadCorpus } from '../../shared/model/data.ts';
import { initFft } from '../../shared/smi/fft.ts';
import { tokenWindows } from '../../shared/parallel/batch.ts';
import { spectrumMagnitudes } from '../../shared/parallel/spectral.ts';
import { view2d } from '../../shared/smi/runs.ts';
import { WorkerCompute } from '../../worker/compute.ts';
import { warmUp } from '../../worker/warmup.ts';
import { DATA } from '../helpers.ts';
import { loadStandIn } from '../standin/load.ts';

const gpuInfo: BackendInfo = { name: 'tensorflow-gpu', reason: 'test', device: 'stand-in', spectral: 'tf', gelu: 'erf' };

t.test('stand-in libtensorflow (tfjs cpu kernels), no real GPU: a synced worker takes its spectra with tf.spectral, and needs no host FFT', async (t) => {
  // This process has not run initFft(): before issue 16 the worker's host FFT threw "FFT not initialised" here.
  const standIn = await loadStandIn();
  t.equal(tf.getBackend(), 'tensorflow');
  const corpus = loadCorpus(DATA);
  const cfg = resolveConfig({ preset: 'test', smi: 'cosine' }, corpus.chars.length);
  const compute = new WorkerCompute(cfg, gpuInfo);
  const offsets = [0, 1000, 2000, 3000];
  const work = { type: 'work' as const, step: 1, round: 0, attempt: 0, offsets, tokens: tokenWindows(corpus.train, offsets, cfg.block_size), magnitudes: true };
  const ffts = () => standIn.standIn.kernelCalls.get('FFT') ?? 0;
  const before = ffts();
  const r = compute.computeGrads(work);
  const matrices = compute.shapes.filter((s) => view2d(s)[0] > 1).length;
  t.ok(ffts() - before >= 2 * matrices, `tf.spectral ran: ${ffts() - before} FFT kernel calls for ${compute.shapes.length} gradients (${matrices} with more than one row: a row and a column transform each)`);
  t.same(r.magnitudes!.map((m) => m.length), compute.shapes.map((s) => {
    const [rows, cols] = view2d(s);
    return rows * (Math.floor(cols / 2) + 1);
  }), 'one [half, rows] magnitude spectrum per gradient');

  await initFft();
  const host = spectrumMagnitudes(r.grads, compute.shapes);
  let worst = 0;
  host.forEach((h, p) => {
    const scale = h.reduce((a, v) => Math.max(a, v), 0);
    for (let i = 0; i < h.length; i++) worst = Math.max(worst, Math.abs(h[i]! - r.magnitudes![p]![i]!) / scale);
  });
  t.ok(worst < 1e-5, `the host FFT's magnitudes of the same gradients agree to float32 rounding (worst ${worst.toExponential(2)} of each spectrum's largest bin)`);
  compute.dispose();
});

t.test('stand-in libtensorflow (tfjs cpu kernels), no real GPU: the warm-up runs a dropout forward+backward and the tf spectral steps, leaving no tensor', async (t) => {
  const standIn = await loadStandIn();
  const calls = (k: string) => standIn.standIn.kernelCalls.get(k) ?? 0;
  const before = { fft: calls('FFT'), ifft: calls('IFFT'), mod: calls('Mod'), segments: calls('UnsortedSegmentSum'), tensors: tf.memory().numTensors };
  const ms = warmUp(gpuInfo);
  t.ok(ms > 0);
  t.ok(calls('FFT') > before.fft && calls('IFFT') > before.ifft, 'forward and inverse transforms');
  t.ok(calls('Mod') > before.mod, 'the dropout hash as tensor ops');
  t.ok(calls('UnsortedSegmentSum') > before.segments, 'the backward pass (the embedding gradient)');
  t.equal(tf.memory().numTensors, before.tensors, 'numTensors as before');
});
