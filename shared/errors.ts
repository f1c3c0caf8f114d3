// Every error class, with two tables of stable codes: the protocol's (with WebSocket close codes) and a run's (with exit codes).

/**
 * Every protocol error code, its WebSocket close code (4000–4999, the range RFC 6455 leaves to applications)
 * and what it means. docs/errors.md is this table in Markdown; a test keeps the two equal.
 */
export const ERROR_CODES = {
  E_VERSION: { close: 4001, meaning: 'the peer speaks another protocol or wire-format version' },
  E_TOKEN: { close: 4002, meaning: 'the hello carried a wrong or missing token' },
  E_MALFORMED: { close: 4003, meaning: 'a frame could not be decoded, or the decoded message failed the guard' },
  E_TOO_LARGE: { close: 4004, meaning: 'a frame or message is over the frame (maxPayload) or message size limit' },
  E_SHAPE: { close: 4005, meaning: 'the tensor count or a tensor length does not match the model' },
  E_NONFINITE: { close: 4006, meaning: 'a gradient contains NaN or Infinity' },
  E_UNEXPECTED: { close: 4007, meaning: 'a message not valid in the current state, or for a step/attempt that is not current' },
  E_TIMEOUT: { close: 4008, meaning: 'the worker missed --step-timeout' },
  E_SHUTDOWN: { close: 4009, meaning: 'the coordinator is ending the run' },
  E_INTERNAL: { close: 4011, meaning: 'the sender hit a bug of its own while handling a message' },
  E_OUTLIER: { close: 4012, meaning: "a finite result an honest worker cannot produce: a gradient norm far above both the step's other shares and the recent steps, or spectra or a blend over the bound its own gradient sets" },
  E_REFUSED: { close: 4013, meaning: 'this worker id sent a rejected result (E_NONFINITE, E_OUTLIER) and is refused for a while' },
  E_HELLO_TIMEOUT: { close: 4014, meaning: 'no accepted hello within the deadline after connecting' },
  E_BUSY: { close: 4015, meaning: 'too many connections are waiting for their hello; try again later' },
  E_SEND_FAILED: { close: 4016, meaning: 'a message to the peer could not be sent (its link failed); the peer is dropped' },
  E_CUT_OFF: { close: 4017, meaning: 'the worker could not open a link to any owner that the other workers reached (--update owners); it is dropped' },
} as const satisfies Record<string, { close: number; meaning: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ERROR_CODE_NAMES = Object.keys(ERROR_CODES) as ErrorCode[];

/** A protocol failure: `code` is stable and documented, `closeCode` is what the socket is closed with. */
export class ProtocolError extends Error {
  readonly code: ErrorCode;
  readonly closeCode: number;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.closeCode = ERROR_CODES[code].close;
  }
}

/** The one way to make a protocol error (as ws's createError): the code picks the close code. */
export function protocolError(code: ErrorCode, message: string): ProtocolError {
  return new ProtocolError(code, message);
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** The error code a WebSocket close code stands for, if it is one of ours. */
export function codeForClose(closeCode: number): ErrorCode | undefined {
  return ERROR_CODE_NAMES.find((c) => ERROR_CODES[c].close === closeCode);
}

/** ERROR_CODES as the Markdown table that docs/errors.md holds. */
export function errorTableMarkdown(): string {
  const rows = ERROR_CODE_NAMES.map((c) => `| \`${c}\` | ${ERROR_CODES[c].close} | ${ERROR_CODES[c].meaning} |`);
  return ['| code | close code | meaning |', '|---|---|---|', ...rows].join('\n');
}

// ---- a run's errors: bad input (exit 2) or a failed run (exit 1) ---------------------------------------------

/**
 * Every code a run's error carries, the exit code it ends the command with and what it means. docs/errors.md
 * holds this table too; a test keeps the two equal.
 */
export const RUN_ERROR_CODES = {
  E_BAD_FLAG: { exit: 2, meaning: 'an unknown flag, a flag with a bad value, or flags that do not go together' },
  E_BAD_VALUE: { exit: 2, meaning: 'an unknown preset, SMI run, spectral mode, backend or other named value (the closest valid one is named)' },
  E_BAD_CONFIG: { exit: 2, meaning: 'a configuration that cannot train (sizes, rates, a control run in synced mode, a vocabulary that is not the data\'s)' },
  E_RESUME: { exit: 2, meaning: '--resume without a run there, or with flags other than --max-iters' },
  E_OUT_EXISTS: { exit: 2, meaning: '--out names a directory that already holds a run' },
  E_CHECKPOINT: { exit: 2, meaning: 'a checkpoint or run directory that is missing, foreign, of another version, or lacks a parameter' },
  E_INIT_FROM: { exit: 2, meaning: '--init-from weights that do not fit the model' },
  E_SAFETENSORS: { exit: 2, meaning: 'a malformed safetensors file' },
  E_BAD_RUN: { exit: 2, meaning: 'a directory given to the report that is not a run (config.json and log.jsonl)' },
  E_BAD_PRIOR: { exit: 2, meaning: 'a --prior file for the reproduction report that is missing, not its report.json, or of another preset' },
  E_PRIOR_MIX: { exit: 2, meaning: 'the reproduction report would take one-process runs both from their directories and from a --prior report' },
  E_BACKEND_MISSING: { exit: 2, meaning: 'the requested backend is not installed or sees no GPU (the install command is named)' },
  E_NO_GPU_DEVICE: { exit: 2, meaning: 'tensorflow-gpu loaded but TensorFlow found no usable GPU device' },
  E_DATA_MISSING: { exit: 2, meaning: 'no corpus at the data path (both ways to get it are named)' },
  E_DATA_CORRUPT: { exit: 2, meaning: 'the corpus has the wrong size or sha256' },
  E_DATA_VOCAB: { exit: 2, meaning: 'a character outside the vocabulary, or a vocabulary over 256 characters' },
  E_DATA_DOWNLOAD: { exit: 2, meaning: 'prepare-data could not download the corpus' },
  E_RENDEZVOUS: { exit: 2, meaning: "--launcher slurm or env: a variable missing or unreadable (a rank that is not a number, a rank not below the world size, no SMI_TOKEN, a node list that cannot be read), flags the launcher does not take, or a derived port already in use (the message names every variable read)" },
  E_UNREACHABLE: { exit: 1, meaning: 'a task could not reach the coordinator within --rendezvous-timeout (the message names the address, the port and the variables they came from)' },
  E_WORLD_SIZE: { exit: 1, meaning: 'fewer workers joined the coordinator within --rendezvous-timeout than the world size promised (the message names the variables read)' },
  E_NONFINITE_LOSS: { exit: 1, meaning: 'the loss is NaN or Infinity: training diverged; the update is refused' },
  E_NONFINITE_GRAD: { exit: 1, meaning: 'the gradient norm is NaN or Infinity; the update is refused, the weights unchanged' },
} as const satisfies Record<string, { exit: 1 | 2; meaning: string }>;

export type RunErrorCode = keyof typeof RUN_ERROR_CODES;

/** A run's error: `code` is stable and documented; the command exits with RUN_ERROR_CODES[code].exit. */
export class RunError extends Error {
  readonly code: RunErrorCode;
  constructor(code: RunErrorCode, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
  get exitCode(): 1 | 2 {
    return RUN_ERROR_CODES[this.code].exit;
  }
}

/** A configuration or argument error. */
export class ConfigError extends RunError {}

/** The corpus could not be used; the message names both ways to get it. */
export class DataError extends RunError {}

/** A safetensors file that cannot be read. */
export class SafetensorsError extends RunError {
  constructor(message: string) {
    super('E_SAFETENSORS', message);
  }
}

/** A checkpoint that cannot be resumed from. */
export class CheckpointError extends RunError {
  constructor(message: string) {
    super('E_CHECKPOINT', message);
  }
}

/** A cluster launch that did not come together (E_UNREACHABLE, E_WORLD_SIZE): printed without a stack, as its message says what to check. */
export class RendezvousError extends RunError {}

/** A training step that cannot be applied (a non-finite loss or gradient norm); the weights are left as they were. */
export class TrainingError extends RunError {}

/** RUN_ERROR_CODES as the Markdown table that docs/errors.md holds. */
export function runErrorTableMarkdown(): string {
  const rows = (Object.keys(RUN_ERROR_CODES) as RunErrorCode[]).map((c) => `| \`${c}\` | ${RUN_ERROR_CODES[c].exit} | ${RUN_ERROR_CODES[c].meaning} |`);
  return ['| code | exit code | meaning |', '|---|---|---|', ...rows].join('\n');
}
