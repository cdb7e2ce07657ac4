/**
 * The dispatcher (src/main/dispatch.ts) against a stand-in pool that holds every job until the
 * test settles it: per-connection order and one batch in flight per connection, the batch limits
 * (units per connection, units and bytes per job), the requeue of innocent units after a
 * failed job, and when a second job may start while one is in flight (the spreading policy).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode } from '../../src/errors.js';
import { decodeBatch, UNIT_FRAME, type BatchJob, type BatchResult, type JobInput, type JobResult } from '../../src/job-contract.js';
import { Dispatcher, MAX_BYTES_PER_JOB, MAX_UNITS_PER_CONN, MAX_UNITS_PER_JOB, spreadAfterMsFromEnv, type DispatcherOptions } from '../../src/main/dispatch.js';
import { createHub, type Hub } from '../../src/main/hub.js';
import type { LogStatus } from '../../src/server.js';
import { JobFailure, type JobRunner } from '../../src/main/pool.js';
import { lostReplyMessage } from '../../src/main/dispatch-failure.js';
import { SocketConnection } from '../../src/main/socket-connection.js';

interface HeldJob {
  job: Omit<BatchJob, 'slot' | 'jobId'>;
  resolve: (result: BatchResult) => void;
  reject: (err: unknown) => void;
}

/** Holds every job; `next()` resolves with the next job the dispatcher sends. */
class HoldingPool implements JobRunner {
  readonly #jobs: HeldJob[] = [];
  readonly #waiters: Array<(job: HeldJob) => void> = [];

  /** Called as each job is handed over (what the dispatcher's state is at that moment). */
  onRun: (() => void) | undefined;

  run<R extends JobResult>(input: JobInput): Promise<R> {
    this.onRun?.();
    return new Promise<R>((resolve, reject) => {
      const held: HeldJob = { job: input as Omit<BatchJob, 'slot' | 'jobId'>, resolve: resolve as (r: BatchResult) => void, reject };
      const waiter = this.#waiters.shift();
      if (waiter) waiter(held);
      else this.#jobs.push(held);
    });
  }

  next(): Promise<HeldJob> {
    const job = this.#jobs.shift();
    if (job) return Promise.resolve(job);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  get waiting(): number {
    return this.#jobs.length;
  }
}

const done = (calls: number): BatchResult => ({ effects: [], logs: [], stats: { calls, errors: 0, attempts: 1 } });

/** Default `spreadAfterMs: 0`: every in-flight slot is used at once (the tests of batching and order); the policy's tests pass their own. */
function setUp(options: DispatcherOptions = { spreadAfterMs: 0 }, workers = 1): { hub: Hub; pool: HoldingPool; dispatcher: Dispatcher; logs: Array<{ status: LogStatus; data: Record<string, unknown> }> } {
  const logs: Array<{ status: LogStatus; data: Record<string, unknown> }> = [];
  const hub = createHub([], (status, data) => logs.push({ status, data }));
  const pool = new HoldingPool();
  return { hub, pool, dispatcher: new Dispatcher(hub, pool, workers, options), logs };
}

/** Lets the dispatcher's scheduled flushes (setImmediate) run. */
async function turns(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

function connection(hub: Hub): SocketConnection {
  const conn = new SocketConnection('127.0.0.1', 1000);
  conn.admitted = true;
  hub.connections.set(conn.id, conn);
  return conn;
}

function enqueueFrames(dispatcher: Dispatcher, conn: SocketConnection, ...texts: string[]): void {
  for (const text of texts) dispatcher.enqueue(conn, { kind: UNIT_FRAME, text });
}

/** The frames of a job as `connectionId:text`, in unit order. */
function frames(held: HeldJob): string[] {
  return decodeBatch(held.job).map(({ connectionIndex, unit }) => `${held.job.connections[connectionIndex]!.id}:${unit.kind === UNIT_FRAME ? unit.text : unit.kind}`);
}

describe('Dispatcher', () => {
  it("packs the queued units of many connections into one job, each connection's in the order sent", async () => {
    const { hub, pool, dispatcher } = setUp();
    const a = connection(hub);
    const b = connection(hub);
    enqueueFrames(dispatcher, a, 'a1');
    enqueueFrames(dispatcher, b, 'b1');
    enqueueFrames(dispatcher, a, 'a2');
    const first = await pool.next();
    assert.deepEqual(frames(first), [`${a.id}:a1`, `${a.id}:a2`, `${b.id}:b1`]);
    assert.deepEqual(
      first.job.connections.map((c) => c.id),
      [a.id, b.id],
    );
    first.resolve(done(3));
    await dispatcher.whenIdle();
    assert.equal(hub.metrics.batchesTotal, 1);
    assert.equal(hub.metrics.signalsTotal, 3);
  });

  it('keeps one batch in flight per connection: later units wait for the next job', async () => {
    const { hub, pool, dispatcher } = setUp();
    const a = connection(hub);
    const b = connection(hub);
    enqueueFrames(dispatcher, a, 'a1');
    const first = await pool.next();
    enqueueFrames(dispatcher, a, 'a2');
    enqueueFrames(dispatcher, b, 'b1');
    // b is free: it goes at once (up to 2 jobs in flight for 1 worker); a2 waits for a1's job.
    const second = await pool.next();
    assert.deepEqual(frames(second), [`${b.id}:b1`]);
    assert.equal(a.busy, true);
    assert.equal(dispatcher.queued, 0, 'a busy connection is not ready: its unit is not counted as queued for a job');
    assert.equal(a.queue.length, 1);
    first.resolve(done(1));
    const third = await pool.next();
    assert.deepEqual(frames(third), [`${a.id}:a2`]);
    second.resolve(done(1));
    third.resolve(done(1));
    await dispatcher.whenIdle();
    assert.equal(dispatcher.inFlight, 0);
  });

  it("hands the next job over when a result arrives, before that result's effects are applied", async () => {
    const { hub, pool, dispatcher } = setUp();
    const a = connection(hub);
    const b = connection(hub);
    const c = connection(hub);
    enqueueFrames(dispatcher, a, 'a1');
    const first = await pool.next();
    enqueueFrames(dispatcher, b, 'b1');
    const second = await pool.next();
    enqueueFrames(dispatcher, c, 'c1'); // 2 jobs in flight (1 worker): c1 waits for a result
    enqueueFrames(dispatcher, a, 'a2'); // a's next unit waits for a1's effects
    const busyAtHandOver: boolean[] = [];
    pool.onRun = () => busyAtHandOver.push(a.busy);
    first.resolve(done(1));
    const third = await pool.next();
    assert.deepEqual(frames(third), [`${c.id}:c1`]);
    // a was still busy: a1's effects were not applied yet (they are applied right after, and a
    // is released then), so the worker's next run overlaps the fan-out instead of following it.
    assert.deepEqual(busyAtHandOver, [true]);
    second.resolve(done(1));
    const fourth = await pool.next();
    assert.deepEqual(frames(fourth), [`${a.id}:a2`]);
    third.resolve(done(1));
    fourth.resolve(done(1));
    await dispatcher.whenIdle();
    assert.equal(dispatcher.inFlight, 0);
  });

  it('takes at most MAX_UNITS_PER_CONN units of one connection and MAX_UNITS_PER_JOB units per job', async () => {
    const { hub, pool, dispatcher } = setUp();
    const conns = Array.from({ length: MAX_UNITS_PER_JOB / MAX_UNITS_PER_CONN + 1 }, () => connection(hub));
    for (const conn of conns) for (let i = 0; i < MAX_UNITS_PER_CONN + 3; i++) dispatcher.enqueue(conn, { kind: UNIT_FRAME, text: `${i}` });
    const first = await pool.next();
    assert.equal(first.job.unitHeads.length, MAX_UNITS_PER_JOB);
    assert.equal(first.job.connections.length, MAX_UNITS_PER_JOB / MAX_UNITS_PER_CONN);
    const second = await pool.next();
    assert.deepEqual(frames(second), Array.from({ length: MAX_UNITS_PER_CONN }, (_, i) => `${conns.at(-1)!.id}:${i}`));
    first.resolve(done(0));
    second.resolve(done(0));
    // The 3 units left of every connection follow, in order.
    const rest: string[] = [];
    while (rest.length < conns.length * 3) {
      const held = await pool.next();
      rest.push(...frames(held));
      held.resolve(done(0));
    }
    for (const conn of conns) assert.deepEqual(rest.filter((f) => f.startsWith(conn.id)), [32, 33, 34].map((i) => `${conn.id}:${i}`));
    await dispatcher.whenIdle();
  });

  it('stops filling a job at MAX_BYTES_PER_JOB of frame text (a first frame always goes)', async () => {
    const { hub, pool, dispatcher } = setUp();
    const a = connection(hub);
    const big = 'x'.repeat(Math.floor(MAX_BYTES_PER_JOB * 0.4));
    for (let i = 0; i < 3; i++) dispatcher.enqueue(a, { kind: UNIT_FRAME, text: big });
    const first = await pool.next();
    assert.equal(first.job.unitHeads.length, 2);
    first.resolve(done(2));
    const second = await pool.next();
    assert.equal(second.job.unitHeads.length, 1);
    second.resolve(done(1));
    await dispatcher.whenIdle();
  });

  it('after a failed job, fails the unit that was running and puts the others back in front, in order', async () => {
    const { hub, pool, dispatcher, logs } = setUp();
    const a = connection(hub);
    const b = connection(hub);
    enqueueFrames(dispatcher, a, 'a1', 'a2');
    enqueueFrames(dispatcher, b, 'b1');
    const first = await pool.next();
    enqueueFrames(dispatcher, a, 'a3');
    first.reject(new JobFailure(ErrorCode.TIMEOUT, 'Execution timed out', 1));
    const retry = await pool.next();
    assert.deepEqual(frames(retry), [`${a.id}:a1`, `${a.id}:a3`, `${b.id}:b1`], 'a2 (unit 1) failed; a1 and b1 were put back ahead of a3');
    retry.resolve(done(3));
    await dispatcher.whenIdle();
    assert.equal(hub.metrics.timeouts, 1);
    assert.equal(hub.metrics.errorsTotal, 1);
    const failure = logs.find((l) => l.status === 'SIGNAL-ERROR');
    assert.deepEqual(failure?.data, { code: ErrorCode.TIMEOUT, message: 'Execution timed out', units: 3, guiltyUnit: 1, connection: a.id });
  });

  it('after a failed job, never re-runs the units it had committed: their callers get the lost-reply error, their keys are settled', async () => {
    const { hub, pool, dispatcher, logs } = setUp();
    const sent = new Map<SocketConnection, string[]>();
    const open = (): SocketConnection => {
      const conn = connection(hub);
      const texts: string[] = [];
      sent.set(conn, texts);
      conn.socket = { cork: (fn: () => void) => fn(), send: (text: string) => (texts.push(text), 1) } as unknown as SocketConnection['socket'];
      conn.state = 'open';
      return conn;
    };
    const [a, b, c] = [open(), open(), open()];
    const session = hub.sessions.open(b);
    const keyed = '[{"AddNote":{"text":"n"},"$id":7,"$key":"k1"}]';
    assert.deepEqual(hub.sessions.filter(b, keyed), { text: keyed, keys: ['k1'] });
    dispatcher.enqueue(a, { kind: UNIT_FRAME, text: '{"A1":{},"$id":1}' });
    dispatcher.enqueue(b, { kind: UNIT_FRAME, text: keyed, keys: ['k1'] });
    enqueueFrames(dispatcher, c, '{"Spin":{},"$id":3}', '{"C2":{},"$id":4}');
    const first = await pool.next();
    assert.deepEqual(frames(first).map((f) => f.split(':')[0]), [a.id, b.id, c.id, c.id]);
    // Units 0 and 1 were committed (a batch re-run one transaction per call), unit 2 hung.
    first.reject(new JobFailure(ErrorCode.TIMEOUT, 'Execution timed out', 2, undefined, 2));
    const retry = await pool.next();
    assert.deepEqual(frames(retry), [`${c.id}:{"C2":{},"$id":4}`], 'only the unit after the guilty one runs again');
    retry.resolve(done(1));
    await dispatcher.whenIdle();
    const lost = lostReplyMessage('Execution timed out');
    assert.deepEqual(sent.get(a)!.map((t) => JSON.parse(t)), [[{ Errors: [lost], code: 'WORKER_FAILED', $id: 1 }]]);
    assert.deepEqual(sent.get(b)!.map((t) => JSON.parse(t)), [[{ Errors: [lost], code: 'WORKER_FAILED', $id: 7 }]]);
    assert.deepEqual(sent.get(c)!.map((t) => JSON.parse(t)), [[{ Errors: ['Execution timed out'], code: 'TIMEOUT', $id: 3 }]]);
    // A retry of the keyed call is answered with the settled outcome, not run.
    assert.equal(hub.sessions.filter(b, '[{"AddNote":{"text":"n"},"$id":8,"$key":"k1"}]'), null);
    assert.deepEqual(JSON.parse(sent.get(b)!.at(-1)!), [{ Errors: [lost], code: 'WORKER_FAILED', $id: 8 }]);
    assert.equal(session.keys.get('k1')?.outcome?.length, 1);
    assert.equal(hub.metrics.errorsTotal, 3);
    assert.equal(logs.find((l) => l.status === 'SIGNAL-ERROR')?.data.committedUnits, 2);
  });

  it('a worker that died after its job committed everything: no unit runs again, not even the last one that ran', async () => {
    const { hub, pool, dispatcher } = setUp();
    const a = connection(hub);
    enqueueFrames(dispatcher, a, 'a1', 'a2');
    const first = await pool.next();
    first.reject(new JobFailure(ErrorCode.INTERNAL, 'Internal error: worker failed (gone)', 1, undefined, 2));
    await dispatcher.whenIdle();
    assert.equal(pool.waiting, 0);
    assert.equal(a.queue.length, 0);
    assert.equal(hub.metrics.errorsTotal, 2, 'one lost-reply error per unit, none twice');
  });

  it('fails every unit of a job that failed before any unit ran (no loop on a deterministic failure)', async () => {
    const { hub, pool, dispatcher, logs } = setUp();
    const a = connection(hub);
    enqueueFrames(dispatcher, a, 'a1', 'a2');
    const first = await pool.next();
    first.reject(new Error('worker exploded'));
    await dispatcher.whenIdle();
    assert.equal(pool.waiting, 0);
    assert.equal(a.queue.length, 0);
    assert.equal(hub.metrics.workerFailures, 1);
    assert.equal(hub.metrics.errorsTotal, 2);
    assert.equal(logs.find((l) => l.status === 'WORKER-ERROR')?.data.message, 'Internal error: worker exploded');
  });

  it('forgets a closed connection once its last job settled', async () => {
    const { hub, pool, dispatcher } = setUp();
    const a = connection(hub);
    enqueueFrames(dispatcher, a, 'a1');
    const first = await pool.next();
    a.state = 'closed';
    assert.equal(hub.connections.has(a.id), true);
    first.resolve(done(1));
    await dispatcher.whenIdle();
    assert.equal(hub.connections.has(a.id), false);
  });

  it('while the job in flight is young, later units wait for its result and go together in the next job', async () => {
    const { hub, pool, dispatcher } = setUp({ spreadAfterMs: 60_000 });
    const [a, b, c] = [connection(hub), connection(hub), connection(hub)];
    enqueueFrames(dispatcher, a, 'a1');
    const first = await pool.next();
    enqueueFrames(dispatcher, b, 'b1');
    enqueueFrames(dispatcher, c, 'c1');
    await turns();
    assert.equal(pool.waiting, 0, 'no second job while the first is young');
    assert.equal(dispatcher.inFlight, 1);
    assert.equal(dispatcher.queued, 2);
    assert.equal(dispatcher.spread, false);
    first.resolve(done(1));
    const second = await pool.next();
    assert.deepEqual(frames(second), [`${b.id}:b1`, `${c.id}:c1`]);
    second.resolve(done(2));
    await dispatcher.whenIdle();
    assert.equal(hub.metrics.batchesTotal, 2);
  });

  it('once the job in flight is spreadAfterMs old, a waiting unit gets a second job (a timer: nothing else has to arrive)', async () => {
    const { hub, pool, dispatcher } = setUp({ spreadAfterMs: 20 }, 2);
    const [a, b, c] = [connection(hub), connection(hub), connection(hub)];
    enqueueFrames(dispatcher, a, 'a1');
    const first = await pool.next();
    const dispatched = performance.now();
    enqueueFrames(dispatcher, b, 'b1');
    const second = await pool.next();
    assert.ok(performance.now() - dispatched >= 19, `second job after ${performance.now() - dispatched} ms`);
    assert.deepEqual(frames(second), [`${b.id}:b1`]);
    assert.equal(dispatcher.spread, true);
    // Spread: a further unit goes at once, while both jobs are in flight (2 workers: up to 4 jobs).
    enqueueFrames(dispatcher, c, 'c1');
    const third = await pool.next();
    assert.deepEqual(frames(third), [`${c.id}:c1`]);
    // A job finishing with nothing waiting: the load fits one job at a time again.
    second.resolve(done(1));
    await turns();
    assert.equal(dispatcher.spread, false);
    first.resolve(done(1));
    third.resolve(done(1));
    await dispatcher.whenIdle();
  });

  it('more units waiting than one job takes: a second job starts at once', async () => {
    const { hub, pool, dispatcher } = setUp({ spreadAfterMs: 60_000 });
    const a = connection(hub);
    enqueueFrames(dispatcher, a, 'a1');
    const first = await pool.next();
    const conns = Array.from({ length: MAX_UNITS_PER_JOB / MAX_UNITS_PER_CONN + 1 }, () => connection(hub));
    for (const conn of conns) for (let i = 0; i < MAX_UNITS_PER_CONN; i++) dispatcher.enqueue(conn, { kind: UNIT_FRAME, text: `${i}` });
    const second = await pool.next();
    assert.equal(second.job.unitHeads.length, MAX_UNITS_PER_JOB);
    assert.equal(dispatcher.spread, true);
    first.resolve(done(1));
    second.resolve(done(0));
    const third = await pool.next();
    assert.equal(third.job.unitHeads.length, MAX_UNITS_PER_CONN);
    third.resolve(done(0));
    await dispatcher.whenIdle();
  });

  it('several jobs per worker (a cluster node): a job that re-ran halves the in-flight limit down to one per worker, clean results raise it again', async () => {
    const { hub, pool, dispatcher } = setUp({ spreadAfterMs: 0, jobsPerWorker: 4 }, 1);
    const reran: BatchResult = { effects: [], logs: [], stats: { calls: 1, errors: 0, attempts: 2 } };
    assert.equal(dispatcher.limit, 8);
    const conns = Array.from({ length: 10 }, () => connection(hub));
    /** One unit on each connection; resolves with the jobs handed over at once. */
    const round = async (): Promise<HeldJob[]> => {
      for (const conn of conns) enqueueFrames(dispatcher, conn, 'x');
      await turns();
      const held: HeldJob[] = [];
      while (pool.waiting > 0) held.push(await pool.next());
      return held;
    };
    const settle = async (jobs: HeldJob[], result: BatchResult): Promise<void> => {
      for (const job of jobs) job.resolve(result);
      await dispatcher.whenIdle();
    };
    await settle(await round(), reran);
    assert.equal(dispatcher.limit, 4, 'halved');
    await settle(await round(), reran);
    assert.equal(dispatcher.limit, 2);
    await settle(await round(), reran);
    await settle(await round(), reran);
    assert.equal(dispatcher.limit, 1, 'one job per worker at least');
    // At the floor, while a job is in flight, nothing else goes: units wait for its result.
    enqueueFrames(dispatcher, conns[0]!, 'y');
    const only = await pool.next();
    enqueueFrames(dispatcher, conns[1]!, 'z');
    await turns();
    assert.equal(pool.waiting, 0, 'a second job waits while one is in flight at limit 1');
    only.resolve(done(1)); // clean: 1 + 1/1
    const next = await pool.next(); // z goes once the result came
    assert.equal(dispatcher.limit, 2);
    await settle([next], done(1));
    for (let i = 0; i < 40; i++) await settle(await round(), done(1));
    assert.equal(dispatcher.limit, 8, 'back to the full limit');
  });

  it('one job per worker (a single node): the in-flight limit does not adapt', async () => {
    const { hub, pool, dispatcher } = setUp({ spreadAfterMs: 0 }, 1);
    const a = connection(hub);
    enqueueFrames(dispatcher, a, 'a1');
    (await pool.next()).resolve({ effects: [], logs: [], stats: { calls: 1, errors: 0, attempts: 3 } });
    await dispatcher.whenIdle();
    assert.equal(dispatcher.limit, 2);
  });

  it('LEXICONS_SPREAD_AFTER_MS: milliseconds >= 0, a clear error otherwise', () => {
    assert.equal(spreadAfterMsFromEnv({}), undefined);
    assert.equal(spreadAfterMsFromEnv({ LEXICONS_SPREAD_AFTER_MS: '0' }), 0);
    assert.equal(spreadAfterMsFromEnv({ LEXICONS_SPREAD_AFTER_MS: '2.5' }), 2.5);
    for (const bad of ['-1', 'abc', '1e3', 'Infinity']) {
      assert.throws(() => spreadAfterMsFromEnv({ LEXICONS_SPREAD_AFTER_MS: bad }), { message: `LEXICONS_SPREAD_AFTER_MS must be a number of milliseconds >= 0, got ${JSON.stringify(bad)}` });
    }
  });
});
