// Two hosts, emulated: two network namespaces joined by a veth pair rate-limited with tc tbf, always removed afterwards.
//
// Used by test/e2e/two-hosts.test.ts and `npm run bench -- scale`. Needs root and iproute2 (`ip`, `tc`); netem is
// not assumed (it is missing on some kernels), so the link has a rate but no added delay. Every name carries this
// process's pid, so that runs side by side do not collide, and the addresses exist only inside the namespaces, so
// that nothing on the machine's own interfaces changes. Removal runs on close(), at process exit, and on SIGINT,
// SIGTERM or SIGHUP; a SIGKILLed process cannot clean up, so leftovers of a dead pid are removed the next time.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';

/** One end of the link: a namespace, its veth device and its address. */
export interface Host {
  ns: string;
  dev: string;
  addr: string;
  /** argv that runs `argv` inside this namespace */
  wrap(argv: string[]): string[];
  /** spawns `cmd args` inside this namespace (killed by close() if still running) */
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** bytes the device sent and received so far */
  counters(): { tx: number; rx: number };
  /** what `tc -s qdisc show` says of the device's queueing discipline */
  qdisc(): string;
}

export interface TwoHosts {
  a: Host;
  b: Host;
  rate: string;
  /** a process started inside another way (e.g. with a.wrap): close() kills it too */
  adopt(child: ChildProcess): ChildProcess;
  /** kills what was started inside, removes both namespaces (and so the veth pair); idempotent */
  close(): void;
}

const PREFIX = 'smins';
let made = 0; // namespaces made by this process so far: the k in smins-<pid>-<k>-a

function run(argv: string[], check = true): { ok: boolean; out: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ok = r.status === 0;
  if (!ok && check) throw new Error(`${argv.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr ?? '').trim()}`);
  return { ok, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

let probed: string | null | undefined;

/**
 * Why two namespaces cannot be made here, or null when they can: root, `ip` and `tc` present, and a namespace with
 * a tbf qdisc actually made and removed once (a container may run as root without CAP_NET_ADMIN, or lack sch_tbf).
 */
export function netnsUnavailable(): string | null {
  if (probed !== undefined) return probed;
  const why = (): string | null => {
    if (process.platform !== 'linux') return `network namespaces are Linux only (this is ${process.platform})`;
    if (process.getuid?.() !== 0) return 'creating network namespaces needs root (ip netns add)';
    for (const tool of ['ip', 'tc']) {
      const r = spawnSync(tool, ['-V'], { stdio: 'ignore' });
      if (r.error || r.status !== 0) return `\`${tool}\` (iproute2) is not installed`;
    }
    const ns = `${PREFIX}-${process.pid}-${made++}-a`; // a name removeStale() knows, should this process die here
    try {
      const add = run(['ip', 'netns', 'add', ns], false);
      if (!add.ok) return `ip netns add failed: ${add.out.trim().split('\n')[0]}`;
      const tbf = run(['ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', '1gbit', 'burst', '1mb', 'latency', '50ms'], false);
      if (!tbf.ok) return `tc qdisc … tbf failed: ${tbf.out.trim().split('\n')[0]}`;
      return null;
    } finally {
      run(['ip', 'netns', 'del', ns], false);
    }
  };
  probed = why();
  return probed;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Removes namespaces and veths of this helper whose creating process is gone (one that was SIGKILLed). */
export function removeStale(): string[] {
  const removed: string[] = [];
  for (const line of run(['ip', 'netns', 'list'], false).out.split('\n')) {
    const m = new RegExp(`^(${PREFIX}-(\\d+)-\\d+-[ab])\\b`).exec(line);
    if (m && !alive(Number(m[2])) && run(['ip', 'netns', 'del', m[1]!], false).ok) removed.push(m[1]!);
  }
  for (const line of run(['ip', '-o', 'link', 'show'], false).out.split('\n')) {
    const m = /^\d+: (sv(\d+)n\d+a)[@:]/.exec(line);
    if (m && !alive(Number(m[2])) && run(['ip', 'link', 'del', m[1]!], false).ok) removed.push(m[1]!);
  }
  return removed;
}

const open = new Set<TwoHosts>();
let hooked = false;

/** Cleans up every open pair at exit and on the usual signals (then dies of the signal as it would have). */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const h of open) h.close();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      for (const h of open) h.close();
      process.removeListener(sig, handler);
      process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/**
 * Makes namespaces A and B, a veth pair between them with addresses in a private /30 (A .1, B .2), loopback up in
 * each, and on each end a tbf qdisc of `rate` (tc's units: '1gbit', '100mbit') so that both directions are limited.
 * On any failure what was made is removed and the error thrown.
 */
export function twoHosts(o: { rate?: string } = {}): TwoHosts {
  const why = netnsUnavailable();
  if (why) throw new Error(why);
  removeStale();
  hookExit();
  const rate = o.rate ?? '1gbit';
  const k = made++;
  const tag = `${process.pid}-${k}`;
  const ns = { a: `${PREFIX}-${tag}-a`, b: `${PREFIX}-${tag}-b` };
  const dev = { a: `sv${process.pid}n${k}a`, b: `sv${process.pid}n${k}b` }; // ≤ 15 characters for pids up to 8 digits
  // a /30 out of 10.213.0.0/16 chosen by pid (only ever inside these namespaces)
  const net = (process.pid * 8 + k * 4) % 65536;
  const base = `10.213.${net >> 8}.`;
  const addr = { a: `${base}${(net & 0xff) + 1}`, b: `${base}${(net & 0xff) + 2}` };
  const children = new Set<ChildProcess>();
  let closed = false;
  const pair: TwoHosts = {
    rate,
    a: host(ns.a, dev.a, addr.a, children),
    b: host(ns.b, dev.b, addr.b, children),
    adopt(child) {
      children.add(child);
      child.on('exit', () => children.delete(child));
      return child;
    },
    close() {
      if (closed) return;
      closed = true;
      open.delete(pair);
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      run(['ip', 'netns', 'del', ns.a], false);
      run(['ip', 'netns', 'del', ns.b], false);
      run(['ip', 'link', 'del', dev.a], false); // in case it never left the root namespace
    },
  };
  open.add(pair);
  try {
    run(['ip', 'netns', 'add', ns.a]);
    run(['ip', 'netns', 'add', ns.b]);
    run(['ip', 'link', 'add', dev.a, 'type', 'veth', 'peer', 'name', dev.b]);
    for (const side of ['a', 'b'] as const) {
      run(['ip', 'link', 'set', dev[side], 'netns', ns[side]]);
      const inside = (argv: string[]) => run(['ip', 'netns', 'exec', ns[side], ...argv]);
      inside(['ip', 'link', 'set', 'lo', 'up']);
      inside(['ip', 'addr', 'add', `${addr[side]}/30`, 'dev', dev[side]]);
      inside(['ip', 'link', 'set', dev[side], 'up']);
      // burst must cover a timer tick at this rate (1 Gbit/s at HZ 250: 0.5 MB); latency bounds the queue
      inside(['tc', 'qdisc', 'add', 'dev', dev[side], 'root', 'tbf', 'rate', rate, 'burst', '1mb', 'latency', '50ms']);
    }
  } catch (e) {
    pair.close();
    throw e;
  }
  return pair;
}

function host(ns: string, dev: string, addr: string, children: Set<ChildProcess>): Host {
  const wrap = (argv: string[]) => ['ip', 'netns', 'exec', ns, ...argv];
  return {
    ns, dev, addr, wrap,
    spawn(cmd, args, opts = {}) {
      const [c, ...rest] = wrap([cmd, ...args]);
      const child = spawn(c!, rest, opts);
      children.add(child);
      child.on('exit', () => children.delete(child));
      return child;
    },
    counters() {
      const read = (what: string) => Number(run(wrap(['cat', `/sys/class/net/${dev}/statistics/${what}_bytes`])).out.trim());
      return { tx: read('tx'), rx: read('rx') };
    },
    qdisc: () => run(wrap(['tc', '-s', 'qdisc', 'show', 'dev', dev])).out,
  };
}
