/**
 * @module errors
 * One error class for everything lexicons raises on purpose, a const table of codes, and one
 * converter from `unknown`. Errors cross thread boundaries as `{code, message}` and are rebuilt
 * on the other side with {@link LexiconsError.fromJSON}.
 */

export const ErrorCode = {
  /** A Model definition is invalid (unknown type, bad reference, duplicate table). */
  SCHEMA: 'SCHEMA',
  /** A value does not match a field's declared type, or a required field is missing. */
  TYPE: 'TYPE',
  /** Unknown table or field named in a database call. */
  NOT_FOUND: 'NOT_FOUND',
  /** `get` matched more than one row. */
  MULTIPLE: 'MULTIPLE',
  /** A unique field would hold the same value twice. */
  UNIQUE: 'UNIQUE',
  /** Optimistic validation failed; the transaction is retried by the engine. */
  CONFLICT: 'CONFLICT',
  /** A transaction was used after commit/abort, or a commit failed for an internal reason. */
  TXN: 'TXN',
  /** Shared memory limit reached (a column cannot grow further). */
  CAPACITY: 'CAPACITY',
  /** A CSV data file is malformed or unreadable. */
  CSV: 'CSV',
  /** A write-ahead log segment is corrupt, foreign, or cannot be replayed against the Models. */
  LOG: 'LOG',
  /** Bad inbound frame (malformed JSON, wrong shape, oversized). */
  PROTOCOL: 'PROTOCOL',
  /** A client called a signal the server does not define (`No signal [Name]`). */
  UNKNOWN_SIGNAL: 'UNKNOWN_SIGNAL',
  /** A signal rejected its arguments. */
  BAD_ARGUMENTS: 'BAD_ARGUMENTS',
  /** A call subscribed its connection to a channel that does not exist. */
  CHANNEL_NOT_FOUND: 'CHANNEL_NOT_FOUND',
  /** A channel's `authorize` refused a connection joining it (`Not allowed to join [name]`). */
  CHANNEL_FORBIDDEN: 'CHANNEL_FORBIDDEN',
  /** A signal/task/header threw; the message is forwarded, the stack is logged. */
  EXECUTION: 'EXECUTION',
  /** An execution exceeded its time budget and its worker was aborted. */
  TIMEOUT: 'TIMEOUT',
  /** A connection refused: no credentials, a Header said no or failed, or the gate refused (`Authentication failed: ...`). */
  AUTH: 'AUTH',
  /** Rate limit or backpressure policy hit. */
  LIMIT: 'LIMIT',
  /** Invalid server / CLI option. */
  OPTION: 'OPTION',
  /** I/O failure (disk full, fsync failure). */
  IO: 'IO',
  /** The native uWebSockets.js binary could not be loaded. */
  RUNTIME: 'RUNTIME',
  /** Anything not raised on purpose. */
  INTERNAL: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface SerializedError {
  code: ErrorCode;
  message: string;
}

export class LexiconsError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LexiconsError';
    this.code = code;
  }

  toJSON(): SerializedError {
    return { code: this.code, message: this.message };
  }

  static fromJSON(data: SerializedError): LexiconsError {
    return new LexiconsError(data.code, data.message);
  }
}

/** What an app-defined error code must look like (`NOT_ALLOWED`): sent on the wire as is. */
export const APP_CODE_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;

/**
 * An error a Signal throws on purpose, with its own machine-readable code for the client:
 * the caller gets `{"Errors": [message], "code": code, "$id": ...}` (anything else a Signal throws
 * is sent with the code `EXECUTION`). The code must match {@link APP_CODE_PATTERN}.
 *
 * @example
 * if (ws.auth !== 'admin') throw new SignalError('NOT_ALLOWED', 'only admins can do that');
 */
export class SignalError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    if (typeof code !== 'string' || !APP_CODE_PATTERN.test(code)) {
      throw new TypeError(`SignalError: code must match ${String(APP_CODE_PATTERN)}, got ${JSON.stringify(code) ?? String(code)}`);
    }
    super(message);
    this.name = 'SignalError';
    this.code = code;
  }
}

/** An invalid option (code OPTION), with the exact message. */
export function optionError(message: string): LexiconsError {
  return new LexiconsError(ErrorCode.OPTION, message);
}

/** Wraps anything thrown into a LexiconsError, keeping the original as `cause`. */
export function toLexiconsError(err: unknown): LexiconsError {
  if (err instanceof LexiconsError) return err;
  if (err instanceof Error) return new LexiconsError(ErrorCode.EXECUTION, err.message, { cause: err });
  return new LexiconsError(ErrorCode.EXECUTION, String(err), { cause: err });
}

/** The message of anything thrown (an Error's message, else its string form). */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function isLexiconsError(err: unknown, code?: ErrorCode): err is LexiconsError {
  return err instanceof LexiconsError && (code === undefined || err.code === code);
}
