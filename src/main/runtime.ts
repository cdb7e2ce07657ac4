/**
 * @module main/runtime
 * `startServer`: brings a Server definition up on the main thread, in order:
 *
 * 1. resolve options; load the native uWS binary (or refuse to start);
 * 2. create the shared store and load the data folder (CSV);
 * 3. start the worker pool (each worker imports the app module and attaches to the store) and
 *    check one worker loaded the app;
 * 4. startup tasks (priority order, awaited), then the onStart hook;
 * 5. listen (the LISTEN log line carries the bound port), start the interval tasks;
 * 6. SIGINT/SIGTERM → graceful shutdown (main/shutdown.ts).
 */
import { resolve } from 'node:path';
import type { us_listen_socket } from 'uWebSockets.js';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import { validateFsync, validateSnapshotSeconds, type DurabilityOptions, type RunOverrides, type RunningServer, type Server } from '../server.js';
import { compileSchema } from '../storage/schema.js';
import { openDataFolder } from '../storage/recovery.js';
import { snapshotDataFolder, startSnapshotTask } from '../storage/snapshot.js';
import type { FsyncPolicy } from '../storage/wal.js';
import { isTypeScript } from '../workers/app-loader.js';
import type { BatchResult, TaskResult } from '../job-contract.js';
import { createApp } from './app.js';
import { ChannelRegistry } from './channels.js';
import type { SocketConnection } from './socket-connection.js';
import { ControlHost } from './control-host.js';
import { Dispatcher } from './dispatch.js';
import { applyEffects, type Hub } from './effects.js';
import { createLogger } from './log.js';
import { Metrics } from './metrics.js';
import { JobFailure, WorkerPool } from './pool.js';
import { Shutdown } from './shutdown.js';
import { describeTasks, TaskScheduler } from './task-scheduler.js';
import { loadUws, type Uws } from './uws.js';

function listen(uws: Uws, app: ReturnType<Uws['App']>, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolvePromise, reject) => {
    app.listen(host, port, (socket) => {
      if (socket) resolvePromise(socket);
      else reject(new LexiconsError(ErrorCode.RUNTIME, `could not listen on ${host}:${port} (address in use, or host not available)`));
    });
  });
}

/**
 * Durability settings: the run overrides (CLI --fsync, --snapshot-seconds), then the Server's
 * `durability` option, then env LEXICONS_FSYNC / LEXICONS_SNAPSHOT_SECONDS, then everysec / 300 s.
 */
export function durabilitySettings(
  server: DurabilityOptions | undefined,
  overrides: DurabilityOptions | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { fsync: FsyncPolicy; snapshotSeconds: number } {
  const fsync = overrides?.fsync ?? server?.fsync ?? (env.LEXICONS_FSYNC === undefined ? 'everysec' : validateFsync(env.LEXICONS_FSYNC, 'LEXICONS_FSYNC'));
  const snapshotSeconds =
    overrides?.snapshotSeconds ??
    server?.snapshotSeconds ??
    (env.LEXICONS_SNAPSHOT_SECONDS === undefined ? 300 : validateSnapshotSeconds(env.LEXICONS_SNAPSHOT_SECONDS, 'LEXICONS_SNAPSHOT_SECONDS'));
  return { fsync: validateFsync(fsync), snapshotSeconds: validateSnapshotSeconds(snapshotSeconds) };
}

/** uWebSockets.js aborts the whole process (C++ terminate) on an idleTimeout outside 8..960 s. */
function checkUwsLimits(limits: { idleTimeoutSeconds: number }): void {
  const idle = limits.idleTimeoutSeconds;
  if (!Number.isInteger(idle) || idle < 8 || idle > 960) {
    throw new LexiconsError(ErrorCode.OPTION, `limits.idleTimeoutSeconds must be an integer from 8 to 960 (uWebSockets.js bounds), got ${idle}`);
  }
}

export async function startServer(server: Server, overrides: RunOverrides): Promise<RunningServer> {
  const options = server.resolve(overrides);
  if (!overrides.appPath) {
    throw new LexiconsError(
      ErrorCode.OPTION,
      'the worker threads need the module that exports this server: run it with `lexicons start <app>`, or server.runIfMain(import.meta.url), or server.run({ appPath })',
    );
  }
  const appPath = resolve(overrides.appPath);
  checkUwsLimits(options.limits);
  const log = createLogger(server.options.onLog);
  const uws = loadUws();
  const startedAt = Date.now();

  const durability = durabilitySettings(server.options.durability, overrides.durability);
  // Recovery: CSV snapshot + write-ahead log replay; takes the data folder's lock until wal.close().
  const { store, wal, report } = await openDataFolder(compileSchema(server.components.models), options.data, {
    fsync: durability.fsync,
    onError: (err) => log('ERROR', { message: `write-ahead log: ${messageOf(err)}` }),
  });
  log('START', {
    app: appPath,
    data: options.data,
    workers: options.workers,
    fsync: durability.fsync,
    snapshotSeconds: durability.snapshotSeconds,
    tables: Object.fromEntries(report.load.tables.map((t) => [t.table, t.rows])),
    replayed: report.replayed,
    ...(report.reason ? { truncatedBytes: report.truncatedBytes, reason: report.reason, truncatedFile: report.truncatedFile } : {}),
  });

  const metrics = new Metrics();
  const connections = new Map<string, SocketConnection>();
  const channels = new ChannelRegistry(server.components.channels, log);
  const hub: Hub = { connections, channels, log, metrics };
  const openCount = () => {
    let n = 0;
    for (const c of connections.values()) if (c.open) n++;
    return n;
  };
  const control = new ControlHost({
    info: () => ({ connections: openCount(), channels: channels.sizes() }),
    channels: () => ({ version: channels.version, names: channels.runtimeNames() }),
    log: (status, data) => log(status, data),
  });
  const pool = new WorkerPool({
    workers: options.workers,
    init: {
      appPath,
      exportName: 'server',
      handles: store.handles,
      wal: wal.handles,
      maxCallsPerFrame: options.limits.maxCallsPerFrame,
      debug: options.debug,
      typescript: isTypeScript(appPath),
    },
    executionTimeoutMs: options.limits.executionTimeoutMs,
    workerMemoryMb: options.limits.workerMemoryMb,
    log,
    onThreadExit: (threadId) => {
      control.detach(threadId);
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
  const applyResult = (result: BatchResult | TaskResult) => {
    applyEffects(hub, result.effects);
    for (const entry of result.logs) log(entry.status, entry.data);
  };
  const runHook = async (hook: 'onStart' | 'onShutdown' | 'ready') => {
    try {
      applyResult(await pool.run<TaskResult>({ kind: 'hook', hook }));
    } catch (err) {
      if (hook === 'ready') throw err;
      log('ERROR', { hook, message: messageOf(err) });
    }
  };

  const dispatcher = new Dispatcher(hub, pool, options.workers);
  const scheduler = new TaskScheduler(pool, describeTasks(server.components.tasks), applyResult, log);
  let accepting = false;
  let listenSocket: us_listen_socket | null = null;

  try {
    await runHook('ready');
    await scheduler.runPhase('startup');
    await runHook('onStart');
  } catch (err) {
    await pool.destroy();
    control.close();
    await wal.close();
    const cause = err instanceof JobFailure && err.cause instanceof Error ? err.cause.message : messageOf(err);
    throw new LexiconsError(ErrorCode.RUNTIME, `the worker threads could not start the app ${appPath}: ${cause}`, { cause: err });
  }

  const app = createApp({
    uws,
    hub,
    dispatcher,
    options,
    components: server.components,
    hooks: { onConnect: server.options.onConnect, onDisconnect: server.options.onDisconnect },
    accepting: () => accepting,
    health: () => ({
      ok: accepting,
      body: { status: accepting ? 'ok' : 'stopping', connections: openCount(), workers: pool.threads, uptimeSeconds: Math.round((Date.now() - startedAt) / 1000) },
    }),
    metrics: () =>
      metrics.render({
        connections: openCount(),
        channels: channels.count,
        workers: pool.threads,
        queuedUnits: dispatcher.queued,
        inFlightJobs: dispatcher.inFlight,
        poolQueue: pool.queueSize,
        store: store.stats(),
        wal: wal.stats(),
        uptimeSeconds: (Date.now() - startedAt) / 1000,
      }),
  });
  channels.attach(app);
  try {
    listenSocket = await listen(uws, app, options.host, options.port);
  } catch (err) {
    await pool.destroy();
    control.close();
    await wal.close();
    throw err;
  }
  const snapshots = startSnapshotTask(store, wal, options.data, {
    intervalMs: durability.snapshotSeconds * 1000,
    onSnapshot: (r) => log('SNAPSHOT', { commitId: r.commitId, segment: r.segment, ms: r.ms, tables: Object.fromEntries(Object.entries(r.tables).map(([t, v]) => [t, v.rows])) }),
    onError: (err) => log('ERROR', { message: `snapshot failed (the folder is unchanged; retried later): ${messageOf(err)}` }),
  });
  const port = uws.us_socket_local_port(listenSocket as never);
  accepting = true;
  log('LISTEN', { host: options.host, port, url: `ws://${options.host}:${port}`, workers: options.workers });

  const shutdown = new Shutdown({
    uws,
    hub,
    dispatcher,
    scheduler,
    listenSocket: () => {
      const s = listenSocket;
      listenSocket = null;
      return s;
    },
    stopAccepting: () => {
      accepting = false;
    },
    runShutdownHook: () => runHook('onShutdown'),
    closePool: async () => {
      await pool.close();
      control.close();
    },
    save: async () => {
      await snapshots.stop();
      try {
        const snapshot = await snapshotDataFolder(store, wal, options.data);
        return { commitId: snapshot.commitId, saved: Object.fromEntries(Object.entries(snapshot.tables).map(([table, t]) => [table, t.rows])) };
      } finally {
        await wal.close();
      }
    },
  });

  let resolveClosed!: () => void;
  let rejectClosed!: (err: unknown) => void;
  const closed = new Promise<void>((res, rej) => {
    resolveClosed = res;
    rejectClosed = rej;
  });
  closed.catch(() => undefined); // the failure is logged; callers awaiting `closed` still see it
  const onSignal = (signal: NodeJS.Signals) => {
    void stop(signal);
  };
  const handleSignals = overrides.handleSignals !== false;
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

  await scheduler.startIntervals();
  return { host: options.host, port, stop: () => stop(), closed };
}
