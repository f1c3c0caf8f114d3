import t from 'tap';
import { join } from 'node:path';
import WebSocket from 'ws';
import { ERROR_CODES } from '../../shared/errors.ts';
import { PROTOCOL_VERSION, type Hello, type Message, type Work } from '../../shared/protocol.ts';
import { loadSafetensors } from '../../shared/safetensors.ts';
import { Peer, clientOptions } from '../../shared/wire.ts';
import { DATA, maxRelativeDiff, readLog, runScript, startScript, tempDir, waitForStep } from '../helpers.ts';

const run = ['--preset', 'test', '--data', DATA, '--batch-size', '32', '--block-size', '32', '--n-embd', '64', '--max-iters', '150', '--eval-interval', '75', '--spectral', 'global'];
const hello = (over: Partial<Hello> = {}): Hello => ({
  type: 'hello', protocol: PROTOCOL_VERSION, token: 'tok', workerId: null, backend: 'test', device: 'test', memoryBytes: 0, host: 'test', pid: 0, ...over,
});

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

  await t.test('garbage bytes → E_MALFORMED', async (t) => {
    const ws = new WebSocket(url, clientOptions());
    await new Promise((r) => ws.once('open', r));
    ws.send(Buffer.from('this is not a frame of ours, not even close'));
    const code = await new Promise<number>((r) => ws.on('close', (c) => r(c)));
    t.equal(code, ERROR_CODES.E_MALFORMED.close);
  });

  await t.test('a frame over maxPayload → closed by ws with 1009', async (t) => {
    const ws = new WebSocket(url, clientOptions());
    await new Promise((r) => ws.once('open', r));
    ws.send(Buffer.alloc(65 * 1024 * 1024));
    const code = await new Promise<number>((r) => ws.on('close', (c) => r(c)));
    t.equal(code, 1009, 'message too big (documented in docs/errors.md)');
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
    await c.peer.send({ type: 'grads', step: work.step, attempt: work.attempt, sequences: work.offsets.length, loss: 4, tensors, phases: {} });
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
