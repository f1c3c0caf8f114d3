// Bounds on a worker's share that an honest worker cannot exceed: float64 norms, the outlier rule, Parseval and blend bounds.
//
// A share is one chunk's result. Its gradient norm ‖g_c‖ is summed in float64 on arrival; the outlier rule then
// looks at the whole step (so the order in which shares arrive does not matter). Share c is rejected iff
//   ‖g_c‖ > max(NORM_FLOOR, OUTLIER_FACTOR · median of the last HISTORY accepted shares' norms)   (recent steps)
//   and, when the step has other shares, ‖g_c‖ > OUTLIER_FACTOR · median of the other shares' norms (this step)
// Why an honest share passes: within a step every share is the gradient of the same weights on a different slice
// of one batch, so their norms differ by the batch noise (measured on a full cpu-preset run: see README); across
// recent steps the weights move by one AdamW step of lr ≤ 1e-3 each. A real spike that every share of a step shows
// (a loss spike) is not an outlier by the second condition; only a share far above both is. The floor keeps the
// first steps (no history yet) and tiny late-training norms from tripping it. The median ignores up to half of
// the history being odd, so a few large honest steps do not move it.
//
// Results derived from a share are bounded by the share's own gradient (which passed the rule):
// - magnitudes |FFT2(g_c)| (synced mode): Parseval gives Σ over the half spectrum of |Ĝ|² ≤ rows·cols·‖g_c‖² for
//   each parameter (measured honest ratio ‖M‖ / (√(rows·cols)‖g‖) = 0.71–0.81); a share may reach DERIVED_SLACK×.
// - blended b_c = α·Re(IFFT2(κĜ_c ⊙ Ω)) + (1−α)·κg_c (--synced-blend workers, local mode): masking a spectrum is a
//   projection, so ‖b_c‖ ≤ κ‖g_c‖; a share may reach DERIVED_SLACK×.
import { median } from '../stats.ts';
import { sumOfSquaresInOrder } from '../wasm/reduce.ts';

/** How far above the reference norms a share's gradient norm may be. */
export const OUTLIER_FACTOR = 100;
/** A gradient norm up to this is never an outlier (no history yet, or a tiny median late in training). */
export const NORM_FLOOR = 1000;
/** Accepted shares whose norms make the recent-steps median. */
export const HISTORY = 64;
/** Slack over the exact bounds of magnitudes and blended results (float32 rounding is ~1e-6 of it). */
export const DERIVED_SLACK = 2;

/** Σ x² in float64 of each array: Infinity or NaN iff some value is (a finite float32 squared cannot overflow). */
export function squaredNorms(tensors: readonly Float32Array[]): number[] {
  return tensors.map((t) => sumOfSquaresInOrder(t));
}

/** ‖·‖ of a list of tensors from their squared norms. */
export const normOf = (squared: readonly number[]): number => Math.sqrt(squared.reduce((a, b) => a + b, 0));

/** Why a share was rejected, and the ratios the rule saw. */
export interface Outlier {
  index: number; // into the step's shares
  norm: number;
  bound: number; // the recent-steps bound it exceeded
  stepMedian: number | null; // the other shares' median this step, if any
}

/**
 * The outlier rule over the run: `check` a step's share norms, `accept` them once the step's shares stand.
 * Keeps the largest ratios seen among accepted shares, to show how far honest shares are from the bound.
 */
export class ShareNorms {
  private recent: number[] = [];
  checked = 0;
  rejected = 0;
  maxRecentRatio = 0; // largest ‖g_c‖ / median of recent accepted shares
  maxStepRatio = 0; // largest ‖g_c‖ / median of the other shares of its step

  constructor(readonly factor = OUTLIER_FACTOR, readonly floor = NORM_FLOOR, readonly history = HISTORY) {}

  /** The shares of one step that the rule rejects (empty when all stand). */
  check(norms: readonly number[]): Outlier[] {
    const ref = this.recent.length ? median(this.recent) : 0;
    const bound = Math.max(this.floor, this.factor * ref);
    const out: Outlier[] = [];
    norms.forEach((norm, index) => {
      this.checked++;
      const others = norms.filter((_, j) => j !== index);
      const stepMedian = others.length ? median(others) : null;
      const aboveRecent = !(norm <= bound); // NaN counts as above
      const aboveStep = stepMedian === null || !(norm <= this.factor * stepMedian);
      if (aboveRecent && aboveStep) out.push({ index, norm, bound, stepMedian });
    });
    this.rejected += out.length;
    return out;
  }

  /** Records a step's accepted share norms (and the ratios they had) into the recent history. */
  accept(norms: readonly number[]): void {
    const ref = this.recent.length ? median(this.recent) : 0;
    norms.forEach((norm, index) => {
      if (ref > 0) this.maxRecentRatio = Math.max(this.maxRecentRatio, norm / ref);
      const others = norms.filter((_, j) => j !== index);
      const m = others.length ? median(others) : 0;
      if (m > 0) this.maxStepRatio = Math.max(this.maxStepRatio, norm / m);
    });
    this.recent.push(...norms);
    if (this.recent.length > this.history) this.recent.splice(0, this.recent.length - this.history);
  }

  /** One line for the run's log. */
  summary(): string {
    return `share norms: ${this.checked} checked, ${this.rejected} rejected as outliers (bound ${this.factor}× the medians, floor ${this.floor}); `
      + `largest accepted ratio ${this.maxRecentRatio.toFixed(2)}× the recent median, ${this.maxStepRatio.toFixed(2)}× the step's other shares`;
  }
}

/** The largest magnitude-spectrum norm an honest share can have for a gradient of squared norm `gradSq` (Parseval). */
export const magnitudeBound = (gradSq: number, rows: number, cols: number): number => DERIVED_SLACK * Math.sqrt(rows * cols * gradSq);

/** The largest blended norm an honest share can have for a gradient of norm `gradNorm` clipped by `coef`. */
export const blendedBound = (gradNorm: number, coef: number): number => DERIVED_SLACK * coef * gradNorm;
