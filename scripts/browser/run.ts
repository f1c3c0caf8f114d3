// A run with a browser worker: `npm run coordinator`, Node workers and a headless Chromium tab on /worker, as child processes (the scaling benchmark's row, the screenshot).
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { NODE_HEAP_FLAGS } from '../../shared/cli/node-flags.ts';
import { launchChromium, openWorkerPage, type WorkerPage } from './worker-page.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');

function start(script: string, args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [...NODE_HEAP_FLAGS, '--import', 'tsx', join(ROOT, script), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, output: () => out, exited: new Promise((r) => child.on('exit', (code) => r(code))) };
}

export interface BrowserRunOptions {
  flags: string[]; // the coordinator's training flags (preset, batch, steps, --out …)
  chromium: string; // the browser's executable
  nodeWorkers?: number; // Node workers besides the tab, each owning tensors [1]
  backend?: string; // the tab's backend [wasm]
  chromiumArgs?: string[];
  /** Called with the tab once it is open (the screenshot script waits for a step and takes it). */
  onPage?: (w: WorkerPage) => Promise<void>;
}

/** Runs the coordinator to its end with the Node workers and one browser tab; throws with the coordinator's output if it fails. */
export async function runWithBrowserWorker(o: BrowserRunOptions): Promise<{ output: string }> {
  const token = `bench${Math.random().toString(36).slice(2, 12)}`;
  const n = o.nodeWorkers ?? 1;
  const coord = start('coordinator/main.ts', [...o.flags, '--host', '127.0.0.1', '--port', '0', '--token', token, '--min-workers', String(n + 1)]);
  const workers: ReturnType<typeof start>[] = [];
  const browser = await launchChromium(o.chromium, o.chromiumArgs);
  try {
    const port = await new Promise<string>((res, rej) => {
      const timer = setInterval(() => {
        const m = /listening on ws:\/\/[^:]+:(\d+)/.exec(coord.output());
        if (m) {
          clearInterval(timer);
          res(m[1]!);
        } else if (coord.child.exitCode !== null) {
          clearInterval(timer);
          rej(new Error(`the coordinator exited before listening:\n${coord.output()}`));
        }
      }, 50);
    });
    for (let i = 0; i < n; i++) workers.push(start('worker/main.ts', ['--connect', `ws://127.0.0.1:${port}`, '--token', token, '--listen', '127.0.0.1:0']));
    const page = await openWorkerPage(browser, `http://127.0.0.1:${port}`, token, o.backend ?? 'wasm');
    await o.onPage?.(page);
    const code = await coord.exited;
    if (code !== 0) throw new Error(`the coordinator exited ${code}:\n${coord.output()}`);
    await Promise.all(workers.map((w) => w.exited));
    return { output: coord.output() };
  } finally {
    await browser.close();
    for (const p of [coord, ...workers]) if (p.child.exitCode === null) p.child.kill();
  }
}
