/**
 * @module storage/engine
 * What a transaction needs from the store (store.ts implements it; transaction.ts, the commit
 * protocol, bulk appends and cluster records use it): the tables and indexes, the commit lock,
 * snapshot and reader registration, and the commit hooks.
 */
import type { ChangeSet, HistoryPolicyResolver } from './api.js';
import type { HistoryTableIds } from './history.js';
import type { TableIndex } from './indexes.js';
import type { ControlBlock } from './layout.js';
import type { KeyStamps } from './read-set.js';
import type { Schema } from './schema.js';
import type { SharedTable } from './table.js';

/** What a transaction needs from the store (implemented in store.ts). */
export interface Engine {
  readonly schema: Schema;
  readonly control: ControlBlock;
  readonly tables: readonly SharedTable[];
  readonly tableIds: ReadonlyMap<string, number>;
  index(id: number): TableIndex;
  /** The shared key stamps that row-level read sets are validated against (read-set.ts). */
  readonly stamps: KeyStamps;
  /** Takes the commit lock for `owner`; false if another transaction of this thread holds it. */
  lock(owner: object): boolean;
  unlock(owner: object): void;
  /** Under the lock: undoes a dead writer's unpublished commit, if any. */
  repairIfDirty(): void;
  openSnapshot(s: number): void;
  closeSnapshot(s: number): void;
  /**
   * Opens a read of this store instance (readers.ts): called before the lock and the snapshot; in
   * a worker it waits while a reclamation compacts. Closed by {@link leaveReader}.
   */
  enterReader(): void;
  leaveReader(): void;
  /** Called under the lock before any shared write of a commit (e.g. a WAL append); a throw aborts. */
  beforePublish: ((changes: ChangeSet) => void) | undefined;
  /** Called under the lock right after the commit is published. */
  afterPublish: ((changes: ChangeSet) => void) | undefined;
  /** The history tables' ids, when the schema has them (history-tables.ts). */
  readonly history: HistoryTableIds | undefined;
  /** This thread's channel history policies (SharedStore.historyPolicy). */
  readonly historyPolicy: HistoryPolicyResolver | undefined;
  /** Cluster mode, in a worker: commits go to the commit stream (exportCommit), never local. */
  readonly remoteOnly: boolean;
}
