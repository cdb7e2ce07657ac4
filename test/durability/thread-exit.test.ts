/**
 * `wal.afterThreadExit` never blocks the main thread: when a worker died between its log append
 * and its publish while another worker holds the commit lock, the call returns at once, the event
 * loop keeps turning, and the abort record is written once the lock is free (or left to the next
 * committer, which writes it itself). The same holds for a snapshot's segment switch.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { snapshotDataFolder } from '../../src/storage/snapshot.js';
import type { SharedStore } from '../../src/storage/store.js';
import type { Wal } from '../../src/storage/wal.js';
import { scanSegment, type WalRecord } from '../../src/storage/wal-format.js';
import { spawnTask } from '../helpers/threads.js';
import { Account, schema, tuple } from '../storage/fixtures/schema.js';
import { diedMidCommit, openFolder, segmentFiles } from '../storage/fixtures/wal-helpers.js';
import { tempDir } from '../helpers/temp-dir.js';

const HOLDER = new URL('../fixtures/durability/lock-holder.js', import.meta.url);

async function logRecords(dir: string): Promise<Array<[string, number]>> {
  const out: WalRecord[] = [];
  for (const file of await segmentFiles(dir)) await scanSegment(file, (r) => void out.push(r));
  return out.map((r) => [r.type, r.commitId]);
}

/** A live worker holding the commit lock until `release()`. */
async function lockHolder(store: SharedStore, wal: Wal, commit: boolean) {
  const hold = new Int32Array(new SharedArrayBuffer(4));
  const task = spawnTask<number | null>(HOLDER, { handles: store.handles, wal: wal.handles, hold: hold.buffer, commit });
  await task.message((m) => 'holding' in m);
  return {
    done: task.done,
    release() {
      Atomics.store(hold, 0, 1);
      Atomics.notify(hold, 0);
    },
  };
}

/** Counts event-loop turns until `p` settles: proof that the main thread was not blocked. */
function turnsUntil(p: Promise<unknown>): { turns: () => number; settled: () => boolean } {
  let turns = 0;
  let settled = false;
  void p.finally(() => (settled = true)).catch(() => undefined);
  const tick = () => {
    turns++;
    if (!settled) setImmediate(tick);
  };
  setImmediate(tick);
  return { turns: () => turns, settled: () => settled };
}

async function nextTurns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('afterThreadExit never blocks the main thread', () => {
  it('returns at once while another worker holds the commit lock; writes the abort record once the lock is free', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    await using opened = await openFolder(schema(), dir, { fsync: 'always' });
    const { store, wal } = opened;
    const dead = await diedMidCommit(store, wal);
    const holder = await lockHolder(store, wal, false);
    const started = performance.now();
    const pending = wal.afterThreadExit(store, dead);
    const syncMs = performance.now() - started;
    assert.ok(syncMs < 50, `afterThreadExit returned after ${syncMs.toFixed(1)} ms (the old code spun up to 5000 ms)`);
    const loop = turnsUntil(pending);
    await nextTurns(20);
    assert.equal(loop.settled(), false, 'still waiting for the lock');
    assert.ok(loop.turns() >= 20, `the event loop kept turning (${loop.turns()} turns)`);
    assert.deepEqual((await logRecords(dir)).slice(-1), [['commit', 2]], 'no abort record while the lock is held');
    holder.release();
    assert.equal(await holder.done, null);
    assert.equal(await pending, true, 'written by the retry');
    await wal.flush();
    assert.deepEqual((await logRecords(dir)).slice(-2), [['commit', 2], ['abort', 2]]);
  });

  it('leaves the abort record to the next committer when it gets the lock first (written once)', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    await using opened = await openFolder(schema(), dir, { fsync: 'always' });
    const { store, wal } = opened;
    const dead = await diedMidCommit(store, wal);
    const holder = await lockHolder(store, wal, true);
    const pending = wal.afterThreadExit(store, dead);
    holder.release();
    assert.equal(await holder.done, 2, 'the dead commit id is reused');
    assert.equal(await pending, false, 'the committer wrote it');
    const records = await logRecords(dir);
    assert.deepEqual(records.slice(-3), [['commit', 2], ['abort', 2], ['commit', 2]]);
    assert.equal(records.filter(([type]) => type === 'abort').length, 1);
  });

  it('a snapshot waits for a held commit lock without blocking the event loop', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    await using opened = await openFolder(schema(), dir, { fsync: 'everysec' });
    const { store, wal } = opened;
    store.runSync((db) => db.create(Account, { pk: 'a', ...tuple(1), balance: 1 }));
    const holder = await lockHolder(store, wal, true);
    const snapshot = snapshotDataFolder(store, wal, dir);
    const loop = turnsUntil(snapshot);
    await nextTurns(20);
    assert.equal(loop.settled(), false, 'the snapshot waits for the lock');
    holder.release();
    assert.equal(await holder.done, 2);
    const report = await snapshot;
    assert.ok(loop.turns() >= 20);
    assert.equal(report.tables.Account!.rows, 2, 'taken after the holder committed');
  });
});
