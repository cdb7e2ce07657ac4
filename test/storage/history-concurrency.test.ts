/**
 * Publication history under real concurrency: 4 worker threads publish 2,500 times each to one
 * channel, while some of their transactions also update a shared counter (real conflicts) and a
 * reader thread checks every snapshot. Offsets 1..10,000 come out exactly once, in each thread's
 * order; publishing alone never makes a transaction retry; retention by size and age holds.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PUBLICATION_TABLE, withHistory } from '../../src/storage/history-tables.js';
import { SharedStore } from '../../src/storage/store.js';
import { Gate, spawnTask } from '../helpers/threads.js';
import { Counter, schema } from './fixtures/schema.js';
import { POLICIES } from './fixtures/history-policies.js';
import type { PublishReport, ReadReport } from './fixtures/history-worker.js';

const WORKER = new URL('./fixtures/history-worker.js', import.meta.url);
const THREADS = 4;
const PER_THREAD = 2_500;

describe('history with 4 publishing threads', () => {
  it('offsets 1..10,000 exactly once, in each thread order, no retry caused by publishing, retention bounded', async () => {
    const store = SharedStore.create(withHistory(schema()), { initialRows: 64, maxBytesPerBuffer: 256 << 20 });
    store.historyPolicy = (channel) => POLICIES[channel] ?? null;
    store.bulkLoad(Counter, [{ pk: 'hits', key: 'hits', value: 0 }]);
    const gate = new Gate();
    const spawn = <T>(task: string, params: unknown) => spawnTask<T>(WORKER, { handles: store.handles, gate: gate.sab, task, params });
    const writers = Array.from({ length: THREADS }, (_, thread) => spawn<PublishReport>('publish', { thread, n: PER_THREAD }));
    const reader = spawn<ReadReport>('read', {});
    await gate.ready(THREADS + 1);
    gate.open();
    const reports = await Promise.all(writers.map((w) => w.done));
    gate.stop();
    const read = await reader.done;

    // Every offset exactly once.
    const all = reports.flatMap((r) => r.offsets).sort((a, b) => a - b);
    assert.equal(all.length, THREADS * PER_THREAD);
    assert.ok(all.every((o, k) => o === k + 1), 'offsets are exactly 1..10,000');
    // Each thread's publications in its own order.
    for (const r of reports) assert.ok(r.offsets.every((o, k) => k === 0 || o > r.offsets[k - 1]!), 'a thread sees its offsets increase');
    // Publishing never caused a retry; the counter's conflicts did (and were retried).
    assert.deepEqual(reports.map((r) => r.publishOnlyRetries), [0, 0, 0, 0]);
    const conflicts = reports.flatMap((r) => r.conflicts);
    assert.ok(conflicts.every((m) => m.startsWith('Counter changed since snapshot')), `conflicts name only the counter: ${conflicts.find((m) => !m.startsWith('Counter'))}`);
    const counted = store.runSync((db) => db.get(Counter, 'hits')!.value).value;
    assert.equal(counted, THREADS * Math.ceil(PER_THREAD / 4), 'no lost counter update');

    // The stored history agrees: texts in offset order keep each thread's order; nothing rolled back is there.
    const page = store.history('Public')!;
    assert.deepEqual([page.oldest, page.offset, page.items.length], [1, 10_000, 10_000]);
    const lastOf = new Map<number, number>();
    for (const item of page.items) {
      const { t, i, dropped } = JSON.parse(item.text) as { t: number; i: number; dropped?: boolean };
      assert.equal(dropped, undefined, 'a rolled-back publication is not stored');
      assert.ok(i > (lastOf.get(t) ?? -1), `thread ${t}: item ${i} after ${lastOf.get(t)}`);
      lastOf.set(t, i);
    }
    for (const r of reports) {
      const fromStore = page.items.filter((x) => (JSON.parse(x.text) as { t: number }).t === reports.indexOf(r)).map((x) => x.offset);
      assert.deepEqual(fromStore, r.offsets, 'the thread got the offsets its rows were stored under');
    }

    // Readers saw contiguous, bounded history at every snapshot while it grew.
    assert.deepEqual(read.violations, []);
    assert.ok(read.snapshots >= 3 && read.maxPublic > 0, `reader checked ${read.snapshots} snapshots`);

    // Size: Recent keeps exactly its last 500.
    const recent = store.history('Recent')!;
    assert.deepEqual([recent.oldest, recent.offset, recent.items.length], [9_501, 10_000, 500]);
    // Age: after a sweep nothing older than 0.2 s (from now) is kept on Aged.
    const aged = store.history('Aged')!;
    assert.equal(aged.offset, THREADS * Math.ceil(PER_THREAD / 10));
    const now = Date.now() + 1000;
    const sweep = store.trimHistory(now);
    assert.ok(sweep !== null && !sweep.more);
    const after = store.history('Aged')!;
    assert.deepEqual([after.items.length, after.oldest], [0, after.offset + 1]);
    assert.equal(store.stats().tables[PUBLICATION_TABLE]!.rows, 10_000 + 500);
  });
});
