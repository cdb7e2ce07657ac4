/**
 * The `static` Server option and `lexicons start --static DIR`: checked at the edge with exact
 * messages; served by the running server next to its own routes (/health, /metrics and the
 * WebSocket upgrade keep theirs). The chat example serves its built web page.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parseCommand } from '../../src/main/cli.js';
import { runSettings, Server } from '../../src/server.js';
import { TestClient } from '../helpers/client.js';
import { CHAT_APP, fixture, runCli, spawnCli, startApp } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('static option: checks', () => {
  it('refuses a bad shape when the Server is built', () => {
    assert.throws(() => new Server({ static: 5 as never }), { message: 'static must be a folder path or { dir, prefix?, cacheControl?, maxFileBytes?, index? }, got 5' });
    assert.throws(() => new Server({ static: '' }), { message: 'static must be a folder path, got ""' });
    assert.throws(() => new Server({ static: { dir: 'web', gzip: true } as never }), { message: 'static.gzip is not a known option (known: dir, prefix, cacheControl, maxFileBytes, index)' });
    assert.equal(new Server({ static: 'web' }).resolve().static?.dir, resolve('web'));
  });

  it('refuses a folder that is not a readable directory when a run starts', async () => {
    await using folder = await tempDir();
    const missing = join(folder.path, 'missing');
    assert.throws(() => runSettings(new Server({ static: missing }), { appPath: 'app.js' }), { message: `static: ${missing} is not a readable directory` });
    assert.throws(() => runSettings(new Server(), { appPath: 'app.js', static: missing }), { message: `--static: ${missing} is not a readable directory` });
  });

  it('parses --static, refuses an empty one and one for check/compact', () => {
    assert.deepEqual(parseCommand(['start', 'app.js', '--static', 'web']), { command: 'start', app: 'app.js', overrides: { static: 'web' } });
    assert.throws(() => parseCommand(['start', '--static', ' ']), { message: '--static must not be empty' });
    assert.throws(() => parseCommand(['check', '--static', 'web']), { message: '--static does not apply to check' });
  });

  it('lexicons start --static with a missing folder exits 1 with the message, before listening', async () => {
    await using folder = await tempDir();
    await using data = await tempDir();
    const missing = join(folder.path, 'missing');
    const result = await runCli(['start', fixture('cli-app'), '--port', '0', '--data', data.path, '--static', missing]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`lexicons: OPTION: --static: ${missing.replace(/[/.]/g, '\\$&')} is not a readable directory`));
    assert.doesNotMatch(result.stderr + result.stdout, /"LISTEN"/);
  });
});

describe('static option: served by the server', () => {
  it('serves the chat example page at / while /health, /metrics and WebSocket upgrades keep their routes', async () => {
    await using srv = await startApp(CHAT_APP);
    const base = `http://127.0.0.1:${srv.port}`;
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(await page.text(), /<script type="module" src="app.js"><\/script>/);
    const script = await fetch(`${base}/app.js`);
    assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.ok((await script.text()).length > 1000);
    assert.equal((await fetch(`${base}/health`)).status, 200);
    assert.match(await (await fetch(`${base}/metrics`)).text(), /^# HELP lexicons_/m);
    assert.equal((await fetch(`${base}/nope.txt`)).status, 404);
    assert.equal((await fetch(`${base}/`, { method: 'POST' })).status, 404);
    await using ws = await TestClient.connect(srv.url, { query: { Register: { email: 'static@example.com', password: 'static password' } } });
    assert.deepEqual(Object.keys(((await ws.next()) as Array<Record<string, unknown>>)[0]!), ['Register']);
  });

  it('serves a folder given by --static', async () => {
    await using web = await tempDir();
    await using data = await tempDir();
    await mkdir(join(web.path, 'docs'));
    await writeFile(join(web.path, 'docs', 'a.txt'), 'static text');
    await using srv = await spawnCli([fixture('cli-app'), '--port', '0', '--host', '127.0.0.1', '--data', data.path, '--static', web.path]);
    const res = await fetch(`http://127.0.0.1:${srv.port}/docs/a.txt`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'static text');
    assert.equal((await srv.stop()).code, 0);
  });
});
