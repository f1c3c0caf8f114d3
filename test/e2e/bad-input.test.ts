// Bad input against a real coordinator: documented close codes, the run goes on, bad gradients never reach the weights. (the star, --update coordinator: the owners' checks are test/worker/owner.test.ts and exchange.test.ts)
import t from 'tap';
import { connect } from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import { ERROR_CODES } from '../../shared/errors.ts';
import { PROTOCOL_VERSION, type Hello, type Message, type Work } from '../../shared/net/protocol.ts';
import { loadSafetensors } from '../../shared/train/safetensors.ts';
import { Peer, clientOptions } from '../../shared/net/peer.ts';
import { encodeMessage } from '../../shared/net/frames.ts';
import { DATA, maxRelativeDiff, readLog, runScript, startScript, tempDir, waitForStep } from '../helpers.ts';

const run = ['--preset', 'test', '--data', DATA, '--batch-size', '32', '--block-size', '32', '--n-embd', '64', '--max-iters', '150', '--eval-interval', '75', '--spectral', 'global', '--update', 'coordinator'];
const hello = (over: Partial<Hello> = {}): Hello => ({
  type: 'hello', protocol: PROTOCOL_VERSION, token: 'tok', workerId: null, backend: 'wasm', device: 'test', memoryBytes: 2 ** 30, host: 'test', pid: 1, listen: null, ...over,
});

/** Sends raw bytes over a plain TCP socket; resolves the response's status line (or how the socket ended). */
function rawHttp(port: number, request: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const done = (why: string) => {
      s.destroy();
      resolve(got.split('\r\n')[0] || why);
    };
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) done('');
    });
    s.on('error', () => done('(reset)')); // the server may close while a large request is still being written
    s.on('close', () => done('(closed)'));
    s.write(request);
  });
}

/** Opens a WebSocket, sends `frames` as they are (no guard), resolves the close code. */
async function sendRaw(url: string, frames: Buffer[]): Promise<number> {
  const ws = new WebSocket(url, clientOptions());
  const closed = new Promise<number>((r) => ws.on('close', (c) => r(c)));
  ws.on('error', () => {}); // a close the server forces while we write: the code still arrives, or 1006
  await new Promise((r) => ws.once('open', r));
  for (const f of frames) ws.send(f);
  return closed;
}

/** Connects a hand-driven client; resolves its Peer, the messages it got, and how it was closed. */
function client(url: string) {
  const ws = new WebSocket(url, clientOptions());
  const peer = new Peer(ws);
  const got: Message[] = [];
  const waiters: ((m: Message) => void)[] = [];
  peer.onMessage((m) => {
    got.push(m);
    waiters.splice(0).forEach((w) => w(m));
  });
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  const open = new Promise<void>((r) => ws.once('open', () => r()));
  const next = (type: Message['type']) =>
    new Promise<Message>((resolve) => {
      const found = got.find((m) => m.type === type);
      if (found) return resolve(found);
      const w = (m: Message) => (m.type === type ? resolve(m) : waiters.push(w));
      waiters.push(w);
    });
  return { ws, peer, open, closed, next };
}

t.test('bad input: documented close codes, the run goes on, and bad gradients never reach the weights', async (t) => {
  const dir = tempDir('smi-bad-');
  const local = join(dir, 'local');
  const ref = await runScript('train', ['--local', ...run, '--out', local]);
  t.equal(ref.code, 0, 'reference run', { stderr: ref.stderr });

  const out = join(dir, 'run');
  const coord = startScript('coordinator/main', [...run, '--out', out, '--port', '0', '--token', 'tok', '--min-workers', '1']);
  const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
  const url = `ws://127.0.0.1:${port}`;
  const worker = startScript('worker/main', ['--connect', url, '--token', 'tok']);
  await waitForStep(out, 3);

  await t.test('wrong protocol version → E_VERSION', async (t) => {
    const c = client(url);
    await c.open;
    await c.peer.send(hello({ protocol: PROTOCOL_VERSION + 1 }));
    t.equal((await c.closed).code, ERROR_CODES.E_VERSION.close);
  });

  await t.test('wrong token → E_TOKEN', async (t) => {
    const c = client(url);
    await c.open;
    await c.peer.send(hello({ token: 'nope' }));
    const { code, reason } = await c.closed;
    t.equal(code, ERROR_CODES.E_TOKEN.close);
    t.match(reason, /E_TOKEN/);
  });

  await t.test('HTTP on the workers\' port: any target, method, header or body gets a status, and the run goes on', async (t) => {
    const get = (target: string, headers = '') => `GET ${target} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`;
    const cases: [string, string | Buffer, RegExp][] = [
      ['GET // (killed the coordinator before)', get('//'), / 404 /],
      ['GET //[', get('//['), / 404 /],
      ['GET ///x', get('///x'), / 404 /],
      ['GET //api/state', get('//api/state'), / 404 /],
      ['GET /%', get('/%'), / 404 /],
      ['GET /api/state?%zz&steps=-1e999', get('/api/state?%zz&steps=-1e999'), / 200 /],
      ['absolute-form target', get('http://evil.example/api/state'), / 400 /],
      ['asterisk target', 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n', / 400 /],
      ['a 4 KiB target', get(`/${'a'.repeat(4096)}`), / 414 /],
      ['a 64 KiB target (over node\'s 16 KiB request head)', get(`/${'a'.repeat(65536)}`), / 431 /],
      ['a 1 MiB header', get('/', `X-Big: ${'b'.repeat(2 ** 20)}\r\n`), / 431 /],
      ['POST with a small body', 'POST /api/state HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello', / 405 /],
      ['a declared 100 MB body, not sent', 'POST /api/state HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n', / 413 /],
      ['a chunked body', 'PUT /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n', / 413 /],
      ['an 8 MiB body actually sent', Buffer.concat([Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n'), Buffer.alloc(2 ** 23, 0x41)]), / 413 |\(reset\)/],
      ['DELETE /metrics', 'DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n', / 405 /],
      ['an unknown method', 'BREW /api/state HTTP/1.1\r\nHost: x\r\n\r\n', / 400 /],
      ['a header with a bad byte', get('/', 'X-Bad: a\u0001b\r\n'), / 400 /],
      ['binary garbage', Buffer.from([0, 1, 2, 3, 0xff, 13, 10, 13, 10]), / 400 /],
      ['an upgrade that is not a WebSocket', get('/', 'Connection: Upgrade\r\nUpgrade: h2c\r\n'), / 400 /],
      ['HEAD /', 'HEAD / HTTP/1.1\r\nHost: x\r\n\r\n', / 200 /],
    ];
    for (const [what, request, status] of cases) t.match(await rawHttp(Number(port), request), status, what);
    const state = await fetch(`http://127.0.0.1:${port}/api/state?steps=1`);
    t.equal(state.status, 200, 'the monitor still answers');
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    t.match(metrics, /smi_http_rejected_total\{status="404"\} 5/, 'refusals are counted by status');
  });

  await t.test('hello fields are validated: an empty or odd id, an unknown backend, insane numbers → E_MALFORMED', async (t) => {
    for (const over of [{ workerId: '' }, { workerId: '../../x' }, { backend: 'test' }, { pid: 0 }, { pid: -1 }, { memoryBytes: 1e300 }, { host: '' }, { device: 'x'.repeat(300) }]) {
      const code = await sendRaw(url, encodeMessage(hello(over as Partial<Hello>), undefined, { check: false }));
      t.equal(code, ERROR_CODES.E_MALFORMED.close, JSON.stringify(over).slice(0, 60));
    }
  });

  await t.test('before the hello: a frame over maxPayload (1009), an 8 MiB frame, a 60 MiB chunked message, a bye → closed', async (t) => {
    t.equal(await sendRaw(url, [Buffer.alloc(65 * 2 ** 20)]), 1009, 'a 65 MiB frame: ws refuses its header (documented in docs/errors.md)');
    const big = await sendRaw(url, [Buffer.alloc(8 * 2 ** 20)]);
    t.ok(big === ERROR_CODES.E_TOO_LARGE.close || big === 1006, `an 8 MiB frame before a hello: cut off after 64 KiB (${big}: the close frame, or a reset while we write)`);
    const weights = encodeMessage({ type: 'weights', step: 0, tensors: [new Float32Array(15 * 2 ** 20)] }, 2 ** 20);
    t.equal(await sendRaw(url, weights.slice(0, 1)), ERROR_CODES.E_TOO_LARGE.close, 'a chunked 60 MiB message declared before a hello');
    t.equal(await sendRaw(url, encodeMessage({ type: 'bye', reason: 'early' })), ERROR_CODES.E_UNEXPECTED.close, 'a bye instead of a hello');
  });

  await t.test('garbage bytes → E_MALFORMED', async (t) => {
    const ws = new WebSocket(url, clientOptions());
    await new Promise((r) => ws.once('open', r));
    ws.send(Buffer.from('this is not a frame of ours, not even close'));
    const code = await new Promise<number>((r) => ws.on('close', (c) => r(c)));
    t.equal(code, ERROR_CODES.E_MALFORMED.close);
  });

  /** Joins as a worker, answers its first work with a bad gradient; resolves the close code it gets. */
  const badGradient = async (what: 'shape' | 'nan'): Promise<number> => {
    const c = client(url);
    await c.open;
    await c.peer.send(hello());
    await c.next('welcome');
    const work = (await c.next('work')) as Work;
    const weights = (await c.next('weights')) as Extract<Message, { type: 'weights' }>;
    const tensors = weights.tensors.map((w) => new Float32Array(w.length).fill(0.01));
    if (what === 'shape') tensors.pop();
    else tensors[3]![7] = NaN;
    await c.peer.send({ type: 'grads', step: work.step, round: 0, attempt: work.attempt, sequences: work.offsets.length, loss: 4, tensors, phases: {} });
    return (await c.closed).code;
  };
  t.equal(await badGradient('shape'), ERROR_CODES.E_SHAPE.close, 'a gradient with a missing tensor → E_SHAPE');
  t.equal(await badGradient('nan'), ERROR_CODES.E_NONFINITE.close, 'a gradient holding NaN → E_NONFINITE');

  t.equal(await coord.exited, 0, 'the coordinator finished the run', { output: coord.output() });
  t.equal(await worker.exited, 0, 'the honest worker was served throughout');
  t.match(coord.output(), /E_NONFINITE/);
  const steps = readLog(out).filter((r) => r.kind === 'step').map((r) => r.step);
  t.same(steps, Array.from({ length: 150 }, (_, i) => i + 1), 'every step once');
  const diff = maxRelativeDiff(loadSafetensors(join(out, 'model.safetensors')).tensors, loadSafetensors(join(local, 'model.safetensors')).tensors);
  t.ok(diff < 1e-5, `final weights equal the undisturbed run: no bad gradient reached them (${diff.toExponential(2)})`);
});
