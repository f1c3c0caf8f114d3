// The two-hosts helper (scripts/dev/netns.ts): what it makes, and that it is removed on close, exit, signals, and after a SIGKILL.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { netnsUnavailable, removeStale, twoHosts } from '../../../scripts/dev/netns.ts';
import { ROOT } from '../../helpers.ts';

const unavailable = netnsUnavailable();
const skip = unavailable !== null && process.env.CI !== 'true' ? `cannot emulate two hosts: ${unavailable}` : false;
const namespaces = () => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
const links = () => spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
const HELPER = join(ROOT, 'scripts/dev/netns.ts');

/** A child that makes a pair, prints its names, and waits to be signalled. */
function child() {
  const code = `import { twoHosts } from ${JSON.stringify(HELPER)}; const h = twoHosts(); console.log(JSON.stringify([h.a.ns, h.b.ns, h.a.dev])); setInterval(() => {}, 1000);`;
  const c = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const names = new Promise<string[]>((resolve) => c.stdout.once('data', (d) => resolve(JSON.parse(String(d)))));
  const exited = new Promise<void>((resolve) => c.on('exit', () => resolve()));
  return { c, names, exited };
}

t.test('two namespaces with a rate-limited veth pair between them, gone after close()', { skip }, async (t) => {
  if (unavailable) return t.fail(`CI=true and two hosts cannot be emulated here: ${unavailable}`);
  const h = twoHosts({ rate: '100mbit' });
  t.teardown(() => h.close());
  t.match(h.a.ns, new RegExp(`-${process.pid}-`), 'the names carry the pid');
  t.not(h.a.ns, h.b.ns);
  t.match(namespaces(), h.a.ns);
  t.match(h.b.qdisc(), /tbf .*rate 100Mbit/);
  const [a, b] = [h.a.addr, h.b.addr].map((x) => x.split('.').map(Number));
  t.ok(a![0] === 10 && a![3]! % 4 === 1 && b![3] === a![3]! + 1 && a!.slice(0, 3).join() === b!.slice(0, 3).join(), `a /30 in 10/8: ${h.a.addr}, ${h.b.addr}`);
  t.notMatch(links(), h.a.dev, 'no device is left in the root namespace');
  const r = spawnSync(h.b.wrap(['ip', '-o', 'addr'])[0]!, h.b.wrap(['ip', '-o', 'addr']).slice(1), { encoding: 'utf8' });
  t.match(r.stdout, new RegExp(`${h.b.dev}.*${h.b.addr.replaceAll('.', '\\.')}/30`), 'B holds its address');
  t.notMatch(r.stdout, h.a.addr.replaceAll('.', '\\.'), 'and not A\'s');
  // a process in A listens on A's address; B reaches it across the link
  const server = h.a.spawn(process.execPath, ['-e', `require('net').createServer((s) => s.end('hi from A')).listen(7000, '${h.a.addr}', () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => server.stdout!.once('data', r));
  const reply = spawnSync(h.b.wrap([process.execPath])[0]!, [...h.b.wrap([process.execPath]).slice(1), '-e', `require('net').connect(7000, '${h.a.addr}').pipe(process.stdout)`], { encoding: 'utf8' });
  t.equal(reply.stdout, 'hi from A', 'B reaches A over the veth');
  h.close();
  t.ok(server.killed, 'close() signalled what ran inside');
  await new Promise((r) => (server.exitCode !== null || server.signalCode !== null ? r(null) : server.once('exit', r)));
  t.equal(server.signalCode, 'SIGKILL', 'and it died of it');
  t.notMatch(namespaces(), h.a.ns, 'close() removed namespace A');
  t.notMatch(namespaces(), h.b.ns, 'and B');
  h.close();
  t.pass('close() twice is harmless');
});

t.test('a process that made them and is stopped by SIGTERM or SIGINT removes them; one SIGKILLed leaves them to the next removeStale()', { skip }, async (t) => {
  if (unavailable) return t.fail(`CI=true and two hosts cannot be emulated here: ${unavailable}`);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    const { c, names, exited } = child();
    const [a, b] = await names;
    t.match(namespaces(), a!, `${sig}: made`);
    c.kill(sig);
    await exited;
    t.equal(c.signalCode, sig, `${sig}: the process still dies of the signal`);
    t.notMatch(namespaces(), a!, `${sig}: A removed`);
    t.notMatch(namespaces(), b!, `${sig}: B removed`);
  }
  const { c, names, exited } = child();
  const [a, b] = await names;
  c.kill('SIGKILL');
  await exited;
  t.match(namespaces(), a!, 'SIGKILL: nothing could clean up');
  const removed = removeStale();
  t.ok(removed.includes(a!) && removed.includes(b!), `removeStale() removes a dead pid's namespaces (${removed.join(', ')})`);
  t.notMatch(namespaces(), a!);
});

t.test('without `ip` the helper says why; the two-hosts test then skips with that reason, and under CI=true fails', async (t) => {
  const env = { ...process.env, PATH: '/nonexistent' };
  const why = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `import { netnsUnavailable } from ${JSON.stringify(HELPER)}; console.log(netnsUnavailable())`], { cwd: ROOT, env, encoding: 'utf8' });
  t.match(why.stdout, process.getuid?.() === 0 ? /`ip` \(iproute2\) is not installed/ : /needs root/);
  const test = join(ROOT, 'test/e2e/two-hosts.test.ts');
  const skipped = spawnSync(process.execPath, ['--import', 'tsx', test], { cwd: ROOT, env: { ...env, CI: '' }, encoding: 'utf8' });
  t.equal(skipped.status, 0, 'not CI: the file passes');
  t.match(skipped.stdout, /# SKIP cannot emulate two hosts: (`ip` \(iproute2\) is not installed|creating network namespaces needs root)/, 'skipped, with a one-line reason');
  const failed = spawnSync(process.execPath, ['--import', 'tsx', test], { cwd: ROOT, env: { ...env, CI: 'true' }, encoding: 'utf8' });
  t.not(failed.status, 0, 'CI=true: the file fails');
  t.match(failed.stdout, /not ok .*CI=true and two hosts cannot be emulated here/);
});
