// The coordinator–worker message set: one interface per kind, one union, and the guard every decoded frame passes.
//
// One file of ~680 lines: every message kind (the star's and the owners' step, the links between workers) with its
// check in the one guard, so that a field added to a message and its check are read and changed side by side.
import { BACKENDS, PRESET_NAMES, SMI_RUN_NAMES, SPECTRAL_MODES, WIRE_DTYPES, type TrainConfig, validateConfig } from '../config.ts';
import { ConfigError, type ErrorCode, isErrorCode, protocolError } from '../errors.ts';

/** Bumped on any change to a message's fields or meaning; sent in `hello`, checked by the coordinator. */
export const PROTOCOL_VERSION = 6; // 3: hello.listen; the owners' step (load, loaded, task, computed, link, share, reduced, commit, values, done, gather, state). 4: share.dtype (bf16), done.links and done.spans, loaded.unreachable; evaluation on the workers (evaluate, evaluated). 5: share without magnitudes (a synced owner computes |FFT2(g_c)| from the share's gradient), done.cpuMs. 6: values in parts (values.first, values.more), each sent as the owner updates the next

/** worker → coordinator, first message on a connection. */
export interface Hello {
  type: 'hello';
  protocol: number; // PROTOCOL_VERSION of the worker
  token: string | null; // the shared --token, null when the worker has none
  workerId: string | null; // null on first connect; the id from `welcome` on reconnect (WORKER_ID)
  backend: string; // the tfjs backend the worker runs on
  device: string; // e.g. a GPU name, or 'cpu'
  memoryBytes: number; // memory the worker may use for the model
  host: string;
  pid: number;
  listen: string | null; // ws:// or wss:// URL of this worker's exchange server (it can own tensors); null: compute-only
}

/** coordinator → worker, the answer to an accepted hello. */
export interface Welcome {
  type: 'welcome';
  workerId: string; // a nanoid, kept across reconnects
  config: TrainConfig;
  step: number; // optimizer updates done so far
}

/** coordinator → worker: the parameters after `step` updates, in parameter order. */
export interface Weights {
  type: 'weights';
  step: number;
  tensors: Float32Array[];
}

/** coordinator → worker: compute gradients of these windows. */
export interface Work {
  type: 'work';
  step: number;
  round: number; // how many times this step has been started again from the beginning (a holder of its state left)
  attempt: number; // this request's id, unique in the run: the answer names it
  offsets: number[]; // global batch start indices of this worker's share
  tokens: Uint8Array; // offsets.length × (block_size + 1) token ids: the windows themselves
  magnitudes: boolean; // return magnitude spectra too
}

/** worker → coordinator: the gradients of one `work`. */
export interface Grads {
  type: 'grads';
  step: number;
  round: number;
  attempt: number; // the work's
  sequences: number; // how many windows the gradient averages over
  loss: number; // mean loss over those windows
  tensors: Float32Array[]; // one gradient per parameter, parameter order
  magnitudes?: Float32Array[]; // magnitude spectra, when `work.magnitudes`
  phases: Record<string, number>; // ms per phase (compute, spectral, encode, …)
}

/** coordinator → worker: blend your gradients with this clip coefficient, α and mask. */
export interface Blend {
  type: 'blend';
  step: number;
  round: number; // a worker keeping its own history (local mode) starts a higher round from the history before the step
  attempt: number;
  source: number; // the `work` attempt whose gradient (and spectra) the worker kept and should blend
  clip: number; // global-norm clip coefficient to apply first
  alpha: number; // SMI blend factor
  masks?: Uint8Array[]; // per-parameter bitsets, parameter order
  maskChecksum?: number; // uint32 over the masks, echoed back in `blended`
}

/** worker → coordinator: the blended gradients. */
export interface Blended {
  type: 'blended';
  step: number;
  round: number;
  attempt: number; // the blend's
  tensors: Float32Array[];
  maskChecksum: number; // checksum of the masks the worker applied
  phases: Record<string, number>;
}

/** Either side, just before closing with ERROR_CODES[code].close. */
export interface ErrorMsg {
  type: 'error';
  code: ErrorCode;
  message: string;
}

/** Either side, before a normal close. */
export interface Bye {
  type: 'bye';
  reason: string;
}

// ---- The owners' step (--update owners): the coordinator sends control, the data goes worker to owner and back.

/** An owner and the tensors it holds (indices in parameter order, ascending), with the URL its exchange listens on. */
export interface PlanOwner {
  workerId: string;
  url: string;
  tensors: number[];
}

/** An owner's state for its tensors (its order): AdamW's step and moments, SMI's histories (empty for the baseline or step 0). */
export interface OwnedState {
  adamStep: number;
  m: Float32Array[]; // empty before AdamW's first step
  v: Float32Array[];
  smi: { name: string; shape: number[]; data: Float32Array }[];
}

/** coordinator → worker: the plan, the weights after `step` updates, and (to an owner) its tensors' state. Resets any step in progress. */
export interface Load {
  type: 'load';
  planVersion: number;
  step: number;
  members: string[]; // every worker of the plan, owners and compute-only: each gets every owner's values
  owners: PlanOwner[];
  weights: Float32Array[]; // all tensors, parameter order
  state?: OwnedState; // to an owner: its tensors' state
}

/** worker → coordinator: the load is applied and links to every other owner are open. */
export interface Loaded {
  type: 'loaded';
  planVersion: number;
  unreachable?: string[]; // owners this worker could not open a link to (the coordinator judges whose fault it is)
}

/** A chunk of the step's batch that this worker computes. */
export interface TaskChunk {
  index: number;
  offsets: number[];
  tokens: Uint8Array; // offsets.length × (block_size + 1) token ids
}

/** coordinator → worker: step `step`, round `round`: the whole chunk table (owners reduce it) and the chunks this worker computes. */
export interface Task {
  type: 'task';
  step: number;
  round: number;
  planVersion: number;
  sequences: number[]; // per chunk index, its sequences (the reduce's weights n_c / B)
  holders: string[]; // per chunk index, the worker computing it (an owner accepts a chunk's share from it only)
  mine: TaskChunk[];
}

/** worker → coordinator: one chunk computed and its shares sent to the owners. */
export interface Computed {
  type: 'computed';
  step: number;
  round: number;
  chunk: number;
  sequences: number;
  loss: number;
  phases: Record<string, number>;
}

/** worker → owner, the first message on a data connection. */
export interface Link {
  type: 'link';
  protocol: number;
  token: string | null;
  workerId: string;
}

/** worker → owner: a chunk's gradient of the owner's tensors (in the owner's order). */
export interface Share {
  type: 'share';
  step: number;
  round: number;
  chunk: number;
  tensors: Float32Array[] | Uint16Array[]; // fp32, or with `dtype: 'bf16'` bf16 bit patterns (shared/net/dtype.ts)
  blended?: boolean; // local mode's second round: the holder's own clip → SMI of its chunk, b_c, not g_c
  dtype?: 'bf16'; // --wire-dtype bf16: every array above is bf16; absent: fp32
}

/** coordinator → a chunk's holder (local mode's second round): filter your chunks with κ and α and send the owners b_c. */
export interface Clip {
  type: 'clip';
  step: number;
  round: number;
  clip: number;
  alpha: number;
}

/** owner → coordinator: every chunk's share is in and reduced; the sums of squares for the global norm and the outlier rule. */
export interface Reduced {
  type: 'reduced';
  step: number;
  round: number;
  ss: number[]; // per owned tensor (the owner's order), Σ ḡ² in float32 as tf.sum(tf.square(ḡ)) gives it
  chunkSS: number[]; // per chunk index, Σ g_c² over the owned tensors in float64
  phases: Record<string, number>;
}

/** owner → coordinator: a chunk's share failed its checks (the owner closed that link with the code); its holder is to blame. */
export interface Rejected {
  type: 'rejected';
  step: number;
  round: number;
  chunk: number;
  code: ErrorCode;
  message: string;
}

/** coordinator → owner: apply the step with clip coefficient κ, the learning rate and α. */
export interface Commit {
  type: 'commit';
  step: number;
  round: number;
  clip: number;
  lr: number;
  alpha: number;
  masks?: boolean; // synced, --synced-blend workers: send the holders the masks, then AdamW on the mean of their blends
}

/** owner → a chunk's holder (synced, --synced-blend workers): the owner's tensors' shared masks, to blend its own spectrum with. */
export interface Masks {
  type: 'masks';
  step: number;
  round: number;
  clip: number;
  alpha: number;
  masks: Uint8Array[]; // per owned tensor, the bitset [H ≥ τ] (bit j of byte b is element 8b + j)
  checksums: number[]; // per owned tensor, its mask's checksum
}

/**
 * owner → worker: the owner's tensors after the step (the owner's order), whole or in parts as the owner updates
 * them (protocol 6): a part carries a run of them from index `first` (absent: 0) on, with `more` set while further
 * parts follow; the parts come in order on one link, and the last ends at the owner's last tensor. Without either
 * field the message is whole. A worker checks and takes in each part as it comes.
 */
export interface Values {
  type: 'values';
  step: number;
  round: number;
  first?: number;
  more?: boolean;
  tensors: Float32Array[];
}

/** Bytes on a worker's exchange links in one step: toward the owners (shares, blends) and back from them (values, masks). */
export interface LinkBytes {
  sharesSent: number; // its shares and blends, to the owners
  sharesReceived: number; // the others' shares and blends, to it as an owner
  valuesSent: number; // its values and masks, as an owner, to the others
  valuesReceived: number; // the owners' values and masks
}

/** One phase of a worker's step: `start` ms after the task arrived (the worker's clock), `dur` ms. */
export interface Span {
  name: string;
  start: number;
  dur: number;
}

/** worker → coordinator: every owner's values are in the replica; the step's phases and bytes. */
export interface Done {
  type: 'done';
  step: number;
  round: number;
  phases: Record<string, number>;
  bytesSent: number; // on every connection of this worker, this step
  bytesReceived: number;
  links?: LinkBytes; // the part of those bytes on the exchange's links, by direction of the data
  spans?: Span[]; // the step's phases on this worker's clock, from the task's arrival
  elapsed?: number; // ms from the task's arrival to this message (the coordinator's clock offset is estimated from it)
  cpuMs?: number; // this worker process's CPU time (user + system, all threads) since its previous step's done
  maskChecksums?: number[]; // synced, an owner: each owned tensor's mask checksum (its order)
  appliedChecksums?: number[]; // --synced-blend workers, a holder: per chunk it blended, combineChecksums of the masks it applied
}

/** coordinator → owner: send your tensors' weights and state (a commit, a checkpoint, the final model, an evaluation). */
export interface Gather {
  type: 'gather';
  step: number;
}

/** One evaluation batch: split and index i of nanoGPT's estimate_loss at this step, its batch_size × (block_size + 1) token windows. */
export interface EvalBatch {
  split: 'train' | 'val';
  iter: number;
  tokens: Uint8Array;
}

/** coordinator → worker, between steps: the mean loss of each of these batches on this worker's replica (the weights after `step`). */
export interface Evaluate {
  type: 'evaluate';
  step: number;
  attempt: number; // unique per request in the run: an answer to an earlier one (a member was lost meanwhile) is stale
  batches: EvalBatch[];
}

/** worker → coordinator: the answer to `evaluate`, one loss per batch in its order (NaN where the model's is). */
export interface Evaluated {
  type: 'evaluated';
  step: number;
  attempt: number; // the request's
  losses: number[];
}

/** owner → coordinator: the answer to `gather`. */
export interface State {
  type: 'state';
  step: number;
  tensors: number[]; // the owned tensors' indices
  weights: Float32Array[];
  state: OwnedState;
}

export type Message = Hello | Welcome | Weights | Work | Grads | Blend | Blended | ErrorMsg | Bye
  | Load | Loaded | Task | Computed | Link | Share | Reduced | Rejected | Clip | Commit | Masks | Values | Done | Gather | State
  | Evaluate | Evaluated;
export type MessageType = Message['type'];
export const MESSAGE_TYPES = [
  'hello', 'welcome', 'weights', 'work', 'grads', 'blend', 'blended', 'error', 'bye',
  'load', 'loaded', 'task', 'computed', 'link', 'share', 'reduced', 'rejected', 'clip', 'commit', 'masks', 'values', 'done', 'gather', 'state',
  'evaluate', 'evaluated',
] as const satisfies readonly MessageType[];

// ---------------------------------------------------------------------------------------------------------------
// The guard. Each checker throws E_MALFORMED naming `kind.field`.

type Obj = Record<string, unknown>;

const bad = (where: string, what: string): never => {
  throw protocolError('E_MALFORMED', `${where}: ${what}`);
};

const describe = (v: unknown): string => {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  return typeof v;
};

function isPlainObject(v: unknown): v is Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Checks the object has exactly `required` keys plus any of `optional` (an undefined optional counts as absent). */
function fields(o: Obj, kind: string, required: readonly string[], optional: readonly string[] = []): void {
  for (const k of required) if (!Object.hasOwn(o, k)) bad(`${kind}.${k}`, 'missing');
  for (const k of Object.keys(o)) {
    if (!required.includes(k) && !optional.includes(k)) bad(`${kind}.${k}`, 'unknown field');
  }
}

const str = (o: Obj, kind: string, k: string): string =>
  typeof o[k] === 'string' ? (o[k] as string) : bad(`${kind}.${k}`, `expected a string, got ${describe(o[k])}`);

const num = (o: Obj, kind: string, k: string): number =>
  typeof o[k] === 'number' ? (o[k] as number) : bad(`${kind}.${k}`, `expected a number, got ${describe(o[k])}`);

const finite = (o: Obj, kind: string, k: string): number =>
  Number.isFinite(num(o, kind, k)) ? (o[k] as number) : bad(`${kind}.${k}`, `expected a finite number, got ${o[k]}`);

/** A non-negative safe integer. */
const count = (o: Obj, kind: string, k: string): number => {
  const v = num(o, kind, k);
  return Number.isSafeInteger(v) && v >= 0 ? v : bad(`${kind}.${k}`, `expected a non-negative integer, got ${v}`);
};

const uint32 = (o: Obj, kind: string, k: string): number => {
  const v = count(o, kind, k);
  return v <= 0xffffffff ? v : bad(`${kind}.${k}`, `expected a uint32, got ${v}`);
};

/** Worker ids: nanoid's alphabet (A–Z a–z 0–9 _ -), 1–64 characters. */
export const WORKER_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Backends a worker can run on: BACKENDS less 'auto' (a choice, not a backend), and a browser worker's WebGPU. */
export const WORKER_BACKENDS = [...BACKENDS.filter((b) => b !== 'auto'), 'webgpu'];
/** Largest memoryBytes a hello may claim (1 PiB) and largest pid (a uint32). */
const MAX_MEMORY_BYTES = 2 ** 50;
const MAX_PID = 0xffffffff;
/** Longest hello token; other hello strings (device, host) are 1–256 printable characters. */
export const MAX_TOKEN_LENGTH = 1024;
/** The most spans a `done` may carry (a step has a few phases per chunk). */
export const MAX_SPANS = 256;
const PRINTABLE = /^[^\p{Cc}]{1,256}$/u;

const workerId = (o: Obj, kind: string, k: string): string => {
  const v = str(o, kind, k);
  return WORKER_ID.test(v) ? v : bad(`${kind}.${k}`, `expected 1–64 characters of A–Z a–z 0–9 _ -, got ${JSON.stringify(v.slice(0, 80))}`);
};

const label = (o: Obj, kind: string, k: string): string => {
  const v = str(o, kind, k);
  return PRINTABLE.test(v) ? v : bad(`${kind}.${k}`, `expected 1–256 printable characters, got ${JSON.stringify(v.slice(0, 80))}`);
};

/** An integer in [lo, hi]. */
const intIn = (o: Obj, kind: string, k: string, lo: number, hi: number): number => {
  const v = num(o, kind, k);
  return Number.isSafeInteger(v) && v >= lo && v <= hi ? v : bad(`${kind}.${k}`, `expected an integer in [${lo}, ${hi}], got ${v}`);
};

const bool = (o: Obj, kind: string, k: string): boolean =>
  typeof o[k] === 'boolean' ? (o[k] as boolean) : bad(`${kind}.${k}`, `expected a boolean, got ${describe(o[k])}`);

function arrayOf<T>(o: Obj, kind: string, k: string, Ctor: abstract new (...a: never[]) => T, name: string): T[] {
  const v = o[k];
  if (!Array.isArray(v)) return bad(`${kind}.${k}`, `expected an array of ${name}, got ${describe(v)}`);
  for (let i = 0; i < v.length; i++) {
    if (!(v[i] instanceof Ctor)) bad(`${kind}.${k}[${i}]`, `expected a ${name}, got ${describe(v[i])}`);
  }
  return v as T[];
}

const f32s = (o: Obj, kind: string, k: string) => arrayOf(o, kind, k, Float32Array, 'Float32Array');
const u8s = (o: Obj, kind: string, k: string) => arrayOf(o, kind, k, Uint8Array, 'Uint8Array');
const u16s = (o: Obj, kind: string, k: string) => arrayOf(o, kind, k, Uint16Array, 'Uint16Array');

/** Optional fields: absent or undefined is fine, anything else is checked. */
const opt = (o: Obj, k: string, check: () => unknown): void => {
  if (o[k] !== undefined) check();
};

/** An array whose every element passes `check(value, 'kind.k[i]')`. */
function list(o: Obj, kind: string, k: string, check: (v: unknown, where: string) => void): void {
  const v = o[k];
  if (!Array.isArray(v)) return bad(`${kind}.${k}`, `expected an array, got ${describe(v)}`);
  v.forEach((x, i) => check(x, `${kind}.${k}[${i}]`));
}

/** An array of non-negative integers. */
const indices = (o: Obj, kind: string, k: string) =>
  list(o, kind, k, (v, w) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? undefined : bad(w, `expected a non-negative integer, got ${typeof v === 'number' ? v : describe(v)}`)));

/** A ws:// or wss:// URL of at most 2048 characters. */
const url = (o: Obj, kind: string, k: string): string => {
  const v = str(o, kind, k);
  return v.length <= 2048 && /^wss?:\/\/[^\s/]+(\/\S*)?$/.test(v) ? v : bad(`${kind}.${k}`, `expected a ws:// or wss:// URL, got ${JSON.stringify(v.slice(0, 80))}`);
};

function ownedState(v: unknown, where: string): void {
  if (!isPlainObject(v)) return bad(where, `expected an owner's state, got ${describe(v)}`);
  fields(v, where, ['adamStep', 'm', 'v', 'smi']);
  count(v, where, 'adamStep');
  f32s(v, where, 'm');
  f32s(v, where, 'v');
  list(v, where, 'smi', (h, w) => {
    if (!isPlainObject(h)) return bad(w, `expected a history, got ${describe(h)}`);
    fields(h, w, ['name', 'shape', 'data']);
    label(h, w, 'name');
    indices(h, w, 'shape');
    if (!(h.data instanceof Float32Array)) bad(`${w}.data`, `expected a Float32Array, got ${describe(h.data)}`);
  });
}

function linkBytes(v: unknown, where: string): void {
  if (!isPlainObject(v)) return bad(where, `expected bytes by direction, got ${describe(v)}`);
  fields(v, where, ['sharesSent', 'sharesReceived', 'valuesSent', 'valuesReceived']);
  for (const k of ['sharesSent', 'sharesReceived', 'valuesSent', 'valuesReceived']) count(v, where, k);
}

/** A step's spans: at most MAX_SPANS, each a printable name and a start and a duration that are finite ms ≥ 0. */
function spans(o: Obj, kind: string, k: string): void {
  if (Array.isArray(o[k]) && (o[k] as unknown[]).length > MAX_SPANS) bad(`${kind}.${k}`, `more than ${MAX_SPANS} spans`);
  list(o, kind, k, (v, w) => {
    if (!isPlainObject(v)) return bad(w, `expected a span, got ${describe(v)}`);
    fields(v, w, ['name', 'start', 'dur']);
    label(v, w, 'name');
    for (const f of ['start', 'dur']) if (!(finite(v, w, f) >= 0)) bad(`${w}.${f}`, `expected ms ≥ 0, got ${String(v[f])}`);
  });
}

function phases(o: Obj, kind: string, k: string): void {
  const v = o[k];
  if (!isPlainObject(v)) return bad(`${kind}.${k}`, `expected an object of ms per phase, got ${describe(v)}`);
  for (const p of Object.keys(v)) finite(v, `${kind}.${k}`, p);
}

const CONFIG_ENUMS = { preset: PRESET_NAMES, smi: SMI_RUN_NAMES, spectral: SPECTRAL_MODES, backend: BACKENDS, wire_dtype: WIRE_DTYPES } as const;
const CONFIG_NUMBERS = [
  'n_layer', 'n_head', 'n_embd', 'block_size', 'batch_size', 'dropout', 'max_iters', 'learning_rate', 'min_lr',
  'warmup_iters', 'lr_decay_iters', 'weight_decay', 'beta1', 'beta2', 'grad_clip', 'eval_interval', 'eval_iters',
  'log_interval', 'seed', 'vocab_size',
] as const satisfies readonly (keyof TrainConfig)[];
/** The TrainConfig fields a `welcome` carries, no more (a resumed run's config.json holds more: the data path, …). */
export const CONFIG_FIELDS = [...Object.keys(CONFIG_ENUMS), ...CONFIG_NUMBERS] as (keyof TrainConfig)[];

/** The welcome's copy of a config: its TrainConfig fields only. */
export function wireConfig(cfg: TrainConfig): TrainConfig {
  return Object.fromEntries(CONFIG_FIELDS.map((k) => [k, cfg[k]])) as unknown as TrainConfig;
}

function config(o: Obj, kind: string, k: string): void {
  const c = o[k];
  const where = `${kind}.${k}`;
  if (!isPlainObject(c)) return bad(where, `expected a TrainConfig object, got ${describe(c)}`);
  const enums = CONFIG_ENUMS;
  const numbers = CONFIG_NUMBERS;
  fields(c, where, CONFIG_FIELDS);
  for (const [name, valid] of Object.entries(enums)) {
    const v = str(c, where, name);
    if (!(valid as readonly string[]).includes(v)) bad(`${where}.${name}`, `'${v}' is not one of ${valid.join(', ')}`);
  }
  for (const name of numbers) finite(c, where, name);
  count(c, where, 'vocab_size');
  try {
    validateConfig(c as unknown as TrainConfig);
  } catch (e) {
    if (e instanceof ConfigError) bad(where, e.message);
    throw e;
  }
}

function stepAttempt(o: Obj, kind: string): void {
  count(o, kind, 'step');
  count(o, kind, 'round');
  count(o, kind, 'attempt');
}

/**
 * Checks that `value` is a well-formed Message of this protocol version (every field: type, integer-ness,
 * element types, typed-array kinds; no unknown fields) and returns it typed. Throws ProtocolError E_MALFORMED
 * naming the bad field. An optional field may be absent or undefined.
 */
export function parseMessage(value: unknown): Message {
  if (!isPlainObject(value)) return bad('message', `expected an object, got ${describe(value)}`);
  const o = value;
  const type = o.type;
  if (typeof type !== 'string' || !(MESSAGE_TYPES as readonly string[]).includes(type)) {
    // JSON.stringify throws on a BigInt (a msgpack uint64 over 2^53 decodes as one)
    return bad('message.type', `unknown message type ${typeof type === 'string' || typeof type === 'number' ? JSON.stringify(type) : describe(type)}`);
  }
  const kind = type as MessageType;
  switch (kind) {
    case 'hello':
      fields(o, kind, ['type', 'protocol', 'token', 'workerId', 'backend', 'device', 'memoryBytes', 'host', 'pid', 'listen']);
      count(o, kind, 'protocol');
      if (o.token !== null && str(o, kind, 'token').length > MAX_TOKEN_LENGTH) bad(`${kind}.token`, `longer than ${MAX_TOKEN_LENGTH} characters`);
      if (o.workerId !== null) workerId(o, kind, 'workerId');
      if (!(WORKER_BACKENDS as readonly string[]).includes(str(o, kind, 'backend'))) {
        bad(`${kind}.backend`, `'${String(o.backend).slice(0, 80)}' is not one of ${WORKER_BACKENDS.join(', ')}`);
      }
      label(o, kind, 'device');
      intIn(o, kind, 'memoryBytes', 1, MAX_MEMORY_BYTES);
      label(o, kind, 'host');
      intIn(o, kind, 'pid', 1, MAX_PID);
      if (o.listen !== null) url(o, kind, 'listen');
      break;
    case 'welcome':
      fields(o, kind, ['type', 'workerId', 'config', 'step']);
      workerId(o, kind, 'workerId');
      config(o, kind, 'config');
      count(o, kind, 'step');
      break;
    case 'weights':
      fields(o, kind, ['type', 'step', 'tensors']);
      count(o, kind, 'step');
      f32s(o, kind, 'tensors');
      break;
    case 'work': {
      fields(o, kind, ['type', 'step', 'round', 'attempt', 'offsets', 'tokens', 'magnitudes']);
      stepAttempt(o, kind);
      const offsets = o.offsets;
      if (!Array.isArray(offsets)) bad(`${kind}.offsets`, `expected an array of integers, got ${describe(offsets)}`);
      const list = offsets as unknown[];
      for (let i = 0; i < list.length; i++) {
        const v = list[i];
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
          bad(`${kind}.offsets[${i}]`, `expected a non-negative integer, got ${typeof v === 'number' ? v : describe(v)}`);
        }
      }
      if (!(o.tokens instanceof Uint8Array)) bad(`${kind}.tokens`, `expected a Uint8Array, got ${describe(o.tokens)}`);
      const tokens = o.tokens as Uint8Array;
      if (list.length === 0 ? tokens.length !== 0 : tokens.length % list.length !== 0) {
        bad(`${kind}.tokens`, `length ${tokens.length} is not a multiple of offsets.length ${list.length}`);
      }
      bool(o, kind, 'magnitudes');
      break;
    }
    case 'grads':
      fields(o, kind, ['type', 'step', 'round', 'attempt', 'sequences', 'loss', 'tensors', 'phases'], ['magnitudes']);
      stepAttempt(o, kind);
      count(o, kind, 'sequences');
      num(o, kind, 'loss');
      f32s(o, kind, 'tensors');
      opt(o, 'magnitudes', () => f32s(o, kind, 'magnitudes'));
      phases(o, kind, 'phases');
      break;
    case 'blend':
      fields(o, kind, ['type', 'step', 'round', 'attempt', 'source', 'clip', 'alpha'], ['masks', 'maskChecksum']);
      stepAttempt(o, kind);
      count(o, kind, 'source');
      finite(o, kind, 'clip');
      finite(o, kind, 'alpha');
      opt(o, 'masks', () => u8s(o, kind, 'masks'));
      opt(o, 'maskChecksum', () => uint32(o, kind, 'maskChecksum'));
      break;
    case 'blended':
      fields(o, kind, ['type', 'step', 'round', 'attempt', 'tensors', 'maskChecksum', 'phases']);
      stepAttempt(o, kind);
      f32s(o, kind, 'tensors');
      uint32(o, kind, 'maskChecksum');
      phases(o, kind, 'phases');
      break;
    case 'load': {
      fields(o, kind, ['type', 'planVersion', 'step', 'members', 'owners', 'weights'], ['state']);
      count(o, kind, 'planVersion');
      count(o, kind, 'step');
      list(o, kind, 'members', (v, w) => (typeof v === 'string' && WORKER_ID.test(v) ? undefined : bad(w, 'expected a worker id')));
      list(o, kind, 'owners', (v, w) => {
        if (!isPlainObject(v)) return bad(w, `expected an owner, got ${describe(v)}`);
        fields(v, w, ['workerId', 'url', 'tensors']);
        workerId(v, w, 'workerId');
        url(v, w, 'url');
        indices(v, w, 'tensors');
      });
      f32s(o, kind, 'weights');
      opt(o, 'state', () => ownedState(o.state, `${kind}.state`));
      break;
    }
    case 'loaded':
      fields(o, kind, ['type', 'planVersion'], ['unreachable']);
      count(o, kind, 'planVersion');
      opt(o, 'unreachable', () => list(o, kind, 'unreachable', (v, w) => (typeof v === 'string' && WORKER_ID.test(v) ? undefined : bad(w, `expected a worker id, got ${describe(v)}`))));
      break;
    case 'task':
      fields(o, kind, ['type', 'step', 'round', 'planVersion', 'sequences', 'holders', 'mine']);
      count(o, kind, 'step');
      count(o, kind, 'round');
      count(o, kind, 'planVersion');
      indices(o, kind, 'sequences');
      list(o, kind, 'holders', (v, w) => (typeof v === 'string' && WORKER_ID.test(v) ? undefined : bad(w, 'expected a worker id')));
      if ((o.holders as unknown[]).length !== (o.sequences as unknown[]).length) bad(`${kind}.holders`, 'not one per chunk');
      list(o, kind, 'mine', (v, w) => {
        if (!isPlainObject(v)) return bad(w, `expected a chunk, got ${describe(v)}`);
        fields(v, w, ['index', 'offsets', 'tokens']);
        count(v, w, 'index');
        indices(v, w, 'offsets');
        if (!(v.tokens instanceof Uint8Array)) bad(`${w}.tokens`, `expected a Uint8Array, got ${describe(v.tokens)}`);
        const n = (v.offsets as unknown[]).length;
        const len = (v.tokens as Uint8Array).length;
        if (n === 0 ? len !== 0 : len % n !== 0) bad(`${w}.tokens`, `length ${len} is not a multiple of offsets.length ${n}`);
      });
      break;
    case 'computed':
      fields(o, kind, ['type', 'step', 'round', 'chunk', 'sequences', 'loss', 'phases']);
      count(o, kind, 'step');
      count(o, kind, 'round');
      count(o, kind, 'chunk');
      count(o, kind, 'sequences');
      num(o, kind, 'loss');
      phases(o, kind, 'phases');
      break;
    case 'link':
      fields(o, kind, ['type', 'protocol', 'token', 'workerId']);
      count(o, kind, 'protocol');
      if (o.token !== null && str(o, kind, 'token').length > MAX_TOKEN_LENGTH) bad(`${kind}.token`, `longer than ${MAX_TOKEN_LENGTH} characters`);
      workerId(o, kind, 'workerId');
      break;
    case 'share':
      fields(o, kind, ['type', 'step', 'round', 'chunk', 'tensors'], ['blended', 'dtype']);
      count(o, kind, 'step');
      count(o, kind, 'round');
      count(o, kind, 'chunk');
      opt(o, 'dtype', () => (o.dtype === 'bf16' ? undefined : bad(`${kind}.dtype`, `expected 'bf16' or no dtype (fp32), got ${describe(o.dtype)}`)));
      // every section in the share's one dtype: a Float32Array in a bf16 share (or the reverse) is malformed
      (o.dtype === 'bf16' ? u16s : f32s)(o, kind, 'tensors');
      opt(o, 'blended', () => bool(o, kind, 'blended'));
      break;
    case 'clip':
      fields(o, kind, ['type', 'step', 'round', 'clip', 'alpha']);
      count(o, kind, 'step');
      count(o, kind, 'round');
      finite(o, kind, 'clip');
      finite(o, kind, 'alpha');
      break;
    case 'reduced':
      fields(o, kind, ['type', 'step', 'round', 'ss', 'chunkSS', 'phases']);
      count(o, kind, 'step');
      count(o, kind, 'round');
      list(o, kind, 'ss', (v, w) => (typeof v === 'number' ? undefined : bad(w, `expected a number, got ${describe(v)}`)));
      list(o, kind, 'chunkSS', (v, w) => (typeof v === 'number' ? undefined : bad(w, `expected a number, got ${describe(v)}`)));
      phases(o, kind, 'phases');
      break;
    case 'rejected':
      fields(o, kind, ['type', 'step', 'round', 'chunk', 'code', 'message']);
      count(o, kind, 'step');
      count(o, kind, 'round');
      count(o, kind, 'chunk');
      if (!isErrorCode(str(o, kind, 'code'))) bad(`${kind}.code`, `unknown error code '${o.code}'`);
      str(o, kind, 'message');
      break;
    case 'commit':
      fields(o, kind, ['type', 'step', 'round', 'clip', 'lr', 'alpha'], ['masks']);
      count(o, kind, 'step');
      count(o, kind, 'round');
      finite(o, kind, 'clip');
      finite(o, kind, 'lr');
      finite(o, kind, 'alpha');
      opt(o, 'masks', () => bool(o, kind, 'masks'));
      break;
    case 'masks':
      fields(o, kind, ['type', 'step', 'round', 'clip', 'alpha', 'masks', 'checksums']);
      count(o, kind, 'step');
      count(o, kind, 'round');
      finite(o, kind, 'clip');
      finite(o, kind, 'alpha');
      u8s(o, kind, 'masks');
      list(o, kind, 'checksums', (v, w) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? undefined : bad(w, `expected a uint32, got ${describe(v)}`)));
      break;
    case 'values':
      fields(o, kind, ['type', 'step', 'round', 'tensors'], ['first', 'more']);
      count(o, kind, 'step');
      count(o, kind, 'round');
      opt(o, 'first', () => count(o, kind, 'first'));
      opt(o, 'more', () => bool(o, kind, 'more'));
      f32s(o, kind, 'tensors');
      break;
    case 'done':
      fields(o, kind, ['type', 'step', 'round', 'phases', 'bytesSent', 'bytesReceived'], ['maskChecksums', 'appliedChecksums', 'links', 'spans', 'elapsed', 'cpuMs']);
      count(o, kind, 'step');
      count(o, kind, 'round');
      phases(o, kind, 'phases');
      count(o, kind, 'bytesSent');
      count(o, kind, 'bytesReceived');
      opt(o, 'links', () => linkBytes(o.links, `${kind}.links`));
      opt(o, 'spans', () => spans(o, kind, 'spans'));
      opt(o, 'elapsed', () => (finite(o, kind, 'elapsed') >= 0 ? undefined : bad(`${kind}.elapsed`, `expected ms ≥ 0, got ${String(o.elapsed)}`)));
      opt(o, 'cpuMs', () => (finite(o, kind, 'cpuMs') >= 0 ? undefined : bad(`${kind}.cpuMs`, `expected ms ≥ 0, got ${String(o.cpuMs)}`)));
      opt(o, 'appliedChecksums', () => list(o, kind, 'appliedChecksums', (v, w) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? undefined : bad(w, `expected a uint32, got ${describe(v)}`))));
      opt(o, 'maskChecksums', () => list(o, kind, 'maskChecksums', (v, w) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? undefined : bad(w, `expected a uint32, got ${describe(v)}`))));
      break;
    case 'gather':
      fields(o, kind, ['type', 'step']);
      count(o, kind, 'step');
      break;
    case 'state':
      fields(o, kind, ['type', 'step', 'tensors', 'weights', 'state']);
      count(o, kind, 'step');
      indices(o, kind, 'tensors');
      f32s(o, kind, 'weights');
      ownedState(o.state, `${kind}.state`);
      break;
    case 'evaluate':
      fields(o, kind, ['type', 'step', 'attempt', 'batches']);
      count(o, kind, 'step');
      count(o, kind, 'attempt');
      list(o, kind, 'batches', (v, w) => {
        if (!isPlainObject(v)) return bad(w, `expected a batch, got ${describe(v)}`);
        fields(v, w, ['split', 'iter', 'tokens']);
        if (v.split !== 'train' && v.split !== 'val') bad(`${w}.split`, `expected train or val, got ${String(v.split)}`);
        count(v, w, 'iter');
        if (!(v.tokens instanceof Uint8Array)) bad(`${w}.tokens`, `expected a Uint8Array, got ${describe(v.tokens)}`);
      });
      break;
    case 'evaluated':
      fields(o, kind, ['type', 'step', 'attempt', 'losses']);
      count(o, kind, 'step');
      count(o, kind, 'attempt');
      // a diverged model's loss is NaN or Inf, as --local's evaluation would report it: a number, not a bad message
      list(o, kind, 'losses', (v, w) => (typeof v === 'number' ? undefined : bad(w, `expected a number, got ${describe(v)}`)));
      break;
    case 'error':
      fields(o, kind, ['type', 'code', 'message']);
      if (!isErrorCode(str(o, kind, 'code'))) bad(`${kind}.code`, `unknown error code '${o.code}'`);
      str(o, kind, 'message');
      break;
    case 'bye':
      fields(o, kind, ['type', 'reason']);
      str(o, kind, 'reason');
      break;
    default: {
      const never: never = kind;
      return bad('message.type', `unhandled message type ${String(never)}`);
    }
  }
  return o as unknown as Message;
}
