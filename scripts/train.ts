// `npm run train` / `npm start`: one process (--local), a coordinator plus N local worker processes, or one task of a Slurm / torchrun-style job.
import type { ChildProcess } from 'node:child_process';
import { coordinatorBackend, launchPlan, startWorkers } from '../coordinator/launcher.ts';
import { trainDistributed } from '../coordinator/run.ts';
import { newToken } from '../coordinator/server.ts';
import { initBackend, systemGpus } from '../shared/backend/backend.ts';
import { runMain } from '../shared/cli/main.ts';
import { parseTrainArgs, trainHelp, type TrainArgs } from '../shared/cli/options.ts';
import { coordinatorUrl, describeRendezvous, expectedWorkers, rendezvousFromEnv, resolveLauncher, taskPlan, type Rendezvous } from '../shared/cli/rendezvous.ts';
import { interruptSignal, setupRun } from '../shared/cli/setup.ts';
import { ConfigError, RendezvousError } from '../shared/errors.ts';
import { trainLocal } from '../shared/train/loop.ts';
import { runTaskWorker } from '../worker/task.ts';

const RENDEZVOUS_TIMEOUT_MS = 600_000; // a GPU worker's warm-up compiles kernels before it joins

runMain(async () => {
  const args = parseTrainArgs(process.argv.slice(2));
  if (args.help) {
    console.log(trainHelp());
    return 0;
  }
  const { launcher, note } = resolveLauncher(args.launcher ?? 'auto', process.env, args.local);
  if (note) console.log(note);
  const rv = launcher === 'local' ? null : rendezvousFromEnv(launcher, process.env, { port: args.port, token: args.token, gpuCount: systemGpus().length });
  const rank0Computes = rv ? checkTaskFlags(args, rv) : false;
  const joinMs = args.rendezvousTimeout ?? RENDEZVOUS_TIMEOUT_MS;
  if (rv && rv.rank > 0) return runTaskWorker(rv, { backend: args.backend, retryForMs: joinMs });

  const run = setupRun(args);
  const requested = args.backend ?? (run.resume ? 'auto' : run.cfg.backend);
  const plan = args.local ? null : rv ? taskPlan(rv, rank0Computes, args.coordinatorGpu === 0) : launchPlan(args, (l) => console.log(l));
  if (rv) console.log(`${describeRendezvous(rv)}; task 0 ${rank0Computes ? 'coordinates and computes (one worker of its own)' : 'only coordinates (--workers 0)'}`);
  if (rv) for (const n of plan!.notes) console.log(`device: ${n}`);
  // before tfjs-node can load in this process: the coordinator's own devices and TensorFlow variables
  if (plan) Object.assign(process.env, plan.coordinator.env);
  const backend = await initBackend(plan ? coordinatorBackend(requested, plan, run.cfg, (l) => console.log(l), args.update ?? 'owners') : requested, (l) => console.log(l));
  const signal = interruptSignal(console.log);
  const common = { ...run, backend, initFrom: args.initFrom, initFromDropExtra: args.initFromDropExtra, logBatches: args.logBatches, stopAt: args.stopAt, checkpointInterval: args.checkpointInterval, signal };
  if (args.local) {
    if (args.trace) throw new ConfigError('E_BAD_FLAG', '--trace records the coordinator and its workers: drop --local (e.g. --workers 1)');
    const result = await trainLocal(common);
    return result.finished || args.stopAt !== undefined ? 0 : 130;
  }
  if (args.tlsCert || args.tlsKey) throw new ConfigError('E_BAD_FLAG', '--tls-cert/--tls-key are for `npm run coordinator` (workers on other hosts); local workers connect over loopback');
  const token = rv?.token ?? args.token ?? newToken();
  const minWorkers = args.minWorkers ?? (rv ? expectedWorkers(rv, rank0Computes) : plan!.workers.length);
  let children: ChildProcess[] = [];
  const killAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
  process.once('exit', killAll);
  try {
    const result = await trainDistributed({
      ...common,
      server: {
        // a cluster's workers connect from other nodes: every interface, unless --host names one
        host: args.host ?? (rv ? '0.0.0.0' : '127.0.0.1'), port: rv?.port ?? args.port ?? 0, token, syncedBlend: args.syncedBlend, update: args.update, commitInterval: args.commitInterval, minWorkers,
        stepTimeoutMs: args.stepTimeout, firstStepTimeoutMs: args.firstStepTimeout, timing: args.timing, trace: args.trace, log: (l) => console.log(l),
        joinTimeout: rv ? { ms: joinMs, error: (joined, wanted) => worldSizeError(rv, rank0Computes, joined, wanted, joinMs) } : undefined,
      },
      onListening: (port) => {
        // task 0's own worker connects as the other tasks do: the address a worker listens on for its peers follows from this link
        const url = rv ? coordinatorUrl(rv) : `ws://127.0.0.1:${port}`;
        console.log(`coordinator on ${rv ? `${url} (every interface)` : url}; live page and /metrics at http://${rv?.host ?? '127.0.0.1'}:${port}/; starting ${plan!.workers.length} local worker(s) (logs: ${run.outDir}/worker-*.log)`);
        children = startWorkers(url, token, args, plan!, run.outDir);
      },
    });
    await Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => { c.once('exit', r); setTimeout(r, 10_000); }))));
    return result.finished || args.stopAt !== undefined ? 0 : 130;
  } catch (e) {
    if (rv && (e as { code?: string }).code === 'EADDRINUSE') {
      throw new ConfigError('E_RENDEZVOUS', `port ${rv.port} (from ${rv.from.port}) is in use on this node: pass --port P (every task the same), or MASTER_PORT`);
    }
    throw e;
  } finally {
    killAll();
  }
});

/** Flags a cluster task does not take; returns whether task 0 computes too (--workers 1, the default) or only coordinates (--workers 0). */
function checkTaskFlags(args: TrainArgs, rv: Rendezvous): boolean {
  if (args.gpus || (args.coordinatorGpu !== undefined && args.coordinatorGpu !== 0)) {
    throw new ConfigError('E_RENDEZVOUS', `--launcher ${rv.launcher}: each task's device comes from its local rank or the scheduler's CUDA_VISIBLE_DEVICES; drop --gpus (--coordinator-gpu takes only 0: task 0's own device)`);
  }
  if (args.workers !== undefined && args.workers !== 0 && args.workers !== 1) {
    throw new ConfigError('E_RENDEZVOUS', `--launcher ${rv.launcher}: --workers is 1 (task 0 computes too) or 0 (it only coordinates), got ${args.workers}; more workers are more tasks`);
  }
  const computes = args.workers !== 0;
  if (expectedWorkers(rv, computes) === 0) throw new ConfigError('E_RENDEZVOUS', `--launcher ${rv.launcher}: a world size of 1 with --workers 0 leaves nothing to compute`);
  return computes;
}

function worldSizeError(rv: Rendezvous, rank0Computes: boolean, joined: number, wanted: number, ms: number): RendezvousError {
  const size = rv.read.find((r) => /^(SLURM_STEP_NUM_TASKS|SLURM_NTASKS|WORLD_SIZE)=/.test(r)) ?? `world size ${rv.worldSize}`;
  return new RendezvousError('E_WORLD_SIZE', `${joined} of ${wanted} workers joined within ${Math.round(ms / 1000)} s (--rendezvous-timeout): ${size} ` +
    `means ${rv.worldSize - 1} worker task(s)${rank0Computes ? " and task 0's own worker" : ''}. A task did not start, failed (see each rank's output), or cannot reach ` +
    `${coordinatorUrl(rv)} (address from ${rv.from.host}, port from ${rv.from.port})`);
}
