// `npm run reproduce`: train the paper's six runs for each seed (resumable), then write the comparison report.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { NODE_HEAP_FLAGS } from '../shared/node-flags.ts';
import { parseWithTable } from '../shared/cli.ts';
import { ConfigError, PRESET_NAMES, SMI_RUN_NAMES, oneOf, type SmiRunName } from '../shared/config.ts';
import { DEFAULT_DATA_PATH } from '../shared/data.ts';
import { runMain } from './cli-main.ts';

const ROOT = resolve(import.meta.dirname, '..');
const S = 'run' as const;
const OPTIONS = {
  preset: { type: 'string' as const, arg: 'P', section: S, help: 'preset [cpu]' },
  seeds: { type: 'string' as const, arg: 'S1,S2', section: S, help: "seeds [1337,1338, the paper's two]" },
  runs: { type: 'string' as const, arg: 'all|R1,R2', section: S, help: `runs [all: ${SMI_RUN_NAMES.join(',')}]` },
  out: { type: 'string' as const, arg: 'DIR', section: S, help: 'where runs and report.md go [reproduction]' },
  parallel: { type: 'string' as const, arg: 'N', section: S, help: 'runs trained side by side [1]' },
  'max-iters': { type: 'string' as const, arg: 'N', section: S, help: "override the preset's steps (quick checks)" },
  data: { type: 'string' as const, arg: 'FILE', section: S, help: `corpus [${DEFAULT_DATA_PATH}]` },
  'train-only': { type: 'boolean' as const, section: S, help: 'train, do not write the report' },
  'report-only': { type: 'boolean' as const, section: S, help: 'write the report from the runs that are there' },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};
const HELP = `Usage: npm run reproduce -- --preset cpu --seeds 1337,1338 [--runs all] [--parallel N] --out DIR

Trains the six runs of the SMI paper's Table 1 for each seed (one process per run, --parallel at a time) into
DIR/runs/<run>-seed<seed>/, then writes DIR/report.md with PNG plots. Interrupted? Run the same command again:
finished runs are kept, unfinished ones resume from their checkpoints.
Exit codes: 0 done, 1 a run failed, 2 bad arguments.`;

export interface RunSpec {
  run: SmiRunName;
  seed: number;
  dir: string;
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
  const args =
    status === 'resume'
      ? ['--local', '--resume', spec.dir]
      : ['--local', '--preset', preset, '--smi', spec.run, '--seed', String(spec.seed), '--out', spec.dir, ...(maxIters ? ['--max-iters', maxIters] : [])];
  if (data) args.push('--data', data);
  mkdirSync(spec.dir, { recursive: true });
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [...NODE_HEAP_FLAGS, '--import', 'tsx', join(ROOT, 'scripts', 'train.ts'), ...args], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const keep = (d: Buffer) => (tail = (tail + d).slice(-4000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('exit', (code) => (code === 0 ? done() : fail(new Error(`${spec.run} seed ${spec.seed} failed (exit ${code}):\n${tail}`))));
  });
}

/** Trains every run that is not finished, `parallel` at a time. */
export async function trainAll(specs: RunSpec[], o: { preset: string; parallel: number; data?: string; maxIters?: string; log: (l: string) => void }): Promise<void> {
  const todo = specs.filter((s) => runStatus(s.dir) !== 'done');
  o.log(`${specs.length - todo.length} of ${specs.length} runs already finished; training ${todo.length}, ${o.parallel} at a time`);
  let next = 0;
  const lane = async () => {
    while (next < todo.length) {
      const spec = todo[next++]!;
      const t0 = Date.now();
      o.log(`training ${spec.run} seed ${spec.seed} (${runStatus(spec.dir)}) → ${spec.dir}`);
      await trainOne(spec, o.preset, o.data, o.maxIters);
      o.log(`finished ${spec.run} seed ${spec.seed} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.parallel) }, lane));
}

runMain(async () => {
  const v = parseWithTable(process.argv.slice(2), OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const preset = oneOf('preset', (v.preset as string | undefined) ?? 'cpu', PRESET_NAMES);
  const seeds = String(v.seeds ?? '1337,1338').split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n)) throw new ConfigError('E_BAD_FLAG', `--seeds takes integers, got '${s}'`);
    return n;
  });
  const runs = v.runs === undefined || v.runs === 'all' ? [...SMI_RUN_NAMES] : String(v.runs).split(',').map((r) => oneOf('SMI run', r, SMI_RUN_NAMES));
  const out = (v.out as string | undefined) ?? 'reproduction';
  const parallel = Number(v.parallel ?? 1);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > cpus().length * 4) throw new ConfigError('E_BAD_FLAG', `--parallel takes a small positive integer, got ${String(v.parallel)}`);
  const specs: RunSpec[] = seeds.flatMap((seed) => runs.map((run) => ({ run, seed, dir: join(out, 'runs', `${run}-seed${seed}`) })));
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'command.json'), JSON.stringify({ argv: process.argv.slice(2), host: hostname(), cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version }, null, 2) + '\n');
  if (!v['report-only']) await trainAll(specs, { preset, parallel, data: v.data as string | undefined, maxIters: v['max-iters'] as string | undefined, log: (l) => console.log(l) });
  if (v['train-only']) return 0;
  const { writeReport } = await import('./report-reproduction.ts');
  await writeReport({ out, specs, preset, seeds, runs, data: (v.data as string | undefined) ?? DEFAULT_DATA_PATH, log: (l) => console.log(l) });
  return 0;
});
