// shared/wasm/heap.ts readInto: a tensor's values into a reused host buffer, read in place on the wasm backend.
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { readInto } from '../../../shared/wasm/heap.ts';

for (const backend of ['cpu', 'wasm']) {
  t.test(`readInto on the ${backend} backend: the tensor's values, into the same buffer every time, no tensor left behind`, async (t) => {
    await tf.setBackend(backend);
    const buf = new Float32Array(6);
    const before = tf.memory().numTensors;
    for (let k = 0; k < 3; k++) {
      const x = tf.tidy(() => tf.range(0, 6, 1, 'float32').reshape([2, 3]).mul(k + 0.5)); // computed, not uploaded
      const out = readInto(x, buf);
      t.equal(out, buf, 'the buffer it was given');
      t.same([...out], [...(x.dataSync() as Float32Array)], `step ${k}: the values`);
      x.dispose();
    }
    t.equal(tf.memory().numTensors, before, 'numTensors flat');
    const y = tf.zeros([5]);
    t.throws(() => readInto(y, buf), RangeError, 'a buffer of the wrong size is refused');
    y.dispose();
  });
}

