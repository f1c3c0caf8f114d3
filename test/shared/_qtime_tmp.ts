import * as A from './_quantile_orig_tmp.ts';
import * as B from '../../shared/quantile.ts';
const med = (a: number[]) => a.sort((p, q) => p - q)[a.length >> 1];
for (const [rows, cols] of [[65, 128], [128, 384], [128, 128], [128, 512], [512, 128], [384, 1536]]) {
  const half = (cols >> 1) + 1;
  const H = new Float32Array(rows * half);
  for (let i = 0; i < H.length; i++) H[i] = Math.hypot(Math.random() - 0.5, Math.random() - 0.5) * 3e-3;
  const ta: number[] = [], tb: number[] = [];
  for (let r = 0; r < 200; r++) {
    let t = performance.now(); A.halfSpectrumQuantile(H, rows, cols, 0.25); ta.push(performance.now() - t);
    t = performance.now(); B.halfSpectrumQuantile(H, rows, cols, 0.25); tb.push(performance.now() - t);
  }
  console.log(`${rows}x${cols}: old ${med(ta).toFixed(3)} new ${med(tb).toFixed(3)}`);
}
