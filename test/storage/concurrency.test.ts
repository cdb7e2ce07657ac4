/**
 * Stress tests with real worker threads running at once against one shared store: no lost
 * updates, no duplicate registrations, no torn rows or half-committed transactions while tables
 * grow through several buffer growths.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SharedStore } from '../../src/storage/store.js';
import { Gate, spawnTask } from '../helpers/threads.js';
import { Account, Counter, User, consistent, schema, tuple } from './fixtures/schema.js';

const WORKER = new URL('./fixtures/worker.js', import.meta.url);

async function runAll<T>(store: SharedStore, jobs: Array<{ task: string; params: unknown }>, gate = new Gate()): Promise<T[]> {
  const workers = jobs.map((job) => spawnTask<T>(WORKER, { handles: store.handles, gate: gate.sab, ...job }));
  await gate.ready(jobs.length);
  gate.open();
  return Promise.all(workers.map((w) => w.done));
}

describe('concurrent transactions (4 worker threads)', () => {
  it('4 threads x 10,000 read-increment-write transactions lose no update', async () => {
    const store = SharedStore.create(schema(), { initialRows: 64, maxBytesPerBuffer: 64 << 20 });
    store.bulkLoad(Counter, [{ pk: 'counter', key: 'hits', value: 0 }]);
    const results = await runAll<number>(store, Array.from({ length: 4 }, () => ({ task: 'increment', params: { pk: 'counter', n: 10_000 } })));
    assert.deepEqual(results, [10_000, 10_000, 10_000, 10_000]);
    const value = store.runSync((db) => db.get(Counter, 'counter')!.value).value;
    assert.equal(value, 40_000);
    assert.equal(store.stats().tables.Counter?.rows, 1);
    assert.equal(store.stats().tables.Counter?.versions, 40_001);
  });

  it('10,000 concurrent "register unless the email exists" create exactly one row per email', async () => {
    const store = SharedStore.create(schema(), { initialRows: 64, maxBytesPerBuffer: 64 << 20 });
    const emails = Array.from({ length: 40 }, (_, i) => `user${i}@example.com`);
    let seed = 7;
    const pick = (): string => emails[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % emails.length]!;
    const lists = Array.from({ length: 4 }, () => Array.from({ length: 2500 }, pick));
    const created = await runAll<number>(store, lists.map((list) => ({ task: 'register', params: { emails: list } })));
    const used = new Set(lists.flat());
    assert.equal(created.reduce((a, b) => a + b, 0), used.size);
    const rows = [...store.scan(User)];
    assert.equal(rows.length, used.size);
    assert.deepEqual(new Set(rows.map((r) => r.email)), used);
    // The unique index agrees with the rows.
    store.runSync((db) => {
      for (const email of used) assert.equal(db.count(User, { email }), 1);
    });
  });

  it('readers never see a torn row or a half-committed transaction while writers grow the tables', async () => {
    const store = SharedStore.create(schema(), { initialRows: 16, maxBytesPerBuffer: 64 << 20 });
    const accounts = 50;
    store.bulkLoad(Account, Array.from({ length: accounts }, (_, i) => ({ ...tuple(i), balance: 1000 })));
    const total = accounts * 1000;
    const bytesBefore = store.stats().tables.Account!.bytes;
    const gate = new Gate();
    const spawn = <T>(task: string, params: unknown) => spawnTask<T>(WORKER, { handles: store.handles, gate: gate.sab, task, params });
    const writers = [spawn<number>('transfer', { n: 1000, seed: 1 }), spawn<number>('transfer', { n: 1000, seed: 2 })];
    type Check = { snapshots: number; violations: string[]; maxRows: number };
    const readers = [spawn<Check>('check', { total }), spawn<Check>('check', { total })];
    await gate.ready(4);
    gate.open();
    assert.deepEqual(await Promise.all(writers.map((w) => w.done)), [1000, 1000]);
    gate.stop();
    const checks = await Promise.all(readers.map((r) => r.done));
    for (const c of checks) {
      assert.deepEqual(c.violations, []);
      assert.ok(c.snapshots >= 3, `reader checked ${c.snapshots} snapshots`);
    }
    const stats = store.stats().tables.Account!;
    assert.equal(stats.rows, accounts + 2 * 100);
    assert.ok(checks.some((c) => c.maxRows > accounts), 'readers saw the table grow');
    // Several doublings happened while readers were reading.
    assert.ok(stats.bytes >= bytesBefore * 16, `bytes ${bytesBefore} -> ${stats.bytes}`);
    const final = [...store.scan(Account)];
    assert.equal(final.reduce((s, r) => s + (r.balance as number), 0), total);
    assert.ok(final.every(consistent));
  });
});
