// The Peer (shared/net/peer.ts) over real ws servers on port 0 in-process: big and chunked messages, bad frames, errors, backpressure.
import { once } from 'node:events';
import t, { type Test } from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { ERROR_CODES, type ProtocolError, protocolError } from '../../../shared/errors.ts';
import { MESSAGE_TYPES, type Message } from '../../../shared/net/protocol.ts';
import { HIGH_WATER_BYTES, MAX_FRAME_BYTES, MessageAssembler, encodeFrames, encodeMessage } from '../../../shared/net/frames.ts';
import { Peer, type ReceiveInfo, clientOptions, serverOptions } from '../../../shared/net/peer.ts';
import { SAMPLES, decode, f32, plain, throwsCode } from './samples.ts';


interface Server {
  wss: WebSocketServer;
  url: string;
  peers: Peer[];
  close(): Promise<void>;
}

/** A ws server on port 0 whose connections become Peers; `handle` sets each peer up. */
async function server(handle: (peer: Peer) => void, opts: { maxFrameBytes?: number } = {}): Promise<Server> {
  const wss = new WebSocketServer(serverOptions({ host: '127.0.0.1', port: 0 }));
  await once(wss, 'listening');
  const peers: Peer[] = [];
  wss.on('connection', (ws) => {
    const p = new Peer(ws, opts);
    peers.push(p);
    handle(p);
  });
  const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;
  return {
    wss, url, peers,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

/** A client Peer whose received messages queue up for next(). */
async function client(url: string, opts: { unmasked?: boolean; maxFrameBytes?: number } = {}) {
  const ws = new WebSocket(url, clientOptions({ unmasked: opts.unmasked }));
  const peer = new Peer(ws, { maxFrameBytes: opts.maxFrameBytes });
  const inbox: [Message, ReceiveInfo][] = [];
  const waiters: (() => void)[] = [];
  let closed: { code: number; reason: string } | null = null;
  peer.onMessage((m, i) => {
    inbox.push([m, i]);
    waiters.splice(0).forEach((w) => w());
  });
  const closedP = new Promise<{ code: number; reason: string }>((r) =>
    peer.onClose((code, reason) => {
      closed = { code, reason };
      waiters.splice(0).forEach((w) => w());
      r(closed);
    }),
  );
  await once(ws, 'open');
  const next = async (): Promise<[Message, ReceiveInfo]> => {
    while (!inbox.length) {
      if (closed) throw new Error(`closed ${closed.code} ${closed.reason}`);
      await new Promise<void>((r) => waiters.push(r));
    }
    return inbox.shift()!;
  };
  return { ws, peer, next, closed: closedP };
}

/** Echo server: each grads/weights comes back as grads with the same tensors. */
const echo = (peer: Peer) =>
  peer.onMessage(async (m) => {
    if (m.type === 'weights' || m.type === 'grads') {
      await peer.send({ type: 'grads', step: m.step, round: 0, attempt: 0, sequences: 1, loss: 0, tensors: m.tensors, phases: {} });
    } else if (m.type === 'bye') await peer.send({ type: 'bye', reason: m.reason });
  });

t.test('ws: a 10M-float message makes a round trip, unmasked and masked', async (t) => {
  const srv = await server(echo);
  t.teardown(srv.close);
  const tensors = [f32(10_000_000), f32(384, 5), f32(1536 * 384, 6)];
  for (const unmasked of [true, false]) {
    const c = await client(srv.url, { unmasked });
    const t0 = performance.now();
    const sent = await c.peer.send({ type: 'weights', step: 9, tensors });
    const [m, info] = await c.next();
    const ms = performance.now() - t0;
    if (m.type !== 'grads') throw new Error(m.type);
    t.equal(m.step, 9);
    t.equal(m.tensors.length, 3);
    for (let i = 0; i < 3; i++) {
      t.equal(m.tensors[i]!.length, tensors[i]!.length);
      t.ok(m.tensors[i]!.every((x, j) => x === tensors[i]![j]), `${unmasked ? 'unmasked' : 'masked'}: tensor ${i} intact`);
    }
    t.ok(sent.bytes > 40e6 && info.bytes > 40e6, 'byte counts');
    t.equal(c.peer.bytesSent, sent.bytes);
    t.equal(c.peer.bytesReceived, info.bytes);
    const s = srv.peers.at(-1)!.assembler.stats;
    t.comment(`${unmasked ? 'unmasked' : 'masked'}: ${(ms).toFixed(0)} ms round trip of ${((sent.bytes + info.bytes) / 1e6).toFixed(0)} MB; ` +
      `server sections: ${s.views} views, ${s.copiedMisaligned} misaligned copies (${s.copiedBytes} B); client: ${JSON.stringify(c.peer.assembler.stats)}`);
    t.equal(s.copiedSplit, 0, 'nothing split in a single-frame message');
    t.ok(m.tensors[0]!.byteOffset % 4 === 0);
    c.peer.close();
    t.equal((await c.closed).code, 1000);
  }
});

t.test('ws: messages chunked into many frames arrive whole, and a 124M-float message works', async (t) => {
  const srv = await server(echo, { maxFrameBytes: 4096 });
  t.teardown(srv.close);
  const c = await client(srv.url, { maxFrameBytes: 4096 });
  const msg: Message = { type: 'weights', step: 2, tensors: [f32(50_000), f32(3), f32(7000, 4)] };
  await c.peer.send(msg);
  const [m] = await c.next();
  t.same(plain((m as Extract<Message, { type: 'grads' }>).tensors), plain(msg.tensors), 'small frames, both ways');
  t.ok(srv.peers[0]!.assembler.stats.frames > 50, `${srv.peers[0]!.assembler.stats.frames} frames`);
  c.peer.close();

  // GPT-2 small's size (124,439,808 floats = 498 MB) with its largest tensor (wte, 154 MB) over the 64 MiB frame.
  const srv2 = await server(echo);
  t.teardown(srv2.close);
  const c2 = await client(srv2.url, { unmasked: true });
  const sizes = [50257 * 768, 1024 * 768, ...Array.from({ length: 12 }, () => [768, 2304 * 768, 768 * 768, 768, 3072 * 768, 768 * 3072]).flat(), 768];
  const total = sizes.reduce((a, b) => a + b, 0);
  t.equal(total, 124_337_664, 'GPT-2 small without biases');
  const big = sizes.map((n, i) => {
    const a = new Float32Array(n);
    for (let j = 0; j < n; j += 4099) a[j] = i + j;
    a[n - 1] = -i;
    return a;
  });
  const t0 = performance.now();
  const sent = await c2.peer.send({ type: 'weights', step: 1, tensors: big });
  const [back] = await c2.next();
  const ms = performance.now() - t0;
  if (back.type !== 'grads') throw new Error(back.type);
  t.ok(sent.bytes > 4 * total && sent.bytes < 4 * total + 1e6, `${(sent.bytes / 1e6).toFixed(0)} MB each way`);
  let ok = back.tensors.length === big.length;
  for (let i = 0; ok && i < big.length; i++) {
    const a = big[i]!;
    const b = back.tensors[i]!;
    ok = a.length === b.length && a[a.length - 1] === b[b.length - 1];
    for (let j = 0; ok && j < a.length; j += 4099) ok = a[j] === b[j];
  }
  t.ok(ok, 'every tensor intact after crossing frame boundaries');
  const s = srv2.peers[0]!.assembler.stats;
  t.ok(s.frames >= 8, `${s.frames} frames of at most ${MAX_FRAME_BYTES} bytes`);
  t.comment(`124M floats: ${ms.toFixed(0)} ms round trip; server: ${JSON.stringify(s)}`);
  c2.peer.close();
});

t.test('ws: garbage bytes close that client with E_MALFORMED; the server keeps serving others', async (t) => {
  const errors: ProtocolError[] = [];
  const srv = await server((peer) => {
    echo(peer);
    peer.onError((e) => errors.push(e));
  });
  t.teardown(srv.close);

  for (const [what, payload, binary] of [['garbage', Buffer.from('garbage bytes, not a frame at all'), true], ['text', 'hello', false]] as const) {
    const raw = new WebSocket(srv.url, clientOptions());
    await once(raw, 'open');
    const got: Buffer[] = [];
    raw.on('message', (d: Buffer) => got.push(d));
    raw.send(payload, { binary });
    const [code, reason] = (await once(raw, 'close')) as [number, Buffer];
    t.equal(code, ERROR_CODES.E_MALFORMED.close, `${what}: closed with ${code}`);
    t.match(reason.toString(), /^E_MALFORMED: /);
    const said = decode(got);
    t.same(said.type === 'error' && [said.code, /bad magic|text frame/.test(said.message)], ['E_MALFORMED', true], `${what}: an error message came first`);
  }
  t.equal(errors.length, 2, 'the server side reported both');
  t.equal(errors[0]!.code, 'E_MALFORMED');

  const c = await client(srv.url);
  await c.peer.send({ type: 'bye', reason: 'x' });
  const [back] = await c.next();
  t.same(back, { type: 'bye', reason: 'x' }, 'another client is still served');
  c.peer.close();
});

t.test('ws: a ProtocolError thrown by a handler reaches the other side as an error message and close code', async (t) => {
  const srv = await server((peer) =>
    peer.onMessage((m) => {
      if (m.type === 'grads') throw protocolError('E_SHAPE', `grads: ${m.tensors.length} tensors, the model has 4`);
      if (m.type === 'bye') throw new Error('a bug');
    }),
  );
  t.teardown(srv.close);
  const c = await client(srv.url);
  await c.peer.send({ type: 'grads', step: 1, round: 0, attempt: 0, sequences: 1, loss: 1, tensors: [f32(3)], phases: {} });
  const [m] = await c.next();
  t.same(m, { type: 'error', code: 'E_SHAPE', message: 'grads: 1 tensors, the model has 4' });
  const closed = await c.closed;
  t.equal(closed.code, 4005);
  t.equal(closed.reason, 'E_SHAPE: grads: 1 tensors, the model has 4');
  await t.rejects(c.peer.send({ type: 'bye', reason: '' }), /closing/, 'sends after close are refused');

  const c2 = await client(srv.url);
  await c2.peer.send({ type: 'bye', reason: '' });
  const [m2] = await c2.next();
  t.same(m2, { type: 'error', code: 'E_INTERNAL', message: 'a bug' }, 'a plain exception is E_INTERNAL');
  t.equal((await c2.closed).code, ERROR_CODES.E_INTERNAL.close);
});

t.test('ws: a frame over maxPayload is refused by ws (1009) and reported as E_TOO_LARGE', async (t) => {
  const errors: ProtocolError[] = [];
  const wss = new WebSocketServer(serverOptions({ host: '127.0.0.1', port: 0, maxPayload: 64 * 1024 }));
  await once(wss, 'listening');
  wss.on('connection', (ws) => new Peer(ws).onMessage(() => {}).onError((e) => errors.push(e)));
  t.teardown(() => new Promise<void>((r) => wss.close(() => r())));
  const c = await client(`ws://127.0.0.1:${(wss.address() as { port: number }).port}`);
  c.peer.send({ type: 'weights', step: 1, tensors: [f32(100_000)] }).catch(() => {});
  t.equal((await c.closed).code, 1009);
  t.equal(errors[0]?.code, 'E_TOO_LARGE');
});

t.test('ws: backpressure: queued large messages wait for the socket, not in memory', async (t) => {
  const srv = await server(() => {});
  t.teardown(srv.close);
  const c = await client(srv.url, { unmasked: true });
  const sender = srv.peers[0]!;
  sender.onMessage(() => {});
  c.ws.pause(); // the client stops reading: the server's socket fills up
  const part = 2_500_000; // 10 MB per tensor, 40 MB per message
  const msgs = Array.from({ length: 5 }, (_, k) => ({ type: 'weights' as const, step: k, tensors: Array.from({ length: 4 }, () => new Float32Array(part).fill(k)) }));
  const done: boolean[] = msgs.map(() => false);
  const sends = msgs.map((m, k) => sender.send(m).then((r) => ((done[k] = true), r)));
  let peak = 0;
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 25));
    peak = Math.max(peak, sender.ws.bufferedAmount);
  }
  t.ok(peak <= HIGH_WATER_BYTES + 4 * part + 65536, `ws buffered at most ${(peak / 1e6).toFixed(1)} MB of the 200 MB queued`);
  t.same(done, [false, false, false, false, false], 'no send resolved while the reader is paused');
  c.ws.resume();
  for (let k = 0; k < msgs.length; k++) {
    const [m] = await c.next();
    t.equal(m.type === 'weights' && m.step, k, `message ${k} arrives in order`);
    t.ok(m.type === 'weights' && m.tensors[3]![part - 1] === k);
  }
  const infos = await Promise.all(sends);
  t.ok(infos.every((i) => i.bytes > 4 * part * 4), 'every send resolved');
  c.peer.close();
});
