// Benchmarks the host FFT libraries on the gradient shapes of the cpu and paper presets: forward + inverse, and a full SMI step.
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initFft, irfft2, rfft2, setFftLibrary, disposeFft, type FftLibrary } from '../shared/fft.ts';
import { SMI_RUNS, SpectralMomentum } from '../shared/smi.ts';

const HELP = `Usage: npx tsx scripts/bench-fft.ts [options]

Prints the median milliseconds of a 2-D real FFT forward + inverse per parameter shape, and of one full SMI
step (SpectralMomentum.apply on the host engine, run top75) over all parameters of a preset, for each host
FFT library side by side:
  auto     pffft-wasm (SIMD) on every axis whose length it supports, kissfft-wasm on the others (the default)
  kissfft  kissfft-wasm on both axes

Options:
  --preset <cpu|paper|all>  which preset's shapes (default: all)
  --reps <n>                timed repetitions per measurement, after warm-up (default: 9)
  -h, --help                this text

Examples:
  npx tsx scripts/bench-fft.ts
  npx tsx scripts/bench-fft.ts --preset cpu --reps 31

Exit codes: 0 done, 2 bad arguments.`;

const OPTIONS = {
  preset: { type: 'string', default: 'all' },
  reps: { type: 'string', default: '9' },
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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

function timeMs(reps: number, fn: () => void): number {
  for (let i = 0; i < 3; i++) fn(); // warm-up: plans, scratch buffers, JIT
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
  const grads = shapes.flatMap(([label, rows, cols, count]) =>
    Array.from({ length: count }, (_, i) => ({
      name: `${label}.${i}`,
      tensor: rows === 1 ? tf.tensor1d(randomMatrix(cols)) : tf.tensor2d(randomMatrix(rows * cols), [rows, cols]),
    })),
  );
  const apply = LIBRARIES.map((lib) => {
    setFftLibrary(lib);
    const smi = new SpectralMomentum(SMI_RUNS.top75, 'host');
    let step = 1;
    const t = timeMs(reps, () => tf.dispose(smi.apply(grads, step++, 1000).map((g) => g.tensor)));
    smi.dispose();
    return t;
  });
  console.log(`${'all parameters, SMI apply (host)'.padEnd(36)} ${apply.map(fmt).join(' ')}`);
  tf.dispose(grads.map((g) => g.tensor));
}

async function main(): Promise<number> {
  let values: { preset: string; reps: string; help: boolean };
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
  if (!Number.isInteger(reps) || reps < 1 || presets.length === 0) {
    console.error(`bad --reps ${values.reps} or --preset ${values.preset}\n\n${HELP}`);
    return 2;
  }
  await tf.setBackend('cpu'); // tensors only carry the gradients in and out here
  await initFft();
  console.log(`Node ${process.version}, median of ${reps} repetitions after warm-up; libraries: ${LIBRARIES.join(', ')}`);
  for (const p of presets) benchPreset(p, reps);
  disposeFft();
  return 0;
}

process.exitCode = await main();
