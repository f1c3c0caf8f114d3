// SMI's runs: the paper's six and the two controls (α schedule, β, q), α_t, and the 2-D view of a gradient.
import type { SmiRunName } from '../config.ts';

export type { SmiRunName };

export type SmiSchedule = 'none' | 'linear' | 'cosine';

/** A control's G′ in place of the filter's (shared/smi/host.ts HostControl): a random mask of the same size, or c·G. */
export type SmiControl = 'random-mask' | 'shrink';

export interface SmiRun {
  /** how α moves from alpha0 (t = 0) to alpha1 (t = T); 'none' = plain AdamW, SMI off */
  schedule: SmiSchedule;
  alpha0: number;
  alpha1: number;
  /** EMA factor of the magnitude history: H = β·H + (1−β)·M */
  beta: number;
  /** quantile of H used as the threshold: bins with H ≥ τ are kept (q = 0.25 keeps 75%) */
  q: number;
  /** a control run: H and τ as SMI's, G′ replaced (absent for the paper's runs) */
  control?: SmiControl;
}

/** The paper's six runs (docs/algorithm.md, the paper's Table 1), and two controls with the cosine run's α, β and q (issue 15). */
export const SMI_RUNS: Record<SmiRunName, SmiRun> = {
  baseline: { schedule: 'none', alpha0: 0, alpha1: 0, beta: 0, q: 0 },
  'linear-0.9': { schedule: 'linear', alpha0: 0.1, alpha1: 0.9, beta: 0.9, q: 0.5 },
  'linear-0.5': { schedule: 'linear', alpha0: 0.1, alpha1: 0.5, beta: 0.9, q: 0.5 },
  'ema-0.99': { schedule: 'linear', alpha0: 0.1, alpha1: 0.5, beta: 0.99, q: 0.5 },
  top75: { schedule: 'linear', alpha0: 0.1, alpha1: 0.5, beta: 0.99, q: 0.25 },
  cosine: { schedule: 'cosine', alpha0: 0.1, alpha1: 0.5, beta: 0.99, q: 0.25 },
  'random-mask': { schedule: 'cosine', alpha0: 0.1, alpha1: 0.5, beta: 0.99, q: 0.25, control: 'random-mask' },
  shrink: { schedule: 'cosine', alpha0: 0.1, alpha1: 0.5, beta: 0.99, q: 0.25, control: 'shrink' },
};

/** α_t at step t of T (docs/algorithm.md §3 step 8); 0 for the baseline. */
export function alphaAt(run: SmiRun, t: number, T: number): number {
  const { alpha0: a0, alpha1: a1 } = run;
  switch (run.schedule) {
    case 'none':
      return 0;
    case 'linear':
      return a0 + ((a1 - a0) * t) / T;
    case 'cosine':
      return a0 + ((a1 - a0) * (1 - Math.cos((Math.PI * t) / T))) / 2;
    default: {
      const never: never = run.schedule;
      throw new Error(`unknown SMI schedule ${String(never)}`);
    }
  }
}

/** The 2-D view [rows, cols] = [-1, last_dim] of a gradient of this shape; 1-D → [1, d], scalar → [1, 1]. */
export function view2d(shape: readonly number[]): [number, number] {
  const cols = shape.length === 0 ? 1 : shape[shape.length - 1];
  const size = shape.reduce((a, b) => a * b, 1);
  if (cols === 0 || size === 0) throw new RangeError(`SMI: empty gradient of shape [${shape.join(', ')}]`);
  return [size / cols, cols];
}
