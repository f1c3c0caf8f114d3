// The rendezvous as pure functions of the environment: which launcher, the rank, the coordinator's address, port and token, the task's device.
import t from 'tap';
import { RunError } from '../../../shared/errors.ts';
import { parseTrainArgs } from '../../../shared/cli/options.ts';
import { SLURM_PORT_BASE, coordinatorUrl, expandHostlist, expectedWorkers, portForJob, rendezvousFromEnv, resolveLauncher, taskDevice, taskPlan } from '../../../shared/cli/rendezvous.ts';

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const throwsCode = (t: Tap, f: () => unknown, code: string, re: RegExp, what: string) => {
  try {
    f();
    t.fail(`${what}: no error`);
  } catch (e) {
    t.ok(e instanceof RunError && e.code === code && e.exitCode === 2, `${what}: ${code}, exit 2`);
    t.match((e as Error).message, re, what);
  }
};

// what srun sets for task 1 of `srun -N 2 -n 3` on gpu[07-08] (the names as Slurm's own tests spell them)
const slurmTask = (over: Record<string, string | undefined> = {}) => ({
  SLURM_JOB_ID: '4242', SLURM_STEP_ID: '0', SLURM_PROCID: '1', SLURM_NTASKS: '3', SLURM_STEP_NUM_TASKS: '3', SLURM_LOCALID: '1',
  SLURM_JOB_NODELIST: 'gpu[07-08]', SLURM_STEP_NODELIST: 'gpu[07-08]', SMI_TOKEN: 's3cret', ...over,
});
const envTask = (over: Record<string, string | undefined> = {}) => ({ RANK: '2', WORLD_SIZE: '3', LOCAL_RANK: '0', MASTER_ADDR: '10.0.0.5', MASTER_PORT: '29500', SMI_TOKEN: 's3cret', ...over });

t.test('Slurm hostlists expand as scontrol show hostnames does', async (t) => {
  t.same(expandHostlist('vm'), ['vm']);
  t.same(expandHostlist('gpu[01-03,7],login1'), ['gpu01', 'gpu02', 'gpu03', 'gpu7', 'login1'], 'ranges, single numbers, zero padding as written, plain names');
  t.same(expandHostlist('a[1-2]-b[3-4]'), ['a1-b3', 'a1-b4', 'a2-b3', 'a2-b4'], 'several brackets: their product, the first slowest');
  t.same(expandHostlist('n[8-10]'), ['n8', 'n9', 'n10'], 'no padding when the lower bound has none');
  t.same(expandHostlist('n[098-101]'), ['n098', 'n099', 'n100', 'n101'], "padding to the lower bound's width");
  t.same(expandHostlist('rack1-n[1,3],rack2-n2'), ['rack1-n1', 'rack1-n3', 'rack2-n2'], 'commas inside brackets do not split items');
  for (const [bad, why] of [['gpu[01-03', /unbalanced/], ['gpu]1[', /unbalanced/], ['gpu[a-b]', /not a number/], ['gpu[5-2]', /backwards/], ['n[[1]]', /unbalanced/]] as const) {
    throwsCode(t, () => expandHostlist(bad), 'E_RENDEZVOUS', why, `'${bad}'`);
  }
});

t.test('the launcher: auto finds an srun step or torchrun variables; a batch shell without srun and a plain shell are local', async (t) => {
  t.equal(resolveLauncher('auto', {}, false).launcher, 'local');
  t.equal(resolveLauncher('auto', slurmTask(), false).launcher, 'slurm');
  t.equal(resolveLauncher('auto', envTask(), false).launcher, 'env');
  const batch = resolveLauncher('auto', { SLURM_JOB_ID: '7', SLURM_PROCID: '0', SLURM_NTASKS: '3' }, false);
  t.equal(batch.launcher, 'local', "a batch script's own shell (SLURM_PROCID but no SLURM_STEP_ID) is not a task");
  t.match(batch.note, /srun npm run train/);
  t.equal(resolveLauncher('auto', { ...slurmTask(), RANK: '0', WORLD_SIZE: '1' }, false).launcher, 'env', 'torchrun inside srun: the nearer launcher wins');
  t.equal(resolveLauncher('auto', slurmTask(), true).launcher, 'local', '--local is one process whatever the environment');
  t.equal(resolveLauncher('slurm', {}, false).launcher, 'slurm', 'asked for: taken (and checked by the rendezvous)');
  throwsCode(t, () => resolveLauncher('slurm', {}, true), 'E_BAD_FLAG', /--local .* --launcher slurm/, '--local with --launcher slurm');
});

t.test('Slurm: rank, world size and local rank from SLURM_*, the coordinator on the first node, the port from the job id', async (t) => {
  const rv = rendezvousFromEnv('slurm', slurmTask(), { gpuCount: 0 });
  t.same([rv.rank, rv.worldSize, rv.localRank, rv.host, rv.port, rv.token], [1, 3, 1, 'gpu07', SLURM_PORT_BASE + 4242, 's3cret']);
  t.equal(rv.port, portForJob(4242));
  t.match(rv.from.host, /first node of SLURM_STEP_NODELIST=gpu\[07-08\]/);
  t.match(rv.from.port, /SLURM_JOB_ID=4242/);
  t.ok(rv.read.includes('SLURM_PROCID=1') && rv.read.includes('SMI_TOKEN=(set)') && !rv.read.some((r) => r.includes('s3cret')), 'the variables read are listed, the token value is not');
  t.equal(coordinatorUrl(rv), 'ws://gpu07:19242');
  t.equal(portForJob(123_456), SLURM_PORT_BASE + 3456, 'job ids wrap into 15000–34999');
  // the step's own node list and task count win over the job's (an srun inside a larger allocation)
  const step = rendezvousFromEnv('slurm', slurmTask({ SLURM_STEP_NODELIST: 'gpu08', SLURM_STEP_NUM_TASKS: '2', SLURM_PROCID: '0' }), { gpuCount: 0 });
  t.same([step.host, step.worldSize], ['gpu08', 2]);
  const job = rendezvousFromEnv('slurm', slurmTask({ SLURM_STEP_NODELIST: undefined, SLURM_STEP_NUM_TASKS: undefined }), { gpuCount: 0 });
  t.same([job.host, job.worldSize], ['gpu07', 3], 'without the step variables: the job node list and SLURM_NTASKS');
  const over = rendezvousFromEnv('slurm', slurmTask({ MASTER_ADDR: 'gpu07-ib', MASTER_PORT: '29400' }), { gpuCount: 0 });
  t.same([over.host, over.port], ['gpu07-ib', 29400], 'MASTER_ADDR / MASTER_PORT override (another interface)');
  const flags = rendezvousFromEnv('slurm', slurmTask({ SMI_TOKEN: undefined }), { port: 8765, token: 'flag', gpuCount: 0 });
  t.same([flags.port, flags.token], [8765, 'flag'], '--port and --token win');
  t.match(flags.from.token, /visible .* ps/, '--token: warned that every user sees it');
});

t.test('torchrun-style variables: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (or a Kubernetes indexed Job)', async (t) => {
  const rv = rendezvousFromEnv('env', envTask(), { gpuCount: 0 });
  t.same([rv.rank, rv.worldSize, rv.localRank, rv.host, rv.port], [2, 3, 0, '10.0.0.5', 29500]);
  const k8s = rendezvousFromEnv('env', envTask({ RANK: undefined, LOCAL_RANK: undefined, JOB_COMPLETION_INDEX: '1', MASTER_ADDR: 'smi-0.smi' }), { gpuCount: 0 });
  t.same([k8s.rank, k8s.localRank, k8s.host], [1, 0, 'smi-0.smi'], "an indexed Job's JOB_COMPLETION_INDEX is the rank; LOCAL_RANK defaults to 0");
  t.equal(coordinatorUrl(rendezvousFromEnv('env', envTask({ MASTER_ADDR: 'fd00::5' }), { gpuCount: 0 })), 'ws://[fd00::5]:29500', 'an IPv6 address in brackets');
});

t.test('a bad environment is one E_RENDEZVOUS (exit 2) that names each variable', async (t) => {
  throwsCode(t, () => rendezvousFromEnv('env', envTask({ RANK: 'one' }), { gpuCount: 0 }), 'E_RENDEZVOUS', /RANK='one' is not a rank/, 'a rank that is not a number');
  throwsCode(t, () => rendezvousFromEnv('slurm', slurmTask({ SLURM_PROCID: '-1' }), { gpuCount: 0 }), 'E_RENDEZVOUS', /SLURM_PROCID='-1' is not a rank/, 'a negative rank');
  throwsCode(t, () => rendezvousFromEnv('env', envTask({ RANK: '3' }), { gpuCount: 0 }), 'E_RENDEZVOUS', /rank 3 is not below the world size 3/, 'a rank past the world');
  throwsCode(t, () => rendezvousFromEnv('env', envTask({ WORLD_SIZE: '0', RANK: '0' }), { gpuCount: 0 }), 'E_RENDEZVOUS', /world size is 0/, 'an empty world');
  throwsCode(t, () => rendezvousFromEnv('env', { RANK: '0' }, { gpuCount: 0 }), 'E_RENDEZVOUS', /WORLD_SIZE is not set.*MASTER_ADDR is not set.*MASTER_PORT is not set.*SMI_TOKEN is not set.*read: RANK=0/, 'everything missing at once, with what was read');
  throwsCode(t, () => rendezvousFromEnv('env', envTask({ MASTER_PORT: '70000' }), { gpuCount: 0 }), 'E_RENDEZVOUS', /MASTER_PORT='70000' is not a port/, 'a port out of range');
  throwsCode(t, () => rendezvousFromEnv('slurm', slurmTask({ SLURM_STEP_NODELIST: 'gpu[07-' }), { gpuCount: 0 }), 'E_RENDEZVOUS', /node list 'gpu\[07-' cannot be read/, 'a node list that cannot be read');
  throwsCode(t, () => rendezvousFromEnv('slurm', slurmTask({ SLURM_JOB_ID: undefined }), { gpuCount: 0 }), 'E_RENDEZVOUS', /SLURM_JOB_ID is not set/, 'no job id and no port');
  throwsCode(t, () => rendezvousFromEnv('slurm', {}, { gpuCount: 0 }), 'E_RENDEZVOUS', /SLURM_PROCID is not set/, 'not in a Slurm step at all');
});

t.test("the task's device: the local rank picks one when the scheduler did not", async (t) => {
  t.equal(taskDevice(2, undefined, 4).device, '2', 'unset: GPU = local rank');
  t.equal(taskDevice(5, undefined, 4).device, '1', 'more tasks than GPUs: round robin');
  t.equal(taskDevice(1, undefined, 0).device, undefined, 'no GPU: nothing set');
  t.equal(taskDevice(3, '0,1,2,3', 4).device, '3', 'every task sees all of the node (--gres=gpu:4): its own entry');
  t.equal(taskDevice(1, 'GPU-aa,GPU-bb', 2).device, 'GPU-bb', 'UUID entries too');
  t.equal(taskDevice(3, '2', 4).device, '2', 'the scheduler gave one device (--gpus-per-task=1): kept');
  t.equal(taskDevice(0, '', 4).device, undefined, 'an empty value: no GPU');
  const rv = rendezvousFromEnv('slurm', slurmTask({ SLURM_PROCID: '0', SLURM_LOCALID: '0', CUDA_VISIBLE_DEVICES: '0,1,2,3' }), { gpuCount: 4 });
  t.equal(rv.device, '0');
  const plan = taskPlan(rv, true);
  t.same(plan.workers.map((w) => w.env.CUDA_VISIBLE_DEVICES), ['0'], "task 0's own worker on its device");
  t.same(plan.coordinator.env, { CUDA_VISIBLE_DEVICES: '' }, 'the coordinator kept off it');
  t.same(taskPlan(rv, false).workers, [], '--workers 0: no worker of its own');
  const shared = taskPlan(rv, true, true);
  t.same([shared.coordinator.env, shared.coordinator.device?.entry, shared.coordinator.hidden], [{ CUDA_VISIBLE_DEVICES: '0' }, '0', false], '--coordinator-gpu 0: the coordinator shares the device');
  throwsCode(t, () => taskPlan(rendezvousFromEnv('env', envTask(), { gpuCount: 0 }), true, true), 'E_RENDEZVOUS', /no GPU to share/, '--coordinator-gpu 0 without a GPU');
  t.equal(expectedWorkers(rv, true), 3);
  t.equal(expectedWorkers(rv, false), 2);
});

t.test('--launcher and --rendezvous-timeout on the command line', async (t) => {
  const a = parseTrainArgs(['--launcher', 'slurm', '--rendezvous-timeout', '5000']);
  t.same([a.launcher, a.rendezvousTimeout], ['slurm', 5000]);
  t.equal(parseTrainArgs([]).launcher, undefined, 'unset: auto');
  try {
    parseTrainArgs(['--launcher', 'slrum']);
    t.fail('no error');
  } catch (e) {
    t.ok(e instanceof RunError && e.exitCode === 2, 'an unknown launcher: exit 2');
    t.match((e as Error).message, /slurm/, 'naming the closest');
  }
});
