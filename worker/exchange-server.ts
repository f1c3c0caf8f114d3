// An owner's exchange server: it accepts the other workers' links, each authenticated by its first message (`link`), under the coordinator's pre-hello limits.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { WebSocketServer, type WebSocket } from 'ws';
import { protocolError, ProtocolError } from '../shared/errors.ts';
import { HELLO_TIMEOUT_MS, MAX_AWAITING_HELLO, PRE_AUTH_CONTROL_BYTES, PreAuth } from '../shared/net/pre-auth.ts';
import { Peer, serverOptions } from '../shared/net/peer.ts';
import { PROTOCOL_VERSION, type Message } from '../shared/net/protocol.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();
const CLOSE_GRACE_MS = 1000;

export interface ExchangeServerOptions {
  token: string | null; // the run's token: a link must carry it
  tls?: { cert: Uint8Array; key: Uint8Array }; // serve wss://
  log: (line: string) => void;
  maxMessageBytes: () => number; // the limit of an authenticated link
  onLink: (id: string, peer: Peer) => void; // a link said who it is
  onClosed: (id: string, peer: Peer) => void; // an authenticated link closed
  onMessage: (msg: Message, id: string, peer: Peer, bytes: number) => void; // a message after `link`, and its frame bytes
  onError: (err: ProtocolError, from: string) => void;
}

/** The listening side of the exchange (Node only: a browser worker is compute-only, exchange-server.browser.ts). */
export class ExchangeServer {
  private http: HttpServer | null = null;
  private wss: WebSocketServer | null = null;
  private awaitingLink = 0;
  private readonly tokenDigest: Buffer | null;

  constructor(private readonly o: ExchangeServerOptions) {
    this.tokenDigest = o.token === null ? null : digest(o.token);
  }

  /** Listens on host:port; resolves with the URL the others are told (`advertise` when given). */
  async listen(host: string, port: number, advertise?: string): Promise<string> {
    const http = this.o.tls ? createTlsServer({ cert: Buffer.from(this.o.tls.cert), key: Buffer.from(this.o.tls.key) }) : createServer();
    http.headersTimeout = 10_000;
    http.requestTimeout = 30_000;
    http.on('request', (_req, res) => res.writeHead(404).end());
    this.wss = new WebSocketServer(serverOptions({ server: http }));
    this.wss.on('connection', (ws, req) => this.accept(ws, req));
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, host, () => resolve());
    });
    this.http = http;
    const bound = (http.address() as { port: number }).port;
    const h = host.includes(':') ? `[${host}]` : host;
    return advertise ?? `${this.o.tls ? 'wss' : 'ws'}://${h}:${bound}`;
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const from = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const peer = new Peer(ws, { maxMessageBytes: 0, maxControlBytes: PRE_AUTH_CONTROL_BYTES });
    const cut = (err: ProtocolError) => {
      this.o.log(`refusing a link from ${from}: ${err.code} ${err.message}`);
      ws.pause();
      peer.close(err);
      setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
    };
    if (this.awaitingLink >= MAX_AWAITING_HELLO) return cut(protocolError('E_BUSY', `${MAX_AWAITING_HELLO} links are already waiting for their first message`));
    this.awaitingLink++;
    const pre = new PreAuth(req.socket, HELLO_TIMEOUT_MS, cut, () => this.awaitingLink--);
    let id: string | null = null;
    peer.onClose(() => {
      pre.end();
      if (id !== null) this.o.onClosed(id, peer);
    });
    peer.onError((err) => this.o.onError(err, id ?? from));
    peer.onMessage((msg, info) => {
      if (id !== null) return this.o.onMessage(msg, id, peer, info.bytes);
      try {
        if (msg.type !== 'link') throw protocolError('E_UNEXPECTED', `expected link, got ${msg.type}`);
        if (msg.protocol !== PROTOCOL_VERSION) throw protocolError('E_VERSION', `protocol ${msg.protocol}, this owner speaks ${PROTOCOL_VERSION}`);
        if (this.tokenDigest && (msg.token === null || !timingSafeEqual(digest(msg.token), this.tokenDigest))) throw protocolError('E_TOKEN', 'wrong or missing token');
      } catch (e) {
        pre.end();
        return cut(e instanceof ProtocolError ? e : protocolError('E_MALFORMED', (e as Error).message));
      }
      pre.end();
      id = msg.workerId;
      peer.maxMessageBytes = this.o.maxMessageBytes();
      peer.maxControlBytes = 64 * 1024;
      this.o.onLink(id, peer);
    });
  }

  async close(): Promise<void> {
    if (this.wss) await new Promise<void>((r) => this.wss!.close(() => r()));
    if (this.http) {
      this.http.closeAllConnections();
      await new Promise<void>((r) => this.http!.close(() => r()));
    }
  }
}
