// worker/owners-step.ts: two workers in this process, each owning half the tensors, step over real links; their replicas stay equal and numTensors stays flat.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../shared/backend/backend.ts';
import { resolveConfig } from '../../shared/config.ts';
import { loadCorpus, trainOffsets } from '../../shared/model/data.ts';
import { ProtocolError } from '../../shared/errors.ts';
import { encodeMessage, MessageAssembler } from '../../shared/net/frames.ts';
import { parseMessage, type Message } from '../../shared/net/protocol.ts';
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

const shareBytes: Record<string, number> = {}; // `${spectral} ${wire}` → the bytes worker A sent to B's tensors at step 2

for (const [spectral, wire, parts] of [['global', 'fp32', false], ['synced', 'fp32', false], ['global', 'bf16', false], ['synced', 'bf16', false], ['global', 'fp32', true], ['synced', 'fp32', true]] as const) {
  t.test(`${spectral}, shares in ${wire}${parts ? ', values in a part per tensor' : ''}: two owners over real links, 6 steps: every step both replicas hold the same weights; numTensors flat`, async (t) => {
    const info = await initBackend('wasm');
    const cfg = resolveConfig({ preset: 'test', smi: 'cosine', spectral, wireDtype: wire, overrides: { max_iters: 6 } }, corpus.chars.length);
    const ids = ['A', 'B'];
    const got: Record<string, Message[]> = { A: [], B: [] };
    const valuesIn: Record<string, number> = { A: 0, B: 0 }; // values messages each took in, this step
    const workers = ids.map((id) => {
      const compute = new WorkerCompute(cfg, info);
      let step: OwnersStep | null = null;
      const ex = new Exchange({ token: 'tok', log: () => {}, onMessage: (m, from, _in, link) => (m.type === 'values' && valuesIn[id]!++, step!.data(m, from, link)) });
      step = new OwnersStep(() => compute, ex, info, async (m) => void got[id]!.push(m), () => ({ sent: 0, received: 0 }), () => {}, (what, e) => t.fail(`${id} ${what}: ${(e as Error).message}`));
      step.selfId = id;
      if (parts) step.partValues = 1;
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
      for (const id of ids) {
        got[id] = [];
        valuesIn[id] = 0;
      }
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
      t.same([valuesIn.A, valuesIn.B], parts ? [owners[1]!.tensors.length, owners[0]!.tensors.length] : [1, 1], `step ${k}: values in ${valuesIn.A} and ${valuesIn.B} message(s)`);
      const doneA = got.A!.find((m) => m.type === 'done') as Extract<Message, { type: 'done' }>;
      if (k === 2 && !parts) shareBytes[`${spectral} ${wire}`] = doneA.links!.sharesSent;
      t.ok(doneA.links!.sharesSent > 0 && doneA.links!.valuesReceived > 0, `step ${k}: A's bytes toward the owner and back counted (${doneA.links!.sharesSent}, ${doneA.links!.valuesReceived})`);
      t.ok(doneA.cpuMs! > 0, `step ${k}: A's CPU time in the step reported (${doneA.cpuMs} ms)`);
      if (spectral === 'synced') {
        t.ok(doneA.phases.spectral! > 0, `step ${k}: owner A computed its shares' magnitudes (spectral ${doneA.phases.spectral?.toFixed(2)} ms)`);
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

t.test('bf16 shares are about half the bytes of fp32 ones; synced shares are the gradients alone, as global ones', async (t) => {
  for (const spectral of ['global', 'synced']) {
    const [f, b] = [shareBytes[`${spectral} fp32`]!, shareBytes[`${spectral} bf16`]!];
    t.ok(f > 0 && b > 0, `${spectral}: counted (${f}, ${b} bytes)`);
    t.ok(b / f > 0.49 && b / f < 0.52, `${spectral}: bf16 / fp32 = ${(b / f).toFixed(4)}`);
  }
  for (const wire of ['fp32', 'bf16']) {
    const [g, s] = [shareBytes[`global ${wire}`]!, shareBytes[`synced ${wire}`]!];
    t.ok(Math.abs(g - s) <= 16, `${wire}: a synced share (${s} bytes) carries no magnitudes: a global one's size (${g})`);
  }
});

t.test('bf16 run: an owner decodes each share and checks its dtype, shape and finiteness before it reaches a mean; the sender is named', async (t) => {
  const info = await initBackend('wasm');
  const cfg = resolveConfig({ preset: 'test', smi: 'cosine', spectral: 'global', wireDtype: 'bf16', overrides: { max_iters: 2 } }, corpus.chars.length);
  const compute = new WorkerCompute(cfg, info);
  const toCoordinator: Message[] = [];
  let step: OwnersStep | null = null;
  const ex = new Exchange({ token: 'tok', log: () => {}, onMessage: (m, from, _in, link) => step!.data(m, from, link) });
  step = new OwnersStep(() => compute, ex, info, async (m) => void toCoordinator.push(m), () => ({ sent: 0, received: 0 }), () => {}, (what, e) => t.fail(`${what}: ${(e as Error).message}`));
  step.selfId = 'B';
  ex.setSelf('B');
  const url = await ex.listen('127.0.0.1', 0);
  const params = compute.model.params;
  const all = [...params.keys()];
  const weights = params.map((p) => p.variable.dataSync() as Float32Array);
  await step.load({ type: 'load', planVersion: 1, step: 0, members: ['A', 'B'], owners: [{ workerId: 'B', url, tensors: all }], weights });
  const offsets = trainOffsets(cfg.seed, 1, cfg.batch_size, cfg.block_size, corpus.train.length);
  const chunks = splitBatch(offsets, 2);
  const sequences = chunks.map((c) => c.length);
  await step.runTask({ type: 'task', step: 1, round: 0, planVersion: 1, sequences, holders: ['A', 'B'], mine: [{ index: 1, offsets: chunks[1]!, tokens: tokenWindows(corpus.train, chunks[1]!, cfg.block_size) }] });
  const good = () => params.map((p) => new Uint16Array(p.variable.size).fill(0x3c00)); // bf16 1/128
  const share = (tensors: Float32Array[] | Uint16Array[], extra: object = { dtype: 'bf16' }) => () => step!.data({ type: 'share', step: 1, round: 0, chunk: 0, tensors, ...extra } as Message, 'A');
  const throwsCode = (fn: () => void, code: string, what: string) => {
    const before = toCoordinator.length;
    try {
      fn();
      t.fail(`${what}: did not throw`);
    } catch (e) {
      t.ok(e instanceof ProtocolError && e.code === code, `${what}: ${code} (${(e as Error).message})`);
    }
    const r = toCoordinator.slice(before).find((m) => m.type === 'rejected') as Extract<Message, { type: 'rejected' }> | undefined;
    t.ok(r && r.chunk === 0 && r.code === code, `${what}: the coordinator is told chunk 0's holder sent it`);
  };
  throwsCode(share(good().slice(1)), 'E_SHAPE', 'a tensor missing');
  const short = good();
  short[0] = short[0]!.subarray(1);
  throwsCode(share(short), 'E_SHAPE', 'a tensor one value short');
  const nan = good();
  nan[2]![5] = 0x7fc0; // bf16 NaN
  throwsCode(share(nan), 'E_NONFINITE', 'a bf16 NaN');
  const inf = good();
  inf[0]![0] = 0xff80; // bf16 −Inf
  throwsCode(share(inf), 'E_NONFINITE', 'a bf16 −Inf');
  throwsCode(share(params.map((p) => new Float32Array(p.variable.size)), {}), 'E_UNEXPECTED', 'an fp32 share in a bf16 run');
  t.notOk(toCoordinator.some((m) => m.type === 'reduced'), 'nothing refused was reduced');
  share(good())();
  await until(() => toCoordinator.some((m) => m.type === 'reduced'));
  const r = toCoordinator.find((m) => m.type === 'reduced') as Extract<Message, { type: 'reduced' }>;
  t.ok(r.ss.every((x) => Number.isFinite(x) && x > 0), 'a good bf16 share is decoded and reduced');
  step.dispose();
  await ex.close();
  compute.dispose();
});

t.test('the guard: a bf16 share holds Uint16Array sections only, an fp32 one Float32Array only (E_MALFORMED)', async (t) => {
  const base = { type: 'share', step: 1, round: 0, chunk: 0 };
  const code = (m: object) => {
    try {
      parseMessage(m);
      return 'ok';
    } catch (e) {
      return (e as ProtocolError).code;
    }
  };
  t.equal(code({ ...base, tensors: [new Uint16Array(4)], dtype: 'bf16' }), 'ok');
  t.equal(code({ ...base, tensors: [new Float32Array(4)], dtype: 'bf16' }), 'E_MALFORMED', 'a Float32Array in a bf16 share');
  t.equal(code({ ...base, tensors: [new Uint16Array(4)], magnitudes: [new Uint16Array(3)], dtype: 'bf16' }), 'E_MALFORMED', 'magnitudes: not a share field since protocol 5 (the owner computes them)');
  t.equal(code({ ...base, tensors: [new Uint16Array(4)] }), 'E_MALFORMED', 'a Uint16Array in an fp32 share');
  t.equal(code({ ...base, tensors: [new Float32Array(4)], dtype: 'fp16' }), 'E_MALFORMED', 'a dtype other than bf16');
  // through the frames: a bf16 share's sections arrive as Uint16Array, 2 bytes a value
  const sent = Uint16Array.of(0x3f80, 0xbf80, 0x7f80, 0);
  const frames = encodeMessage({ ...base, tensors: [sent], dtype: 'bf16' } as Message);
  const asm = new MessageAssembler();
  const got = frames.map((f) => asm.push(f)).find((m) => m !== null) as Extract<Message, { type: 'share' }>;
  t.ok(got.tensors[0] instanceof Uint16Array && got.tensors[0].length === 4, 'decoded as a Uint16Array');
  t.same([...got.tensors[0]!], [...sent], 'the same bits');
});
