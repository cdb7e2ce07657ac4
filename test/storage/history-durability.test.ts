/**
 * Publication history across restarts: the history tables go through the log, binary snapshots,
 * the CSV files of a shutdown and `check` like any table; epochs survive a restart and change only when history was
 * lost (rows removed from the files, or history files older than the snapshot); a folder whose log
 * holds history still opens without it. The kill -9 test is history-crash.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HistoryPolicy } from '../../src/storage/api.js';
import { CHANNEL_TABLE, PUBLICATION_TABLE, withHistory } from '../../src/storage/history-tables.js';
import { checkDataFolder } from '../../src/storage/offline.js';
import { snapshotDataFolder } from '../../src/storage/snapshot.js';
import type { SharedStore } from '../../src/storage/store.js';
import { Counter, schema } from './fixtures/schema.js';
import { openFolder, stateOf } from './fixtures/wal-helpers.js';
import { tempDir } from '../helpers/temp-dir.js';

const POLICIES: Record<string, HistoryPolicy> = { Public: { size: 50 }, Room: { size: 1000 } };

async function open(dir: string, history = true) {
  const opened = await openFolder(history ? withHistory(schema()) : schema(), dir, { fsync: 'no' });
  opened.store.historyPolicy = (channel) => POLICIES[channel] ?? null;
  return opened;
}

/** One commit per text: a Counter row and a publication of the text (JSON with quotes, commas, a newline). */
function publishAll(store: SharedStore, channel: string, from: number, n: number): void {
  for (let k = from; k < from + n; k++) {
    const txn = store.begin();
    txn.db.create(Counter, { key: `${channel}-${k}`, value: k });
    txn.publish(channel, JSON.stringify({ k, text: `hello, "world"\n#${k}` }));
    assert.ok(txn.commit().ok);
  }
}

/**
 * A stopped folder whose channel history an operator damaged: Public 1..5 and Room 1..2
 * published, shut down with CSV files, then offset 2 of Public deleted from the CSV file. The
 * epochs the channels had.
 */
async function folderWithPublicHole(dir: string): Promise<{ Public: string; Room: string }> {
  await using first = await open(dir);
  publishAll(first.store, 'Public', 0, 5);
  publishAll(first.store, 'Room', 0, 2);
  const epochs = { Public: first.store.channelPosition('Public')!.epoch, Room: first.store.channelPosition('Room')!.epoch };
  await snapshotDataFolder(first.store, first.wal, dir, { csv: true }); // a shutdown's
  await first.wal.close();
  const file = join(dir, `${PUBLICATION_TABLE}.csv`);
  const lines = (await readFile(file, 'utf8')).split('\n'); // JSON texts hold no raw newline
  const kept = lines.filter((l) => !l.startsWith('2@Public,'));
  assert.equal(kept.length, lines.length - 1);
  await writeFile(file, kept.join('\n'));
  return epochs;
}

describe('history durability', () => {
  it('survives a crash-like close and a clean restart: same epochs, offsets, items; binary and CSV files and check handle the tables', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    await using first = await open(dir);
    publishAll(first.store, 'Public', 0, 80); // trimmed to 50
    publishAll(first.store, 'Room', 0, 10);
    const snap = await snapshotDataFolder(first.store, first.wal, dir);
    assert.equal(snap.tables[PUBLICATION_TABLE]!.rows, 60);
    publishAll(first.store, 'Public', 80, 20); // only in the log
    first.store.resetHistory('Room');
    publishAll(first.store, 'Room', 10, 3);
    const before = { Public: first.store.history('Public'), Room: first.store.history('Room'), state: stateOf(first.store) };
    assert.deepEqual([before.Public!.oldest, before.Public!.offset], [51, 100]);
    assert.deepEqual([before.Room!.oldest, before.Room!.offset], [11, 13]);
    await first.wal.close({ flush: false }); // as a crash leaves it

    const names = await readdir(dir);
    assert.ok(names.includes(`${CHANNEL_TABLE}.arrow`) && names.includes(`${PUBLICATION_TABLE}.arrow`), names.join(' '));
    const check = await checkDataFolder(dir, withHistory(schema()));
    assert.deepEqual(check.problems, []);
    assert.equal(check.tables![PUBLICATION_TABLE], 50 + 3);
    assert.equal(check.tables![CHANNEL_TABLE], 2);

    await using second = await open(dir);
    assert.deepEqual(second.report.historyRepaired, []);
    assert.deepEqual(second.report.load.tables.filter((t) => t.table.startsWith('lexicons_')).map((t) => t.source), ['arrow', 'arrow'], 'from the binary snapshot, the log replayed on top');
    assert.deepEqual(second.store.history('Public'), before.Public, 'epoch, offsets, times and texts exactly');
    assert.deepEqual(second.store.history('Room'), before.Room);
    assert.deepEqual(stateOf(second.store), before.state);
    publishAll(second.store, 'Public', 100, 1);
    const next = second.store.history('Public', { after: 100 })!;
    assert.deepEqual([next.epoch, next.items.map((i) => i.offset)], [before.Public!.epoch, [101]], 'offsets go on in the same epoch');
    await snapshotDataFolder(second.store, second.wal, dir, { csv: true }); // a shutdown's
    await second.wal.close();
    const after = await readdir(dir);
    assert.ok(after.includes(`${CHANNEL_TABLE}.csv`) && after.includes(`${PUBLICATION_TABLE}.csv`), after.join(' '));

    await using third = await open(dir);
    assert.deepEqual(third.report.load.tables.filter((t) => t.table.startsWith('lexicons_')).map((t) => t.source), ['arrow', 'arrow']);
    assert.equal(third.store.channelPosition('Public')!.offset, 101);
    assert.equal(third.store.history('Public')!.items.length, 50);
  });

  it('publication rows removed from the CSV file while stopped: a new epoch at the next start, logged so a crash keeps it', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const epochs = await folderWithPublicHole(dir);

    await using second = await open(dir);
    assert.deepEqual(second.report.editedCsv, [PUBLICATION_TABLE]);
    assert.deepEqual(second.report.historyRepaired, ['Public']);
    const pos = second.store.channelPosition('Public')!;
    assert.notEqual(pos.epoch, epochs.Public);
    assert.deepEqual([pos.oldest, pos.offset], [3, 5]);
    assert.equal(second.store.channelPosition('Room')!.epoch, epochs.Room, 'an intact channel keeps its epoch');
    await second.wal.close({ flush: false }); // crash: the repair is in the log

    await using third = await open(dir);
    assert.deepEqual(third.report.historyRepaired, []);
    assert.equal(third.store.channelPosition('Public')!.epoch, pos.epoch);
  });

  it("history: 'check' (cluster mode) reports the damaged channels and commits nothing; a later default open repairs", async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const epoch = (await folderWithPublicHole(dir)).Public;
    await assert.rejects(openFolder(withHistory(schema()), dir, { history: 'fix' as 'check' }), { message: "options.history must be 'repair' or 'check'" });

    await using checked = await openFolder(withHistory(schema()), dir, { fsync: 'no', history: 'check' });
    assert.deepEqual([checked.report.historyDamaged, checked.report.historyRepaired], [['Public'], []]);
    const commitId = checked.store.snapshot();
    assert.equal(checked.store.channelPosition('Public')!.epoch, epoch, 'nothing repaired');
    assert.equal(checked.store.history('Public')!.items.length, 4, 'the rows around the hole are still there');
    await checked.wal.close({ flush: false });

    await using again = await open(dir);
    assert.deepEqual([again.report.historyDamaged, again.report.historyRepaired], [[], ['Public']]);
    assert.equal(again.report.lastLoggedCommitId, commitId, 'the check logged no commit');
    assert.notEqual(again.store.channelPosition('Public')!.epoch, epoch);
  });

  it('opens without history while the log holds some; history files older than the snapshot renew every epoch', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    await using first = await open(dir);
    publishAll(first.store, 'Public', 0, 3);
    const epoch = first.store.channelPosition('Public')!.epoch;
    await snapshotDataFolder(first.store, first.wal, dir);
    publishAll(first.store, 'Public', 3, 2); // in the log only
    await first.wal.close();

    // History switched off: the log's history records are skipped, the start succeeds.
    await using plain = await open(dir, false);
    assert.equal(plain.store.schema.byName.has(PUBLICATION_TABLE), false);
    assert.equal(plain.store.stats().tables.Counter!.rows, 5);
    assert.deepEqual((await checkDataFolder(dir, schema())).problems, []);
    await snapshotDataFolder(plain.store, plain.wal, dir); // drops the log; the history CSV files stay behind
    await plain.wal.close();

    // Switched on again: the files hold offsets 1..3 of 5; clients may know 4 and 5.
    await using again = await open(dir);
    assert.deepEqual(again.report.historyRepaired, ['Public']);
    const pos = again.store.channelPosition('Public')!;
    assert.notEqual(pos.epoch, epoch);
    assert.deepEqual([pos.oldest, pos.offset], [1, 3]);
  });
});
