/**
 * Reclamation of superseded versions (reclaim.ts, readers.ts) on one thread: compaction keeps
 * exactly the live rows with every column kind, indexes and unique checks work after it, binary
 * snapshot files and Arrow views agree, open reads and pins hold it off, and 1M updates of one row
 * keep the table's shared bytes under a fixed bound.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { isLexiconsError } from '../../src/errors.js';
import { loadTableFile } from '../../src/storage/arrow-snapshot-load.js';
import { MIN_DEAD_VERSIONS, startReclaimer, type ReclaimStep } from '../../src/storage/reclaim.js';
import { writeSnapshotJob } from '../../src/storage/snapshot-files.js';
import { SharedStore } from '../../src/storage/store.js';
import { prng } from '../helpers/prng.js';
import { tempDir } from '../helpers/temp-dir.js';
import { Hot, hotRow, hotRowProblem, reclaimSchema } from './fixtures/reclaim-schema.js';

function fresh(rows: number): SharedStore {
  const store = SharedStore.create(reclaimSchema(), { initialRows: 64 });
  store.bulkLoad(Hot, Array.from({ length: rows }, (_, i) => ({ pk: `r${i}`, ...hotRow(`r${i}`, i % 4, i) })));
  return store;
}

function setBalance(store: SharedStore, pk: string, balance: number): void {
  store.runSync((db) => {
    const row = db.get(Hot, pk)!;
    db.update(Hot, pk, hotRow(pk, row.group as number, balance));
  });
}

/** Steps a reclamation on later event-loop turns until it settles (what startReclaimer does). */
async function settle(store: SharedStore, force = true): Promise<ReclaimStep> {
  for (;;) {
    const step = store.reclaim({ force });
    if (step.state !== 'draining') return step;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const sorted = (rows: Array<Record<string, unknown>>) => [...rows].sort((a, b) => String(a.pk).localeCompare(String(b.pk)));

describe('version reclamation', () => {
  it('compacts to exactly the live rows, every column kind intact, in commit order', () => {
    const store = fresh(40);
    const random = prng(7);
    const balances = new Map(Array.from({ length: 40 }, (_, i) => [`r${i}`, i]));
    for (let i = 0; i < 2000; i++) {
      const pk = `r${Math.floor(random() * 40)}`;
      if (!balances.has(pk)) continue;
      if (random() < 0.02) {
        store.runSync((db) => db.drop(Hot, pk));
        balances.delete(pk);
        continue;
      }
      const balance = Math.floor(random() * 1000) - 500;
      setBalance(store, pk, balance);
      balances.set(pk, balance);
    }
    store.runSync((db) => db.create(Hot, { pk: 'late', ...hotRow('late', 9, 77) }));
    balances.set('late', 77);
    const before = sorted([...store.scan(Hot)]);
    const { versions } = store.stats().tables.Hot!;
    const step = store.reclaim({ force: true });
    assert.equal(step.state, 'done');
    assert.equal(step.state === 'done' && step.freed.Hot, versions - balances.size);
    assert.deepEqual(store.stats().tables.Hot, { rows: balances.size, versions: balances.size, bytes: store.stats().tables.Hot!.bytes });
    const after = [...store.scan(Hot)];
    assert.deepEqual(sorted(after), before);
    for (const row of after) assert.equal(hotRowProblem(row), undefined);
    assert.equal(after.at(-1)!.pk, 'late', 'slots stay in commit order');
    assert.deepEqual(new Map(after.map((r) => [r.pk, r.balance])), balances);
  });

  it('indexes, unique checks and writes work after a compaction (every thread rebuilds by the epoch)', () => {
    const store = fresh(8);
    for (let i = 0; i < 50; i++) setBalance(store, 'r3', 100 + i);
    store.runSync((db) => db.drop(Hot, 'r5'));
    assert.equal(store.reclaim({ force: true }).state, 'done');
    store.runSync((db) => {
      assert.equal(db.get(Hot, 'r3')!.balance, 149);
      assert.equal(db.get(Hot, 'r5'), null);
      assert.equal(db.get(Hot, { code: 'code-r3' })!.pk, 'r3');
      assert.deepEqual(db.query(Hot, { group: 1 }).map((r) => r.pk).sort(), ['r1'], 'r5 (group 1) was deleted');
      assert.equal(db.count(Hot), 7);
    });
    assert.throws(() => store.runSync((db) => db.create(Hot, { pk: 'x', ...hotRow('x', 0, 1), code: 'code-r3' })), (err) => isLexiconsError(err) && /unique/.test(err.message));
    store.runSync((db) => db.create(Hot, { pk: 'r5', ...hotRow('r5', 1, 5) }));
    setBalance(store, 'r3', 1);
    store.runSync((db) => {
      assert.equal(db.get(Hot, 'r3')!.balance, 1);
      assert.deepEqual(db.query(Hot, { group: 1 }).map((r) => r.pk).sort(), ['r1', 'r5']);
    });
  });

  it('binary snapshot files and Arrow views of a compacted table hold the live rows', async () => {
    await using tmp = await tempDir();
    const store = fresh(30);
    for (let i = 0; i < 300; i++) setBalance(store, `r${i % 7}`, i);
    assert.equal(store.reclaim({ force: true }).state, 'done');
    const live = sorted([...store.scan(Hot)]);
    const arrowRows = store.toArrow(Hot).toArray().map((r: { toJSON(): Record<string, unknown> }) => r.toJSON());
    assert.deepEqual(sorted(arrowRows).map((r) => [r.pk, Number(r.balance)]), live.map((r) => [r.pk, r.balance]));
    const path = join(tmp.path, 'Hot.arrow');
    const info = writeSnapshotJob({ handles: store.handles, snapshot: store.snapshot(), files: { Hot: path } });
    const loaded = SharedStore.create(reclaimSchema());
    loadTableFile(loaded, loaded.schema.byName.get('Hot')!, path, info.Hot!);
    assert.deepEqual(sorted([...loaded.scan(Hot)]), live);
  });

  it('waits for open reads and pins on this thread, and leaves tables below the threshold alone', () => {
    const store = fresh(4);
    for (let i = 0; i < 10; i++) setBalance(store, 'r0', i);
    assert.equal(store.reclaim().state, 'idle', `below ${MIN_DEAD_VERSIONS} dead versions`);
    const txn = store.begin();
    assert.equal(txn.db.get(Hot, 'r0')!.balance, 9);
    assert.equal(store.reclaim({ force: true }).state, 'busy', 'an open transaction');
    assert.equal(txn.db.get(Hot, 'r0')!.balance, 9);
    txn.abort();
    const unpin = store.pinVersions();
    assert.equal(store.reclaim({ force: true }).state, 'busy', 'a pin');
    unpin();
    unpin(); // idempotent
    const rows = store.scan(Hot);
    rows.next();
    assert.equal(store.reclaim({ force: true }).state, 'busy', 'a scan in progress');
    assert.equal([...rows].length, 3);
    assert.equal(store.reclaim({ force: true }).state, 'done');
    assert.equal(store.stats().tables.Hot!.versions, 4);
  });

  it('a zero-copy Arrow view holds its rows: no compaction while it is referenced', () => {
    const store = fresh(5);
    const view = store.toArrow(Hot);
    const rowsOf = (t: typeof view) => t.toArray().map((r: { toJSON(): Record<string, unknown> }) => JSON.stringify(r.toJSON(), (_, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)));
    const before = rowsOf(view);
    for (let i = 0; i < 30; i++) setBalance(store, `r${i % 5}`, 1000 + i);
    assert.equal(store.reclaim({ force: true }).state, 'busy', 'the view pins the slots it views');
    assert.deepEqual(rowsOf(view), before);
    const copy = store.toArrow(Hot); // dead versions now: a gathered copy, which pins nothing
    assert.equal(copy.numRows, 5);
    assert.equal(store.reclaim({ force: true }).state, 'busy');
  });

  it('1,000,000 updates of one row keep the table under a fixed bound of shared bytes', () => {
    const store = fresh(1);
    const initial = store.stats().tables.Hot!.bytes;
    let reclaims = 0;
    let maxVersions = 0;
    for (let i = 1; i <= 1_000_000; i++) {
      store.runSync((db) => db.update(Hot, 'r0', { balance: i }));
      if (i % 1000 === 0) {
        maxVersions = Math.max(maxVersions, store.stats().tables.Hot!.versions);
        if (store.reclaim().state === 'done') reclaims++;
      }
    }
    const { rows, versions, bytes } = store.stats().tables.Hot!;
    assert.equal(rows, 1);
    assert.ok(reclaims >= 1_000_000 / (MIN_DEAD_VERSIONS + 1000), `${reclaims} reclamations`);
    assert.ok(maxVersions <= MIN_DEAD_VERSIONS + 1000, `at most ${maxVersions} versions at once`);
    // One version of this row is ~100 bytes of columns: 9,193 versions at most, plus growth slack.
    assert.ok(bytes <= 4 << 20, `${bytes} bytes (started at ${initial})`);
    assert.ok(versions <= MIN_DEAD_VERSIONS + 1000);
    assert.equal(store.runSync((db) => db.get(Hot, 'r0')!.balance).value, 1_000_000);
  });

  it('startReclaimer compacts a due table on its own, and stop() ends it', async () => {
    const store = fresh(2);
    for (let i = 0; i < MIN_DEAD_VERSIONS + 10; i++) setBalance(store, 'r1', i);
    const freed = await new Promise<Record<string, number>>((resolve) => {
      const reclaimer = startReclaimer(store, {
        intervalMs: 1,
        onReclaim: (f) => {
          reclaimer.stop();
          resolve(f);
        },
      });
    });
    assert.deepEqual(freed, { Hot: MIN_DEAD_VERSIONS + 10 });
    assert.equal(store.stats().tables.Hot!.versions, 2);
  });

  it('with no other thread, a forced reclamation completes at once; then nothing is due', async () => {
    const store = fresh(3);
    setBalance(store, 'r2', 5);
    assert.equal((await settle(store)).state, 'done');
    assert.equal((await settle(store)).state, 'idle');
  });
});
