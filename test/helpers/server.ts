/**
 * Disposable servers for tests: `startApp` runs an app module in this process (real uWS on a
 * loopback port, real worker threads, a temp data folder); `spawnCli` runs
 * `node bin/lexicons.js start ...` as a child process and reads the bound port from the LISTEN
 * log line. Every wait is event-driven and bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LogStatus, RunningServer, RunOverrides } from '../../src/server.js';
import { loadApp } from '../../src/workers/app-loader.js';
import { setTestLogHook } from '../fixtures/apps/log-sink.js';

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

export async function tempDir(prefix = 'lexicons-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export interface LogRecord {
  status: LogStatus;
  data: Record<string, unknown>;
}

export interface TestServer {
  readonly url: string;
  readonly port: number;
  readonly data: string;
  readonly logs: LogRecord[];
  readonly running: RunningServer;
  /** Resolves with the first log record (past or future) matching, bounded in time. */
  waitForLog(match: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Graceful stop; the data folder is kept unless `removeData`. */
  stop(options?: { removeData?: boolean }): Promise<void>;
}

export interface StartOptions {
  workers?: number;
  data?: string;
  trust?: string[];
  /** More run overrides (trustProxy, adminPort, tls, ...). */
  overrides?: RunOverrides;
  /** Default 0 (any free port); a restarted server takes its old port. */
  port?: number;
}

/** Starts an app module in this process on 127.0.0.1, port 0. */
export async function startApp(appPath: string, options: StartOptions = {}): Promise<TestServer> {
  const { server } = await loadApp(appPath);
  const data = options.data ?? (await tempDir());
  const logs: LogRecord[] = [];
  const watchers = new Set<(r: LogRecord) => void>();
  setTestLogHook((status, d) => {
    const record = { status, data: d };
    logs.push(record);
    for (const w of watchers) w(record);
  });
  const running = await server.run({
    appPath,
    host: '127.0.0.1',
    port: options.port ?? 0,
    workers: options.workers ?? 1,
    data,
    handleSignals: false,
    ...(options.trust ? { trust: options.trust } : {}),
    ...options.overrides,
  });
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
        const timer = setTimeout(() => {
          watchers.delete(watch);
          reject(new Error(`no matching log within ${timeoutMs} ms; statuses: ${logs.map((l) => l.status).join(',')}`));
        }, timeoutMs);
        const watch = (r: LogRecord) => {
          if (!match(r)) return;
          clearTimeout(timer);
          watchers.delete(watch);
          resolve(r);
        };
        watchers.add(watch);
      });
    },
    async stop(stopOptions = {}) {
      await running.stop();
      if (stopOptions.removeData) await rm(data, { recursive: true, force: true });
    },
  };
}

export interface CliServer {
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
  /** stdout + stderr so far. */
  output(): string;
  /** Resolves with the exit status. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal (default SIGTERM) and waits for the exit, bounded in time. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
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
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Spawns `lexicons start <args>` and resolves once its LISTEN line reports the port. */
export function spawnCli(args: string[], options: SpawnOptions = {}): Promise<CliServer> {
  return spawnServer([BIN, 'start', ...args], options);
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  cwd?: string;
}

/** Spawns `node <argv>` (a CLI start or an app running itself) and waits for its LISTEN line. */
export function spawnServer(argv: string[], options: SpawnOptions = {}): Promise<CliServer> {
  const child = spawn(process.execPath, argv, { cwd: options.cwd ?? ROOT, env: { ...process.env, LEXICONS_LOG: 'all', ...options.env } });
  let out = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no LISTEN line within ${options.timeoutMs ?? 20000} ms:\n${out}`));
    }, options.timeoutMs ?? 20000);
    let listening = false;
    const onData = (d: Buffer) => {
      out += d.toString();
      const match = listening ? null : /"status":"LISTEN".*?"port":(\d+)/.exec(out);
      if (!match) return;
      listening = true;
      clearTimeout(timer);
      const port = Number(match[1]);
      resolve({
        child,
        port,
        url: `ws://127.0.0.1:${port}`,
        output: () => out,
        exited,
        stop(signal = 'SIGTERM', timeoutMs = 20000) {
          child.kill(signal);
          return Promise.race([
            exited,
            new Promise<never>((_, rej) =>
              setTimeout(() => {
                child.kill('SIGKILL');
                rej(new Error(`did not exit within ${timeoutMs} ms after ${signal}:\n${out}`));
              }, timeoutMs).unref(),
            ),
          ]);
        },
      });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(({ code }) => {
      clearTimeout(timer);
      if (!listening) reject(new Error(`exited (code ${code}) before listening:\n${out}`));
    });
  });
}
