// Before a hello is accepted a client is bounded (bytes, frames, control part, time, count): the coordinator's heap, measured.
import t from 'tap';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { MonitorState, ProcessMemory } from '../../coordinator/monitor.ts';
import { ERROR_CODES } from '../../shared/errors.ts';
import { PROTOCOL_VERSION, type Hello } from '../../shared/net/protocol.ts';
import { Peer, clientOptions } from '../../shared/net/peer.ts';
import { encodeMessage } from '../../shared/net/frames.ts';
import { DATA, readLog, startScript, tempDir } from '../helpers.ts';

const MiB = 2 ** 20;
const hello: Hello = { type: 'hello', protocol: PROTOCOL_VERSION, token: 'tok', workerId: null, backend: 'wasm', device: 'test', memoryBytes: 2 ** 30, host: 'test', pid: 1, listen: null };

/** A head frame whose msgpack control part is `control` (no data sections), laid out as shared/net/frames.ts documents. */
function controlFrame(control: Buffer): Buffer {
  const f = Buffer.alloc(48 + Math.ceil(control.length / 8) * 8);
  f.writeUInt32LE(0x57494d53, 0); // "SMIW"
  f.writeUInt8(1, 4); // wire version
  f.writeUInt8(1, 5); // head frame
  f.writeUInt32LE(1, 16); // one chunk
  f.writeUInt32LE(control.length, 32);
  control.copy(f, 48);
  return f;
}

/** A control part of n empty maps in one array32: each byte would be an object for msgpackr (~60 bytes of heap). */
const emptyMaps = (n: number) => Buffer.concat([Buffer.from([0xdd, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]), Buffer.alloc(n, 0x80)]);

interface Conn {
  ws: WebSocket;
  closed: Promise<number>;
}

async function open(url: string): Promise<Conn> {
  const ws = new WebSocket(url, clientOptions());
  ws.on('error', () => {}); // a connection the coordinator cuts while we write ends in a reset: the close code still comes
  const closed = new Promise<number>((r) => ws.on('close', (c) => r(c)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', () => reject(new Error('upgrade refused')));
  });
  return { ws, closed };
}

t.test('pre-auth limits: hostile frames leave the heap where it was; silent connections are closed at the hello deadline', async (t) => {
  const dir = tempDir('smi-preauth-');
  const out = join(dir, 'run');
  const run = ['--preset', 'test', '--data', DATA, '--max-iters', '20', '--eval-interval', '10', '--spectral', 'global'];
  const coord = startScript('coordinator/main', [...run, '--out', out, '--port', '0', '--token', 'tok', '--min-workers', '2']);
  const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
  const url = `ws://127.0.0.1:${port}`;
  await coord.waitFor(/waiting for workers: 0\/2/);
  const memory = async (): Promise<ProcessMemory> => ((await (await fetch(`http://127.0.0.1:${port}/api/state?steps=0`)).json()) as MonitorState).memory;
  const before = await memory();

  await t.test('an 8 MiB and a 64 MiB frame of empty maps, before a hello: cut off after 64 KiB', async (t) => {
    for (const size of [8 * MiB, 64 * MiB - 64]) {
      const c = await open(url);
      c.ws.send(controlFrame(emptyMaps(size - 48 - 5)));
      const code = await c.closed;
      t.ok(code === ERROR_CODES.E_TOO_LARGE.close || code === 1006, `${size / MiB} MiB frame: closed (${code})`);
    }
  });

  await t.test('four unfinished chunked 60 MiB messages before a hello: refused at their head (no data section before a hello)', async (t) => {
    const frames = encodeMessage({ type: 'weights', step: 0, tensors: [new Float32Array(15 * MiB)] }, MiB);
    const conns = await Promise.all([0, 1, 2, 3].map(() => open(url)));
    for (const c of conns) {
      c.ws.send(frames[0]!);
      c.ws.send(frames[1]!);
    }
    for (const c of conns) t.equal(await c.closed, ERROR_CODES.E_TOO_LARGE.close);
  });

  await t.test('a control part over 4 KiB, pings instead of a hello, a second message before the hello → closed', async (t) => {
    const c = await open(url);
    c.ws.send(controlFrame(emptyMaps(5000)));
    t.equal(await c.closed, ERROR_CODES.E_TOO_LARGE.close, 'a 5 KB control part');
    const d = await open(url);
    for (let i = 0; i < 1000; i++) d.ws.ping(Buffer.alloc(125)); // answered by ws itself, but every byte counts
    const pinged = await d.closed;
    t.ok(pinged === ERROR_CODES.E_TOO_LARGE.close || pinged === 1006, `130 KB of pings (${pinged})`);
    const e = await open(url);
    e.ws.send(encodeMessage({ type: 'bye', reason: 'early' })[0]!);
    t.equal(await e.closed, ERROR_CODES.E_UNEXPECTED.close, 'a message that is not the hello');
  });

  const after = await memory();
  const grew = (k: keyof ProcessMemory) => (after[k] - before[k]) / MiB;
  t.comment(`coordinator memory before → after the hostile frames before a hello: heapUsed ${(before.heapUsed / MiB).toFixed(1)} → ${(after.heapUsed / MiB).toFixed(1)} MiB, rss ${(before.rss / MiB).toFixed(1)} → ${(after.rss / MiB).toFixed(1)} MiB, peak rss ${(before.maxRss / MiB).toFixed(1)} → ${(after.maxRss / MiB).toFixed(1)} MiB`);
  t.ok(grew('maxRss') < 64, `the coordinator's peak RSS grew ${grew('maxRss').toFixed(1)} MiB (an 8 MiB frame of empty maps alone took ~500 MB before)`);
  t.ok(grew('heapUsed') < 32, `its heap grew ${grew('heapUsed').toFixed(1)} MiB`);

  await t.test('after the hello: a frame over maxPayload → 1009; a message larger than any result → E_TOO_LARGE before it is reserved', async (t) => {
    for (const [what, send, want] of [
      ['a 65 MiB frame', (ws: WebSocket) => ws.send(Buffer.alloc(65 * MiB)), 1009],
      ['a head frame declaring 60 MiB', (ws: WebSocket) => ws.send(encodeMessage({ type: 'weights', step: 0, tensors: [new Float32Array(15 * MiB)] }, MiB)[0]!), ERROR_CODES.E_TOO_LARGE.close],
    ] as [string, (ws: WebSocket) => void, number][]) {
      const c = await open(url);
      const peer = new Peer(c.ws);
      const welcome = new Promise<void>((r) => peer.onMessage((m) => void (m.type === 'welcome' && r())));
      await peer.send(hello);
      await welcome;
      send(c.ws);
      t.equal(await c.closed, want, what);
    }
  });

  await t.test('66 connections that never speak: 64 are closed at the 10 s hello deadline (E_HELLO_TIMEOUT), 2 at once (E_BUSY)', async (t) => {
    const conns = [];
    for (let i = 0; i < 66; i++) conns.push(await open(url));
    const codes = await Promise.all(conns.map((c) => c.closed));
    t.equal(codes.filter((c) => c === ERROR_CODES.E_BUSY.close).length, 2, 'the two over the limit of 64 waiting');
    t.equal(codes.filter((c) => c === ERROR_CODES.E_HELLO_TIMEOUT.close).length, 64, 'the rest at the deadline');
  });

  // the coordinator served none of that and still runs: two honest workers start the run and it finishes
  const workers = [0, 1].map(() => startScript('worker/main', ['--connect', url, '--token', 'tok']));
  t.equal(await coord.exited, 0, 'the run finishes', { output: coord.output() });
  for (const w of workers) t.equal(await w.exited, 0);
  t.equal(readLog(out).filter((r) => r.kind === 'step').length, 20);
  t.match(coord.output(), /E_HELLO_TIMEOUT no hello within 10000 ms/);
});
