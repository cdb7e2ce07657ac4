/**
 * The rooms under the store, on one bare table (fixtures/bare-table.ts): the control block's
 * layout, version visibility (table.ts), the per-thread hash indexes (indexes.ts), Arrow views
 * (arrow.ts) and the repair of a commit whose writer died (commit-lock.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tableToArrow } from '../../src/storage/arrow.js';
import { repairIfDirty } from '../../src/storage/commit-lock.js';
import { TableIndex } from '../../src/storage/indexes.js';
import { ControlBlock, controlBytes, i32DeadVersions, i32DictCount, i32ReaderOwner, i32RowCount, i32TableEpoch, i64LastWrite, kDirty, kPendingCommit, kReclaim, kRepairEpoch, READER_SLOTS } from '../../src/storage/layout.js';
import { KeyStamps, keyBucket } from '../../src/storage/read-set.js';
import { Counter } from './fixtures/schema.js';
import { bareTable } from './fixtures/bare-table.js';

describe('layout', () => {
  it('gives every table and dictionary its own words, and refuses a control block of the wrong size', () => {
    assert.equal(controlBytes(2, 1), (2 + 2) * 8 + (5 + 6 + 1 + 2 * READER_SLOTS) * 4);
    const words = [i32RowCount(0), i32DeadVersions(0), i32TableEpoch(0), i32RowCount(1), i32DeadVersions(1), i32TableEpoch(1), i32DictCount(2, 0), i32ReaderOwner(2, 1, 0), i32ReaderOwner(2, 1, 0) + 1, i32ReaderOwner(2, 1, READER_SLOTS - 1) + 1];
    assert.equal(new Set(words).size, words.length);
    assert.ok(Math.min(...words) > Math.max(kRepairEpoch, kReclaim));
    assert.equal(Math.max(...words), controlBytes(2, 1) / 4 - (2 + 2) * 2 - 1, 'the last reader word is the last word');
    assert.notEqual(i64LastWrite(0), kPendingCommit);
    assert.throws(() => new ControlBlock(new SharedArrayBuffer(8), 2, 1), { name: 'RangeError', message: `control block is 8 bytes, expected ${controlBytes(2, 1)}` });
  });
});

describe('SharedTable versions', () => {
  it('a version is visible from its commit until the commit that supersedes or deletes it', () => {
    const { table, commit } = bareTable(Counter);
    const c1 = commit([['a', { key: 'x', value: 1 }]]);
    const c2 = commit([['a', { key: 'x', value: 2 }]], [0]);
    const c3 = commit([['a', null]], [1]);
    assert.deepEqual([table.isVisible(0, c1 - 1), table.isVisible(0, c1), table.isVisible(0, c2)], [false, true, false]);
    assert.deepEqual([table.isVisible(1, c2), table.isVisible(1, c3)], [true, false]);
    assert.equal(table.isTombstone(2), true);
    assert.equal(table.isVisible(2, c3), false, 'a tombstone is never visible');
    assert.deepEqual(table.readRow(1), { pk: 'a', key: 'x', value: 2 });
    assert.equal(table.nextOf(0), 1);
  });
});

describe('TableIndex', () => {
  it('finds the version of a pk or a field value visible at each snapshot, ASCII or not', () => {
    const { table, commit } = bareTable(Counter, 2);
    const c1 = commit([['a', { key: 'k1', value: 1 }], ['ü', { key: 'ключ', value: 2 }]]);
    const c2 = commit([['a', { key: 'k2', value: 3 }]], [0]);
    const index = new TableIndex(table, () => c1, 1);
    index.sync();
    assert.deepEqual([index.lookupPk('a', c1), index.lookupPk('a', c2), index.lookupPk('ü', c2), index.lookupPk('b', c2)], [0, 2, 1, -1]);
    const key = table.schema.fields.findIndex((f) => f.name === 'key');
    assert.equal(index.hasIndex(key), true, 'unique fields are indexed');
    assert.deepEqual([index.lookupField(key, 'k1', c1), index.lookupField(key, 'k1', c2), index.lookupField(key, 'ключ', c2)], [[0], [], [1]]);
  });
});

describe('tableToArrow', () => {
  it('views the live rows: all slots while nothing was superseded, a gathered copy after', () => {
    const { table, control, commit } = bareTable(Counter);
    commit([['a', { key: 'x', value: 1 }], ['b', { key: 'y', value: 2 }]]);
    assert.deepEqual(tableToArrow(table, control, 1 << 20).getChild('pk')!.toArray(), ['a', 'b']);
    commit([['a', { key: 'x', value: 3 }]], [0]);
    Atomics.add(control.i32, i32DeadVersions(0), 1);
    const view = tableToArrow(table, control, 1 << 20);
    assert.deepEqual([...view.getChild('pk')!], ['b', 'a']);
    assert.deepEqual([...view.getChild('value')!].map(Number), [2, 3]);
  });
});

describe('repairIfDirty', () => {
  it('undoes the unpublished tail of a writer that died mid-commit, bumps the repair epoch, brings its key stamps down', () => {
    const { table, control, commit } = bareTable(Counter);
    const stamps = KeyStamps.allocate(7);
    const c1 = commit([['a', { key: 'x', value: 1 }]]);
    stamps.stampWrite(table, 'b', { pk: 'b', key: 'y', value: 0 }, -1, c1);
    // A writer of commit c1 + 1 dies after writing its slots, moving the row count and a `next` link.
    Atomics.store(control.i64, kPendingCommit, BigInt(c1 + 1));
    Atomics.store(control.i32, kDirty, 1);
    table.writeVersion(1, 'a', { key: 'x', value: 2 });
    table.setBegin(1, 2, c1 + 1);
    Atomics.store(control.i32, i32RowCount(0), 2);
    table.setNext(0, 1);
    stamps.stampWrite(table, 'a', { pk: 'a', key: 'x', value: 2 }, 0, c1 + 1);
    assert.equal(stamps.get(keyBucket(0, -1, 'a', 7)), c1 + 1);
    const epoch = control.repairEpoch();
    repairIfDirty(control, [table], stamps);
    assert.deepEqual([table.rowCount(), table.nextOf(0), table.isVisible(0, c1)], [1, -1, true]);
    assert.equal(stamps.get(keyBucket(0, -1, 'a', 7)), c1, 'the dead commit id is reused by the next commit: its stamps come down');
    assert.equal(stamps.get(keyBucket(0, -1, 'b', 7)), c1);
    assert.equal(Atomics.load(control.i32, kDirty), 0);
    assert.equal(control.repairEpoch(), epoch + 1);
    repairIfDirty(control, [table], stamps);
    assert.equal(control.repairEpoch(), epoch + 1, 'nothing to repair once clean');
  });
});
