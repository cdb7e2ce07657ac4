/**
 * @module storage/commit-protocol
 * What a commit does under the commit lock: validate the transaction against the latest state,
 * then publish its versions so that a reader sees all of it or none of it, without a lock. The
 * transaction model it serves is explained in transaction.ts.
 *
 * Validation. If any table the transaction scanned has last-write > its snapshot S, or any key
 * it read by pk or index (read-set.ts) has a stamp > S, a transaction serialized after S changed
 * what it read: the commit fails with `conflict` (the runner re-runs it at a fresh snapshot).
 * Otherwise its reads are still current, so executing it at the new commit id is equivalent to
 * executing it alone after the previous commit: serializable. Blind creates do not read (chat
 * messages do not conflict with each other); instead pk existence and unique constraints are
 * re-checked here against the latest state, with the indexes caught up. A write that replaces a
 * version checks that the version still has no `next` (nothing superseded or deleted it since).
 *
 * Publish order. A committer with new commit id C = latest + 1:
 *   1. sets pending = C and dirty = 1 (so a successor can undo it if this thread dies),
 *   2. writes the new versions' data into slots >= the row count (growing buffers first: growth
 *      never moves published bytes; every thread sees the new byte length),
 *   3. writes `begin` of each new slot,
 *   4. Atomics.store of each table's row count,
 *   5. Atomics.store of `next` of each superseded version,
 *   6. the key stamps of every written row (read-set.ts; plain writes, read only under the lock),
 *      then Atomics.store of each written table's last-write commit id,
 *   7. Atomics.store of the global commit id = C   <- the single publish point,
 *   8. dirty = 0, then releases the lock.
 * A reader loads S = global commit id FIRST, then row counts, and looks only at slots below the row
 * count, filtered by visibility. Atomics are sequentially consistent, so every plain write made
 * before a store (steps 2-3) is visible to a thread that loaded that store's value. Any slot or
 * `next` link of a commit newer than S is filtered out by `begin`, so a reader sees either all of a
 * commit or none of it, without ever taking a lock.
 *
 * Reclamation. Published slots change in one more way: a compaction (reclaim.ts) moves live
 * versions down over dead ones. It runs only when no reader is open on any thread (readers.ts:
 * every transaction and pin publishes an open flag before it reads; the reclaimer raises a drain
 * flag, waits for every open flag to be 0, then compacts under the commit lock), so the lock-free
 * rule above never meets a moving slot.
 *
 * Rebase. A worker job is one transaction of many steps (one per unit). When its validation
 * fails, {@link firstConflictStep} finds the first step p whose reads or replaced versions a
 * commit in (S, L] changed (L: the latest commit, under the lock). If p > 0 the transaction drops
 * steps >= p, moves its snapshot to L and stays open (transaction.ts `commit({ rebase: true })`);
 * the worker re-runs steps p.. at L and commits again. Why that is serializable: no commit in
 * (S, L] wrote a key or table the kept steps read, nor replaced a version they replace, so at L
 * they read and replace exactly what they did at S, as if they had run at L; the re-run steps read
 * at L; the next commit validates every read (kept and re-run) against L and every replaced
 * version against the latest state, as for any transaction at snapshot L. The kept reads are then
 * unchanged over (S, C]: the whole job is equivalent to running alone at its commit C. It still
 * commits once, all or nothing: nothing of it is visible, durable or sent before then.
 *
 * Dead writers. A worker can be terminated between steps 1 and 8. Its commit id was never
 * published, so no reader ever saw any of its slots. The lock is freed by the main thread
 * (`releaseIfHeldBy`); the next lock holder sees dirty = 1 and repairs (commit-lock.ts): truncates
 * row counts past slots whose begin == pending, resets `next` links into truncated slots, bumps the
 * repair epoch so threads rebuild their derived indexes.
 */
import type { ChangeSet, CommitResult } from './api.js';
import { i32DeadVersions, i32RowCount, i64LastWrite, kCommitId, kDirty, kPendingCommit } from './layout.js';
import type { ReadSet } from './read-set.js';
import type { Engine } from './engine.js';
import type { TablePlan } from './write-set.js';

/** Test-only hooks to simulate a writer dying mid-commit (never set in production). */
export const testHooks: { afterHalfSlots?: () => void; beforeGlobalPublish?: () => void } = {};

/**
 * Under the lock: serializability (unless `exclusive`: it read under the lock), pk existence and
 * unique checks against the latest state. A failed commit result, or undefined when it may publish.
 */
export function validateCommit(engine: Engine, plan: readonly TablePlan[], snapshot: number, exclusive: boolean, reads: ReadSet): CommitResult | undefined {
  const latest = engine.control.commitId();
  if (!exclusive) {
    const changed = readConflict(engine, reads, snapshot);
    if (changed !== undefined) return { ok: false, reason: 'conflict', message: changed };
  }
  for (const { id, entries, rows: mine } of plan) {
    const t = engine.tables[id]!;
    const index = engine.index(id);
    let synced = false;
    const seen = t.schema.fields.map(() => new Map<unknown, string>());
    for (const [pk, p] of entries) {
      if (p.base >= 0) {
        // The version it replaces must still be its pk's newest: a commit that superseded or
        // deleted it set its `next` (under this lock, so the load is current). One load, where a
        // pk lookup walks the index. No commit can add a version of the pk without linking it:
        // a create needs the pk absent at the latest commit (below), and base is live there.
        if (t.nextOf(p.base) !== -1) return { ok: false, reason: 'conflict', message: `${t.schema.name} row ${pk} changed since snapshot ${snapshot}` };
      } else {
        if (!synced) index.sync();
        synced = true;
        if (index.lookupPk(pk, latest) !== -1) return { ok: false, reason: 'unique', message: `${t.schema.name}: a row with pk ${pk} already exists` };
      }
      if (p.row === null) continue;
      for (let k = 0; k < t.schema.fields.length; k++) {
        const f = t.schema.fields[k]!;
        const value = p.row[f.name];
        if (!f.unique || value === null) continue;
        const clash = (): CommitResult => ({ ok: false, reason: 'unique', message: `${t.schema.name}.${f.name}: value ${JSON.stringify(value)} already exists (unique field)` });
        if (seen[k]!.has(value)) return clash();
        seen[k]!.set(value, pk);
        if (!synced) index.sync();
        synced = true;
        for (const v of index.lookupField(k, value, latest)) {
          const other = t.readPk(v);
          if (other !== pk && !mine.has(other)) return clash();
        }
      }
    }
  }
  return undefined;
}

/** Under the lock: why a read of `reads` is no longer current at the latest commit, or undefined. */
function readConflict(engine: Engine, reads: ReadSet, snapshot: number): string | undefined {
  const control = engine.control;
  for (const id of reads.tables.keys()) {
    if (control.lastWrite(id) > snapshot) return `${engine.tables[id]!.schema.name} changed since snapshot ${snapshot}`;
  }
  for (const [id, buckets] of reads.keys) {
    if (control.lastWrite(id) <= snapshot) continue; // nothing in the table changed: no key did
    for (const b of buckets.keys()) {
      if (engine.stamps.get(b) > snapshot) return `${engine.tables[id]!.schema.name} changed since snapshot ${snapshot}: a row or key it read was written`;
    }
  }
  return undefined;
}

/**
 * Under the lock, after {@link validateCommit} found a conflict, for a transaction that marks steps
 * (transaction.ts `step()`): the first step whose reads or writes a commit after `snapshot` changed
 * (the minimum over every failing entry, not the first found). Every earlier step read only keys
 * and tables no commit in (snapshot, latest] wrote, and replaces only versions that are still their
 * row's newest: those steps are valid at the latest commit. `writeStep(id, pk)`: the step of the
 * first buffered write of that row. Returns 0 when nothing is valid.
 */
export function firstConflictStep(engine: Engine, plan: readonly TablePlan[], snapshot: number, reads: ReadSet, writeStep: (id: number, pk: string) => number): number {
  const control = engine.control;
  let first = Infinity;
  for (const [id, step] of reads.tables) if (step < first && control.lastWrite(id) > snapshot) first = step;
  for (const [id, buckets] of reads.keys) {
    if (control.lastWrite(id) <= snapshot) continue;
    for (const [b, step] of buckets) if (step < first && engine.stamps.get(b) > snapshot) first = step;
  }
  for (const { id, entries } of plan) {
    if (control.lastWrite(id) <= snapshot) continue; // no commit replaced any of its versions
    const t = engine.tables[id]!;
    for (const [pk, p] of entries) if (p.base >= 0 && t.nextOf(p.base) !== -1) first = Math.min(first, writeStep(id, pk));
  }
  return first === Infinity ? 0 : first;
}

/** Under the lock, after {@link validateCommit}: the publish order of the module comment. */
export function publishCommit(engine: Engine, plan: readonly TablePlan[]): { ok: true; commitId: number; changes: ChangeSet } {
  const control = engine.control;
  const commitId = control.commitId() + 1;
  const stamped: number[] = [];
  const writes = { tables: plan.map((p) => p.id), keys: stamped, pks: plan.map((p) => p.entries.map(([pk]) => pk)) };
  const changes: ChangeSet = { commitId, tables: {}, written: writes };
  for (const { id, entries } of plan) {
    const tc = { upserts: [] as Array<Record<string, unknown>>, deletes: [] as string[] };
    for (const [pk, p] of entries) {
      if (p.row === null) tc.deletes.push(pk);
      else tc.upserts.push({ ...p.row });
    }
    changes.tables[engine.tables[id]!.schema.name] = tc;
  }
  Atomics.store(control.i64, kPendingCommit, BigInt(commitId));
  Atomics.store(control.i32, kDirty, 1);
  const starts: number[] = [];
  try {
    engine.beforePublish?.(changes);
    const total = plan.reduce((n, p) => n + p.entries.length, 0);
    let written = 0;
    for (const { id, entries } of plan) {
      const t = engine.tables[id]!;
      const start = t.rowCount();
      starts.push(start);
      for (let i = 0; i < entries.length; i++) {
        const [pk, p] = entries[i]!;
        t.writeVersion(start + i, pk, p.row);
        if (++written === Math.ceil(total / 2)) testHooks.afterHalfSlots?.();
      }
    }
    plan.forEach(({ id, entries }, j) => engine.tables[id]!.setBegin(starts[j]!, starts[j]! + entries.length, commitId));
  } catch (err) {
    // Nothing is published yet (no row count moved): clearing the dirty flag is enough.
    Atomics.store(control.i32, kDirty, 0);
    throw err;
  }
  plan.forEach(({ id, entries }, j) => Atomics.store(control.i32, i32RowCount(id), starts[j]! + entries.length));
  plan.forEach(({ id, entries }, j) => {
    const t = engine.tables[id]!;
    let dead = 0;
    entries.forEach(([pk, p], i) => {
      if (p.row === null) dead++; // the tombstone itself
      if (p.base >= 0) {
        t.setNext(p.base, starts[j]! + i);
        dead++;
      }
      engine.stamps.stampWrite(t, pk, p.row, p.base, commitId, stamped);
    });
    if (dead > 0) Atomics.add(control.i32, i32DeadVersions(id), dead);
    Atomics.store(control.i64, i64LastWrite(id), BigInt(commitId));
  });
  testHooks.beforeGlobalPublish?.();
  Atomics.store(control.i64, kCommitId, BigInt(commitId)); // <- publish point
  Atomics.store(control.i32, kDirty, 0);
  engine.afterPublish?.(changes);
  return { ok: true, commitId, changes };
}
