// The reproduction's statistics: mean ± SEM, Student's t, a verdict per claim from paired differences, and the loss-curve figures (thresholds, late variance).
import { mean } from '../analysis/quality.ts';

// ---- statistics ------------------------------------------------------------------------------------------

/** Mean and standard error of the mean (sample sd / √n); sem is null for n < 2. */
export function meanSem(xs: readonly number[]): { mean: number; sem: number | null; n: number } {
  const n = xs.length;
  const m = n ? mean(xs) : NaN;
  if (n < 2) return { mean: m, sem: null, n };
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (n - 1));
  return { mean: m, sem: sd / Math.sqrt(n), n };
}

const T95 = [NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

/** Two-sided 95% critical value of Student's t with `df` degrees of freedom. */
export function tCritical95(df: number): number {
  if (df < 1) return NaN;
  return df < T95.length ? T95[df]! : 1.96 + 2.5 / df; // within 0.01 of the exact value above 30
}

/** What the paper claims about a relative change d = run / baseline − 1. */
export type Claim =
  | { kind: 'effect'; paper: number } // a change of about `paper` (its sign is the direction)
  | { kind: 'equivalent'; margin: number } // |d| ≤ margin ("on par")
  | { kind: 'atMost'; bound: number }; // d ≤ bound ("small overhead")

export type Verdict = 'reproduced' | 'direction only' | 'not reproduced' | 'inconclusive' | 'missing';

export interface Judgement {
  verdict: Verdict;
  mean: number | null;
  lo: number | null;
  hi: number | null;
  t: number | null;
  n: number;
  detail: string;
}

export const pct = (x: number, d = 1) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(d)}%`;

/**
 * Judges a claim from paired per-seed relative changes `d` (one per seed that has both runs): the 95% confidence
 * interval of their mean is mean ± t(n−1)·SEM.
 * - effect: reproduced if the interval excludes 0 on the paper's side; not reproduced if it excludes the
 *   paper's value and does not show the paper's direction; inconclusive otherwise.
 * - equivalent: reproduced if the interval lies within ±margin, not reproduced if it lies outside, else inconclusive.
 * - atMost: reproduced if its upper end ≤ bound, not reproduced if its lower end > bound, else inconclusive.
 * With n = 1 there is no interval: always inconclusive, with the point estimate. Non-finite d (a threshold never
 * reached) are reported as such.
 */
export function judge(d: readonly number[], claim: Claim): Judgement {
  const n = d.length;
  if (n === 0) return { verdict: 'missing', mean: null, lo: null, hi: null, t: null, n, detail: 'no seed has both this run and the baseline' };
  if (d.some((x) => Number.isNaN(x))) return { verdict: 'inconclusive', mean: null, lo: null, hi: null, t: null, n, detail: 'the baseline value is 0: a relative change is undefined' };
  if (d.some((x) => !Number.isFinite(x))) {
    const never = d.filter((x) => !Number.isFinite(x)).length;
    const slower = claim.kind === 'effect' && claim.paper < 0;
    return { verdict: slower && never === n ? 'not reproduced' : 'inconclusive', mean: null, lo: null, hi: null, t: null, n, detail: `the run never reached the threshold in ${never} of ${n} seed(s)` };
  }
  const { mean: m, sem } = meanSem(d);
  if (sem === null) {
    const side = claim.kind === 'effect' ? (Math.sign(m) === Math.sign(claim.paper) ? "on the paper's side" : "against the paper's direction") : claim.kind === 'equivalent' ? (Math.abs(m) <= claim.margin ? 'within the margin' : 'outside the margin') : m <= claim.bound ? 'within the bound' : 'above the bound';
    return { verdict: 'inconclusive', mean: m, lo: null, hi: null, t: null, n, detail: `${pct(m)} (n = 1: no seed-to-seed spread, no test; point estimate ${side})` };
  }
  const tc = tCritical95(n - 1);
  const lo = m - tc * sem;
  const hi = m + tc * sem;
  const t = sem > 0 ? m / sem : m === 0 ? 0 : Math.sign(m) * Infinity;
  let verdict: Verdict;
  if (claim.kind === 'effect') {
    const dir = Math.sign(claim.paper);
    const shown = dir > 0 ? lo > 0 : hi < 0;
    const excludesPaper = claim.paper < lo || claim.paper > hi;
    // the direction is shown but the paper's size lies outside the interval: say so, do not call it reproduced
    verdict = shown ? (excludesPaper ? 'direction only' : 'reproduced') : excludesPaper ? 'not reproduced' : 'inconclusive';
  } else if (claim.kind === 'equivalent') {
    verdict = lo >= -claim.margin && hi <= claim.margin ? 'reproduced' : hi < -claim.margin || lo > claim.margin ? 'not reproduced' : 'inconclusive';
  } else {
    verdict = hi <= claim.bound ? 'reproduced' : lo > claim.bound ? 'not reproduced' : 'inconclusive';
  }
  let detail = `${pct(m)} (95% CI ${pct(lo)} to ${pct(hi)}, t = ${Number.isFinite(t) ? t.toFixed(2) : '∞'}, n = ${n}: ${n - 1} degree${n === 2 ? '' : 's'} of freedom, |t| must exceed ${tc.toFixed(n === 2 ? 1 : 2)})`;
  if (verdict === 'direction only' && claim.kind === 'effect') detail += `; the direction holds, the size is ${Math.abs(m) < Math.abs(claim.paper) ? 'smaller' : 'larger'} than the paper's ${pct(claim.paper)}`;
  return { verdict, mean: m, lo, hi, t, n, detail };
}

// ---- curves ----------------------------------------------------------------------------------------------

/** Trailing mean over `w` values (shorter at the start). */
export function trailingMean(xs: readonly number[], w: number): number[] {
  const out: number[] = [];
  let s = 0;
  for (let i = 0; i < xs.length; i++) {
    s += xs[i]!;
    if (i >= w) s -= xs[i - w]!;
    out.push(s / Math.min(i + 1, w));
  }
  return out;
}

/** The first step (1-based) whose trailing mean over `w` step losses (full windows only) is ≤ thr; null if none. */
export function stepsToTrainThreshold(losses: readonly number[], thr: number, w: number): number | null {
  const sm = trailingMean(losses, w);
  for (let i = w - 1; i < sm.length; i++) if (sm[i]! <= thr) return i + 1;
  return null;
}

/** The first step at which the val loss, linear between evaluations, reaches thr; null if it never does. */
export function stepsToValThreshold(evals: readonly { step: number; val_loss: number }[], thr: number): number | null {
  if (evals.length === 0) return null;
  if (evals[0]!.val_loss <= thr) return evals[0]!.step;
  for (let i = 1; i < evals.length; i++) {
    const a = evals[i - 1]!;
    const b = evals[i]!;
    if (b.val_loss <= thr) return Math.round(a.step + ((a.val_loss - thr) / (a.val_loss - b.val_loss)) * (b.step - a.step));
  }
  return null;
}

/** Variance (÷n) of the step losses in the last `frac` of the steps: raw, and around a least-squares line. */
export function lateStageVariance(losses: readonly number[], frac = 0.2): { raw: number; detrended: number; steps: number } {
  const k = Math.max(2, Math.round(losses.length * frac));
  const ys = losses.slice(-k);
  const n = ys.length;
  const xm = (n - 1) / 2;
  const ym = mean(ys);
  let sxy = 0;
  let sxx = 0;
  ys.forEach((y, i) => {
    sxy += (i - xm) * (y - ym);
    sxx += (i - xm) ** 2;
  });
  const slope = sxx > 0 ? sxy / sxx : 0;
  let raw = 0;
  let det = 0;
  ys.forEach((y, i) => {
    raw += (y - ym) ** 2;
    det += (y - ym - slope * (i - xm)) ** 2;
  });
  return { raw: raw / n, detrended: det / n, steps: n };
}
