// An owner whose exchange address nobody can reach: it is blamed (it only computes from then on), not the worker that could not reach it; a worker that reaches none of the owners the others reach is the one cut off (E_CUT_OFF). The runs match --local.
import t from 'tap';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { netnsUnavailable, twoHosts } from '../../scripts/dev/netns.ts';
import { DATA, maxRelativeDiff, readLog, runScript, startInside, startScript, tempDir, twoHostsSkip, weights } from '../helpers.ts';
import { Exchange } from '../../worker/exchange.ts';

const small = ['--preset', 'test', '--data', DATA, '--max-iters', '10', '--eval-interval', '10', '--smi', 'cosine', '--spectral', 'global'];

t.test('Exchange.connect: an owner that refuses the connection, or never answers it, is named unreachable; the others are linked', async (t) => {
  const good = new Exchange({ token: 'tok', log: () => {}, onMessage: () => {} });
  good.setSelf('G');
  const url = await good.listen('127.0.0.1', 0);
  // a port that accepts TCP but never speaks WebSocket: the link does not open (the timeout), nothing hangs for good
  const mute = createServer(() => {}).listen(0, '127.0.0.1');
  await new Promise((r) => mute.once('listening', r));
  const mutePort = (mute.address() as { port: number }).port;
  const me = new Exchange({ token: 'tok', log: () => {}, onMessage: () => {} });
  me.setSelf('M');
  const unreachable = await me.connect([
    { workerId: 'G', url, tensors: [0] },
    { workerId: 'R', url: 'ws://127.0.0.1:1', tensors: [1] },
    { workerId: 'S', url: `ws://127.0.0.1:${mutePort}`, tensors: [2] },
    { workerId: 'M', url: 'ws://127.0.0.1:9', tensors: [3] },
  ]);
  t.same(unreachable, ['R', 'S'], 'the refused and the silent owner; not itself');
  t.ok(me.to('G'), 'the reachable owner is linked');
  t.equal(me.to('R'), null);
  await me.close();
  await good.close();
  mute.close();
});

t.test('a worker advertising an address nobody can reach: it only computes; the other owns every tensor; nobody is dropped; global ≡ --local', async (t) => {
  const dir = tempDir('smi-unreachable-');
  const local = join(dir, 'local');
  const r = await runScript('train', ['--local', ...small, '--out', local]);
  t.equal(r.code, 0, r.stderr);
  const out = join(dir, 'run');
  const coord = startScript('coordinator/main', [...small, '--out', out, '--port', '0', '--host', '127.0.0.1', '--token', 'tok', '--min-workers', '2', '--step-timeout', '60000']);
  const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
  const url = `ws://127.0.0.1:${port}`;
  const good = startScript('worker/main', ['--connect', url, '--token', 'tok', '--listen', '127.0.0.1:0']);
  const bad = startScript('worker/main', ['--connect', url, '--token', 'tok', '--listen', '127.0.0.1:0', '--advertise', 'ws://127.0.0.1:1']);
  t.equal(await coord.exited, 0, 'the run finishes', { output: coord.output() });
  t.equal(await good.exited, 0);
  t.equal(await bad.exited, 0);
  const [, owner, reporter] = /owner (\S+) could not be reached by (\S+) at ws:\/\/127\.0\.0\.1:1: it only computes from now on/.exec(coord.output()) ?? [];
  t.ok(owner && reporter && owner !== reporter, `the unreachable owner (${owner}) is blamed, not ${reporter}`);
  t.match(coord.output(), new RegExp(`plan \\d+ at step 0: ${reporter} owns 15 tensors [^;]*; 1 compute-only`), 'the next plan: the worker that could reach it owns every tensor');
  t.notMatch(coord.output(), /missed the (first-step )?step timeout|E_CUT_OFF/, 'nobody timed out or was dropped');
  const steps = readLog(out).filter((x) => x.kind === 'step');
  t.ok(steps.length === 10 && steps.every((s) => s.workers === 2), 'every step computed by both');
  const plan = steps[0]!.owners_plan as { version: number; owners: { worker: string; tensors: number }[]; compute_only: string[] };
  t.ok(plan.version >= 2 && plan.owners.length === 1 && plan.owners[0]!.worker === reporter && plan.compute_only.join() === owner, `the log's plan (version ${plan.version}): ${reporter} owns all, ${owner} only computes`);
  const diff = maxRelativeDiff(weights(out), weights(local));
  t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
});

const unavailable = netnsUnavailable();

t.test('a worker that reaches none of the owners the others reach (two network namespaces: their addresses are loopback ones of the other host) is dropped with E_CUT_OFF, nobody else is blamed; global ≡ --local', twoHostsSkip(unavailable), async (t) => {
  if (unavailable) return t.fail(`CI=true and two hosts cannot be emulated here: ${unavailable}`);
  const dir = tempDir('smi-cut-off-');
  const local = join(dir, 'local');
  const r = await runScript('train', ['--local', ...small, '--out', local]);
  t.equal(r.code, 0, r.stderr);
  const hosts = twoHosts();
  t.teardown(() => hosts.close());
  const inside = (h: typeof hosts.a, script: string, args: string[]) => startInside(hosts, h, script, args);
  const out = join(dir, 'run');
  // on host A: the coordinator, and two workers whose exchange servers listen on A's loopback only: they reach each
  // other; on host B, a third worker that reaches the coordinator over the link, and whose own server the others reach
  // there, but whose links to ws://127.0.0.1:… end on B's own loopback: refused
  const coord = inside(hosts.a, 'coordinator/main', [...small, '--out', out, '--host', hosts.a.addr, '--port', '0', '--token', 'tok', '--min-workers', '3', '--step-timeout', '60000']);
  const [, port] = await coord.waitFor(/listening on ws:\/\/[^:]+:(\d+)/);
  const url = `ws://${hosts.a.addr}:${port}`;
  const w1 = inside(hosts.a, 'worker/main', ['--connect', url, '--token', 'tok', '--listen', '127.0.0.1:0']);
  const w2 = inside(hosts.a, 'worker/main', ['--connect', url, '--token', 'tok', '--listen', '127.0.0.1:0']);
  const cut = inside(hosts.b, 'worker/main', ['--connect', url, '--token', 'tok', '--retry-for', '3000']);
  t.equal(await coord.exited, 0, 'the run finishes', { output: coord.output() });
  t.equal(await w1.exited, 0);
  t.equal(await w2.exited, 0);
  await cut.exited;
  const [, who] = /worker (\S+) could not reach any owner, which the others reached: dropping it \(E_CUT_OFF\)/.exec(coord.output()) ?? [];
  t.ok(who, 'the coordinator names the worker cut off and drops it (E_CUT_OFF)');
  t.match(cut.output(), new RegExp(`joined as ${who} `), `that is the worker on host B (${who})`);
  t.match(cut.output(), /E_CUT_OFF|4017/, 'it is told why it was closed, with the code');
  t.notMatch(coord.output(), /it only computes from now on/, 'no reachable owner is blamed');
  const steps = readLog(out).filter((x) => x.kind === 'step');
  t.same(steps.map((s) => s.step), Array.from({ length: 10 }, (_, i) => i + 1), 'every step once');
  t.ok(steps.every((s) => s.workers === 2), 'every step by the two workers that reach each other');
  const diff = maxRelativeDiff(weights(out), weights(local));
  t.ok(diff < 1e-5, `final weights within 1e-5 relative of --local (${diff.toExponential(2)})`);
});
