// The Peer: one side of a WebSocket link, sending and receiving whole messages as frames (frames.ts), with backpressure.
// Types only: the Node side passes ws's WebSocket, the browser worker its own WebSocket behind the same members
// (shared/net/socket.browser.ts); nothing of ws is loaded here, so the browser bundle runs this file as it is.
import type WebSocket from 'ws';
import type { ClientOptions, ServerOptions } from 'ws';
import { type ErrorCode, ProtocolError, protocolError } from '../errors.ts';
import { HIGH_WATER_BYTES, MAX_FRAME_BYTES, MessageAssembler, encodeFrames, type AssemblerStats } from './frames.ts';
import type { Message } from './protocol.ts';

/** How long close() waits for an in-flight message to finish before closing anyway. */
const CLOSE_GRACE_MS = 2000;
const now = () => performance.now();
// ws's readyState values (the browser's WebSocket has the same)
const CONNECTING = 0;
const OPEN = 1;

/** Options for the coordinator's WebSocketServer. UTF-8 checks are skipped: text frames are refused unread. */
export function serverOptions(extra: ServerOptions = {}): ServerOptions {
  return { perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES, skipUTF8Validation: true, ...extra };
}

export interface ClientExtra {
  /**
   * Send unmasked (an all-zero mask, so ws skips the XOR and the copy it needs). Masking protects HTTP proxies
   * from cache poisoning, which a trusted loopback or LAN link has none of; opt in only there.
   */
  unmasked?: boolean;
}

/** Options for a worker's WebSocket. */
export function clientOptions(extra: ClientOptions & ClientExtra = {}): ClientOptions {
  const { unmasked, ...rest } = extra;
  const opts: ClientOptions = { perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES, skipUTF8Validation: true, ...rest };
  if (unmasked) opts.generateMask = (mask: Buffer) => void mask.fill(0);
  return opts;
}

export interface SendInfo {
  bytes: number; // frame bytes handed to ws (without WebSocket framing)
  encodeMs: number; // building the frames
  sendMs: number; // from the first fragment handed to ws to the last one written to the socket
}

export interface ReceiveInfo {
  bytes: number; // frame bytes of this message
  frames: number;
  decodeMs: number; // time in the assembler and guard, over all frames
  receivedAt: number; // epoch ms (fractional) when the message's first frame arrived
}

export type MessageHandler = (msg: Message, info: ReceiveInfo) => void | Promise<void>;
export type CloseHandler = (code: number, reason: string, error?: ProtocolError) => void;
export type ErrorHandler = (err: ProtocolError) => void;

export interface PeerOptions {
  maxFrameBytes?: number; // [MAX_FRAME_BYTES]; must not exceed the remote's ws maxPayload
  maxMessageBytes?: number; // [MAX_MESSAGE_BYTES]; lower it until a peer has authenticated
  maxControlBytes?: number; // [MAX_CONTROL_BYTES]; likewise
  highWaterBytes?: number; // [HIGH_WATER_BYTES]
}

const closeReason = (err: ProtocolError) => {
  let r = `${err.code}: ${err.message}`;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1); // a close reason is at most 123 bytes
  return r;
};

/** ws errors that mean the remote broke the WebSocket protocol or our limits, as our codes. */
function wsErrorCode(err: Error & { code?: string }): ErrorCode | undefined {
  if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || err.code === 'WS_ERR_TOO_MANY_BUFFERED_PARTS') return 'E_TOO_LARGE';
  if (err.code?.startsWith('WS_ERR_')) return 'E_MALFORMED';
  return undefined;
}

/**
 * One end of a connection: sends and receives Messages over a ws WebSocket, one message at a time in each
 * direction. Frames that fail to decode, and errors thrown by the message handler, close the connection with the
 * error's close code (E_INTERNAL for an error that is not a ProtocolError) after an `error` message; nothing is
 * dropped silently. Handlers are set with onMessage/onClose/onError; messages that arrive before onMessage is set
 * are kept and delivered when it is.
 */
export class Peer {
  readonly ws: WebSocket;
  readonly assembler: MessageAssembler;
  bytesSent = 0; // frame bytes, without WebSocket framing
  bytesReceived = 0;
  readonly maxFrameBytes: number;
  readonly highWaterBytes: number;
  #onMessage: MessageHandler | null = null;
  #onClose: CloseHandler | null = null;
  #onError: ErrorHandler | null = null;
  #early: [Message, ReceiveInfo][] = []; // messages that arrived before onMessage was set
  #seq = 0;
  #tail: Promise<unknown> = Promise.resolve();
  #closing = false;
  #closedWith: ProtocolError | undefined;
  #socketError: Error | undefined;
  #msg = { bytes: 0, frames: 0, decodeMs: 0, receivedAt: 0 };

  constructor(ws: WebSocket, opts: PeerOptions = {}) {
    this.ws = ws;
    this.maxFrameBytes = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.highWaterBytes = opts.highWaterBytes ?? HIGH_WATER_BYTES;
    this.assembler = new MessageAssembler({ maxFrameBytes: this.maxFrameBytes, maxMessageBytes: opts.maxMessageBytes, maxControlBytes: opts.maxControlBytes });
    ws.binaryType = 'fragments';
    ws.on('message', (data, isBinary) => this.#receive(data as Buffer | Buffer[], isBinary));
    ws.on('close', (code, reason) => {
      this.#closing = true;
      // an abnormal closure (1006) has no reason of its own: give the socket error that caused it, if any
      const why = reason.toString() || (this.#socketError ? this.#socketError.message : '');
      this.#onClose?.(code, why, this.#closedWith);
    });
    ws.on('error', (err: Error & { code?: string }) => {
      const code = wsErrorCode(err);
      if (code) this.#onError?.(protocolError(code, err.message));
      else this.#socketError = err;
    });
  }

  /** Sets the handler of each message (checked by the guard). A ProtocolError it throws or rejects with closes the peer with that error. */
  onMessage(handler: MessageHandler): this {
    this.#onMessage = handler;
    const early = this.#early.splice(0);
    if (early.length) queueMicrotask(() => early.forEach(([m, i]) => this.#deliver(m, i)));
    return this;
  }

  /** Sets the handler called once the socket has closed; `error` is the ProtocolError this side closed with, if any. */
  onClose(handler: CloseHandler): this {
    this.#onClose = handler;
    return this;
  }

  /** Sets the handler of protocol errors: ones this side detected (just before closing with them), or ws reported. */
  onError(handler: ErrorHandler): this {
    this.#onError = handler;
    return this;
  }

  /** Largest message accepted from the remote; raise it once the remote is trusted. */
  set maxMessageBytes(n: number) {
    this.assembler.maxMessageBytes = n;
  }

  get maxMessageBytes(): number {
    return this.assembler.maxMessageBytes;
  }

  /** Largest control part accepted from the remote. */
  set maxControlBytes(n: number) {
    this.assembler.maxControlBytes = n;
  }

  get maxControlBytes(): number {
    return this.assembler.maxControlBytes;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /**
   * Sends a message after those already queued; resolves once all its bytes are written to the socket. The typed
   * arrays are sent without copying: do not change them until this resolves.
   */
  send(msg: Message): Promise<SendInfo> {
    if (this.#closing) return Promise.reject(new Error(`peer is closing, ${msg.type} not sent`));
    const job = this.#tail.then(() => {
      if (this.#closing) throw new Error(`peer is closing, ${msg.type} not sent`);
      return this.#write(msg);
    });
    this.#tail = job.catch(() => undefined);
    return job;
  }

  async #write(msg: Message): Promise<SendInfo> {
    const ws = this.ws;
    if (ws.readyState === CONNECTING) {
      await new Promise<void>((resolve, reject) => {
        const opened = () => {
          ws.off('close', closed);
          resolve();
        };
        const closed = () => {
          ws.off('open', opened);
          reject(new Error('socket closed before it opened'));
        };
        ws.once('open', opened);
        ws.once('close', closed);
      });
    }
    const t0 = now();
    const frames = encodeFrames(msg, { maxFrameBytes: this.maxFrameBytes, seq: this.#seq });
    this.#seq = (this.#seq + 1) >>> 0;
    const t1 = now();
    let bytes = 0;
    let last: Promise<void> = Promise.resolve();
    for (const frame of frames) {
      for (let i = 0; i < frame.length; i++) {
        if (ws.readyState !== OPEN) throw new Error(`socket closed while sending ${msg.type}`);
        const part = frame[i]!;
        bytes += part.length;
        last = new Promise<void>((resolve, reject) => {
          ws.send(part, { binary: true, compress: false, fin: i === frame.length - 1 }, (err) => (err ? reject(err) : resolve()));
        });
        last.catch(() => undefined); // awaited below or by the next wait; never unhandled
        if (ws.bufferedAmount > this.highWaterBytes) await last;
      }
    }
    await last;
    this.bytesSent += bytes;
    return { bytes, encodeMs: t1 - t0, sendMs: now() - t1 };
  }

  /**
   * Closes the connection: with an error, sends an `error` message first (after any message in flight) and closes
   * with the error's close code; without, closes normally (1000). Queued sends are rejected.
   */
  close(err?: ProtocolError): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#closedWith = err;
    const ws = this.ws;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (ws.readyState === OPEN || ws.readyState === CONNECTING) {
        if (err) ws.close(err.closeCode, closeReason(err));
        else ws.close(1000);
      }
    };
    const timer = setTimeout(finish, CLOSE_GRACE_MS);
    (timer as { unref?: () => void }).unref?.(); // a browser's timer is a number
    this.#tail
      .then(() => (err && ws.readyState === OPEN ? this.#write({ type: 'error', code: err.code, message: err.message }) : undefined))
      .catch(() => undefined)
      .finally(finish);
  }

  #fail(e: unknown): void {
    const err = e instanceof ProtocolError ? e : protocolError('E_INTERNAL', e instanceof Error ? e.message : String(e));
    this.#onError?.(err);
    this.close(err);
  }

  #deliver(msg: Message, info: ReceiveInfo): void {
    try {
      const r = this.#onMessage!(msg, info);
      if (r instanceof Promise) r.catch((e: unknown) => this.#fail(e));
    } catch (e) {
      this.#fail(e);
    }
  }

  #receive(data: Buffer | Buffer[], isBinary: boolean): void {
    const parts = Array.isArray(data) ? data : [data];
    let size = 0;
    for (const p of parts) size += p.length;
    this.bytesReceived += size;
    if (this.#closedWith) return; // this side already failed the connection and said why
    if (!isBinary) return this.#fail(protocolError('E_MALFORMED', 'text frame; this protocol is binary'));
    const t0 = now();
    const m = this.#msg;
    if (m.frames === 0) m.receivedAt = performance.timeOrigin + t0;
    m.frames++;
    m.bytes += size;
    let msg: Message | null;
    try {
      msg = this.assembler.push(parts);
    } catch (e) {
      return this.#fail(e);
    } finally {
      m.decodeMs += now() - t0;
    }
    if (!msg) return;
    const info: ReceiveInfo = { ...m };
    this.#msg = { bytes: 0, frames: 0, decodeMs: 0, receivedAt: 0 };
    if (this.#onMessage) this.#deliver(msg, info);
    else this.#early.push([msg, info]);
  }
}
