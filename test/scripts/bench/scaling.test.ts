// The scaling study's repetitions (scripts/bench/scaling.ts): E(N) within each repetition, the median row kept.
import t from 'tap';
import { combineRepetitions, scalingTable, type ScalingRow } from '../../../scripts/bench/scaling.ts';

const row = (series: string, workers: number, tokensPerSec: number, dir: string): ScalingRow => ({
  label: `${series}, ${workers}`, series, workers, batch: 12 * workers, msPerStep: (12 * workers * 64 * 1000) / tokensPerSec,
  computeMs: 100, tokensPerSec, outsideCompute: 0.1, shares: {}, dir,
});

t.test('each repetition\'s E(N) is against its own 1-worker run; the row is the repetition with the median E(N)', async (t) => {
  const reps = [
    [row('weak, synced', 1, 1000, 'a1'), row('weak, synced', 2, 1800, 'a2')], // E 0.90
    [row('weak, synced', 1, 800, 'b1'), row('weak, synced', 2, 1700, 'b2')], // E 1.0625 (a slow 1-worker run)
    [row('weak, synced', 1, 1010, 'c1'), row('weak, synced', 2, 1400, 'c2')], // E 0.693 (a slow 2-worker run)
  ].map((set, k) => [...set, row('weak, global', 1, 1000, `g1-${k}`), row('weak, global', 2, [1900, 1600, 1700][k]!, `g2-${k}`)]); // E 0.95, 0.80, 0.85
  const rows = combineRepetitions(reps);
  t.equal(rows.length, 4);
  t.same(rows[1]!.efficiencies!.map((e) => +e.toFixed(4)), [0.9, 1.0625, 0.6931]);
  t.equal(rows[1]!.dir, 'a2', 'the 2-worker row is the median repetition');
  t.equal(rows[0]!.dir, 'a1', 'and the 1-worker row is from the same repetition');
  t.match(scalingTable(rows), /\| 0\.900 \(0\.693–1\.063\) \|/, 'the table shows the median and the range');
  t.same([rows[2]!.dir, rows[3]!.dir], ['g1-2', 'g2-2'], 'another series picks its own median repetition (E 0.85)');
  t.same(combineRepetitions([reps[0]!]), reps[0], 'one repetition: the rows as measured');
});
