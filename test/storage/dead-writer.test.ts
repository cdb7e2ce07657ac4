/**
 * A worker terminated while holding the commit lock mid-commit: the main thread frees the lock
 * with releaseIfHeldBy, the next committer repairs, no half-written row ever becomes visible, and
 * other writers go on.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SharedStore } from '../../src/storage/store.js';
import { Gate, spawnTask } from '../helpers/threads.js';
import { Account, consistent, schema, tuple } from './fixtures/schema.js';

const WORKER = new URL('./fixtures/worker.js', import.meta.url);
const ACCOUNTS = 20;
const TOTAL = ACCOUNTS * 1000;

function setup(): { store: SharedStore; gate: Gate } {
  const store = SharedStore.create(schema(), { initialRows: 16, maxBytesPerBuffer: 16 << 20 });
  store.bulkLoad(Account, Array.from({ length: ACCOUNTS }, (_, i) => ({ pk: `acc${String(i).padStart(2, '0')}`, ...tuple(i), balance: 1000 })));
  return { store, gate: new Gate() };
}

/** The committed state is the pre-stall state or a later consistent one, never a partial commit. */
function assertConsistent(store: SharedStore, rows: number): void {
  const all = [...store.scan(Account)];
  assert.equal(all.length, rows);
  assert.equal(all.reduce((s, r) => s + (r.balance as number), 0), TOTAL);
  assert.ok(all.every(consistent), 'no torn row');
  assert.ok(!all.some((r) => r.a === -1 || r.balance === 1_000_000), 'no row of the dead commit');
}

async function stallWorker(store: SharedStore, gate: Gate, at: 'afterHalfSlots' | 'beforeGlobalPublish') {
  const stall = spawnTask<never>(WORKER, { handles: store.handles, gate: gate.sab, task: 'stall', params: { at } });
  const stalled = stall.message((m) => 'stalled' in m);
  await gate.ready(1);
  gate.open();
  await stalled;
  return stall;
}

describe('dead writer', () => {
  it('a worker killed after writing half its slots: lock released, repaired by the next worker commit', async () => {
    const { store, gate } = setup();
    const stall = await stallWorker(store, gate, 'afterHalfSlots');
    const deadThread = stall.worker.threadId;
    assertConsistent(store, ACCOUNTS);
    assert.equal(store.releaseIfHeldBy(deadThread + 1000), false, 'only the holder is released');
    assert.throws(() => store.releaseIfHeldBy(-1), /threadId must be a non-negative integer/);

    // Another writer starts while the lock is held by the stalled thread: it waits for the lock.
    const writer = spawnTask<number>(WORKER, { handles: store.handles, gate: gate.sab, task: 'write', params: { marker: 777 } });
    await writer.message((m) => 'writing' in m);
    assert.equal(store.snapshot(), 1);

    await stall.worker.terminate();
    assert.equal(store.releaseIfHeldBy(deadThread), true);
    assert.equal(store.releaseIfHeldBy(deadThread), false);
    const commitId = await writer.done;
    assert.equal(commitId, 2, 'the dead commit id was never published and is reused');
    assertConsistent(store, ACCOUNTS + 1);
    const stats = store.stats().tables.Account!;
    assert.equal(stats.versions, ACCOUNTS + 3, 'the dead slots were truncated and reused');
    assert.equal(stats.rows, ACCOUNTS + 1);
    // The lock is free: the main thread can commit (it spins, never waits).
    store.runSync((db) => db.update(Account, 'acc05', { ...tuple(5), balance: 1000 }));
    assert.equal(store.snapshot(), 3);
    assert.equal(store.runSync((db) => db.count(Account, { c: '777' })).value, 3);
  });

  it('a worker killed after publishing row counts and next links: readers see nothing, the main thread repairs', async () => {
    const { store, gate } = setup();
    // The main thread's index catches up while the dead slots are counted (to test the rebuild).
    const stall = await stallWorker(store, gate, 'beforeGlobalPublish');
    assert.equal(store.stats().tables.Account!.versions, ACCOUNTS + 20, 'row count already includes the dead slots');
    assertConsistent(store, ACCOUNTS);
    const peek = store.begin();
    assert.equal(peek.db.count(Account), ACCOUNTS);
    assert.equal(peek.db.get(Account, 'acc00')?.balance, 1000);
    peek.abort();

    const deadThread = stall.worker.threadId;
    await stall.worker.terminate();
    assert.equal(store.releaseIfHeldBy(deadThread), true);
    const { value: created } = store.runSync((db) => {
      db.update(Account, 'acc00', { ...tuple(100), balance: 999 });
      db.update(Account, 'acc01', { ...tuple(101), balance: 1001 });
      return db.create(Account, { ...tuple(102), balance: 0 }).pk;
    });
    assert.equal(store.snapshot(), 2);
    assertConsistent(store, ACCOUNTS + 1);
    assert.equal(store.stats().tables.Account!.versions, ACCOUNTS + 3);
    assert.equal(store.stats().tables.Account!.rows, ACCOUNTS + 1);
    store.runSync((db) => {
      assert.equal(db.get(Account, 'acc00')?.balance, 999);
      assert.equal(db.get(Account, 'acc01')?.a, 101);
      assert.equal(db.get(Account, created)?.a, 102);
      assert.equal(db.count(Account, { a: -1 }), 0);
      assert.equal(db.count(Account), ACCOUNTS + 1);
    });
    // A worker attaching now agrees.
    const reader = spawnTask<{ violations: string[]; maxRows: number }>(WORKER, { handles: store.handles, gate: gate.sab, task: 'check', params: { total: TOTAL } });
    gate.stop();
    const check = await reader.done;
    assert.deepEqual(check.violations, []);
    assert.equal(check.maxRows, ACCOUNTS + 1);
  });
});
