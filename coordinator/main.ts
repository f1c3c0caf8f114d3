// `npm run coordinator`: a coordinator alone; workers on any host connect to it.
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { initBackend } from '../shared/backend/backend.ts';
import { parseTrainArgs, trainHelp } from '../shared/cli/options.ts';
import { ConfigError } from '../shared/errors.ts';
import { runMain } from '../shared/cli/main.ts';
import { interruptSignal, setupRun } from '../shared/cli/setup.ts';
import { trainDistributed } from './run.ts';
import { newToken } from './server.ts';
import { workerPageUrl } from './worker-page.ts';

runMain(async () => {
  const args = parseTrainArgs(process.argv.slice(2));
  if (args.help) {
    console.log(trainHelp('coordinator'));
    return 0;
  }
  if (args.local || args.workers !== undefined || args.gpus || args.coordinatorGpu !== undefined || args.launcher !== undefined || args.rendezvousTimeout !== undefined) {
    throw new ConfigError('E_BAD_FLAG', '--local, --workers, --gpus, --coordinator-gpu, --launcher and --rendezvous-timeout belong to `npm run train`; a coordinator alone waits for workers started with `npm run worker` (choose its device with CUDA_VISIBLE_DEVICES)');
  }
  const tls = readTls(args.tlsCert, args.tlsKey);
  const run = setupRun(args);
  const backend = await initBackend(args.backend ?? (run.resume ? 'auto' : run.cfg.backend), (l) => console.log(l));
  const host = args.host ?? '0.0.0.0';
  const token = args.token ?? newToken();
  const scheme = tls ? 'wss' : 'ws';
  const result = await trainDistributed({
    ...run, backend, initFrom: args.initFrom, initFromDropExtra: args.initFromDropExtra, logBatches: args.logBatches, stopAt: args.stopAt,
    checkpointInterval: args.checkpointInterval, signal: interruptSignal(console.log),
    server: { host, port: args.port ?? 0, token, tls, syncedBlend: args.syncedBlend, update: args.update, commitInterval: args.commitInterval, minWorkers: args.minWorkers, stepTimeoutMs: args.stepTimeout, firstStepTimeoutMs: args.firstStepTimeout, timing: args.timing, trace: args.trace, log: (l) => console.log(l) },
    onListening: (port) => {
      console.log(`coordinator listening on ${scheme}://${host}:${port} (live page and /metrics: ${tls ? 'https' : 'http'}://${host === '0.0.0.0' ? 'localhost' : host}:${port}/)`);
      console.log(`start workers with: npm run worker -- --connect ${scheme}://<this host>:${port} --token ${token}${tls ? ' [--ca FILE for a private CA]' : ''}`);
      // to this terminal only (never the run's log files): the token rides in the fragment, which no request carries
      console.log(`or open in a browser: ${workerPageUrl(`${tls ? 'https' : 'http'}://<this host>:${port}`, token)}`);
    },
  });
  return result.finished || args.stopAt !== undefined ? 0 : 130;
});

/** The PEM certificate and key of --tls-cert / --tls-key, read now so that a bad path fails before training starts. */
function readTls(certFile: string | undefined, keyFile: string | undefined): { cert: Buffer; key: Buffer } | undefined {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) throw new ConfigError('E_BAD_FLAG', '--tls-cert and --tls-key go together');
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new ConfigError('E_BAD_FLAG', `--${flag} ${file}: ${(e as Error).message}`);
    }
  };
  const tls = { cert: read('tls-cert', certFile), key: read('tls-key', keyFile) };
  try {
    createSecureContext(tls); // a file that is not PEM, or a key that does not match the certificate
  } catch (e) {
    throw new ConfigError('E_BAD_FLAG', `--tls-cert ${certFile} / --tls-key ${keyFile}: ${(e as Error).message}`);
  }
  return tls;
}
