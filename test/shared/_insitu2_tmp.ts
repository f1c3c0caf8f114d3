import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../shared/backend.ts';
import { resolveConfig, lrAt } from '../../shared/config.ts';
import { DEFAULT_DATA_PATH, loadCorpus, makeBatch, trainOffsets } from '../../shared/data.ts';
import { STREAM } from '../../shared/rng.ts';
import { clipGlobalNorm } from '../../shared/adamw.ts';
import { createRunState } from '../../shared/train.ts';
const corpus = loadCorpus(DEFAULT_DATA_PATH);
const backend = await initBackend('auto');
const mk = (smi: 'cosine' | 'baseline') => { const cfg = resolveConfig({ preset: 'cpu', smi }, corpus.chars.length); return { cfg, st: createRunState(cfg, backend), t: [] as number[][] }; };
const runs = [mk('baseline'), mk('cosine')];
for (let step = 1; step <= 43; step++) {
  for (const r of step % 2 ? runs : [...runs].reverse()) {
    const { cfg, st } = r;
    const { x, y } = makeBatch(corpus.train, trainOffsets(cfg.seed, step, cfg.batch_size, cfg.block_size, corpus.train.length), cfg.block_size);
    const t0 = performance.now();
    const { grads } = st.model.gradients(x, y, cfg.batch_size, [cfg.seed, STREAM.dropout, step]);
    const t1 = performance.now();
    const { grads: clipped } = clipGlobalNorm(grads, cfg.grad_clip);
    tf.dispose(grads);
    const t2 = performance.now();
    let final = clipped;
    if (st.smi) { final = st.smi.apply(clipped.map((tensor, i) => ({ name: st.model.params[i]!.name, tensor })), step, cfg.max_iters).map((n) => n.tensor); tf.dispose(clipped); }
    const t3 = performance.now();
    st.opt.apply(st.model.params.map((p) => p.variable), final, lrAt(cfg, step - 1));
    tf.dispose(final);
    const t4 = performance.now();
    if (step > 3) r.t.push([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0]);
  }
}
const med = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
for (const [i, r] of runs.entries()) console.log(i ? 'cosine  ' : 'baseline', ['fwdbwd', 'clip', 'smi', 'adam', 'total'].map((n, j) => `${n} ${med(r.t.map((x) => x[j])).toFixed(2)}`).join('  '));
