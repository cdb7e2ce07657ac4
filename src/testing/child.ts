/**
 * @module testing/child
 * A test server in a child process: `node <package>/bin/lexicons.js start <app> --port 0 ...`,
 * with JSON logs on stderr; its LISTEN line gives the bound port. Stopped with SIGTERM (the
 * graceful shutdown), SIGKILL if it has not exited in time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ErrorCode, LexiconsError } from '../errors.js';

/** The package's launcher (dist/src/testing/ → bin/), in the repository and in node_modules alike. */
const BIN = fileURLToPath(new URL('../../../bin/lexicons.js', import.meta.url));

export interface ChildServer {
  readonly port: number;
  /** Everything the child wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then the exit (SIGKILL after `timeoutMs`); rejects when the exit was not clean. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface ChildStart {
  app: string;
  data: string;
  workers: number;
  env?: NodeJS.ProcessEnv | undefined;
  /** How long to wait for the LISTEN line (ms). */
  timeoutMs: number;
}

/** Spawns `lexicons start` and resolves once it listens; rejects (with its output) if it exits or times out first. */
export function startChild(options: ChildStart): Promise<ChildServer> {
  const args = [BIN, 'start', options.app, '--host', '127.0.0.1', '--port', '0', '--workers', String(options.workers), '--data', options.data];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...options.env, LEXICONS_LOG: 'info', LEXICONS_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    let port = 0;
    const fail = (why: string) => {
      child.kill('SIGKILL');
      reject(new LexiconsError(ErrorCode.RUNTIME, `startTestServer: lexicons start ${options.app} ${why}:\n${out}`));
    };
    const timer = setTimeout(() => fail(`did not listen within ${options.timeoutMs} ms`), options.timeoutMs);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (port !== 0) return;
      const match = /"status":"LISTEN".*?"port":(\d+)/.exec(out);
      if (!match) return;
      port = Number(match[1]);
      clearTimeout(timer);
      resolve({ port, output: () => out, stop: (timeoutMs = 20_000) => stopChild(child, exited, timeoutMs, () => out) });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then(({ code, signal }) => {
      if (port !== 0) return;
      clearTimeout(timer);
      reject(new LexiconsError(ErrorCode.RUNTIME, `startTestServer: lexicons start ${options.app} exited (${signal ?? `code ${code}`}) before listening:\n${out}`));
    });
  });
}

async function stopChild(
  child: ChildProcess,
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  timeoutMs: number,
  output: () => string,
): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const result = await Promise.race([exited, deadline]);
  clearTimeout(timer);
  if (result === 'timeout') {
    child.kill('SIGKILL');
    await exited;
    throw new LexiconsError(ErrorCode.RUNTIME, `startTestServer: the server did not stop within ${timeoutMs} ms of SIGTERM (killed):\n${output()}`);
  }
  if (result.code !== 0) {
    throw new LexiconsError(ErrorCode.RUNTIME, `startTestServer: the server exited with ${result.signal ?? `code ${result.code}`} on SIGTERM:\n${output()}`);
  }
}
