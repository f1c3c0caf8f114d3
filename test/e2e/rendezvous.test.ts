// The env launcher (torchrun's variables) with real processes: three ranks equal --local; a bad rank, an unreachable coordinator and a short world are reported.
import t from 'tap';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { DATA, freePort, maxRelativeDiff, readLog, runScript, tempDir, weights } from '../helpers.ts';

const small = ['--preset', 'test', '--data', DATA, '--max-iters', '20', '--eval-interval', '10', '--smi', 'cosine', '--spectral', 'global'];

// a parent's own launcher variables must not leak into the ranks (the suite may itself run under Slurm)
const clean = Object.fromEntries(Object.keys(process.env).filter((k) => /^(SLURM_|RANK$|WORLD_SIZE$|LOCAL_RANK$|MASTER_|JOB_COMPLETION_INDEX$|SMI_TOKEN$)/.test(k)).map((k) => [k, undefined]));
const rankEnv = (rank: number | string, worldSize: number, port: number) => ({ ...clean, RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), SMI_TOKEN: 'rendezvous-test' });

t.test('env launcher: RANK 0–2 of WORLD_SIZE=3 on MASTER_ADDR=127.0.0.1 train as --local does (task 0 coordinates and computes)', async (t) => {
  const dir = tempDir('smi-rv-');
  const local = join(dir, 'local');
  const r = await runScript('train', ['--local', ...small, '--out', local]);
  t.equal(r.code, 0, r.stderr);
  const out = join(dir, 'env');
  const port = await freePort();
  const ranks = await Promise.all([0, 1, 2].map((rank) => runScript('train', [...small, '--out', out], { env: rankEnv(rank, 3, port) })));
  ranks.forEach((x, i) => t.equal(x.code, 0, `rank ${i} exits 0`, { output: x.stdout + x.stderr }));
  t.match(ranks[0]!.stdout, /launcher: env \(RANK and WORLD_SIZE set\)/);
  t.match(ranks[0]!.stdout, new RegExp(`rank 0 of 3 .*coordinator ws://127\\.0\\.0\\.1:${port} \\(address: MASTER_ADDR=127\\.0\\.0\\.1; port: MASTER_PORT=${port}; token: SMI_TOKEN\\)`));
  t.match(ranks[2]!.stdout, /\[rank 2\] joined as .* at step 0/);
  t.notMatch(ranks.map((x) => x.stdout + x.stderr).join(''), /rendezvous-test/, 'the token is never printed');
  const steps = readLog(out).filter((s) => s.kind === 'step');
  t.equal(steps.length, 20);
  t.ok(steps.every((s) => s.workers === 3), "every step on 3 workers: ranks 1 and 2 and task 0's own");
  const diff = maxRelativeDiff(weights(out), weights(local));
  t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
});

t.test('a rank that is not a number is exit 2 (E_RENDEZVOUS) naming the variable', async (t) => {
  const r = await runScript('train', [...small, '--out', join(tempDir('smi-rv-'), 'x')], { env: rankEnv('first', 3, 29500) });
  t.equal(r.code, 2);
  t.match(r.stderr, /error \[E_RENDEZVOUS\]: --launcher env: RANK='first' is not a rank \(a whole number ≥ 0\)/);
  const s = await runScript('train', [...small, '--launcher', 'slurm', '--out', join(tempDir('smi-rv-'), 'y')], { env: { ...clean, SLURM_PROCID: 'x', SMI_TOKEN: 't' } });
  t.equal(s.code, 2, '--launcher slurm outside a step: exit 2');
  t.match(s.stderr, /SLURM_PROCID='x' is not a rank.*SLURM_STEP_NUM_TASKS or SLURM_NTASKS is not set/);
  const w = await runScript('train', [...small, '--workers', '2', '--out', join(tempDir('smi-rv-'), 'z')], { env: rankEnv(0, 3, 29500) });
  t.equal(w.code, 2);
  t.match(w.stderr, /E_RENDEZVOUS.*--workers is 1 .* or 0/);
});

t.test('a worker that cannot reach the coordinator says which address, port and variables (E_UNREACHABLE, exit 1)', async (t) => {
  const port = await freePort(); // nothing listens there
  const r = await runScript('train', [...small, '--rendezvous-timeout', '1000'], { env: rankEnv(1, 2, port) });
  t.equal(r.code, 1, r.stdout);
  t.match(r.stderr, new RegExp(`error \\[E_UNREACHABLE\\]: rank 1 of 2 could not reach the coordinator at ws://127\\.0\\.0\\.1:${port} within 1 s \\(--rendezvous-timeout\\): `));
  t.match(r.stderr, new RegExp(`address from MASTER_ADDR=127\\.0\\.0\\.1, port from MASTER_PORT=${port}; read RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 MASTER_ADDR=127\\.0\\.0\\.1 MASTER_PORT=${port} SMI_TOKEN=\\(set\\)`));
  t.notMatch(r.stderr, /\n\s+at /, 'no stack: the message is what to check');
});

t.test('a world that does not fill up is reported by the coordinator (E_WORLD_SIZE, exit 1)', async (t) => {
  const port = await freePort();
  const out = join(tempDir('smi-rv-'), 'short');
  // WORLD_SIZE=2 and task 0 only coordinating: it waits for rank 1, which is never started
  const r = await runScript('train', [...small, '--workers', '0', '--rendezvous-timeout', '2000', '--out', out], { env: rankEnv(0, 2, port) });
  t.equal(r.code, 1, r.stdout);
  t.match(r.stderr, /error \[E_WORLD_SIZE\]: 0 of 1 workers joined within 2 s \(--rendezvous-timeout\): WORLD_SIZE=2 means 1 worker task\(s\)\. A task did not start/);
  t.match(r.stderr, new RegExp(`cannot reach ws://127\\.0\\.0\\.1:${port} \\(address from MASTER_ADDR=127\\.0\\.0\\.1, port from MASTER_PORT=${port}\\)`));
});

t.test("a port already taken on task 0's node is exit 2 (E_RENDEZVOUS) naming where it came from", async (t) => {
  const taken = createServer().listen(0, '0.0.0.0');
  await new Promise((r) => taken.once('listening', r));
  const port = (taken.address() as { port: number }).port;
  t.teardown(() => taken.close());
  const r = await runScript('train', [...small, '--workers', '0', '--out', join(tempDir('smi-rv-'), 'taken')], { env: rankEnv(0, 2, port) });
  t.equal(r.code, 2, r.stdout);
  t.match(r.stderr, new RegExp(`error \\[E_RENDEZVOUS\\]: port ${port} \\(from MASTER_PORT=${port}\\) is in use on this node: pass --port P`));
});
