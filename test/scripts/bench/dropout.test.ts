// scripts/bench/dropout.ts: the three variants run side by side and are reported.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { benchDropout, dropoutTable } from '../../../scripts/bench/dropout.ts';
import { resolveConfig } from '../../../shared/config.ts';
import { loadCorpus } from '../../../shared/model/data.ts';
import { DATA } from '../../helpers.ts';

t.test('bench dropout: every variant measured each step, a ratio line, no tensor left', async (t) => {
  await tf.setBackend('cpu');
  const corpus = loadCorpus(DATA);
  const cfg = resolveConfig({ preset: 'test', overrides: { dropout: 0.2 } }, corpus.chars.length);
  const before = tf.memory().numTensors;
  const rows = benchDropout(cfg, corpus, 3, 1);
  t.equal(tf.memory().numTensors, before, 'numTensors as before');
  t.same(rows.map((r) => r.variant), ['no dropout', 'host-drawn (tf.dropout)', 'on-device hash']);
  t.ok(rows.every((r) => r.stepMs.length === 3 && r.maskMs.length === 3 && r.stepMs.every((m) => m > 0)), '3 measured steps each');
  t.match(dropoutTable(rows), /\| on-device hash \| [\d.]+ \| [\d.]+ \|\n\non-device hash \/ host-drawn step time: median of per-step ratios [\d.]+ \(range [\d.]+–[\d.]+, 3 steps\)/);
});
