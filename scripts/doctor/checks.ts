// `npm run doctor`'s verdicts: from the facts gathered about this machine (facts.ts) to one line per check, ✓ or ✗ and the fix.
import { backendAdvice, installCommand, TFJS_NODE_PACKAGES, type TensorflowBackend } from '../../shared/backend/advice.ts';
import { visibleDevices, type Gpu } from '../../shared/backend/gpus.ts';
import type { LibraryFound } from './loader.ts';

export type Backend = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

export interface Check {
  id: string;
  title: string;
  ok: boolean;
  detail: string;
  fix?: string; // what to run or change, when !ok
  neededBy: readonly (Backend | 'corpus')[]; // the backends (or runs) that need it
}

/** tfjs-node 4.22.0's prebuilt bindings (its package.json, binary.napi_versions) and the libtensorflow it downloads (scripts/deps-constants.js). */
export const TFJS_NODE_NAPI_VERSIONS = [3, 4, 5, 6, 7, 8];
export const LIBTENSORFLOW_VERSION = '2.9.1';
/** scripts/deps-constants.js ALL_SUPPORTED_COMBINATION: where install.js downloads a libtensorflow of each kind. */
const PREBUILT = { gpu: ['linux-x64', 'win32-x64'], cpu: ['linux-x64', 'win32-x64', 'darwin-x64'] };
/** CUDA 11.x's minimum driver with minor-version compatibility (CUDA 11 release notes; tfjs-node's README says "> 450.x"). */
const MIN_DRIVER = [450, 80, 2];

// ---- Node and the tfjs-node packages ------------------------------------------------------------------------

export interface NodeFacts {
  version: string; // process.version
  napi: number; // process.versions.napi
  platform: NodeJS.Platform;
  arch: string;
  napiVersions?: number[]; // an installed tfjs-node's own binary.napi_versions, when it is there
}

export function nodeCheck(f: NodeFacts): Check {
  const major = Number(/^v(\d+)/.exec(f.version)?.[1] ?? 0);
  const versions = f.napiVersions ?? TFJS_NODE_NAPI_VERSIONS;
  const best = Math.max(0, ...versions.filter((v) => v <= f.napi)); // node-pre-gyp's get_best_napi_build_version
  const head = `${f.version} (N-API ${f.napi}) on ${f.platform} ${f.arch}`;
  const range = `tfjs-node 4.22.0's prebuilt binding is built for N-API ${versions[0]}–${versions.at(-1)} (its package.json binary.napi_versions)`;
  const base = { id: 'node', title: 'Node', neededBy: ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const };
  if (major < 20) return { ...base, ok: false, detail: `${head}: this project needs Node 20 or later`, fix: 'install Node 20 or later (package.json engines)' };
  if (best === 0) return { ...base, ok: false, detail: `${head}: ${range}, none of which this Node has`, fix: 'use Node 20 or later' };
  if (f.platform === 'win32' && f.napi > best) {
    return {
      ...base, ok: false, detail: `${head}: ${range}; on Windows its install script copies tensorflow.dll into lib\\napi-v${f.napi} while the binding loads from lib\\napi-v${best}`,
      fix: `after installing, copy node_modules\\@tensorflow\\tfjs-node(-gpu)\\deps\\lib\\tensorflow.dll into its lib\\napi-v${best}\\ (docs/gpu.md)`,
    };
  }
  return { ...base, ok: true, detail: `${head}: ${range}; node-pre-gyp takes the highest this Node has, napi-v${best}, which Node-API's stability lets it load` };
}

/** What loading one tfjs-node package in a child process showed. */
export type PackageProbe =
  | { state: 'not-installed'; error: string }
  | { state: 'load-failed'; error: string; said: string[] }
  | { state: 'loaded'; gpuDevice: boolean; said: string[] } // said: the libraries libtensorflow could not load
  | { state: 'timed-out'; seconds: number };

export function packageCheck(name: TensorflowBackend, p: PackageProbe, node: Pick<NodeFacts, 'platform' | 'arch'>): Check {
  const pkg = TFJS_NODE_PACKAGES[name];
  const base = { id: pkg.slice('@tensorflow/'.length), title: pkg.slice('@tensorflow/'.length), neededBy: [name] };
  const here = `${node.platform}-${node.arch}`;
  const prebuilt = PREBUILT[name === 'tensorflow-gpu' ? 'gpu' : 'cpu'];
  const where = prebuilt.includes(here) ? '' : ` (${pkg} downloads a libtensorflow only for ${prebuilt.join(', ')}; this is ${here})`;
  switch (p.state) {
    case 'not-installed':
      return { ...base, ok: false, detail: `not installed${where}`, fix: backendAdvice(name, 'not-installed') };
    case 'load-failed':
      return {
        ...base, ok: false, detail: `installed, but it does not load: ${p.error}${p.said.length ? `; libtensorflow said it could not load ${p.said.join(', ')}` : ''}`,
        fix: `reinstall it with \`${installCommand(name)}\` and read the install script's output (it downloads libtensorflow ${LIBTENSORFLOW_VERSION} and the binding from storage.googleapis.com); docs/gpu.md`,
      };
    case 'timed-out':
      return { ...base, ok: false, detail: `loading it did not finish in ${p.seconds} s`, fix: `load it by hand to see where it stops: node -e "require('${pkg}')"` };
    case 'loaded':
      if (name === 'tensorflow') return { ...base, ok: true, detail: `loads: libtensorflow ${LIBTENSORFLOW_VERSION} on the CPU` };
      if (p.gpuDevice) return { ...base, ok: true, detail: 'loads, and TensorFlow found a GPU device' };
      return {
        ...base, ok: false,
        detail: `loads, but TensorFlow found no GPU device (isUsingGpuDevice false) and would run on the CPU${p.said.length ? `; libtensorflow said it could not load ${p.said.join(', ')}` : ''}`,
        fix: backendAdvice('tensorflow-gpu', 'no-gpu-device'),
      };
    default: {
      const never: never = p;
      return never;
    }
  }
}

// ---- the GPUs ----------------------------------------------------------------------------------------------

/** One row of `nvidia-smi --query-gpu=index,name,memory.total,driver_version[,compute_cap] --format=csv,noheader`. */
export interface GpuRow {
  index: number;
  name: string;
  memory: string; // e.g. '81559 MiB'
  driver: string;
  computeCap?: string; // e.g. '9.0'
}

export function parseGpuQuery(csv: string): GpuRow[] {
  return csv.split('\n').map((l) => l.split(',').map((s) => s.trim())).filter((f) => f.length >= 4 && /^\d+$/.test(f[0]!))
    .map(([index, name, memory, driver, cc]) => ({ index: Number(index), name: name!, memory: memory!, driver: driver!, ...(cc && /^\d+\.\d+$/.test(cc) ? { computeCap: cc } : {}) }));
}

/** The driver and the highest CUDA version it supports, from plain `nvidia-smi`'s header (R610 drivers say "KMD" and "CUDA UMD"). */
export function parseSmiHeader(text: string): { driver?: string; cuda?: string } {
  const driver = /(?:Driver|KMD) Version:\s*([\d.]+)/.exec(text)?.[1];
  const cuda = /CUDA (?:UMD )?Version:\s*([\d.]+)/.exec(text)?.[1];
  return { ...(driver ? { driver } : {}), ...(cuda ? { cuda } : {}) };
}

/** What nvidia-smi said: missing (not on PATH), failed (its message), or its listing, query rows and header. */
export type SmiFacts =
  | { state: 'missing' }
  | { state: 'failed'; message: string }
  | { state: 'ok'; gpus: Gpu[]; rows: GpuRow[]; driver?: string; cuda?: string };

function olderThan(version: string, min: number[]): boolean {
  const v = version.split('.').map(Number);
  for (let i = 0; i < min.length; i++) if ((v[i] ?? 0) !== min[i]) return (v[i] ?? 0) < min[i]!;
  return false;
}

export function gpuCheck(s: SmiFacts): Check {
  const base = { id: 'nvidia-smi', title: 'NVIDIA GPUs', neededBy: ['tensorflow-gpu'] as const };
  if (s.state === 'missing') {
    return { ...base, ok: false, detail: 'nvidia-smi is not on PATH: no NVIDIA driver here (or, in a container, no GPU passed in)', fix: 'install the NVIDIA driver (it brings nvidia-smi); in Docker run with --gpus all (NVIDIA Container Toolkit); without a GPU, auto trains on tensorflow or wasm' };
  }
  if (s.state === 'failed') return { ...base, ok: false, detail: `nvidia-smi: ${s.message}`, fix: 'check the driver (nvidia-smi must list the GPUs); docs/gpu.md' };
  if (s.gpus.length === 0) return { ...base, ok: false, detail: 'nvidia-smi -L lists no GPU', fix: 'check the driver (nvidia-smi must list the GPUs); docs/gpu.md' };
  const described = s.gpus.map((g) => {
    const row = s.rows.find((r) => r.index === g.index);
    return `${g.name}${row ? ` (${row.memory}${row.computeCap ? `, compute capability ${row.computeCap}` : ''})` : ''}${g.migs.length ? ` in MIG mode: ${g.migs.length} MIG devices` : ''}`;
  });
  const same = described.every((d) => d === described[0]);
  const list = same ? `${s.gpus.length} × ${described[0]}` : s.gpus.map((g, i) => `GPU ${g.index}: ${described[i]}`).join('; ');
  const driver = s.driver ?? s.rows[0]?.driver;
  const drv = driver ? `; driver ${driver}${s.cuda ? `, which supports CUDA ≤ ${s.cuda}` : ''}` : '';
  if (driver && olderThan(driver, MIN_DRIVER)) {
    return { ...base, ok: false, detail: `${list}${drv}: older than CUDA 11's minimum driver ${MIN_DRIVER.join('.')}`, fix: 'update the NVIDIA driver (any newer one runs CUDA 11.2 programs); docs/gpu.md' };
  }
  const runs11 = s.cuda && Number(s.cuda.split('.')[0]) > 11 ? ' (a newer driver runs CUDA 11.2 programs too; libtensorflow needs the CUDA 11 libraries beside it, below)' : '';
  return { ...base, ok: true, detail: `${list}${drv}${runs11}` };
}

export function visibleCheck(gpus: readonly Gpu[], cudaVisible: string | undefined): Check {
  const base = { id: 'cuda-visible-devices', title: 'CUDA_VISIBLE_DEVICES', neededBy: ['tensorflow-gpu'] as const };
  const shown = cudaVisible === undefined ? 'unset' : `=${cudaVisible}`;
  if (gpus.length === 0) return { ...base, ok: true, detail: `${shown} (no GPU listed to choose from)` };
  const { devices, notes } = visibleDevices(gpus, cudaVisible);
  if (devices.length === 0) {
    return { ...base, ok: false, detail: `${shown} leaves none of the ${gpus.length} GPU(s)${notes.length ? `: ${notes.join('; ')}` : ''}`, fix: `unset it, or list devices by index (${gpus.map((g) => g.index).join(',')}) or UUID (nvidia-smi -L)` };
  }
  const which = devices.map((d) => d.label).join('; ');
  const each = `${devices.length} visible: ${which}; npm start runs one worker on each`;
  if (notes.length) return { ...base, ok: false, detail: `${shown}: ${notes.join('; ')}; ${each}`, fix: 'list only devices nvidia-smi -L shows, each once' };
  return { ...base, ok: true, detail: `${shown}: ${each}` };
}

// ---- the CUDA 11 libraries libtensorflow 2.9.1 dlopens ------------------------------------------------------

/** The libraries libtensorflow 2.9.1 (CUDA 11.2, cuDNN 8.1) opens by soname, and NVIDIA's pip wheel that has each. */
export const CUDA_LIBRARIES = [
  { soname: 'libcudart.so.11.0', wheel: 'nvidia-cuda-runtime-cu11==11.8.89', dir: 'cuda_runtime' },
  { soname: 'libcudnn.so.8', wheel: 'nvidia-cudnn-cu11==8.6.0.163', dir: 'cudnn' },
  { soname: 'libcublas.so.11', wheel: 'nvidia-cublas-cu11==11.11.3.6', dir: 'cublas' },
  { soname: 'libcublasLt.so.11', wheel: 'nvidia-cublas-cu11==11.11.3.6', dir: 'cublas' },
  { soname: 'libcufft.so.10', wheel: 'nvidia-cufft-cu11==10.9.0.58', dir: 'cufft' },
  { soname: 'libcurand.so.10', wheel: 'nvidia-curand-cu11==10.3.0.86', dir: 'curand' },
  { soname: 'libcusolver.so.11', wheel: 'nvidia-cusolver-cu11==11.4.1.48', dir: 'cusolver' },
  { soname: 'libcusparse.so.11', wheel: 'nvidia-cusparse-cu11==11.7.5.86', dir: 'cusparse' },
] as const;

const IMAGE = 'nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04';

/** Three lines: libcudart.so.11.0, libcudnn.so.8, and the math libraries together. */
export function libraryChecks(found: readonly LibraryFound[], searched: string): Check[] {
  const by = new Map(found.map((f) => [f.soname, f]));
  const one = (id: string, title: string, sonames: readonly string[]): Check => {
    const libs = sonames.map((s) => by.get(s)!);
    const missing = libs.filter((l) => !l.path);
    const at = (l: LibraryFound) => `${l.soname} → ${l.path} (${l.via})`;
    const base = { id, title, neededBy: ['tensorflow-gpu'] as const };
    if (missing.length === 0) return { ...base, ok: true, detail: libs.map(at).join('; ') };
    const others = missing.flatMap((l) => l.others);
    const wheels = [...new Set(CUDA_LIBRARIES.filter((c) => missing.some((m) => m.soname === c.soname)).map((c) => c.wheel))];
    const dirs = [...new Set(CUDA_LIBRARIES.filter((c) => missing.some((m) => m.soname === c.soname)).map((c) => c.dir))];
    return {
      ...base, ok: false,
      detail: `${missing.map((l) => l.soname).join(', ')} not found (${searched})${others.length ? `; found only ${others.join(', ')}: another major version, which libtensorflow ${LIBTENSORFLOW_VERSION} does not load (a symlink to it does not make it one)` : ''}`,
      fix: `\`pip install ${wheels.join(' ')}\` and add ${dirs.length === 1 ? `its nvidia/${dirs[0]}/lib` : `their nvidia/{${dirs.join(',')}}/lib`} to LD_LIBRARY_PATH, or run in the ${IMAGE} image (docs/gpu.md "A CUDA 12 host")`,
    };
  };
  return [
    one('libcudart', 'libcudart.so.11.0', ['libcudart.so.11.0']),
    one('libcudnn', 'libcudnn.so.8', ['libcudnn.so.8']),
    one('cuda-math', 'CUDA 11 math libs', CUDA_LIBRARIES.slice(2).map((c) => c.soname)),
  ];
}

/** First start on GPUs without machine code in libtensorflow 2.9.1: CUDA compiles PTX and keeps it in its cache. */
export function kernelCacheCheck(rows: readonly GpuRow[], env: Readonly<Record<string, string | undefined>>): Check | undefined {
  const late = rows.filter((r) => r.computeCap && Number(r.computeCap) >= 8);
  if (late.length === 0) return undefined;
  const caps = [...new Set(late.map((r) => r.computeCap))].join(', ');
  const size = Number(env.CUDA_CACHE_MAXSIZE ?? 0);
  const base = { id: 'cuda-cache', title: 'GPU kernel cache', neededBy: ['tensorflow-gpu'] as const };
  const why = `compute capability ${caps}: libtensorflow ${LIBTENSORFLOW_VERSION} carries no machine code for it, so CUDA compiles its kernels from PTX on first use (minutes; README "First start")`;
  if (size >= 2 ** 30) return { ...base, ok: true, detail: `${why}; CUDA_CACHE_MAXSIZE=${env.CUDA_CACHE_MAXSIZE} keeps them from one start to the next` };
  return { ...base, ok: false, detail: `${why}; CUDA_CACHE_MAXSIZE=${env.CUDA_CACHE_MAXSIZE ?? '<unset>'} (CUDA's default is far smaller) so every start compiles again`, fix: 'export CUDA_CACHE_MAXSIZE=4294967296' };
}

export function memoryGrowthCheck(env: Readonly<Record<string, string | undefined>>): Check {
  const v = env.TF_FORCE_GPU_ALLOW_GROWTH;
  const base = { id: 'memory-growth', title: 'GPU memory growth', neededBy: ['tensorflow-gpu'] as const };
  if (v === undefined) return { ...base, ok: true, detail: 'TF_FORCE_GPU_ALLOW_GROWTH unset: every process of this project sets it to true (TensorFlow takes GPU memory as it needs it)' };
  if (v === 'true') return { ...base, ok: true, detail: 'TF_FORCE_GPU_ALLOW_GROWTH=true: TensorFlow takes GPU memory as it needs it' };
  return { ...base, ok: false, detail: `TF_FORCE_GPU_ALLOW_GROWTH=${v}: TensorFlow reserves nearly all memory of every GPU it sees at start`, fix: 'unset it (the project then sets true) or set it to true' };
}

// ---- wasm, the FFT, the corpus -----------------------------------------------------------------------------

export function wasmChecks(simd: boolean, wasmError: string | undefined): Check[] {
  return [
    simd
      ? { id: 'wasm-simd', title: 'wasm SIMD', ok: true, detail: "WebAssembly SIMD works: tfjs-backend-wasm loads its SIMD build, and pffft-wasm's SIMD build does the host FFT", neededBy: ['wasm', 'cpu'] }
      : { id: 'wasm-simd', title: 'wasm SIMD', ok: false, detail: 'WebAssembly SIMD is not available in this Node', fix: 'use Node 20 or later without --no-experimental-wasm-simd', neededBy: ['wasm', 'cpu'] },
    wasmError === undefined
      ? { id: 'wasm', title: 'wasm backend', ok: true, detail: "starts, with this project's kernels (shared/wasm/kernels.ts)", neededBy: ['wasm'] }
      : { id: 'wasm', title: 'wasm backend', ok: false, detail: `does not start: ${wasmError}`, fix: 'reinstall with `npm ci`; auto then falls back to the pure-JS cpu backend (about 30× slower)', neededBy: ['wasm'] },
  ];
}

export function fftCheck(hostFft: { error?: string; maxError?: number }): Check {
  const paths = 'the gradients\' spectra: tf.spectral on tensorflow-gpu (cuFFT, libcufft.so.10) and tensorflow (TensorFlow\'s CPU FFT), the host FFT on wasm and cpu; synced mode\'s shared blend: the host FFT on every backend';
  const base = { id: 'fft', title: 'FFT', neededBy: ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const };
  if (hostFft.error !== undefined) return { ...base, ok: false, detail: `the host FFT (pffft-wasm, kissfft-wasm) does not load: ${hostFft.error}; ${paths}`, fix: 'reinstall with `npm ci`' };
  return { ...base, ok: true, detail: `the host FFT (pffft-wasm, kissfft-wasm) loads and inverts a 48×64 transform (max error ${hostFft.maxError!.toExponential(1)}); ${paths}` };
}

export function corpusCheck(path: string, r: { ok: true; bytes: number } | { ok: false; code: string; message: string }): Check {
  const base = { id: 'corpus', title: 'corpus', neededBy: ['corpus'] as const };
  if (r.ok) return { ...base, ok: true, detail: `${path}: Tiny Shakespeare, ${r.bytes.toLocaleString('en-US')} bytes, sha256 verified` };
  return { ...base, ok: false, detail: `${r.code}: ${r.message.split('. ')[0]} (${path}); the coordinator needs it (npm start, --local), workers do not`, fix: '`npm run prepare-data`, or --data FILE with a verified copy' };
}

// ---- the report --------------------------------------------------------------------------------------------

/** What starting the wanted backend through initBackend in a child process gave. */
export type BackendOutcome = { ok: true; name: string; device: string; reason: string } | { ok: false; code: string; message: string };

export interface DoctorReport {
  checks: Check[];
  wanted: string; // --backend [auto]
  outcome: BackendOutcome;
  /** for each backend, the ids of failed checks it needs */
  backends: Record<Backend, string[]>;
  exit: 0 | 1;
}

export function report(checks: Check[], wanted: string, outcome: BackendOutcome): DoctorReport {
  const names: Backend[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];
  const backends = Object.fromEntries(names.map((b) => [b, checks.filter((c) => !c.ok && c.neededBy.includes(b)).map((c) => c.id)])) as Record<Backend, string[]>;
  return { checks, wanted, outcome, backends, exit: outcome.ok ? 0 : 1 };
}

/** Plain lines: one per check (✓/✗, what is there, the fix), each backend's state, and what --backend WANTED does here. */
export function formatReport(r: DoctorReport): string {
  const width = Math.max(...r.checks.map((c) => c.title.length));
  const lines = [`npm run doctor: what each backend needs on this machine, and what is here (--json for scripts)`];
  for (const c of r.checks) {
    const need = c.ok ? '' : ` [needed by ${c.neededBy.map((b) => (b === 'corpus' ? 'the coordinator' : b)).join(', ')}]`;
    lines.push(`${c.ok ? '✓' : '✗'} ${c.title.padEnd(width)}  ${c.detail}${need}${c.fix ? `\n  ${' '.repeat(width)}  fix: ${c.fix}` : ''}`);
  }
  lines.push(`backends: ${Object.entries(r.backends).map(([b, failed]) => `${b} ${failed.length === 0 ? '✓' : `✗ (${failed.join(', ')})`}`).join(' | ')}`);
  const o = r.outcome;
  lines.push(o.ok
    ? `→ --backend ${r.wanted} takes ${o.name} on ${o.device} (${o.reason}): usable, exit 0`
    : `→ --backend ${r.wanted} is not usable here, exit 1: [${o.code}] ${o.message}`);
  return lines.join('\n');
}
