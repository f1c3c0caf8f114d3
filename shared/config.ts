// The one training configuration: every field with its default and reason, the presets, and flag resolution.
import { ConfigError } from './errors.ts';

/**
 * Names of the paper's six runs (docs/algorithm.md) and of two controls that keep SMI's history and threshold
 * but replace its filtered gradient (shared/smi/smi.ts SMI_RUNS). Kept here so config has no tensor dependency.
 */
export const SMI_RUN_NAMES = ['baseline', 'linear-0.9', 'linear-0.5', 'ema-0.99', 'top75', 'cosine', 'random-mask', 'shrink'] as const;
export type SmiRunName = (typeof SMI_RUN_NAMES)[number];
/** The paper's six runs: those with the paper's numbers beside them in the reproduction report. */
export const PAPER_RUN_NAMES = ['baseline', 'linear-0.9', 'linear-0.5', 'ema-0.99', 'top75', 'cosine'] as const satisfies readonly SmiRunName[];
export type PaperRunName = (typeof PAPER_RUN_NAMES)[number];
/** The controls: G′ from a random mask of the same size, or the gradient shrunk by the energy the mask keeps. */
export const CONTROL_RUN_NAMES = ['random-mask', 'shrink'] as const satisfies readonly SmiRunName[];

export const SPECTRAL_MODES = ['synced', 'global', 'local'] as const;
export type SpectralMode = (typeof SPECTRAL_MODES)[number];
/**
 * Synced mode: where the shared mask is applied (shared/parallel/spectral.ts). 'coordinator': once, to the mean gradient,
 * in the step's one round trip; 'workers': each worker blends its own spectrum and reports the checksum of the
 * masks it applied (a second round trip). The same update up to float rounding.
 */
export const SYNCED_BLENDS = ['coordinator', 'workers'] as const;
export type SyncedBlend = (typeof SYNCED_BLENDS)[number];
/** Who applies the update: the workers that own the tensors (global mode and the baseline), or the coordinator (the star: every mode). */
export const UPDATE_AT = ['owners', 'coordinator'] as const;
export type UpdateAt = (typeof UPDATE_AT)[number];

/**
 * Precision of gradients on the wire (shared/net/dtype.ts): fp32, exact (the equivalences with --local hold), or
 * bf16, rounded to nearest even (half the bytes; weights always go as fp32, so every replica stays identical).
 */
export const WIRE_DTYPES = ['fp32', 'bf16'] as const;
export type WireDtype = (typeof WIRE_DTYPES)[number];

export const BACKENDS = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

export const PRESET_NAMES = ['paper', 'cpu', 'test'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** The fully resolved configuration of a run; written to config.json. Keys follow nanoGPT's config names. */
export interface TrainConfig {
  preset: PresetName;
  n_layer: number; // transformer blocks
  n_head: number; // attention heads per block
  n_embd: number; // model width C
  block_size: number; // context length T
  batch_size: number; // global batch B (sequences per step)
  dropout: number; // on embeddings, attention probabilities and residual outputs
  max_iters: number; // optimizer steps N
  learning_rate: number; // peak lr after warmup
  min_lr: number; // floor of the cosine decay
  warmup_iters: number; // linear warmup length
  lr_decay_iters: number; // cosine reaches min_lr here (defaults to max_iters, as nanoGPT's shakespeare_char)
  weight_decay: number; // decoupled decay on tensors with >= 2 dims
  beta1: number;
  beta2: number;
  grad_clip: number; // global-norm clip threshold; 0 disables
  eval_interval: number; // evaluate every this many steps (and before step 1 and after the last)
  eval_iters: number; // batches per split per evaluation
  log_interval: number; // a progress line every this many steps
  seed: number; // drives init, batch sampling, eval batches and dropout
  smi: SmiRunName; // which of the paper's runs
  spectral: SpectralMode; // distributed spectral mode (docs/distributed.md)
  backend: BackendChoice;
  wire_dtype: WireDtype; // gradients on the wire: fp32 (exact) or bf16
  vocab_size: number; // filled in from the data
}

type PresetFields = Omit<TrainConfig, 'preset' | 'smi' | 'spectral' | 'backend' | 'wire_dtype' | 'vocab_size' | 'seed' | 'lr_decay_iters'>;

const COMMON = { weight_decay: 0.1, beta1: 0.9, beta2: 0.99, grad_clip: 1.0, log_interval: 10 };

/** The three presets of docs/algorithm.md; flags override any field. */
export const PRESETS: Record<PresetName, PresetFields> = {
  paper: {
    ...COMMON, n_layer: 6, n_head: 6, n_embd: 384, block_size: 256, batch_size: 64, dropout: 0.2,
    max_iters: 5000, learning_rate: 1e-3, min_lr: 1e-4, warmup_iters: 100, eval_interval: 250, eval_iters: 200,
  },
  cpu: {
    ...COMMON, n_layer: 4, n_head: 4, n_embd: 128, block_size: 64, batch_size: 12, dropout: 0.0,
    max_iters: 2000, learning_rate: 1e-3, min_lr: 1e-4, warmup_iters: 100, eval_interval: 250, eval_iters: 20,
  },
  test: {
    ...COMMON, n_layer: 2, n_head: 2, n_embd: 32, block_size: 16, batch_size: 8, dropout: 0.0,
    max_iters: 100, learning_rate: 3e-3, min_lr: 3e-4, warmup_iters: 5, eval_interval: 50, eval_iters: 5,
  },
};

/** Numeric fields a flag may override, by nanoGPT key. Integers are checked as such. */
export const INT_FIELDS = [
  'n_layer', 'n_head', 'n_embd', 'block_size', 'batch_size', 'max_iters', 'warmup_iters', 'lr_decay_iters',
  'eval_interval', 'eval_iters', 'log_interval', 'seed',
] as const;
export const FLOAT_FIELDS = ['dropout', 'learning_rate', 'min_lr', 'weight_decay', 'beta1', 'beta2', 'grad_clip'] as const;
export type NumericField = (typeof INT_FIELDS)[number] | (typeof FLOAT_FIELDS)[number];


/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
    }
  }
  return d[a.length]![b.length]!;
}

/** The valid name closest to `name`. */
export function closest(name: string, valid: readonly string[]): string {
  let best = valid[0]!;
  for (const v of valid) if (editDistance(name, v) < editDistance(name, best)) best = v;
  return best;
}

/** Checks `value` is one of `valid`, else a ConfigError naming the closest valid one. */
export function oneOf<T extends string>(what: string, value: string, valid: readonly T[]): T {
  if ((valid as readonly string[]).includes(value)) return value as T;
  throw new ConfigError('E_BAD_VALUE', `unknown ${what} '${value}': did you mean '${closest(value, valid)}'? (valid: ${valid.join(', ')})`);
}

export interface ResolveInput {
  preset: PresetName;
  smi?: SmiRunName;
  spectral?: SpectralMode;
  backend?: BackendChoice;
  wireDtype?: WireDtype;
  overrides?: Partial<Record<NumericField, number>>;
}

/** Builds the resolved config: preset, then overrides, then derived fields; validates the result. */
export function resolveConfig(input: ResolveInput, vocabSize = 65): TrainConfig {
  const base = PRESETS[input.preset];
  const cfg: TrainConfig = {
    preset: input.preset,
    ...base,
    lr_decay_iters: -1,
    seed: 1337,
    smi: input.smi ?? 'cosine',
    spectral: input.spectral ?? 'synced',
    backend: input.backend ?? 'auto',
    wire_dtype: input.wireDtype ?? 'fp32',
    vocab_size: vocabSize,
  };
  for (const [k, v] of Object.entries(input.overrides ?? {})) {
    if (v !== undefined) (cfg as unknown as Record<string, number>)[k] = v;
  }
  if (input.overrides?.lr_decay_iters === undefined) cfg.lr_decay_iters = cfg.max_iters;
  validateConfig(cfg);
  return cfg;
}

/** Throws a ConfigError for a configuration that cannot train. */
export function validateConfig(cfg: TrainConfig): void {
  const bad = (msg: string) => { throw new ConfigError('E_BAD_CONFIG', msg); };
  for (const k of INT_FIELDS) {
    const v = cfg[k];
    if (!Number.isInteger(v)) bad(`--${k.replaceAll('_', '-')} must be an integer, got ${v}`);
  }
  for (const k of FLOAT_FIELDS) if (!Number.isFinite(cfg[k])) bad(`--${k.replaceAll('_', '-')} must be a number`);
  for (const k of ['n_layer', 'n_head', 'n_embd', 'block_size', 'batch_size', 'max_iters', 'eval_iters', 'log_interval', 'eval_interval'] as const) {
    if (cfg[k] < 1) bad(`--${k.replaceAll('_', '-')} must be >= 1, got ${cfg[k]}`);
  }
  if (cfg.n_embd % cfg.n_head !== 0) bad(`--n-embd (${cfg.n_embd}) must be divisible by --n-head (${cfg.n_head})`);
  if (cfg.dropout < 0 || cfg.dropout >= 1) bad(`--dropout must be in [0, 1), got ${cfg.dropout}`);
  if (cfg.learning_rate <= 0 || cfg.min_lr < 0) bad('--learning-rate must be > 0 and --min-lr >= 0');
  if (cfg.warmup_iters < 0) bad('--warmup-iters must be >= 0');
  if (cfg.lr_decay_iters <= cfg.warmup_iters && cfg.max_iters > cfg.warmup_iters) {
    bad(`--lr-decay-iters (${cfg.lr_decay_iters}) must exceed --warmup-iters (${cfg.warmup_iters})`);
  }
  if (cfg.beta1 < 0 || cfg.beta1 >= 1 || cfg.beta2 < 0 || cfg.beta2 >= 1) bad('--beta1 and --beta2 must be in [0, 1)');
  if (cfg.grad_clip < 0 || cfg.weight_decay < 0) bad('--grad-clip and --weight-decay must be >= 0');
  if (!(WIRE_DTYPES as readonly string[]).includes(cfg.wire_dtype)) bad(`wire_dtype must be one of ${WIRE_DTYPES.join(', ')}, got ${String(cfg.wire_dtype)}`);
}

/**
 * Throws a ConfigError for a distributed run the trainer cannot make: a control in synced mode, whose shared
 * mask is applied by shared/parallel/spectral.ts (at the coordinator, or on each worker), which has no control variant.
 * Global mode runs the controls through the same SpectralMomentum as --local, local mode on each worker.
 */
export function checkDistributedConfig(cfg: Pick<TrainConfig, 'smi' | 'spectral'>): void {
  if (cfg.spectral === 'synced' && (CONTROL_RUN_NAMES as readonly string[]).includes(cfg.smi)) {
    throw new ConfigError('E_BAD_CONFIG', `--smi ${cfg.smi} is a control run, not supported in synced mode: use --local, or --spectral global (the same filter as --local) or local`);
  }
}

/**
 * Sequences per forward/backward pass: the whole batch, except on wasm, whose heap is capped at 4 GiB, where
 * more than 4096 tokens of a wide model are cut into micro-batches and their gradients accumulated.
 */
export function microBatchFor(cfg: Pick<TrainConfig, 'batch_size' | 'block_size' | 'n_embd'>, backend: string): number {
  if (backend !== 'wasm' || cfg.batch_size * cfg.block_size <= 4096 || cfg.n_embd < 256) return cfg.batch_size;
  return Math.max(1, Math.floor(1024 / cfg.block_size));
}

/** nanoGPT's get_lr(it): linear warmup, cosine decay to min_lr, then min_lr. Step k uses lrAt(cfg, k - 1). */
export function lrAt(cfg: Pick<TrainConfig, 'learning_rate' | 'min_lr' | 'warmup_iters' | 'lr_decay_iters'>, it: number): number {
  if (it < cfg.warmup_iters) return (cfg.learning_rate * (it + 1)) / (cfg.warmup_iters + 1);
  if (it > cfg.lr_decay_iters) return cfg.min_lr;
  const ratio = (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters);
  const coeff = 0.5 * (1 + Math.cos(Math.PI * ratio));
  return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr);
}
