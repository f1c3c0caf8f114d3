// shared/model/dropout.ts: on-device dropout masks, the same bits on every backend, in distribution a fair coin per value.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { dropThreshold, dropoutMask, dropoutUniforms, dropoutUniformsHost, type DropoutSite } from '../../../shared/model/dropout.ts';
import { STREAM, hashKey } from '../../../shared/model/rng.ts';
import { loadStandIn } from '../../standin/load.ts';

const stepKey = (step: number, seed = 1337) => hashKey(seed, STREAM.dropout, step);
const M22 = 2 ** 22;

t.test('tensor ops on cpu, wasm and stand-in libtensorflow (tfjs cpu kernels, no real GPU) equal the host pass bit for bit', async (t) => {
  const standIn = await loadStandIn();
  const site: DropoutSite = { rows: 48, cols: 40 };
  const ids = [0, 7, 123456, 2 ** 31 + 5];
  const want = dropoutUniformsHost(stepKey(3), 4, ids, site);
  t.ok(want.every((u) => Number.isInteger(u) && u >= 0 && u < M22), 'integers in [0, 2^22)');
  for (const backend of ['cpu', 'wasm', 'tensorflow']) {
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const u = dropoutUniforms(stepKey(3), 4, ids, site);
    t.same(u.shape, [ids.length * site.rows, site.cols]);
    t.ok(Buffer.from((u.dataSync() as Float32Array).buffer).equals(Buffer.from(want.buffer)), `${backend}: the tensor-op uniforms are the host's bits`);
    u.dispose();
    const byTensor = dropoutMask(stepKey(3), 4, ids, site, 0.2, 'tensor');
    const byHost = dropoutMask(stepKey(3), 4, ids, site, 0.2, 'host');
    const auto = dropoutMask(stepKey(3), 4, ids, site, 0.2);
    t.same([...byTensor.dataSync()], [...byHost.dataSync()], `${backend}: masks by tensor ops = by the host pass`);
    t.same([...auto.dataSync()], [...byHost.dataSync()], `${backend}: and the one the backend picks`);
    t.same(new Set(byHost.dataSync()), new Set([0, 1.25]), 'values 0 and 1/(1 − rate)');
    tf.dispose([byTensor, byHost, auto]);
    t.equal(tf.memory().numTensors, before, `${backend}: no tensor left behind`);
  }
  t.ok((standIn.standIn.kernelCalls.get('Mod') ?? 0) > 0, 'the stand-in ran the tensor ops (Mod among them)');
  await tf.setBackend('cpu');
});

/** Keep decisions of one site as 0/1. */
const decisions = (key: number, site: number, ids: number[], s: DropoutSite, rate: number) => {
  const thr = dropThreshold(rate);
  return Uint8Array.from(dropoutUniformsHost(key, site, ids, s), (u) => +(u >= thr));
};

/** Pearson correlation of two 0/1 sequences. */
function corr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sa = 0, sb = 0, sab = 0;
  const n = a.length;
  for (let i = 0; i < n; i++) {
    sa += a[i]!;
    sb += b[i]!;
    sab += a[i]! * b[i]!;
  }
  const ma = sa / n, mb = sb / n;
  return (sab / n - ma * mb) / Math.sqrt(ma * (1 - ma) * mb * (1 - mb));
}

t.test('in distribution: keep rate within 5σ, uniform 22-bit values, no correlation between neighbours, sites, steps or sequences', async (t) => {
  const s: DropoutSite = { rows: 256, cols: 256 }; // e.g. attention of 4 heads × T = 64, T columns
  const ids = [11, 22, 33, 44];
  const n = ids.length * s.rows * s.cols;
  for (const rate of [0.1, 0.2, 0.5]) {
    const d = decisions(stepKey(1), 1, ids, s, rate);
    const kept = d.reduce((a, b) => a + b, 0) / n;
    const sigma = Math.sqrt((rate * (1 - rate)) / n);
    t.ok(Math.abs(kept - (1 - rate)) < 5 * sigma, `rate ${rate}: kept ${kept.toFixed(5)} (1 − rate ± ${(5 * sigma).toFixed(5)}, over ${n} values)`);
  }
  // χ² of the top 8 bits (df 255: mean 255, sd 22.6; the bound is 6 sd)
  const u = dropoutUniformsHost(stepKey(2), 3, ids, s);
  const bins = new Float64Array(256);
  for (const v of u) bins[v >>> 14]! += 1;
  const chi = bins.reduce((a, o) => a + (o - n / 256) ** 2 / (n / 256), 0);
  t.ok(chi < 255 + 6 * 22.6, `uniform: χ² of 256 bins ${chi.toFixed(1)} (df 255)`);

  const rate = 0.2;
  const d = decisions(stepKey(5), 2, ids, s, rate);
  const bound = (m: number) => 5 / Math.sqrt(m);
  const pairs = (f: (i: number) => number | null) => {
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < n; i++) {
      const j = f(i);
      if (j !== null) {
        a.push(d[i]!);
        b.push(d[j]!);
      }
    }
    return corr(a, b);
  };
  const { rows, cols } = s;
  const cases: [string, number][] = [
    ['next column', pairs((i) => (i % cols < cols - 1 ? i + 1 : null))],
    ['next row', pairs((i) => (Math.floor(i / cols) % rows < rows - 1 ? i + cols : null))],
    ['diagonal', pairs((i) => (i % cols < cols - 1 && Math.floor(i / cols) % rows < rows - 1 ? i + cols + 1 : null))],
    ['17 columns on', pairs((i) => (i % cols < cols - 17 ? i + 17 : null))],
    ['same position, next sequence', pairs((i) => (i < n - rows * cols ? i + rows * cols : null))],
  ];
  const other = (key: number, site: number) => corr(d, decisions(key, site, ids, s, rate));
  cases.push(['same position, next site', other(stepKey(5), 3)], ['same position, next step', other(stepKey(6), 2)], ['same position, another seed', other(stepKey(5, 1338), 2)]);
  for (const [what, r] of cases) t.ok(Math.abs(r) < bound(n / 2), `${what}: correlation ${r.toExponential(2)} (|r| < ${bound(n / 2).toExponential(1)})`);

  // the 16 patterns of 2×2 blocks of decisions, against their binomial probabilities (df 15: bound 15 + 6·√30)
  const counts = new Float64Array(16);
  let blocks = 0;
  for (let b = 0; b < ids.length; b++) {
    for (let r = 0; r + 1 < rows; r += 2) {
      for (let c = 0; c + 1 < cols; c += 2) {
        const o = (b * rows + r) * cols + c;
        counts[d[o]! | (d[o + 1]! << 1) | (d[o + cols]! << 2) | (d[o + cols + 1]! << 3)]! += 1;
        blocks++;
      }
    }
  }
  let chi4 = 0;
  for (let m = 0; m < 16; m++) {
    const k = [0, 1, 2, 3].filter((bit) => (m >> bit) & 1).length;
    const e = blocks * (1 - rate) ** k * rate ** (4 - k);
    chi4 += (counts[m]! - e) ** 2 / e;
  }
  t.ok(chi4 < 15 + 6 * Math.sqrt(30), `2×2 blocks: χ² ${chi4.toFixed(1)} (df 15)`);
});

t.test('reproducible per (seed, step): the same key gives the same mask, a sequence the same mask wherever it sits in the batch', async (t) => {
  const s: DropoutSite = { rows: 16, cols: 32 };
  const a = dropoutUniformsHost(stepKey(9), 1, [5, 6, 7], s);
  t.same(a, dropoutUniformsHost(stepKey(9), 1, [5, 6, 7], s), 'same (seed, step, site, sequences): same values');
  const size = s.rows * s.cols;
  const alone = dropoutUniformsHost(stepKey(9), 1, [6], s);
  t.same(a.subarray(size, 2 * size), alone, 'sequence 6 alone = sequence 6 second in a batch');
  t.same(dropoutUniformsHost(stepKey(9), 1, [7, 6], s).subarray(size), alone, 'and second of another batch');
  t.notSame(dropoutUniformsHost(stepKey(10), 1, [6], s), alone, 'another step: other values');
  t.notSame(dropoutUniformsHost(stepKey(9, 1), 1, [6], s), alone, 'another seed: other values');
  t.throws(() => dropoutMask(stepKey(9), 1, [6], s, 0), RangeError, 'rate 0 is no dropout: no mask');
});
