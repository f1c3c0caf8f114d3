// The reproduction's statistics (scripts/reproduce/verdicts.ts): mean ± SEM, t critical values, verdicts, curve thresholds.
import t from 'tap';
import { judge, lateStageVariance, meanSem, stepsToTrainThreshold, stepsToValThreshold, tCritical95, trailingMean } from '../../../scripts/reproduce/verdicts.ts';

t.test('report statistics', async (t) => {
  t.same(meanSem([5]), { mean: 5, sem: null, n: 1 }, 'one value: no SEM');
  const ms = meanSem([1, 3]);
  t.equal(ms.mean, 2);
  t.equal(ms.sem, 1, 'SEM = sample sd / √n');
  t.equal(tCritical95(1), 12.706);
  t.ok(Math.abs(tCritical95(100) - 1.984) < 0.01, 'large df ≈ 1.98');
  // effect claims
  t.equal(judge([0.15, 0.16, 0.14], { kind: 'effect', paper: 0.15 }).verdict, 'reproduced');
  t.equal(judge([0.001, -0.002, 0.0005], { kind: 'effect', paper: 0.15 }).verdict, 'not reproduced', 'CI around 0 excludes +15%');
  t.equal(judge([0.2, -0.1], { kind: 'effect', paper: 0.15 }).verdict, 'inconclusive', 'n = 2, wide interval');
  t.equal(judge([0.008, 0.0085, 0.009], { kind: 'effect', paper: 0.15 }).verdict, 'direction only', 'a real but much smaller effect is not called reproduced');
  t.equal(judge([0.1], { kind: 'effect', paper: 0.15 }).verdict, 'inconclusive', 'n = 1');
  t.match(judge([0.1], { kind: 'effect', paper: 0.15 }).detail, /n = 1/);
  t.equal(judge([], { kind: 'effect', paper: 0.15 }).verdict, 'missing');
  t.equal(judge([Infinity, Infinity], { kind: 'effect', paper: -0.08 }).verdict, 'not reproduced', 'never reached a threshold the paper reaches sooner');
  t.equal(judge([NaN], { kind: 'effect', paper: 0.3 }).verdict, 'inconclusive', 'baseline 0: relative change undefined');
  // equivalence and bounds
  t.equal(judge([0.001, 0.002, 0.0015], { kind: 'equivalent', margin: 0.01 }).verdict, 'reproduced');
  t.equal(judge([0.05, 0.051, 0.049], { kind: 'equivalent', margin: 0.01 }).verdict, 'not reproduced');
  t.equal(judge([0.3, 0.31, 0.29], { kind: 'atMost', bound: 0.09 }).verdict, 'not reproduced');
  t.equal(judge([0.03, 0.031, 0.029], { kind: 'atMost', bound: 0.09 }).verdict, 'reproduced');
  // curves
  t.same(trailingMean([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5]);
  t.equal(stepsToTrainThreshold([5, 4, 3, 2, 1], 2.5, 2), 4, 'mean of steps 3–4 is 2.5');
  t.equal(stepsToTrainThreshold([5, 4], 1, 1), null);
  t.equal(stepsToValThreshold([{ step: 0, val_loss: 4 }, { step: 100, val_loss: 2 }], 3), 50, 'linear between evaluations');
  t.equal(stepsToValThreshold([{ step: 0, val_loss: 4 }], 3), null);
  const late = lateStageVariance([9, 9, 9, 9, 9, 9, 1, 2, 3, 4].map(Number), 0.4);
  t.equal(late.steps, 4);
  t.equal(late.raw, 1.25, 'variance of 1, 2, 3, 4');
  t.ok(late.detrended < 1e-12, 'a straight line has no detrended variance');
});
