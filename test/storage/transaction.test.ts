/**
 * The transaction rooms on their own, over a real store: the Transaction (transaction.ts) and its
 * write set (write-set.ts), the db handle (transaction-db.ts) and its records (record.ts), the
 * begin/commit/retry steps (transaction-runner.ts) and the store's handles (store-handles.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isLexiconsError } from '../../src/errors.js';
import { makeRecord, recordFrom } from '../../src/storage/record.js';
import { compileSchema, field, Model } from '../../src/storage/schema.js';
import { SharedStore } from '../../src/storage/store.js';
import { describeSchema, dictCount, schemaMismatch } from '../../src/storage/store-handles.js';
import { Transaction } from '../../src/storage/transaction.js';
import { insertRow, TxnDb } from '../../src/storage/transaction-db.js';
import { commitOrRetry, DEFAULT_OPTIMISTIC_ATTEMPTS, isThenable, optimisticAttemptsOf, runOrAbort } from '../../src/storage/transaction-runner.js';
import { commitPlan, emptyTableWrites, track } from '../../src/storage/write-set.js';
import { ChatMessage, Counter, User, schema } from './fixtures/schema.js';

const fresh = (): SharedStore => SharedStore.create(schema(), { initialRows: 8 });

describe('Transaction', () => {
  it('is what begin() returns, with a TxnDb; closed after commit or abort', () => {
    const store = fresh();
    const txn = store.begin() as Transaction;
    assert.ok(txn instanceof Transaction);
    assert.ok(txn.db instanceof TxnDb);
    txn.abort();
    txn.abort(); // idempotent
    assert.throws(() => txn.tableId(User), { message: 'transaction already committed or aborted' });
    assert.throws(() => txn.savepoint(), (e) => isLexiconsError(e, 'TXN'));
  });

  it('refuses a bad savepoint, and a second exclusive transaction of the thread', () => {
    const store = fresh();
    const txn = store.begin({ exclusive: true });
    assert.throws(() => txn.rollbackTo(1), (e) => isLexiconsError(e, 'TXN') && e.message === 'invalid savepoint 1');
    assert.throws(() => store.begin({ exclusive: true }), (e) => isLexiconsError(e, 'TXN') && /another transaction of this thread holds the commit lock/.test(e.message));
    assert.equal(store.tryBegin(), null);
    txn.abort();
    assert.notEqual(store.tryBegin(), null);
  });

  it('a create deleted again in the same transaction commits nothing (an empty plan)', () => {
    const store = fresh();
    const txn = store.begin() as Transaction;
    const id = txn.tableId(Counter);
    insertRow(txn, id, { pk: 'c', key: 'k', value: 1 }, true);
    txn.put(id, 'c', null);
    const before = store.snapshot();
    const result = txn.commit();
    assert.ok(result.ok && result.commitId === before && Object.keys(result.changes.tables).length === 0);
  });
});

describe('write set', () => {
  it('tracks unique values per pending row and plans only writes that change something', () => {
    const t = schema().byName.get('Counter')!;
    const w = emptyTableWrites(t);
    const k = t.fields.findIndex((f) => f.name === 'key');
    w.rows.set('a', { row: { pk: 'a', key: 'x', value: 1 }, base: -1 });
    track(w, t, 'a', w.rows.get('a')!.row, true);
    w.rows.set('gone', { row: null, base: -1 });
    assert.deepEqual([...w.unique.get(k)!.get('x')!], ['a']);
    track(w, t, 'a', w.rows.get('a')!.row, false);
    assert.equal(w.unique.get(k)!.has('x'), false);
    const plan = commitPlan(new Map([[3, w]]));
    assert.deepEqual(plan.map((p) => [p.id, p.entries.map(([pk]) => pk)]), [[3, ['a']]]);
  });
});

describe('records', () => {
  it('carry non-enumerable toDict/_to_dict; recordFrom copies arrays so the write buffer stays private', () => {
    const row = { pk: 'u1', tags: ['a'] };
    const rec = recordFrom(row);
    rec.tags = ['changed'];
    (rec.toDict().tags as string[]).push('x');
    assert.deepEqual(row.tags, ['a']);
    assert.deepEqual(Object.keys(rec), ['pk', 'tags']);
    const same = makeRecord(row);
    assert.equal(same, row, 'makeRecord works in place');
    assert.deepEqual(same._to_dict(), { pk: 'u1', tags: ['a'] });
  });
});

describe('transaction runner', () => {
  it('optimisticAttemptsOf: 3 by default, checked', () => {
    assert.equal(optimisticAttemptsOf(), DEFAULT_OPTIMISTIC_ATTEMPTS);
    assert.equal(optimisticAttemptsOf({ optimisticAttempts: 0 }), 0);
    assert.throws(() => optimisticAttemptsOf({ optimisticAttempts: 1.5 }), (e) => isLexiconsError(e, 'OPTION') && e.message === 'options.optimisticAttempts must be a non-negative integer');
  });

  it('runOrAbort aborts the transaction when the function throws or its promise rejects', async () => {
    const store = fresh();
    const txn = store.begin();
    assert.throws(() => runOrAbort(txn, () => { throw new Error('boom'); }), { message: 'boom' });
    assert.throws(() => txn.savepoint(), { message: 'transaction already committed or aborted' });
    const other = store.begin();
    await assert.rejects(runOrAbort(other, async () => { throw new Error('later'); }), { message: 'later' });
    assert.throws(() => other.savepoint(), { message: 'transaction already committed or aborted' });
    const third = store.begin();
    assert.equal(await runOrAbort(third, async (db) => db.count(User)), 0);
    third.abort();
    assert.equal(isThenable({ then: () => undefined }), true);
    assert.equal(isThenable({ then: 1 }), false);
  });

  it('commitOrRetry: the committed run, undefined on a conflict, UNIQUE on a unique violation', () => {
    const store = fresh();
    store.runSync((db) => db.create(Counter, { pk: 'c', key: 'k', value: 0 }));
    const a = store.begin();
    const b = store.begin();
    a.db.update(Counter, 'c', { value: 1 });
    b.db.update(Counter, 'c', { value: 2 });
    const done = commitOrRetry(a, 'a', false);
    assert.equal(done?.value, 'a');
    assert.deepEqual(done?.changes.tables.Counter?.upserts, [{ pk: 'c', key: 'k', value: 1 }]);
    assert.equal(commitOrRetry(b, 'b', false), undefined, 'b read a row a changed: run it again');
    const c = store.begin();
    const d = store.begin();
    c.db.create(Counter, { key: 'same', value: 1 });
    d.db.create(Counter, { key: 'same', value: 2 });
    commitOrRetry(c, null, false);
    assert.throws(() => commitOrRetry(d, null, false), (e) => isLexiconsError(e, 'UNIQUE') && /value "same" already exists/.test(e.message));
  });
});

describe('store handles', () => {
  it('fingerprint the schema layout and name the first difference', () => {
    class Counter2 extends Model {
      static key = field.str({ unique: true });
      static value = field.float();
    }
    Object.defineProperty(Counter2, 'name', { value: 'Counter' });
    const mine = describeSchema(compileSchema([Counter]));
    const theirs = describeSchema(compileSchema([Counter2]));
    assert.match(schemaMismatch(mine, theirs), /^table Counter, field #1: store has \{"name":"value","kind":"int".*schema has \{"name":"value","kind":"float"/);
    assert.equal(schemaMismatch(mine, describeSchema(compileSchema([User]))), 'table #0: store has Counter, schema has User');
    assert.equal(dictCount(compileSchema([User, ChatMessage])), 1);
  });
});
