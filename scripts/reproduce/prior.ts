// A previous reproduction's report.json as the record of runs whose directories are gone (`--prior FILE`): what
// it measured of each run (its outcome, model quality, interleaved inference timing) is taken as measured then, so
// that a report over more runs can still judge every question. Only what the runs' directories would give is
// taken; nothing is recomputed, and the report names every run that came from the prior file.
import { existsSync, readFileSync } from 'node:fs';
import { ConfigError } from '../../shared/errors.ts';
import type { InferenceResult } from '../analysis/inference.ts';
import type { ModelQuality } from '../analysis/quality.ts';

/** One run's record in a report.json (`measured` or `distributed`): numbers as the report wrote them. */
export interface PriorRun {
  run: string;
  seed: number;
  spectral?: string;
  workers?: number;
  [k: string]: unknown;
}

export interface Prior {
  file: string;
  preset: string;
  thresholds: { train: number; val: number; smoothing: number };
  measured: PriorRun[];
  distributed: PriorRun[];
  inference?: InferenceResult;
  quality: Record<string, ModelQuality>;
}

// report.json writes non-finite numbers as strings ("NaN", "Infinity"): read them back as numbers
const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

/** Reads and checks a prior report.json written by `npm run reproduce` for the same preset. Throws E_BAD_PRIOR. */
export function loadPrior(file: string, preset: string): Prior {
  const bad = (why: string) => new ConfigError('E_BAD_PRIOR', `--prior ${file}: ${why}`);
  if (!existsSync(file)) throw bad('no such file');
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'), (_k, v) => (typeof v === 'string' && v in NON_FINITE ? NON_FINITE[v] : v)) as Record<string, unknown>;
  } catch (e) {
    throw bad(`not JSON (${(e as Error).message})`);
  }
  if (typeof j !== 'object' || j === null || !Array.isArray(j.measured) || !Array.isArray(j.distributed)) throw bad('not a report.json of npm run reproduce (no measured / distributed lists)');
  if (j.preset !== preset) throw bad(`its runs are of the ${String(j.preset)} preset, this report's of ${preset}`);
  const th = j.thresholds as Prior['thresholds'] | undefined;
  if (!th || typeof th.train !== 'number' || typeof th.val !== 'number' || typeof th.smoothing !== 'number') throw bad('no thresholds');
  const runOk = (r: unknown): r is PriorRun => typeof r === 'object' && r !== null && typeof (r as PriorRun).run === 'string' && Number.isInteger((r as PriorRun).seed) && typeof (r as PriorRun).val === 'number';
  for (const r of [...(j.measured as unknown[]), ...(j.distributed as unknown[])]) if (!runOk(r)) throw bad(`a run record without run, seed and val: ${JSON.stringify(r).slice(0, 120)}`);
  for (const r of j.measured as PriorRun[]) if (typeof r.quality !== 'object' || r.quality === null) throw bad(`${r.run} seed ${r.seed} has no quality record`);
  return {
    file, preset, thresholds: th, measured: j.measured as PriorRun[], distributed: j.distributed as PriorRun[],
    inference: (j.inference ?? undefined) as InferenceResult | undefined, quality: (j.quality ?? {}) as Record<string, ModelQuality>,
  };
}

/** The prior record of a one-process run, or of a distributed one (mode and workers), if the prior file has it. */
export function priorRecord(p: Prior, spec: { run: string; seed: number; spectral?: string; workers?: number }): PriorRun | undefined {
  if (!spec.spectral) return p.measured.find((m) => m.run === spec.run && m.seed === spec.seed);
  return p.distributed.find((m) => m.run === spec.run && m.seed === spec.seed && m.spectral === spec.spectral && (m.workers ?? 2) === (spec.workers ?? 2));
}
