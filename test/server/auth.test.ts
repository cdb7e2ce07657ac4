/**
 * Headers (authentication) against a real server: the chat example's Register and Login,
 * rejected logins, the anonymous policy, query parameters, case-insensitive names, a Header that
 * throws, the gate, hooks, the trust list, and logins with the original lexicons' hashes.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { CHAT_APP, fixture, startApp, suiteApp } from '../helpers/server.js';

const creds = (email: string, password: string) => JSON.stringify({ email, password });

describe('chat example: Register and Login headers', { timeout: 60_000 }, () => {
  const srv = suiteApp(CHAT_APP, {
    workers: 2,
    // A user of the original lexicons: PBKDF2-HMAC-SHA256 of "pw" with an empty SALT.
    prepareData: (data) => writeFile(join(data, 'User.csv'), 'pk,email,password\nlegacy-1,old@example.com,4d8194b2daa10eb8e3a4ff252f37e33760f001a57938271b641a27eae67b0f07\n'),
  });

  it('registers a user and admits the connection', async () => {
    await using c = await TestClient.connect(srv.url, { headers: { Register: creds('ann@example.com', 'correct horse') } });
    const [reply] = (await c.next()) as [{ Register: { success: boolean; pk: string; email: string } }];
    assert.equal(reply.Register.success, true);
    assert.equal(reply.Register.email, 'ann@example.com');
    assert.deepEqual(await c.call({ Subscribe: { channel: 'Public' } }), [{ Subscribe: { channel: 'Public' } }]);
  });

  it('logs in with the right password, subscribes, and broadcasts to subscribers only', async () => {
    await (await TestClient.connect(srv.url, { headers: { Register: creds('bob@example.com', 'secret password') } })).close();
    await using bob = await TestClient.connect(srv.url, { headers: { Login: creds('bob@example.com', 'secret password') } });
    const [login] = (await bob.next()) as [{ Login: { pk: string; email: string } }];
    assert.equal(login.Login.email, 'bob@example.com');
    await using ann = await TestClient.connect(srv.url, { query: { Login: { email: 'ann@example.com', password: 'correct horse' } } });
    await ann.next();
    await using eve = await TestClient.connect(srv.url, { headers: { Register: creds('eve@example.com', 'eve password') } });
    await eve.next();
    await bob.call({ Subscribe: { channel: 'Public' } });
    await ann.call({ Subscribe: { channel: 'Public' } });
    bob.send({ CreateChatMessage: { channel: 'Public', content: 'hello all' } });
    const [toBob] = (await bob.next()) as [{ CreateChatMessage: { author: string; content: string; channel: string } }];
    assert.equal(toBob.CreateChatMessage.content, 'hello all');
    assert.equal(toBob.CreateChatMessage.author, login.Login.pk);
    assert.deepEqual(await ann.next(), [toBob]);
    // eve is not subscribed: her next frame answers her own call.
    const [list] = (await eve.call({ GetChatList: { channel: 'Public' } })) as [{ GetChatList: { messages: Array<{ content: string }> } }];
    assert.ok(list.GetChatList.messages.some((m) => m.content === 'hello all'));
  });

  it('rejects a wrong password with an Errors frame and close 1008', async () => {
    await using c = await TestClient.connect(srv.url, { headers: { Login: creds('ann@example.com', 'wrong') } });
    assert.deepEqual(await c.next(), [{ Errors: ['Authentication failed: Login rejected the credentials'] }]);
    assert.deepEqual(await c.waitClosed(), { code: 1008, reason: 'Authentication failed: Login rejected the credentials' });
  });

  it('rejects an unknown user and a duplicate registration with clear reasons', async () => {
    await using unknown = await TestClient.connect(srv.url, { headers: { Login: creds('nobody@example.com', 'whatever1') } });
    assert.equal((await unknown.waitClosed()).code, 1008);
    await using dup = await TestClient.connect(srv.url, { headers: { Register: creds('ann@example.com', 'another one') } });
    assert.deepEqual(await dup.next(), [{ Errors: ['Authentication failed: Register failed: ann@example.com is already registered'] }]);
    assert.equal((await dup.waitClosed()).code, 1008);
  });

  it('refuses a connection without credentials (anonymous policy: reject)', async () => {
    await using c = await TestClient.connect(srv.url);
    const [reply] = (await c.next()) as [{ Errors: string[] }];
    assert.match(reply.Errors[0]!, /^Authentication failed: no credentials \(send one of the headers Login, Register/);
    assert.equal((await c.waitClosed()).code, 1008);
  });

  it('rejects header arguments of the wrong type before the Header runs', async () => {
    await using c = await TestClient.connect(srv.url, { headers: { Login: JSON.stringify({ email: 5, password: 'x' }) } });
    const [reply] = (await c.next()) as [{ Errors: string[] }];
    assert.equal(reply.Errors[0], 'Authentication failed: Login failed: [Login] argument email: expected str, got number 5');
  });

  it('logs in a user of the original lexicons and re-hashes the password with scrypt', async () => {
    await using c = await TestClient.connect(srv.url, { headers: { Login: creds('old@example.com', 'pw') } });
    const [login] = (await c.next()) as [{ Login: { pk: string } }];
    assert.equal(login.Login.pk, 'legacy-1');
    await c.close();
    await srv.stop();
    const csv = await readFile(join(srv.data, 'User.csv'), 'utf8');
    assert.match(csv, /legacy-1,old@example\.com,scrypt\$16384\$8\$1\$/);
    await using restarted = await startApp(CHAT_APP, { workers: 1, data: srv.data });
    await using again = await TestClient.connect(restarted.url, { headers: { Login: creds('old@example.com', 'pw') } });
    assert.equal(((await again.next()) as [{ Login: { pk: string } }])[0].Login.pk, 'legacy-1');
  });
});

describe('Headers: policy, gate, hooks', { timeout: 60_000 }, () => {
  const srv = suiteApp(fixture('auth-app'), { workers: 2 });

  it('admits with a good token; auth is set; onConnect ran before the first signal', async () => {
    await using c = await TestClient.connect(srv.url, { headers: { Token: JSON.stringify({ token: 'good:ann' }) } });
    assert.deepEqual(await c.next(), [{ Token: { welcome: 'ann' } }]);
    const [who] = (await c.call({ Whoami: {} })) as [{ Whoami: { id: string; auth: string } }];
    assert.equal(who.Whoami.auth, 'ann');
    assert.deepEqual(await c.call({ Visits: { conn: who.Whoami.id } }), [{ Visits: ['connect'] }]);
    await c.close();
    await using d = await TestClient.connect(srv.url, { headers: { token: JSON.stringify({ token: 'good:x' }) } });
    await d.next();
    // onDisconnect of c has run by the time it is visible to another connection's later call
    // (it was queued on close; wait for it through the log of its DISCONNECT and a round trip).
    await srv.waitForLog((r) => r.status === 'DISCONNECT' && r.data.connection === who.Whoami.id);
    let visits: unknown;
    for (let i = 0; i < 50; i++) {
      visits = await d.call({ Visits: { conn: who.Whoami.id } });
      if (JSON.stringify(visits).includes('disconnect')) break;
    }
    assert.deepEqual(visits, [{ Visits: ['connect', 'disconnect'] }]);
  });

  it('matches header names case-insensitively, in HTTP headers and query parameters', async () => {
    for (const options of [
      { headers: { TOKEN: JSON.stringify({ token: 'good:upper' }) } },
      { query: { tOkEn: { token: 'good:query' } } },
    ]) {
      await using c = await TestClient.connect(srv.url, options);
      const [reply] = (await c.next()) as [{ Token: { welcome: string } }];
      assert.ok(reply.Token.welcome === 'upper' || reply.Token.welcome === 'query');
    }
  });

  it("accepts the original's single-quoted JSON and passes non-JSON data as `header`", async () => {
    await using c = await TestClient.connect(srv.url, { headers: { Token: "{'token': 'good:quoted'}" } });
    assert.deepEqual(await c.next(), [{ Token: { welcome: 'quoted' } }]);
    await using raw = await TestClient.connect(srv.url, { headers: { Token: "{'token': 'good:raw'}", Second: 'yes' } });
    const frames = [await raw.next(), await raw.next()];
    assert.deepEqual(frames, [[{ Token: { welcome: 'raw' } }], [{ Second: { raw: 'yes' } }]]);
  });

  it('does not admit a connection whose Header throws', async () => {
    await using c = await TestClient.connect(srv.url, { headers: { Token: JSON.stringify({ token: 'throw' }) } });
    assert.deepEqual(await c.next(), [{ Errors: ['Authentication failed: Token failed: token service unavailable'] }]);
    assert.deepEqual(await c.waitClosed(), { code: 1008, reason: 'Authentication failed: Token failed: token service unavailable' });
  });

  it('requires every Header that ran to admit (default gate)', async () => {
    await using c = await TestClient.connect(srv.url, { headers: { Token: JSON.stringify({ token: 'good:a' }), Second: JSON.stringify({ ok: false }) } });
    assert.deepEqual(await c.next(), [{ Token: { welcome: 'a' } }]);
    assert.deepEqual(await c.next(), [{ Errors: ['Authentication failed: Second rejected the credentials'] }]);
    assert.equal((await c.waitClosed()).code, 1008);
  });

  it('never lets a refused connection reach a Signal', async () => {
    await using c = await TestClient.connect(srv.url, { headers: { Token: JSON.stringify({ token: 'bad' }) } });
    c.send({ Whoami: {} });
    assert.deepEqual(await c.next(), [{ Errors: ['Authentication failed: Token rejected the credentials'] }]);
    await c.waitClosed();
    assert.equal(c.received.length, 1);
  });
});

describe('trust list', { timeout: 30_000 }, () => {
  it('refuses untrusted addresses with HTTP 403 and logs UNTRUSTED-SOURCE-DENIED', async () => {
    await using srv = await startApp(fixture('protocol-app'), { trust: ['10.1.2.3'] });
    await assert.rejects(TestClient.connect(srv.url), /HTTP 403/);
    const entry = await srv.waitForLog((r) => r.status === 'UNTRUSTED-SOURCE-DENIED');
    assert.equal(entry.data.address, '127.0.0.1');
  });

  it('admits listed addresses (localhost stands for both loopback addresses)', async () => {
    await using srv = await startApp(fixture('protocol-app'), { trust: ['10.1.2.3', 'localhost'] });
    await using c = await TestClient.connect(srv.url);
    assert.deepEqual(await c.call({ Echo: {} }), [{ Echo: {} }]);
  });
});
