/**
 * A process killed with SIGKILL at every phase of a snapshot (and at points chosen by the ack
 * count) while it commits with fsync `always`: recovery gives back every acknowledged commit, the
 * state is exactly the state after some prefix of the commits, and commit ids go on increasing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { checkDataFolder } from '../../src/storage/offline.js';
import type { SnapshotPhase } from '../../src/storage/snapshot.js';
import { schema } from './fixtures/schema.js';
import { expectedAccounts } from './fixtures/wal-crash-model.js';
import { openFolder, stateOf } from './fixtures/wal-helpers.js';
import { tempDir } from '../helpers/temp-dir.js';

const CHILD = fileURLToPath(new URL('./fixtures/wal-crash-child.js', import.meta.url));

interface Crash {
  /** Commits acknowledged (received) before the kill. */
  acked: number;
  lastCommitId: number;
  phaseReached: boolean;
}

/** Runs the child until it reaches `phase` (occurrence `nth`) or acknowledges `killAfter` commits, then SIGKILLs it. */
function crashChild(dir: string, phase: SnapshotPhase | 'none', nth: number, killAfter = Infinity): Promise<Crash> {
  const child = fork(CHILD, [dir, phase, String(nth)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const crash: Crash = { acked: 0, lastCommitId: 0, phaseReached: false };
  return new Promise((resolve, reject) => {
    child.on('message', (msg: { acked?: number; commitId?: number; phase?: string }) => {
      if (msg.acked !== undefined) {
        crash.acked = msg.acked + 1;
        crash.lastCommitId = msg.commitId!;
        if (crash.acked >= killAfter) child.kill('SIGKILL');
      }
      if (msg.phase !== undefined) {
        crash.phaseReached = true;
        child.kill('SIGKILL');
      }
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(crash);
      else reject(new Error(`the child exited with code ${code} before it was killed`));
    });
  });
}

async function recoverAndCheck(dir: string, crash: Crash): Promise<{ rolledForward: boolean }> {
  await using opened = await openFolder(schema(), dir, { fsync: 'no' });
  const { store, report } = opened;
  const accounts = stateOf(store).Account!;
  const created = accounts.map((a) => Number((a.pk as string).slice(1)));
  const n = Math.max(...created) + 1; // the last commit's own row is never deleted yet
  assert.ok(n >= crash.acked, `every acknowledged commit is back (${n} commits recovered, ${crash.acked} acknowledged)`);
  assert.deepEqual(accounts, expectedAccounts(n), 'the state after exactly the first n commits');
  assert.ok(store.snapshot() > crash.lastCommitId, 'commit ids go on after the last acknowledged one');
  const names = await readdir(dir);
  assert.deepEqual(names.filter((x) => x.endsWith('.next') || x.endsWith('.tmp')), [], 'no snapshot leftovers');
  return { rolledForward: report.rolledForward };
}

describe('crash during a snapshot (SIGKILL, fsync always)', () => {
  const points: Array<[SnapshotPhase, number]> = [
    ['segment-created', 1],
    ['rotated', 1],
    ['table-written', 2],
    ['intent-written', 1],
    ['table-installed', 1],
    ['table-installed', 4],
    ['manifest-written', 1],
    ['done', 1],
    ['csv-written', 1],
    ['csv-intent-written', 1],
    ['csv-installed', 1],
  ];
  for (const [phase, nth] of points) {
    it(`killed at ${phase}${nth > 1 ? ` #${nth}` : ''}: every acknowledged commit recovers`, async () => {
      await using folder = await tempDir('lexicons-wal-');
      const dir = folder.path;
      const crash = await crashChild(dir, phase, nth);
      assert.ok(crash.phaseReached);
      const { rolledForward } = await recoverAndCheck(dir, crash);
      const installing: SnapshotPhase[] = ['intent-written', 'table-installed', 'csv-intent-written', 'csv-installed'];
      assert.equal(rolledForward, installing.includes(phase), 'an interrupted install is completed, an earlier crash leaves the old snapshot');
      const check = await checkDataFolder(dir, schema());
      assert.deepEqual([check.ok, check.problems], [true, []]);
    });
  }

  for (const killAfter of [7, 23, 44]) {
    it(`killed after ${killAfter} acknowledgements (anywhere in a commit or a snapshot)`, async () => {
      await using folder = await tempDir('lexicons-wal-');
      const dir = folder.path;
      const crash = await crashChild(dir, 'none', 1, killAfter);
      await recoverAndCheck(dir, crash);
    });
  }
});
