/**
 * @module storage/reclaim
 * Reclamation of superseded row versions while the server runs: tables are compacted in place,
 * on the main thread, at a moment when no thread reads (readers.ts), under the commit lock.
 *
 * WHY COMPACTION, NOT A FREE LIST
 *
 * Every update appends a version; the old one stays readable for transactions at older
 * snapshots. A free list of dead slots cannot be reused here: string, ref and list columns are
 * Arrow offsets + bytes, where slot i owns the byte range [offset[i], offset[i+1]), so a new
 * version of another length does not fit a freed slot. Instead, when enough of a table's slots
 * are dead, the live versions are moved down over the dead ones, in slot order (memmove of each
 * live version's bytes, offsets rewritten), and the row count drops to the number of live rows.
 * Slots stay in commit order, so every rule that relies on it (the visible prefix of a snapshot,
 * zero-copy Arrow views of a table without dead versions) still holds.
 *
 * Moving a version changes its slot number, which open transactions and every thread's indexes
 * hold: so compaction waits until no store instance on any thread has a transaction or pin open
 * (the drain of readers.ts; at most {@link DRAIN_MS}, else it gives up and tries again later),
 * takes the commit lock, repairs a dead writer's commit if any, compacts, and bumps the table's
 * compaction epoch: each thread rebuilds that table's indexes on its next transaction touching
 * it (indexes.ts), as after a dead-writer repair. A version is dropped only if it is superseded
 * or a tombstone at the latest commit: with no reader open, every later transaction starts at or
 * after it, so none can see the version again. Commit ids, key stamps and the write-ahead log are
 * untouched: a compaction changes where rows live, never what they are.
 *
 * Only the main thread compacts: it is never terminated mid-step (a worker can be), and a
 * half-moved table could not be repaired.
 */
import { isMainThread } from 'node:worker_threads';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { CommitLock } from './commit-lock.js';
import { i32DeadVersions, i32RowCount, i32TableEpoch, type ControlBlock } from './layout.js';
import type { ReaderSlot } from './readers.js';
import type { SharedTable } from './table.js';

/**
 * A table is compacted once it has at least this many dead versions (default of the option
 * `minDeadVersions`): each compaction briefly stops the workers' new transactions, so a hot table
 * is compacted every 8,192 superseded versions (about 1 MB of a small row), not at every update ...
 */
export const MIN_DEAD_VERSIONS = 8192;
/**
 * ... and at least this fraction of its slots are dead: each compaction costs O(slots) plus an
 * index rebuild per thread, so it must free a share of the table (amortized O(1) per update), and
 * a table holds at most 4/3 of its live rows or its live rows plus {@link MIN_DEAD_VERSIONS}
 * dead versions, whichever is more (plus what accrues between two checks).
 */
export const DEAD_SHARE = 1 / 4;
/**
 * How long a reclamation waits for open readers to finish before it gives up and backs off
 * (workers that begin a transaction meanwhile wait): longer than a worker job of 256 short calls
 * on a loaded machine, short enough that a transaction kept open (an async Signal awaiting I/O)
 * costs the other workers little.
 */
export const DRAIN_MS = 50;

/** What one {@link VersionReclaim.step} did. */
export type ReclaimStep =
  /** No table needs it. */
  | { state: 'idle' }
  /** Waiting for open readers: call again on a later event-loop turn (setImmediate). */
  | { state: 'draining' }
  /** A read stayed open (this thread's pin or scan, or past the drain time): try again later. */
  | { state: 'busy' }
  /** Compacted: the versions freed, per table name. */
  | { state: 'done'; freed: Record<string, number> };

/** When a reclamation compacts a table: with `force`, any dead version; else see {@link MIN_DEAD_VERSIONS}. */
export interface ReclaimOptions {
  force?: boolean;
  minDeadVersions?: number;
}

/** Whether table `t` is due. */
function isDue(control: ControlBlock, t: SharedTable, options: ReclaimOptions): boolean {
  const dead = control.deadVersions(t.id);
  if (options.force === true) return dead > 0;
  return dead >= (options.minDeadVersions ?? MIN_DEAD_VERSIONS) && dead >= t.rowCount() * DEAD_SHARE;
}

/**
 * Under the lock, with no reader anywhere: moves the live versions of `t` down over the dead ones
 * and publishes the new row count, a dead count of 0 and a new compaction epoch. Returns the
 * versions freed.
 */
export function compactTable(control: ControlBlock, t: SharedTable): number {
  const rows = t.rowCount();
  let kept = 0;
  for (let v = 0; v < rows; v++) {
    if (t.nextOf(v) !== -1 || t.isTombstone(v)) continue;
    if (kept !== v) t.moveVersion(v, kept);
    kept++;
  }
  // Plain writes above; these stores (and the drain flag's drop after them) publish them.
  Atomics.store(control.i32, i32RowCount(t.id), kept);
  Atomics.store(control.i32, i32DeadVersions(t.id), 0);
  Atomics.add(control.i32, i32TableEpoch(t.id), 1);
  // Wakes whoever awaits this table's compaction on its epoch word (Atomics.waitAsync: tests, tools).
  Atomics.notify(control.i32, i32TableEpoch(t.id));
  return rows - kept;
}

/** What the reclaimer needs from the store. */
export interface ReclaimParts {
  readonly control: ControlBlock;
  readonly tables: readonly SharedTable[];
  readonly readers: ReaderSlot;
  readonly lock: CommitLock;
  /** Under the lock: undoes a dead writer's unpublished commit, if any. */
  repairIfDirty(): void;
}

/** The main thread's reclaimer state: one drain at a time, stepped by {@link step}. */
export class VersionReclaim {
  readonly #parts: ReclaimParts;
  #deadline = 0;

  constructor(parts: ReclaimParts) {
    this.#parts = parts;
  }

  /**
   * One non-blocking step: raises the drain flag when a table is due, compacts once no reader is
   * open, drops the flag when done or giving up.
   */
  step(options: ReclaimOptions): ReclaimStep {
    if (!isMainThread) throw new LexiconsError(ErrorCode.TXN, 'reclaim: only the main thread reclaims versions (a worker can be terminated mid-compaction)');
    const { control, tables, readers } = this.#parts;
    const due = tables.filter((t) => isDue(control, t, options));
    if (due.length === 0) return this.stop('idle');
    if (readers.open) return this.stop('busy'); // this thread's own pin or scan: do not stall the workers for it
    if (!readers.draining) {
      readers.drain(true);
      this.#deadline = performance.now() + DRAIN_MS;
    }
    const freed = readers.anyOpen() ? null : this.#compact(due);
    if (freed !== null) {
      this.stop('done');
      return { state: 'done', freed };
    }
    return performance.now() < this.#deadline ? { state: 'draining' } : this.stop('busy');
  }

  /** Drops the drain flag if raised (workers waiting to begin go on). */
  stop<S extends 'idle' | 'busy' | 'done'>(state: S): { state: S } {
    if (this.#parts.readers.draining) this.#parts.readers.drain(false);
    return { state };
  }

  /** With no reader open: takes the lock (only tries) and compacts; null if the lock is busy. */
  #compact(due: readonly SharedTable[]): Record<string, number> | null {
    const { control, lock } = this.#parts;
    const owner = {};
    if (lock.tryOnly(() => lock.lock(owner) || null) === null) return null;
    try {
      this.#parts.repairIfDirty();
      const freed: Record<string, number> = {};
      for (const t of due) freed[t.schema.name] = compactTable(control, t);
      return freed;
    } finally {
      lock.unlock(owner);
    }
  }
}

/** The store calls of {@link startReclaimer} (SharedStore implements them). */
export interface Reclaimable {
  reclaim(options?: ReclaimOptions): ReclaimStep;
  stopReclaim(): void;
}

/** A busy reclaimer waits this long at most before it tries again (doubling from the interval). */
const MAX_BACKOFF_MS = 5000;

/**
 * The runtime's periodic reclamation (main thread): checks every `intervalMs` whether a table is
 * due, drains on the next event-loop turns, backs off while reads stay open. Timers are unref'd.
 */
export function startReclaimer(store: Reclaimable, options: { intervalMs?: number; minDeadVersions?: number; onReclaim?: (freed: Record<string, number>) => void; onError?: (err: unknown) => void } = {}): { stop(): void } {
  const interval = options.intervalMs ?? 50;
  let backoff = interval;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let immediate: ReturnType<typeof setImmediate> | undefined;
  let stopped = false;
  const tick = (): void => {
    if (stopped) return;
    let step: ReclaimStep;
    try {
      step = store.reclaim({ minDeadVersions: options.minDeadVersions });
    } catch (err) {
      options.onError?.(err);
      step = { state: 'busy' };
    }
    if (step.state === 'draining') {
      immediate = setImmediate(tick);
      return;
    }
    if (step.state === 'done') options.onReclaim?.(step.freed);
    if (stopped) return; // onReclaim may stop it
    backoff = step.state === 'busy' ? Math.min(MAX_BACKOFF_MS, backoff * 2) : interval;
    timer = setTimeout(tick, backoff);
    timer.unref();
  };
  timer = setTimeout(tick, interval);
  timer.unref();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      if (immediate !== undefined) clearImmediate(immediate);
      store.stopReclaim();
    },
  };
}
