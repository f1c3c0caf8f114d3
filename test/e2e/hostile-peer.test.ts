// A peer with the token that sends an owner a NaN share (--update owners): the owner closes its link with E_NONFINITE, tells the coordinator, which drops and refuses it; the run is undisturbed.
import t from 'tap';
import { join } from 'node:path';
import WebSocket from 'ws';
import { ERROR_CODES } from '../../shared/errors.ts';
import { Peer, clientOptions } from '../../shared/net/peer.ts';
import { PROTOCOL_VERSION, type Load, type Message } from '../../shared/net/protocol.ts';
import { DATA, maxRelativeDiff, readLog, runScript, startScript, tempDir, weights } from '../helpers.ts';

const run = ['--preset', 'test', '--data', DATA, '--max-iters', '12', '--eval-interval', '6', '--smi', 'cosine', '--spectral', 'global'];

/** A compute-only peer that answers every task by sending each owner a share of NaNs; resolves with its links' close codes. */
function hostile(url: string): Promise<number[]> {
  return new Promise((resolve) => {
    const codes: number[] = [];
    let load: Load | null = null;
    const links = new Map<string, Peer>();
    const ws = new WebSocket(url, clientOptions());
    const peer = new Peer(ws);
    let id = '';
    let closed = false;
    // done once the coordinator has closed this peer and every owner its link
    const check = () => closed && codes.length === links.size && resolve(codes);
    peer.onClose(() => {
      closed = true;
      check();
    });
    peer.onMessage(async (m: Message) => {
      if (m.type === 'welcome') id = m.workerId;
      if (m.type === 'load') {
        load = m;
        await Promise.all(m.owners.map(async (o) => {
          const l = new Peer(new WebSocket(o.url, clientOptions()));
          l.onClose((code) => {
            codes.push(code);
            check();
          });
          links.set(o.workerId, l);
          await l.send({ type: 'link', protocol: PROTOCOL_VERSION, token: 'tok', workerId: id });
        }));
        await peer.send({ type: 'loaded', planVersion: m.planVersion });
      }
      // it answers evaluations (losses the coordinator cannot check: a peer with the token is trusted that far)
      if (m.type === 'evaluate') await peer.send({ type: 'evaluated', step: m.step, attempt: m.attempt, losses: m.batches.map(() => 4) }).catch(() => {});
      if (m.type === 'task' && load) {
        for (const c of m.mine) {
          for (const o of load.owners) {
            const tensors = o.tensors.map((j) => new Float32Array(load!.weights[j]!.length).fill(NaN));
            await links.get(o.workerId)!.send({ type: 'share', step: m.step, round: m.round, chunk: c.index, tensors }).catch(() => {});
          }
          await peer.send({ type: 'computed', step: m.step, round: m.round, chunk: c.index, sequences: c.offsets.length, loss: 4, phases: {} }).catch(() => {});
        }
      }
    });
    ws.once('open', () => void peer.send({ type: 'hello', protocol: PROTOCOL_VERSION, token: 'tok', workerId: null, backend: 'wasm', device: 'hostile', memoryBytes: 2 ** 30, host: 'evil', pid: 666, listen: null }));
  });
}

t.test('a NaN share to an owner: E_NONFINITE on its link, the coordinator drops its sender, the run ends as --local', async (t) => {
  const dir = tempDir('smi-hostile-peer-');
  const local = join(dir, 'local');
  const r = await runScript('train', ['--local', ...run, '--out', local]);
  t.equal(r.code, 0, r.stderr);
  const out = join(dir, 'run');
  const coord = startScript('coordinator/main', [...run, '--out', out, '--port', '0', '--token', 'tok', '--min-workers', '3', '--step-timeout', '20000']);
  const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
  const url = `ws://127.0.0.1:${port}`;
  const good = [0, 1].map(() => startScript('worker/main', ['--connect', url, '--token', 'tok']));
  const codes = await hostile(url);
  t.equal(await coord.exited, 0, 'the coordinator finishes the run', { output: coord.output() });
  for (const w of good) t.equal(await w.exited, 0, 'an honest worker ends cleanly');
  t.ok(codes.includes(ERROR_CODES.E_NONFINITE.close), `an owner closed the hostile link with E_NONFINITE (codes ${codes.join(', ')})`);
  t.match(coord.output(), /owner \S+ refused chunk \d+'s share from \S+: E_NONFINITE/, 'the owner told the coordinator whose share it was');
  t.match(coord.output(), /rejecting \S+: E_NONFINITE .* its id refused for 30 s/, 'the coordinator dropped the sender and refuses its id');
  const steps = readLog(out).filter((x) => x.kind === 'step');
  t.same(steps.map((x) => x.step), Array.from({ length: 12 }, (_, i) => i + 1), 'each step exactly once');
  t.ok(steps.every((x) => x.workers === 2), 'every step made by the two honest workers');
  const diff = maxRelativeDiff(weights(out), weights(local));
  t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
});
