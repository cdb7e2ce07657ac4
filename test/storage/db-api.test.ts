/**
 * The Db API in one thread: the original's database semantics, errors, atomicity, savepoints,
 * snapshots and optimistic conflicts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isLexiconsError, type ErrorCode } from '../../src/errors.js';
import type { Db } from '../../src/storage/api.js';
import { SharedStore } from '../../src/storage/store.js';
import { compileSchema, field, Model } from '../../src/storage/schema.js';
import { ChatMessage, Counter, Reaction, User, schema } from './fixtures/schema.js';

function fresh(): SharedStore {
  return SharedStore.create(schema(), { initialRows: 4, maxBytesPerBuffer: 16 << 20 });
}

function throwsCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isLexiconsError(err, code), `expected ${code}, got ${String(err)}`);
    if (message) assert.match((err as Error).message, message);
    return true;
  });
}

/** Three users, four messages in two channels. */
function seed(store: SharedStore): { ann: string; bob: string; cid: string } {
  return store.runSync((db) => {
    const ann = db.create(User, { email: 'ann@x', nick: 'ann', age: 30, score: 1.5, tags: ['a'] });
    const bob = db.create(User, { email: 'bob@x', nick: 'bob', age: 20, score: 2.5, admin: true });
    const cid = db.create(User, { email: 'cid@x', nick: 'cid', score: 0.5 });
    db.create(ChatMessage, { author: ann.pk, channel: 'general', content: 'hello world', timestamp: 1 });
    db.create(ChatMessage, { author: bob.pk, channel: 'general', content: 'hi ann', timestamp: 2 });
    db.create(ChatMessage, { author: ann.pk, channel: 'random', content: 'lunch?', timestamp: 3 });
    db.create(ChatMessage, { author: cid.pk, channel: 'random', content: 'yes', timestamp: 4 });
    return { ann: ann.pk, bob: bob.pk, cid: cid.pk };
  }).value;
}

const read = <T>(store: SharedStore, fn: (db: Db) => T): T => store.runSync(fn).value;

describe('create', () => {
  it('applies defaults, transforms, set dedup and generates a uuid4 pk', () => {
    const store = fresh();
    const u = read(store, (db) => db.create(User, { email: 'a@x', roles: ['r', 'r', 's'], password: 'pw' }));
    assert.match(u.pk, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual(u.toDict(), { pk: u.pk, email: 'a@x', nick: 'anon', age: null, score: 0, admin: false, tags: [], roles: ['r', 's'], password: 'hashed:pw' });
    assert.deepEqual(Object.keys(u), ['pk', 'email', 'nick', 'age', 'score', 'admin', 'tags', 'roles', 'password']);
    assert.deepEqual(u._to_dict(), u.toDict());
    assert.equal(JSON.stringify(u), JSON.stringify(u.toDict()));
    const again = read(store, (db) => db.get(User, u.pk));
    assert.deepEqual(again?.toDict(), u.toDict());
  });

  it('keeps a given pk and rejects a duplicate pk with UNIQUE', () => {
    const store = fresh();
    read(store, (db) => db.create(Counter, { pk: 'c1', key: 'x' }));
    throwsCode(() => read(store, (db) => db.create(Counter, { pk: 'c1', key: 'y' })), 'UNIQUE', /Counter.*c1/);
  });

  it('type errors name table, field, expected type and value', () => {
    const store = fresh();
    throwsCode(() => read(store, (db) => db.create(User, { email: 'e', age: 1.5 })), 'TYPE', /User\.age: expected int.*1\.5/);
    throwsCode(() => read(store, (db) => db.create(User, { email: 'e', admin: 1 as unknown as boolean })), 'TYPE', /User\.admin: expected bool/);
    throwsCode(() => read(store, (db) => db.create(User, { email: 'e', score: Infinity })), 'TYPE', /User\.score/);
    throwsCode(() => read(store, (db) => db.create(User, { email: null as unknown as string })), 'TYPE', /User\.email.*not nullable/);
    throwsCode(() => read(store, (db) => db.create(User, { email: 'e', tags: ['a', 2] as unknown as string[] })), 'TYPE', /User\.tags/);
  });

  it('unknown table or field is NOT_FOUND naming it', () => {
    const store = fresh();
    throwsCode(() => read(store, (db) => db.create('Nope', {})), 'NOT_FOUND', /Nope/);
    throwsCode(() => read(store, (db) => db.create(User, { email: 'e', shoe: 1 } as never)), 'NOT_FOUND', /User: unknown field shoe/);
    throwsCode(() => read(store, (db) => db.query(User, { shoe__gt: 1 })), 'NOT_FOUND', /shoe/);
    throwsCode(() => read(store, (db) => db.query(User, { age__bogus: 1 })), 'NOT_FOUND', /bogus/);
  });

  it('unique fields reject a second live value, in the same and in a later transaction', () => {
    const store = fresh();
    throwsCode(
      () =>
        read(store, (db) => {
          db.create(User, { email: 'dup@x' });
          db.create(User, { email: 'dup@x' });
        }),
      'UNIQUE',
      /User\.email: value "dup@x"/,
    );
    read(store, (db) => db.create(User, { email: 'dup@x' }));
    throwsCode(() => read(store, (db) => db.create(User, { email: 'dup@x' })), 'UNIQUE', /User\.email.*dup@x/);
    // After deleting the holder, the value is free again.
    read(store, (db) => db.drop(User, { email: 'dup@x' }));
    read(store, (db) => db.create(User, { email: 'dup@x' }));
    assert.equal(read(store, (db) => db.count(User)), 1);
  });
});

describe('get and query', () => {
  it('get by pk or filters: null, the record, or MULTIPLE', () => {
    const store = fresh();
    const { ann } = seed(store);
    read(store, (db) => {
      assert.equal(db.get(User, ann)?.nick, 'ann');
      assert.equal(db.get(User, 'missing'), null);
      assert.equal(db.get(User, { email: 'bob@x' })?.nick, 'bob');
      assert.equal(db.get(User, { email: 'zed@x' }), null);
    });
    throwsCode(() => read(store, (db) => db.get(ChatMessage, { channel: 'general' })), 'MULTIPLE', /^2 ChatMessage models found\.$/);
  });

  it('supports every operator', () => {
    const store = fresh();
    const { ann, cid } = seed(store);
    const nicks = (filters: Record<string, unknown>): string[] => read(store, (db) => db.query(User, { ...filters, _sort: 'nick' }).map((u) => u.nick));
    assert.deepEqual(nicks({ age: 30 }), ['ann']);
    assert.deepEqual(nicks({ age__eq: 20 }), ['bob']);
    assert.deepEqual(nicks({ age__ne: 30 }), ['bob', 'cid']);
    assert.deepEqual(nicks({ age__gt: 20 }), ['ann']);
    assert.deepEqual(nicks({ age__ge: 20 }), ['ann', 'bob']);
    assert.deepEqual(nicks({ score__lt: 1.5 }), ['cid']);
    assert.deepEqual(nicks({ score__le: 1.5 }), ['ann', 'cid']);
    assert.deepEqual(nicks({ nick__in: ['ann', 'cid', 'zed'] }), ['ann', 'cid']);
    assert.deepEqual(nicks({ nick__nin: ['ann'] }), ['bob', 'cid']);
    assert.deepEqual(nicks({ email__f: 'b@' }), ['bob']);
    assert.deepEqual(nicks({ email__re: '^(ann|cid)@' }), ['ann', 'cid']);
    assert.deepEqual(nicks({ email__re: /^BOB/i }), ['bob']);
    assert.deepEqual(nicks({ score__max: true }), ['bob']);
    assert.deepEqual(nicks({ score__min: true }), ['cid']);
    assert.deepEqual(nicks({ age: null }), ['cid']);
    assert.deepEqual(nicks({ tags__f: 'a' }), ['ann']);
    assert.deepEqual(nicks({ admin: true }), ['bob']);
    assert.deepEqual(nicks({ pk__in: [cid, 'missing', ann] }), ['ann', 'cid']);
    assert.deepEqual(nicks({ pk: ann }), ['ann']);
    assert.deepEqual(nicks({ pk__ne: ann }), ['bob', 'cid']);
  });

  it('filters through references, sorts (asc, desc, multi-key) and limits after filtering', () => {
    const store = fresh();
    const { ann } = seed(store);
    read(store, (db) => {
      const byAnn = db.query(ChatMessage, { author__nick: 'ann', _sort: '-timestamp' });
      assert.deepEqual(byAnn.map((m) => m.content), ['lunch?', 'hello world']);
      assert.deepEqual(db.query(ChatMessage, { author__age__gt: 25 }).length, 2);
      assert.deepEqual(db.query(ChatMessage, { author: ann }).length, 2);
      const sorted = db.query(ChatMessage, { _sort: ['channel', '-timestamp'] }).map((m) => m.timestamp);
      assert.deepEqual(sorted, [2, 1, 4, 3]);
      // _limit applies after the filters (the original applied it before: a quirk we fix).
      const limited = db.query(ChatMessage, { channel: 'random', _sort: 'timestamp', _limit: 1 });
      assert.deepEqual(limited.map((m) => m.content), ['lunch?']);
      assert.equal(db.query(ChatMessage, { _where: (m) => String(m.content).includes('?') }).length, 1);
      assert.equal(db.filter(ChatMessage).length, 4);
      assert.equal(db.count(ChatMessage, { channel: 'random' }), 2);
      assert.equal(db.count(ChatMessage, { author__email: 'cid@x' }), 1);
      // Nulls sort last in both directions.
      assert.deepEqual(db.query(User, { _sort: '-age' }).map((u) => u.age), [30, 20, null]);
    });
  });

  it('queries by table name strings as well as Model classes', () => {
    const store = fresh();
    seed(store);
    assert.equal(read(store, (db) => db.query('ChatMessage', { channel: 'general' }).length), 2);
  });
});

describe('update, drop, getOrCreate, hydrate', () => {
  it('update by pk, record, array and filters; type-checks and transforms; returns the records', () => {
    const store = fresh();
    const { ann, bob } = seed(store);
    read(store, (db) => {
      const [a] = db.update(User, ann, { age: 31, password: 'new' });
      assert.equal(a?.age, 31);
      assert.equal(a?.password, 'hashed:new');
      const u = db.get(User, bob)!;
      assert.equal(db.update(User, u, { score: 9.5 })[0]?.score, 9.5);
      assert.equal(db.update(User, [ann, { pk: bob }], { admin: false }).length, 2);
      assert.equal(db.update(ChatMessage, { channel: 'random' }, { channel: 'lunch' }).length, 2);
      assert.equal(db.count(ChatMessage, { channel: 'lunch' }), 2);
      assert.equal(db.get(User, ann)?.age, 31); // read-your-own-writes
    });
    assert.equal(read(store, (db) => db.get(User, ann)?.age), 31);
    throwsCode(() => read(store, (db) => db.update(User, ann, { age: 'old' as unknown as number })), 'TYPE', /User\.age/);
    throwsCode(() => read(store, (db) => db.update(User, ann, { email: 'bob@x' })), 'UNIQUE', /User\.email.*bob@x/);
    throwsCode(() => read(store, (db) => db.update(User, ann, { pk: 'x' } as never)), 'TYPE', /pk/);
    // Swapping unique values inside one transaction is fine if the end state is unique.
    read(store, (db) => {
      db.update(User, ann, { email: 'tmp@x' });
      db.update(User, bob, { email: 'ann@x' });
      db.update(User, ann, { email: 'bob@x' });
    });
    assert.equal(read(store, (db) => db.get(User, { email: 'bob@x' })?.pk), ann);
  });

  it('update by pk or record replaces exactly the version it read (one pk lookup): no stray live version, copies out', () => {
    const store = fresh();
    const { ann } = seed(store);
    const before = store.stats().tables.User!;
    read(store, (db) => {
      const a = db.get(User, ann)!;
      const [first] = db.update(User, a, { age: 40, tags: ['x'] });
      first!.tags.push('not written'); // the returned record is the caller's copy
      const [second] = db.update(User, ann, { age: 41 }); // updates its own write
      assert.deepEqual(second?.tags, ['x']);
      assert.equal(a.age, 30); // the record read first is not changed either
    });
    const after = store.stats().tables.User!;
    assert.equal(after.rows, before.rows); // one live row per pk: the superseded version got its `next`
    assert.equal(after.versions, before.versions + 1); // two updates in one transaction: one new version
    assert.deepEqual(read(store, (db) => { const u = db.get(User, ann)!; return [u.age, u.tags]; }), [41, ['x']]);
    assert.equal(read(store, (db) => db.count(User, { age: 41 })), 1);
  });

  it('drop cascades recursively through reference fields and counts every deleted row', () => {
    const store = fresh();
    const { ann, bob } = seed(store);
    read(store, (db) => {
      for (const m of db.query(ChatMessage, { author: ann })) db.create(Reaction, { message: m.pk, emoji: '+1' });
      db.create(Reaction, { message: db.get(ChatMessage, { author: bob })!.pk, emoji: 'x' });
    });
    const deleted = read(store, (db) => db.drop(User, ann, { cascade: ['ChatMessage.author', 'Reaction.message'] }));
    assert.equal(deleted, 1 + 2 + 2);
    read(store, (db) => {
      assert.equal(db.get(User, ann), null);
      assert.equal(db.count(ChatMessage), 2);
      assert.equal(db.count(Reaction), 1);
      assert.equal(db.delete(User, 'missing'), 0);
      assert.equal(db.drop(User, { nick: 'bob' }), 1); // no cascade: messages keep a dangling ref
      assert.equal(db.count(ChatMessage, { author: bob }), 1);
    });
    throwsCode(() => read(store, (db) => db.drop(User, [], { cascade: ['ChatMessage.nope'] })), 'NOT_FOUND', /nope/);
  });

  it('getOrCreate returns the match or creates from filters + defaults', () => {
    const store = fresh();
    seed(store);
    read(store, (db) => {
      const [found, created] = db.getOrCreate(User, { email: 'ann@x' }, { nick: 'zzz' });
      assert.equal(created, false);
      assert.equal(found.nick, 'ann');
      const [made, made2] = db.getOrCreate(User, { email: 'dan@x' }, { nick: 'dan' });
      assert.equal(made2, true);
      assert.deepEqual([made.email, made.nick], ['dan@x', 'dan']);
    });
  });

  it('hydrate replaces references by the referenced records, to the given depth', () => {
    const store = fresh();
    const { ann } = seed(store);
    read(store, (db) => {
      const m = db.get(ChatMessage, { content: 'hello world' })!;
      const r = db.create(Reaction, { message: m.pk, emoji: '!' });
      const h1 = db.hydrate(ChatMessage, m);
      assert.equal((h1.author as { nick: string }).nick, 'ann');
      const h2 = db.hydrate(Reaction, r, 2) as { message: { author: { pk: string } } };
      assert.equal(h2.message.author.pk, ann);
      const shallow = db.hydrate(Reaction, r) as { message: { author: unknown } };
      assert.equal(shallow.message.author, ann);
    });
  });
});

describe('transactions', () => {
  it('a throwing function makes nothing visible', () => {
    const store = fresh();
    seed(store);
    const before = store.snapshot();
    assert.throws(() =>
      store.runSync((db) => {
        db.create(User, { email: 'ghost@x' });
        db.update(User, { email: 'ann@x' }, { age: 99 });
        throw new Error('boom');
      }),
    /boom/);
    assert.equal(store.snapshot(), before);
    read(store, (db) => {
      assert.equal(db.get(User, { email: 'ghost@x' }), null);
      assert.equal(db.get(User, { email: 'ann@x' })?.age, 30);
    });
  });

  it('savepoints roll back writes made after them, including unique bookkeeping', () => {
    const store = fresh();
    const { ann } = seed(store);
    const txn = store.begin();
    const db = txn.db;
    db.create(User, { email: 'keep@x' });
    const sp = txn.savepoint();
    db.create(User, { email: 'drop@x' });
    db.update(User, ann, { age: 1 });
    db.drop(ChatMessage, { channel: 'general' });
    assert.equal(db.count(ChatMessage), 2);
    txn.rollbackTo(sp);
    assert.equal(db.count(ChatMessage), 4);
    assert.equal(db.get(User, ann)?.age, 30);
    db.create(User, { email: 'drop@x' }); // no stale unique entry
    const result = txn.commit();
    assert.ok(result.ok);
    assert.deepEqual(Object.keys(result.changes.tables), ['User']);
    assert.deepEqual(result.changes.tables.User?.upserts.map((r) => r.email).sort(), ['drop@x', 'keep@x']);
    assert.throws(() => txn.db.count(User), (e: unknown) => isLexiconsError(e, 'TXN'));
  });

  it('reads at a snapshot: a later commit is invisible to an open transaction', () => {
    const store = fresh();
    const { ann } = seed(store);
    const txn = store.begin();
    assert.equal(txn.db.count(User), 3);
    read(store, (db) => {
      db.create(User, { email: 'late@x' });
      db.update(User, ann, { age: 77 });
      db.drop(User, { email: 'bob@x' });
    });
    assert.equal(txn.db.count(User), 3);
    assert.equal(txn.db.get(User, ann)?.age, 30);
    assert.equal(txn.db.get(User, { email: 'bob@x' })?.nick, 'bob');
    assert.equal(txn.db.get(User, { email: 'late@x' }), null);
    txn.abort();
    assert.equal([...store.scan(User)].length, 3);
    assert.equal([...store.scan(User, txn.snapshot)].length, 3);
    assert.deepEqual([...store.scan(User, txn.snapshot)].map((u) => u.age).sort(), [20, 30, null]);
  });

  it('a commit whose read tables changed since its snapshot conflicts; runSync retries it', () => {
    const store = fresh();
    read(store, (db) => db.create(Counter, { key: 'k', value: 0 }));
    const t1 = store.begin();
    const c = t1.db.get(Counter, { key: 'k' })!;
    t1.db.update(Counter, c, { value: (c.value as number) + 1 });
    read(store, (db) => db.update(Counter, { key: 'k' }, { value: 10 }));
    const r = t1.commit();
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, 'conflict');
    let calls = 0;
    const other = store.begin();
    other.db.count(Counter);
    const res = store.runSync((db) => {
      calls++;
      const row = db.get(Counter, { key: 'k' })!;
      if (calls === 1) read(store, (d) => d.update(Counter, row, { value: 20 })); // interleaved writer
      return db.update(Counter, row, { value: (row.value as number) + 1 })[0]!.value;
    });
    other.abort();
    assert.equal(calls, 2);
    assert.equal(res.value, 21);
    assert.equal(read(store, (db) => db.get(Counter, { key: 'k' })?.value), 21);
  });

  it('blind creates of the same unique value: the later commit fails with UNIQUE', () => {
    const store = fresh();
    const t1 = store.begin();
    const t2 = store.begin();
    t1.db.create(User, { email: 'same@x' });
    t2.db.create(User, { email: 'same@x' });
    assert.ok(t1.commit().ok);
    const r = t2.commit();
    assert.equal(!r.ok && r.reason, 'unique');
  });

  it('runSync refuses a Promise-returning function and nothing is committed', () => {
    const store = fresh();
    throwsCode(() => store.runSync((async (db: Db) => db.create(User, { email: 'p@x' })) as never), 'TXN', /run\(\)/);
    assert.equal(read(store, (db) => db.count(User)), 0);
  });

  it('run accepts async functions; exclusive transactions hold the lock until commit', async () => {
    const store = fresh();
    const { value } = await store.run(async (db) => {
      await Promise.resolve();
      return db.create(User, { email: 'async@x' }).pk;
    });
    assert.equal(read(store, (db) => db.get(User, value)?.email), 'async@x');
    const ex = store.begin({ exclusive: true });
    ex.db.create(User, { email: 'ex@x' });
    const blocked = store.begin();
    blocked.db.create(User, { email: 'other@x' });
    const r = blocked.commit(); // same thread: cannot wait for itself, reports a conflict
    assert.equal(!r.ok && r.reason, 'conflict');
    assert.ok(ex.commit().ok);
    assert.equal(read(store, (db) => db.count(User)), 2);
  });

  it('onCommit and onBeforePublish see the ChangeSet; a throwing onBeforePublish aborts cleanly', () => {
    const store = fresh();
    const seen: number[] = [];
    store.onCommit = (c) => seen.push(c.commitId);
    const { commitId, changes } = store.runSync((db) => db.create(User, { pk: 'u1', email: 'w@x' }));
    assert.deepEqual(seen, [commitId]);
    assert.deepEqual(changes.tables.User?.upserts[0]?.pk, 'u1');
    store.runSync((db) => db.drop(User, 'u1'));
    store.onBeforePublish = () => {
      throw new Error('disk full');
    };
    assert.throws(() => store.runSync((db) => db.create(User, { email: 'v@x' })), /disk full/);
    store.onBeforePublish = undefined;
    assert.equal(read(store, (db) => db.count(User)), 0);
    assert.deepEqual(seen.length, 2);
    store.runSync((db) => db.create(User, { email: 'v@x' }));
    assert.equal(read(store, (db) => db.count(User)), 1);
  });
});

describe('store', () => {
  it('bulkLoad loads rows in one commit without re-applying transforms; duplicates are UNIQUE', () => {
    const store = fresh();
    const n = store.bulkLoad(User, [
      { pk: 'p1', email: 'one@x', password: 'hashed:abc', tags: ['t'] },
      { email: 'two@x' },
    ]);
    assert.equal(n, 2);
    assert.equal(store.snapshot(), 1);
    assert.equal(read(store, (db) => db.get(User, 'p1')?.password), 'hashed:abc');
    throwsCode(() => store.bulkLoad(User, [{ email: 'three@x' }, { email: 'three@x' }]), 'UNIQUE', /three@x/);
    throwsCode(() => store.bulkLoad(User, [{ email: 'one@x' }]), 'UNIQUE', /one@x/);
    assert.equal(store.snapshot(), 1);
    assert.equal(store.stats().tables.User?.rows, 2);
  });

  it('grows buffers far past their initial size', () => {
    const store = fresh();
    store.bulkLoad(ChatMessage, Array.from({ length: 5000 }, (_, i) => ({ channel: `c${i % 7}`, content: 'x'.repeat(i % 50), timestamp: i })));
    assert.equal(read(store, (db) => db.count(ChatMessage, { channel: 'c3' })), 714);
    assert.equal(read(store, (db) => db.query(ChatMessage, { timestamp: 4999 })[0]?.content), 'x'.repeat(4999 % 50));
  });

  it('a full buffer raises CAPACITY naming table and column, and publishes nothing', () => {
    const store = SharedStore.create(schema(), { initialRows: 4, maxBytesPerBuffer: 4096 });
    store.runSync((db) => db.create(ChatMessage, { content: 'small' }));
    throwsCode(() => store.runSync((db) => db.create(ChatMessage, { content: 'y'.repeat(5000) })), 'CAPACITY', /ChatMessage\.content/);
    assert.equal(store.snapshot(), 1);
    store.runSync((db) => db.create(ChatMessage, { content: 'still works' }));
    assert.deepEqual(read(store, (db) => db.query(ChatMessage, { _sort: 'content' }).map((m) => m.content)), ['small', 'still works']);
  });

  it('attach refuses a schema that does not match the handles', () => {
    const store = fresh();
    class User2 extends Model {
      static override table = 'User';
      static email = field.int();
    }
    assert.throws(() => SharedStore.attach(compileSchema([User2]), store.handles), (e: unknown) => isLexiconsError(e, 'SCHEMA') && /does not match.*User/.test((e as Error).message));
    const same = SharedStore.attach(schema(), store.handles);
    read(store, (db) => db.create(User, { email: 'shared@x' }));
    assert.equal(same.runSync((db) => db.get(User, { email: 'shared@x' })?.email).value, 'shared@x');
  });

  it('validates options with exact messages', () => {
    throwsCode(() => SharedStore.create(schema(), { initialRows: 0 }), 'OPTION', /^options\.initialRows must be a positive integer$/);
    throwsCode(() => SharedStore.create(schema(), { maxBytesPerBuffer: 10 }), 'OPTION', /^options\.maxBytesPerBuffer must be an integer >= 1024$/);
    throwsCode(() => fresh().runSync(() => 1, { optimisticAttempts: -1 }), 'OPTION', /^options\.optimisticAttempts must be a non-negative integer$/);
  });
});
