import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { initFft, rfft2, irfft2, halfCols } from '../../shared/fft.ts';
import { forward, magnitude, updateHistory, threshold, maskedBlend, maskChecksum } from '../../shared/smi.ts';
import { halfSpectrumQuantile } from '../../shared/quantile.ts';
await tf.setBackend('wasm'); await tf.ready();
await initFft();
const preset = process.argv[2] ?? 'cpu';
const shapes: [string, number, number, number][] = preset === 'cpu' ? [
  ['wte', 65, 128, 1], ['wpe', 64, 128, 1], ['ln', 1, 128, 9], ['c_attn', 128, 384, 4], ['attn.c_proj', 128, 128, 4], ['c_fc', 128, 512, 4], ['mlp.c_proj', 512, 128, 4]]
  : [['wte', 65, 384, 1], ['wpe', 256, 384, 1], ['ln', 1, 384, 13], ['c_attn', 384, 1152, 6], ['attn.c_proj', 384, 384, 6], ['c_fc', 384, 1536, 6], ['mlp.c_proj', 1536, 384, 6]];
const stages = ['dataSync', 'rfft2', 'magnitude', 'ema', 'quantile', 'mask+irfft2+blend', 'checksum', 'upload'];
const reps = Number(process.argv[3] ?? 15);
const tot = stages.map(() => 0);
console.log(['shape', ...stages].join('\t'));
for (const [name, rows, cols, count] of shapes) {
  const x = new Float32Array(rows * cols).map(() => Math.random() - 0.5);
  const g = tf.tensor2d(x, [rows, cols]);
  let H: Float32Array | null = null;
  const times: number[][] = stages.map(() => []);
  for (let r = 0; r < reps + 3; r++) {
    const t: number[] = [performance.now()];
    const G = g.dataSync() as Float32Array; t.push(performance.now());
    const spec = forward(G, rows, cols); t.push(performance.now());
    const M = magnitude(spec); t.push(performance.now());
    H = updateHistory(H, M, 0.99); t.push(performance.now());
    const tau = threshold(H, rows, cols, 0.25); t.push(performance.now());
    const out = maskedBlend(spec, G, H, tau, 0.3); t.push(performance.now());
    maskChecksum(H, tau); t.push(performance.now());
    const o = tf.tensor(out, [rows, cols]); t.push(performance.now());
    o.dispose();
    if (r >= 3) for (let i = 0; i < stages.length; i++) times[i].push(t[i + 1] - t[i]);
  }
  const med = times.map((ts) => ts.sort((a, b) => a - b)[ts.length >> 1]);
  med.forEach((m, i) => (tot[i] += m * count));
  console.log([`${name} ${rows}x${cols} x${count}`, ...med.map((m) => m.toFixed(3))].join('\t'));
}
console.log(['total', ...tot.map((m) => m.toFixed(2))].join('\t'), 'sum', tot.reduce((a, b) => a + b).toFixed(2));
