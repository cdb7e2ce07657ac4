/**
 * Arrow views: zero-copy over the shared buffers while no version was superseded, gathered copies
 * otherwise; both give the committed values (nulls, lists, dictionaries, UTF-8).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type * as arrow from 'apache-arrow';
import { SharedStore } from '../../src/storage/store.js';
import { ChatMessage, User, schema } from './fixtures/schema.js';

function plain(table: arrow.Table): Array<Record<string, unknown>> {
  return table.toArray().map((row: { toJSON(): Record<string, unknown> }) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(row.toJSON())) {
      out[k] = typeof v === 'bigint' ? Number(v) : v !== null && typeof v === 'object' && 'toArray' in v ? [...(v as { toArray(): unknown[] }).toArray()] : v;
    }
    return out;
  });
}

function sharedBuffers(table: arrow.Table, column: string): unknown[] {
  const data = table.getChild(column)!.data[0]!;
  const views = [data.values, data.valueOffsets, data.nullBitmap] as Array<ArrayBufferView | undefined>;
  return views.filter((v) => v !== undefined && v.byteLength > 0).map((v) => v!.buffer); // absent bitmaps are empty
}

describe('toArrow', () => {
  it('is zero-copy over the SharedArrayBuffers for an append-only table', () => {
    const store = SharedStore.create(schema(), { initialRows: 8, maxBytesPerBuffer: 16 << 20 });
    store.bulkLoad(User, [
      { pk: 'u1', email: 'ann@x', age: 30, score: 1.5, admin: true, tags: ['a', 'b'], roles: ['r'] },
      { pk: 'u2', email: 'bób@x', age: null, score: 2.5, tags: [], roles: null },
    ]);
    store.runSync((db) => {
      db.create(ChatMessage, { pk: 'm1', author: 'u1', channel: 'general', content: 'hello', timestamp: 1 });
      db.create(ChatMessage, { pk: 'm2', author: null, channel: 'random', content: 'wörld', timestamp: 2 });
      db.create(ChatMessage, { pk: 'm3', author: 'u2', channel: 'general', content: '', timestamp: 3 });
    });
    const users = store.toArrow(User);
    assert.deepEqual(users.schema.fields.map((f) => f.name), ['pk', 'email', 'nick', 'age', 'score', 'admin', 'tags', 'roles', 'password']);
    for (const col of ['email', 'age', 'score', 'admin', 'tags']) {
      const bufs = sharedBuffers(users, col);
      assert.ok(bufs.length > 0 && bufs.every((b) => b instanceof SharedArrayBuffer), `${col} is a view over shared memory`);
    }
    // pk and ref columns hold UUIDs in 16 bytes (uuid-values.ts): their Utf8 vectors are copies.
    assert.ok(sharedBuffers(users, 'pk').every((b) => !(b instanceof SharedArrayBuffer)), 'pk is a decoded copy');
    assert.ok(users.getChild('tags')!.data[0]!.children[0]!.values.buffer instanceof SharedArrayBuffer);
    assert.deepEqual(plain(users), [
      { pk: 'u1', email: 'ann@x', nick: 'anon', age: 30, score: 1.5, admin: true, tags: ['a', 'b'], roles: ['r'], password: '' },
      { pk: 'u2', email: 'bób@x', nick: 'anon', age: null, score: 2.5, admin: false, tags: [], roles: null, password: '' },
    ]);
    const messages = store.toArrow(ChatMessage);
    assert.equal(messages.getChild('channel')!.type.toString(), 'Dictionary<Int32, Utf8>');
    assert.ok(messages.getChild('channel')!.data[0]!.values.buffer instanceof SharedArrayBuffer);
    assert.deepEqual(plain(messages).map((m) => [m.pk, m.author, m.channel, m.content, m.timestamp]), [
      ['m1', 'u1', 'general', 'hello', 1],
      ['m2', null, 'random', 'wörld', 2],
      ['m3', 'u2', 'general', '', 3],
    ]);
  });

  it('gathers live rows into fresh buffers once rows were updated or deleted', () => {
    const store = SharedStore.create(schema(), { initialRows: 8, maxBytesPerBuffer: 16 << 20 });
    store.runSync((db) => {
      for (let i = 0; i < 5; i++) db.create(ChatMessage, { pk: `m${i}`, channel: `c${i % 2}`, content: `text ${i}`, timestamp: i });
    });
    store.runSync((db) => {
      db.update(ChatMessage, 'm1', { content: 'edited', channel: 'c9' });
      db.drop(ChatMessage, 'm3');
    });
    const table = store.toArrow(ChatMessage);
    assert.equal(table.numRows, 4);
    assert.ok(sharedBuffers(table, 'content').every((b) => !(b instanceof SharedArrayBuffer)), 'gathered, not shared');
    assert.deepEqual(plain(table).map((m) => [m.pk, m.channel, m.content, m.timestamp]), [
      ['m0', 'c0', 'text 0', 0],
      ['m2', 'c0', 'text 2', 2],
      ['m4', 'c0', 'text 4', 4],
      ['m1', 'c9', 'edited', 1],
    ]);
    // The gathered view is a snapshot: later commits do not change it.
    store.runSync((db) => db.drop(ChatMessage, 'm0'));
    assert.equal(table.numRows, 4);
    assert.equal(store.toArrow(ChatMessage).numRows, 3);
  });

  it('a zero-copy view excludes rows committed after it was taken', () => {
    const store = SharedStore.create(schema(), { initialRows: 8, maxBytesPerBuffer: 16 << 20 });
    store.runSync((db) => db.create(ChatMessage, { content: 'one' }));
    const before = store.toArrow(ChatMessage);
    store.runSync((db) => db.create(ChatMessage, { content: 'two' }));
    assert.equal(before.numRows, 1);
    assert.deepEqual(plain(store.toArrow(ChatMessage)).map((m) => m.content), ['one', 'two']);
  });
});
