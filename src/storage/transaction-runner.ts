/**
 * @module storage/transaction-runner
 * The pieces of the begin / run / commit / retry loop that every transaction runner repeats, in
 * one place: how many optimistic attempts, running user code so that a throw aborts the
 * transaction, and what a commit's outcome means for the loop (done, retry, or an error).
 *
 * @example
 * // SharedStore.runSync, in short:
 * for (let i = 0; ; i++) {
 *   const exclusive = i >= optimisticAttemptsOf(options);
 *   const txn = store.begin({ exclusive });
 *   const done = commitOrRetry(txn, runOrAbort(txn, fn), exclusive);
 *   if (done) return done;
 * }
 */
import { ErrorCode, LexiconsError } from '../errors.js';
import type { ChangeSet, Db, RunOptions, Txn } from './api.js';

/** Optimistic attempts before a runner falls back to the exclusive lock (RunOptions default). */
export const DEFAULT_OPTIMISTIC_ATTEMPTS = 3;

/** `options.optimisticAttempts`, checked (OPTION error), or the default. */
export function optimisticAttemptsOf(options?: RunOptions): number {
  const attempts = options?.optimisticAttempts ?? DEFAULT_OPTIMISTIC_ATTEMPTS;
  if (!Number.isInteger(attempts) || attempts < 0) throw new LexiconsError(ErrorCode.OPTION, 'options.optimisticAttempts must be a non-negative integer');
  return attempts;
}

/** A committed run: the function's value and what the commit published. */
export interface Committed<T> {
  value: T;
  commitId: number;
  changes: ChangeSet;
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * Runs `fn(txn.db)`. If it throws, or the promise it returns rejects, the transaction is aborted
 * (nothing becomes visible) and the error propagates. A returned promise is passed on (await it).
 */
export function runOrAbort<T>(txn: Txn, fn: (db: Db) => T): T {
  let value: T;
  try {
    value = fn(txn.db);
  } catch (err) {
    txn.abort();
    throw err;
  }
  if (!isThenable(value)) return value;
  return value.then(undefined, (err: unknown) => {
    txn.abort();
    throw err;
  }) as T;
}

/**
 * Commits `txn`, whose function returned `value`: the committed run, or undefined on a conflict
 * (run again at a fresh snapshot). A unique violation found at commit throws UNIQUE; a failed
 * commit of an `exclusive` transaction (which cannot conflict) throws TXN.
 */
export function commitOrRetry<T>(txn: Txn, value: T, exclusive: boolean): Committed<T> | undefined {
  const result = txn.commit();
  if (result.ok) return { value, commitId: result.commitId, changes: result.changes };
  if (result.reason === 'unique') throw new LexiconsError(ErrorCode.UNIQUE, result.message);
  if (exclusive) throw new LexiconsError(ErrorCode.TXN, `exclusive commit failed: ${result.message}`);
  return undefined;
}

/** runSync's check: a function that returned a promise must be run with run(). */
export function refusePromise<T>(value: T): T {
  if (isThenable(value)) {
    Promise.resolve(value).catch(() => undefined);
    throw new LexiconsError(ErrorCode.TXN, 'runSync: the function returned a Promise; use run() for async functions');
  }
  return value;
}
