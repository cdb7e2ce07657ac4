/**
 * @module server
 * `Server`: the definition of an application (components + options), validated at construction,
 * and the entry to run it. The same module is imported by the main thread (which runs it) and by
 * every worker thread (which only reads the definitions), so constructing a Server never starts
 * anything: `run()` does, and only on the main thread.
 *
 * @example
 * export const server = new Server({ protocol: 'ws', host: 'localhost', port: 5000, models, tasks,
 *   signals, headers, channels, data: 'data/', trust: [] });
 * server.runIfMain(import.meta.url); // the seed's `if __name__ == "__main__": server.run()`
 */
import { isMainThread } from 'node:worker_threads';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, LexiconsError, messageOf, optionError } from './errors.js';
import type { Connection, ExecutionContext, TaskClass } from './components.js';
import { Channel, ChannelManager, Header, HeaderManager, ModelManager, Signal, SignalManager, TaskManager, componentName } from './components.js';
import type { ModelClass } from './storage/schema.js';
import { liveQueries, type LiveQuery, type LiveQueryManager } from './live-query.js';
import type { ComponentSet } from './typing.js';
import { checkTlsFiles, resolveOps, validateOpsOptions, type OpsOptions, type ResolvedOps } from './ops-options.js';
import { checkStaticOption, resolveStaticOption, type StaticOption, type StaticSettings } from './static-option.js';
import { ChannelRules } from './channel-rules.js';
import { compileSchema, type Schema } from './storage/schema.js';
import { withHistory } from './storage/history-tables.js';
import { DEFAULT_LIMITS, MAX_CONNECT_TIMEOUT_SECONDS, validateLimits, type ServerLimits } from './limits.js';
import { durabilitySettings, validateDurability, type DurabilityOptions } from './durability-options.js';

export { durabilitySettings, MAX_SNAPSHOT_SECONDS, validateDurability, validateFsync, validateSnapshotSeconds, type DurabilityOptions } from './durability-options.js';

export { DEFAULT_LIMITS, MAX_CONNECT_TIMEOUT_SECONDS, type ServerLimits };

/**
 * The schema every thread and tool opens an app's data with: its Models, plus the history tables
 * (storage/history-tables.ts) when a Channel class keeps history.
 */
export function appSchema(components: Pick<Components, 'models' | 'channelRules'>): Schema {
  const schema = compileSchema(components.models);
  return components.channelRules.anyHistory ? withHistory(schema) : schema;
}

export type LogStatus =
  | 'START'
  | 'LISTEN'
  | 'SHUTDOWN'
  | 'CONNECT'
  | 'DISCONNECT'
  | 'SIGNAL'
  | 'SIGNAL-ERROR'
  | 'BROADCAST'
  | 'HEADER-CHECK-FAILED'
  | 'UNTRUSTED-SOURCE-DENIED'
  | 'ORIGIN-DENIED'
  | 'CHANNEL-NOT-FOUND'
  | 'TASK'
  | 'TASK-ERROR'
  | 'WORKER-ERROR'
  | 'PROTOCOL-ERROR'
  | 'LIMIT'
  | 'SNAPSHOT'
  | 'CLUSTER'
  | 'ERROR';

export interface HookContext extends ExecutionContext {
  ws: Connection;
}

/** Signals (and Headers) as their manager was built: a record keyed by name keeps names and types for typed clients. */
export type SignalSet = ComponentSet<typeof Signal>;
export type HeaderSet = ComponentSet<typeof Header>;
export type LiveSet = ComponentSet<typeof LiveQuery>;

export interface ServerOptions<S extends SignalSet = SignalSet, H extends HeaderSet = HeaderSet, L extends LiveSet = LiveSet> extends OpsOptions {
  /** `ws` (default), or `wss`, which requires `tls` (the server serves wss:// whenever `tls` is set). */
  protocol?: 'ws' | 'wss';
  /** Default env HOST or `localhost`. */
  host?: string;
  /** Default env PORT or 5000; 0 picks a free port. */
  port?: number;
  models?: ModelManager | Iterable<ModelClass>;
  signals?: SignalManager<S> | Iterable<typeof Signal>;
  headers?: HeaderManager<H> | Iterable<typeof Header>;
  channels?: ChannelManager | Iterable<typeof Channel>;
  tasks?: TaskManager | Iterable<TaskClass>;
  /** Live queries clients subscribe to (`client.live(name, args)`, docs/live-queries.md); a record keeps names and types. */
  live?: LiveQueryManager<L> | Iterable<typeof LiveQuery>;
  /** Data folder for the CSV files (and the write-ahead log). Default env DATA or `data/`. */
  data?: string;
  /**
   * Client addresses allowed to connect; `*` for any. Default env TRUST (comma-separated) or `['*']`.
   * An empty list means any address (the seed's own example passes `trust=[]` and expects clients).
   */
  trust?: string[];
  /** Allowed `Origin` header values for browser clients (`*` for any, the default). */
  origins?: string[];
  /** Combines the results of the Headers that ran; default: all true. */
  gate?: (results: boolean[]) => boolean;
  /**
   * What happens to a connection that carries no header data for any declared Header.
   * `reject` (default when Headers are declared) or `allow` (admitted unauthenticated).
   */
  anonymous?: 'reject' | 'allow';
  /** Worker threads for Signals, Headers and Tasks. Default 1 (`lexicons start --workers N`). */
  workers?: number;
  /** Include error details in the log. Default true, as the original. */
  debug?: boolean;
  /**
   * A folder of static files served on the same port (GET/HEAD; `/health`, `/metrics` and
   * WebSocket upgrades keep their routes), e.g. a web page using `lexicons/client`: a path
   * (relative to the working directory), or `{ dir, prefix?, cacheControl?, maxFileBytes?, index? }`.
   * `lexicons start --static DIR` overrides it.
   */
  static?: StaticOption;
  limits?: ServerLimits;
  durability?: DurabilityOptions;
  /** Runs in a worker after the gate admits a connection. */
  onConnect?: (context: HookContext) => unknown;
  /** Runs in a worker after a connection closed (it has already left every channel). */
  onDisconnect?: (context: HookContext) => unknown;
  /** Runs in a worker after startup tasks, before listening. */
  onStart?: (context: ExecutionContext) => unknown;
  /** Runs in a worker after shutdown tasks, before the tables are written. */
  onShutdown?: (context: ExecutionContext) => unknown;
  /** Runs on the main thread for every log event, instead of the default log (pino JSON lines on stderr, main/log.ts). */
  onLog?: (status: LogStatus, data: Record<string, unknown>) => void;
}

/** Options resolved against environment defaults, as the runtime consumes them. */
export interface ResolvedServerOptions extends ResolvedOps {
  host: string;
  port: number;
  data: string;
  trust: string[];
  origins: string[];
  workers: number;
  debug: boolean;
  anonymous: 'reject' | 'allow';
  limits: Required<ServerLimits>;
  /** The static folder (absolute) and how it is served, when one is set. */
  static: StaticSettings | undefined;
}

export interface Components {
  models: ModelClass[];
  signals: Map<string, typeof Signal>;
  headers: Map<string, typeof Header>;
  /** Declared channel names (Channel classes without a `pattern`). */
  channels: string[];
  /** The rules of every Channel class (history, presence, slow clients, authorize, patterns). */
  channelRules: ChannelRules;
  tasks: TaskClass[];
  /** Live queries by name. */
  live: Map<string, typeof LiveQuery>;
}

/** Overrides accepted by `run()` and the CLI. */
export type RunOverrides = Partial<Pick<ResolvedServerOptions, 'host' | 'port' | 'data' | 'workers' | 'trust'>> & OpsOptions & {
  /** A static folder over the Server's `static` option (the CLI's --static). */
  static?: string;
  /** Module path that exports this server; required for the worker threads to load it. */
  appPath?: string;
  /** Durability settings over the Server's (the CLI's --fsync, --snapshot-seconds). */
  durability?: DurabilityOptions;
  /** Install SIGINT/SIGTERM handlers (default true). */
  handleSignals?: boolean;
};

/** A running server, returned by `run()`. */
export interface RunningServer {
  readonly host: string;
  readonly port: number;
  /** The bound admin port (`adminPort`), if any. */
  readonly adminPort: number | undefined;
  /** Graceful, idempotent stop: stop accepting, finish in-flight work, shutdown tasks, save. */
  stop(): Promise<void>;
  /** Resolves when the server has stopped. */
  readonly closed: Promise<void>;
}

export function validatePort(value: unknown, name = 'port'): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw optionError(`${name} must be an integer from 0 to 65535, got ${JSON.stringify(value)}`);
  }
  return n;
}

export function validateWorkers(value: unknown): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 256) {
    throw optionError(`workers must be an integer from 1 to 256, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** uWebSockets.js aborts the whole process (C++ terminate) on an idleTimeout outside 8..960 s. */
function checkUwsLimits(limits: { idleTimeoutSeconds: number }): void {
  const idle = limits.idleTimeoutSeconds;
  if (!Number.isInteger(idle) || idle < 8 || idle > 960) {
    throw optionError(`limits.idleTimeoutSeconds must be an integer from 8 to 960 (uWebSockets.js bounds), got ${idle}`);
  }
}

/** What `run()` starts with: every option resolved and checked before anything is loaded. */
export interface RunSettings {
  options: ResolvedServerOptions;
  /** Absolute path of the module that exports the server (the workers import it). */
  appPath: string;
  durability: Required<DurabilityOptions>;
}

/** Resolves and checks the options of a run (the edge: nothing has started yet). */
export function runSettings(server: Server, overrides: RunOverrides): RunSettings {
  const options = server.resolve(overrides);
  if (!overrides.appPath) {
    throw optionError(
      'the worker threads need the module that exports this server: run it with `lexicons start <app>`, or server.runIfMain(import.meta.url), or server.run({ appPath })',
    );
  }
  checkUwsLimits(options.limits);
  if (server.options.protocol === 'wss' && options.tls === null) throw optionError("protocol 'wss' needs tls: { cert, key } (or lexicons start --cert/--key)");
  if (options.tls) checkTlsFiles(options.tls);
  if (options.static) checkStaticOption(options.static, overrides.static !== undefined ? '--static' : 'static');
  const durability = durabilitySettings(server.options.durability, overrides.durability);
  return { options, appPath: resolve(overrides.appPath), durability };
}

function uniqueByName<C extends Function>(kind: string, items: Iterable<C> | undefined, base: Function): Map<string, C> {
  const out = new Map<string, C>();
  for (const item of items ?? []) {
    if (typeof item !== 'function' || !(item.prototype instanceof base || item === base)) {
      throw optionError(`${kind}: ${String((item as { name?: string })?.name ?? item)} is not a ${base.name} class`);
    }
    const name = componentName(item);
    if (out.has(name)) throw optionError(`${kind}: two components are named ${name}`);
    out.set(name, item);
  }
  return out;
}

/** The module of each Server that called runIfMain (`import.meta.url`): where worker threads find it. */
const appModules = new WeakMap<Server, string>();

/** The module URL a Server gave to `runIfMain`, if it did (lexicons/testing starts such a Server by value). */
export function appModuleOf(server: Server): string | undefined {
  return appModules.get(server);
}

/**
 * An app: its components and options. Generic over its Signals and Headers (inferred from the
 * managers), so `createClient<typeof server>` types calls from the server's own definitions.
 * (Generic over those two, not over the whole options object: an inferred options type would
 * lose the excess-property check that catches a misspelt option name.)
 */
export class Server<S extends SignalSet = SignalSet, H extends HeaderSet = HeaderSet, L extends LiveSet = LiveSet> {
  /** Phantom: the Signals' types (read by `createClient<typeof server>`). Never set. */
  declare readonly '~signals'?: S;
  /** Phantom: the Headers' types (the client's typed `headers` option). Never set. */
  declare readonly '~headers'?: H;
  /** Phantom: the live queries' types (the client's typed `live`). Never set. */
  declare readonly '~live'?: L;
  readonly options: Readonly<ServerOptions>;
  readonly components: Components;

  constructor(options: ServerOptions<S, H, L> = {}) {
    if (options.protocol !== undefined && options.protocol !== 'ws' && options.protocol !== 'wss') {
      throw optionError(`protocol must be 'ws' or 'wss', got ${JSON.stringify(options.protocol)}`);
    }
    if (options.gate !== undefined && typeof options.gate !== 'function') throw optionError('gate must be a function (results: boolean[]) => boolean');
    if (options.anonymous !== undefined && options.anonymous !== 'reject' && options.anonymous !== 'allow') {
      throw optionError(`anonymous must be 'reject' or 'allow', got ${JSON.stringify(options.anonymous)}`);
    }
    for (const hook of ['onConnect', 'onDisconnect', 'onStart', 'onShutdown', 'onLog'] as const) {
      if (options[hook] !== undefined && typeof options[hook] !== 'function') throw optionError(`${hook} must be a function`);
    }
    if (options.port !== undefined) validatePort(options.port);
    if (options.workers !== undefined) validateWorkers(options.workers);
    if (options.limits !== undefined) validateLimits(options.limits);
    if (options.durability !== undefined) validateDurability(options.durability);
    validateOpsOptions(options, validatePort);
    if (options.static !== undefined) resolveStaticOption(options.static);
    this.options = Object.freeze({ ...options });
    const tasks = [...(options.tasks ?? [])];
    for (const task of tasks) {
      if (typeof task !== 'function' || !['startup', 'shutdown', 'interval'].includes((task as TaskClass).kind)) {
        throw optionError(`tasks: ${String((task as { name?: string })?.name ?? task)} is not a Task.Startup, Task.Interval or Task.Shutdown class`);
      }
    }
    const channelRules = new ChannelRules(uniqueByName('channels', options.channels, Channel).values());
    this.components = {
      models: [...(options.models ?? [])],
      signals: uniqueByName('signals', options.signals, Signal),
      headers: uniqueByName('headers', options.headers, Header),
      channels: [...channelRules.declared],
      channelRules,
      tasks,
      live: liveQueries(options.live),
    };
  }

  /** Options merged with environment defaults (HOST, PORT, DATA, TRUST, LEXICONS_TRUST_PROXY, LEXICONS_ADMIN_*, LEXICONS_TLS_*) and overrides. */
  resolve(overrides: RunOverrides = {}, env: NodeJS.ProcessEnv = process.env): ResolvedServerOptions {
    const o = this.options;
    const trust = overrides.trust ?? o.trust ?? (env.TRUST ? env.TRUST.split(',').map((s) => s.trim()).filter(Boolean) : ['*']);
    const host = overrides.host ?? o.host ?? env.HOST ?? 'localhost';
    const port = validatePort(overrides.port ?? o.port ?? env.PORT ?? 5000);
    return {
      ...resolveOps(o, overrides, host, port, env),
      host,
      port,
      data: resolve(overrides.data ?? o.data ?? env.DATA ?? 'data/'),
      trust: trust.length === 0 ? ['*'] : trust,
      origins: o.origins && o.origins.length > 0 ? [...o.origins] : ['*'],
      workers: validateWorkers(overrides.workers ?? o.workers ?? 1),
      debug: o.debug ?? (env.DEBUG === undefined ? true : !['0', 'false', 'False'].includes(env.DEBUG)),
      anonymous: o.anonymous ?? (this.components.headers.size > 0 ? 'reject' : 'allow'),
      limits: { ...DEFAULT_LIMITS, ...o.limits },
      static: resolveStaticOption(overrides.static ?? o.static),
    };
  }

  /** Starts the server on the main thread. `appPath` is the module exporting this server. */
  async run(overrides: RunOverrides = {}): Promise<RunningServer> {
    if (!isMainThread) throw new LexiconsError(ErrorCode.RUNTIME, 'Server.run() must be called on the main thread');
    const { startServer } = await import('./main/runtime.js');
    return startServer(this, overrides);
  }

  /**
   * Runs the server when `moduleUrl` (pass `import.meta.url`) is the entry script of the process:
   * the seed's `python main.py run` habit. A no-op in worker threads and when imported, except
   * that it remembers `moduleUrl` (so `startTestServer(server)` of lexicons/testing finds the module).
   */
  runIfMain(moduleUrl: string, overrides: RunOverrides = {}): Promise<RunningServer> | undefined {
    appModules.set(this, moduleUrl);
    if (!isMainThread || !process.argv[1]) return undefined;
    const self = fileURLToPath(moduleUrl);
    if (resolve(process.argv[1]) !== self && resolve(process.argv[1]) + '.js' !== self) return undefined;
    return this.run({ appPath: self, ...overrides }).catch((err: unknown) => {
      console.error(messageOf(err));
      process.exitCode = 1;
      return undefined as never;
    });
  }
}
