// The frame codec (shared/net/frames.ts): every kind round-trips, zero-copy sections, malformed and oversize frames, chunks; no socket.
import { once } from 'node:events';
import t, { type Test } from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { ERROR_CODES, type ProtocolError, protocolError } from '../../../shared/errors.ts';
import { MESSAGE_TYPES, type Message } from '../../../shared/net/protocol.ts';
import { HIGH_WATER_BYTES, MAX_FRAME_BYTES, MessageAssembler, encodeFrames, encodeMessage } from '../../../shared/net/frames.ts';
import { Peer, type ReceiveInfo, clientOptions, serverOptions } from '../../../shared/net/peer.ts';
import { SAMPLES, decode, f32, plain, throwsCode } from './samples.ts';

// -------------------------------------------------------------------------------------------------------------
// Codec on raw bytes

t.test('every message kind round-trips: as contiguous frames, as fragments, and chunked', async (t) => {
  const kinds = new Set(SAMPLES.map((m) => m.type));
  t.same([...kinds].sort(), [...MESSAGE_TYPES].sort(), 'the samples cover every kind');
  for (const msg of SAMPLES) {
    const want = plain(msg);
    t.same(plain(decode(encodeMessage(msg))), want, `${msg.type}: one contiguous frame`);
    t.same(plain(decode(encodeFrames(msg))), want, `${msg.type}: fragments`);
    // the smallest frames that hold the message's header (the welcome's config needs a larger one)
    const size = [64, 128, 256, 512, 1024].find((n) => {
      try {
        return encodeMessage(msg, n).length > 0;
      } catch {
        return false;
      }
    })!;
    const small = encodeMessage(msg, size);
    t.same(plain(decode(small)), want, `${msg.type}: ${small.length} frames of ${size} bytes`);
  }
  const w = decode(encodeMessage(SAMPLES[5]!)) as Extract<Message, { type: 'work' }>;
  t.equal(w.tokens.constructor, Uint8Array, 'tokens decode as a Uint8Array');
  const h = decode(encodeMessage(SAMPLES[0]!)) as Extract<Message, { type: 'hello' }>;
  t.equal(h.memoryBytes, 24 * 2 ** 30, 'integers above 2^32 survive');
});

t.test('zero-copy: sections are views of the received buffer when it is aligned, copies when not', async (t) => {
  const tensors = [f32(3), f32(100_000, 2), f32(17, 3)];
  const msg: Message = { type: 'weights', step: 1, tensors };
  const [frame] = encodeMessage(msg);
  t.equal(frame!.byteOffset % 8, 0, 'encodeMessage returns an aligned frame');
  const a = new MessageAssembler();
  const got = decode([frame!], a) as Extract<Message, { type: 'weights' }>;
  for (const [i, x] of got.tensors.entries()) {
    t.equal(x.buffer, frame!.buffer, `tensor ${i} is a view of the frame`);
    t.equal(x.byteOffset % 4, 0);
  }
  t.same(a.stats, { ...a.stats, views: 3, copiedMisaligned: 0, copiedSplit: 0, copiedBytes: 0 });

  // The same bytes one byte into a buffer: every float section is misaligned and copied.
  const shifted = Buffer.alloc(frame!.length + 1).subarray(1);
  frame!.copy(shifted);
  const b = new MessageAssembler();
  const moved = decode([shifted], b) as Extract<Message, { type: 'weights' }>;
  t.same(plain(moved), plain(msg), 'same values');
  for (const x of moved.tensors) t.not(x.buffer, shifted.buffer, 'copied out of the misaligned frame');
  t.equal(b.stats.copiedMisaligned, 3);

  // As fragments (what a Peer sends and ws delivers with binaryType 'fragments'): large sections are the
  // sender's own arrays, so without a socket in between the decoded array shares the original memory.
  const fragments = encodeFrames(msg);
  t.ok(fragments[0]!.length >= 2, 'the large tensor is its own fragment');
  const direct = decode(fragments) as Extract<Message, { type: 'weights' }>;
  t.equal(direct.tensors[1]!.buffer, tensors[1]!.buffer, 'no copy at either end');
});

t.test('malformed frames: truncated, bad magic, versions, lengths, dtypes, control part', async (t) => {
  const msg: Message = { type: 'weights', step: 1, tensors: [f32(10), f32(6)] };
  const [frame] = encodeMessage(msg);
  const edit = (f: (b: Buffer) => void) => {
    const b = Buffer.from(frame!);
    f(b);
    return b;
  };
  const push = (b: Buffer | Buffer[]) => () => new MessageAssembler().push(b);
  throwsCode(t, push(frame!.subarray(0, 20)), 'E_MALFORMED', /truncated frame header/);
  throwsCode(t, push(Buffer.alloc(0)), 'E_MALFORMED', /truncated frame header/);
  throwsCode(t, push([]), 'E_MALFORMED', /truncated frame header/, 'no fragments');
  throwsCode(t, push(frame!.subarray(0, 40)), 'E_MALFORMED', /truncated head/);
  throwsCode(t, push(frame!.subarray(0, 60)), 'E_MALFORMED', /truncated head: 2 sections/);
  throwsCode(t, push(frame!.subarray(0, frame!.length - 4)), 'E_MALFORMED', /frame says 64 data bytes, carries 60/, 'data cut short');
  throwsCode(t, push(Buffer.concat([frame!, Buffer.alloc(8)])), 'E_MALFORMED', /frame says 64 data bytes, carries 72/, 'trailing bytes');
  throwsCode(t, push(edit((b) => b.write('GARB', 0))), 'E_MALFORMED', /bad magic 0x42524147/);
  throwsCode(t, push(Buffer.from('this is not a frame, just a string of bytes')), 'E_MALFORMED', /bad magic/);
  throwsCode(t, push(edit((b) => b.writeUInt8(9, 4))), 'E_VERSION', /wire format version 9, expected 1/);
  throwsCode(t, push(edit((b) => b.writeUInt8(7, 5))), 'E_MALFORMED', /unknown frame kind 7/);
  throwsCode(t, push(edit((b) => b.writeUInt8(99, 48))), 'E_MALFORMED', /section 0: unknown dtype 99/);
  throwsCode(t, push(edit((b) => b.writeBigUInt64LE(41n, 56))), 'E_MALFORMED', /section 0: 41 bytes is not a whole number of Float32Array/);
  throwsCode(t, push(edit((b) => b.writeBigUInt64LE(80n, 40))), 'E_MALFORMED', /section lengths do not add up: sections end at 64, data is 80/);
  throwsCode(t, push(edit((b) => b.writeBigUInt64LE(48n, 40))), 'E_MALFORMED', /section lengths do not add up: section 1/);
  throwsCode(t, push(edit((b) => b.writeBigUInt64LE(1000n, 56))), 'E_MALFORMED', /section lengths do not add up/);
  throwsCode(t, push(edit((b) => b.fill(0xc1, 80, 84))), 'E_MALFORMED', /control part undecodable/);
  throwsCode(t, push(edit((b) => b.writeUInt32LE(2, 16))), 'E_MALFORMED', /all 64 data bytes arrived in frame 1 of 2/, 'a chunk count the data does not fill');
  // control parts a receiver refuses before msgpackr sees them: too long, nested too deep, lengths past the bytes
  const control = (bytes: Buffer, maxControlBytes?: number) => {
    const head = Buffer.alloc(48 + ((bytes.length + 7) & ~7));
    head.writeUInt32LE(0x57494d53, 0);
    head.writeUInt8(1, 4);
    head.writeUInt8(1, 5);
    head.writeUInt32LE(1, 16);
    head.writeUInt32LE(bytes.length, 32);
    bytes.copy(head, 48);
    return () => new MessageAssembler({ maxControlBytes }).push(head);
  };
  const emptyMaps = Buffer.concat([Buffer.from([0xdd, 0, 0x10, 0, 0]), Buffer.alloc(0x100000, 0x80)]); // array32 of 1M empty maps
  throwsCode(t, control(emptyMaps, 4096), 'E_TOO_LARGE', /control part of 1048581 bytes exceeds 4096/);
  throwsCode(t, control(Buffer.alloc(200_000, 0x91)), 'E_MALFORMED', /control part undecodable: nested deeper than 16/, '200,000 nested arrays: no stack overflow');
  throwsCode(t, control(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0])), 'E_MALFORMED', /a container of 4294967295 values in 1 bytes/);
  throwsCode(t, control(Buffer.from([0xdf, 0x80, 0, 0, 0])), 'E_MALFORMED', /a container of 4294967296 values in 0 bytes/);
  throwsCode(t, control(Buffer.from([0xdb, 0x7f, 0xff, 0xff, 0xff, 0x41])), 'E_MALFORMED', /truncated/, 'a str32 longer than the bytes');
  throwsCode(t, control(Buffer.from([0xc0, 0xc0])), 'E_MALFORMED', /1 bytes after its value/);
  throwsCode(t, control(Buffer.alloc(0)), 'E_MALFORMED', /control part undecodable: truncated/, 'no value');
  // a text-looking or empty control, a control that is not a message
  const notAMessage = encodeMessage({ type: 'nonsense' } as unknown as Message, undefined, { check: false });
  throwsCode(t, push(notAMessage[0]!), 'E_MALFORMED', /message.type: unknown message type "nonsense"/);
});

t.test('chunks: reassembled in order; out of order, missing or repeated chunks are E_MALFORMED', async (t) => {
  const msg: Message = { type: 'grads', step: 4, round: 0, attempt: 1, sequences: 2, loss: 1, tensors: [f32(1000), f32(5), f32(3000, 2)], phases: {} };
  const frames = encodeMessage(msg, 1024);
  t.ok(frames.length > 10, `${frames.length} frames`);
  for (const f of frames) t.ok(f.length <= 1024, 'no frame over the limit');
  const a = new MessageAssembler();
  t.same(plain(decode(frames, a)), plain(msg), 'in order');
  t.ok(a.stats.copiedSplit >= 2, 'sections spanning frames were copied together');
  t.equal(a.pending, false);

  const fits: Message = { type: 'weights', step: 1, tensors: Array.from({ length: 9 }, (_, i) => f32(200 + i, i)) };
  const c = new MessageAssembler();
  const fitFrames = encodeMessage(fits, 1024);
  t.same(plain(decode(fitFrames, c)), plain(fits));
  t.same([c.stats.copiedSplit, c.stats.views], [0, 9], `sections that fit a frame start a new frame rather than split (${fitFrames.length} frames)`);

  const swapped = [frames[0]!, frames[2]!, frames[1]!, ...frames.slice(3)];
  throwsCode(t, () => decode(swapped), 'E_MALFORMED', /chunk out of order: got frame 2\/\d+ of message 0, expected 1/);
  throwsCode(t, () => decode(frames.slice(1)), 'E_MALFORMED', /chunk out of order: frame 1 of message 0 without its head/);
  throwsCode(t, () => decode([frames[0]!, frames[1]!, frames[1]!]), 'E_MALFORMED', /chunk out of order: got frame 1/, 'a repeated chunk');
  const b = new MessageAssembler();
  b.push(frames[0]!);
  throwsCode(t, () => b.push(frames[0]!), 'E_MALFORMED', /new message 0 while message 0 awaits frame 1/, 'a new head mid-message');
  t.equal(b.pending, false, 'the assembler resets after an error');
  const other = encodeMessage(msg, 1024).map((f) => {
    const c = Buffer.from(f);
    c.writeUInt32LE(7, 8); // message sequence number
    return c;
  });
  throwsCode(t, () => decode([frames[0]!, other[1]!]), 'E_MALFORMED', /of message 7, expected 1\/\d+ of 0/, 'a chunk of another message');
  const shifted = Buffer.from(frames[1]!);
  shifted.writeBigUInt64LE(BigInt(Number(shifted.readBigUInt64LE(24)) + 8), 24);
  throwsCode(t, () => decode([frames[0]!, shifted]), 'E_MALFORMED', /carries data at \d+, expected/);
});

t.test('oversize: frames over maxFrameBytes, messages over maxMessageBytes, headers over a frame', async (t) => {
  const msg: Message = { type: 'weights', step: 1, tensors: [f32(1000)] };
  const [frame] = encodeMessage(msg);
  throwsCode(t, () => new MessageAssembler({ maxFrameBytes: 1024 }).push(frame!), 'E_TOO_LARGE', /frame of 4\d\d\d bytes exceeds 1024/);
  throwsCode(t, () => new MessageAssembler({ maxMessageBytes: 3999 }).push(frame!), 'E_TOO_LARGE', /message of 4000 bytes exceeds 3999/);
  const huge = Buffer.from(frame!);
  huge.writeBigUInt64LE(2n ** 40n, 40);
  throwsCode(t, () => new MessageAssembler().push(huge), 'E_TOO_LARGE', /message of 1099511627776 bytes exceeds/, 'a declared 1 TiB message allocates nothing');
  const many: Message = { type: 'weights', step: 1, tensors: Array.from({ length: 10 }, () => f32(1)) };
  throwsCode(t, () => encodeMessage(many, 128), 'E_TOO_LARGE', /header of \d+ bytes does not fit a 128-byte frame/);
  t.throws(() => encodeMessage(msg, 100), /multiple of 8/);
});
