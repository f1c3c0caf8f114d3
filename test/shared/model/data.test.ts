// The corpus (shared/model/data.ts): the real file's split, bad files as DataErrors, the (seed, step) sampler.
import t from 'tap';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError } from '../../../shared/errors.ts';
import { buildCorpus, decode, encode, loadCorpus, makeBatch, trainOffsets } from '../../../shared/model/data.ts';

const DATA = process.env.SMI_DATA ?? 'data/shakespeare/input.txt';

t.test('the real corpus: 65 characters, 1,003,854 / 111,540 split', async (t) => {
  const c = loadCorpus(DATA);
  t.equal(c.chars.length, 65);
  t.equal(c.train.length, 1003854);
  t.equal(c.val.length, 111540);
  t.equal(decode(c.chars, encode(c.chars, 'First Citizen:')), 'First Citizen:');
});

t.test('missing, truncated and altered files are DataErrors naming both ways to get the data', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'smi-data-'));
  const check = (path: string, code: string) => {
    try {
      loadCorpus(path);
      t.fail('should throw');
    } catch (e) {
      t.ok(e instanceof DataError);
      t.equal((e as DataError).code, code);
      t.match((e as Error).message, /npm run prepare-data/);
      t.match((e as Error).message, /--data FILE/);
    }
  };
  check(join(dir, 'nope.txt'), 'E_DATA_MISSING');
  const text = readFileSync(DATA);
  writeFileSync(join(dir, 'short.txt'), text.subarray(0, 1000));
  check(join(dir, 'short.txt'), 'E_DATA_CORRUPT');
  const altered = Buffer.from(text);
  altered[500] = altered[500]! ^ 1;
  writeFileSync(join(dir, 'altered.txt'), altered);
  check(join(dir, 'altered.txt'), 'E_DATA_CORRUPT');
});

t.test('the batch sampler is a pure function of (seed, step)', async (t) => {
  const a = trainOffsets(1337, 7, 12, 64, 1003854);
  t.same(trainOffsets(1337, 7, 12, 64, 1003854), a, 'same seed and step, same offsets');
  t.not(trainOffsets(1337, 8, 12, 64, 1003854).join(), a.join(), 'another step, other offsets');
  t.not(trainOffsets(1338, 7, 12, 64, 1003854).join(), a.join(), 'another seed, other offsets');
  t.ok(a.every((o) => Number.isInteger(o) && o >= 0 && o < 1003854 - 64));
  const c = buildCorpus('abcdefghij'.repeat(10));
  const { x, y } = makeBatch(c.train, [0, 5], 4);
  t.same(Array.from(x), [0, 1, 2, 3, 5, 6, 7, 8]);
  t.same(Array.from(y), [1, 2, 3, 4, 6, 7, 8, 9], 'targets are inputs shifted by one');
});
