/**
 * Row-level read sets under real concurrency: worker threads on one shared store. Phantoms (a miss
 * by unique value, by indexed value, or a scan, racing an insert that would have matched) and
 * write skew are still prevented, so the invariants hold; transactions whose point reads and
 * writes are disjoint never conflict, even all on one table.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SharedStore } from '../../src/storage/store.js';
import { Gate, spawnTask } from '../helpers/threads.js';
import { Entry, FIELD, ROWS_SEED, distinctKeys, rowsSchema } from './fixtures/rows-schema.js';

const WORKER = new URL('./fixtures/rows-worker.js', import.meta.url);

function fresh(): SharedStore {
  return SharedStore.create(rowsSchema(), { hashSeed: ROWS_SEED, initialRows: 64, maxBytesPerBuffer: 64 << 20 });
}

/** Runs one worker per params object, all started at once; pair tasks share one barrier. */
async function runAll<T>(store: SharedStore, task: string, params: Array<Record<string, unknown>>): Promise<T[]> {
  const gate = new Gate();
  const barrier = new SharedArrayBuffer(4);
  const workers = params.map((p) => spawnTask<T>(WORKER, { handles: store.handles, gate: gate.sab, barrier, task, params: p }));
  await gate.ready(params.length);
  gate.open();
  return Promise.all(workers.map((w) => w.done));
}

describe('row-level read sets with worker threads', () => {
  for (const mode of ['unique', 'index', 'scan'] as const) {
    const how = { unique: 'a get by unique value', index: 'an indexed equality read', scan: 'a scan (no index)' }[mode];
    it(`phantoms: "create mine unless the other's exists" through ${how} creates exactly one row per pair`, async () => {
      const store = fresh();
      const pairs = 300;
      const results = await runAll<{ created: number; attempts: number }>(store, 'race', [0, 1].map((role) => ({ mode, role, pairs })));
      const rows = [...store.scan(Entry)];
      assert.equal(rows.length, pairs, `${rows.length} rows for ${pairs} pairs`);
      assert.equal(results[0]!.created + results[1]!.created, pairs);
      for (let i = 0; i < pairs; i++) {
        const mine = rows.filter((r) => r.code === `u${i}-0` || r.code === `u${i}-1` || r.group === 2 * i || r.group === 2 * i + 1 || r.label === `s${i}-0` || r.label === `s${i}-1`);
        assert.equal(mine.length, 1, `pair ${i}: ${JSON.stringify(mine)}`);
      }
      const retries = results[0]!.attempts + results[1]!.attempts - 2 * pairs;
      assert.ok(retries > 0, 'the pairs raced: some transactions conflicted and ran again');
    });
  }

  it('write skew: "turn mine off if both are on" by pk and by index leaves one on in every pair', async () => {
    const store = fresh();
    const rounds = 300;
    store.bulkLoad(Entry, Array.from({ length: rounds }, (_, i) => [0, 1].map((role) => ({ pk: `d${i}-${role}`, group: 1000 + i, on: true }))).flat());
    const results = await runAll<{ attempts: number }>(store, 'skew', [0, 1].map((role) => ({ role, rounds })));
    for (let i = 0; i < rounds; i++) {
      const on = [0, 1].filter((role) => store.runSync((db) => db.get(Entry, `d${i}-${role}`)!.on).value);
      assert.equal(on.length, 1, `round ${i}: on ${JSON.stringify(on)}`);
    }
    assert.ok(results[0]!.attempts + results[1]!.attempts > 2 * rounds, 'the pairs raced: some transactions conflicted');
  });

  it('blind writes (no read recorded) of one row never lose an update: the replaced version must still be the newest', async () => {
    const store = fresh();
    const rounds = 300;
    store.bulkLoad(Entry, [{ pk: 'blind', balance: 0 }]);
    const results = await runAll<{ attempts: number }>(store, 'blind', [{ rounds }, { rounds }]);
    assert.equal(store.runSync((db) => db.get(Entry, 'blind')!.balance).value, 2 * rounds);
    assert.ok(results[0]!.attempts + results[1]!.attempts > 2 * rounds, 'the pairs raced: some commits found their version superseded');
  });

  it('disjoint point reads and writes on one table never conflict (4 threads, 0 retries)', async () => {
    const store = fresh();
    const threads = 4;
    const perThread = 4;
    const n = 1500;
    // Keys with distinct stamp buckets: a shared bucket would be a (rare, allowed) false conflict.
    const taken = new Set<number>();
    const pks = distinctKeys(threads * perThread, FIELD.pk, (i) => `acct${i}`, taken);
    const codes = distinctKeys(threads * perThread, FIELD.code, (i) => `code${i}`, taken);
    const groups = distinctKeys(threads, FIELD.group, (i) => i + 1, taken);
    store.bulkLoad(Entry, pks.map((pk, i) => ({ pk, code: codes[i]!, group: groups[Math.floor(i / perThread)]!, balance: 100 })));
    const own = <T>(list: T[], t: number): T[] => list.slice(t * perThread, (t + 1) * perThread);
    const results = await runAll<{ attempts: number; first: number; last: number }>(
      store,
      'disjoint',
      Array.from({ length: threads }, (_, t) => ({ pks: own(pks, t), codes: own(codes, t), group: groups[t]!, n, seed: t + 1 })),
    );
    assert.deepEqual(results.map((r) => r.attempts), Array.from({ length: threads }, () => n), 'no transaction ran twice');
    // They did run at the same time: every thread committed before some other thread's last commit.
    for (const r of results) assert.ok(results.some((o) => o !== r && o.first < r.last && r.first < o.last), `overlap: ${JSON.stringify(results)}`);
    const rows = [...store.scan(Entry)];
    assert.equal(rows.reduce((s, r) => s + (r.balance as number), 0), 100 * pks.length);
    assert.equal(store.stats().tables.Entry!.versions, pks.length + 2 * threads * n);
  });
});
