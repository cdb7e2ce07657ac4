/**
 * @module main/shutdown
 * Graceful shutdown in a fixed order, idempotent (a second SIGINT/SIGTERM during shutdown only
 * logs; the data files are written once, atomically):
 *
 * 1. stop accepting (close the listen socket; upgrades get 503, frames an error);
 * 2. stop interval tasks, wait for running ones;
 * 3. finish queued and in-flight units;
 * 4. close every connection (1001) and run the onDisconnect hooks;
 * 5. shutdown tasks (priority order), then the onShutdown hook;
 * 6. close the worker pool;
 * 7. write the tables to CSV (atomic per file);
 * 8. close the admin port's listen socket (it answered /health, /ready and /metrics until now).
 *
 * {@link stopOnRequest} runs it on `stop()` and on SIGINT/SIGTERM.
 */
import { messageOf } from '../errors.js';
import { CloseCode } from '../protocol.js';
import type { Dispatcher } from './dispatch.js';
import type { Hub } from './hub.js';
import type { TaskScheduler } from './task-scheduler.js';
import type { LogFn } from './log.js';

export interface ShutdownSteps {
  hub: Hub;
  dispatcher: Dispatcher;
  scheduler: TaskScheduler;
  /** Refuse upgrades (503) and frames from now on, and close the listen socket. */
  stopListening: () => void;
  runShutdownHook: () => Promise<void>;
  closePool: () => Promise<void>;
  save: () => Promise<Record<string, unknown>>;
  /** Close the admin port's listen socket, if any. */
  stopAdmin?: () => void;
}

export class Shutdown {
  readonly #steps: ShutdownSteps;
  #running: Promise<void> | null = null;

  constructor(steps: ShutdownSteps) {
    this.#steps = steps;
  }

  get started(): boolean {
    return this.#running !== null;
  }

  run(reason: string): Promise<void> {
    if (this.#running) {
      this.#steps.hub.log('SHUTDOWN', { phase: 'already-running', reason, message: 'shutdown already in progress; waiting for it to finish' });
      return this.#running;
    }
    this.#running = this.#sequence(reason);
    return this.#running;
  }

  async #sequence(reason: string): Promise<void> {
    const s = this.#steps;
    const { hub } = s;
    const started = Date.now();
    hub.log('SHUTDOWN', { phase: 'begin', reason });
    s.stopListening();
    await s.scheduler.stop();
    await s.dispatcher.whenIdle();
    for (const conn of [...hub.connections.values()]) {
      if (conn.open) conn.end(CloseCode.GOING_AWAY, 'server shutting down');
      else if (conn.upgrade && !conn.upgrade.aborted) {
        const { res } = conn.upgrade;
        conn.upgrade = null;
        conn.state = 'closed';
        res.cork(() => res.writeStatus('503 Service Unavailable').end('server is shutting down', true));
      }
    }
    await s.dispatcher.whenIdle();
    await s.scheduler.runPhase('shutdown');
    await s.runShutdownHook();
    await s.closePool();
    let saved: Record<string, unknown>;
    try {
      saved = await s.save();
    } finally {
      s.stopAdmin?.();
    }
    hub.log('SHUTDOWN', { phase: 'done', reason, ms: Date.now() - started, ...saved });
  }
}

/** A running server's `stop()` and `closed`, and the SIGINT/SIGTERM handlers that call stop. */
export function stopOnRequest(shutdown: Shutdown, log: LogFn, handleSignals: boolean): { stop: (reason?: string) => Promise<void>; closed: Promise<void> } {
  let resolveClosed!: () => void;
  let rejectClosed!: (err: unknown) => void;
  const closed = new Promise<void>((res, rej) => {
    resolveClosed = res;
    rejectClosed = rej;
  });
  closed.catch(() => undefined); // the failure is logged; callers awaiting `closed` still see it
  const onSignal = (signal: NodeJS.Signals): void => {
    void stop(signal);
  };
  const stop = (reason = 'stop()'): Promise<void> => {
    const running = shutdown.run(reason);
    running.then(
      () => {
        if (handleSignals) {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
        resolveClosed();
      },
      (err: unknown) => {
        log('ERROR', { message: `shutdown failed: ${messageOf(err)}` });
        rejectClosed(err);
      },
    );
    return running;
  };
  if (handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  return { stop, closed };
}

/**
 * SIGINT/SIGTERM handlers from just before the server listens until {@link stopOnRequest}
 * installs its own: without them, a signal sent right after the LISTEN line (a supervisor, a
 * test) would meet Node's default disposition and kill the process without a graceful shutdown.
 * A signal received meanwhile is handed to `release(stop)`.
 */
export function holdSignals(handleSignals: boolean): { release: (stop: ((reason: string) => unknown) | undefined) => void } {
  let pending: NodeJS.Signals | undefined;
  const hold = (signal: NodeJS.Signals): void => {
    pending ??= signal;
  };
  if (handleSignals) {
    process.on('SIGINT', hold);
    process.on('SIGTERM', hold);
  }
  return {
    release(stop) {
      if (!handleSignals) return;
      process.off('SIGINT', hold);
      process.off('SIGTERM', hold);
      if (pending !== undefined && stop) stop(pending);
    },
  };
}
