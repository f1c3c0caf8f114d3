// Tiny Shakespeare: load and verify the corpus, the character vocabulary, the split and the (seed, step) sampler.
import { createHash } from 'node:crypto';
import { readFileSync, existsSync, statSync } from 'node:fs';
import { Rng, STREAM } from './rng.ts';
import { DataError } from '../errors.ts';

export const DATA_URL = 'https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt';
export const DATA_SHA256 = '86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed';
export const DATA_BYTES = 1115394;
export const DEFAULT_DATA_PATH = 'data/shakespeare/input.txt';


const HOW_TO_GET = (path: string) =>
  `Get it with \`npm run prepare-data\` (downloads ${DATA_URL} to ${DEFAULT_DATA_PATH} and checks its sha256), ` +
  `or pass a verified copy with \`--data FILE\` (sha256 ${DATA_SHA256}, ${DATA_BYTES} bytes). Looked at: ${path}`;

export interface Corpus {
  chars: string[]; // the vocabulary: sorted distinct characters (index = token id)
  train: Uint8Array; // first 90% of the tokens
  val: Uint8Array; // last 10%
}

/** Reads and verifies the corpus; `verify: false` accepts any text (tests on small made-up data). */
export function loadCorpus(path: string, opts: { verify?: boolean } = {}): Corpus {
  if (!existsSync(path) || !statSync(path).isFile()) throw new DataError('E_DATA_MISSING', `Tiny Shakespeare not found. ${HOW_TO_GET(path)}`);
  const bytes = readFileSync(path);
  if (opts.verify ?? true) {
    if (bytes.length !== DATA_BYTES) {
      throw new DataError('E_DATA_CORRUPT', `Tiny Shakespeare has ${bytes.length} bytes, expected ${DATA_BYTES} (truncated or altered). ${HOW_TO_GET(path)}`);
    }
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (sha !== DATA_SHA256) throw new DataError('E_DATA_CORRUPT', `Tiny Shakespeare sha256 is ${sha}, expected ${DATA_SHA256} (altered). ${HOW_TO_GET(path)}`);
  }
  return buildCorpus(bytes.toString('latin1'));
}

/** Vocabulary and 90/10 split of a text, as nanoGPT's shakespeare_char/prepare.py. */
export function buildCorpus(text: string): Corpus {
  const chars = [...new Set(text)].sort();
  if (chars.length > 256) throw new DataError('E_DATA_VOCAB', `vocabulary of ${chars.length} characters does not fit a byte`);
  const index = new Map(chars.map((c, i) => [c, i]));
  const ids = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) ids[i] = index.get(text[i]!)!;
  const n = Math.floor(text.length * 0.9);
  return { chars, train: ids.subarray(0, n), val: ids.subarray(n) };
}

export function encode(chars: string[], text: string): number[] {
  const index = new Map(chars.map((c, i) => [c, i]));
  return [...text].map((c) => {
    const i = index.get(c);
    if (i === undefined) throw new DataError('E_DATA_VOCAB', `character ${JSON.stringify(c)} is not in the vocabulary`);
    return i;
  });
}

export function decode(chars: string[], ids: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < ids.length; i++) s += chars[ids[i]!];
  return s;
}

/**
 * The global batch's start offsets for training step `step` (1-based): a pure function of (seed, step),
 * whatever the number of workers. Offsets are uniform in [0, len - block), as torch.randint(len(data) - block_size).
 */
export function trainOffsets(seed: number, step: number, batch: number, block: number, len: number): number[] {
  const rng = new Rng(seed, STREAM.train, step);
  return Array.from({ length: batch }, () => rng.int(len - block));
}

/** Offsets of evaluation batch `iter` at step `step` for one split. */
export function evalOffsets(seed: number, split: 'train' | 'val', step: number, iter: number, batch: number, block: number, len: number): number[] {
  const rng = new Rng(seed, split === 'train' ? STREAM.evalTrain : STREAM.evalVal, step, iter);
  return Array.from({ length: batch }, () => rng.int(len - block));
}

/** Inputs x = data[i : i+block] and targets y = data[i+1 : i+1+block] for each offset, row-major [B, T]. */
export function makeBatch(data: Uint8Array, offsets: readonly number[], block: number): { x: Int32Array; y: Int32Array } {
  const x = new Int32Array(offsets.length * block);
  const y = new Int32Array(offsets.length * block);
  offsets.forEach((o, b) => {
    for (let t = 0; t < block; t++) {
      x[b * block + t] = data[o + t]!;
      y[b * block + t] = data[o + t + 1]!;
    }
  });
  return { x, y };
}
