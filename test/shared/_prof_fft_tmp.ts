import { initFft, rfft2, irfft2 } from '../../shared/fft.ts';
await initFft();
const shapes: [number, number][] = [[65, 128], [64, 128], [1, 128], [128, 384], [128, 128], [128, 512], [512, 128]];
for (const [rows, cols] of shapes) {
  const x = new Float32Array(rows * cols).map(() => Math.random() - 0.5);
  const spec = rfft2(x, rows, cols);
  const y = new Float32Array(rows * cols);
  const tf: number[] = [], ti: number[] = [];
  for (let r = 0; r < 400; r++) {
    const t0 = performance.now();
    rfft2(x, rows, cols, spec);
    const t1 = performance.now();
    irfft2(spec, y);
    const t2 = performance.now();
    tf.push(t1 - t0); ti.push(t2 - t1);
  }
  const med = (a: number[]) => a.sort((p, q) => p - q)[a.length >> 1];
  console.log(`${rows}x${cols}: fwd ${med(tf).toFixed(3)} inv ${med(ti).toFixed(3)}  ns/elt ${(1e6 * (med(tf) + med(ti)) / (rows * cols)).toFixed(2)}`);
}
