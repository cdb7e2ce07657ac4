/**
 * The write-ahead log: record framing round-trips, torn and corrupt records are cut off and never
 * applied, concurrent `always` commits share fsyncs (group commit), and I/O faults refuse commits.
 */
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { writeSync } from 'node:fs';
import { appendFile, open, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isLexiconsError } from '../../src/errors.js';
import type { ChangeSet } from '../../src/storage/api.js';
import { openDataFolder } from '../../src/storage/recovery.js';
import { walTestHooks } from '../../src/storage/wal.js';
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { crc32Fallback, encodeAbort, encodeCommit, HEADER_BYTES, LogResolver, scanSegment, SEGMENT_MAGIC, type WalRecord } from '../../src/storage/wal-format.js';
import { Gate, spawnTask } from '../helpers/threads.js';
import { Account, schema, tuple, User } from './fixtures/schema.js';
import { segmentFiles, stateOf } from './fixtures/wal-helpers.js';
import { tempDir } from '../helpers/temp-dir.js';

const WORKER = new URL('./fixtures/wal-worker.js', import.meta.url);

afterEach(() => {
  delete walTestHooks.writeSync;
  delete walTestHooks.fdatasyncSync;
  delete walTestHooks.datasync;
});

function commitRecord(commitId: number, tables: ChangeSet['tables']): WalRecord {
  return { type: 'commit', commitId, tables };
}

/** A folder with `n` committed Accounts (one commit each), closed as a crash would leave it. */
async function folderWithCommits(dir: string, n: number): Promise<Array<Record<string, Record<string, unknown>[]>>> {
  const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'no' });
  const states = [stateOf(store)];
  for (let i = 0; i < n; i++) {
    store.runSync((db) => db.create(Account, { pk: `a${i}`, ...tuple(i), balance: i }));
    states.push(stateOf(store));
  }
  await wal.close({ flush: false });
  return states;
}

/** File offsets of every record of a segment. */
async function recordOffsets(file: string): Promise<number[]> {
  const offsets: number[] = [];
  await scanSegment(file, (_r, offset) => {
    offsets.push(offset);
  });
  return offsets;
}

describe('log records', () => {
  it('round-trip through a segment: values, -0, unicode, lists, deletes, abort records', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const tables: ChangeSet['tables'] = {
      User: { upserts: [{ pk: 'u1', email: 'é@x', nick: '😀 "q"\n', age: null, score: -0, admin: true, tags: ['a', ''], roles: null, password: 'h' }], deletes: ['u0'] },
      Account: { upserts: [], deletes: ['a', 'b'] },
    };
    const file = join(dir, 'wal-00000001.log');
    await writeFile(file, Buffer.concat([SEGMENT_MAGIC, encodeCommit({ commitId: 7, tables }), encodeAbort(8), encodeCommit({ commitId: 2 ** 40, tables: {} })]));
    const got: WalRecord[] = [];
    const scan = await scanSegment(file, (r) => {
      got.push(r);
    });
    assert.deepEqual(got, [commitRecord(7, tables), { type: 'abort', commitId: 8 }, commitRecord(2 ** 40, {})]);
    assert.ok(Object.is((got[0] as { tables: ChangeSet['tables'] }).tables.User!.upserts[0]!.score, -0), '-0 is kept');
    assert.deepEqual({ ...scan, file: '' }, { file: '', fileBytes: (await stat(file)).size, validBytes: (await stat(file)).size, records: 3, firstCommit: 7, lastCommit: 2 ** 40, problem: null, foreign: false });
  });

  it('the JavaScript CRC-32 (Node 20 before 20.15) agrees with zlib.crc32', () => {
    for (const n of [0, 1, 7, 64, 1000, 65_537]) {
      const data = randomBytes(n);
      assert.equal(crc32Fallback(data), crc32(data));
    }
  });

  it('resolves reused commit ids and abort records; refuses decreasing ids', () => {
    const r = new LogResolver();
    const ids = (list: WalRecord[]) => list.map((x) => x.commitId);
    assert.deepEqual(ids(r.push(commitRecord(1, {}))), []);
    assert.deepEqual(ids(r.push(commitRecord(2, { A: { upserts: [], deletes: ['dead'] } }))), [1]);
    assert.deepEqual(ids(r.push(commitRecord(2, {}))), [], 'a reused id supersedes the unpublished record');
    assert.deepEqual(ids(r.push(commitRecord(3, {}))), [2]);
    assert.deepEqual(ids(r.push({ type: 'abort', commitId: 3 })), []);
    assert.deepEqual(ids(r.push(commitRecord(3, {}))), []);
    assert.deepEqual(r.finish().map((x) => [x.commitId, x.type === 'commit' && Object.keys(x.tables).length]), [[3, 0]]);
    assert.equal(r.cancelled, 2);
    const bad = new LogResolver();
    bad.push(commitRecord(5, {}));
    bad.push(commitRecord(6, {}));
    assert.throws(() => bad.push(commitRecord(4, {})), (e) => isLexiconsError(e, 'LOG') && /commit ids must increase/.test(e.message));
  });

  it('a torn tail (file cut mid-record) is detected, cut off, reported and never applied', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const states = await folderWithCommits(dir, 5);
    const [file] = await segmentFiles(dir);
    const offsets = await recordOffsets(file!);
    assert.equal(offsets.length, 5);
    const size = (await stat(file!)).size;
    await truncate(file!, offsets[4]! + 11); // the 5th record loses its end
    const { store, wal, report } = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.match(report.reason ?? '', /torn record at offset \d+: \d+-byte payload runs past the end of the file/);
    assert.equal(report.truncatedBytes, 11);
    assert.equal(report.truncatedFile, file);
    assert.equal(report.replayed, 4);
    assert.deepEqual(stateOf(store), states[4]);
    assert.equal((await stat(file!)).size, offsets[4], 'the file is cut where the good records end');
    assert.ok(size > offsets[4]! + 11);
    await wal.close();
    const again = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.equal(again.report.reason, null);
    assert.deepEqual(stateOf(again.store), states[4]);
    await again.wal.close();
  });

  it('a corrupt record (one byte flipped) stops the replay there: it and everything after are never applied', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const states = await folderWithCommits(dir, 5);
    const [file] = await segmentFiles(dir);
    const offsets = await recordOffsets(file!);
    const fh = await open(file!, 'r+');
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, offsets[2]! + 20);
    byte[0] = byte[0]! ^ 0x20;
    await fh.write(byte, 0, 1, offsets[2]! + 20);
    await fh.close();
    const sizeBefore = (await stat(file!)).size;
    const { store, wal, report } = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.equal(report.reason, `checksum mismatch in the record at offset ${offsets[2]}`);
    assert.equal(report.truncatedBytes, sizeBefore - offsets[2]!);
    assert.equal(report.replayed, 2);
    assert.deepEqual(stateOf(store), states[2]);
    await wal.close();
  });

  it('a zero-filled tail and a torn segment header are cut off', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const states = await folderWithCommits(dir, 2);
    const [file] = await segmentFiles(dir);
    await appendFile(file!, Buffer.alloc(4096));
    const first = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.match(first.report.reason ?? '', /zero-length record at offset \d+ \(zero-filled tail\)/);
    assert.equal(first.report.truncatedBytes, 4096);
    assert.deepEqual(stateOf(first.store), states[2]);
    await first.wal.close({ flush: false });
    const files = await segmentFiles(dir);
    await writeFile(files[files.length - 1]!, SEGMENT_MAGIC.subarray(0, 3)); // the new segment's header, torn
    const second = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.equal(second.report.reason, `torn segment header (3 of ${HEADER_BYTES} bytes)`);
    assert.deepEqual(stateOf(second.store), states[2]);
    await second.wal.close();
  });
});

describe('group commit (fsync always)', () => {
  it('4 threads committing concurrently: every acknowledged commit is in the log, with fewer fsyncs than commits', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'always', store: { initialRows: 64 } });
    const gate = new Gate();
    const N = 150;
    // The first fdatasync is held until every thread has appended its first record: at least
    // two fsyncs are saved whatever the disk's speed; the rest shows the natural grouping.
    const hold = new Int32Array(new SharedArrayBuffer(4));
    hold[0] = 1;
    const workers = ['p', 'q', 'r', 's'].map((prefix) => spawnTask<number[]>(WORKER, { handles: store.handles, wal: wal.handles, gate: gate.sab, task: 'commit', params: { prefix, n: N, hold: hold.buffer } }));
    const firsts = Promise.all(workers.map((w) => w.message((m) => 'first' in m)));
    await gate.ready(workers.length);
    gate.open();
    await firsts;
    Atomics.store(hold, 0, 0);
    Atomics.notify(hold, 0);
    const acked = (await Promise.all(workers.map((w) => w.done))).flat();
    const stats = wal.stats();
    assert.equal(acked.length, 4 * N);
    assert.equal(new Set(acked).size, acked.length, 'distinct commit ids');
    assert.equal(stats.written, 4 * N);
    assert.ok(stats.durable >= stats.written, 'every record durable once every worker was acknowledged');
    assert.ok(stats.fsyncs <= acked.length - 2, `group commit: ${stats.fsyncs} fsyncs for ${acked.length} commits`);
    const logged = new Set<number>();
    for (const file of await segmentFiles(dir)) await scanSegment(file, (r) => void logged.add(r.commitId));
    for (const id of acked) assert.ok(logged.has(id), `acknowledged commit ${id} is in the log`);
    const before = stateOf(store);
    await wal.close({ flush: false });
    const again = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.deepEqual(stateOf(again.store), before);
    await again.wal.close();
  });
});

describe('fsync policies', () => {
  it('everysec: the main-thread timer makes commits durable within about a second, without blocking', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'everysec' });
    const fsyncs = wal.stats().fsyncs;
    store.runSync((db) => db.create(User, { pk: 'u0', email: 'a@x' }));
    const started = Date.now();
    await wal.whenDurable();
    assert.ok(Date.now() - started < 2500, 'within the timer period');
    assert.ok(wal.stats().fsyncs > fsyncs);
    await wal.close();
  });

  it('no: nothing is synced until a flush (snapshots and close flush)', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'no' });
    store.runSync((db) => db.create(User, { pk: 'u0', email: 'a@x' }));
    assert.deepEqual([wal.stats().written, wal.stats().durable, wal.stats().fsyncs], [1, 0, 0]);
    await wal.flush();
    assert.deepEqual([wal.stats().durable, wal.stats().fsyncs], [1, 1]);
    await wal.close();
  });

  it('rejects an unknown policy with an exact message', async () => {
    await assert.rejects(openDataFolder(schema(), '/nonexistent-never-created', { fsync: 'sometimes' as never }), (err) => isLexiconsError(err, 'OPTION') && err.message === 'options.fsync must be one of always, everysec, no');
  });
});

describe('I/O faults', () => {
  it('a full disk while appending refuses the commit with an IO error; a partial record is cut off; nothing is published', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'no' });
    store.runSync((db) => db.create(User, { pk: 'u0', email: 'a@x' }));
    const [file] = (await segmentFiles(dir)).slice(-1);
    const size = (await stat(file!)).size;
    const snapshot = store.snapshot();
    const state = stateOf(store);
    walTestHooks.writeSync = (fd, buf) => {
      if (buf.length > 10) return writeSync(fd, buf.subarray(0, 10)); // part of the record reaches the file
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    };
    assert.throws(
      () => store.runSync((db) => db.create(User, { pk: 'u1', email: 'b@x' })),
      (err) => isLexiconsError(err, 'IO') && /cannot append commit \d+ to the write-ahead log .*the commit is refused: ENOSPC/.test(err.message),
    );
    assert.equal(store.snapshot(), snapshot, 'nothing published');
    assert.deepEqual(stateOf(store), state);
    assert.equal((await stat(file!)).size, size, 'the partial record was cut off');
    assert.equal(wal.failed, null, 'a refused append does not disable the log');
    delete walTestHooks.writeSync;
    store.runSync((db) => db.create(User, { pk: 'u2', email: 'c@x' }));
    const after = stateOf(store);
    await wal.close({ flush: false });
    const again = await openDataFolder(schema(), dir, { fsync: 'no' });
    assert.equal(again.report.reason, null, 'no garbage between records');
    assert.deepEqual(stateOf(again.store), after);
    await again.wal.close();
  });

  it('a failing fsync (main thread flush): IO error, the log is disabled, later commits are refused and not published', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'always' });
    store.runSync((db) => db.create(User, { pk: 'u0', email: 'a@x' }));
    walTestHooks.datasync = async () => {
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    };
    await assert.rejects(wal.flush(), (err) => isLexiconsError(err, 'IO') && /fdatasync of the write-ahead log .* failed: EIO/.test(err.message));
    assert.equal(wal.failed, 'EIO');
    const snapshot = store.snapshot();
    assert.throws(() => store.runSync((db) => db.create(User, { pk: 'u1', email: 'b@x' })), (err) => isLexiconsError(err, 'IO') && /disabled after an I\/O failure \(EIO\)/.test(err.message));
    assert.equal(store.snapshot(), snapshot);
    await wal.close();
  });

  it('a failing fdatasync in a worker (group commit): the commit is not acknowledged, the next one is refused', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const { store, wal } = await openDataFolder(schema(), dir, { fsync: 'always' });
    const gate = new Gate();
    const w = spawnTask<{ ack: string; next: string; published: boolean }>(WORKER, { handles: store.handles, wal: wal.handles, gate: gate.sab, task: 'failing-fsync', params: { prefix: 'f' } });
    await gate.ready(1);
    gate.open();
    const result = await w.done;
    assert.match(result.ack, /^IO: fdatasync of the write-ahead log .* failed; the commit is not acknowledged: EIO/);
    assert.match(result.next, /^IO: the write-ahead log is disabled after an I\/O failure \(EIO\)/);
    assert.equal(result.published, true, 'the refused commit published nothing');
    assert.equal(wal.stats().failed, 'EIO');
    await wal.close();
  });
});
