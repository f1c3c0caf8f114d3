// The run report (scripts/report/): the command on real runs side by side, bad input, and the summaries' arithmetic.
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { loadImage } from '@napi-rs/canvas';
import { DATA, readLog, runScript, tempDir } from '../../helpers.ts';
import { writeReport } from '../../../scripts/report/report.ts';
import { loadRun, phaseBreakdown, scalingEfficiency, summarizeRun } from '../../../scripts/report/runs.ts';
import type { StepPhaseRecord } from '../../../shared/train/log.ts';

const STEPS = 24;
const train = ['--preset', 'test', '--max-iters', String(STEPS), '--eval-interval', '8', '--data', DATA];

/**
 * Copies a distributed run and gives every step record fixed phases: two workers, w1 computing exactly 1.25× as
 * long as w0, 0.1 MB sent and 0.2 MB received per worker per step; the step time stays the logged `ms`.
 */
function withFixturePhases(src: string, dst: string): void {
  mkdirSync(dst, { recursive: true });
  writeFileSync(join(dst, 'config.json'), readFileSync(join(src, 'config.json')));
  const lines = readLog(src).map((r) => {
    if (r.kind !== 'step') return r;
    const ms = r.ms as number;
    const slow = (r.compute_ms as number) ?? ms / 2;
    const worker = (compute: number, wait: number) => ({ compute, spectral: 1, encode: 0.5, transfer: 2, wait, bytes_sent: 100_000, bytes_received: 200_000 });
    const phases: StepPhaseRecord = {
      coordinator: { step: ms, reduce: 0.5, spectral: 1.5, optimizer: 2, broadcast: 1, encode: 1, wait: 0.2 * slow },
      workers: { w0: worker(0.8 * slow, 0.2 * slow), w1: worker(slow, 0) },
    };
    return { ...r, compute_ms: slow, phases };
  });
  writeFileSync(join(dst, 'log.jsonl'), lines.map((l) => JSON.stringify(l) + '\n').join(''));
}

const dir = tempDir('smi-report-');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const local = join(dir, 'local');
const dist = join(dir, 'dist2');
const phased = join(dir, 'dist2-phases');
const made = (async () => {
  const [a, b] = await Promise.all([
    runScript('train', ['--local', ...train, '--out', local]),
    // a fixed token: train.ts's random one can start with '-', which the workers' parser takes for a flag
    runScript('train', [...train, '--workers', '2', '--token', 'report-test', '--out', dist]),
  ]);
  if (a.code !== 0) throw new Error(`--local run failed: ${a.stderr}`);
  if (b.code !== 0) throw new Error(`--workers 2 run failed: ${b.stderr}`);
  withFixturePhases(dist, phased);
})();

/** The rows (header first) of the first Markdown table after the line matching `at`, as cells. */
function tableAfter(md: string, at: RegExp): string[][] {
  const lines = md.split('\n');
  let i = lines.findIndex((l) => at.test(l));
  while (i >= 0 && i < lines.length && !lines[i]!.startsWith('|')) i++;
  const rows: string[][] = [];
  for (let j = i; j >= 0 && j < lines.length && lines[j]!.startsWith('|'); j++) {
    if (j === i + 1) continue; // |---|
    rows.push(lines[j]!.slice(1, -1).split(' | ').map((c) => c.trim()));
  }
  return rows;
}

/** Every PNG the Markdown links exists beside it and decodes to a non-empty picture. */
async function checkImages(t: Test, md: string, mdFile: string): Promise<string[]> {
  const refs = [...md.matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((m) => m[1]!);
  for (const ref of refs) {
    const file = join(dirname(mdFile), ref);
    t.ok(existsSync(file), `${ref} exists`);
    const img = await loadImage(readFileSync(file));
    t.ok(img.width > 0 && img.height > 0, `${ref} decodes (${img.width}×${img.height})`);
  }
  return refs;
}

const NUMBER = /^-?\d+(\.\d+)?( %)?$/;

t.test('the report command: a --local run, a 2-worker run and one with phases, side by side', async (t) => {
  await made;
  const out = join(dir, 'report');
  const r = await runScript('report', ['--run', local, '--run', dist, '--run', phased, '--out', out, '--title', 'Smoke']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /report → .*report\.md \(3 chart\(s\)/);
  const mdFile = join(out, 'report.md');
  const md = readFileSync(mdFile, 'utf8');
  t.match(md, /^# Smoke\n/);
  t.notMatch(md, /NaN|undefined|Infinity|null/, 'no missing numbers leak into the text');

  const summary = tableAfter(md, /^\|  \| local \| dist2 \| dist2-phases \|$/);
  const row = (name: string) => summary.find((cells) => cells[0] === name)?.slice(1) ?? [];
  for (const name of ['final train loss', 'final val loss', 'median ms/step', 'tokens/s', 'median overhead (1 − compute/step)']) {
    const cells = row(name);
    t.equal(cells.length, 3, `${name}: a cell per run`);
    t.ok(cells.every((c) => NUMBER.test(c)), `${name}: ${cells.join(', ')}`);
  }
  t.same(row('steps'), [String(STEPS), String(STEPS), String(STEPS)]);
  t.same(row('workers'), ['1 (one process)', '2', '2']);
  t.ok(row('best val loss (step)').every((c) => /^\d+\.\d{4} \(\d+\)$/.test(c)), 'best val loss with its step');
  const done = readLog(local).at(-1)!;
  t.equal(row('final val loss')[0], (done.val_loss as number).toFixed(4), 'final val loss is the done record');
  t.ok(NUMBER.test(row('wire MB/s (both ways)')[2]!), 'MB/s on the wire for the run with phases');
  t.match(row('slowest worker (compute ms)')[2], /^w1: \d+\.\d+ ms, \+25\.0 % vs w0$/, 'w1 is 25 % slower than w0');

  const phases = tableAfter(md, /^### dist2-phases$/);
  t.same(phases[0], ['process', 'compute', 'spectral', 'encode', 'transfer', 'wait', 'reduce', 'optimizer', 'broadcast', 'other', 'step', 'MB sent/step', 'MB received/step', 'MB/s']);
  t.same(phases.slice(1).map((c) => c[0]), ['coordinator', 'worker w0', 'worker w1'], 'a row per process');
  const [, coord, w0] = phases;
  t.ok(['spectral', 'reduce', 'optimizer', 'broadcast', 'step'].every((p) => NUMBER.test(coord![phases[0]!.indexOf(p)]!)), `coordinator: ${coord!.join(', ')}`);
  t.ok(['compute', 'spectral', 'encode', 'transfer', 'wait', 'step'].every((p) => NUMBER.test(w0![phases[0]!.indexOf(p)]!)), `worker: ${w0!.join(', ')}`);
  t.same(w0!.slice(-3, -1), ['0.100', '0.200'], 'MB sent and received per step');
  const one = tableAfter(md, /^### local$/);
  t.same(one.map((c) => c[0]), ['process', 'process'], 'one process: one bar');
  t.same(one[0], ['process', 'compute', 'other', 'step'], 'one process: compute vs other');
  t.ok(one[1]!.slice(1).every((c) => NUMBER.test(c)), `one process: ${one[1]!.join(', ')}`);
  // the real 2-worker run: phases once the coordinator logs them, else compute vs other
  const real = tableAfter(md, /^### dist2$/);
  t.ok(real.length >= 2 && real.slice(1).every((cells) => cells.slice(1).every((c) => c === '—' || NUMBER.test(c))), `the real 2-worker run: ${real.map((c) => c[0]).join(', ')}`);

  t.match(md, /Same global batch in every run: strong scaling/);
  const scaling = tableAfter(md, /^\| run \| workers \| tokens\/s \| efficiency \| relative to \|$/);
  t.same(scaling.slice(1).map((c) => [c[1], c[4]]), [['1', 'local'], ['2', 'local'], ['2', 'local']]);
  t.equal(scaling[1]![3], '1.000');

  const refs = await checkImages(t, md, mdFile);
  t.same(refs.sort(), ['report-loss.png', 'report-phases.png', 'report-scaling.png']);
});

t.test('one run, --out FILE.md: PNGs named after it beside it, scaling skipped with a note', async (t) => {
  await made;
  const mdFile = join(dir, 'docs', 'one.md');
  const r = await runScript('report', ['--run', local, '--out', mdFile]);
  t.equal(r.code, 0, r.stderr);
  const md = readFileSync(mdFile, 'utf8');
  t.match(md, /^# Run local\n/);
  t.match(md, /_Skipped: every run has 1 worker\(s\)/);
  t.same((await checkImages(t, md, mdFile)).sort(), ['one-loss.png', 'one-phases.png']);
});

t.test('bad input exits 2 with a clear message and writes nothing', async (t) => {
  await made;
  const out = join(dir, 'never');
  const missing = await runScript('report', ['--run', local, '--run', join(dir, 'nope'), '--out', out]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /E_BAD_RUN.*nope: no such directory/);
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  const notRun = await runScript('report', ['--run', empty, '--out', out]);
  t.equal(notRun.code, 2);
  t.match(notRun.stderr, /no config\.json/);
  writeFileSync(join(empty, 'config.json'), '{}');
  writeFileSync(join(empty, 'log.jsonl'), '{"kind":"start","step":0}\n{not json\n');
  const corrupt = await runScript('report', ['--run', empty, '--out', out]);
  t.equal(corrupt.code, 2);
  t.match(corrupt.stderr, /log\.jsonl line 2 is not JSON/);
  const none = await runScript('report', ['--out', out]);
  t.equal(none.code, 2);
  t.match(none.stderr, /--run DIR is required/);
  const flag = await runScript('report', ['--runs', local]);
  t.equal(flag.code, 2);
  t.match(flag.stderr, /did you mean --run\?/);
  t.notOk(existsSync(out), 'no report for bad input');
});

t.test('the API: summaries, phase bars and efficiency add up', async (t) => {
  await made;
  const run = loadRun(phased);
  const s = summarizeRun(run);
  const timed = run.steps.filter((r) => r.step > 1); // warm-up step left out
  t.equal(s.timedSteps, STEPS - 1);
  t.equal(s.slowest?.id, 'w1');
  t.ok(Math.abs(s.slowest!.slowerBy - 0.25) < 1e-9, 'slower by exactly 25 %');
  const secs = timed.reduce((a, r) => a + r.ms, 0) / 1000;
  t.ok(Math.abs(s.wireMBps! - (0.6 * timed.length) / secs) < 1e-9, 'MB/s = 2 workers × 0.3 MB per step over the step time');
  for (const bar of phaseBreakdown(run)) {
    const total = Object.values(bar.phases).reduce((a, b) => a + b, 0);
    t.ok(Math.abs(total - bar.stepMs) < 1e-6, `${bar.process}: phases add up to the step (${total.toFixed(2)} ms)`);
  }
  const localBars = phaseBreakdown(loadRun(local));
  t.same(localBars.map((b) => Object.keys(b.phases)), [['compute', 'other']]);

  // bench-scaling's rows: a --local reference, then each mode at 1 and 2 workers
  const rows = [
    { label: '--local (reference)', workers: 1, tokensPerSec: 1000 },
    { label: 'synced, 1', workers: 1, tokensPerSec: 900, series: 'synced' },
    { label: 'synced, 2', workers: 2, tokensPerSec: 1350, series: 'synced' },
    { label: 'global, 2', workers: 2, tokensPerSec: 1200, series: 'global' },
  ];
  const eff = scalingEfficiency(rows);
  t.same(eff.map((r) => r.baseline), ['--local (reference)', 'synced, 1', 'synced, 1', '--local (reference)'], 'own series first, then any 1-worker row');
  t.same(eff.map((r) => r.efficiency), [1, 1, 0.75, 0.6]);
  const out = join(dir, 'bench', 'scaling.md');
  const report = await writeReport({ scaling: rows, out, title: 'Scaling study', notes: 'cpu preset, 12 sequences per worker.' });
  t.equal(report.file, out);
  t.same(report.images.map((f) => basename(f)), ['scaling-scaling.png']);
  t.match(report.markdown, /\| synced \| synced, 2 \| 2 \| 1350 \| 0\.750 \| synced, 1 \|/);
  await checkImages(t, report.markdown, out);
});
