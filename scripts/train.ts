// `npm run train` / `npm start`: one process (--local), or a coordinator plus N local worker processes.
import type { ChildProcess } from 'node:child_process';
import { coordinatorBackend, launchPlan, startWorkers } from '../coordinator/launcher.ts';
import { trainDistributed } from '../coordinator/run.ts';
import { newToken } from '../coordinator/server.ts';
import { initBackend } from '../shared/backend/backend.ts';
import { runMain } from '../shared/cli/main.ts';
import { parseTrainArgs, trainHelp } from '../shared/cli/options.ts';
import { interruptSignal, setupRun } from '../shared/cli/setup.ts';
import { ConfigError } from '../shared/errors.ts';
import { trainLocal } from '../shared/train/loop.ts';

runMain(async () => {
  const args = parseTrainArgs(process.argv.slice(2));
  if (args.help) {
    console.log(trainHelp());
    return 0;
  }
  const run = setupRun(args);
  const requested = args.backend ?? (run.resume ? 'auto' : run.cfg.backend);
  const plan = args.local ? null : launchPlan(args, (l) => console.log(l));
  // before tfjs-node can load in this process: the coordinator's own devices and TensorFlow variables
  if (plan) Object.assign(process.env, plan.coordinator.env);
  const backend = await initBackend(plan ? coordinatorBackend(requested, plan, run.cfg, (l) => console.log(l)) : requested, (l) => console.log(l));
  const signal = interruptSignal(console.log);
  const common = { ...run, backend, initFrom: args.initFrom, initFromDropExtra: args.initFromDropExtra, logBatches: args.logBatches, stopAt: args.stopAt, checkpointInterval: args.checkpointInterval, signal };
  if (args.local) {
    if (args.trace) throw new ConfigError('E_BAD_FLAG', '--trace records the coordinator and its workers: drop --local (e.g. --workers 1)');
    const result = await trainLocal(common);
    return result.finished || args.stopAt !== undefined ? 0 : 130;
  }
  if (args.tlsCert || args.tlsKey) throw new ConfigError('E_BAD_FLAG', '--tls-cert/--tls-key are for `npm run coordinator` (workers on other hosts); local workers connect over loopback');
  const token = args.token ?? newToken();
  let children: ChildProcess[] = [];
  const killAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
  process.once('exit', killAll);
  try {
    const result = await trainDistributed({
      ...common,
      server: { host: args.host ?? '127.0.0.1', port: args.port ?? 0, token, syncedBlend: args.syncedBlend, update: args.update, commitInterval: args.commitInterval, minWorkers: args.minWorkers ?? plan!.workers.length, stepTimeoutMs: args.stepTimeout, firstStepTimeoutMs: args.firstStepTimeout, timing: args.timing, trace: args.trace, log: (l) => console.log(l) },
      onListening: (port) => {
        const url = `ws://127.0.0.1:${port}`;
        console.log(`coordinator on ${url}; live page and /metrics at http://127.0.0.1:${port}/; starting ${plan!.workers.length} local worker(s) (logs: ${run.outDir}/worker-*.log)`);
        children = startWorkers(url, token, args, plan!, run.outDir);
      },
    });
    await Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => { c.once('exit', r); setTimeout(r, 10_000); }))));
    return result.finished || args.stopAt !== undefined ? 0 : 130;
  } finally {
    killAll();
  }
});
