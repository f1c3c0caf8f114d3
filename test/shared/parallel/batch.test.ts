// How a step's batch is shared (shared/parallel/batch.ts): contiguous chunks, and the token windows a worker gets.
import t from 'tap';
import { splitBatch, tokenWindows, windowsToBatch } from '../../../shared/parallel/batch.ts';
import { makeBatch } from '../../../shared/model/data.ts';

t.test('splitBatch: contiguous chunks, sizes within one, nothing lost', async (t) => {
  const offsets = Array.from({ length: 13 }, (_, i) => 100 + i);
  for (const parts of [1, 2, 3, 5, 13, 20]) {
    const chunks = splitBatch(offsets, parts);
    t.same(chunks.flat(), offsets, `${parts} parts: the batch in order`);
    const sizes = chunks.map((c) => c.length);
    t.ok(Math.max(...sizes) - Math.min(...sizes) <= 1 && sizes.every((n) => n > 0), `${parts} parts: sizes ${sizes}`);
  }
});

t.test('tokenWindows → windowsToBatch gives the batch makeBatch makes', async (t) => {
  const data = Uint8Array.from({ length: 200 }, (_, i) => (i * 7) % 65);
  const offsets = [0, 17, 150];
  const { x, y, n } = windowsToBatch(tokenWindows(data, offsets, 16), 16);
  const ref = makeBatch(data, offsets, 16);
  t.equal(n, 3);
  t.same([...x], [...ref.x]);
  t.same([...y], [...ref.y]);
  t.throws(() => windowsToBatch(new Uint8Array(20), 16), RangeError, 'not a multiple of block + 1');
});
