// worker/owner.ts OwnedTensors: shares checked on arrival, reduced in chunk order, the one update step on the owned tensors as --local's step gives it, numTensors flat.
import t, { type Test } from 'tap';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../shared/backend/backend.ts';
import { resolveConfig } from '../../shared/config.ts';
import { ProtocolError } from '../../shared/errors.ts';
import { GPT } from '../../shared/model/gpt.ts';
import { weightedSum } from '../../shared/parallel/reduce.ts';
import { disposeFft } from '../../shared/smi/fft.ts';
import { alphaAt, SMI_RUNS, view2d } from '../../shared/smi/runs.ts';
import { applyUpdate, globalClip, sumOfSquares } from '../../shared/train/step.ts';
import { createModelState, wholeModel } from '../../shared/train/state.ts';
import { OwnedTensors } from '../../worker/owner.ts';

t.teardown(() => disposeFft());

const code = (t: Test, fn: () => unknown, c: string, what: string) => {
  try {
    fn();
    t.fail(`${what}: did not throw`);
  } catch (e) {
    t.ok(e instanceof ProtocolError && e.code === c, `${what}: ${c} (${(e as Error).message})`);
  }
};

t.test('two owners of a model, fed the same chunks, step as one process would (wasm); bad shares refused; numTensors flat', async (t) => {
  const info = await initBackend('wasm');
  const cfg = resolveConfig({ preset: 'test', smi: 'cosine', spectral: 'global', overrides: { max_iters: 8 } });
  const ref = createModelState(cfg, info);
  const shard = wholeModel(ref);
  const model = new GPT(cfg, cfg.seed); // the owners' replica
  const n = model.params.length;
  const owners = [new OwnedTensors(model, [...Array(n).keys()].filter((i) => i % 2 === 0), cfg, info), new OwnedTensors(model, [...Array(n).keys()].filter((i) => i % 2 === 1), cfg, info)];
  const sizes = model.params.map((p) => p.variable.size);
  const rand = (seed: number) => sizes.map((s, p) => Float32Array.from({ length: s }, (_, i) => Math.sin(seed * 7.1 + p * 1.3 + i * 0.37) * 0.05));
  let counts: number[] = [];
  for (let step = 1; step <= 8; step++) {
    const chunks = [rand(step), rand(step + 100), rand(step + 200)];
    const sequences = [2, 1, 1];
    // the owners, chunks arriving out of order
    for (const c of [2, 0, 1]) for (const o of owners) o.accept(step, 0, c, o.tensors.map((j) => chunks[c]![j]!));
    const reduced = owners.map((o) => o.reduce(step, 0, sequences));
    const perTensor = new Array<number>(n);
    owners.forEach((o, k) => o.tensors.forEach((j, i) => (perTensor[j] = reduced[k]!.ss[i]!)));
    let total = 0;
    for (const s of perTensor) total = Math.fround(total + s);
    const { coef } = globalClip([total], cfg.grad_clip, step, true);
    const alpha = alphaAt(SMI_RUNS.cosine, step, cfg.max_iters);
    for (const o of owners) o.update(step, 0, { clip: coef, lr: 1e-3, alpha });
    // one process: the same mean, the same step
    const mean = weightedSum(chunks, sequences.map((s) => s / 4)).map((x, i) => tf.tensor(x, shard.shapes[i]!));
    const r = globalClip([sumOfSquares(mean)], cfg.grad_clip, step, true);
    t.equal(r.coef, coef, `step ${step}: κ from the owners' per-tensor sums is --local's`);
    applyUpdate(shard, mean, { clip: r.coef, step, lr: 1e-3, alpha });
    counts.push(tf.memory().numTensors);
  }
  const diffs = model.params.map((p, i) => {
    const a = p.variable.dataSync() as Float32Array;
    const b = shard.params[i]!.dataSync() as Float32Array;
    return a.reduce((m, x, j) => Math.max(m, Math.abs(x - b[j]!)), 0);
  });
  t.equal(Math.max(...diffs), 0, 'after 8 steps the owners\' tensors equal the one-process step\'s, to the bit');
  counts = counts.slice(2);
  t.ok(counts.every((c) => c === counts[0]), `numTensors flat over steps (${counts.join(', ')})`);

  const o = owners[0]!;
  const good = o.tensors.map((j) => new Float32Array(sizes[j]!));
  code(t, () => o.accept(9, 0, 0, good.slice(1)), 'E_SHAPE', 'a share with a tensor missing');
  code(t, () => o.accept(9, 0, 0, [new Float32Array(3), ...good.slice(1)]), 'E_SHAPE', 'a share with a tensor of the wrong length');
  const nan = good.map((x) => x.slice());
  nan[0]![1] = NaN;
  code(t, () => o.accept(9, 0, 0, nan), 'E_NONFINITE', 'a share holding NaN');
  o.accept(9, 0, 0, good);
  code(t, () => o.accept(9, 0, 0, good), 'E_UNEXPECTED', 'the same chunk twice');
  code(t, () => o.update(9, 0, { clip: 1, lr: 1, alpha: 0 }), 'E_UNEXPECTED', 'a commit of a step not reduced');
  t.ok(!o.complete(9, 0, 2), 'one of two chunks: not complete');
  o.forgetBefore(9, 1);
  t.ok(!o.complete(9, 0, 1), 'a later round forgets the earlier round\'s shares');
  const st = o.state();
  t.equal(st.adamStep, 8, "the state carries AdamW's step");
  t.equal(st.m.length, o.tensors.length, 'and a first moment per owned tensor');
  const copy = new OwnedTensors(new GPT(cfg, cfg.seed), o.tensors, cfg, info, st);
  t.same(copy.state().m.map((x) => x.length), st.m.map((x) => x.length), 'a new owner loaded with it holds the same state');
  t.same(copy.state().smi.map((h) => h.name), st.smi.map((h) => h.name), 'histories too');
  copy.dispose();
  for (const x of owners) x.dispose();
  model.dispose();
});

t.test('synced and local owners: magnitudes over the Parseval bound (E_OUTLIER) or missing (E_SHAPE); a blend over 2κ‖g_c‖ is found before the update', async (t) => {
  const info = await initBackend('wasm');
  const model = new GPT(resolveConfig({ preset: 'test' }), 1);
  const tensors = [0, 1];
  const sizes = tensors.map((j) => model.params[j]!.variable.size);
  const half = tensors.map((j) => {
    const [rows, cols] = view2d(model.params[j]!.shape);
    return rows * (Math.floor(cols / 2) + 1);
  });
  const g = sizes.map((n) => new Float32Array(n).fill(1e-3));
  const synced = new OwnedTensors(model, tensors, resolveConfig({ preset: 'test', smi: 'cosine', spectral: 'synced' }), info);
  code(t, () => synced.accept(1, 0, 0, g), 'E_SHAPE', 'synced: a share without magnitudes');
  code(t, () => synced.accept(1, 0, 0, g, half.map((n) => new Float32Array(n).fill(1e30))), 'E_OUTLIER', 'synced: 1e30 spectra of a 1e-3 gradient break Parseval');
  synced.dispose();
  const local = new OwnedTensors(model, tensors, resolveConfig({ preset: 'test', smi: 'cosine', spectral: 'local' }), info);
  code(t, () => local.accept(1, 0, 0, g, half.map((n) => new Float32Array(n))), 'E_UNEXPECTED', 'local: magnitudes outside synced mode');
  local.accept(1, 0, 0, g);
  local.accept(1, 0, 1, g);
  local.reduce(1, 0, [1, 1]);
  local.acceptBlend(1, 0, 0, g.map((x) => x.map((v) => v * 0.5)));
  local.acceptBlend(1, 0, 1, g.map((x) => x.map(() => 1)));
  t.ok(local.awaitsBlends && local.blendsComplete(1, 0, 2), 'local: the update waits for, and has, both blends');
  const bad = local.badBlend(1, 0, 1);
  t.equal(bad?.chunk, 1, `local: the blend 1000× its gradient is refused (${bad?.message})`);
  t.equal(local.badBlend(1, 0, 1e6), null, 'with a κ that allows it, none is');
  local.dispose();
  model.dispose();
});
