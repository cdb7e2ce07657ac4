/**
 * Issue #14, cluster mode under failures: a node killed with SIGKILL during writes restarts on
 * its data folder, catches up from the commit stream and loses nothing acknowledged; the clients
 * of a node killed during a chat reconnect to another node and recover the channel's history
 * there (offsets the same on every node: no gap, no duplicate, per-sender order); Redis
 * (AOF, appendfsync always) restarted during writes loses nothing acknowledged, writes fail with
 * `Not saved: cluster: ...` meanwhile, and every node receives again afterwards (socket.io#4845).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient } from '../helpers/client.js';
import { RedisServer, redisSkip } from '../../bench/loadgen/redis-server.js';
import { agreedState, drive, Node, waitFor } from './cluster-harness.js';

interface ChatItem {
  off: number;
  from: string;
  seq: number;
}

/** The Room chat items of `frames` (a v1 client's), with their offsets; `$subscribed` heads in `heads`. */
function chatItems(frames: readonly unknown[], heads: Array<Record<string, unknown>> = []): ChatItem[] {
  const items: ChatItem[] = [];
  for (const frame of frames) {
    if (!Array.isArray(frame)) continue;
    for (const item of frame as Array<Record<string, unknown>>) {
      if (item.$subscribed !== undefined) heads.push(item.$subscribed as Record<string, unknown>);
      const chat = item.Chat as { from: string; seq: number } | undefined;
      const off = (item.$off as Record<string, number> | undefined)?.Room;
      if (chat !== undefined && off !== undefined) items.push({ off, from: chat.from, seq: chat.seq });
    }
  }
  return items;
}

/** A lexicons.v1 client admitted (with `positions` to recover from) and joined to Room. */
async function roomClient(url: string, positions?: Record<string, { epoch: string; offset: number }>): Promise<TestClient> {
  const client = await TestClient.connect(url, { protocols: 'lexicons.v1' });
  client.send({ $connect: positions === undefined ? {} : { positions } });
  const [connected] = (await client.next(15_000)) as [Record<string, unknown>];
  assert.ok(connected.$connected !== undefined, JSON.stringify(connected));
  client.send({ Join: { channel: 'Room' } });
  return client;
}

/** A client incrementing `key` one call at a time until stopped or its connection closes. */
class Writer {
  acknowledged = 0;
  failed: string[] = [];
  stopped = false;
  readonly done: Promise<void>;
  readonly #milestones: Array<{ at: () => boolean; resolve: () => void }> = [];

  constructor(url: string, key: string) {
    this.done = this.#run(url, key);
  }

  async #run(url: string, key: string): Promise<void> {
    const client = await TestClient.connect(url);
    const closed = client.closed.then(() => null);
    try {
      while (!this.stopped) {
        const frame = (await Promise.race([client.call({ Increment: { key } }, 20_000), closed])) as Array<Record<string, unknown>> | null;
        if (frame === null) break; // the node died: what was acknowledged so far counts
        if (frame[0]?.Errors !== undefined) {
          this.failed.push(JSON.stringify(frame[0].Errors));
          await new Promise((resolve) => setTimeout(resolve, 20)); // Redis is away: do not spin
        } else this.acknowledged++;
        for (const m of [...this.#milestones]) {
          if (!m.at()) continue;
          this.#milestones.splice(this.#milestones.indexOf(m), 1);
          m.resolve();
        }
      }
    } finally {
      await client.close().catch(() => undefined);
    }
  }

  /** Resolves once `at()` holds after a reply. */
  until(at: () => boolean): Promise<void> {
    if (at()) return Promise.resolve();
    return new Promise((resolve) => this.#milestones.push({ at, resolve }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

describe('cluster mode under failures (issue #14)', { skip: redisSkip }, () => {
  it('kill -9 of a node during writes: it restarts, catches up, nothing acknowledged is lost', async () => {
    await using redis = await RedisServer.start();
    await using n1 = await Node.start('k1', redis.url);
    await using n2 = await Node.start('k2', redis.url);
    await using n3 = await Node.start('k3', redis.url);
    const writers = [new Writer(n1.url, 'w1'), new Writer(n2.url, 'w2'), new Writer(n3.url, 'w3')];
    await writers[2]!.until(() => writers[2]!.acknowledged >= 50);
    await n3.kill();
    await writers[2]!.done;
    const before3 = writers[2]!.acknowledged;
    // The others go on writing while k3 is down, then k3 comes back on its folder.
    const [a1, a2] = [writers[0]!.acknowledged, writers[1]!.acknowledged];
    await Promise.all([writers[0]!.until(() => writers[0]!.acknowledged >= a1 + 50), writers[1]!.until(() => writers[1]!.acknowledged >= a2 + 50)]);
    await n3.start();
    const again = new Writer(n3.url, 'w3');
    await again.until(() => again.acknowledged >= 20);
    await Promise.all([...writers, again].map((w) => w.stop()));
    const state = await agreedState([n1.url, n2.url, n3.url]);
    assert.equal(state.counters.w1, writers[0]!.acknowledged);
    assert.equal(state.counters.w2, writers[1]!.acknowledged);
    // One call may have been in flight at the kill: applied, never acknowledged.
    const w3 = state.counters.w3 ?? 0;
    assert.ok(w3 >= before3 + again.acknowledged && w3 <= before3 + again.acknowledged + 1, `w3 = ${w3}, acknowledged ${before3} + ${again.acknowledged}`);
    for (const w of [...writers, again]) assert.deepEqual(w.failed, []);
  });

  it('kill -9 of a node during a chat: its client reconnects to another node and recovers the history there', async () => {
    await using redis = await RedisServer.start();
    await using n1 = await Node.start('c1', redis.url);
    await using n2 = await Node.start('c2', redis.url);
    await using n3 = await Node.start('c3', redis.url);
    // One item first: the channel has its epoch before the clients join.
    await using first = await TestClient.connect(n1.url);
    assert.deepEqual(await first.call({ Say: { channel: 'Room', from: 'first', seq: 0 } }, 15_000), [{ Said: { seq: 0 } }]);
    const victim = await roomClient(n3.url);
    const control = await roomClient(n2.url);
    const heads: Array<Record<string, unknown>> = [];
    await waitFor('both joined', async () => [victim, control].every((c) => c.received.some((f) => JSON.stringify(f).includes('"$subscribed"'))), 15_000);
    chatItems(victim.received, heads);
    const { epoch, offset: joined } = heads[0] as { epoch: string; offset: number };
    assert.notEqual(epoch, '');
    const M = 250;
    const senders = await Promise.all([n1.url, n2.url].map((url) => TestClient.connect(url)));
    const sending = Promise.all(senders.map((client, s) => drive(client, Array.from({ length: M }, (_, seq) => ({ Say: { channel: 'Room', from: `s${s}`, seq } })), 4, 60_000)));
    await waitFor('the victim saw 100 items', async () => chatItems(victim.received).length >= 100, 60_000);
    await n3.kill();
    const ackedAtKill = senders.reduce((n, c) => n + c.received.length, 0);
    assert.ok(ackedAtKill < 2 * M, `killed during the writes (${ackedAtKill} of ${2 * M} acknowledged)`);
    await victim.closed;
    const before = chatItems(victim.received);
    const last = before[before.length - 1]!;
    const seenBefore = chatItems(control.received).length;
    console.log(`cluster kill -9 chat: killed c3 at ${ackedAtKill}/${2 * M} sends acknowledged, ${before.length} items seen there`);
    await waitFor('the chat goes on without c3', async () => chatItems(control.received).length >= Math.min(seenBefore + 50, 2 * M), 60_000);
    // The victim's client reconnects to c1 with its last position: the items it missed come in the
    // $subscribed frame (recovered from c1's replica), then the rest live.
    const again = await roomClient(n1.url, { Room: { epoch, offset: last.off } });
    for (const outcome of await sending) assert.deepEqual(outcome, { acknowledged: M, failed: [] });
    const end = joined + 2 * M;
    await waitFor('the victim reached the end on c1', async () => chatItems(again.received).at(-1)?.off === end, 60_000);
    await waitFor('the control reached the end on c2', async () => chatItems(control.received).at(-1)?.off === end, 60_000);
    const recovered: Array<Record<string, unknown>> = [];
    const after = chatItems(again.received, recovered);
    assert.equal(recovered[0]?.recovered, true, `recovered on c1: ${JSON.stringify(recovered[0])}`);
    assert.equal(recovered[0]?.epoch, epoch, 'the same epoch on every node');
    const victimItems = [...before, ...after];
    const controlItems = chatItems(control.received);
    const offsets = Array.from({ length: 2 * M }, (_, i) => joined + 1 + i);
    assert.deepEqual(victimItems.map((i) => i.off), offsets, 'the victim: every offset once, in order, across the two nodes');
    assert.deepEqual(controlItems.map((i) => i.off), offsets, 'the control: every offset once, in order');
    assert.deepEqual(victimItems, controlItems, 'the same item at the same offset on c3, c1 and c2');
    for (const s of ['s0', 's1']) {
      assert.deepEqual(victimItems.filter((i) => i.from === s).map((i) => i.seq), Array.from({ length: M }, (_, i) => i), `${s}: in order`);
    }
    await Promise.all([again, control, ...senders].map((c) => c.close()));
  });

  it('Redis restarted during writes: nothing acknowledged is lost, writes fail meanwhile, every node receives again', async () => {
    await using redis = await RedisServer.start();
    await using n1 = await Node.start('r1', redis.url);
    await using n2 = await Node.start('r2', redis.url);
    const writers = [new Writer(n1.url, 'x1'), new Writer(n2.url, 'x2')];
    // A subscriber from before the restart: r2 reads Room's fan-out partition across the reconnect.
    await using early = await TestClient.connect(n2.url);
    await early.call({ Join: { channel: 'Room' } }, 15_000);
    await waitFor('r2 reads the Room partition', async () => ((await n2.health()).cluster as unknown as { fanout: { reading: number[] } }).fanout.reading.length === 1, 15_000);
    try {
      await Promise.all(writers.map((w) => w.until(() => w.acknowledged >= 50)));
      await redis.stop('SIGTERM');
      await Promise.all(writers.map((w) => w.until(() => w.failed.length >= 1)));
      await redis.start();
      const acked = writers.map((w) => w.acknowledged);
      await Promise.all(writers.map((w, i) => w.until(() => w.acknowledged >= acked[i]! + 50)));
      await Promise.all(writers.map((w) => w.stop()));
    } catch (err) {
      for (const n of [n1, n2]) console.log(`--- ${n.name}:\n${n.server?.output().split('\n').filter((l) => !/"(CONNECT|DISCONNECT|SIGNAL)"/.test(l)).slice(-40).join('\n')}`);
      throw err;
    }
    for (const w of writers) for (const f of w.failed) assert.match(f, /Not saved: cluster: (the commit stream is unreachable|no decision within)/);
    const state = await agreedState([n1.url, n2.url]);
    writers.forEach((w, i) => {
      const n = state.counters[`x${i + 1}`] ?? 0;
      // A write that failed mid-way (sent, connection lost) may still have been applied.
      assert.ok(n >= w.acknowledged && n <= w.acknowledged + w.failed.length, `x${i + 1} = ${n}: acknowledged ${w.acknowledged}, failed ${w.failed.length}`);
    });
    // Each node still receives the other's publications after the reconnect.
    const channel = 'Room';
    for (const [from, to] of [[n1, n2], [n2, n1]] as const) {
      await using listener = await TestClient.connect(to.url);
      await listener.call({ Join: { channel } });
      await using sender = await TestClient.connect(from.url);
      assert.deepEqual(await sender.call({ Say: { channel, from: from.name, seq: 1 } }), [{ Said: { seq: 1 } }]);
      const frame = JSON.stringify(await listener.next(10_000));
      assert.match(frame, new RegExp(`"Chat":\\{"from":"${from.name}","seq":1\\}`));
    }
    assert.match(JSON.stringify(await early.next(10_000)), /"Chat":\{"from":"r1","seq":1\}/, 'the subscriber from before the restart receives again');
    // A node stops gracefully even while Redis is away.
    await redis.stop('SIGTERM');
    assert.deepEqual(await n1.server!.stop('SIGTERM'), { code: 0, signal: null });
  });
});
