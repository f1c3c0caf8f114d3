// Before a peer's first message (a hello, or a link to an owner) is accepted it may make the receiver hold no more than that message needs: bytes, control bytes, time, count.
import type { Socket } from 'node:net';
import { protocolError, type ProtocolError } from '../errors.ts';

/** Bytes on the socket before a hello (WebSocket framing and pings included): a hello is far smaller. */
export const PRE_AUTH_BYTES = 64 * 1024;
/** Control-part bytes before a hello: a hello has no data sections, so it is one frame, and the first message must be it. */
export const PRE_AUTH_CONTROL_BYTES = 4096;
/** A connection without an accepted hello is closed after this. */
export const HELLO_TIMEOUT_MS = 10_000;
/** Clients waiting for their hello at once; more are refused (E_BUSY). */
export const MAX_AWAITING_HELLO = 64;

/**
 * Watches one connection until its hello is accepted: counts every byte on the socket (ws alone would buffer a
 * whole 64 MiB frame before we see it) and arms the hello deadline; `refuse` is called once with the reason.
 * `end()` stops watching (the hello was accepted, or the link closed).
 */
export class PreAuth {
  private bytes = 0;
  private active = true;
  private readonly deadline: NodeJS.Timeout;
  private readonly onData = (chunk: Buffer) => {
    this.bytes += chunk.length;
    if (this.bytes > PRE_AUTH_BYTES) this.fail(protocolError('E_TOO_LARGE', `${this.bytes} bytes before a hello, over ${PRE_AUTH_BYTES}`));
  };

  constructor(private readonly socket: Socket, helloMs: number, private readonly refuse: (err: ProtocolError) => void, private readonly ended: () => void) {
    socket.on('data', this.onData);
    this.deadline = setTimeout(() => this.fail(protocolError('E_HELLO_TIMEOUT', `no hello within ${helloMs} ms`)), helloMs);
    this.deadline.unref();
  }

  get open(): boolean {
    return this.active;
  }

  end(): void {
    if (!this.active) return;
    this.active = false;
    clearTimeout(this.deadline);
    this.socket.off('data', this.onData);
    this.ended();
  }

  private fail(err: ProtocolError): void {
    this.end();
    this.refuse(err);
  }
}
