/**
 * The indexes' hash seed (indexes.ts, store-handles.ts): keys crafted offline to share one bucket
 * under a known seed spread out under a fresh random one, and every thread of a process gets the
 * store's seed through its handles.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isLexiconsError } from '../../src/errors.js';
import { hashValue, TableIndex } from '../../src/storage/indexes.js';
import { compileSchema } from '../../src/storage/schema.js';
import { SharedStore } from '../../src/storage/store.js';
import { bareTable } from './fixtures/bare-table.js';
import { Counter } from './fixtures/schema.js';

const FIXED_SEED = 0x5eed;
/** Low bits the crafted keys share: more than any bucket array of these tests uses. */
const LOW_BITS = 14;

/** `count` emails whose hashes under `seed` agree in their low LOW_BITS bits (brute force). */
function collidingEmails(seed: number, count: number): string[] {
  const mask = (1 << LOW_BITS) - 1;
  const target = hashValue('user0@example.com', seed) & mask;
  const found: string[] = [];
  for (let n = 0; found.length < count; n++) {
    const email = `user${n}@example.com`;
    if ((hashValue(email, seed) & mask) === target) found.push(email);
  }
  return found;
}

/** An index over `keys` (as pks and as the unique `key` field), built with `seed`. */
function indexOver(keys: readonly string[], seed: number): { index: TableIndex; key: number; snapshot: number } {
  const { table, commit } = bareTable(Counter, keys.length);
  const snapshot = commit(keys.map((k, i) => [k, { key: k, value: i }]));
  const index = new TableIndex(table, () => snapshot, seed);
  index.sync();
  return { index, key: table.schema.fields.findIndex((f) => f.name === 'key'), snapshot };
}

describe('index hash seed', () => {
  it('keys crafted to collide under a fixed seed do not collide under a fresh random seed', () => {
    const keys = collidingEmails(FIXED_SEED, 200);
    const fixed = indexOver(keys, FIXED_SEED);
    assert.equal(fixed.index.longestBucket(), keys.length, 'under the seed they were crafted for, one bucket holds them all (pk index)');
    assert.equal(fixed.index.longestBucket(fixed.key), keys.length, '... and the unique field index');

    const seed = SharedStore.create(compileSchema([Counter])).handles.hashSeed;
    assert.notEqual(seed, FIXED_SEED);
    const fresh = indexOver(keys, seed);
    assert.ok(fresh.index.longestBucket() <= 8, `pk index longest bucket ${fresh.index.longestBucket()}`);
    assert.ok(fresh.index.longestBucket(fresh.key) <= 8, `field index longest bucket ${fresh.index.longestBucket(fresh.key)}`);
    // Lookups find every key under either seed.
    for (const [i, k] of keys.entries()) {
      assert.equal(fresh.index.lookupPk(k, fresh.snapshot), i);
      assert.deepEqual(fixed.index.lookupField(fixed.key, k, fixed.snapshot), [i]);
    }
  });

  it('is random per store, reaches every thread through the handles, and is checked', () => {
    const schema = compileSchema([Counter]);
    const seeds = new Set(Array.from({ length: 4 }, () => SharedStore.create(schema).handles.hashSeed));
    assert.ok(seeds.size >= 3, 'fresh stores draw fresh seeds');
    const store = SharedStore.create(schema, { hashSeed: FIXED_SEED });
    const handles = structuredClone(store.handles); // as a worker receives them
    const attached = SharedStore.attach(schema, handles);
    assert.equal(attached.handles.hashSeed, FIXED_SEED);
    store.runSync((db) => db.create(Counter, { key: 'a@example.com', value: 1 }));
    assert.equal(attached.runSync((db) => db.get(Counter, { key: 'a@example.com' })?.value).value, 1);
    assert.throws(() => SharedStore.create(schema, { hashSeed: -1 }), (e) => isLexiconsError(e, 'OPTION') && e.message === 'options.hashSeed must be an integer from 0 to 4294967295');
    const { hashSeed: _, ...without } = store.handles;
    assert.throws(() => SharedStore.attach(schema, without as typeof store.handles), (e) => isLexiconsError(e, 'OPTION') && e.message === 'SharedStore.attach: handles are not StoreHandles of this lexicons version');
  });

  it('hashes ASCII and non-ASCII strings, numbers and booleans; -0 and 0 alike', () => {
    assert.equal(hashValue(0, 7), hashValue(-0, 7));
    assert.notEqual(hashValue('a', 7), hashValue('b', 7));
    assert.notEqual(hashValue('a', 7), hashValue('a', 8), 'the seed changes the hash');
    assert.notEqual(hashValue(1.5, 7), hashValue(1.5, 8));
    assert.notEqual(hashValue(true, 7), hashValue(false, 7));
    const { index, key, snapshot } = indexOver(['plain', 'ключ', 'ü@example.com'], 99);
    assert.deepEqual([index.lookupPk('ключ', snapshot), index.lookupPk('ü@example.com', snapshot), index.lookupPk('plain', snapshot)], [1, 2, 0]);
    assert.deepEqual(index.lookupField(key, 'ключ', snapshot), [1]);
  });
});
