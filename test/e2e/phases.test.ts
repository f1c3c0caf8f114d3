// Per-phase timing of whole runs: the phases add up to the step, the trace has a track per process.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA, readLog, runScript, tempDir } from '../helpers.ts';

const PHASES_W = ['compute', 'spectral', 'encode', 'transfer', 'wait', 'bytes_sent', 'bytes_received'];
const PHASES_C = ['step', 'reduce', 'spectral', 'optimizer', 'broadcast', 'encode', 'wait'];

for (const mode of ['synced', 'global']) {
  // the star's phases (--update coordinator); the owners' step reports its phases in `done` but has no record of them yet
  t.test(`${mode} (--update coordinator): per-phase records add up to the step time, and the trace has a track per process`, async (t) => {
    const dir = tempDir('smi-phases-');
    const trace = join(dir, 'trace.json');
    const r = await runScript('train', ['--preset', 'test', '--data', DATA, '--max-iters', '15', '--eval-interval', '15', '--workers', '2', '--spectral', mode, '--update', 'coordinator', '--out', join(dir, 'run'), '--trace', trace]);
    t.equal(r.code, 0, 'run exits 0', { output: r.stdout + r.stderr });
    t.match(r.stdout, /overhead \d+\.\d% of .* ms\/step \| slowest \S+ \(\+\d+% compute vs fastest\) \| wire \d+\.\d MB\/s/, 'console summary');
    const steps = readLog(join(dir, 'run')).filter((x) => x.kind === 'step');
    t.equal(steps.length, 15);
    let worst = 0;
    for (const s of steps) {
      const p = s.phases as { coordinator: Record<string, number>; workers: Record<string, Record<string, number>> };
      t.same(Object.keys(p.coordinator).sort(), [...PHASES_C].sort(), `step ${s.step}: coordinator phases`);
      t.equal(Object.keys(p.workers).length, 2, `step ${s.step}: a phases object per worker`);
      const c = p.coordinator;
      t.ok(Object.values(c).every((v) => v >= 0), 'coordinator phases are non-negative');
      for (const w of Object.values(p.workers)) {
        t.same(Object.keys(w).sort(), [...PHASES_W].sort());
        t.ok(Object.values(w).every((v) => v >= 0), 'worker phases are non-negative');
        t.ok(w.bytes_sent! > 0 && w.bytes_received! > 0, 'bytes both ways');
        const sum = w.compute! + w.spectral! + w.encode! + w.transfer! + w.wait! + c.reduce! + c.spectral! + c.optimizer! + c.broadcast!;
        worst = Math.max(worst, Math.abs(sum - c.step!) / c.step!);
      }
    }
    t.ok(worst < 0.05, `every worker's phases add up to the step time within 5% (worst ${(100 * worst).toFixed(2)}%)`);

    const events = JSON.parse(readFileSync(trace, 'utf8')) as Record<string, unknown>[];
    t.ok(Array.isArray(events), 'the trace is a JSON array of trace events');
    const names = events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => (e.args as { name: string }).name);
    t.equal(names.length, 3, 'three tracks: the coordinator and two workers');
    t.ok(names.includes('coordinator') && names.filter((n) => n.startsWith('worker ')).length === 2);
    const spans = events.filter((e) => e.ph === 'X');
    t.ok(spans.every((e) => typeof e.ts === 'number' && typeof e.dur === 'number' && (e.dur as number) > 0 && e.pid === 1 && typeof e.tid === 'number' && typeof e.name === 'string'), 'complete events with ts, dur, pid, tid');
    const stepSpans = spans.filter((e) => e.name === 'step');
    t.equal(stepSpans.length, 15, 'a step span per step on the coordinator track');
    t.ok(spans.some((e) => e.name === 'compute' && e.tid !== 0), 'compute spans on worker tracks');
  });
}

t.test('--trace with --local is refused', async (t) => {
  const r = await runScript('train', ['--local', '--preset', 'test', '--data', DATA, '--trace', join(tempDir(), 'x.json')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /--trace records the coordinator/);
});
