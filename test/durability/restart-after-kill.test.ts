/**
 * Issue #12: a restart right after `kill -9` succeeds (systemd `Restart=always` restarts 100 ms
 * after it sees the death), ten times in a row, with the killed process still a zombie (its parent does not reap
 * it, so its pid is taken), and every acknowledged write is there at the end. And two servers
 * started at once on one folder, fresh or left by a killed server: exactly one runs.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { BIN, fixture, spawnCli } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';
import { TestClient } from '../helpers/client.js';

/**
 * `lexicons start` under a parent that never reaps it (`sh` running the server in the background,
 * then exec'ing into `sleep`): once killed, the server stays a zombie until the parent goes.
 */
class UnreapedServer {
  readonly parent: ChildProcessWithoutNullStreams;
  readonly spawnedAt = Date.now();
  out = '';
  readonly #closed: Promise<void>;

  constructor(args: string[]) {
    const script = '"$0" "$@" & echo "server pid $!"; exec sleep 600 </dev/null >/dev/null 2>&1';
    this.parent = spawn('sh', ['-c', script, process.execPath, BIN, 'start', ...args], { env: { ...process.env, LEXICONS_LOG: 'all' } });
    this.parent.stdout.on('data', (d: Buffer) => (this.out += d.toString()));
    this.parent.stderr.on('data', (d: Buffer) => (this.out += d.toString()));
    // Only the server holds the pipes once sh is sleep: both end when the server is dead.
    this.#closed = Promise.all([once(this.parent.stdout, 'end'), once(this.parent.stderr, 'end')]).then(() => undefined);
  }

  /** Resolves with the match of `pattern` in the output, bounded in time. */
  wait(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = pattern.exec(this.out);
        if (!m) return;
        done();
        resolve(m);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${this.out.slice(-2000)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.parent.stdout.off('data', check);
        this.parent.stderr.off('data', check);
      };
      this.parent.stdout.on('data', check);
      this.parent.stderr.on('data', check);
      check();
    });
  }

  async started(): Promise<{ pid: number; url: string }> {
    const pid = Number((await this.wait(/server pid (\d+)/))[1]);
    const port = Number((await this.wait(/"status":"LISTEN".*?"port":(\d+)/))[1]);
    return { pid, url: `ws://127.0.0.1:${port}` };
  }

  /** Sends `signal` to the server and resolves once it is dead (its pipes closed). */
  async kill(pid: number, signal: NodeJS.Signals): Promise<void> {
    process.kill(pid, signal);
    await this.#closed;
  }

  /** Kills the server if it still runs and ends the parent (init then reaps the zombie). */
  async dispose(): Promise<void> {
    const pid = /server pid (\d+)/.exec(this.out)?.[1];
    if (pid !== undefined) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already dead
      }
    }
    this.parent.stdout.destroy();
    this.parent.stderr.destroy();
    if (this.parent.exitCode !== null || this.parent.signalCode !== null) return;
    const exited = once(this.parent, 'exit');
    this.parent.kill('SIGKILL');
    await exited;
  }
}

/** The process state letter in /proc/<pid>/stat (Z: zombie), or null when there is no such process. */
async function processState(pid: number): Promise<string | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat === null ? null : (/\) (\S)/.exec(stat)?.[1] ?? null);
}

describe('restart after kill -9 (issue #12)', { skip: process.platform !== 'linux' && 'uses /proc and sh (Linux)' }, () => {
  it('restarts within 100 ms of each kill -9, ten times, though the killed server is still a zombie; no acknowledged write is lost', async () => {
    await using folder = await tempDir();
    const data = folder.path;
    const args = [fixture('cli-app'), '--workers', '1', '--port', '0', '--host', '127.0.0.1', '--data', data];
    const servers: UnreapedServer[] = [];
    try {
      let current = new UnreapedServer(args);
      servers.push(current);
      for (let cycle = 0; cycle < 10; cycle++) {
        const { pid, url } = await current.started();
        const client = await TestClient.connect(url);
        assert.deepEqual(((await client.call({ AddNote: { text: `cycle ${cycle}` } })) as [{ AddNote: { text: string } }])[0].AddNote.text, `cycle ${cycle}`);
        await current.kill(pid, 'SIGKILL');
        const diedAt = Date.now(); // what systemd's RestartSec counts from: the death it sees
        current = new UnreapedServer(args);
        servers.push(current);
        assert.ok(current.spawnedAt - diedAt < 100, `restarted ${current.spawnedAt - diedAt} ms after the death`);
        assert.equal(await processState(pid), 'Z', 'the killed server is a zombie: its pid still exists');
        client.close().catch(() => undefined);
      }
      const { pid, url } = await current.started();
      const client = await TestClient.connect(url);
      const [list] = (await client.call({ ListNotes: {} })) as [{ ListNotes: Array<{ text: string }> }];
      assert.deepEqual(list.ListNotes.map((n) => n.text).sort(), Array.from({ length: 10 }, (_, i) => `cycle ${i}`).sort());
      await client.close();
      await current.kill(pid, 'SIGTERM');
      assert.match(current.out, /"status":"SHUTDOWN","phase":"done"/);
    } finally {
      await Promise.all(servers.map((s) => s.dispose()));
    }
  });

  it('two servers started at once on one folder, fresh or left by a killed server: exactly one runs', async () => {
    await using folder = await tempDir();
    const data = folder.path;
    const args = [fixture('cli-app'), '--workers', '1', '--port', '0', '--host', '127.0.0.1', '--data', data];
    for (const stale of [false, true]) {
      if (stale) await (await spawnCli(args)).stop('SIGKILL');
      const outcomes = await Promise.allSettled([spawnCli(args, { timeoutMs: 60_000 }), spawnCli(args, { timeoutMs: 60_000 })]);
      const winners = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
      const losers = outcomes.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []));
      try {
        assert.equal(winners.length, 1, `${stale ? 'stale' : 'fresh'} folder: ${losers.join('\n')}`);
        assert.match(losers[0]!, new RegExp(`ended before printing [^]*data folder .* is in use by process ${winners[0]!.child.pid}`));
      } finally {
        for (const w of winners) assert.deepEqual(await w.stop('SIGTERM'), { code: 0, signal: null });
      }
    }
  });
});
