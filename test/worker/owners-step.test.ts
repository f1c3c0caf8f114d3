// worker/owners-step.ts: two workers in this process, each owning half the tensors, step over real links; their replicas stay equal and numTensors stays flat.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../shared/backend/backend.ts';
import { resolveConfig } from '../../shared/config.ts';
import { loadCorpus, trainOffsets } from '../../shared/model/data.ts';
import type { Message } from '../../shared/net/protocol.ts';
import { splitBatch, tokenWindows } from '../../shared/parallel/batch.ts';
import { disposeFft } from '../../shared/smi/fft.ts';
import { alphaAt, SMI_RUNS } from '../../shared/smi/runs.ts';
import { globalClip } from '../../shared/train/step.ts';
import { WorkerCompute } from '../../worker/compute.ts';
import { Exchange } from '../../worker/exchange.ts';
import { OwnersStep } from '../../worker/owners-step.ts';
import { DATA } from '../helpers.ts';

t.teardown(() => disposeFft());
const corpus = loadCorpus(DATA);

/** Resolves once `pred()` holds, checking after each turn of the event loop (the links deliver in between). */
async function until(pred: () => boolean): Promise<void> {
  while (!pred()) await new Promise((r) => setImmediate(r));
}

for (const spectral of ['global', 'synced'] as const) {
  t.test(`${spectral}: two owners over real links, 6 steps: every step both replicas hold the same weights; numTensors flat`, async (t) => {
    const info = await initBackend('wasm');
    const cfg = resolveConfig({ preset: 'test', smi: 'cosine', spectral, overrides: { max_iters: 6 } }, corpus.chars.length);
    const ids = ['A', 'B'];
    const got: Record<string, Message[]> = { A: [], B: [] };
    const workers = ids.map((id) => {
      const compute = new WorkerCompute(cfg, info);
      let step: OwnersStep | null = null;
      const ex = new Exchange({ token: 'tok', log: () => {}, onMessage: (m, from, _in, link) => step!.data(m, from, link) });
      step = new OwnersStep(() => compute, ex, info, async (m) => void got[id]!.push(m), () => ({ sent: 0, received: 0 }), () => {}, (what, e) => t.fail(`${id} ${what}: ${(e as Error).message}`));
      step.selfId = id;
      ex.setSelf(id);
      return { id, compute, ex, step };
    });
    const urls = await Promise.all(workers.map((w) => w.ex.listen('127.0.0.1', 0)));
    const n = workers[0]!.compute.model.params.length;
    const owners = ids.map((id, o) => ({ workerId: id, url: urls[o]!, tensors: [...Array(n).keys()].filter((j) => j % 2 === o) }));
    const weights = workers[0]!.compute.model.params.map((p) => p.variable.dataSync() as Float32Array);
    await Promise.all(workers.map((w) => w.step.load({ type: 'load', planVersion: 1, step: 0, members: ids, owners, weights })));
    const counts: number[] = [];
    for (let k = 1; k <= 6; k++) {
      for (const id of ids) got[id] = [];
      const offsets = trainOffsets(cfg.seed, k, cfg.batch_size, cfg.block_size, corpus.train.length);
      const chunks = splitBatch(offsets, 2);
      const sequences = chunks.map((c) => c.length);
      await Promise.all(workers.map((w, c) => w.step.runTask({ type: 'task', step: k, round: 0, planVersion: 1, sequences, holders: ids, mine: [{ index: c, offsets: chunks[c]!, tokens: tokenWindows(corpus.train, chunks[c]!, cfg.block_size) }] })));
      await until(() => ids.every((id) => got[id]!.some((m) => m.type === 'reduced')));
      // the coordinator's part: the per-tensor sums in parameter order, κ
      const per = new Array<number>(n);
      for (const [o, id] of ids.entries()) {
        const r = got[id]!.find((m) => m.type === 'reduced') as Extract<Message, { type: 'reduced' }>;
        owners[o]!.tensors.forEach((j, i) => (per[j] = r.ss[i]!));
      }
      let total = 0;
      for (const s of per) total = spectral === 'global' ? Math.fround(total + s) : total + s;
      const { coef } = globalClip([total], cfg.grad_clip, k, spectral === 'global');
      const alpha = alphaAt(SMI_RUNS.cosine, k, cfg.max_iters);
      await Promise.all(workers.map((w) => w.step.commit({ type: 'commit', step: k, round: 0, clip: coef, lr: 1e-3, alpha })));
      await until(() => ids.every((id) => got[id]!.some((m) => m.type === 'done')));
      const [a, b] = workers.map((w) => w.compute.model.params.map((p) => p.variable.dataSync() as Float32Array));
      const same = a!.every((x, j) => x.every((v, i) => v === b![j]![i]));
      t.ok(same, `step ${k}: both replicas hold the same weights`);
      if (spectral === 'synced') {
        const sums = ids.map((id) => (got[id]!.find((m) => m.type === 'done') as Extract<Message, { type: 'done' }>).maskChecksums);
        t.same(sums.map((s) => s?.length), owners.map((o) => o.tensors.length), `step ${k}: each owner reports a mask checksum per tensor`);
      }
      counts.push(tf.memory().numTensors);
    }
    t.ok(counts.slice(1).every((c) => c === counts[1]), `numTensors flat from step 2 (${counts.join(', ')})`);
    t.not(weights.map((x) => x[0]).join(), workers[0]!.compute.model.params.map((p) => (p.variable.dataSync() as Float32Array)[0]).join(), 'the weights moved');
    for (const w of workers) {
      w.step.dispose();
      await w.ex.close();
      w.compute.dispose();
    }
  });
}
