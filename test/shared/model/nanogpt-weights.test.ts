// --init-from's weights: a nanoGPT GPT(bias=False) state_dict loads and gives nanoGPT's logits; bias=True, an untied
// head, extra layers, unknown and missing tensors are refused naming the tensors; --init-from-drop-extra drops on purpose.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { resolveConfig } from '../../../shared/config.ts';
import { GPT } from '../../../shared/model/gpt.ts';
import { loadSafetensors, saveSafetensors, type NamedTensor } from '../../../shared/train/safetensors.ts';
import { nanoGptStateDict, nanoGptLogits } from '../../nanogpt.ts';
import { tempDir } from '../../helpers.ts';

await tf.setBackend('cpu');
tf.enableProdMode();
const cfg = resolveConfig({ preset: 'test' }); // n_layer 2, n_head 2, n_embd 32, block 16, vocab 65

/** The file written as safetensors and read back, as --init-from reads it. */
function roundTrip(sd: Map<string, NamedTensor>): Map<string, NamedTensor> {
  const file = join(tempDir('smi-nanogpt-'), 'sd.safetensors');
  saveSafetensors(file, sd, { format: 'pt' });
  return loadSafetensors(file).tensors;
}

const idx = Int32Array.from({ length: 2 * 16 }, (_, i) => (i * 11 + 3) % 65);

t.test("a nanoGPT GPT(bias=False) state_dict loads and gives nanoGPT's logits (model.py's forward, in float64)", async (t) => {
  const sd = nanoGptStateDict(cfg, 7);
  const want = nanoGptLogits(sd, cfg, idx, 2);
  for (const [label, file] of [
    ['wte and the tied lm_head both present', roundTrip(sd)],
    ['only lm_head (safetensors save_model keeps one name of the tied pair)', roundTrip(new Map([...sd].filter(([k]) => k !== 'transformer.wte.weight')))],
    ['only wte', roundTrip(new Map([...sd].filter(([k]) => k !== 'lm_head.weight')))],
    ['torch.compile prefix _orig_mod.', roundTrip(new Map([...sd].map(([k, v]) => [`_orig_mod.${k}`, v])))],
  ] as const) {
    const m = new GPT(cfg, 99);
    const { dropped, notes } = m.importWeights(file);
    t.same(dropped, [], `${label}: nothing dropped`);
    const got = tf.tidy(() => m.forward(tf.tensor2d(idx, [2, 16], 'int32')).dataSync());
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    t.ok(worst < 2e-5, `${label}: logits equal nanoGPT's to float32 rounding (max |Δ| ${worst.toExponential(2)} over ${want.length})${notes.length ? `; ${notes.join('; ')}` : ''}`);
    m.dispose();
  }
  // and the reference is not trivially close to any model: another state_dict gives other logits
  const other = nanoGptLogits(nanoGptStateDict(cfg, 8), cfg, idx, 2);
  t.ok(Math.max(...want.map((w, i) => Math.abs(w - other[i]!))) > 1e-2, 'another state_dict: other logits');
});

t.test("causal-mask buffers (attn.bias of PyTorch < 2) are ignored, as nanoGPT's from_pretrained does", async (t) => {
  const sd = nanoGptStateDict(cfg, 7);
  const T = cfg.block_size;
  const mask = Float32Array.from({ length: T * T }, (_, i) => (i % T <= Math.floor(i / T) ? 1 : 0));
  for (let l = 0; l < cfg.n_layer; l++) sd.set(`transformer.h.${l}.attn.bias`, { shape: [1, 1, T, T], data: mask });
  const m = new GPT(cfg, 1);
  const { notes } = m.importWeights(roundTrip(sd));
  t.match(notes.join(), /2 causal-mask buffer/);
  m.dispose();
  // a tensor of that name that is not the mask is not a buffer nanoGPT would drop
  sd.set('transformer.h.0.attn.bias', { shape: [1, 1, T, T], data: new Float32Array(T * T).fill(1) });
  const n = new GPT(cfg, 1);
  t.throws(() => n.importWeights(sd), /does not have \(transformer\.h\.0\.attn\.bias\)/);
  n.dispose();
});

t.test('refused with the tensors named and what the project expects; nothing assigned', async (t) => {
  const m = new GPT(cfg, 5);
  const before = m.exportWeights().get('transformer.h.0.mlp.c_fc.weight')!.data.slice();
  const refuse = (sd: Map<string, NamedTensor>, re: RegExp, label: string) => {
    t.throws(() => m.importWeights(sd), re, label);
    t.same(m.exportWeights().get('transformer.h.0.mlp.c_fc.weight')!.data, before, `${label}: the model's weights unchanged`);
  };
  const bias = nanoGptStateDict(cfg, 7, { bias: true });
  t.equal([...bias.keys()].filter((k) => k.endsWith('.bias')).length, 13, 'a 2-layer bias=True state_dict has 13 biases');
  refuse(bias, /13 bias tensor\(s\) \(transformer\.h\.0\.ln_1\.bias, .*transformer\.ln_f\.bias\): this project's GPT has no biases, as nanoGPT's GPT\(bias=False\).*--init-from-drop-extra/, 'bias=True');

  const untied = nanoGptStateDict(cfg, 7, { untied: true });
  refuse(untied, /lm_head\.weight differs from transformer\.wte\.weight: this project ties the output head to the token embedding/, 'untied head');

  const extra = nanoGptStateDict(cfg, 7);
  for (const [k, v] of nanoGptStateDict({ ...cfg, n_layer: 10 }, 3)) if (k.startsWith('transformer.h.9.')) extra.set(k, v);
  refuse(extra, /6 tensor\(s\) of layers this configuration lacks \(transformer\.h\.9\.\*; n_layer=2\)/, 'an extra layer');

  const deeper = nanoGptStateDict({ ...cfg, n_layer: 4 }, 3);
  refuse(deeper, /transformer\.h\.2\.\*, transformer\.h\.3\.\*; n_layer=2\): the file has 4 layers; pass --n-layer 4/, 'a deeper model: the flag that fits');

  const missing = nanoGptStateDict(cfg, 7);
  missing.delete('transformer.h.1.mlp.c_proj.weight');
  refuse(missing, /missing 1 tensor\(s\) the model needs: transformer\.h\.1\.mlp\.c_proj\.weight\.$/, 'a missing tensor: no drop hint, it cannot be dropped');

  const wide = nanoGptStateDict({ ...cfg, n_embd: 48 }, 3);
  refuse(wide, /wrong shape: transformer\.wte\.weight is \[65,48\], expected \[65,32\].*n_embd 48 \(--n-embd 48\)/, 'another width: the flag that fits');
  m.dispose();
});

t.test('dropExtra drops the extras on purpose and lists them; a missing tensor is still refused', async (t) => {
  const sd = nanoGptStateDict(cfg, 7, { bias: true, untied: true });
  sd.set('transformer.h.9.mlp.c_fc.weight', { shape: [4, 4], data: new Float32Array(16) });
  const m = new GPT(cfg, 5);
  const { dropped } = m.importWeights(sd, { dropExtra: true });
  t.equal(dropped.filter((k) => k.endsWith('.bias')).length, 13, 'the 13 biases');
  t.ok(dropped.includes('lm_head.weight') && dropped.includes('transformer.h.9.mlp.c_fc.weight'), `the untied head and the extra layer: ${dropped.join(', ')}`);
  t.same(m.exportWeights().get('transformer.wte.weight')!.data, sd.get('transformer.wte.weight')!.data, 'wte loaded (the head is tied to it)');
  sd.delete('transformer.wpe.weight');
  t.throws(() => m.importWeights(sd, { dropExtra: true }), /missing 1 tensor\(s\) the model needs: transformer\.wpe\.weight/);
  m.dispose();
});
