/**
 * I/O faults through the server: a write the log cannot take (ENOSPC) is refused with an `Errors`
 * reply, nothing unlogged is acknowledged, the server stays up and takes writes again once space
 * is back; after a crash every acknowledged write is there and no refused one. Two ways to fill
 * the disk: a test hook that makes log appends fail (always), and a real full tmpfs (as root).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { fixture, spawnCli, type CliServer } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';
import { dump } from './crash-harness.js';

const APP = fixture('durability-app');

type Reply = Array<{ Put?: { key: string }; Errors?: string[] }>;

async function put(c: TestClient, key: string): Promise<Reply[number]> {
  const [client, seq] = key.split(':') as [string, string];
  const reply = (await c.call({ Put: { key, client, seq: Number(seq) } })) as Reply;
  assert.equal(reply.length, 1, JSON.stringify(reply));
  return reply[0]!;
}

async function healthy(srv: CliServer): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${srv.port}/health`);
  assert.equal(res.status, 200);
}

async function keysAfterCrash(srv: CliServer, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Set<string>> {
  assert.deepEqual(await srv.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
  await using again = await spawnCli(args, { env });
  try {
    return new Set((await dump(again.url)).entries.map((e) => e[0]));
  } finally {
    assert.equal((await again.stop()).code, 0);
  }
}

function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('mount', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// The suite's bound only catches a hang (every spawn, call and stop inside is bounded); on a loaded
// machine its first two tests took 45 s and 36 s, and the former 90 s cancelled the third.
describe('I/O faults through the server', { timeout: 300_000 }, () => {
  for (const fsync of ['always', 'everysec'] as const) {
    it(`refuses writes while log appends fail with ENOSPC, stays up, acknowledges nothing unlogged (--fsync ${fsync})`, async () => {
      await using folder = await tempDir();
      const data = folder.path;
      await using faults = await tempDir();
      const faultFile = join(faults.path, 'enospc');
      const env = { DURABILITY_APP_FAULT_FILE: faultFile };
      const args = [APP, '--workers', '2', '--port', '0', '--host', '127.0.0.1', '--data', data, '--fsync', fsync];
      await using srv = await spawnCli(args, { env });
      await using c = await TestClient.connect(srv.url);
      assert.deepEqual(await put(c, 'a:0'), { Put: { key: 'a:0' } });

      await writeFile(faultFile, '');
      const refused = await put(c, 'a:1');
      assert.ok(refused.Errors, `refused: ${JSON.stringify(refused)}`);
      assert.match(refused.Errors[0]!, /^Not saved: cannot append commit \d+ to the write-ahead log .*the commit is refused: ENOSPC/);
      const alsoRefused = await put(c, 'a:2');
      assert.ok(alsoRefused.Errors);
      await healthy(srv);
      assert.match(srv.output(), /ENOSPC/, 'logged');

      await unlink(faultFile);
      assert.deepEqual(await put(c, 'a:3'), { Put: { key: 'a:3' } }, 'writes are taken again once space is back');
      const d = await dump(srv.url);
      assert.deepEqual(d.entries.map((e) => e[0]).sort(), ['a:0', 'a:3'], 'a refused write is not visible either');

      const keys = await keysAfterCrash(srv, args, env);
      assert.deepEqual([...keys].sort(), ['a:0', 'a:3']);
    });
  }

  it('a data folder on a full tmpfs: refused writes, the server stays up, nothing acknowledged is lost', { skip: canMountTmpfs() ? false : 'needs root and mount(8) for a tmpfs' }, async (t) => {
    await using mountPoint = await tempDir('lexicons-tmpfs-');
    const mnt = mountPoint.path;
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
    try {
      const data = join(mnt, 'data');
      await mkdir(data);
      const args = [APP, '--port', '0', '--host', '127.0.0.1', '--data', data, '--fsync', 'always'];
      await using srv = await spawnCli(args);
      await using c = await TestClient.connect(srv.url);
      const acked: string[] = [];
      const refusedKeys: string[] = [];
      let firstError = '';
      for (let seq = 0; refusedKeys.length < 5 && seq < 20_000; seq++) {
        const key = `t:${seq}`;
        const reply = await put(c, key);
        if (reply.Put) acked.push(key);
        else {
          refusedKeys.push(key);
          firstError ||= reply.Errors?.[0] ?? '';
        }
      }
      assert.equal(refusedKeys.length, 5, 'the tmpfs filled up');
      assert.match(firstError, /^Not saved: cannot append commit \d+ .*ENOSPC/);
      await healthy(srv);
      t.diagnostic(`tmpfs full after ${acked.length} acknowledged writes: ${firstError}`);

      execFileSync('mount', ['-o', 'remount,size=4m', mnt]);
      assert.deepEqual(await put(c, 'after:0'), { Put: { key: 'after:0' } }, 'writes are taken again once space is back');
      acked.push('after:0');

      const keys = await keysAfterCrash(srv, args);
      for (const key of acked) assert.ok(keys.has(key), `acknowledged ${key} survived`);
      for (const key of refusedKeys) assert.ok(!keys.has(key), `refused ${key} is absent`);
      assert.equal(keys.size, acked.length);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});
