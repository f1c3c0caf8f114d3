// Bit-identity check between two commits: the same runs (--local and every distributed mode) trained in each tree, bytes compared.
//
// Usage: npx tsx scripts/dev/compare-runs.ts [A] [B] [--only r1,r2] [--list] [--keep] [--max-iters N]
//   A, B         commits (anything git rev-parse takes) [main, HEAD]; `.` is this working tree as it is
//   --only       a subset of the runs below, by name
//   --max-iters  steps per run [the test preset's 100]
//   --keep       keep the temporary trees and run directories (their path is printed)
// Each commit is extracted with `git archive` into a temporary directory (no git worktree is created) that
// borrows this checkout's node_modules and corpus; each run is started with that tree's own `npm run train`.
// Compared per run: model.safetensors and checkpoint/state.safetensors byte for byte (sha256), and the
// log.jsonl numbers that do not depend on time (per step: loss, grad_norm, lr, alpha, workers, the mask
// checksums; per eval: train and val loss). Exit 0 when every run is identical, 1 otherwise.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
const DATA = join(ROOT, 'data', 'shakespeare', 'input.txt');

/** The runs: --local and every distributed mode on the test preset (global 1/2/3 workers, synced both blends, local, controls, dropout). */
export const RUNS: { name: string; args: string[] }[] = [
  { name: 'local', args: ['--local'] },
  { name: 'local-baseline', args: ['--local', '--smi', 'baseline'] },
  { name: 'local-shrink', args: ['--local', '--smi', 'shrink'] },
  { name: 'local-dropout', args: ['--local', '--dropout', '0.1'] },
  { name: 'global-w1', args: ['--workers', '1', '--spectral', 'global'] },
  { name: 'global-w2', args: ['--workers', '2', '--spectral', 'global'] },
  { name: 'global-w3', args: ['--workers', '3', '--spectral', 'global'] },
  { name: 'synced-w1-coordinator', args: ['--workers', '1', '--spectral', 'synced', '--synced-blend', 'coordinator'] },
  { name: 'synced-w2-coordinator', args: ['--workers', '2', '--spectral', 'synced', '--synced-blend', 'coordinator'] },
  { name: 'synced-w1-workers', args: ['--workers', '1', '--spectral', 'synced', '--synced-blend', 'workers'] },
  { name: 'synced-w2-workers', args: ['--workers', '2', '--spectral', 'synced', '--synced-blend', 'workers'] },
  { name: 'localmode-w2', args: ['--workers', '2', '--spectral', 'local'] },
  { name: 'global-w2-shrink', args: ['--workers', '2', '--spectral', 'global', '--smi', 'shrink'] },
  { name: 'global-w2-random-mask', args: ['--workers', '2', '--spectral', 'global', '--smi', 'random-mask'] },
  { name: 'global-w2-baseline', args: ['--workers', '2', '--smi', 'baseline'] },
  { name: 'global-w2-dropout', args: ['--workers', '2', '--spectral', 'global', '--dropout', '0.1'] },
  { name: 'synced-w2-dropout', args: ['--workers', '2', '--spectral', 'synced', '--dropout', '0.1'] },
];

interface Outcome {
  model: string; // sha256 of model.safetensors
  checkpoint: string; // sha256 of checkpoint/state.safetensors
  numbers: string; // the time-free log.jsonl numbers, as JSON
  finalLoss: number;
}

const sha256 = (file: string) => (existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : 'missing');

/** The log's numbers that a bit-identical run reproduces exactly (no times, no byte counts, no worker ids). */
function logNumbers(dir: string): { numbers: string; finalLoss: number } {
  const recs = readFileSync(join(dir, 'log.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const kept = recs.flatMap((r): Record<string, unknown>[] => {
    if (r.kind === 'step') return [{ step: r.step, loss: r.loss, grad_norm: r.grad_norm, lr: r.lr, alpha: r.alpha, workers: r.workers, mask_checksum: r.mask_checksum, mask_checksums: r.mask_checksums }];
    if (r.kind === 'eval') return [{ eval: r.step, train_loss: r.train_loss, val_loss: r.val_loss }];
    return [];
  });
  const steps = recs.filter((r) => r.kind === 'step');
  return { numbers: JSON.stringify(kept), finalLoss: (steps.at(-1)?.loss as number) ?? NaN };
}

/** A commit's tree in a temporary directory, with this checkout's node_modules; `.` is this working tree itself. */
function checkout(rev: string, base: string, side: string): { dir: string; commit: string } {
  if (rev === '.') return { dir: ROOT, commit: 'working tree' };
  const commit = execFileSync('git', ['rev-parse', '--verify', `${rev}^{commit}`], { cwd: ROOT, encoding: 'utf8' }).trim();
  const dir = join(base, `tree-${side}-${commit.slice(0, 12)}`);
  mkdirSync(dir, { recursive: true });
  execFileSync('sh', ['-c', `git archive ${commit} | tar -x -C "${dir}"`], { cwd: ROOT });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return { dir, commit: commit.slice(0, 12) };
}

function train(tree: string, args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn('npm', ['run', '--silent', 'train', '--', ...args], { cwd: tree, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const keep = (d: Buffer) => (tail = (tail + d).slice(-3000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('exit', (code) => (code === 0 ? done() : fail(new Error(`npm run train -- ${args.join(' ')} in ${tree} exited ${code}:\n${tail}`))));
  });
}

async function runAll(tree: string, out: string, runs: typeof RUNS, maxIters: string | undefined, log: (l: string) => void): Promise<Map<string, Outcome>> {
  const results = new Map<string, Outcome>();
  for (const r of runs) {
    const dir = join(out, r.name);
    const t0 = Date.now();
    await train(tree, [...r.args, '--preset', 'test', '--data', DATA, '--out', dir, ...(maxIters ? ['--max-iters', maxIters] : [])]);
    const { numbers, finalLoss } = logNumbers(dir);
    results.set(r.name, { model: sha256(join(dir, 'model.safetensors')), checkpoint: sha256(join(dir, 'checkpoint', 'state.safetensors')), numbers, finalLoss });
    log(`  ${r.name}: ${((Date.now() - t0) / 1000).toFixed(1)} s, final loss ${finalLoss.toFixed(6)}`);
  }
  return results;
}

async function main(argv: string[]): Promise<number> {
  const flags = new Map<string, string | true>();
  const revs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--keep' || a === '--list') flags.set(a.slice(2), true);
    else if (a === '--only' || a === '--max-iters') flags.set(a.slice(2), argv[++i] ?? '');
    else if (a.startsWith('--')) throw new Error(`unknown flag ${a} (see the usage at the top of scripts/dev/compare-runs.ts)`);
    else revs.push(a);
  }
  if (flags.has('list')) {
    for (const r of RUNS) console.log(`${r.name.padEnd(24)} npm run train -- ${r.args.join(' ')} --preset test`);
    return 0;
  }
  const [a = 'main', b = 'HEAD'] = revs;
  const only = typeof flags.get('only') === 'string' ? (flags.get('only') as string).split(',') : null;
  const unknown = only?.filter((n) => !RUNS.some((r) => r.name === n)) ?? [];
  if (unknown.length) throw new Error(`--only: no run named ${unknown.join(', ')} (--list shows them)`);
  const runs = only ? RUNS.filter((r) => only.includes(r.name)) : RUNS;
  const maxIters = flags.get('max-iters') as string | undefined;
  if (!existsSync(DATA)) throw new Error(`no corpus at ${DATA}: npm run prepare-data`);
  const base = mkdtempSync(join(tmpdir(), 'smi-compare-'));
  const log = (l: string) => console.log(l);
  try {
    const trees = [checkout(a, base, 'A'), checkout(b, base, 'B')];
    const results: Map<string, Outcome>[] = [];
    for (const [i, t] of trees.entries()) {
      log(`${i === 0 ? 'A' : 'B'} = ${[a, b][i]} (${t.commit}): ${runs.length} runs on the test preset`);
      results.push(await runAll(t.dir, join(base, `runs-${'AB'[i]}`), runs, maxIters, log));
    }
    log('');
    log(`${'run'.padEnd(24)} ${'model.safetensors'.padEnd(19)} ${'checkpoint'.padEnd(19)} ${'log numbers'.padEnd(12)} model sha256 (first 16)`);
    let same = 0;
    for (const r of runs) {
      const [x, y] = [results[0]!.get(r.name)!, results[1]!.get(r.name)!];
      const m = x.model === y.model;
      const c = x.checkpoint === y.checkpoint;
      const n = x.numbers === y.numbers;
      if (m && c && n) same++;
      const word = (ok: boolean) => (ok ? 'identical' : 'DIFFERENT');
      log(`${r.name.padEnd(24)} ${word(m).padEnd(19)} ${word(c).padEnd(19)} ${word(n).padEnd(12)} ${x.model.slice(0, 16)}${m ? '' : ` vs ${y.model.slice(0, 16)}`}`);
    }
    log('');
    log(`${same} of ${runs.length} runs bit-identical between ${a} (${trees[0]!.commit}) and ${b} (${trees[1]!.commit})`);
    return same === runs.length ? 0 : 1;
  } finally {
    if (flags.has('keep')) log(`kept: ${base}`);
    else rmSync(base, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e: Error) => {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(2);
  });
}
