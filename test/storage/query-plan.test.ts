/**
 * Query plans: `_sort` + `_limit` runs as a bounded top-k (same rows, same order as a full stable
 * sort cut at the limit, including ties, nulls, several keys, the transaction's own writes and
 * deleted/updated rows), and index catch-up over many rows (pk and field lookups after a bulk
 * build, ASCII and non-ASCII values).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Db } from '../../src/storage/api.js';
import { SharedStore } from '../../src/storage/store.js';
import { ChatMessage, User, schema } from './fixtures/schema.js';

type Row = Record<string, unknown> & { pk: string };

function fresh(): SharedStore {
  return SharedStore.create(schema(), { initialRows: 4, maxBytesPerBuffer: 64 << 20 });
}

const read = <T>(store: SharedStore, fn: (db: Db) => T): T => store.runSync(fn).value;

/** The reference: every matching row, stably sorted as `select` documents (nulls last), then cut. */
function reference(rows: Row[], sort: Array<[string, boolean]>, limit: number): string[] {
  const cmp = (a: unknown, b: unknown): number => {
    if (a === b) return 0;
    if (a === null || a === undefined) return 1;
    if (b === null || b === undefined) return -1;
    return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
  };
  const sorted = [...rows].sort((a, b) => {
    for (const [name, desc] of sort) {
      const c = cmp(a[name], b[name]);
      if (c !== 0) return desc ? (a[name] == null || b[name] == null ? c : -c) : c;
    }
    return 0;
  });
  return sorted.slice(0, limit).map((r) => r.pk);
}

describe('top-k for _sort + _limit', () => {
  it('returns the latest N of a channel, newest first, like a full sort', () => {
    const store = fresh();
    const rows: Row[] = [];
    for (let i = 0; i < 5000; i++) {
      // Timestamps out of insertion order, with ties.
      rows.push({ pk: `m${i}`, author: null, channel: `c${i % 7}`, content: `x${i}`, timestamp: (i * 7919) % 1000 });
    }
    store.bulkLoad(ChatMessage, rows);
    for (const limit of [1, 10, 100, 999, 5000]) {
      const got = read(store, (db) => db.query(ChatMessage, { channel: 'c3', _sort: '-timestamp', _limit: limit }).map((r) => r.pk));
      const want = reference(rows.filter((r) => r.channel === 'c3'), [['timestamp', true]], limit);
      assert.deepEqual(got, want, `limit ${limit}`);
    }
    // Without an index (a scan), ascending, two keys.
    const got = read(store, (db) => db.query(ChatMessage, { content__f: '1', _sort: ['channel', '-timestamp'], _limit: 50 }).map((r) => r.pk));
    assert.deepEqual(got, reference(rows.filter((r) => String(r.content).includes('1')), [['channel', false], ['timestamp', true]], 50));
  });

  it('orders nulls last in both directions and keeps ties in insertion order', () => {
    const store = fresh();
    const pks = read(store, () => []);
    assert.deepEqual(pks, []);
    const rows: Row[] = [];
    store.runSync((db) => {
      for (let i = 0; i < 40; i++) {
        const u = db.create(User, { email: `u${i}@x`, score: i % 3, age: i % 4 === 0 ? null : i % 5 });
        rows.push(u.toDict() as Row);
      }
    });
    for (const [sort, keys] of [
      ['age', [['age', false]]],
      ['-age', [['age', true]]],
      [['-age', 'score'], [['age', true], ['score', false]]],
    ] as Array<[string | string[], Array<[string, boolean]>]>) {
      for (const limit of [0, 1, 7, 40, 100]) {
        const got = read(store, (db) => db.query(User, { _sort: sort, _limit: limit }).map((r) => r.pk));
        assert.deepEqual(got, reference(rows, keys, limit), `${String(sort)} limit ${limit}`);
      }
    }
  });

  it("sees the transaction's own writes, updates and deletions", () => {
    const store = fresh();
    const base: Row[] = [];
    for (let i = 0; i < 300; i++) base.push({ pk: `m${i}`, author: null, channel: 'general', content: `x${i}`, timestamp: i });
    store.bulkLoad(ChatMessage, base);
    store.runSync((db) => {
      db.update(ChatMessage, 'm10', { timestamp: 10_000 }); // moves to the top
      db.drop(ChatMessage, 'm299'); // the newest one disappears
      db.create(ChatMessage, { pk: 'new1', channel: 'general', content: 'n', timestamp: 5000 });
      db.create(ChatMessage, { pk: 'new2', channel: 'other', content: 'n', timestamp: 6000 });
      const inside = db.query(ChatMessage, { channel: 'general', _sort: '-timestamp', _limit: 4 }).map((r) => r.pk);
      assert.deepEqual(inside, ['m10', 'new1', 'm298', 'm297']);
    });
    const after = read(store, (db) => db.query(ChatMessage, { channel: 'general', _sort: '-timestamp', _limit: 4 }).map((r) => r.pk));
    assert.deepEqual(after, ['m10', 'new1', 'm298', 'm297']);
    const rows = read(store, (db) => db.query(ChatMessage, { channel: 'general', _sort: '-timestamp', _limit: 2 }));
    assert.equal(rows[0]!.timestamp, 10_000);
    assert.equal(typeof rows[0]!.toDict, 'function');
  });
});

describe('index catch-up over many rows', () => {
  it('finds every pk and field value after a bulk build, ASCII or not', () => {
    const store = fresh();
    const rows: Row[] = [];
    for (let i = 0; i < 20_000; i++) {
      const pk = i % 97 === 0 ? `pk-é-${i}` : `pk-${i}`;
      rows.push({ pk, author: null, channel: i % 13 === 0 ? `kanäl-${i % 5}` : `ch-${i % 50}`, content: '', timestamp: i });
    }
    store.bulkLoad(ChatMessage, rows.slice(0, 12_000));
    // A second attached instance builds its indexes from scratch, then catches up incrementally.
    const other = SharedStore.attach(schema(), store.handles);
    assert.equal(read(other, (db) => db.get(ChatMessage, { pk: 'pk-11999' }))?.timestamp, 11_999);
    store.bulkLoad(ChatMessage, rows.slice(12_000));
    for (const i of [0, 1, 97, 11_999, 12_000, 19_206, 19_999]) {
      assert.equal(read(other, (db) => db.get(ChatMessage, { pk: rows[i]!.pk }))?.timestamp, i, `pk ${rows[i]!.pk}`);
    }
    for (const channel of ['ch-7', 'kanäl-3']) {
      const want = rows.filter((r) => r.channel === channel).map((r) => r.pk);
      const got = read(other, (db) => db.query(ChatMessage, { channel }).map((r) => r.pk));
      assert.deepEqual(got, want, channel);
    }
  });
});
