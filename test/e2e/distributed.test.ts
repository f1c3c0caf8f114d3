// Whole distributed runs: every spectral mode against --local, the shared mask, membership, kills, timeouts, resume.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA, freePort, maxRelativeDiff, readLog, runScript, startScript, tempDir, waitForStep, weights } from '../helpers.ts';
import { standInEnv } from '../standin/env.ts';

// ~30 whole runs of child processes: about 6 min on a quiet 2-core machine, over tap's 600 s when it is shared
t.setTimeout(1_200_000);

const steps = (dir: string) => readLog(dir).filter((r) => r.kind === 'step');

const small = ['--preset', 'test', '--data', DATA, '--max-iters', '20', '--eval-interval', '10', '--smi', 'cosine'];

t.test('global mode with 1, 2 and 3 workers reproduces --local; synced with 1 worker too (mask at the coordinator or the worker)', async (t) => {
  const dir = tempDir('smi-dist-');
  const local = join(dir, 'local');
  const r = await runScript('train', ['--local', ...small, '--out', local]);
  t.equal(r.code, 0, r.stderr);
  const ref = weights(local);
  const runs: [string, string[]][] = [
    ['global-1', ['--workers', '1', '--spectral', 'global']],
    ['global-2', ['--workers', '2', '--spectral', 'global']],
    ['global-3', ['--workers', '3', '--spectral', 'global']],
    ['synced-1', ['--workers', '1', '--spectral', 'synced']],
    ['synced-1-workers-blend', ['--workers', '1', '--spectral', 'synced', '--synced-blend', 'workers']],
  ];
  for (const [name, flags] of runs) {
    const out = join(dir, name);
    const d = await runScript('train', [...small, ...flags, '--out', out]);
    t.equal(d.code, 0, `${name} exits 0`, { output: d.stdout + d.stderr });
    const diff = maxRelativeDiff(weights(out), ref);
    t.ok(diff < 1e-5, `${name}: final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
    const workers = Number(flags[1]);
    t.ok(steps(out).every((s) => s.workers === workers), `${name}: every step used ${workers} worker(s)`);
    const lo = steps(local).map((s) => s.loss as number);
    t.ok(steps(out).every((s, i) => Math.abs((s.loss as number) - lo[i]!) < 1e-4), `${name}: the loss of every step matches --local`);
  }
});

t.test('--update owners: a compute-only worker (--compute-only) takes part; the star (--update coordinator) gives the same run; a bad --commit-interval is refused', async (t) => {
  const dir = tempDir('smi-owners-');
  const local = join(dir, 'local');
  const r = await runScript('train', ['--local', ...small, '--out', local]);
  t.equal(r.code, 0, r.stderr);
  const ref = weights(local);
  const out = join(dir, 'compute-only');
  const coord = startScript('coordinator/main', [...small, '--spectral', 'global', '--out', out, '--port', '0', '--token', 'tok', '--min-workers', '2']);
  const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
  const url = `ws://127.0.0.1:${port}`;
  const owner = startScript('worker/main', ['--connect', url, '--token', 'tok', '--listen', '127.0.0.1:0']);
  const computer = startScript('worker/main', ['--connect', url, '--token', 'tok', '--compute-only']);
  t.equal(await coord.exited, 0, 'the coordinator finishes the run', { output: coord.output() });
  t.equal(await owner.exited, 0, 'the owner ends cleanly');
  t.equal(await computer.exited, 0, 'the compute-only worker ends cleanly');
  t.match(coord.output(), /plan \d+ at step 0: \S+ owns 15 tensors .*; 1 compute-only/, 'one owner holds every tensor, one worker only computes');
  t.ok(steps(out).every((s) => s.workers === 2), 'every step computed by both');
  const diff = maxRelativeDiff(weights(out), ref);
  t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
  const star = join(dir, 'star');
  const d = await runScript('train', [...small, '--workers', '2', '--spectral', 'global', '--update', 'coordinator', '--out', star]);
  t.equal(d.code, 0, '--update coordinator exits 0', { output: d.stdout + d.stderr });
  const sd = maxRelativeDiff(weights(star), weights(out));
  t.ok(sd < 1e-5, `the star's final weights within 1e-5 relative of the owners' (${sd.toExponential(2)})`);
  const bad = await runScript('train', [...small, '--workers', '1', '--commit-interval', '0', '--out', join(dir, 'bad')]);
  t.equal(bad.code, 2, '--commit-interval 0: exit 2');
  t.match(bad.stderr, /E_BAD_FLAG.*--commit-interval takes a positive number of steps, got 0/);
});

t.test('synced mode: every worker applies the identical mask at every step; applying it once at the coordinator is the same update', async (t) => {
  const dir = tempDir('smi-synced-');
  const out = join(dir, 'workers-blend');
  const d = await runScript('train', [...small, '--workers', '2', '--spectral', 'synced', '--synced-blend', 'workers', '--update', 'coordinator', '--out', out]);
  t.equal(d.code, 0, d.stderr);
  const s = steps(out);
  t.equal(s.length, 20);
  for (const rec of s) {
    const sums = rec.mask_checksums as number[];
    t.equal(sums.length, 2, `step ${rec.step}: a checksum from each of the 2 chunks`);
    t.ok(sums.every((c) => c === rec.mask_checksum), `step ${rec.step}: workers' masks equal the shared mask (${rec.mask_checksum})`);
  }
  t.ok(new Set(s.map((r) => r.mask_checksum)).size > 1, 'the mask changes over steps');

  // the star's one round trip: the shared mask applied once to the mean gradient (linear for a fixed mask)
  const one = join(dir, 'coordinator-blend');
  const c = await runScript('train', [...small, '--workers', '2', '--spectral', 'synced', '--update', 'coordinator', '--out', one]);
  t.equal(c.code, 0, c.stderr);
  const s1 = steps(one);
  t.equal(s1.length, 20);
  t.ok(s1.every((r) => r.workers === 2 && r.mask_checksums === undefined), 'every step on 2 workers, no worker-side masks');
  t.equal(s1[0]!.mask_checksum, s[0]!.mask_checksum, 'step 1 (the same weights): the same shared mask');
  const diff = maxRelativeDiff(weights(one), weights(out));
  t.ok(diff < 1e-5, `final weights within 1e-5 relative of the two-round run (${diff.toExponential(2)})`);
  t.ok(s1.every((r, i) => Math.abs((r.loss as number) - (s[i]!.loss as number)) < 1e-4), 'the loss of every step matches');

  // the default (--update owners): each owner keeps its tensors' share of the one history and applies their masks once
  const owned = join(dir, 'owners');
  const o = await runScript('train', [...small, '--workers', '2', '--spectral', 'synced', '--out', owned]);
  t.equal(o.code, 0, o.stderr);
  t.match(o.stdout, /plan 1 at step 0: \S+ owns \d+ tensors .*, \S+ owns \d+ tensors/, 'two owners');
  const s2 = steps(owned);
  t.equal(s2.length, 20);
  t.ok(s2.every((r) => r.workers === 2 && typeof r.mask_checksum === 'number'), 'every step on 2 workers, with the owners\' combined mask checksum');
  t.ok(new Set(s2.map((r) => r.mask_checksum)).size > 1, 'the mask changes over steps');
  const od = maxRelativeDiff(weights(owned), weights(one));
  t.ok(od < 1e-5, `the owners' final weights within 1e-5 relative of the star's one-round run (${od.toExponential(2)})`);
  t.ok(s2.every((r, i) => Math.abs((r.loss as number) - (s1[i]!.loss as number)) < 1e-4), 'the loss of every step matches');

  // the owners' two-round form: each owner sends its tensors' masks to every holder, which blends its own spectrum
  const owned2 = join(dir, 'owners-workers-blend');
  const w2 = await runScript('train', [...small, '--workers', '2', '--spectral', 'synced', '--synced-blend', 'workers', '--out', owned2]);
  t.equal(w2.code, 0, w2.stderr);
  const s3 = steps(owned2);
  t.equal(s3.length, 20);
  for (const rec of s3) {
    const sums = rec.mask_checksums as number[];
    t.ok(sums.length === 2 && sums.every((c) => c === rec.mask_checksum), `step ${rec.step}: both holders applied the owners' masks (${rec.mask_checksum})`);
  }
  t.equal(s3[0]!.mask_checksum, s2[0]!.mask_checksum, 'step 1: the same masks as the owners\' one-round form');
  const wd = maxRelativeDiff(weights(owned2), weights(owned));
  t.ok(wd < 1e-5, `the owners' two-round final weights within 1e-5 relative of their one-round form (${wd.toExponential(2)})`);
  const sd = maxRelativeDiff(weights(owned2), weights(out));
  t.ok(sd < 1e-5, `and of the star's two-round run (${sd.toExponential(2)})`);
});

t.test('local mode (each worker its own history) trains, through the owners as on the star; --gpus starts one worker per listed GPU with CUDA_VISIBLE_DEVICES (stand-in nvidia-smi, no real GPU)', async (t) => {
  const dir = tempDir('smi-local-');
  const out = join(dir, 'local-mode');
  const d = await runScript('train', [...small, '--workers', '2', '--spectral', 'local', '--out', out]);
  t.equal(d.code, 0, 'local mode exits 0', { output: d.stdout + d.stderr });
  const e = readLog(out).filter((r) => r.kind === 'eval');
  t.ok((e.at(-1)!.val_loss as number) < (e[0]!.val_loss as number) - 0.3, 'the loss falls');
  // the default (--update owners): κ back to each holder, its own SMI, the blends to the owners; the star's arithmetic
  const star = join(dir, 'local-mode-star');
  const st = await runScript('train', [...small, '--workers', '2', '--spectral', 'local', '--update', 'coordinator', '--out', star]);
  t.equal(st.code, 0, 'local mode on the star exits 0', { output: st.stdout + st.stderr });
  const ld = maxRelativeDiff(weights(out), weights(star));
  t.ok(ld < 1e-5, `local mode: the owners' final weights within 1e-5 relative of the star's (${ld.toExponential(2)})`);
  // The stand-in nvidia-smi lists four H100s; no tfjs-node is installed, so the workers fall back to wasm.
  const g = join(dir, 'gpus');
  const r = await runScript('train', [...small, '--gpus', '0,2', '--max-iters', '2', '--out', g], { env: { ...standInEnv({ packages: '' }) } });
  t.equal(r.code, 0, '--gpus run exits 0 (workers on wasm)', { output: r.stdout + r.stderr });
  const logs = [0, 1].map((i) => readFileSync(join(g, `worker-${i}.log`), 'utf8'));
  t.match(logs[0], /CUDA_VISIBLE_DEVICES=0\b/);
  t.match(logs[1], /CUDA_VISIBLE_DEVICES=2\b/);
  t.match(logs[0], /tfjs-node-gpu did not load .*backend: wasm|backend: wasm .*tfjs-node-gpu did not load/s, 'a GPU is listed, tfjs-node-gpu is not installed: wasm, and the worker says why');
  // Without any GPU, --gpus names devices that are not there: refused before anything starts.
  const none = await runScript('train', [...small, '--gpus', '0,1', '--max-iters', '2', '--out', join(dir, 'no-gpu')], { env: { ...standInEnv({ listing: 'none', packages: '' }) } });
  t.equal(none.code, 2, '--gpus without a GPU: exit 2');
  t.match(none.stderr, /E_BAD_FLAG.*--gpus 0,1: no CUDA device is visible to this process \(nvidia-smi lists no GPU\)/);
});

// A heavier test model, so that a step takes long enough to kill something in the middle of a run.
const slow = ['--preset', 'test', '--data', DATA, '--batch-size', '32', '--block-size', '32', '--n-embd', '64', '--max-iters', '120', '--eval-interval', '60', '--spectral', 'global'];

t.test('membership: a worker killed mid-run, a late joiner, a killed coordinator resumed', async (t) => {
  const dir = tempDir('smi-faults-');
  const local = join(dir, 'local');
  const r = await runScript('train', ['--local', ...slow, '--out', local]);
  t.equal(r.code, 0, r.stderr);
  const ref = weights(local);

  t.test('SIGKILL a worker: every step is made once, and the weights are the undisturbed ones', async (t) => {
    const out = join(dir, 'killed-worker');
    const coord = startScript('coordinator/main', [...slow, '--out', out, '--port', '0', '--token', 'tok', '--min-workers', '2', '--step-timeout', '20000']);
    const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
    const url = `ws://127.0.0.1:${port}`;
    const w1 = startScript('worker/main', ['--connect', url, '--token', 'tok']);
    const w2 = startScript('worker/main', ['--connect', url, '--token', 'tok']);
    await waitForStep(out, 10);
    w2.child.kill('SIGKILL');
    t.equal(await coord.exited, 0, 'the coordinator finishes the run', { output: coord.output() });
    t.equal(await w1.exited, 0, 'the surviving worker ends cleanly');
    const s = steps(out);
    t.same(s.map((x) => x.step), Array.from({ length: 120 }, (_, i) => i + 1), 'each step exactly once');
    t.ok(s.some((x) => x.workers === 2) && s.at(-1)!.workers === 1, 'ran on 2 workers, finished on 1');
    const diff = maxRelativeDiff(weights(out), ref);
    t.ok(diff < 1e-5, `weights equal the undisturbed run (${diff.toExponential(2)})`);
  });

  t.test('a worker that stops answering misses --step-timeout: its share is redone, the run is unchanged', async (t) => {
    const out = join(dir, 'stalled-worker');
    const coord = startScript('coordinator/main', [...slow, '--out', out, '--port', '0', '--token', 'tok', '--min-workers', '2', '--step-timeout', '1500']);
    const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
    const url = `ws://127.0.0.1:${port}`;
    const w1 = startScript('worker/main', ['--connect', url, '--token', 'tok']);
    const w2 = startScript('worker/main', ['--connect', url, '--token', 'tok', '--retry-for', '0']);
    await waitForStep(out, 10);
    w2.child.kill('SIGSTOP');
    await coord.waitFor(/missed the step timeout/);
    w2.child.kill('SIGKILL');
    t.equal(await coord.exited, 0, 'the coordinator finishes the run', { output: coord.output() });
    await w1.exited;
    t.same(steps(out).map((x) => x.step), Array.from({ length: 120 }, (_, i) => i + 1), 'each step exactly once');
    const diff = maxRelativeDiff(weights(out), ref);
    t.ok(diff < 1e-5, `weights equal the undisturbed run (${diff.toExponential(2)})`);
  });

  t.test('a late joiner gets the weights and works from then on', async (t) => {
    const out = join(dir, 'late');
    const coord = startScript('coordinator/main', [...slow, '--out', out, '--port', '0', '--token', 'tok', '--min-workers', '1']);
    const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
    const url = `ws://127.0.0.1:${port}`;
    const w1 = startScript('worker/main', ['--connect', url, '--token', 'tok']);
    await waitForStep(out, 10);
    const w2 = startScript('worker/main', ['--connect', url, '--token', 'tok']);
    t.equal(await coord.exited, 0, 'the coordinator finishes the run', { output: coord.output() });
    await Promise.all([w1.exited, w2.exited]);
    const s = steps(out);
    t.equal(s[0]!.workers, 1);
    t.equal(s.at(-1)!.workers, 2, 'the joiner took a share');
    const diff = maxRelativeDiff(weights(out), ref);
    t.ok(diff < 1e-5, `weights equal the undisturbed run (${diff.toExponential(2)})`);
  });

  t.test('SIGKILL the coordinator, restart it with --resume: the workers reconnect and the run ends as undisturbed', async (t) => {
    const out = join(dir, 'killed-coordinator');
    const port = await freePort();
    const flags = ['--port', String(port), '--token', 'tok'];
    const c1 = startScript('coordinator/main', [...slow, '--out', out, ...flags, '--min-workers', '2', '--checkpoint-interval', '10']);
    await c1.waitFor(/listening on/);
    const url = `ws://127.0.0.1:${port}`;
    const w1 = startScript('worker/main', ['--connect', url, '--token', 'tok']);
    const w2 = startScript('worker/main', ['--connect', url, '--token', 'tok']);
    await waitForStep(out, 25);
    c1.child.kill('SIGKILL');
    await c1.exited;
    const c2 = startScript('coordinator/main', ['--resume', out, '--data', DATA, ...flags, '--min-workers', '2']);
    t.equal(await c2.exited, 0, 'the resumed coordinator finishes the run', { output: c2.output() });
    t.match(c2.output(), /resumed .* at step (10|20)/);
    t.equal(await w1.exited, 0, 'worker 1 reconnected and finished');
    t.equal(await w2.exited, 0, 'worker 2 reconnected and finished');
    const s = steps(out);
    t.same(s.map((x) => x.step), Array.from({ length: 120 }, (_, i) => i + 1), 'each step logged once');
    const diff = maxRelativeDiff(weights(out), ref);
    t.ok(diff < 1e-5, `weights equal the undisturbed run (${diff.toExponential(2)})`);
  });
});
