// `npm run report`: a Markdown summary with PNG charts (loss, where a step's time goes, scaling) of one or more run directories.
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { runMain } from '../shared/cli/main.ts';
import { parseWithTable } from '../shared/cli/options.ts';
import { ConfigError } from '../shared/errors.ts';
import { writeReport } from './report/report.ts';
import { loadRun } from './report/runs.ts';

const S = 'output' as const;
const OPTIONS = {
  run: { type: 'string' as const, arg: 'DIR', section: S, help: 'a run directory (config.json + log.jsonl); repeat for side by side' },
  out: { type: 'string' as const, arg: 'DIR|FILE.md', section: S, help: 'where the report goes; PNGs beside it [report/report.md]' },
  title: { type: 'string' as const, arg: 'T', section: S, help: 'the heading [Run <name>, or Training runs]' },
  warmup: { type: 'string' as const, arg: 'N', section: S, help: 'steps after each (re)start left out of timings [1]' },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};

const HELP = `Usage: npm run report -- --run DIR [--run DIR …] [--out DIR|FILE.md] [--title T] [--warmup N]

Writes a Markdown report of one or more runs side by side: a summary table (losses, ms/step, tokens/s,
overhead, per-phase ms, MB/s on the wire, slowest worker), and PNG charts of the loss curves, where a
step's time goes, and throughput and efficiency against workers when the runs differ in worker count.

Options:
${Object.entries(OPTIONS).map(([k, o]) => `  ${`--${k}${'arg' in o ? ` ${o.arg}` : ''}`.padEnd(24)} ${o.help}`).join('\n')}

Examples:
  npm run report -- --run runs/local --run runs/dist2 --out report/
  npm run report -- --run runs/2026-01-01T00-00 --out docs/run.md --title "cpu preset, cosine"

Exit codes: 0 written, 1 failed, 2 bad arguments or run directory.`;

async function main(argv: string[]): Promise<number> {
  const v = parseWithTable(argv, OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  // parseWithTable checks the flags and keeps the last --run; the same table with `multiple` keeps them all
  const dirs = parseArgs({ args: argv, options: { ...OPTIONS, run: { type: 'string', multiple: true } }, strict: true }).values.run ?? [];
  if (!dirs.length) throw new ConfigError('E_BAD_FLAG', '--run DIR is required (see --help)');
  const warmup = v.warmup === undefined ? undefined : Number(v.warmup);
  if (warmup !== undefined && !(Number.isInteger(warmup) && warmup >= 0)) throw new ConfigError('E_BAD_FLAG', `--warmup takes a whole number >= 0, got '${String(v.warmup)}'`);
  const runs = dirs.map(loadRun); // every directory checked before anything is written
  const r = await writeReport({ runs, out: v.out as string | undefined, title: v.title as string | undefined, warmup });
  console.log(`report → ${r.file} (${r.images.length} chart(s): ${r.images.map((f) => basename(f)).join(', ')})`);
  return 0;
}

runMain(() => main(process.argv.slice(2)));