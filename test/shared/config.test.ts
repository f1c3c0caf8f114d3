// The configuration (shared/config.ts): nanoGPT's lr schedule, presets and overrides.
import t from 'tap';
import { ConfigError } from '../../shared/errors.ts';
import { PRESETS, lrAt, resolveConfig } from '../../shared/config.ts';

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
