import t from 'tap';
import { ConfigError, PRESETS, closest, lrAt, resolveConfig } from '../../shared/config.ts';
import { parseTrainArgs } from '../../shared/cli/options.ts';

t.test('nanoGPT get_lr: warmup, cosine, floor', async (t) => {
  const cfg = { learning_rate: 1e-3, min_lr: 1e-4, warmup_iters: 100, lr_decay_iters: 2000 };
  t.equal(lrAt(cfg, 0), 1e-3 / 101, 'step 1 = get_lr(0) = lr·1/(warmup+1)');
  t.equal(lrAt(cfg, 99), 1e-3 * 100 / 101);
  t.equal(lrAt(cfg, 100), 1e-3, 'cosine starts at lr');
  t.ok(Math.abs(lrAt(cfg, 1050) - (1e-4 + 0.5 * 9e-4)) < 1e-12, 'midpoint is the mean of lr and min_lr');
  t.ok(Math.abs(lrAt(cfg, 2000) - 1e-4) < 1e-12);
  t.equal(lrAt(cfg, 2500), 1e-4, 'min_lr after decay');
});

t.test('presets and overrides resolve; lr_decay_iters follows max_iters', async (t) => {
  const c = resolveConfig({ preset: 'cpu', overrides: { max_iters: 300 } });
  t.equal(c.n_embd, 128);
  t.equal(c.lr_decay_iters, 300);
  t.equal(c.smi, 'cosine');
  t.equal(PRESETS.paper.n_embd, 384);
  t.throws(() => resolveConfig({ preset: 'test', overrides: { n_embd: 33 } }), ConfigError, 'n_embd must divide by n_head');
  t.throws(() => resolveConfig({ preset: 'test', overrides: { dropout: 1.5 } }), ConfigError);
});

t.test('flags: unknown flag, preset and run name name the closest valid one', async (t) => {
  t.equal(closest('cosin', ['baseline', 'cosine']), 'cosine');
  t.throws(() => parseTrainArgs(['--max-iter', '5']), /unknown flag --max-iter: did you mean --max-iters\?/);
  t.throws(() => parseTrainArgs(['--preset', 'cpuu']), /did you mean 'cpu'/);
  t.throws(() => parseTrainArgs(['--smi', 'top-75']), /did you mean 'top75'/);
  t.throws(() => parseTrainArgs(['--n-layer', 'two']), /--n-layer takes an integer/);
  const a = parseTrainArgs(['--local', '--preset', 'test', '--learning-rate', '0.01', '--gpus', '0,2']);
  t.equal(a.overrides.learning_rate, 0.01);
  t.same(a.gpus, [0, 2]);
});
