// A worker with the token that returns finite but impossible results: rejected (E_OUTLIER), its share redone, the run undisturbed. (the star, --update coordinator: the owners' checks are test/worker/owner.test.ts and exchange.test.ts)
import t from 'tap';
import { join } from 'node:path';
import WebSocket from 'ws';
import { resolveConfig } from '../../shared/config.ts';
import { ERROR_CODES } from '../../shared/errors.ts';
import { GPT } from '../../shared/model/gpt.ts';
import { view2d } from '../../shared/smi/runs.ts';
import { PROTOCOL_VERSION, type Message, type Welcome, type Work } from '../../shared/net/protocol.ts';
import { Peer, clientOptions } from '../../shared/net/peer.ts';
import { DATA, maxRelativeDiff, readLog, runScript, startScript, tempDir, weights } from '../helpers.ts';

const steps = (dir: string) => readLog(dir).filter((r) => r.kind === 'step');

/**
 * A hostile worker on the project's own wire: joins with the token (as `workerId`, or a new id), answers its
 * first `work` with `answer(work, weights)`, and resolves how the coordinator closed it.
 */
async function hostile(url: string, answer: (w: Work, shapes: Float32Array[]) => Extract<Message, { type: 'grads' }>, workerId: string | null = null) {
  const ws = new WebSocket(url, clientOptions());
  const peer = new Peer(ws);
  const got: Message[] = [];
  let id: string | null = null;
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  peer.onMessage((m) => {
    got.push(m);
    if (m.type === 'welcome') id = (m as Welcome).workerId;
    const w = got.find((x) => x.type === 'weights') as Extract<Message, { type: 'weights' }> | undefined;
    if (m.type === 'work' && w) void peer.send(answer(m, w.tensors)).catch(() => {}); // the coordinator may close first
  });
  await new Promise((r) => ws.once('open', r));
  await peer.send({ type: 'hello', protocol: PROTOCOL_VERSION, token: 'tok', workerId, backend: 'wasm', device: 'hostile', memoryBytes: 2 ** 30, host: 'evil', pid: 666, listen: null });
  return { ...(await closed), id: id as string | null };
}

const grads = (w: Work, tensors: Float32Array[], magnitudes?: Float32Array[]): Extract<Message, { type: 'grads' }> => ({
  type: 'grads', step: w.step, round: 0, attempt: w.attempt, sequences: w.offsets.length, loss: 4, tensors, ...(magnitudes ? { magnitudes } : {}), phases: {},
});

// the membership tests' model: heavy enough that the hostile worker takes part in the first steps
const slow = ['--preset', 'test', '--data', DATA, '--batch-size', '32', '--block-size', '32', '--n-embd', '64', '--max-iters', '120', '--eval-interval', '60', '--spectral', 'global', '--update', 'coordinator'];

t.test('a worker that returns 1e30 gradients: rejected with E_OUTLIER, refused by id, its shares redone; the weights are the undisturbed ones', async (t) => {
  const dir = tempDir('smi-hostile-');
  const local = join(dir, 'local');
  const r = await runScript('train', ['--local', ...slow, '--out', local]);
  t.equal(r.code, 0, r.stderr);

  const out = join(dir, 'run');
  const coord = startScript('coordinator/main', [...slow, '--out', out, '--port', '0', '--token', 'tok', '--min-workers', '2']);
  const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
  const url = `ws://127.0.0.1:${port}`;
  const worker = startScript('worker/main', ['--connect', url, '--token', 'tok']);
  const huge = (w: Work, ws: Float32Array[]) => grads(w, ws.map((x) => new Float32Array(x.length).fill(1e30)));

  const first = await hostile(url, huge); // the second of --min-workers 2: step 1 is split between it and the honest worker
  t.equal(first.code, ERROR_CODES.E_OUTLIER.close, 'closed with E_OUTLIER');
  t.match(first.reason, /E_OUTLIER: gradient norm 3\.\d+e\+32 at step \d+: over 1\.000e\+3/);
  const again = await hostile(url, huge, first.id);
  t.equal(again.code, ERROR_CODES.E_REFUSED.close, `its id is refused: ${again.reason}`);
  const renamed = await hostile(url, huge); // a hostile client just takes a new id: the token is the defence, the rule still holds
  t.equal(renamed.code, ERROR_CODES.E_OUTLIER.close, 'under a new id it is rejected again');

  t.equal(await coord.exited, 0, 'the run finishes', { output: coord.output() });
  t.equal(await worker.exited, 0, 'the honest worker served throughout');
  t.match(coord.output(), /share norms: \d+ checked, 2 rejected as outliers/, 'two outliers, both the hostile shares');
  t.same(steps(out).map((s) => s.step), Array.from({ length: 120 }, (_, i) => i + 1), 'every step once');
  const diff = maxRelativeDiff(weights(out), weights(local));
  t.ok(diff < 1e-5, `final weights equal the undisturbed run (${diff.toExponential(2)})`);
});

t.test('synced mode: small gradients with 1e30 spectra break Parseval → E_OUTLIER on arrival; the run finishes', async (t) => {
  const dir = tempDir('smi-hostile-synced-');
  const out = join(dir, 'run');
  const small = ['--preset', 'test', '--data', DATA, '--max-iters', '30', '--eval-interval', '15', '--spectral', 'synced', '--update', 'coordinator'];
  const coord = startScript('coordinator/main', [...small, '--out', out, '--port', '0', '--token', 'tok', '--min-workers', '2']);
  const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
  const url = `ws://127.0.0.1:${port}`;
  const worker = startScript('worker/main', ['--connect', url, '--token', 'tok']);
  // the model's shapes, for magnitude spectra of the right lengths ([half, rows] of each 2-D view)
  const model = new GPT(resolveConfig({ preset: 'test' }), 1);
  const half = model.params.map((p) => {
    const [rows, cols] = view2d(p.shape);
    return rows * (Math.floor(cols / 2) + 1);
  });
  model.dispose();
  const closed = await hostile(url, (w, ws) => grads(w, ws.map((x) => new Float32Array(x.length).fill(1e-3)), half.map((n) => new Float32Array(n).fill(1e30))));
  t.equal(closed.code, ERROR_CODES.E_OUTLIER.close, closed.reason);
  t.match(closed.reason, /magnitudes of tensor \d+: norm .* \(Parseval\)/);
  t.equal(await coord.exited, 0, 'the run finishes', { output: coord.output() });
  t.equal(await worker.exited, 0);
  t.equal(steps(out).length, 30);
});
