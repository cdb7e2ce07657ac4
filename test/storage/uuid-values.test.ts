/**
 * Compact keys (uuid-values.ts): pk and ref columns keep a canonical UUID in 16 bytes and any
 * other string as written; reads, indexes, equality filters, queryJson, Arrow views and
 * compaction see the strings as written; readers in other threads never see a torn key.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as arrow from 'apache-arrow';
import { Column } from '../../src/storage/columns.js';
import { GrowBuf } from '../../src/storage/grow-buf.js';
import { SharedStore } from '../../src/storage/store.js';
import { UUID_BYTES, UuidValues } from '../../src/storage/uuid-values.js';
import { Gate, spawnTask } from '../helpers/threads.js';
import { ChatMessage, User, schema } from './fixtures/schema.js';
import { uuidOf } from './fixtures/uuid-keys.js';

const alloc = (label: string, bytes: number): GrowBuf => GrowBuf.allocate(bytes, 1 << 20, label, true);

/** Stored bytes of slot i. */
function stored(values: UuidValues, i: number): number {
  const off = values.offsets.i32(i + 1);
  return off[i + 1]! - off[i]!;
}

/** Keys that must stay strings: not the canonical form, or a 16-byte string that could pass for 16 bytes. */
const FALLBACK: Array<[string, number]> = [
  ['A0B1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D', 36], // uppercase: kept as written
  ['a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3C4d', 36], // one uppercase digit
  ['{9a7c2f10-1b3d-4c5e-8f90-a1b2c3d4e5f6}', 38],
  ['9a7c2f101b3d4c5e8f90a1b2c3d4e5f6', 32], // no dashes
  ['9a7c2f10-1b3d-4c5e-8f90-a1b2c3d4e5fg', 36], // not hex
  ['9a7c2f10_1b3d-4c5e-8f90-a1b2c3d4e5f6', 36], // dash misplaced
  ['9a7c2f10-1b3d-4c5e-8f90-a1b2c3d4e5f', 35],
  ['sixteen-byte-pk!', 17], // 16 bytes of UTF-8: marked, never read as a UUID
  ['ääääääää', 17], // 16 bytes in 8 characters
  ['12@Public', 9], // channel history offset@channel
  ['', 0],
  ['☃ 😀', 8],
  ['\u0000\u00ff', 3],
];

describe('UuidValues', () => {
  it('packs canonical UUIDs into 16 bytes and reads them back exactly', () => {
    const values = new UuidValues(alloc('T.pk offsets', 8), alloc('T.pk bytes', 8));
    const uuids = Array.from({ length: 1000 }, (_, i) => (i === 0 ? '00000000-0000-0000-0000-000000000000' : i === 1 ? 'ffffffff-ffff-ffff-ffff-ffffffffffff' : randomUUID()));
    uuids.forEach((u, i) => values.write(i, u));
    uuids.forEach((u, i) => {
      assert.equal(values.read(i), u);
      assert.equal(stored(values, i), UUID_BYTES);
    });
    assert.equal(values.offsets.i32(1000)[1000], 16_000, '16 bytes each, not 36');
  });

  it('keeps every other string as written (uppercase, braced, near misses, 16-byte strings), mixed with UUIDs in one column', () => {
    const values = new UuidValues(alloc('T.pk offsets', 8), alloc('T.pk bytes', 8));
    const keys = FALLBACK.flatMap(([k], i) => [k, uuidOf(i)]);
    keys.forEach((k, i) => values.write(i, k));
    keys.forEach((k, i) => assert.equal(values.read(i), k, `slot ${i}`));
    FALLBACK.forEach(([k, bytes], i) => assert.equal(stored(values, 2 * i), bytes, JSON.stringify(k)));
    // Arrow users get strings (a copy).
    const vector = arrow.makeVector(values.arrowData(keys.length));
    assert.equal(String(vector.type), 'Utf8');
    assert.deepEqual([...vector], keys);
    // Compaction moves ranges down, in both forms.
    for (let from = 1, to = 0; from < keys.length; from += 2, to++) values.move(from, to);
    keys.filter((_, i) => i % 2 === 1).forEach((k, i) => assert.equal(values.read(i), k));
  });

  it('equals(i, str) agrees with read(i) === str for every stored form, against near misses of each', () => {
    const values = new UuidValues(alloc('T.pk offsets', 8), alloc('T.pk bytes', 8));
    const keys = [...FALLBACK.map(([k]) => k), uuidOf(1), uuidOf(2), 'a1', 'a12', 'é', 'ab'];
    keys.forEach((k, i) => values.write(i, k));
    const probes = new Set<string>(keys);
    for (const k of keys) {
      probes.add(k.toUpperCase());
      probes.add(`${k}x`);
      probes.add(k.slice(0, -1));
      if (k.length > 0) probes.add(`${k.slice(0, -1)}${String.fromCharCode(k.charCodeAt(k.length - 1) ^ 1)}`);
    }
    probes.add('\u00e9'.normalize('NFD')); // 'é' spelled as two code units, three bytes
    probes.add('\u00c3\u00a9'); // the two UTF-8 bytes of 'é' read as Latin-1: same byte values, other string
    let matches = 0;
    for (let i = 0; i < keys.length; i++) {
      for (const probe of probes) {
        const same = values.read(i) === probe;
        assert.equal(values.equals(i, probe), same, `slot ${i} (${JSON.stringify(keys[i])}) vs ${JSON.stringify(probe)}`);
        if (same) matches++;
      }
    }
    assert.equal(matches, keys.length);
  });

  it('is the store of ref columns: nulls, and Arrow data with the validity', () => {
    const column = new Column({ kind: 'ref' }, alloc, 'T.author', 2);
    const keys = [uuidOf(1), null, 'x@y', uuidOf(2).toUpperCase(), null, uuidOf(3)];
    keys.forEach((k, i) => column.write(i, k));
    assert.ok(column.values instanceof UuidValues);
    assert.deepEqual(keys.map((_, i) => column.read(i)), keys);
    assert.deepEqual([...arrow.makeVector(column.arrowData(keys.length))], keys);
  });
});

describe('UUID keys in a store', () => {
  it('finds rows by pk and by ref (indexes hash the strings as written), and queryJson writes the same text as toDict', () => {
    const store = SharedStore.create(schema(), { initialRows: 4 });
    const users = [uuidOf(1), uuidOf(2).toUpperCase(), 'sixteen-byte-pk!', 'plain', ...FALLBACK.slice(2, 5).map(([k]) => k)];
    store.bulkLoad(User, users.map((pk, i) => ({ pk, email: `${i}@x`, password: 'p' })));
    store.runSync((db) => {
      users.forEach((author, i) => {
        for (let k = 0; k <= i; k++) db.create(ChatMessage, { author, channel: 'Public', content: `${i}.${k}`, timestamp: k });
      });
      db.create(ChatMessage, { pk: 'A0B1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D', author: null, channel: 'Public', content: 'upper', timestamp: 0 });
    });
    store.runSync((db) => {
      users.forEach((pk, i) => {
        assert.equal(db.get(User, pk)?.email, `${i}@x`, pk);
        assert.equal(db.count(ChatMessage, { author: pk }), i + 1, pk);
        assert.equal(db.query(ChatMessage, { author__in: [pk] }).length, i + 1);
      });
      assert.equal(db.get(User, uuidOf(2)), null, 'the lowercase form of an uppercase pk is another pk');
      assert.equal(db.get(ChatMessage, 'a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d'), null);
      assert.equal(db.get(ChatMessage, 'A0B1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D')?.content, 'upper');
      const records = db.query(ChatMessage);
      assert.equal(JSON.stringify(db.queryJson(ChatMessage)), JSON.stringify(records.map((r) => r.toDict())));
      assert.ok(records.every((r) => typeof r.pk === 'string' && r.pk.length === 36), 'generated pks are UUIDs');
      assert.equal(JSON.stringify(db.queryJson(User)), JSON.stringify(db.query(User).map((r) => r.toDict())));
    });
    assert.equal(store.stats().tables.ChatMessage!.rows, (users.length * (users.length + 1)) / 2 + 1);
  });

  it('compaction carries packed and string keys: the same rows, found by pk and by ref afterwards', () => {
    const store = SharedStore.create(schema(), { initialRows: 4 });
    const keys = [...FALLBACK.map(([k]) => k).filter((k) => k !== ''), ...Array.from({ length: 12 }, (_, i) => uuidOf(i))];
    store.bulkLoad(User, keys.map((pk, i) => ({ pk, email: `${i}@x`, password: 'p' })));
    store.bulkLoad(ChatMessage, keys.map((author, i) => ({ pk: keys[keys.length - 1 - i], author, channel: 'c', content: '0', timestamp: i })));
    for (let round = 1; round <= 3; round++) {
      store.runSync((db) => {
        keys.forEach((pk, i) => {
          if (i % 3 !== 0) db.update(ChatMessage, pk, { content: String(round), author: keys[(i + round) % keys.length] });
        });
      });
    }
    const before = [...store.scan(ChatMessage)];
    const step = store.reclaim({ force: true });
    assert.equal(step.state, 'done');
    assert.equal(store.stats().tables.ChatMessage!.versions, keys.length, 'only live versions are left');
    assert.deepEqual([...store.scan(ChatMessage)].sort((a, b) => (a.pk < b.pk ? -1 : 1)), before.sort((a, b) => (a.pk < b.pk ? -1 : 1)));
    store.runSync((db) => {
      for (const row of before) {
        assert.equal(db.get(ChatMessage, row.pk)?.content, row.content, row.pk);
        assert.ok(db.query(ChatMessage, { author: row.author }).some((m) => m.pk === row.pk), `by author ${String(row.author)}`);
      }
    });
  });

  it('readers in 3 threads never see a torn or mixed key while a writer commits, rewrites and grows the buffers', async () => {
    const store = SharedStore.create(schema(), { initialRows: 16, maxBytesPerBuffer: 64 << 20 });
    const bytesBefore = store.stats().tables.ChatMessage!.bytes;
    const gate = new Gate();
    const url = new URL('./fixtures/uuid-worker.js', import.meta.url);
    type Check = { snapshots: number; rows: number; violations: string[] };
    const spawn = <T>(task: string, params: unknown) => spawnTask<T>(url, { handles: store.handles, gate: gate.sab, task, params });
    const writer = spawn<number>('write', { n: 400, batch: 10 });
    const readers = [spawn<Check>('read', {}), spawn<Check>('read', {}), spawn<Check>('read', {})];
    await gate.ready(4);
    gate.open();
    assert.equal(await writer.done, 4000);
    gate.stop();
    const checks = await Promise.all(readers.map((r) => r.done));
    for (const c of checks) {
      assert.deepEqual(c.violations, []);
      assert.ok(c.snapshots >= 3 && c.rows > 0, `reader checked ${c.snapshots} snapshots, ${c.rows} rows`);
    }
    const stats = store.stats().tables.ChatMessage!;
    assert.equal(stats.rows, 4000);
    assert.ok(stats.bytes >= bytesBefore * 16, `buffers grew while read: ${bytesBefore} -> ${stats.bytes}`);
  });
});
