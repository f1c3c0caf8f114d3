// npm run doctor's verdicts from given facts: nvidia-smi's recorded outputs, the dynamic loader over fake directories,
// Node and N-API against tfjs-node's prebuilt range, the packages' states; each line's ✓/✗ and its fix.
import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backendAdvice } from '../../../shared/backend/advice.ts';
import { parseNvidiaSmiList } from '../../../shared/backend/gpus.ts';
import {
  CUDA_LIBRARIES, formatReport, gpuCheck, kernelCacheCheck, libraryChecks, memoryGrowthCheck, nodeCheck, packageCheck, parseGpuQuery,
  parseSmiHeader, report, visibleCheck,
} from '../../../scripts/doctor/checks.ts';
import { findLibrary, machineLoaderView, parseLdconfig, type LoaderView } from '../../../scripts/doctor/loader.ts';
import { tempDir } from '../../helpers.ts';

const STANDIN = join(import.meta.dirname, '../../standin');
const H100_LISTING = readFileSync(join(STANDIN, 'nvidia-smi-L.h100x4.txt'), 'utf8');
const H100_SMI = readFileSync(join(STANDIN, 'nvidia-smi.h100.txt'), 'utf8');
// the header of an R610 driver's nvidia-smi on a B200 host, as posted in sgl-project/sglang#27487 (KMD / CUDA UMD)
const R610_SMI = `+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 610.43.02              KMD Version: 610.43.02     CUDA UMD Version: 13.3     |
+-----------------------------------------+------------------------+----------------------+`;

t.test("nvidia-smi: the driver and CUDA version from the header (both header forms), the GPUs' name, memory and compute capability", async (t) => {
  t.same(parseSmiHeader(H100_SMI), { driver: '550.90.07', cuda: '12.4' });
  t.same(parseSmiHeader(R610_SMI), { driver: '610.43.02', cuda: '13.3' });
  t.same(parseSmiHeader('No devices were found'), {});
  const rows = parseGpuQuery('0, NVIDIA H100 80GB HBM3, 81559 MiB, 550.90.07, 9.0\n1, NVIDIA H100 80GB HBM3, 81559 MiB, 550.90.07, 9.0\n');
  t.same(rows[1], { index: 1, name: 'NVIDIA H100 80GB HBM3', memory: '81559 MiB', driver: '550.90.07', computeCap: '9.0' });
  t.same(parseGpuQuery('0, Tesla T4, 15360 MiB, 470.57.02'), [{ index: 0, name: 'Tesla T4', memory: '15360 MiB', driver: '470.57.02' }], 'without compute_cap (older drivers)');

  const gpus = parseNvidiaSmiList(H100_LISTING);
  const ok = gpuCheck({ state: 'ok', gpus, rows: gpus.map((g) => ({ ...rows[0]!, index: g.index })), ...parseSmiHeader(H100_SMI) });
  t.equal(ok.ok, true);
  t.equal(ok.detail, '4 × NVIDIA H100 80GB HBM3 (81559 MiB, compute capability 9.0); driver 550.90.07, which supports CUDA ≤ 12.4 (a newer driver runs CUDA 11.2 programs too; libtensorflow needs the CUDA 11 libraries beside it, below)');
  const old = gpuCheck({ state: 'ok', gpus, rows: [], driver: '418.56', cuda: '10.1' });
  t.equal(old.ok, false, 'a driver older than CUDA 11 needs');
  t.match(old.fix, /update the NVIDIA driver/);
  const missing = gpuCheck({ state: 'missing' });
  t.match(missing, { ok: false, detail: /nvidia-smi is not on PATH/, fix: /install the NVIDIA driver/ });
  t.match(gpuCheck({ state: 'failed', message: 'No devices were found (exit 6)' }), { ok: false, detail: 'nvidia-smi: No devices were found (exit 6)' });
});

t.test('CUDA_VISIBLE_DEVICES with the GPUs nvidia-smi lists (shared/gpus.ts rules)', async (t) => {
  const gpus = parseNvidiaSmiList(H100_LISTING);
  t.match(visibleCheck(gpus, undefined), { ok: true, detail: /^unset: 4 visible: GPU 0: NVIDIA H100 80GB HBM3; .*GPU 3/ });
  t.match(visibleCheck(gpus, '2,3'), { ok: true, detail: /^=2,3: 2 visible: GPU 2: NVIDIA H100 80GB HBM3; GPU 3/ });
  t.match(visibleCheck(gpus, ''), { ok: false, detail: /leaves none of the 4 GPU/, fix: /unset it, or list devices by index \(0,1,2,3\)/ });
  t.match(visibleCheck(gpus, '1,7'), { ok: false, detail: /'7' names no device/ });
  t.match(visibleCheck([], '0'), { ok: true, detail: /no GPU listed/ });
});

/** A directory holding empty files of these names, as a library directory would. */
function libDir(...names: string[]): string {
  const dir = tempDir('smi-libs-');
  mkdirSync(dir, { recursive: true });
  for (const n of names) writeFileSync(join(dir, n), '');
  return dir;
}

const view = (o: Partial<LoaderView>): LoaderView => ({ ldLibraryPath: [], cache: new Map(), defaultDirs: [], list: machineLoaderView({}).list, ...o });

t.test('the dynamic loader over fake directories: LD_LIBRARY_PATH, then the ld.so cache, then the default directories', async (t) => {
  const all = CUDA_LIBRARIES.map((l) => l.soname);
  const wheelDir = libDir(...all);
  const found = findLibrary('libcudart.so.11.0', view({ ldLibraryPath: [libDir(), wheelDir] }));
  t.same(found, { soname: 'libcudart.so.11.0', path: join(wheelDir, 'libcudart.so.11.0'), via: 'LD_LIBRARY_PATH', others: [] });
  const cache = parseLdconfig(`1234 libs found in cache \`/etc/ld.so.cache'
\tlibcudart.so.12 (libc6,x86-64) => /usr/local/cuda-12.4/targets/x86_64-linux/lib/libcudart.so.12
\tlibcudnn.so.8 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcudnn.so.8
\tlibcudnn.so.8 (libc6) => /usr/lib/i386-linux-gnu/libcudnn.so.8
`, 'x64');
  t.same(cache.get('libcudnn.so.8'), ['/usr/lib/x86_64-linux-gnu/libcudnn.so.8'], 'ldconfig -p: only x86-64 entries');
  const cuda12 = view({ cache, defaultDirs: [libDir('libcudart.so.12.4.127')] });
  const rt = findLibrary('libcudart.so.11.0', cuda12);
  t.equal(rt.path, undefined, 'a CUDA-12-only host: libcudart.so.11.0 not found');
  t.same(rt.others.map((o) => o.split(' ')[0]), ['libcudart.so.12', 'libcudart.so.12.4.127'], 'and the versions that are there');
  t.match(findLibrary('libcudnn.so.8', cuda12), { path: '/usr/lib/x86_64-linux-gnu/libcudnn.so.8', via: 'ld.so cache' });
  const dflt = libDir('libcufft.so.10');
  t.match(findLibrary('libcufft.so.10', view({ defaultDirs: [dflt] })), { path: join(dflt, 'libcufft.so.10'), via: 'default directory' });

  const withLibs = libraryChecks(all.map((s) => findLibrary(s, view({ ldLibraryPath: [wheelDir] }))), 'searched …');
  t.same(withLibs.map((c) => [c.title, c.ok]), [['libcudart.so.11.0', true], ['libcudnn.so.8', true], ['CUDA 11 math libs', true]]);
  t.match(withLibs[0]!.detail, `libcudart.so.11.0 → ${wheelDir}/libcudart.so.11.0 (LD_LIBRARY_PATH)`);
  const without = libraryChecks(all.map((s) => findLibrary(s, cuda12)), 'searched LD_LIBRARY_PATH=<unset>');
  t.same(without.map((c) => [c.title, c.ok]), [['libcudart.so.11.0', false], ['libcudnn.so.8', true], ['CUDA 11 math libs', false]]);
  t.match(without[0]!.detail, /libcudart\.so\.11\.0 not found \(searched LD_LIBRARY_PATH=<unset>\); found only libcudart\.so\.12 \(.*\): another major version, which libtensorflow 2\.9\.1 does not load/);
  t.match(without[0]!.fix, /`pip install nvidia-cuda-runtime-cu11==11\.8\.89` and add its nvidia\/cuda_runtime\/lib to LD_LIBRARY_PATH, or run in the nvidia\/cuda:11\.2\.2-cudnn8-runtime-ubuntu20\.04 image/);
  t.match(without[2]!.detail, /^libcublas\.so\.11, libcublasLt\.so\.11, libcufft\.so\.10, libcurand\.so\.10, libcusolver\.so\.11, libcusparse\.so\.11 not found/);
  t.match(without[2]!.fix, /pip install nvidia-cublas-cu11==11\.11\.3\.6 nvidia-cufft-cu11==10\.9\.0\.58 .* their nvidia\/\{cublas,cufft,curand,cusolver,cusparse\}\/lib/);
});

t.test('Node and N-API against tfjs-node 4.22.0\'s prebuilt bindings (N-API 3–8: node-pre-gyp takes the highest the Node has)', async (t) => {
  const at = (version: string, napi: number, platform: NodeJS.Platform = 'linux') => nodeCheck({ version, napi, platform, arch: 'x64' });
  t.match(at('v20.20.2', 9), { ok: true, detail: /N-API 9\) on linux x64: .*N-API 3–8 .*napi-v8/ });
  t.match(at('v22.14.0', 10), { ok: true, detail: /napi-v8/ }, 'Node 22 loads the napi-v8 binding on Linux: no rebuild');
  t.match(at('v22.14.0', 10, 'win32'), { ok: false, detail: /tensorflow\.dll into lib\\napi-v10 while the binding loads from lib\\napi-v8/, fix: /copy .*tensorflow\.dll into its lib\\napi-v8/ });
  t.match(at('v18.20.0', 9), { ok: false, detail: /needs Node 20 or later/ });
  t.match(nodeCheck({ version: 'v20.1.0', napi: 8, platform: 'linux', arch: 'x64', napiVersions: [3, 4, 5, 6, 7, 8, 9] }), { ok: true, detail: /N-API 3–9 .*napi-v8/ }, "an installed tfjs-node's own range");
});

t.test('the packages: not installed, failing to load, loaded without and with a GPU device; the fix is the shared advice', async (t) => {
  const linux = { platform: 'linux' as const, arch: 'x64' };
  const notInstalled = packageCheck('tensorflow-gpu', { state: 'not-installed', error: "Cannot find package '@tensorflow/tfjs-node-gpu'" }, linux);
  t.match(notInstalled, { ok: false, detail: 'not installed', fix: backendAdvice('tensorflow-gpu', 'not-installed') });
  t.match(notInstalled.fix, /npm install --foreground-scripts @tensorflow\/tfjs-node-gpu@4\.22\.0/);
  t.match(packageCheck('tensorflow-gpu', { state: 'not-installed', error: '' }, { platform: 'darwin', arch: 'arm64' }).detail, /only for linux-x64, win32-x64; this is darwin-arm64/);
  const broken = packageCheck('tensorflow', { state: 'load-failed', error: 'The Node.js native addon module (tfjs_binding.node) can not be found at path: node_modules/@tensorflow/tfjs-node/lib/napi-v8/tfjs_binding.node.', said: [] }, linux);
  t.match(broken, { ok: false, detail: /^installed, but it does not load: The Node\.js native addon module/, fix: /reinstall it with `npm install --foreground-scripts @tensorflow\/tfjs-node@4\.22\.0`/ });
  const noDevice = packageCheck('tensorflow-gpu', { state: 'loaded', gpuDevice: false, said: ['libcudart.so.11.0', 'libcudnn.so.8'] }, linux);
  t.match(noDevice, { ok: false, detail: /no GPU device .*libtensorflow said it could not load libcudart\.so\.11\.0, libcudnn\.so\.8/, fix: backendAdvice('tensorflow-gpu', 'no-gpu-device') });
  t.match(packageCheck('tensorflow-gpu', { state: 'loaded', gpuDevice: true, said: [] }, linux), { ok: true, detail: 'loads, and TensorFlow found a GPU device' });
  t.match(packageCheck('tensorflow', { state: 'timed-out', seconds: 120 }, linux), { ok: false, detail: /did not finish in 120 s/ });
  const advice = (['no-gpu-visible', 'not-installed', 'load-failed', 'no-gpu-device'] as const).map((p) => backendAdvice('tensorflow-gpu', p));
  t.equal(new Set(advice).size, 4, 'one advice per problem');
  t.ok(advice.every((a) => !a.includes('\n') && a.includes('npm run doctor') && a.includes('docs/gpu.md')), 'each one line, naming npm run doctor and docs/gpu.md');
});

t.test('the kernel cache on GPUs without machine code in libtensorflow 2.9.1, memory growth; the report and its exit code', async (t) => {
  const h100 = [{ index: 0, name: 'NVIDIA H100 80GB HBM3', memory: '81559 MiB', driver: '550.90.07', computeCap: '9.0' }];
  t.equal(kernelCacheCheck([{ ...h100[0]!, computeCap: '7.5' }], {}), undefined, 'a T4 (sm_75) has machine code: no line');
  t.match(kernelCacheCheck(h100, {}), { ok: false, detail: /compute capability 9\.0: .*from PTX/, fix: 'export CUDA_CACHE_MAXSIZE=4294967296' });
  t.match(kernelCacheCheck(h100, { CUDA_CACHE_MAXSIZE: '4294967296' }), { ok: true });
  t.match(memoryGrowthCheck({}), { ok: true, detail: /sets it to true/ });
  t.match(memoryGrowthCheck({ TF_FORCE_GPU_ALLOW_GROWTH: 'false' }), { ok: false, detail: /reserves nearly all memory/ });

  const checks = [memoryGrowthCheck({ TF_FORCE_GPU_ALLOW_GROWTH: 'false' }), gpuCheck({ state: 'missing' })];
  const ok = report(checks, 'auto', { ok: true, name: 'wasm', device: 'CPU (2 cores)', reason: 'no GPU visible' });
  t.equal(ok.exit, 0, 'the backend auto takes starts: exit 0, whatever else is missing');
  t.same(ok.backends, { 'tensorflow-gpu': ['memory-growth', 'nvidia-smi'], tensorflow: [], wasm: [], cpu: [] });
  const text = formatReport(ok);
  t.match(text, /^✗ GPU memory growth +TF_FORCE_GPU_ALLOW_GROWTH=false: .* \[needed by tensorflow-gpu\]\n +fix: unset it/m);
  t.match(text, /^backends: tensorflow-gpu ✗ \(memory-growth, nvidia-smi\) \| tensorflow ✓ \| wasm ✓ \| cpu ✓$/m);
  t.match(text, /^→ --backend auto takes wasm on CPU \(2 cores\) \(no GPU visible\): usable, exit 0$/m);
  const no = report(checks, 'tensorflow-gpu', { ok: false, code: 'E_BACKEND_MISSING', message: 'backend tensorflow-gpu: no NVIDIA GPU is visible' });
  t.equal(no.exit, 1);
  t.match(formatReport(no), /^→ --backend tensorflow-gpu is not usable here, exit 1: \[E_BACKEND_MISSING\] backend tensorflow-gpu: no NVIDIA GPU is visible$/m);
});
