/**
 * The main thread's ordered, idempotent shutdown (src/main/shutdown.ts) and the Task scheduling
 * around it (src/main/task-scheduler.ts), with a stand-in pool that answers Task jobs at once:
 * the steps run once in their fixed order, a second stop joins the first, open connections get
 * 1001, pending upgrades 503, and the startup/shutdown Tasks run by priority.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HttpResponse, WebSocket } from 'uWebSockets.js';
import { Task, type TaskContext } from '../../src/components.js';
import type { JobInput, JobResult, TaskResult } from '../../src/job-contract.js';
import { Dispatcher } from '../../src/main/dispatch.js';
import { createHub } from '../../src/main/hub.js';
import type { JobRunner } from '../../src/main/pool.js';
import { Shutdown, stopOnRequest } from '../../src/main/shutdown.js';
import { SocketConnection, type SocketUserData } from '../../src/main/socket-connection.js';
import { describeTasks, TaskScheduler } from '../../src/main/task-scheduler.js';

class Late extends Task.Shutdown {
  override priority = 5;
  execute(_: TaskContext) {}
}
class First extends Task.Shutdown {
  override priority = 0;
  execute(_: TaskContext) {}
}
class Tie extends Task.Shutdown {
  execute(_: TaskContext) {}
}
class Boot extends Task.Startup {
  execute(_: TaskContext) {}
}

/** Answers every Task job at once (a `Tie` job fails), recording the names in order. */
class ImmediatePool implements JobRunner {
  readonly names: string[] = [];
  async run<R extends JobResult>(input: JobInput): Promise<R> {
    if (input.kind !== 'task') throw new Error(`unexpected ${input.kind} job`);
    this.names.push(input.name);
    if (input.name === 'Tie') throw new Error('tie failed');
    return { ok: true, next: undefined, effects: [], logs: [], stats: { calls: 0, errors: 0, attempts: 1 } } satisfies TaskResult as unknown as R;
  }
}

describe('TaskScheduler', () => {
  it('runs startup and shutdown Tasks by ascending priority, declaration order on ties; a failure is logged, not thrown', async () => {
    const pool = new ImmediatePool();
    const logs: string[] = [];
    const scheduler = new TaskScheduler(pool, describeTasks([Late, Tie, Boot, First]), () => undefined, (status, data) => logs.push(`${status} ${String(data.task)}`));
    assert.deepEqual(
      scheduler.ordered('shutdown').map((t) => t.name),
      ['Tie', 'First', 'Late'],
    );
    await scheduler.runPhase('startup');
    await scheduler.runPhase('shutdown');
    assert.deepEqual(pool.names, ['Boot', 'Tie', 'First', 'Late']);
    assert.deepEqual(logs, ['TASK-ERROR Tie']);
  });
});

describe('Shutdown', () => {
  it('runs its steps once, in order; closes open connections (1001) and answers pending upgrades (503)', async () => {
    const steps: string[] = [];
    const hub = createHub([], (status, data) => steps.push(`log ${status} ${String(data.phase)}`));
    const pool = new ImmediatePool();
    const open = new SocketConnection('127.0.0.1', 10);
    open.state = 'open';
    open.socket = { end: (code: number) => steps.push(`end ${code}`) } as unknown as WebSocket<SocketUserData>;
    const upgrading = new SocketConnection('127.0.0.1', 10);
    const res = { cork: (fn: () => void) => fn(), writeStatus: (s: string) => ({ end: () => steps.push(`http ${s}`) }) };
    upgrading.upgrade = { res: res as unknown as HttpResponse, key: '', protocol: '', extensions: '', context: {} as never, aborted: false };
    hub.connections.set(open.id, open).set(upgrading.id, upgrading);
    const shutdown = new Shutdown({
      hub,
      dispatcher: new Dispatcher(hub, pool, 1),
      scheduler: new TaskScheduler(pool, describeTasks([First]), () => undefined, () => undefined),
      stopListening: () => steps.push('stopListening'),
      runShutdownHook: async () => {
        steps.push('onShutdown');
      },
      closePool: async () => {
        steps.push('closePool');
      },
      save: async () => {
        steps.push('save');
        return { saved: {} };
      },
    });
    const { stop, closed } = stopOnRequest(shutdown, hub.log, false);
    const first = stop('test');
    const second = stop('again');
    await Promise.all([first, second, closed]);
    assert.deepEqual(steps, [
      'log SHUTDOWN begin',
      'stopListening',
      'log SHUTDOWN already-running',
      'end 1001',
      'http 503 Service Unavailable',
      'onShutdown',
      'closePool',
      'save',
      'log SHUTDOWN done',
    ]);
    assert.deepEqual(pool.names, ['First']);
    assert.equal(upgrading.state, 'closed');
  });
});
