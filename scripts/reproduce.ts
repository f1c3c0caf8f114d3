// `npm run reproduce`: train the paper's six runs and the controls for each seed, and optionally cosine on local
// workers in each spectral mode (resumable), then write the comparison report.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import { join } from 'node:path';
import { runMain } from '../shared/cli/main.ts';
import { parseWithTable } from '../shared/cli/options.ts';
import { ConfigError } from '../shared/errors.ts';
import { SMI_RUN_NAMES, SPECTRAL_MODES } from '../shared/config.ts';
import { DEFAULT_DATA_PATH } from '../shared/model/data.ts';
import { parsePlan, planArgs, planSpecs, trainAll } from './reproduce/plan.ts';
import { writeReport } from './reproduce/report.ts';

const S = 'run' as const;
const OPTIONS = {
  preset: { type: 'string' as const, arg: 'P', section: S, help: 'preset [cpu]' },
  seeds: { type: 'string' as const, arg: 'S1,S2', section: S, help: "seeds [1337,1338, the paper's two]" },
  runs: { type: 'string' as const, arg: 'all|R1,R2', section: S, help: `runs [all: ${SMI_RUN_NAMES.join(',')}]` },
  'seeds-of': { type: 'string' as const, arg: 'R1,R2=S1,S2', section: S, help: "these runs for these seeds instead of --seeds (groups separated by ';')" },
  distributed: { type: 'string' as const, arg: 'M1,M2', section: S, help: `also train cosine on --workers local workers in these spectral modes (${SPECTRAL_MODES.join(',')}), after the one-process runs, one at a time` },
  workers: { type: 'string' as const, arg: 'N', section: S, help: "workers of the --distributed runs, sharing the preset's global batch [2]" },
  'distributed-seeds': { type: 'string' as const, arg: 'S1,S2', section: S, help: 'seeds of the --distributed runs [--seeds]' },
  out: { type: 'string' as const, arg: 'DIR', section: S, help: 'where runs and report.md go [reproduction]' },
  parallel: { type: 'string' as const, arg: 'N', section: S, help: 'runs trained side by side [1]' },
  'max-iters': { type: 'string' as const, arg: 'N', section: S, help: "override the preset's steps (quick checks)" },
  data: { type: 'string' as const, arg: 'FILE', section: S, help: `corpus [${DEFAULT_DATA_PATH}]` },
  'train-only': { type: 'boolean' as const, section: S, help: 'train, do not write the report' },
  'report-only': { type: 'boolean' as const, section: S, help: 'write the report from the runs that are there' },
  prior: { type: 'string' as const, arg: 'FILE', section: S, help: "a previous report.json: runs whose directories are gone are taken from it as it measured them (all one-process runs or none)" },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};
const HELP = `Usage: npm run reproduce -- --preset cpu --seeds 1337,1338 [--runs all] [--parallel N] --out DIR
       [--seeds-of R1,R2=S1,S2] [--distributed synced,global,local --workers 2 --distributed-seeds S1,S2]

Trains the six runs of the SMI paper's Table 1 and the two controls (random-mask, shrink) for each seed (one
process per run, --parallel at a time) into DIR/runs/<run>-seed<seed>/; with --distributed, then cosine with
--workers local worker processes in each listed spectral mode, one run at a time, into
DIR/runs/cosine-<mode>-w<N>-seed<seed>/; then writes DIR/report.md with PNG plots. Interrupted? Run the same
command again: finished runs are kept, unfinished ones resume from their checkpoints.
Example (issue 15: five seeds, the controls, three runs at two seeds, the spectral modes at three):
  npm run reproduce -- --preset cpu --seeds 1337,1338,1339,1340,1341 --runs all \\
    --seeds-of linear-0.9,linear-0.5,ema-0.99=1337,1338 --distributed synced,global,local --workers 2 \\
    --distributed-seeds 1337,1338,1339 --out DIR
Exit codes: 0 done, 1 a run failed, 2 bad arguments.`;

runMain(async () => {
  const v = parseWithTable(process.argv.slice(2), OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const plan = parsePlan(v);
  const { preset, out, runs } = plan;
  const parallel = Number(v.parallel ?? 1);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > cpus().length * 4) throw new ConfigError('E_BAD_FLAG', `--parallel takes a small positive integer, got ${String(v.parallel)}`);
  const specs = planSpecs(plan);
  const seeds = [...new Set(specs.map((s) => s.seed))];
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'command.json'), JSON.stringify({ argv: process.argv.slice(2), host: hostname(), cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version }, null, 2) + '\n');
  if (!v['report-only']) await trainAll(specs, { preset, parallel, data: v.data as string | undefined, maxIters: v['max-iters'] as string | undefined, log: (l) => console.log(l) });
  if (v['train-only']) return 0;
  await writeReport({ out, specs, preset, seeds, runs, retrain: planArgs(plan), prior: v.prior as string | undefined, data: (v.data as string | undefined) ?? DEFAULT_DATA_PATH, log: (l) => console.log(l) });
  return 0;
});
