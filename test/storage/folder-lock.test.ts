/**
 * The data-folder lock (folder-lock.ts): held once, refused to a second process while its owner
 * lives (naming its pid), taken over as soon as the owner is dead (kill -9, a pid file naming a
 * live unrelated process), a folder path too long for a socket address, and processes racing to
 * open one folder, fresh or left by a killed owner: exactly one wins each time.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isLexiconsError } from '../../src/errors.js';
import { exists } from '../../src/storage/file-system.js';
import { folderLockHolder, LOCK_FILE, LOCK_SOCKET, lockDataFolder } from '../../src/storage/folder-lock.js';
import { tempDir } from '../helpers/temp-dir.js';

const LOCK_MODULE = new URL('../../src/storage/folder-lock.js', import.meta.url).href;

/**
 * A process that imports the lock module, says `ready`, takes the lock of `dir` on the first
 * line on its stdin (printing `won` or `lost <message>`) and runs until its stdin ends.
 */
const CONTENDER = `
const [url, dir] = process.argv.slice(1);
const { lockDataFolder } = await import(url);
process.stdin.once('data', async () => {
  try { await lockDataFolder(dir); process.stdout.write('won\\n'); }
  catch (e) { process.stdout.write('lost ' + e.message + '\\n'); }
});
process.stdin.on('end', () => process.exit(0));
process.stdout.write('ready\\n');
`;

class Contender {
  readonly child: ChildProcessWithoutNullStreams;
  out = '';
  constructor(dir: string) {
    this.child = spawn(process.execPath, ['--input-type=module', '-e', CONTENDER, LOCK_MODULE, dir]);
    this.child.stdout.on('data', (d: Buffer) => (this.out += d.toString()));
  }

  /** Resolves with the first output line matching, bounded in time. */
  line(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.out.split('\n').find((l) => pattern.test(l));
        if (line === undefined) return;
        done();
        resolve(line);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${pattern} within ${timeoutMs} ms: ${this.out}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.child.stdout.off('data', check);
      };
      this.child.stdout.on('data', check);
      check();
    });
  }

  go(): void {
    this.child.stdin.write('go\n');
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill(signal);
    await exited;
  }
}

/** Starts `n` contenders on `dir`, lets them all try at once, and returns their verdicts. */
async function race(dir: string, n: number): Promise<{ contenders: Contender[]; verdicts: string[] }> {
  const contenders = Array.from({ length: n }, () => new Contender(dir));
  await Promise.all(contenders.map((c) => c.line(/^ready$/)));
  for (const c of contenders) c.go();
  const verdicts = await Promise.all(contenders.map((c) => c.line(/^(won|lost )/)));
  return { contenders, verdicts };
}

describe('lockDataFolder', () => {
  it('holds the folder once per process, writes its pid, and removes its files on release', async () => {
    await using folder = await tempDir();
    const dir = folder.path;
    const release = await lockDataFolder(dir);
    assert.equal(await readFile(join(dir, LOCK_FILE), 'utf8'), `${process.pid}\n`);
    assert.equal(await exists(join(dir, LOCK_SOCKET)), true);
    assert.equal(await folderLockHolder(dir), process.pid);
    await assert.rejects(lockDataFolder(dir), (e) => isLexiconsError(e, 'IO') && e.message === `data folder ${dir} is already open in this process`);
    await release();
    await release(); // idempotent
    assert.deepEqual([await exists(join(dir, LOCK_FILE)), await exists(join(dir, LOCK_SOCKET))], [false, false]);
    assert.equal(await folderLockHolder(dir), null);
    await (await lockDataFolder(dir))(); // free again
  });

  it('refuses a live owner naming its pid; takes over at once after kill -9, whatever pid its file names', async () => {
    await using folder = await tempDir();
    const dir = folder.path;
    const owner = new Contender(dir);
    try {
      await owner.line(/^ready$/);
      owner.go();
      await owner.line(/^won$/);
      await assert.rejects(lockDataFolder(dir), (e) => isLexiconsError(e, 'IO') && e.message === `data folder ${dir} is in use by process ${owner.child.pid} (${join(dir, LOCK_SOCKET)} accepts connections); stop it first`);
      assert.equal(await folderLockHolder(dir), owner.child.pid);
      await owner.kill('SIGKILL');
    } finally {
      await owner.kill();
    }
    assert.equal(await exists(join(dir, LOCK_SOCKET)), true, 'kill -9 leaves the socket file behind');
    assert.equal(await folderLockHolder(dir), null, 'a socket nobody listens on holds nothing');
    // The pid file names a live process (as after pid reuse): the socket decides, not the pid.
    await writeFile(join(dir, LOCK_FILE), `${process.ppid}\n`);
    const release = await lockDataFolder(dir);
    assert.equal(await readFile(join(dir, LOCK_FILE), 'utf8'), `${process.pid}\n`);
    await release();
  });

  it('locks a folder whose path is too long for a socket address (through /proc/self/fd on Linux)', { skip: process.platform !== 'linux' && 'Linux only' }, async () => {
    await using folder = await tempDir();
    const base = folder.path;
    const dir = join(base, 'd'.repeat(60), 'e'.repeat(60));
    await mkdir(dir, { recursive: true });
    assert.ok(Buffer.byteLength(join(dir, LOCK_SOCKET)) > 107);
    const release = await lockDataFolder(dir);
    assert.equal(await exists(join(dir, LOCK_SOCKET)), true, 'the socket is in the folder itself');
    const other = await race(dir, 1);
    await Promise.all(other.contenders.map((c) => c.kill()));
    assert.match(other.verdicts[0]!, /^lost data folder .* is in use by process \d+/);
    await release();
    assert.equal(await exists(join(dir, LOCK_SOCKET)), false);
  });

  it('processes racing to open one folder, fresh or left by a killed owner: exactly one wins, every round', async () => {
    await using folder = await tempDir();
    const dir = folder.path;
    for (let round = 0; round < 8; round++) {
      const stale = round % 2 === 1;
      if (stale) {
        const { contenders } = await race(dir, 1);
        await contenders[0]!.kill('SIGKILL');
        assert.equal(await exists(join(dir, LOCK_SOCKET)), true);
      }
      const { contenders, verdicts } = await race(dir, 3);
      try {
        const winners = verdicts.filter((v) => v === 'won');
        assert.equal(winners.length, 1, `round ${round} (${stale ? 'stale lock' : 'fresh folder'}): ${verdicts.join(' | ')}`);
        for (const v of verdicts) if (v !== 'won') assert.match(v, /^lost data folder .* is in use by process \d+/);
      } finally {
        await Promise.all(contenders.map((c) => c.kill('SIGTERM')));
      }
    }
  });
});
