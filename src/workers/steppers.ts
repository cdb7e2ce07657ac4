/**
 * @module workers/steppers
 * How user code runs inside storage transactions in a worker.
 *
 * A batch runs as ONE transaction with a savepoint per call ({@link BatchStepper}): a call that
 * throws is rolled back to its savepoint (writes, recorded effects, connection state) and
 * becomes an error for its caller; the batch commits once (group commit). When the commit fails
 * on a unique constraint, the batch is re-run with one transaction per call
 * ({@link IsolatedStepper}) so that only the offending call fails. Tasks and hooks always run
 * isolated. Conflicts are retried; after {@link OPTIMISTIC_ATTEMPTS} the transaction runs
 * exclusively.
 */
import type { Db, Txn } from '../storage/api.js';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { ConnectionHandle } from './handles.js';
import type { Recorder } from './recorder.js';
import type { ProgressWriter } from './progress.js';

/** What the executor needs from the store (SharedStore satisfies it). */
export interface TxnSource {
  begin(options?: { exclusive?: boolean }): Txn;
}

export const OPTIMISTIC_ATTEMPTS = 3;
/** Safety net: an exclusive transaction cannot conflict, so this is never reached in practice. */
export const MAX_ATTEMPTS = 10;

/**
 * Runs one call atomically with respect to failures. A synchronous `fn` completes synchronously
 * in a batch (no promise, no microtask per call); callers `await` or check for a thenable.
 */
export interface Stepper {
  step<T>(conn: ConnectionHandle | undefined, fn: (db: Db) => T | Promise<T>): T | Promise<T>;
}

function thenable(value: unknown): value is Promise<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as Promise<unknown>).then === 'function';
}

export class BatchStepper implements Stepper {
  readonly #txn: Txn;
  readonly #recorder: Recorder;

  constructor(txn: Txn, recorder: Recorder) {
    this.#txn = txn;
    this.#recorder = recorder;
  }

  step<T>(conn: ConnectionHandle | undefined, fn: (db: Db) => T | Promise<T>): T | Promise<T> {
    const savepoint = this.#txn.savepoint();
    const mark = this.#recorder.mark(conn);
    let value: T | Promise<T>;
    try {
      value = fn(this.#txn.db);
    } catch (err) {
      this.#txn.rollbackTo(savepoint);
      this.#recorder.restore(mark);
      throw err;
    }
    if (!thenable(value)) return value;
    return (value as Promise<T>).then(undefined, (err: unknown) => {
      this.#txn.rollbackTo(savepoint);
      this.#recorder.restore(mark);
      throw err;
    });
  }
}

export class IsolatedStepper implements Stepper {
  readonly #store: TxnSource;
  readonly #recorder: Recorder;
  readonly #progress: ProgressWriter;
  attempts = 0;

  constructor(store: TxnSource, recorder: Recorder, progress: ProgressWriter) {
    this.#store = store;
    this.#recorder = recorder;
    this.#progress = progress;
  }

  async step<T>(conn: ConnectionHandle | undefined, fn: (db: Db) => T | Promise<T>): Promise<T> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      this.attempts++;
      const txn = this.#store.begin({ exclusive: attempt >= OPTIMISTIC_ATTEMPTS });
      const mark = this.#recorder.mark(conn);
      let value: T;
      try {
        value = await fn(txn.db);
      } catch (err) {
        this.#progress.leave();
        txn.abort();
        this.#recorder.restore(mark);
        throw err;
      }
      this.#progress.leave();
      try {
        this.#progress.checkNotAborted();
      } catch (err) {
        txn.abort();
        this.#recorder.restore(mark);
        throw err;
      }
      const result = txn.commit();
      if (result.ok) return value;
      this.#recorder.restore(mark);
      if (result.reason === 'unique') throw new LexiconsError(ErrorCode.UNIQUE, result.message);
    }
    throw new LexiconsError(ErrorCode.CONFLICT, `transaction kept conflicting after ${MAX_ATTEMPTS} attempts`);
  }
}
