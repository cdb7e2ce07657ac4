/**
 * Binary snapshot files (arrow-snapshot.ts, snapshot-files.ts): written from the shared columns at
 * a snapshot id (contiguous rows as views, updated tables gathered), read back by apache-arrow's
 * own reader, loaded straight into a fresh store, refused when torn or corrupt, and loaded through
 * the generic path when the Model changed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
      rows.forEach((row, i) => {
        const got = read.get(i)!.toJSON() as Record<string, unknown>;
        for (const [k, v] of Object.entries(row)) assert.deepEqual(plain(got[k]), v, `${t.name} row ${i} ${k}`);
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
