// The GPT of nanoGPT's model.py (bias=False), in tfjs: LayerNorm, attention, MLP, block, GPT.
import * as tf from '@tensorflow/tfjs';
import { dropoutMask, type MaskEngine } from './dropout.ts';
import { matchNanoGptWeights, type WeightMatch } from './nanogpt-weights.ts';
import { Rng, STREAM, hashKey } from './rng.ts';

export interface GPTConfig {
  vocab_size: number;
  block_size: number;
  n_layer: number;
  n_head: number;
  n_embd: number;
  dropout: number;
}

/**
 * One trainable tensor. `name` is nanoGPT's PyTorch name; `shape` is ours. Linear weights are kept as
 * [in, out] (PyTorch keeps [out, in]) so the forward product needs no transpose; `transposed` marks them,
 * and the safetensors export transposes back. SMI is unchanged by this: FFT2(Gᵀ) = FFT2(G)ᵀ, so the
 * magnitudes, the quantile and the mask are the same bins, transposed.
 */
export interface Param {
  name: string;
  shape: number[];
  transposed: boolean;
  variable: tf.Variable;
}

/**
 * Activations a forward pass shows to a hook (dropout off): the attention probabilities (B, nh, T, T) after the
 * softmax, the MLP's GELU outputs, and every LayerNorm's output after its gain (ln_1, ln_2, ln_f). Called inside
 * the pass's tf.tidy: a hook keeps what it needs as tensors it makes there (and returns from the tidy) or reads now.
 */
export type ActivationHook = (kind: 'attention' | 'mlp' | 'layerNorm', t: tf.Tensor) => void;

let instances = 0; // tfjs variable names are global: each model gets its own prefix

const SQRT1_2 = Math.SQRT1_2;

export class GPT {
  readonly config: GPTConfig;
  readonly params: Param[];
  private readonly byName: Map<string, Param>;
  private readonly causalBias: tf.Tensor; // (T, T): 0 on and below the diagonal, -1e9 above

  constructor(config: GPTConfig, seed: number) {
    this.config = config;
    const { vocab_size: V, block_size: T, n_layer: L, n_embd: C } = config;
    const prefix = `gpt${instances++}/`;
    const rng = new Rng(seed, STREAM.init);
    const std = 0.02;
    const projStd = 0.02 / Math.sqrt(2 * L); // nanoGPT's scaled init of residual projections
    const specs: [string, number[], boolean, number][] = [
      ['transformer.wte.weight', [V, C], false, std],
      ['transformer.wpe.weight', [T, C], false, std],
    ];
    for (let l = 0; l < L; l++) {
      const h = `transformer.h.${l}.`;
      specs.push(
        [h + 'ln_1.weight', [C], false, 0],
        [h + 'attn.c_attn.weight', [C, 3 * C], true, std],
        [h + 'attn.c_proj.weight', [C, C], true, projStd],
        [h + 'ln_2.weight', [C], false, 0],
        [h + 'mlp.c_fc.weight', [C, 4 * C], true, std],
        [h + 'mlp.c_proj.weight', [4 * C, C], true, projStd],
      );
    }
    specs.push(['transformer.ln_f.weight', [C], false, 0]);
    this.params = specs.map(([name, shape, transposed, s]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      if (s === 0) data.fill(1); // LayerNorm gain
      else for (let i = 0; i < n; i++) data[i] = rng.normal() * s;
      const init = tf.tensor(data, shape);
      const variable = tf.variable(init, true, prefix + name);
      init.dispose(); // the variable holds the values; the initial tensor would outlive dispose() otherwise
      return { name, shape, transposed, variable };
    });
    this.byName = new Map(this.params.map((p) => [p.name, p]));
    const bias = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) bias[i * T + j] = -1e9;
    this.causalBias = tf.tensor2d(bias, [T, T]);
  }

  /** Number of parameters (lm_head is tied to wte and counted once, as nanoGPT's get_num_params with the embeddings). */
  numParams(): number {
    return this.params.reduce((a, p) => a + p.variable.size, 0);
  }

  p(name: string): tf.Variable {
    const p = this.byName.get(name);
    if (!p) throw new Error(`no parameter ${name}`);
    return p.variable;
  }

  /**
   * The dropout masks of a forward pass over sequences `seqIds` of length T, in the order forward() applies them
   * (embeddings; then per block the attention probabilities, the attention output, the MLP output), each
   * [B·rows, cols] (shared/model/dropout.ts). A pure function of (key, sequence id, position): a sequence gets the same
   * masks in any micro-batch or worker. Empty when dropout is 0. The caller owns the tensors.
   */
  dropoutMasks(key: number, seqIds: readonly number[], T: number, engine: MaskEngine = 'auto'): tf.Tensor[] {
    const { n_layer: L, n_head: nh, n_embd: C, dropout } = this.config;
    if (!(dropout > 0)) return [];
    const sites = [{ rows: T, cols: C }];
    for (let l = 0; l < L; l++) sites.push({ rows: nh * T, cols: T }, { rows: T, cols: C }, { rows: T, cols: C });
    return sites.map((s, site) => dropoutMask(key, site, seqIds, s, dropout, engine));
  }

  /**
   * Logits for token ids `idx` (B, T) → (B·T, V). With `masks` (from dropoutMasks() for these B sequences)
   * dropout is on. `lastOnly`: the last position's logits only (B, V). `hook` sees the activations (ActivationHook).
   */
  forward(idx: tf.Tensor2D, masks?: readonly tf.Tensor[], lastOnly = false, hook?: ActivationHook): tf.Tensor2D {
    const { n_layer: L, n_head: nh, n_embd: C } = this.config;
    const [B, T] = idx.shape;
    const hs = C / nh;
    if (masks && masks.length > 0 && masks.length !== 1 + 3 * L) throw new Error(`forward: ${masks.length} dropout masks for ${1 + 3 * L} sites`);
    let site = 0;
    const drop = (x: tf.Tensor): tf.Tensor => (masks && masks.length > 0 ? tf.mul(x, tf.reshape(masks[site++]!, x.shape)) : x);
    const layerNorm = (x: tf.Tensor, w: tf.Tensor): tf.Tensor => {
      const mean = tf.mean(x, -1, true); // (…, 1)
      const xc = tf.sub(x, mean);
      const variance = tf.mean(tf.square(xc), -1, true);
      const out = tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, 1e-5))), w);
      hook?.('layerNorm', out);
      return out;
    };

    const tok = tf.gather(this.p('transformer.wte.weight'), tf.reshape(idx, [-1])); // (B·T, C)
    const pos = tf.slice(this.p('transformer.wpe.weight'), [0, 0], [T, C]); // (T, C)
    let x = drop(tf.add(tf.reshape(tok, [B, T, C]), pos)) as tf.Tensor3D; // (B, T, C)
    const bias = T === this.config.block_size ? this.causalBias : tf.slice(this.causalBias, [0, 0], [T, T]);
    for (let l = 0; l < L; l++) {
      const h = `transformer.h.${l}.`;
      // attention
      const a = tf.reshape(layerNorm(x, this.p(h + 'ln_1.weight')), [B * T, C]); // (B·T, C)
      const qkv = tf.matMul(a, this.p(h + 'attn.c_attn.weight')); // (B·T, 3C)
      const [q, k, v] = tf.split(qkv, 3, 1).map((t) => tf.transpose(tf.reshape(t, [B, T, nh, hs]), [0, 2, 1, 3])); // (B, nh, T, hs)
      let att = tf.mul(tf.matMul(q!, k!, false, true), 1 / Math.sqrt(hs)); // (B, nh, T, T)
      att = tf.softmax(tf.add(att, bias));
      hook?.('attention', att);
      att = drop(att);
      const y = tf.reshape(tf.transpose(tf.matMul(att, v!), [0, 2, 1, 3]), [B * T, C]); // (B·T, C)
      x = tf.add(x, tf.reshape(drop(tf.matMul(y, this.p(h + 'attn.c_proj.weight'))), [B, T, C]));
      // MLP
      const m = tf.reshape(layerNorm(x, this.p(h + 'ln_2.weight')), [B * T, C]); // (B·T, C)
      const u = tf.matMul(m, this.p(h + 'mlp.c_fc.weight')); // (B·T, 4C)
      const g = tf.mul(tf.mul(u, 0.5), tf.add(tf.erf(tf.mul(u, SQRT1_2)), 1)); // exact GELU
      hook?.('mlp', g);
      x = tf.add(x, tf.reshape(drop(tf.matMul(g, this.p(h + 'mlp.c_proj.weight'))), [B, T, C]));
    }
    if (lastOnly) x = tf.slice(x, [0, T - 1, 0], [B, 1, C]); // inference: only the last position's logits, as nanoGPT
    const xf = tf.reshape(layerNorm(x, this.p('transformer.ln_f.weight')), [-1, C]);
    return tf.matMul(xf, this.p('transformer.wte.weight'), false, true) as tf.Tensor2D; // (B·T or B, V), tied head
  }

  /**
   * nanoGPT's generate(): append `maxNew` tokens to `prompt`, sampling from softmax(logits / temperature)
   * restricted to the top k; the context is cropped to block_size. `uniform` supplies the sampling draws.
   */
  generate(prompt: number[], maxNew: number, temperature: number, topK: number, uniform: () => number): number[] {
    const ids = [...prompt];
    const V = this.config.vocab_size;
    for (let i = 0; i < maxNew; i++) {
      const ctx = ids.slice(-this.config.block_size);
      const last = tf.tidy(() => this.forward(tf.tensor2d(ctx, [1, ctx.length], 'int32'), undefined, true));
      const logits = last.dataSync();
      last.dispose();
      const scaled = Array.from(logits, (l) => l / temperature);
      const k = Math.min(topK, V);
      const kth = [...scaled].sort((a, b) => b - a)[k - 1]!;
      const max = Math.max(...scaled);
      const w = scaled.map((l) => (l < kth ? 0 : Math.exp(l - max)));
      const total = w.reduce((a, b) => a + b, 0);
      let u = uniform() * total;
      let next = V - 1;
      for (let j = 0; j < V; j++) {
        u -= w[j]!;
        if (u < 0) {
          next = j;
          break;
        }
      }
      ids.push(next);
    }
    return ids;
  }

  /** Mean cross-entropy of logits (N, V) against targets (N). */
  static crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
    const logp = tf.logSoftmax(logits); // (N, V)
    const picked = tf.sum(tf.mul(logp, tf.oneHot(targets, logits.shape[1]).asType('float32')), 1); // (N)
    return tf.neg(tf.mean(picked)) as tf.Scalar;
  }

  /** Mean loss on a batch without gradients; in micro-batches of `microBatch` sequences (weighted n_c / batch). */
  loss(x: Int32Array, y: Int32Array, batch: number, microBatch = batch): number {
    const T = x.length / batch;
    const step = Math.max(1, Math.min(microBatch, batch));
    let loss = 0;
    for (let b0 = 0; b0 < batch; b0 += step) {
      const n = Math.min(step, batch - b0);
      const chunk = tf.tidy(() => {
        const logits = this.forward(tf.tensor2d(x.subarray(b0 * T, (b0 + n) * T), [n, T], 'int32'));
        return GPT.crossEntropy(logits, tf.tensor1d(y.subarray(b0 * T, (b0 + n) * T), 'int32'));
      });
      loss += n === batch ? chunk.dataSync()[0]! : (chunk.dataSync()[0]! * n) / batch;
      chunk.dispose();
    }
    return loss;
  }

  /**
   * Loss and gradients of the mean loss over the batch; gradients come in `params` order, owned by the caller.
   * With `microBatch` below the batch, the batch is cut into micro-batches whose gradients are summed with
   * weights n_c / batch (gradient accumulation: the same gradient in less memory, e.g. the paper preset on wasm).
   * With `dropoutKey` (e.g. [seed, STREAM.dropout, step]) dropout is on; `seqIds` name the sequences for their
   * masks (the training loop passes their corpus offsets; default: their index in the batch).
   */
  gradients(x: Int32Array, y: Int32Array, batch: number, dropoutKey?: number[], microBatch = batch, seqIds?: readonly number[]): { loss: number; grads: tf.Tensor[] } {
    const T = x.length / batch;
    if (seqIds && seqIds.length !== batch) throw new Error(`gradients: ${seqIds.length} sequence ids for a batch of ${batch}`);
    const ids = seqIds ?? Array.from({ length: batch }, (_, i) => i);
    const key = dropoutKey ? hashKey(...dropoutKey) : undefined;
    const vars = this.params.map((p) => p.variable);
    const step = Math.max(1, Math.min(microBatch, batch));
    let loss = 0;
    let acc: tf.Tensor[] | null = null;
    for (let b0 = 0; b0 < batch; b0 += step) {
      const n = Math.min(step, batch - b0);
      // made outside the gradient tape, which would otherwise keep every intermediate of the hash until backward
      const masks = key === undefined ? [] : this.dropoutMasks(key, ids.slice(b0, b0 + n), T);
      const { value, grads } = tf.tidy(() => {
        const xt = tf.tensor2d(x.subarray(b0 * T, (b0 + n) * T), [n, T], 'int32');
        const yt = tf.tensor1d(y.subarray(b0 * T, (b0 + n) * T), 'int32');
        return tf.variableGrads(() => GPT.crossEntropy(this.forward(xt, masks), yt), vars);
      });
      tf.dispose(masks);
      loss += (value.dataSync()[0]! * n) / batch;
      value.dispose();
      const g = vars.map((v) => grads[v.name]!);
      if (n === batch) return { loss, grads: g };
      const prev: tf.Tensor[] | null = acc;
      acc = tf.tidy(() => g.map((gi, i) => (prev ? tf.add(prev[i]!, tf.mul(gi, n / batch)) : tf.mul(gi, n / batch))));
      tf.dispose([...g, ...(prev ?? [])]);
    }
    return { loss, grads: acc! };
  }

  /** Sets every parameter from host arrays in `params` order and our layouts (checkpoints, the wire). */
  assignAll(values: readonly Float32Array[]): void {
    if (values.length !== this.params.length) throw new Error(`${values.length} tensors for a model of ${this.params.length} parameters`);
    this.params.forEach((p, i) => {
      if (values[i]!.length !== p.variable.size) throw new Error(`${p.name}: ${values[i]!.length} values, expected ${p.variable.size}`);
      tf.tidy(() => p.variable.assign(tf.tensor(values[i]!, p.shape)));
    });
  }

  /** Weights under nanoGPT's names and PyTorch layouts, lm_head included (tied to wte). */
  exportWeights(): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const p of this.params) {
      const t = p.transposed ? tf.transpose(p.variable) : p.variable;
      out.set(p.name, { shape: t.shape, data: t.dataSync() as Float32Array });
      if (p.transposed) t.dispose();
    }
    out.set('lm_head.weight', out.get('transformer.wte.weight')!);
    return out;
  }

  /**
   * Loads weights in nanoGPT's names and layouts: exactly this model's tensors, lm_head tied to wte, else it throws
   * naming what does not fit (shared/nanogpt-weights.ts); `dropExtra` drops tensors it has no place for instead,
   * and returns their names. Nothing is assigned unless everything fits.
   */
  importWeights(weights: ReadonlyMap<string, { shape: number[]; data: Float32Array }>, opts: { dropExtra?: boolean } = {}): WeightMatch {
    const expected = this.params.map((p) => ({ name: p.name, shape: p.transposed ? [...p.shape].reverse() : p.shape }));
    const match = matchNanoGptWeights(expected, weights, this.config, opts);
    for (const p of this.params) {
      const w = match.tensors.get(p.name)!;
      tf.tidy(() => {
        const t = tf.tensor(w.data, w.shape);
        p.variable.assign(p.transposed ? tf.transpose(t) : t);
      });
    }
    return match;
  }

  dispose(): void {
    for (const p of this.params) p.variable.dispose();
    this.causalBias.dispose();
  }
}
