/**
 * Issue #14, cluster mode under failures: a node killed with SIGKILL during writes restarts on
 * its data folder, catches up from the commit stream and loses nothing acknowledged; Redis
 * (AOF, appendfsync always) restarted during writes loses nothing acknowledged, writes fail with
 * `Not saved: cluster: ...` meanwhile, and every node receives again afterwards (socket.io#4845).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient } from '../helpers/client.js';
import { RedisServer, redisSkip } from '../../bench/loadgen/redis-server.js';
import { agreedState, Node } from './cluster-harness.js';

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

  it('Redis restarted during writes: nothing acknowledged is lost, writes fail meanwhile, every node receives again', async () => {
    await using redis = await RedisServer.start();
    await using n1 = await Node.start('r1', redis.url);
    await using n2 = await Node.start('r2', redis.url);
    const writers = [new Writer(n1.url, 'x1'), new Writer(n2.url, 'x2')];
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
    // A node stops gracefully even while Redis is away.
    await redis.stop('SIGTERM');
    assert.deepEqual(await n1.server!.stop('SIGTERM'), { code: 0, signal: null });
  });
});
