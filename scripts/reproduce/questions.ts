// The reproduction report's three questions (issue 15): more seeds, two controls, the spectral modes; comparisons, plain words, figures.
import type { ChartConfiguration } from 'chart.js';
import type { Judgement } from './verdicts.ts';

/** The outcome of comparing A with B on a metric (paired per seed, d = A / B − 1). */
export type Comparison = 'lower' | 'higher' | 'on par' | 'inconclusive' | 'missing';

export interface Compared {
  verdict: Comparison;
  /** the equivalence judgement it comes from (interval, t, n, detail) */
  j: Judgement;
  margin: number;
  detail: string;
}

const pct = (x: number, d = 1) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(d)}%`;

/**
 * A two-sided comparison, from the judgement of `d` as the claim "equivalent within ±margin" (the same interval,
 * mean ± t(n−1)·SEM at 95%): **lower** / **higher** when the interval excludes 0 (A differs from B, whatever the
 * size; the detail says whether the whole interval still lies within ±margin), **on par** when it includes 0
 * and lies within ±margin, else **inconclusive** (and with one seed, or a threshold never reached).
 */
export function compareFrom(j: Judgement, margin: number): Compared {
  if (j.verdict === 'missing') return { verdict: 'missing', j, margin, detail: j.detail };
  if (j.lo === null || j.hi === null) return { verdict: 'inconclusive', j, margin, detail: j.detail };
  const within = j.lo >= -margin && j.hi <= margin;
  const verdict: Comparison = j.lo > 0 ? 'higher' : j.hi < 0 ? 'lower' : within ? 'on par' : 'inconclusive';
  const size = verdict === 'lower' || verdict === 'higher' ? (within ? `; a real difference, but the whole interval lies within ±${pct(margin, 0).slice(1)}` : `; beyond ±${pct(margin, 0).slice(1)}`) : '';
  return { verdict, j, margin, detail: j.detail + size };
}

/** A comparison as the report words it: "lower (−1.2%)" etc. */
export function said(c: Compared | undefined): string {
  if (!c) return 'not measured';
  if (c.verdict === 'missing') return 'not measured (no seed has both runs)';
  const m = c.j.mean === null ? '' : ` (${pct(c.j.mean, 2)}, n = ${c.j.n})`;
  return `${c.verdict}${m}`;
}

/** The comparisons question 2 draws its conclusion from, on the final validation loss. */
export interface ControlsInput {
  cosineVsBaseline?: Compared;
  randomVsCosine?: Compared;
  shrinkVsCosine?: Compared;
  randomVsBaseline?: Compared;
  shrinkVsBaseline?: Compared;
}

/**
 * Which of the issue's three readings the val-loss comparisons support: SMI a frequency-domain filter that helps
 * (cosine below AdamW and below both controls), a disguised step-size change (cosine off AdamW, shrink on par with
 * cosine), or noise (cosine on par with AdamW); else what is left open. One paragraph in plain words.
 */
export type ControlsReading = 'filter that helps' | 'step-size change' | 'not the frequencies' | 'noise' | 'hurts' | 'open' | 'not measured';

/** What each reading means, in one sentence (the report's summary). */
export const READING_SHORT: Record<ControlsReading, string> = {
  'filter that helps': 'a frequency-domain filter that helps: cosine beats AdamW, and neither a random mask of the same size nor the same shrinking without filtering does as well',
  'step-size change': 'a disguised step-size change: shrinking the gradient by the energy the mask keeps, without filtering, does what cosine does',
  'not the frequencies': 'not the frequencies: a random mask of the same size does what cosine does',
  noise: "noise: cosine's final loss is on par with AdamW's, so there is no effect for the controls to explain",
  hurts: "cosine's final loss is higher than AdamW's, and neither control explains it",
  open: 'open: the seeds do not settle it',
  'not measured': 'not measured (the controls, cosine or the baseline missing)',
};

export function controlsConclusion(c: ControlsInput): { reading: ControlsReading; text: string } {
  const a = c.cosineVsBaseline;
  if (!a || a.verdict === 'missing') return { reading: 'not measured', text: 'The controls and cosine were not all trained: no conclusion.' };
  const rm = said(c.randomVsCosine);
  const sh = said(c.shrinkVsCosine);
  const rmB = said(c.randomVsBaseline);
  const shB = said(c.shrinkVsBaseline);
  const controls = `Against cosine, random-mask is ${rm} and shrink is ${sh}; against AdamW, random-mask is ${rmB} and shrink is ${shB}.`;
  if (a.verdict === 'on par') {
    const same = c.randomVsCosine?.verdict === 'on par' && c.shrinkVsCosine?.verdict === 'on par';
    return {
      reading: 'noise',
      text: `**Noise, as far as the final loss goes**: cosine's final validation loss is on par with AdamW's (${pct(a.j.mean ?? 0, 2)}, the interval within ±${(a.margin * 100).toFixed(0)}%, n = ${a.j.n}). ${controls} ${same ? 'All four end within the margin of each other: on this model the spectral part changes nothing that the final loss can see.' : 'A control that differs from cosine while cosine does not differ from AdamW says the controls change training in a way SMI does not, not that the spectral selection helps.'}`,
    };
  }
  if (a.verdict === 'inconclusive') {
    return { reading: 'open', text: `**Open**: the seeds do not settle whether cosine changes the final validation loss against AdamW (${a.detail}). ${controls}` };
  }
  const dir = a.verdict === 'lower' ? 'lower' : 'higher';
  // a real difference may still be far smaller than what the paper calls on par: say so
  const small = a.j.lo !== null && a.j.hi !== null && a.j.lo >= -a.margin && a.j.hi <= a.margin;
  const effect = `cosine's final validation loss is ${small ? 'slightly ' : ''}${dir} than AdamW's (${pct(a.j.mean ?? 0, 2)}, n = ${a.j.n}${small ? `; the whole interval inside ±${(a.margin * 100).toFixed(0)}%` : ''})`;
  if (c.shrinkVsCosine?.verdict === 'on par') {
    return { reading: 'step-size change', text: `**A disguised step-size change**: ${effect}, and shrink, which scales the gradient by the energy share the mask keeps and filters nothing, ends on par with cosine. ${controls}` };
  }
  if (c.randomVsCosine?.verdict === 'on par') {
    return { reading: 'not the frequencies', text: `**Not the frequencies**: ${effect}, but a random mask of the same size does the same, so the choice of which bins to keep does not matter. ${controls}` };
  }
  if (a.verdict === 'lower' && c.randomVsCosine?.verdict === 'higher' && c.shrinkVsCosine?.verdict === 'higher') {
    return { reading: 'filter that helps', text: `**A frequency-domain filter that helps**: ${effect}, and both controls end higher than cosine: neither a random mask of the same size nor the same shrinking without filtering gives what the magnitude-selected mask gives. ${controls}` };
  }
  if (a.verdict === 'higher') return { reading: 'hurts', text: `**SMI ${small ? 'slightly ' : ''}hurts here**: ${effect}; neither control ends on par with cosine. ${controls}` };
  return { reading: 'open', text: `**Open**: ${effect}, but the controls do not tell why. ${controls}` };
}

/** Question 3's comparisons on the final validation loss: each mode against one-process cosine, and local against synced. */
export interface ModesInput {
  vsLocalProcess: { mode: string; c: Compared }[];
  localVsSynced?: Compared;
  lateLocalVsSynced?: Compared;
}

/** Do workers need a shared spectral history? One paragraph in plain words, and its verdict in a few. */
export function modesConclusion(m: ModesInput): { short: string; text: string } {
  const text = modesText(m);
  const ls = m.localVsSynced;
  const short =
    m.vsLocalProcess.length === 0 ? 'not measured'
      : !ls || ls.verdict === 'missing' ? 'not measured (synced and local not both trained)'
        : ls.verdict === 'on par' ? "each worker's own history is enough (local on par with synced)"
          : ls.verdict === 'higher' ? 'the shared history helps (local ends higher than synced)'
            : ls.verdict === 'lower' ? 'the shared history does not help (local ends lower than synced)'
              : 'open (local vs synced inconclusive)';
  return { short, text };
}

function modesText(m: ModesInput): string {
  if (m.vsLocalProcess.length === 0) return 'No distributed run was trained: no conclusion.';
  const each = m.vsLocalProcess.map(({ mode, c }) => `${mode} ${said(c)}`).join(', ');
  const head = `Against one-process cosine of the same seed, the 2-worker runs' final validation loss is: ${each}.`;
  const ls = m.localVsSynced;
  if (!ls || ls.verdict === 'missing') return `${head} Synced and local were not both trained: the shared history's worth is not measured.`;
  const late = m.lateLocalVsSynced ? ` Late-stage loss variance, local against synced: ${said(m.lateLocalVsSynced)}.` : '';
  const verdict =
    ls.verdict === 'on par'
      ? "**Each worker's own history is enough**: local mode (no shared spectra) ends on par with synced."
      : ls.verdict === 'higher'
        ? '**The shared history helps**: local mode ends higher than synced.'
        : ls.verdict === 'lower'
          ? '**The shared history does not help**: local mode ends lower than synced.'
          : '**Open**: the seeds do not settle whether local mode ends differently from synced.';
  return `${head} ${verdict} (local vs synced: ${ls.detail}).${late}`;
}

/** One row of an effects figure: per-seed relative changes and their interval. */
export interface EffectRow {
  label: string;
  d: number[];
  lo: number | null;
  hi: number | null;
  color: string;
}

/**
 * Per-seed changes (dots) with their mean and 95% interval (bar) for each row, in percent, a dashed line at 0:
 * how far each run sits from its reference, seed by seed.
 */
export function effectsChart(title: string, yLabel: string, rows: EffectRow[]): ChartConfiguration {
  const datasets: Record<string, unknown>[] = [
    { type: 'line', label: '0', data: [{ x: -0.5, y: 0 }, { x: rows.length - 0.5, y: 0 }], borderColor: '#888888', borderDash: [4, 4], borderWidth: 1, pointRadius: 0 },
  ];
  rows.forEach((r, i) => {
    const finite = r.d.filter(Number.isFinite);
    datasets.push({ type: 'scatter', label: r.label, data: finite.map((d, k) => ({ x: i + (k - (finite.length - 1) / 2) * 0.06, y: d * 100 })), backgroundColor: r.color, borderColor: r.color, pointRadius: 4 });
    if (r.lo !== null && r.hi !== null) {
      datasets.push({ type: 'line', label: `${r.label} (95% interval)`, data: [{ x: i + 0.25, y: r.lo * 100 }, { x: i + 0.25, y: r.hi * 100 }], borderColor: r.color, borderWidth: 3, pointRadius: 0 });
    }
    if (finite.length > 0) {
      const m = finite.reduce((a, b) => a + b, 0) / finite.length;
      datasets.push({ type: 'scatter', label: `${r.label} (mean)`, data: [{ x: i + 0.25, y: m * 100 }], backgroundColor: r.color, borderColor: '#000000', pointRadius: 6, pointStyle: 'rectRot' });
    }
  });
  return {
    type: 'scatter',
    data: { datasets },
    options: {
      plugins: {
        title: { display: true, text: title, font: { size: 15 } },
        legend: { display: false }, // the rows are named on the axis
      },
      scales: {
        x: {
          type: 'linear', min: -0.5, max: rows.length - 0.5, grid: { display: false },
          // one tick per row, at its index (the axis would otherwise start its ticks at −0.5)
          afterBuildTicks: (axis: { ticks: { value: number }[] }) => { axis.ticks = rows.map((_, i) => ({ value: i })); },
          ticks: { autoSkip: false, callback: (v: number | string) => rows[Math.round(Number(v))]?.label ?? '' },
        },
        y: { title: { display: true, text: yLabel } },
      },
    },
  } as unknown as ChartConfiguration;
}
