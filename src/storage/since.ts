/**
 * @module storage/since
 * What changed between an older commit `at` and a transaction's snapshot S, read by a live-query
 * refresh (workers/execute-live.ts) so that it does not evaluate what did not change:
 *
 * - {@link ChangesSince.touched}: whether some commit after `at` wrote a table or key that a
 *   query read (the same stamps and last-write ids commit validation checks, read-set.ts);
 * - {@link ChangesSince.writtenPks}: the pks of the versions a table received in (from, S], read
 *   from the table's tail (version slots are in commit order);
 * - {@link ChangesSince.rowAt}: a row as it was at `at` (the versions it needs are still there
 *   while the table's compaction epoch did not move, storage/reclaim.ts).
 *
 * WHY READING STAMPS WITHOUT THE LOCK IS SAFE HERE
 *
 * Stamps are written under the commit lock before the commit id is published with Atomics.store;
 * the transaction read that id with Atomics.load at begin, so every stamp of a commit up to S is
 * visible. A stamp written by a later commit (or one in progress) is larger than S, hence larger
 * than `at`: it can only make a query look touched (evaluated again), never hide a write. Stamps
 * only grow (a dead-writer repair brings them down to the latest published id, still above `at`).
 */
import type { WrittenKeys } from './api.js';
import type { Engine } from './engine.js';
import type { TableIndex } from './indexes.js';
import type { Row } from './query.js';

export class ChangesSince {
  readonly #engine: Engine;
  readonly #snapshot: number;
  readonly #index: (id: number) => TableIndex;

  constructor(engine: Engine, snapshot: number, index: (id: number) => TableIndex) {
    this.#engine = engine;
    this.#snapshot = snapshot;
    this.#index = index;
  }

  /** Whether a commit after `at` wrote a table read whole or a key bucket of `deps` (a false positive is possible, a miss is not). */
  touched(deps: WrittenKeys, at: number): boolean {
    const control = this.#engine.control;
    for (const t of deps.tables) if (control.lastWrite(t) > at) return true;
    const stamps = this.#engine.stamps;
    for (const b of deps.keys) if (stamps.get(b) > at) return true;
    return false;
  }

  /** The compaction epoch of table `id`: while it stays, no version visible at an older snapshot was dropped. */
  epoch(id: number): number {
    return this.#engine.control.tableEpoch(id);
  }

  /**
   * The pks of the versions table `id` received from commits in (from, snapshot] (inserts,
   * updates, deletes), or undefined when more than `max` versions were; complete only while the
   * table's {@link epoch} did not move since `from`. Cost: the versions written since `from`.
   */
  writtenPks(id: number, from: number, max: number): string[] | undefined {
    const t = this.#engine.tables[id]!;
    const out: string[] = [];
    for (let v = t.rowCount() - 1; v >= 0; v--) {
      const begin = t.beginOf(v);
      if (begin > this.#snapshot) continue; // a later commit
      if (begin <= from) break;
      if (out.length >= max) return undefined;
      out.push(t.readPk(v));
    }
    return out;
  }

  /** Row `pk` of table `id` as commit `at` left it (null: absent); only while the table's epoch did not move since `at`. */
  rowAt(id: number, pk: string, at: number): Row | null {
    const v = this.#index(id).lookupPk(pk, at);
    return v < 0 ? null : (this.#engine.tables[id]!.readRow(v) as Row);
  }
}
