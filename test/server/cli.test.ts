/**
 * The command line, as a user runs it: `node bin/lexicons.js start <app> --workers N --port 0`,
 * stopped with SIGTERM. Data survives a stop and a restart; a second signal during shutdown
 * does not corrupt it; acknowledged writes survive a crash (write-ahead log); bad options give exact messages; the app can run itself; a TypeScript
 * app runs through tsx; the slow uWS fallback is refused.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { CHAT_APP, fixture, fixtureSource, runCli, runCliNode, spawnCli, spawnServer } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';

const creds = (email: string, password: string) => JSON.stringify({ email, password });

// The suite's bound only catches a hang (every spawn, stop and run inside is bounded): its 17 tests
// start 12 server processes, which took longer than the former 90 s on a loaded machine.
describe('lexicons CLI', { timeout: 300_000 }, () => {
  it('prints help', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage:$/m);
    assert.match(r.stdout, /lexicons start \[app\] \[options\]/);
  });

  const bad: Array<[string[], number, RegExp]> = [
    [['start', 'x', '--workers', '0'], 2, /^lexicons: --workers must be an integer from 1 to 256, got "0"$/m],
    [['start', 'x', '--workers', 'many'], 2, /^lexicons: --workers must be an integer from 1 to 256, got "many"$/m],
    [['start', 'x', '--port', '70000'], 2, /^lexicons: --port must be an integer from 0 to 65535, got "70000"$/m],
    [['start', 'x', '--bogus'], 2, /^lexicons: Unknown option '--bogus'/m],
    [['frobnicate'], 2, /^lexicons: unknown command "frobnicate" \(known: start, check, compact, init, shell, migrate\)$/m],
    [[], 2, /^lexicons: missing command/m],
    [['start', 'x', '--write'], 2, /^lexicons: --write does not apply to start$/m],
    [['migrate', 'x', '--write'], 2, /^lexicons: --write does not apply to migrate$/m],
    [['shell', 'x', '--dry-run'], 2, /^lexicons: --dry-run does not apply to shell$/m],
    [['shell', 'x', '--port', '1'], 2, /^lexicons: --port does not apply to shell$/m],
    [['start', 'no/such/app'], 1, /^lexicons: OPTION: app module not found: no\/such\/app/m],
  ];
  for (const [args, code, pattern] of bad) {
    it(`refuses: lexicons ${args.join(' ')}`, async () => {
      const r = await runCli(args);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, pattern);
    });
  }

  it('refuses an idle timeout uWebSockets.js would abort the process for', async () => {
    const r = await runCli(['start', fixture('bad-limits-app'), '--port', '0']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^lexicons: OPTION: limits\.idleTimeoutSeconds must be an integer from 8 to 960 \(uWebSockets\.js bounds\), got 5$/m);
  });

  it('refuses to run on the slow uWS JS fallback', async () => {
    const r = await runCli(['start', fixture('cli-app'), '--port', '0'], { env: { UWS_USE_FALLBACK: '1' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^lexicons: RUNTIME: UWS_USE_FALLBACK=1 asks uWebSockets\.js for its slow pure-JS fallback/m);
  });

  it('keeps the data of the chat example across a stop and a restart (--workers 2)', async () => {
    await using folder = await tempDir();
    const data = folder.path;
    const args = [CHAT_APP, '--workers', '2', '--port', '0', '--host', '127.0.0.1', '--data', data];
    await using first = await spawnCli(args);
    await using ann = await TestClient.connect(first.url, { headers: { Register: creds('ann@example.com', 'correct horse') } });
    await ann.next();
    await ann.call({ Subscribe: { channel: 'Public' } });
    ann.send({ CreateChatMessage: { channel: 'Public', content: 'survives restarts' } });
    await ann.next();
    assert.deepEqual(await first.stop('SIGTERM'), { code: 0, signal: null });
    assert.match(first.output(), /"status":"SHUTDOWN","phase":"done"/);
    assert.match(await readFile(join(data, 'ChatMessage.csv'), 'utf8'), /survives restarts/);

    await using second = await spawnCli(args);
    await using again = await TestClient.connect(second.url, { headers: { Login: creds('ann@example.com', 'correct horse') } });
    await again.next();
    const [list] = (await again.call({ GetChatList: { channel: 'Public' } })) as [{ GetChatList: { messages: Array<{ content: string }> } }];
    assert.deepEqual(list.GetChatList.messages.map((m) => m.content), ['survives restarts']);
    assert.deepEqual(await second.stop('SIGINT'), { code: 0, signal: null });
  });

  it('ignores a second signal during shutdown and writes the data once, intact', async () => {
    await using folder = await tempDir();
    const data = folder.path;
    await using srv = await spawnCli([fixture('cli-app'), '--workers', '4', '--port', '0', '--host', '127.0.0.1', '--data', data], { env: { SLOW_SHUTDOWN_MS: '400' } });
    await using c = await TestClient.connect(srv.url);
    for (let i = 0; i < 20; i++) c.send({ AddNote: { text: `note ${i}`, tags: ['a', `n${i}`] } });
    for (let i = 0; i < 20; i++) await c.next();
    srv.child.kill('SIGTERM');
    await srv.waitForOutput(/"phase":"begin"/);
    srv.child.kill('SIGTERM');
    srv.child.kill('SIGINT');
    assert.deepEqual(await srv.exited, { code: 0, signal: null });
    assert.match(srv.output(), /shutdown already in progress/);
    await using restarted = await spawnCli([fixture('cli-app'), '--port', '0', '--host', '127.0.0.1', '--data', data]);
    await using d = await TestClient.connect(restarted.url);
    const [list] = (await d.call({ ListNotes: {} })) as [{ ListNotes: Array<{ text: string; tags: string[] }> }];
    assert.equal(list.ListNotes.length, 21);
    assert.deepEqual(list.ListNotes[3], { text: 'note 3', tags: ['a', 'n3'] });
    assert.ok(list.ListNotes.some((n) => n.text === 'written by the shutdown task'));
    assert.equal((await restarted.stop()).code, 0);
  });

  it('keeps acknowledged writes through a crash (SIGKILL) via the write-ahead log', async () => {
    await using folder = await tempDir();
    const data = folder.path;
    const args = [fixture('cli-app'), '--workers', '2', '--port', '0', '--host', '127.0.0.1', '--data', data];
    await using first = await spawnCli(args);
    await using c = await TestClient.connect(first.url);
    for (let i = 0; i < 10; i++) await c.call({ AddNote: { text: `acked ${i}` } });
    assert.deepEqual(await first.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
    await using second = await spawnCli(args);
    assert.match(second.output(), /"replayed":10/);
    await using d = await TestClient.connect(second.url);
    const [list] = (await d.call({ ListNotes: {} })) as [{ ListNotes: Array<{ text: string }> }];
    assert.deepEqual(list.ListNotes.map((n) => n.text), Array.from({ length: 10 }, (_, i) => `acked ${i}`));
    assert.deepEqual(await second.stop(), { code: 0, signal: null }, second.output().slice(-4000));
  });

  it('checks and compacts a stopped server\'s data folder', async () => {
    await using folder = await tempDir();
    const data = folder.path;
    await using srv = await spawnCli([fixture('cli-app'), '--port', '0', '--host', '127.0.0.1', '--data', data]);
    await using c = await TestClient.connect(srv.url);
    for (let i = 0; i < 3; i++) await c.call({ AddNote: { text: `n${i}` } });
    await srv.stop('SIGKILL');
    const check = await runCli(['check', fixture('cli-app'), '--data', data]);
    assert.equal(check.code, 0, check.stderr);
    const report = JSON.parse(check.stdout) as { ok: boolean; replayable: number; tables: Record<string, number> };
    assert.equal(report.ok, true);
    assert.equal(report.replayable, 3);
    assert.deepEqual(report.tables, { Note: 3 });
    const compact = await runCli(['compact', fixture('cli-app'), '--data', data]);
    assert.equal(compact.code, 0, compact.stderr);
    assert.deepEqual((JSON.parse(compact.stdout) as { tables: Record<string, number> }).tables, { Note: 3 });
    assert.match(await readFile(join(data, 'Note.csv'), 'utf8'), /n2/);
  });

  it('runs an app module that starts itself (node app.js), configured by HOST/PORT/DATA', async () => {
    await using folder = await tempDir();
    const data = folder.path;
    await using srv = await spawnServer([fixture('cli-app')], { env: { HOST: '127.0.0.1', PORT: '0', DATA: data } });
    await using c = await TestClient.connect(srv.url);
    assert.equal(((await c.call({ AddNote: { text: 'self' } })) as [{ AddNote: { text: string } }])[0].AddNote.text, 'self');
    assert.equal((await srv.stop()).code, 0);
    assert.match(await readFile(join(data, 'Note.csv'), 'utf8'), /self/);
  });

  it('explains a server that is not exported', async () => {
    const r = await runCli(['start', fixture('unexported-app'), '--port', '0']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^lexicons: OPTION: .*unexported-app\.js does not export a Server \(export const server = new Server\(\{\.\.\.\}\)\)$/m);
    await using folder = await tempDir();
    const self = await runCliNode([fixture('unexported-app')], { env: { PORT: '0', HOST: '127.0.0.1', DATA: folder.path } });
    assert.equal(self.code, 1);
    assert.match(self.stderr, /the worker threads could not start the app .*unexported-app\.js: .*does not export a Server/);
  });

  it('runs a TypeScript app module through tsx (--workers 2)', async () => {
    await using folder = await tempDir();
    const data = folder.path;
    await using srv = await spawnCli([fixtureSource('cli-app'), '--workers', '2', '--port', '0', '--host', '127.0.0.1', '--data', data], { timeoutMs: 40_000 });
    await using c = await TestClient.connect(srv.url);
    assert.deepEqual(await c.call({ ListNotes: {} }), [{ ListNotes: [] }]);
    assert.equal((await srv.stop()).code, 0);
  });
});
