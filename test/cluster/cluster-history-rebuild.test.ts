/**
 * Cluster mode: a node whose data folder has damaged channel history (publication rows deleted
 * by hand while it was stopped) does not repair it locally (new epochs no other node has: it
 * would no longer be a replica, and clients recovering there would start over) but rebuilds the
 * folder from the cluster: the old files go to `replaced-by-rejoin/`, then the stream is read
 * from its start (not trimmed) or the published snapshot installed (trimmed). Either way its
 * channel rows (epoch, offsets) are node 1's, a client recovers there from a position it got
 * on node 1 without a reset, and a restart on the intact folder does not rebuild it again.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { TestClient } from '../helpers/client.js';
import { RedisServer, redisSkip } from '../../bench/loadgen/redis-server.js';
import { drive, Node, waitFor, type NodeOptions } from './cluster-harness.js';

const CHANNELS = 'lexicons_channel.csv';
const PUBLICATIONS = 'lexicons_publication.csv';

/** `n` chat items to Room through `url`, acknowledged. */
async function say(url: string, from: string, n: number): Promise<void> {
  await using client = await TestClient.connect(url);
  const calls = Array.from({ length: n }, (_, seq) => ({ Say: { channel: 'Room', from, seq } }));
  assert.deepEqual(await drive(client, calls, 8, 60_000), { acknowledged: n, failed: [] });
}

/** A lexicons.v1 client joined to Room (from `position` when given): its `$subscribed` head and the chat offsets it received after. */
async function joinRoom(url: string, position?: { epoch: string; offset: number }, until?: number): Promise<{ head: Record<string, unknown>; offsets: number[] }> {
  await using client = await TestClient.connect(url, { protocols: 'lexicons.v1' });
  client.send({ $connect: position === undefined ? {} : { positions: { Room: position } } });
  const [connected] = (await client.next(15_000)) as [Record<string, unknown>];
  assert.ok(connected.$connected !== undefined, JSON.stringify(connected));
  client.send({ Join: { channel: 'Room' } });
  const items = (): Array<Record<string, unknown>> => client.received.flatMap((f) => (Array.isArray(f) ? (f as Array<Record<string, unknown>>) : []));
  await waitFor('the $subscribed head', async () => items().some((i) => i.$subscribed !== undefined), 15_000);
  if (until !== undefined) await waitFor(`Room offset ${until}`, async () => items().some((i) => (i.$off as Record<string, number> | undefined)?.Room === until), 15_000);
  const head = items().find((i) => i.$subscribed !== undefined)!.$subscribed as Record<string, unknown>;
  const offsets = items().flatMap((i) => ((i.$off as Record<string, number> | undefined)?.Room === undefined ? [] : [(i.$off as Record<string, number>).Room!]));
  return { head, offsets };
}

/** Deletes the row of Room's offset `offset` from the folder's publication CSV file (the node is stopped). */
async function deletePublication(dir: string, offset: number): Promise<void> {
  const file = join(dir, PUBLICATIONS);
  const lines = (await readFile(file, 'utf8')).split('\n'); // JSON texts hold no raw newline
  const kept = lines.filter((l) => !l.startsWith(`${offset}@Room,`));
  assert.equal(kept.length, lines.length - 1, `offset ${offset} of Room is in ${file}`);
  await writeFile(file, kept.join('\n'));
}

/** A CSV file's lines, sorted (the rows, whatever their order). */
async function rowsOf(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').sort();
}

/**
 * The scenario on a running 2-node cluster, n2 stopped and its Room history damaged: n1 writes
 * on, n2 restarts and rebuilds; `how` is the log line's end saying where the rebuild came from.
 */
async function damagedNodeRebuilds(n1: Node, n2: Node, how: RegExp): Promise<void> {
  await n2.stop(); // the shutdown's snapshot writes the CSV files
  await deletePublication(n2.data.path, 3);
  await say(n1.url, 'later', 5);
  await n2.start();
  const output = n2.server!.output();
  assert.match(output, /channel history damaged in the data folder \(Room\): rebuilt the folder from the cluster/);
  assert.match(output, how);
  // The old files are kept aside, the damaged CSV file among them.
  const aside = await readFile(join(n2.data.path, 'replaced-by-rejoin', PUBLICATIONS), 'utf8');
  assert.ok(aside.includes('4@Room,') && !aside.includes('\n3@Room,'), 'the damaged publication file is in replaced-by-rejoin/');

  const top = (await joinRoom(n1.url)).head;
  const there = (await joinRoom(n2.url)).head;
  assert.deepEqual([there.epoch, there.offset], [top.epoch, top.offset], "n2's Room position is n1's");
  // A client that got (epoch, 2) on n1 recovers on n2: offsets 3.. top, no reset.
  const end = top.offset as number;
  const recovered = await joinRoom(n2.url, { epoch: top.epoch as string, offset: 2 }, end);
  assert.equal(recovered.head.recovered, true, JSON.stringify(recovered.head));
  assert.equal(recovered.head.epoch, top.epoch);
  assert.deepEqual(recovered.offsets, Array.from({ length: end - 2 }, (_, i) => 3 + i));

  // An intact folder is not rebuilt: n2 killed and restarted on it reopens it as it is.
  await n2.kill();
  await n2.start();
  assert.doesNotMatch(n2.server!.output(), /channel history damaged/);
  const reopened = (await joinRoom(n2.url)).head;
  assert.deepEqual([reopened.epoch, reopened.offset], [top.epoch, top.offset]);

  // Both stopped: the history tables' rows are the same on both (epochs, offsets, items).
  await n1.stop();
  await n2.stop();
  for (const file of [CHANNELS, PUBLICATIONS]) assert.deepEqual(await rowsOf(join(n2.data.path, file)), await rowsOf(join(n1.data.path, file)), file);
}

describe('cluster mode: a node with damaged channel history rebuilds its folder from the cluster', { skip: redisSkip }, () => {
  it('stream not trimmed: the folder is emptied and the stream read from its start', async () => {
    await using redis = await RedisServer.start();
    await using n1 = await Node.start('h1', redis.url);
    await using n2 = await Node.start('h2', redis.url);
    await say(n1.url, 'first', 10);
    await damagedNodeRebuilds(n1, n2, /reading the commit stream from its start/);
  });

  it('stream trimmed: the published snapshot is installed, then the stream read from it', async () => {
    const W = 20;
    const options: NodeOptions = { args: ['--snapshot-seconds', '0.3'], env: { LEXICONS_CLUSTER_WINDOW: String(W), LEXICONS_CLUSTER_GONE_SECONDS: '60' } };
    await using redis = await RedisServer.start();
    const r = new Redis(redis.url);
    try {
      await using n1 = await Node.start('s1', redis.url, options);
      await using n2 = await Node.start('s2', redis.url, options);
      await say(n1.url, 'first', 120);
      await waitFor('the commit stream trimmed', async () => {
        const [entry] = (await r.xrange('lexicons:commits', '-', '+', 'COUNT', 1)) as Array<[string, string[]]>;
        return entry !== undefined && Number(entry[0].split('-')[1]) > 1;
      }, 30_000);
      await damagedNodeRebuilds(n1, n2, /installed the published snapshot \(record \d+, from s[12]\)/);
    } finally {
      r.disconnect();
    }
  });
});
