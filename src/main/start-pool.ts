/**
 * @module main/start-pool
 * The worker pool of a starting server, wired to the runtime: the control plane its workers call
 * (`sv.info()`, channel registry, presence, logs, and the store handles), and what happens when a
 * thread exits (its store lock and unpublished commit released). The pool is created before the
 * data folder is open, so its threads load the app while the main thread loads the tables.
 */
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import type { StoreInit } from '../job-contract.js';
import type { RunSettings } from '../server.js';
import type { SharedStore } from '../storage/store.js';
import type { Wal } from '../storage/wal.js';
import { isTypeScript } from '../workers/app-loader.js';
import { ControlHost } from './control-host.js';
import { openConnectionCount, type Hub } from './hub.js';
import type { ClusterNode } from './cluster.js';
import type { LogFn } from './log.js';
import { WorkerPool } from './pool.js';

/** What the control plane and the thread-exit cleanup need once the data folder is open. */
export interface OpenedRuntime {
  readonly hub: Hub;
  /** The cluster node (cluster mode), which decides this node's commits; else null. */
  readonly cluster: ClusterNode | null;
  readonly store: SharedStore;
  readonly wal: Wal;
}

/**
 * The worker pool, and the control plane its workers call (`sv.info()`, channel registry, logs).
 * Created before the data folder is open: `attach` hands the threads the store (they wait for it
 * after loading the app) and the state the control plane answers from.
 */
export function createPool(settings: RunSettings, log: LogFn): { pool: WorkerPool; control: ControlHost; attach: (runtime: OpenedRuntime) => void } {
  const { options, appPath } = settings;
  let runtime: OpenedRuntime | undefined;
  let storeReady: (init: StoreInit) => void = () => undefined;
  const storeHandles = new Promise<StoreInit>((resolve) => (storeReady = resolve));
  const hub = (): Hub => {
    if (runtime === undefined) throw new LexiconsError(ErrorCode.RUNTIME, 'the control plane was called before the data folder was open');
    return runtime.hub;
  };
  const control = new ControlHost({
    storeHandles: () => storeHandles,
    info: () => ({ connections: openConnectionCount(hub()), channels: hub().channels.sizes() }),
    channels: () => ({ version: hub().channels.version, names: hub().channels.runtimeNames() }),
    presence: (channel, countOnly) => (countOnly ? hub().presence.count(channel) : hub().presence.list(channel)),
    log: (status, data) => log(status, data),
    // The job's units are stored into its progress slot when the record commits (main/job-commits.ts).
    commit: (record, ticket) => pool.commit(ticket, () => runtime?.cluster?.commit(record) ?? Promise.resolve({ ok: false, reason: 'unavailable', message: 'cluster: this server is not a cluster node' })),
  });
  const pool = new WorkerPool({
    workers: options.workers,
    init: {
      appPath,
      exportName: 'server',
      maxCallsPerFrame: options.limits.maxCallsPerFrame,
      maxRecoveredPublications: options.limits.maxRecoveredPublications,
      debug: options.debug,
      typescript: isTypeScript(appPath),
      cluster: options.cluster !== null,
    },
    executionTimeoutMs: options.limits.executionTimeoutMs,
    workerMemoryMb: options.limits.workerMemoryMb,
    log,
    onThreadExit: (threadId) => {
      control.detach(threadId);
      // A thread that exits before the store is open never attached to it: nothing to release.
      if (runtime === undefined) return;
      const { store, wal } = runtime;
      if (store.releaseIfHeldBy(threadId)) log('WORKER-ERROR', { message: `released the store lock held by exited thread ${threadId}`, threadId });
      // Never blocks: if the commit lock is busy, the log retries on later event-loop turns.
      wal.afterThreadExit(store, threadId).then(
        (written) => {
          if (written) log('WORKER-ERROR', { message: `cancelled the unpublished commit of exited thread ${threadId} in the log`, threadId });
        },
        (err: unknown) => log('ERROR', { message: `write-ahead log: ${messageOf(err)}` }),
      );
    },
    onControlPort: (port, threadId) => control.attach(port, threadId),
  });
  const attach = (opened: OpenedRuntime): void => {
    runtime = opened;
    storeReady({ handles: opened.store.handles, wal: opened.wal.handles });
  };
  return { pool, control, attach };
}
