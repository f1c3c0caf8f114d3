import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as O from './_orig_tmp/smi.ts';
import * as Offt from './_orig_tmp/fft.ts';
import * as N from '../../shared/smi.ts';
import * as Nfft from '../../shared/fft.ts';
const backend = process.argv[2] ?? 'wasm';
const preset = process.argv[3] ?? 'cpu';
await tf.setBackend(backend); await tf.ready();
await Offt.initFft(); await Nfft.initFft();
const shapes: [string, number[], number][] = preset === 'cpu' ? [
  ['wte', [65, 128], 1], ['wpe', [64, 128], 1], ['ln', [128], 9], ['c_attn', [128, 384], 4], ['attn.c_proj', [128, 128], 4], ['c_fc', [128, 512], 4], ['mlp.c_proj', [512, 128], 4]]
  : [['wte', [65, 384], 1], ['wpe', [256, 384], 1], ['ln', [384], 13], ['c_attn', [384, 1152], 6], ['attn.c_proj', [384, 384], 6], ['c_fc', [384, 1536], 6], ['mlp.c_proj', [1536, 384], 6]];
const mk = (s: number) => shapes.flatMap(([n, shape, count]) => Array.from({ length: count }, (_, i) => ({ name: `${n}.${i}`, tensor: tf.randomNormal(shape, 0, 1e-3, 'float32', s * 100 + i) })));
const o = new O.SpectralMomentum(O.SMI_RUNS.cosine, 'host');
const nn = new N.SpectralMomentum(N.SMI_RUNS.cosine, 'host');
const to: number[] = [], tn: number[] = [];
let diff = 0;
const steps = Number(process.argv[4] ?? 30);
for (let s = 1; s <= steps; s++) {
  const g = mk(s);
  const order = s % 2 ? [0, 1] : [1, 0];
  let ro: N.NamedTensor[] = [], rn: N.NamedTensor[] = [];
  for (const w of order) {
    const t0 = performance.now();
    if (w === 0) ro = o.apply(g, s, 2000); else rn = nn.apply(g, s, 2000);
    const dt = performance.now() - t0;
    (w === 0 ? to : tn).push(dt);
  }
  for (let i = 0; i < g.length; i++) {
    const a = ro[i].tensor.dataSync(), b = rn[i].tensor.dataSync();
    for (let j = 0; j < a.length; j++) if (!Object.is(a[j], b[j])) { diff++; break; }
  }
  if (o.lastMaskChecksum !== nn.lastMaskChecksum) diff++;
  tf.dispose([...g.map((x) => x.tensor), ...ro.map((x) => x.tensor), ...rn.map((x) => x.tensor)]);
}
const sa = JSON.stringify(o.getState().map((e) => Array.from(e.data))) === JSON.stringify(nn.getState().map((e) => Array.from(e.data)));
const med = (a: number[]) => a.slice(3).sort((p, q) => p - q)[(a.length - 3) >> 1];
console.log(`${backend} ${preset}: old ${med(to).toFixed(2)} ms, new ${med(tn).toFixed(2)} ms; ratio ${(med(tn) / med(to)).toFixed(3)}; differing tensors ${diff}; state equal ${sa}; numTensors ${tf.memory().numTensors}`);
