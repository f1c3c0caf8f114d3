// The reduce on host arrays (shared/parallel/reduce.ts): weighted sums in chunk order, into reused buffers.
import t from 'tap';
import { weightedSum } from '../../../shared/parallel/reduce.ts';

t.test('weightedSum: Σ w_c·a_c per tensor, into the buffers given', async (t) => {
  const a = [new Float32Array([1, 2]), new Float32Array([3])];
  const b = [new Float32Array([5, 6]), new Float32Array([7])];
  t.same(weightedSum([a, b], [0.25, 0.75]).map((x) => [...x]), [[4, 5], [6]]);
  const into = [new Float32Array(2), new Float32Array(1)];
  const out = weightedSum([a, b], [0.5, 0.5], into);
  t.equal(out[0], into[0], 'written into the given buffer');
  t.same([...into[0]!], [3, 4]);
  t.throws(() => weightedSum([a], [1], [new Float32Array(3), new Float32Array(1)]), RangeError, 'a buffer of the wrong size');
});
