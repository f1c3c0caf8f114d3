// `npm run train` as a user runs it: --local runs, resume bit for bit, --init-from, bad input, the V8 flags.
import t, { type Test } from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA, readLog, runScript, tempDir } from '../helpers.ts';
import { loadSafetensors } from '../../shared/train/safetensors.ts';

const base = ['--local', '--preset', 'test', '--data', DATA];

t.test('a 40-step --local run: the loss falls clearly and every output is written', async (t) => {
  const out = join(tempDir(), 'run');
  const r = await runScript('train', [...base, '--max-iters', '40', '--eval-interval', '20', '--out', out, '--log-batches']);
  t.equal(r.code, 0, 'exits 0', { stderr: r.stderr });
  t.match(r.stdout, /backend: \w+/, 'says which backend it took');
  t.match(r.stdout, /step 40\/40 \| loss \d+\.\d+ \| lr .* \| α 0\.\d+ \| .* ms\/step \| \d+ tok\/s \| ETA/, 'progress line');
  const log = readLog(out);
  const steps = log.filter((r) => r.kind === 'step');
  const evals = log.filter((r) => r.kind === 'eval');
  t.equal(steps.length, 40);
  t.same(evals.map((e) => e.step), [0, 20, 40]);
  t.ok((evals[2]!.val_loss as number) < (evals[0]!.val_loss as number) - 0.5, `val loss falls: ${evals[0]!.val_loss} → ${evals[2]!.val_loss}`);
  t.equal((steps[0]!.offsets as number[]).length, 8, '--log-batches records the offsets');
  t.equal(log.at(-1)!.kind, 'done');
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  t.equal(cfg.n_embd, 32);
  t.equal(cfg.smi, 'cosine');
  const model = loadSafetensors(join(out, 'model.safetensors')).tensors;
  t.same(model.get('transformer.h.1.mlp.c_proj.weight')!.shape, [32, 128]);
  t.ok(existsSync(join(out, 'checkpoint', 'state.safetensors')));

  const sample = await runScript('sample', ['--checkpoint', out, '--tokens', '50', '--seed', '7']);
  t.equal(sample.code, 0, 'sample exits 0', { stderr: sample.stderr });
  t.ok(sample.stdout.length >= 50, 'prints the generated text');
  t.match(sample.stderr, /50 tokens in [\d.]+ s: [\d.]+ tokens\/s/, 'and its speed');
  const again = await runScript('sample', ['--checkpoint', out, '--tokens', '50', '--seed', '7']);
  t.equal(again.stdout, sample.stdout, 'the same seed gives the same text');
});

t.test('N steps equal N/2 + resume + N/2, bit for bit (cosine and the two controls)', async (t) => {
  for (const smi of ['cosine', 'random-mask', 'shrink']) await t.test(smi, (t) => halfAndHalf(t, smi));
});

async function halfAndHalf(t: Test, smi: string): Promise<void> {
  const dir = tempDir();
  const whole = join(dir, 'whole');
  const split = join(dir, 'split');
  const common = [...base, '--max-iters', '20', '--eval-interval', '10', '--smi', smi];
  const [a, b] = await Promise.all([
    runScript('train', [...common, '--out', whole]),
    runScript('train', [...common, '--out', split, '--stop-at', '10']),
  ]);
  t.equal(a.code, 0, a.stderr);
  t.equal(b.code, 0, b.stderr);
  t.notOk(existsSync(join(split, 'model.safetensors')), 'stopped early: no final model yet');
  const c = await runScript('train', ['--local', '--data', DATA, '--resume', split]);
  t.equal(c.code, 0, c.stderr);
  const wa = readFileSync(join(whole, 'model.safetensors'));
  const wb = readFileSync(join(split, 'model.safetensors'));
  t.ok(wa.equals(wb), 'final weights identical byte for byte');
  const losses = (d: string) => readLog(d).filter((r) => r.kind === 'step').map((r) => r.loss);
  t.same(losses(split), losses(whole), 'same loss at every step, each step logged once');
}

t.test('--init-from starts from given weights', async (t) => {
  const dir = tempDir();
  const first = join(dir, 'first');
  const r1 = await runScript('train', [...base, '--max-iters', '10', '--out', first, '--smi', 'baseline']);
  t.equal(r1.code, 0, r1.stderr);
  const r2 = await runScript('train', [...base, '--max-iters', '1', '--eval-interval', '1', '--out', join(dir, 'second'), '--init-from', join(first, 'model.safetensors')]);
  t.equal(r2.code, 0, r2.stderr);
  const e1 = readLog(first).filter((r) => r.kind === 'eval').at(-1)!;
  const e2 = readLog(join(dir, 'second')).find((r) => r.kind === 'eval' && r.step === 0)!;
  t.ok(Math.abs((e2.val_loss as number) - (e1.val_loss as number)) < 0.3, `starts near the first run's loss (${e1.val_loss} vs ${e2.val_loss}), not at ln 65`);
});

t.test('bad input: exit 2 with a clear message, nothing written', async (t) => {
  const out = join(tempDir(), 'x');
  const flag = await runScript('train', [...base, '--max-iter', '5']);
  t.equal(flag.code, 2);
  t.match(flag.stderr, /did you mean --max-iters/);
  const run = await runScript('train', [...base, '--smi', 'cosin']);
  t.equal(run.code, 2);
  t.match(run.stderr, /did you mean 'cosine'/);
  const data = await runScript('train', ['--local', '--preset', 'test', '--data', join(out, 'missing.txt'), '--out', out]);
  t.equal(data.code, 2);
  t.match(data.stderr, /E_DATA_MISSING.*npm run prepare-data.*--data FILE/s);
  t.notOk(existsSync(out), 'no run directory for a failed start');
  const resume = await runScript('train', ['--local', '--data', DATA, '--resume', out]);
  t.equal(resume.code, 2);
  t.match(resume.stderr, /no config\.json/);
  const corrupt = join(tempDir(), 'c.safetensors');
  writeFileSync(corrupt, 'not a safetensors file');
  const init = await runScript('train', [...base, '--max-iters', '1', '--out', join(tempDir(), 'y'), '--init-from', corrupt]);
  t.equal(init.code, 2);
  t.match(init.stderr, /E_SAFETENSORS/);
});

t.test("package.json's training scripts start Node with NODE_HEAP_FLAGS (V8 reads them only at start-up)", async (t) => {
  const { NODE_HEAP_FLAGS } = await import('../../shared/cli/node-flags.ts');
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
  for (const name of ['start', 'train', 'coordinator', 'worker', 'bench', 'reproduce', 'sample']) {
    t.ok(NODE_HEAP_FLAGS.every((f) => pkg.scripts[name]!.split(' ').includes(f)), `npm run ${name}: ${pkg.scripts[name]}`);
  }
});
