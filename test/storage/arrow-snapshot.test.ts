/**
 * Binary snapshot files (arrow-snapshot.ts, snapshot-files.ts): written from the shared columns at
 * a snapshot id (contiguous rows as views, updated tables gathered), read back by apache-arrow's
 * own reader, loaded straight into a fresh store, refused when torn or corrupt, and loaded through
 * the generic path when the Model changed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as arrow from 'apache-arrow';
import { isLexiconsError } from '../../src/errors.js';
import { loadTableFile } from '../../src/storage/arrow-snapshot-load.js';
import type { ArrowFileInfo } from '../../src/storage/arrow-snapshot.js';
import { compileSchema, field, Model } from '../../src/storage/schema.js';
import { writeSnapshotFiles, writeSnapshotJob } from '../../src/storage/snapshot-files.js';
import { SharedStore } from '../../src/storage/store.js';
import { ChatMessage, schema, User } from './fixtures/schema.js';
import { tempDir } from '../helpers/temp-dir.js';
import { stateOf } from './fixtures/wal-helpers.js';

function filled(): SharedStore {
  const store = SharedStore.create(schema());
  store.bulkLoad(User, [
    { pk: 'u1', email: 'a@x', nick: 'ä', age: 3, score: -0.5, admin: true, tags: ['x', ''], roles: ['r'], password: 'p' },
    { pk: 'u2', email: 'b@x', nick: '', age: null, score: 1e300, admin: false, tags: [], roles: null, password: 'q' },
    { pk: 'u3', email: 'c@x', nick: 'n', age: -7, score: 0, admin: false, tags: ['€'], roles: ['a', 'b'], password: 'r' },
  ]);
  const channels = ['Public', 'Dev', 'Ops'];
  store.bulkLoad(ChatMessage, Array.from({ length: 300 }, (_, i) => ({ pk: `m${String(i).padStart(3, '0')}`, author: i % 7 === 0 ? null : `u${(i % 3) + 1}`, channel: channels[i % 3], content: `hello ${i} "q", ü`, timestamp: 1.5 + i })));
  return store;
}

/** Writes every table of `store` at its latest snapshot into `dir` (inline); returns the files and infos. */
function writeAll(store: SharedStore, dir: string, snapshot = store.snapshot()): { files: Record<string, string>; info: Record<string, ArrowFileInfo> } {
  const files = Object.fromEntries(store.schema.tables.map((t) => [t.name, join(dir, `${t.name}.arrow`)]));
  return { files, info: writeSnapshotJob({ handles: store.handles, snapshot, files }) };
}

function loadAll(dir: string, info: Record<string, ArrowFileInfo>): SharedStore {
  const store = SharedStore.create(schema());
  for (const t of store.schema.tables) loadTableFile(store, t, join(dir, `${t.name}.arrow`), info[t.name]!);
  return store;
}

/** A store value as apache-arrow reads it back (bigint -> number, vectors -> arrays). */
function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof arrow.Vector) return Array.from(v as Iterable<unknown>, plain);
  return v;
}

/**
 * A pk or ref value as an Arrow reader gets it (Binary, `lexicons.encoding: uuid16+utf8`), decoded
 * by the rule docs/storage.md gives to Arrow users: 16 bytes are a UUID, a last byte 0xFF is
 * dropped, anything else is UTF-8.
 */
function key(v: unknown): unknown {
  if (!(v instanceof Uint8Array)) return v;
  const b = Buffer.from(v);
  if (b.length === 16) {
    const hex = b.toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  return b.subarray(0, b.at(-1) === 0xff ? -1 : b.length).toString('utf8');
}

describe('binary snapshot files', () => {
  it('round-trips every field kind: apache-arrow reads them back, and a fresh store loads them (append-only table: views of shared memory)', async () => {
    await using folder = await tempDir('lexicons-arrow-');
    const dir = folder.path;
    const store = filled();
    const { files, info } = writeAll(store, dir);
    assert.equal(info.ChatMessage!.rows, 300);
    assert.equal(info.ChatMessage!.bytes, (await stat(files.ChatMessage!)).size);
    for (const t of store.schema.tables) {
      const read = arrow.tableFromIPC(await readFile(files[t.name]!));
      const rows = [...store.scan(t.name)];
      assert.equal(read.numRows, rows.length, t.name);
      assert.deepEqual(read.schema.fields.map((f) => f.name), ['pk', ...t.fields.map((f) => f.name)]);
      const packed = read.schema.fields.filter((f) => f.metadata.get('lexicons.encoding') === 'uuid16+utf8');
      assert.deepEqual(packed.map((f) => [f.name, String(f.type)]), [['pk', 'Binary'], ...t.fields.filter((f) => f.kind === 'ref').map((f) => [f.name, 'Binary'])]);
      rows.forEach((row, i) => {
        const got = read.get(i)!.toJSON() as Record<string, unknown>;
        for (const [k, v] of Object.entries(row)) assert.deepEqual(key(plain(got[k])), v, `${t.name} row ${i} ${k}`);
      });
    }
    const loaded = loadAll(dir, info);
    assert.deepEqual(stateOf(loaded), stateOf(store));
    // The loaded store is a working store: indexes, dictionaries and new commits.
    loaded.runSync((db) => db.create(ChatMessage, { author: 'u1', channel: 'New', content: 'x', timestamp: 1 }));
    loaded.runSync((db) => db.update(User, 'u2', { nick: 'later' }));
    const { value } = loaded.runSync((db) => [db.count(ChatMessage, { channel: 'Dev' }), db.get(ChatMessage, { channel: 'New' })?.content, db.get(User, { email: 'c@x' })?.pk]);
    assert.deepEqual(value, [100, 'x', 'u3']);
    assert.throws(() => loaded.runSync((db) => db.create(User, { pk: 'u1', email: 'z@x', password: 'p' })), (err) => isLexiconsError(err, 'UNIQUE'));
  });

  it('writes only the live versions at the snapshot id, also from the snapshot thread (updates and deletes: gathered)', async () => {
    await using folder = await tempDir('lexicons-arrow-');
    const dir = folder.path;
    const store = filled();
    store.runSync((db) => {
      for (let i = 0; i < 300; i += 7) db.update(ChatMessage, `m${String(i).padStart(3, '0')}`, { content: `changed ${i}`, channel: 'Changed' });
      db.delete(ChatMessage, 'm001');
      db.delete(User, 'u2');
    });
    const at = store.snapshot();
    const expected = stateOf(store);
    store.runSync((db) => {
      db.create(ChatMessage, { pk: 'after', channel: 'Public', content: 'not in the snapshot', timestamp: 0 });
      db.update(User, 'u1', { nick: 'not in the snapshot either' });
    });
    const files = Object.fromEntries(store.schema.tables.map((t) => [t.name, join(dir, `${t.name}.arrow`)]));
    const info = await writeSnapshotFiles({ handles: store.handles, snapshot: at, files });
    assert.equal(info.ChatMessage!.rows, 299);
    assert.equal(info.User!.rows, 2);
    assert.deepEqual(stateOf(loadAll(dir, info)), expected);
  });

  it('packs canonical UUIDs (16 bytes in the file), keeps any other key as written, and loads them back exactly (fast path)', async () => {
    await using folder = await tempDir('lexicons-arrow-');
    const store = SharedStore.create(schema());
    const users = ['3f2b8c1e-7d4a-4e59-9b1c-0a6d2e8f4c71', 'A0B1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D', 'sixteen-byte-pk!', 'fünfzehn bytes', '{9a7c2f10-1b3d-4c5e-8f90-a1b2c3d4e5f6}'];
    store.bulkLoad(User, users.map((pk, i) => ({ pk, email: `${i}@x`, password: 'p' })));
    store.bulkLoad(ChatMessage, users.map((author, i) => ({ pk: `0000000${i}-1b3d-4c5e-8f90-a1b2c3d4e5f6`, author, channel: 'Public', content: 'c', timestamp: i })));
    const { files, info } = writeAll(store, folder.path);
    const read = arrow.tableFromIPC(await readFile(files.User!));
    assert.deepEqual([...read.getChild('pk')!].map((b: Uint8Array) => b.length), [16, 36, 17, 15, 38], 'a UUID in 16 bytes; a 16-byte string marked');
    const loaded = loadAll(folder.path, info);
    assert.deepEqual(stateOf(loaded), stateOf(store));
    assert.deepEqual([...loaded.scan(User)].map((u) => u.pk), users);
    const { value } = loaded.runSync((db) => users.map((pk) => [db.get(User, pk)?.pk, db.count(ChatMessage, { author: pk })]));
    assert.deepEqual(value, users.map((pk) => [pk, 1]));
  });

  it('loads a snapshot of the previous format (pk and refs as Utf8: fixture written by f934842) through the generic path, packing its UUIDs', async () => {
    await using folder = await tempDir('lexicons-arrow-');
    const dir = fileURLToPath(new URL('../../../test/storage/fixtures/snapshot-v1/', import.meta.url));
    const info = JSON.parse(readFileSync(join(dir, 'info.json'), 'utf8')) as Record<string, ArrowFileInfo>;
    const store = SharedStore.create(schema());
    for (const name of ['User', 'ChatMessage']) assert.equal(loadTableFile(store, store.schema.byName.get(name)!, join(dir, `${name}.arrow`), info[name]!), info[name]!.rows);
    const users = [...store.scan(User)].map((u) => u.pk);
    assert.deepEqual(users, ['3f2b8c1e-7d4a-4e59-9b1c-0a6d2e8f4c71', 'A0B1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D', 'sixteen-byte-pk!', 'u@channel']);
    const messages = [...store.scan(ChatMessage)];
    assert.equal(messages.length, 40);
    assert.equal(messages[5]!.pk, '{9a7c2f10-1b3d-4c5e-8f90-a1b2c3d4e5f6}');
    assert.equal(messages[7]!.pk, '00000007-1b3d-4c5e-8f90-a1b2c3d4e5f6');
    assert.deepEqual(messages.slice(0, 5).map((m) => m.author), [...users, null]);
    // Written again, the UUIDs are packed: 16-byte pks in the new file.
    const { files } = writeAll(store, folder.path);
    const table = arrow.tableFromIPC(readFileSync(files.ChatMessage!));
    const packedBytes = [...table.getChild('pk')!].reduce((n: number, b: Uint8Array) => n + b.length, 0);
    assert.equal(packedBytes, 39 * 16 + 38, 'were 39 * 36 + 38');
  });

  it('refuses a torn or corrupt file before anything is published, naming the file', async () => {
    await using folder = await tempDir('lexicons-arrow-');
    const dir = folder.path;
    const store = filled();
    const { files, info } = writeAll(store, dir);
    const file = files.ChatMessage!;
    const bytes = await readFile(file);
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length / 2)]! ^= 0x10;
    await writeFile(file, flipped);
    const table = store.schema.byName.get('ChatMessage')!;
    const fresh = SharedStore.create(schema());
    assert.throws(() => loadTableFile(fresh, table, file, info.ChatMessage!), (err) => isLexiconsError(err, 'CSV') && err.message.startsWith(`${file}: `) && /torn or corrupt/.test(err.message));
    assert.equal(fresh.stats().tables.ChatMessage!.rows, 0, 'nothing published');
    await writeFile(file, bytes);
    await truncate(file, bytes.length - 100);
    assert.throws(() => loadTableFile(SharedStore.create(schema()), table, file, info.ChatMessage!), (err) => isLexiconsError(err, 'CSV') && err.message.startsWith(`${file}: `));
  });

  it('loads a file of a changed Model through the generic path (a new field gets its default), and refuses one with a column the Model lost', async () => {
    await using folder = await tempDir('lexicons-arrow-');
    const dir = folder.path;
    const store = filled();
    const { info } = writeAll(store, dir);
    class ChatMessage2 extends Model {
      static override table = 'ChatMessage';
      static author = field.str({ nullable: true });
      static channel = field.str({ dictionary: true, index: true });
      static content = field.str();
      static timestamp = field.float();
      static pinned = field.bool({ default: true });
    }
    const grown = compileSchema([ChatMessage2]);
    const a = SharedStore.create(grown);
    assert.equal(loadTableFile(a, grown.tables[0]!, join(dir, 'ChatMessage.arrow'), info.ChatMessage!), 300);
    const rows = [...a.scan('ChatMessage')];
    assert.deepEqual(rows[3], { ...[...store.scan(ChatMessage)][3], pinned: true });

    class ChatMessage3 extends Model {
      static override table = 'ChatMessage';
      static channel = field.str();
      static content = field.str();
      static timestamp = field.float();
    }
    const shrunk = compileSchema([ChatMessage3]);
    assert.throws(
      () => loadTableFile(SharedStore.create(shrunk), shrunk.tables[0]!, join(dir, 'ChatMessage.arrow'), info.ChatMessage!),
      (err) => isLexiconsError(err, 'CSV') && /column author not in Model ChatMessage; refusing to start so no data is dropped/.test(err.message),
    );
  });

  it('loads an Arrow file apache-arrow wrote (no manifest record: generic reader)', async () => {
    await using folder = await tempDir('lexicons-arrow-');
    const dir = folder.path;
    const store = filled();
    const file = join(dir, 'User.arrow');
    await writeFile(file, arrow.tableToIPC(store.toArrow(User), 'file'));
    const fresh = SharedStore.create(schema());
    assert.equal(loadTableFile(fresh, fresh.schema.byName.get('User')!, file, null), 3);
    assert.deepEqual(stateOf(fresh).User, stateOf(store).User);
  });
});
