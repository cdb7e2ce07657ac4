/**
 * @module bench/loadgen/servers
 * The systems under test, each started as a child process on a loopback port and stopped with
 * SIGTERM: the raw uWS peer (the limit), the Socket.IO peer (the usual choice), and lexicons
 * through its CLI with 1 or 2 workers. Readiness is an event: the peer's `listening` line, or
 * lexicons answering on its port; never a fixed sleep.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { HashKind } from './dataset.js';
import type { ProtocolName } from './protocols.js';

export type SystemName = 'uws-raw' | 'uws-wrap' | 'socketio' | 'lexicons-w1' | 'lexicons-w2' | 'lexicons-w1-nohist' | 'lexicons-w2-nohist' | 'baseline-w1' | 'baseline-w2';

export interface SystemSpec {
  name: SystemName;
  /** What the results table calls it. */
  label: string;
  protocol: ProtocolName;
}

export const SYSTEMS: Record<SystemName, SystemSpec> = {
  'uws-raw': { name: 'uws-raw', label: 'raw uWS.js (limit)', protocol: 'lexicons' },
  'uws-wrap': { name: 'uws-wrap', label: 'raw uWS.js, no JSON (generator ceiling)', protocol: 'lexicons' },
  socketio: { name: 'socketio', label: 'Socket.IO 4.8', protocol: 'socketio' },
  'lexicons-w1': { name: 'lexicons-w1', label: 'lexicons --workers 1', protocol: 'lexicons' },
  'lexicons-w2': { name: 'lexicons-w2', label: 'lexicons --workers 2', protocol: 'lexicons' },
  // The same app with LEXICONS_BENCH_HISTORY=off: Public without history and presence.
  'lexicons-w1-nohist': { name: 'lexicons-w1-nohist', label: 'lexicons --workers 1, Public without history/presence', protocol: 'lexicons' },
  'lexicons-w2-nohist': { name: 'lexicons-w2-nohist', label: 'lexicons --workers 2, Public without history/presence', protocol: 'lexicons' },
  // Another build of lexicons (env LEXICONS_BASELINE = the root of a built checkout, e.g. a git
  // worktree of the commit before a change): before/after figures side by side in one run.
  'baseline-w1': { name: 'baseline-w1', label: 'baseline lexicons --workers 1', protocol: 'lexicons' },
  'baseline-w2': { name: 'baseline-w2', label: 'baseline lexicons --workers 2', protocol: 'lexicons' },
};

export interface ServerOptions {
  /** Seeded rows for the `read` workload (peers: in memory; lexicons: CSV written to `dataDir`). */
  rows: number;
  channels: number;
  users: number;
  hash: HashKind;
  /** lexicons only: the data folder (the caller seeds and removes it). */
  dataDir?: string;
  /** Time allowed to start (loading a million rows included). */
  startTimeoutMs: number;
}

export interface RunningSystem {
  spec: SystemSpec;
  pid: number;
  port: number;
  /** Last lines the server printed (for error reports). */
  output(): string;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const ROOT = fileURLToPath(new URL('../../../', import.meta.url)); // dist/bench/loadgen -> repo root
const DIST = fileURLToPath(new URL('../../', import.meta.url)); // dist/

/**
 * Paths the lexicons system needs; absent ones mean lexicons is not ready to benchmark.
 * `baseline`: the checkout named by env LEXICONS_BASELINE instead of this one.
 */
export function lexiconsPaths(baseline = false): { cli: string; app: string; root: string } {
  if (!baseline) return { cli: `${ROOT}bin/lexicons.js`, app: `${DIST}bench/app/main.js`, root: ROOT };
  const root = process.env.LEXICONS_BASELINE;
  if (root === undefined || root === '') throw new Error('the baseline systems need env LEXICONS_BASELINE (the root of another built lexicons checkout)');
  const dir = root.endsWith('/') ? root : `${root}/`;
  return { cli: `${dir}bin/lexicons.js`, app: `${dir}dist/bench/app/main.js`, root: dir };
}

/** Why lexicons cannot be benchmarked yet, or null when its CLI and the bench app exist. */
export function lexiconsMissing(baseline = false): string | null {
  const { cli, app } = lexiconsPaths(baseline);
  if (!existsSync(cli)) return `lexicons CLI not found (${cli})`;
  if (!existsSync(app)) return `bench app not built (${app}; write bench/app/main.ts)`;
  return null;
}

/** lexicons itself or its baseline build (both need a data folder and run through the CLI). */
export function isLexiconsSystem(name: SystemName): boolean {
  return name.startsWith('lexicons') || name.startsWith('baseline');
}

/** A free loopback port (bound, read, released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export async function startSystem(name: SystemName, options: ServerOptions): Promise<RunningSystem> {
  const spec = SYSTEMS[name];
  const seed = ['--rows', String(options.rows), '--channels', String(options.channels), '--users', String(options.users), '--hash', options.hash];
  let child: ChildProcess;
  let port = 0;
  if (name === 'uws-raw' || name === 'uws-wrap') {
    child = spawn(process.execPath, [`${DIST}bench/peers/uws-raw.js`, ...seed, ...(name === 'uws-wrap' ? ['--wrap'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  } else if (name === 'socketio') {
    child = spawn(process.execPath, [`${DIST}bench/peers/socketio-chat.js`, ...seed], { stdio: ['ignore', 'pipe', 'pipe'] });
  } else {
    const baseline = name.startsWith('baseline-');
    const missing = lexiconsMissing(baseline);
    if (missing !== null) throw new Error(missing);
    if (options.dataDir === undefined) throw new Error('lexicons needs a data folder');
    const { cli, app, root } = lexiconsPaths(baseline);
    port = await freePort();
    const workers = name.includes('-w2') ? '2' : '1';
    // Env LEXICONS_BENCH_NODE_ARGS: extra node flags for the lexicons server (e.g. `--cpu-prof
    // --cpu-prof-dir=/tmp/prof`, which NODE_OPTIONS refuses), to profile it under the workload.
    const nodeArgs = (process.env.LEXICONS_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
    child = spawn(process.execPath, [...nodeArgs, cli, 'start', app, '--workers', workers, '--port', String(port), '--data', options.dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: root,
      env: { ...process.env, HOST: '127.0.0.1', DEBUG: 'false', ...(name.endsWith('-nohist') ? { LEXICONS_BENCH_HISTORY: 'off' } : {}) },
    });
  }
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  };
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (graceMs = 15_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  try {
    if (port === 0) port = await listeningLine(child, options.startTimeoutMs, keep);
    else {
      child.stdout!.on('data', keep);
      await waitForPort(port, options.startTimeoutMs, exited);
    }
  } catch (error) {
    await stop(2000);
    throw new Error(`${spec.label} did not start: ${(error as Error).message}\n${lines.join('\n')}`);
  }
  return { spec, pid: child.pid!, port, output: () => lines.join('\n'), stop };
}

/** Resolve with the port of the peer's `{"listening":port}` stdout line. */
function listeningLine(child: ChildProcess, timeoutMs: number, keep: (chunk: Buffer) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no listening line within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with code ${code} before listening`));
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const m = /\{"listening":(\d+)/.exec(text);
      if (m) {
        clearTimeout(timer);
        child.stdout!.removeAllListeners('data');
        child.stdout!.on('data', keep);
        resolve(Number(m[1]));
      }
    });
  });
}

/**
 * Poll `GET /health` every 50 ms until the server answers (any HTTP status: the port is served),
 * the process exits, or the time runs out.
 */
export async function waitForPort(port: number, timeoutMs: number, exited?: Promise<unknown>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void exited?.then(() => {
    gone = true;
  });
  while (Date.now() < deadline) {
    if (gone) throw new Error('exited before listening');
    if (await probe(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`port ${port} not answering within ${timeoutMs} ms`);
}

function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/health', timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}
