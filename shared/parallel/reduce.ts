// The reduce of data-parallel training on host arrays: weighted sums of the workers' shares, in a fixed order.

/**
 * Σ_c w_c·a_c for lists of same-shaped arrays (one list per chunk), in chunk order: out = 0, then out += w_c·a_c
 * (the product in double, one float32 rounding per addition). Written into `into` when given (reused buffers).
 */
export function weightedSum(lists: readonly (readonly Float32Array[])[], weights: readonly number[], into?: readonly Float32Array[]): Float32Array[] {
  const first = lists[0]!;
  const outs: Float32Array[] = [];
  for (let p = 0; p < first.length; p++) {
    const n = first[p]!.length;
    const out = into ? into[p]! : new Float32Array(n);
    if (out.length !== n) throw new RangeError(`weightedSum: an output of ${out.length} values for ${n}`);
    const w0 = weights[0]!;
    const a0 = first[p]!;
    let c = 1;
    if (lists.length >= 2) {
      // the first two chunks in one pass (memory-bound: one read of each, one write), the same two roundings
      const a1 = lists[1]![p]!;
      const w1 = weights[1]!;
      for (let i = 0; i < n; i++) out[i] = Math.fround(w0 * a0[i]!) + w1 * a1[i]!;
      c = 2;
    } else for (let i = 0; i < n; i++) out[i] = w0 * a0[i]!; // = 0 + w0·a0[i], rounded once
    for (; c < lists.length; c++) {
      const a = lists[c]![p]!;
      const w = weights[c]!;
      for (let i = 0; i < n; i++) out[i] += w * a[i]!;
    }
    outs.push(out);
  }
  return outs;
}
