/**
 * Filters (filters.ts) and the read path (query.ts) called directly on a transaction's read
 * context: compiled predicates, exact errors, and select / countMatching over committed rows plus
 * the transaction's own writes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isLexiconsError } from '../../src/errors.js';
import { normalize, parseFilters } from '../../src/storage/filters.js';
import { countMatching, select } from '../../src/storage/query.js';
import { SharedStore } from '../../src/storage/store.js';
import type { Transaction } from '../../src/storage/transaction.js';
import { Counter, schema } from './fixtures/schema.js';

const counter = schema().byName.get('Counter')!;

describe('parseFilters', () => {
  it('compiles equality, operators, options and through-reference filters', () => {
    const q = parseFilters(counter, { key: 'a', value__ge: 2, value__max: true, _sort: ['-value', 'pk'], _limit: 5 });
    assert.deepEqual(q.conds.map((c) => [c.name, c.op]), [['key', 'eq'], ['value', 'ge']]);
    assert.equal(q.conds[1]!.test(3), true);
    assert.equal(q.conds[1]!.test(null), false, 'comparisons never match null');
    assert.deepEqual(q.extremes, [{ k: 1, name: 'value', op: 'max' }]);
    assert.deepEqual(q.sort, [{ name: 'value', desc: true }, { name: 'pk', desc: false }]);
    assert.equal(q.limit, 5);
    const message = schema().byName.get('ChatMessage')!;
    assert.deepEqual(parseFilters(message, { author__email__f: '@x' }).refs, [{ k: 0, name: 'author', target: 'User', sub: { email__f: '@x' } }]);
    assert.equal(normalize({ pk: 'u1', toDict() {} }), 'u1', 'a record stands for its pk');
  });

  it('compiles a bare field name or pk as equality, a record value standing for its pk', () => {
    const message = schema().byName.get('ChatMessage')!;
    const q = parseFilters(message, { author: { pk: 'u1', toDict() {} }, pk: 'm1' });
    assert.deepEqual(q.conds.map((c) => [c.k, c.name, c.op, c.value]), [[0, 'author', 'eq', 'u1'], [-1, 'pk', 'eq', 'm1']]);
    assert.equal(q.conds[0]!.test('u1'), true);
    assert.equal(q.conds[0]!.test('u2'), false);
    assert.equal(q.conds[1]!.test('m1'), true);
    // The same names through the general path (with an operator) compile to the same fields.
    assert.deepEqual(parseFilters(message, { author__eq: 'u1', pk__eq: 'm1' }).conds.map((c) => [c.k, c.op]), [[0, 'eq'], [-1, 'eq']]);
  });

  it('names what is wrong', () => {
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ nope: 1 }, 'NOT_FOUND', 'Counter: unknown field nope'],
      [{ value__near: 1 }, 'NOT_FOUND', 'Counter: unknown filter operator near in value__near'],
      [{ _limit: -1 }, 'TYPE', 'Counter: _limit must be a non-negative integer'],
      [{ _where: 'x' }, 'TYPE', 'Counter: _where must be a function'],
      [{ value__in: 3 }, 'TYPE', 'Counter.value__in: expected an array or Set, got number'],
    ];
    for (const [filters, code, message] of cases) assert.throws(() => parseFilters(counter, filters), (e) => isLexiconsError(e) && e.code === code && e.message === message);
  });
});

describe('select and countMatching', () => {
  it('see committed rows at the snapshot and the transaction’s own writes, never a replaced version', () => {
    const store = SharedStore.create(schema(), { initialRows: 8 });
    store.runSync((db) => {
      for (let i = 0; i < 5; i++) db.create(Counter, { pk: `c${i}`, key: `k${i}`, value: i });
    });
    const txn = store.begin() as Transaction;
    txn.db.update(Counter, 'c4', { value: -4 });
    txn.db.create(Counter, { pk: 'new', key: 'kn', value: 10 });
    txn.db.drop(Counter, 'c0');
    const id = txn.tableId(Counter);
    const ctx = () => txn.context(id);
    const pks = (filters: Record<string, unknown>) => select(ctx(), parseFilters(counter, filters)).map((r) => r.pk);
    assert.deepEqual(pks({ value__ge: 2 }), ['c2', 'c3', 'new']);
    assert.deepEqual(pks({ _sort: '-value', _limit: 2 }), ['new', 'c3'], 'the top-k path sees own writes');
    assert.deepEqual(pks({ pk__in: ['c1', 'c4', 'c0'] }), ['c1', 'c4']);
    assert.deepEqual(pks({ key: 'k3' }), ['c3'], 'a field index lookup');
    assert.equal(countMatching(ctx(), parseFilters(counter, {})), 5);
    assert.equal(countMatching(ctx(), parseFilters(counter, { value__lt: 0, _limit: 0 })), 0);
    assert.equal(countMatching(ctx(), parseFilters(counter, { value__lt: 0 })), 1);
    txn.abort();
  });
});
