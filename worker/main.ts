// `npm run worker -- --connect ws://HOST:PORT`: one worker process (one per GPU or per core).
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { initBackend } from '../shared/backend/backend.ts';
import { parseWithTable } from '../shared/cli/options.ts';
import { BACKENDS, oneOf } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';
import { runMain } from '../shared/cli/main.ts';
import { runWorker } from './session.ts';

const S = 'run' as const;
const OPTIONS = {
  connect: { type: 'string' as const, arg: 'URL', section: S, help: 'the coordinator, ws://HOST:PORT or wss://HOST:PORT (TLS)' },
  ca: { type: 'string' as const, arg: 'FILE', section: S, help: "wss://: also trust the PEM certificate(s) in FILE (the coordinator's private CA or self-signed certificate)" },
  token: { type: 'string' as const, arg: 'T', section: S, help: "the coordinator's token [SMI_TOKEN]" },
  backend: { type: 'string' as const, arg: 'B', section: S, help: `${BACKENDS.join('|')} [auto]` },
  listen: { type: 'string' as const, arg: 'HOST:PORT', section: S, help: "the exchange server, where the other workers send this worker the gradients of the tensors it owns [the address this worker reaches the coordinator from, port 0]" },
  advertise: { type: 'string' as const, arg: 'URL', section: S, help: 'the exchange URL the other workers are told (behind NAT or a proxy) [ws://HOST:PORT as bound]' },
  'tls-cert': { type: 'string' as const, arg: 'FILE', section: S, help: 'serve the exchange as wss:// with this PEM certificate (chain); needs --tls-key. The other workers must trust it (--ca)' },
  'tls-key': { type: 'string' as const, arg: 'FILE', section: S, help: "the exchange certificate's PEM private key" },
  'compute-only': { type: 'boolean' as const, section: S, help: 'do not listen: own no tensors, only compute (sends to the owners and receives from them over links it opens)' },
  'retry-for': { type: 'string' as const, arg: 'MS', section: S, help: 'give up after this long without a coordinator [60000]' },
  quiet: { type: 'boolean' as const, section: S, help: 'log only errors' },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};
const HELP = `Usage: npm run worker -- --connect ws[s]://HOST:PORT [--token T] [--ca FILE] [--backend B] [--retry-for MS]
                          [--listen HOST:PORT] [--advertise URL] [--tls-cert FILE --tls-key FILE] [--compute-only]

Connects to a coordinator, computes gradients for its share of each step, and reconnects with backoff when
the link drops. One worker per GPU (set CUDA_VISIBLE_DEVICES) or per CPU core.
Example: CUDA_VISIBLE_DEVICES=1 npm run worker -- --connect wss://10.0.0.5:8765 --token s3cret --ca coordinator.pem
Exit codes: 0 the run finished, 1 the coordinator could not be reached, 2 bad arguments or rejected (token, version,
an untrusted certificate).`;

runMain(async () => {
  const v = parseWithTable(process.argv.slice(2), OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const url = v.connect as string | undefined;
  if (!url || !/^wss?:\/\/[^/]+/.test(url)) throw new ConfigError('E_BAD_FLAG', `--connect takes ws://HOST:PORT or wss://HOST:PORT, got ${url ?? 'nothing'}`);
  const caFile = v.ca as string | undefined;
  if (caFile !== undefined && !url.startsWith('wss://')) throw new ConfigError('E_BAD_FLAG', `--ca is for a wss:// coordinator; --connect is ${url}`);
  let ca: Buffer | undefined;
  try {
    ca = caFile === undefined ? undefined : readFileSync(caFile);
  } catch (e) {
    throw new ConfigError('E_BAD_FLAG', `--ca ${caFile}: ${(e as Error).message}`);
  }
  const retryFor = v['retry-for'] === undefined ? 60_000 : Number(v['retry-for']);
  if (!Number.isFinite(retryFor) || retryFor < 0) throw new ConfigError('E_BAD_FLAG', `--retry-for takes milliseconds, got ${String(v['retry-for'])}`);
  const listen = parseListen(v.listen as string | undefined, v['compute-only'] === true);
  const advertise = v.advertise as string | undefined;
  if (advertise !== undefined && !/^wss?:\/\/[^\s/]+$/.test(advertise)) throw new ConfigError('E_BAD_FLAG', `--advertise takes ws://HOST:PORT or wss://HOST:PORT, got ${advertise}`);
  if (advertise !== undefined && listen === null) throw new ConfigError('E_BAD_FLAG', '--advertise and --compute-only do not go together');
  const certFile = v['tls-cert'] as string | undefined;
  const keyFile = v['tls-key'] as string | undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new ConfigError('E_BAD_FLAG', '--tls-cert and --tls-key go together');
  if (certFile !== undefined && listen === null) throw new ConfigError('E_BAD_FLAG', '--tls-cert is for the exchange server; --compute-only has none');
  let tls: { cert: Buffer; key: Buffer } | undefined;
  try {
    tls = certFile === undefined ? undefined : { cert: readFileSync(certFile), key: readFileSync(keyFile!) };
    if (tls) createSecureContext(tls); // a file that is not PEM, or a key that does not match the certificate
  } catch (e) {
    throw new ConfigError('E_BAD_FLAG', `--tls-cert ${certFile} / --tls-key ${keyFile}: ${(e as Error).message}`);
  }
  const log = (l: string) => console.log(`[worker ${process.pid}] ${l}`);
  if (process.env.CUDA_VISIBLE_DEVICES !== undefined) log(`CUDA_VISIBLE_DEVICES=${process.env.CUDA_VISIBLE_DEVICES}`);
  const backend = await initBackend(v.backend === undefined ? 'auto' : oneOf('backend', v.backend as string, BACKENDS), v.quiet ? () => {} : log);
  const exit = await runWorker({ url, token: (v.token as string | undefined) ?? process.env.SMI_TOKEN, ca, backend, retryForMs: retryFor, listen, advertise, tls, log: v.quiet ? () => {} : log });
  log(`${exit.reason}: ${exit.message}`);
  return exit.reason === 'done' ? 0 : exit.reason === 'rejected' ? 2 : 1;
});

/** --listen HOST:PORT, HOST, or :PORT; --compute-only: no exchange server. */
function parseListen(flag: string | undefined, computeOnly: boolean): { host?: string; port?: number } | null {
  if (computeOnly) {
    if (flag !== undefined) throw new ConfigError('E_BAD_FLAG', '--listen and --compute-only do not go together');
    return null;
  }
  if (flag === undefined) return {};
  const m = /^(\[[^\]]+\]|[^:]*)(?::(\d+))?$/.exec(flag);
  const port = m?.[2] === undefined ? undefined : Number(m[2]);
  if (!m || (port !== undefined && port > 65535)) throw new ConfigError('E_BAD_FLAG', `--listen takes HOST:PORT, HOST or :PORT, got ${flag}`);
  const host = m[1] === '' ? undefined : m[1]!.replace(/^\[|\]$/g, '');
  return { host, port };
}
