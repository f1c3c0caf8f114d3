// `npm run train` / `npm start`: one process (--local), or a coordinator plus N local worker processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { NODE_HEAP_FLAGS } from '../shared/node-flags.ts';
import { join, resolve } from 'node:path';
import { customAlphabet } from 'nanoid';
import { trainDistributed } from '../coordinator/run.ts';
import { initBackend, listGpus } from '../shared/backend.ts';
import { parseTrainArgs, trainHelp, type TrainArgs } from '../shared/cli.ts';
import { ConfigError } from '../shared/config.ts';
import { trainLocal } from '../shared/train.ts';
import { runMain } from './cli-main.ts';
import { interruptSignal, setupRun } from './run-setup.ts';

// generated tokens are alphanumeric: one starting with '-' would read as a flag on the worker's command line
const newToken = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', 20);

const ROOT = resolve(import.meta.dirname, '..');

/** Which local workers to start: one per listed GPU (--gpus), else --workers, else one per GPU, else per core. */
function plannedWorkers(args: TrainArgs): { count: number; gpus: (number | null)[] } {
  if (args.gpus) {
    if (args.workers !== undefined && args.workers !== args.gpus.length) throw new ConfigError('E_BAD_FLAG', `--workers ${args.workers} disagrees with --gpus ${args.gpus.join(',')} (one worker per GPU)`);
    return { count: args.gpus.length, gpus: args.gpus };
  }
  const gpuCount = listGpus().length;
  const count = args.workers ?? (gpuCount > 0 ? gpuCount : cpus().length);
  if (count < 1) throw new ConfigError('E_BAD_FLAG', '--workers must be >= 1 (for a coordinator alone use `npm run coordinator`)');
  return { count, gpus: Array.from({ length: count }, (_, i) => (args.workers === undefined && gpuCount > 0 ? i : null)) };
}

/** Starts local worker processes, each logging to DIR/worker-i.log; returns them so they can be stopped. */
function startWorkers(url: string, token: string, args: TrainArgs, plan: { count: number; gpus: (number | null)[] }, outDir: string): ChildProcess[] {
  mkdirSync(outDir, { recursive: true });
  return plan.gpus.map((gpu, i) => {
    const env = { ...process.env, ...(gpu === null ? {} : { CUDA_VISIBLE_DEVICES: String(gpu) }) };
    const flags = ['--connect', url, `--token=${token}`, '--retry-for', '15000', ...(args.backend ? ['--backend', args.backend] : [])];
    // own process group: a Ctrl-C reaches the coordinator, which checkpoints and then ends the workers
    const child = spawn(process.execPath, [...NODE_HEAP_FLAGS, '--import', 'tsx', join(ROOT, 'worker', 'main.ts'), ...flags], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const logFile = createWriteStream(join(outDir, `worker-${i}.log`));
    child.stdout!.pipe(logFile);
    child.stderr!.pipe(logFile);
    return child;
  });
}

runMain(async () => {
  const args = parseTrainArgs(process.argv.slice(2));
  if (args.help) {
    console.log(trainHelp());
    return 0;
  }
  const run = setupRun(args);
  const backend = await initBackend(args.backend ?? (run.resume ? 'auto' : run.cfg.backend), (l) => console.log(l));
  const signal = interruptSignal(console.log);
  const common = { ...run, backend, initFrom: args.initFrom, logBatches: args.logBatches, stopAt: args.stopAt, checkpointInterval: args.checkpointInterval, signal };
  if (args.local) {
    if (args.trace) throw new ConfigError('E_BAD_FLAG', '--trace records the coordinator and its workers: drop --local (e.g. --workers 1)');
    const result = await trainLocal(common);
    return result.finished || args.stopAt !== undefined ? 0 : 130;
  }
  if (args.tlsCert || args.tlsKey) throw new ConfigError('E_BAD_FLAG', '--tls-cert/--tls-key are for `npm run coordinator` (workers on other hosts); local workers connect over loopback');
  const plan = plannedWorkers(args);
  const token = args.token ?? newToken();
  let children: ChildProcess[] = [];
  const killAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
  process.once('exit', killAll);
  try {
    const result = await trainDistributed({
      ...common,
      server: { host: args.host ?? '127.0.0.1', port: args.port ?? 0, token, syncedBlend: args.syncedBlend, minWorkers: args.minWorkers ?? plan.count, stepTimeoutMs: args.stepTimeout, timing: args.timing, trace: args.trace, log: (l) => console.log(l) },
      onListening: (port) => {
        const url = `ws://127.0.0.1:${port}`;
        console.log(`coordinator on ${url}; live page and /metrics at http://127.0.0.1:${port}/; starting ${plan.count} local worker(s) (logs: ${run.outDir}/worker-*.log)`);
        children = startWorkers(url, token, args, plan, run.outDir);
      },
    });
    await Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => { c.once('exit', r); setTimeout(r, 10_000); }))));
    return result.finished || args.stopAt !== undefined ? 0 : 130;
  } finally {
    killAll();
  }
});
