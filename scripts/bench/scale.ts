// `npm run bench -- scale`: issue 14's figures — the paper-size probe, the cpu preset on 1–4 workers, bytes per process, two emulated hosts.
// (~400 lines: the runs, the reading of their logs and the report they make are one benchmark; the model is in scale-model.ts.)
//
// Every run is a real `npm run train` (the two-host run: a coordinator and workers in network namespaces,
// scripts/dev/netns.ts), repeated --repeat times, one whole set after the other, so that each ratio is taken
// between runs made side by side; a figure is the median over the repetitions (ratios with their range).
// `--model` prints the E(N) model of docs/scaling/model.md instead (scripts/bench/scale-model.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NODE_HEAP_FLAGS } from '../../shared/cli/node-flags.ts';
import { parseWithTable } from '../../shared/cli/options.ts';
import { ConfigError } from '../../shared/errors.ts';
import { median } from '../../shared/stats.ts';
import { slowestComputeMs, stepWallMs, tokensPerSec, type StepRecord } from '../../shared/train/log.ts';
import { DEFAULT_DATA_PATH } from '../../shared/model/data.ts';
import { netnsUnavailable, twoHosts } from '../dev/netns.ts';
import { S, positiveInt } from './flags.ts';
import { exchangeBytes, modelMain, modelSizes, paramShapes } from './scale-model.ts';
import { PRESETS } from '../../shared/config.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** One configuration to run. */
export interface Spec {
  id: string;
  group: 'probe' | 'cpu' | 'two-hosts';
  label: string;
  workers: number; // 0 for --local
  batch: number;
  block: number;
  flags: string[]; // everything but --out
  base: string; // the id whose tokens/s the ratio is taken against, in the same repetition
  mode?: 'synced' | 'global';
  wire?: 'bf16'; // --wire-dtype bf16 (its shares: 2 bytes a value); absent: fp32
  model: { params: number; magnitudes: number }; // its sizes (scale-model.ts), beside the log's parameter count
  target?: { vsLocal?: number; outsideMs?: number; cpuMs?: number; efficiency?: number }; // issue 14's bars
}

/** What one run's log says, over its steps after the warmup: medians per step. */
export interface Figures {
  steps: number;
  params: number;
  msPerStep: number;
  computeMs: number; // the slowest worker's forward + backward
  outsideMs: number; // step − slowest compute
  tokensPerSec: number;
  cpuMs: number; // the loop process's CPU (the coordinator's; --local's whole process); NaN when not logged
  workerCpuMs: number; // --update owners: the busiest worker process's CPU in the step (owners_step cpu_ms); NaN when not logged
  /** per process ('coordinator', 'worker 1', …): the median ms of each phase it logs */
  phases: Record<string, Record<string, number>>;
  /** who ran the update: the owners (the log's owners_step) or the coordinator (the star) */
  update: 'owners' | 'coordinator';
  /** per process: bytes it sent and received, median per step, from its own side */
  bytes: { process: string; sent: number; received: number }[];
}

type Rec = Omit<Partial<StepRecord>, 'kind' | 'phases'> & { kind?: string; params?: number; phases?: { coordinator?: Record<string, unknown>; workers?: Record<string, Record<string, unknown>> } };

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * Reads one run's log records into its figures. Workers are named 'worker 1', … in the order they first appear.
 * Bytes: today a worker's `bytes_sent` is what the coordinator sent it (docs/log-format.md), so from the worker's
 * side it is received; the coordinator's own `bytes_sent`/`bytes_received` are used when its record has them,
 * else it is the sum over the workers (in the star every worker byte goes through it). Under --update owners the
 * step record's owners_step gives each worker's own phases and bytes on all its links, and coordinator_bytes the
 * coordinator's on its control links.
 */
export function figures(records: readonly Rec[], o: { warmup: number; tokens: number }): Figures {
  const params = num(records.find((r) => r.kind === 'start')?.params) ?? NaN;
  const steps = records.filter((r) => r.kind === 'step' && (r.step ?? 0) > o.warmup) as (Rec & StepRecord)[];
  const names = new Map<string, string>();
  const phases = new Map<string, Map<string, number[]>>();
  const bytes = new Map<string, { sent: number[]; received: number[] }>();
  const push = <K>(m: Map<K, number[]>, k: K, v: number) => (m.get(k) ?? m.set(k, []).get(k)!).push(v);
  const add = (proc: string, phase: string, v: number) => push(phases.get(proc) ?? phases.set(proc, new Map()).get(proc)!, phase, v);
  const addBytes = (proc: string, sent: number, received: number) => {
    const b = bytes.get(proc) ?? bytes.set(proc, { sent: [], received: [] }).get(proc)!;
    b.sent.push(sent);
    b.received.push(received);
  };
  let sharded = false;
  const workerCpu: number[] = [];
  for (const r of steps) {
    const c = r.phases?.coordinator;
    const ws = r.phases?.workers ?? {};
    let toWorkers = 0;
    let fromWorkers = 0;
    for (const [id, w] of Object.entries(ws)) {
      if (!names.has(id)) names.set(id, `worker ${names.size + 1}`);
      const proc = names.get(id)!;
      for (const [p, v] of Object.entries(w)) if (!p.startsWith('bytes_') && num(v) !== undefined) add(proc, p, v as number);
      const sent = num(w.bytes_sent);
      const received = num(w.bytes_received);
      if (sent !== undefined && received !== undefined) {
        addBytes(proc, received, sent);
        toWorkers += sent;
        fromWorkers += received;
      }
    }
    // --update owners: each worker's own phases and the bytes it sent and received on every link (its own side)
    const os = (r as { owners_step?: Record<string, { phases?: Record<string, unknown>; sent?: unknown; received?: unknown; cpu_ms?: unknown }> }).owners_step ?? {};
    const cpus = Object.values(os).map((w) => num(w.cpu_ms)).filter((x): x is number => x !== undefined);
    if (cpus.length) workerCpu.push(Math.max(...cpus));
    for (const [id, w] of Object.entries(os)) {
      if (!names.has(id)) names.set(id, `worker ${names.size + 1}`);
      const proc = names.get(id)!;
      for (const [p, v] of Object.entries(w.phases ?? {})) if (num(v) !== undefined) add(proc, p, v as number);
      const sent = num(w.sent);
      const received = num(w.received);
      if (sent !== undefined && received !== undefined) addBytes(proc, sent, received);
    }
    if (Object.keys(os).length > 0) sharded = true;
    // --update owners: the coordinator's own bytes on its control links (windows out, scalars back)
    const cb = (r as { coordinator_bytes?: { sent?: unknown; received?: unknown } }).coordinator_bytes;
    if (cb && num(cb.sent) !== undefined && num(cb.received) !== undefined) addBytes('coordinator', num(cb.sent)!, num(cb.received)!);
    if (c) {
      for (const [p, v] of Object.entries(c)) if (!p.startsWith('bytes_') && num(v) !== undefined) add('coordinator', p, v as number);
      const cs = num(c.bytes_sent);
      const cr = num(c.bytes_received);
      if (cs !== undefined && cr !== undefined) addBytes('coordinator', cs, cr);
      else if (Object.keys(ws).length > 0) addBytes('coordinator', toWorkers, fromWorkers);
    }
  }
  const med = (xs: number[]) => (xs.length ? median(xs) : NaN);
  const ms = med(steps.map((r) => stepWallMs(r)));
  const computes = steps.map((r) => slowestComputeMs(r)).filter((x): x is number => x !== null);
  const outside = steps.map((r) => [stepWallMs(r), slowestComputeMs(r)] as const).filter(([, c]) => c !== null).map(([w, c]) => w - c!);
  const order = (a: string, b: string) => (a === 'coordinator' ? -1 : b === 'coordinator' ? 1 : a.localeCompare(b, 'en', { numeric: true }));
  return {
    steps: steps.length,
    update: sharded ? 'owners' : 'coordinator',
    params,
    msPerStep: ms,
    computeMs: med(computes),
    outsideMs: med(outside),
    tokensPerSec: tokensPerSec(o.tokens, ms),
    cpuMs: med(steps.map((r) => num(r.cpu_ms)).filter((x): x is number => x !== undefined)),
    workerCpuMs: med(workerCpu),
    phases: Object.fromEntries([...phases.keys()].sort(order).map((p) => [p, Object.fromEntries([...phases.get(p)!].map(([k, v]) => [k, med(v)]))])),
    bytes: [...bytes.keys()].sort(order).map((p) => ({ process: p, sent: med(bytes.get(p)!.sent), received: med(bytes.get(p)!.received) })),
  };
}

/** A spec's figures over the repetitions: medians, and the tokens/s ratio against its base in each repetition. */
export interface Row {
  spec: Spec;
  reps: Figures[];
  figures: Figures; // each field the median over the repetitions (phases and bytes: of the median-ms repetition)
  vsBase: number[]; // tokens/s ÷ the base's, per repetition
  efficiency: number[]; // weak scaling against the group's 1-worker run, per repetition (cpu group; else empty)
}

/** Combines repetitions (each a map from spec id to figures) into rows, in `specs`' order. */
export function combine(specs: readonly Spec[], reps: readonly ReadonlyMap<string, Figures>[]): Row[] {
  const rows: Row[] = [];
  for (const spec of specs) {
    const mine = reps.map((r) => r.get(spec.id)).filter((f): f is Figures => f !== undefined);
    if (mine.length === 0) continue;
    const m = (f: (x: Figures) => number) => median(mine.map(f));
    const byMs = [...mine].sort((a, b) => a.msPerStep - b.msPerStep)[Math.floor((mine.length - 1) / 2)]!;
    const vsBase = reps.flatMap((r) => {
      const a = r.get(spec.id);
      const b = r.get(spec.base);
      return a && b ? [a.tokensPerSec / b.tokensPerSec] : [];
    });
    const one = specs.find((s) => s.group === spec.group && s.workers === 1);
    const efficiency = spec.group === 'cpu' && one && spec.workers >= 1
      ? reps.flatMap((r) => {
        const a = r.get(spec.id);
        const b = r.get(one.id);
        return a && b ? [a.tokensPerSec / (spec.workers * b.tokensPerSec)] : [];
      })
      : [];
    rows.push({
      spec, reps: mine, vsBase, efficiency,
      figures: { ...byMs, steps: m((f) => f.steps), msPerStep: m((f) => f.msPerStep), computeMs: m((f) => f.computeMs), outsideMs: m((f) => f.outsideMs), tokensPerSec: m((f) => f.tokensPerSec), cpuMs: m((f) => f.cpuMs), workerCpuMs: m((f) => f.workerCpuMs) },
    });
  }
  return rows;
}

// ---- the specs ---------------------------------------------------------------------------------------------

/** The probes of issue 14: the paper preset (or, --quick, the test preset) and the cpu preset. */
export function specsFor(o: { quick: boolean; workers: number[]; twoHosts: boolean }): { specs: Spec[]; warmup: number } {
  const probe = o.quick
    ? ['--preset', 'test', '--dropout', '0', '--eval-iters', '1', '--eval-interval', '1000', '--max-iters', '8', '--smi', 'cosine']
    : ['--preset', 'paper', '--block-size', '8', '--dropout', '0', '--eval-iters', '1', '--eval-interval', '1000', '--max-iters', '25', '--smi', 'cosine'];
  const probeBlock = o.quick ? 16 : 8;
  const cpu = o.quick
    ? ['--preset', 'test', '--eval-iters', '1', '--eval-interval', '1000', '--max-iters', '8', '--smi', 'cosine']
    : ['--preset', 'cpu', '--eval-iters', '1', '--eval-interval', '1000', '--max-iters', '40', '--smi', 'cosine'];
  const cpuBlock = o.quick ? 16 : 64;
  const perWorker = o.quick ? 8 : 12;
  const sizes = (preset: 'paper' | 'cpu' | 'test', block: number) => modelSizes(paramShapes({ ...PRESETS[preset], block_size: block }));
  const probeModel = sizes(o.quick ? 'test' : 'paper', probeBlock);
  const cpuModel = sizes(o.quick ? 'test' : 'cpu', cpuBlock);
  const specs: Spec[] = [
    { id: 'probe-local', group: 'probe', label: '--local --batch-size 4', workers: 0, batch: 4, block: probeBlock, model: probeModel, flags: [...probe, '--local', '--batch-size', '4'], base: 'probe-local' },
  ];
  for (const mode of ['synced', 'global'] as const) {
    specs.push(
      { id: `probe-${mode}-weak`, group: 'probe', label: `2 workers ${mode}, --batch-size 8 (4 each: weak)`, workers: 2, batch: 8, block: probeBlock, model: probeModel, mode, flags: [...probe, '--workers', '2', '--spectral', mode, '--batch-size', '8'], base: 'probe-local', target: { vsLocal: 1.8, outsideMs: 250, cpuMs: 10 } },
      { id: `probe-${mode}-strong`, group: 'probe', label: `2 workers ${mode}, --batch-size 4 (2 each: strong)`, workers: 2, batch: 4, block: probeBlock, model: probeModel, mode, flags: [...probe, '--workers', '2', '--spectral', mode, '--batch-size', '4'], base: 'probe-local', target: { vsLocal: 1.3, outsideMs: 250, cpuMs: 10 } },
    );
  }
  specs.push({ id: 'cpu-local', group: 'cpu', label: '--local', workers: 0, batch: perWorker, block: cpuBlock, model: cpuModel, flags: [...cpu, '--local', '--batch-size', String(perWorker)], base: 'cpu-local' });
  for (const n of o.workers) {
    specs.push({ id: `cpu-${n}`, group: 'cpu', label: `${n} worker${n > 1 ? 's' : ''} synced, --batch-size ${perWorker * n} (weak)`, workers: n, batch: perWorker * n, block: cpuBlock, model: cpuModel, mode: 'synced', flags: [...cpu, '--workers', String(n), '--spectral', 'synced', '--batch-size', String(perWorker * n)], base: 'cpu-local', target: n === 2 ? { vsLocal: 1.7, efficiency: 0.9 } : undefined });
  }
  if (o.twoHosts) {
    // the probe's global weak run with one of its workers behind the 1 Gbit/s link (its base: the same run on loopback)
    // and the same with bf16 shares (--wire-dtype), where halving the gradients' bytes should pay: on a real link
    const weak = specs.find((s) => s.id === 'probe-global-weak')!;
    specs.push({ ...weak, id: 'two-hosts', group: 'two-hosts', label: `${weak.label}, worker 2 on host B over 1 Gbit/s`, base: 'probe-global-weak', target: undefined });
    specs.push({ ...weak, id: 'two-hosts-bf16', group: 'two-hosts', label: `the same with --wire-dtype bf16`, flags: [...weak.flags, '--wire-dtype', 'bf16'], wire: 'bf16', base: 'probe-global-weak', target: undefined });
  }
  return { specs, warmup: o.quick ? 2 : 5 };
}

// ---- running -----------------------------------------------------------------------------------------------

function child(argv: string[], what: string, o: { onOutput?: (out: string) => void; onSpawn?: (c: ChildProcess) => void } = {}): Promise<string> {
  return new Promise((done, fail) => {
    const c = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    o.onSpawn?.(c);
    let out = '';
    const data = (d: Buffer) => {
      out += d;
      o.onOutput?.(out);
    };
    c.stdout.on('data', data);
    c.stderr.on('data', data);
    c.on('error', fail);
    c.on('exit', (code) => (code === 0 ? done(out) : fail(new Error(`${what} exited ${code}:\n${out.slice(-4000)}`))));
  });
}

const node = (script: string, args: string[]) => [process.execPath, ...NODE_HEAP_FLAGS, '--import', 'tsx', join(ROOT, script), ...args];

/** The two-host run: the coordinator and worker 1 in namespace A, worker 2 in B, over a 1 Gbit/s veth. */
async function runTwoHosts(spec: Spec, out: string, data: string): Promise<void> {
  const hosts = twoHosts({ rate: '1gbit' });
  try {
    const flags = spec.flags.filter((f, i, a) => f !== '--workers' && a[i - 1] !== '--workers'); // the launcher's flag
    let listening: (port: string) => void = () => {};
    const port = new Promise<string>((r) => (listening = r));
    const coord = child(hosts.a.wrap(node('coordinator/main.ts', [...flags, '--data', data, '--out', out, '--host', hosts.a.addr, '--port', '0', '--token', 'bench', '--min-workers', '2'])), 'two-host coordinator', {
      onSpawn: (c) => hosts.adopt(c),
      onOutput: (o) => {
        const m = /listening on ws:\/\/[^:]+:(\d+)/.exec(o);
        if (m) listening(m[1]!);
      },
    });
    const url = `ws://${hosts.a.addr}:${await Promise.race([port, coord.then(() => Promise.reject(new Error('the two-host coordinator exited before listening')))])}`;
    const workers = [hosts.a, hosts.b].map((h, i) => child(h.wrap(node('worker/main.ts', ['--connect', url, '--token', 'bench'])), `two-host worker ${i + 1}`, { onSpawn: (c) => hosts.adopt(c) }));
    await Promise.all([coord, ...workers]);
  } finally {
    hosts.close();
  }
}

export interface ScaleResult {
  machine: string;
  quick: boolean;
  repeat: number;
  warmup: number;
  rows: Row[];
  skipped: string[];
}

export async function benchScale(o: { quick: boolean; repeat: number; workers: number[]; data: string; runs?: string; log?: (l: string) => void }): Promise<ScaleResult> {
  const why = netnsUnavailable();
  const { specs, warmup } = specsFor({ quick: o.quick, workers: o.workers, twoHosts: why === null });
  const root = o.runs ?? mkdtempSync(join(tmpdir(), 'smi-scale-'));
  const reps: Map<string, Figures>[] = [];
  for (let rep = 0; rep < o.repeat; rep++) {
    const got = new Map<string, Figures>();
    for (const spec of specs) {
      const out = join(root, `${spec.id}-r${rep + 1}`);
      o.log?.(`[${rep + 1}/${o.repeat}] ${spec.group}: ${spec.label}`);
      if (spec.group === 'two-hosts') await runTwoHosts(spec, out, o.data);
      else await child(node('scripts/train.ts', [...spec.flags, '--data', o.data, '--out', out]), `train ${spec.flags.join(' ')}`);
      const records = readFileSync(join(out, 'log.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Rec);
      got.set(spec.id, figures(records, { warmup, tokens: spec.batch * spec.block }));
    }
    reps.push(got);
  }
  return {
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`,
    quick: o.quick, repeat: o.repeat, warmup, rows: combine(specs, reps),
    skipped: why ? [`the two-host run: ${why}`] : [],
  };
}

// ---- the report --------------------------------------------------------------------------------------------

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const ratio = (xs: number[]) => (xs.length === 0 ? '–' : `${f2(median(xs))}${xs.length > 1 ? ` (${f2(Math.min(...xs))}–${f2(Math.max(...xs))})` : ''}`);
const mb = (b: number) => (Number.isFinite(b) ? (b / 1e6).toFixed(2) : '–');
/** A figure beside issue 14's bar for it (in brackets), where it has one. */
const barred = (quick: boolean) => (x: string, t: number | undefined, op: '≥' | '≤') => (t === undefined || quick ? x : `${x} (${op} ${t})`);

/** The busiest process's bytes per step (sent + received), and the coordinator's. */
function busiest(f: Figures): { coordinator: number; worker: number } {
  const tot = (b: Figures['bytes'][number]) => b.sent + b.received;
  const c = f.bytes.find((b) => b.process === 'coordinator');
  const ws = f.bytes.filter((b) => b.process !== 'coordinator').map(tot);
  return { coordinator: c ? tot(c) : NaN, worker: ws.length ? Math.max(...ws) : NaN };
}

const phaseList = (p: Record<string, number> | undefined, skip: string[] = []) =>
  p ? Object.entries(p).filter(([k, v]) => !skip.includes(k) && v >= 0.5).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ') : '–';

export function scaleMarkdown(r: ScaleResult): string {
  const lines: string[] = [];
  const bar = barred(r.quick); // the bars are for the paper and cpu presets, not the quick test-preset runs
  const probe = r.rows.filter((x) => x.spec.group === 'probe');
  const cpu = r.rows.filter((x) => x.spec.group === 'cpu');
  const two = r.rows.filter((x) => x.spec.group === 'two-hosts');
  lines.push(`Machine: ${r.machine}. ${r.repeat} repetition(s), interleaved; each figure the median over them (ratios: median, range in brackets); the first ${r.warmup} steps of every run left out.${r.quick ? '' : ' Issue 14\'s bar for a figure follows it in brackets.'}${r.quick ? ' **--quick: the test preset, a smoke run, not the figures of issue 14.**' : ''}`);
  if (probe.length) {
    lines.push('', `### ${r.quick ? 'Probe (quick: test preset)' : 'Paper-size probe'} (\`${probe[0]!.spec.flags.filter((f) => !['--local'].includes(f)).join(' ').replace(/ --batch-size \d+/, '')}\`)`, '',
      '| run | tokens/step | ms/step | tokens/s vs `--local` | outside slowest compute, ms | coordinator CPU, ms/step | busiest worker CPU, ms/step | coordinator MB/step | busiest worker MB/step | phases, ms (the star: the coordinator\'s; the owners: worker 1\'s) |',
      '|---|---|---|---|---|---|---|---|---|---|');
    for (const x of probe) {
      const f = x.figures;
      const b = busiest(f);
      const t = x.spec.target;
      lines.push(`| ${x.spec.label} | ${x.spec.batch * x.spec.block} | ${f1(f.msPerStep)} | ${x.spec.workers ? bar(ratio(x.vsBase), t?.vsLocal, '≥') : '1'} | ${x.spec.workers ? bar(f1(f.outsideMs), t?.outsideMs, '≤') : '–'} | ${bar(f1(f.cpuMs), x.spec.workers ? t?.cpuMs : undefined, '≤')} | ${x.spec.workers ? f1(f.workerCpuMs) : '–'} | ${mb(b.coordinator)} | ${mb(b.worker)} | ${phaseList(f.update === 'owners' ? f.phases['worker 1'] : f.phases.coordinator, ['step'])} |`);
    }
  }
  if (cpu.length) {
    lines.push('', `### ${r.quick ? 'Weak scaling (quick: test preset)' : '`cpu` preset, weak scaling, synced'}`, '',
      '| run | batch | ms/step | tokens/s | vs `--local` | E(N) vs 1 worker | outside slowest compute, ms | coordinator CPU, ms/step |',
      '|---|---|---|---|---|---|---|---|');
    for (const x of cpu) {
      const f = x.figures;
      const t = x.spec.target;
      lines.push(`| ${x.spec.label} | ${x.spec.batch} | ${f1(f.msPerStep)} | ${Math.round(f.tokensPerSec)} | ${x.spec.workers ? bar(ratio(x.vsBase), t?.vsLocal, '≥') : '1'} | ${x.spec.workers > 1 ? bar(ratio(x.efficiency), t?.efficiency, '≥') : x.spec.workers === 1 ? '1 (base)' : '–'} | ${x.spec.workers ? f1(f.outsideMs) : '–'} | ${f1(f.cpuMs)} |`);
    }
  }
  const withBytes = r.rows.filter((x) => x.spec.workers > 0 && x.spec.group !== 'two-hosts' && x.figures.bytes.length > 0);
  if (withBytes.length) {
    lines.push('', '### Bytes per process per step (sent + received, exact counts from the log)', '',
      'The formulas (scripts/bench/scale-model.ts exchangeBytes; P parameters, M synced-mode magnitude values, 4 bytes each): star: each worker 4P + 4M + 4P, the coordinator N× that; sharded (issue 14): every process 2·(N−1)/N × (4P + 4P), synced or not (the owners compute the magnitudes from the shares).', '',
      '| run | N | P | coordinator | star formula | busiest worker | star formula | sharded formula, per process |',
      '|---|---|---|---|---|---|---|---|');
    for (const x of withBytes) {
      const f = x.figures;
      const b = busiest(f);
      const magnitudes = x.spec.mode === 'synced' ? x.spec.model.magnitudes : 0;
      const e = exchangeBytes(x.spec.workers, f.params, { magnitudes });
      lines.push(`| ${x.spec.group}: ${x.spec.label} | ${x.spec.workers} | ${f.params} | ${Math.round(b.coordinator)} | ${Math.round(e.starCoordinator)} | ${Math.round(b.worker)} | ${Math.round(e.starWorker)} | ${Math.round(e.sharded)} |`);
    }
  }
  if (two.length) {
    lines.push('', '### Two hosts, emulated (network namespaces, veth rate-limited to 1 Gbit/s by tc tbf)', '',
      '| run | ms/step | tokens/s vs the same run (fp32) on loopback | outside slowest compute, ms | busiest worker MB/step | phases per process, ms |', '|---|---|---|---|---|---|');
    for (const x of two) {
      const f = x.figures;
      lines.push(`| ${x.spec.label} | ${f1(f.msPerStep)} | ${ratio(x.vsBase)} | ${f1(f.outsideMs)} | ${mb(busiest(f).worker)} | ${Object.entries(f.phases).map(([p, ph]) => `${p}: ${phaseList(ph, ['step'])}`).join('; ')} |`);
    }
  }
  for (const s of r.skipped) lines.push('', `Skipped: ${s}.`);
  return lines.join('\n');
}

// ---- the command -------------------------------------------------------------------------------------------

const SCALE_OPTIONS = {
  quick: { type: 'boolean' as const, section: S, help: 'a short smoke variant on the test preset (1 repetition unless --repeat)' },
  repeat: { type: 'string' as const, arg: 'R', section: S, help: 'make every run R times, interleaved [3]' },
  workers: { type: 'string' as const, arg: '1,2,3,4', section: S, help: 'worker counts of the cpu-preset runs [1,2,3,4; --quick 1,2]' },
  out: { type: 'string' as const, arg: 'DIR', section: S, help: 'write scale.json and scale.md here [report/scale]' },
  runs: { type: 'string' as const, arg: 'DIR', section: S, help: 'keep the run directories here [a temporary directory]' },
  data: { type: 'string' as const, arg: 'FILE', section: S, help: `corpus [${DEFAULT_DATA_PATH}]` },
  model: { type: 'boolean' as const, section: S, help: 'print (and with --out write) the E(N) model of docs/scaling/model.md instead; runs nothing' },
  help: { type: 'boolean' as const, section: S, help: 'this text' },
};

const HELP = `Usage: npm run bench -- scale [--quick] [--repeat 3] [--workers 1,2,3,4] [--out report/scale] [--runs DIR]
       npm run bench -- scale --model [--out DIR]

Issue 14's figures: the paper-size probe (--local --batch-size 4; 2 workers synced and global, weak --batch-size 8
and strong --batch-size 4), the cpu preset for --local and 1–4 workers (weak, synced), and, as root, the probe's
global weak run with one worker behind an emulated 1 Gbit/s link (two network namespaces). Prints tokens/s ratios
against --local, the time outside the slowest worker's compute, the coordinator's CPU per step (log.jsonl cpu_ms),
bytes per process per step beside the formulas; writes scale.json and scale.md to --out.
--quick runs the same on the test preset with short runs (a smoke test). --model prints the E(N) model.`;

export async function main(argv: string[]): Promise<number> {
  const v = parseWithTable(argv, SCALE_OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const out = (v.out as string | undefined) ?? join('report', 'scale');
  if (v.model) return modelMain(v.out === undefined ? undefined : out);
  const quick = v.quick === true;
  const workers = String(v.workers ?? (quick ? '1,2' : '1,2,3,4')).split(',').map(Number);
  if (workers.some((n) => !Number.isInteger(n) || n < 1)) throw new ConfigError('E_BAD_FLAG', `--workers takes a list of positive integers, got ${String(v.workers)}`);
  const result = await benchScale({ quick, repeat: positiveInt(v, 'repeat', quick ? 1 : 3), workers, data: (v.data as string | undefined) ?? DEFAULT_DATA_PATH, runs: v.runs as string | undefined, log: (l) => console.error(l) });
  const md = scaleMarkdown(result);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'scale.json'), JSON.stringify(result, null, 2) + '\n');
  writeFileSync(join(out, 'scale.md'), `# npm run bench -- scale${quick ? ' --quick' : ''}\n\n${md}\n`);
  console.log(md);
  console.log(`\nwritten: ${join(out, 'scale.md')}, ${join(out, 'scale.json')}`);
  return 0;
}
