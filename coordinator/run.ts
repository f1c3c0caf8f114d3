// A distributed run: the coordinator's server plus the shared training loop with the coordinator's engine.
import type { BackendInfo } from '../shared/backend/backend.ts';
import { checkDistributedConfig } from '../shared/config.ts';
import { runTraining, type RunOptions, type RunResult } from '../shared/train/loop.ts';
import { coordinatorEngine, updateAt, type CoordinatorEngineOptions } from './engine/engine.ts';
import { Server, type ServerOptions } from './server.ts';

export interface DistributedRunOptions extends RunOptions {
  server: Omit<ServerOptions, 'cfg'> & Omit<CoordinatorEngineOptions, 'backend'>;
  /** called once the server listens (e.g. to start local workers) */
  onListening?: (port: number) => void | Promise<void>;
}

/** Serves workers, trains with them, and tells them the run is over. */
export async function trainDistributed(o: DistributedRunOptions & { backend: BackendInfo }): Promise<RunResult> {
  checkDistributedConfig(o.cfg);
  const update = updateAt(o.server.update);
  const server = new Server({ ...o.server, update, cfg: o.cfg });
  try {
    const port = await server.ready;
    await o.onListening?.(port);
    return await runTraining({ ...o, onRecord: (r) => server.monitor.record(r) }, (cfg) => coordinatorEngine(server, cfg, o.corpus, { ...o.server, update, backend: o.backend }));
  } finally {
    await server.close();
  }
}
