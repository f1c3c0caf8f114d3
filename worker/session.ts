// A worker's session: connects to the coordinator, answers its requests with the WorkerCompute (and, under a plan, the exchange), reconnects with backoff.
import type { BackendInfo } from '../shared/backend/backend.ts';
import { PROTOCOL_VERSION, type Message } from '../shared/net/protocol.ts';
import { WorkerCompute } from './compute.ts';
import { Peer } from '../shared/net/peer.ts';
import { localAddress, openSocket } from '../shared/net/socket.ts';
import { ProtocolError, codeForClose, protocolError } from '../shared/errors.ts';
import { warmUp } from './warmup.ts';
import { Exchange } from './exchange.ts';
import { OwnersStep } from './owners-step.ts';
import { hostInfo } from './host.ts';

export interface WorkerOptions {
  url: string; // ws://host:port, or wss://host:port for a coordinator with --tls-cert
  token?: string;
  ca?: Uint8Array; // PEM certificate(s) to trust for wss:// besides the system's (a private CA, or a self-signed certificate)
  backend: BackendInfo;
  log?: (line: string) => void;
  retryForMs?: number; // give up reconnecting after this long without a coordinator [60 s]
  /** The exchange server (this worker can own tensors): host [the local address of the control connection] and port [0]; null: compute-only */
  listen?: { host?: string; port?: number } | null;
  advertise?: string; // the URL the other workers are told for the exchange [ws://HOST:PORT as bound]
  tls?: { cert: Uint8Array; key: Uint8Array }; // serve the exchange as wss:// (links to other owners trust `ca` besides the system's)
  /** Each message sent to the coordinator, once sent (the browser worker's page shows each step's `done`: phases and bytes). */
  onSent?: (msg: Message) => void;
  /** Leave the run: at once between steps, else once this worker's part of the step is done (resolves 'stopped'). */
  signal?: AbortSignal;
}

/** Node's codes for a server certificate that fails verification (not a network failure). */
const TLS_TRUST_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Why a worker stopped: the coordinator finished the run, or it could not be reached. */
export interface WorkerExit {
  reason: 'done' | 'unreachable' | 'rejected' | 'stopped';
  message: string;
}

/**
 * Runs a worker until the coordinator says the run is over (resolves 'done') or cannot be reached for
 * `retryForMs` (resolves 'unreachable'). A dropped link is retried with exponential backoff (0.25 s → 5 s).
 */
export async function runWorker(o: WorkerOptions): Promise<WorkerExit> {
  const log = o.log ?? (() => {});
  // before hello: on a GPU the first use of each kernel may compile it for minutes (worker/warmup.ts)
  log(`warm-up: one forward+backward and spectral step on a small model before joining, ${warmUp(o.backend).toFixed(0)} ms`);
  let compute = null as WorkerCompute | null; // set by `welcome`, kept across reconnects
  let workerId: string | null = null;
  let lastContact = Date.now();
  let delay = 250;
  let control: Peer | null = null; // the current connection to the coordinator
  let inStep = false; // between a `task` and this worker's `done`
  let leave: (() => void) | null = null; // ends the current connection as a stop (set while connected)
  const toCoordinator = async (msg: Message) => {
    if (!control) throw new Error(`no coordinator link; ${msg.type} not sent`);
    const r = await control.send(msg);
    o.onSent?.(msg);
    if (msg.type === 'done') {
      inStep = false;
      if (o.signal?.aborted) leave?.();
    }
    return r;
  };
  o.signal?.addEventListener('abort', () => {
    if (!inStep) leave?.();
  });
  const exchange = new Exchange({
    token: o.token ?? null, ca: o.ca, tls: o.tls, log,
    onMessage: (msg, from, _inbound, link) => owners.data(msg, from, link),
    onError: (err, from) => log(`link ${from}: ${err.code} ${err.message}`),
  });
  const owners = new OwnersStep(
    () => compute!, exchange, o.backend,
    toCoordinator,
    () => ({ sent: control?.bytesSent ?? 0, received: control?.bytesReceived ?? 0 }),
    log,
    (what, e) => {
      const err = e instanceof ProtocolError ? e : protocolError('E_INTERNAL', `${what}: ${(e as Error).message}`);
      log(`${what} failed: ${err.code} ${err.message}; leaving the coordinator, which replans without this worker until it rejoins`);
      control?.close(err);
    },
  );
  const listen = o.listen === undefined ? {} : o.listen;
  try {
    for (;;) {
      if (o.signal?.aborted) return { reason: 'stopped', message: 'stopped before joining' };
      const outcome = await session();
      if (outcome) return outcome;
      if (Date.now() - lastContact > (o.retryForMs ?? 60_000)) {
        return { reason: 'unreachable', message: `no coordinator at ${o.url} for ${Math.round((Date.now() - lastContact) / 1000)} s` };
      }
      await new Promise((r) => setTimeout(r, delay * (0.75 + Math.random() * 0.5)));
      delay = Math.min(delay * 2, 5000);
    }
  } finally {
    owners.dispose();
    await exchange.close();
    compute?.dispose();
  }

  /** One connection. Resolves an exit when the run is over, or null to reconnect. */
  function session(): Promise<WorkerExit | null> {
    return new Promise((resolve) => {
      const ws = openSocket(o.url, { ca: o.ca });
      let settled = false;
      const finish = (v: WorkerExit | null) => {
        if (!settled) {
          settled = true;
          resolve(v);
        }
      };
      ws.on('error', (e: Error & { code?: string }) => {
        // a certificate this worker does not trust will not become trusted by retrying
        if (TLS_TRUST_ERRORS.has(e.code ?? '')) {
          return finish({ reason: 'rejected', message: `the coordinator's certificate is not trusted (${e.code}: ${e.message}); give its CA with --ca FILE` });
        }
        log(`connection to ${o.url} failed: ${e.message}`);
        finish(null);
      });
      ws.on('open', async () => {
        lastContact = Date.now();
        delay = 250;
        const peer = new Peer(ws);
        control = peer;
        leave = () => {
          // a normal close between steps: the coordinator drops this worker and plans the next step without it
          finish({ reason: 'stopped', message: 'left the run' });
          peer.close();
        };
        if (listen && exchange.url === null) {
          // by default on the interface this worker reaches the coordinator by
          const host = listen.host ?? localAddress(ws) ?? '0.0.0.0';
          try {
            log(`exchange listening on ${await exchange.listen(host, listen.port ?? 0, o.advertise)}`);
          } catch (e) {
            return finish({ reason: 'rejected', message: `the exchange cannot listen on ${host}:${listen.port ?? 0}: ${(e as Error).message}` });
          }
        }
        let queue = Promise.resolve();
        peer.onClose((code, reason) => {
          const why = codeForClose(code);
          if (why === 'E_SHUTDOWN') finish({ reason: 'done', message: reason });
          else if (why === 'E_TOKEN' || why === 'E_VERSION') finish({ reason: 'rejected', message: `${code} ${reason}` });
          else {
            log(`link closed (${code} ${reason}); reconnecting`);
            finish(null);
          }
        });
        peer.onMessage((msg: Message, info) => {
          lastContact = Date.now();
          queue = queue.then(() => handle(peer, msg, info.decodeMs, finish)).catch((e: Error) => {
            log(`error: ${e.message}`);
            peer.close();
          });
        });
        peer.send({
          type: 'hello', protocol: PROTOCOL_VERSION, token: o.token ?? null, workerId,
          backend: o.backend.name, device: o.backend.device, ...hostInfo(), listen: exchange.url,
        }).catch((e: Error) => log(`sending hello failed: ${e.message}`)); // the link's close then reconnects
      });
    });
  }

  async function handle(peer: Peer, msg: Message, decodeMs: number, finish: (v: WorkerExit | null) => void): Promise<void> {
    switch (msg.type) {
      case 'welcome': {
        workerId = msg.workerId;
        owners.selfId = msg.workerId;
        exchange.setSelf(msg.workerId);
        if (!compute || JSON.stringify(compute.cfg) !== JSON.stringify(msg.config)) {
          compute?.dispose();
          compute = new WorkerCompute(msg.config, o.backend);
        }
        log(`joined as ${msg.workerId} at step ${msg.step}`);
        return;
      }
      case 'weights':
        compute!.setWeights(msg.step, msg.tensors);
        return;
      case 'work': {
        const r = compute!.computeGrads(msg);
        await peer.send({ type: 'grads', step: msg.step, round: msg.round, attempt: msg.attempt, sequences: msg.offsets.length, loss: r.loss, tensors: r.grads, ...(r.magnitudes ? { magnitudes: r.magnitudes } : {}), phases: { ...r.phases, decode: decodeMs } });
        return;
      }
      case 'blend': {
        const r = compute!.blend(msg);
        await peer.send({ type: 'blended', step: msg.step, round: msg.round, attempt: msg.attempt, tensors: r.tensors, maskChecksum: r.maskChecksum, phases: { ...r.phases, decode: decodeMs } });
        return;
      }
      case 'load':
        return owners.load(msg).catch((e: Error) => log(`load of plan ${msg.planVersion}: ${e.message}; waiting for the next plan`));
      case 'task':
        inStep = true;
        return owners.runTask(msg);
      case 'commit':
        // not awaited: sending values waits for links, and a `load` (the coordinator giving up on this step) must get through
        void owners.commit(msg).catch((e: unknown) => owners.failed(`commit of step ${msg.step}`, e));
        return;
      case 'clip':
        return owners.clip(msg);
      case 'gather':
        return owners.gather(msg);
      case 'evaluate':
        return owners.evaluate(msg);
      case 'bye':
        finish({ reason: 'done', message: msg.reason });
        peer.close();
        return;
      case 'error':
        log(`coordinator error ${msg.code}: ${msg.message}`);
        return;
      case 'hello':
      case 'grads':
      case 'blended':
      case 'loaded':
      case 'computed':
      case 'link':
      case 'share':
      case 'reduced':
      case 'rejected':
      case 'masks':
      case 'values':
      case 'done':
      case 'state':
      case 'evaluated':
        throw new Error(`unexpected ${msg.type} from the coordinator`);
      default: {
        const never: never = msg;
        throw new Error(`unknown message ${JSON.stringify(never)}`);
      }
    }
  }
}
