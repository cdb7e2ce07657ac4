/**
 * @module main/runtime
 * `startServer`: brings a Server definition up on the main thread, one named step at a time:
 *
 * 1. {@link runSettings} (server.ts): every option resolved and checked; then load the native
 *    uWS binary (or refuse to start);
 * 2. {@link createPool}: the worker pool (each worker imports the app module, then waits for the
 *    store), with the control plane the workers call back on; its threads start while
 * 3. {@link openData} recovers the data folder (snapshot + write-ahead log) into the shared store,
 *    which the workers then attach to;
 * 4. {@link startWorkers}: check one worker loaded the app, run the startup tasks (priority
 *    order, awaited), then the onStart hook;
 * 5. {@link listen}: the uWS app (main/app.ts) on its port (the LISTEN log line carries it), and
 *    the admin routes on `adminPort` if set; snapshots every `snapshotSeconds`, the interval
 *    tasks; then `/ready` says ready;
 * 6. {@link createShutdown}: stop() and SIGINT/SIGTERM → graceful shutdown (main/shutdown.ts).
 */
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import { UNIT_FRAME, type HookName, type JobResult, type TaskResult } from '../job-contract.js';
import { appSchema, runSettings, type RunOverrides, type RunningServer, type RunSettings, type Server } from '../server.js';
import { openDataFolder } from '../storage/recovery.js';
import { startReclaimer } from '../storage/reclaim.js';
import { snapshotDataFolder, startSnapshotTask } from '../storage/snapshot.js';
import type { SharedStore } from '../storage/store.js';
import type { Wal } from '../storage/wal.js';
import { AddressList } from '../ops-options.js';
import { AdminData } from './admin-data.js';
import { AdminAccess, addAdminRoutes, addHealthRoutes, type AdminDeps, type Phase } from './admin-routes.js';
import { AdminSampler } from './admin-sampler.js';
import { maskingLog } from './admin-secrets.js';
import { createApp } from './app.js';
import { Dispatcher, spreadAfterMsFromEnv } from './dispatch.js';
import { applyEffects } from './effects.js';
import { createHub, openConnectionCount, type Hub } from './hub.js';
import { createLogger, type LogFn } from './log.js';
import { ServerMetrics } from './metrics-registry.js';
import { CLUSTER_JOBS_PER_WORKER, JobFailure, type WorkerPool } from './pool.js';
import { createPool } from './start-pool.js';
import { holdSignals, Shutdown, stopOnRequest } from './shutdown.js';
import { describeTasks, TaskScheduler, type TaskInfo } from './task-scheduler.js';
import { listenOn } from './listen.js';
import { startHistorySweep } from './history-sweep.js';
import type { ClusterNode } from './cluster.js';
import { withCluster } from '../storage/cluster-record.js';
import { loadUws, newApp, type Uws } from './uws.js';
import type { CatchUpListener } from './catch-up-listener.js';
import { joinCluster, type CheckedFolder } from './cluster-join.js';

/** What the steps build, in order; each step reads what the ones before it built. */
interface Runtime {
  readonly server: Server;
  readonly settings: RunSettings;
  readonly log: LogFn;
  readonly uws: Uws;
  readonly startedAt: number;
  readonly store: SharedStore;
  readonly wal: Wal;
  readonly hub: Hub;
  /** Cluster mode: this node of the cluster (main/cluster.ts), caught up before the workers start. */
  readonly cluster: ClusterNode | null;
  /** Cluster mode: the port's listener while catching up (main/catch-up-listener.ts), closed when the app listens. */
  readonly early: CatchUpListener | null;
}

export async function startServer(server: Server, overrides: RunOverrides): Promise<RunningServer> {
  const settings = runSettings(server, overrides);
  const spreadAfterMs = spreadAfterMsFromEnv();
  const log = maskingLog(createLogger(server.options.onLog), appSchema(server.components));
  const uws = loadUws();
  const startedAt = Date.now();
  // The pool first: its threads load the app while this thread opens the data folder.
  const { pool, control, attach } = createPool(settings, log);
  let opened: { store: SharedStore; wal: Wal; cluster: ClusterNode | null; early: CatchUpListener | null };
  try {
    const open = async (): Promise<CheckedFolder> => {
      const data = await openData(server, settings, log);
      // The store's history policies on this thread too (trim sweeps; reads need none).
      data.store.historyPolicy = server.components.channelRules.historyPolicy;
      return data;
    };
    opened = settings.options.cluster ? await joinCluster(settings, open, log, uws, startedAt) : { ...(await open()), cluster: null, early: null };
  } catch (err) {
    await pool.destroy();
    control.close();
    throw err;
  }
  const { store, wal, cluster, early } = opened;
  let dispatcher: Dispatcher | undefined;
  const hub = createHub(server.components.channelRules, log, {
    store,
    limits: settings.options.limits,
    // A replayed keyed call whose first run ended without an outcome runs now (main/sessions.ts).
    run: (conn, text, keys) => {
      if (conn.open && conn.admitted) dispatcher?.enqueue(conn, { kind: UNIT_FRAME, text, keys });
    },
  });
  cluster?.attach(hub);
  const runtime: Runtime = { server, settings, log, uws, startedAt, store, wal, hub, cluster, early };
  attach(runtime);
  const release = async (): Promise<void> => {
    await pool.destroy();
    control.close();
    early?.close();
    await cluster?.stop();
    await wal.close();
  };
  dispatcher = new Dispatcher(runtime.hub, pool, settings.options.workers, { spreadAfterMs, jobsPerWorker: cluster ? CLUSTER_JOBS_PER_WORKER : 1 });
  hub.live.start(pool, server.components.live.keys(), settings.options.workers, () => store.snapshot());
  // Commits made on this thread (lexicons/testing's app.db, the shell) reach live queries too.
  store.onCommit = (changes) => changes.written && hub.live.committed([{ id: changes.commitId, ...changes.written }]);
  // Cluster mode: interval tasks run on the lease holder only, unless `static everyNode = true`.
  const mayRun = (task: TaskInfo): boolean => cluster === null || task.everyNode || cluster.leader;
  const scheduler = new TaskScheduler(pool, describeTasks(server.components.tasks), (result) => applyJobResult(runtime.hub, result), log, mayRun);
  await startWorkers(runtime, pool, scheduler, release);
  const signals = holdSignals(overrides.handleSignals !== false);
  let listening: Listening;
  try {
    listening = await listen(runtime, pool, dispatcher!, release);
  } catch (err) {
    signals.release(undefined);
    throw err;
  }
  // A cluster node trims only in the commits of the stream (every node the same way).
  const sweeper = server.components.channelRules.anyHistory && !cluster ? startHistorySweep(store, log) : { stop: () => undefined };
  // Superseded row versions are compacted away while the server runs (storage/reclaim.ts).
  const reclaimer = startReclaimer(store, { onError: (err) => log('ERROR', { message: `version reclamation failed (retried later): ${messageOf(err)}` }) });
  const snapshots = startSnapshotTask(store, wal, settings.options.data, {
    intervalMs: settings.durability.snapshotSeconds * 1000,
    onSnapshot: (r) => {
      log('SNAPSHOT', { commitId: r.commitId, segment: r.segment, ms: r.ms, tables: rowCounts(r.tables) });
      return cluster?.snapshotted(r.dir, r);
    },
    onError: (err) => log('ERROR', { message: `snapshot failed (the folder is unchanged; retried later): ${messageOf(err)}` }),
  });
  const shutdown = createShutdown(runtime, listening, {
    dispatcher: dispatcher!,
    scheduler,
    closePool: async () => {
      await pool.close();
      control.close();
      await cluster?.stop();
    },
    stopSnapshots: () => {
      sweeper.stop();
      reclaimer.stop();
      hub.delivery.stop();
      hub.presence.stop();
      hub.sessions.clear();
      return snapshots.stop();
    },
    runShutdownHook: () => runHook(runtime, pool, 'onShutdown'),
  });
  const { stop, closed } = stopOnRequest(shutdown, log, overrides.handleSignals !== false);
  signals.release((reason) => void stop(reason));
  await scheduler.startIntervals();
  if (listening.phase === 'starting') listening.phase = 'ready';
  const running: RunningServer = { host: settings.options.host, port: listening.port, adminPort: listening.adminPort ?? undefined, stop: () => stop(), closed };
  stores.set(running, { store, wal });
  return running;
}

/** The store of each running server, for in-process tools (lexicons/testing's `app.db`). */
const stores = new WeakMap<RunningServer, { store: SharedStore; wal: Wal }>();

/** The shared store and log of a server this thread runs (undefined for any other object). */
export function storeOf(running: RunningServer): { store: SharedStore; wal: Wal } | undefined {
  return stores.get(running);
}

function rowCounts(tables: Record<string, { rows: number }>): Record<string, number> {
  return Object.fromEntries(Object.entries(tables).map(([table, t]) => [table, t.rows]));
}

/**
 * Recovery: CSV snapshot + write-ahead log replay; takes the data folder's lock until wal.close().
 * Cluster mode: damaged channel history is reported (`historyDamaged`), not repaired (cluster-join.ts).
 */
async function openData(server: Server, settings: RunSettings, log: LogFn): Promise<CheckedFolder> {
  const { options, appPath, durability } = settings;
  const schema = appSchema(server.components);
  const { store, wal, report } = await openDataFolder(options.cluster ? withCluster(schema) : schema, options.data, {
    fsync: durability.fsync,
    history: options.cluster ? 'check' : 'repair',
    onError: (err) => log('ERROR', { message: `write-ahead log: ${messageOf(err)}` }),
  });
  log('START', {
    app: appPath,
    data: options.data,
    workers: options.workers,
    fsync: durability.fsync,
    snapshotSeconds: durability.snapshotSeconds,
    ...(options.cluster ? { cluster: options.cluster.nodeId } : {}),
    tables: Object.fromEntries(report.load.tables.map((t) => [t.table, t.rows])),
    replayed: report.replayed,
    ...(report.reason ? { truncatedBytes: report.truncatedBytes, reason: report.reason, truncatedFile: report.truncatedFile } : {}),
  });
  return { store, wal, historyDamaged: report.historyDamaged };
}

/** Effects and logs of a Task or hook job (batches apply theirs in the dispatcher). */
function applyJobResult(hub: Hub, result: JobResult): void {
  if (result.commits !== undefined) hub.live.committed(result.commits);
  applyEffects(hub, result.effects);
  for (const entry of result.logs) hub.log(entry.status, entry.data);
}

/** Runs a server hook in the pool; only a failed `ready` check is fatal (it throws). */
async function runHook(runtime: Runtime, pool: WorkerPool, hook: HookName): Promise<void> {
  try {
    applyJobResult(runtime.hub, await pool.run<TaskResult>({ kind: 'hook', hook }));
  } catch (err) {
    if (hook === 'ready') throw err;
    runtime.log('ERROR', { hook, message: messageOf(err) });
  }
}

/** The workers load the app, then the startup tasks and onStart run; a failure stops everything. */
async function startWorkers(runtime: Runtime, pool: WorkerPool, scheduler: TaskScheduler, release: () => Promise<void>): Promise<void> {
  try {
    await runHook(runtime, pool, 'ready');
    // Cluster mode: startup tasks run once per cluster start, on the node that takes the lease (the
    // first up), and `static everyNode = true` ones on every node (docs/cluster.md).
    const { cluster } = runtime;
    const leads = cluster === null || (await cluster.takeLease());
    if (!leads) runtime.log('START', { cluster: cluster.nodeId, message: 'startup tasks without everyNode skipped: another node holds the lease (they ran when the cluster started)' });
    await scheduler.runPhase('startup', (task) => leads || task.everyNode);
    await runHook(runtime, pool, 'onStart');
  } catch (err) {
    await release();
    const cause = err instanceof JobFailure && err.cause instanceof Error ? err.cause.message : messageOf(err);
    throw new LexiconsError(ErrorCode.RUNTIME, `the worker threads could not start the app ${runtime.settings.appPath}: ${cause}`, { cause: err });
  }
}

/** Whether upgrades and frames are accepted, the phase `/ready` reports, and the listen sockets. */
interface Listening {
  accepting: boolean;
  phase: Phase;
  socket: us_listen_socket | null;
  port: number;
  /** The admin port's socket (open until the end of shutdown), or null. */
  adminSocket: us_listen_socket | null;
  adminPort: number | null;
  /** The admin page's chart sampler (stopped with the admin port). */
  sampler: AdminSampler;
}

/**
 * The uWS app (WebSocket route, /health, /ready, /metrics) listening on the configured host and
 * port, and the admin app on `adminPort` if set (plain HTTP: /health, /ready, /metrics).
 */
async function listen(runtime: Runtime, pool: WorkerPool, dispatcher: Dispatcher, release: () => Promise<void>): Promise<Listening> {
  const { server, settings, uws, hub, store, wal, startedAt } = runtime;
  const { options } = settings;
  const sampler = new AdminSampler({ metrics: hub.metrics, connections: () => openConnectionCount(hub), storeBytes: () => Object.values(store.stats().tables).reduce((n, t) => n + t.bytes, 0) });
  const listening: Listening = { accepting: false, phase: 'starting', socket: null, port: 0, adminSocket: null, adminPort: null, sampler };
  const proxies = options.trustProxy.length > 0 ? new AddressList(options.trustProxy) : null;
  const admin: AdminDeps = {
    status: () => ({
      phase: listening.phase,
      walFailed: wal.failed,
      connections: openConnectionCount(hub),
      workers: pool.threads,
      uptimeSeconds: (Date.now() - startedAt) / 1000,
      ...(runtime.cluster ? { cluster: runtime.cluster.view() } : {}),
    }),
    metrics: new ServerMetrics({
      counters: hub.metrics,
      gauges: () => ({
        connections: openConnectionCount(hub),
        channels: hub.channels.count,
        workers: pool.threads,
        queuedUnits: dispatcher.queued,
        inFlightJobs: dispatcher.inFlight,
        poolQueue: pool.queueSize,
        store: store.stats(),
        wal: wal.stats(),
        uptimeSeconds: (Date.now() - startedAt) / 1000,
        live: { queries: hub.live.size, rows: hub.live.rows, paths: hub.live.paths },
      }),
    }),
    access: new AdminAccess(options.adminTrust, options.adminToken, proxies),
    page: { data: new AdminData({ store, hub }), sampler },
  };
  const app = createApp({
    uws,
    hub,
    dispatcher,
    options,
    components: server.components,
    hooks: { onConnect: server.options.onConnect, onDisconnect: server.options.onDisconnect },
    accepting: () => listening.accepting,
    proxies,
    admin,
  });
  hub.channels.attach(app);
  hub.presence.attach(app);
  try {
    if (options.adminPort !== null) {
      const adminApp = newApp(uws, null);
      addHealthRoutes(adminApp, admin);
      addAdminRoutes(adminApp, admin, false);
      adminApp.any('/*', (res) => void res.writeStatus('404 Not Found').writeHeader('content-type', 'text/plain').end('lexicons admin port: /admin, /metrics, /health, /ready', true));
      listening.adminSocket = await listenOn(adminApp, options.adminHost, options.adminPort, ' (adminPort)');
      listening.adminPort = uws.us_socket_local_port(listening.adminSocket as never);
    }
    // Cluster mode: the port the node listened on while catching up (the same number for `--port 0`).
    runtime.early?.close();
    listening.socket = await listenOn(app, options.host, runtime.early?.port ?? options.port, '');
  } catch (err) {
    if (listening.adminSocket) uws.us_listen_socket_close(listening.adminSocket);
    await release();
    throw err;
  }
  sampler.start();
  const port = uws.us_socket_local_port(listening.socket as never);
  listening.port = port;
  listening.accepting = true;
  const scheme = options.tls ? 'wss' : 'ws';
  const adminUrl = listening.adminPort !== null ? { adminPort: listening.adminPort, adminUrl: `http://${options.adminHost}:${listening.adminPort}` } : {};
  runtime.log('LISTEN', { host: options.host, port, url: `${scheme}://${options.host}:${port}`, workers: options.workers, ...adminUrl });
  return listening;
}

/** The shutdown sequence's steps over what the runtime built (the order is in main/shutdown.ts). */
function createShutdown(
  runtime: Runtime,
  listening: Listening,
  parts: {
    dispatcher: Dispatcher;
    scheduler: TaskScheduler;
    closePool: () => Promise<void>;
    stopSnapshots: () => Promise<void>;
    runShutdownHook: () => Promise<void>;
  },
): Shutdown {
  const { uws, hub, store, wal, settings } = runtime;
  return new Shutdown({
    hub,
    dispatcher: parts.dispatcher,
    scheduler: parts.scheduler,
    stopListening: () => {
      listening.accepting = false;
      listening.phase = 'stopping';
      const socket = listening.socket;
      listening.socket = null;
      if (socket) uws.us_listen_socket_close(socket);
    },
    stopAdmin: () => {
      listening.sampler.stop();
      const socket = listening.adminSocket;
      listening.adminSocket = null;
      if (socket) uws.us_listen_socket_close(socket);
    },
    runShutdownHook: parts.runShutdownHook,
    closePool: parts.closePool,
    save: async () => {
      await parts.stopSnapshots();
      try {
        const snapshot = await snapshotDataFolder(store, wal, settings.options.data, { csv: true });
        return { commitId: snapshot.commitId, saved: rowCounts(snapshot.tables) };
      } finally {
        await wal.close();
      }
    },
  });
}
