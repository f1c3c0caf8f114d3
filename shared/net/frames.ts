// The wire codec, the only module that knows the frame layout: msgpack control part, raw typed-array sections, chunking.
//
// One file of ~570 lines: the encoder and the assembler are the two halves of one format and are read side by side.
// The Peer that moves these frames over a ws WebSocket is in peer.ts.
//
// Frame layout (one frame = one WebSocket binary message, at most maxFrameBytes; little-endian throughout):
//
//   every frame, 32 bytes            head frame continues (kind 1)
//   0  u8[4] magic "SMIW"            32  u32 C: control bytes
//   4  u8    WIRE_VERSION            36  u32 S: sections
//   5  u8    kind: 1 head, 2 cont.   40  u64 D: data-stream bytes
//   6  u16   0                       48  S × { u8 dtype, u8[7] 0, u64 byteLength }
//   8  u32   message sequence no.    ..  C bytes msgpack control (typed arrays replaced by ext 1 = section index)
//   12 u32   chunk index (head = 0)  ..  zero padding to a multiple of 8
//   16 u32   chunk count
//   20 u32   data bytes in frame     then, in every frame, its slice of the data stream
//   24 u64   their data-stream offset
//
// The data stream is the message's typed arrays' raw bytes, section i starting at the first multiple of 8 after
// section i-1 (zero padding between). A message whose data does not fit one frame continues in frames of kind 2,
// each carrying the next slice, in order; a section that fits in one frame is never split (the frame before it
// ends early). Headers are multiples of 8 long and slices are cut at multiples of 8, so a section lies at an
// aligned address whenever the received frame does, and is decoded as a view of it.
//
// A Peer (peer.ts) sends each frame as WebSocket fragments (fin=false … fin=true): the header, then each large section as
// its own fragment straight from the caller's typed array (no copy; pieces under 64 KiB are merged). The
// receiving Peer asks ws for binaryType 'fragments', so every fragment arrives as its own Buffer (freshly
// allocated by ws when it spans socket reads, hence aligned) and sections are views of those Buffers. Only a
// section that is misaligned or split across frames is copied; MessageAssembler.stats counts both. Measured on
// the paper preset (scripts/bench/transport.ts): ~2 GB/s, against ~0.7 GB/s when each frame is first copied into
// one Buffer; about 1 section in 5 arrives misaligned, all of them small (≈ 6–8 KiB copied per message).
import { Packr, Unpackr, addExtension } from 'msgpackr';
import { ProtocolError, protocolError } from '../errors.ts';
import { type Message, parseMessage } from './protocol.ts';

// (a typed-array view rather than node:os, so that the browser worker's bundle runs this file as it is)
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('shared/net/frames.ts sends typed arrays as raw little-endian bytes');

/** Version of the frame layout above (PROTOCOL_VERSION versions the messages). */
export const WIRE_VERSION = 1;
/**
 * Largest frame, and so ws's `maxPayload`. 64 MiB holds the paper preset's 43 MB gradient or weights in one
 * frame, stays under ws's 100 MiB default, and bounds what ws buffers per frame before we see it; larger messages
 * (a 124M-parameter model is ~500 MB) are chunked.
 */
export const MAX_FRAME_BYTES = 64 * 2 ** 20;
/** Largest message a receiver accepts (sum of its frames): weights plus spectral state of a 124M model, with room. */
export const MAX_MESSAGE_BYTES = 2 * 2 ** 30;
/** Largest msgpack control part a receiver decodes: the largest real one (a `work`'s offsets) is a few KiB. */
export const MAX_CONTROL_BYTES = 2 ** 20;
/** Deepest nesting of the control part (our messages nest 3 deep: message → tensors → section reference). */
export const MAX_CONTROL_DEPTH = 16;
/** A sender waits for the socket to drain once ws.bufferedAmount exceeds this. */
export const HIGH_WATER_BYTES = 16 * 2 ** 20;
/** Pieces under this size are merged into one fragment (one copy) rather than sent as fragments of their own. */
const MERGE_BELOW = 64 * 2 ** 10;

const MAGIC = 0x57494d53; // bytes "SMIW" read as a little-endian u32
const KIND_HEAD = 1;
const KIND_CONT = 2;
const FRAME_HEADER = 32;
const HEAD_FIXED = 48;
const SECTION_ENTRY = 16;

export type TypedArray = Float32Array | Uint8Array | Int32Array | Uint32Array | Float64Array | Uint16Array | Int16Array | Int8Array;
type TypedArrayCtor = { new (length: number): TypedArray; new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray; readonly BYTES_PER_ELEMENT: number; readonly name: string };

/** Section dtype codes on the wire. Uint8Array also covers Buffer (decoded as a plain Uint8Array). */
const DTYPES: readonly (readonly [code: number, ctor: TypedArrayCtor])[] = [
  [1, Float32Array], [2, Uint8Array], [3, Int32Array], [4, Uint32Array],
  [5, Float64Array], [6, Uint16Array], [7, Int16Array], [8, Int8Array],
];
const CTOR_BY_CODE = new Map<number, TypedArrayCtor>(DTYPES.map(([c, k]) => [c, k]));

function dtypeOf(v: ArrayBufferView): number | undefined {
  if (v instanceof Uint8ClampedArray) return undefined;
  for (const [code, Ctor] of DTYPES) if (v instanceof Ctor) return code;
  return undefined;
}

// arithmetic, not `(n + 7) & ~7`: bitwise operators cut to 32 bits, and a header may declare 2^64 bytes
const align8 = (n: number) => Math.ceil(n / 8) * 8;
const ZEROS = Buffer.alloc(8);
const now = () => performance.now();

// ---------------------------------------------------------------------------------------------------------------
// Control part: msgpack with each typed array replaced by ext type 1 holding its section index (u32).

class SectionRef {
  constructor(readonly index: number) {}
}

addExtension({
  Class: SectionRef,
  type: 1,
  pack(ref: SectionRef) {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(ref.index, 0);
    return b;
  },
  unpack(b: Uint8Array) {
    if (b.length !== 4) throw new Error(`section reference of ${b.length} bytes`);
    return new SectionRef(Buffer.from(b.buffer, b.byteOffset, 4).readUInt32LE(0));
  },
});

// Plain msgpack (no records/shared structures): every frame decodes on its own, and non-msgpackr peers can read it.
const packr = new Packr({ useRecords: false, moreTypes: false, structuredClone: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false });

/** The control value of `v`: typed arrays moved to `sections`, undefined object fields dropped. */
function toControl(v: unknown, sections: TypedArray[]): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (ArrayBuffer.isView(v)) {
    if (dtypeOf(v) === undefined) throw protocolError('E_MALFORMED', `cannot send a ${v.constructor.name}`);
    sections.push(v as TypedArray);
    return new SectionRef(sections.length - 1);
  }
  if (Array.isArray(v)) return v.map((x) => toControl(x, sections));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = toControl(x, sections);
  return out;
}

/**
 * Walks a msgpack value without decoding it: throws E_MALFORMED unless `b` is exactly one value nested at most
 * `maxDepth` deep, every declared length fits the bytes left. msgpackr has no such limits: it recurses per level
 * (a control part of nested arrays overflows the stack) and builds an object per empty map (8 MiB of 0x80 bytes
 * is 8M objects, ~1 GB). Iterative, allocation-free, O(bytes).
 */
export function checkControl(b: Uint8Array, maxDepth = MAX_CONTROL_DEPTH): void {
  const stack: number[] = []; // values still to read in each open container
  let pos = 0;
  let values = 1; // at the top level: exactly one
  const need = (n: number) => {
    if (pos + n > b.length) throw malformed(`control part undecodable: truncated, ${n} bytes needed at ${pos} of ${b.length}`);
  };
  const be = (at: number, n: number) => {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + b[at + i]!;
    return v;
  };
  for (;;) {
    while (values === 0) {
      if (stack.length === 0) {
        if (pos !== b.length) throw malformed(`control part undecodable: ${b.length - pos} bytes after its value`);
        return;
      }
      values = stack.pop()!;
    }
    values--;
    need(1);
    const t = b[pos++]!;
    let skip = 0; // payload bytes of a scalar
    let children = -1; // values of a container
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) skip = 0;
    else if (t <= 0x8f) children = 2 * (t & 0x0f);
    else if (t <= 0x9f) children = t & 0x0f;
    else if (t <= 0xbf) skip = t & 0x1f;
    else if (t === 0xc4 || t === 0xd9) { need(1); skip = b[pos++]!; }
    else if (t === 0xc5 || t === 0xda) { need(2); skip = be(pos, 2); pos += 2; }
    else if (t === 0xc6 || t === 0xdb) { need(4); skip = be(pos, 4); pos += 4; }
    else if (t === 0xc7) { need(1); skip = 1 + b[pos++]!; }
    else if (t === 0xc8) { need(2); skip = 1 + be(pos, 2); pos += 2; }
    else if (t === 0xc9) { need(4); skip = 1 + be(pos, 4); pos += 4; }
    else if (t === 0xca) skip = 4;
    else if (t === 0xcb) skip = 8;
    else if (t >= 0xcc && t <= 0xd3) skip = 1 << (t & 0x03);
    else if (t >= 0xd4 && t <= 0xd8) skip = 1 + (1 << (t - 0xd4));
    else if (t === 0xdc) { need(2); children = be(pos, 2); pos += 2; }
    else if (t === 0xdd) { need(4); children = be(pos, 4); pos += 4; }
    else if (t === 0xde) { need(2); children = 2 * be(pos, 2); pos += 2; }
    else if (t === 0xdf) { need(4); children = 2 * be(pos, 4); pos += 4; }
    else throw malformed(`control part undecodable: msgpack byte 0x${t.toString(16)} is not a type`);
    if (children < 0) {
      need(skip);
      pos += skip;
      continue;
    }
    if (children > b.length - pos) throw malformed(`control part undecodable: a container of ${children} values in ${b.length - pos} bytes`);
    if (children === 0) continue;
    if (stack.length + 1 > maxDepth) throw malformed(`control part undecodable: nested deeper than ${maxDepth}`);
    stack.push(values);
    values = children;
  }
}

/** Puts the decoded sections back where their references are; each section must be referenced exactly once. */
function fromControl(v: unknown, sections: TypedArray[], used: Uint8Array): unknown {
  if (v instanceof SectionRef) {
    if (v.index >= sections.length) throw protocolError('E_MALFORMED', `control refers to section ${v.index} of ${sections.length}`);
    if (used[v.index]) throw protocolError('E_MALFORMED', `control refers to section ${v.index} twice`);
    used[v.index] = 1;
    return sections[v.index];
  }
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = fromControl(v[i], sections, used);
  } else {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = fromControl(o[k], sections, used);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/** One frame as the pieces that are sent as WebSocket fragments of one message; concatenated, they are the frame. */
export type Frame = Buffer[];

export interface EncodeOptions {
  maxFrameBytes?: number; // frames are at most this long (a multiple of 8, at least 64) [MAX_FRAME_BYTES]
  seq?: number; // message sequence number written in every frame [0]
  check?: boolean; // run the guard on the outgoing message [true]; false only to craft invalid frames in tests
}

function writeFrameHeader(b: Buffer, kind: number, seq: number, index: number, chunks: number, dataBytes: number, dataOffset: number): void {
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt8(WIRE_VERSION, 4);
  b.writeUInt8(kind, 5);
  b.writeUInt16LE(0, 6);
  b.writeUInt32LE(seq >>> 0, 8);
  b.writeUInt32LE(index, 12);
  b.writeUInt32LE(chunks, 16);
  b.writeUInt32LE(dataBytes, 20);
  b.writeBigUInt64LE(BigInt(dataOffset), 24);
}

/** Merges runs of small pieces into one Buffer; large pieces stay views of the caller's arrays. */
function mergeSmall(pieces: Buffer[]): Frame {
  const out: Frame = [];
  let run: Buffer[] = [];
  const flush = () => {
    if (run.length === 1) out.push(run[0]!);
    else if (run.length > 1) out.push(Buffer.concat(run));
    run = [];
  };
  for (const p of pieces) {
    if (p.length < MERGE_BELOW) run.push(p);
    else {
      flush();
      out.push(p);
    }
  }
  flush();
  return out;
}

/**
 * Encodes a message (checked by parseMessage first) into frames of pieces. The typed arrays are not copied:
 * large pieces are views of them, so they must not change until the frames are sent.
 */
export function encodeFrames(msg: Message, opts: EncodeOptions = {}): Frame[] {
  const maxFrame = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
  if (!Number.isSafeInteger(maxFrame) || maxFrame % 8 !== 0 || maxFrame < 64) {
    throw new RangeError(`maxFrameBytes must be a multiple of 8, at least 64; got ${maxFrame}`);
  }
  const seq = opts.seq ?? 0;
  if (opts.check !== false) parseMessage(msg);
  const sections: TypedArray[] = [];
  const control = packr.pack(toControl(msg, sections));
  const headLen = align8(HEAD_FIXED + SECTION_ENTRY * sections.length + control.length);
  if (headLen > maxFrame) {
    throw protocolError('E_TOO_LARGE', `${msg.type}: header of ${headLen} bytes does not fit a ${maxFrame}-byte frame`);
  }
  const head = Buffer.alloc(headLen); // zeroed: reserved bytes and padding
  head.writeUInt32LE(control.length, 32);
  head.writeUInt32LE(sections.length, 36);
  const data: Buffer[] = []; // the data stream, as views and padding
  const offsets: number[] = []; // of each section in the data stream
  let pos = 0;
  for (let i = 0; i < sections.length; i++) {
    const a = sections[i]!;
    const e = HEAD_FIXED + SECTION_ENTRY * i;
    head.writeUInt8(dtypeOf(a)!, e);
    head.writeBigUInt64LE(BigInt(a.byteLength), e + 8);
    const at = align8(pos);
    offsets.push(at);
    if (at > pos) data.push(ZEROS.subarray(0, at - pos));
    if (a.byteLength > 0) data.push(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    pos = at + a.byteLength;
  }
  const total = pos;
  head.writeBigUInt64LE(BigInt(total), 40);
  control.copy(head, HEAD_FIXED + SECTION_ENTRY * sections.length);

  // Frame ends in the data stream. A section that would straddle a frame end but fits one frame starts the next
  // frame instead, so only sections larger than a frame are split (and copied together by the receiver).
  const firstBudget = maxFrame - headLen;
  const contBudget = maxFrame - FRAME_HEADER;
  const ends: number[] = [];
  for (let start = 0, k = 0; ends.length === 0 || start < total; ) {
    let end = Math.min(total, start + (ends.length === 0 ? firstBudget : contBudget));
    while (k < sections.length && offsets[k]! + sections[k]!.byteLength <= end) k++;
    const straddles = end < total && k < sections.length && offsets[k]! < end;
    // (the head frame may end with no data at all; a continuation frame must carry some)
    if (straddles && (offsets[k]! > start || ends.length === 0) && sections[k]!.byteLength <= contBudget) end = offsets[k]!;
    ends.push(end);
    start = end;
  }
  const chunks = ends.length;
  if (chunks > 0xffffffff) throw protocolError('E_TOO_LARGE', `${msg.type}: ${total} bytes need too many frames`);

  const frames: Frame[] = [];
  let piece = 0; // index into data
  let inPiece = 0; // bytes of data[piece] already framed
  let offset = 0; // data-stream offset of the next frame
  for (let index = 0; index < chunks; index++) {
    const bytes = ends[index]! - offset;
    const header = index === 0 ? head : Buffer.alloc(FRAME_HEADER);
    writeFrameHeader(header, index === 0 ? KIND_HEAD : KIND_CONT, seq, index, chunks, bytes, offset);
    const pieces: Buffer[] = [header];
    let need = bytes;
    while (need > 0) {
      const p = data[piece]!;
      const take = Math.min(need, p.length - inPiece);
      pieces.push(take === p.length ? p : p.subarray(inPiece, inPiece + take));
      inPiece += take;
      need -= take;
      if (inPiece === p.length) {
        piece++;
        inPiece = 0;
      }
    }
    frames.push(mergeSmall(pieces));
    offset += bytes;
  }
  return frames;
}

/** Encodes a message into frames, each one contiguous Buffer (copies; Peer sends the pieces instead). */
export function encodeMessage(msg: Message, maxFrameBytes?: number, opts: Omit<EncodeOptions, 'maxFrameBytes'> = {}): Buffer[] {
  return encodeFrames(msg, { ...opts, maxFrameBytes }).map((f) => (f.length === 1 ? f[0]! : Buffer.concat(f)));
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

export interface AssemblerOptions {
  maxFrameBytes?: number; // a longer frame is E_TOO_LARGE [MAX_FRAME_BYTES]
  maxMessageBytes?: number; // a message declaring more data is E_TOO_LARGE [MAX_MESSAGE_BYTES]
  maxControlBytes?: number; // a longer control part is E_TOO_LARGE, checked before it is decoded [MAX_CONTROL_BYTES]
}

/** What the assembler did, for measuring how often zero-copy works. */
export interface AssemblerStats {
  frames: number;
  messages: number;
  bytes: number;
  views: number; // sections decoded as views of a received buffer
  copiedMisaligned: number; // sections copied because they sat at a misaligned address
  copiedSplit: number; // sections copied because they spanned fragments or frames
  copiedBytes: number; // bytes of all copied sections
}

interface PendingSection {
  Ctor: TypedArrayCtor;
  offset: number; // in the data stream
  byteLength: number;
  array: TypedArray | null;
  filled: number;
}

interface Pending {
  seq: number;
  chunks: number;
  next: number; // index of the next frame expected
  received: number; // data-stream bytes received
  total: number;
  sections: PendingSection[];
  cursor: number; // first section not yet complete
  control: unknown;
}

const malformed = (message: string) => protocolError('E_MALFORMED', message);

/**
 * Turns frames back into messages. push() takes one frame, either as one Buffer or as the fragments ws delivered
 * with binaryType 'fragments', and returns the message once its last frame is in (checked by parseMessage), else
 * null. Throws ProtocolError (E_MALFORMED, E_VERSION, E_TOO_LARGE) on any frame that does not fit the layout;
 * the assembler is reset afterwards, but the connection should be closed.
 */
export class MessageAssembler {
  maxFrameBytes: number;
  maxMessageBytes: number;
  maxControlBytes: number;
  readonly stats: AssemblerStats = { frames: 0, messages: 0, bytes: 0, views: 0, copiedMisaligned: 0, copiedSplit: 0, copiedBytes: 0 };
  #pending: Pending | null = null;

  constructor(opts: AssemblerOptions = {}) {
    this.maxFrameBytes = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.maxMessageBytes = opts.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.maxControlBytes = opts.maxControlBytes ?? MAX_CONTROL_BYTES;
  }

  /** True while a chunked message is partly received. */
  get pending(): boolean {
    return this.#pending !== null;
  }

  reset(): void {
    this.#pending = null;
  }

  push(frame: Uint8Array | readonly Uint8Array[]): Message | null {
    try {
      return this.#push(frame);
    } catch (e) {
      this.#pending = null;
      if (e instanceof ProtocolError) throw e;
      throw malformed(`undecodable frame: ${(e as Error).message}`);
    }
  }

  #push(frame: Uint8Array | readonly Uint8Array[]): Message | null {
    let parts: readonly Uint8Array[] = frame instanceof Uint8Array ? [frame] : frame;
    let size = 0;
    for (const p of parts) size += p.length;
    this.stats.frames++;
    this.stats.bytes += size;
    if (size > this.maxFrameBytes) throw protocolError('E_TOO_LARGE', `frame of ${size} bytes exceeds ${this.maxFrameBytes}`);
    if (size < FRAME_HEADER) throw malformed(`truncated frame header: ${size} of ${FRAME_HEADER} bytes`);
    // Our senders put the whole header in the first fragment; anyone else's frame is joined first.
    if (parts[0]!.length < FRAME_HEADER) parts = [Buffer.concat(parts)];
    let h = Buffer.from(parts[0]!.buffer, parts[0]!.byteOffset, parts[0]!.length);
    if (h.readUInt32LE(0) !== MAGIC) throw malformed(`bad magic 0x${h.readUInt32LE(0).toString(16).padStart(8, '0')}`);
    const version = h.readUInt8(4);
    if (version !== WIRE_VERSION) throw protocolError('E_VERSION', `wire format version ${version}, expected ${WIRE_VERSION}`);
    const kind = h.readUInt8(5);
    const seq = h.readUInt32LE(8);
    const index = h.readUInt32LE(12);
    const chunks = h.readUInt32LE(16);
    const dataBytes = h.readUInt32LE(20);
    const dataOffset = Number(h.readBigUInt64LE(24));
    let headerLen = FRAME_HEADER;
    let p: Pending;

    if (kind === KIND_HEAD) {
      if (this.#pending) {
        const q = this.#pending;
        throw malformed(`chunk out of order: new message ${seq} while message ${q.seq} awaits frame ${q.next} of ${q.chunks}`);
      }
      if (index !== 0 || chunks < 1 || dataOffset !== 0) throw malformed(`head frame with index ${index}, count ${chunks}, offset ${dataOffset}`);
      if (size < HEAD_FIXED) throw malformed(`truncated head: ${size} of ${HEAD_FIXED} bytes`);
      if (parts[0]!.length < HEAD_FIXED) parts = [Buffer.concat(parts)];
      h = Buffer.from(parts[0]!.buffer, parts[0]!.byteOffset, parts[0]!.length);
      const controlLen = h.readUInt32LE(32);
      const count = h.readUInt32LE(36);
      const total = Number(h.readBigUInt64LE(40));
      headerLen = align8(HEAD_FIXED + SECTION_ENTRY * count + controlLen);
      if (headerLen > size) throw malformed(`truncated head: ${count} sections and ${controlLen} control bytes need ${headerLen} bytes, frame has ${size}`);
      if (total > this.maxMessageBytes) throw protocolError('E_TOO_LARGE', `message of ${total} bytes exceeds ${this.maxMessageBytes}`);
      if (controlLen > this.maxControlBytes) throw protocolError('E_TOO_LARGE', `control part of ${controlLen} bytes exceeds ${this.maxControlBytes}`);
      if (parts[0]!.length < headerLen) parts = [Buffer.concat(parts)];
      h = Buffer.from(parts[0]!.buffer, parts[0]!.byteOffset, parts[0]!.length);
      const sections: PendingSection[] = [];
      let pos = 0;
      for (let i = 0; i < count; i++) {
        const e = HEAD_FIXED + SECTION_ENTRY * i;
        const code = h.readUInt8(e);
        const Ctor = CTOR_BY_CODE.get(code);
        if (!Ctor) throw malformed(`section ${i}: unknown dtype ${code}`);
        const byteLength = Number(h.readBigUInt64LE(e + 8));
        if (byteLength % Ctor.BYTES_PER_ELEMENT !== 0) throw malformed(`section ${i}: ${byteLength} bytes is not a whole number of ${Ctor.name} elements`);
        const offset = align8(pos);
        if (offset + byteLength > total) throw malformed(`section lengths do not add up: section ${i} ends at ${offset + byteLength}, data is ${total} bytes`);
        sections.push({ Ctor, offset, byteLength, array: byteLength === 0 ? new Ctor(0) : null, filled: 0 });
        pos = offset + byteLength;
      }
      if (pos !== total) throw malformed(`section lengths do not add up: sections end at ${pos}, data is ${total} bytes`);
      const ctrlAt = HEAD_FIXED + SECTION_ENTRY * count;
      const controlBytes = h.subarray(ctrlAt, ctrlAt + controlLen);
      checkControl(controlBytes);
      let control: unknown;
      try {
        control = unpackr.unpack(controlBytes);
      } catch (e) {
        throw malformed(`control part undecodable: ${(e as Error).message}`);
      }
      p = { seq, chunks, next: 0, received: 0, total, sections, cursor: 0, control };
    } else if (kind === KIND_CONT) {
      const q = this.#pending;
      if (!q) throw malformed(`chunk out of order: frame ${index} of message ${seq} without its head`);
      if (seq !== q.seq || index !== q.next || chunks !== q.chunks) {
        throw malformed(`chunk out of order: got frame ${index}/${chunks} of message ${seq}, expected ${q.next}/${q.chunks} of ${q.seq}`);
      }
      if (dataOffset !== q.received) throw malformed(`frame ${index} carries data at ${dataOffset}, expected ${q.received}`);
      if (dataBytes === 0) throw malformed(`continuation frame ${index} carries no data`);
      p = q;
    } else {
      throw malformed(`unknown frame kind ${kind}`);
    }

    if (dataBytes !== size - headerLen) throw malformed(`frame says ${dataBytes} data bytes, carries ${size - headerLen}`);
    if (p.received + dataBytes > p.total) throw malformed(`section lengths do not add up: data runs past ${p.total} bytes`);
    this.#feed(p, parts, headerLen);
    p.received += dataBytes;
    p.next++;
    if (p.next < p.chunks) {
      if (p.received === p.total) throw malformed(`section lengths do not add up: all ${p.total} data bytes arrived in frame ${p.next} of ${p.chunks}`);
      this.#pending = p;
      return null;
    }
    this.#pending = null;
    if (p.received !== p.total) throw malformed(`section lengths do not add up: ${p.received} of ${p.total} data bytes in ${p.chunks} frames`);
    const arrays = p.sections.map((s) => s.array!);
    const used = new Uint8Array(arrays.length);
    const value = fromControl(p.control, arrays, used);
    const unused = used.indexOf(0);
    if (unused >= 0) throw malformed(`section ${unused} is not referenced by the control part`);
    const msg = parseMessage(value);
    this.stats.messages++;
    return msg;
  }

  /** Places the frame's data (after `skip` header bytes) into the pending sections: views where possible. */
  #feed(p: Pending, parts: readonly Uint8Array[], skip: number): void {
    let pos = p.received;
    for (const part of parts) {
      let start = 0;
      if (skip > 0) {
        if (skip >= part.length) {
          skip -= part.length;
          continue;
        }
        start = skip;
        skip = 0;
      }
      const end = pos + part.length - start; // this segment holds data-stream bytes [pos, end)
      for (let k = p.cursor; k < p.sections.length; k++) {
        const s = p.sections[k]!;
        if (s.offset >= end) break;
        const a = Math.max(s.offset, pos);
        const b = Math.min(s.offset + s.byteLength, end);
        if (b <= a) continue;
        const src = part.subarray(start + (a - pos), start + (b - pos));
        if (s.array === null && a === s.offset && b === s.offset + s.byteLength) {
          const addr = src.byteOffset;
          if (addr % s.Ctor.BYTES_PER_ELEMENT === 0) {
            s.array = new s.Ctor(src.buffer, addr, s.byteLength / s.Ctor.BYTES_PER_ELEMENT);
            this.stats.views++;
          } else {
            s.array = new s.Ctor(s.byteLength / s.Ctor.BYTES_PER_ELEMENT);
            new Uint8Array(s.array.buffer).set(src);
            this.stats.copiedMisaligned++;
            this.stats.copiedBytes += s.byteLength;
          }
        } else {
          if (s.array === null) {
            s.array = new s.Ctor(s.byteLength / s.Ctor.BYTES_PER_ELEMENT);
            this.stats.copiedSplit++;
            this.stats.copiedBytes += s.byteLength;
          }
          new Uint8Array(s.array.buffer, a - s.offset, b - a).set(src);
        }
        s.filled += b - a;
      }
      while (p.cursor < p.sections.length) {
        const s = p.sections[p.cursor]!;
        if (s.offset + s.byteLength > end) break;
        p.cursor++;
      }
      pos = end;
    }
  }
}
