function blend(heap: Float32Array, base: number, scale: number, G: Float32Array, out: Float32Array, alpha: number): void {
  const a = Math.fround(alpha), c = Math.fround(1 - alpha), n = out.length;
  for (let i = 0, o = base; i < n; i++, o++) out[i] = Math.fround(a * Math.fround(heap[o] * scale)) + Math.fround(c * G[i]);
}
function blendNoFround(heap: Float32Array, base: number, scale: number, G: Float32Array, out: Float32Array, alpha: number): void {
  const a = alpha, c = 1 - alpha, n = out.length;
  for (let i = 0, o = base; i < n; i++, o++) out[i] = a * heap[o] * scale + c * G[i];
}
function copy(heap: Float32Array, base: number, out: Float32Array): void {
  const n = out.length;
  for (let i = 0, o = base; i < n; i++, o++) out[i] = heap[o];
}
const N = 65536;
const mem = new WebAssembly.Memory({ initial: 256 });
const heap = new Float32Array(mem.buffer);
for (let i = 0; i < N; i++) heap[i] = Math.random();
const G = new Float32Array(N).map(() => Math.random()), out = new Float32Array(N);
const plainHeap = new Float32Array(N * 2).map(() => Math.random());
const med = (a: number[]) => a.sort((p, q) => p - q)[a.length >> 1];
for (const [name, fn] of [['blend wasmheap', () => blend(heap, 0, 1 / 65536, G, out, 0.3)], ['blend plain', () => blend(plainHeap, 0, 1 / 65536, G, out, 0.3)], ['noFround', () => blendNoFround(heap, 0, 1 / 65536, G, out, 0.3)], ['copy', () => copy(heap, 0, out)], ['set', () => out.set(heap.subarray(0, N))]] as const) {
  const ts: number[] = [];
  for (let r = 0; r < 2000; r++) { const t = performance.now(); fn(); ts.push(performance.now() - t); }
  console.log(name, (med(ts) * 1e6 / N).toFixed(3), 'ns/elt');
}
