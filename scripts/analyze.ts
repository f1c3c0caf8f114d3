// `npm run analyze -- --checkpoint DIR`: parameter-quality metrics of a trained run (docs/metrics.md, the paper's Tables 2–4).
import { existsSync } from 'node:fs';
import { initBackend } from '../shared/backend/backend.ts';
import { parseWithTable } from '../shared/cli/options.ts';
import { BACKENDS, oneOf } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';
import { DEFAULT_DATA_PATH, loadCorpus } from '../shared/model/data.ts';
import { loadRunModel, measureInference, speedRatio, type InferenceResult } from './analysis/inference.ts';
import { QUALITY_DEFINITIONS, modelQuality, type ModelQuality } from './analysis/quality.ts';
import { runMain } from '../shared/cli/main.ts';

const S = 'run' as const;
const OPTIONS = {
  checkpoint: { type: 'string' as const, arg: 'DIR', section: S, help: 'a run directory (config.json + model.safetensors, or checkpoint/)' },
  compare: { type: 'string' as const, arg: 'DIR', section: S, help: 'a second run (e.g. the baseline) shown side by side, with the change' },
  json: { type: 'boolean' as const, section: S, help: 'print JSON instead of tables' },
  data: { type: 'string' as const, arg: 'FILE', section: S, help: "validation text for activation sparsity [the run's data, else data/shakespeare/input.txt]" },
  batches: { type: 'string' as const, arg: 'N', section: S, help: 'validation batches (of 8 sequences) for activation sparsity [4]' },
  inference: { type: 'boolean' as const, section: S, help: 'also time generation (500 tokens, T 0.8, top-k 200; interleaved with --compare)' },
  rounds: { type: 'string' as const, arg: 'N', section: S, help: 'timed generations per model with --inference [5]' },
  backend: { type: 'string' as const, arg: 'B', section: S, help: `${BACKENDS.join('|')} [auto]` },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};

const HELP = `Usage: npm run analyze -- --checkpoint DIR [--compare BASELINE_DIR] [--json] [--inference]

Prints parameter-quality metrics of a trained run: per 2-D weight the spectral norm, condition number,
effective-rank ratio and kurtosis; across layers the mean and variance of the spectral norms; parameter
magnitude variance; activation sparsity on validation text. Each metric's definition is printed with it.
With --compare, a second run's values and the relative change; with --inference, tokens/s of generation,
measured interleaved between the two models (median of --rounds runs, and the per-round ratio).
Example: npm run analyze -- --checkpoint reproduction/runs/cosine-seed1337 --compare reproduction/runs/baseline-seed1337
Exit codes: 0 done, 1 failed, 2 bad arguments or run directory.`;

function positiveInt(v: unknown, flag: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError('E_BAD_FLAG', `--${flag} takes a positive integer, got '${String(v)}'`);
  return n;
}

/** Formats rows as an aligned text table (first row = header). */
export function textTable(rows: string[][]): string {
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => r.map((s, c) => (c === 0 ? s.padEnd(w[c]!) : s.padStart(w[c]!))).join('  ').trimEnd();
  return [line(rows[0]!), w.map((n) => '-'.repeat(n)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

const fmt = (x: number | undefined | null, digits = 4): string => (x === undefined || x === null || Number.isNaN(x) ? 'n/a' : !Number.isFinite(x) ? '∞' : Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(3) : x.toFixed(digits));
const change = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? '' : `${a >= b ? '+' : ''}${(((a - b) / b) * 100).toFixed(1)}%`);

interface Analysis {
  dir: string;
  source: string;
  run: string;
  seed: number;
  quality: ModelQuality;
}

function summaryRows(q: ModelQuality): [string, number | undefined][] {
  const w = q.weights;
  const a = q.activation;
  return [
    ['spectral norm, mean', w.spectralNormMean],
    ['spectral norm, variance', w.spectralNormVariance],
    ['condition number, mean', w.conditionNumberMean],
    ['condition number, median', w.conditionNumberMedian],
    ['effective-rank ratio, mean', w.effectiveRankRatioMean],
    ['parameter magnitude variance', w.magnitudeVariance],
    ['kurtosis (Pearson), mean per matrix', w.kurtosis],
    ['kurtosis (Pearson), pooled', w.kurtosisPooled],
    ['activation sparsity, attention', a?.attention],
    ['activation sparsity, MLP (GELU)', a?.mlp],
    ['activation sparsity, LayerNorm', a?.layerNorm],
    ['activation sparsity, overall', a?.overall],
    ['validation loss on those batches', a?.loss],
  ];
}

runMain(async () => {
  const v = parseWithTable(process.argv.slice(2), OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const dirs = [v.checkpoint as string | undefined, v.compare as string | undefined];
  if (!dirs[0]) throw new ConfigError('E_BAD_FLAG', '--checkpoint DIR is required');
  for (const d of dirs) if (d !== undefined && !existsSync(d)) throw new ConfigError('E_CHECKPOINT', `${d} does not exist`);
  const batches = positiveInt(v.batches, 'batches', 4);
  const rounds = positiveInt(v.rounds, 'rounds', 5);
  const backend = await initBackend(v.backend === undefined ? 'auto' : oneOf('backend', v.backend as string, BACKENDS), (l) => console.error(l));
  const loaded = dirs.filter((d): d is string => d !== undefined).map((d) => ({ dir: d, ...loadRunModel(d) }));
  const dataPath = (v.data as string | undefined) ?? loaded[0]!.cfg.data ?? DEFAULT_DATA_PATH;
  let val: Uint8Array | undefined;
  let dataNote = `validation text: ${dataPath}, ${batches} batches of 8 × block_size tokens (the step-0 validation batches of seed 1337)`;
  try {
    val = loadCorpus(dataPath, { verify: false }).val;
  } catch (e) {
    if (v.data !== undefined) throw e; // asked for explicitly: a bad file is an error
    dataNote = `activation sparsity skipped: ${(e as Error).message.split('.')[0]}`;
    console.error(dataNote);
  }
  const analyses: Analysis[] = loaded.map((l) => ({
    dir: l.dir, source: l.source, run: l.cfg.smi, seed: l.cfg.seed,
    quality: modelQuality(l.model, val, { batches }),
  }));
  let inference: InferenceResult | undefined;
  if (v.inference) {
    const labels = analyses.map((a, i) => `${i === 0 ? 'checkpoint' : 'compare'} (${a.run})`);
    inference = measureInference(loaded.map((l, i) => ({ label: labels[i]!, model: l.model, chars: l.chars })), {
      rounds, onRound: (r, tps) => console.error(`inference round ${r + 1}/${rounds}: ${tps.map((t) => t.toFixed(1)).join(' / ')} tokens/s`),
    });
  }
  const ratio = inference && inference.models.length === 2 ? speedRatio(inference, inference.models[0]!.label, inference.models[1]!.label) : undefined;
  for (const l of loaded) l.model.dispose();

  if (v.json) {
    console.log(JSON.stringify({ backend: backend.name, definitions: QUALITY_DEFINITIONS, data: dataNote, runs: analyses, inference, ratio }, null, 2));
    return 0;
  }
  const [a, b] = analyses;
  const out: string[] = [];
  out.push(`checkpoint: ${a!.dir} (${a!.run}, seed ${a!.seed}, ${a!.source})${b ? `\ncompare:    ${b.dir} (${b.run}, seed ${b.seed}, ${b.source})` : ''}`);
  out.push(`backend: ${backend.name}; ${dataNote}`, '');
  const header = b ? ['metric', a!.run, b.run, 'change'] : ['metric', 'value'];
  const sa = summaryRows(a!.quality);
  const sb = b ? summaryRows(b.quality) : undefined;
  out.push(textTable([header, ...sa.map(([name, x], i) => (sb ? [name, fmt(x), fmt(sb[i]![1]), change(x, sb[i]![1])] : [name, fmt(x)]))]), '');
  out.push('Definitions:', ...Object.entries(QUALITY_DEFINITIONS).map(([k, d]) => `  ${k}: ${d}`), '');
  out.push(`Per matrix (${a!.run}; PyTorch layout [out, in]; kurtosis is Pearson's):`);
  out.push(textTable([
    ['matrix', 'shape', 'σ_max', 'σ_max/σ_min', 'eff. rank ratio', 'kurtosis', ...(b ? [`σ_max (${b.run})`, `cond (${b.run})`] : [])],
    ...a!.quality.weights.matrices.map((m, i) => {
      const mb = b?.quality.weights.matrices[i];
      return [m.name, `${m.rows}×${m.cols}`, fmt(m.spectralNorm), fmt(m.conditionNumber, 1), fmt(m.effectiveRankRatio), fmt(m.kurtosis, 2), ...(mb ? [fmt(mb.spectralNorm), fmt(mb.conditionNumber, 1)] : [])];
    }),
  ]));
  if (inference) {
    out.push('', `Inference: batch 1, ${inference.tokens} new tokens, temperature ${inference.temperature}, top_k ${inference.topK}, seed ${inference.seed}, ${inference.rounds} interleaved rounds`);
    out.push(textTable([
      ['model', 'median tokens/s', 'min', 'max', 'forward FLOPs/token (2N + 2·L·T·C)'],
      ...inference.models.map((m) => [m.label, fmt(m.median, 1), fmt(Math.min(...m.samples), 1), fmt(Math.max(...m.samples), 1), m.flopsPerToken.toExponential(3)]),
    ]));
    if (ratio) out.push(`speed ratio ${ratio.label} / ${ratio.vs}: median ${ratio.median.toFixed(4)} (per-round range ${ratio.min.toFixed(4)}–${ratio.max.toFixed(4)}, IQR ${ratio.q1.toFixed(4)}–${ratio.q3.toFixed(4)})`);
  }
  console.log(out.join('\n'));
  return 0;
});
