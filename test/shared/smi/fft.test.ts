// The host 2-D real FFT (shared/smi/fft.ts), both libraries, against the float64 complex DFT of reference.ts.
import t from 'tap';
import { disposeFft, halfCols, initFft, irfft2, rfft2, setFftLibrary, type FftLibrary } from '../../../shared/smi/fft.ts';
import { dft2, halfOf, halfIndex, randn, relErr, relErrC } from './reference.ts';

await initFft();
t.teardown(() => disposeFft());

// ---- FFT against the reference -----------------------------------------------------------------------------

const LIBS: FftLibrary[] = ['auto', 'kissfft'];
const HOST_SHAPES: [number, number][] = [
  [65, 128],
  [96, 160],
  [1, 32],
  [384, 1152],
  [64, 128],
  [7, 33],
  [5, 7],
  [2, 2],
  [3, 1],
  [1, 1],
];

t.test('host rfft2 / irfft2 against the float64 DFT (both libraries)', async (t) => {
  for (const [rows, cols] of HOST_SHAPES) {
    const x = randn(rows * cols, rows * 1000 + cols);
    const full = dft2(x, null, rows, cols);
    const ref = halfOf(full, rows, cols);
    for (const lib of LIBS) {
      setFftLibrary(lib);
      const spec = rfft2(x, rows, cols);
      const fwd = relErrC(spec.re, spec.im, ref.re, ref.im);
      t.ok(fwd < 1e-5, `${lib} forward ${rows}×${cols}: rel err ${fwd.toExponential(2)}`);
      const refCopy = { re: ref.re.slice(), im: ref.im.slice() };
      const back = irfft2(ref);
      const inv = relErr(back, x);
      t.ok(inv < 1e-5, `${lib} inverse ${rows}×${cols}: rel err ${inv.toExponential(2)}`);
      t.ok(ref.re.every((v, i) => v === refCopy.re[i]) && ref.im.every((v, i) => v === refCopy.im[i]), 'irfft2 leaves its input alone');
    }
  }
  setFftLibrary('auto');
});

t.test('host FFT after the wasm heaps grow (a 1024 × 2048 matrix): round trip and spot bins', async (t) => {
  const [rows, cols] = [1024, 2048];
  const x = randn(rows * cols, 99);
  for (const lib of LIBS) {
    setFftLibrary(lib);
    rfft2(randn(6, 1), 2, 3); // something small first, so the big one grows buffers that already exist
    const spec = rfft2(x, rows, cols);
    for (const [k1, k2] of [[0, 0], [1, 2], [513, 1024], [1023, 777]]) {
      let sr = 0;
      let si = 0;
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const a = -2 * Math.PI * (((k1 * r) % rows) / rows + ((k2 * c) % cols) / cols);
          sr += x[r * cols + c] * Math.cos(a);
          si += x[r * cols + c] * Math.sin(a);
        }
      }
      const i = k2 * rows + k1;
      const err = Math.hypot(spec.re[i] - sr, spec.im[i] - si) / Math.sqrt(rows * cols); // vs the typical |X|
      t.ok(err < 1e-5, `${lib} X[${k1}][${k2}]: error ${err.toExponential(2)} of a typical bin`);
    }
    const err = relErr(irfft2(spec), x);
    t.ok(err < 1e-5, `${lib} round trip: rel err ${err.toExponential(2)}`);
  }
  setFftLibrary('auto');
});
