// The browser's WebSocket behind the members of ws's WebSocket that a Peer and a worker's session use (the browser bundle's socket.ts).
//
// Differences it hides: the browser sends whole messages only, so the fragments of one frame (sent fin=false …
// fin=true) are joined and sent as one message (the receiver sees the same frame); it has no write callback, so
// a message's callback runs once bufferedAmount is back under LOW_WATER_BYTES (polled), which is the backpressure.
import type WebSocket from 'ws';

const LOW_WATER_BYTES = 256 * 1024;
type Listener = (...args: never[]) => void;

class BrowserSocket {
  private readonly ws: globalThis.WebSocket;
  private readonly listeners = new Map<string, { f: Listener; once: boolean }[]>();
  private parts: Uint8Array[] = [];
  binaryType = 'arraybuffer';

  constructor(url: string) {
    this.ws = new globalThis.WebSocket(url);
    this.ws.binaryType = 'arraybuffer';
    this.ws.onopen = () => this.emit('open');
    this.ws.onmessage = (e: MessageEvent) => {
      const binary = typeof e.data !== 'string';
      this.emit('message', binary ? Buffer.from(e.data as ArrayBuffer) : Buffer.from(e.data as string), binary);
    };
    this.ws.onerror = () => this.emit('error', new Error(`WebSocket to ${url} failed`));
    this.ws.onclose = (e: CloseEvent) => this.emit('close', e.code, e.reason);
  }

  get readyState(): number {
    return this.ws.readyState;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  on(event: string, f: Listener): this {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), { f, once: false }]);
    return this;
  }

  once(event: string, f: Listener): this {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), { f, once: true }]);
    return this;
  }

  off(event: string, f: Listener): this {
    this.listeners.set(event, (this.listeners.get(event) ?? []).filter((l) => l.f !== f));
    return this;
  }

  private emit(event: string, ...args: unknown[]): void {
    const list = this.listeners.get(event) ?? [];
    this.listeners.set(event, list.filter((l) => !l.once));
    for (const l of list) (l.f as (...a: unknown[]) => void)(...args);
  }

  send(data: Uint8Array, opts: { fin?: boolean } = {}, cb?: (err?: Error) => void): void {
    if (this.ws.readyState !== 1) return cb?.(new Error('the WebSocket is not open'));
    this.parts.push(data);
    if (opts.fin === false) return cb?.(); // held until the frame's last fragment
    const parts = this.parts;
    this.parts = [];
    let message: Uint8Array = parts[0]!;
    if (parts.length > 1) {
      message = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let at = 0;
      for (const p of parts) {
        message.set(p, at);
        at += p.byteLength;
      }
    }
    this.ws.send(message as Uint8Array<ArrayBuffer>);
    if (!cb) return;
    const drained = () => {
      if (this.ws.readyState !== 1) cb(new Error('the WebSocket closed while sending'));
      else if (this.ws.bufferedAmount <= LOW_WATER_BYTES) cb();
      else setTimeout(drained, 1);
    };
    drained();
  }

  close(code?: number, reason?: string): void {
    this.ws.close(code, reason);
  }

  terminate(): void {
    this.ws.close();
  }
}

/** A WebSocket to `url`, seen as ws's (only the members above exist); `ca` does not apply: the browser decides whom it trusts. */
export function openSocket(url: string, _o: { ca?: Uint8Array } = {}): WebSocket {
  return new BrowserSocket(url) as unknown as WebSocket;
}

/** A page does not know its socket's local address. */
export function localAddress(_ws: WebSocket): string | undefined {
  return undefined;
}
