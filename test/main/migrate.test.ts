/**
 * `lexicons migrate`: the Person Model of migrate-v1-app.ts changed into migrate-v2-app.ts's (a
 * field renamed with `was`, one retyped str -> int, one removed, one added with a default), on
 * data held in CSV files, only in the write-ahead log, and in a binary snapshot. The plan, the start-up
 * error that points at the command, the applied result (read back with the new Models), the
 * backup, a second run with nothing to do, a refusal naming row/column/value with the folder
 * untouched, and the command line's output.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Database } from '../../src/database.js';
import { isLexiconsError } from '../../src/errors.js';
import { applyMigration, planMigration } from '../../src/storage/migrate.js';
import { readStoredData } from '../../src/storage/migrate-read.js';
import { openDataFolder } from '../../src/storage/recovery.js';
import { withHistory } from '../../src/storage/history-tables.js';
import { compileSchema } from '../../src/storage/schema.js';
import { snapshotDataFolder } from '../../src/storage/snapshot.js';
import * as v1 from '../fixtures/apps/migrate-v1-app.js';
import * as v2 from '../fixtures/apps/migrate-v2-app.js';
import { fixture, runCli } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';

const V1 = compileSchema([v1.Person]);
const V2 = compileSchema([v2.Person]);

type Person = { pk: string; fullName: string; age: string; nickname: string };
const PEOPLE: Person[] = [
  { pk: 'p1', fullName: 'Ann Lee', age: '41', nickname: 'annie' },
  { pk: 'p2', fullName: 'Bob', age: '7', nickname: 'bobby' },
];

/** The data as a CSV snapshot (what a stopped server leaves). */
async function writeCsv(dir: string, people: Person[]): Promise<void> {
  await writeFile(join(dir, 'Person.csv'), `pk,fullName,age,nickname\n${people.map((p) => `${p.pk},${p.fullName},${p.age},${p.nickname}`).join('\n')}\n`);
}

/** The data only in the write-ahead log (what a killed server leaves before its first snapshot). */
async function writeWal(dir: string, people: Person[]): Promise<void> {
  const { store, wal } = await openDataFolder(V1, dir, { fsync: 'always' });
  await store.run((db) => {
    for (const p of people) db.create(v1.Person, p);
  });
  await wal.flush();
  await wal.close();
  assert.ok(!(await readdir(dir)).includes('Person.csv'), 'the data is only in the log');
}

/** Every file of the folder (not its subfolders) with its content. */
async function filesOf(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { withFileTypes: true })) if (e.isFile() && !e.name.startsWith('lexicons.lock')) out[e.name] = (await readFile(join(dir, e.name))).toString('base64');
  return out;
}

/** The data in a binary snapshot (a periodic snapshot: Person.arrow, no CSV file) and nothing in the log. */
async function writeArrow(dir: string, people: Person[]): Promise<void> {
  const { store, wal } = await openDataFolder(V1, dir, { fsync: 'always' });
  await store.run((db) => {
    for (const p of people) db.create(v1.Person, p);
  });
  await snapshotDataFolder(store, wal, dir);
  await wal.close();
  const names = await readdir(dir);
  assert.ok(names.includes('Person.arrow') && !names.includes('Person.csv'), 'the data is only in the binary snapshot');
}

test('lexicons migrate reads the pks of a binary snapshot as written (UUIDs packed in 16 bytes there, other pks as UTF-8)', async () => {
  await using data = await tempDir();
  const pks = ['3f2b8c1e-7d4a-4e59-9b1c-0a6d2e8f4c71', 'A0B1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D', 'sixteen-byte-pk!'];
  await writeArrow(data.path, pks.map((pk, i) => ({ pk, fullName: `n${i}`, age: String(i), nickname: 'x' })));
  const person = (await readStoredData(data.path)).tables.get('Person')!;
  assert.deepEqual([...person.rows.keys()].sort(), [...pks].sort());
  assert.deepEqual(person.rows.get(pks[0]!)!.get('fullName'), { json: 'n0' });
});

const stores = { 'CSV data': writeCsv, 'WAL-only data': writeWal, 'binary snapshot data': writeArrow };

for (const [kind, write] of Object.entries(stores)) {
  describe(`lexicons migrate on ${kind}`, { timeout: 60_000 }, () => {
    test('the plan: renamed, retyped, removed, added; the folder is only read', async () => {
      await using data = await tempDir();
      await write(data.path, PEOPLE);
      const before = await filesOf(data.path);
      const { plan } = planMigration(await readStoredData(data.path), V2);
      assert.deepEqual(plan.tables, [
        {
          table: 'Person',
          rows: 2,
          added: [{ field: 'email', default: 'unknown' }],
          removed: [{ column: 'nickname', values: 2 }],
          renamed: [{ from: 'fullName', to: 'displayName' }],
          // CSV text "41" reads as an int as it is; a logged or Arrow "41" is a string, converted.
          retyped: kind === 'CSV data' ? [] : [{ field: 'age', kind: 'int', converted: 2 }],
        },
      ]);
      assert.deepEqual(plan.problems, []);
      assert.equal(plan.upToDate, false);
      assert.deepEqual(await filesOf(data.path), before);
    });

    test('a start with the new Models is refused and points at lexicons migrate; migrate applies it, with a backup', async () => {
      await using data = await tempDir();
      await write(data.path, PEOPLE);
      await assert.rejects(openDataFolder(V2, data.path, { fsync: 'no' }), (e) => isLexiconsError(e) && /run `lexicons migrate --dry-run`/.test(e.message));
      const before = await filesOf(data.path);

      const result = await applyMigration(data.path, V2);
      assert.ok(result.backup?.startsWith(join(data.path, 'backups', 'migrate-')));
      assert.deepEqual(await filesOf(result.backup!), before);

      const db = await Database.open({ models: [v2.Person], data: data.path, fsync: 'no' });
      const rows = db.read((d) => d.query(v2.Person).map((p) => ({ pk: p.pk, displayName: p.displayName, age: p.age, email: p.email })));
      await db.close();
      assert.deepEqual(
        rows.sort((a, b) => a.pk.localeCompare(b.pk)),
        [
          { pk: 'p1', displayName: 'Ann Lee', age: 41, email: 'unknown' },
          { pk: 'p2', displayName: 'Bob', age: 7, email: 'unknown' },
        ],
      );
      assert.equal((await readFile(join(data.path, 'Person.csv'), 'utf8')).split('\n')[0], 'pk,displayName,age,email');

      const again = await applyMigration(data.path, V2);
      assert.equal(again.plan.upToDate, true);
      assert.equal(again.backup, null);
    });

    test('a value that does not convert: refused with row, column and value; nothing changed', async () => {
      await using data = await tempDir();
      await write(data.path, [PEOPLE[0]!, { ...PEOPLE[1]!, age: 'seven' }]);
      const before = await filesOf(data.path);
      await assert.rejects(applyMigration(data.path, V2), (e) => {
        assert.ok(isLexiconsError(e, 'SCHEMA'));
        assert.match(e.message, /^1 stored value would not convert to the Models; nothing was changed/);
        assert.match(e.message, /\n {2}Person row p2, column age: "seven" does not convert to int: /);
        return true;
      });
      assert.deepEqual(await filesOf(data.path), before);
      assert.deepEqual(await readdir(data.path).then((names) => names.filter((n) => n === 'backups')), []);
    });
  });
}

test('a CSV file under the original Python name (person.csv) is read as its Model, not dropped as another table', async () => {
  await using data = await tempDir();
  await writeCsv(data.path, PEOPLE);
  await rename(join(data.path, 'Person.csv'), join(data.path, 'person.csv'));
  const { plan } = planMigration(await readStoredData(data.path, ['Person']), V2);
  assert.deepEqual(plan.removedTables, []);
  assert.equal(plan.tables[0]?.rows, 2);
  assert.deepEqual(plan.tables[0]?.renamed, [{ from: 'fullName', to: 'displayName' }]);
});

describe('lexicons migrate (command line)', { timeout: 120_000 }, () => {
  test('--dry-run prints the plan and changes nothing; then it applies; then nothing is left to do', async () => {
    await using data = await tempDir();
    await writeWal(data.path, PEOPLE);
    const app = fixture('migrate-v2-app');
    const dry = await runCli(['migrate', app, '--data', data.path, '--dry-run'], { timeoutMs: 60_000 });
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(
      dry.stdout,
      `Migration plan for ${data.path}:
  Person (2 rows):
    + email: added, every row gets "unknown"
    ~ fullName -> displayName: renamed, values kept
    * age: now int, 2 values converted
    - nickname: removed, dropping the values of 2 rows
Dry run: nothing was changed (run without --dry-run to apply; a backup of the folder is taken first)
`,
    );
    const applied = await runCli(['migrate', app, '--data', data.path], { timeoutMs: 60_000 });
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /\nApplied: the folder holds the migrated data \(snapshot of commit \d+\); the files before it are in .*backups\/migrate-/);
    const check = await runCli(['check', app, '--data', data.path], { timeoutMs: 60_000 });
    assert.equal(check.code, 0, check.stdout);
    const again = await runCli(['migrate', app, '--data', data.path], { timeoutMs: 60_000 });
    assert.equal(again.stdout, `${data.path}: the stored data matches the Models; nothing to migrate\n`);
  });

  test('a refusal exits 1 naming row, column and value', async () => {
    await using data = await tempDir();
    await writeCsv(data.path, [{ ...PEOPLE[0]!, age: 'old' }]);
    const r = await runCli(['migrate', fixture('migrate-v2-app'), '--data', data.path], { timeoutMs: 60_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^lexicons migrate refused: 1 stored value would not convert to the Models; nothing was changed .*\n {2}Person row p1, column age: "old" does not convert to int: /);
  });
});

describe('lexicons migrate with channel history', { timeout: 60_000 }, () => {
  test('carries the history tables through unchanged: epochs, offsets and items survive the migration', async () => {
    await using data = await tempDir();
    const { store, wal } = await openDataFolder(withHistory(V1), data.path, { fsync: 'always' });
    store.historyPolicy = () => ({ size: 100 });
    for (const [i, p] of PEOPLE.entries()) {
      const txn = store.begin();
      txn.db.create(v1.Person, p);
      txn.publish('Public', JSON.stringify({ joined: p.pk, i }));
      assert.ok(txn.commit().ok);
    }
    await snapshotDataFolder(store, wal, data.path); // one publication in the binary snapshot ...
    const txn = store.begin();
    txn.publish('Public', JSON.stringify({ last: true }));
    assert.ok(txn.commit().ok); // ... and one only in the log
    const before = store.history('Public');
    await wal.flush();
    await wal.close();
    assert.equal(before?.items.length, 3);

    const result = await applyMigration(data.path, withHistory(V2));
    assert.ok(result.backup !== null, 'the Person change was applied');
    assert.deepEqual(result.plan.removedTables, []);
    const reopened = await openDataFolder(withHistory(V2), data.path, { fsync: 'no' });
    try {
      reopened.store.historyPolicy = () => ({ size: 100 });
      assert.deepEqual(reopened.store.history('Public'), before, 'same epoch, offsets, times and items');
    } finally {
      await reopened.wal.close();
    }
  });
});
