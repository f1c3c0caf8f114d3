// shared/backend/backend.ts: the GPU device label, and the backends as chosen on the stand-ins.
import t from 'tap';

t.test('the GPU device label: the one device, or the first and how many more, within a hello\'s 256 characters', async (t) => {
  const { gpuLabel } = await import('../../../shared/backend/backend.ts');
  t.equal(gpuLabel(['GPU 2: NVIDIA H100 80GB HBM3']), 'GPU 2: NVIDIA H100 80GB HBM3');
  t.equal(gpuLabel(['GPU 0: A', 'GPU 1: B', 'GPU 2: C']), 'GPU 0: A and 2 more visible');
  t.ok(gpuLabel([`GPU 0: ${'x'.repeat(400)}`]).length <= 200);
});

t.test('the install hint names the command of the npm version in use', async (t) => {
  const { installHint, npmVersion } = await import('../../../shared/backend/backend.ts');
  t.same(npmVersion('npm/11.19.1 node/v20.20.2 linux x64 workspaces/false'), [11, 19]);
  t.equal(npmVersion(''), null);
  const gpu = '@tensorflow/tfjs-node-gpu';
  t.match(installHint('tensorflow-gpu', [11, 18]), new RegExp(`your npm 11\\.18: npm 11\\.18 and later skip it until allowed: \`npm install-scripts approve ${gpu} && npm rebuild ${gpu}\``));
  t.match(installHint('tensorflow-gpu', [12, 0]), /install-scripts approve/);
  t.match(installHint('tensorflow-gpu', [11, 17]), new RegExp(`your npm 11\\.17: .*\`npm approve-scripts ${gpu}\``));
  t.match(installHint('tensorflow-gpu', [11, 16]), /approve-scripts/);
  t.match(installHint('tensorflow', [10, 9]), /your npm 10\.9: npm before 11\.16 runs it/);
  t.notMatch(installHint('tensorflow', [10, 9]), /approve/);
  const unknown = installHint('tensorflow-gpu', null);
  t.ok(['install-scripts approve', 'approve-scripts', 'before 11.16 runs it', 'CUDA 11.2', 'README "Backends"'].every((s) => unknown.includes(s)), 'npm unknown: every form, by version');
});

t.test('stand-in libtensorflow (tfjs cpu kernels), no real GPU: --backend tensorflow-gpu is refused when TensorFlow reports no GPU device; auto says it fell back', async (t) => {
  const { DATA, runScript, tempDir } = await import('../../helpers.ts');
  const { standInEnv } = await import('../../standin/env.ts');
  const { join } = await import('node:path');
  const run = ['--local', '--preset', 'test', '--data', DATA, '--max-iters', '1', '--eval-interval', '1'];
  const cuda12 = standInEnv({ gpuDevice: false }); // nvidia-smi lists H100s, libtensorflow loads but finds no device
  const refused = await runScript('train', [...run, '--backend', 'tensorflow-gpu', '--out', join(tempDir(), 'x')], { env: cuda12 });
  t.equal(refused.code, 2, 'exit 2');
  t.match(refused.stderr, /error \[E_NO_GPU_DEVICE\]: backend tensorflow-gpu: @tensorflow\/tfjs-node-gpu loaded, but TensorFlow found no usable GPU device .*isUsingGpuDevice is false.*libcudart\.so\.11\.0.*README "Backends"/);
  t.match(refused.stderr, /loaded: isUsingGpuDevice=false .*CUDA_DEVICE_ORDER=PCI_BUS_ID TF_FORCE_GPU_ALLOW_GROWTH=true/, 'the TensorFlow variables were set before libtensorflow loaded');
  const auto = await runScript('train', [...run, '--out', join(tempDir(), 'y')], { env: cuda12 });
  t.equal(auto.code, 0, 'auto trains', { stderr: auto.stderr });
  t.match(auto.stdout, /backend: tensorflow on CPU \(\d+ cores\) \(4 GPU\(s\) visible, @tensorflow\/tfjs-node-gpu loaded, but TensorFlow found no usable GPU device .*: fell back to TensorFlow on the CPU/);
  const ok = await runScript('train', [...run, '--backend', 'tensorflow-gpu', '--out', join(tempDir(), 'z')], { env: standInEnv() });
  t.equal(ok.code, 0, 'with a GPU device reported, the same command trains', { stderr: ok.stderr });
  t.match(ok.stdout, /backend: tensorflow-gpu on GPU 0: NVIDIA H100 80GB HBM3 and 3 more visible \(requested\)/);
});
