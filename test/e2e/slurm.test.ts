// On a real one-node Slurm (scripts/dev/slurm-up.sh): `srun -n 3 npm run train -- --launcher slurm` equals --local; hostlists expand as scontrol's.
import t from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expandHostlist } from '../../shared/cli/rendezvous.ts';
import { isCi } from '../browser.ts';
import { DATA, ROOT, freePort, maxRelativeDiff, readLog, runScript, tempDir, weights, type RunOutput } from '../helpers.ts';

const DAEMONS = ['munged', 'slurmctld', 'slurmd', 'srun', 'scontrol'];
const missing = DAEMONS.filter((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0);
const why = missing.length > 0
  ? `no Slurm here (${missing.join(', ')} not on PATH): apt-get install slurmctld slurmd slurm-client munge, or .ci/run with CI=true or SMI_SLURM=1`
  : process.getuid?.() !== 0 ? 'the one-node cluster runs its daemons as root' : '';

const small = ['--preset', 'test', '--data', DATA, '--max-iters', '20', '--eval-interval', '10', '--smi', 'cosine', '--spectral', 'global'];

/** Runs a Slurm client command against the test's cluster; resolves when it exits (killed after 10 min). */
function slurm(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunOutput> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.on('error', fail);
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

t.test('a real one-node Slurm: srun -n 3 --launcher slurm (task 0 coordinates, 2 workers) equals --local', { skip: why && !isCi() ? why : false }, async (t) => {
  if (why) {
    t.fail(`CI=${process.env.CI}: the Slurm test must run: ${why}`);
    return;
  }
  const dir = tempDir('smi-slurm-');
  const cluster = join(dir, 'cluster');
  const ports = `${await freePort()} ${await freePort()}`;
  // the daemons are this test's: stopped by their pids whatever happens below
  t.teardown(() => {
    execFileSync(join(ROOT, 'scripts/dev/slurm-down.sh'), [cluster], { stdio: 'inherit' });
  });
  const up = spawnSync(join(ROOT, 'scripts/dev/slurm-up.sh'), [cluster], { encoding: 'utf8', env: { ...process.env, SMI_SLURM_PORTS: ports } });
  t.equal(up.status, 0, 'scripts/dev/slurm-up.sh starts munged, slurmctld and slurmd', { output: up.stdout + up.stderr });
  if (up.status !== 0) return;
  // only this cluster's variables: not those of a Slurm job or launcher the suite itself may run in
  const clean = Object.fromEntries(Object.keys(process.env).filter((k) => /^(SLURM_|RANK$|WORLD_SIZE$|LOCAL_RANK$|MASTER_)/.test(k)).map((k) => [k, undefined]));
  const env = { ...clean, SLURM_CONF: join(cluster, 'slurm.conf'), SMI_TOKEN: `slurm-test-${process.pid}` };

  const lists = ['gpu[01-03,7],login1', 'a[1-2]-b[3-4]', 'n[098-101]', 'vm'];
  for (const list of lists) {
    const s = await slurm('scontrol', ['show', 'hostnames', list], env);
    t.same(expandHostlist(list), s.stdout.trim().split('\n'), `'${list}' expands as scontrol show hostnames does`);
  }

  const local = join(dir, 'local');
  const r = await runScript('train', ['--local', ...small, '--out', local]);
  t.equal(r.code, 0, r.stderr);
  const out = join(dir, 'slurm');
  // -O: three tasks on two CPUs (the partition allows oversubscription); --label prefixes each line with its task
  const run = await slurm('srun', ['-O', '-n', '3', '--label', '--kill-on-bad-exit=1', 'npm', 'run', 'train', '--', '--launcher', 'slurm', '--workers', '0', ...small, '--out', out], env);
  t.equal(run.code, 0, 'srun exits 0', { output: run.stdout + run.stderr });
  t.comment(`srun output (the closing note's):\n${run.stdout}${run.stderr}`);
  t.match(run.stdout, /^0: rank 0 of 3 \(local rank 0\); coordinator ws:\/\/\S+:\d+ \(address: the first node of SLURM_STEP_NODELIST=\S+; port: SLURM_JOB_ID=\d+ .*; token: SMI_TOKEN\); task 0 only coordinates/m);
  for (const rank of [1, 2]) t.match(run.stdout, new RegExp(`^${rank}: \\[rank ${rank}\\] joined as \\S+ at step 0`, 'm'), `task ${rank} joined as a worker`);
  t.match(run.stdout, /^1: \[rank 1\] done: run finished/m);
  const steps = readLog(out).filter((s) => s.kind === 'step');
  t.equal(steps.length, 20);
  t.ok(steps.every((s) => s.workers === 2), 'every step on the 2 worker tasks');
  const diff = maxRelativeDiff(weights(out), weights(local));
  t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
});
