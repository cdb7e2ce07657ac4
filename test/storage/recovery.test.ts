/**
 * Start-up recovery: snapshot + log replay reproduce the exact state and commit ids continue; a
 * writer that died between its log append and its publish is never replayed; snapshots taken
 * while workers commit; the folder lock; offline check and compact.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isLexiconsError } from '../../src/errors.js';
import { checkDataFolder, compactDataFolder } from '../../src/storage/offline.js';
import { openDataFolder } from '../../src/storage/recovery.js';
import { snapshotDataFolder, startSnapshotTask, type Manifest, type SnapshotReport } from '../../src/storage/snapshot.js';
import { scanSegment, type WalRecord } from '../../src/storage/wal-format.js';
import { Gate, spawnTask } from '../helpers/threads.js';
import { Model, compileSchema, field } from '../../src/storage/schema.js';
import { Account, ChatMessage, Counter, Reaction, User, schema, tuple } from './fixtures/schema.js';
import { diedMidCommit, segmentFiles, stateOf } from './fixtures/wal-helpers.js';
import { tempDir } from '../helpers/temp-dir.js';

const WORKER = new URL('./fixtures/wal-worker.js', import.meta.url);

async function logRecords(dir: string): Promise<WalRecord[]> {
  const out: WalRecord[] = [];
  for (const file of await segmentFiles(dir)) await scanSegment(file, (r) => void out.push(r));
  return out;
}

describe('recovery', () => {
  it('snapshot + log replay reproduce every table exactly (creates, updates, deletes, a unique swap); commit ids continue', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal, report: first } = await openDataFolder(schema(), dir, { fsync: 'everysec' });
    assert.equal(first.snapshotCommitId, 0);
    store.runSync((db) => {
      const ann = db.create(User, { pk: 'ann', email: 'ann@x', password: 'pw1', tags: ['a', 'b'], roles: ['x'], age: 30, score: -0 });
      const bob = db.create(User, { pk: 'bob', email: 'bob@x', password: 'pw2', nick: 'Bob 😀', age: null });
      const m = db.create(ChatMessage, { pk: 'm1', author: ann.pk, channel: 'general', content: 'hi, "you"\nthere', timestamp: 1.5 });
      db.create(ChatMessage, { pk: 'm2', author: bob.pk, channel: 'random', content: '', timestamp: 2 });
      db.create(Reaction, { pk: 'r1', message: m.pk, emoji: '👍' });
      db.create(Counter, { pk: 'c', key: 'hits', value: 1 });
      for (let i = 0; i < 50; i++) db.create(Account, { pk: `a${i}`, ...tuple(i), balance: i });
    });
    const snap = await snapshotDataFolder(store, wal, dir);
    assert.deepEqual(snap.removedSegments, ['wal-00000001.log']);
    let last = 0;
    for (let i = 0; i < 30; i++) last = store.runSync((db) => db.update(Counter, 'c', { value: i + 2 })).commitId;
    store.runSync((db) => {
      db.update(User, 'ann', { email: 'tmp@x' });
      db.update(User, 'bob', { email: 'ann@x' });
      db.update(User, 'ann', { email: 'bob@x', password: 'pw3' }); // transform applied once, here
    });
    store.runSync((db) => db.delete(ChatMessage, 'm1', { cascade: ['Reaction.message'] }));
    store.runSync((db) => db.delete(Account, { a__lt: 10 }));
    store.runSync((db) => db.create(ChatMessage, { pk: 'm3', author: 'ann', channel: 'general', content: 'again', timestamp: -0 }));
    last = store.runSync((db) => db.update(Account, 'a20', { history: [-0, 0, 5], f: -0 })).commitId;
    const before = stateOf(store);
    assert.equal(before.User!.find((u) => u.pk === 'ann')!.password, 'hashed:pw3');
    await wal.close({ flush: false }); // as a crash leaves it (the records are in the page cache)

    const { store: again, wal: wal2, report } = await openDataFolder(schema(), dir, { fsync: 'everysec' });
    assert.equal(report.snapshotCommitId, snap.commitId);
    assert.equal(report.replayed, 35);
    assert.equal(report.skipped, 0);
    assert.equal(report.reason, null);
    assert.deepEqual(stateOf(again), before);
    assert.ok(Object.is(stateOf(again).Account!.find((a) => a.pk === 'a20')!.f, -0));
    assert.equal(report.lastLoggedCommitId, last);
    assert.ok(again.snapshot() > last, 'the recovered store continues after the last logged commit');
    const next = again.runSync((db) => db.update(Counter, 'c', { value: 0 })).commitId;
    assert.ok(next > last);
    await wal2.close();
  });

  it('a snapshot at shutdown leaves binary and CSV files, a manifest and an empty log; the next start loads the binary files and replays nothing', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'no' });
    store.runSync((db) => db.create(User, { pk: 'u', email: 'u@x' }));
    const before = stateOf(store);
    const snap = await snapshotDataFolder(store, wal, dir, { csv: true });
    await wal.close();
    const names = (await readdir(dir)).sort();
    const tables = ['Account', 'ChatMessage', 'Counter', 'Reaction', 'User'];
    assert.deepEqual(names, [...tables.flatMap((t) => [`${t}.arrow`, `${t}.csv`]), 'snapshot.json', 'wal-00000002.log'].sort());
    const manifest = JSON.parse(await readFile(join(dir, 'snapshot.json'), 'utf8')) as Manifest;
    assert.equal(manifest.version, 2);
    assert.equal(manifest.commitId, snap.commitId);
    assert.equal(manifest.segment, 2);
    assert.equal(manifest.csv?.commitId, snap.commitId, 'the CSV files are of the same commit');
    assert.deepEqual(Object.keys(manifest.tables).sort(), tables);
    assert.equal(manifest.tables.User!.rows, 1);
    const { store: again, wal: wal2, report } = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.equal(report.replayed, 0);
    assert.deepEqual(report.load.tables.map((t) => t.source), tables.map(() => 'arrow'));
    assert.deepEqual(stateOf(again), before);
    assert.equal(report.segment, 3);
    await wal2.close();
  });

  it('the periodic snapshot task snapshots after commits and stops cleanly', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.throws(() => startSnapshotTask(store, wal, dir, { intervalMs: 0 }), (err) => isLexiconsError(err, 'OPTION') && err.message === 'options.intervalMs must be a positive number of milliseconds');
    const reports: SnapshotReport[] = [];
    let next!: (r: SnapshotReport) => void;
    const keepAlive = setInterval(() => undefined, 1000); // the task's timer is unref'd
    const task = startSnapshotTask(store, wal, dir, { intervalMs: 5, onSnapshot: (r) => (reports.push(r), next(r)), onError: (err) => assert.fail(String(err)) });
    const first = await new Promise<SnapshotReport>((res) => (next = res));
    store.runSync((db) => db.create(User, { pk: 'u', email: 'u@x' }));
    const second = await new Promise<SnapshotReport>((res) => (next = res));
    assert.ok(second.commitId > first.commitId);
    assert.equal(second.tables.User!.rows, 1);
    await task.stop();
    clearInterval(keepAlive);
    const count = reports.length;
    assert.ok(count >= 2);
    assert.equal(JSON.parse(await readFile(join(dir, 'snapshot.json'), 'utf8')).commitId, reports[count - 1]!.commitId);
    await wal.close();
  });

  it('a second open of a folder in use is refused', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { wal } = await openDataFolder(schema(), dir, { fsync: 'no' });
    await assert.rejects(openDataFolder(schema(), dir), (err) => isLexiconsError(err, 'IO') && /is already open in this process/.test(err.message));
    await wal.close();
    // The pid file names a live process, but nothing holds the lock socket: the folder is free
    // (a process of another folder, as after pid reuse; live owners: folder-lock.test.ts).
    await writeFile(join(dir, 'lexicons.lock'), `${process.ppid}\n`);
    const { wal: wal2 } = await openDataFolder(schema(), dir, { fsync: 'no' });
    await wal2.close();
  });

  it('snapshots taken while two workers commit with fsync always: nothing is lost', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'always', store: { initialRows: 64 } });
    const gate = new Gate();
    const workers = ['x', 'y'].map((prefix) => spawnTask<number[]>(WORKER, { handles: store.handles, wal: wal.handles, gate: gate.sab, task: 'commit', params: { prefix, n: 200 } }));
    await gate.ready(2);
    gate.open();
    const all = Promise.all(workers.map((w) => w.done));
    let snapshots = 0;
    let done = false;
    void all.then(() => (done = true));
    while (!done || snapshots < 2) {
      await snapshotDataFolder(store, wal, dir);
      snapshots++;
    }
    const acked = (await all).flat();
    assert.equal(acked.length, 400);
    const before = stateOf(store);
    assert.equal(before.Account!.length, 400);
    await wal.close({ flush: false });
    const { store: again, wal: wal2, report } = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.deepEqual(stateOf(again), before);
    assert.ok(again.snapshot() > Math.max(...acked));
    assert.ok(report.segments.length <= 2, `old segments were deleted (${report.segments.length} left)`);
    await wal2.close();
  });
});

describe('a writer that dies between its log append and its publish', () => {
  async function stalledWriter(dir: string) {
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'always' });
    const deadThread = await diedMidCommit(store, wal);
    const records = await logRecords(dir);
    assert.equal(records[records.length - 1]!.commitId, 2, 'the dying commit is in the log');
    return { store, wal, deadThread };
  }

  it('the main thread writes its abort record at once (afterThreadExit): recovery does not apply it', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal, deadThread } = await stalledWriter(dir);
    assert.equal(await wal.afterThreadExit(store, deadThread), true);
    assert.equal(await wal.afterThreadExit(store, deadThread), false, 'once');
    const before = stateOf(store);
    await wal.flush();
    await wal.close({ flush: false });
    const records = await logRecords(dir);
    assert.deepEqual(records.slice(-2).map((r) => [r.type, r.commitId]), [['commit', 2], ['abort', 2]]);
    const { store: again, wal: wal2, report } = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.equal(report.cancelled, 1);
    assert.deepEqual(stateOf(again), before);
    assert.equal(again.runSync((db) => db.count(Account, { balance: 666 })).value, 0);
    await wal2.close();
  });

  it('the next committer reuses the commit id after an abort record: recovery applies only the published commit', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal } = await stalledWriter(dir);
    const { commitId } = store.runSync((db) => db.create(Account, { pk: 'after', ...tuple(2), balance: 2 }));
    assert.equal(commitId, 2, 'the dead commit id is reused');
    const before = stateOf(store);
    await wal.flush();
    await wal.close({ flush: false });
    const records = await logRecords(dir);
    assert.deepEqual(records.slice(-3).map((r) => [r.type, r.commitId]), [['commit', 2], ['abort', 2], ['commit', 2]]);
    const { store: again, wal: wal2, report } = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.equal(report.cancelled, 1);
    assert.deepEqual(stateOf(again), before);
    assert.equal(again.runSync((db) => db.count(Account, { balance: 666 })).value, 0);
    await wal2.close();
  });
});

describe('offline check and compact', () => {
  it('check reports a torn tail as a repair and the table sizes; compact folds the log into the CSV files', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'no' });
    for (let i = 0; i < 5; i++) store.runSync((db) => db.create(Account, { pk: `a${i}`, ...tuple(i), balance: i }));
    const before = stateOf(store);
    store.runSync((db) => db.create(Account, { pk: 'torn', ...tuple(9), balance: 9 }));
    await wal.close({ flush: false });
    const [file] = await segmentFiles(dir);
    const { size } = await stat(file!);
    await truncate(file!, size - 3);

    const framing = await checkDataFolder(dir);
    assert.equal(framing.ok, true);
    assert.equal(framing.replayable, null);
    assert.equal(framing.segments.length, 1);
    assert.equal(framing.segments[0]!.records, 5);
    assert.match(framing.repairs.join('\n'), /torn record at offset \d+: .*; \d+ bytes will be cut off \(never applied\)/);
    const full = await checkDataFolder(dir, schema());
    assert.deepEqual(full.problems, []);
    assert.equal(full.replayable, 5);
    assert.equal(full.tables!.Account, 5);
    assert.equal((await stat(file!)).size, size - 3, 'check writes nothing');

    const compact = await compactDataFolder(dir, schema());
    assert.equal(compact.recovery.replayed, 5);
    assert.deepEqual(await segmentFiles(dir), []);
    const after = await checkDataFolder(dir, schema());
    assert.deepEqual([after.ok, after.repairs, after.replayable], [true, [], 0]);
    const { store: again, wal: wal2 } = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.deepEqual(stateOf(again), before);
    await wal2.close();
  });

  it('check reports what a start would refuse: a foreign segment, a malformed manifest, records the Models reject', async () => {
    {
      await using folder = await tempDir('lexicons-wal-');
      const dir = folder.path;
      await writeFile(join(dir, 'wal-00000001.log'), 'not a log at all');
      const foreign = await checkDataFolder(dir);
      assert.equal(foreign.ok, false);
      assert.match(foreign.problems[0]!, /wal-00000001\.log: not a lexicons write-ahead log segment \(bad magic\); move it out of the data folder/);
      await assert.rejects(openDataFolder(schema(), dir), (e) => isLexiconsError(e, 'LOG') && /bad magic/.test(e.message));
      await writeFile(join(dir, 'wal-00000001.log'), '');
      await writeFile(join(dir, 'snapshot.json'), '{"format":"lexicons-snapshot","version":1}');
      const manifest = await checkDataFolder(dir);
      assert.match(manifest.problems[0]!, /snapshot\.json: commitId and segment must be non-negative integers/);
    }
    {
      await using folder = await tempDir('lexicons-wal-');
      const dir = folder.path;
      const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'no' });
      store.runSync((db) => db.create(Counter, { pk: 'c', key: 'k', value: 1 }));
      await wal.close();
      class Counter2 extends Model {
        static key = field.str();
      }
      Object.defineProperty(Counter2, 'name', { value: 'Counter' });
      const other = await checkDataFolder(dir, compileSchema([Counter2]));
      assert.equal(other.ok, false);
      assert.match(other.problems[0]!, /log record of commit \d+: Counter: field value is not in the Model \(was it removed\? run `lexicons migrate --dry-run`/);
      await assert.rejects(openDataFolder(compileSchema([Counter2]), dir, { fsync: 'no' }), (e) => isLexiconsError(e, 'LOG') && /field value is not in the Model/.test(e.message));
    }
  });
});
