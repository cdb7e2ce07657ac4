/**
 * @module testing/test-server
 * `startTestServer`: an app on a free loopback port with a temp data folder, in this process
 * (`server.run`, real worker threads) or as a child process (`lexicons start`), with typed,
 * connected clients (`ws`), direct access to its database (`app.db`, in-process) and one
 * `await using` that stops everything and removes the temp folder.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { createClient, type Client, type ClientOptions } from '../client/index.js';
import { ErrorCode, LexiconsError } from '../errors.js';
import { storeOf } from '../main/runtime.js';
import { appModuleOf, Server, type RunningServer } from '../server.js';
import { loadApp, resolveAppPath } from '../workers/app-loader.js';
import { startChild, type ChildServer } from './child.js';
import { createTestDb, type TestDb } from './test-db.js';

export interface TestServerOptions {
  /** Worker threads (default 1). */
  workers?: number;
  /** A data folder to open (kept afterwards). Default: a new temp folder, removed at dispose. */
  data?: string;
  /** Run `lexicons start` in a child process instead of this one (no `app.db` then). Default false. */
  child?: boolean;
  /**
   * The module that exports the server, when `startTestServer` is given a Server that did not
   * call `server.runIfMain(import.meta.url)` (worker threads import the app by module).
   */
  module?: string;
  /** Child only: extra environment variables. */
  env?: NodeJS.ProcessEnv;
  /** Child only: how long to wait for it to listen, in ms. Default 30000. */
  startTimeoutMs?: number;
}

/** Options of `app.client()`: the client's, without `url` and `WebSocket` (given). Reconnects are off unless `reconnect` is set. */
export type TestClientOptions<T> = Omit<ClientOptions<T>, 'url' | 'WebSocket'>;

/** A running test server; `await using` (or `stop()`) disposes of it. */
export interface TestServer<T = unknown> extends AsyncDisposable {
  /** `ws://127.0.0.1:<port>/` */
  readonly url: string;
  readonly port: number;
  /** The data folder (a temp folder unless `data` was given). */
  readonly data: string;
  /**
   * A client connected to the server (its state is `open`), typed by the server; rejects with
   * the client's error when it is refused (`AUTH_FAILED`) or not admitted within its `connectTimeoutMs`.
   * Closed when the server is disposed of.
   * @example const ann = await app.client({ headers: { Login: { email: 'ann@example.com', password: 'pw' } } });
   */
  client(options?: TestClientOptions<T>): Promise<Client<T>>;
  /** The server's database (in-process only: `child: true` throws). */
  readonly db: TestDb;
  /** Closes the clients, stops the server gracefully, removes the temp data folder. Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts `app` (a Server, or the path of the module exporting one) on 127.0.0.1, a free port and
 * a temp data folder.
 * @example
 * import { startTestServer } from 'lexicons/testing';
 * import { server } from '../main.js';
 *
 * await using app = await startTestServer(server);
 * const client = await app.client({ headers: { Guest: {} } });
 * assert.deepEqual(await client.call('Echo', { text: 'hi' }), { text: 'hi' });
 */
export async function startTestServer<S extends Server = Server>(app: S | string, options: TestServerOptions = {}): Promise<TestServer<S>> {
  const workers = options.workers ?? 1;
  const appPath = appModulePath(app, options.module);
  const temp = options.data === undefined;
  const data = options.data !== undefined ? resolve(options.data) : await mkdtemp(join(tmpdir(), 'lexicons-test-'));
  try {
    const host = options.child === true ? await startChildHost(appPath, data, workers, options) : await startInProcess(app, appPath, data, workers);
    return testServer<S>(host, data, temp);
  } catch (err) {
    if (temp) await rm(data, { recursive: true, force: true });
    throw err;
  }
}

/** What the two ways of running have in common. */
interface Host {
  port: number;
  db: TestDb | undefined;
  stop(): Promise<void>;
}

function appModulePath(app: Server | string, module: string | undefined): string {
  if (module !== undefined) return resolveAppPath(module);
  if (typeof app === 'string') return resolveAppPath(app);
  const url = appModuleOf(app);
  if (url === undefined) {
    throw new LexiconsError(
      ErrorCode.OPTION,
      'startTestServer: the worker threads import the app by module: call server.runIfMain(import.meta.url) in the module that exports the server, or pass its path (startTestServer(\'./main.ts\') or { module })',
    );
  }
  return fileURLToPath(url);
}

async function startInProcess(app: Server | string, appPath: string, data: string, workers: number): Promise<Host> {
  // Tests read their own output: the server logs only errors unless LEXICONS_LOG says otherwise.
  process.env.LEXICONS_LOG ??= 'errors';
  const server = typeof app === 'string' ? (await loadApp(appPath)).server : app;
  const admin = server.options.adminPort !== undefined ? { adminPort: 0, adminHost: '127.0.0.1' } : {};
  const running: RunningServer = await server.run({ appPath, host: '127.0.0.1', port: 0, workers, data, handleSignals: false, ...admin });
  const parts = storeOf(running);
  let open = true;
  return {
    port: running.port,
    db: parts ? createTestDb(parts.store, parts.wal, () => open) : undefined,
    stop: async () => {
      open = false;
      await running.stop();
    },
  };
}

async function startChildHost(appPath: string, data: string, workers: number, options: TestServerOptions): Promise<Host> {
  const child: ChildServer = await startChild({ app: appPath, data, workers, env: options.env, timeoutMs: options.startTimeoutMs ?? 30_000 });
  return { port: child.port, db: undefined, stop: () => child.stop() };
}

function testServer<S>(host: Host, data: string, temp: boolean): TestServer<S> {
  const url = `ws://127.0.0.1:${host.port}/`;
  const clients = new Set<Client<S>>();
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      for (const client of clients) client.close();
      try {
        await host.stop();
      } finally {
        if (temp) await rm(data, { recursive: true, force: true });
      }
    })());
  return {
    url,
    port: host.port,
    data,
    async client(clientOptions = {}) {
      if (stopping) throw new LexiconsError(ErrorCode.RUNTIME, 'app.client: the test server has stopped');
      const client = createClient<S>({ reconnect: false, ...clientOptions, url, WebSocket: WebSocket as unknown as ClientOptions['WebSocket'] });
      clients.add(client);
      await connected(client);
      return client;
    },
    get db(): TestDb {
      if (!host.db) throw new LexiconsError(ErrorCode.OPTION, 'app.db reads the server\'s store in this process: it is not available with { child: true }');
      return host.db;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Resolves when the client is open; rejects with its error when it closes (or waits to retry) first. */
function connected<T>(client: Client<T>): Promise<void> {
  if (client.state === 'open') return Promise.resolve();
  return new Promise((resolvePromise, reject) => {
    const off = client.onState((event) => {
      if (event.state === 'open') {
        off();
        resolvePromise();
      } else if (event.state === 'closed' || (event.state === 'disconnected' && event.error !== undefined)) {
        off();
        if (event.state === 'disconnected') client.close();
        reject(event.error ?? new LexiconsError(ErrorCode.RUNTIME, `app.client: the connection closed (${event.code} ${event.reason})`));
      }
    });
  });
}
