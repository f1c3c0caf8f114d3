// A worker's data connections: its exchange server (when it can own tensors) and the links it opens to every other owner.
import type { ProtocolError } from '../shared/errors.ts';
import { MAX_MESSAGE_BYTES } from '../shared/net/frames.ts';
import { Peer, type SendInfo } from '../shared/net/peer.ts';
import { PROTOCOL_VERSION, type LinkBytes, type Message, type PlanOwner } from '../shared/net/protocol.ts';
import { openSocket } from '../shared/net/socket.ts';
import { ExchangeServer } from './exchange-server.ts';

/** A link to an owner not open by then counts as unreachable (a host that drops the connection attempt). */
export const LINK_OPEN_TIMEOUT_MS = 10_000;

export interface ExchangeOptions {
  token: string | null; // the run's token: a link must carry it
  tls?: { cert: Uint8Array; key: Uint8Array }; // serve wss://
  ca?: Uint8Array; // trust these certificates on wss:// links to owners
  log: (line: string) => void;
  /** A message on a link: from a worker to this owner (`from` its id, inbound), or from an owner to this worker (outbound). */
  onMessage: (msg: Message, from: string, inbound: boolean, link: Peer) => void;
  /** A message handler's ProtocolError, or a link closed with one: the link is closed; a bad share is the sender's fault. */
  onError?: (err: ProtocolError, from: string) => void;
}

const kindOf = (type: Message['type']): 'shares' | 'values' | null => (type === 'share' ? 'shares' : type === 'values' || type === 'masks' ? 'values' : null);

/**
 * The worker's side of the exchange. Inbound: workers' links to this owner, authenticated by their first message
 * (`link`: protocol, the run's token, the sender's id), under the coordinator's pre-hello limits. Outbound: one
 * link to every other owner of the plan, which a worker opens itself (so one that cannot listen still takes part).
 *
 * Two owners are joined by two links, one each way; each sends to the other over the link the other opened
 * (`linkTo`), where it is the WebSocket server. RFC 6455 masks only client-to-server frames, so neither side XORs
 * or copies a byte of the data it sends (ws's masking allocates the copy), nor the other unmasks it, with no
 * loss of the protocol's guarantees: on the paper probe a worker's `reduce_scatter` went from 28–41 to 21–25 ms
 * (docs/scaling/figures.md). A worker that cannot listen sends over the link it opened, masked, as the RFC asks.
 */
export class Exchange {
  private server: ExchangeServer | null = null;
  private readonly inbound = new Map<string, Peer>();
  private readonly outbound = new Map<string, Peer>();
  private readonly waiting = new Map<string, (() => void)[]>();
  url: string | null = null;
  maxMessageBytes = MAX_MESSAGE_BYTES;
  private selfId = '';
  private readonly data: LinkBytes = { sharesSent: 0, sharesReceived: 0, valuesSent: 0, valuesReceived: 0 }; // by what they carry, on whichever link

  constructor(private readonly o: ExchangeOptions) {}

  /** Starts the exchange server on host:port; resolves with the URL the others are told (`advertise` when given). */
  async listen(host: string, port: number, advertise?: string): Promise<string> {
    const server = new ExchangeServer({
      token: this.o.token, tls: this.o.tls, log: this.o.log,
      maxMessageBytes: () => this.maxMessageBytes,
      onLink: (id, peer) => {
        this.inbound.get(id)?.close(); // a reconnect replaces its old link
        this.inbound.set(id, peer);
        for (const f of this.waiting.get(id)?.splice(0) ?? []) f();
      },
      onClosed: (id, peer) => {
        if (this.inbound.get(id) === peer) this.inbound.delete(id);
      },
      onMessage: (msg, id, peer, bytes) => {
        this.received(msg, bytes);
        this.o.onMessage(msg, id, true, peer);
      },
      onError: (err, from) => this.o.onError?.(err, from),
    });
    this.url = await server.listen(host, port, advertise);
    this.server = server;
    return this.url;
  }

  setSelf(id: string): void {
    this.selfId = id;
  }

  /** The link from worker `id` once it is open (an owner sends it values over it). */
  async inboundFrom(id: string): Promise<Peer> {
    for (;;) {
      const p = this.inbound.get(id);
      if (p && !p.closing) return p;
      await new Promise<void>((r) => {
        const list = this.waiting.get(id) ?? [];
        list.push(r);
        this.waiting.set(id, list);
      });
    }
  }

  /**
   * Opens a link to every owner of the plan other than this worker, closing links to owners no longer in it;
   * resolves once each is open and has been told who this is, with the owners it could not reach (refused, closed
   * or not open within `LINK_OPEN_TIMEOUT_MS`): the coordinator judges whose fault that is.
   */
  async connect(owners: readonly PlanOwner[]): Promise<string[]> {
    const want = new Map(owners.filter((o) => o.workerId !== this.selfId).map((o) => [o.workerId, o.url]));
    for (const [id, p] of this.outbound) {
      if (!want.has(id) || p.closing) {
        p.close();
        this.outbound.delete(id);
      }
    }
    const unreachable: string[] = [];
    await Promise.all([...want].map(async ([id, url]) => {
      if (this.outbound.has(id)) return;
      const ws = openSocket(url, { ca: this.o.ca });
      const peer = new Peer(ws, { maxMessageBytes: this.maxMessageBytes });
      this.outbound.set(id, peer);
      peer.onMessage((msg, info) => {
        this.received(msg, info.bytes);
        this.o.onMessage(msg, id, false, peer);
      });
      peer.onError((err) => this.o.onError?.(err, id));
      peer.onClose((code, reason) => {
        if (this.outbound.get(id) === peer) this.outbound.delete(id);
        this.o.log(`link to owner ${id} closed (${code} ${reason})`);
      });
      ws.on('error', (e) => this.o.log(`link to owner ${id} at ${url}: ${e.message}`));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not open within ${LINK_OPEN_TIMEOUT_MS} ms`)), LINK_OPEN_TIMEOUT_MS);
      });
      try {
        await Promise.race([peer.send({ type: 'link', protocol: PROTOCOL_VERSION, token: this.o.token, workerId: this.selfId }), late]);
      } catch (e) {
        this.o.log(`cannot reach owner ${id} at ${url}: ${(e as Error).message}`);
        if (this.outbound.get(id) === peer) this.outbound.delete(id);
        peer.close();
        ws.terminate();
        unreachable.push(id);
      } finally {
        clearTimeout(timer);
      }
    }));
    return unreachable.sort();
  }

  /** The link this worker opened to owner `id` (null when it is gone). */
  to(id: string): Peer | null {
    const p = this.outbound.get(id);
    return p && !p.closing ? p : null;
  }

  /**
   * The link to send to worker `id` over: the one `id` opened to this worker, while it is open (this side is its
   * server: frames go unmasked), else the one this worker opened to `id`; null when neither is open.
   */
  linkTo(id: string): Peer | null {
    const p = this.inbound.get(id);
    return p && !p.closing ? p : this.to(id);
  }

  /** Sends `msg` on `link`, counting its bytes by what it carries once they are written. */
  async send(link: Peer, msg: Message): Promise<SendInfo> {
    const info = await link.send(msg);
    const kind = kindOf(msg.type);
    if (kind) this.data[`${kind}Sent`] += info.bytes;
    return info;
  }

  private received(msg: Message, bytes: number): void {
    const kind = kindOf(msg.type);
    if (kind) this.data[`${kind}Received`] += bytes;
  }

  /**
   * Bytes sent and received on every open link, and the data's bytes by what they carry, on whichever link (the
   * caller keeps the totals it started from).
   */
  bytes(): { sent: number; received: number } & LinkBytes {
    const sum = (ps: Iterable<Peer>) => {
      let sent = 0;
      let received = 0;
      for (const p of ps) {
        sent += p.bytesSent;
        received += p.bytesReceived;
      }
      return { sent, received };
    };
    const o = sum(this.outbound.values());
    const i = sum(this.inbound.values());
    return { sent: o.sent + i.sent, received: o.received + i.received, ...this.data };
  }

  async close(): Promise<void> {
    for (const p of [...this.inbound.values(), ...this.outbound.values()]) p.close();
    this.inbound.clear();
    this.outbound.clear();
    await this.server?.close();
  }
}
