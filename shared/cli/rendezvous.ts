// Rendezvous from the environment: which task this process is under Slurm or a torchrun-style launcher, and the coordinator's address, port and token.
//
// Everything here is a pure function of the environment (and the flags): scripts/train.ts acts on the result.
// A task needs only the coordinator's address, port and token; anything else a worker needs (its own listen
// address for worker-to-worker links) follows from its connection to the coordinator.
import type { LaunchPlan } from '../backend/gpus.ts';
import { ConfigError } from '../errors.ts';

export const LAUNCHERS = ['auto', 'slurm', 'env', 'local'] as const;
export type Launcher = (typeof LAUNCHERS)[number];
type Env = Readonly<Record<string, string | undefined>>;

/** The port under Slurm without --port or MASTER_PORT: this base plus the job id modulo PORT_SPAN (15000–34999). */
export const SLURM_PORT_BASE = 15000;
export const SLURM_PORT_SPAN = 20000;

/** This task's place in the job and how to reach the coordinator; `read` lists every variable read (the token's value left out). */
export interface Rendezvous {
  launcher: 'slurm' | 'env';
  rank: number; // 0: the coordinator
  worldSize: number; // tasks in the job (or step)
  localRank: number; // the task's number on its node
  host: string; // the coordinator's address: task 0's node
  port: number;
  token: string;
  device?: string; // CUDA_VISIBLE_DEVICES for this task's worker when the launcher chooses it
  /** where host, port and token came from, in words (for error messages and the start-up line) */
  from: { host: string; port: string; token: string; device?: string };
  read: string[];
}

/**
 * Which launcher runs this process: `local` (npm run train's own workers), `slurm` (inside an srun step: Slurm sets
 * SLURM_STEP_ID there; a batch script's own shell has SLURM_PROCID but no step) or `env` (RANK or WORLD_SIZE set,
 * as torchrun and a Kubernetes indexed Job set them; it wins over Slurm's, as the launcher nearer the process).
 */
export function resolveLauncher(requested: Launcher, env: Env, local: boolean): { launcher: 'slurm' | 'env' | 'local'; note?: string } {
  if (local && requested !== 'auto' && requested !== 'local') throw new ConfigError('E_BAD_FLAG', `--local runs one process; it does not go with --launcher ${requested}`);
  if (local || requested === 'local') return { launcher: 'local' };
  if (requested !== 'auto') return { launcher: requested };
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) return { launcher: 'env', note: `launcher: env (${['RANK', 'WORLD_SIZE'].filter((k) => env[k] !== undefined).join(' and ')} set)` };
  if (env.SLURM_STEP_ID !== undefined && env.SLURM_PROCID !== undefined) return { launcher: 'slurm', note: `launcher: slurm (in job ${env.SLURM_JOB_ID ?? '?'} step ${env.SLURM_STEP_ID})` };
  if (env.SLURM_JOB_ID !== undefined) return { launcher: 'local', note: `launcher: local (a Slurm job's own shell, not an srun step: start one task per GPU with \`srun npm run train -- …\`)` };
  return { launcher: 'local' };
}

/**
 * The hosts of a Slurm hostlist expression, in Slurm's order (`scontrol show hostnames`): comma-separated items,
 * each text with bracketed ranges `[01-03,7]`, zero padding as written, several brackets as their product (the first slowest).
 */
export function expandHostlist(list: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= list.length; i++) {
    const c = list[i];
    if (c === '[') depth++;
    else if (c === ']') depth--;
    if (depth < 0 || depth > 1) throw badHostlist(list, 'unbalanced brackets');
    if ((c === ',' && depth === 0) || i === list.length) {
      const item = list.slice(start, i).trim();
      if (item) items.push(item);
      start = i + 1;
    }
  }
  if (depth !== 0) throw badHostlist(list, 'unbalanced brackets');
  return items.flatMap((item) => expandItem(list, item));
}

function expandItem(list: string, item: string): string[] {
  const open = item.indexOf('[');
  if (open < 0) return [item];
  const close = item.indexOf(']', open);
  const head = item.slice(0, open);
  const tails = expandItem(list, item.slice(close + 1));
  const values = item.slice(open + 1, close).split(',').flatMap((r) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(r.trim());
    if (!m) throw badHostlist(list, `'${r}' is not a number or a range`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw badHostlist(list, `the range ${r} runs backwards`);
    if (hi - lo > 100_000) throw badHostlist(list, `the range ${r} is too long`);
    return Array.from({ length: hi - lo + 1 }, (_, k) => String(lo + k).padStart(m[1]!.length, '0'));
  });
  return values.flatMap((v) => tails.map((t) => `${head}${v}${t}`));
}

const badHostlist = (list: string, why: string) => new ConfigError('E_RENDEZVOUS', `the Slurm node list '${list}' cannot be read: ${why}`);

/** The port a Slurm job's tasks agree on without a shared file: SLURM_PORT_BASE + job id mod SLURM_PORT_SPAN. */
export function portForJob(jobId: number): number {
  return SLURM_PORT_BASE + (jobId % SLURM_PORT_SPAN);
}

/**
 * The CUDA_VISIBLE_DEVICES a task's worker gets from its local rank when the scheduler did not choose one device:
 * unset, the local rank's GPU (round robin over `gpuCount`, none on a host without GPUs); a list of several (every
 * task of the node sees all of them, as with --gres=gpu:4), its local-rank-th entry; one entry: kept; empty: none.
 */
export function taskDevice(localRank: number, cudaVisible: string | undefined, gpuCount: number): { device?: string; why: string } {
  if (cudaVisible === undefined) {
    if (gpuCount === 0) return { why: 'no GPU on this host' };
    const device = String(localRank % gpuCount);
    return { device, why: `CUDA_VISIBLE_DEVICES unset: local rank ${localRank} takes GPU ${device} of ${gpuCount}` };
  }
  const entries = cudaVisible.split(',').map((e) => e.trim()).filter(Boolean);
  if (entries.length === 0) return { why: 'CUDA_VISIBLE_DEVICES is empty: no GPU for this task' };
  if (entries.length === 1) return { device: entries[0], why: `CUDA_VISIBLE_DEVICES=${cudaVisible} set by the scheduler: kept` };
  const device = entries[localRank % entries.length]!;
  return { device, why: `CUDA_VISIBLE_DEVICES=${cudaVisible} lists ${entries.length} devices for every task: local rank ${localRank} takes ${device}` };
}

/**
 * This task's rendezvous under `launcher`, from `env` and the flags (--port, --token win over the environment).
 * Slurm: rank SLURM_PROCID of SLURM_STEP_NUM_TASKS (else SLURM_NTASKS), local rank SLURM_LOCALID, the coordinator on
 * the first node of SLURM_STEP_NODELIST (else SLURM_JOB_NODELIST), port from SLURM_JOB_ID; MASTER_ADDR/MASTER_PORT
 * override both. env: RANK (else JOB_COMPLETION_INDEX) of WORLD_SIZE, LOCAL_RANK [0], MASTER_ADDR, MASTER_PORT.
 * The token: --token, else SMI_TOKEN. Every problem is one ConfigError (E_RENDEZVOUS, exit 2) naming the variables.
 */
export function rendezvousFromEnv(launcher: 'slurm' | 'env', env: Env, flags: { port?: number; token?: string; gpuCount: number }): Rendezvous {
  const read: string[] = [];
  const problems: string[] = [];
  const get = (...names: string[]): [string, string] | undefined => {
    for (const n of names) {
      const v = env[n];
      if (v !== undefined) {
        read.push(`${n}=${v}`);
        return [n, v];
      }
    }
    return undefined;
  };
  const count = (what: string, names: string[], fallback?: number): number => {
    const got = get(...names);
    if (!got) {
      if (fallback !== undefined) return fallback;
      problems.push(`${names.join(' or ')} is not set (${what})`);
      return NaN;
    }
    if (!/^\s*\d+\s*$/.test(got[1])) {
      problems.push(`${got[0]}='${got[1]}' is not ${what} (a whole number ≥ 0)`);
      return NaN;
    }
    return Number(got[1]);
  };
  const slurm = launcher === 'slurm';
  const rank = count('a rank', slurm ? ['SLURM_PROCID'] : ['RANK', 'JOB_COMPLETION_INDEX']);
  const worldSize = count('a world size', slurm ? ['SLURM_STEP_NUM_TASKS', 'SLURM_NTASKS'] : ['WORLD_SIZE']);
  const localRank = count('a local rank', slurm ? ['SLURM_LOCALID'] : ['LOCAL_RANK'], 0);
  if (worldSize === 0) problems.push('the world size is 0');
  if (Number.isInteger(rank) && Number.isInteger(worldSize) && worldSize > 0 && rank >= worldSize) problems.push(`rank ${rank} is not below the world size ${worldSize}`);

  let host = '';
  let hostFrom = '';
  const addr = get('MASTER_ADDR');
  if (addr && addr[1].trim() !== '') [host, hostFrom] = [addr[1].trim(), `MASTER_ADDR=${addr[1]}`];
  else if (slurm) {
    const nodes = get('SLURM_STEP_NODELIST', 'SLURM_JOB_NODELIST', 'SLURM_NODELIST');
    if (!nodes) problems.push('SLURM_STEP_NODELIST, SLURM_JOB_NODELIST and MASTER_ADDR are not set (where task 0 runs)');
    else {
      try {
        host = expandHostlist(nodes[1])[0] ?? '';
        if (!host) problems.push(`${nodes[0]} is empty`);
        hostFrom = `the first node of ${nodes[0]}=${nodes[1]}`;
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
  } else problems.push('MASTER_ADDR is not set (the address of rank 0)');

  let port = flags.port ?? NaN;
  let portFrom = '--port';
  if (flags.port === undefined) {
    const p = get('MASTER_PORT');
    if (p) {
      port = /^\s*\d+\s*$/.test(p[1]) ? Number(p[1]) : NaN;
      portFrom = `MASTER_PORT=${p[1]}`;
      if (!(port > 0 && port < 65536)) problems.push(`MASTER_PORT='${p[1]}' is not a port (1–65535)`);
    } else if (slurm) {
      const job = count('a job id', ['SLURM_JOB_ID']);
      if (Number.isInteger(job)) {
        port = portForJob(job);
        portFrom = `SLURM_JOB_ID=${job} (${SLURM_PORT_BASE} + job id mod ${SLURM_PORT_SPAN})`;
      }
    } else problems.push('MASTER_PORT is not set (the port of rank 0; or pass --port)');
  } else if (!(port > 0 && port < 65536)) problems.push(`--port ${port} is not a port a task can connect to (1–65535)`);

  const token = flags.token ?? env.SMI_TOKEN;
  const tokenFrom = flags.token !== undefined ? '--token (visible to every user of the node in ps: prefer SMI_TOKEN)' : 'SMI_TOKEN';
  if (env.SMI_TOKEN !== undefined) read.push('SMI_TOKEN=(set)');
  if (token === undefined || token === '') problems.push("SMI_TOKEN is not set: every task needs the coordinator's token (e.g. export SMI_TOKEN=$(openssl rand -hex 16) before srun)");

  if (problems.length > 0) {
    throw new ConfigError('E_RENDEZVOUS', `--launcher ${launcher}: ${problems.join('; ')} (read: ${read.length ? read.join(' ') : 'nothing'})`);
  }
  const dev = taskDevice(localRank, env.CUDA_VISIBLE_DEVICES, flags.gpuCount);
  return {
    launcher, rank, worldSize, localRank, host, port, token: token!, device: dev.device,
    from: { host: hostFrom, port: portFrom, token: tokenFrom, device: dev.why }, read,
  };
}

/** The workers the coordinator waits for: every other task, and task 0's own when it computes too. */
export function expectedWorkers(rv: Pick<Rendezvous, 'worldSize'>, rank0Computes: boolean): number {
  return rv.worldSize - 1 + (rank0Computes ? 1 : 0);
}

/** One line on where this task stands and where each value came from. */
export function describeRendezvous(rv: Rendezvous): string {
  return `rank ${rv.rank} of ${rv.worldSize} (local rank ${rv.localRank}); coordinator ${coordinatorUrl(rv)} ` +
    `(address: ${rv.from.host}; port: ${rv.from.port}; token: ${rv.from.token})`;
}

/**
 * Task 0's launch plan (the shape coordinator/launcher.ts starts): its own worker, when it computes, on the task's
 * device; the coordinator kept off the GPUs, as npm run train's launcher does, unless `coordinatorShares`
 * (--coordinator-gpu 0: it evaluates on the task's GPU beside its worker).
 */
export function taskPlan(rv: Rendezvous, rank0Computes: boolean, coordinatorShares = false): LaunchPlan {
  const deviceEnv: Record<string, string> = rv.device === undefined ? {} : { CUDA_VISIBLE_DEVICES: rv.device };
  const device = rv.device === undefined ? null : { entry: rv.device, label: `device ${rv.device}` };
  if (coordinatorShares && !device) throw new ConfigError('E_RENDEZVOUS', `--coordinator-gpu 0: task 0 has no GPU to share (${rv.from.device ?? 'no device'})`);
  return {
    visible: device ? [device] : [],
    workers: rank0Computes ? [{ device, env: deviceEnv }] : [],
    coordinator: coordinatorShares ? { device, env: deviceEnv, hidden: false } : { device: null, env: device ? { CUDA_VISIBLE_DEVICES: '' } : {}, hidden: device !== null },
    notes: rv.from.device ? [rv.from.device] : [],
  };
}

/** ws://HOST:PORT of the coordinator (an IPv6 address in brackets). */
export function coordinatorUrl(rv: Pick<Rendezvous, 'host' | 'port'>): string {
  const host = rv.host.includes(':') && !rv.host.startsWith('[') ? `[${rv.host}]` : rv.host;
  return `ws://${host}:${rv.port}`;
}
