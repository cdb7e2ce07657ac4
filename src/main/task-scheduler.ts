/**
 * @module main/task-scheduler
 * Scheduling of Tasks on the main thread; execution happens in the pool (workers/execute-task.ts).
 *
 * - Startup tasks run before the server accepts connections, shutdown tasks during shutdown:
 *   one at a time, ascending `priority` (0 is a real priority), declaration order on ties,
 *   async ones awaited.
 * - Interval tasks: wait the interval, run, re-read the interval (`set()` / `timer()`), repeat.
 *   A run never overlaps the previous one. A task that throws (or times out) is logged and keeps
 *   its schedule; the server and the other tasks go on.
 * - `mayRun` (cluster mode: the lease holder runs them, docs/cluster.md) can skip a run of an
 *   interval task when it is due; its schedule goes on (it runs at a later turn if it may then).
 */
import { messageOf } from '../errors.js';
import type { TaskClass, TaskKind } from '../components.js';
import { componentName } from '../components.js';
import type { TaskResult } from '../job-contract.js';
import type { LogFn } from './log.js';
import type { JobRunner } from './pool.js';

const DEFAULT_INTERVAL_SECONDS = 60;

export interface TaskInfo {
  readonly name: string;
  readonly kind: TaskKind;
  readonly priority: number;
  /** Cluster mode: an interval or startup task with `static everyNode = true` runs on every node, not only the lease holder. */
  readonly everyNode: boolean;
}

/** Reads kinds and priorities (constructing each task once on the main thread). */
export function describeTasks(classes: readonly TaskClass[]): TaskInfo[] {
  return classes.map((cls) => {
    const instance = new (cls as unknown as new () => { priority?: unknown })();
    const priority = typeof instance.priority === 'number' && Number.isFinite(instance.priority) ? instance.priority : 0;
    return { name: componentName(cls), kind: cls.kind, priority, everyNode: (cls as { everyNode?: unknown }).everyNode === true };
  });
}

export class TaskScheduler {
  readonly #pool: JobRunner;
  readonly #tasks: readonly TaskInfo[];
  readonly #onResult: (result: TaskResult) => void;
  readonly #log: LogFn;
  readonly #mayRun: (task: TaskInfo) => boolean;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #running = new Set<Promise<void>>();
  #stopped = false;

  constructor(pool: JobRunner, tasks: readonly TaskInfo[], onResult: (result: TaskResult) => void, log: LogFn, mayRun: (task: TaskInfo) => boolean = () => true) {
    this.#mayRun = mayRun;
    this.#pool = pool;
    this.#tasks = tasks;
    this.#onResult = onResult;
    this.#log = log;
  }

  ordered(kind: 'startup' | 'shutdown'): TaskInfo[] {
    return this.#tasks
      .map((t, i) => ({ t, i }))
      .filter(({ t }) => t.kind === kind)
      .sort((a, b) => a.t.priority - b.t.priority || a.i - b.i)
      .map(({ t }) => t);
  }

  /** Runs one Task in the pool; resolves to its result, or undefined when the job failed. */
  async #run(name: string, run: boolean): Promise<TaskResult | undefined> {
    try {
      const result = await this.#pool.run<TaskResult>({ kind: 'task', name, run });
      this.#onResult(result);
      return result;
    } catch (err) {
      this.#log('TASK-ERROR', { task: name, message: messageOf(err) });
      return undefined;
    }
  }

  /** Runs the startup or shutdown tasks in order (those `runs` keeps: cluster mode's lease); never throws. */
  async runPhase(kind: 'startup' | 'shutdown', runs: (task: TaskInfo) => boolean = () => true): Promise<void> {
    for (const task of this.ordered(kind)) if (runs(task)) await this.#run(task.name, true);
  }

  /** Starts every interval task's schedule (first interval read through `set()` in a worker). */
  async startIntervals(): Promise<void> {
    for (const task of this.#tasks.filter((t) => t.kind === 'interval')) {
      const first = await this.#run(task.name, false);
      this.#schedule(task, first?.next ?? DEFAULT_INTERVAL_SECONDS);
    }
  }

  #schedule(task: TaskInfo, seconds: number): void {
    if (this.#stopped) return;
    const name = task.name;
    const timer = setTimeout(() => {
      this.#timers.delete(name);
      if (!this.#mayRun(task)) return this.#schedule(task, seconds);
      const done = this.#run(name, true).then((result) => {
        this.#running.delete(done);
        this.#schedule(task, result?.next ?? seconds);
      });
      this.#running.add(done);
    }, Math.max(1, Math.round(seconds * 1000)));
    timer.unref();
    this.#timers.set(name, timer);
  }

  /** Cancels future interval runs and waits for running ones. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    while (this.#running.size > 0) await Promise.all([...this.#running]);
  }
}
