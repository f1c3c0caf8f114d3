// The owner plan: which listening worker owns which parameter tensor (whole tensors, balanced by size, deterministic).

/** Tensors → owners. `owners` in join order; `tensorsOf[o]` the tensor indices owner o holds, ascending. */
export interface OwnerPlan {
  version: number;
  owners: string[];
  tensorsOf: number[][];
  ownerOf: number[]; // per tensor, the index in `owners` of its owner
  load: number[]; // per owner, the values it holds (Σ of its tensors' sizes)
}

/**
 * Greedy largest-first (LPT): tensors by size descending (ties by tensor index), each to the owner with the least
 * load so far (ties: the fewest tensors, then join order). A pure function of (sizes, owners): every process that computes it gets the
 * same plan. Whole tensors, since SMI's FFT2 and quantile are per tensor. The largest load is within the largest
 * tensor's size of the smallest.
 */
export function planOwners(sizes: readonly number[], owners: readonly string[], version = 0): OwnerPlan {
  if (owners.length === 0) throw new RangeError('planOwners: no owner to give the tensors to');
  if (new Set(owners).size !== owners.length) throw new RangeError('planOwners: an owner is listed twice');
  sizes.forEach((n, i) => {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`planOwners: tensor ${i} has size ${n}`);
  });
  const order = sizes.map((_, i) => i).sort((a, b) => sizes[b]! - sizes[a]! || a - b);
  const load = owners.map(() => 0);
  const count = owners.map(() => 0);
  const ownerOf = sizes.map(() => -1);
  for (const t of order) {
    let best = 0;
    for (let o = 1; o < owners.length; o++) if (load[o]! < load[best]! || (load[o] === load[best] && count[o]! < count[best]!)) best = o;
    ownerOf[t] = best;
    load[best]! += sizes[t]!;
    count[best]!++;
  }
  const tensorsOf = owners.map((_, o) => ownerOf.flatMap((x, t) => (x === o ? [t] : [])));
  return { version, owners: [...owners], tensorsOf, ownerOf, load };
}
