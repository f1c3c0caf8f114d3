// shared/backend/backend.ts: the GPU device label, and the backends as chosen on the stand-ins.
import t from 'tap';

t.test('the GPU device label: the one device, or the first and how many more, within a hello\'s 256 characters', async (t) => {
  const { gpuLabel } = await import('../../../shared/backend/backend.ts');
  t.equal(gpuLabel(['GPU 2: NVIDIA H100 80GB HBM3']), 'GPU 2: NVIDIA H100 80GB HBM3');
  t.equal(gpuLabel(['GPU 0: A', 'GPU 1: B', 'GPU 2: C']), 'GPU 0: A and 2 more visible');
  t.ok(gpuLabel([`GPU 0: ${'x'.repeat(400)}`]).length <= 200);
});

t.test('stand-in libtensorflow (tfjs cpu kernels), no real GPU: --backend tensorflow-gpu is refused when TensorFlow reports no GPU device; auto says it fell back', async (t) => {
  const { DATA, runScript, tempDir } = await import('../../helpers.ts');
  const { standInEnv } = await import('../../standin/env.ts');
  const { join } = await import('node:path');
  const run = ['--local', '--preset', 'test', '--data', DATA, '--max-iters', '1', '--eval-interval', '1'];
  const cuda12 = standInEnv({ gpuDevice: false }); // nvidia-smi lists H100s, libtensorflow loads but finds no device
  const refused = await runScript('train', [...run, '--backend', 'tensorflow-gpu', '--out', join(tempDir(), 'x')], { env: cuda12 });
  t.equal(refused.code, 2, 'exit 2');
  t.match(refused.stderr, /error \[E_NO_GPU_DEVICE\]: backend tensorflow-gpu: @tensorflow\/tfjs-node-gpu loaded, but TensorFlow found no usable GPU device .*isUsingGpuDevice is false.*libcudart\.so\.11\.0.*npm run doctor -- --backend tensorflow-gpu.*docs\/gpu\.md/);
  t.match(refused.stderr, /loaded: isUsingGpuDevice=false .*CUDA_DEVICE_ORDER=PCI_BUS_ID TF_FORCE_GPU_ALLOW_GROWTH=true/, 'the TensorFlow variables were set before libtensorflow loaded');
  const auto = await runScript('train', [...run, '--out', join(tempDir(), 'y')], { env: cuda12 });
  t.equal(auto.code, 0, 'auto trains', { stderr: auto.stderr });
  t.match(auto.stdout, /backend: tensorflow on CPU \(\d+ cores\) \(4 GPU\(s\) visible, @tensorflow\/tfjs-node-gpu loaded, but TensorFlow found no usable GPU device .*: fell back to TensorFlow on the CPU/);
  t.match(auto.stdout, /\nthe GPUs are not used: libtensorflow 2\.9\.1 needs the CUDA 11 libraries .*`npm run doctor -- --backend tensorflow-gpu`/, 'and says what to do');
  const ok = await runScript('train', [...run, '--backend', 'tensorflow-gpu', '--out', join(tempDir(), 'z')], { env: standInEnv() });
  t.equal(ok.code, 0, 'with a GPU device reported, the same command trains', { stderr: ok.stderr });
  t.match(ok.stdout, /backend: tensorflow-gpu on GPU 0: NVIDIA H100 80GB HBM3 and 3 more visible \(requested\)/);
});
