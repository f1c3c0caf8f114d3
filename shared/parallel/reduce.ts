// The reduce of data-parallel training on host arrays: weighted sums of the workers' shares, in a fixed order.
import { weightedSumInto } from '../wasm/reduce.ts';

/**
 * Σ_c w_c·a_c for lists of same-shaped arrays (one list per chunk), in chunk order: out = 0, then out += w_c·a_c
 * (the product in double, one float32 rounding per addition). Written into `into` when given (reused buffers).
 * The passes run as wasm SIMD where the assembler is loaded (shared/wasm/reduce.ts), with the same bits.
 */
export function weightedSum(lists: readonly (readonly Float32Array[])[], weights: readonly number[], into?: readonly Float32Array[]): Float32Array[] {
  const first = lists[0]!;
  const outs: Float32Array[] = [];
  for (let p = 0; p < first.length; p++) {
    const n = first[p]!.length;
    const out = into ? into[p]! : new Float32Array(n);
    if (out.length !== n) throw new RangeError(`weightedSum: an output of ${out.length} values for ${n}`);
    const arrays = lists.map((l, c) => {
      const a = l[p]!;
      if (a.length !== n) throw new RangeError(`weightedSum: chunk ${c}'s tensor ${p} has ${a.length} values, the first chunk's ${n}`);
      return a;
    });
    weightedSumInto(arrays, weights, out);
    outs.push(out);
  }
  return outs;
}
