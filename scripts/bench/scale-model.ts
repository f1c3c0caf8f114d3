// The model of E(N) behind docs/scaling/model.md: bytes and CPU per step of the star and the sharded designs, from measured per-unit costs.
//
// It is arithmetic, not a measurement: the per-unit costs below were measured on one loaded 2-core VM (per core,
// CPU only; see docs/scaling/model.md for the commands), the sizes come from the preset's parameter shapes, and
// the link is an ideal pipe of the given rate. What it leaves out is listed in the doc and in MODEL_LEAVES_OUT.
import { PRESETS, type TrainConfig } from '../../shared/config.ts';

/** The parameter tensors of nanoGPT's GPT(bias=False, tied head), in shared/model/gpt.ts's order and shapes. */
export function paramShapes(cfg: Pick<TrainConfig, 'n_layer' | 'n_embd' | 'block_size'> & { vocab_size?: number }): number[][] {
  const C = cfg.n_embd;
  const shapes = [[cfg.vocab_size ?? 65, C], [cfg.block_size, C]];
  for (let l = 0; l < cfg.n_layer; l++) shapes.push([C], [C, 3 * C], [C, C], [C], [C, 4 * C], [4 * C, C]);
  shapes.push([C]);
  return shapes;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Values of a model, and of its synced-mode magnitude spectra (half spectra [floor(cols/2)+1, rows] per tensor, shared/smi/steps.ts). */
export function modelSizes(shapes: readonly number[][]): { params: number; magnitudes: number } {
  let params = 0;
  let magnitudes = 0;
  for (const s of shapes) {
    const cols = s.length === 0 ? 1 : s[s.length - 1]!;
    params += size(s);
    magnitudes += (size(s) / cols) * (Math.floor(cols / 2) + 1);
  }
  return { params, magnitudes };
}

/** Bytes per step, sent + received, of the busiest process: the star's coordinator, and any process of the sharded design. */
export interface ExchangeBytes {
  /** star: each worker sends its gradient (and magnitudes) and receives the weights */
  starWorker: number;
  /** star: the coordinator receives N gradients (and magnitudes) and sends N weight copies */
  starCoordinator: number;
  /** sharded: reduce-scatter + all-gather, (N−1)/N of the model each way per phase, per process */
  sharded: number;
}

/**
 * Exchange bytes per step for N workers with `params` values of `bytesPerValue` on the wire (weights always fp32)
 * and, in synced mode, `magnitudes` spectra values (fp32). Framing and the token windows are left out (< 0.1%).
 */
export function exchangeBytes(n: number, params: number, o: { magnitudes?: number; gradBytes?: number } = {}): ExchangeBytes {
  const g = o.gradBytes ?? 4;
  const m = 4 * (o.magnitudes ?? 0);
  const worker = params * g + m + params * 4;
  const share = (n - 1) / n;
  // a process sends the others' shares and magnitudes and receives the values of theirs; as an owner it receives
  // the others' shares of its 1/N and sends its values to the N−1 others: the same (N−1)/N of each, both ways
  return { starWorker: worker, starCoordinator: n * worker, sharded: 2 * share * worker };
}

/** Per-unit costs the model multiplies out. CPU figures are per core. */
export interface UnitCosts {
  /** AdamW on one parameter, ns (host arrays) */
  adamwNs: number;
  /** SMI on one parameter (FFT2, magnitude, history, quantile, mask, IFFT2, blend), ns */
  smiNs: number;
  /** the global-norm clip and the weighted mean of N gradients, per parameter per gradient, ns */
  reduceNs: number;
  /** encode + decode of one byte (both ends together), ns */
  codecNsPerByte: number;
  /** one WebSocket connection's throughput on loopback, bytes/s (the ceiling of one process's sends) */
  wsBytesPerSec: number;
}

export interface ModelPoint {
  n: number;
  link: number; // Gbit/s
  star: { stepMs: number; e: number };
  sharded: { stepMs: number; e: number };
}

/**
 * Step time and E(N) = t(1 process) / t(N) for weak scaling (each worker its own batch, `computeMs` each): the
 * serial parts add up, nothing overlaps (the pessimistic reading of both designs).
 *
 * Star: the coordinator decodes and reduces N gradients, runs clip + SMI + AdamW on the whole model, and sends N
 * weight copies; its link carries N × (gradient + weights) and one connection's throughput caps each copy.
 * Sharded: every process sends and receives 2·(N−1)/N of the model each way, reduces N shares of its 1/N and runs
 * the update on its 1/N. With one process neither design has an exchange: t(1) = compute + the whole update.
 */
export function modelPoint(n: number, linkGbit: number, o: { computeMs: number; params: number; magnitudes?: number; costs: UnitCosts }): ModelPoint {
  const { computeMs, params, costs } = o;
  const link = (linkGbit * 1e9) / 8; // bytes/s
  const update = (p: number) => (p * (costs.adamwNs + costs.smiNs)) / 1e6; // ms
  const reduce = (p: number, k: number) => (p * k * costs.reduceNs) / 1e6;
  const wire = (bytes: number, rate: number) => (bytes / rate) * 1000;
  const codec = (bytes: number) => (bytes * costs.codecNsPerByte) / 1e6;
  const one = computeMs + update(params) + reduce(params, 1);
  const b = exchangeBytes(n, params, { magnitudes: o.magnitudes });
  const starLink = Math.min(link, costs.wsBytesPerSec * n); // N connections, each at most one ws's throughput
  const star = n === 1
    ? computeMs + wire(b.starWorker, Math.min(link, costs.wsBytesPerSec)) + codec(b.starWorker) + reduce(params, 1) + update(params)
    : computeMs + wire(b.starCoordinator, starLink) + codec(b.starCoordinator) + reduce(params, n) + update(params);
  const sharded = n === 1 ? one : computeMs + wire(b.sharded, Math.min(link, costs.wsBytesPerSec * (n - 1))) + codec(b.sharded) + reduce(params / n, n) + update(params / n);
  return { n, link: linkGbit, star: { stepMs: star, e: one / star }, sharded: { stepMs: sharded, e: one / sharded } };
}

export const MODEL_LEAVES_OUT = [
  'GPU-side costs: SMI on tf.spectral, AdamW on the device, device↔host copies of gradients and weights',
  'latency: every message is taken to cost its bytes ÷ rate, with no round-trip time, no slow start, no TCP windows',
  'stragglers: every worker computes in exactly the compute time; the step waits for the slowest in reality',
  'congestion and switch limits: every link runs at its full rate in both directions at once',
  'overlap: compute, the exchange and the update are added, none hides another (both designs could overlap more)',
  'evaluation, checkpoints, commits for fault recovery, and the control messages',
];

/** The paper preset's sizes (10.7M parameters, fp32). */
export const PAPER_SIZES = modelSizes(paramShapes({ ...PRESETS.paper, vocab_size: 65 }));

/** `npm run bench -- scale --model`: prints the model's tables; with `out`, writes them there as model.json + model.md. */
export function modelMain(out?: string): number {
  console.log('model: TODO');
  return out ? 0 : 0;
}
