/**
 * Which source wins at start (start-sources.ts): the binary snapshot plus the log, unless a person
 * edited a CSV file while the server was stopped (then that CSV file, checked, and recorded so it
 * is loaded once); an edit that would lose commits stops the start; a crash between the binary
 * and the CSV writes of a shutdown; a torn binary file; a folder of the CSV-snapshot era.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, copyFile, readFile, rename, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isLexiconsError } from '../../src/errors.js';
import { checkDataFolder } from '../../src/storage/offline.js';
import { MIGRATE_HINT } from '../../src/storage/persist.js';
import { openDataFolder } from '../../src/storage/recovery.js';
import { snapshotDataFolder, snapshotTestHooks, type Manifest, type SnapshotPhase } from '../../src/storage/snapshot.js';
import { Counter, schema, User } from './fixtures/schema.js';
import { stateOf } from './fixtures/wal-helpers.js';
import { tempDir } from '../helpers/temp-dir.js';

async function manifestOf(dir: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(dir, 'snapshot.json'), 'utf8')) as Manifest;
}

/** Opens `dir`, runs `fn` on the store, then stops cleanly (binary snapshot + CSV files); returns the state. */
async function session(dir: string, fn: (store: Awaited<ReturnType<typeof openDataFolder>>['store']) => void): Promise<ReturnType<typeof stateOf>> {
  const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'no' });
  fn(store);
  const state = stateOf(store);
  await snapshotDataFolder(store, wal, dir, { csv: true });
  await wal.close();
  return state;
}

/** A snapshot with `csv: true` whose process "dies" at `phase`: the hook throws there, the files stay as they are. */
async function shutdownCrashingAt(dir: string, phase: SnapshotPhase, fn: (store: Awaited<ReturnType<typeof openDataFolder>>['store']) => void): Promise<ReturnType<typeof stateOf>> {
  const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'no' });
  fn(store);
  const state = stateOf(store);
  snapshotTestHooks.phase = (p) => {
    if (p === phase) throw new Error(`crash at ${p}`);
  };
  try {
    await assert.rejects(snapshotDataFolder(store, wal, dir, { csv: true }), { message: `crash at ${phase}` });
  } finally {
    snapshotTestHooks.phase = undefined;
    await wal.close();
  }
  return state;
}

const counter = (key: string, value: number) => (store: Awaited<ReturnType<typeof openDataFolder>>['store']) => {
  store.runSync((db) => db.create(Counter, { key, value }));
};

describe('start: which source wins', () => {
  it('after a clean stop: the binary snapshot, and the CSV files are untouched by the start', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const before = await session(dir, counter('a', 1));
    const csv = await readFile(join(dir, 'Counter.csv'), 'utf8');
    assert.match(csv, /^pk,key,value\n.+,a,1\n$/);
    const { store, wal, report } = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.deepEqual(report.load.tables.find((t) => t.table === 'Counter')!.source, 'arrow');
    assert.deepEqual(report.editedCsv, []);
    assert.deepEqual(stateOf(store), before);
    await wal.close();
  });

  it('after a crash: the periodic binary snapshot, then the log replayed on top (inserts, updates, deletes after it)', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'no' });
    for (let k = 0; k < 20; k++) counter(`k${k}`, k)(store);
    store.runSync((db) => db.create(User, { pk: 'u', email: 'u@x', password: 'p' }));
    await snapshotDataFolder(store, wal, dir); // periodic: binary files only
    const rows = [...store.scan(Counter)];
    store.runSync((db) => {
      db.update(Counter, rows[3]!.pk, { value: 300 });
      db.delete(Counter, rows[5]!.pk);
      db.create(Counter, { key: 'after', value: 99 });
    });
    store.runSync((db) => db.update(User, 'u', { email: 'v@x' }));
    const expected = stateOf(store);
    await wal.close({ flush: false }); // as a crash leaves it (fsync 'no': the log is in the page cache)
    const { store: again, wal: wal2, report } = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.ok(report.load.tables.every((t) => t.source === 'arrow'), 'every table from its binary file');
    assert.equal(report.load.tables.find((t) => t.table === 'Counter')!.rows, 20);
    assert.equal(report.replayed, 2);
    assert.deepEqual(stateOf(again), expected);
    await wal2.close();
  });

  it("a person's edit of a CSV file while the server is stopped is loaded (and checked), then recorded: the next start, even after a crash, loads the binary snapshot with the edit", async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    await session(dir, counter('a', 1));
    await appendFile(join(dir, 'Counter.csv'), 'edited-pk,b,2\n');
    const first = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.deepEqual(first.report.editedCsv, ['Counter']);
    assert.equal(first.report.load.tables.find((t) => t.table === 'Counter')!.source, 'csv');
    assert.equal(first.report.load.tables.find((t) => t.table === 'User')!.source, 'arrow');
    assert.deepEqual([...first.store.scan(Counter)].map((r) => [r.key, r.value]).sort(), [['a', 1], ['b', 2]]);
    const manifest = await manifestOf(dir);
    assert.equal(manifest.csv?.commitId, manifest.commitId, 'the edited files are recorded at a new snapshot');
    // Then a crash: a commit is in the log, no shutdown snapshot.
    first.store.runSync((db) => db.create(Counter, { key: 'c', value: 3 }));
    const expected = stateOf(first.store);
    await first.wal.close();
    const second = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.deepEqual(second.report.editedCsv, []);
    assert.equal(second.report.load.tables.find((t) => t.table === 'Counter')!.source, 'arrow');
    assert.equal(second.report.replayed, 1);
    assert.deepEqual(stateOf(second.store), expected);
    await second.wal.close();
  });

  it('an edited CSV file that fails its checks stops the start with the CSV error (file, line, column)', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    await session(dir, counter('a', 1));
    await appendFile(join(dir, 'Counter.csv'), 'edited-pk,b,two\n');
    await assert.rejects(openDataFolder(schema(), dir, { fsync: 'no' }), (err) => isLexiconsError(err, 'CSV') && err.message === `${join(dir, 'Counter.csv')}, line 3, column value: expected an int, got "two" (if the field's type changed: ${MIGRATE_HINT})`);
  });

  it('an edit made after a crash (commits newer than the CSV files) stops the start, naming the file and what to do; lexicons check reports it', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    await session(dir, counter('a', 1));
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'no' });
    store.runSync((db) => db.create(Counter, { key: 'b', value: 2 }));
    await wal.close(); // a crash: the commit is only in the log
    await appendFile(join(dir, 'Counter.csv'), 'edited-pk,z,9\n');
    const file = join(dir, 'Counter.csv');
    const refused = (err: unknown) => isLexiconsError(err, 'CSV') && err.message.startsWith(`${file}: edited since lexicons wrote it`) && /Move the edited file out of the data folder and start/.test(err.message);
    await assert.rejects(openDataFolder(schema(), dir, { fsync: 'no' }), refused);
    const check = await checkDataFolder(dir, schema());
    assert.equal(check.ok, false);
    assert.ok(check.problems.some((p) => p.startsWith(`${file}: edited since lexicons wrote it`)), check.problems.join('\n'));
    // What the message says to do: move it aside, start (the log holds the latest state).
    await rename(file, join(dir, '..', `${dir.split('/').pop()}-Counter.csv`));
    const again = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.deepEqual([...again.store.scan(Counter)].map((r) => r.key).sort(), ['a', 'b']);
    await again.wal.close();
    await unlink(join(dir, '..', `${dir.split('/').pop()}-Counter.csv`));
  });

  it('a CSV file copied over itself or touched (new mtime, same bytes) is not an edit; a deleted one is not either', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const before = await session(dir, counter('a', 1));
    const file = join(dir, 'Counter.csv');
    await copyFile(file, `${file}.copy`);
    await rename(`${file}.copy`, file);
    await utimes(file, new Date(), new Date(Date.now() + 5000));
    await unlink(join(dir, 'User.csv'));
    const { store, wal, report } = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.deepEqual(report.editedCsv, []);
    assert.deepEqual(stateOf(store), before);
    await wal.close();
  });

  it('a crash between the two writes of a shutdown: binary written and CSV not, CSV written and its manifest not, CSV renamed and the manifest not', async () => {
    for (const [phase, csvInstalled] of [['done', false], ['csv-written', false], ['csv-intent-written', true], ['csv-installed', true]] as const) {
      await using folder = await tempDir('lexicons-wal-');
      const dir = folder.path;
      await session(dir, counter('a', 1));
      const oldCsv = await readFile(join(dir, 'Counter.csv'), 'utf8');
      const state = await shutdownCrashingAt(dir, phase, counter('b', 2));
      const { store, wal, report } = await openDataFolder(schema(), dir, { fsync: 'no' });
      assert.deepEqual(stateOf(store), state, phase);
      assert.deepEqual(report.editedCsv, [], `${phase}: the CSV files are not taken for an edit`);
      assert.equal(report.load.tables.find((t) => t.table === 'Counter')!.source, 'arrow', phase);
      assert.equal(report.rolledForward, csvInstalled, phase);
      const csv = await readFile(join(dir, 'Counter.csv'), 'utf8');
      if (csvInstalled) assert.match(csv, /,b,2\n/, phase);
      else assert.equal(csv, oldCsv, `${phase}: the CSV files of the previous stop`);
      await wal.close();
      const check = await checkDataFolder(dir, schema());
      assert.deepEqual(check.problems, [], phase);
    }
  });

  it('a torn binary snapshot file stops the start naming the file; lexicons check reports it, with and without the schema', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    await session(dir, counter('a', 1));
    const file = join(dir, 'Counter.arrow');
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, bytes.length - 9));
    await assert.rejects(openDataFolder(schema(), dir, { fsync: 'no' }), (err) => isLexiconsError(err, 'CSV') && err.message.startsWith(`${file}: `) && /torn or corrupt/.test(err.message));
    for (const check of [await checkDataFolder(dir), await checkDataFolder(dir, schema())]) {
      assert.equal(check.ok, false);
      assert.ok(check.problems.some((p) => p.startsWith(`${file}: the binary snapshot is torn or corrupt`)), check.problems.join('\n'));
    }
  });

  it('a table the manifest does not name (a Model added since) loads its CSV file, which is then recorded: after a crash its binary file wins', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    await session(dir, counter('a', 1));
    const m = await manifestOf(dir);
    const { Counter: _binary, ...tables } = m.tables;
    const { Counter: _csv, ...csvTables } = m.csv!.tables;
    await unlink(join(dir, 'Counter.arrow'));
    await writeFile(join(dir, 'snapshot.json'), JSON.stringify({ ...m, tables, csv: { ...m.csv, tables: csvTables } }));
    const first = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.equal(first.report.load.tables.find((t) => t.table === 'Counter')!.source, 'csv');
    assert.deepEqual(first.report.editedCsv, [], 'not an edit: there is no record to compare with');
    assert.equal((await manifestOf(dir)).csv?.tables.Counter?.rows, 1, 'the file is recorded as it is');
    counter('b', 2)(first.store);
    await snapshotDataFolder(first.store, first.wal, dir); // periodic: Counter.arrow written
    counter('c', 3)(first.store);
    const expected = stateOf(first.store);
    await first.wal.close({ flush: false }); // a crash: the CSV files are older than the log
    const second = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.equal(second.report.load.tables.find((t) => t.table === 'Counter')!.source, 'arrow');
    assert.deepEqual(second.report.editedCsv, []);
    assert.deepEqual(stateOf(second.store), expected);
    await second.wal.close();
  });

  it('a folder of a CSV snapshot (manifest version 1) loads from its CSV files; the next snapshot writes binary files and records the CSV files', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const state = await session(dir, (store) => {
      counter('a', 1)(store);
      store.runSync((db) => db.create(User, { pk: 'u', email: 'u@x', password: 'p' }));
    });
    const m = await manifestOf(dir);
    for (const t of Object.keys(m.tables)) await unlink(join(dir, `${t}.arrow`));
    await writeFile(join(dir, 'snapshot.json'), JSON.stringify({ format: 'lexicons-snapshot', version: 1, commitId: m.commitId, segment: m.segment, createdAt: m.createdAt, tables: { Counter: { rows: 1, bytes: 10 } } }));
    const { store, wal, report } = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.deepEqual(stateOf(store), state);
    assert.ok(report.load.tables.every((t) => t.source === 'csv'));
    await snapshotDataFolder(store, wal, dir);
    await wal.close();
    const next = await manifestOf(dir);
    assert.equal(next.version, 2);
    assert.equal(next.csv?.commitId, m.commitId, 'the CSV files are recorded at the commit of the old snapshot');
    const again = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.ok(again.report.load.tables.every((t) => t.source === 'arrow'));
    assert.deepEqual(stateOf(again.store), state);
    await again.wal.close();
  });
});
