// The reproduction report: the paper's Tables 1, 2–4 and 7 and Figures 2–5 from the runs of `npm run reproduce`,
// next to the paper's numbers, with a verdict per claim, and issue 15's three questions (more seeds, the controls,
// the spectral modes; questions.ts). Works with any subset of runs and any number of seeds.
// Its statistics are in verdicts.ts and its figures in figures.ts; what is left (~650 lines) is the reading of the
// runs and one Markdown document written top to bottom in writeReport, kept whole so that it reads as the report does.
import { existsSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, hostname, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { ChartConfiguration } from 'chart.js';
import { initBackend } from '../../shared/backend/backend.ts';
import { PAPER_RUN_NAMES, PRESETS, SMI_RUN_NAMES, type PaperRunName, type PresetName, type SmiRunName, type SpectralMode } from '../../shared/config.ts';
import { loadCorpus } from '../../shared/model/data.ts';
import { initFft } from '../../shared/smi/fft.ts';
import { loadRunModel, measureInference, speedRatio, forwardFlopsPerToken, type InferenceResult, type RunConfig } from '../analysis/inference.ts';
import type { GPT } from '../../shared/model/gpt.ts';
import { splitBatch } from '../../shared/parallel/batch.ts';
import { QUALITY_DEFINITIONS, mean, median, modelQuality, validationBatches, type ModelQuality } from '../analysis/quality.ts';
import { SMI_RUNS, alphaAt } from '../../shared/smi/runs.ts';
import { forward as fft2, magnitude, maskedBlend, threshold } from '../../shared/smi/steps.ts';
import { PALETTE, blankCanvas, renderChart } from '../report/charts.ts';
import { READING_SHORT, compareFrom, controlsConclusion, effectsChart, modesConclusion, said, type Compared, type ControlsReading, type EffectRow } from './questions.ts';
import { RUN_COLOR, heatmapFigure, lineChart, spectralFigure, thin } from './figures.ts';
import type { RunSpec } from './plan.ts';
import { loadPrior, priorRecord } from './prior.ts';
import { ConfigError } from '../../shared/errors.ts';
import { judge, lateStageVariance, meanSem, pct, stepsToTrainThreshold, stepsToValThreshold, tCritical95, trailingMean, type Judgement } from './verdicts.ts';

// ---- the paper's numbers ---------------------------------------------------------------------------------

const LABEL: Record<SmiRunName, string> = {
  baseline: 'Baseline (AdamW)',
  'linear-0.9': 'Linear α (0.1 → 0.9)',
  'linear-0.5': 'Linear α (0.1 → 0.5)',
  'ema-0.99': 'Higher EMA (0.99)',
  top75: 'Top 75% Freq',
  cosine: 'Cosine α',
  'random-mask': 'Random mask (control)',
  shrink: 'Shrink (control)',
};

/** Table 1 (mean of 2 seeds, paper preset, one GPU). */
export const PAPER_TABLE1: Record<PaperRunName, { train: number; val: number; tps: number; time: number }> = {
  baseline: { train: 0.813, val: 1.468, tps: 397.28, time: 286.43 },
  'linear-0.9': { train: 0.838, val: 1.47, tps: 444.91, time: 299.42 },
  'linear-0.5': { train: 0.822, val: 1.464, tps: 450.0, time: 299.97 },
  'ema-0.99': { train: 0.815, val: 1.467, tps: 448.41, time: 299.32 },
  top75: { train: 0.807, val: 1.465, tps: 449.74, time: 299.45 },
  cosine: { train: 0.813, val: 1.466, tps: 456.7, time: 299.18 },
};

/** Table 7: iterations to train loss < 1.0 and to val loss < 1.5, late-stage (last 1,000 of 5,000) loss variance. */
export const PAPER_TABLE7: Record<PaperRunName, { itTrain: number; itVal: number; lateVar: number }> = {
  baseline: { itTrain: 1250, itVal: 2200, lateVar: 0.023 },
  'linear-0.9': { itTrain: 1400, itVal: 2350, lateVar: 0.031 },
  'linear-0.5': { itTrain: 1300, itVal: 2150, lateVar: 0.021 },
  'ema-0.99': { itTrain: 1280, itVal: 2180, lateVar: 0.018 },
  top75: { itTrain: 1150, itVal: 2050, lateVar: 0.015 },
  cosine: { itTrain: 1220, itVal: 2100, lateVar: 0.013 },
};

/** One of the paper's six runs (the controls have no paper numbers). */
export const isPaperRun = (run: SmiRunName): run is PaperRunName => (PAPER_RUN_NAMES as readonly string[]).includes(run);

/** Tables 2–4: baseline → "SMI (best)" (taken here to be the cosine run, the paper's best). */
const PAPER_QUALITY: { key: QualityKey; base: number; smi: number }[] = [
  { key: 'spectralNormMean', base: 2.34, smi: 2.18 },
  { key: 'spectralNormVariance', base: 0.45, smi: 0.32 },
  { key: 'conditionNumberMean', base: 12.7, smi: 10.4 },
  { key: 'effectiveRankRatioMean', base: 0.72, smi: 0.69 },
  { key: 'magnitudeVariance', base: 0.034, smi: 0.031 },
  { key: 'kurtosis', base: 3.2, smi: 2.8 },
  { key: 'sparsityAttention', base: 0.23, smi: 0.31 },
  { key: 'sparsityMlp', base: 0.41, smi: 0.52 },
  { key: 'sparsityLayerNorm', base: 0.18, smi: 0.24 },
  { key: 'sparsityOverall', base: 0.27, smi: 0.36 },
];

// ---- run data --------------------------------------------------------------------------------------------

interface StepRec { step: number; loss: number; ms: number; alpha: number }
interface EvalRec { step: number; train_loss: number; val_loss: number }

interface RunData {
  spec: RunSpec;
  cfg: RunConfig;
  steps: StepRec[];
  evals: EvalRec[];
  done: { step: number; ms: number };
  wallS: number | null;
  /** continued from a checkpoint at least once (its log has a resumed start) */
  resumed: boolean;
}

type Status = { spec: RunSpec; state: 'done' } | { spec: RunSpec; state: 'unfinished' | 'absent'; why: string };

function readRun(spec: RunSpec): { data?: RunData; status: Status } {
  const log = join(spec.dir, 'log.jsonl');
  if (!existsSync(join(spec.dir, 'config.json')) || !existsSync(log)) return { status: { spec, state: 'absent', why: 'not trained' } };
  const recs = readFileSync(log, 'utf8').split('\n').filter(Boolean).flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return []; // a line cut by an interruption
    }
  });
  const done = recs.find((r) => r.kind === 'done') as { step: number; ms: number } | undefined;
  const steps = recs.filter((r) => r.kind === 'step') as unknown as StepRec[];
  if (!done || !existsSync(join(spec.dir, 'model.safetensors'))) {
    return { status: { spec, state: 'unfinished', why: `unfinished (logged up to step ${steps.at(-1)?.step ?? 0})` } };
  }
  // A resumed run logs steps it redid after its last checkpoint again: keep the last record of each step.
  const byStep = new Map<number, StepRec>();
  for (const s of steps) byStep.set(s.step, s);
  const evalBy = new Map<number, EvalRec>();
  for (const e of recs.filter((r) => r.kind === 'eval') as unknown as EvalRec[]) evalBy.set(e.step, e);
  const cfg = JSON.parse(readFileSync(join(spec.dir, 'config.json'), 'utf8')) as RunConfig;
  const sorted = [...byStep.values()].sort((a, b) => a.step - b.step);
  // Wall time: config.json is written at the start, log.jsonl last at the end (meaningless for copied directories).
  const wall = (statSync(log).mtimeMs - statSync(join(spec.dir, 'config.json')).mtimeMs) / 1000;
  const stepS = sorted.reduce((a, s) => a + s.ms, 0) / 1000;
  return {
    data: { spec, cfg, steps: sorted, evals: [...evalBy.values()].sort((a, b) => a.step - b.step), done, wallS: wall >= stepS ? wall : null, resumed: recs.some((r) => r.kind === 'start' && r.resumed === true) },
    status: { spec, state: 'done' },
  };
}

type QualityKey =
  | 'spectralNormMean' | 'spectralNormVariance' | 'conditionNumberMean' | 'conditionNumberMedian' | 'effectiveRankRatioMean'
  | 'magnitudeVariance' | 'kurtosis' | 'kurtosisPooled' | 'sparsityAttention' | 'sparsityMlp' | 'sparsityLayerNorm' | 'sparsityOverall';

const QUALITY_ROWS: { key: QualityKey; label: string }[] = [
  { key: 'spectralNormMean', label: 'Average spectral norm' },
  { key: 'spectralNormVariance', label: 'Spectral norm variance' },
  { key: 'conditionNumberMean', label: 'Condition number (mean)' },
  { key: 'conditionNumberMedian', label: 'Condition number (median)' },
  { key: 'effectiveRankRatioMean', label: 'Effective rank ratio' },
  { key: 'magnitudeVariance', label: 'Parameter magnitude variance' },
  { key: 'kurtosis', label: 'Kurtosis (Pearson, mean per matrix)' },
  { key: 'kurtosisPooled', label: 'Kurtosis (Pearson, pooled)' },
  { key: 'sparsityAttention', label: 'Sparsity: attention probabilities' },
  { key: 'sparsityMlp', label: 'Sparsity: feed-forward hidden (GELU)' },
  { key: 'sparsityLayerNorm', label: 'Sparsity: LayerNorm outputs' },
  { key: 'sparsityOverall', label: 'Sparsity: overall average' },
];

function qualityValues(q: ModelQuality): Record<QualityKey, number> {
  const w = q.weights;
  const a = q.activation!;
  return {
    spectralNormMean: w.spectralNormMean, spectralNormVariance: w.spectralNormVariance, conditionNumberMean: w.conditionNumberMean,
    conditionNumberMedian: w.conditionNumberMedian, effectiveRankRatioMean: w.effectiveRankRatioMean, magnitudeVariance: w.magnitudeVariance,
    kurtosis: w.kurtosis, kurtosisPooled: w.kurtosisPooled, sparsityAttention: a.attention, sparsityMlp: a.mlp, sparsityLayerNorm: a.layerNorm,
    sparsityOverall: a.overall,
  };
}

/** What the training log of one finished run (one seed) gives. */
interface Outcome {
  run: SmiRunName;
  seed: number;
  train: number;
  val: number;
  bestVal: number;
  stepS: number;
  medStepMs: number;
  wallS: number | null;
  itTrain: number | null;
  itVal: number | null;
  lateVar: number;
  lateVarDetrended: number;
}

/** Everything measured for one finished one-process run: its log, and its model's speed and quality. */
interface Measured extends Outcome {
  tps: number;
  quality: Record<QualityKey, number>;
}

/** A finished distributed run (question 3): its log only. */
interface DistMeasured extends Outcome {
  spectral: SpectralMode;
  workers: number;
}

/** Per-seed relative changes a / (b of the same seed) − 1 of `f`, for the seeds in `seeds` (all when absent). */
function pairedBy<A extends Outcome, B extends Outcome>(as: readonly A[], bs: readonly B[], f: (m: A | B) => number | null, seeds?: readonly number[]): number[] {
  return as.flatMap((m) => {
    if (seeds && !seeds.includes(m.seed)) return [];
    const b = bs.find((x) => x.seed === m.seed);
    if (!b) return [];
    const a = f(m);
    const bb = f(b);
    if (bb === null) return [];
    if (a === null) return [Infinity];
    return [bb === 0 ? (a === 0 ? 0 : NaN) : a / bb - 1];
  });
}

// ---- formatting ------------------------------------------------------------------------------------------

function num(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined || Number.isNaN(x)) return 'n/a';
  if (!Number.isFinite(x)) return '∞';
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) return x.toExponential(2);
  return x.toFixed(digits);
}

function cell(xs: readonly number[], digits: number, base?: readonly number[]): string {
  if (xs.length === 0) return 'n/a';
  const { mean: m, sem } = meanSem(xs);
  let s = `${num(m, digits)} ± ${sem === null ? 'n/a' : num(sem, digits)}`;
  if (base && base.length > 0) {
    const b = mean(base);
    if (b !== 0 && Number.isFinite(b) && Number.isFinite(m)) s += ` (${pct(m / b - 1)})`;
  }
  return s;
}

const mdTable = (rows: string[][]): string =>
  [rows[0]!, rows[0]!.map(() => '---'), ...rows.slice(1)].map((r) => `| ${r.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`).join('\n'); // a | inside a cell (|t|) would split it

const shellQuote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`);

// ---- issue 15's questions ----------------------------------------------------------------------------------

/** A run's name in the report: the run, and for a distributed one its mode and workers. */
const specLabel = (s: { run: SmiRunName; spectral?: SpectralMode; workers?: number }): string => (s.spectral ? `${s.run} ${s.spectral} ×${s.workers ?? 2}` : s.run);

/** "baseline: 1337, 1338 (n = 2); …" for the finished runs. */
function seedsPerRun(measured: readonly Outcome[], dist: readonly DistMeasured[]): string {
  const groups = new Map<string, number[]>();
  for (const m of measured) groups.set(m.run, [...(groups.get(m.run) ?? []), m.seed]);
  for (const m of dist) groups.set(specLabel(m), [...(groups.get(specLabel(m)) ?? []), m.seed]);
  return groups.size === 0 ? 'none finished' : [...groups].map(([k, seeds]) => `${k} ${seeds.join(', ')} (n = ${seeds.length})`).join('; ');
}

/** The metrics the comparisons of questions 2 and 3 use, with their equivalence margins. */
const COMPARED_METRICS: { key: 'val' | 'train' | 'lateVar' | 'itTrain'; label: string; margin: number }[] = [
  { key: 'val', label: 'final val loss', margin: 0.01 },
  { key: 'train', label: 'final train loss', margin: 0.01 },
  { key: 'lateVar', label: 'late-stage loss variance', margin: 0.1 },
  { key: 'itTrain', label: 'steps to the train-loss threshold', margin: 0.05 },
];

interface ComparedRow {
  label: string;
  metric: string;
  c: Compared;
}

/** Wall time of the finished runs, one-process and distributed, from their files' times. */
function wallNote(all: readonly (Outcome & { spectral?: SpectralMode })[]): string {
  const part = (xs: readonly (Outcome & { spectral?: SpectralMode })[], what: string) => {
    const w = xs.flatMap((x) => (x.wallS === null ? [] : [x.wallS]));
    if (xs.length === 0) return undefined;
    return `${what}: ${(w.reduce((a, b) => a + b, 0) / 3600).toFixed(2)} h over ${w.length} run(s) (median ${w.length ? (median(w) / 60).toFixed(1) : 'n/a'} min each)${w.length < xs.length ? `, ${xs.length - w.length} without consistent file times left out` : ''}`;
  };
  const parts = [part(all.filter((x) => !x.spectral), 'one-process runs'), part(all.filter((x) => x.spectral), 'distributed runs'), part(all, 'all')].filter(Boolean);
  return parts.length ? `Wall time of the runs (config.json written → last log line; runs side by side count each): ${parts.join('; ')}.` : 'No finished run: no wall time.';
}

/** Questions 2 and 3 (and question 1's figure): comparisons, conclusions, tables and figures, from the runs' outcomes. */
function questions(get: (run: SmiRunName) => Measured[], dist: readonly DistMeasured[]) {
  const compareRuns = (a: readonly Outcome[], b: readonly Outcome[], key: (typeof COMPARED_METRICS)[number]['key'], margin: number): Compared =>
    compareFrom(judge(pairedBy(a, b, (m) => m[key]), { kind: 'equivalent', margin }), margin);
  const controls: ComparedRow[] = [];
  const pairs: [SmiRunName, SmiRunName][] = [['cosine', 'baseline'], ['random-mask', 'cosine'], ['shrink', 'cosine'], ['random-mask', 'baseline'], ['shrink', 'baseline']];
  const present = pairs.filter(([a, b]) => get(a).length > 0 && get(b).length > 0);
  for (const [a, b] of present) for (const m of COMPARED_METRICS) controls.push({ label: `${a} vs ${b}`, metric: m.label, c: compareRuns(get(a), get(b), m.key, m.margin) });
  const valOf = (a: SmiRunName, b: SmiRunName) => controls.find((r) => r.label === `${a} vs ${b}` && r.metric === 'final val loss')?.c;
  const cc = controlsConclusion({
    cosineVsBaseline: valOf('cosine', 'baseline'), randomVsCosine: valOf('random-mask', 'cosine'), shrinkVsCosine: valOf('shrink', 'cosine'),
    randomVsBaseline: valOf('random-mask', 'baseline'), shrinkVsBaseline: valOf('shrink', 'baseline'),
  });

  const modes = SPECTRAL_MODE_ORDER.filter((mode) => dist.some((d) => d.spectral === mode));
  const ofMode = (mode: SpectralMode) => dist.filter((d) => d.spectral === mode);
  const cosine = get('cosine');
  const modesRows: ComparedRow[] = [];
  const late = COMPARED_METRICS.filter((m) => m.key === 'val' || m.key === 'lateVar');
  for (const mode of modes) for (const m of late) modesRows.push({ label: `${mode} ×${ofMode(mode)[0]!.workers} vs --local cosine`, metric: m.label, c: compareRuns(ofMode(mode), cosine, m.key, m.margin) });
  let localVsSynced: Compared | undefined;
  let lateLocalVsSynced: Compared | undefined;
  if (modes.includes('local') && modes.includes('synced')) {
    for (const m of late) {
      const c = compareRuns(ofMode('local'), ofMode('synced'), m.key, m.margin);
      modesRows.push({ label: 'local vs synced (both 2 workers)', metric: m.label, c });
      if (m.key === 'val') localVsSynced = c;
      else lateLocalVsSynced = c;
    }
  }
  const mc = modesConclusion({ vsLocalProcess: modesRows.filter((r) => r.label.endsWith('--local cosine') && r.metric === 'final val loss').map((r) => ({ mode: r.label.split(' ')[0]!, c: r.c })), localVsSynced, lateLocalVsSynced });
  const modeTable: string[][] = [['Run', 'n', 'Train loss', 'Val loss', 'Late-stage loss variance', 'Median step (ms)', 'Wall (s)']];
  const tableRow = (label: string, xs: readonly Outcome[]) => {
    const walls = xs.flatMap((x) => (x.wallS === null ? [] : [x.wallS]));
    modeTable.push([label, String(xs.length), cell(xs.map((x) => x.train), 4), cell(xs.map((x) => x.val), 4), cell(xs.map((x) => x.lateVar), 5), cell(xs.map((x) => x.medStepMs), 1), walls.length ? cell(walls, 0) : 'n/a']);
  };
  if (modes.length) {
    if (cosine.length) tableRow('cosine, one process (--local)', cosine);
    for (const mode of modes) tableRow(`cosine, ${mode}, ${ofMode(mode)[0]!.workers} workers`, ofMode(mode));
  }

  // figures: per-seed changes of the final val loss, with their intervals
  const row = (label: string, a: readonly Outcome[], b: readonly Outcome[], color: string): EffectRow => {
    const d = pairedBy(a, b, (m) => m.val);
    const j = judge(d, { kind: 'equivalent', margin: 0.01 });
    return { label, d, lo: j.lo, hi: j.hi, color };
  };
  const figures: { name: string; chart: ChartConfiguration }[] = [];
  const vsBase = SMI_RUN_NAMES.filter((r) => r !== 'baseline' && get(r).length > 0 && get('baseline').length > 0);
  if (vsBase.length) {
    figures.push({ name: 'fig6-seed-effects.png', chart: effectsChart('Final validation loss vs the same seed\'s baseline (dots: seeds; diamond: mean; bar: 95% interval)', 'Δ val loss vs baseline (%)', vsBase.map((r) => row(r, get(r), get('baseline'), RUN_COLOR(r)))) });
  }
  if (present.length) {
    figures.push({ name: 'fig7-controls.png', chart: effectsChart('The controls: final validation loss, paired per seed (A vs B)', 'Δ val loss, A / B − 1 (%)', present.map(([a, b], i) => row(`${a} vs ${b}`, get(a), get(b), PALETTE[i % PALETTE.length]!))) });
  }
  if (modes.length && cosine.length) {
    const rows = modes.map((mode, i) => row(`${mode} vs --local`, ofMode(mode), cosine, PALETTE[(i + 3) % PALETTE.length]!));
    if (localVsSynced) rows.push(row('local vs synced', ofMode('local'), ofMode('synced'), PALETTE[9]!));
    figures.push({ name: 'fig9-modes.png', chart: effectsChart('2 workers in each spectral mode: final validation loss, paired per seed', 'Δ val loss (%)', rows) });
  }

  /** The report's opening: what SMI does on this model, in plain words, from the verdicts. */
  const summary = (hl: { text: string; row?: { j: Judgement } }[], thrTrain: number): string[] => {
    const counts = new Map<string, number>();
    for (const { row } of hl) counts.set(row?.j.verdict ?? 'missing', (counts.get(row?.j.verdict ?? 'missing') ?? 0) + 1);
    const ns = [...new Set(hl.flatMap(({ row }) => (row ? [row.j.n] : [])))].sort((a, b) => a - b);
    const cvb = valOf('cosine', 'baseline');
    const top = get('top75').length && get('baseline').length ? compareRuns(get('top75'), get('baseline'), 'val', 0.01) : undefined;
    const steps = hl.find((h) => h.text.startsWith('8% fewer steps'))?.row?.j;
    const lines = [
      `- **Final validation loss**: cosine against AdamW: ${said(cvb)}; top75 against AdamW: ${said(top)} (on par = the 95% interval inside ±1%; lower = better).`,
      `- **Speed of learning**: top75's steps to the train-loss threshold (${num(thrTrain)}) against AdamW: ${steps ? `${steps.verdict === 'missing' ? 'not measured' : steps.mean === null ? steps.detail : pct(steps.mean)} (the paper: −8%), **${steps.verdict}**` : 'not measured'}.`,
      `- **The paper's ${hl.length} headline claims**: ${[...counts].map(([v, k]) => `${k} ${v}`).join(', ')} (n = ${ns.join('–') || 'none'} seeds; each verdict with its n in the closing note).`,
      `- **Why (the controls)**: ${READING_SHORT[cc.reading]} (final val loss: cosine vs AdamW ${said(cvb)}, random-mask vs cosine ${said(valOf('random-mask', 'cosine'))}, shrink vs cosine ${said(valOf('shrink', 'cosine'))}).`,
      `- **Synchronising the spectra (2 workers)**: ${mc.short}.`,
    ];
    return lines;
  };
  return { controls, controlsText: cc.text, controlsReading: cc.reading as ControlsReading, modes, modesRows, modesText: mc.text, modeTable, figures, summary };
}

const SPECTRAL_MODE_ORDER: SpectralMode[] = ['synced', 'global', 'local'];

/** How the coordinator splits a global batch among workers. */
const splitBatchSizes = (batch: number, workers: number): number[] => splitBatch(Array.from({ length: batch }, (_, i) => i), workers).map((c) => c.length);

// ---- the report ------------------------------------------------------------------------------------------

export interface ReportOptions {
  out: string;
  specs: RunSpec[];
  preset: string;
  seeds: number[];
  runs: SmiRunName[];
  data: string;
  log: (line: string) => void;
  /** interleaved timed generations per model [$SMI_INFERENCE_ROUNDS, else 3 on the test preset, 5 otherwise] */
  inferenceRounds?: number;
  /** the reproduce flags that train these runs again [--preset, --seeds, --runs, --out] */
  retrain?: string[];
  /**
   * a previous report.json: runs of the plan whose directories are absent are taken from it as it measured them
   * (one-process runs all from it or none, since its thresholds and interleaved inference timing are its own)
   */
  prior?: string;
}

export async function writeReport(o: ReportOptions): Promise<{ report: string; pngs: string[] }> {
  const { out, specs, log } = o;
  mkdirSync(out, { recursive: true });
  const read = specs.map(readRun);
  const finished = read.flatMap((r) => (r.data ? [r.data] : []));
  // one-process runs: every table and figure of the paper; distributed ones: question 3, from their logs
  const runs = finished.filter((r) => !r.spec.spectral);
  const distRuns = finished.filter((r) => r.spec.spectral);
  const statuses = read.map((r) => r.status);
  // runs whose directories are gone, as a previous report recorded them
  const prior = o.prior ? loadPrior(o.prior, o.preset) : undefined;
  const fromPrior = prior ? statuses.filter((s) => s.state === 'absent' && priorRecord(prior, s.spec)).map((s) => s.spec) : [];
  const priorLocal = fromPrior.filter((s) => !s.spectral);
  if (priorLocal.length > 0 && runs.length > 0) {
    throw new ConfigError('E_PRIOR_MIX', `--prior ${o.prior}: ${priorLocal.length} one-process run(s) would come from it and ${runs.length} from their directories; the thresholds and the interleaved inference timing of one report cannot mix the two. Take all one-process runs from one or the other.`);
  }
  const missing = statuses.filter((s): s is Extract<Status, { why: string }> => s.state !== 'done' && !fromPrior.includes(s.spec));
  log(`report: ${finished.length} of ${specs.length} runs finished${fromPrior.length ? `, ${fromPrior.length} more from ${o.prior}` : ''}${missing.length ? `; missing: ${missing.map((s) => `${specLabel(s.spec)} seed ${s.spec.seed}`).join(', ')}` : ''}`);

  const loadBefore = loadavg()[0]!;
  const backend = await initBackend('auto', log);
  let val: Uint8Array | undefined;
  try {
    val = loadCorpus(o.data, { verify: false }).val;
  } catch (e) {
    throw new Error(`the report needs the validation text for activation sparsity and Figure 5: ${(e as Error).message}`);
  }

  // ---- models: quality, inference ----
  const loaded = runs.map((r) => ({ r, ...loadRunModel(r.spec.dir) }));
  const quality = new Map<RunData, ModelQuality>();
  for (const l of loaded) {
    log(`quality: ${l.r.spec.run} seed ${l.r.spec.seed}`);
    quality.set(l.r, modelQuality(l.model, val, { batches: 4, batchSize: 8 }));
  }
  const key = (run: string, seed: number) => `${run}-seed${seed}`;
  const envRounds = Number(process.env.SMI_INFERENCE_ROUNDS);
  const rounds = o.inferenceRounds ?? (Number.isInteger(envRounds) && envRounds > 0 ? envRounds : o.preset === 'test' ? 3 : 5);
  let inference: InferenceResult | undefined;
  let control: { label: string; model: GPT; chars: string[] } | undefined;
  /** the A/A control's label and the model it is a copy of */
  let aa: { label: string; vs: string } | undefined;
  const firstBase = loaded.find((l) => l.r.spec.run === 'baseline');
  if (firstBase) {
    control = { label: `${key('baseline', firstBase.r.spec.seed)} (A/A control)`, model: loadRunModel(firstBase.r.spec.dir).model, chars: firstBase.chars };
    aa = { label: control.label, vs: key('baseline', firstBase.r.spec.seed) };
  }
  if (loaded.length > 0) {
    const models = [...loaded.map((l) => ({ label: key(l.r.spec.run, l.r.spec.seed), model: l.model, chars: l.chars })), ...(control ? [control] : [])];
    log(`inference: ${models.length} models × ${rounds} interleaved rounds of 500 tokens`);
    inference = measureInference(models, { rounds, onRound: (r, tps) => log(`inference round ${r + 1}/${rounds}: ${tps.map((t) => t.toFixed(0)).join(' ')} tokens/s`) });
  } else if (prior && priorLocal.length > 0 && prior.inference) {
    // the prior report's interleaved timing of the same models (their files are gone: nothing to time again)
    inference = prior.inference;
    const c = inference.models.find((m) => m.label.endsWith(' (A/A control)'));
    if (c) aa = { label: c.label, vs: c.label.slice(0, -' (A/A control)'.length) };
  }
  const loadAfter = loadavg()[0]!;
  const tpsOf = (run: string, seed: number) => inference?.models.find((m) => m.label === key(run, seed))?.median ?? NaN;

  // ---- thresholds (Table 7) ----
  const byRun = (run: SmiRunName) => runs.filter((r) => r.spec.run === run);
  const finalEval = (r: RunData) => r.evals.at(-1)!;
  const ref = byRun('baseline').length ? byRun('baseline') : runs;
  const usePrior = prior !== undefined && priorLocal.length > 0;
  // one-process runs from a prior report: its thresholds, which its runs' steps-to-threshold were counted against
  const thrTrain = usePrior ? prior.thresholds.train : ref.length ? mean(ref.map((r) => finalEval(r).train_loss)) * 1.05 : NaN;
  const thrVal = usePrior ? prior.thresholds.val : ref.length ? mean(ref.map((r) => finalEval(r).val_loss)) * 1.05 : NaN;
  const maxIters = runs[0]?.cfg.max_iters ?? PRESETS[o.preset as PresetName]?.max_iters ?? 1;
  const smoothW = usePrior ? prior.thresholds.smoothing : Math.max(1, Math.round(maxIters / 40));

  const outcome = (r: RunData): Outcome => {
    const losses = r.steps.map((s) => s.loss);
    const late = lateStageVariance(losses, 0.2);
    return {
      run: r.spec.run, seed: r.spec.seed, train: finalEval(r).train_loss, val: finalEval(r).val_loss, bestVal: Math.min(...r.evals.map((e) => e.val_loss)),
      stepS: r.steps.reduce((a, s) => a + s.ms, 0) / 1000, medStepMs: median(r.steps.map((s) => s.ms)), wallS: r.wallS,
      itTrain: stepsToTrainThreshold(losses, thrTrain, smoothW), itVal: stepsToValThreshold(r.evals, thrVal),
      lateVar: late.raw, lateVarDetrended: late.detrended,
    };
  };
  const measured: Measured[] = [
    ...runs.map((r) => ({ ...outcome(r), tps: tpsOf(r.spec.run, r.spec.seed), quality: qualityValues(quality.get(r)!) })),
    ...priorLocal.map((s) => priorRecord(prior!, s) as unknown as Measured),
  ];
  const distMeasured: DistMeasured[] = [
    ...distRuns.map((r) => ({ ...outcome(r), spectral: r.spec.spectral!, workers: r.spec.workers ?? 2 })),
    ...fromPrior.filter((s) => s.spectral).map((s) => priorRecord(prior!, s) as unknown as DistMeasured),
  ];
  const get = (run: SmiRunName) => measured.filter((m) => m.run === run);
  const base = get('baseline');
  const presentRuns = o.runs.filter((r) => get(r).length > 0);
  const smiRuns = presentRuns.filter((r) => r !== 'baseline');
  /** per-seed relative change of `f` against the same seed's baseline (for `seeds` only, when given) */
  const paired = (run: SmiRunName, f: (m: Measured) => number | null, seeds?: readonly number[]): number[] => pairedBy(get(run), base, f as (m: Outcome) => number | null, seeds);
  const ratioPaired = (run: SmiRunName, seeds?: readonly number[]): number[] =>
    inference ? get(run).flatMap((m) => (base.some((b) => b.seed === m.seed) && (!seeds || seeds.includes(m.seed)) ? [speedRatio(inference!, key(run, m.seed), key('baseline', m.seed)).median - 1] : [])) : [];

  // ---- figures ----
  const pngs: string[] = [];
  const save = (name: string, buf: Buffer) => {
    writeFileSync(join(out, name), buf);
    pngs.push(name);
  };
  // Figure 2: val loss vs inference speed
  save('fig2-val-loss-vs-inference.png', await renderChart({
    type: 'scatter',
    data: {
      datasets: presentRuns.flatMap((run) => [
        { label: LABEL[run], data: [{ x: mean(get(run).map((m) => m.tps)), y: mean(get(run).map((m) => m.val)) }], backgroundColor: RUN_COLOR(run), borderColor: RUN_COLOR(run), pointRadius: 8, pointStyle: 'rectRot' },
        { label: `${LABEL[run]} (seeds)`, data: get(run).map((m) => ({ x: m.tps, y: m.val })), backgroundColor: RUN_COLOR(run), borderColor: RUN_COLOR(run), pointRadius: 3 },
      ]),
    },
    options: {
      plugins: {
        title: { display: true, text: `Final validation loss vs inference speed (${o.preset} preset; large = mean, small = each seed)`, font: { size: 15 } },
        legend: { position: 'bottom', labels: { filter: (item) => !item.text.endsWith('(seeds)') } },
      },
      scales: { x: { title: { display: true, text: 'Inference speed (tokens/s, median of interleaved runs)' } }, y: { title: { display: true, text: 'Validation loss (final eval)' } } },
    },
  } as ChartConfiguration, 800, 500));
  // Figure 3: loss difference to the baseline
  const w3 = Math.max(1, Math.round(maxIters / 20));
  const diffSeries = (run: SmiRunName, kind: 'train' | 'val') => {
    const pairs = byRun(run).flatMap((r) => {
      const b = byRun('baseline').find((x) => x.spec.seed === r.spec.seed);
      return b ? [[r, b] as const] : [];
    });
    if (pairs.length === 0) return [];
    if (kind === 'train') {
      const curves = pairs.map(([r, b]) => {
        const a = trailingMean(r.steps.map((s) => s.loss), w3);
        const c = trailingMean(b.steps.map((s) => s.loss), w3);
        return a.map((v, i) => v - (c[i] ?? NaN));
      });
      const n = Math.min(...curves.map((c) => c.length));
      return thin(Array.from({ length: n }, (_, i) => ({ x: i + 1, y: mean(curves.map((c) => c[i]!)) })));
    }
    const steps = pairs[0]![0].evals.map((e) => e.step);
    return steps.flatMap((s) => {
      const ds = pairs.flatMap(([r, b]) => {
        const a = r.evals.find((e) => e.step === s);
        const c = b.evals.find((e) => e.step === s);
        return a && c ? [a.val_loss - c.val_loss] : [];
      });
      return ds.length ? [{ x: s, y: mean(ds) }] : [];
    });
  };
  /** the prior report's own figure, drawn from the same runs when their directories were there */
  const priorFigure = (name: string): boolean => {
    const f = prior ? join(dirname(prior.file), name) : '';
    if (!usePrior || !existsSync(f)) return false;
    if (resolve(f) !== resolve(join(out, name))) save(name, readFileSync(f));
    else pngs.push(name);
    return true;
  };
  const copied: string[] = [];
  for (const [name, kind, title, y] of [
    ['fig3-train-loss-diff.png', 'train', `Training loss minus baseline (trailing mean over ${w3} steps, mean over seeds)`, 'Δ train loss vs baseline'],
    ['fig3-val-loss-diff.png', 'val', 'Validation loss minus baseline (at each evaluation, mean over seeds)', 'Δ val loss vs baseline'],
  ] as const) {
    if (usePrior) {
      if (priorFigure(name)) copied.push(name);
      continue;
    }
    save(name, await renderChart(lineChart(title, 'step', y, smiRuns.map((run) => ({ label: LABEL[run], color: RUN_COLOR(run), data: diffSeries(run, kind) }))), 800, 450));
  }
  // Figure 4: α schedules
  const tsAlpha = [...new Set(Array.from({ length: 201 }, (_, i) => Math.round((i * maxIters) / 200)))];
  const schedules: { label: string; run: SmiRunName; dash?: number[] }[] = [
    { label: 'linear 0.1 → 0.9 (linear-0.9)', run: 'linear-0.9' },
    { label: 'linear 0.1 → 0.5 (linear-0.5, ema-0.99, top75)', run: 'top75' },
    { label: 'cosine 0.1 → 0.5 (cosine)', run: 'cosine', dash: [6, 4] },
  ];
  save('fig4-alpha-schedules.png', await renderChart(lineChart(
    `α schedules over ${maxIters} steps (docs/algorithm.md §3 step 8)`, 'step t', 'α_t',
    schedules.map((s) => ({ label: s.label, dash: s.dash, color: RUN_COLOR(s.run), data: tsAlpha.map((t) => ({ x: t, y: alphaAt(SMI_RUNS[s.run], t, maxIters) })) })),
  ), 800, 450));
  // Figure 5: spectral filtering of a real gradient
  const fig5Run = loaded.find((l) => l.r.spec.run === 'cosine') ?? loaded.find((l) => l.r.spec.run !== 'baseline') ?? loaded[0];
  let fig5Note = 'no finished run: no figure';
  if (!fig5Run && priorFigure('fig5-spectral-filtering.png')) {
    copied.push('fig5-spectral-filtering.png');
    fig5Note = 'a gradient of a trained cosine model, filtered as SMI filters it (drawn by the prior report, whose model files are gone)';
  }
  if (fig5Run) {
    const B = fig5Run.cfg.batch_size;
    const vb = validationBatches(val, B, fig5Run.cfg.block_size, 1)[0]!;
    const f5 = await spectralFigure(fig5Run.model, vb.x, vb.y, B, `the trained ${fig5Run.r.spec.run} model (seed ${fig5Run.r.spec.seed})`);
    save('fig5-spectral-filtering.png', f5.png);
    fig5Note = f5.note;
  }
  for (const l of loaded) l.model.dispose();
  control?.model.dispose();

  // ---- verdicts ----
  interface Row { claim: string; run: SmiRunName; paper: string; j: Judgement }
  const p1 = (run: PaperRunName, f: 'val' | 'tps' | 'time') => PAPER_TABLE1[run][f] / PAPER_TABLE1.baseline[f] - 1;
  const p7 = (run: PaperRunName, f: 'itTrain' | 'itVal' | 'lateVar') => PAPER_TABLE7[run][f] / PAPER_TABLE7.baseline[f] - 1;
  /** every claim of the paper judged on the seeds in `seeds` (all seeds when absent) */
  const claimsOn = (seeds?: readonly number[]): { verdicts: Row[]; qualityClaims: Row[] } => {
    const verdicts: Row[] = [];
    for (const run of o.runs.filter((r): r is PaperRunName => r !== 'baseline' && isPaperRun(r))) {
      verdicts.push({ claim: 'Val loss on par with AdamW (within ±1%)', run, paper: pct(p1(run, 'val'), 2), j: judge(paired(run, (m) => m.val, seeds), { kind: 'equivalent', margin: 0.01 }) });
      verdicts.push({ claim: 'Training overhead ≈ 4.5% (accepted up to 9%)', run, paper: pct(p1(run, 'time')), j: judge(paired(run, (m) => m.medStepMs, seeds), { kind: 'atMost', bound: 0.09 }) });
      verdicts.push({ claim: 'Faster inference (+12–15%)', run, paper: pct(p1(run, 'tps')), j: judge(ratioPaired(run, seeds), { kind: 'effect', paper: p1(run, 'tps') }) });
      verdicts.push({ claim: 'Steps to the train-loss threshold', run, paper: pct(p7(run, 'itTrain')), j: judge(paired(run, (m) => m.itTrain, seeds), { kind: 'effect', paper: p7(run, 'itTrain') }) });
      verdicts.push({ claim: 'Steps to the val-loss threshold', run, paper: pct(p7(run, 'itVal')), j: judge(paired(run, (m) => m.itVal, seeds), { kind: 'effect', paper: p7(run, 'itVal') }) });
      verdicts.push({ claim: 'Late-stage loss variance', run, paper: pct(p7(run, 'lateVar')), j: judge(paired(run, (m) => m.lateVar, seeds), { kind: 'effect', paper: p7(run, 'lateVar') }) });
    }
    const qualityClaims: Row[] = PAPER_QUALITY.map((p) => ({
      claim: QUALITY_ROWS.find((r) => r.key === p.key)!.label, run: 'cosine' as const, paper: pct(p.smi / p.base - 1),
      j: judge(paired('cosine', (m) => m.quality[p.key], seeds), { kind: 'effect', paper: p.smi / p.base - 1 }),
    }));
    return { verdicts, qualityClaims };
  };
  const { verdicts, qualityClaims } = claimsOn();
  const headlineRows = (v: Row[], q: Row[]): [string, Row | undefined][] => {
    const headline = (claim: string, run: SmiRunName) => v.find((x) => x.claim.startsWith(claim) && x.run === run);
    return [
      ['Val loss on par with AdamW (cosine)', headline('Val loss', 'cosine')],
      ['~4.5% training overhead (cosine)', headline('Training overhead', 'cosine')],
      ['+15% inference speed after SMI training (cosine)', headline('Faster inference', 'cosine')],
      ['8% fewer steps to the train-loss threshold (top75)', headline('Steps to the train', 'top75')],
      ['43.5% lower late-stage loss variance (cosine)', headline('Late-stage', 'cosine')],
      ['−28.9% spectral-norm variance (cosine)', q.find((x) => x.claim === 'Spectral norm variance')],
      ['−18.1% condition number (cosine)', q.find((x) => x.claim === 'Condition number (mean)')],
      ['+33% activation sparsity (cosine)', q.find((x) => x.claim === 'Sparsity: overall average')],
      ['−12.5% kurtosis (cosine)', q.find((x) => x.claim.startsWith('Kurtosis'))],
    ];
  };
  // the previous report's two seeds (the first two of the list): what the extra seeds changed
  const earlySeeds = o.seeds.slice(0, 2);
  const early = claimsOn(earlySeeds);

  // ---- issue 15's questions: the controls (2) and the spectral modes (3) ----
  const Q = questions(get, distMeasured);
  const qFigures: string[] = [];
  for (const f of Q.figures) {
    save(f.name, await renderChart(f.chart, 800, 450));
    qFigures.push(f.name);
  }
  /** the val loss of a mode's runs minus one-process cosine of the same seed, at each evaluation, mean over seeds */
  const modeValDiff = (mode: SpectralMode): { x: number; y: number }[] => {
    const pairs = distRuns.filter((r) => r.spec.spectral === mode).flatMap((r) => {
      const c = byRun('cosine').find((x) => x.spec.seed === r.spec.seed);
      return c ? [[r, c] as const] : [];
    });
    if (pairs.length === 0) return [];
    return pairs[0]![0].evals.map((e) => e.step).flatMap((step) => {
      const ds = pairs.flatMap(([r, c]) => {
        const a = r.evals.find((e) => e.step === step);
        const b = c.evals.find((e) => e.step === step);
        return a && b ? [a.val_loss - b.val_loss] : [];
      });
      return ds.length ? [{ x: step, y: mean(ds) }] : [];
    });
  };
  const fig8 = Q.modes.length && byRun('cosine').length ? await renderChart(lineChart(
    '2-worker runs: val loss minus one-process cosine (same seed, mean over seeds)', 'step', 'Δ val loss vs --local cosine',
    Q.modes.map((mode, i) => ({ label: mode, color: PALETTE[(i + 3) % PALETTE.length], data: modeValDiff(mode) })),
  ), 800, 450) : undefined;
  if (fig8) save('fig8-modes-val-diff.png', fig8);

  // ---- markdown ----
  const cmd = existsSync(join(out, 'command.json')) ? (JSON.parse(readFileSync(join(out, 'command.json'), 'utf8')) as { argv: string[]; host?: string; cpus?: number; cpu?: string; node?: string }) : undefined;
  const L: string[] = [];
  L.push(`# Reproduction of "Spectral Momentum Integration" (Huang, Chen, Zheng 2025): \`${o.preset}\` preset`, '');
  L.push(`- Command (from \`command.json\`, the latest \`npm run reproduce\` in this directory): \`npm run reproduce -- ${(cmd?.argv ?? []).map(shellQuote).join(' ')}\``);
  const retrain = o.retrain ?? ['--preset', o.preset, '--seeds', o.seeds.join(','), '--runs', o.runs.join(','), '--out', out];
  L.push(`- The runs can be retrained with: \`npm run reproduce -- ${retrain.map(shellQuote).join(' ')}\` (finished runs are kept; an interrupted one resumes)`);
  L.push(`- Machine that ran it: ${cmd ? `${cmd.cpu ?? 'unknown CPU'}, ${cmd.cpus ?? '?'} cores, Node ${cmd.node ?? '?'}, host ${cmd.host ?? '?'}` : 'unknown (no command.json)'}; training backend: ${[...new Set([...runs, ...distRuns].map((r) => r.cfg.backend))].join(', ') || 'n/a'} (from the runs' config.json${fromPrior.length ? '; the prior report\'s runs: as it says' : ''})`);
  L.push(`- This report: written ${new Date().toISOString()} on ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}, host ${hostname()}; measurements on the ${backend.name} backend (${backend.device}); 1-minute load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after the inference timing`);
  L.push(`- Seeds: ${o.seeds.join(', ')}; runs: ${o.runs.join(', ')}; ${finished.length} of ${specs.length} finished${fromPrior.length ? ` here and ${fromPrior.length} from the prior report` : ''}${runs[0] ? `; ${runs[0].cfg.max_iters} steps, ${runs[0].cfg.n_layer} layers × ${runs[0].cfg.n_embd} wide, batch ${runs[0].cfg.batch_size} × ${runs[0].cfg.block_size}` : ''}`);
  L.push(`- Seeds per run (finished): ${seedsPerRun(measured, distMeasured)}`);
  if (fromPrior.length) {
    L.push(`- **From a prior report** (${fromPrior.length} run(s) whose directories are gone): ${fromPrior.map((s) => `${specLabel(s)} seed ${s.seed}`).join(', ')}. Their outcomes, model quality${usePrior && inference ? ', interleaved inference timing' : ''} and steps-to-threshold (against that report's thresholds) are as \`${o.prior}\` recorded them when the runs were there; nothing of them is measured again${copied.length ? `; ${copied.join(', ')} ${copied.length === 1 ? 'is' : 'are'} that report's figure(s) of the same runs` : ''}${usePrior ? '; the figures that need their loss curves against other runs (Figure 8) are left out' : ''}.`);
  }
  const resumed = finished.filter((r) => r.resumed);
  if (resumed.length) L.push(`- Resumed from a checkpoint after an interruption (${resumed.length}): ${resumed.map((r) => `${specLabel(r.spec)} seed ${r.spec.seed}`).join(', ')}. A resumed run repeats the uninterrupted one exactly, except in the distributed \`local\` mode, whose per-worker histories are not in the checkpoint and start again.`);
  if (missing.length) L.push(`- **Missing from this report** (${missing.length}): ${missing.map((s) => `${specLabel(s.spec)} seed ${s.spec.seed} (${s.why})`).join('; ')}`);
  if (runs.length === 0 && measured.length === 0) L.push('', '**No run has finished yet: the tables below are empty.** Train with the command above.');
  L.push('', 'The paper trained the `paper` preset (10.7M parameters, 5,000 steps) on one GPU; these runs use the preset above, so absolute numbers differ and only the changes against the baseline are comparable.', '');

  const hl = headlineRows(verdicts, qualityClaims);
  const hlEarly = headlineRows(early.verdicts, early.qualityClaims);
  // the plain-language conclusion first: what SMI does here, from the verdicts below
  L.push('## What SMI does on this model, as measured', '');
  L.push(...Q.summary(hl.map(([text, row]) => ({ text, row })), thrTrain), '');

  // headline
  L.push('## Verdicts on the headline claims', '');
  for (const [text, row] of hl) L.push(`- ${text}: **${row?.j.verdict ?? 'missing'}**: ${row?.j.detail ?? 'the run was not part of this reproduction'}`);
  const fewest = Math.min(...hl.map(([, r]) => r?.j.n ?? Infinity));
  L.push('', `Changes are paired per seed (run / same-seed baseline − 1); the interval is mean ± t(n−1)·SEM at 95%, with n the number of seeds that have both runs (each verdict says its n).${fewest < 3 ? ` With n = ${fewest} the test is weak: ${fewest === 1 ? 'there is no seed-to-seed spread, so the verdict is "inconclusive"' : 'one degree of freedom, a change must exceed 12.7 SEMs'}.` : ''} Rules: see "Verdicts per claim".`, '');

  // question 1: more seeds
  L.push(`## Question 1: the headline claims with more seeds`, '');
  L.push(`Seeds per run: ${seedsPerRun(measured, [])}. Every verdict is recomputed with its own degrees of freedom, n − 1 (the 95% critical value of t is 12.71 at 1, 2.78 at 4). The last column judges the same claim on the first two seeds only (${earlySeeds.join(', ')}: the seeds of the earlier two-seed report), to show what the added seeds changed.`, '');
  const t1q: string[][] = [['Claim', 'n', 'Measured (paired, per seed)', 'Verdict', `On seeds ${earlySeeds.join(', ')} only`]];
  hl.forEach(([text, row], i) => {
    const e = hlEarly[i]![1];
    t1q.push([text, String(row?.j.n ?? 0), row?.j.detail ?? 'not measured', `**${row?.j.verdict ?? 'missing'}**`, e ? `${e.j.verdict} (${e.j.mean === null ? 'n/a' : pct(e.j.mean)})` : 'missing']);
  });
  L.push(mdTable(t1q), '');
  if (qFigures.includes('fig6-seed-effects.png')) L.push('![Figure 6](fig6-seed-effects.png)', '', 'Figure 6: the final validation loss of each run against the same seed\'s baseline, one dot per seed, the diamond the mean and the bar its 95% interval.', '');

  // question 2: the controls
  L.push('## Question 2: a frequency filter, a step-size change, or noise? (the controls)', '');
  L.push('`random-mask` keeps as many bins per tensor as cosine\'s mask at that step, chosen uniformly at random (conjugate-symmetric, seeded); `shrink` filters nothing and scales the gradient by c = ‖G′‖²/‖G‖², the energy share cosine\'s mask keeps; both with cosine\'s α schedule, β and q, and cosine\'s history (docs/controls.md). Each comparison is paired per seed, d = A / B − 1, with the interval mean ± t(n−1)·SEM at 95%: **lower** / **higher** when the interval excludes 0, **on par** when it includes 0 and lies within the margin (±1% for losses, as the paper\'s "on par" claim; ±5% for steps to the threshold; ±10% for the late-stage variance, which varies more from seed to seed), else **inconclusive**.', '');
  L.push(Q.controlsText, '');
  L.push(mdTable([['A vs B', 'Metric', 'Measured (paired, per seed)', 'Verdict'], ...Q.controls.map((r) => [r.label, r.metric, r.c.detail, `**${r.c.verdict}**`])]), '');
  if (qFigures.includes('fig7-controls.png')) L.push('![Figure 7](fig7-controls.png)', '', 'Figure 7: the final validation loss of each comparison, per seed (dots), mean (diamond) and 95% interval (bar). Figure 3 shows the controls\' loss curves against the baseline.', '');

  // question 3: the spectral modes
  L.push('## Question 3: what synchronising the spectra buys (2 workers: synced, global, local)', '');
  const d0 = distRuns[0];
  const split = d0 ? splitBatchSizes(d0.cfg.batch_size, d0.spec.workers ?? 2) : [];
  L.push(`Cosine trained by a coordinator and ${d0?.spec.workers ?? 2} local worker processes sharing the preset's global batch${d0 ? ` (${d0.cfg.batch_size} sequences: ${split.join(' + ')})` : ''}, in each spectral mode (docs/distributed.md): **synced** (one shared history from the averaged magnitudes, one mask), **global** (SMI on the mean gradient at the coordinator: one process\'s arithmetic), **local** (each worker its own history on its half batch; no synchronisation), against one-process (\`--local\`) cosine of the same seed. Comparisons as in question 2.`, '');
  L.push(Q.modesText, '');
  if (Q.modeTable.length > 1) L.push(mdTable(Q.modeTable), '');
  if (Q.modesRows.length) L.push(mdTable([['A vs B', 'Metric', 'Measured (paired, per seed)', 'Verdict'], ...Q.modesRows.map((r) => [r.label, r.metric, r.c.detail, `**${r.c.verdict}**`])]), '');
  if (fig8) L.push('![Figure 8](fig8-modes-val-diff.png)', '', 'Figure 8: the validation loss of each mode minus one-process cosine of the same seed, at each evaluation, mean over seeds.', '');
  if (qFigures.includes('fig9-modes.png')) L.push('![Figure 9](fig9-modes.png)', '', 'Figure 9: the final validation loss of each mode against one-process cosine (and local against synced), per seed, mean and 95% interval.', '');

  // Table 1
  L.push('## Table 1 analogue: overall performance (mean ± SEM over seeds, change vs baseline)', '');
  const paperCell = (run: SmiRunName, f: 'train' | 'val' | 'tps' | 'time') => !isPaperRun(run) ? 'not in the paper' : `${PAPER_TABLE1[run][f]}${run === 'baseline' ? '' : ` (${pct(PAPER_TABLE1[run][f] / PAPER_TABLE1.baseline[f] - 1)})`}`;
  const t1: string[][] = [['Method', 'n', 'Train loss', 'Val loss', 'Inference (tokens/s)', 'Train time Σ step (s)', 'Median step (ms)', 'Wall (s)', 'Paper: train / val / tokens/s / time (s)']];
  for (const run of presentRuns) {
    const m = get(run);
    const walls = m.flatMap((x) => (x.wallS === null ? [] : [x.wallS]));
    t1.push([LABEL[run], String(m.length), cell(m.map((x) => x.train), 4, run === 'baseline' ? undefined : base.map((x) => x.train)), cell(m.map((x) => x.val), 4, run === 'baseline' ? undefined : base.map((x) => x.val)),
      cell(m.map((x) => x.tps), 1) + (run === 'baseline' || ratioPaired(run).length === 0 ? '' : ` (${pct(mean(ratioPaired(run)))} paired)`), cell(m.map((x) => x.stepS), 1, run === 'baseline' ? undefined : base.map((x) => x.stepS)),
      cell(m.map((x) => x.medStepMs), 1, run === 'baseline' ? undefined : base.map((x) => x.medStepMs)), walls.length ? cell(walls, 0) : 'n/a', isPaperRun(run) ? `${paperCell(run, 'train')} / ${paperCell(run, 'val')} / ${paperCell(run, 'tps')} / ${paperCell(run, 'time')}` : 'not in the paper (a control)']);
  }
  L.push(mdTable(t1), '');
  L.push('- Losses: the last evaluation (mean over `eval_iters` batches of each split, after the last step). SEM = sample sd / √n ("n/a" with one seed).');
  L.push(`- Inference: the change is the mean over seeds of the per-round paired ratio (run / same-seed baseline in the same round, median over rounds) − 1, which cancels drift better than the ratio of the medians. Tokens/s of generating 500 new tokens (batch 1, temperature 0.8, top_k 200, seed 1337, nanoGPT's generate without a KV cache), median of ${rounds} runs per model, all models measured interleaved in one process (round r runs every model once) so that machine drift falls on all alike. Forward FLOPs per token, the same for every run (same architecture): ${runs[0] ? forwardFlopsPerToken(runs[0].cfg).toExponential(3) : inference?.models[0] ? inference.models[0].flopsPerToken.toExponential(3) : 'n/a'} (nanoGPT/Kaplan inference estimate 2N + 2·n_layer·T·C, N without the position embedding; training is 3× that).`);
  L.push('- Train time: the sum of the logged step times (`ms`, a step\'s wall time without evaluation); wall: config.json written → last log line (includes evaluation and any interruption; n/a where the file times are not consistent, e.g. copied directories). Runs were trained at different times, under whatever else the machine was doing (and side by side with `--parallel`): load during one run and not another biases these comparisons, which no pairing can undo; the median step time resists short disturbances (evaluations, GC, brief jobs) and is what the overhead verdict uses.');
  if (inference) {
    const rr: string[][] = [['Model', 'vs', 'median ratio', 'IQR', 'range', 'rounds']];
    for (const m of measured.filter((x) => x.run !== 'baseline')) {
      if (!base.some((b) => b.seed === m.seed)) continue;
      const r = speedRatio(inference, key(m.run, m.seed), key('baseline', m.seed));
      rr.push([key(m.run, m.seed), key('baseline', m.seed), r.median.toFixed(4), `${r.q1.toFixed(4)}–${r.q3.toFixed(4)}`, `${r.min.toFixed(4)}–${r.max.toFixed(4)}`, String(r.rounds)]);
    }
    if (aa && inference.models.some((m) => m.label === aa!.vs)) {
      const r = speedRatio(inference, aa.label, aa.vs);
      rr.push([aa.label, aa.vs, r.median.toFixed(4), `${r.q1.toFixed(4)}–${r.q3.toFixed(4)}`, `${r.min.toFixed(4)}–${r.max.toFixed(4)}`, String(r.rounds)]);
      if (Math.abs(r.median - 1) > 0.02 || r.q3 - r.q1 > 0.05) {
        L.push(`- **Warning: noisy timing.** The A/A control (one model against a copy of itself) gives a median ratio of ${r.median.toFixed(3)} with an IQR of ${r.q1.toFixed(3)}–${r.q3.toFixed(3)}: differences in inference speed below about ${(Math.max(Math.abs(r.median - 1), (r.q3 - r.q1) / 2) * 100).toFixed(0)}% cannot be told from noise here. Rerun the report (\`--report-only\`) on an idle machine, or with more rounds (SMI_INFERENCE_ROUNDS=N).`);
      }
    }
    L.push('', 'Per-round inference speed ratios (same round, same seed; the A/A control is the first baseline loaded twice: its spread is the measurement noise):', '', mdTable(rr));
  }
  L.push('');

  // Table 7
  L.push('## Table 7 analogue: training dynamics', '');
  L.push(`Thresholds for this preset (the paper's 1.0 / 1.5 fit its preset only): train loss ≤ **${num(thrTrain)}** and val loss ≤ **${num(thrVal)}**, i.e. the ${get('baseline').length ? 'baseline\'s' : 'runs\''} mean final train / val loss + 5%${usePrior ? ' (as the prior report computed them from the same runs)' : ''}. Train: the first step whose trailing mean of the step loss over ${smoothW} steps is at or below it; val: the first crossing, linear between evaluations (every ${runs[0]?.cfg.eval_interval ?? PRESETS[o.preset as PresetName]?.eval_interval ?? '?'} steps). Late-stage variance: the variance (÷n) of the step losses over the last 20% of steps (the paper: the last 1,000 of 5,000); "detrended" subtracts a least-squares line first (the loss still falls there).`, '');
  const it = (xs: (number | null)[], baseXs?: (number | null)[]) => {
    const never = xs.filter((x) => x === null).length;
    const ok = xs.filter((x): x is number => x !== null);
    const b = baseXs?.filter((x): x is number => x !== null);
    return ok.length ? `${cell(ok, 0, b)}${never ? ` (${never} never)` : ''}` : `not reached (> ${maxIters})`;
  };
  const t7: string[][] = [['Method', 'Steps to train ≤ thr', 'Steps to val ≤ thr', 'Late-stage loss variance', 'Detrended', 'Paper: steps train<1.0 / val<1.5 / variance']];
  for (const run of presentRuns) {
    const m = get(run);
    const b = run === 'baseline' ? undefined : base;
    t7.push([LABEL[run], it(m.map((x) => x.itTrain), b?.map((x) => x.itTrain)), it(m.map((x) => x.itVal), b?.map((x) => x.itVal)),
      cell(m.map((x) => x.lateVar), 5, b?.map((x) => x.lateVar)), cell(m.map((x) => x.lateVarDetrended), 5, b?.map((x) => x.lateVarDetrended)),
      !isPaperRun(run) ? 'not in the paper (a control)' : `${PAPER_TABLE7[run].itTrain} / ${PAPER_TABLE7[run].itVal} / ${PAPER_TABLE7[run].lateVar}${run === 'baseline' ? '' : ` (${pct(p7(run, 'itTrain'))} / ${pct(p7(run, 'itVal'))} / ${pct(p7(run, 'lateVar'))})`}`]);
  }
  L.push(mdTable(t7), '', 'The paper\'s "training curve smoothness" column is qualitative and not reproduced.', '');

  // quality
  L.push('## Tables 2–4 analogue: parameter quality (mean ± SEM over seeds, change vs baseline)', '');
  const tq: string[][] = [['Metric', ...presentRuns.map((r) => LABEL[r]), 'Paper: baseline → SMI (best)']];
  for (const row of QUALITY_ROWS) {
    const p = PAPER_QUALITY.find((x) => x.key === row.key);
    tq.push([row.label, ...presentRuns.map((run) => cell(get(run).map((m) => m.quality[row.key]), 4, run === 'baseline' ? undefined : base.map((m) => m.quality[row.key]))), p ? `${p.base} → ${p.smi} (${pct(p.smi / p.base - 1)})` : 'not in the paper']);
  }
  L.push(mdTable(tq), '', 'Definitions (the paper gives none; scripts/analysis/quality.ts):', '');
  for (const [k, d] of Object.entries(QUALITY_DEFINITIONS)) L.push(`- ${k}: ${d}`);
  L.push('- The mean condition number is dominated by the few worst-conditioned matrices (typically attn.c_proj, σ_min near 0); the median is given beside it. The paper\'s "on average" is taken as the mean for its verdict.');
  L.push('- Activation statistics over 4 validation batches of 8 sequences (the step-0 validation batches of seed 1337), the same text for every model.');
  L.push("- Not computed: Table 4's \"effective parameter ratio\" and \"weight decay impact\" (no definition to follow).", '');

  // figures
  L.push('## Figures', '');
  L.push('![Figure 2](fig2-val-loss-vs-inference.png)', '', 'Figure 2 analogue: final validation loss against inference speed per run (lower right is better).', '');
  if (pngs.includes('fig3-train-loss-diff.png')) L.push('![Figure 3a](fig3-train-loss-diff.png)', '', '![Figure 3b](fig3-val-loss-diff.png)', '', `Figure 3 analogue: loss of each SMI run minus the same-seed baseline (negative = better than AdamW)${copied.includes('fig3-train-loss-diff.png') ? '; drawn by the prior report from the same runs' : ''}.`, '');
  L.push('![Figure 4](fig4-alpha-schedules.png)', '', 'Figure 4 analogue: the blending coefficient α_t of each schedule (linear-0.5, ema-0.99 and top75 share one).', '');
  if (pngs.includes('fig5-spectral-filtering.png')) L.push('![Figure 5](fig5-spectral-filtering.png)', '', `Figure 5 analogue: ${fig5Note}. Our layout of the weight is [in, out], PyTorch's transposed; FFT2(Gᵀ) = FFT2(G)ᵀ, so the masks are the same bins.`, '');

  // verdict table
  L.push('## Verdicts per claim', '');
  L.push('Each verdict uses the per-seed relative change d = (SMI run) / (same-seed baseline) − 1 and its 95% interval mean ± t(n−1)·SEM. An effect claim is **reproduced** when the interval excludes 0 on the paper\'s side and holds the paper\'s value, **direction only** when it excludes 0 on the paper\'s side but not the paper\'s size, **not reproduced** when it excludes the paper\'s value without showing its direction, else **inconclusive**. "On par" (val loss): reproduced when the interval lies within ±1%, not reproduced when it lies outside, else inconclusive. Overhead (on the median step time): reproduced when the upper end is ≤ 9% (twice the paper\'s 4.5%), not reproduced when the lower end is above 9%. One seed: always inconclusive, with the point estimate. Inference uses each seed\'s interleaved median ratio; the parameter-quality claims are checked on the cosine run (the paper\'s "SMI (best)").', '');
  const vt: string[][] = [['Claim', 'Run', 'Paper', 'Measured (paired, per seed)', 'Verdict']];
  for (const v of [...verdicts, ...qualityClaims]) vt.push([v.claim, v.run, v.paper, v.j.detail, `**${v.j.verdict}**`]);
  L.push(mdTable(vt), '');
  if (missing.length) {
    L.push('## Missing runs', '', ...missing.map((s) => `- ${specLabel(s.spec)} seed ${s.spec.seed}: ${s.why} (${s.spec.dir})`), '');
  }

  // closing note: every verdict with its n, and the wall time of the runs
  L.push('## Closing note: every verdict with its n, and what the runs took', '');
  for (const v of [...verdicts, ...qualityClaims]) L.push(`- ${v.claim} (${v.run}): **${v.j.verdict}**, n = ${v.j.n}`);
  for (const r of [...Q.controls, ...Q.modesRows]) L.push(`- ${r.label}, ${r.metric}: **${r.c.verdict}**, n = ${r.c.j.n}`);
  L.push('', wallNote([...measured, ...distMeasured]), '');
  const report = join(out, 'report.md');
  writeFileSync(report, L.join('\n'));
  writeFileSync(join(out, 'report.json'), JSON.stringify({
    preset: o.preset, seeds: o.seeds, runs: o.runs, missing: missing.map((s) => ({ run: s.spec.run, seed: s.spec.seed, state: s.state })),
    thresholds: { train: thrTrain, val: thrVal, smoothing: smoothW }, measured, distributed: distMeasured, inference, verdicts: [...verdicts, ...qualityClaims],
    questions: {
      seeds: { earlySeeds, headline: hl.map(([text, row], i) => ({ claim: text, verdict: row?.j.verdict ?? 'missing', n: row?.j.n ?? 0, detail: row?.j.detail, early: hlEarly[i]![1]?.j ?? null })) },
      controls: { reading: Q.controlsReading, text: Q.controlsText, comparisons: Q.controls.map((r) => ({ label: r.label, metric: r.metric, verdict: r.c.verdict, n: r.c.j.n, mean: r.c.j.mean, lo: r.c.j.lo, hi: r.c.j.hi, margin: r.c.margin })) },
      modes: { text: Q.modesText, comparisons: Q.modesRows.map((r) => ({ label: r.label, metric: r.metric, verdict: r.c.verdict, n: r.c.j.n, mean: r.c.j.mean, lo: r.c.j.lo, hi: r.c.j.hi, margin: r.c.margin })) },
    },
    quality: Object.fromEntries([...runs.map((r) => [key(r.spec.run, r.spec.seed), quality.get(r)]), ...priorLocal.map((s) => [key(s.run, s.seed), prior!.quality[key(s.run, s.seed)]])]),
    definitions: QUALITY_DEFINITIONS,
    prior: prior ? { file: o.prior, runs: fromPrior.map((s) => ({ run: s.run, seed: s.seed, ...(s.spectral ? { spectral: s.spectral, workers: s.workers ?? 2 } : {}) })) } : undefined,
  }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2) + '\n');
  log(`report written: ${report} (${pngs.length} figures)`);
  return { report, pngs };
}
