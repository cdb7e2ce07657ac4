/**
 * @module database
 * `Database`: the embedded database without a server, for scripts, migrations and tests. It opens a
 * data folder exactly as the server does (CSV snapshot + write-ahead log replay) and gives
 * transactions over it. Inside Signals, Tasks and Headers the `db` argument is the same API.
 *
 * @example
 * const database = await Database.open({ models: [User, ChatMessage], data: 'data/' });
 * await database.run((db) => db.create(User, { email: 'a@b.c', password: 'secret-pw' }));
 * console.log(database.read((db) => db.count(User)));
 * await database.close(); // writes the CSV snapshot, closes the log
 */
import type * as arrow from 'apache-arrow';
import type { Db, StoreStats } from './storage/api.js';
import { compileSchema, type ModelClass, type Schema } from './storage/schema.js';
import { withHistory } from './storage/history-tables.js';
import type { SharedStore } from './storage/store.js';
import type { FsyncPolicy, Wal } from './storage/wal.js';
import { openDataFolder, type RecoveryReport } from './storage/recovery.js';
import { startReclaimer } from './storage/reclaim.js';
import { snapshotDataFolder } from './storage/snapshot.js';
import { ErrorCode, LexiconsError } from './errors.js';

/**
 * Runs `fn` as one transaction on `store` (retried on conflict), from the main thread: never the
 * blocking group commit of workers, an async fsync instead (policy `always`).
 */
export async function runOnMainThread<T>(store: SharedStore, wal: Wal, fn: (db: Db) => T | Promise<T>): Promise<T> {
  const { value } = await store.run(fn);
  if (wal.policy === 'always') await wal.flush();
  return value;
}

/** Runs `fn` over the latest commit of `store`, read-only (its writes are discarded). */
export function readLatest<T>(store: SharedStore, fn: (db: Db) => T): T {
  const txn = store.begin();
  try {
    return fn(txn.db);
  } finally {
    txn.abort();
  }
}

export interface DatabaseOpenOptions {
  models: Iterable<ModelClass>;
  /** Data folder (created if missing). */
  data: string;
  /** Write-ahead log fsync policy; default `everysec`. */
  fsync?: FsyncPolicy;
}

/** The `db` API type used in Signals, Tasks and Headers. */
export type Database = Db;

class OpenDatabase {
  readonly schema: Schema;
  readonly report: RecoveryReport;
  readonly #store: SharedStore;
  readonly #wal: Wal;
  readonly #dir: string;
  /** Superseded row versions are compacted away while the database is open (storage/reclaim.ts). */
  readonly #reclaimer: { stop(): void };
  #closed = false;

  constructor(store: SharedStore, wal: Wal, report: RecoveryReport, dir: string) {
    this.#store = store;
    this.#wal = wal;
    this.report = report;
    this.#dir = dir;
    this.schema = store.schema;
    this.#reclaimer = startReclaimer(store);
  }

  /** Runs `fn` as one serializable transaction (retried on conflict); durable per the fsync policy. */
  async run<T>(fn: (db: Db) => T | Promise<T>): Promise<T> {
    this.#check();
    return runOnMainThread(this.#store, this.#wal, fn);
  }

  /** A read-only look at the latest snapshot (writes made by `fn` are discarded). */
  read<T>(fn: (db: Db) => T): T {
    this.#check();
    return readLatest(this.#store, fn);
  }

  /**
   * An Apache Arrow Table (`apache-arrow`) of a table's committed rows at the latest snapshot: a `pk`
   * Utf8 column, then the fields in declaration order (lists and sets as List, dictionary fields
   * as Dictionary, ints as Int64). Zero-copy over the shared column buffers while no row of the
   * table was ever updated or deleted, else a gathered copy of the live rows. Writes committed
   * after the call never change a Table already taken. For analytics and export of a live table
   * (`tableToIPC(view)` from apache-arrow writes Arrow IPC) without stopping the server.
   */
  toArrow(table: ModelClass | string): arrow.Table {
    this.#check();
    return this.#store.toArrow(table);
  }

  stats(): StoreStats {
    return this.#store.stats();
  }

  /** Writes a snapshot (binary files, then the CSV files) and closes the log. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#reclaimer.stop();
    await snapshotDataFolder(this.#store, this.#wal, this.#dir, { csv: true });
    await this.#wal.close();
  }

  #check(): void {
    if (this.#closed) throw new LexiconsError(ErrorCode.TXN, 'the database is closed');
  }
}

export type { OpenDatabase };

export const Database = {
  /** Opens (recovers) a data folder. Only one process may hold a data folder at a time. */
  async open(options: DatabaseOpenOptions): Promise<OpenDatabase> {
    // With the history tables, so a server's channel history survives a script opening its folder.
    const schema = withHistory(compileSchema(options.models));
    const { store, wal, report } = await openDataFolder(schema, options.data, { fsync: options.fsync ?? 'everysec' });
    return new OpenDatabase(store, wal, report, options.data);
  },
};
