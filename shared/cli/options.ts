// The command line of train / coordinator: one option table, one help text, typed parsing with "did you mean".
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BACKENDS, FLOAT_FIELDS, INT_FIELDS, PRESET_NAMES, SMI_RUN_NAMES, SPECTRAL_MODES, SYNCED_BLENDS, UPDATE_AT, WIRE_DTYPES, closest, oneOf, type BackendChoice, type NumericField, type PresetName, type SmiRunName, type SpectralMode, type SyncedBlend, type UpdateAt, type WireDtype } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { LAUNCHERS, type Launcher } from './rendezvous.ts';

/** The two commands that share the option table. */
export type TrainCommand = 'train' | 'coordinator';

interface OptionSpec {
  type: 'string' | 'boolean';
  arg?: string; // placeholder shown in help
  help: string;
  section: 'run' | 'model' | 'distributed' | 'output';
  /** the command that takes it, when only one does (the other refuses it) */
  only?: TrainCommand;
  /** the default it has under each command, where they differ (shown as [..] after the help) */
  defaults?: Record<TrainCommand, string>;
}

/** Every flag of `npm run train` / `npm run coordinator`. Numeric nanoGPT keys are added below. */
export const TRAIN_OPTIONS: Record<string, OptionSpec> = {
  local: { type: 'boolean', section: 'run', only: 'train', help: 'one process, no network: the reference path' },
  preset: { type: 'string', arg: 'paper|cpu|test', section: 'run', help: 'model and schedule preset [paper on a GPU, cpu otherwise]' },
  smi: { type: 'string', arg: 'RUN', section: 'run', help: `the paper's six runs and two controls: ${SMI_RUN_NAMES.join('|')} [cosine]` },
  backend: { type: 'string', arg: 'B', section: 'run', help: `${BACKENDS.join('|')} [auto]` },
  data: { type: 'string', arg: 'FILE', section: 'run', help: 'Tiny Shakespeare input.txt [data/shakespeare/input.txt]' },
  'stop-at': { type: 'string', arg: 'STEP', section: 'run', help: 'stop after this step with a checkpoint, as if interrupted (continue with --resume)' },
  out: { type: 'string', arg: 'DIR', section: 'output', help: 'run directory [runs/<time>]' },
  resume: { type: 'string', arg: 'DIR', section: 'output', help: "continue the run in DIR from its checkpoint (its config.json; --max-iters may extend it)" },
  'init-from': { type: 'string', arg: 'FILE', section: 'output', help: 'start from weights in nanoGPT safetensors format: a GPT(bias=False) with a tied head of this configuration, else exit 2 naming the tensors' },
  'init-from-drop-extra': { type: 'boolean', section: 'output', help: "with --init-from: drop the file's biases, untied head, extra layers and unknown tensors on purpose (listed in log.jsonl's start record)" },
  'log-batches': { type: 'boolean', section: 'output', help: "add each step's batch offsets to log.jsonl" },
  'checkpoint-interval': { type: 'string', arg: 'N', section: 'output', help: 'write checkpoint/ every N steps [eval interval]' },
  spectral: { type: 'string', arg: 'MODE', section: 'distributed', help: `${SPECTRAL_MODES.join('|')} [synced]` },
  'synced-blend': { type: 'string', arg: 'AT', section: 'distributed', help: 'synced mode: apply the shared mask once at the coordinator (one round trip) or on each worker (two, with mask checksums): coordinator|workers [coordinator]' },
  'wire-dtype': { type: 'string', arg: 'fp32|bf16', section: 'distributed', help: 'gradients on the wire: fp32 (exact) or bf16 (round to nearest even, half the bytes; weights stay fp32) [fp32]' },
  update: { type: 'string', arg: 'AT', section: 'distributed', help: "who runs clip → SMI → AdamW: owners (each worker that listens owns whole tensors; gradients and values go worker to worker: global mode, the baseline, synced with the mask applied once) or coordinator (the star: every byte through it) [owners]" },
  'commit-interval': { type: 'string', arg: 'K', section: 'distributed', help: "--update owners: gather the owners' weights and state every K steps; an owner's loss rolls back to it and replays ≤ K steps [50]" },
  workers: { type: 'string', arg: 'N', section: 'distributed', only: 'train', help: "local worker processes [one per GPU, else one per core]; under --launcher slurm|env task 0's own: 1 (it computes too) or 0 (it only coordinates) [1]" },
  launcher: { type: 'string', arg: 'L', section: 'distributed', only: 'train', help: `${LAUNCHERS.join('|')}: slurm (srun) and env (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) make task 0 the coordinator and the others workers; token from SMI_TOKEN (docs/cluster.md) [auto]` },
  'rendezvous-timeout': { type: 'string', arg: 'MS', section: 'distributed', only: 'train', help: 'slurm|env: how long a worker tries to reach the coordinator, and the coordinator waits for the world size [600000]' },
  gpus: { type: 'string', arg: '0,1,…', section: 'distributed', only: 'train', help: 'one worker per listed device, numbered as this process sees them (with CUDA_VISIBLE_DEVICES=2,3, 0 is GPU 2)' },
  'coordinator-gpu': { type: 'string', arg: 'I', section: 'distributed', only: 'train', help: "run the launcher's coordinator on this device (tensorflow-gpu), taken from the workers; under --launcher slurm|env only 0, task 0's own device, shared with its worker [none: on the CPU, GPUs hidden from it]" },
  'first-step-timeout': { type: 'string', arg: 'MS', section: 'distributed', help: "a worker's first result may take this long (GPU kernels compile on first use) [1800000]" },
  host: { type: 'string', arg: 'H', section: 'distributed', help: 'coordinator listen address', defaults: { train: '127.0.0.1: its workers are local; 0.0.0.0 under --launcher slurm|env', coordinator: '0.0.0.0: every interface' } },
  port: { type: 'string', arg: 'P', section: 'distributed', help: 'coordinator port', defaults: { train: '0: any free port; --launcher slurm|env: MASTER_PORT, else from SLURM_JOB_ID', coordinator: '0: any free port' } },
  token: { type: 'string', arg: 'T', section: 'distributed', help: 'shared secret workers must present', defaults: { train: 'a new one; --launcher slurm|env: SMI_TOKEN', coordinator: 'a new one, printed' } },
  'tls-cert': { type: 'string', arg: 'FILE', section: 'distributed', only: 'coordinator', help: 'serve wss:// and https:// with this PEM certificate (chain); needs --tls-key' },
  'tls-key': { type: 'string', arg: 'FILE', section: 'distributed', only: 'coordinator', help: "the certificate's PEM private key" },
  'min-workers': { type: 'string', arg: 'N', section: 'distributed', help: 'workers to wait for before step 1', defaults: { train: 'the workers it starts', coordinator: '1' } },
  'step-timeout': { type: 'string', arg: 'MS', section: 'distributed', help: "a worker's share is reassigned after this [60000]" },
  trace: { type: 'string', arg: 'FILE', section: 'output', help: 'write a Chrome trace-event file (Perfetto, chrome://tracing): a track per process, a span per phase' },
  timing: { type: 'string', arg: 'on|off', section: 'output', help: 'per-phase timing in log.jsonl [on]' },
  help: { type: 'boolean', section: 'run', help: 'this text' },
};

const kebab = (k: string) => k.replaceAll('_', '-');
for (const k of [...INT_FIELDS, ...FLOAT_FIELDS]) {
  TRAIN_OPTIONS[kebab(k)] = { type: 'string', arg: 'X', section: 'model', help: `override the preset's ${k}` };
}

export interface TrainArgs {
  local: boolean;
  preset?: PresetName;
  smi?: SmiRunName;
  spectral?: SpectralMode;
  syncedBlend?: SyncedBlend;
  wireDtype?: WireDtype;
  update?: UpdateAt;
  commitInterval?: number;
  backend?: BackendChoice;
  overrides: Partial<Record<NumericField, number>>;
  data?: string;
  out?: string;
  resume?: string;
  initFrom?: string;
  initFromDropExtra: boolean;
  logBatches: boolean;
  stopAt?: number;
  checkpointInterval?: number;
  workers?: number;
  gpus?: number[];
  coordinatorGpu?: number;
  launcher?: Launcher;
  rendezvousTimeout?: number;
  firstStepTimeout?: number;
  host?: string;
  port?: number;
  token?: string;
  tlsCert?: string;
  tlsKey?: string;
  minWorkers?: number;
  stepTimeout?: number;
  trace?: string;
  timing: boolean;
  help: boolean;
}

function num(flag: string, v: string | undefined, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new ConfigError('E_BAD_FLAG', `--${flag} takes ${integer ? 'an integer' : 'a number'}, got '${v}'`);
  }
  return n;
}

/** --wire-dtype's value: a bad one is a bad flag (exit 2), naming the closest valid one. */
function wireDtype(v: string): WireDtype {
  if ((WIRE_DTYPES as readonly string[]).includes(v)) return v as WireDtype;
  throw new ConfigError('E_BAD_FLAG', `--wire-dtype takes ${WIRE_DTYPES.join(' or ')}, got '${v}': did you mean '${closest(v, WIRE_DTYPES)}'?`);
}

/** parseArgs over an option table; an unknown flag is a ConfigError naming the closest valid one. */
export function parseWithTable(argv: string[], table: Record<string, OptionSpec>): Record<string, string | boolean | undefined> {
  const options: ParseArgsConfig['options'] = {};
  for (const [name, spec] of Object.entries(table)) options[name] = { type: spec.type };
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    const err = e as Error & { code?: string };
    const m = /option '(-{1,2}[^' ]+)/i.exec(err.message);
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && m) {
      const flag = m[1]!.replace(/^-+/, '');
      throw new ConfigError('E_BAD_FLAG', `unknown flag --${flag}: did you mean --${closest(flag, Object.keys(table))}?`);
    }
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new ConfigError('E_BAD_FLAG', `${err.message} (flags only; see --help)`);
    throw new ConfigError('E_BAD_FLAG', err.message);
  }
}

/** Parses train/coordinator flags into typed arguments; values are checked here, the config in resolveConfig. */
export function parseTrainArgs(argv: string[]): TrainArgs {
  const v = parseWithTable(argv, TRAIN_OPTIONS);
  const s = (k: string) => v[k] as string | undefined;
  const overrides: Partial<Record<NumericField, number>> = {};
  for (const k of INT_FIELDS) {
    const n = num(kebab(k), s(kebab(k)), true);
    if (n !== undefined) overrides[k] = n;
  }
  for (const k of FLOAT_FIELDS) {
    const n = num(kebab(k), s(kebab(k)), false);
    if (n !== undefined) overrides[k] = n;
  }
  const gpus = s('gpus')?.split(',').map((g) => num('gpus', g.trim(), true)!);
  const commitInterval = num('commit-interval', s('commit-interval'), true);
  if (commitInterval !== undefined && commitInterval < 1) throw new ConfigError('E_BAD_FLAG', `--commit-interval takes a positive number of steps, got ${commitInterval}`);
  if (v['init-from-drop-extra'] === true && s('init-from') === undefined) throw new ConfigError('E_BAD_FLAG', '--init-from-drop-extra goes with --init-from FILE');
  return {
    local: v.local === true,
    preset: s('preset') === undefined ? undefined : oneOf('preset', s('preset')!, PRESET_NAMES),
    smi: s('smi') === undefined ? undefined : oneOf('SMI run', s('smi')!, SMI_RUN_NAMES),
    spectral: s('spectral') === undefined ? undefined : oneOf('spectral mode', s('spectral')!, SPECTRAL_MODES),
    syncedBlend: s('synced-blend') === undefined ? undefined : oneOf('--synced-blend value', s('synced-blend')!, SYNCED_BLENDS),
    wireDtype: s('wire-dtype') === undefined ? undefined : wireDtype(s('wire-dtype')!),
    update: s('update') === undefined ? undefined : oneOf('--update value', s('update')!, UPDATE_AT),
    commitInterval,
    backend: s('backend') === undefined ? undefined : oneOf('backend', s('backend')!, BACKENDS),
    overrides,
    data: s('data'),
    out: s('out'),
    resume: s('resume'),
    initFrom: s('init-from'),
    initFromDropExtra: v['init-from-drop-extra'] === true,
    logBatches: v['log-batches'] === true,
    stopAt: num('stop-at', s('stop-at'), true),
    checkpointInterval: num('checkpoint-interval', s('checkpoint-interval'), true),
    workers: num('workers', s('workers'), true),
    gpus,
    coordinatorGpu: num('coordinator-gpu', s('coordinator-gpu'), true),
    launcher: s('launcher') === undefined ? undefined : oneOf('launcher', s('launcher')!, LAUNCHERS),
    rendezvousTimeout: num('rendezvous-timeout', s('rendezvous-timeout'), true),
    firstStepTimeout: num('first-step-timeout', s('first-step-timeout'), true),
    host: s('host'),
    port: num('port', s('port'), true),
    token: s('token'),
    tlsCert: s('tls-cert'),
    tlsKey: s('tls-key'),
    minWorkers: num('min-workers', s('min-workers'), true),
    stepTimeout: num('step-timeout', s('step-timeout'), true),
    trace: s('trace'),
    timing: s('timing') === undefined ? true : oneOf('--timing value', s('timing')!, ['on', 'off'] as const) === 'on',
    help: v.help === true,
  };
}

/** One help text per command: usage, sections with each option's default under that command, examples, exit codes. */
export function trainHelp(which: TrainCommand = 'train'): string {
  const command = `npm run ${which} --`;
  const sections: [OptionSpec['section'], string][] = [
    ['run', 'Run'], ['model', 'Preset overrides (nanoGPT config keys)'], ['output', 'Output'], ['distributed', 'Distributed'],
  ];
  const lines = [
    `Usage: ${command} [options]`,
    '',
    'Trains a nanoGPT character model on Tiny Shakespeare with Spectral Momentum Integration (SMI).',
  ];
  for (const [sec, title] of sections) {
    lines.push('', `${title}:`);
    for (const [name, spec] of Object.entries(TRAIN_OPTIONS)) {
      if (spec.section !== sec || (spec.only && spec.only !== which)) continue;
      const flag = `--${name}${spec.arg ? ' ' + spec.arg : ''}`;
      lines.push(`  ${flag.padEnd(30)} ${spec.help}${spec.defaults ? ` [${spec.defaults[which]}]` : ''}`);
    }
  }
  const examples = which === 'train'
    ? [
      `  ${command} --local --preset cpu --smi cosine       one process, the cpu preset, the paper's best run`,
      `  ${command} --local --preset test --max-iters 40    a few seconds' smoke run`,
      `  ${command} --workers 2 --spectral global           a coordinator and 2 local workers`,
      `  ${command} --local --resume runs/2026-01-01T00-00  continue an interrupted run`,
    ]
    : [
      `  ${command} --preset cpu --port 8765 --token s3cret      workers on any host: npm run worker -- --connect ws://HOST:8765 --token s3cret`,
      `  ${command} --resume runs/2026-01-01T00-00 --port 8765 --token s3cret  continue; the workers reconnect by themselves`,
    ];
  lines.push(
    '',
    'Examples:',
    ...examples,
    '',
    'Exit codes: 0 done, 1 the run failed, 2 bad arguments, configuration or data.',
  );
  return lines.join('\n');
}
