/**
 * A cluster node's worker runs several jobs at once (src/main/pool.ts CLUSTER_JOBS_PER_WORKER):
 * one waits for its commit record's decision while others run. Against a real node (`--workers
 * 1`, fixture cluster-once-app) on a real redis-server, whose writes a test pauses (`CLIENT PAUSE
 * WRITE`) to hold a job's record in the stream, undecided:
 *
 * - at most once: job A's record is pending when job B, on the same worker, spins past the time
 *   limit and its thread is terminated. A's record then commits: its row exists once (A's units
 *   are not run again), A's caller gets the "saved but reply lost" error (or its reply), B's
 *   caller TIMEOUT; a job that was queued on that worker and never started runs once, on the new
 *   worker, and its caller gets its reply. Without the main thread storing A's units when its
 *   record commits and the failure waiting for that decision (src/main/job-commits.ts), A's
 *   units were re-run: two rows.
 * - certification: job C reads the counter job A's pending record writes (C runs at a snapshot
 *   without it); C's record is refused as a conflict and C re-runs: the counter is exact, and the
 *   node counted re-run calls.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { RedisServer, redisSkip } from '../../bench/loadgen/redis-server.js';
import { lostReplyMessage } from '../../src/main/dispatch-failure.js';
import { v1, type V1Socket } from '../channels/raw.js';
import { Node, waitFor } from './cluster-harness.js';

const APP = fileURLToPath(new URL('../fixtures/apps/cluster-once-app.js', import.meta.url));
/** Makes a record that writes it over 1 KiB (Redis shows how many bytes wait: {@link bytesWaiting}). */
const LONG = 'x'.repeat(1100);
const TIME_LIMIT = 'Execution timed out after 2000 ms (limits.executionTimeoutMs)';

describe('cluster: several jobs per worker', { skip: redisSkip, timeout: 300_000 }, () => {
  let redis: RedisServer;
  let node: Node;
  let admin: Redis;
  const sockets: V1Socket[] = [];

  before(async () => {
    redis = await RedisServer.start();
    node = await Node.start('p1', redis.url, { app: APP });
    admin = new Redis(redis.url);
  });
  after(async () => {
    if (process.env.DEBUG_PIPELINE) console.log(node?.server?.output());
    await admin?.call('CLIENT', 'UNPAUSE').catch(() => undefined);
    admin?.disconnect();
    for (const s of sockets) await s.close();
    await node?.[Symbol.asyncDispose]();
    await redis?.[Symbol.asyncDispose]();
  });

  async function socket(): Promise<V1Socket> {
    const s = await v1(node.url, {});
    sockets.push(s);
    return s;
  }

  /** Pauses Redis for writes (bounded, in case the test fails) and waits until `count` XADDs wait in it. */
  async function pause(): Promise<void> {
    await admin.call('CLIENT', 'PAUSE', '60000', 'WRITE');
  }

  /**
   * The most bytes a Redis connection has waiting: the blocked command's arguments (`argv-mem`)
   * and the commands pipelined behind it (`qbuf`). A record of these tests is over 1 KiB; the
   * node's heartbeat (one small HSET at a time) may wait there too, never 1 KiB.
   */
  async function bytesWaiting(): Promise<number> {
    const list = String(await admin.call('CLIENT', 'LIST'));
    const field = (line: string, name: string): number => Number(new RegExp(` ${name}=(\\d+)`).exec(line)?.[1] ?? 0);
    return Math.max(0, ...list.split('\n').map((line) => field(line, 'argv-mem') + field(line, 'qbuf')));
  }

  /** Waits until one more commit record waits in Redis than when `before` bytes waited; returns the bytes then. */
  async function oneMoreRecord(before: number): Promise<number> {
    let now = 0;
    await waitFor('a further commit record waiting in Redis', async () => (now = await bytesWaiting()) >= before + 1024, 30_000);
    return now;
  }

  async function count(s: V1Socket, id: number, text: string, key: string): Promise<{ notes: number; n: number }> {
    const item = await s.call('Count', { text, key }, id, {});
    return item.Count as { notes: number; n: number };
  }

  it('a job whose record is pending when another job on its worker times out is not run again', async () => {
    const [a, b, c] = [await socket(), await socket(), await socket()];
    const once = `once${LONG}`;
    assert.ok('Noted' in (await a.call('AddNote', { text: 'warm' }, 1)));
    await pause();
    const innocent = a.call('AddNote', { text: once }, 2, {});
    await oneMoreRecord(0);
    // A's record waits in Redis; B spins on the same (only) worker, C's job queues behind it.
    const spun = b.call('Spin', {}, 3, {});
    const queued = c.call('AddNote', { text: 'queued' }, 4, {});
    assert.deepEqual(await spun.then((i) => ({ Errors: i.Errors, code: i.code })), { Errors: [TIME_LIMIT], code: 'TIMEOUT' });
    await admin.call('CLIENT', 'UNPAUSE');
    const reply = await innocent;
    if (!('Noted' in reply)) {
      assert.equal(reply.code, 'WORKER_FAILED', JSON.stringify(reply));
      assert.match(String(reply.Errors?.[0]), new RegExp(`^${lostReplyMessage('').slice(0, -2).replace(/[()]/g, '\\$&')}`));
    }
    assert.ok('Noted' in (await queued), 'the job queued behind the spinning one runs once on the new worker');
    assert.deepEqual(await count(a, 5, once, 'none'), { notes: 1, n: 0 });
    assert.deepEqual(await count(a, 6, 'queued', 'none'), { notes: 1, n: 0 });
  });

  it('a job that read what a pending record writes is refused by certification and re-runs', async () => {
    const [a, c] = [await socket(), await socket()];
    const key = `k${LONG}`;
    assert.ok('Incremented' in (await a.call('Increment', { key }, 1)));
    const rerunsBefore = await reruns();
    await pause();
    const first = a.call('Increment', { key }, 2, {});
    const waiting = await oneMoreRecord(0);
    // C runs on the same worker at a snapshot without A's write, reads the same row, and sends its record.
    const second = c.call('Increment', { key }, 3, {});
    await oneMoreRecord(waiting);
    await admin.call('CLIENT', 'UNPAUSE');
    assert.ok('Incremented' in (await first));
    assert.ok('Incremented' in (await second));
    assert.equal((await count(a, 4, 'none', key)).n, 3);
    assert.ok((await reruns()) > rerunsBefore, 'the conflicting job re-ran');
  });

  async function reruns(): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${node.server!.port}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('lexicons_txn_rerun_calls_total'));
    return Number(line?.split(' ').at(-1) ?? 0);
  }
});
