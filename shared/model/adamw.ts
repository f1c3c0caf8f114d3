// AdamW with PyTorch's torch.optim.AdamW semantics: decoupled decay, bias-corrected moments, decay by rank.
import * as tf from '@tensorflow/tfjs';
import { wasmAdamW, wasmAdamWAvailable } from '../wasm/adamw.ts';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /**
   * 'auto' (the default): on the wasm backend one SIMD pass per tensor in its heap (shared/wasm/adamw.ts, the same
   * bits), elsewhere the tensor ops below; 'tensor': the tensor ops everywhere (tests and benchmarks).
   */
  engine?: 'auto' | 'tensor';
}

/** A moment variable holding `init`'s values; `init` itself is disposed (it would stay counted and keep the memory alive after dispose()). */
function moment(init: tf.Tensor): tf.Variable {
  const v = tf.variable(init, false);
  init.dispose();
  return v;
}

/**
 * Moments are created on first use and updated in one tf.tidy with assign() (on wasm: in place, by the fused pass;
 * they never leave this class but as copies). Tensors of rank >= 2 get
 * weight decay, the others (LayerNorm gains) none. State order for checkpoints: step, then m and v per
 * parameter in the order of `params`.
 */
export class AdamW {
  readonly opts: AdamWOptions;
  step = 0; // updates applied so far
  private m: tf.Variable[] = [];
  private v: tf.Variable[] = [];

  constructor(opts: AdamWOptions) {
    this.opts = opts;
  }

  /**
   * One update of `params` with gradients `grads` (same order) at learning rate `lr`. Does not dispose grads.
   * In parts (`part`): `params` is still every tensor of the optimizer, `grads` those of `part.indices` (in that
   * order), and every part of one update runs at the same step; the step count moves on with the `last` part.
   */
  apply(params: tf.Variable[], grads: tf.Tensor[], lr: number, part?: { indices: readonly number[]; last: boolean }): void {
    if (this.m.length === 0) {
      this.m = params.map((p) => moment(tf.zerosLike(p)));
      this.v = params.map((p) => moment(tf.zerosLike(p)));
    }
    const idx = part ? part.indices : params.map((_, i) => i);
    if (grads.length !== idx.length) throw new RangeError(`AdamW: ${grads.length} gradients for ${idx.length} tensors`);
    const ps = idx.map((i) => params[i]!);
    const ms = idx.map((i) => this.m[i]!);
    const vs = idx.map((i) => this.v[i]!);
    const step = this.step + 1;
    const done = !part || part.last;
    const { beta1, beta2, eps, weightDecay } = this.opts;
    const bc1 = 1 - beta1 ** step;
    const bc2Sqrt = Math.sqrt(1 - beta2 ** step);
    const stepSize = lr / bc1;
    if (this.opts.engine !== 'tensor' && wasmAdamWAvailable()) {
      // each constant rounded to float32 as a tensor op's scalar operand is
      const f = Math.fround;
      const decay = ps.map((p) => (p.rank >= 2 && weightDecay > 0 ? f(1 - lr * weightDecay) : 1));
      const c = { beta1: f(beta1), oneMinusBeta1: f(1 - beta1), beta2: f(beta2), oneMinusBeta2: f(1 - beta2), bc2Sqrt: f(bc2Sqrt), eps: f(eps), stepSize: f(stepSize) };
      wasmAdamW(ps, grads, ms, vs, decay, c); // checks every tensor before it writes any
      if (done) this.step = step;
      return;
    }
    if (done) this.step = step;
    tf.tidy(() => {
      ps.forEach((p, i) => {
        const g = grads[i]!;
        const m = ms[i]!.mul(beta1).add(g.mul(1 - beta1));
        const v = vs[i]!.mul(beta2).add(g.square().mul(1 - beta2));
        ms[i]!.assign(m);
        vs[i]!.assign(v);
        const decayed = p.rank >= 2 && weightDecay > 0 ? p.mul(1 - lr * weightDecay) : p;
        const denom = v.sqrt().div(bc2Sqrt).add(eps);
        p.assign(decayed.sub(m.div(denom).mul(stepSize)));
      });
    });
  }

  /** Moments in the documented order (m0, v0, m1, v1, …), as host arrays. */
  getState(): { step: number; moments: Float32Array[] } {
    const moments: Float32Array[] = [];
    this.m.forEach((m, i) => moments.push(m.dataSync() as Float32Array, this.v[i]!.dataSync() as Float32Array));
    return { step: this.step, moments };
  }

  setState(params: tf.Variable[], state: { step: number; moments: Float32Array[] }): void {
    this.dispose();
    this.step = state.step;
    if (state.moments.length === 0) return;
    if (state.moments.length !== 2 * params.length) throw new Error(`AdamW state has ${state.moments.length} moments, expected ${2 * params.length}`);
    this.m = params.map((p, i) => moment(tf.tensor(state.moments[2 * i]!, p.shape)));
    this.v = params.map((p, i) => moment(tf.tensor(state.moments[2 * i + 1]!, p.shape)));
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
    this.m = [];
    this.v = [];
  }
}
