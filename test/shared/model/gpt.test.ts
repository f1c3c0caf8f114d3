// The GPT (shared/model/gpt.ts): parameter counts, nanoGPT's layouts, causality, gradients, dropout, generate, the hook.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdamW } from '../../../shared/model/adamw.ts';
import { resolveConfig } from '../../../shared/config.ts';
import { GPT } from '../../../shared/model/gpt.ts';
import { loadSafetensors, saveSafetensors, decodeSafetensors, encodeSafetensors } from '../../../shared/train/safetensors.ts';

await tf.setBackend('cpu');
tf.enableProdMode();
const test = resolveConfig({ preset: 'test' });
const batch = (n: number, T: number, salt = 0) => Int32Array.from({ length: n * T }, (_, i) => (i * 7 + salt) % 65);

t.test('parameter counts as docs/algorithm.md: cpu 804,096; paper 10,745,088', async (t) => {
  const cpu = new GPT(resolveConfig({ preset: 'cpu' }), 1);
  t.equal(cpu.numParams(), 804096);
  cpu.dispose();
  // the paper preset's count follows from the shapes alone; do not allocate it
  const C = 384, L = 6, V = 65, T = 256;
  t.equal(V * C + T * C + L * (2 * C + 12 * C * C) + C, 10745088);
});

t.test('export uses nanoGPT names and PyTorch layouts; safetensors round trip gives the same logits', async (t) => {
  const a = new GPT(test, 3);
  const w = a.exportWeights();
  const C = test.n_embd;
  t.same(w.get('transformer.wte.weight')!.shape, [65, C]);
  t.same(w.get('transformer.wpe.weight')!.shape, [16, C]);
  t.same(w.get('transformer.h.0.attn.c_attn.weight')!.shape, [3 * C, C], 'rows q, k, v as nn.Linear(C, 3C)');
  t.same(w.get('transformer.h.1.attn.c_proj.weight')!.shape, [C, C]);
  t.same(w.get('transformer.h.0.mlp.c_fc.weight')!.shape, [4 * C, C]);
  t.same(w.get('transformer.h.0.mlp.c_proj.weight')!.shape, [C, 4 * C]);
  t.same(w.get('transformer.ln_f.weight')!.shape, [C]);
  t.same(w.get('lm_head.weight')!.data, w.get('transformer.wte.weight')!.data, 'lm_head tied to wte');
  // layout: PyTorch c_fc.weight[j, i] multiplies input i into output j; ours is [in, out]
  const ours = a.p('transformer.h.0.mlp.c_fc.weight').arraySync() as number[][];
  t.equal(w.get('transformer.h.0.mlp.c_fc.weight')!.data[5 * C + 2], ours[2]![5], 'transposed on export');

  const file = join(mkdtempSync(join(tmpdir(), 'smi-st-')), 'model.safetensors');
  saveSafetensors(file, w, { format: 'pt' });
  const b = new GPT(test, 99);
  b.importWeights(loadSafetensors(file).tensors);
  const x = tf.tensor2d(batch(2, 16), [2, 16], 'int32');
  const la = a.forward(x).dataSync();
  const lb = b.forward(x).dataSync();
  t.same(Array.from(lb), Array.from(la), 'identical logits after the round trip');
  t.throws(() => b.importWeights(new Map([...w].filter(([k]) => k !== 'transformer.wpe.weight'))), /missing 1 tensor\(s\) the model needs: transformer\.wpe\.weight/);
  tf.dispose(x);
  a.dispose();
  b.dispose();
});

t.test('safetensors decoder rejects malformed files', async (t) => {
  const good = encodeSafetensors(new Map([['x', { shape: [2], data: new Float32Array([1, 2]) }]]));
  t.same(Array.from(decodeSafetensors(good).tensors.get('x')!.data), [1, 2]);
  t.throws(() => decodeSafetensors(good.subarray(0, 4)), /shorter/);
  t.throws(() => decodeSafetensors(good.subarray(0, good.length - 4)), /do not fit/);
  const badHeader = Buffer.from(good);
  badHeader[9] = 0x7b; // corrupt the JSON
  t.throws(() => decodeSafetensors(badHeader), /JSON|offsets|dtype/);
});

t.test('causal: a later token does not change earlier logits', async (t) => {
  const m = new GPT(test, 5);
  const a = batch(1, 16);
  const b = Int32Array.from(a);
  b[15] = (b[15]! + 1) % 65;
  const la = m.forward(tf.tensor2d(a, [1, 16], 'int32')).arraySync() as number[][];
  const lb = m.forward(tf.tensor2d(b, [1, 16], 'int32')).arraySync() as number[][];
  t.same(la.slice(0, 15), lb.slice(0, 15));
  t.not(la[15]!.join(), lb[15]!.join());
  m.dispose();
});

t.test('training steps keep tf.memory().numTensors flat and the loss falls', async (t) => {
  const m = new GPT(test, 1337);
  const opt = new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  const vars = m.params.map((p) => p.variable);
  const x = batch(8, 16);
  const y = batch(8, 16, 7);
  const counts: number[] = [];
  const losses: number[] = [];
  for (let s = 0; s < 12; s++) {
    const { loss, grads } = m.gradients(x, y, 8);
    opt.apply(vars, grads, 3e-3);
    tf.dispose(grads);
    counts.push(tf.memory().numTensors);
    losses.push(loss);
  }
  t.same(new Set(counts.slice(1)).size, 1, `numTensors flat after the moments exist: ${counts}`);
  t.ok(losses[11]! < losses[0]! - 0.5, `loss falls on a repeated batch: ${losses[0]} → ${losses[11]}`);
  t.ok(Math.abs(losses[0]! - Math.log(65)) < 0.2, 'initial loss ≈ ln(65)');
  opt.dispose();
  m.dispose();
});

t.test('gradient accumulation over micro-batches gives the whole-batch gradient', async (t) => {
  const m = new GPT(test, 11);
  const x = batch(8, 16);
  const y = batch(8, 16, 3);
  const whole = m.gradients(x, y, 8);
  const before = tf.memory().numTensors;
  const micro = m.gradients(x, y, 8, undefined, 3); // chunks of 3, 3, 2
  t.equal(tf.memory().numTensors, before + micro.grads.length, 'only the returned gradients remain');
  t.ok(Math.abs(micro.loss - whole.loss) < 1e-5, `same loss (${whole.loss} vs ${micro.loss})`);
  let worst = 0;
  whole.grads.forEach((g, i) => {
    const a = g.dataSync();
    const b = micro.grads[i]!.dataSync();
    for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j]! - b[j]!) / (Math.abs(a[j]!) + 1e-6));
  });
  t.ok(worst < 1e-3, `same gradients up to float rounding (worst relative ${worst.toExponential(2)})`);
  tf.dispose([...whole.grads, ...micro.grads]);
  m.dispose();
});

t.test('dropout on: micro-batches get the whole batch\'s masks (a sequence\'s masks follow its id), numTensors flat', async (t) => {
  const cfg = { ...test, dropout: 0.2 };
  const m = new GPT(cfg, 11);
  const x = batch(8, 16);
  const y = batch(8, 16, 3);
  const ids = [40, 7, 1000, 3, 99, 12, 5000, 8];
  const key = [1337, 5, 42];
  const plain = m.gradients(x, y, 8);
  const whole = m.gradients(x, y, 8, key, 8, ids);
  const before = tf.memory().numTensors;
  const micro = m.gradients(x, y, 8, key, 3, ids); // chunks of 3, 3, 2: each chunk's masks from its own sequences' ids
  t.equal(tf.memory().numTensors, before + micro.grads.length, 'only the returned gradients remain (masks disposed)');
  const worst = (a: tf.Tensor[], b: tf.Tensor[]) => {
    let w = 0;
    a.forEach((g, i) => {
      const p = g.dataSync();
      const q = b[i]!.dataSync();
      for (let j = 0; j < p.length; j++) w = Math.max(w, Math.abs(p[j]! - q[j]!) / (Math.abs(p[j]!) + 1e-6));
    });
    return w;
  };
  t.ok(Math.abs(micro.loss - whole.loss) < 1e-5, `same loss (${whole.loss} vs ${micro.loss})`);
  t.ok(worst(whole.grads, micro.grads) < 1e-3, `same gradients up to float rounding (worst relative ${worst(whole.grads, micro.grads).toExponential(2)})`);
  t.ok(Math.abs(whole.loss - plain.loss) > 1e-3, `dropout is on: the loss differs from the dropout-free one (${plain.loss} vs ${whole.loss})`);
  const again = m.gradients(x, y, 8, key, 8, ids);
  t.equal(again.loss, whole.loss, 'the same key and ids: the same loss, bit for bit');
  const other = m.gradients(x, y, 8, [1337, 5, 43], 8, ids);
  t.not(other.loss, whole.loss, 'another step: other masks');
  const counts: number[] = [];
  for (let s = 0; s < 4; s++) {
    tf.dispose(m.gradients(x, y, 8, [1337, 5, s], 3, ids).grads);
    counts.push(tf.memory().numTensors);
  }
  t.same(new Set(counts).size, 1, `numTensors flat over steps with dropout: ${counts}`);
  tf.dispose([...plain.grads, ...whole.grads, ...micro.grads, ...again.grads, ...other.grads]);
  m.dispose();
});

t.test('generate: tf.memory().numTensors flat over many tokens and generations (each token\'s logits disposed)', async (t) => {
  const m = new GPT(test, 1337);
  let u = 0;
  const uniform = () => (u = (u * 9301 + 49297) % 233280) / 233280;
  m.generate([0], 2, 0.8, 200, uniform); // first use: kernels, the causal bias slices
  const before = tf.memory().numTensors;
  for (let g = 0; g < 3; g++) {
    const ids = m.generate([1, 2, 3], 40, 0.8, 200, uniform);
    t.equal(ids.length, 43, 'the prompt and 40 new tokens');
  }
  t.equal(tf.memory().numTensors, before, `numTensors ${before} before and after 120 generated tokens`);
  m.dispose();
});

t.test('the activation hook sees every LayerNorm, attention and MLP activation without changing the logits', async (t) => {
  const m = new GPT(test, 1337);
  const x = batch(2, 16);
  const seen: Record<string, number[][]> = { attention: [], mlp: [], layerNorm: [] };
  const [plain, hooked] = tf.tidy(() => {
    const idx = tf.tensor2d(x, [2, 16], 'int32');
    const a = m.forward(idx).dataSync();
    const b = m.forward(idx, undefined, false, (kind, v) => seen[kind]!.push(v.shape)).dataSync();
    return [a, b];
  });
  t.same([...hooked!], [...plain!], 'the same logits');
  t.same(seen.attention, [[2, 2, 16, 16], [2, 2, 16, 16]], 'attention probabilities per layer (B, nh, T, T)');
  t.same(seen.mlp, [[32, 128], [32, 128]], 'GELU outputs per layer (B·T, 4C)');
  t.equal(seen.layerNorm!.length, 2 * 2 + 1, 'ln_1 and ln_2 per layer, and ln_f');
  m.dispose();
});
