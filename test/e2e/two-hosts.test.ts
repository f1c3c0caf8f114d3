// Two hosts, emulated (scripts/dev/netns.ts): the coordinator and a worker in namespace A, a worker in B, over a 1 Gbit/s veth; global mode ≡ --local.
import t from 'tap';
import { join } from 'node:path';
import { netnsUnavailable, twoHosts } from '../../scripts/dev/netns.ts';
import { DATA, maxRelativeDiff, readLog, runScript, startInside, tempDir, twoHostsSkip, weights } from '../helpers.ts';

const steps = (dir: string) => readLog(dir).filter((r) => r.kind === 'step');
const small = ['--preset', 'test', '--data', DATA, '--max-iters', '20', '--eval-interval', '10', '--smi', 'cosine'];

const unavailable = netnsUnavailable();

t.test('a worker on each of two hosts (network namespaces, veth rate-limited to 1 Gbit/s by tc tbf), global mode: the --local run', twoHostsSkip(unavailable), async (t) => {
  if (unavailable) return t.fail(`CI=true and two hosts cannot be emulated here: ${unavailable}`);
  const dir = tempDir('smi-two-hosts-');
  const local = join(dir, 'local');
  const r = await runScript('train', ['--local', ...small, '--out', local]);
  t.equal(r.code, 0, r.stderr);

  const hosts = twoHosts({ rate: '1gbit' });
  t.teardown(() => hosts.close());
  t.match(hosts.a.qdisc(), /tbf .*rate 1Gbit/, 'the link is rate-limited on A');
  t.match(hosts.b.qdisc(), /tbf .*rate 1Gbit/, 'and on B');
  const inside = (h: typeof hosts.a, script: string, args: string[]) => startInside(hosts, h, script, args);
  const out = join(dir, 'two-hosts');
  const coord = inside(hosts.a, 'coordinator/main', [...small, '--spectral', 'global', '--out', out, '--host', hosts.a.addr, '--port', '0', '--token', 'tok', '--min-workers', '2']);
  const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
  const url = `ws://${hosts.a.addr}:${port}`;
  const before = hosts.b.counters();
  const wa = inside(hosts.a, 'worker/main', ['--connect', url, '--token', 'tok']);
  const wb = inside(hosts.b, 'worker/main', ['--connect', url, '--token', 'tok']);
  t.equal(await coord.exited, 0, 'the coordinator finishes the run', { output: coord.output() });
  t.equal(await wa.exited, 0, 'the worker on host A ends cleanly', { output: wa.output() });
  t.equal(await wb.exited, 0, 'the worker on host B ends cleanly', { output: wb.output() });

  const s = steps(out);
  t.equal(s.length, 20);
  t.ok(s.every((x) => x.workers === 2), 'every step on both hosts');
  const diff = maxRelativeDiff(weights(out), weights(local));
  t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
  const lo = steps(local).map((x) => x.loss as number);
  t.ok(s.every((x, i) => Math.abs((x.loss as number) - lo[i]!) < 1e-4), 'the loss of every step matches --local');

  // B's worker reached A only over the veth: its traffic crossed it. At least half the model's fp32 bytes each way
  // per step, in either design: the star sends B the weights and takes its gradient; the sharded exchange sends B
  // the others' values and shares of its tensors, and takes its shares and values (bf16 shares included)
  const after = hosts.b.counters();
  const params = readLog(out).find((x) => x.kind === 'start')!.params as number;
  const least = 20 * 2 * params;
  t.ok(after.rx - before.rx > least, `host B received ${after.rx - before.rx} bytes over the link (at least 20 steps × ${2 * params})`);
  t.ok(after.tx - before.tx > least, `and sent ${after.tx - before.tx}`);
  t.match(hosts.b.qdisc(), /Sent [1-9]\d* bytes/, 'through the tbf qdisc');
});
