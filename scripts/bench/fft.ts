// Benchmarks the host FFT libraries on the gradient shapes of the cpu and paper presets: forward + inverse, and a full SMI step.
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { initFft, irfft2, rfft2, setFftLibrary, disposeFft, type FftLibrary } from '../../shared/smi/fft.ts';
import { SMI_RUNS, alphaAt } from '../../shared/smi/runs.ts';
import { SpectralMomentum } from '../../shared/smi/smi.ts';
import { HOST_STAGES, setHostSimd } from '../../shared/smi/host.ts';
import { median } from '../../shared/stats.ts';

const HELP = `Usage: npm run bench -- fft [options]

Prints the median milliseconds of a 2-D real FFT forward + inverse per parameter shape, and of one full SMI
step (SpectralMomentum.apply on the host engine, run top75) over all parameters of a preset, for each host
FFT library side by side:
  auto     pffft-wasm (SIMD) on every axis whose length it supports, kissfft-wasm on the others (the default)
  kissfft  kissfft-wasm on both axes
The SMI step is also timed with its passes in JS only (no wasm kernels: shared/smi/host.ts setHostSimd).
With --stages, instead: the host SMI step (run cosine) split into its stages, per parameter shape.

Options:
  --preset <cpu|paper|all>  which preset's shapes (default: all)
  --reps <n>                timed repetitions per measurement, after warm-up (default: 9)
  --backend <wasm|cpu>      tfjs backend holding the gradients (default: wasm, as training on a CPU)
  --stages                  per-stage table of the host SMI step instead
  -h, --help                this text

Examples:
  npm run bench -- fft
  npm run bench -- fft --preset cpu --reps 31
  npm run bench -- fft --preset cpu --stages --reps 51

Exit codes: 0 done, 2 bad arguments.`;

const OPTIONS = {
  preset: { type: 'string', default: 'all' },
  reps: { type: 'string', default: '9' },
  backend: { type: 'string', default: 'wasm' },
  stages: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** [name, rows, cols, how many per model] with Linear weights as [in, out] (the 2-D view SMI transforms). */
type Shape = [string, number, number, number];

function presetShapes(nEmbd: number, nLayer: number, block: number, vocab: number): Shape[] {
  return [
    ['wte', vocab, nEmbd, 1],
    ['wpe', block, nEmbd, 1],
    ['ln_1, ln_2, ln_f', 1, nEmbd, 2 * nLayer + 1],
    ['attn.c_attn', nEmbd, 3 * nEmbd, nLayer],
    ['attn.c_proj', nEmbd, nEmbd, nLayer],
    ['mlp.c_fc', nEmbd, 4 * nEmbd, nLayer],
    ['mlp.c_proj', 4 * nEmbd, nEmbd, nLayer],
  ];
}

const PRESETS: Record<'cpu' | 'paper', Shape[]> = {
  cpu: presetShapes(128, 4, 64, 65),
  paper: presetShapes(384, 6, 256, 65),
};
const LIBRARIES: FftLibrary[] = ['auto', 'kissfft'];


/** Warm-up calls before an SMI step is timed: V8 tiers the wasm kernels and JS up over the first few dozen. */
const SMI_WARMUP = 30;

function timeMs(reps: number, fn: () => void, warmup = 3): number {
  for (let i = 0; i < warmup; i++) fn(); // warm-up: plans, scratch buffers, JIT
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

function randomMatrix(n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.random() * 2 - 1;
  return x;
}

const fmt = (ms: number) => ms.toFixed(ms < 10 ? 2 : 1).padStart(9);

function benchPreset(name: 'cpu' | 'paper', reps: number): void {
  const shapes = PRESETS[name];
  const params = shapes.reduce((n, [, r, c, k]) => n + r * c * k, 0);
  console.log(`\n${name} preset: ${(params / 1e6).toFixed(2)}M parameters in ${shapes.reduce((n, s) => n + s[3], 0)} tensors`);
  console.log(`${'shape'.padEnd(30)} ${'count'.padStart(5)} ${LIBRARIES.map((l) => l.padStart(9)).join(' ')}   (ms, forward + inverse, median)`);
  const totals = LIBRARIES.map(() => 0);
  // Warm every code path (both libraries, all shapes) first, so the first rows of the table are not JIT time.
  for (const lib of LIBRARIES) {
    setFftLibrary(lib);
    for (const [, rows, cols] of shapes) for (let i = 0; i < 5; i++) irfft2(rfft2(randomMatrix(rows * cols), rows, cols));
  }
  for (const [label, rows, cols, count] of shapes) {
    const x = randomMatrix(rows * cols);
    const ms = LIBRARIES.map((lib, i) => {
      setFftLibrary(lib);
      const t = timeMs(reps, () => irfft2(rfft2(x, rows, cols)));
      totals[i] += t * count;
      return t;
    });
    console.log(`${`${label} ${rows}×${cols}`.padEnd(30)} ${String(count).padStart(5)} ${ms.map(fmt).join(' ')}`);
  }
  console.log(`${'all parameters, FFTs only'.padEnd(36)} ${totals.map(fmt).join(' ')}`);

  // One SMI step (top75) over every parameter, host engine: download, FFT, magnitude, EMA, quantile, mask, inverse, upload.
  const grads = gradsOf(shapes);
  const applyMs = () => {
    const smi = new SpectralMomentum(SMI_RUNS.top75, 'host');
    let step = 1;
    const t = timeMs(reps, () => tf.dispose(smi.apply(grads, step, alphaAt(SMI_RUNS.top75, step++, 1000)).map((g) => g.tensor)), SMI_WARMUP);
    smi.dispose();
    return t;
  };
  const apply = LIBRARIES.map((lib) => {
    setFftLibrary(lib);
    return applyMs();
  });
  setFftLibrary('auto');
  console.log(`${'all parameters, SMI apply (host)'.padEnd(36)} ${apply.map(fmt).join(' ')}`);
  setHostSimd(false);
  console.log(`${'  the same, passes in JS only'.padEnd(36)} ${fmt(applyMs())}`);
  setHostSimd(true);
  tf.dispose(grads.map((g) => g.tensor));
}

/** `count` random gradients of each shape, named by shape and index (1-D for one row, as LayerNorm gains). */
function gradsOf(shapes: Shape[]): { name: string; tensor: tf.Tensor }[] {
  return shapes.flatMap(([label, rows, cols, count]) =>
    Array.from({ length: count }, (_, i) => ({
      name: `${label}.${i}`,
      tensor: rows === 1 ? tf.tensor1d(randomMatrix(cols)) : tf.tensor2d(randomMatrix(rows * cols), [rows, cols]),
    })),
  );
}

/** The host SMI step (run cosine) per stage and per shape: ms per step over all tensors of the shape. */
function benchStages(name: 'cpu' | 'paper', reps: number): void {
  const shapes = PRESETS[name];
  console.log(`\n${name} preset: host SMI step (cosine) by stage, ms per step for all tensors of a shape, median of ${reps} steps`);
  const cols = [...HOST_STAGES, 'all'];
  console.log(`${'shape'.padEnd(24)} ${'count'.padStart(5)} ${cols.map((c) => c.padStart(12)).join('')}`);
  const totals = new Float64Array(cols.length);
  for (const shape of shapes) {
    const [label, rows, c, count] = shape;
    const grads = gradsOf([shape]);
    const smi = new SpectralMomentum(SMI_RUNS.cosine, 'host');
    const runs: Float64Array[] = [];
    for (let step = 1; step <= reps + SMI_WARMUP; step++) {
      const profile = new Float64Array(HOST_STAGES.length);
      smi.hostProfile = profile;
      const t0 = performance.now();
      tf.dispose(smi.apply(grads, step, alphaAt(SMI_RUNS.cosine, step, 2000)).map((g) => g.tensor));
      const all = performance.now() - t0;
      if (step > SMI_WARMUP) runs.push(Float64Array.from([...profile, all]));
    }
    smi.dispose();
    tf.dispose(grads.map((g) => g.tensor));
    const med = cols.map((_, i) => median(runs.map((r) => r[i])));
    med.forEach((m, i) => (totals[i] += m));
    console.log(`${`${label} ${rows}×${c}`.padEnd(24)} ${String(count).padStart(5)} ${med.map((m) => m.toFixed(3).padStart(12)).join('')}`);
  }
  console.log(`${'all parameters'.padEnd(30)} ${[...totals].map((m) => m.toFixed(3).padStart(12)).join('')}`);
}

async function main(): Promise<number> {
  let values: { preset: string; reps: string; backend: string; stages: boolean; help: boolean };
  try {
    ({ values } = parseArgs({ options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const reps = Number(values.reps);
  const presets: ('cpu' | 'paper')[] = values.preset === 'all' ? ['cpu', 'paper'] : [];
  if (values.preset === 'cpu' || values.preset === 'paper') presets.push(values.preset);
  if (!Number.isInteger(reps) || reps < 1 || presets.length === 0 || !['wasm', 'cpu'].includes(values.backend)) {
    console.error(`bad --reps ${values.reps}, --preset ${values.preset} or --backend ${values.backend}\n\n${HELP}`);
    return 2;
  }
  tf.enableProdMode();
  await tf.setBackend(values.backend); // tensors only carry the gradients in and out here
  await initFft();
  console.log(`Node ${process.version}, tfjs backend ${tf.getBackend()}, median of ${reps} repetitions after warm-up; libraries: ${LIBRARIES.join(', ')}`);
  for (const p of presets) (values.stages ? benchStages : benchPreset)(p, reps);
  disposeFft();
  return 0;
}

process.exitCode = await main();
