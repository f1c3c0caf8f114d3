// A worker: connects to the coordinator, computes gradients (and spectra) for its share of each step, reconnects.
import * as tf from '@tensorflow/tfjs';
import { hostname, totalmem } from 'node:os';
import WebSocket from 'ws';
import { readInto, type BackendInfo } from '../shared/backend/backend.ts';
import { microBatchFor, type TrainConfig } from '../shared/config.ts';
import { GPT } from '../shared/model/gpt.ts';
import { blendWithMasks, localSpectra, packedMaskChecksum, spectrumMagnitudes, tfGradientMagnitudes, windowsToBatch } from '../shared/parallel/spectral.ts';
import { PROTOCOL_VERSION, type Blend, type Message, type Work } from '../shared/net/protocol.ts';
import { STREAM } from '../shared/model/rng.ts';
import { SMI_RUNS, SpectralMomentum } from '../shared/smi/smi.ts';
import { Peer, clientOptions } from '../shared/net/wire.ts';
import { codeForClose } from '../shared/errors.ts';
import { warmUp } from './warmup.ts';

export interface WorkerOptions {
  url: string; // ws://host:port, or wss://host:port for a coordinator with --tls-cert
  token?: string;
  ca?: Buffer; // PEM certificate(s) to trust for wss:// besides the system's (a private CA, or a self-signed certificate)
  backend: BackendInfo;
  log?: (line: string) => void;
  retryForMs?: number; // give up reconnecting after this long without a coordinator [60 s]
}

/** Node's codes for a server certificate that fails verification (not a network failure). */
const TLS_TRUST_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Why a worker stopped: the coordinator finished the run, or it could not be reached. */
export interface WorkerExit {
  reason: 'done' | 'unreachable' | 'rejected';
  message: string;
}

/** The model-side state of a worker, separate from the connection so it survives reconnects. */
export class WorkerCompute {
  readonly model: GPT;
  readonly shapes: number[][];
  private readonly localSmi: SpectralMomentum | null;
  private keptStep = -1;
  private raw = new Map<number, Float32Array[]>(); // gradients by attempt, current step only, for a `blend`
  // Host buffers reused from step to step (fresh multi-MB arrays each step keep V8's collector busy, on the
  // cores the other workers compute on). A result's buffers are free again once it is sent, as the next
  // message is handled only then; the gradients are also free once no `raw` entry holds them.
  private gradPool: Float32Array[] | null = null;
  private magnitudePool: Float32Array[] | null = null;
  private smiSnapshot: { step: number; round: number; state: ReturnType<SpectralMomentum['getState']> } | null = null;
  weightsStep = -1;
  private readonly microBatch: number;
  private readonly spectral: BackendInfo['spectral'];

  constructor(readonly cfg: TrainConfig, backend: BackendInfo) {
    this.microBatch = microBatchFor(cfg, backend.name);
    this.spectral = backend.spectral;
    this.model = new GPT(cfg, cfg.seed);
    this.shapes = this.model.params.map((p) => p.shape);
    this.localSmi = cfg.spectral === 'local' && cfg.smi !== 'baseline' ? new SpectralMomentum(SMI_RUNS[cfg.smi], backend.spectral, cfg.seed) : null;
  }

  setWeights(step: number, tensors: Float32Array[]): void {
    this.model.assignAll(tensors);
    this.weightsStep = step;
  }

  /** Forward + backward on the windows; gradients (and magnitudes in synced mode) as host arrays. */
  computeGrads(w: Work): { loss: number; grads: Float32Array[]; magnitudes?: Float32Array[]; phases: Record<string, number> } {
    if (w.step !== this.keptStep) {
      this.raw.clear();
      this.keptStep = w.step;
    }
    const t0 = performance.now();
    const { x, y, n } = windowsToBatch(w.tokens, this.cfg.block_size);
    const { loss, grads } = this.model.gradients(x, y, n, [this.cfg.seed, STREAM.dropout, w.step], this.microBatch, w.offsets);
    const pool = this.gradPool && ![...this.raw.values()].includes(this.gradPool) ? this.gradPool : null;
    const host = grads.map((g, i) => readInto(g, pool?.[i] ?? new Float32Array(g.size)));
    this.gradPool ??= host;
    const t1 = performance.now();
    // on TensorFlow the spectra come from tf.spectral where the gradients are, not from the host copies
    const tfMags = w.magnitudes && this.spectral === 'tf' ? tfGradientMagnitudes(grads, this.magnitudePool ?? undefined) : undefined;
    tf.dispose(grads);
    const phases: Record<string, number> = { compute: t1 - t0 };
    // kept for a `blend` (synced with --synced-blend workers, local mode); held by reference, no copy
    if (w.magnitudes || this.localSmi) this.raw.set(w.attempt, host);
    if (w.magnitudes) {
      const magnitudes = tfMags ?? spectrumMagnitudes(host, this.shapes, this.magnitudePool ?? undefined);
      this.magnitudePool ??= magnitudes;
      phases.spectral = performance.now() - t1;
      return { loss, grads: host, magnitudes, phases };
    }
    return { loss, grads: host, phases };
  }

  /** Blends a chunk computed earlier this step: with the shared masks (synced) or this worker's own history (local). */
  blend(b: Blend): { tensors: Float32Array[]; maskChecksum: number; phases: Record<string, number> } {
    const t0 = performance.now();
    if (b.step !== this.keptStep) throw new Error(`blend for step ${b.step}, but this worker computed step ${this.keptStep}`);
    if (b.masks) {
      const grads = this.raw.get(b.source);
      if (!grads) throw new Error(`blend of work ${b.source}, which this worker did not compute`);
      const { kept } = localSpectra(grads, this.shapes); // the forward transform again, not kept from `work`: the default one-round mode never blends here
      const tensors = blendWithMasks(kept, b.masks, b.clip, b.alpha);
      // the checksum of the masks this worker actually applied, for the coordinator to compare across workers
      const sizes = kept.spectra.map((s) => s.rows * s.half);
      return { tensors, maskChecksum: packedMaskChecksum(b.masks, sizes), phases: { spectral: performance.now() - t0 } };
    }
    const raw = this.raw.get(b.source);
    if (!raw || !this.localSmi) throw new Error(`blend of work ${b.source}, which this worker did not compute`);
    // A step redone after a failure (a higher round) starts again from the history before the step.
    const round = Math.floor(b.attempt / 1000);
    if (this.smiSnapshot?.step === b.step && this.smiSnapshot.round < round) this.localSmi.setState(this.smiSnapshot.state);
    if (this.smiSnapshot?.step !== b.step) this.smiSnapshot = { step: b.step, round, state: this.localSmi.getState() };
    this.smiSnapshot.round = round;
    const named = raw.map((g, i) => ({ name: this.model.params[i]!.name, tensor: tf.tensor(g, this.shapes[i]!).mul(b.clip) }));
    const out = this.localSmi.apply(named, b.step, this.cfg.max_iters);
    const tensors = out.map((o) => o.tensor.dataSync() as Float32Array);
    tf.dispose([...named.map((n) => n.tensor), ...out.map((o) => o.tensor)]);
    return { tensors, maskChecksum: this.localSmi.lastMaskChecksum, phases: { spectral: performance.now() - t0 } };
  }

  dispose(): void {
    this.model.dispose();
    this.localSmi?.dispose();
  }
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
  try {
    for (;;) {
      const outcome = await session();
      if (outcome) return outcome;
      if (Date.now() - lastContact > (o.retryForMs ?? 60_000)) {
        return { reason: 'unreachable', message: `no coordinator at ${o.url} for ${Math.round((Date.now() - lastContact) / 1000)} s` };
      }
      await new Promise((r) => setTimeout(r, delay * (0.75 + Math.random() * 0.5)));
      delay = Math.min(delay * 2, 5000);
    }
  } finally {
    compute?.dispose();
  }

  /** One connection. Resolves an exit when the run is over, or null to reconnect. */
  function session(): Promise<WorkerExit | null> {
    return new Promise((resolve) => {
      const ws = new WebSocket(o.url, clientOptions(o.ca ? { ca: o.ca } : {}));
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
      ws.on('open', () => {
        lastContact = Date.now();
        delay = 250;
        const peer = new Peer(ws);
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
          backend: o.backend.name, device: o.backend.device, memoryBytes: totalmem(), host: hostname(), pid: process.pid,
        }).catch((e: Error) => log(`sending hello failed: ${e.message}`)); // the link's close then reconnects
      });
    });
  }

  async function handle(peer: Peer, msg: Message, decodeMs: number, finish: (v: WorkerExit | null) => void): Promise<void> {
    switch (msg.type) {
      case 'welcome': {
        workerId = msg.workerId;
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
        await peer.send({ type: 'grads', step: msg.step, attempt: msg.attempt, sequences: msg.offsets.length, loss: r.loss, tensors: r.grads, ...(r.magnitudes ? { magnitudes: r.magnitudes } : {}), phases: { ...r.phases, decode: decodeMs } });
        return;
      }
      case 'blend': {
        const r = compute!.blend(msg);
        await peer.send({ type: 'blended', step: msg.step, attempt: msg.attempt, tensors: r.tensors, maskChecksum: r.maskChecksum, phases: { ...r.phases, decode: decodeMs } });
        return;
      }
      case 'ping':
        await peer.send({ type: 'pong', t: msg.t });
        return;
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
      case 'pong':
        throw new Error(`unexpected ${msg.type} from the coordinator`);
      default: {
        const never: never = msg;
        throw new Error(`unknown message ${JSON.stringify(never)}`);
      }
    }
  }
}
