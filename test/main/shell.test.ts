/**
 * `lexicons shell`, driven as a person would: a child process whose stdin gets one statement at a
 * time (each sent once the previous result and prompt are printed). Read-write with --write (each
 * statement a transaction: a throw keeps nothing; awaits stay inside it), read-only without
 * (writes rolled back with an error), and refused while a server holds the folder.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { BIN, fixture, ROOT, spawnCli } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';

const PROMPT = 'lexicons> ';

interface Session {
  /** Sends a statement; resolves with what was printed before the next prompt. */
  send(line: string): Promise<string>;
  /** Sends `.exit`; resolves with the exit code and everything printed. */
  exit(): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Starts `lexicons shell <cli-app> --data dir [...flags]` and waits for its first prompt. */
async function shell(dir: string, flags: string[] = []): Promise<Session> {
  const child = spawn(process.execPath, [BIN, 'shell', fixture('cli-app'), '--data', dir, ...flags], { cwd: ROOT, env: { ...process.env, LEXICONS_LOG: 'silent' } });
  let stdout = '';
  let stderr = '';
  let seen = 0; // prompts consumed
  let waiter: (() => void) | null = null;
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    waiter?.();
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
  const nextPrompt = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no prompt within 30 s:\n${stdout}\n${stderr}`)), 30_000);
      const check = (): void => {
        const parts = stdout.split(PROMPT);
        if (parts.length - 1 > seen) {
          clearTimeout(timer);
          waiter = null;
          seen++;
          resolve(parts[seen - 1]!);
        }
      };
      waiter = check;
      closed.then(() => reject(new Error(`the shell exited:\n${stdout}\n${stderr}`)));
      check();
    });
  await nextPrompt();
  return {
    async send(line) {
      const printed = nextPrompt();
      child.stdin.write(`${line}\n`);
      return (await printed).trim();
    },
    async exit() {
      child.stdin.write('.exit\n');
      const code = await closed;
      return { code, stdout, stderr };
    },
  };
}

describe('lexicons shell', { timeout: 120_000 }, () => {
  test('--write: each statement is a transaction; the next shell (read-only) sees what was kept and refuses writes', async () => {
    await using data = await tempDir();
    const rw = await shell(data.path, ['--write']);
    assert.equal(await rw.send("db.create(Note, { text: 'one', tags: ['a'] }).text"), "'one'");
    assert.match(await rw.send("db.create(Note, { text: 'two', tags: [] }); throw new Error('undo')"), /Uncaught Error: undo/);
    assert.equal(await rw.send('db.count(Note)'), '1');
    assert.equal(await rw.send("await Promise.resolve().then(() => db.create(Note, { text: 'three', tags: [] }).text)"), "'three'");
    const first = await rw.exit();
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /read-write: each statement is a transaction/);

    const ro = await shell(data.path);
    assert.equal(await ro.send('db.query(Note).map((n) => n.text).sort().join()'), "'one,three'");
    assert.match(await ro.send("db.create(Note, { text: 'four', tags: [] })"), /read-only shell: the writes of this statement were rolled back \(start the shell with --write to change data\)/);
    assert.equal(await ro.send('db.count(Note)'), '2');
    const second = await ro.exit();
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /read-only \(--write to change data\)\nModels: Note \(2\)/);
  });

  test('refuses a folder a running server holds, naming its pid', async () => {
    await using data = await tempDir();
    await using server = await spawnCli([fixture('cli-app'), '--port', '0', '--host', '127.0.0.1', '--data', data.path]);
    const child = spawn(process.execPath, [BIN, 'shell', fixture('cli-app'), '--data', data.path], { cwd: ROOT });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end();
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 1);
    assert.match(
      stderr,
      new RegExp(`^lexicons: IO: the data folder ${data.path} is in use by a running server \\(pid ${server.child.pid}\\); lexicons shell works on a stopped server's folder: stop the server first \\(to look at a live server's rows, use its admin page, /admin\\)$`, 'm'),
    );
  });
});
