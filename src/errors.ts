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
