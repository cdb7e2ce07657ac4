/** The standalone Database (data folder open/recover/close) and the seed's import line. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
// The seed's import line, translated: every name must be a value export.
import { Database, Server, ModelManager, SignalManager, TaskManager, ChannelManager, HeaderManager, Model, field } from '../src/index.js';
import { compileSchema } from '../src/storage/schema.js';
import { tempDir } from './helpers/temp-dir.js';

class Person extends Model {
  static email = field.str({ unique: true });
  static age = field.int();
}

describe('Database', () => {
  it('opens a data folder, commits, closes with a snapshot and reopens with the data', async () => {
    await using folder = await tempDir('lexicons-db-');
    const dir = folder.path;
    const first = await Database.open({ models: [Person], data: dir, fsync: 'always' });
    const created = await first.run((db) => db.create(Person, { email: 'a@b.c', age: 41 }));
    assert.equal(created.age, 41);
    assert.equal(first.read((db) => db.count(Person)), 1);
    assert.throws(() => first.read((db) => db.create(Person, { email: 'a@b.c' })), /unique|UNIQUE|a@b\.c/);
    await first.close();
    await first.close(); // idempotent
    assert.throws(() => first.read((db) => db.count(Person)), /closed/);

    const second = await Database.open({ models: [Person], data: dir });
    const row = second.read((db) => db.get(Person, { email: 'a@b.c' }));
    assert.equal(row?.pk, created.pk);
    assert.equal(row?.age, 41);
    await second.close();
  });

  it('keeps the seed-era names importable as values', () => {
    for (const value of [Server, ModelManager, SignalManager, TaskManager, ChannelManager, HeaderManager]) assert.equal(typeof value, 'function');
    assert.equal(typeof Database.open, 'function');
  });
});

describe('compileSchema with a Model from another copy of lexicons', () => {
  it('stops at Function.prototype and keeps inherited fields', () => {
    class ForeignBase {
      static createdBy = field.str();
    }
    class Note extends ForeignBase {
      static text = field.str();
    }
    const schema = compileSchema([Note as never]);
    assert.deepEqual(schema.byName.get('Note')?.fields.map((f) => f.name), ['text', 'createdBy']);
  });
});
