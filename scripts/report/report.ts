// The run report: a Markdown summary with PNG charts (loss, where a step's time goes, scaling) of one or more run directories.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { ChartConfiguration } from 'chart.js';
import { ConfigError } from '../../shared/errors.ts';
import { PALETTE, renderChart } from './charts.ts';
import { PHASE_ORDER, loadRun, phaseBreakdown, scalingEfficiency, summarizeRun, type PhaseName, type Run, type RunSummary, type ScalingPoint } from './runs.ts';

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
// ---------------------------------------------------------------------------------------------------------------
// Charts (Chart.js configurations; render with renderChart from ./charts.ts)

const PHASE_COLOR: Record<PhaseName, string> = {
  compute: PALETTE[0]!, spectral: PALETTE[1]!, encode: PALETTE[2]!, transfer: PALETTE[3]!, wait: PALETTE[7]!,
  reduce: PALETTE[4]!, optimizer: PALETTE[5]!, broadcast: PALETTE[6]!, other: '#c7c7c7',
};

const runColor = (i: number) => PALETTE[i % PALETTE.length]!;
const titled = (text: string) => ({ display: true, text, font: { size: 16 } });
const axis = (text: string) => ({ display: true, text });
/** A legend whose samples are short strokes, so dashed and solid lines can be told apart. */
const legend = { position: 'bottom' as const, labels: { boxWidth: 28, boxHeight: 2 } };

/** Trailing mean over `w` steps. */
function smooth(ys: number[], w: number): number[] {
  let acc = 0;
  return ys.map((y, i) => {
    acc += y;
    if (i >= w) acc -= ys[i - w]!;
    return acc / Math.min(i + 1, w);
  });
}
/** Window that smooths without hiding the trend: about 1/50 of the run, at most 100 steps. */
const smoothingWindow = (n: number) => Math.min(100, Math.max(1, Math.round(n / 50)));

/** Loss against step: each run's step loss (trailing mean) and its eval train (dashed) and val (solid, points) losses. */
export function lossChart(runs: Run[]): ChartConfiguration {
  const datasets = runs.flatMap((run, i) => {
    const color = runColor(i);
    const w = smoothingWindow(run.steps.length);
    const ys = smooth(run.steps.map((r) => r.loss), w);
    return [
      {
        label: `${run.label}: step loss${w > 1 ? ` (mean of ${w})` : ''}`,
        data: run.steps.map((r, j) => ({ x: r.step, y: ys[j]! })),
        borderColor: color, backgroundColor: color, borderWidth: 1, pointRadius: 0, tension: 0,
      },
      {
        label: `${run.label}: eval train`,
        data: run.evals.map((e) => ({ x: e.step, y: e.train_loss })),
        borderColor: color, backgroundColor: color, borderWidth: 2, borderDash: [6, 4], pointRadius: 3, pointStyle: 'rect' as const,
      },
      {
        label: `${run.label}: eval val`,
        data: run.evals.map((e) => ({ x: e.step, y: e.val_loss })),
        borderColor: color, backgroundColor: color, borderWidth: 2.5, pointRadius: 4,
      },
    ];
  });
  return {
    type: 'line',
    data: { datasets },
    options: {
      plugins: { title: titled('Loss'), legend },
      scales: {
        x: { type: 'linear', title: axis('step') },
        y: { type: 'linear', title: axis('cross-entropy loss (nats per character)') },
      },
    },
  } as ChartConfiguration;
}

/** Stacked horizontal bars, one per process per run (as phaseBreakdown gives them), mean ms per step by phase. */
export function phaseChart(runs: Run[], opts: { warmup?: number } = {}): ChartConfiguration {
  const bars = runs.flatMap((r) => phaseBreakdown(r, opts));
  const used = PHASE_ORDER.filter((p) => bars.some((b) => (b.phases[p] ?? 0) > 0));
  const shortId = (p: string) => (p.startsWith('worker ') && p.length > 24 ? `${p.slice(0, 24)}…` : p);
  return {
    type: 'bar',
    data: {
      labels: bars.map((b) => (runs.length > 1 ? `${b.run} · ${shortId(b.process)}` : shortId(b.process))),
      datasets: used.map((p) => ({
        label: p === 'other' ? 'other (rest of the step)' : p,
        data: bars.map((b) => b.phases[p] ?? 0),
        backgroundColor: PHASE_COLOR[p],
        borderColor: '#ffffff',
        borderWidth: 1,
      })),
    },
    options: {
      indexAxis: 'y',
      plugins: { title: titled("Where a step's time goes"), legend: { position: 'bottom' } },
      scales: {
        x: { stacked: true, title: axis('mean ms per step'), beginAtZero: true },
        y: { stacked: true, title: axis(runs.length > 1 ? 'run · process' : 'process') },
      },
    },
  } as ChartConfiguration;
}

/** Tokens/s (solid, left axis) and scaling efficiency (dashed, right axis) against workers, one pair of lines per series. */
export function scalingChart(rows: ScalingPoint[]): ChartConfiguration {
  const eff = scalingEfficiency(rows);
  const series = [...new Set(eff.map((r) => r.series ?? ''))];
  const datasets = series.flatMap((s, i) => {
    const mine = eff.filter((r) => (r.series ?? '') === s).sort((a, b) => a.workers - b.workers);
    // rows without a series beside named ones (a --local reference): named by their label when alone
    const name = s ? `${s}: ` : series.length > 1 ? `${mine.length === 1 ? mine[0]!.label : 'other'}: ` : '';
    const color = runColor(i);
    return [
      { label: `${name}tokens/s`, yAxisID: 'y', data: mine.map((r) => ({ x: r.workers, y: r.tokensPerSec })), borderColor: color, backgroundColor: color, pointRadius: 4 },
      {
        label: `${name}efficiency`, yAxisID: 'y1', data: mine.filter((r) => r.efficiency !== undefined).map((r) => ({ x: r.workers, y: r.efficiency! })),
        borderColor: color, backgroundColor: color, borderDash: [6, 4], pointRadius: 4, pointStyle: 'triangle' as const,
      },
    ];
  });
  const maxWorkers = Math.max(...rows.map((r) => r.workers));
  datasets.push({
    label: 'ideal efficiency (1)', yAxisID: 'y1', data: [{ x: Math.min(...rows.map((r) => r.workers)), y: 1 }, { x: maxWorkers, y: 1 }],
    borderColor: '#999999', backgroundColor: '#999999', borderDash: [2, 3], pointRadius: 0,
  } as (typeof datasets)[number]);
  return {
    type: 'line',
    data: { datasets },
    options: {
      plugins: { title: titled('Scaling'), legend },
      scales: {
        x: { type: 'linear', title: axis('workers'), ticks: { stepSize: 1, precision: 0 } },
        y: { type: 'linear', position: 'left', beginAtZero: true, title: axis('tokens/s') },
        y1: { type: 'linear', position: 'right', beginAtZero: true, suggestedMax: 1.1, title: axis('efficiency E(N) = T(N) / (N·T(1))'), grid: { drawOnChartArea: false } },
      },
    },
  } as ChartConfiguration;
}

// ---------------------------------------------------------------------------------------------------------------
// Markdown

const NA = '—';
/** Fixed decimals, or NA for a missing or non-finite number. */
const fx = (x: number | undefined, digits: number) => (x === undefined || !Number.isFinite(x) ? NA : x.toFixed(digits));
/** About three significant digits without exponents: 1234, 123.4, 12.34, 1.234, 0.123. */
const sig = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? NA : x.toFixed(Math.abs(x) >= 1000 ? 0 : Math.abs(x) >= 100 ? 1 : Math.abs(x) >= 1 ? 2 : 3));
const pct = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? NA : `${(100 * x).toFixed(1)} %`);
const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');
const table = (head: string[], rows: string[][]) =>
  [`| ${head.map(cell).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');

/** The side-by-side table: one row per quantity, one column per run. */
function summaryTable(sums: RunSummary[]): string {
  const row = (name: string, f: (s: RunSummary) => string): string[] => [name, ...sums.map(f)];
  return table(['', ...sums.map((s) => s.label)], [
    row('preset', (s) => s.preset),
    row('SMI run', (s) => s.smi),
    row('spectral mode', (s) => s.spectral),
    row('workers', (s) => (s.distributed ? String(s.workers) : '1 (one process)')),
    row('backend', (s) => `${s.backend} (${s.device})`),
    row('model', (s) => `${s.model}${s.params !== undefined ? `, ${s.params.toLocaleString('en-US')} params` : ''}`),
    row('batch × block', (s) => s.batch),
    row('steps', (s) => String(s.steps)),
    row('final train loss', (s) => fx(s.finalTrainLoss, 4)),
    row('final val loss', (s) => fx(s.finalValLoss, 4)),
    row('best val loss (step)', (s) => (s.bestValLoss === undefined ? NA : `${fx(s.bestValLoss, 4)} (${s.bestValStep})`)),
    row('median ms/step', (s) => sig(s.medianMsPerStep)),
    row('tokens/s', (s) => fx(s.tokensPerSec, 0)),
    row('median overhead (1 − compute/step)', (s) => pct(s.medianOverhead)),
    row('wire MB/s (both ways)', (s) => (s.wireMBps === undefined ? NA : sig(s.wireMBps))),
    row('slowest worker (compute ms)', (s) => (s.slowest ? `${s.slowest.id}: ${sig(s.slowest.computeMs)} ms, +${(100 * s.slowest.slowerBy).toFixed(1)} % vs ${s.slowest.fastestId}` : NA)),
  ]);
}

/** The per-run table: one row per process, mean ms per phase, and bytes for the workers. */
function phaseTable(run: Run, s: RunSummary, opts: { warmup?: number }): string {
  const bars = phaseBreakdown(run, opts);
  if (!bars.length) return '_No compute timings in this log._';
  const used = PHASE_ORDER.filter((p) => bars.some((b) => b.phases[p] !== undefined));
  const wire = s.workerPhases !== undefined;
  const head = ['process', ...used, 'step', ...(wire ? ['MB sent/step', 'MB received/step', 'MB/s'] : [])];
  const rows = bars.map((b) => {
    const w = s.workerPhases?.find((x) => `worker ${x.id}` === b.process);
    const wireCells = !wire ? [] : w ? [sig(w.mbSentPerStep), sig(w.mbReceivedPerStep), sig(w.mbPerSec)] : b.process === 'coordinator' && s.workerPhases
      ? [sig(sum(s.workerPhases.map((x) => x.mbSentPerStep))), sig(sum(s.workerPhases.map((x) => x.mbReceivedPerStep))), sig(s.wireMBps)] : [NA, NA, NA];
    return [b.process, ...used.map((p) => (b.phases[p] === undefined ? NA : sig(b.phases[p]))), sig(b.stepMs), ...wireCells];
  });
  return table(head, rows);
}

export interface ReportOptions {
  runs?: (string | Run)[]; // run directories, or runs already loaded (their `label` names them)
  scaling?: ScalingPoint[]; // throughput rows for the scaling chart and table (default: one per run)
  out?: string; // a directory (→ DIR/report.md) or a .md file; PNGs go beside it [report/report.md]
  title?: string;
  notes?: string; // Markdown placed under the title
  warmup?: number; // steps after each (re)start left out of timings [1]
}

export interface ReportResult {
  file: string; // the Markdown file
  images: string[]; // the PNGs written
  markdown: string;
}

/** Gives runs distinct labels: the directory name, then with its parent, then numbered. */
function distinctLabels(runs: Run[]): Run[] {
  const count = (l: string, rs: Run[]) => rs.filter((r) => r.label === l).length;
  let out = runs.map((r) => (count(r.label, runs) > 1 ? { ...r, label: `${basename(dirname(resolve(r.dir)))}/${r.label}` } : r));
  out = out.map((r, i) => (count(r.label, out) > 1 ? { ...r, label: `${r.label} #${i + 1}` } : r));
  return out;
}

/** Writes the Markdown report and its PNGs; returns where. Needs at least one run or one scaling row. */
export async function writeReport(opts: ReportOptions): Promise<ReportResult> {
  const runs = distinctLabels((opts.runs ?? []).map((r) => (typeof r === 'string' ? loadRun(r) : r)));
  if (!runs.length && !opts.scaling?.length) throw new ConfigError('E_BAD_FLAG', 'nothing to report: give at least one --run DIR');
  const target = opts.out ?? join('report', 'report.md');
  const file = extname(target).toLowerCase() === '.md' ? target : join(target, 'report.md');
  const dir = dirname(file);
  const stem = basename(file, extname(file));
  mkdirSync(dir, { recursive: true });
  const images: string[] = [];
  const image = async (name: string, config: ChartConfiguration, alt: string, width = 900, height = 500) => {
    const png = `${stem}-${name}.png`;
    writeFileSync(join(dir, png), await renderChart(config, width, height));
    images.push(join(dir, png));
    return `![${alt}](${png})`;
  };
  const warmup = opts.warmup ?? 1;
  const sums = runs.map((r) => summarizeRun(r, { warmup }));
  const md: string[] = [`# ${opts.title ?? (runs.length === 1 ? `Run ${runs[0]!.label}` : 'Training runs')}`, ''];
  if (opts.notes) md.push(opts.notes, '');

  if (runs.length) {
    md.push('## Runs', '', ...runs.map((r) => `- **${r.label}**: \`${r.dir}\`${r.done ? '' : ' (unfinished: no done record)'}${r.starts.length > 1 ? `, resumed ${r.starts.length - 1}×` : ''}`), '');
    md.push('## Summary', '', summaryTable(sums), '');
    md.push(
      `Timings leave out the first ${warmup === 1 ? 'step' : `${warmup} steps`} after each (re)start (compilation, first allocations). ` +
        'ms/step and tokens/s are medians over steps; overhead is 1 − compute/step with the slowest worker\'s compute (docs/metrics.md); ' +
        'MB = 10⁶ bytes, counted at the coordinator.',
      '',
    );
    md.push('## Loss', '', await image('loss', lossChart(runs), 'loss against step for each run'), '');
    md.push('## Where a step\'s time goes', '');
    for (const [i, r] of runs.entries()) {
      const s = sums[i]!;
      const what = s.coordinator ? 'mean ms per step, by process' : s.distributed ? 'mean ms per step; this log has no per-phase timings, only the slowest worker\'s compute' : 'mean ms per step: forward + backward vs the rest (clip, SMI, AdamW, logging)';
      md.push(`### ${r.label}`, '', `${what}, over ${s.timedSteps} steps:`, '', phaseTable(r, s, { warmup }), '');
    }
    if (sums.some((s) => s.coordinator)) md.push('`other` is the rest of the step\'s wall time: for the coordinator mostly waiting for the first result; for a worker, the coordinator\'s own work between its round trips.', '');
    md.push(await image('phases', phaseChart(runs, { warmup }), "stacked bars of mean ms per phase, one per process", 900, Math.max(300, 120 + 45 * sum(runs.map((r) => phaseBreakdown(r, { warmup }).length)))), '');
  }

  md.push('## Scaling', '');
  const rows: ScalingPoint[] = opts.scaling ?? sums.map((s) => ({ label: s.label, workers: s.distributed ? s.workers : 1, tokensPerSec: s.tokensPerSec }));
  const counts = new Set(rows.map((r) => r.workers));
  if (counts.size < 2) {
    md.push(`_Skipped: every run has ${[...counts][0]} worker(s); scaling needs runs that differ in worker count._`, '');
  } else {
    const eff = scalingEfficiency(rows);
    if (!opts.scaling) {
      const perWorker = new Set(sums.map((s) => s.tokensPerStep / (s.distributed ? s.workers : 1)));
      const global = new Set(sums.map((s) => s.tokensPerStep));
      md.push(global.size === 1 ? 'Same global batch in every run: strong scaling.' : perWorker.size === 1 ? 'Same batch per worker in every run: weak scaling.' : 'The runs differ in batch per worker and in global batch: neither weak nor strong scaling, read with care.', '');
    }
    md.push(
      eff.some((r) => r.series)
        ? table(['series', 'run', 'workers', 'tokens/s', 'efficiency', 'relative to'], eff.map((r) => [r.series ?? NA, r.label, String(r.workers), fx(r.tokensPerSec, 0), fx(r.efficiency, 3), r.baseline ?? NA]))
        : table(['run', 'workers', 'tokens/s', 'efficiency', 'relative to'], eff.map((r) => [r.label, String(r.workers), fx(r.tokensPerSec, 0), fx(r.efficiency, 3), r.baseline ?? NA])),
      '',
      await image('scaling', scalingChart(rows), 'tokens/s and efficiency against workers'),
      '',
    );
  }
  const markdown = md.join('\n');
  writeFileSync(file, markdown);
  return { file, images, markdown };
}

