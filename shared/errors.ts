// Protocol errors: one table of stable codes with their WebSocket close codes, and the one factory that makes them.

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

/** A training step that cannot be applied (a non-finite loss or gradient norm); the weights are left as they were. */
export class TrainingError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'TrainingError';
    this.code = code;
  }
}
