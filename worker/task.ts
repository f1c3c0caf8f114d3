// A worker started by a cluster launcher (srun, torchrun-style, a Kubernetes indexed Job): its device from the rendezvous, the session, and an unreachable coordinator named with the variables read.
import { initBackend } from '../shared/backend/backend.ts';
import { coordinatorUrl, describeRendezvous, type Rendezvous } from '../shared/cli/rendezvous.ts';
import type { BackendChoice } from '../shared/config.ts';
import { RendezvousError } from '../shared/errors.ts';
import { runWorker } from './session.ts';

/**
 * Runs task `rv.rank` (> 0) as a worker of the coordinator the rendezvous names, in this process; its own listen
 * address, where a worker needs one, follows from this connection. Returns the exit code (0 done, 2 rejected);
 * throws E_UNREACHABLE when the coordinator cannot be reached for `retryForMs`.
 */
export async function runTaskWorker(rv: Rendezvous, o: { backend?: BackendChoice; retryForMs: number }): Promise<number> {
  const log = (l: string) => console.log(`[rank ${rv.rank}] ${l}`);
  // before tfjs-node can load: the device chosen from the local rank
  if (rv.device !== undefined) process.env.CUDA_VISIBLE_DEVICES = rv.device;
  log(describeRendezvous(rv));
  if (rv.from.device) log(`device: ${rv.from.device}`);
  const backend = await initBackend(o.backend ?? 'auto', log);
  const url = coordinatorUrl(rv);
  const exit = await runWorker({ url, token: rv.token, backend, retryForMs: o.retryForMs, log });
  if (exit.reason === 'unreachable') {
    throw new RendezvousError('E_UNREACHABLE', `rank ${rv.rank} of ${rv.worldSize} could not reach the coordinator at ${url} within ${Math.round(o.retryForMs / 1000)} s ` +
      `(--rendezvous-timeout): address from ${rv.from.host}, port from ${rv.from.port}; read ${rv.read.join(' ')}. ` +
      `Check that task 0 started (its output), that ${rv.host} resolves to the node it runs on, and that port ${rv.port} is open between the nodes`);
  }
  log(`${exit.reason}: ${exit.message}`);
  return exit.reason === 'done' ? 0 : 2;
}
