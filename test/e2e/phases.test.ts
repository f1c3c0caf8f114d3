// Per-phase timing of whole runs: the phases add up to the step, the trace has a track per process (the star's and the owners').
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA, readLog, runScript, startScript, tempDir, waitForStep } from '../helpers.ts';

const PHASES_W = ['compute', 'spectral', 'encode', 'transfer', 'wait', 'bytes_sent', 'bytes_received'];
const PHASES_C = ['step', 'reduce', 'spectral', 'optimizer', 'broadcast', 'encode', 'wait'];

for (const mode of ['synced', 'global']) {
  // the star's phases (--update coordinator); the owners' are below
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

const OWNER_PHASES = ['compute', 'spectral', 'reduce_scatter', 'reduce', 'update', 'all_gather_send'];
type TraceEvent = { name: string; ph: string; pid: number; tid: number; ts: number; dur: number; args: { name?: string; step?: number } };

for (const mode of ['synced', 'global']) {
  t.test(`${mode} (--update owners): each worker's phases and bytes in owners_step; the trace has a track per process with the owners' phases on the coordinator's clock; /metrics shows bytes per process and the plan`, async (t) => {
    const dir = tempDir('smi-phases-owners-');
    const out = join(dir, 'run');
    const trace = join(dir, 'trace.json');
    // 40 steps: the run is still going when /metrics is read at step 3
    const coord = startScript('coordinator/main', ['--preset', 'test', '--data', DATA, '--max-iters', '40', '--eval-interval', '40', '--spectral', mode, '--out', out, '--port', '0', '--host', '127.0.0.1', '--token', 'tok', '--min-workers', '2', '--trace', trace]);
    const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
    const workers = [0, 1].map(() => startScript('worker/main', ['--connect', `ws://127.0.0.1:${port}`, '--token', 'tok', '--listen', '127.0.0.1:0']));
    await waitForStep(out, 3);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    t.equal(await coord.exited, 0, 'the run finishes', { output: coord.output() });
    for (const w of workers) t.equal(await w.exited, 0, 'a worker ends cleanly');

    const steps = readLog(out).filter((x) => x.kind === 'step') as { step: number; ms: number; owners_step: Record<string, { phases: Record<string, number>; sent: number; received: number; one_way_ms: number }>; owners_plan?: { version: number; owners: { worker: string; tensors: number; params: number }[] }; coordinator_bytes: { sent: number; received: number } }[];
    t.equal(steps.length, 40);
    const ids = Object.keys(steps[0]!.owners_step).sort();
    t.equal(ids.length, 2, 'two workers in every step');
    t.ok(steps[0]!.owners_plan && steps[0]!.owners_plan.owners.length === 2, 'the first step carries the plan: both workers own tensors');
    t.ok(steps.slice(1).every((s) => !s.owners_plan), 'and no later one (the plan did not change)');
    let bad = 0;
    for (const s of steps) {
      for (const [id, w] of Object.entries(s.owners_step)) {
        const keys = Object.keys(w.phases);
        if (!keys.every((k) => OWNER_PHASES.includes(k))) bad++, t.fail(`step ${s.step} ${id}: phases ${keys}`);
        if (!['compute', 'reduce_scatter', 'reduce', 'update', 'all_gather_send'].every((k) => w.phases[k]! >= 0)) bad++, t.fail(`step ${s.step} ${id}: an owner's phase is missing or negative`);
        // the worker's phases run one after another within the step (the reduce may run while its shares drain)
        const serial = w.phases.compute! + (w.phases.spectral ?? 0) + w.phases.update! + w.phases.all_gather_send!;
        if (!(serial <= s.ms * 1.05)) bad++, t.fail(`step ${s.step} ${id}: phases ${serial.toFixed(1)} ms in a ${s.ms.toFixed(1)} ms step`);
        if (!(w.sent > 0 && w.received > 0 && w.one_way_ms >= 0)) bad++, t.fail(`step ${s.step} ${id}: bytes ${w.sent}/${w.received}, one-way ${w.one_way_ms}`);
      }
      if (!(s.coordinator_bytes.sent > 0 && s.coordinator_bytes.received > 0)) bad++, t.fail(`step ${s.step}: the coordinator's bytes`);
    }
    t.equal(bad, 0, 'every step: each worker\'s phases are the owners\' vocabulary, ≥ 0, within the step; bytes counted');

    const events = JSON.parse(readFileSync(trace, 'utf8')) as TraceEvent[];
    const tracks = new Map(events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [e.tid, e.args.name!]));
    t.same([...tracks.values()].sort(), ['coordinator', ...ids.map((id) => `worker ${id}`)].sort(), 'a track per process: the coordinator and each worker');
    const spans = events.filter((e) => e.ph === 'X');
    t.ok(spans.every((e) => Number.isFinite(e.ts) && Number.isFinite(e.dur) && e.dur >= 0 && tracks.has(e.tid)), 'complete events, durations ≥ 0, each on a named track');
    for (const [tid, name] of tracks) {
      const ts = spans.filter((e) => e.tid === tid).map((e) => e.ts);
      t.ok(ts.length > 0 && ts.every((x, i) => i === 0 || x >= ts[i - 1]!), `${name}: ${ts.length} spans, ts monotone`);
    }
    const coordTid = [...tracks].find(([, n]) => n === 'coordinator')![0];
    const stepSpans = spans.filter((e) => e.tid === coordTid && e.name === 'step');
    t.equal(stepSpans.length, 40, 'a step span per step on the coordinator track');
    t.ok(['task', 'await_reduced', 'clip', 'await_done'].every((n) => spans.some((e) => e.tid === coordTid && e.name === n)), "the coordinator's own phases");
    for (const [tid, name] of tracks) {
      if (tid === coordTid) continue;
      const names = new Set(spans.filter((e) => e.tid === tid).map((e) => e.name));
      t.ok(['compute', 'reduce_scatter', 'reduce', 'update', 'all_gather_send'].every((n) => names.has(n)), `${name}: the owner's phases (${[...names].join(', ')})`);
      // on the coordinator's clock: each of a step's worker spans within that step's span (1 µs of rounding)
      const outside = spans.filter((e) => e.tid === tid).filter((e) => {
        const st = stepSpans.find((x) => x.args.step === e.args.step)!;
        return e.ts < st.ts - 1 || e.ts + e.dur > st.ts + st.dur + 2;
      });
      t.equal(outside.length, 0, `${name}: every span within its step on the coordinator's clock`);
    }

    const byProcess = (proc: string, d: string) => Number(new RegExp(`^smi_process_step_bytes\\{process="${proc}",direction="${d}"\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
    for (const proc of ['coordinator', ...ids]) t.ok(byProcess(proc, 'sent') > 0 && byProcess(proc, 'received') > 0, `/metrics: ${proc}'s bytes sent and received in the last step`);
    const plan = steps[0]!.owners_plan!;
    for (const o of plan.owners) {
      t.match(metrics, new RegExp(`^smi_owner_tensors\\{worker="${o.worker}"\\} ${o.tensors}$`, 'm'), `/metrics: ${o.worker} owns ${o.tensors} tensors`);
      t.match(metrics, new RegExp(`^smi_owner_params\\{worker="${o.worker}"\\} ${o.params}$`, 'm'), `/metrics: … and ${o.params} values`);
    }
    t.match(metrics, new RegExp(`^smi_plan_version ${plan.version}$`, 'm'));
  });
}

t.test('--trace with --local is refused', async (t) => {
  const r = await runScript('train', ['--local', '--preset', 'test', '--data', DATA, '--trace', join(tempDir(), 'x.json')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /--trace records the coordinator/);
});
