// Weak scaling on this machine: the cpu preset with 1, 2, … local workers at a fixed per-worker batch.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');

export interface ScalingRow {
  label: string;
  workers: number;
  msPerStep: number; // median step wall time at the coordinator
  computeMs: number; // median slowest-worker forward+backward
  tokensPerSec: number;
  outsideCompute: number; // 1 − compute/step
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function train(args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'train.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? done() : fail(new Error(`train ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

/** Runs one configuration and reads its step records (skipping `warmup` steps). */
async function measure(label: string, flags: string[], workers: number, steps: number, warmup: number, perWorkerBatch: number, block: number): Promise<ScalingRow> {
  const out = join(mkdtempSync(join(tmpdir(), 'smi-scaling-')), 'run');
  await train([...flags, '--max-iters', String(steps), '--eval-interval', String(steps), '--eval-iters', '1', '--batch-size', String(perWorkerBatch * workers), '--out', out]);
  const recs = readFileSync(join(out, 'log.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.kind === 'step' && r.step > warmup);
  const ms = median(recs.map((r) => r.ms as number));
  const compute = median(recs.map((r) => (r.compute_ms as number | undefined) ?? NaN));
  return { label, workers, msPerStep: ms, computeMs: compute, tokensPerSec: (perWorkerBatch * workers * block * 1000) / ms, outsideCompute: 1 - compute / ms };
}

export async function benchScaling(o: { workers: number[]; steps: number; warmup: number; modes: string[]; data?: string }): Promise<ScalingRow[]> {
  const perWorkerBatch = 12;
  const block = 64;
  const common = ['--preset', 'cpu', ...(o.data ? ['--data', o.data] : [])];
  const rows: ScalingRow[] = [];
  rows.push(await measure('--local (reference)', [...common, '--local'], 1, o.steps, o.warmup, perWorkerBatch, block));
  for (const mode of o.modes) {
    for (const n of o.workers) rows.push(await measure(`${mode}, ${n} worker(s)`, [...common, '--workers', String(n), '--spectral', mode], n, o.steps, o.warmup, perWorkerBatch, block));
  }
  return rows;
}

export function scalingTable(rows: ScalingRow[]): string {
  const base = new Map<string, number>();
  for (const r of rows) if (r.workers === 1) base.set(r.label.split(',')[0]!, r.tokensPerSec);
  const lines = ['| run | ms/step | worker compute ms | tokens/s | weak-scaling efficiency | outside compute |', '|---|---|---|---|---|---|'];
  for (const r of rows) {
    const one = base.get(r.label.split(',')[0]!);
    const eff = one && r.workers > 1 ? (r.tokensPerSec / (r.workers * one)).toFixed(3) : r.workers === 1 ? '1 (base)' : '';
    lines.push(`| ${r.label} | ${r.msPerStep.toFixed(1)} | ${Number.isFinite(r.computeMs) ? r.computeMs.toFixed(1) : '–'} | ${Math.round(r.tokensPerSec)} | ${eff} | ${Number.isFinite(r.outsideCompute) ? (100 * r.outsideCompute).toFixed(1) + '%' : '–'} |`);
  }
  return lines.join('\n');
}
