// `npm run bench -- transport`: GB/s of a paper-sized weights → gradient exchange with one worker process over loopback.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import WebSocket, { WebSocketServer } from 'ws';
import { parseWithTable } from '../../shared/cli/options.ts';
import { ConfigError } from '../../shared/errors.ts';
import { PRESETS } from '../../shared/config.ts';
import type { Grads, Message } from '../../shared/net/protocol.ts';
import { type AssemblerStats } from '../../shared/net/frames.ts';
import { type ReceiveInfo, Peer, clientOptions, serverOptions } from '../../shared/net/peer.ts';
import { runMain } from '../../shared/cli/main.ts';
import { median } from '../../shared/stats.ts';

const SELF = fileURLToPath(import.meta.url);

/** Parameter sizes of nanoGPT (bias=False, tied head) in parameter order: wte, wpe, 6 per block, ln_f. */
export function gptSizes(p: { n_layer: number; n_embd: number; block_size: number }, vocab = 65): number[] {
  const C = p.n_embd;
  const block = [C, 3 * C * C, C * C, C, 4 * C * C, 4 * C * C];
  return [vocab * C, p.block_size * C, ...Array.from({ length: p.n_layer }, () => block).flat(), C];
}

export interface BenchOptions {
  rounds?: number; // measured round trips [10]
  warmup?: number; // unmeasured round trips first [2]
  sizes?: number[]; // floats per tensor [the paper preset: 10,745,088 in 39 tensors]
  unmasked?: boolean; // the worker sends with a zero mask [false]
  bufferutil?: boolean; // both processes let ws use bufferutil [true]; false sets WS_NO_BUFFER_UTIL (needs a fresh process)
}

export interface BenchResult {
  floats: number;
  bytesPerRound: number; // frame bytes both ways
  roundTripMs: number; // median: weights sent → grads received and decoded
  gbPerS: number; // bytesPerRound / roundTripMs
  encodeMs: number; // median coordinator encode of the weights
  sendMs: number; // median coordinator send of the weights (until written to the socket)
  decodeMs: number; // median coordinator decode of the gradient
  workerDecodeMs: number; // median worker decode of the weights
  workerEncodeMs: number; // median worker encode of the gradient
  rounds: number[]; // every measured round trip, ms
  coordinatorStats: AssemblerStats; // how the coordinator's sections were decoded (views vs copies)
  workerStats: AssemblerStats;
  unmasked: boolean;
  bufferutil: boolean;
}


/**
 * Runs a coordinator here and one echo worker in a child process: each round sends `weights`, the worker sends
 * the same arrays back as `grads`. Measures each round from the send to the decoded answer.
 */
export async function benchTransport(opts: BenchOptions = {}): Promise<BenchResult> {
  const rounds = opts.rounds ?? 10;
  const warmup = opts.warmup ?? 2;
  const sizes = opts.sizes ?? gptSizes(PRESETS.paper);
  const unmasked = opts.unmasked ?? false;
  const bufferutil = opts.bufferutil ?? process.env.WS_NO_BUFFER_UTIL === undefined;
  if (!bufferutil && process.env.WS_NO_BUFFER_UTIL === undefined) {
    throw new Error('bufferutil: false needs WS_NO_BUFFER_UTIL=1 set before ws loads; run the bench main, which spawns one process per setting');
  }
  const tensors = sizes.map((n, i) => Float32Array.from({ length: n }, (_, j) => ((i * 31 + j) % 1000) / 1000));
  const floats = sizes.reduce((a, b) => a + b, 0);

  const wss = new WebSocketServer(serverOptions({ host: '127.0.0.1', port: 0 }));
  await once(wss, 'listening');
  const port = (wss.address() as { port: number }).port;
  const env = { ...process.env };
  if (!bufferutil) env.WS_NO_BUFFER_UTIL = '1';
  const child = spawn(process.execPath, ['--import', 'tsx', SELF, '--worker', `ws://127.0.0.1:${port}`, ...(unmasked ? ['--unmasked'] : [])], {
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    const [ws] = (await once(wss, 'connection')) as [WebSocket];
    const peer = new Peer(ws);
    const inbox: [Message, ReceiveInfo][] = [];
    let wake: (() => void) | null = null;
    let closed: string | null = null;
    peer.onMessage((m, info) => {
      inbox.push([m, info]);
      wake?.();
    });
    peer.onClose((code, reason) => {
      closed = `worker link closed: ${code} ${reason}`;
      wake?.();
    });
    const next = async (): Promise<[Message, ReceiveInfo]> => {
      while (!inbox.length) {
        if (closed) throw new Error(closed);
        await new Promise<void>((r) => (wake = r));
      }
      return inbox.shift()!;
    };
    const hello = await next();
    if (hello[0].type !== 'hello') throw new Error(`expected hello, got ${hello[0].type}`);

    const m = { rt: [] as number[], enc: [] as number[], send: [] as number[], dec: [] as number[], wdec: [] as number[], wenc: [] as number[] };
    let bytesPerRound = 0;
    for (let r = 0; r < warmup + rounds; r++) {
      const t0 = performance.now();
      const sent = await peer.send({ type: 'weights', step: r, tensors });
      const [g, info] = await next();
      const t1 = performance.now();
      if (g.type !== 'grads' || g.step !== r) throw new Error(`expected grads of round ${r}, got ${g.type}`);
      if (r === 0) checkEcho(g, tensors);
      if (r < warmup) continue;
      bytesPerRound = sent.bytes + info.bytes;
      m.rt.push(t1 - t0);
      m.enc.push(sent.encodeMs);
      m.send.push(sent.sendMs);
      m.dec.push(info.decodeMs);
      m.wdec.push(g.phases.decode!);
      if (r > warmup) m.wenc.push(g.phases.prevEncode!);
    }
    await peer.send({ type: 'bye', reason: 'bench done' });
    const [stats] = await next();
    if (stats.type !== 'error' && stats.type !== 'bye') throw new Error(`expected the worker's stats, got ${stats.type}`);
    const workerStats = JSON.parse(stats.type === 'bye' ? stats.reason : '{}') as AssemblerStats;
    peer.close();
    const roundTripMs = median(m.rt);
    return {
      floats, bytesPerRound, roundTripMs, gbPerS: bytesPerRound / roundTripMs / 1e6,
      encodeMs: median(m.enc), sendMs: median(m.send), decodeMs: median(m.dec),
      workerDecodeMs: median(m.wdec), workerEncodeMs: m.wenc.length ? median(m.wenc) : NaN,
      rounds: m.rt, coordinatorStats: { ...peer.assembler.stats }, workerStats, unmasked, bufferutil,
    };
  } finally {
    if (child.exitCode === null) {
      const exited = once(child, 'exit');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    wss.close();
  }
}

function checkEcho(g: Grads, tensors: Float32Array[]): void {
  if (g.tensors.length !== tensors.length) throw new Error(`echo has ${g.tensors.length} tensors, sent ${tensors.length}`);
  for (let i = 0; i < tensors.length; i++) {
    const a = tensors[i]!;
    const b = g.tensors[i]!;
    if (a.length !== b.length) throw new Error(`echo tensor ${i} has ${b.length} floats, sent ${a.length}`);
    for (let j = 0; j < a.length; j += 997) if (a[j] !== b[j]) throw new Error(`echo tensor ${i}[${j}] = ${b[j]}, sent ${a[j]}`);
  }
}

/** The worker side: echoes each `weights` back as `grads`; on `bye` answers with its assembler stats and exits. */
async function echoWorker(url: string, unmasked: boolean): Promise<void> {
  const ws = new WebSocket(url, clientOptions({ unmasked }));
  const peer = new Peer(ws);
  let prevEncode = 0;
  const done = new Promise<void>((resolve) => peer.onClose(() => resolve()));
  peer.onMessage(async (msg, info) => {
    if (msg.type === 'weights') {
      const sent = await peer.send({
        type: 'grads', step: msg.step, round: 0, attempt: 0, sequences: 1, loss: 0, tensors: msg.tensors,
        phases: { decode: info.decodeMs, prevEncode },
      });
      prevEncode = sent.encodeMs;
    } else if (msg.type === 'bye') {
      await peer.send({ type: 'bye', reason: JSON.stringify(peer.assembler.stats) });
    }
  });
  await once(ws, 'open');
  await peer.send({ type: 'hello', protocol: 1, token: null, workerId: null, backend: 'cpu', device: 'loopback', memoryBytes: 1, host: 'localhost', pid: process.pid, listen: null });
  await done;
}

const S = 'run' as const;
const OPTIONS = {
  rounds: { type: 'string' as const, arg: 'N', section: S, help: 'measured round trips per setting [10]' },
  warmup: { type: 'string' as const, arg: 'N', section: S, help: 'unmeasured round trips first [2]' },
  only: { type: 'string' as const, arg: 'SETTING', section: S, help: 'one setting: masked|unmasked|masked-nobufferutil|unmasked-nobufferutil' },
  json: { type: 'boolean' as const, section: S, help: 'print one JSON result per setting' },
  worker: { type: 'string' as const, arg: 'URL', section: S, help: '(internal) run the echo worker' },
  unmasked: { type: 'boolean' as const, section: S, help: '(internal) the echo worker sends unmasked' },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};
const HELP = `Usage: npm run bench -- transport [--rounds 10] [--warmup 2] [--only SETTING] [--json]

Measures a paper-preset exchange (10,745,088 floats of weights out, the same as a gradient back, 39 tensors)
between this process and one worker process over loopback, in four settings side by side: the worker's frames
masked (ws's default) or unmasked (clientOptions({ unmasked: true })), with and without bufferutil. Each setting
runs in a fresh process. Prints medians: encode, send and decode ms, round-trip ms, and GB/s (frame bytes both
ways / round trip), and how many received sections were zero-copy views of what ws delivered (the rest are
small tensors ws delivered at a misaligned address, copied: the KiB copied per message).

Exit codes: 0 done, 1 failed, 2 bad arguments.`;

const SETTINGS = {
  masked: { unmasked: false, bufferutil: true },
  unmasked: { unmasked: true, bufferutil: true },
  'masked-nobufferutil': { unmasked: false, bufferutil: false },
  'unmasked-nobufferutil': { unmasked: true, bufferutil: false },
} as const;
type Setting = keyof typeof SETTINGS;

const fmt = (r: BenchResult) => {
  const views = (s: AssemblerStats) =>
    `${s.views}/${s.views + s.copiedMisaligned + s.copiedSplit}, ${(s.copiedBytes / Math.max(1, s.messages) / 1024).toFixed(1)} KiB`;
  return [
    r.unmasked ? 'unmasked' : 'masked', r.bufferutil ? 'yes' : 'no', r.encodeMs.toFixed(2), r.sendMs.toFixed(1),
    r.decodeMs.toFixed(2), r.workerDecodeMs.toFixed(2), r.roundTripMs.toFixed(1), r.gbPerS.toFixed(2),
    `${views(r.coordinatorStats)} · ${views(r.workerStats)}`,
  ];
};

async function main(): Promise<number> {
  const v = parseWithTable(process.argv.slice(2), OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (typeof v.worker === 'string') {
    await echoWorker(v.worker, v.unmasked === true);
    return 0;
  }
  const int = (k: 'rounds' | 'warmup', d: number) => {
    const n = v[k] === undefined ? d : Number(v[k]);
    if (!Number.isInteger(n) || n < (k === 'rounds' ? 1 : 0)) throw new ConfigError('E_BAD_VALUE', `--${k} must be an integer >= ${k === 'rounds' ? 1 : 0}`);
    return n;
  };
  const rounds = int('rounds', 10);
  const warmup = int('warmup', 2);
  if (typeof v.only === 'string') {
    if (!(v.only in SETTINGS)) throw new ConfigError('E_BAD_VALUE', `unknown setting '${v.only}' (valid: ${Object.keys(SETTINGS).join(', ')})`);
    const r = await benchTransport({ rounds, warmup, ...SETTINGS[v.only as Setting] });
    console.log(v.json ? JSON.stringify(r) : fmt(r).join('  '));
    return 0;
  }
  // Each setting in a fresh process: WS_NO_BUFFER_UTIL only takes effect before ws loads.
  const header = ['client frames', 'bufferutil', 'encode ms', 'send ms', 'decode ms', 'worker decode ms', 'round trip ms', 'GB/s', 'views/sections, copied per msg: coord · worker'];
  const rows: string[][] = [];
  console.log(`paper preset: ${gptSizes(PRESETS.paper).reduce((a, b) => a + b, 0).toLocaleString('en')} floats each way; median of ${rounds} rounds after ${warmup} warm-up`);
  for (const name of Object.keys(SETTINGS) as Setting[]) {
    const env = { ...process.env };
    if (SETTINGS[name].bufferutil) delete env.WS_NO_BUFFER_UTIL;
    else env.WS_NO_BUFFER_UTIL = '1';
    const child = spawn(process.execPath, ['--import', 'tsx', SELF, '--only', name, '--json', '--rounds', String(rounds), '--warmup', String(warmup)], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`setting ${name} failed (exit ${code})`);
    const r = JSON.parse(out.trim().split('\n').pop()!) as BenchResult;
    if (v.json) console.log(JSON.stringify(r));
    rows.push(fmt(r));
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(r));
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) runMain(main);
