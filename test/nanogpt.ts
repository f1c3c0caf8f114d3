// nanoGPT's side for tests (no PyTorch here): state_dicts as model.py names and lays them out, and model.py's forward in float64.
import type { ModelShape } from '../shared/model/nanogpt-weights.ts';
import type { NamedTensor } from '../shared/train/safetensors.ts';
import { randomFloats } from './helpers.ts';

/**
 * A state_dict of nanoGPT's GPT in its order, names and PyTorch layouts (nn.Linear weights [out, in]), with random
 * values; `bias` adds every bias of GPT(bias=True), `untied` gives lm_head values of its own (tied, it is wte's).
 */
export function nanoGptStateDict(m: ModelShape, seed: number, o: { bias?: boolean; untied?: boolean } = {}): Map<string, NamedTensor> {
  const { vocab_size: V, block_size: T, n_layer: L, n_embd: C } = m;
  const sd = new Map<string, NamedTensor>();
  let s = seed * 1000;
  const rand = (shape: number[], scale = 0.3, offset = 0): NamedTensor => {
    const data = randomFloats(shape.reduce((a, b) => a * b, 1), s++, scale);
    if (offset !== 0) for (let i = 0; i < data.length; i++) data[i]! += offset;
    return { shape, data };
  };
  const linear = (name: string, out: number, inp: number) => {
    sd.set(`${name}.weight`, rand([out, inp]));
    if (o.bias) sd.set(`${name}.bias`, rand([out], 0.1));
  };
  const norm = (name: string) => {
    sd.set(`${name}.weight`, rand([C], 0.2, 1));
    if (o.bias) sd.set(`${name}.bias`, rand([C], 0.1));
  };
  const wte = rand([V, C]);
  sd.set('transformer.wte.weight', wte);
  sd.set('transformer.wpe.weight', rand([T, C]));
  for (let l = 0; l < L; l++) {
    const h = `transformer.h.${l}`;
    norm(`${h}.ln_1`);
    linear(`${h}.attn.c_attn`, 3 * C, C);
    linear(`${h}.attn.c_proj`, C, C);
    norm(`${h}.ln_2`);
    linear(`${h}.mlp.c_fc`, 4 * C, C);
    linear(`${h}.mlp.c_proj`, C, 4 * C);
  }
  norm('transformer.ln_f');
  sd.set('lm_head.weight', o.untied ? rand([V, C]) : wte);
  return sd;
}

/** erf to about 1e-15 (Numerical Recipes' erfc by Chebyshev fit), for model.py's exact nn.GELU(). */
function erf(x: number): number {
  const z = Math.abs(x);
  const t = 2 / (2 + z);
  const ty = 4 * t - 2;
  const cof = [-1.3026537197817094, 6.4196979235649026e-1, 1.9476473204185836e-2, -9.561514786808631e-3, -9.46595344482036e-4,
    3.66839497852761e-4, 4.2523324806907e-5, -2.0278578112534e-5, -1.624290004647e-6, 1.30365583558e-6, 1.5626441722e-8,
    -8.5238095915e-8, 6.529054439e-9, 5.059343495e-9, -9.91364156e-10, -2.27365122e-10, 9.6467911e-11, 2.394038e-12,
    -6.886027e-12, 8.94487e-13, 3.13092e-13, -1.12708e-13, 3.81e-16, 7.106e-15, -1.523e-15, -9.4e-17, 1.21e-16, -2.8e-17];
  let d = 0;
  let dd = 0;
  for (let j = cof.length - 1; j > 0; j--) {
    const tmp = d;
    d = ty * d - dd + cof[j]!;
    dd = tmp;
  }
  const erfc = t * Math.exp(-z * z + 0.5 * (cof[0]! + ty * d) - dd);
  return x >= 0 ? 1 - erfc : erfc - 1;
}

/**
 * Logits (B·T, V) of nanoGPT's GPT.forward (model.py, bias=False, dropout off) for token ids `idx` (B, T), in float64,
 * read straight from the state_dict's PyTorch layouts: y = x Wᵀ; LayerNorm with eps 1e-5; causal softmax(q kᵀ / √hs);
 * exact GELU; logits = ln_f(x) lm_headᵀ.
 */
export function nanoGptLogits(sd: ReadonlyMap<string, NamedTensor>, m: ModelShape, idx: Int32Array, B: number): number[] {
  const { n_layer: L, n_head: nh, n_embd: C, vocab_size: V } = m;
  const T = idx.length / B;
  const hs = C / nh;
  const w = (k: string) => sd.get(k)!.data;
  const linear = (x: Float64Array, rows: number, W: Float32Array, out: number, inp: number) => {
    const y = new Float64Array(rows * out);
    for (let r = 0; r < rows; r++) for (let o = 0; o < out; o++) {
      let acc = 0;
      for (let i = 0; i < inp; i++) acc += x[r * inp + i]! * W[o * inp + i]!;
      y[r * out + o] = acc;
    }
    return y;
  };
  const layerNorm = (x: Float64Array, g: Float32Array) => {
    const y = new Float64Array(x.length);
    for (let r = 0; r < x.length / C; r++) {
      let mean = 0;
      for (let c = 0; c < C; c++) mean += x[r * C + c]! / C;
      let v = 0;
      for (let c = 0; c < C; c++) v += (x[r * C + c]! - mean) ** 2 / C;
      for (let c = 0; c < C; c++) y[r * C + c] = ((x[r * C + c]! - mean) / Math.sqrt(v + 1e-5)) * g[c]!;
    }
    return y;
  };
  const N = B * T;
  let x = new Float64Array(N * C); // (B·T, C)
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) x[n * C + c] = w('transformer.wte.weight')[idx[n]! * C + c]! + w('transformer.wpe.weight')[(n % T) * C + c]!;
  for (let l = 0; l < L; l++) {
    const h = `transformer.h.${l}.`;
    const qkv = linear(layerNorm(x, w(h + 'ln_1.weight')), N, w(h + 'attn.c_attn.weight'), 3 * C, C); // (B·T, 3C): q | k | v
    const y = new Float64Array(N * C);
    for (let b = 0; b < B; b++) for (let hd = 0; hd < nh; hd++) for (let i = 0; i < T; i++) {
      const q = (j: number) => qkv[(b * T + i) * 3 * C + hd * hs + j]!;
      const k = (t: number, j: number) => qkv[(b * T + t) * 3 * C + C + hd * hs + j]!;
      const v = (t: number, j: number) => qkv[(b * T + t) * 3 * C + 2 * C + hd * hs + j]!;
      const att = Array.from({ length: i + 1 }, (_, t) => {
        let s = 0;
        for (let j = 0; j < hs; j++) s += q(j) * k(t, j);
        return s / Math.sqrt(hs);
      });
      const max = Math.max(...att);
      const e = att.map((a) => Math.exp(a - max));
      const sum = e.reduce((a, b2) => a + b2, 0);
      for (let j = 0; j < hs; j++) {
        let acc = 0;
        for (let t = 0; t <= i; t++) acc += (e[t]! / sum) * v(t, j);
        y[(b * T + i) * C + hd * hs + j] = acc;
      }
    }
    const proj = linear(y, N, w(h + 'attn.c_proj.weight'), C, C);
    x = x.map((xi, i) => xi + proj[i]!);
    const u = linear(layerNorm(x, w(h + 'ln_2.weight')), N, w(h + 'mlp.c_fc.weight'), 4 * C, C);
    const g = u.map((ui) => 0.5 * ui * (1 + erf(ui * Math.SQRT1_2)));
    const down = linear(g, N, w(h + 'mlp.c_proj.weight'), C, 4 * C);
    x = x.map((xi, i) => xi + down[i]!);
  }
  return Array.from(linear(layerNorm(x, w('transformer.ln_f.weight')), N, w('lm_head.weight'), V, C));
}
