// The owner plan (shared/parallel/plan.ts): every tensor one owner, balanced by size, the same plan from the same input.
import t from 'tap';
import fc from 'fast-check';
import { planOwners } from '../../../shared/parallel/plan.ts';

t.test('planOwners: greedy largest-first to the least loaded owner, ties by tensor index, then the fewest tensors and join order', async (t) => {
  const p = planOwners([10, 40, 40, 5, 20], ['a', 'b', 'c'], 3);
  // 40 (t1) → a, 40 (t2) → b, 20 (t4) → c, 10 (t0) → c (20 < 40), 5 (t3) → c? c has 30 < 40: c
  t.same(p.ownerOf, [2, 0, 1, 2, 2]);
  t.same(p.tensorsOf, [[1], [2], [0, 3, 4]]);
  t.same(p.load, [40, 40, 35]);
  t.equal(p.version, 3);
  t.same(planOwners([7, 7, 7], ['x']).tensorsOf, [[0, 1, 2]], 'one owner holds everything');
  t.same(planOwners([3], ['x', 'y', 'z']).tensorsOf, [[0], [], []], 'more owners than tensors: some own none');
  t.same(planOwners([0, 0], ['x', 'y']).ownerOf, [0, 1], 'equal loads: the owner with fewer tensors, then join order');
  t.throws(() => planOwners([1], []), RangeError, 'no owner');
  t.throws(() => planOwners([1], ['a', 'a']), RangeError, 'an owner twice');
  t.throws(() => planOwners([1.5], ['a']), RangeError, 'a fractional size');
});

t.test('planOwners (property): a partition of the tensors, deterministic, max load − min load ≤ the largest tensor', async (t) => {
  fc.assert(fc.property(
    fc.array(fc.integer({ min: 0, max: 1e6 }), { minLength: 1, maxLength: 60 }),
    fc.integer({ min: 1, max: 9 }),
    (sizes, n) => {
      const owners = Array.from({ length: n }, (_, i) => `w${i}`);
      const p = planOwners(sizes, owners);
      const all = p.tensorsOf.flat().sort((a, b) => a - b);
      if (all.join() !== sizes.map((_, i) => i).join()) return false;
      if (!p.tensorsOf.every((ts, o) => ts.every((x) => p.ownerOf[x] === o) && ts.every((x, i) => i === 0 || ts[i - 1]! < x))) return false;
      if (!p.load.every((l, o) => l === p.tensorsOf[o]!.reduce((a, x) => a + sizes[x]!, 0))) return false;
      if (Math.max(...p.load) - Math.min(...p.load) > Math.max(...sizes)) return false;
      return JSON.stringify(planOwners([...sizes], [...owners])) === JSON.stringify(p);
    },
  ));
  t.pass('held for every generated case');
});
