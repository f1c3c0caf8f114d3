// shared/backend/gpus.ts: nvidia-smi -L, every CUDA_VISIBLE_DEVICES form, and the launcher's per-process plan (pure; the
// listings are the stand-in nvidia-smi's: four H100s, and the same box with GPU 0 in MIG mode).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../../shared/errors.ts';
import { parseNvidiaSmiList, planLaunch, tensorflowEnvDefaults, visibleDevices, type LaunchInput } from '../../../shared/backend/gpus.ts';
import { ROOT } from '../../helpers.ts';

const listing = (name: string) => parseNvidiaSmiList(readFileSync(join(ROOT, 'test/standin', `nvidia-smi-L.${name}.txt`), 'utf8'));
const h100 = listing('h100x4');
const mig = listing('mig');
const entries = (cv: string | undefined, gpus = h100) => visibleDevices(gpus, cv).devices.map((d) => d.entry);
const plan = (o: Partial<LaunchInput>) => planLaunch({ gpus: h100, env: {}, cores: 2, ...o });
const workerDevices = (p: ReturnType<typeof planLaunch>) => p.workers.map((w) => w.env.CUDA_VISIBLE_DEVICES);

t.test('nvidia-smi -L: GPUs with names and UUIDs, MIG devices under their GPU', async (t) => {
  t.same(h100.map((g) => [g.index, g.name, g.uuid.slice(0, 13), g.migs.length]), [
    [0, 'NVIDIA H100 80GB HBM3', 'GPU-4e2a9c1d-', 0], [1, 'NVIDIA H100 80GB HBM3', 'GPU-9b1f0e6a-', 0],
    [2, 'NVIDIA H100 80GB HBM3', 'GPU-c73d5a20-', 0], [3, 'NVIDIA H100 80GB HBM3', 'GPU-1a6e8f3b-', 0],
  ]);
  t.same(mig[0]!.migs.map((m) => [m.device, m.profile, m.uuid.slice(0, 13)]), [[0, '3g.40gb', 'MIG-5f0c2b7e-'], [1, '3g.40gb', 'MIG-a81d4e6c-']]);
  t.same(mig.slice(1).map((g) => g.migs.length), [0, 0, 0]);
  t.same(parseNvidiaSmiList('No devices were found\n'), []);
});

t.test('CUDA_VISIBLE_DEVICES forms: unset, indices, GPU-/MIG- UUIDs and prefixes, empty, invalid entries, MIG counted', async (t) => {
  t.same(entries(undefined), ['0', '1', '2', '3'], 'unset: every GPU, by index');
  t.same(entries('2,3'), ['2', '3'], 'indices in the given order');
  t.same(entries('3,1'), ['3', '1'], 'the list order is CUDA order');
  t.same(entries(' 2 , 3 '), ['2', '3'], 'spaces around entries');
  t.same(entries(h100[2]!.uuid), [h100[2]!.uuid], 'a full GPU UUID');
  t.same(entries('GPU-c73d,GPU-1a6e'), [h100[2]!.uuid, h100[3]!.uuid], 'unique UUID prefixes, as CUDA allows; the entry becomes the full UUID');
  t.same(entries('gpu-C73D5A20'), [h100[2]!.uuid], 'UUIDs compared without case');
  t.same(entries(''), [], 'empty hides every device');
  t.same(entries('  '), [], 'blank too');
  t.match(visibleDevices(h100, '').notes.join(), /empty: CUDA sees no device/);
  const bad = visibleDevices(h100, '1,7,2');
  t.same(bad.devices.map((d) => d.entry), ['1'], 'an index nvidia-smi does not list ends the list (CUDA ignores it and all after it)');
  t.match(bad.notes.join(), /'7' names no device .* ignores it and every entry after it/);
  t.same(entries('GPU-,2'), [], 'an ambiguous prefix names no device');
  t.same(entries('-1,0'), [], 'a negative index ends the list at once');
  t.same(entries('GPU-ffffffff'), [], 'a UUID of another machine');
  const twice = visibleDevices(h100, '1,1,2');
  t.same(twice.devices.map((d) => d.entry), ['1', '2'], 'a device listed twice counts once');
  t.match(twice.notes.join(), /listed twice/);

  const m0 = mig[0]!.migs.map((m) => m.uuid);
  t.same(entries(undefined, mig), [...m0, '1', '2', '3'], 'MIG mode: GPU 0 counts as its two MIG devices, by MIG UUID');
  t.same(entries('0', mig), m0, 'the index of a GPU in MIG mode gives its MIG devices');
  t.same(entries(mig[0]!.uuid, mig), m0, 'and so does its GPU UUID');
  t.same(entries('MIG-a81d', mig), [m0[1]], 'a MIG UUID prefix: that MIG device alone');
  t.same(entries(`${m0[1]},3`, mig), [m0[1], '3'], 'MIG and index entries together');
  t.same(visibleDevices(mig, 'MIG-a81d').devices.map((d) => d.label), ['GPU 0: NVIDIA H100 80GB HBM3, MIG 3g.40gb device 1']);
});

t.test('launcher plan: --workers, round robin, a parent\'s 2,3, --gpus, UUIDs, MIG, empty, no GPU', async (t) => {
  t.same(workerDevices(plan({})), ['0', '1', '2', '3'], 'default: one worker per visible GPU');
  t.same(workerDevices(plan({ workers: 2 })), ['0', '1'], '--workers 2: the first two');
  const rr = plan({ workers: 6 });
  t.same(workerDevices(rr), ['0', '1', '2', '3', '0', '1'], '--workers 6 on 4 GPUs: round robin');
  t.match(rr.notes.join(), /6 workers on 4 device\(s\), round robin .*GPU 0: NVIDIA H100 80GB HBM3 ×2; GPU 1: .* ×2; GPU 2: .* ×1/);
  t.same(plan({ workers: 4 }).notes, [], 'no note when every worker has a GPU of its own');

  t.same(workerDevices(plan({ env: { CUDA_VISIBLE_DEVICES: '2,3' } })), ['2', '3'], "a parent's CUDA_VISIBLE_DEVICES=2,3: worker i gets its i-th device");
  t.same(workerDevices(plan({ env: { CUDA_VISIBLE_DEVICES: '2,3' }, workers: 3 })), ['2', '3', '2'], 'and round robin over those two only');
  t.same(workerDevices(plan({ env: { CUDA_VISIBLE_DEVICES: '2,3' }, gpuList: [1] })), ['3'], '--gpus numbers devices as the launcher sees them: 1 is GPU 3');
  t.same(workerDevices(plan({ gpuList: [0, 2] })), ['0', '2'], '--gpus 0,2');
  t.throws(() => plan({ env: { CUDA_VISIBLE_DEVICES: '2,3' }, gpuList: [2] }), { code: 'E_BAD_FLAG', message: /device 2 is not visible; this process sees 2 \(0–1: GPU 2: .*; GPU 3: / });
  t.throws(() => plan({ gpuList: [0, 1], workers: 3 }), ConfigError, '--workers must agree with --gpus');
  const uu = h100.slice(2).map((g) => g.uuid);
  t.same(workerDevices(plan({ env: { CUDA_VISIBLE_DEVICES: 'GPU-c73d,GPU-1a6e' } })), uu, 'UUIDs: each worker gets one full UUID');

  const m0 = mig[0]!.migs.map((m) => m.uuid);
  t.same(workerDevices(plan({ gpus: mig })), [...m0, '1', '2', '3'], 'MIG: one worker per MIG device (a CUDA process can use only one)');
  t.same(workerDevices(plan({ gpus: mig, env: { CUDA_VISIBLE_DEVICES: '0' }, workers: 3 })), [m0[0], m0[1], m0[0]], 'a parent limited to GPU 0 in MIG mode: its two MIG devices, round robin');

  const empty = plan({ env: { CUDA_VISIBLE_DEVICES: '' } });
  t.equal(empty.workers.length, 2, 'empty: no device, one worker per core');
  t.ok(empty.workers.every((w) => !('CUDA_VISIBLE_DEVICES' in w.env)), "the workers inherit the parent's empty value");
  t.throws(() => plan({ env: { CUDA_VISIBLE_DEVICES: '' }, gpuList: [0] }), { code: 'E_BAD_FLAG', message: /no CUDA device is visible .*CUDA_VISIBLE_DEVICES= leaves none/ });
  const cpuBox = planLaunch({ gpus: [], env: {}, cores: 3 });
  t.same(cpuBox.workers.map((w) => w.device), [null, null, null], 'no GPU: one worker per core, no device');
  t.ok(cpuBox.workers.every((w) => !('CUDA_VISIBLE_DEVICES' in w.env)) && !cpuBox.coordinator.hidden, 'and CUDA_VISIBLE_DEVICES left alone');
  t.throws(() => planLaunch({ gpus: [], env: {}, cores: 2, gpuList: [0, 1] }), { message: /--gpus 0,1: no CUDA device is visible .*nvidia-smi lists no GPU/ });
  t.throws(() => plan({ workers: 0 }), { code: 'E_BAD_FLAG' });
});

t.test("the coordinator's environment: kept off the workers' GPUs, or one of its own by --coordinator-gpu; allow-growth and PCI order everywhere", async (t) => {
  const p = plan({ workers: 2 });
  t.equal(p.coordinator.device, null);
  t.ok(p.coordinator.hidden);
  t.same(p.coordinator.env, { TF_FORCE_GPU_ALLOW_GROWTH: 'true', CUDA_DEVICE_ORDER: 'PCI_BUS_ID', CUDA_VISIBLE_DEVICES: '' }, 'the coordinator sees no GPU');
  for (const w of p.workers) t.match(w.env, { TF_FORCE_GPU_ALLOW_GROWTH: 'true', CUDA_DEVICE_ORDER: 'PCI_BUS_ID' });

  const own = plan({ coordinatorGpu: 0 });
  t.equal(own.coordinator.env.CUDA_VISIBLE_DEVICES, '0', '--coordinator-gpu 0: GPU 0 for the coordinator');
  t.same(workerDevices(own), ['1', '2', '3'], 'and the workers take the others');
  const shared = plan({ coordinatorGpu: 0, gpuList: [0, 1] });
  t.same(workerDevices(shared), ['0', '1'], 'with --gpus listing it, a worker shares it');
  t.match(shared.notes.join(), /shares GPU 0: .* with a worker/);
  const migPlan = plan({ gpus: mig, coordinatorGpu: 1, workers: 2 });
  t.equal(migPlan.coordinator.env.CUDA_VISIBLE_DEVICES, mig[0]!.migs[1]!.uuid, 'MIG: --coordinator-gpu 1 is the second MIG device');
  t.same(workerDevices(migPlan), [mig[0]!.migs[0]!.uuid, '1'], 'the workers take the other devices');
  t.throws(() => plan({ coordinatorGpu: 4 }), { message: /--coordinator-gpu 4: device 4 is not visible/ });

  const user = planLaunch({ gpus: h100, env: { TF_FORCE_GPU_ALLOW_GROWTH: 'false', CUDA_DEVICE_ORDER: 'FASTEST_FIRST' }, cores: 2, workers: 1 });
  t.same(user.workers[0]!.env, { CUDA_VISIBLE_DEVICES: '0' }, "a user's own values are kept (inherited, not overwritten)");
  t.same(tensorflowEnvDefaults({ CUDA_DEVICE_ORDER: 'PCI_BUS_ID' }), { TF_FORCE_GPU_ALLOW_GROWTH: 'true' });
});
