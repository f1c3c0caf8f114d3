// temporary experiment: forward+backward timing of the cpu preset, batch 12
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../shared/backend.ts';
import { resolveConfig } from '../shared/config.ts';
import { GPT } from '../shared/model.ts';
const backend = await initBackend('wasm');
const cfg = resolveConfig({ preset: 'cpu' });
const model = new GPT(cfg, 1337);
const n = 12, B = cfg.block_size;
const x = new Int32Array(n * B).map((_, i) => (i * 7) % 65), y = new Int32Array(n * B).map((_, i) => (i * 11) % 65);
const times: number[] = [];
const steps = Number(process.argv[2] ?? 60);
for (let s = 0; s < steps; s++) {
  const t0 = performance.now();
  const { grads } = model.gradients(x, y, n, [1, 2, s], n);
  const host = grads.map((g) => g.dataSync());
  tf.dispose(grads);
  times.push(performance.now() - t0);
  void host;
}
const t = times.slice(10).sort((a, b) => a - b);
console.log(`pid ${process.pid}: median ${t[t.length >> 1]!.toFixed(1)} p10 ${t[Math.floor(t.length * 0.1)]!.toFixed(1)} p90 ${t[Math.floor(t.length * 0.9)]!.toFixed(1)} ms (${backend.name})`);
