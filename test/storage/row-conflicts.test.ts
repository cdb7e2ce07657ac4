/**
 * Row-level read sets, interleaved deterministically in one thread: for each way of reading (pk,
 * unique value, indexed value, scan, count, top-k), which concurrent commits conflict with it and
 * which do not. Keys are chosen with distinct stamp buckets (fixed hash seed), so a "no conflict"
 * here cannot be a hash collision's luck and a "conflict" cannot be one's fault.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Db } from '../../src/storage/api.js';
import { MAX_KEYS_PER_TABLE } from '../../src/storage/read-set.js';
import { SharedStore } from '../../src/storage/store.js';
import { Entry, FIELD, ROWS_SEED, distinctKeys, rowsSchema } from './fixtures/rows-schema.js';

const taken = new Set<number>();
const pks = distinctKeys(MAX_KEYS_PER_TABLE + 16, FIELD.pk, (i) => `e${i}`, taken);
const codes = distinctKeys(8, FIELD.code, (i) => `c${i}`, taken);
const groups = distinctKeys(4, FIELD.group, (i) => i + 1, taken);
const [g1, g2, g3] = groups as [number, number, number];
const pk = (i: number): string => pks[i]!;
const code = (i: number): string => codes[i]!;

/** e0, e1 in group g1; e2 in g2; e3 without a group; codes c0..c3; c4.. and e4.. are free. */
function fresh(): SharedStore {
  const store = SharedStore.create(rowsSchema(), { hashSeed: ROWS_SEED });
  store.bulkLoad(Entry, [
    { pk: pk(0), code: code(0), group: g1, label: 'a', balance: 10 },
    { pk: pk(1), code: code(1), group: g1, label: 'b', balance: 20 },
    { pk: pk(2), code: code(2), group: g2, label: 'c', balance: 30 },
    { pk: pk(3), code: code(3), group: null, label: 'd', balance: 40 },
  ]);
  return store;
}

/**
 * Whether a transaction that ran `read` (and then wrote a row of its own, so that its commit is
 * validated) conflicts with `write`, committed by another transaction after its snapshot.
 */
function conflicts(read: (db: Db) => unknown, write: (db: Db) => unknown): boolean {
  const store = fresh();
  const txn = store.begin();
  read(txn.db);
  txn.db.create(Entry, { pk: 'witness', label: 'witness' });
  store.runSync(write);
  const result = txn.commit();
  if (!result.ok) assert.equal(result.reason, 'conflict', result.message);
  return !result.ok;
}

describe('row-level read sets: reads by pk', () => {
  it('a read row conflicts with an update or a delete of it, not with writes of other rows', () => {
    const get = (db: Db) => db.get(Entry, pk(0));
    assert.equal(conflicts(get, (db) => db.update(Entry, pk(0), { balance: 11 })), true);
    assert.equal(conflicts(get, (db) => db.drop(Entry, pk(0))), true);
    assert.equal(conflicts(get, (db) => db.update(Entry, pk(1), { balance: 21 })), false);
    assert.equal(conflicts(get, (db) => db.create(Entry, { pk: pk(4) })), false);
    assert.equal(conflicts(get, (db) => db.drop(Entry, pk(3))), false);
  });

  it('a pk read that found nothing conflicts with a later insert of that pk (phantom)', () => {
    const miss = (db: Db) => assert.equal(db.get(Entry, pk(5)), null);
    assert.equal(conflicts(miss, (db) => db.create(Entry, { pk: pk(5) })), true);
    assert.equal(conflicts(miss, (db) => db.create(Entry, { pk: pk(6) })), false);
  });

  it('pk filters, pk__in, and update/drop targets read their keys only', () => {
    const filter = (db: Db) => db.query(Entry, { pk: pk(0), balance__gt: 100 });
    assert.equal(conflicts(filter, (db) => db.update(Entry, pk(0), { balance: 200 })), true);
    assert.equal(conflicts(filter, (db) => db.update(Entry, pk(1), { balance: 200 })), false);
    const among = (db: Db) => db.query(Entry, { pk__in: [pk(1), pk(6)] });
    assert.equal(conflicts(among, (db) => db.create(Entry, { pk: pk(6) })), true);
    assert.equal(conflicts(among, (db) => db.update(Entry, pk(0), { balance: 1 })), false);
    const target = (db: Db) => db.update(Entry, pk(2), { label: 'mine' });
    assert.equal(conflicts(target, (db) => db.update(Entry, pk(2), { balance: 1 })), true);
    assert.equal(conflicts(target, (db) => db.update(Entry, pk(3), { balance: 1 })), false);
  });
});

describe('row-level read sets: reads by unique and indexed value', () => {
  it('get by a unique value: conflicts with any write of a row holding it before or after', () => {
    const hit = (db: Db) => db.get(Entry, { code: code(0) });
    assert.equal(conflicts(hit, (db) => db.update(Entry, pk(0), { label: 'z' })), true);
    assert.equal(conflicts(hit, (db) => db.update(Entry, pk(0), { code: code(5) })), true, 'value moved away');
    assert.equal(conflicts(hit, (db) => db.drop(Entry, pk(0))), true);
    assert.equal(conflicts(hit, (db) => db.update(Entry, pk(1), { code: code(6) })), false);
    const miss = (db: Db) => assert.equal(db.get(Entry, { code: code(4) }), null);
    assert.equal(conflicts(miss, (db) => db.create(Entry, { code: code(4) })), true, 'insert of the missing value (phantom)');
    assert.equal(conflicts(miss, (db) => db.update(Entry, pk(3), { code: code(4) })), true, 'value moved in');
    assert.equal(conflicts(miss, (db) => db.create(Entry, { pk: pk(7), code: code(5) })), false);
  });

  it('an indexed equality read: conflicts with inserts, updates and deletes in that value, moves in and out', () => {
    const group = (db: Db) => db.query(Entry, { group: g1 });
    assert.equal(conflicts(group, (db) => db.create(Entry, { group: g1 })), true, 'insert (phantom)');
    assert.equal(conflicts(group, (db) => db.update(Entry, pk(1), { balance: 0 })), true, 'other field of a member');
    assert.equal(conflicts(group, (db) => db.update(Entry, pk(2), { group: g1 })), true, 'moved in');
    assert.equal(conflicts(group, (db) => db.update(Entry, pk(0), { group: g2 })), true, 'moved out');
    assert.equal(conflicts(group, (db) => db.drop(Entry, pk(1))), true);
    assert.equal(conflicts(group, (db) => db.create(Entry, { pk: pk(7), group: g2 })), false);
    assert.equal(conflicts(group, (db) => db.update(Entry, pk(2), { balance: 0, group: g3 })), false);
    const empty = (db: Db) => assert.equal(db.query(Entry, { group: g3 }).length, 0);
    assert.equal(conflicts(empty, (db) => db.create(Entry, { group: g3 })), true, 'insert into an empty value (phantom)');
    const among = (db: Db) => db.query(Entry, { group__in: [g2, g3] });
    assert.equal(conflicts(among, (db) => db.create(Entry, { group: g3 })), true);
    assert.equal(conflicts(among, (db) => db.create(Entry, { pk: pk(7), group: g1 })), false);
  });

  it('top-k and counts through an index read their keys; without one, the table', () => {
    const top = (db: Db) => db.query(Entry, { group: g1, _sort: '-balance', _limit: 1 });
    assert.equal(conflicts(top, (db) => db.create(Entry, { group: g1, balance: 1 })), true, 'even a row that would not make the top');
    assert.equal(conflicts(top, (db) => db.create(Entry, { pk: pk(7), group: g2, balance: 99 })), false);
    const counted = (db: Db) => db.count(Entry, { group: g2 });
    assert.equal(conflicts(counted, (db) => db.create(Entry, { group: g2 })), true);
    assert.equal(conflicts(counted, (db) => db.create(Entry, { pk: pk(7), group: g3 })), false);
    const topAll = (db: Db) => db.query(Entry, { _sort: '-balance', _limit: 1 });
    assert.equal(conflicts(topAll, (db) => db.create(Entry, { balance: 0 })), true);
  });
});

describe('row-level read sets: scans stay table-wide', () => {
  it('a filter without an index and a count of the table conflict with any write to it', () => {
    const scan = (db: Db) => db.query(Entry, { label: 'nobody' });
    assert.equal(conflicts(scan, (db) => db.create(Entry, { label: 'nobody' })), true, 'an insert that matches (phantom)');
    assert.equal(conflicts(scan, (db) => db.create(Entry, { label: 'else' })), true, 'table-wide: any insert');
    assert.equal(conflicts(scan, (db) => db.update(Entry, pk(3), { balance: 1 })), true);
    const count = (db: Db) => db.count(Entry);
    assert.equal(conflicts(count, (db) => db.drop(Entry, pk(3))), true);
    const nullGroup = (db: Db) => db.query(Entry, { group: null });
    assert.equal(conflicts(nullGroup, (db) => db.create(Entry, { group: g3 })), true, 'null is not indexed: a scan');
  });

  it(`a transaction reading more than ${MAX_KEYS_PER_TABLE} keys of a table reads it whole`, () => {
    const reading = (n: number) => (db: Db) => {
      for (let i = 8; i < 8 + n; i++) db.get(Entry, pk(i));
    };
    const unrelated = (db: Db) => db.update(Entry, pk(3), { balance: 1 });
    assert.equal(conflicts(reading(MAX_KEYS_PER_TABLE - 4), unrelated), false);
    assert.equal(conflicts(reading(MAX_KEYS_PER_TABLE), unrelated), false, 'at the bound');
    assert.equal(conflicts(reading(MAX_KEYS_PER_TABLE + 1), unrelated), true, 'one past it');
  });

  it('rows appended outside transactions (appendColumns, start-up loads) conflict with every key read before them', () => {
    const store = fresh();
    const txn = store.begin();
    assert.equal(txn.db.get(Entry, pk(6)), null);
    txn.db.create(Entry, { pk: 'witness' });
    const appended = store.appendColumns(Entry, (t, start) => {
      t.writeVersion(start, pk(6), { code: null, group: null, label: '', on: true, balance: 0 });
      return 1;
    });
    assert.equal(appended, 1);
    const result = txn.commit();
    assert.equal(!result.ok && result.reason, 'conflict');
    assert.equal(store.runSync((db) => db.get(Entry, pk(6))?.balance).value, 0);
  });

  it('a read-only transaction commits whatever changed since its snapshot', () => {
    const store = fresh();
    const reader = store.begin();
    reader.db.count(Entry);
    store.runSync((db) => db.create(Entry, {}));
    assert.equal(reader.commit().ok, true);
  });
});
