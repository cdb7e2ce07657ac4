/**
 * @module workers/steppers
 * How user code runs inside storage transactions in a worker.
 *
 * A batch runs as ONE transaction with a savepoint per call ({@link BatchStepper}): a call that
 * throws is rolled back to its savepoint (writes, recorded effects, connection state) and
 * becomes an error for its caller; the batch commits once (group commit). When the commit fails
 * on a unique constraint, the batch is re-run with one transaction per call
 * ({@link IsolatedStepper}) so that only the offending call fails. Tasks and hooks always run
 * isolated. Both go through the one begin/commit/retry loop of a worker,
 * {@link commitWithRetries}: conflicts are retried (a batch only from its first invalidated unit,
 * through a rebase: TransactionAttempt.resume); after {@link OPTIMISTIC_ATTEMPTS} the transaction
 * runs exclusively.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { CommitResult, Db, Publication, Txn } from '../storage/api.js';
import { DEFAULT_OPTIMISTIC_ATTEMPTS, isThenable } from '../storage/transaction-runner.js';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { ConnectionHandle } from './handles.js';
import type { Mark, Recorder } from './recorder.js';
import type { CommitTicket, ProgressWriter } from './progress.js';

/** What the executor needs from the store (SharedStore satisfies it). */
export interface TxnSource {
  begin(options?: { exclusive?: boolean }): Txn;
  /**
   * Cluster mode: commits through the node's commit stream (workers/worker.ts); `ticket` names the
   * job and the units it finishes (workers/progress.ts "Cluster mode").
   */
  readonly remoteCommit?: ((txn: Txn, ticket: CommitTicket) => Promise<CommitResult>) | undefined;
}

/**
 * Conflicting attempts before a transaction runs under the exclusive commit lock: the store's own
 * default, so `SharedStore.run` and the workers agree. This loop differs from storage's
 * runOrAbort/commitOrRetry on purpose: a unique violation is an outcome here (the batch re-runs
 * isolated, so only the offending call fails), and the main thread's abort is checked before commit.
 */
export const OPTIMISTIC_ATTEMPTS = DEFAULT_OPTIMISTIC_ATTEMPTS;
/** Safety net: an exclusive transaction cannot conflict, so this is never reached in practice. */
export const MAX_ATTEMPTS = 10;
/**
 * Cluster mode has no exclusive fallback (the commit lock is per node, the conflicts come from
 * every node): a conflicting transaction re-runs up to this many times, after a random pause of
 * up to 2^attempt ms (at most 64 ms) so that hot rows do not livelock.
 */
export const CLUSTER_MAX_ATTEMPTS = 100;

export { isThenable };

/** One attempt of {@link commitWithRetries}. */
export interface TransactionAttempt<T> {
  /** The work of one attempt in `txn`; synchronous work stays synchronous (no await). */
  run(txn: Txn): T | Promise<T>;
  /** Undoes what the attempt recorded outside the transaction (its writes were rolled back). */
  undo(): void;
  /**
   * Optional: re-runs the attempt's steps from `step` in the same, rebased transaction, after a
   * conflict that kept the steps before it (Txn `commit({ rebase: true })`); first undoes what
   * those later steps recorded outside the transaction. Without it, a conflict re-runs everything.
   */
  resume?(txn: Txn, step: number): T | Promise<T>;
  /**
   * Leading units of the job finished once this transaction commits (a batch's one transaction:
   * all of them); default: those already finished. Cluster mode: the main thread stores it when
   * the record commits (workers/progress.ts).
   */
  readonly units?: number;
}

/**
 * A committed attempt's value, or the unique violation its commit found; `commitMs`: time spent
 * in `txn.commit()` over all attempts (validation, log append, publication), for the metrics.
 */
export type CommitOutcome<T> =
  | { committed: true; value: T; commitMs: number; publications: Publication[] }
  | { committed: false; uniqueViolation: string; commitMs: number };

/**
 * The begin/commit/retry loop of a worker: runs `attempt` in a fresh transaction until one
 * commits, re-running it on conflict (exclusively after {@link OPTIMISTIC_ATTEMPTS}). Work that
 * throws is rolled back and the error propagates. A job the main thread aborted never commits:
 * {@link ProgressWriter.checkNotAborted} runs right before the commit, after `leave()`.
 */
export async function commitWithRetries<T>(store: TxnSource, progress: ProgressWriter, what: string, attempt: TransactionAttempt<T>): Promise<CommitOutcome<T>> {
  let commitMs = 0;
  const remote = store.remoteCommit;
  const attempts = remote ? CLUSTER_MAX_ATTEMPTS : MAX_ATTEMPTS;
  for (let i = 0; i < attempts; i++) {
    if (remote && i > 0) await sleep(Math.random() * 2 ** Math.min(i, 6));
    const txn = store.begin({ exclusive: !remote && i >= OPTIMISTIC_ATTEMPTS });
    const rebase = !remote && attempt.resume !== undefined;
    let value = await runAttempt(txn, progress, attempt, (t) => attempt.run(t));
    let commitStarted = performance.now();
    let result = remote ? await remote(txn, progress.ticket(attempt.units)) : txn.commit({ rebase });
    commitMs += performance.now() - commitStarted;
    // A rebased transaction is still open: re-run from the first step a concurrent commit
    // invalidated. Each rebase counts as an attempt, so a step that keeps conflicting still
    // ends in the exclusive attempt (the rebased transaction is then aborted, everything re-runs).
    while (!result.ok && result.step !== undefined) {
      const step = result.step;
      if (++i >= OPTIMISTIC_ATTEMPTS) {
        txn.abort();
        i--; // the loop's i++ makes this the exclusive attempt
        break;
      }
      value = await runAttempt(txn, progress, attempt, (t) => attempt.resume!(t, step));
      commitStarted = performance.now();
      result = txn.commit({ rebase });
      commitMs += performance.now() - commitStarted;
    }
    if (result.ok) return { committed: true, value, commitMs, publications: result.publications };
    if (result.step !== undefined) {
      attempt.undo();
      continue;
    }
    attempt.undo();
    if (result.reason === 'unique') return { committed: false, uniqueViolation: result.message, commitMs };
  }
  throw new LexiconsError(ErrorCode.CONFLICT, `${what} kept conflicting after ${attempts} attempts`);
}

/** One run (or resumed run) of an attempt, up to its commit: user code that throws aborts it; so does the main thread's abort. */
async function runAttempt<T>(txn: Txn, progress: ProgressWriter, attempt: TransactionAttempt<T>, run: (txn: Txn) => T | Promise<T>): Promise<T> {
  let value: T;
  try {
    const pending = run(txn);
    value = isThenable(pending) ? await pending : (pending as T);
  } catch (err) {
    progress.leave();
    txn.abort();
    attempt.undo();
    throw err;
  }
  progress.leave();
  try {
    progress.checkNotAborted();
  } catch (err) {
    txn.abort();
    attempt.undo();
    throw err;
  }
  return value;
}

/**
 * Runs one call atomically with respect to failures. A synchronous `fn` completes synchronously
 * in a batch (no promise, no microtask per call); callers `await` or check for a thenable.
 */
export interface Stepper {
  step<T>(conn: ConnectionHandle | undefined, fn: (db: Db) => T | Promise<T>): T | Promise<T>;
}

export class BatchStepper implements Stepper {
  readonly #txn: Txn;
  readonly #recorder: Recorder;

  constructor(txn: Txn, recorder: Recorder) {
    this.#txn = txn;
    this.#recorder = recorder;
    recorder.txn = txn; // publications of the batch's calls go to its one transaction
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
    if (!isThenable(value)) return value;
    return (value as Promise<T>).then(undefined, (err: unknown) => {
      this.#txn.rollbackTo(savepoint);
      this.#recorder.restore(mark);
      throw err;
    });
  }
}

/** One transaction per call (tasks, hooks, and a batch re-run after a unique violation). */
export class IsolatedStepper implements Stepper {
  readonly #store: TxnSource;
  readonly #recorder: Recorder;
  readonly #progress: ProgressWriter;
  attempts = 0;
  /** Time spent committing, over all calls (see {@link CommitOutcome}). */
  commitMs = 0;

  constructor(store: TxnSource, recorder: Recorder, progress: ProgressWriter) {
    this.#store = store;
    this.#recorder = recorder;
    this.#progress = progress;
  }

  async step<T>(conn: ConnectionHandle | undefined, fn: (db: Db) => T | Promise<T>): Promise<T> {
    const recorder = this.#recorder;
    let mark: Mark | undefined;
    const outcome = await commitWithRetries(this.#store, this.#progress, 'transaction', {
      run: (txn) => {
        this.attempts++;
        mark = recorder.mark(conn);
        recorder.txn = txn;
        return fn(txn.db);
      },
      undo: () => recorder.restore(mark!),
    });
    recorder.txn = undefined;
    this.commitMs += outcome.commitMs;
    if (!outcome.committed) throw new LexiconsError(ErrorCode.UNIQUE, outcome.uniqueViolation);
    // In commit order, after the publications of the job's earlier commits (the Stamped indexes).
    for (const publication of outcome.publications) recorder.publications.push(publication);
    return outcome.value;
  }
}
