/**
 * The typed client's channels against the real server (test/fixtures/apps/channels-app.ts, 2
 * workers): sockets are destroyed under it (no close frame) through a WebSocket class that keeps
 * its instances. It resumes the session (auth and channels back, Headers not run) and recovers
 * what it missed, delivering every item once, in order; it recovers a gap a `drop` channel left
 * with `$recover` on its own; it says `stale` when recovery is impossible; a `resend` call in
 * flight when the connection dropped runs once; presence members and changes are exposed.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { createClient, type ChannelEvent, type Client, type ClientOptions, type Item, type StateEvent } from '../../src/client/index.js';
import { fixture, suiteApp } from '../helpers/server.js';
import { nextState } from './client-helpers.js';

const TOKEN = 'client-channels-admin-token';
const srv = suiteApp(fixture('channels-app'), { workers: 2, overrides: { adminTrust: [], adminToken: TOKEN } });

/** uWS's buffered bytes of a connection (admin overview). */
async function buffered(id: string): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${srv.port}/admin/api/overview`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const body = (await res.json()) as { connections: { listed: Array<{ id: string; bufferedBytes: number }> } };
  return body.connections.listed.find((c) => c.id === id)?.bufferedBytes;
}
const clients: Client[] = [];
after(() => clients.forEach((c) => c.close()));

/** A client whose sockets the test can reach (to destroy or pause them), with what it received. */
function open(name: string, options: Partial<ClientOptions> = {}) {
  const sockets: WebSocket[] = [];
  class Tracked extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
  }
  const client = createClient({ url: srv.url, WebSocket: Tracked as never, headers: { Guest: { name } }, reconnect: { baseDelayMs: 20, maxDelayMs: 100 }, ...options });
  clients.push(client);
  const events: ChannelEvent[] = [];
  const states: StateEvent[] = [];
  const watchers = new Set<() => void>();
  const notify = () => watchers.forEach((w) => w());
  client.onChannel((e) => {
    events.push(e);
    notify();
  });
  client.onState((e) => {
    states.push(e);
    notify();
  });
  /** Resolves once `check` holds (checked at every item, event and state change), bounded in time. */
  const until = (check: () => boolean, timeoutMs = 60_000): Promise<void> =>
    new Promise((resolve, reject) => {
      if (check()) return resolve();
      const timer = setTimeout(() => {
        watchers.delete(watch);
        reject(new Error(`not within ${timeoutMs} ms`));
      }, timeoutMs);
      const watch = () => {
        if (!check()) return;
        clearTimeout(timer);
        watchers.delete(watch);
        resolve();
      };
      watchers.add(watch);
    });
  /** The items named `name` the app got (with their `$off` in `item`). */
  const got = (itemName: string): Item[] => {
    const list: Item[] = [];
    client.on(itemName, (_payload, item) => {
      list.push(item);
      notify();
    });
    return list;
  };
  return { client, sockets, events, states, until, got, socket: () => sockets.at(-1)! };
}

function offsetsOf(items: readonly Item[], channel: string): number[] {
  return items.map((i) => (i.$off as Record<string, number>)[channel]!);
}

function run(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, k) => from + k);
}

describe('client: channels that remember', () => {
  it('a destroyed connection: resumes (auth, channels, no Headers), recovers the missed items; the app gets each once, in order', async () => {
    // Reconnects when told (connect()), so the test decides what it misses.
    const reader = open('reader', { headers: () => ({ Guest: { name: `reader-${reader.states.filter((s) => s.state === 'connecting').length}` } }), reconnect: { baseDelayMs: 60_000, maxDelayMs: 60_000 } });
    const posts = reader.got('Post');
    await reader.client.call('Join', { channel: 'Public' }, { replay: true });
    const joined = reader.events.find((e) => e.type === 'subscribed' && e.channel === 'Public');
    assert.ok(joined?.type === 'subscribed' && !joined.wasRecovering && !joined.recovered, JSON.stringify(joined));
    const writer = open('writer');
    for (let k = 0; k < 3; k++) await writer.client.call('Post', { channel: 'Public', text: `live-${k}` });
    await reader.until(() => posts.length === 3);
    assert.equal(reader.client.positions.Public?.offset, joined.offset + 3);
    reader.socket().terminate();
    await nextState(reader.client, 'disconnected');
    for (let k = 0; k < 5; k++) await writer.client.call('Post', { channel: 'Public', text: `missed-${k}` });
    const reopening = nextState(reader.client, 'open');
    reader.client.connect();
    const reopened = await reopening;
    assert.equal(reopened.resumed, true, 'the session was resumed');
    await reader.until(() => posts.length === 8);
    await writer.client.call('Post', { channel: 'Public', text: 'after' });
    await reader.until(() => posts.length === 9);
    assert.deepEqual(
      posts.map((p) => (p.Post as { text: string }).text),
      ['live-0', 'live-1', 'live-2', 'missed-0', 'missed-1', 'missed-2', 'missed-3', 'missed-4', 'after'],
    );
    assert.deepEqual(offsetsOf(posts, 'Public'), run(joined.offset + 1, joined.offset + 9));
    assert.ok(reader.events.some((e) => e.type === 'subscribed' && e.wasRecovering && e.recovered), 'a recovered subscription');
    const whoami = reader.got('Whoami');
    await reader.client.call('Whoami');
    assert.deepEqual((whoami[0]!.Whoami as { auth: string }).auth, 'reader-0', 'auth from the first connection: the Headers did not run again');
  });

  it("a 'drop' channel's gap is recovered with $recover on its own: every item once, in order", async () => {
    const slow = open('slow');
    const bursts = slow.got('Burst');
    await slow.client.call('Join', { channel: 'Dropping' }, { replay: true });
    const start = slow.client.positions.Dropping!.offset;
    const publisher = open('publisher');
    const tcp = (slow.socket() as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    tcp.pause();
    // 120 frames of 64 KiB: beyond the kernel's socket buffers and the 256 KiB limit, so uWS drops some.
    for (let k = 0; k < 120; k++) await publisher.client.call('Burst', { channel: 'Dropping', n: 4, size: 16 * 1024 });
    tcp.resume();
    // Until uWS sent it all (polled after round trips of the publisher; bounded).
    for (let i = 0; i < 200 && (await buffered(slow.client.connectionId!)) !== 0; i++) await publisher.client.call('Whoami');
    assert.ok(slow.client.positions.Dropping!.offset < start + 480, 'items were dropped');
    // The next publication shows the gap, as it would in an app.
    await publisher.client.call('Burst', { channel: 'Dropping', n: 4, size: 16 * 1024 });
    const end = start + 484;
    await slow.until(() => slow.client.positions.Dropping!.offset === end, 30_000);
    assert.deepEqual(offsetsOf(bursts, 'Dropping'), run(start + 1, end));
    const recovered = slow.events.filter((e) => e.type === 'subscribed' && e.wasRecovering);
    assert.ok(recovered.length >= 1 && recovered.every((e) => e.type === 'subscribed' && e.recovered), JSON.stringify(recovered));
  });

  it("says 'stale' when the missed items cannot be recovered (trimmed: Small keeps 5)", async () => {
    const reader = open('stale-reader', { reconnect: { baseDelayMs: 60_000, maxDelayMs: 60_000 } });
    await reader.client.call('Join', { channel: 'Small' }, { replay: true });
    const writer = open('stale-writer');
    reader.socket().terminate();
    await nextState(reader.client, 'disconnected');
    await writer.client.call('Burst', { channel: 'Small', n: 10 });
    reader.client.connect();
    await reader.until(() => reader.events.some((e) => e.type === 'stale'));
    const stale = reader.events.find((e) => e.type === 'stale')!;
    assert.equal(stale.channel, 'Small');
    assert.equal(reader.client.positions.Small?.offset, stale.type === 'stale' ? stale.offset : -1, 'the position starts again from the server');
  });

  it('a resend call in flight when the connection dropped runs once and resolves with its outcome', async () => {
    const ann = open('ann-resend');
    await ann.client.call('Join', { channel: 'Lobby' }); // the reply goes to the channel (the caller's copy)
    const call = ann.client.call('SlowPost', { channel: 'Lobby', text: 'exactly-once', ms: 500 }, { resend: true });
    await new Promise((resolve) => setImmediate(resolve)); // sent at the end of the tick
    const sock = ann.socket();
    sock.ping();
    await once(sock, 'pong'); // the server has the call
    sock.terminate();
    const reply = (await call) as { text: string; pk: unknown };
    assert.equal(reply.text, 'exactly-once');
    const counts = ann.got('Count');
    await ann.client.call('Count', { prefix: 'exactly-once' });
    assert.equal(counts[0]!.Count, 1);
    assert.ok(ann.states.some((s) => s.state === 'open' && s.resumed));
  });

  it('presence: members on join, then joins and leaves; client.presence(channel)', async () => {
    const ann = open('p-ann');
    await ann.client.call('Join', { channel: 'Lobby' }, { replay: true });
    await ann.until(() => ann.client.presence('Lobby').some((m) => (m.meta as { name: string }).name === 'p-ann'));
    const bob = open('p-bob');
    await bob.client.call('Join', { channel: 'Lobby' });
    await ann.until(() => ann.client.presence('Lobby').some((m) => (m.meta as { name: string }).name === 'p-bob'));
    const joined = ann.events.find((e) => e.type === 'presence' && e.joined.some((m) => (m.meta as { name: string }).name === 'p-bob'));
    assert.ok(joined, 'a presence event with the join');
    const bobId = ann.client.presence('Lobby').find((m) => (m.meta as { name: string }).name === 'p-bob')!.id;
    await bob.client.call('Leave', { channel: 'Lobby' });
    await ann.until(() => !ann.client.presence('Lobby').some((m) => m.id === bobId));
    assert.ok(ann.events.some((e) => e.type === 'presence' && e.left.includes(bobId)));
    assert.ok(bob.events.some((e) => e.type === 'unsubscribed' && e.channel === 'Lobby'));
    assert.deepEqual(bob.client.presence('Lobby'), []);
  });
});
