// The launcher of `npm run train`: where the coordinator and its local workers run (devices), and starting the worker processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { systemGpus } from '../shared/backend/backend.ts';
import { planLaunch, type LaunchPlan } from '../shared/backend/gpus.ts';
import { NODE_HEAP_FLAGS } from '../shared/cli/node-flags.ts';
import type { TrainArgs } from '../shared/cli/options.ts';
import type { BackendChoice, TrainConfig } from '../shared/config.ts';
import { relayWorker } from './worker-relay.ts';

const ROOT = resolve(import.meta.dirname, '..'); // the worker's entry point is worker/main.ts there

/**
 * Where the coordinator and the local workers run (shared/backend/gpus.ts planLaunch): one worker per --gpus device, else
 * --workers (round robin over the visible devices), else one per visible device, else one per core. Logs the plan.
 */
export function launchPlan(args: TrainArgs, log: (l: string) => void): LaunchPlan {
  const plan = planLaunch({ gpus: systemGpus(), env: process.env, workers: args.workers, gpuList: args.gpus, coordinatorGpu: args.coordinatorGpu, cores: cpus().length });
  for (const n of plan.notes) log(`devices: ${n}`);
  plan.workers.forEach((w, i) => w.device && log(`worker ${i}: ${w.device.label} (CUDA_VISIBLE_DEVICES=${w.env.CUDA_VISIBLE_DEVICES})`));
  return plan;
}

/**
 * The coordinator's backend. Unless --coordinator-gpu gives it a device, it sees no GPU (its CUDA_VISIBLE_DEVICES
 * is empty): TensorFlow would otherwise take memory on the workers' GPUs, and its own work (AdamW, the synced or
 * global spectral filter, evaluation) runs on the CPU — see README "Backends" for what evaluation costs there. Under
 * the owners' update (`update`, the default) the workers evaluate, so only the star's coordinator is warned.
 */
export function coordinatorBackend(requested: BackendChoice, plan: LaunchPlan, cfg: TrainConfig, log: (l: string) => void, update: 'owners' | 'coordinator' = 'owners'): BackendChoice {
  if (plan.coordinator.device) {
    log(`coordinator: ${plan.coordinator.device.label} (--coordinator-gpu; CUDA_VISIBLE_DEVICES=${plan.coordinator.env.CUDA_VISIBLE_DEVICES})`);
    return 'tensorflow-gpu';
  }
  if (!plan.coordinator.hidden) return requested;
  log("coordinator: on the CPU, kept off the workers' GPUs (CUDA_VISIBLE_DEVICES= for it); --coordinator-gpu I gives it a device of its own");
  // its evaluation is forward passes of the whole model: ~2·params·tokens FLOPs, at tens of GFLOP/s on a CPU backend
  const { n_layer: L, n_embd: C, vocab_size: V, block_size: T, batch_size: B, eval_iters: E } = cfg;
  const evalFlops = 2 * (12 * L * C * C + (V + T) * C) * 2 * E * B * T;
  if (update === 'coordinator' && evalFlops > 1e13) {
    log(`warning: the coordinator evaluates on the CPU (${2 * E} batches of ${B}×${T} every ${cfg.eval_interval} steps, ~${(evalFlops / 1e12).toFixed(0)} TFLOP each time): ` +
      'for the paper preset that is about 100 min on a 2-core VM (README "Backends"). Give it a device: --coordinator-gpu 0 (taken from the workers), ' +
      'or --coordinator-gpu 0 --gpus 0,1,… to share GPU 0 with a worker (TF_FORCE_GPU_ALLOW_GROWTH keeps it to what it uses)');
  }
  return requested === 'tensorflow-gpu' ? 'auto' : requested;
}

/** Starts local worker processes, each logging to DIR/worker-i.log; returns them so they can be stopped. */
export function startWorkers(url: string, token: string, args: TrainArgs, plan: LaunchPlan, outDir: string): ChildProcess[] {
  mkdirSync(outDir, { recursive: true });
  return plan.workers.map((w, i) => {
    // the token in the environment: a command line is readable by every user of the host (ps)
    const env = { ...process.env, ...w.env, SMI_TOKEN: token };
    const flags = ['--connect', url, '--retry-for', '15000', ...(args.backend ? ['--backend', args.backend] : [])];
    // own process group: a Ctrl-C reaches the coordinator, which checkpoints and then ends the workers
    const child = spawn(process.execPath, [...NODE_HEAP_FLAGS, '--import', 'tsx', join(ROOT, 'worker', 'main.ts'), ...flags], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const logFile = createWriteStream(join(outDir, `worker-${i}.log`));
    child.stdout!.pipe(logFile);
    child.stderr!.pipe(logFile);
    relayWorker(child, i, (l) => console.log(l), (l) => {
      process.stderr.write(`${l}\n`);
      process.exit(2); // 'exit' ends the other workers
    });
    return child;
  });
}
