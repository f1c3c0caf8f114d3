// Test fixtures for the wire and the guard: one message of every kind, a decoder from frames, a ProtocolError assertion.
import type { Test } from 'tap';
import { resolveConfig } from '../../../shared/config.ts';
import { ERROR_CODES, ProtocolError } from '../../../shared/errors.ts';
import { PROTOCOL_VERSION, type Message } from '../../../shared/net/protocol.ts';
import { MessageAssembler } from '../../../shared/net/frames.ts';

export const f32 = (n: number, seed = 1) => Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 0.37 + seed) * 3));
export const cfg = resolveConfig({ preset: 'test' });

/** One message of every kind, with typed arrays of every kind the protocol carries. */
export const SAMPLES: Message[] = [
  { type: 'hello', protocol: PROTOCOL_VERSION, token: 'secret', workerId: null, backend: 'wasm', device: 'cpu', memoryBytes: 24 * 2 ** 30, host: 'h', pid: 42, listen: null },
  { type: 'hello', protocol: PROTOCOL_VERSION, token: null, workerId: 'abc', backend: 'cpu', device: 'cpu', memoryBytes: 1, host: 'h', pid: 1, listen: 'ws://10.0.0.2:7001' },
  { type: 'welcome', workerId: 'V1StGXR8_Z5jdHi6B-myT', config: cfg, step: 7 },
  { type: 'weights', step: 3, tensors: [f32(5), f32(0), f32(1000, 2)] },
  { type: 'weights', step: 0, tensors: [f32(3), f32(7, 3), f32(2)] },
  { type: 'work', step: 1, round: 0, attempt: 0, offsets: [5, 99, 12345], tokens: Uint8Array.from({ length: 3 * 17 }, (_, i) => i % 65), magnitudes: true },
  { type: 'grads', step: 1, round: 0, attempt: 2, sequences: 3, loss: 4.1743, tensors: [f32(9), f32(4096)], phases: { compute: 12.5, encode: 0.1 } },
  { type: 'grads', step: 1, round: 0, attempt: 2, sequences: 3, loss: 4, tensors: [f32(9)], magnitudes: [f32(5)], phases: {} },
  { type: 'blend', step: 2, round: 0, attempt: 1, source: 0, clip: 0.5, alpha: 0.9 },
  { type: 'blend', step: 2, round: 0, attempt: 1, source: 1, clip: 1, alpha: 0.25, masks: [Uint8Array.of(1, 255, 3), new Uint8Array(0)], maskChecksum: 0xdeadbeef },
  { type: 'blended', step: 2, round: 0, attempt: 1, tensors: [f32(11)], maskChecksum: 17, phases: { spectral: 3 } },
  { type: 'error', code: 'E_SHAPE', message: 'tensor 3 has 12 values, expected 13' },
  { type: 'bye', reason: 'run finished' },
  { type: 'load', planVersion: 2, step: 10, members: ['a', 'b'], owners: [{ workerId: 'a', url: 'ws://10.0.0.1:7000', tensors: [0, 2] }], weights: [f32(4), f32(3), f32(2)], state: { adamStep: 10, m: [f32(4), f32(2)], v: [f32(4, 2), f32(2, 2)], smi: [{ name: 'h.0.w', shape: [3, 2], data: f32(6) }] } },
  { type: 'load', planVersion: 0, step: 0, members: ['b'], owners: [{ workerId: 'b', url: 'wss://h:1/x', tensors: [] }], weights: [] },
  { type: 'loaded', planVersion: 2 },
  { type: 'task', step: 4, round: 1, planVersion: 2, sequences: [2, 1], holders: ['a', 'b'], mine: [{ index: 1, offsets: [77], tokens: Uint8Array.from({ length: 17 }, (_, i) => i) }] },
  { type: 'computed', step: 4, round: 1, chunk: 1, sequences: 1, loss: 3.5, phases: { compute: 2 } },
  { type: 'link', protocol: PROTOCOL_VERSION, token: 'secret', workerId: 'b' },
  { type: 'share', step: 4, round: 1, chunk: 1, tensors: [f32(4), f32(2)] },
  { type: 'share', step: 4, round: 1, chunk: 0, tensors: [f32(4)] },
  { type: 'reduced', step: 4, round: 1, ss: [0.5, 2], chunkSS: [1.25, 0.75], phases: { reduce: 1 } },
  { type: 'rejected', step: 4, round: 1, chunk: 0, code: 'E_NONFINITE', message: 'share of chunk 0: tensor 3 holds NaN or Inf' },
  { type: 'clip', step: 4, round: 1, clip: 0.5, alpha: 0.25 },
  { type: 'commit', step: 4, round: 1, clip: 1, lr: 1e-3, alpha: 0.5, masks: true },
  { type: 'masks', step: 4, round: 1, clip: 1, alpha: 0.5, masks: [Uint8Array.of(1, 255), new Uint8Array(0)], checksums: [7, 0xffffffff] },
  { type: 'done', step: 4, round: 1, phases: {}, bytesSent: 0, bytesReceived: 0, appliedChecksums: [12345] },
  { type: 'share', step: 4, round: 1, chunk: 2, tensors: [f32(2)], blended: true },
  { type: 'share', step: 4, round: 1, chunk: 0, tensors: [Uint16Array.of(0x3f80, 0xbf80, 0), Uint16Array.of(0x4000)], dtype: 'bf16' },
  { type: 'done', step: 4, round: 1, phases: { update: 2 }, bytesSent: 10, bytesReceived: 20, links: { sharesSent: 4, sharesReceived: 3, valuesSent: 2, valuesReceived: 1 }, spans: [{ name: 'compute', start: 0.5, dur: 12.25 }, { name: 'update', start: 20, dur: 0 }], elapsed: 31.5, cpuMs: 28.125 },
  { type: 'commit', step: 4, round: 1, clip: 0.75, lr: 1e-3, alpha: 0.5 },
  { type: 'values', step: 4, round: 1, tensors: [f32(4, 5), f32(2, 5)] },
  { type: 'values', step: 4, round: 1, first: 2, more: true, tensors: [f32(3, 6)] },
  { type: 'done', step: 4, round: 1, phases: { all_gather: 3 }, bytesSent: 1000, bytesReceived: 2000 },
  { type: 'done', step: 4, round: 1, phases: {}, bytesSent: 0, bytesReceived: 0, maskChecksums: [0, 0xffffffff] },
  { type: 'gather', step: 4 },
  { type: 'state', step: 4, tensors: [0, 2], weights: [f32(4), f32(2)], state: { adamStep: 4, m: [], v: [], smi: [] } },
  { type: 'evaluate', step: 250, attempt: 3, batches: [{ split: 'train', iter: 0, tokens: Uint8Array.from({ length: 34 }, (_, i) => i % 65) }, { split: 'val', iter: 3, tokens: new Uint8Array(17) }] },
  { type: 'evaluate', step: 0, attempt: 0, batches: [] },
  { type: 'evaluated', step: 250, attempt: 3, losses: [4.17, 3.5] },
];

/** A JSON-able picture of a message: typed arrays as { kind, values }. */
export function plain(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) return { kind: v.constructor.name, values: Array.from(v as Float32Array) };
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** Decodes frames (Buffers or fragment lists) with a fresh assembler; returns the message. */
export function decode(frames: (Buffer | Buffer[])[], a = new MessageAssembler()): Message {
  let out: Message | null = null;
  frames.forEach((f, i) => {
    out = a.push(f);
    if (i < frames.length - 1 && out) throw new Error(`message complete after frame ${i} of ${frames.length}`);
  });
  if (!out) throw new Error('message incomplete');
  return out;
}

/** Asserts fn throws a ProtocolError with this code and a message matching re. */
export function throwsCode(t: Test, fn: () => unknown, code: keyof typeof ERROR_CODES, re: RegExp, what?: string): void {
  try {
    fn();
    t.fail(`${what ?? re}: did not throw`);
  } catch (e) {
    t.ok(e instanceof ProtocolError, `${what ?? re}: a ProtocolError`);
    const err = e as ProtocolError;
    t.equal(err.code, code, `${what ?? re}: ${err.message}`);
    t.match(err.message, re);
    t.equal(err.closeCode, ERROR_CODES[code].close);
  }
}
