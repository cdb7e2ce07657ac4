/**
 * Conformance: one chat scenario (register, login, rejected login, subscribe, broadcast to
 * subscribers only, batch frames, errors, concurrent posting) run against the chat example
 * with --workers 1 and --workers 4; both transcripts must be identical (ids and times
 * normalized) and match the expected protocol.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { CHAT_APP, suiteApp } from '../helpers/server.js';

const creds = (email: string, password: string) => JSON.stringify({ email, password });
type Item = Record<string, unknown>;

/** Replaces UUIDs by their order of appearance and timestamps by "T" (per transcript). */
function normalize(value: unknown, ids = new Map<string, string>()): unknown {
  if (typeof value === 'string') {
    return value.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, (id) => {
      if (!ids.has(id)) ids.set(id, `<id${ids.size + 1}>`);
      return ids.get(id)!;
    });
  }
  if (Array.isArray(value)) return value.map((v) => normalize(v, ids));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === 'timestamp' ? 'T' : normalize(v, ids)]));
  }
  return value;
}

const transcripts = new Map<number, unknown[]>();

for (const workers of [1, 4]) {
  describe(`chat example with --workers ${workers}`, { timeout: 60_000 }, () => {
    const srv = suiteApp(CHAT_APP, { workers });
    const log: unknown[] = [];
    transcripts.set(workers, log);
    const ids = new Map<string, string>();
    const note = (step: string, value: unknown) => log.push({ step, value: normalize(value, ids) });
    const open = (headers: Record<string, string>) => TestClient.connect(srv.url, { headers });

    it('registers, logs in, and rejects a wrong password', async () => {
      await using ann = await open({ Register: creds('ann@example.com', 'ann password') });
      note('register', await ann.next());
      await ann.close();
      await using login = await open({ Login: creds('ann@example.com', 'ann password') });
      note('login', await login.next());
      await using wrong = await open({ Login: creds('ann@example.com', 'nope') });
      note('wrong password', [await wrong.next(), await wrong.waitClosed()]);
    });

    it('broadcasts to subscribers only, in list frames, and reports errors to the caller', async () => {
      await using bob = await open({ Register: creds('bob@example.com', 'bob password') });
      await using cid = await open({ Register: creds('cid@example.com', 'cid password') });
      await using dan = await open({ Register: creds('dan@example.com', 'dan password') });
      for (const c of [bob, cid, dan]) await c.next();
      note('subscribe', await bob.call({ Subscribe: { channel: 'Public' } }));
      note('subscribe', await cid.call({ Subscribe: { channel: 'Public' } }));
      bob.send([
        { CreateChatMessage: { channel: 'Public', content: 'one' } },
        { CreateChatMessage: { channel: 'Public', content: 'two' } },
      ]);
      const toBob = await bob.next();
      note('batch to sender', toBob);
      assert.deepEqual(await cid.next(), toBob);
      assert.equal((toBob as Item[]).length, 2);
      note('not subscribed', await dan.call({ CreateChatMessage: { channel: 'Public', content: 'x' } }));
      note('unknown signal', await dan.call({ Shout: {} }));
      note('malformed', await dan.call('{"CreateChatMessage"'));
      note('not an object', await dan.call('[1, 2]'));
      note('bad argument', await dan.call({ CreateChatMessage: { channel: 'Public', content: 5 } }));
      note('history', await dan.call({ GetChatList: { channel: 'Public' } }));
      assert.equal(dan.received.length, 7, 'dan received a broadcast of a channel he is not in'); // Register + 6 replies
    });

    it('keeps each author in order when many post at once', async () => {
      await using posters = await TestClient.many(srv.url, 6, (i) => ({ headers: { Register: creds(`p${i + 1}@example.com`, `p${i + 1} password`) } }));
      for (const p of posters) await p.next();
      for (const p of posters) await p.call({ Subscribe: { channel: 'Public' } });
      const perPoster = 20;
      posters.forEach((p, i) => {
        for (let k = 0; k < perPoster; k++) p.send({ CreateChatMessage: { channel: 'Public', content: `p${i + 1}:${k}` } });
      });
      const seenBy: Array<Record<string, string[]>> = [];
      for (const p of posters) {
        const byAuthor: Record<string, string[]> = {};
        for (let n = 0; n < posters.length * perPoster; ) {
          for (const item of (await p.next(10_000)) as Array<{ CreateChatMessage: { content: string } }>) {
            const content = item.CreateChatMessage.content;
            (byAuthor[content.split(':')[0]!] ??= []).push(content);
            n++;
          }
        }
        seenBy.push(byAuthor);
      }
      for (const byAuthor of seenBy) {
        for (let i = 0; i < posters.length; i++) {
          assert.deepEqual(byAuthor[`p${i + 1}`], Array.from({ length: perPoster }, (_, k) => `p${i + 1}:${k}`));
        }
      }
      const [list] = (await posters[0]!.call({ GetChatList: { channel: 'Public', limit: 1000 } })) as [{ GetChatList: { messages: unknown[] } }];
      note('message count', list.GetChatList.messages.length);
    });
  });
}

describe('conformance', () => {
  it('--workers 1 and --workers 4 give the same results', () => {
    const one = transcripts.get(1);
    const four = transcripts.get(4);
    assert.ok(one && four && one.length > 10);
    assert.deepEqual(four, one);
    const steps = Object.fromEntries((one as Array<{ step: string; value: unknown }>).map((s) => [s.step, s.value]));
    assert.deepEqual(steps['wrong password'], [[{ Errors: ['Authentication failed: Login rejected the credentials'] }], { code: 1008, reason: 'Authentication failed: Login rejected the credentials' }]);
    assert.deepEqual(steps['unknown signal'], [{ Errors: ['No signal [Shout]'] }]);
    assert.deepEqual(steps['not subscribed'], [{ Errors: ['Subscribe to Public before posting to it'] }]);
    assert.equal(steps['message count'], 122);
  });
});
