/**
 * At most once for a batch re-run one transaction per call (src/workers/execute-batch.ts,
 * src/main/dispatch-failure.ts), against a real server (once-app, 2 workers, real v1 clients):
 *
 * one batch holds, in this order, c1 `ClaimWait` (claims key K, then waits), c2 `AddNote n1`
 * (with `$key`), c3 `SpinOnRerun` and c3 `AddNote n3`. While it waits, another connection's job
 * claims K and commits, so the batch's commit breaks the unique constraint and it re-runs per
 * call: c1 fails (UNIQUE), c2's note is committed, and c3's signal now never returns: the time
 * limit aborts the job. c2's call must not run again (one note n1), c1 and c2 get the documented
 * WORKER_FAILED "saved but reply lost" error, a retry of c2's `$key` is answered with it, c3's
 * spinning call gets TIMEOUT, and c3's later AddNote (not committed) runs once. The same when the
 * re-run kills its worker (process.exit) instead.
 *
 * Making it one batch: 2 workers are held by `Hold` jobs and two more jobs wait in the pool, so
 * the dispatcher has its 4 jobs in flight and c1..c3's frames wait on the main thread, in the
 * order they were queued (a ping's pong tells that the frames before it were queued); releasing
 * one `Hold` hands them all to the next job. Threads meet over a BroadcastChannel.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BroadcastChannel } from 'node:worker_threads';
import { lostReplyMessage } from '../../src/main/dispatch-failure.js';
import { v1, type Item, type V1Socket } from '../channels/raw.js';
import { expireAfter } from '../helpers/client.js';
import { fixture, suiteApp, type TestServer } from '../helpers/server.js';

const CHANNEL = 'lexicons-test-once';
const TIME_LIMIT = 'Execution timed out after 5000 ms (limits.executionTimeoutMs)';

const channel = new BroadcastChannel(CHANNEL);
const seen = new Set<string>();
const watchers = new Set<() => void>();
channel.onmessage = (event) => {
  seen.add(String((event as MessageEvent).data));
  for (const w of [...watchers]) w();
};
after(() => channel.close());

/** Resolves once a signal posted `held:<tag>` (bounded). */
function held(tag: string, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      if (!seen.has(`held:${tag}`)) return false;
      watchers.delete(check);
      cancel();
      resolve();
      return true;
    };
    const cancel = expireAfter(timeoutMs, () => {
      watchers.delete(check);
      reject(new Error(`no held:${tag} within ${timeoutMs} ms`));
    });
    if (!check()) watchers.add(check);
  });
}

function go(tag: string): void {
  channel.postMessage(`go:${tag}`);
}

/** Once the pong is back, the server has queued every frame the socket sent before the ping. */
function queued(socket: V1Socket): Promise<void> {
  return new Promise((resolve) => {
    socket.socket.ws.once('pong', () => resolve());
    socket.socket.ws.ping();
  });
}

async function metric(srv: TestServer, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `metric ${name} missing`);
  return Number(line.split(' ')[1]);
}

/** Polls a gauge until it has `value` (bounded): the dispatcher's state has no event to wait on. */
async function gauge(srv: TestServer, name: string, value: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = NaN;
  while (Date.now() < deadline) {
    last = await metric(srv, name);
    if (last === value) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`${name} stayed ${last}, expected ${value}`);
}

const open: V1Socket[] = [];
after(() => Promise.all(open.map((s) => s.close())));
const srv = suiteApp(fixture('once-app'), { workers: 2 });

async function client(): Promise<V1Socket> {
  const socket = await v1(srv.url, {});
  open.push(socket);
  return socket;
}

/**
 * The scenario of the module comment; `hang` is the signal of c3's first frame (on the re-run:
 * an endless loop, or process.exit), `tag` keeps the runs of each scenario apart, `code` is the
 * job failure's (the server log).
 */
async function scenario(hang: 'SpinOnRerun' | 'CrashOnRerun', tag: string, code: 'TIMEOUT' | 'INTERNAL'): Promise<{ failed: Item; failure: Record<string, unknown> }> {
  const [h0, h1, f0, f1, c1, c2, c3, other] = await Promise.all(Array.from({ length: 8 }, () => client()));
  const key = `K-${tag}`;
  // Both workers held, two more jobs waiting in the pool: 4 jobs in flight (2 x workers).
  const hold0 = h0!.call('Hold', { tag: `h0-${tag}` }, 1);
  await held(`h0-${tag}`);
  const hold1 = h1!.call('Hold', { tag: `h1-${tag}` }, 1);
  await held(`h1-${tag}`);
  const inFlight = await metric(srv, 'lexicons_pool_jobs_in_flight');
  const fill0 = f0!.call('Echo', { n: 0 }, 1);
  await gauge(srv, 'lexicons_pool_jobs_in_flight', inFlight + 1);
  const fill1 = f1!.call('Echo', { n: 1 }, 1);
  await gauge(srv, 'lexicons_pool_jobs_in_flight', 4);
  // The batch's frames wait on the main thread, queued in this order.
  const claimed = c1!.call('ClaimWait', { key, tag: `batch-${tag}` }, 11);
  await queued(c1!);
  const saved = c2!.call('AddNote', { text: `n1-${tag}` }, 21, { $key: `note-${tag}` });
  await queued(c2!);
  const failed = c3!.call(hang, { tag: `hang-${tag}` }, 31);
  const later = c3!.call('AddNote', { text: `n3-${tag}` }, 32);
  await queued(c3!);
  // Releasing a worker hands the fillers and then the whole batch to it.
  go(`h0-${tag}`);
  assert.deepEqual(await hold0, { Hold: { tag: `h0-${tag}` }, $id: 1 });
  await Promise.all([fill0, fill1]);
  await held(`batch-${tag}`);
  // Meanwhile another connection claims the key on the other worker, and commits.
  const concurrent = other!.call('ClaimKey', { key }, 41);
  go(`h1-${tag}`);
  assert.deepEqual(await hold1, { Hold: { tag: `h1-${tag}` }, $id: 1 });
  assert.deepEqual(await concurrent, { ClaimKey: { key }, $id: 41 });
  // The batch resumes: its commit breaks the unique constraint, it re-runs per call and fails.
  go(`batch-${tag}`);
  const failure = await srv.waitForLog((r) => r.data.code === code && r.data.committedUnits !== undefined, 60_000);
  assert.equal(failure.data.committedUnits, 2, 'the two units before the failing one were committed');
  assert.equal(failure.data.guiltyUnit, 2);
  const lost = lostReplyMessage(failure.data.message as string);
  assert.deepEqual(await claimed, { Errors: [lost], code: 'WORKER_FAILED', $id: 11 });
  assert.deepEqual(await saved, { Errors: [lost], code: 'WORKER_FAILED', $id: 21 });
  assert.deepEqual(await later, { AddNote: { text: `n3-${tag}` }, $id: 32 }, 'the unit after the failing one ran');
  // A retry of the keyed call is answered with that error: it does not run again.
  assert.deepEqual(await c2!.call('AddNote', { text: `n1-${tag}` }, 22, { $key: `note-${tag}` }), { Errors: [lost], code: 'WORKER_FAILED', $id: 22 });
  const count = async (text: string, id: number): Promise<unknown> => (await other!.call('Count', { text, key }, id)).Count;
  assert.deepEqual(await count(`n1-${tag}`, 51), { notes: 1, claims: 1 }, 'n1 written once (not re-run), the key claimed once');
  assert.deepEqual(await count(`n3-${tag}`, 52), { notes: 1, claims: 1 }, 'the later unit ran once');
  // No reply of a re-run reached the callers.
  for (const [socket, id] of [[c1, 11], [c2, 21], [c3, 31], [c3, 32]] as const) assert.equal(socket!.items.filter((i) => i.$id === id).length, 1);
  return { failed: await failed, failure: failure.data };
}

describe('a batch re-run one transaction per call never runs a committed call twice', { timeout: 240_000 }, () => {
  it('unique violation at commit, then the re-run hits the time limit: committed calls answered as saved, not re-run', async () => {
    const { failed, failure } = await scenario('SpinOnRerun', 'spin', 'TIMEOUT');
    assert.equal(failure.code, 'TIMEOUT');
    assert.equal(failure.message, TIME_LIMIT);
    assert.deepEqual(failed, { Errors: [TIME_LIMIT], code: 'TIMEOUT', $id: 31 });
  });

  it('unique violation at commit, then the re-run kills its worker: committed calls answered as saved, not re-run', async () => {
    const { failed, failure } = await scenario('CrashOnRerun', 'crash', 'INTERNAL');
    assert.equal(failure.code, 'INTERNAL');
    assert.match(failure.message as string, /^Internal error: worker failed/);
    assert.deepEqual(failed, { Errors: [failure.message], code: 'WORKER_FAILED', $id: 31 });
  });
});
