/**
 * Publication history through kill -9: a child process publishes from 2 worker threads with fsync
 * `always` and periodic snapshots, and is killed with SIGKILL at a random moment, 3 times. After
 * each kill the folder is recovered: every acknowledged publication is there under the offset its
 * commit returned (unless trimmed by size), no offset is used twice, the retained offsets are one
 * contiguous range, the epoch never changed (nothing was lost), and the next run goes on after it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { withHistory } from '../../src/storage/history-tables.js';
import { checkDataFolder } from '../../src/storage/offline.js';
import { prng } from '../helpers/prng.js';
import { Counter, schema } from './fixtures/schema.js';
import { openFolder } from './fixtures/wal-helpers.js';
import { tempDir } from '../helpers/temp-dir.js';

const CHILD = fileURLToPath(new URL('./fixtures/history-crash-child.js', import.meta.url));

interface Ack {
  w: number;
  k: number;
  all: number;
  pub: number;
  text: string;
}

/** Runs the child until it has acknowledged `killAfter` publications, then SIGKILLs it. */
function crashChild(dir: string, run: number, killAfter: number): Promise<Ack[]> {
  const child = fork(CHILD, [dir, String(run)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const acks: Ack[] = [];
  return new Promise((resolve, reject) => {
    child.on('message', (msg: { ack?: Ack; error?: string }) => {
      if (msg.error !== undefined) reject(new Error(`child: ${msg.error}`));
      if (msg.ack === undefined) return;
      acks.push(msg.ack);
      if (acks.length === killAfter) child.kill('SIGKILL');
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => (signal === 'SIGKILL' ? resolve(acks) : reject(new Error(`the child exited with code ${code} before it was killed`))));
  });
}

describe('history through kill -9', () => {
  it('3 kills mid-publishing: every acknowledged publication kept under its offset, no duplicate, no gap, same epoch', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    const rand = prng(Number(process.env.CRASH_SEED ?? 10));
    const acked: Ack[] = [];
    let epoch: string | undefined;
    for (let run = 0; run < 3; run++) {
      const acks = await crashChild(dir, run, 200 + Math.floor(rand() * 600));
      acked.push(...acks);
      assert.deepEqual((await checkDataFolder(dir, withHistory(schema()))).problems, []);
      await using opened = await openFolder(withHistory(schema()), dir, { fsync: 'no' });
      const { store, report } = opened;
      assert.deepEqual(report.historyRepaired, []);
      const all = store.history('All')!;
      epoch ??= all.epoch;
      assert.equal(all.epoch, epoch, 'no history was lost: same epoch');
      assert.equal(all.oldest, 1);
      assert.ok(all.items.every((x, i) => x.offset === i + 1), 'All holds 1..top, contiguous');
      const byOffset = new Map(all.items.map((x) => [x.offset, x.text]));
      // Every acknowledged publication is there, under the offset its commit returned.
      for (const a of acked) assert.equal(byOffset.get(a.all), a.text, `acknowledged ${a.text} at offset ${a.all}`);
      // Offsets were never used twice (texts are unique per publication).
      assert.equal(new Set(all.items.map((x) => x.text)).size, all.items.length);
      assert.equal(new Set(acked.map((a) => a.all)).size, acked.length);
      // Public: the same publications, trimmed to its last 300 (a contiguous top range).
      const pub = store.history('Public')!;
      assert.equal(pub.offset, all.offset);
      assert.equal(pub.items.length, Math.min(300, pub.offset));
      assert.ok(pub.items.every((x, i) => x.offset === pub.oldest + i));
      for (const a of acked) if (a.pub >= pub.oldest) assert.equal(pub.items[a.pub - pub.oldest]!.text, a.text);
      // The publications committed with their Counter rows: one per offset, not one more.
      assert.equal(store.stats().tables.Counter!.rows, all.offset);
      store.runSync((db) => assert.ok(acked.every((a) => db.get(Counter, { key: a.text }) !== null)));
    }
    assert.ok(acked.length >= 600);
  });
});
