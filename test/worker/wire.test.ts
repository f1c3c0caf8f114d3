// worker/wire.ts's parts: how an owner splits its tensors into the parts it sends its values in, and how a worker places each part it takes in.
import t from 'tap';
import { ProtocolError } from '../../shared/errors.ts';
import { partEnd, partFields, partRuns } from '../../worker/wire.ts';

t.test('partRuns: consecutive runs of at least min values, the last what is left; partFields: none for one part', async (t) => {
  t.same(partRuns([3, 3, 3, 3, 1], 6), [[0, 2], [2, 4], [4, 5]], 'runs of ≥ 6 values, the rest last');
  t.same(partRuns([10, 1, 1], 6), [[0, 1], [1, 3]], 'a tensor over min alone');
  t.same(partRuns([1, 1], 6), [[0, 2]], 'all under min: one run');
  t.same(partRuns([], 6), [], 'no tensors: no runs');
  t.same(partRuns([2, 2, 2], 1), [[0, 1], [1, 2], [2, 3]], 'min 1: a run per tensor');
  const runs = partRuns([3, 3, 3, 3, 1], 6);
  t.same(runs.map((_, k) => partFields(runs, k)), [{ first: 0, more: true }, { first: 2, more: true }, { first: 4 }], 'first and more per part, none on the last');
  t.same(partFields([[0, 5]], 0), {}, 'one part: a whole message');
});

t.test('partEnd: the next part in order and of a fitting extent, or a whole message of the right count; else its code', async (t) => {
  const x = (n: number) => Array.from({ length: n }, () => new Float32Array(1));
  t.equal(partEnd('v', { tensors: x(4) }, 0, 4), 4, 'whole');
  t.equal(partEnd('v', { first: 0, more: true, tensors: x(2) }, 0, 4), 2, 'a first part');
  t.equal(partEnd('v', { first: 2, tensors: x(2) }, 2, 4), 4, 'the last part');
  t.equal(partEnd('v', { tensors: [] }, 0, 0), 0, 'an owner of nothing: a whole message of none');
  const code = (fn: () => unknown, c: string, what: string) => {
    try {
      fn();
      t.fail(`${what}: did not throw`);
    } catch (e) {
      t.ok(e instanceof ProtocolError && e.code === c, `${what}: ${c} (${(e as Error).message})`);
    }
  };
  code(() => partEnd('v', { tensors: x(3) }, 0, 4), 'E_SHAPE', 'whole, a tensor short');
  code(() => partEnd('v', { tensors: x(4) }, 2, 4), 'E_UNEXPECTED', 'whole after parts');
  code(() => partEnd('v', { first: 1, more: true, tensors: x(1) }, 0, 4), 'E_UNEXPECTED', 'out of order');
  code(() => partEnd('v', { first: 0, more: true, tensors: [] }, 0, 4), 'E_SHAPE', 'an empty part');
  code(() => partEnd('v', { first: 0, more: true, tensors: x(4) }, 0, 4), 'E_SHAPE', 'more announced after the last tensor');
  code(() => partEnd('v', { first: 2, tensors: x(1) }, 2, 4), 'E_SHAPE', 'a last part short of the end');
  code(() => partEnd('v', { first: 2, more: true, tensors: x(3) }, 2, 4), 'E_SHAPE', 'a part past the end');
});
