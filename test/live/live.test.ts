/**
 * Live queries against the real server (test/fixtures/apps/live-app.ts, 2 workers): the wire
 * frames (whole result, changes by pk, changed groups only, errors with codes), authorization in
 * the query, unsubscribe, a connection that drops mid-update, read-your-writes (a Signal's reply
 * comes after its caller's live query shows its write), a slow client (coalesced, consistent),
 * and the typed client resubscribing after a reconnect.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { createClient, type Client, type LiveView } from '../../src/client/index.js';
import { TestClient } from '../helpers/client.js';
import { onEachFrame } from '../helpers/live-frames.js';
import { fixture, startApp, type TestServer } from '../helpers/server.js';
import { ByOwner, type server as liveApp } from '../fixtures/apps/live-app.js';
import { LiveQueryManager, Server } from '../../src/index.js';
import { nextState } from '../client/client-helpers.js';

type App = typeof liveApp;
type Item = Record<string, unknown>;

describe('live queries: the live option', () => {
  it('is checked when the Server is made, with exact messages', () => {
    class NotLive {}
    assert.throws(() => new Server({ live: [NotLive as never] }), { message: 'live: NotLive is not a LiveQuery class with a query method' });
    assert.throws(() => new Server({ live: [ByOwner, ByOwner] as never }), { message: 'live: two live queries are named ByOwner' });
    assert.throws(() => new LiveQueryManager({ Other: ByOwner } as never), { message: "LiveQueryManager: key Other holds ByOwner; a key must be the live query's name" });
    assert.deepEqual([...new Server({ live: new LiveQueryManager({ ByOwner }) }).components.live.keys()], ['ByOwner']);
  });
});

describe('live queries', () => {
  let srv: TestServer;
  const sockets: TestClient[] = [];
  const clients: Array<Client<App>> = [];
  before(async () => {
    srv = await startApp(fixture('live-app'), { workers: 2 });
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(sockets.map((s) => s[Symbol.asyncDispose]()));
    await srv?.[Symbol.asyncDispose]();
  });

  async function raw(name: string): Promise<TestClient> {
    const socket = await TestClient.connect(srv.url, { protocols: 'lexicons.v1' });
    sockets.push(socket);
    socket.send({ $connect: { headers: { As: { name } } } });
    await socket.next();
    return socket;
  }

  /** The `$live` items of the next frame that has some (other frames are kept in `skipped`). */
  async function liveItems(socket: TestClient, skipped: unknown[] = []): Promise<Array<Record<string, any>>> {
    for (;;) {
      const frame = (await socket.next(10_000)) as Item[];
      const items = frame.filter((i) => '$live' in i).map((i) => i.$live as Record<string, any>);
      if (items.length > 0) return items;
      skipped.push(frame);
    }
  }

  function mutate(socket: TestClient, id: number, args: Record<string, unknown>): void {
    socket.send({ Mutate: args, $id: id });
  }

  /** Frames until the reply to call `id`; returns them (the reply last). */
  async function untilReply(socket: TestClient, id: number): Promise<Item[][]> {
    const frames: Item[][] = [];
    for (;;) {
      const frame = (await socket.next(10_000)) as Item[];
      frames.push(frame);
      if (frame.some((i) => i.$id === id)) return frames;
    }
  }

  it('sends the whole result, then row changes by pk, changed groups only, and refuses with codes', async () => {
    const s = await raw('ann');
    s.send({ $live: { id: 'a', name: 'ByOwner', args: { owner: 'w1' } } });
    const [init] = await liveItems(s);
    assert.equal(init?.id, 'a');
    assert.equal(typeof init?.at, 'number');
    assert.deepEqual(init?.rows, []);
    s.send({ $live: { id: 'g', name: 'Stats', args: { owner: 'w1' } } });
    const [groupsInit] = await liveItems(s);
    assert.equal(groupsInit?.id, 'g');
    assert.deepEqual(groupsInit?.groups, {});
    mutate(s, 1, { op: 'insert', pk: 'w1a', owner: 'w1', kind: 'k', score: 5 });
    const inserted = await untilReply(s, 1);
    const items = inserted.flat().filter((i) => '$live' in i).map((i) => i.$live as Record<string, any>);
    const rows = items.find((i) => i.id === 'a' && i.changes);
    assert.deepEqual(rows?.changes, { inserted: [{ pk: 'w1a', owner: 'w1', kind: 'k', score: 5, label: '' }] });
    assert.equal(typeof rows?.at, 'number');
    const groups = items.find((i) => i.id === 'g' && (i.changes || i.groups));
    assert.deepEqual(groups?.changes?.groups ?? groups?.groups, { k: { n: 1, total: 5, lo: 5, hi: 5, mean: 5 } });
    mutate(s, 2, { op: 'update', pk: 'w1a', score: 7 });
    const updated = (await untilReply(s, 2)).flat().filter((i) => '$live' in i).map((i) => i.$live as Record<string, any>);
    assert.deepEqual(updated.find((i) => i.id === 'a')?.changes, { updated: [{ pk: 'w1a', score: 7 }] });
    assert.deepEqual(updated.find((i) => i.id === 'g')?.changes, { groups: { k: { n: 1, total: 7, lo: 7, hi: 7, mean: 7 } } });
    mutate(s, 3, { op: 'delete', pk: 'w1a' });
    const deleted = (await untilReply(s, 3)).flat().filter((i) => '$live' in i).map((i) => i.$live as Record<string, any>);
    assert.deepEqual(deleted.find((i) => i.id === 'a')?.changes, { deleted: ['w1a'] });
    assert.deepEqual(deleted.find((i) => i.id === 'g')?.changes, { groups: { k: null } });
    // Refusals: an unknown name, bad arguments, a duplicate id, a malformed frame.
    s.send({ $live: { id: 'x', name: 'Nope' } });
    assert.deepEqual((await liveItems(s))[0], { id: 'x', error: { code: 'UNKNOWN_LIVE_QUERY', message: 'No live query [Nope]' } });
    s.send({ $live: { id: 'y', name: 'ByOwner', args: { owner: 5 } } });
    const bad = (await liveItems(s))[0]!;
    assert.equal(bad.error.code, 'BAD_ARGUMENTS');
    s.send({ $live: { id: 'a', name: 'ByOwner', args: { owner: 'z' } } });
    assert.equal((await liveItems(s))[0]!.error.code, 'PROTOCOL');
    s.send({ $live: { name: 'ByOwner' } });
    const [malformed] = (await s.next()) as Item[];
    assert.equal(malformed?.code, 'PROTOCOL');
  });

  it('keeps a top-k correct: a row that falls out leaves, the next one enters', async () => {
    const s = await raw('ann');
    for (const [i, score] of [10, 20, 30].entries()) {
      mutate(s, 10 + i, { op: 'insert', pk: `t${i}`, owner: 'tk', kind: 'top', score });
      await untilReply(s, 10 + i);
    }
    s.send({ $live: { id: 't', name: 'TopScores', args: { kind: 'top', limit: 2 } } });
    const [init] = await liveItems(s);
    assert.deepEqual(init!.rows.map((r: Item) => r.pk), ['t2', 't1']);
    mutate(s, 20, { op: 'delete', pk: 't2' });
    const change = (await untilReply(s, 20)).flat().find((i) => '$live' in i)!.$live as Record<string, any>;
    assert.deepEqual(change.changes.deleted, ['t2']);
    assert.deepEqual(change.changes.inserted.map((r: Item) => r.pk), ['t0']);
  });

  it('authorization lives in the query: a refused subscription gets the query\'s own code', async () => {
    const bob = createClient<App>({ url: srv.url, WebSocket, headers: { As: { name: 'bob' } } });
    const admin = createClient<App>({ url: srv.url, WebSocket, headers: { As: { name: 'admin' } } });
    clients.push(bob, admin);
    const refused = bob.live('Secret');
    await assert.rejects(refused.ready, (err: Error & { code?: string }) => err.code === 'FORBIDDEN' && /only admin/.test(err.message));
    assert.equal(refused.error?.code, 'FORBIDDEN');
    const allowed = admin.live('Secret');
    await allowed.ready;
    assert.ok(Array.isArray(allowed.rows));
  });

  it('unsubscribe stops changes', async () => {
    const s = await raw('ann');
    s.send({ $live: { id: 'u', name: 'ByOwner', args: { owner: 'unsub' } } });
    await liveItems(s);
    mutate(s, 30, { op: 'insert', pk: 'u1', owner: 'unsub', kind: 'k', score: 1 });
    assert.ok((await untilReply(s, 30)).flat().some((i) => '$live' in i), 'a change while subscribed');
    s.send({ $unlive: { id: 'u' } });
    mutate(s, 31, { op: 'update', pk: 'u1', score: 2 });
    const frames = await untilReply(s, 31);
    assert.ok(!frames.flat().some((i) => '$live' in i), 'no change after $unlive');
  });

  it('read-your-writes: the reply comes after the caller\'s live query shows the write', async () => {
    const s = await raw('ann');
    s.send({ $live: { id: 'r', name: 'ByOwner', args: { owner: 'ryw' } } });
    await liveItems(s);
    for (let n = 0; n < 20; n++) {
      mutate(s, 100 + n, { op: 'insert', pk: `ryw${n}`, owner: 'ryw', kind: 'k', score: n });
      const frames = await untilReply(s, 100 + n);
      const live = frames.flat().filter((i) => '$live' in i).flatMap((i) => (i.$live as Record<string, any>).changes?.inserted ?? []);
      assert.ok(live.some((r: Item) => r.pk === `ryw${n}`), `insert ${n} was shown before its reply`);
    }
  });

  it('a connection that drops mid-update does not stall the others', async () => {
    const doomed = await raw('ann');
    doomed.send({ $live: { id: 'd', name: 'ByOwner', args: { owner: 'drop' } } });
    await liveItems(doomed);
    const writer = await raw('bob');
    const watcher = await raw('cy');
    watcher.send({ $live: { id: 'w', name: 'Stats', args: { owner: 'drop' } } });
    await liveItems(watcher);
    // The doomed connection writes too (its replies wait for its own refreshes) and vanishes.
    for (let n = 0; n < 30; n++) mutate(doomed, 200 + n, { op: 'insert', pk: `d${n}`, owner: 'drop', kind: 'k', score: 1 });
    for (let n = 0; n < 30; n++) mutate(writer, 300 + n, { op: 'insert', pk: `e${n}`, owner: 'drop', kind: 'k', score: 1 });
    doomed.ws.terminate();
    await untilReply(writer, 329);
    // The watcher converges on the final count, whatever the doomed connection managed to write.
    writer.send({ Snapshot: {}, $id: 400 });
    const [snap] = ((await untilReply(writer, 400)).at(-1) as Item[]).filter((i) => i.$id === 400);
    const count = ((snap!.Snapshot as { items: Item[] }).items).filter((i) => i.owner === 'drop').length;
    let seen = 0;
    while (seen !== count) {
      const items = await liveItems(watcher);
      const g = items.find((i) => i.id === 'w');
      seen = g?.changes?.groups?.k?.n ?? g?.groups?.k?.n ?? seen;
    }
    assert.equal(seen, count);
  });

  it('a client that stops reading while commits continue: every frame it gets later is a fresh result at the commit it names, coalesced', { timeout: 60_000 }, async () => {
    let socket: WebSocket | undefined;
    /** The `ws` class, remembering the client's socket (to stop reading from it). */
    class Spy extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        socket = this;
      }
    }
    const client = createClient<App>({ url: srv.url, WebSocket: Spy as never, headers: { As: { name: 'slow' } }, timeoutMs: 60_000 });
    clients.push(client);
    const ROWS = 10;
    const UPDATES = 1200;
    /** The model of the watched rows, and their state per commit (seq) this test made. */
    const rows = new Map<string, Item>();
    const states = new Map<number, Item[]>();
    const sorted = (): Item[] => [...rows.values()].map((r) => ({ ...r })).sort((a, b) => String(a.pk).localeCompare(String(b.pk)));
    for (let n = 0; n < ROWS; n++) {
      const row = { pk: `s${n}`, owner: 'slow', kind: 'k', score: n, label: 'x' };
      const { seq } = (await client.call('Mutate', { op: 'insert', ...row })) as unknown as { seq: number };
      rows.set(row.pk, row);
      states.set(seq, sorted());
    }
    const view = client.live('ByOwner', { owner: 'slow' });
    const version = client.live('Version');
    await Promise.all([view.ready, version.ready]);
    const failures: unknown[] = [];
    let frames = 0;
    onEachFrame([view as unknown as LiveView, version as unknown as LiveView], () => {
      frames++;
      const got = [...view.rows].map((r) => ({ ...r })).sort((a, b) => a.pk.localeCompare(b.pk));
      const seq = version.value.seq;
      try {
        assert.ok(states.has(seq), `a frame names commit ${seq}, one this test made`);
        assert.deepEqual(got, states.get(seq), `the rows at commit ${seq}`);
      } catch (err) {
        failures.push(err);
      }
    });
    const clientStates: string[] = [];
    client.onState((e) => clientStates.push(e.state));
    const writer = createClient<App>({ url: srv.url, WebSocket, headers: { As: { name: 'bob' } }, timeoutMs: 60_000 });
    clients.push(writer);
    const tcp = (socket as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    tcp.pause();
    // 1,200 commits of an 11 kB label (13 MB of changes; a frame holds at most 10 rows, 110 kB):
    // past the kernel's socket buffers (a few MB), so the server's buffer grows; refreshes wait
    // while it holds over half of maxBackpressureBytes (256 KiB), and no frame takes it over.
    for (let n = 0; n < UPDATES; n++) {
      const row: Item = { ...rows.get(`s${n % ROWS}`)!, score: 1000 + n, label: `${n}`.padEnd(11_000, 'y') };
      const { seq } = (await writer.call('Relabel', { pk: String(row.pk), label: String(row.label), score: Number(row.score) })) as unknown as { seq: number };
      rows.set(String(row.pk), row);
      states.set(seq, sorted());
    }
    const last = Math.max(...states.keys());
    tcp.resume();
    while (version.value.seq !== last) await new Promise<void>((resolve) => version.on(() => resolve()));
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    if (failures.length > 0) throw failures[0];
    assert.deepEqual(clientStates, [], 'not closed as a slow consumer: the refreshes waited for the socket to drain');
    assert.deepEqual([...view.rows].map((r) => ({ ...r })).sort((a, b) => a.pk.localeCompare(b.pk)), states.get(last));
    assert.ok(frames > 0 && frames < UPDATES / 2, `coalesced: ${frames} frames for ${UPDATES} commits`);
  });

  it('the typed client materializes rows and subscribes again after a reconnect', async () => {
    const client = createClient<App>({ url: srv.url, WebSocket, headers: { As: { name: 'ann' } }, reconnect: { baseDelayMs: 10, maxDelayMs: 50 } });
    clients.push(client);
    const view = client.live('TopScores', { kind: 'typed', limit: 2 });
    await view.ready;
    assert.equal(view.rows.length, 0);
    await client.call('Mutate', { op: 'insert', pk: 'ty1', owner: 'o', kind: 'typed', score: 3 });
    assert.deepEqual(view.rows.map((r) => r.pk), ['ty1'], 'read-your-writes through the client');
    const score: number = view.rows[0]!.score;
    assert.equal(score, 3);
    // The server drops the socket: the client reconnects, subscribes again, gets a whole result.
    const results: number[] = [];
    view.on((e) => e.type === 'result' && results.push(e.at));
    const writer = await raw('bob');
    const reopened = nextState(client, 'open');
    await client.call('Kick').catch(() => undefined); // the server closes the socket (4000)
    await reopened;
    mutate(writer, 3000, { op: 'insert', pk: 'ty2', owner: 'o', kind: 'typed', score: 9 });
    await untilReply(writer, 3000);
    while (!view.rows.some((r) => r.pk === 'ty2')) await new Promise<void>((resolve) => view.on(() => resolve()));
    assert.deepEqual(view.rows.map((r) => r.pk), ['ty2', 'ty1']);
    assert.ok(results.length >= 1, 'a whole result after the reconnect');
  });
});
