/**
 * Disposable servers for tests: `startApp` runs an app module in this process (real uWS on a
 * loopback port, real worker threads, a temp data folder), `suiteApp` does so for all the tests
 * of a `describe`; `spawnCli` runs `node bin/lexicons.js start ...` as a child process and reads
 * the bound port from the LISTEN log line. Every wait is event-driven and bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { LogStatus, RunningServer, RunOverrides } from '../../src/server.js';
import { loadApp } from '../../src/workers/app-loader.js';
import { setTestLogHook } from '../fixtures/apps/log-sink.js';
import { expireAfter } from './client.js';
import { tempDir } from './temp-dir.js';

// Apps without their own onLog are silent in tests (LEXICONS_TEST_VERBOSE=1: everything).
process.env.LEXICONS_LOG ??= process.env.LEXICONS_TEST_VERBOSE ? 'all' : 'silent';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'lexicons.js');
export const CHAT_APP = fileURLToPath(new URL('../../examples/chat/main.js', import.meta.url));

/** Compiled fixture app (dist/test/fixtures/apps/<name>.js). */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`../fixtures/apps/${name}.js`, import.meta.url));
}

/** TypeScript source of a fixture app (run through tsx). */
export function fixtureSource(name: string): string {
  return join(ROOT, 'test', 'fixtures', 'apps', `${name}.ts`);
}

export interface LogRecord {
  status: LogStatus;
  data: Record<string, unknown>;
}

/**
 * A server running in this process. Disposable: `await using srv = await startApp(...)` stops it
 * when the scope ends (if the test has not) and removes the data folder `startApp` created.
 */
export interface TestServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  readonly data: string;
  readonly logs: LogRecord[];
  readonly running: RunningServer;
  /** Resolves with the first log record (past or future) matching, bounded in time. */
  waitForLog(match: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Graceful, idempotent stop; the data folder is kept (for a restart on it) until dispose. */
  stop(): Promise<void>;
}

export interface StartOptions {
  workers?: number;
  /** A data folder the caller owns (kept at dispose); default: a fresh temp folder, removed at dispose. */
  data?: string;
  trust?: string[];
  /** More run overrides (trustProxy, adminPort, tls, ...). */
  overrides?: RunOverrides;
  /** Default 0 (any free port); a restarted server takes its old port. */
  port?: number;
  /** Writes files into the data folder before the server starts (e.g. CSV files of the original). */
  prepareData?: (data: string) => Promise<void>;
}

/** Starts an app module in this process on 127.0.0.1 (port 0 unless `port` is given). */
export async function startApp(appPath: string, options: StartOptions = {}): Promise<TestServer> {
  const { server } = await loadApp(appPath);
  const owned = options.data === undefined ? await tempDir() : undefined;
  const data = options.data ?? owned!.path;
  const logs: LogRecord[] = [];
  const watchers = new Set<(r: LogRecord) => void>();
  setTestLogHook((status, d) => {
    const record = { status, data: d };
    logs.push(record);
    for (const w of watchers) w(record);
  });
  let running: RunningServer;
  try {
    await options.prepareData?.(data);
    running = await server.run({
      appPath,
      host: '127.0.0.1',
      port: options.port ?? 0,
      workers: options.workers ?? 1,
      data,
      handleSignals: false,
      ...(options.trust ? { trust: options.trust } : {}),
      ...options.overrides,
    });
  } catch (err) {
    await owned?.[Symbol.asyncDispose]();
    throw err;
  }
  const stop = () => running.stop();
  return {
    url: `ws://127.0.0.1:${running.port}`,
    port: running.port,
    data,
    logs,
    running,
    waitForLog(match, timeoutMs = 5000) {
      const found = logs.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const cancel = expireAfter(timeoutMs, () => {
          watchers.delete(watch);
          reject(new Error(`no matching log within ${timeoutMs} ms; statuses: ${logs.map((l) => l.status).join(',')}`));
        });
        const watch = (r: LogRecord) => {
          if (!match(r)) return;
          cancel();
          watchers.delete(watch);
          resolve(r);
        };
        watchers.add(watch);
      });
    },
    stop,
    async [Symbol.asyncDispose]() {
      try {
        await stop();
      } finally {
        await owned?.[Symbol.asyncDispose]();
      }
    },
  };
}

/**
 * A fixture for all the tests of the enclosing `describe`: `start` runs in the suite's `before`
 * hook and the result is disposed in its `after` hook, the suite-wide form of `await using`.
 * The returned handle forwards every property read to that fixture, so test bodies use it as
 * they would the fixture itself; reading it outside the suite's tests throws.
 *
 * Unlike `await using`, node:test runs `after` hooks in the order they were declared: a fixture
 * that must be gone before another one goes (a server on a folder the suite owns) belongs in the
 * same `start`, or in hooks of its own.
 */
export function forSuite<T extends AsyncDisposable>(what: string, start: () => Promise<T>): T {
  let current: T | undefined;
  before(async () => {
    current = await start();
  });
  after(async () => {
    const done = current;
    current = undefined;
    await done?.[Symbol.asyncDispose]();
  });
  return new Proxy({} as T, {
    get(_target, key) {
      if (!current) throw new Error(`${what} is not running (used outside the suite's tests?)`);
      const value: unknown = Reflect.get(current, key);
      return typeof value === 'function' ? value.bind(current) : value;
    },
  });
}

/** One in-process server ({@link startApp}) for all the tests of the enclosing `describe`. */
export function suiteApp(appPath: string, options: StartOptions = {}): TestServer {
  return forSuite(`the server of ${appPath}`, () => startApp(appPath, options));
}

/**
 * One spawned server ({@link spawnCli}) for all the tests of the enclosing `describe`, on a
 * fresh temp data folder (`args` gets its path) removed after the server has stopped.
 */
export function suiteCli(args: (data: string) => string[], options: SpawnOptions = {}): CliServer {
  return forSuite(`lexicons start ${args('<data>').join(' ')}`, async () => {
    const data = await tempDir();
    let srv: CliServer;
    try {
      srv = await spawnCli(args(data.path), options);
    } catch (err) {
      await data[Symbol.asyncDispose]();
      throw err;
    }
    return {
      ...srv,
      async [Symbol.asyncDispose]() {
        try {
          await srv[Symbol.asyncDispose]();
        } finally {
          await data[Symbol.asyncDispose]();
        }
      },
    };
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A server in a child process. Disposable: `await using srv = await spawnCli(...)` stops it
 * (SIGTERM, then SIGKILL after 20 s) when the scope ends, unless it has exited already.
 */
export interface CliServer extends AsyncDisposable {
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
  /** stdout + stderr so far. */
  output(): string;
  /**
   * Resolves with the first match of `pattern` in the output at or after offset `from` (past or
   * future); rejects when the process ends first or after `timeoutMs`.
   */
  waitForOutput(pattern: RegExp, from?: number, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves with the exit status once the process has exited and its output is all read. */
  readonly exited: Promise<Exit>;
  /** Sends a signal (default SIGTERM) and waits for the exit, bounded in time. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (for --help, bad options), bounded in time. */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  return runCliNode([BIN, ...args], options);
}

/** Runs `node <argv>` to completion, bounded in time. */
export function runCliNode(argv: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  const args = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: options.cwd ?? ROOT, env: { ...process.env, ...options.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`lexicons ${args.join(' ')} did not exit within ${options.timeoutMs ?? 15000} ms\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 15000);
    // 'close', not 'exit': 'close' comes once stdout and stderr are drained.
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A loopback port that was free a moment ago (bound and released: a tiny race, fine in tests). */
export async function freePort(): Promise<number> {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  probe.close();
  await once(probe, 'close');
  return port;
}

/** Spawns `lexicons start <args>` and resolves once its LISTEN line reports the port. */
export function spawnCli(args: string[], options: SpawnOptions = {}): Promise<CliServer> {
  return spawnServer([BIN, 'start', ...args], options);
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** The program `argv` is given to (default: this Node), e.g. `npx` for an installed package's bin. */
  command?: string;
  /**
   * Run it in its own process group and signal the whole group (as systemd signals a service's
   * cgroup): `npx` does not pass SIGTERM on to the program it started.
   */
  group?: boolean;
  timeoutMs?: number;
  cwd?: string;
}

/** Spawns `node <argv>` (a CLI start or an app running itself) and waits for its LISTEN line. */
export async function spawnServer(argv: string[], options: SpawnOptions = {}): Promise<CliServer> {
  const child = spawn(options.command ?? process.execPath, argv, { cwd: options.cwd ?? ROOT, env: { ...process.env, LEXICONS_LOG: 'all', ...options.env }, detached: options.group === true });
  const kill = (signal: NodeJS.Signals): void => {
    if (options.group && child.pid !== undefined) {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // the group has no process left
      }
    } else child.kill(signal);
  };
  let out = '';
  let ended = false;
  const onData = (d: Buffer) => (out += d.toString());
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  // 'close', not 'exit': 'close' comes once stdout and stderr are drained, so output() is complete.
  const exited = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => {
      ended = true;
      resolve({ code, signal });
    }),
  );
  const waitForOutput = (pattern: RegExp, from = 0, timeoutMs = 15_000) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const re = new RegExp(pattern.source, pattern.flags.replace('g', '') + 'g');
      const check = () => {
        re.lastIndex = from;
        const m = re.exec(out);
        if (m) finish(() => resolve(m));
        else if (ended) finish(() => reject(new Error(`the process ended before printing ${pattern}:\n${out.slice(-2000)}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${out.slice(-2000)}`))), timeoutMs);
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        child.stdout.off('data', check);
        child.stderr.off('data', check);
        child.off('close', check);
        settle();
      };
      // Listeners after onData (so `out` already holds the chunk), then a check of what is there.
      child.stdout.on('data', check);
      child.stderr.on('data', check);
      child.once('close', check);
      check();
    });
  const stop = (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<Exit> => {
    if (ended) return exited;
    kill(signal);
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          kill('SIGKILL');
          reject(new Error(`did not exit within ${timeoutMs} ms after ${signal}:\n${out}`));
        }, timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  };
  let listen: RegExpExecArray;
  try {
    listen = await waitForOutput(/"status":"LISTEN".*?"port":(\d+)/, 0, options.timeoutMs ?? 20_000);
  } catch (err) {
    kill('SIGKILL');
    throw err;
  }
  const port = Number(listen[1]);
  return {
    child,
    port,
    url: `ws://127.0.0.1:${port}`,
    output: () => out,
    waitForOutput,
    exited,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}
