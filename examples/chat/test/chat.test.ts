/**
 * The chat example's tests, written with lexicons/testing as an app's own tests would be: the
 * server in this process on a free port with a temp data folder, typed clients, the database
 * seeded and read directly, everything disposed of by `await using`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClientError } from '../../../src/client/index.js';
import { startTestServer } from '../../../src/testing/index.js';
import { server } from '../main.js';
import { ChatMessage, User } from '../models.js';

const ann = { email: 'ann@example.com', password: 'correct horse' };
const bob = { email: 'bob@example.com', password: 'battery staple' };

describe('chat example', { timeout: 60_000 }, () => {
  test('a message posted to Public reaches every subscriber and is stored', async () => {
    await using app = await startTestServer(server, { workers: 2 });
    const annClient = await app.client({ headers: { Register: ann } });
    const bobClient = await app.client({ headers: { Register: bob } });
    await bobClient.call('Subscribe', { channel: 'Public' });
    const received = new Promise<string>((resolve) => bobClient.on('CreateChatMessage', (m) => resolve(m.content)));

    await annClient.call('Subscribe', { channel: 'Public' });
    const sent = await annClient.call('CreateChatMessage', { channel: 'Public', content: 'hi bob' });

    assert.equal(sent?.content, 'hi bob');
    assert.equal(await received, 'hi bob');
    const [stored] = app.db.query(ChatMessage, { channel: 'Public' });
    assert.equal(stored?.content, 'hi bob');
    assert.equal(stored?.author, app.db.get(User, { email: ann.email })?.pk);
  });

  test('a user seeded in the database logs in; a wrong password is refused', async () => {
    await using app = await startTestServer(server);
    await app.db.run((db) => db.create(User, ann)); // the password is hashed on write (utils.encryptIfPlain)
    assert.notEqual(app.db.get(User, { email: ann.email })?.password, ann.password);

    const client = await app.client({ headers: { Login: ann } });
    assert.equal(client.state, 'open');
    await assert.rejects(app.client({ headers: { Login: { ...ann, password: 'wrong' } } }), (err: ClientError) => err.code === 'AUTH_FAILED');
  });

  test('GetChatList answers the newest seeded messages, oldest first', async () => {
    await using app = await startTestServer(server);
    await app.db.run((db) => {
      const author = db.create(User, ann);
      for (let i = 1; i <= 5; i++) db.create(ChatMessage, { author: author.pk, channel: 'Public', content: `m${i}`, timestamp: i });
    });
    const client = await app.client({ headers: { Login: ann } });
    // GetChatList sends its answer (ws.send) rather than returning a response: its type is the test's to say.
    const list = (await client.call('GetChatList', { channel: 'Public', limit: 3 })) as { messages: { content: string }[] };
    assert.deepEqual(list.messages.map((m) => m.content), ['m3', 'm4', 'm5']);
  });

  test('posting without subscribing is an error to the caller, and nothing is stored', async () => {
    await using app = await startTestServer(server);
    const client = await app.client({ headers: { Register: ann } });
    await assert.rejects(client.call('CreateChatMessage', { channel: 'Public', content: 'hi' }), /Subscribe to Public before posting to it/);
    assert.equal(app.db.count(ChatMessage), 0);
  });
});
