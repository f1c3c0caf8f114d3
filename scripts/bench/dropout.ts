// `npm run bench -- dropout`: training-step time with tf.dropout-style masks drawn on the host vs the on-device hash.
import * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from '../../shared/config.ts';
import { makeBatch, trainOffsets, type Corpus, DEFAULT_DATA_PATH, loadCorpus } from '../../shared/model/data.ts';
import { GPT } from '../../shared/model/gpt.ts';
import { STREAM, hashKey } from '../../shared/model/rng.ts';
import { median } from '../../shared/stats.ts';
import { initBackend } from '../../shared/backend/backend.ts';
import { parseWithTable } from '../../shared/cli/options.ts';
import { BACKENDS, PRESET_NAMES, oneOf, resolveConfig } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';
import { S, positiveInt } from './flags.ts';

/**
 * The masks as tf.dropout made them before (shared/model/gpt.ts until issue 16): uniforms drawn on the host by
 * randomUniform and uploaded, then floor(u + keep) / keep. Made by dropoutMasks(), outside the gradient tape and
 * applied by the same forward as the hash's, so the two variants differ in how the masks are made only.
 */
class HostDrawnDropoutGPT extends GPT {
  override dropoutMasks(key: number, seqIds: readonly number[], T: number): tf.Tensor[] {
    const { n_layer: L, n_head: nh, n_embd: C, dropout } = this.config;
    if (!(dropout > 0)) return [];
    const B = seqIds.length;
    const shapes = [[B * T, C]];
    for (let l = 0; l < L; l++) shapes.push([B * nh * T, T], [B * T, C], [B * T, C]);
    const keep = 1 - dropout;
    return shapes.map((s, site) => tf.tidy(() => tf.div(tf.floor(tf.add(tf.randomUniform(s, 0, 1, 'float32', hashKey(key, site)), keep)), keep)));
  }
}

export interface DropoutBenchRow {
  variant: 'no dropout' | 'host-drawn (tf.dropout)' | 'on-device hash';
  stepMs: number[]; // forward+backward per measured step
  maskMs: number[]; // of which making the masks
}

/** Forward+backward of the preset at `rate`, the three variants alternating step by step (who goes first rotates). */
export function benchDropout(cfg: TrainConfig, corpus: Corpus, steps: number, warmup: number): DropoutBenchRow[] {
  const variants = [
    { row: { variant: 'no dropout', stepMs: [], maskMs: [] } as DropoutBenchRow, model: new GPT({ ...cfg, dropout: 0 }, cfg.seed) },
    { row: { variant: 'host-drawn (tf.dropout)', stepMs: [], maskMs: [] } as DropoutBenchRow, model: new HostDrawnDropoutGPT(cfg, cfg.seed) },
    { row: { variant: 'on-device hash', stepMs: [], maskMs: [] } as DropoutBenchRow, model: new GPT(cfg, cfg.seed) },
  ];
  try {
    for (let step = 1; step <= warmup + steps; step++) {
      const offsets = trainOffsets(cfg.seed, step, cfg.batch_size, cfg.block_size, corpus.train.length);
      const { x, y } = makeBatch(corpus.train, offsets, cfg.block_size);
      const key = hashKey(cfg.seed, STREAM.dropout, step);
      const order = [0, 1, 2].map((i) => variants[(i + step) % 3]!);
      for (const v of order) {
        const t0 = performance.now();
        const masks = v.model.dropoutMasks(key, offsets, cfg.block_size);
        const t1 = performance.now();
        tf.dispose(masks);
        const { grads } = v.model.gradients(x, y, cfg.batch_size, [cfg.seed, STREAM.dropout, step], cfg.batch_size, offsets);
        tf.dispose(grads);
        const t2 = performance.now();
        if (step > warmup) {
          v.row.stepMs.push(t2 - t1); // gradients() makes its masks itself: this is the step
          v.row.maskMs.push(t1 - t0);
        }
      }
    }
  } finally {
    for (const v of variants) v.model.dispose();
  }
  return variants.map((v) => v.row);
}

/** The rows as a Markdown table, and the hash/host-drawn ratio of the steps (median of per-step ratios). */
export function dropoutTable(rows: DropoutBenchRow[]): string {
  const host = rows.find((r) => r.variant === 'host-drawn (tf.dropout)')!;
  const hash = rows.find((r) => r.variant === 'on-device hash')!;
  const ratios = hash.stepMs.map((m, i) => m / host.stepMs[i]!);
  const lines = ['| masks | ms/step (median) | of which masks (ms, made alone) |', '|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.variant} | ${median(r.stepMs).toFixed(1)} | ${median(r.maskMs).toFixed(1)} |`);
  lines.push('', `on-device hash / host-drawn step time: median of per-step ratios ${median(ratios).toFixed(3)} (range ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}, ${ratios.length} steps)`);
  return lines.join('\n');
}

const DROPOUT_OPTIONS = {
  preset: { type: 'string' as const, arg: 'P', section: S, help: 'preset [cpu]' },
  backend: { type: 'string' as const, arg: 'B', section: S, help: `${BACKENDS.join('|')} [wasm]` },
  rate: { type: 'string' as const, arg: 'R', section: S, help: 'dropout [0.2]' },
  steps: { type: 'string' as const, arg: 'N', section: S, help: 'measured steps per variant [30]' },
  warmup: { type: 'string' as const, arg: 'N', section: S, help: 'unmeasured steps per variant first [3]' },
  data: { type: 'string' as const, arg: 'FILE', section: S, help: `corpus [${DEFAULT_DATA_PATH}]` },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};

export async function main(argv: string[]): Promise<number> {
  const v = parseWithTable(argv, DROPOUT_OPTIONS);
  if (v.help) {
    console.log('Usage: npm run bench -- dropout [--preset cpu] [--backend wasm] [--rate 0.2] [--steps 30] [--warmup 3]\n\nForward+backward of the preset with dropout: masks drawn on the host as tf.dropout draws them (before issue 16),\nthe on-device hash (shared/model/dropout.ts), and no dropout, alternating step by step in one process; median ms/step,\nthe time to make the masks alone, and the hash/host-drawn ratio.');
    return 0;
  }
  const rate = Number(v.rate ?? 0.2);
  if (!(rate > 0 && rate < 1)) throw new ConfigError('E_BAD_FLAG', `--rate takes a number in (0, 1), got ${String(v.rate)}`);
  const corpus = loadCorpus((v.data as string | undefined) ?? DEFAULT_DATA_PATH);
  const backend = await initBackend(oneOf('backend', (v.backend as string | undefined) ?? 'wasm', BACKENDS), (l) => console.log(l));
  const preset = oneOf('preset', (v.preset as string | undefined) ?? 'cpu', PRESET_NAMES);
  const cfg = resolveConfig({ preset, overrides: { dropout: rate } }, corpus.chars.length);
  const steps = positiveInt(v, 'steps', 30);
  console.log(`${preset} preset, dropout ${rate}, batch ${cfg.batch_size}×${cfg.block_size}, on ${backend.name}: ${steps} measured steps per variant, alternating\n`);
  console.log(dropoutTable(benchDropout(cfg, corpus, steps, Number(v.warmup ?? 3))));
  return 0;
}
