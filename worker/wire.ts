// The precision of a worker's shares on the wire (--wire-dtype): encoded by the sender, decoded and its dtype checked by the owner.
//
// Only what flows toward the owners is reduced: gradients and blends, which the owner averages
// and filters. Values (the all-gather), loads and commits stay fp32: the owner's fp32 weights are the master copy
// and every replica must equal it to the bit (docs/distributed.md, "Wire precision").
import { protocolError } from '../shared/errors.ts';
import type { WireDtype } from '../shared/config.ts';
import { fromBf16, roundToBf16, toBf16 } from '../shared/net/dtype.ts';
import type { Share } from '../shared/net/protocol.ts';

/**
 * A share's arrays as sent: fp32 as they are (zero-copy), bf16 as arrays of bit patterns, written into `into`'s
 * (a sender's buffers of its last share to that owner, reused once that send is out) where their lengths fit.
 */
export function encodeArrays(dtype: WireDtype, arrays: Float32Array[], into?: Uint16Array[]): Float32Array[] | Uint16Array[] {
  if (dtype !== 'bf16') return arrays;
  return arrays.map((a, i) => toBf16(a, fits(into, i, a.length)));
}

/** `into[i]` when it holds n values, else undefined (the conversion then makes a new array). */
function fits<T extends { length: number }>(into: readonly T[] | undefined, i: number, n: number): T | undefined {
  const b = into?.[i];
  return b && b.length === n ? b : undefined;
}

/** The `dtype` field a share of this run carries. */
export const shareDtype = (dtype: WireDtype): { dtype?: 'bf16' } => (dtype === 'bf16' ? { dtype: 'bf16' } : {});

/**
 * An owner's own share, as it would hold it after the wire: bf16 rounds it (so that the mean does not depend on
 * which worker owns a tensor, and a replay under another plan reduces the same values); fp32 keeps it, copied
 * when `copy` (its buffers are reused by the next chunk's compute). Rounded or copied into `into`'s arrays where
 * their lengths fit (the owner's buffers for that chunk, OwnedTensors.shareBuffers).
 */
export function asReceived(dtype: WireDtype, arrays: Float32Array[], copy: boolean, into?: Float32Array[]): Float32Array[] {
  const out = (a: Float32Array, i: number) => fits(into, i, a.length) ?? new Float32Array(a.length);
  if (dtype === 'bf16') return arrays.map((a, i) => roundToBf16(a, out(a, i)));
  if (!copy) return arrays;
  return arrays.map((a, i) => {
    const o = out(a, i);
    o.set(a);
    return o;
  });
}

/**
 * A share's arrays in float32, refused unless they are in the run's dtype (E_UNEXPECTED; the guard has already
 * refused a section of another kind than its `dtype` says, E_MALFORMED). Lengths and finiteness are the owner's
 * checks (worker/owner.ts), on the decoded values: a bf16 NaN or Inf decodes to NaN or Inf. bf16 is decoded into
 * `into`'s arrays where their lengths fit.
 */
export function decodeShare(dtype: WireDtype, msg: Share, into?: Float32Array[]): Float32Array[] {
  const got: WireDtype = msg.dtype ?? 'fp32';
  if (got !== dtype) throw protocolError('E_UNEXPECTED', `share of chunk ${msg.chunk} in ${got}, this run sends ${dtype} (--wire-dtype)`);
  if (dtype === 'fp32') return msg.tensors as Float32Array[];
  return (msg.tensors as Uint16Array[]).map((x, i) => fromBf16(x, fits(into, i, x.length)));
}

/**
 * Where a values message (whole, or a part: protocol.ts, Values) lies among the `total` tensors of its owner, `got`
 * of which came in before it: its end index, once it is the next part and its extent fits (E_UNEXPECTED out of
 * order, E_SHAPE a part that does not fit, or a whole one of the wrong count). `what` names it in the errors.
 */
export function partEnd(what: string, msg: { first?: number; more?: boolean; tensors: ArrayLike<unknown>[] }, got: number, total: number): number {
  const n = msg.tensors.length;
  if (msg.first === undefined && !msg.more) {
    if (got > 0) throw protocolError('E_UNEXPECTED', `${what}: a whole message after ${got} of its ${total} tensors came in parts`);
    if (n !== total) throw protocolError('E_SHAPE', `${what}: ${n} tensors, expected ${total}`);
    return n;
  }
  const first = msg.first ?? 0;
  if (first !== got) throw protocolError('E_UNEXPECTED', `${what}: a part from tensor ${first} on, where ${got} of its ${total} came in so far`);
  const end = first + n;
  if (n === 0 || end > total || (msg.more ? end >= total : end !== total)) throw protocolError('E_SHAPE', `${what}: a part of tensors ${first}–${end - 1}${msg.more ? ' with more to follow' : ', the last'}, of ${total}`);
  return end;
}

/** Runs [start, end) of consecutive tensors of these sizes, each of at least `min` values but the last: an owner's parts. */
export function partRuns(sizes: readonly number[], min: number): [number, number][] {
  const runs: [number, number][] = [];
  let start = 0;
  let n = 0;
  sizes.forEach((size, i) => {
    n += size;
    if (n >= min) {
      runs.push([start, i + 1]);
      start = i + 1;
      n = 0;
    }
  });
  if (start < sizes.length) runs.push([start, sizes.length]);
  return runs;
}

/** The `first`/`more` fields of part k of `runs` (none when there is one part: a whole message). */
export function partFields(runs: readonly [number, number][], k: number): { first?: number; more?: boolean } {
  if (runs.length <= 1) return {};
  return k < runs.length - 1 ? { first: runs[k]![0], more: true } : { first: runs[k]![0] };
}
