// Property-based fuzz (fast-check, seeded) of the frame decoder and the message guard on random and mutated input.
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import t from 'tap';
import { resolveConfig } from '../../../shared/config.ts';
import { ProtocolError } from '../../../shared/errors.ts';
import { MESSAGE_TYPES, type Message, PROTOCOL_VERSION, WORKER_BACKENDS, WORKER_ID, parseMessage } from '../../../shared/net/protocol.ts';
import { MAX_CONTROL_DEPTH, MessageAssembler, checkControl, encodeMessage } from '../../../shared/net/frames.ts';

const SEED = 0x5eed9;
const RUNS = 2000;
// small limits, so that "within the limits" is a sharp claim: nothing a frame declares may reserve more than this
const LIMITS = { maxFrameBytes: 1 << 16, maxMessageBytes: 1 << 15, maxControlBytes: 2048 };

const f32 = (n: number, seed = 1) => Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 0.37 + seed) * 3));
const cfg = resolveConfig({ preset: 'test' });
const VALID: Message[] = [
  { type: 'hello', protocol: PROTOCOL_VERSION, token: 'secret', workerId: null, backend: 'wasm', device: 'cpu', memoryBytes: 2 ** 34, host: 'h', pid: 42, listen: null },
  { type: 'welcome', workerId: 'V1StGXR8_Z5jdHi6B-myT', config: cfg, step: 7 },
  { type: 'weights', step: 3, tensors: [f32(5), f32(0), f32(300, 2), f32(7)] },
  { type: 'work', step: 1, round: 0, attempt: 0, offsets: [5, 99, 12345], tokens: Uint8Array.from({ length: 3 * 17 }, (_, i) => i % 65), magnitudes: true },
  { type: 'grads', step: 1, round: 0, attempt: 2, sequences: 3, loss: 4.17, tensors: [f32(9), f32(700)], magnitudes: [f32(5)], phases: { compute: 12.5 } },
  { type: 'blend', step: 2, round: 0, attempt: 1, source: 1, clip: 1, alpha: 0.25, masks: [Uint8Array.of(1, 255, 3)], maskChecksum: 0xdeadbeef },
  { type: 'blended', step: 2, round: 0, attempt: 1, tensors: [f32(11)], maskChecksum: 17, phases: { spectral: 3 } },
  { type: 'error', code: 'E_SHAPE', message: 'tensor 3 has 12 values' },
];
// each valid message as one frame, and as frames of 256 bytes (chunked: continuation frames, split sections)
const ENCODED: Buffer[][] = VALID.flatMap((m) => [encodeMessage(m), encodeMessage(m, m.type === 'welcome' ? 1024 : 256)]);

/** Typed-array bytes of a decoded message: what the assembler reserved for it. */
function sectionBytes(v: unknown): number {
  if (ArrayBuffer.isView(v)) return v.byteLength;
  if (Array.isArray(v)) return v.reduce((a: number, x) => a + sectionBytes(x), 0);
  if (v && typeof v === 'object') return Object.values(v).reduce((a: number, x) => a + sectionBytes(x), 0);
  return 0;
}

/**
 * What a returned message must satisfy, checked independently of the guard: a known type, every typed array a
 * Float32Array or Uint8Array, step/attempt safe non-negative integers, and a hello's identity fields in range.
 */
function invalidBecause(m: Message): string | null {
  if (!(MESSAGE_TYPES as readonly string[]).includes(m.type)) return `type ${String(m.type)}`;
  const o = m as unknown as Record<string, unknown>;
  for (const k of ['step', 'attempt']) if (k in o && !(Number.isSafeInteger(o[k]) && (o[k] as number) >= 0)) return `${k} ${String(o[k])}`;
  const arrays: unknown[] = [];
  const walk = (v: unknown) => (ArrayBuffer.isView(v) ? arrays.push(v) : Array.isArray(v) ? v.forEach(walk) : v && typeof v === 'object' ? Object.values(v).forEach(walk) : 0);
  walk(m);
  if (arrays.some((a) => !(a instanceof Float32Array || a instanceof Uint8Array))) return 'a typed array of another kind';
  if (m.type === 'hello') {
    if (m.workerId !== null && !WORKER_ID.test(m.workerId)) return `workerId ${JSON.stringify(m.workerId)}`;
    if (!(WORKER_BACKENDS as readonly string[]).includes(m.backend)) return `backend ${m.backend}`;
    if (!(Number.isSafeInteger(m.pid) && m.pid >= 1)) return `pid ${m.pid}`;
    if (!(Number.isSafeInteger(m.memoryBytes) && m.memoryBytes >= 1)) return `memoryBytes ${m.memoryBytes}`;
  }
  return null;
}

interface Outcome {
  messages: Message[];
  errors: ProtocolError[];
  reservedMax: number; // the most the assembler copied into new arrays for one message
}

/** Pushes frames through one assembler as a connection would (it resets after an error; the fuzz goes on). */
function feed(frames: readonly (Uint8Array | Uint8Array[])[]): Outcome {
  const a = new MessageAssembler(LIMITS);
  const out: Outcome = { messages: [], errors: [], reservedMax: 0 };
  let before = 0;
  for (const f of frames) {
    try {
      const m = a.push(f);
      if (m) out.messages.push(m);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      out.errors.push(e);
    }
    out.reservedMax = Math.max(out.reservedMax, a.stats.copiedBytes - before);
    if (!a.pending) before = a.stats.copiedBytes;
  }
  return out;
}

/** The claims of every fuzz case: only ProtocolErrors, each from a specific check; messages valid; reservations within limits. */
function holds(o: Outcome): boolean {
  for (const e of o.errors) {
    // the assembler's catch-all: an exception that none of its checks anticipated (a bug) ends up here
    if (/^undecodable frame/.test(e.message)) throw new Error(`an unanticipated exception: ${e.message}`);
  }
  for (const m of o.messages) {
    const why = invalidBecause(m);
    if (why) throw new Error(`an invalid ${m.type} came out: ${why}`);
    parseMessage(m); // the guard accepts what it returned
    if (sectionBytes(m) > LIMITS.maxMessageBytes) throw new Error(`${m.type} holds ${sectionBytes(m)} bytes of arrays`);
  }
  if (o.reservedMax > LIMITS.maxMessageBytes) throw new Error(`${o.reservedMax} bytes reserved for one message`);
  return true;
}

/** A mutation of a list of frames: bytes overwritten, header fields set to edge values, frames cut, dropped, repeated, fragmented. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('byte' as const), frame: fc.nat(), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant('u32' as const), frame: fc.nat(), field: fc.constantFrom(8, 12, 16, 20, 32, 36, 48, 52),
    value: fc.constantFrom(0, 1, 7, 8, 31, 0x7fffffff, 0x80000000, 0xffffffff).chain((v) => fc.oneof(fc.constant(v), fc.nat())),
  }),
  fc.record({ kind: fc.constant('u64' as const), frame: fc.nat(), field: fc.constantFrom(24, 40, 56, 72), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
  fc.record({ kind: fc.constant('cut' as const), frame: fc.nat(), at: fc.nat() }),
  fc.record({ kind: fc.constant('drop' as const), frame: fc.nat() }),
  fc.record({ kind: fc.constant('repeat' as const), frame: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), frame: fc.nat(), other: fc.nat() }),
  fc.record({ kind: fc.constant('junk' as const), frame: fc.nat(), bytes: fc.uint8Array({ maxLength: 64 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(frames: Buffer[], muts: Mutation[]): Buffer[] {
  const fs = frames.map((f) => Buffer.from(f));
  for (const m of muts) {
    if (fs.length === 0) break;
    const i = m.frame % fs.length;
    const f = fs[i]!;
    switch (m.kind) {
      case 'byte':
        if (f.length) f[m.at % f.length] = m.value;
        break;
      case 'u32':
        if (m.field + 4 <= f.length) f.writeUInt32LE(m.value >>> 0, m.field);
        break;
      case 'u64':
        if (m.field + 8 <= f.length) f.writeBigUInt64LE(m.value, m.field);
        break;
      case 'cut':
        fs[i] = f.subarray(0, m.at % (f.length + 1));
        break;
      case 'drop':
        fs.splice(i, 1);
        break;
      case 'repeat':
        fs.splice(i, 0, Buffer.from(f));
        break;
      case 'swap': {
        const j = m.other % fs.length;
        [fs[i], fs[j]] = [fs[j]!, f];
        break;
      }
      case 'junk':
        fs[i] = Buffer.concat([f, m.bytes]);
        break;
    }
  }
  return fs;
}

/** A frame as ws may deliver it: one Buffer, or fragments cut at the given points. */
function fragment(f: Buffer, cuts: number[]): Uint8Array | Uint8Array[] {
  if (cuts.length === 0) return f;
  const at = [...new Set(cuts.map((c) => c % (f.length + 1)))].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...at, f.length]) {
    parts.push(f.subarray(prev, c));
    prev = c;
  }
  return parts;
}

const opts = { seed: SEED, numRuns: RUNS };

t.test('decoder on random bytes: only ProtocolErrors, nothing reserved beyond the limits', async (t) => {
  const frame = fc.oneof(
    fc.uint8Array({ maxLength: 512 }),
    // random bytes behind a valid magic and version, so that the header checks are reached
    fc.uint8Array({ minLength: 16, maxLength: 512 }).map((b) => {
      const f = Buffer.from(b);
      f.writeUInt32LE(0x57494d53, 0);
      f[4] = 1;
      f[5] = 1 + (f[5]! % 2);
      return f;
    }),
  );
  fc.assert(fc.property(fc.array(frame, { minLength: 1, maxLength: 6 }), (frames) => holds(feed(frames))), opts);
  t.pass(`${RUNS} runs of up to 6 random frames (seed ${SEED})`);
});

t.test('decoder on mutated valid frames (one frame and chunked, fragmented as ws delivers them): the same claims', async (t) => {
  let decoded = 0;
  let rejected = 0;
  fc.assert(
    fc.property(
      fc.constantFrom(...ENCODED.keys()),
      fc.array(mutation, { minLength: 0, maxLength: 4 }),
      fc.array(fc.array(fc.nat(), { maxLength: 3 }), { maxLength: 8 }),
      (which, muts, cuts) => {
        const frames = mutate(ENCODED[which]!, muts).map((f, i) => fragment(f, cuts[i] ?? []));
        const o = feed(frames);
        decoded += o.messages.length;
        rejected += o.errors.length;
        return holds(o);
      },
    ),
    { ...opts, numRuns: 2 * RUNS },
  );
  t.ok(decoded > 0 && rejected > 0, `both outcomes reached: ${decoded} messages decoded, ${rejected} frames rejected`);
});

t.test('guard on random values and on valid messages with a field replaced, removed or added: only ProtocolErrors, only valid messages', async (t) => {
  const judge = (v: unknown): boolean => {
    let m: Message;
    try {
      m = parseMessage(v);
    } catch (e) {
      if (e instanceof ProtocolError && e.code === 'E_MALFORMED') return true;
      throw e;
    }
    const why = invalidBecause(m);
    if (why) throw new Error(`the guard let an invalid ${m.type} through: ${why}`);
    return true;
  };
  fc.assert(fc.property(fc.anything({ withTypedArray: true, withNullPrototype: true, withBigInt: true, withMap: true }), judge), opts);
  const value = fc.oneof(fc.anything({ withTypedArray: true, withBigInt: true, withNullPrototype: true, maxDepth: 2 }), fc.constantFrom(-1, 0, 1, 2 ** 53, NaN, Infinity, '', 'a b', 'wasm', 'auto', null));
  let accepted = 0;
  fc.assert(
    fc.property(fc.constantFrom(...VALID), fc.array(fc.tuple(fc.nat(), fc.constantFrom('set', 'delete', 'add'), value), { maxLength: 3 }), (msg, edits) => {
      const o: Record<string, unknown> = { ...msg };
      for (const [k, op, v] of edits) {
        const keys = Object.keys(o);
        const key = op === 'add' ? `extra${k % 3}` : keys[k % keys.length]!;
        if (op === 'delete') delete o[key];
        else o[key] = v;
      }
      try {
        parseMessage(o);
        accepted++;
      } catch {
        // judged below
      }
      return judge(o);
    }),
    { ...opts, numRuns: 2 * RUNS },
  );
  t.ok(accepted > 0, `some edited messages are still valid (${accepted}), and those pass the independent checks`);
});

t.test('control part: checkControl accepts what msgpack encodes within the depth limit, and msgpackr decodes what it accepts', async (t) => {
  const packr = new Packr({ useRecords: false, moreTypes: false, structuredClone: false });
  // levels of non-empty containers, as checkControl counts them (an empty one opens no level to read)
  const depth = (v: unknown): number => (v && typeof v === 'object' && Object.keys(v).length ? 1 + Math.max(...Object.values(v).map(depth)) : 0);
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 20 }), (v) => {
      const b = packr.pack(v);
      let ok = true;
      try {
        checkControl(b);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        ok = false;
      }
      return ok === depth(v) <= MAX_CONTROL_DEPTH;
    }),
    opts,
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), (b) => {
      try {
        checkControl(b);
      } catch (e) {
        if (e instanceof ProtocolError) return true;
        throw e;
      }
      try {
        packr.unpack(b);
      } catch (e) {
        // accepted bytes are one well-formed value: msgpackr may refuse an unknown ext type, never run out of stack or memory
        if (e instanceof RangeError) throw e;
      }
      return true;
    }),
    opts,
  );
  t.pass('checkControl agrees with msgpack on depth and structure');
});
