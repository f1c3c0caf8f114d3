// Gathers what `npm run doctor` judges: Node, the tfjs-node packages (each loaded in a child), nvidia-smi, the dynamic
// loader's view of the CUDA 11 libraries, wasm and the host FFT (in this process), the corpus, and the wanted backend
// started through initBackend (in a child, as `npm start` and `npm run worker` start it).
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { TFJS_NODE_PACKAGES, isNotInstalled, type TensorflowBackend } from '../../shared/backend/advice.ts';
import type { BackendChoice } from '../../shared/config.ts';
import { loadCorpus } from '../../shared/model/data.ts';
import { parseNvidiaSmiList } from '../../shared/backend/gpus.ts';
import {
  corpusCheck, fftCheck, gpuCheck, kernelCacheCheck, libraryChecks, memoryGrowthCheck, nodeCheck, packageCheck, parseGpuQuery, parseSmiHeader,
  report, visibleCheck, wasmChecks, CUDA_LIBRARIES, type BackendOutcome, type Check, type DoctorReport, type PackageProbe, type SmiFacts,
} from './checks.ts';
import { findLibrary, machineLoaderView } from './loader.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const PROBE = join(import.meta.dirname, 'probe.ts');
const PROBE_MARK = 'DOCTOR-PROBE ';
const PROBE_SECONDS = 120; // loading libtensorflow and initialising CUDA takes seconds; a hang is reported, not waited out

/** An error's first line, repository paths made relative, at most 300 characters. */
export function shorten(message: string): string {
  const line = (message.split('\n').find((l) => l.trim() !== '') ?? message).replaceAll(`${ROOT}/`, '').trim();
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

/** Runs the probe in a child (tsx, from the repository root) and returns its JSON line and what it wrote to stderr. */
function probe(args: string[], env: NodeJS.ProcessEnv): Promise<{ result?: Record<string, unknown>; stderr: string; timedOut: boolean }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', PROBE, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, PROBE_SECONDS * 1000);
    child.on('close', () => {
      clearTimeout(timer);
      const line = stdout.split('\n').reverse().find((l) => l.startsWith(PROBE_MARK));
      done({ result: line ? (JSON.parse(line.slice(PROBE_MARK.length)) as Record<string, unknown>) : undefined, stderr, timedOut });
    });
  });
}

/** The libraries libtensorflow says it could not load (its dso_loader's warnings). */
const couldNotLoad = (stderr: string) => [...new Set([...stderr.matchAll(/Could not load dynamic library '([^']+)'/g)].map((m) => m[1]!))];

async function probePackage(name: TensorflowBackend, env: NodeJS.ProcessEnv): Promise<PackageProbe> {
  const { result, stderr, timedOut } = await probe(['package', TFJS_NODE_PACKAGES[name]], env);
  if (timedOut) return { state: 'timed-out', seconds: PROBE_SECONDS };
  if (!result) return { state: 'load-failed', error: shorten(stderr || 'the probe exited without a word (a crash in native code?)'), said: couldNotLoad(stderr) };
  if (result.loaded === true) return { state: 'loaded', gpuDevice: result.gpuDevice === true, said: couldNotLoad(stderr) };
  const message = String(result.message);
  return isNotInstalled(name, message) ? { state: 'not-installed', error: shorten(message) } : { state: 'load-failed', error: shorten(message), said: couldNotLoad(stderr) };
}

async function probeBackend(wanted: BackendChoice, env: NodeJS.ProcessEnv): Promise<BackendOutcome> {
  const { result, stderr, timedOut } = await probe(['backend', wanted], env);
  if (timedOut) return { ok: false, code: 'E_TIMEOUT', message: `starting it did not finish in ${PROBE_SECONDS} s` };
  if (!result) return { ok: false, code: 'E_INTERNAL', message: shorten(stderr || 'the probe exited without a word') };
  return result.ok === true
    ? { ok: true, name: String(result.name), device: String(result.device), reason: String(result.reason) }
    : { ok: false, code: String(result.code), message: String(result.message) };
}

const run = promisify(execFile);

/** nvidia-smi -L, the per-GPU query (with compute_cap, else without: older drivers refuse the field) and the plain header. */
async function nvidiaSmi(env: NodeJS.ProcessEnv): Promise<SmiFacts> {
  const smi = async (args: string[]) => (await run('nvidia-smi', args, { env, timeout: 15_000, encoding: 'utf8' })).stdout;
  let list: string;
  try {
    list = await smi(['-L']);
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stdout?: string; stderr?: string; code?: string | number };
    if (err.code === 'ENOENT') return { state: 'missing' };
    return { state: 'failed', message: `${shorten(`${err.stdout ?? ''}${err.stderr ?? ''}`.trim() || err.message)} (exit ${err.code})` };
  }
  const query = async (fields: string) => parseGpuQuery(await smi([`--query-gpu=${fields}`, '--format=csv,noheader']));
  const rows = await query('index,name,memory.total,driver_version,compute_cap').catch(() => query('index,name,memory.total,driver_version')).catch(() => []);
  const header = await smi([]).then(parseSmiHeader, () => ({}));
  return { state: 'ok', gpus: parseNvidiaSmiList(list), rows, ...header };
}

/** Starts tfjs's wasm backend here with the project's kernels, and multiplies two small matrices on it. */
async function startWasm(): Promise<{ simd: boolean; error?: string }> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true; // the flag tfjs-backend-wasm picks its build by
    if (!(await tf.setBackend('wasm'))) return { simd, error: 'tf.setBackend("wasm") failed' };
    await tf.ready();
    (await import('../../shared/wasm/kernels.ts')).registerWasmKernels();
    const y = tf.tidy(() => tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])).dataSync());
    const want = [19, 22, 43, 50];
    return want.every((v, i) => y[i] === v) ? { simd } : { simd, error: `a 2×2 product gave [${[...y]}], expected [${want}]` };
  } catch (e) {
    return { simd: false, error: shorten((e as Error).message) };
  }
}

/** Loads the host FFT and measures a forward + inverse round trip of a 48×64 matrix. */
async function hostFft(): Promise<{ error?: string; maxError?: number }> {
  try {
    const { initFft, irfft2, rfft2 } = await import('../../shared/smi/fft.ts');
    await initFft();
    const x = Float32Array.from({ length: 48 * 64 }, (_, i) => Math.sin(i * 0.37) + (i % 7) * 0.1);
    const back = irfft2(rfft2(x, 48, 64));
    const maxError = x.reduce((m, v, i) => Math.max(m, Math.abs(v - back[i]!)), 0);
    return maxError < 1e-4 ? { maxError } : { error: `a round trip is off by ${maxError}`, maxError };
  } catch (e) {
    return { error: shorten((e as Error).message) };
  }
}

function corpus(path: string): Parameters<typeof corpusCheck>[1] {
  try {
    loadCorpus(path);
    return { ok: true, bytes: readFileSync(path).length };
  } catch (e) {
    return { ok: false, code: (e as { code?: string }).code ?? 'E_DATA', message: (e as Error).message };
  }
}

/** An installed tfjs-node's own binary.napi_versions, when one is installed. */
function installedNapiVersions(): number[] | undefined {
  const require = createRequire(join(ROOT, 'package.json'));
  for (const pkg of Object.values(TFJS_NODE_PACKAGES)) {
    try {
      const versions = (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { binary?: { napi_versions?: number[] } }).binary?.napi_versions;
      if (versions?.length) return versions;
    } catch {
      // not installed
    }
  }
  return undefined;
}

export interface DoctorOptions {
  wanted: BackendChoice;
  data: string;
  env?: NodeJS.ProcessEnv;
}

/** Every check, and the wanted backend started for real; exit 0 when it starts. */
export async function runDoctor(o: DoctorOptions): Promise<DoctorReport> {
  const env = o.env ?? process.env;
  const node = { version: process.version, napi: Number(process.versions.napi), platform: process.platform, arch: process.arch, napiVersions: installedNapiVersions() };
  // the children first, in parallel: each loads libtensorflow (or tries to) on its own
  const children = Promise.all([probePackage('tensorflow-gpu', env), probePackage('tensorflow', env), probeBackend(o.wanted, env)]);
  const smi = await nvidiaSmi(env);
  const view = machineLoaderView(env);
  const searched = `searched LD_LIBRARY_PATH=${env.LD_LIBRARY_PATH ?? '<unset>'}, ${view.cacheNote ?? 'the ld.so cache'} and ${view.defaultDirs.join(' ')}`;
  const libs = CUDA_LIBRARIES.map((l) => findLibrary(l.soname, view));
  const wasm = await startWasm();
  const fft = await hostFft();
  const [gpuPkg, cpuPkg, outcome] = await children;
  const gpus = smi.state === 'ok' ? smi.gpus : [];
  const checks: Check[] = [
    nodeCheck(node),
    packageCheck('tensorflow-gpu', gpuPkg, node),
    packageCheck('tensorflow', cpuPkg, node),
    gpuCheck(smi),
    visibleCheck(gpus, env.CUDA_VISIBLE_DEVICES),
    ...libraryChecks(libs, searched),
    ...[kernelCacheCheck(smi.state === 'ok' ? smi.rows : [], env)].filter((c): c is Check => c !== undefined),
    memoryGrowthCheck(env),
    ...wasmChecks(wasm.simd, wasm.error),
    fftCheck(fft),
    corpusCheck(o.data, corpus(o.data)),
  ];
  return report(checks, o.wanted, outcome);
}
