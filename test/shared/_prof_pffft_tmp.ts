const { default: loadPffft } = (await import('@echogarden/pffft-wasm/simd' as string)) as any;
const m = await loadPffft();
const med = (a: number[]) => a.sort((p, q) => p - q)[a.length >> 1];
for (const [rows, cols] of [[128, 512], [128, 384], [128, 128], [512, 128]]) {
  const half = cols / 2 + 1;
  const pr = m._pffft_new_setup(cols, 0), pc = m._pffft_new_setup(rows, 1);
  const inp = m._pffft_aligned_malloc(rows * cols * 4), out = m._pffft_aligned_malloc(rows * cols * 4), work = m._pffft_aligned_malloc(cols * 8);
  const cin = m._pffft_aligned_malloc(rows * half * 8), cout = m._pffft_aligned_malloc(rows * half * 8);
  const H = m.HEAPF32; for (let i = 0; i < rows * cols; i++) H[(inp >> 2) + i] = Math.random();
  for (let i = 0; i < rows * half * 2; i++) H[(cin >> 2) + i] = Math.random();
  const T: Record<string, number[]> = { rowsOrd: [], rowsUnord: [], colsOrd: [], colsUnord: [], transposeJS: [], copyout: [] };
  const re = new Float32Array(rows * half), im = new Float32Array(rows * half);
  for (let r = 0; r < 300; r++) {
    let t = performance.now();
    for (let i = 0; i < rows; i++) m._pffft_transform_ordered(pr, inp + i * cols * 4, out + i * cols * 4, work, 0);
    let t2 = performance.now(); T.rowsOrd.push(t2 - t); t = t2;
    for (let i = 0; i < rows; i++) m._pffft_transform(pr, inp + i * cols * 4, out + i * cols * 4, work, 0);
    t2 = performance.now(); T.rowsUnord.push(t2 - t); t = t2;
    for (let c = 0; c < half; c++) m._pffft_transform_ordered(pc, cin + c * rows * 8, cout + c * rows * 8, work, 0);
    t2 = performance.now(); T.colsOrd.push(t2 - t); t = t2;
    for (let c = 0; c < half; c++) m._pffft_transform(pc, cin + c * rows * 8, cout + c * rows * 8, work, 0);
    t2 = performance.now(); T.colsUnord.push(t2 - t); t = t2;
    // JS transpose like rowsToColumns
    const heap = m.HEAPF32, base = out >> 2, dBase = cin >> 2;
    for (let r0 = 0; r0 < rows; r0 += 16) { const r1 = Math.min(rows, r0 + 16);
      for (let k = 1; k < half - 1; k++) { let s = base + r0 * cols + 2 * k; let d = dBase + 2 * (k * rows + r0);
        for (let rr = r0; rr < r1; rr++, s += cols, d += 2) { heap[d] = heap[s]; heap[d + 1] = heap[s + 1]; } } }
    t2 = performance.now(); T.transposeJS.push(t2 - t); t = t2;
    for (let i = 0, o = cout >> 2; i < rows * half; i++, o += 2) { re[i] = heap[o]; im[i] = heap[o + 1]; }
    t2 = performance.now(); T.copyout.push(t2 - t); t = t2;
  }
  console.log(`${rows}x${cols}`, Object.entries(T).map(([k, v]) => `${k} ${med(v).toFixed(3)}`).join('  '));
}
