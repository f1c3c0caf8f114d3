// The owners' step under faults: a worker SIGKILLs itself (fault injection, SMI_FAULT) at each point of a step; the run completes with the undisturbed weights.
import t from 'tap';
import { join } from 'node:path';
import { DATA, maxRelativeDiff, readLog, runScript, startScript, tempDir, weights } from '../helpers.ts';

const steps = (dir: string) => readLog(dir).filter((r) => r.kind === 'step');
const run = ['--preset', 'test', '--data', DATA, '--max-iters', '16', '--eval-interval', '8', '--smi', 'cosine', '--spectral', 'global'];

t.test('global mode, 3 workers that each own tensors: one killed at each point of the owners\' step (SMI_FAULT fault injection) → the run ends as --local', async (t) => {
  const dir = tempDir('smi-owner-faults-');
  const local = join(dir, 'local');
  const r = await runScript('train', ['--local', ...run, '--out', local]);
  t.equal(r.code, 0, r.stderr);
  const ref = weights(local);
  const evalsOf = (d: string) => readLog(d).filter((x) => x.kind === 'eval') as { step: number; val_loss: number; eval_workers?: number }[];
  const refEvals = evalsOf(local);
  // commits every 4 steps: a kill at step 6 replays step 5; gather: the commit at step 8; evaluate: the workers' evaluation at step 8
  for (const [point, at] of [['before-shares', 6], ['after-share', 6], ['after-reduce', 6], ['mid-values', 6], ['gather', 8], ['evaluate', 8]] as const) {
    t.test(`SMI_FAULT=${point}:${at}`, async (t) => {
      const out = join(dir, point);
      const coord = startScript('coordinator/main', [...run, '--out', out, '--port', '0', '--token', 'tok', '--min-workers', '3', '--step-timeout', '20000', '--commit-interval', '4']);
      const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
      const url = `ws://127.0.0.1:${port}`;
      const ws = [0, 1, 2].map((i) => startScript('worker/main', ['--connect', url, '--token', 'tok'], { env: i === 2 ? { SMI_FAULT: `${point}:${at}` } : {} }));
      t.equal(await coord.exited, 0, 'the coordinator finishes the run', { output: coord.output() });
      t.equal(await ws[0]!.exited, 0, 'the survivors end cleanly');
      t.equal(await ws[1]!.exited, 0);
      t.not(await ws[2]!.exited, 0, 'the faulty worker died');
      t.match(coord.output(), /an owner left: rolling back to the commit of step \d+ and replaying|owner \S+ left/, 'the coordinator saw an owner leave and rolled back');
      const s = steps(out);
      t.same(s.map((x) => x.step), Array.from({ length: 16 }, (_, i) => i + 1), 'each step logged exactly once');
      t.ok(s.at(-1)!.workers === 2, 'finished on the 2 survivors');
      const diff = maxRelativeDiff(weights(out), ref);
      t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
      const evals = evalsOf(out);
      t.same(evals.map((e) => e.step), refEvals.map((e) => e.step), 'each evaluation logged once');
      evals.forEach((e, i) => t.ok(Math.abs(e.val_loss - refEvals[i]!.val_loss) < 1e-5 * refEvals[i]!.val_loss, `val loss at step ${e.step} as --local's (${e.val_loss} vs ${refEvals[i]!.val_loss}), on ${e.eval_workers} workers`));
      if (point === 'evaluate') t.match(coord.output(), /evaluation at step 8: .*asking the live workers again/, 'the evaluation was asked again of the survivors');
    });
  }
  t.test('a compute-only worker killed before it sends its shares (SMI_FAULT=before-shares:6): the step starts again with the live workers, no rollback', async (t) => {
    const out = join(dir, 'compute-only');
    const coord = startScript('coordinator/main', [...run, '--out', out, '--port', '0', '--token', 'tok', '--min-workers', '3', '--step-timeout', '20000']);
    const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
    const url = `ws://127.0.0.1:${port}`;
    const ws = [0, 1, 2].map((i) => startScript('worker/main', ['--connect', url, '--token', 'tok', ...(i === 2 ? ['--compute-only'] : [])], { env: i === 2 ? { SMI_FAULT: 'before-shares:6' } : {} }));
    t.equal(await coord.exited, 0, 'the coordinator finishes the run', { output: coord.output() });
    t.equal(await ws[0]!.exited, 0, 'the owners end cleanly');
    t.equal(await ws[1]!.exited, 0);
    t.not(await ws[2]!.exited, 0, 'the compute-only worker died');
    t.match(coord.output(), /step 6: worker \S+ left; starting the step again with the live workers/, 'the step started again');
    t.notMatch(coord.output(), /rolling back/, 'no rollback: no owner was lost');
    t.same(steps(out).map((x) => x.step), Array.from({ length: 16 }, (_, i) => i + 1), 'each step logged exactly once');
    const diff = maxRelativeDiff(weights(out), ref);
    t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
  });
});
