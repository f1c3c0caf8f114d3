// Test helpers: run the project's scripts as real child processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { loadSafetensors } from '../shared/train/safetensors.ts';

export const ROOT = resolve(import.meta.dirname, '..');
export const DATA = process.env.SMI_DATA ?? join(ROOT, 'data/shakespeare/input.txt');

export interface RunOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

const scriptPath = (script: string) => join(ROOT, script.includes('/') ? `${script}.ts` : `scripts/${script}.ts`);

/** Runs `scripts/<script>.ts` (or `<dir>/<file>` given with a slash) with tsx in a child process; resolves when it exits. */
export function runScript(script: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunOutput> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', scriptPath(script), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', fail);
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

/** A run directory's final weights (model.safetensors), by nanoGPT name. */
export const weights = (dir: string) => loadSafetensors(join(dir, 'model.safetensors')).tensors;

/** A port that was free a moment ago (for an address every process must know before the coordinator listens). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export const tempDir = (prefix = 'smi-') => mkdtempSync(join(tmpdir(), prefix));

export function readLog(dir: string): Record<string, unknown>[] {
  return readFileSync(join(dir, 'log.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** A long-running child (coordinator, worker) whose output can be awaited line by line. */
export interface Started {
  child: ChildProcess;
  output: () => string;
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
}

/** `opts.wrap` turns the node command line into another (e.g. `ip netns exec NS …`: test/e2e/two-hosts.test.ts). */
export function startScript(script: string, args: string[], opts: { env?: NodeJS.ProcessEnv; wrap?: (argv: string[]) => string[] } = {}): Started {
  const [cmd, ...argv] = (opts.wrap ?? ((a) => a))([process.execPath, '--import', 'tsx', scriptPath(script), ...args]);
  const child = spawn(cmd!, argv, {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d;
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => { r(code); for (const l of listeners) l(); }));
  const waitFor = (re: RegExp, timeoutMs = 120_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = out.match(re);
        if (m) {
          listeners.delete(check);
          clearTimeout(timer);
          resolve(m);
        } else if (child.exitCode !== null) {
          listeners.delete(check);
          clearTimeout(timer);
          reject(new Error(`${script} exited (${child.exitCode}) before printing ${re}:\n${out}`));
        }
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`timed out waiting for ${re} from ${script}:\n${out}`));
      }, timeoutMs);
      listeners.add(check);
      check();
    });
  return { child, output: () => out, waitFor, exited };
}

/** Waits until log.jsonl in `dir` has a step record with step >= `step`. */
export async function waitForStep(dir: string, step: number, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      if (readLog(dir).some((r) => r.kind === 'step' && (r.step as number) >= step)) return;
    } catch {
      // not written yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no step ${step} in ${dir}/log.jsonl after ${timeoutMs} ms`);
}

/** Relative L2 distance ‖a − b‖ / ‖b‖ of two weight files, worst over tensors. */
export function maxRelativeDiff(a: Map<string, { data: Float32Array }>, b: Map<string, { data: Float32Array }>): number {
  let worst = 0;
  for (const [name, tb] of b) {
    const ta = a.get(name);
    if (!ta) return Infinity;
    let num = 0;
    let den = 0;
    for (let i = 0; i < tb.data.length; i++) {
      num += (ta.data[i]! - tb.data[i]!) ** 2;
      den += tb.data[i]! ** 2;
    }
    worst = Math.max(worst, Math.sqrt(num / (den || 1)));
  }
  return worst;
}

/** mulberry32 uniform in [−1, 1), scaled: reproducible float32 test data (gradients, magnitudes). */
export function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    out[i] = (((x ^ (x >>> 14)) >>> 0) / 4294967296 * 2 - 1) * scale;
  }
  return out;
}

/** tap's skip option for a test that emulates two hosts in network namespaces: skipped with the reason where it cannot, unless CI=true (then the test must fail). */
export function twoHostsSkip(unavailable: string | null): { skip: string | false } {
  return { skip: unavailable !== null && process.env.CI !== 'true' ? `cannot emulate two hosts: ${unavailable}` : false };
}

/** A script started inside one of two emulated hosts (scripts/dev/netns.ts), killed with them on close(). */
export function startInside(hosts: { adopt(child: ChildProcess): ChildProcess }, host: { wrap(argv: string[]): string[] }, script: string, args: string[]): Started {
  const s = startScript(script, args, { wrap: host.wrap });
  hosts.adopt(s.child);
  return s;
}
