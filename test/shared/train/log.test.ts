// The log schema's derived figures (shared/train/log.ts): step wall time, slowest compute, overhead, tokens/s, E(N); the writer.
import t from 'tap';
import { efficiency, medianOverhead, overhead, RunLog, slowestComputeMs, stepWallMs, tokensPerSec, type StepRecord } from '../../../shared/train/log.ts';
import { tempDir } from '../../helpers.ts';

const step = (over: Partial<StepRecord> = {}): StepRecord => ({ kind: 'step', step: 1, loss: 4, lr: 1e-3, alpha: 0.1, ms: 100, tokens: 128, workers: 2, grad_norm: 1, ...over });
const phases = (stepMs: number, computes: number[]) => ({
  coordinator: { step: stepMs, reduce: 0, spectral: 0, optimizer: 0, broadcast: 0, encode: 0, wait: 0 },
  workers: Object.fromEntries(computes.map((c, i) => [`w${i}`, { compute: c, spectral: 0, encode: 0, transfer: 0, wait: 0, bytes_sent: 0, bytes_received: 0 }])),
});

t.test('wall time and compute: from the phases when there are any, else ms and compute_ms', async (t) => {
  t.equal(stepWallMs(step()), 100, 'one process: the loop\'s ms');
  t.equal(stepWallMs(step({ phases: phases(90, [10]) })), 90, "distributed: the coordinator's step");
  t.equal(slowestComputeMs(step({ compute_ms: 70 })), 70);
  t.equal(slowestComputeMs(step({ compute_ms: 70, phases: phases(90, [40, 60]) })), 60, 'the slowest worker');
  t.equal(slowestComputeMs(step()), null, 'no compute time');
});

t.test('overhead = 1 − compute/wall, held to [0, 1], null without compute; the median over steps', async (t) => {
  t.equal(overhead(step({ compute_ms: 80 })), 1 - 80 / 100);
  t.equal(overhead(step({ phases: phases(50, [60]) })), 0, 'a compute longer than the step (clock skew) is no negative overhead');
  t.equal(overhead(step()), null);
  t.equal(medianOverhead([step({ compute_ms: 90 }), step({ compute_ms: 50 }), step({ compute_ms: 80 }), step()]), 1 - 80 / 100, 'steps without compute left out');
  t.ok(Number.isNaN(medianOverhead([step()])), 'none: NaN');
});

t.test('tokens/s and scaling efficiency', async (t) => {
  t.equal(tokensPerSec(128, 100), 1280);
  t.equal(tokensPerSec(128, 0), 0);
  t.equal(efficiency(1800, 2, 1000), 0.9, 'E(2) = tps(2) / (2·tps(1))');
  t.equal(efficiency(3600, 4, 1800, 2), 1, 'against a 2-worker baseline');
});

t.test('RunLog: one JSON object a line; truncateAfter drops the steps a resume runs again', async (t) => {
  const dir = tempDir('smi-log-');
  const seen: string[] = [];
  const log = new RunLog(dir, (r) => seen.push(r.kind));
  log.write({ kind: 'start', step: 0, backend: 'cpu', device: 'cpu', params: 1, resumed: false });
  for (let k = 1; k <= 4; k++) log.write(step({ step: k }));
  log.write({ kind: 'eval', step: 4, train_loss: 1, val_loss: 2 });
  log.write({ kind: 'done', step: 4, ms: 400, tokens_per_sec: 1280, train_loss: 1, val_loss: 2 });
  t.same(seen, ['start', 'step', 'step', 'step', 'step', 'eval', 'done'], 'every record reaches the listener');
  log.truncateAfter(2);
  t.same(log.read().map((r) => `${r.kind}${r.step}`), ['start0', 'step1', 'step2'], 'after step 2: kept the start and steps 1–2');
});
