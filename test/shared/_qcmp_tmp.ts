import * as A from './_quantile_orig_tmp.ts';
import * as B from '../../shared/quantile.ts';
let bad = 0, n = 0;
const rnd = (seed: number) => { let a = seed >>> 0; return () => { a = (a + 0x6d2b79f5) >>> 0; let x = Math.imul(a ^ (a >>> 15), 1 | a); x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x; return ((x ^ (x >>> 14)) >>> 0) / 4294967296; }; };
const shapes = [[65, 128], [128, 384], [1, 9000], [100, 101], [300, 2], [64, 128], [5000, 1], [512, 128], [128, 512]];
for (let s = 0; s < 60; s++) {
  const u = rnd(s);
  for (const [rows, cols] of shapes) {
    const half = (cols >> 1) + 1;
    const H = new Float32Array(rows * half);
    const kind = s % 6;
    for (let i = 0; i < H.length; i++) {
      const r = u();
      H[i] = kind === 0 ? Math.exp(10 * (r - 0.5)) : kind === 1 ? Math.round(r * 8) / 8 : kind === 2 ? 0.5 : kind === 3 ? (r - 0.5) * 1e3 : kind === 4 ? (r < 0.3 ? 0 : r < 0.35 ? -0 : r) : Math.sqrt(-2 * Math.log(1 - r));
    }
    for (const q of [0, 0.25, 0.5, 0.1234567, 0.75, 0.999, 1]) {
      n++;
      const a = A.halfSpectrumQuantile(H, rows, cols, q), b = B.halfSpectrumQuantile(H, rows, cols, q);
      if (!Object.is(a, b) && !(a === 0 && b === 0)) { bad++; if (bad < 10) console.log('half', rows, cols, q, kind, a, b); }
      const c = A.quantile(H, q), d = B.quantile(H, q);
      if (!Object.is(c, d) && !(c === 0 && d === 0)) { bad++; if (bad < 10) console.log('plain', rows, cols, q, kind, c, d); }
    }
  }
}
console.log(`${n} cases, ${bad} differ`);
try { B.halfSpectrumQuantile(new Float32Array(10000).fill(1).fill(NaN, 5000, 5001), 10000, 1, 0.5); } catch (e) { console.log('NaN ok', (e as Error).message); }
console.log(B.halfSpectrumQuantile(new Float32Array(10000).fill(1), 10000, 1, 0.5));
