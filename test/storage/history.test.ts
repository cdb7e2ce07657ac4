/**
 * Per-channel publication history on one thread: the system tables and their reserved names,
 * offsets assigned at commit (in commit order, +1 per channel, no read-set entry), savepoints,
 * retention by size and age (bounded per commit, and the sweep), reads, resets and the repair at
 * load. The 4-thread and crash tests are history-concurrency.test.ts and history-crash.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isLexiconsError } from '../../src/errors.js';
import type { HistoryPolicy } from '../../src/storage/api.js';
import { CHANNEL_TABLE, PUBLICATION_TABLE, publicationPk, withHistory } from '../../src/storage/history-tables.js';
import { compileSchema, field, Model } from '../../src/storage/schema.js';
import { SharedStore } from '../../src/storage/store.js';
import { Counter, User, schema } from './fixtures/schema.js';

function historyStore(policies: Record<string, HistoryPolicy> = { Public: { size: 100 } }): SharedStore {
  const store = SharedStore.create(withHistory(schema()), { initialRows: 16 });
  store.historyPolicy = (channel) => policies[channel] ?? null;
  return store;
}

/** Commits one transaction publishing `texts` to `channel`; returns the assigned offsets. */
function publish(store: SharedStore, channel: string, ...texts: string[]): number[] {
  const txn = store.begin();
  for (const t of texts) txn.publish(channel, t);
  const result = txn.commit();
  assert.ok(result.ok);
  return result.publications.map((p) => p.offset);
}

describe('history tables', () => {
  it('user Models cannot take a lexicons_* name', () => {
    class lexicons_mine extends Model {
      static x = field.int();
    }
    class Sneaky extends Model {
      static override table = 'Lexicons_channel';
      static x = field.int();
    }
    for (const model of [lexicons_mine, Sneaky]) {
      assert.throws(
        () => compileSchema([model]),
        (err: unknown) => isLexiconsError(err, 'SCHEMA') && /table names starting with lexicons_ are reserved for lexicons' system tables/.test((err as Error).message),
      );
    }
  });

  it('withHistory appends the two tables after the user tables; attach needs the same form', () => {
    const plain = schema();
    const full = withHistory(plain);
    assert.deepEqual(full.tables.map((t) => t.name).slice(-2), [CHANNEL_TABLE, PUBLICATION_TABLE]);
    assert.deepEqual(full.tables.slice(0, plain.tables.length).map((t) => t.name), plain.tables.map((t) => t.name));
    assert.equal(withHistory(full), full, 'idempotent');
    const store = SharedStore.create(full);
    assert.throws(() => SharedStore.attach(plain, store.handles), (err: unknown) => isLexiconsError(err, 'SCHEMA') && /store has lexicons_channel, schema has none/.test((err as Error).message));
    assert.ok(SharedStore.attach(withHistory(schema()), store.handles));
  });

  it('user code reads the history tables but cannot write them', () => {
    const store = historyStore();
    publish(store, 'Public', 'a');
    store.runSync((db) => {
      assert.equal(db.count(PUBLICATION_TABLE, { channel: 'Public' }), 1);
      const refused = (err: unknown) => isLexiconsError(err, 'SCHEMA') && /is a system table/.test((err as Error).message);
      assert.throws(() => db.create(PUBLICATION_TABLE, { channel: 'Public', offset: 9, time: 0, text: 'x' }), refused);
      assert.throws(() => db.update(CHANNEL_TABLE, 'Public', { offset: 0 }), refused);
      assert.throws(() => db.drop(PUBLICATION_TABLE, { channel: 'Public' }), refused);
    });
  });

  it('a store without the tables refuses history calls', () => {
    const store = SharedStore.create(schema());
    const txn = store.begin();
    assert.throws(() => txn.publish('Public', 'x'), (err: unknown) => isLexiconsError(err, 'OPTION') && /keeps no channel history \(create it with withHistory\(schema\)\)/.test((err as Error).message));
    txn.abort();
    assert.throws(() => store.history('Public'), /keeps no channel history/);
  });
});

describe('publishing', () => {
  it('offsets are assigned at commit, +1 per channel, with a fresh epoch per channel', () => {
    const store = historyStore({ Public: { size: 100 }, Other: { size: 100 } });
    const txn = store.begin();
    assert.equal(txn.publish('Public', '{"a":1}'), true);
    assert.equal(txn.publish('Other', '{"b":1}'), true);
    assert.equal(txn.publish('Public', '{"a":2}'), true);
    assert.equal(store.channelPosition('Public'), null, 'nothing before the commit');
    const before = Date.now();
    const result = txn.commit();
    assert.ok(result.ok);
    assert.deepEqual(
      result.publications.map(({ channel, offset }) => [channel, offset]),
      [
        ['Public', 1],
        ['Other', 1],
        ['Public', 2],
      ],
    );
    const [p1, o1, p2] = result.publications;
    assert.match(p1!.epoch, /^[A-Za-z0-9_-]{12}$/);
    assert.equal(p2!.epoch, p1!.epoch);
    assert.notEqual(o1!.epoch, p1!.epoch);
    assert.ok(p1!.time >= before && p1!.time <= Date.now());
    assert.deepEqual(result.changes.tables[PUBLICATION_TABLE]!.upserts.length, 3, 'the rows are in the commit (its WAL record)');
    assert.deepEqual(publish(store, 'Public', 'x'), [3]);
    const page = store.history('Public')!;
    assert.deepEqual({ epoch: page.epoch, offset: page.offset, oldest: page.oldest }, { epoch: p1!.epoch, offset: 3, oldest: 1 });
    assert.deepEqual(page.items.map((i) => [i.offset, i.text]), [
      [1, '{"a":1}'],
      [2, '{"a":2}'],
      [3, 'x'],
    ]);
  });

  it('a channel without a policy keeps nothing: publish returns false', () => {
    const store = historyStore();
    const txn = store.begin();
    assert.equal(txn.publish('NoHistory', 'x'), false);
    const result = txn.commit();
    assert.ok(result.ok);
    assert.deepEqual(result.publications, []);
    assert.equal(store.channelPosition('NoHistory'), null);
    assert.equal(store.stats().commitId, 0, 'nothing was committed');
  });

  it('publishing never conflicts: a transaction publishing at an old snapshot still commits after others', () => {
    const store = historyStore();
    store.bulkLoad(Counter, [{ pk: 'c', key: 'k', value: 0 }]);
    const a = store.begin();
    a.db.get(Counter, 'c'); // a real read of another table
    a.publish('Public', 'from a');
    assert.deepEqual(publish(store, 'Public', 'b1', 'b2'), [1, 2]);
    const result = a.commit();
    assert.ok(result.ok, 'publications read the channel under the lock, not at the snapshot');
    assert.deepEqual(result.publications.map((p) => p.offset), [3]);
    // ...while a real conflict still is one.
    const c = store.begin();
    c.db.update(Counter, 'c', { value: 1 });
    c.publish('Public', 'lost');
    store.runSync((db) => db.update(Counter, 'c', { value: 2 }));
    const failed = c.commit();
    assert.equal(failed.ok, false);
    assert.deepEqual(publish(store, 'Public', 'next'), [4], 'the failed commit took no offset');
  });

  it('a rolled-back savepoint drops its publications, and a failed commit assigns nothing', () => {
    const store = historyStore();
    const txn = store.begin();
    txn.publish('Public', 'kept 1');
    const sp = txn.savepoint();
    txn.db.create(User, { email: 'x@example.com' });
    txn.publish('Public', 'dropped');
    txn.rollbackTo(sp);
    txn.publish('Public', 'kept 2');
    const result = txn.commit();
    assert.ok(result.ok);
    assert.deepEqual(result.publications.map((p) => p.offset), [1, 2]);
    assert.deepEqual(store.history('Public')!.items.map((i) => i.text), ['kept 1', 'kept 2']);

    const dup = store.begin();
    dup.db.create(User, { email: 'taken@example.com' });
    dup.publish('Public', 'never');
    store.runSync((db) => db.create(User, { email: 'taken@example.com' }));
    const failed = dup.commit();
    assert.ok(!failed.ok && failed.reason === 'unique');
    assert.equal(store.channelPosition('Public')!.offset, 2);
  });

  it('publish checks its arguments and the policy the resolver returns', () => {
    const store = historyStore({ Bad: { size: 0 }, Age: { maxAgeSeconds: -1 } });
    const txn = store.begin();
    assert.throws(() => txn.publish('', 'x'), /channel must be a non-empty string/);
    assert.throws(() => txn.publish('Public', 42 as unknown as string), /text must be a string, got number/);
    assert.throws(() => txn.publish('Bad', 'x'), (err: unknown) => isLexiconsError(err, 'OPTION') && (err as Error).message === 'history policy of channel "Bad": size must be a positive integer, got 0');
    assert.throws(() => txn.publish('Age', 'x'), /history policy of channel "Age": maxAgeSeconds must be a positive number, got -1/);
    txn.abort();
  });
});

describe('reading', () => {
  it('history(after, limit) pages in offset order; the main thread reads without the lock', () => {
    const store = historyStore();
    publish(store, 'Public', ...Array.from({ length: 10 }, (_, i) => `m${i + 1}`));
    const holder = store.begin({ exclusive: true }); // the lock is held: reads do not care
    try {
      assert.deepEqual(store.history('Public', { after: 7 })!.items.map((i) => i.offset), [8, 9, 10]);
      assert.deepEqual(store.history('Public', { after: 2, limit: 3 })!.items.map((i) => i.text), ['m3', 'm4', 'm5']);
      assert.deepEqual(store.history('Public', { after: 10 })!.items, []);
      assert.deepEqual(store.history('Public', { limit: 0 })!.items, []);
      assert.equal(store.history('Nobody'), null);
    } finally {
      holder.abort();
    }
    assert.throws(() => store.history('Public', { after: -1 }), /after must be a non-negative integer, got -1/);
    assert.throws(() => store.history('Public', { limit: 1.5 }), /limit must be a non-negative integer, got 1.5/);
  });

  it('a transaction reads history at its snapshot', () => {
    const store = historyStore();
    publish(store, 'Public', 'a');
    const txn = store.begin();
    publish(store, 'Public', 'b');
    assert.deepEqual(txn.history('Public')!.items.map((i) => i.text), ['a']);
    assert.equal(txn.channelPosition('Public')!.offset, 1);
    txn.abort();
    assert.equal(store.channelPosition('Public')!.offset, 2);
  });
});

describe('retention', () => {
  it('size: the committer keeps the last `size` rows', () => {
    const store = historyStore({ Public: { size: 5 } });
    for (let i = 0; i < 20; i++) publish(store, 'Public', `m${i}`);
    const page = store.history('Public')!;
    assert.deepEqual([page.oldest, page.offset], [16, 20]);
    assert.deepEqual(page.items.map((i) => i.offset), [16, 17, 18, 19, 20]);
    assert.equal(store.stats().tables[PUBLICATION_TABLE]!.rows, 5);
    // More than `size` in one commit: the extra ones are assigned offsets, never stored.
    const offsets = publish(store, 'Public', ...Array.from({ length: 8 }, (_, i) => `burst${i}`));
    assert.deepEqual(offsets, [21, 22, 23, 24, 25, 26, 27, 28]);
    assert.deepEqual(store.history('Public')!.items.map((i) => i.text), ['burst3', 'burst4', 'burst5', 'burst6', 'burst7']);
  });

  it('work per commit is bounded (2 deletions per row added); the sweep drains the rest', () => {
    let size = 100;
    const store = SharedStore.create(withHistory(schema()));
    store.historyPolicy = () => ({ size });
    publish(store, 'Public', ...Array.from({ length: 100 }, (_, i) => `m${i}`));
    size = 10;
    const txn = store.begin();
    txn.publish('Public', 'one more');
    const result = txn.commit();
    assert.ok(result.ok);
    assert.equal(result.changes.tables[PUBLICATION_TABLE]!.deletes.length, 2);
    assert.equal(store.history('Public')!.oldest, 3);
    assert.deepEqual(store.trimHistory(Date.now(), { maxRows: 50 }), { deleted: 50, more: true });
    assert.deepEqual(store.trimHistory(), { deleted: 39, more: false });
    assert.deepEqual(store.trimHistory(), { deleted: 0, more: false });
    const page = store.history('Public')!;
    assert.deepEqual([page.oldest, page.offset, page.items.length], [92, 101, 10]);
  });

  it('age: rows older than maxAgeSeconds go at the next commit or sweep', () => {
    const store = historyStore({ Public: { maxAgeSeconds: 60 }, Other: { maxAgeSeconds: 3600 } });
    publish(store, 'Public', 'a', 'b');
    publish(store, 'Other', 'c');
    const t = store.history('Public')!.items[0]!.time;
    assert.deepEqual(store.trimHistory(t + 59_000), { deleted: 0, more: false });
    assert.deepEqual(store.trimHistory(t + 61_000), { deleted: 2, more: false });
    const page = store.history('Public')!;
    assert.deepEqual([page.oldest, page.offset, page.items], [3, 2, []]);
    assert.equal(store.history('Other')!.items.length, 1, 'younger than its own limit');
    assert.deepEqual(publish(store, 'Public', 'd'), [3], 'offsets go on after an emptied history');
    assert.equal(store.history('Public')!.epoch, page.epoch, 'trimming is not a loss of history: same epoch');
  });

  it('the sweep leaves channels the resolver does not know, and never waits on the main thread', () => {
    const policies: Record<string, HistoryPolicy> = { Public: { size: 1 }, Gone: { size: 1 } };
    const store = historyStore(policies);
    publish(store, 'Gone', 'a');
    delete policies.Gone;
    policies.Public = { size: 1 };
    assert.deepEqual(store.trimHistory(), { deleted: 0, more: false });
    assert.equal(store.history('Gone')!.items.length, 1);
    const holder = store.begin({ exclusive: true });
    assert.equal(store.trimHistory(), null, 'lock busy: null, at once');
    holder.abort();
    const bare = SharedStore.create(withHistory(schema()));
    assert.throws(() => bare.trimHistory(), /trimHistory: set store.historyPolicy first/);
  });
});

describe('epochs', () => {
  it('resetHistory: new epoch, nothing retained, offsets go on after the old top', () => {
    const store = historyStore();
    publish(store, 'Public', 'a', 'b', 'c');
    const old = store.channelPosition('Public')!;
    const pos = store.resetHistory('Public')!;
    assert.notEqual(pos.epoch, old.epoch);
    assert.deepEqual([pos.offset, pos.oldest], [3, 4]);
    assert.deepEqual(store.history('Public')!.items, []);
    assert.equal(store.stats().tables[PUBLICATION_TABLE]!.rows, 0);
    const txn = store.begin();
    txn.publish('Public', 'd');
    const result = txn.commit();
    assert.ok(result.ok);
    assert.deepEqual(result.publications.map((p) => [p.offset, p.epoch]), [[4, pos.epoch]]);
    assert.equal(store.resetHistory('Nobody'), null);
  });

  it('repairHistory: publications without a channel row, or with a hole, get a new epoch; intact ones keep theirs', () => {
    const store = historyStore({ Public: { size: 100 }, Holed: { size: 100 } });
    publish(store, 'Public', 'a', 'b');
    publish(store, 'Holed', 'a', 'b', 'c', 'd');
    const intact = store.channelPosition('Public')!;
    const holed = store.channelPosition('Holed')!;
    // What a restart can find: rows of a channel whose row is missing, rows removed under a row.
    const row = (channel: string, offset: number) => ({ pk: publicationPk(channel, offset), channel, offset, time: 1, text: `${channel}${offset}` });
    store.bulkLoad(PUBLICATION_TABLE, [row('Orphan', 4), row('Orphan', 5), row('Orphan', 7)]);
    const txn = store.begin({ exclusive: true }) as unknown as { put(id: number, pk: string, row: null): void; commit(): { ok: boolean } };
    txn.put(store.schema.tables.findIndex((t) => t.name === PUBLICATION_TABLE), publicationPk('Holed', 2), null);
    assert.ok(txn.commit().ok);

    assert.deepEqual(store.repairHistory().sort(), ['Holed', 'Orphan']);
    assert.deepEqual(store.channelPosition('Public'), intact);
    const h = store.channelPosition('Holed')!;
    assert.notEqual(h.epoch, holed.epoch);
    assert.deepEqual([h.offset, h.oldest], [4, 3], 'the run above the hole survives');
    assert.deepEqual(store.history('Holed')!.items.map((i) => i.offset), [3, 4]);
    const o = store.channelPosition('Orphan')!;
    assert.deepEqual([o.offset, o.oldest], [7, 7]);
    assert.deepEqual(store.history('Orphan')!.items.map((i) => i.text), ['Orphan7']);
    assert.equal(store.stats().tables[PUBLICATION_TABLE]!.rows, 2 + 2 + 1, 'rows below a hole are deleted');
    assert.deepEqual(store.repairHistory(), [], 'a second repair finds nothing');
    assert.deepEqual(store.repairHistory({ renewEpochs: true }).sort(), ['Holed', 'Orphan', 'Public']);
    assert.equal(store.channelPosition('Public')!.offset, 2);
  });
});
