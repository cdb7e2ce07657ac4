/**
 * @module workers/execute-task
 * Runs Tasks (startup, interval, shutdown) and the server hooks onStart/onShutdown in a worker,
 * each in its own transaction (retried on conflict). A task that throws is rolled back and
 * logged; it never stops the server or the other tasks. For interval tasks the result carries
 * the next interval, re-read through `set()` (or its later name `timer()`) after every run.
 */
import { Task, type TaskClass } from '../components.js';
import { ErrorCode, LexiconsError, toLexiconsError } from '../errors.js';
import { WorkerServerHandle } from './handles.js';
import { Recorder } from './recorder.js';
import { publicMessage } from './batch-context.js';
import type { WorkerApp } from './worker-app.js';
import type { HookJob, TaskJob, TaskResult } from '../job-contract.js';
import { ProgressWriter } from './progress.js';
import { IsolatedStepper } from './steppers.js';

type TaskInstance = InstanceType<TaskClass> & { set?: () => unknown; timer?: () => unknown; interval?: number };

const instances = new Map<string, TaskInstance>();

function instanceOf(name: string, cls: TaskClass): TaskInstance {
  let instance = instances.get(name);
  if (!instance) {
    instance = new (cls as unknown as new () => TaskInstance)();
    instances.set(name, instance);
  }
  return instance;
}

/** `set()` unless the class overrides the later name `timer()`. */
function nextInterval(cls: TaskClass, instance: TaskInstance): number {
  const proto = Task.Interval.prototype as unknown as TaskInstance;
  const own = (cls.prototype as TaskInstance).timer !== proto.timer ? instance.timer : instance.set;
  const value = own?.call(instance);
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new LexiconsError(ErrorCode.EXECUTION, `interval must be a positive number of seconds, got ${JSON.stringify(value) ?? String(value)}`);
  }
  return value;
}

function failure(app: WorkerApp, recorder: Recorder, data: Record<string, unknown>, err: unknown): void {
  const e = toLexiconsError(err);
  const entry: Record<string, unknown> = { ...data, code: e.code, message: publicMessage(err) };
  if (app.debug) entry.stack = (e.cause instanceof Error ? e.cause : e).stack;
  recorder.log('TASK-ERROR', entry);
}

/** What a Task or hook job runs with: its own recorder and one transaction per step. */
function isolatedJob(app: WorkerApp, slot: number, jobId: number): { progress: ProgressWriter; recorder: Recorder; stepper: IsolatedStepper; sv: WorkerServerHandle } {
  const progress = new ProgressWriter(app.progress, slot, jobId);
  const recorder = new Recorder(app.view.forJob());
  const stepper = new IsolatedStepper(app.store, recorder, progress);
  const sv = new WorkerServerHandle(recorder, app.main);
  return { progress, recorder, stepper, sv };
}

function taskResult(ok: boolean, next: number | undefined, recorder: Recorder, stepper: IsolatedStepper): TaskResult {
  return { ok, next, effects: recorder.effects(), logs: recorder.logs, stats: { calls: 0, errors: ok ? 0 : 1, attempts: stepper.attempts } };
}

export async function runTask(app: WorkerApp, tasks: ReadonlyMap<string, TaskClass>, job: TaskJob): Promise<TaskResult> {
  const cls = tasks.get(job.name);
  if (!cls) throw new LexiconsError(ErrorCode.NOT_FOUND, `no task named ${job.name}`);
  const { progress, recorder, stepper, sv } = isolatedJob(app, job.slot, job.jobId);
  let ok = true;
  let instance: TaskInstance | undefined;
  try {
    instance = instanceOf(job.name, cls);
  } catch (err) {
    ok = false;
    failure(app, recorder, { task: job.name, phase: 'construct' }, err);
  }
  if (instance && job.run) {
    const task = instance;
    try {
      await stepper.step(undefined, async (db) => {
        progress.enter(0);
        await task.execute({ db, sv });
      });
      if (cls.kind !== 'interval') recorder.log('TASK', { task: job.name, kind: cls.kind });
    } catch (err) {
      ok = false;
      failure(app, recorder, { task: job.name, kind: cls.kind }, err);
    }
  }
  let next: number | undefined;
  if (instance && cls.kind === 'interval') {
    try {
      progress.enter(0);
      next = nextInterval(cls, instance);
    } catch (err) {
      failure(app, recorder, { task: job.name, kind: cls.kind, phase: 'set' }, err);
    } finally {
      progress.leave();
    }
  }
  return taskResult(ok, next, recorder, stepper);
}

export async function runHook(app: WorkerApp, job: HookJob): Promise<TaskResult> {
  const hook = job.hook === 'ready' ? undefined : app.server.options[job.hook];
  const { progress, recorder, stepper, sv } = isolatedJob(app, job.slot, job.jobId);
  let ok = true;
  if (hook) {
    try {
      await stepper.step(undefined, async (db) => {
        progress.enter(0);
        await hook({ db, sv });
      });
    } catch (err) {
      ok = false;
      failure(app, recorder, { hook: job.hook }, err);
    }
  }
  return taskResult(ok, undefined, recorder, stepper);
}
