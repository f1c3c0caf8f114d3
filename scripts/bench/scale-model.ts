// The model of E(N) behind docs/scaling/model.md: bytes and CPU per step of the star and the sharded designs, from measured per-unit costs.
//
// It is arithmetic, not a measurement: the per-unit costs below were measured on one 2-core VM (per core,
// CPU only; see docs/scaling/model.md for the commands), the sizes come from the preset's parameter shapes, and
// the link is an ideal pipe of the given rate. What it leaves out is listed in the doc and in MODEL_LEAVES_OUT.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
  /** sharded: reduce-scatter + all-gather, (N−1)/N of the model each way per phase, per process (no magnitudes: synced owners compute them from the shares) */
  sharded: number;
}

/**
 * Exchange bytes per step for N workers with `params` values of `bytesPerValue` on the wire (weights always fp32)
 * and, in synced mode, `magnitudes` spectra values (fp32), which only the star sends: the sharded design's owners
 * compute every chunk's magnitudes from its share (protocol 5). Framing and the token windows are left out (< 0.1%).
 */
export function exchangeBytes(n: number, params: number, o: { magnitudes?: number; gradBytes?: number } = {}): ExchangeBytes {
  const g = o.gradBytes ?? 4;
  const m = 4 * (o.magnitudes ?? 0);
  const worker = params * g + m + params * 4;
  const share = (n - 1) / n;
  // a process sends the others' shares and receives the values of theirs; as an owner it receives the others'
  // shares of its 1/N and sends its values to the N−1 others: the same (N−1)/N of each, both ways
  return { starWorker: worker, starCoordinator: n * worker, sharded: 2 * share * (params * g + params * 4) };
}

/** Per-unit costs the model multiplies out: CPU figures, per core, measured on a 2-core VM (MEASURED). */
export interface UnitCosts {
  /** AdamW on one parameter, ns */
  adamwNs: number;
  /** SMI on one parameter (FFT2, magnitude, history, quantile, mask, IFFT2, blend), ns */
  smiNs: number;
  /** the check of a gradient on arrival, the weighted mean and the clip's sum of squares, per parameter per gradient, ns */
  reduceNs: number;
  /** encode + decode per byte, ns (zero-copy sections: almost nothing) */
  codecNsPerByte: number;
  /** bytes one process moves over WebSockets per second, sent + received (its one event-loop thread's ceiling) */
  wsBytesPerSec: number;
}

/** The figures behind UnitCosts, each with the command that measured it (docs/scaling/model.md). */
export const MEASURED = {
  date: "2026-12-02, this project's 2-core Intel Xeon VM (the machine since 2026-12-02), Node 20.20.2, tfjs wasm, nothing else running",
  smi: { ms: 129.0, params: 10_745_088, command: 'npm run bench -- fft --preset paper --reps 3', what: '"all parameters, SMI apply (host)", auto FFT library' },
  adamw: { ms: 19.57, params: 10_745_088, command: 'npm run bench -- kernels', what: 'section (e), the fused pass (shared/wasm/adamw.ts), median of 7 steps (the tensor ops: 145.43 ms)' },
  reduce: { ms: 25.7, params: 5_324_928, gradients: 2, command: 'npm run bench -- scale --repeat 3', what: "the owners' reduce phase (the SIMD weighted mean of 2 shares and the clip's tf.sum of squares), global weak, the two workers' medians (25.4, 26.0 ms) for their mean 5,324,928 owned parameters" },
  check: { ms: 3.94, values: 5_433_984, command: 'npm run bench -- kernels', what: 'section (f), the SIMD check of a share on arrival (Σ x² in float64), median of 7' },
  codec: { ms: 0.625, bytes: 2 * 42_980_352, command: 'npm run bench -- transport --rounds 15 --warmup 3 --only masked --json', what: 'encodeMs + decodeMs of 43 MB each' },
  ws: { bytes: 85_962_664, ms: 73.9, command: 'the same bench', what: 'round trip of weights out and a gradient back: one process sends and receives 86 MB (median of 15 after 3 warm-up rounds)' },
} as const;

export const COSTS: UnitCosts = {
  adamwNs: (MEASURED.adamw.ms * 1e6) / MEASURED.adamw.params,
  smiNs: (MEASURED.smi.ms * 1e6) / MEASURED.smi.params,
  reduceNs: (MEASURED.reduce.ms * 1e6) / (MEASURED.reduce.params * MEASURED.reduce.gradients) + (MEASURED.check.ms * 1e6) / MEASURED.check.values,
  codecNsPerByte: (MEASURED.codec.ms * 1e6) / MEASURED.codec.bytes,
  wsBytesPerSec: MEASURED.ws.bytes / (MEASURED.ws.ms / 1000),
};

/** Where the owners' update runs: on the GPU (its cost left out of the model: never measured here) or on the host path. */
export type UpdateAt = 'device' | 'host';

export interface ModelInput {
  computeMs: number; // one worker's forward + backward
  params: number;
  magnitudes: number; // synced mode's spectra values (0: global mode)
  gradBytes?: number; // bytes per gradient value on the wire: 4 (fp32), 2 (--wire-dtype bf16) [4]
  linkGbit: number; // each host's link, full duplex
  update: UpdateAt;
  reduce: UpdateAt; // where the owners' weighted mean runs (the star's coordinator: always the host)
  costs: UnitCosts;
  wsCap: boolean; // false: no per-process WebSocket ceiling (the links alone)
}

export interface ModelStep {
  stepMs: number;
  e: number; // t(1) / t(N): weak scaling
  parts: { compute: number; wire: number; codec: number; reduce: number; update: number };
}

/**
 * One step of N workers, weak scaling (each its own batch): compute + exchange + reduce + update, added with no
 * overlap. The exchange takes max(bytes each way ÷ link, bytes both ways ÷ the process's WebSocket ceiling).
 * Star: the coordinator moves N gradients in and N weight copies out, reduces N gradients and runs the whole
 * update, all on its CPU (host costs, always). Sharded: every process moves 2·(N−1)/N of the model each way,
 * reduces N shares of its 1/N (P values in all, whatever N) and updates its 1/N, each at host cost or left out
 * ("device"). t(1) is one process alone: compute and its own update (host or device as the sharded owners'), no
 * exchange and no reduce (one gradient is its own mean).
 */
export function modelStep(design: 'star' | 'sharded', n: number, o: ModelInput): ModelStep {
  const { costs } = o;
  const link = (o.linkGbit * 1e9) / 8;
  const ws = o.wsCap ? costs.wsBytesPerSec : Infinity;
  const ms = (ns: number) => ns / 1e6;
  const update = (p: number, at: UpdateAt) => (at === 'host' ? ms(p * (costs.adamwNs + costs.smiNs)) : 0);
  const reduce = (values: number, at: UpdateAt) => (at === 'host' ? ms(values * costs.reduceNs) : 0);
  const b = exchangeBytes(n, o.params, { magnitudes: o.magnitudes, gradBytes: o.gradBytes });
  const exchange = (eachWay: number) => ({ wire: Math.max(eachWay / link, (2 * eachWay) / ws) * 1000, codec: ms(2 * eachWay * costs.codecNsPerByte) });
  const one = o.computeMs + update(o.params, o.update);
  let parts: ModelStep['parts'];
  if (design === 'star') parts = { compute: o.computeMs, ...exchange(b.starCoordinator / 2), reduce: reduce(n * o.params, 'host'), update: update(o.params, 'host') };
  else if (n === 1) parts = { compute: o.computeMs, wire: 0, codec: 0, reduce: 0, update: update(o.params, o.update) };
  else parts = { compute: o.computeMs, ...exchange(b.sharded / 2), reduce: reduce(o.params, o.reduce), update: update(o.params / n, o.update) };
  const stepMs = parts.compute + parts.wire + parts.codec + parts.reduce + parts.update;
  return { stepMs, e: one / stepMs, parts };
}

export const MODEL_LEAVES_OUT = [
  'GPU-side costs: SMI on tf.spectral and AdamW on the device (tables A, C, D, E count them as zero; in C, the owners’ FFTs of every chunk’s share for its magnitudes too), and the device ↔ host copies of gradients and weights',
  'latency: a message costs its bytes ÷ rate, with no round-trip time, no TCP slow start, no TCP window limits',
  'stragglers: every worker computes in exactly the compute time, while a real step waits for the slowest',
  'congestion: every link runs at its full rate in both directions at once, through a non-blocking switch',
  'overlap: compute, exchange, reduce and update are added, though the owners now send their values in parts under their update (the all-gather hides behind the update but for its last part), and both designs could hide more (the owners\' forward FFTs as shares complete, the all-gather under the next forward)',
  'evaluation, checkpoints, the commits that fault recovery needs, and the control messages',
  'memory bandwidth shared by the processes of one host, and more than one worker per host',
  'the CPUs of GPU hosts: the costs were measured per core on a 2-core VM (a GPU host’s cores may be faster or slower)',
];

/** The paper preset's sizes (10.7M parameters, fp32). */
export const PAPER_SIZES = modelSizes(paramShapes({ ...PRESETS.paper, vocab_size: 65 }));

export const MODEL_NS = Array.from({ length: 64 }, (_, i) => i + 1);
export const MODEL_LINKS = [10, 25, 100];

export interface ModelTable {
  title: string;
  input: Omit<ModelInput, 'linkGbit'>;
  rows: { n: number; star: ModelStep[]; sharded: ModelStep[] }[]; // one entry per link of MODEL_LINKS
}

/** The tables of docs/scaling/model.md (A–E): where the owners' update and reduce run, global or synced, with or without the WebSocket ceiling. */
export function modelTables(costs: UnitCosts = COSTS, computeMs = 30): ModelTable[] {
  const base = { computeMs, params: PAPER_SIZES.params, costs };
  const variants: [string, Omit<ModelInput, 'linkGbit'>][] = [
    ['A. global mode; the owners update on their GPU (cost left out), reduce on the host', { ...base, magnitudes: 0, update: 'device', reduce: 'host', wsCap: true }],
    ['B. global mode; the owners update and reduce on the host path (measured per-core costs); t(1) on the host too', { ...base, magnitudes: 0, update: 'host', reduce: 'host', wsCap: true }],
    ['C. synced mode: the star\'s workers send magnitude spectra too, the owners compute them from the shares (their FFTs on the GPU, left out as A\'s update); as A', { ...base, magnitudes: PAPER_SIZES.magnitudes, update: 'device', reduce: 'host', wsCap: true }],
    ['D. the links alone: global mode, the owners reduce and update on their GPU, no per-process WebSocket ceiling', { ...base, magnitudes: 0, update: 'device', reduce: 'device', wsCap: false }],
    ['E. as D, with --wire-dtype bf16 gradients (weights stay fp32)', { ...base, magnitudes: 0, gradBytes: 2, update: 'device', reduce: 'device', wsCap: false }],
  ];
  return variants.map(([title, input]) => ({
    title, input,
    rows: MODEL_NS.map((n) => ({
      n,
      star: MODEL_LINKS.map((l) => modelStep('star', n, { ...input, linkGbit: l })),
      sharded: MODEL_LINKS.map((l) => modelStep('sharded', n, { ...input, linkGbit: l })),
    })),
  }));
}

const SHOWN = [1, 2, 3, 4, 8, 16, 32, 64];

/** The tables as Markdown: E(N) and ms/step per link, star beside sharded, for N = 1, 2, 3, 4, 8, 16, 32, 64. */
export function modelMarkdown(tables: ModelTable[] = modelTables()): string {
  const out: string[] = [];
  const cell = (s: ModelStep) => `${s.e.toFixed(2)} (${Math.round(s.stepMs)})`;
  for (const t of tables) {
    out.push(`#### ${t.title}`, '', `| N | ${MODEL_LINKS.map((l) => `star ${l} Gbit/s`).join(' | ')} | ${MODEL_LINKS.map((l) => `sharded ${l} Gbit/s`).join(' | ')} |`, `|---|${MODEL_LINKS.map(() => '---|').join('')}${MODEL_LINKS.map(() => '---|').join('')}`);
    for (const r of t.rows.filter((x) => SHOWN.includes(x.n))) out.push(`| ${r.n} | ${r.star.map(cell).join(' | ')} | ${r.sharded.map(cell).join(' | ')} |`);
    out.push('');
  }
  return out.join('\n');
}

/** `npm run bench -- scale --model`: prints the model's tables; with `out`, writes model.json (every N) and model.md there. */
export function modelMain(out?: string): number {
  const tables = modelTables();
  const md = `E(N) = t(1)/t(N) for weak scaling, ms/step in brackets; a ${30} ms compute step, the paper preset's ${PAPER_SIZES.params.toLocaleString('en')} parameters (fp32).\nPer-unit costs (per core, measured on a 2-core VM): ${Object.entries(COSTS).map(([k, v]) => `${k} ${v.toPrecision(3)}`).join(', ')}.\nA model, not a measurement (docs/scaling/model.md). It leaves out:\n${MODEL_LEAVES_OUT.map((l) => `- ${l}`).join('\n')}\n\n${modelMarkdown(tables)}`;
  console.log(md);
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'model.json'), JSON.stringify({ measured: MEASURED, costs: COSTS, sizes: PAPER_SIZES, leavesOut: MODEL_LEAVES_OUT, tables }, null, 1) + '\n');
    writeFileSync(join(out, 'model.md'), `# The E(N) model (npm run bench -- scale --model)\n\n${md}\n`);
    console.log(`written: ${join(out, 'model.md')}, ${join(out, 'model.json')}`);
  }
  return 0;
}
