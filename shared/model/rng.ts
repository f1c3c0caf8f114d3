// Counter-based randomness: every draw is a pure function of (seed, purpose, counters), so runs resume exactly.

/** murmur3's 32-bit finalizer: a bijective avalanche mix. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hashes a list of 32-bit integers (seed, stream, step, …) into one 32-bit key. */
export function hashKey(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) h = fmix32((h ^ (p >>> 0)) + 0x7f4a7c15 + (h << 6) + (h >>> 2));
  return h >>> 0;
}

/** sfc32, a small fast generator with 128 bits of state; seeded from a hashed key. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(...key: number[]) {
    const k = hashKey(...key);
    this.a = k;
    this.b = fmix32(k ^ 0x243f6a88);
    this.c = fmix32(k ^ 0x85a308d3);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    return ((this.nextU32() >>> 5) * 67108864 + (this.nextU32() >>> 6)) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box–Muller; the second value is discarded to keep draws position-independent). */
  normal(): number {
    let u = this.uniform();
    while (u === 0) u = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }
}

/** Stream ids: what each draw is for. Never renumber: checkpoints and logged batches depend on them. */
export const STREAM = { init: 1, train: 2, evalTrain: 3, evalVal: 4, dropout: 5, sample: 6, smiMask: 7 } as const;
