// `npm run doctor` against fake environments (stand-in libtensorflow and nvidia-smi, no real GPU): a PATH with the stand-in
// nvidia-smi printing a recorded output, LD_LIBRARY_PATH with and without the CUDA 11 libraries, missing optional packages;
// each line's verdict and fix, --json, the exit code, and the same advice from npm run worker and npm start.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backendAdvice } from '../../shared/backend/advice.ts';
import { CUDA_LIBRARIES, type DoctorReport } from '../../scripts/doctor/checks.ts';
import { DATA, runScript, tempDir } from '../helpers.ts';
import { standInEnv } from '../standin/env.ts';

/** LD_LIBRARY_PATH's directory, with empty files named as the CUDA 11 libraries (the loader's search, not their contents, is judged). */
function cudaLibDir(withLibs: boolean): string {
  const dir = join(tempDir('smi-cuda11-'), 'lib');
  mkdirSync(dir, { recursive: true });
  if (withLibs) for (const l of CUDA_LIBRARIES) writeFileSync(join(dir, l.soname), '');
  return dir;
}

const line = (out: string, title: string) => out.split('\n').find((l) => l.startsWith(`✓ ${title} `) || l.startsWith(`✗ ${title} `)) ?? `(no ${title} line)`;
const doctor = (args: string[], env: NodeJS.ProcessEnv) => runScript('doctor', ['--data', DATA, ...args], { env: { CUDA_VISIBLE_DEVICES: undefined, TF_FORCE_GPU_ALLOW_GROWTH: undefined, CUDA_CACHE_MAXSIZE: undefined, ...env } });

t.test('stand-in GPU host (4 H100s), TensorFlow finds a GPU device, the CUDA 11 libraries on LD_LIBRARY_PATH, tfjs-node missing: auto takes tensorflow-gpu, exit 0', async (t) => {
  const libs = cudaLibDir(true);
  const env = { ...standInEnv({ packages: 'gpu' }), LD_LIBRARY_PATH: libs };
  const r = await doctor([], env);
  t.equal(r.code, 0, 'exit 0', { stdout: r.stdout, stderr: r.stderr });
  const out = r.stdout;
  t.match(line(out, 'Node'), /^✓ Node +v\d+\.\d+\.\d+ \(N-API \d+\)/);
  t.match(line(out, 'tfjs-node-gpu'), /^✓ tfjs-node-gpu +loads, and TensorFlow found a GPU device$/);
  t.match(line(out, 'tfjs-node'), /^✗ tfjs-node +not installed \[needed by tensorflow\]$/);
  t.match(out, `fix: ${backendAdvice('tensorflow', 'not-installed')}`, "tfjs-node's fix: the install command");
  t.match(line(out, 'NVIDIA GPUs'), /^✓ NVIDIA GPUs +4 × NVIDIA H100 80GB HBM3 \(81559 MiB, compute capability 9\.0\); driver 550\.90\.07, which supports CUDA ≤ 12\.4/);
  t.match(line(out, 'CUDA_VISIBLE_DEVICES'), /^✓ CUDA_VISIBLE_DEVICES +unset: 4 visible: GPU 0: NVIDIA H100 80GB HBM3; /);
  t.match(line(out, 'libcudart.so.11.0'), /^✓ libcudart\.so\.11\.0 +libcudart\.so\.11\.0 → /);
  t.match(line(out, 'libcudart.so.11.0'), `libcudart.so.11.0 → ${libs}/libcudart.so.11.0 (LD_LIBRARY_PATH)`);
  t.match(line(out, 'libcudnn.so.8'), `libcudnn.so.8 → ${libs}/libcudnn.so.8 (LD_LIBRARY_PATH)`);
  t.match(line(out, 'CUDA 11 math libs'), /^✓ CUDA 11 math libs +libcublas\.so\.11 → .*libcusparse\.so\.11 → /);
  t.match(line(out, 'GPU kernel cache'), /^✗ GPU kernel cache +compute capability 9\.0: libtensorflow 2\.9\.1 carries no machine code for it/);
  t.match(out, /fix: export CUDA_CACHE_MAXSIZE=4294967296/);
  t.match(line(out, 'wasm SIMD'), /^✓ wasm SIMD/);
  t.match(line(out, 'FFT'), /^✓ FFT +the host FFT .* loads and inverts a 48×64 transform .*tf\.spectral on tensorflow-gpu \(cuFFT/);
  t.match(line(out, 'corpus'), /^✓ corpus +.*1,115,394 bytes, sha256 verified$/);
  t.match(out, /^backends: tensorflow-gpu ✗ \(cuda-cache\) \| tensorflow ✗ \(tfjs-node\) \| wasm ✓ \| cpu ✓$/m);
  t.match(out, /^→ --backend auto takes tensorflow-gpu on GPU 0: NVIDIA H100 80GB HBM3 and 3 more visible \(4 GPU\(s\) visible and @tensorflow\/tfjs-node-gpu loaded\): usable, exit 0$/m);

  const j = await doctor(['--json'], { ...env, CUDA_CACHE_MAXSIZE: '4294967296' });
  t.equal(j.code, 0);
  const rep = JSON.parse(j.stdout) as DoctorReport;
  t.same(rep.checks.filter((c) => !c.ok).map((c) => c.id), ['tfjs-node'], '--json: the same verdicts (the cache now set)');
  t.match(rep.outcome, { ok: true, name: 'tensorflow-gpu' });
  t.same(rep.backends['tensorflow-gpu'], []);
  t.equal(rep.exit, 0);
});

t.test('stand-in CUDA-12-only host: tfjs-node-gpu loads without a GPU device, no CUDA 11 libraries; --backend tensorflow-gpu is not usable (exit 1), with the advice npm run worker and npm start print too', async (t) => {
  const env = { ...standInEnv({ gpuDevice: false }), LD_LIBRARY_PATH: cudaLibDir(false) };
  const r = await doctor(['--backend', 'tensorflow-gpu'], env);
  t.equal(r.code, 1, 'exit 1', { stdout: r.stdout, stderr: r.stderr });
  const advice = backendAdvice('tensorflow-gpu', 'no-gpu-device');
  t.match(line(r.stdout, 'tfjs-node-gpu'), /^✗ tfjs-node-gpu +loads, but TensorFlow found no GPU device \(isUsingGpuDevice false\) and would run on the CPU; libtensorflow said it could not load libcudart\.so\.11\.0, libcudnn\.so\.8 \[needed by tensorflow-gpu\]$/);
  t.match(r.stdout, `fix: ${advice}`);
  t.match(line(r.stdout, 'libcudart.so.11.0'), new RegExp(`^✗ libcudart\\.so\\.11\\.0 +libcudart\\.so\\.11\\.0 not found \\(searched LD_LIBRARY_PATH=${env.LD_LIBRARY_PATH}, `));
  t.match(r.stdout, /fix: `pip install nvidia-cuda-runtime-cu11==11\.8\.89` and add its nvidia\/cuda_runtime\/lib to LD_LIBRARY_PATH/);
  t.match(line(r.stdout, 'CUDA 11 math libs'), /^✗ CUDA 11 math libs +libcublas\.so\.11, /);
  const verdict = r.stdout.split('\n').find((l) => l.startsWith('→'))!;
  t.match(verdict, /^→ --backend tensorflow-gpu is not usable here, exit 1: \[E_NO_GPU_DEVICE\] backend tensorflow-gpu: @tensorflow\/tfjs-node-gpu loaded, but TensorFlow found no usable GPU device/);
  t.ok(verdict.endsWith(advice), 'the verdict ends with the advice');

  const worker = await runScript('worker/main', ['--connect', 'ws://127.0.0.1:9', '--backend', 'tensorflow-gpu', '--retry-for', '0'], { env });
  t.equal(worker.code, 2, 'npm run worker -- --backend tensorflow-gpu: exit 2');
  t.match(worker.stderr, /^error \[E_NO_GPU_DEVICE\]: /m);
  t.ok(worker.stderr.includes(advice), 'npm run worker prints the same advice');
  const start = await runScript('train', ['--preset', 'test', '--data', DATA, '--max-iters', '1', '--workers', '1', '--backend', 'tensorflow-gpu', '--out', join(tempDir(), 'run')], { env });
  t.equal(start.code, 2, "npm start -- --backend tensorflow-gpu: exit 2 (a worker that cannot start ends the launch, instead of waiting for it)");
  t.match(start.stderr, /^error \[E_NO_GPU_DEVICE\]: worker 0: backend tensorflow-gpu: /m);
  t.ok(start.stderr.includes(advice), 'npm start prints the same advice');
});

t.test('no GPU, neither tfjs-node package, no nvidia-smi on PATH, no corpus: auto takes wasm (exit 0), tensorflow-gpu is not usable (exit 1)', async (t) => {
  const bare = tempDir('smi-path-'); // a PATH with nothing on it: no nvidia-smi, whatever this machine has
  const env = { ...standInEnv({ packages: '' }), PATH: bare, LD_LIBRARY_PATH: undefined };
  const r = await runScript('doctor', ['--data', join(bare, 'input.txt')], { env: { ...env, CUDA_VISIBLE_DEVICES: undefined } });
  t.equal(r.code, 0, 'exit 0: the backend auto takes starts', { stdout: r.stdout, stderr: r.stderr });
  t.match(line(r.stdout, 'tfjs-node-gpu'), /^✗ tfjs-node-gpu +not installed \[needed by tensorflow-gpu\]$/);
  t.match(r.stdout, `fix: ${backendAdvice('tensorflow-gpu', 'not-installed')}`);
  t.match(line(r.stdout, 'NVIDIA GPUs'), /^✗ NVIDIA GPUs +nvidia-smi is not on PATH/);
  t.match(line(r.stdout, 'corpus'), /^✗ corpus +E_DATA_MISSING: Tiny Shakespeare not found.*workers do not \[needed by the coordinator\]$/);
  t.match(r.stdout, /fix: `npm run prepare-data`, or --data FILE/);
  t.match(r.stdout, /^→ --backend auto takes wasm on CPU \(\d+ cores\) \(no GPU visible; tfjs-node not installed; wasm is the fastest CPU backend here\): usable, exit 0$/m);
  const gpu = await runScript('doctor', ['--backend', 'tensorflow-gpu', '--json'], { env });
  t.equal(gpu.code, 1, '--backend tensorflow-gpu: exit 1');
  const rep = JSON.parse(gpu.stdout) as DoctorReport;
  t.match(rep.outcome, { ok: false, code: 'E_BACKEND_MISSING' });
  t.ok(rep.outcome.ok === false && rep.outcome.message.endsWith(backendAdvice('tensorflow-gpu', 'no-gpu-visible')), 'with the no-GPU advice');
  t.same(rep.backends['tensorflow-gpu'], ['tfjs-node-gpu', 'nvidia-smi', 'libcudart', 'libcudnn', 'cuda-math'].filter((id) => rep.checks.some((c) => c.id === id && !c.ok)));
  t.ok(rep.backends['tensorflow-gpu'].includes('tfjs-node-gpu') && rep.backends['tensorflow-gpu'].includes('nvidia-smi'));
  const bad = await runScript('doctor', ['--backend', 'gpu'], { env });
  t.equal(bad.code, 2, 'a bad --backend: exit 2');
  t.match(bad.stderr, /unknown backend 'gpu'/);
});
