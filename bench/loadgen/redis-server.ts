/**
 * @module bench/loadgen/redis-server
 * A real `redis-server` for the cluster tests (test/cluster) and bench/cluster.ts: on a free loopback port, with its own temp `--dir`, AOF on
 * (`appendfsync always`: an acknowledged XADD is on disk), no RDB snapshots. `stop()` and
 * `start()` restart it on the same port and folder (the AOF brings the streams back). Tests that
 * need it skip with {@link redisSkip} (a printed reason) when the binary is absent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './servers.js';

/** A folder removed (with everything in it) at dispose. */
interface TempDir extends AsyncDisposable {
  readonly path: string;
}

async function tempDir(prefix: string): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true, maxRetries: 5 }) };
}

export const REDIS_SERVER = process.env.LEXICONS_REDIS_SERVER ?? '/usr/bin/redis-server';

/** False when redis-server is there, else why the cluster tests are skipped. */
export const redisSkip: string | false = existsSync(REDIS_SERVER) ? false : `${REDIS_SERVER} is absent (apt-get install redis-server; .ci/run installs it)`;

export class RedisServer implements AsyncDisposable {
  readonly port: number;
  readonly #dir: TempDir;
  #child: ChildProcess | null = null;
  #out = '';

  private constructor(port: number, dir: TempDir) {
    this.port = port;
    this.#dir = dir;
  }

  static async start(): Promise<RedisServer> {
    const redis = new RedisServer(await freePort(), await tempDir('lexicons-redis-'));
    await redis.start();
    return redis;
  }

  /** The running redis-server's pid (null while stopped). */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts redis-server (again) and resolves once it accepts connections. */
  async start(timeoutMs = 15_000): Promise<void> {
    if (this.#child) throw new Error('redis-server is already running');
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.#dir.path, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--logfile', ''];
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`redis-server did not start within ${timeoutMs} ms:\n${this.#out}`)), timeoutMs);
      const onData = (d: Buffer): void => {
        this.#out += d.toString();
        if (this.#out.includes('Ready to accept connections')) finish();
      };
      const onExit = (): void => finish(new Error(`redis-server exited at start:\n${this.#out}`));
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
        if (err) reject(err);
        else resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (d: Buffer) => (this.#out += d.toString()));
      child.once('exit', onExit);
    });
  }

  /** Stops redis-server (SIGTERM: it flushes the AOF; SIGKILL: a crash) and waits for its exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop('SIGKILL');
    await this.#dir[Symbol.asyncDispose]();
  }
}
