// The message guard (shared/net/protocol.ts parseMessage): every kind's fields checked, the same failures from the wire.
import t from 'tap';
import type { Message } from '../../../shared/net/protocol.ts';
import { parseMessage } from '../../../shared/net/protocol.ts';
import { encodeMessage } from '../../../shared/net/frames.ts';
import { SAMPLES, cfg, decode, f32, throwsCode } from './samples.ts';

t.test('the guard: every kind rejects wrong types, non-integers, wrong typed-array kinds and unknown fields', async (t) => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...SAMPLES[0], protocol: 1.5 }, /hello.protocol: expected a non-negative integer/],
    [{ ...SAMPLES[0], protocol: '1' }, /hello.protocol: expected a number, got string/],
    [{ ...SAMPLES[0], token: 5 }, /hello.token: expected a string/],
    [{ ...SAMPLES[0], workerId: undefined }, /hello.workerId: (missing|expected a string, got undefined)/],
    [{ ...SAMPLES[0], pid: -1 }, /hello.pid/],
    [{ ...SAMPLES[0], extra: 1 }, /hello.extra: unknown field/],
    [(({ host: _, ...r }) => r)(SAMPLES[0] as unknown as Record<string, unknown>), /hello.host: missing/],
    [{ ...SAMPLES[0], workerId: '' }, /hello.workerId: expected 1–64 characters of A–Z a–z 0–9 _ -, got ""/],
    [{ ...SAMPLES[0], workerId: 'a b' }, /hello.workerId: expected 1–64 characters/],
    [{ ...SAMPLES[0], workerId: 'x'.repeat(65) }, /hello.workerId: expected 1–64 characters/],
    [{ ...SAMPLES[0], backend: 'test' }, /hello.backend: 'test' is not one of tensorflow-gpu, tensorflow, wasm, cpu, webgpu/],
    [{ ...SAMPLES[0], backend: 'auto' }, /hello.backend: 'auto' is not one of/],
    [{ ...SAMPLES[0], pid: 0 }, /hello.pid: expected an integer in \[1, 4294967295\], got 0/],
    [{ ...SAMPLES[0], pid: 2 ** 32 }, /hello.pid: expected an integer in/],
    [{ ...SAMPLES[0], memoryBytes: 0 }, /hello.memoryBytes: expected an integer in \[1, /],
    [{ ...SAMPLES[0], memoryBytes: 1e300 }, /hello.memoryBytes: expected an integer in/],
    [{ ...SAMPLES[0], host: '' }, /hello.host: expected 1–256 printable characters/],
    [{ ...SAMPLES[0], device: 'gpu\n0' }, /hello.device: expected 1–256 printable characters/],
    [{ ...SAMPLES[0], host: 'h'.repeat(257) }, /hello.host: expected 1–256 printable characters/],
    [{ ...SAMPLES[0], token: 't'.repeat(1025) }, /hello.token: longer than 1024 characters/],
    [{ ...SAMPLES[2], workerId: '' }, /welcome.workerId: expected 1–64 characters/],
    [{ ...SAMPLES[2], config: { ...cfg, n_layer: 2.5 } }, /welcome.config.n_layer|must be an integer/],
    [{ ...SAMPLES[2], config: { ...cfg, smi: 'cosin' } }, /welcome.config.smi: 'cosin' is not one of/],
    [{ ...SAMPLES[2], config: { ...cfg, typo_field: 1 } }, /welcome.config.typo_field: unknown field/],
    [{ ...SAMPLES[2], step: -1 }, /welcome.step/],
    [{ ...SAMPLES[3], tensors: [new Float64Array(3)] }, /weights.tensors\[0\]: expected a Float32Array, got Float64Array/],
    [{ ...SAMPLES[3], tensors: [f32(2), [1, 2]] }, /weights.tensors\[1\]: expected a Float32Array, got array/],
    [{ ...SAMPLES[3], tensors: f32(2) }, /weights.tensors: expected an array of Float32Array, got Float32Array/],
    [{ ...SAMPLES[4], tensors: null }, /weights.tensors: expected an array of Float32Array, got null/],
    [{ ...SAMPLES[5], tokens: new Float32Array(51) }, /work.tokens: expected a Uint8Array, got Float32Array/],
    [{ ...SAMPLES[5], tokens: new Uint8Array(50) }, /work.tokens: length 50 is not a multiple of offsets.length 3/],
    [{ ...SAMPLES[5], offsets: [1, 2.5, 3] }, /work.offsets\[1\]: expected a non-negative integer, got 2.5/],
    [{ ...SAMPLES[5], offsets: [1, '2', 3] }, /work.offsets\[1\]: expected a non-negative integer, got string/],
    [{ ...SAMPLES[5], magnitudes: 1 }, /work.magnitudes: expected a boolean/],
    [{ ...SAMPLES[5], attempt: 0.5 }, /work.attempt/],
    [{ ...SAMPLES[6], loss: '4' }, /grads.loss: expected a number/],
    [{ ...SAMPLES[6], phases: { compute: 'fast' } }, /grads.phases.compute: expected a number/],
    [{ ...SAMPLES[6], phases: [1] }, /grads.phases: expected an object/],
    [{ ...SAMPLES[6], magnitudes: [new Uint8Array(2)] }, /grads.magnitudes\[0\]: expected a Float32Array, got Uint8Array/],
    [{ ...SAMPLES[6], sequences: 1e20 }, /grads.sequences/],
    [{ ...SAMPLES[8], alpha: Infinity }, /blend.alpha: expected a finite number/],
    [{ ...SAMPLES[8], source: -2 }, /blend.source/],
    [{ ...SAMPLES[9], masks: [f32(2)] }, /blend.masks\[0\]: expected a Uint8Array, got Float32Array/],
    [{ ...SAMPLES[9], maskChecksum: 2 ** 32 }, /blend.maskChecksum: expected a uint32/],
    [{ ...SAMPLES[10], maskChecksum: undefined }, /blended.maskChecksum/],
    [{ ...SAMPLES[10], tensors: [new Int32Array(2)] }, /blended.tensors\[0\]: expected a Float32Array, got Int32Array/],
    [{ type: 'share', step: 1, round: 0, chunk: 0, tensors: [new Float32Array(2)], dtype: 'bf16' }, /share.tensors\[0\]: expected a Uint16Array, got Float32Array/],
    [{ type: 'share', step: 1, round: 0, chunk: 0, tensors: [new Uint16Array(2)] }, /share.tensors\[0\]: expected a Float32Array, got Uint16Array/],
    [{ type: 'share', step: 1, round: 0, chunk: 0, tensors: [], dtype: 'fp16' }, /share.dtype: expected 'bf16' or no dtype/],
    [{ type: 'share', step: 1, round: 0, chunk: 0, tensors: [new Float32Array(2)], magnitudes: [new Float32Array(2)] }, /share.magnitudes: unknown field/],
    [{ type: 'values', step: 1, round: 0, first: -1, tensors: [] }, /values.first: expected a non-negative integer/],
    [{ type: 'values', step: 1, round: 0, first: 1.5, tensors: [] }, /values.first: expected a non-negative integer/],
    [{ type: 'values', step: 1, round: 0, more: 1, tensors: [] }, /values.more: expected a boolean/],
    [{ type: 'share', step: 1, round: 0, chunk: 0, first: 1, tensors: [] }, /share.first: unknown field/],
    [{ type: 'done', step: 1, round: 0, phases: {}, bytesSent: 0, bytesReceived: 0, cpuMs: -1 }, /done.cpuMs: expected ms ≥ 0/],
    [{ type: 'done', step: 1, round: 0, phases: {}, bytesSent: 0, bytesReceived: 0, links: { sharesSent: -1, sharesReceived: 0, valuesSent: 0, valuesReceived: 0 } }, /done.links.sharesSent: expected a non-negative integer/],
    [{ type: 'done', step: 1, round: 0, phases: {}, bytesSent: 0, bytesReceived: 0, spans: [{ name: 'compute', start: -1, dur: 0 }] }, /done.spans\[0\].start: expected ms ≥ 0/],
    [{ type: 'done', step: 1, round: 0, phases: {}, bytesSent: 0, bytesReceived: 0, spans: [{ name: '', start: 0, dur: 0 }] }, /done.spans\[0\].name: expected 1–256 printable/],
    [{ type: 'done', step: 1, round: 0, phases: {}, bytesSent: 0, bytesReceived: 0, spans: Array.from({ length: 257 }, () => ({ name: 'x', start: 0, dur: 0 })) }, /done.spans: more than 256 spans/],
    [{ type: 'done', step: 1, round: 0, phases: {}, bytesSent: 0, bytesReceived: 0, elapsed: Infinity }, /done.elapsed: expected a finite number/],
    [{ type: 'ping', t: 1 }, /message.type: unknown message type "ping"/],
    [{ type: 'weights', step: 0, tensors: [], spectral: [] }, /weights.spectral: unknown field/],
    [{ ...SAMPLES[5], round: -1 }, /work.round/],
    [{ type: 'error', code: 'E_NOPE', message: '' }, /error.code: unknown error code 'E_NOPE'/],
    [{ type: 'bye', reason: null }, /bye.reason: expected a string, got null/],
    [{ type: 42 }, /message.type: unknown message type 42/],
  ];
  for (const [value, re] of cases) {
    throwsCode(t, () => parseMessage(value), 'E_MALFORMED', re);
    // the same failure arrives from the wire: the sender's check is off to craft the frame
    throwsCode(t, () => decode(encodeMessage(value as unknown as Message, undefined, { check: false })), 'E_MALFORMED', re, `${re} from the wire`);
  }
  throwsCode(t, () => parseMessage([1]), 'E_MALFORMED', /message: expected an object, got array/);
  throwsCode(t, () => encodeMessage({ ...SAMPLES[3], tensors: [new Float64Array(2)] } as unknown as Message), 'E_MALFORMED', /weights.tensors\[0\]/, 'the sender checks too');
  // a newer protocol number is the coordinator's business (E_VERSION), not the codec's
  const future = decode(encodeMessage({ ...SAMPLES[0], protocol: 99 } as Message)) as Extract<Message, { type: 'hello' }>;
  t.equal(future.protocol, 99, 'hello with another protocol version decodes');
});
