// Opens a worker's WebSocket (to the coordinator or to an owner): Node's ws here; the browser bundle takes socket.browser.ts instead.
import WebSocket from 'ws';
import { clientOptions } from './peer.ts';

/** A client WebSocket to `url` with this project's options (no compression, our frame limit); `ca`: extra certificates to trust on wss://. */
export function openSocket(url: string, o: { ca?: Uint8Array } = {}): WebSocket {
  return new WebSocket(url, clientOptions(o.ca ? { ca: o.ca as Buffer } : {}));
}

/** The local address the socket connects from (a worker's default exchange address); undefined where unknown. */
export function localAddress(ws: WebSocket): string | undefined {
  return (ws as unknown as { _socket?: { localAddress?: string } })._socket?.localAddress;
}
