// Which CUDA devices a process sees (nvidia-smi -L and CUDA_VISIBLE_DEVICES), and which one each local worker gets.
//
// CUDA's rules, as the CUDA programming guide (environment variables) and the MIG user guide give them:
// CUDA_VISIBLE_DEVICES is a comma list of GPU indices, GPU-<uuid> or MIG-<uuid> (a unique prefix of a UUID is
// enough); devices are enumerated in the list's order; the first entry that names no device ends the list (the
// entries after it are ignored); an empty value hides every device; unset, every device is visible. A GPU in
// MIG mode is used through its MIG devices, and one CUDA process can use only one MIG device: each MIG device
// counts as a device of its own here. Indices are nvidia-smi's (PCI bus order) only when CUDA_DEVICE_ORDER is
// PCI_BUS_ID; CUDA's default numbers the fastest device first. Everything here is pure; backend.ts runs nvidia-smi.
import { ConfigError } from '../errors.ts';

/** One MIG device of a GPU in MIG mode, as nvidia-smi -L lists it under its GPU. */
export interface MigDevice {
  device: number; // its number within the GPU
  profile: string; // e.g. '3g.40gb'
  uuid: string; // MIG-…
}

/** One GPU of `nvidia-smi -L`, with its MIG devices if it is in MIG mode. */
export interface Gpu {
  index: number; // nvidia-smi's index (PCI bus order)
  name: string;
  uuid: string; // GPU-… ('' when nvidia-smi was not available)
  migs: MigDevice[];
}

/** A device a process is given: `entry` is the CUDA_VISIBLE_DEVICES value that gives a child exactly this one. */
export interface VisibleDevice {
  entry: string;
  label: string; // e.g. 'GPU 2: NVIDIA H100 80GB HBM3' or 'GPU 0: NVIDIA H100 80GB HBM3, MIG 3g.40gb device 1'
}

/** The GPUs (and MIG devices) in the output of `nvidia-smi -L`. */
export function parseNvidiaSmiList(text: string): Gpu[] {
  const gpus: Gpu[] = [];
  for (const line of text.split('\n')) {
    const g = /^GPU (\d+): (.+?) \(UUID: (GPU-[^\s)]+)\)\s*$/.exec(line);
    if (g) {
      gpus.push({ index: Number(g[1]), name: g[2]!, uuid: g[3]!, migs: [] });
      continue;
    }
    const m = /^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^\s)]+)\)\s*$/.exec(line);
    if (m && gpus.length > 0) gpus.at(-1)!.migs.push({ device: Number(m[2]), profile: m[1]!, uuid: m[3]! });
  }
  return gpus;
}

/** The devices CUDA gives a process for a GPU: its MIG devices in MIG mode, else the GPU itself under `entry`. */
function devicesOf(gpu: Gpu, entry: string): VisibleDevice[] {
  const label = `GPU ${gpu.index}: ${gpu.name}`;
  if (gpu.migs.length === 0) return [{ entry, label }];
  return gpu.migs.map((m) => ({ entry: m.uuid, label: `${label}, MIG ${m.profile} device ${m.device}` }));
}

/** The one item whose key starts with `prefix` (case-insensitive), or undefined when none or several do. */
function uniquePrefix<T>(items: T[], key: (t: T) => string, prefix: string): T | undefined {
  const p = prefix.toLowerCase();
  const hits = items.filter((t) => key(t).toLowerCase().startsWith(p));
  return hits.length === 1 ? hits[0] : undefined;
}

/**
 * The devices CUDA gives a process whose CUDA_VISIBLE_DEVICES is `cudaVisible`, in CUDA's order, each with the
 * entry that gives a child exactly it (indices stay indices, UUIDs become the full UUID, a MIG-mode GPU's devices
 * become their MIG UUIDs). `notes` says what was ignored and why.
 */
export function visibleDevices(gpus: readonly Gpu[], cudaVisible: string | undefined): { devices: VisibleDevice[]; notes: string[] } {
  const notes: string[] = [];
  if (cudaVisible === undefined) return { devices: gpus.flatMap((g) => devicesOf(g, String(g.index))), notes };
  if (cudaVisible.trim() === '') {
    notes.push('CUDA_VISIBLE_DEVICES is empty: CUDA sees no device');
    return { devices: [], notes };
  }
  const devices: VisibleDevice[] = [];
  const migs = gpus.flatMap((g) => g.migs.map((m) => ({ gpu: g, mig: m })));
  for (const raw of cudaVisible.split(',')) {
    const t = raw.trim();
    let found: VisibleDevice[] | undefined;
    if (/^\d+$/.test(t)) {
      const gpu = gpus.find((g) => g.index === Number(t));
      if (gpu) found = devicesOf(gpu, t);
    } else if (/^GPU-/i.test(t)) {
      const gpu = uniquePrefix([...gpus].filter((g) => g.uuid !== ''), (g) => g.uuid, t);
      if (gpu) found = devicesOf(gpu, gpu.uuid);
    } else if (/^MIG-/i.test(t)) {
      const hit = uniquePrefix(migs, (x) => x.mig.uuid, t);
      if (hit) found = devicesOf({ ...hit.gpu, migs: [hit.mig] }, hit.mig.uuid);
    }
    if (!found) {
      notes.push(`CUDA_VISIBLE_DEVICES=${cudaVisible}: '${t}' names no device nvidia-smi lists (nor a unique UUID prefix); CUDA ignores it and every entry after it`);
      break;
    }
    for (const d of found) {
      if (devices.some((x) => x.entry === d.entry)) notes.push(`CUDA_VISIBLE_DEVICES=${cudaVisible}: ${d.label} is listed twice; counted once`);
      else devices.push(d);
    }
  }
  return { devices, notes };
}

/** The variables set for every process before tfjs-node loads, unless the user set them (README "Backends"). */
export const TENSORFLOW_ENV = {
  // TensorFlow otherwise reserves nearly all memory of every GPU it sees at start-up
  TF_FORCE_GPU_ALLOW_GROWTH: 'true',
  // CUDA otherwise numbers devices fastest first, nvidia-smi (and so --gpus) by PCI bus
  CUDA_DEVICE_ORDER: 'PCI_BUS_ID',
} as const;

/** TENSORFLOW_ENV less what `env` already sets. */
export function tensorflowEnvDefaults(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  return Object.fromEntries(Object.entries(TENSORFLOW_ENV).filter(([k]) => env[k] === undefined));
}

export interface LaunchInput {
  gpus: readonly Gpu[]; // what nvidia-smi lists ([] on a machine without GPUs)
  env: Readonly<Record<string, string | undefined>>; // the launcher's own environment
  workers?: number; // --workers
  gpuList?: readonly number[]; // --gpus: devices as this process numbers them
  coordinatorGpu?: number; // --coordinator-gpu
  cores: number; // one worker per core when no device is visible
}

/** Where the launcher's coordinator and each local worker run, and the environment each gets. */
export interface LaunchPlan {
  visible: VisibleDevice[];
  workers: { device: VisibleDevice | null; env: Record<string, string> }[];
  coordinator: { device: VisibleDevice | null; env: Record<string, string>; hidden: boolean };
  notes: string[];
}

/**
 * The launcher's plan: worker i gets the i-th device the launcher sees (or the --gpus ones), round robin when
 * there are more workers than devices; the coordinator gets --coordinator-gpu, else no device at all (an empty
 * CUDA_VISIBLE_DEVICES), so that it takes no GPU memory from the workers. Every process gets TENSORFLOW_ENV.
 * Throws a ConfigError for flags that name devices that are not there.
 */
export function planLaunch(o: LaunchInput): LaunchPlan {
  const { devices: visible, notes } = visibleDevices(o.gpus, o.env.CUDA_VISIBLE_DEVICES);
  const none = o.gpus.length === 0 ? 'nvidia-smi lists no GPU' : `CUDA_VISIBLE_DEVICES=${o.env.CUDA_VISIBLE_DEVICES} leaves none`;
  const pick = (flag: string, i: number) => {
    if (visible.length === 0) throw new ConfigError('E_BAD_FLAG', `${flag}: no CUDA device is visible to this process (${none})`);
    if (!(Number.isInteger(i) && i >= 0 && i < visible.length)) {
      throw new ConfigError('E_BAD_FLAG', `${flag}: device ${i} is not visible; this process sees ${visible.length} (0–${visible.length - 1}: ${visible.map((d) => d.label).join('; ')})`);
    }
    return visible[i]!;
  };
  const coordinatorDevice = o.coordinatorGpu === undefined ? null : pick(`--coordinator-gpu ${o.coordinatorGpu}`, o.coordinatorGpu);

  let assigned: (VisibleDevice | null)[];
  if (o.gpuList) {
    if (o.workers !== undefined && o.workers !== o.gpuList.length) {
      throw new ConfigError('E_BAD_FLAG', `--workers ${o.workers} disagrees with --gpus ${o.gpuList.join(',')} (one worker per GPU)`);
    }
    assigned = o.gpuList.map((i) => pick(`--gpus ${o.gpuList!.join(',')}`, i));
    if (coordinatorDevice && assigned.includes(coordinatorDevice)) notes.push(`--coordinator-gpu ${o.coordinatorGpu}: the coordinator shares ${coordinatorDevice.label} with a worker`);
  } else {
    const pool = visible.filter((d) => d !== coordinatorDevice);
    if (coordinatorDevice && pool.length === 0) notes.push(`--coordinator-gpu ${o.coordinatorGpu}: the only visible device; the workers share it`);
    const devices = pool.length > 0 ? pool : coordinatorDevice ? [coordinatorDevice] : [];
    const count = o.workers ?? (devices.length > 0 ? devices.length : o.cores);
    if (count < 1) throw new ConfigError('E_BAD_FLAG', '--workers must be >= 1 (for a coordinator alone use `npm run coordinator`)');
    assigned = Array.from({ length: count }, (_, i) => (devices.length > 0 ? devices[i % devices.length]! : null));
    if (devices.length > 0 && count > devices.length) {
      const per = devices.map((d) => `${d.label} ×${assigned.filter((a) => a === d).length}`);
      notes.push(`${count} workers on ${devices.length} device(s), round robin (workers on one device share its memory and compute): ${per.join('; ')}`);
    }
  }
  const base = tensorflowEnvDefaults(o.env);
  // With no device visible at all, CUDA_VISIBLE_DEVICES is left as the user set it.
  const withDevice = (d: VisibleDevice | null): Record<string, string> => (visible.length === 0 ? { ...base } : { ...base, CUDA_VISIBLE_DEVICES: d ? d.entry : '' });
  return {
    visible,
    workers: assigned.map((device) => ({ device, env: withDevice(device) })),
    coordinator: { device: coordinatorDevice, env: withDevice(coordinatorDevice), hidden: visible.length > 0 && coordinatorDevice === null },
    notes,
  };
}
