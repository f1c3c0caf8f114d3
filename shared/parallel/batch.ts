// How a step's global batch is shared: contiguous chunks per worker, and the token windows sent for each.

/** Splits `offsets` into `parts` contiguous chunks whose sizes differ by at most one (earlier chunks larger). */
export function splitBatch(offsets: readonly number[], parts: number): number[][] {
  const out: number[][] = [];
  const base = Math.floor(offsets.length / parts);
  let extra = offsets.length % parts;
  let at = 0;
  for (let i = 0; i < parts; i++) {
    const n = base + (extra > 0 ? 1 : 0);
    if (extra > 0) extra--;
    out.push(offsets.slice(at, at + n));
    at += n;
  }
  return out.filter((c) => c.length > 0);
}

/** Token windows data[o : o+block+1] of each offset, concatenated: what the coordinator sends a worker. */
export function tokenWindows(data: Uint8Array, offsets: readonly number[], block: number): Uint8Array {
  const out = new Uint8Array(offsets.length * (block + 1));
  offsets.forEach((o, i) => out.set(data.subarray(o, o + block + 1), i * (block + 1)));
  return out;
}

/** Inputs and targets (row-major [n, block]) from token windows of block+1. */
export function windowsToBatch(tokens: Uint8Array, block: number): { x: Int32Array; y: Int32Array; n: number } {
  const n = tokens.length / (block + 1);
  if (!Number.isInteger(n)) throw new RangeError(`token windows: ${tokens.length} is not a multiple of block+1 = ${block + 1}`);
  const x = new Int32Array(n * block);
  const y = new Int32Array(n * block);
  for (let s = 0; s < n; s++) {
    for (let t = 0; t < block; t++) {
      x[s * block + t] = tokens[s * (block + 1) + t]!;
      y[s * block + t] = tokens[s * (block + 1) + t + 1]!;
    }
  }
  return { x, y, n };
}
