// The evaluation under the owners' update: the workers compute its batches on their replicas; its figures are --local's.
import t from 'tap';
import { join } from 'node:path';
import { DATA, readLog, runScript, tempDir } from '../helpers.ts';

type Eval = { step: number; train_loss: number; val_loss: number; eval_workers?: number };
const evals = (dir: string) => readLog(dir).filter((r) => r.kind === 'eval') as Eval[];
const run = ['--preset', 'test', '--data', DATA, '--max-iters', '12', '--eval-interval', '6', '--smi', 'cosine', '--spectral', 'global'];

t.test('2 workers own the update: each evaluation is computed by both workers and equals --local\'s (to the bit before the first step, within 1e-5 after)', async (t) => {
  const dir = tempDir('smi-evaluate-');
  const local = join(dir, 'local');
  const owners = join(dir, 'owners');
  const star = join(dir, 'star');
  for (const [out, flags] of [[local, ['--local']], [owners, ['--workers', '2']], [star, ['--workers', '2', '--update', 'coordinator']]] as const) {
    const r = await runScript('train', [...run, ...flags, '--out', out]);
    t.equal(r.code, 0, r.stderr);
  }
  const ref = evals(local);
  const got = evals(owners);
  t.same(got.map((e) => e.step), [0, 6, 12], 'evaluations at 0, 6 and 12');
  t.ok(got.every((e) => e.eval_workers === 2), 'each one computed on the 2 workers (eval_workers: 2)');
  t.equal(got[0]!.val_loss, ref[0]!.val_loss, 'step 0 (the same initial weights): val loss to the bit');
  t.equal(got[0]!.train_loss, ref[0]!.train_loss, 'step 0: train loss to the bit');
  got.forEach((e, i) => {
    for (const k of ['train_loss', 'val_loss'] as const) t.ok(Math.abs(e[k] - ref[i]![k]) <= 1e-5 * ref[i]![k], `step ${e.step} ${k}: ${e[k]} vs --local ${ref[i]![k]}`);
  });
  t.ok(evals(star).every((e) => e.eval_workers === undefined), '--update coordinator: the coordinator evaluates (no eval_workers)');
});
