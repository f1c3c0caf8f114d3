// The reproduction's plan: which runs for which seeds (from reproduce's flags), their directories, and training them resumably.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NODE_HEAP_FLAGS } from '../../shared/cli/node-flags.ts';
import { ConfigError } from '../../shared/errors.ts';
import { PRESET_NAMES, SMI_RUN_NAMES, SPECTRAL_MODES, oneOf, type SmiRunName, type SpectralMode } from '../../shared/config.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');

export interface RunSpec {
  run: SmiRunName;
  seed: number;
  dir: string;
  /** a distributed run: its spectral mode and local worker count (absent: one process, --local) */
  spectral?: SpectralMode;
  workers?: number;
}

/** A plan's flags, parsed: which runs for which seeds. */
export interface Plan {
  preset: string;
  out: string;
  seeds: number[];
  runs: SmiRunName[];
  /** runs trained for other seeds than --seeds */
  seedsOf: Map<SmiRunName, number[]>;
  distributed: SpectralMode[];
  workers: number;
  distributedSeeds: number[];
}

function seedList(flag: string, v: string): number[] {
  const seeds = v.split(',').map((s) => {
    const n = Number(s);
    if (s.trim() === '' || !Number.isInteger(n)) throw new ConfigError('E_BAD_FLAG', `--${flag} takes integers, got '${s}'`);
    return n;
  });
  if (new Set(seeds).size !== seeds.length) throw new ConfigError('E_BAD_FLAG', `--${flag} names a seed twice: ${v}`);
  return seeds;
}

/** The plan from reproduce's flags (defaults: cpu preset, seeds 1337,1338, every run, no distributed runs). */
export function parsePlan(v: Record<string, string | boolean | undefined>): Plan {
  const str = (k: string) => v[k] as string | undefined;
  const preset = oneOf('preset', str('preset') ?? 'cpu', PRESET_NAMES);
  const seeds = seedList('seeds', str('seeds') ?? '1337,1338');
  const runs = str('runs') === undefined || str('runs') === 'all' ? [...SMI_RUN_NAMES] : str('runs')!.split(',').map((r) => oneOf('SMI run', r, SMI_RUN_NAMES));
  const seedsOf = new Map<SmiRunName, number[]>();
  for (const group of (str('seeds-of') ?? '').split(';').filter((g) => g.trim() !== '')) {
    const [names, list, ...rest] = group.split('=');
    if (names === undefined || list === undefined || rest.length > 0) throw new ConfigError('E_BAD_FLAG', `--seeds-of takes RUN1,RUN2=SEED1,SEED2 groups separated by ';', got '${group}'`);
    const s = seedList('seeds-of', list);
    for (const name of names.split(',')) {
      const run = oneOf('SMI run', name.trim(), SMI_RUN_NAMES);
      if (!runs.includes(run)) throw new ConfigError('E_BAD_FLAG', `--seeds-of names ${run}, which --runs does not train`);
      if (seedsOf.has(run)) throw new ConfigError('E_BAD_FLAG', `--seeds-of names ${run} twice`);
      seedsOf.set(run, s);
    }
  }
  const distributed = str('distributed') === undefined ? [] : str('distributed')!.split(',').map((m) => oneOf('spectral mode', m, SPECTRAL_MODES));
  const workers = Number(str('workers') ?? 2);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new ConfigError('E_BAD_FLAG', `--workers takes a positive integer, got ${str('workers')}`);
  if (str('workers') !== undefined && distributed.length === 0) throw new ConfigError('E_BAD_FLAG', '--workers is for the --distributed runs: add --distributed MODES');
  const distributedSeeds = str('distributed-seeds') === undefined ? seeds : seedList('distributed-seeds', str('distributed-seeds')!);
  return { preset, out: str('out') ?? 'reproduction', seeds, runs, seedsOf, distributed, workers, distributedSeeds };
}

/**
 * Every run of a plan: the one-process runs seed by seed (all runs of the first seed first, so that a partial
 * reproduction has whole seeds), then the distributed ones.
 */
export function planSpecs(p: Plan): RunSpec[] {
  const allSeeds = [...new Set([...p.seeds, ...[...p.seedsOf.values()].flat()])];
  const local = allSeeds.flatMap((seed) =>
    p.runs.filter((run) => (p.seedsOf.get(run) ?? p.seeds).includes(seed)).map((run) => ({ run, seed, dir: join(p.out, 'runs', `${run}-seed${seed}`) })),
  );
  const dist = p.distributedSeeds.flatMap((seed) =>
    p.distributed.map((spectral) => ({ run: 'cosine' as const, seed, spectral, workers: p.workers, dir: join(p.out, 'runs', `cosine-${spectral}-w${p.workers}-seed${seed}`) })),
  );
  return [...local, ...dist];
}

/** The reproduce flags that train this plan again (as the report prints them). */
export function planArgs(p: Plan): string[] {
  const args = ['--preset', p.preset, '--seeds', p.seeds.join(','), '--runs', p.runs.join(',')];
  if (p.seedsOf.size > 0) {
    const groups = new Map<string, SmiRunName[]>();
    for (const [run, seeds] of p.seedsOf) groups.set(seeds.join(','), [...(groups.get(seeds.join(',')) ?? []), run]);
    args.push('--seeds-of', [...groups].map(([seeds, runs]) => `${runs.join(',')}=${seeds}`).join(';'));
  }
  if (p.distributed.length > 0) args.push('--distributed', p.distributed.join(','), '--workers', String(p.workers), '--distributed-seeds', p.distributedSeeds.join(','));
  return [...args, '--out', p.out];
}

/** The state of a run directory: finished (log has `done`), resumable (has a checkpoint), or new. */
export function runStatus(dir: string): 'done' | 'resume' | 'new' {
  const log = join(dir, 'log.jsonl');
  if (existsSync(log) && readFileSync(log, 'utf8').includes('"kind":"done"')) return 'done';
  if (existsSync(join(dir, 'checkpoint', 'state.safetensors'))) return 'resume';
  return 'new';
}

function trainOne(spec: RunSpec, preset: string, data: string | undefined, maxIters: string | undefined): Promise<void> {
  const status = runStatus(spec.dir);
  if (status === 'done') return Promise.resolve(); // finished meanwhile (e.g. by another runner)
  // started but stopped before its first checkpoint: nothing worth keeping, start it again
  if (status === 'new' && existsSync(spec.dir)) rmSync(spec.dir, { recursive: true, force: true });
  // a distributed run: the coordinator and its local workers (the preset's global batch split among them)
  const where = spec.spectral ? ['--workers', String(spec.workers ?? 2)] : ['--local'];
  const args =
    status === 'resume'
      ? [...where, '--resume', spec.dir]
      : [...where, ...(spec.spectral ? ['--spectral', spec.spectral] : []), '--preset', preset, '--smi', spec.run, '--seed', String(spec.seed), '--out', spec.dir, ...(maxIters ? ['--max-iters', maxIters] : [])];
  if (data) args.push('--data', data);
  mkdirSync(spec.dir, { recursive: true });
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [...NODE_HEAP_FLAGS, '--import', 'tsx', join(ROOT, 'scripts', 'train.ts'), ...args], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const keep = (d: Buffer) => (tail = (tail + d).slice(-4000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('exit', (code) => (code === 0 ? done() : fail(new Error(`${specName(spec)} seed ${spec.seed} failed (exit ${code}):\n${tail}`))));
  });
}

/** A run's name in logs and reports: the run, and for a distributed one its mode and workers. */
export const specName = (s: Pick<RunSpec, 'run' | 'spectral' | 'workers'>): string => (s.spectral ? `${s.run} ${s.spectral} ×${s.workers ?? 2}` : s.run);

/**
 * Trains every run that is not finished: the one-process runs `parallel` at a time, then the distributed ones
 * one at a time (each uses every core: its workers and the coordinator).
 */
export async function trainAll(specs: RunSpec[], o: { preset: string; parallel: number; data?: string; maxIters?: string; log: (l: string) => void }): Promise<void> {
  const todo = specs.filter((s) => runStatus(s.dir) !== 'done');
  o.log(`${specs.length - todo.length} of ${specs.length} runs already finished; training ${todo.length}, ${o.parallel} at a time${todo.some((s) => s.spectral) ? ' (distributed runs one at a time, after the others)' : ''}`);
  const one = async (spec: RunSpec) => {
    const t0 = Date.now();
    o.log(`training ${specName(spec)} seed ${spec.seed} (${runStatus(spec.dir)}) → ${spec.dir}`);
    await trainOne(spec, o.preset, o.data, o.maxIters);
    o.log(`finished ${specName(spec)} seed ${spec.seed} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  };
  const local = todo.filter((s) => !s.spectral);
  let next = 0;
  const lane = async () => {
    while (next < local.length) await one(local[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, o.parallel) }, lane));
  for (const spec of todo.filter((s) => s.spectral)) await one(spec);
}
