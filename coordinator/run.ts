// A distributed run: the coordinator's server plus the shared training loop with the workers' step engine.
import { checkDistributedConfig } from '../shared/config.ts';
import { runTraining, type RunOptions, type RunResult } from '../shared/train/loop.ts';
import { Coordinator, type CoordinatorOptions } from './server.ts';

export interface DistributedRunOptions extends RunOptions {
  server: Omit<CoordinatorOptions, 'cfg' | 'corpus'>;
  /** called once the server listens (e.g. to start local workers) */
  onListening?: (port: number) => void | Promise<void>;
}

/** Serves workers, trains with them, and tells them the run is over. */
export async function trainDistributed(o: DistributedRunOptions): Promise<RunResult> {
  checkDistributedConfig(o.cfg);
  const coord = new Coordinator({ ...o.server, cfg: o.cfg, corpus: o.corpus });
  try {
    const port = await coord.ready;
    await o.onListening?.(port);
    const mode = o.cfg.smi === 'baseline' ? 'global' : o.cfg.spectral;
    return await runTraining({ ...o, onRecord: (r) => coord.monitor.record(r) }, (state) => coord.engine(state), { smi: mode === 'global' });
  } finally {
    await coord.close();
  }
}
