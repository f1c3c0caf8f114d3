// worker/owner.ts OwnedTensors: shares checked on arrival, reduced in chunk order, the one update step on the owned tensors as --local's step gives it (synced: as the star's, from magnitudes the owner computes), numTensors flat.
import t, { type Test } from 'tap';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../shared/backend/backend.ts';
import { resolveConfig } from '../../shared/config.ts';
import { ProtocolError } from '../../shared/errors.ts';
import { AdamW } from '../../shared/model/adamw.ts';
import { GPT } from '../../shared/model/gpt.ts';
import { weightedSum } from '../../shared/parallel/reduce.ts';
import { SharedSpectralHistory, spectrumMagnitudes } from '../../shared/parallel/spectral.ts';
import { disposeFft } from '../../shared/smi/fft.ts';
import { alphaAt, SMI_RUNS } from '../../shared/smi/runs.ts';
import { applyUpdate, globalClip, sumOfSquares, type Shard } from '../../shared/train/step.ts';
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

t.test('two owners of a model, fed the same chunks, step as one process would (wasm), one of them in parts; bad shares refused; numTensors flat', async (t) => {
  const info = await initBackend('wasm');
  const cfg = resolveConfig({ preset: 'test', smi: 'cosine', spectral: 'global', overrides: { max_iters: 8 } });
  const ref = createModelState(cfg, info);
  const shard = wholeModel(ref);
  const model = new GPT(cfg, cfg.seed); // the owners' replica
  const n = model.params.length;
  // the first owner updates (and would send) its tensors one part each, the second all in one part
  const owners = [new OwnedTensors(model, [...Array(n).keys()].filter((i) => i % 2 === 0), cfg, info, undefined, { partValues: 1 }), new OwnedTensors(model, [...Array(n).keys()].filter((i) => i % 2 === 1), cfg, info)];
  t.same(owners.map((o) => o.parts.length), [owners[0]!.tensors.length, 1], 'a part per tensor, and one part');
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

for (const partValues of [undefined, 1]) t.test(`a synced owner${partValues ? ', a part per tensor,' : ''} computes every share's magnitudes itself: its steps equal the star's synced update on the workers' spectra, to the bit, through a step started again; numTensors flat`, async (t) => {
  const info = await initBackend('wasm');
  const cfg = resolveConfig({ preset: 'test', smi: 'cosine', spectral: 'synced', overrides: { max_iters: 6 } });
  const model = new GPT(cfg, cfg.seed);
  const refModel = new GPT(cfg, cfg.seed);
  const tensors = [0, 2, 3];
  const owner = new OwnedTensors(model, tensors, cfg, info, undefined, { partValues });
  t.equal(owner.parts.length, partValues ? 3 : 1, `${owner.parts.length} part(s)`);
  const params = tensors.map((j) => refModel.params[j]!);
  // the star's synced update of the same tensors: the one shared history fed the workers' own spectrumMagnitudes
  const ref: Shard = {
    names: params.map((p) => p.name), shapes: params.map((p) => p.shape), params: params.map((p) => p.variable),
    opt: new AdamW({ beta1: cfg.beta1, beta2: cfg.beta2, eps: 1e-8, weightDecay: cfg.weight_decay }), smi: null,
    shared: new SharedSpectralHistory(SMI_RUNS.cosine.beta, SMI_RUNS.cosine.q),
  };
  const rand = (seed: number) => tensors.map((j, p) => Float32Array.from({ length: model.params[j]!.variable.size }, (_, i) => Math.sin(seed * 3.7 + p * 1.9 + i * 0.41) * 0.02));
  const counts: number[] = [];
  for (let step = 1; step <= 6; step++) {
    let round = 0;
    if (step === 3) {
      // a round that is reduced and then dropped (the step started again): its magnitudes must not leak into round 1
      owner.accept(step, 0, 0, rand(900));
      owner.accept(step, 0, 1, rand(901));
      owner.reduce(step, 0, [1, 2]);
      round = 1;
      owner.forgetBefore(step, round);
    }
    const chunks = [rand(step), rand(step + 50)];
    const sequences = [1, 2];
    owner.accept(step, round, 1, chunks[1]!);
    owner.accept(step, round, 0, chunks[0]!);
    const { ss } = owner.reduce(step, round, sequences);
    const clip = Math.min(1, 0.05 / Math.sqrt(ss.reduce((a, b) => a + b, 0)));
    const alpha = alphaAt(SMI_RUNS.cosine, step, cfg.max_iters);
    const got = owner.update(step, round, { clip, lr: 1e-3, alpha });
    const weights = sequences.map((n) => n / 3);
    const want = applyUpdate(ref, weightedSum(chunks, weights), { clip, step, lr: 1e-3, alpha, magnitudes: { spectra: chunks.map((c) => spectrumMagnitudes(c, ref.shapes)), weights, perTensor: true } });
    t.same(got.maskChecksums, want.maskChecksums, `step ${step}: the owner's masks are the star's (checksums)`);
    counts.push(tf.memory().numTensors);
  }
  const diff = Math.max(...tensors.map((j) => {
    const a = model.params[j]!.variable.dataSync() as Float32Array;
    const b = refModel.params[j]!.variable.dataSync() as Float32Array;
    return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
  }));
  t.equal(diff, 0, 'after 6 steps the owner\'s tensors equal the star\'s synced step\'s, to the bit');
  t.ok(counts.slice(2).every((c) => c === counts[2]), `numTensors flat over steps (${counts.join(', ')})`);
  owner.dispose();
  ref.opt.dispose();
  model.dispose();
  refModel.dispose();
});

t.test('a local owner: a blend over 2κ‖g_c‖ is found before the update', async (t) => {
  const info = await initBackend('wasm');
  const model = new GPT(resolveConfig({ preset: 'test' }), 1);
  const tensors = [0, 1];
  const sizes = tensors.map((j) => model.params[j]!.variable.size);
  const g = sizes.map((n) => new Float32Array(n).fill(1e-3));
  const local = new OwnedTensors(model, tensors, resolveConfig({ preset: 'test', smi: 'cosine', spectral: 'local' }), info);
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

t.test("shareBuffers: a chunk's buffers of the last step again once its reduce let go of them, new ones while a kept share holds them", async (t) => {
  const info = await initBackend('wasm');
  const cfg = resolveConfig({ preset: 'test', smi: 'cosine', spectral: 'global', overrides: { max_iters: 4 } });
  const model = new GPT(cfg, cfg.seed);
  const owner = new OwnedTensors(model, [0, 1], cfg, info);
  const share = (b: Float32Array[], v: number) => b.map((x) => x.fill(v));
  const a = owner.shareBuffers(0);
  t.same(a.map((x) => x.length), owner.sizes, 'one buffer per owned tensor, of its size');
  t.equal(owner.shareBuffers(0), a, 'not held yet: the same buffers');
  owner.accept(1, 0, 0, share(a, 0.01));
  const b = owner.shareBuffers(0);
  t.not(b, a, 'held by the kept share of step 1: new buffers');
  share(b, 0.03); // the next share decoded into them
  t.not(owner.shareBuffers(1), b, 'another chunk has its own');
  t.ok(a[0]!.every((x) => x === Math.fround(0.01)), 'the kept share\'s values were not written over by that');
  owner.accept(1, 0, 1, share(owner.shareBuffers(1), 0.02));
  owner.reduce(1, 0, [1, 1]);
  t.equal(owner.shareBuffers(0), b, 'after the reduce: the pool is free again');
  owner.dispose();
});
