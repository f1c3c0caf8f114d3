// The browser worker's backends side by side: the same run with a headless Chromium tab on wasm, then on WebGPU (SwiftShader here), its ms per step and what WebGPU lacks.
import { mkdtempSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBrowser } from '../browser/find.ts';
import { runWithBrowserWorker } from '../browser/run.ts';
import { CHROMIUM_ARGS, WEBGPU_ARGS, pageState, type WorkerPageState } from '../browser/worker-page.ts';
import { loadRun } from '../report/runs.ts';
import { parseWithTable } from '../../shared/cli/options.ts';
import { median } from '../../shared/stats.ts';
import { loadSafetensors } from '../../shared/train/safetensors.ts';
import { S, positiveInt } from './flags.ts';

const OPTIONS = {
  preset: { type: 'string' as const, arg: 'P', section: S, help: 'preset [test]' },
  steps: { type: 'string' as const, arg: 'N', section: S, help: 'steps per run [20]' },
  warmup: { type: 'string' as const, arg: 'N', section: S, help: 'first steps not counted [3]' },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};

interface Result {
  backend: string;
  reason: string;
  computeMs: number; // the tab's median forward+backward
  stepMs: number; // the coordinator's median step
  dir: string;
  error?: string;
}

/** Waits for the tab's backend (or its failure) and keeps its state up to date until the run ends. */
async function watch(page: Page, into: { s?: WorkerPageState }): Promise<void> {
  for (;;) {
    into.s = await pageState(page);
    if (into.s.exit?.reason === 'error') throw new Error(into.s.exit.message);
    if (into.s.backend) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  void (async () => {
    while (!page.isClosed()) {
      into.s = await pageState(page).catch(() => into.s);
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
}

async function one(chromium: string, backend: 'wasm' | 'webgpu', flags: string[], warmup: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), `smi-bench-browser-${backend}-`));
  const into: { s?: WorkerPageState } = {};
  try {
    await runWithBrowserWorker({ flags: [...flags, '--out', dir], chromium, backend, chromiumArgs: backend === 'webgpu' ? WEBGPU_ARGS : CHROMIUM_ARGS, onPage: (w) => watch(w.page, into) });
  } catch (e) {
    return { backend, reason: into.s?.backend?.reason ?? '', computeMs: NaN, stepMs: NaN, dir, error: (e as Error).message.split('\n')[0] };
  }
  const steps = (into.s?.steps ?? []).filter((s) => s.step > warmup);
  const run = loadRun(dir);
  return {
    backend: into.s?.backend?.name ?? '?', reason: into.s?.backend?.reason ?? '',
    computeMs: median(steps.map((s) => s.phases.compute ?? NaN)), stepMs: median(run.steps.filter((r) => r.step > warmup).map((r) => r.ms)), dir,
  };
}

/** max over tensors of ‖a − b‖ / ‖b‖ of two runs' final weights. */
function weightsDiff(a: string, b: string): number {
  const x = loadSafetensors(join(a, 'model.safetensors')).tensors;
  const y = loadSafetensors(join(b, 'model.safetensors')).tensors;
  let worst = 0;
  for (const [name, t] of y) {
    const u = x.get(name)!.data;
    let d = 0;
    let n = 0;
    t.data.forEach((v, i) => {
      d += (u[i]! - v) ** 2;
      n += v * v;
    });
    worst = Math.max(worst, Math.sqrt(d / n));
  }
  return worst;
}

export async function main(argv: string[]): Promise<number> {
  const v = parseWithTable(argv, OPTIONS);
  if (v.help) {
    console.log('Usage: npm run bench -- browser [--preset test] [--steps 20] [--warmup 3]\n\nOne run with a Node worker and a headless Chromium tab on /worker with the wasm backend, then the same with the\ntab on WebGPU (SwiftShader, Chromium\'s software adapter, where no GPU is); prints the tab\'s median compute ms per\nstep, the step\'s, the backend\'s reason, and how far the WebGPU run\'s final weights are from the wasm run\'s.');
    return 0;
  }
  const b = await findBrowser();
  if (!b.found) throw new Error(b.reason);
  const steps = positiveInt(v, 'steps', 20);
  const warmup = Number(v.warmup ?? 3);
  const flags = ['--preset', String(v.preset ?? 'test'), '--max-iters', String(steps), '--eval-interval', '1000', '--eval-iters', '1', '--spectral', 'global', '--smi', 'cosine'];
  const rows = [await one(b.path, 'wasm', flags, warmup), await one(b.path, 'webgpu', flags, warmup)];
  console.log(`${flags.join(' ')}; a Node worker (wasm) owns every tensor, the tab computes half of each step; medians after step ${warmup}\n`);
  console.log('| tab backend | tab compute ms/step | step ms | reason |');
  console.log('|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.backend} | ${r.computeMs.toFixed(1)} | ${r.stepMs.toFixed(1)} | ${r.error ? `FAILED: ${r.error}` : r.reason} |`);
  if (!rows.some((r) => r.error)) console.log(`\nfinal weights, WebGPU run against wasm run: ${weightsDiff(rows[1]!.dir, rows[0]!.dir).toExponential(2)} (relative L2, worst tensor)`);
  return 0;
}
