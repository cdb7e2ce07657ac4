/**
 * lexicons/testing's startTestServer beyond the chat example's own tests
 * (examples/chat/test/chat.test.ts): the child-process mode, what disposal removes and keeps,
 * and the exact messages of its misuses.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { Server } from '../../src/index.js';
import { startTestServer } from '../../src/testing/index.js';
import { server as chat } from '../../examples/chat/main.js';
import { ChatMessage, User } from '../../examples/chat/models.js';
import { CHAT_APP } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';

const ann = { email: 'ann@example.com', password: 'correct horse' };

/** Resolves with whether a WebSocket to `url` opened (false: refused, the port is closed). */
function opens(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url);
    socket.once('open', () => {
      socket.close();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('startTestServer', { timeout: 60_000 }, () => {
  test('in process: disposal closes the clients, stops the server and removes the temp data folder', async () => {
    let data: string;
    let url: string;
    let client;
    {
      await using app = await startTestServer(chat);
      ({ data, url } = app);
      client = await app.client({ headers: { Register: ann } });
      assert.ok(existsSync(data));
      assert.equal(app.db.count(User), 1);
    }
    assert.equal(client.state, 'closed');
    assert.equal(existsSync(data), false);
    assert.equal(await opens(url), false);
  });

  test('in process: after stop, app.db and app.client say the server has stopped', async () => {
    const app = await startTestServer(chat);
    await app.stop();
    await app.stop(); // idempotent
    assert.throws(() => app.db.count(User), { message: 'app.db: the test server has stopped' });
    await assert.rejects(app.client(), { message: 'app.client: the test server has stopped' });
  });

  test('a given data folder is kept, and a second server on it sees the first one\'s rows', async () => {
    await using tmp = await tempDir();
    const data = tmp.path;
    {
      await using app = await startTestServer(CHAT_APP, { data });
      await app.db.run((db) => db.create(User, ann));
    }
    assert.ok(existsSync(data));
    await using again = await startTestServer(chat, { data });
    assert.equal(again.db.get(User, { email: ann.email })?.email, ann.email);
  });

  test('child: true runs `lexicons start` in a child process; app.db is refused there', async () => {
    let data: string;
    {
      await using app = await startTestServer<typeof chat>(CHAT_APP, { child: true, workers: 2 });
      data = app.data;
      const client = await app.client({ headers: { Register: ann } });
      await client.call('Subscribe', { channel: 'Public' });
      const sent = await client.call('CreateChatMessage', { channel: 'Public', content: 'from a child' });
      assert.equal(sent?.content, 'from a child');
      assert.throws(() => app.db, { message: "app.db reads the server's store in this process: it is not available with { child: true }" });
    }
    assert.equal(existsSync(data), false);
  });

  test('a Server that never called runIfMain needs its module', async () => {
    const server = new Server({ models: [ChatMessage, User] });
    await assert.rejects(startTestServer(server), {
      message:
        "startTestServer: the worker threads import the app by module: call server.runIfMain(import.meta.url) in the module that exports the server, or pass its path (startTestServer('./main.ts') or { module })",
    });
  });
});
