import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as N from '../../shared/smi.ts';
import * as Nfft from '../../shared/fft.ts';
await tf.setBackend('wasm'); await tf.ready(); await Nfft.initFft();
const preset = process.argv[2] ?? 'cpu';
const shapes: [string, number[], number][] = preset === 'cpu' ? [
  ['wte', [65, 128], 1], ['wpe', [64, 128], 1], ['ln', [128], 9], ['c_attn', [128, 384], 4], ['attn.c_proj', [128, 128], 4], ['c_fc', [128, 512], 4], ['mlp.c_proj', [512, 128], 4]]
  : [['wte', [65, 384], 1], ['wpe', [256, 384], 1], ['ln', [384], 13], ['c_attn', [384, 1152], 6], ['attn.c_proj', [384, 384], 6], ['c_fc', [384, 1536], 6], ['mlp.c_proj', [1536, 384], 6]];
const g = shapes.flatMap(([n, shape, count]) => Array.from({ length: count }, (_, i) => ({ name: `${n}.${i}`, tensor: tf.randomNormal(shape, 0, 1e-3, 'float32', i) })));
const nn = new N.SpectralMomentum(N.SMI_RUNS.cosine, 'host');
const ts: number[] = [];
for (let s = 1; s <= Number(process.argv[3] ?? 300); s++) { const t0 = performance.now(); tf.dispose(nn.apply(g, s, 2000).map((x) => x.tensor)); ts.push(performance.now() - t0); }
console.log('median ms', ts.sort((a, b) => a - b)[ts.length >> 1].toFixed(2));
