/**
 * @module testing/test-db
 * `app.db` of a test server: the running server's own store, read and written from the test's
 * thread (the main thread), in transactions like any Signal's. What a test seeds is at once
 * visible to the workers (the tables are shared memory), and logged like any commit.
 */
import { readLatest, runOnMainThread } from '../database.js';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { Db } from '../storage/api.js';
import type { SharedStore } from '../storage/store.js';
import type { Wal } from '../storage/wal.js';

/** The database of a server started by `startTestServer` (in-process only). */
export interface TestDb {
  /**
   * Runs `fn` as one transaction (retried on conflict) and commits it; resolves with its value.
   * @example await app.db.run((db) => db.create(User, { email: 'ann@example.com', password: 'secret-pw' }));
   */
  run<T>(fn: (db: Db) => T | Promise<T>): Promise<T>;
  /** Runs `fn` over the latest commit, read-only (its writes are discarded). */
  read<T>(fn: (db: Db) => T): T;
  /** Rows matching the filters, at the latest commit: `app.db.query(ChatMessage, { channel: 'Public' })`. */
  readonly query: Db['query'];
  /** Exactly one row by pk or filters, or null, at the latest commit. */
  readonly get: Db['get'];
  /** How many rows match, at the latest commit. */
  readonly count: Db['count'];
}

/** A TestDb over `store`; `isOpen()` false (the server stopped) makes every use throw. */
export function createTestDb(store: SharedStore, wal: Wal, isOpen: () => boolean): TestDb {
  const check = (): void => {
    if (!isOpen()) throw new LexiconsError(ErrorCode.TXN, 'app.db: the test server has stopped');
  };
  const read = <T>(fn: (db: Db) => T): T => {
    check();
    return readLatest(store, fn);
  };
  return {
    run: async (fn) => {
      check();
      return runOnMainThread(store, wal, fn);
    },
    read,
    query: ((table: string, filters?: Record<string, unknown>) => read((db) => db.query(table, filters))) as Db['query'],
    get: ((table: string, pkOrFilters: string | Record<string, unknown>) => read((db) => db.get(table, pkOrFilters))) as Db['get'],
    count: ((table: string, filters?: Record<string, unknown>) => read((db) => db.count(table, filters))) as Db['count'],
  };
}
