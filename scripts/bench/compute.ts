// `npm run bench -- compute`: training-step speed on the chosen backend and SMI's overhead, measured interleaved.
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../shared/backend/backend.ts';
import { parseWithTable } from '../../shared/cli/options.ts';
import { BACKENDS, PRESET_NAMES, lrAt, oneOf, resolveConfig, type SmiRunName } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';
import { DEFAULT_DATA_PATH, loadCorpus, makeBatch, trainOffsets } from '../../shared/model/data.ts';
import { STREAM } from '../../shared/model/rng.ts';
import { SMI_RUNS, alphaAt } from '../../shared/smi/runs.ts';
import { createModelState, disposeModelState, wholeModel } from '../../shared/train/state.ts';
import { applyUpdate, globalClip, sumOfSquares } from '../../shared/train/step.ts';
import { median } from '../../shared/stats.ts';
import { S } from './flags.ts';

const OPTIONS = {
  preset: { type: 'string' as const, arg: 'P', section: S, help: 'preset [cpu]' },
  backend: { type: 'string' as const, arg: 'B', section: S, help: `${BACKENDS.join('|')} [auto]` },
  steps: { type: 'string' as const, arg: 'N', section: S, help: 'measured steps per variant [20]' },
  warmup: { type: 'string' as const, arg: 'N', section: S, help: 'unmeasured steps per variant first [3]' },
  data: { type: 'string' as const, arg: 'FILE', section: S, help: `corpus [${DEFAULT_DATA_PATH}]` },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};
const HELP = `Usage: npm run bench -- compute [--preset cpu] [--backend auto] [--steps 20] [--warmup 3]

compute: trains the preset with the baseline (plain AdamW) and the cosine SMI run side by side in one process,
alternating one step of each, and prints the median ms/step, tokens/s, and the SMI overhead ratio
(cosine step time / baseline step time) with its spread. Also splits the step into forward+backward and the
optimizer side (clip, SMI, AdamW).`;

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

export async function main(argv: string[]): Promise<number> {
  const v = parseWithTable(argv, OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const preset = oneOf('preset', (v.preset as string | undefined) ?? 'cpu', PRESET_NAMES);
  const steps = Number(v.steps ?? 20);
  const warmup = Number(v.warmup ?? 3);
  if (!Number.isInteger(steps) || steps < 3 || !Number.isInteger(warmup) || warmup < 0) throw new ConfigError('E_BAD_FLAG', '--steps must be an integer >= 3 and --warmup >= 0');
  const corpus = loadCorpus((v.data as string | undefined) ?? DEFAULT_DATA_PATH);
  const backend = await initBackend(v.backend === undefined ? 'auto' : oneOf('backend', v.backend as string, BACKENDS), (l) => console.log(l));
  const variants: SmiRunName[] = ['baseline', 'cosine'];
  const runs = variants.map((smi) => {
    const cfg = resolveConfig({ preset, smi }, corpus.chars.length);
    return { smi, cfg, state: createModelState(cfg, backend), total: [] as number[], fwdbwd: [] as number[], opt: [] as number[] };
  });
  const cfg = runs[0]!.cfg;
  const tokens = cfg.batch_size * cfg.block_size;
  console.log(`${preset} preset: ${(runs[0]!.state.model.numParams() / 1e6).toFixed(3)}M params, batch ${cfg.batch_size}×${cfg.block_size} = ${tokens} tokens/step, ${warmup} warm-up + ${steps} measured steps per variant, alternating`);
  for (let step = 1; step <= warmup + steps; step++) {
    const offsets = trainOffsets(cfg.seed, step, cfg.batch_size, cfg.block_size, corpus.train.length);
    const { x, y } = makeBatch(corpus.train, offsets, cfg.block_size);
    for (const r of step % 2 ? runs : [...runs].reverse()) { // alternate who goes first, so drift and cache effects cancel
      const t0 = performance.now();
      const { grads } = r.state.model.gradients(x, y, cfg.batch_size, [cfg.seed, STREAM.dropout, step], cfg.batch_size, offsets);
      const t1 = performance.now();
      const { coef } = globalClip([sumOfSquares(grads)], r.cfg.grad_clip, step, true);
      applyUpdate(wholeModel(r.state), grads, { clip: coef, step, lr: lrAt(r.cfg, step - 1), alpha: alphaAt(SMI_RUNS[r.smi], step, r.cfg.max_iters) });
      const t2 = performance.now();
      if (step > warmup) {
        r.total.push(t2 - t0);
        r.fwdbwd.push(t1 - t0);
        r.opt.push(t2 - t1);
      }
    }
  }
  console.log('');
  console.log('| run | ms/step (median) | p10–p90 | tokens/s | forward+backward ms | clip+SMI+AdamW ms |');
  console.log('|---|---|---|---|---|---|');
  for (const r of runs) {
    const m = median(r.total);
    console.log(`| ${r.smi} | ${m.toFixed(1)} | ${quantile(r.total, 0.1).toFixed(1)}–${quantile(r.total, 0.9).toFixed(1)} | ${Math.round((tokens * 1000) / m)} | ${median(r.fwdbwd).toFixed(1)} | ${median(r.opt).toFixed(1)} |`);
  }
  const ratios = runs[1]!.total.map((c, i) => c / runs[0]!.total[i]!);
  console.log('');
  console.log(`backend: ${backend.name}`);
  console.log(`SMI overhead ratio (cosine / baseline step time, per pair): median ${median(ratios).toFixed(3)}, p10–p90 ${quantile(ratios, 0.1).toFixed(3)}–${quantile(ratios, 0.9).toFixed(3)}; ratio of medians ${(median(runs[1]!.total) / median(runs[0]!.total)).toFixed(3)}`);
  console.log(`tf.memory().numTensors at the end: ${tf.memory().numTensors}`);
  for (const r of runs) disposeModelState(r.state);
  return 0;
}

