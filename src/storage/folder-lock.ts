/**
 * @module storage/folder-lock
 * One process per data folder, and a lock that dies with its process.
 *
 * The lock is a Unix domain socket bound in the folder (`lexicons.lock.sock`) and kept listening
 * while the folder is open. The kernel closes it when its process ends, however it ends (kill -9
 * included): a live owner's socket accepts a connection, a dead owner's leftover file refuses it
 * (ECONNREFUSED) whatever became of its pid (reused by another process, or a zombie its parent
 * has not reaped yet). So a start right after a crash (systemd `Restart=always`, 100 ms later)
 * takes the folder over, and a start beside a running server is refused. `lexicons.lock` next to
 * it holds the owner's pid for people and `lexicons check`; it decides nothing.
 *
 * Taking over a leftover socket is two steps (unlink, bind): two processes starting at once could
 * each remove the other's fresh socket. On Linux they take turns through a gate, an
 * abstract-namespace socket named after the folder's device and inode (freed by the kernel on
 * death as well, and held only while taking the lock); binding a fresh folder is atomic anyway.
 */
import { createServer, connect, type Server } from 'node:net';
import { open, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ErrorCode, LexiconsError } from '../errors.js';
import { errnoCode, ioError, isNotFound } from './file-system.js';

/** The pid file's name inside the data folder (`lexicons check` reads it too). */
export const LOCK_FILE = 'lexicons.lock';
/** The lock socket's name inside the data folder. */
export const LOCK_SOCKET = 'lexicons.lock.sock';

/** Bytes of a socket path (sun_path is 108 bytes with its NUL on Linux); Node truncates longer ones. */
const MAX_SOCKET_PATH = 107;
/** How long a start waits for another process taking the same folder's lock (it takes ms). */
const GATE_WAIT_MS = 10_000;

/** Folders this process holds. */
const held = new Set<string>();

/**
 * Takes the data folder `root` (an absolute path): binds its lock socket, taking over one left by
 * a dead process, and writes the pid file. Refuses (IO) while another process holds it. Returns
 * the release, which closes the socket and removes both files.
 */
export async function lockDataFolder(root: string): Promise<() => Promise<void>> {
  if (held.has(root)) throw new LexiconsError(ErrorCode.IO, `data folder ${root} is already open in this process`);
  held.add(root);
  let path: SocketPath | null = null;
  try {
    path = await socketPath(root);
    const pidFile = join(root, LOCK_FILE);
    // The pid file is written under the gate too: whoever is refused next reads this pid.
    const socket = await withGate(root, async () => {
      const bound = await bindLock(root, path!.path);
      await writeFile(pidFile, `${process.pid}\n`).catch(async (err: unknown) => {
        await closeServer(bound);
        throw ioError(`cannot lock data folder ${root}`, err);
      });
      return bound;
    });
    const opened = path;
    let released: Promise<void> | null = null;
    return () =>
      (released ??= (async () => {
        await unlink(pidFile).catch(() => undefined);
        await closeServer(socket); // removes the socket file (libuv unlinks a pipe it bound)
        await opened.done();
        held.delete(root);
      })());
  } catch (err) {
    await path?.done();
    held.delete(root);
    throw err;
  }
}

/**
 * The pid in `root`'s pid file when a live process holds the folder (0 when that file cannot be
 * read), or null when none does (no lock, or one left by a dead process).
 */
export async function folderLockHolder(root: string): Promise<number | null> {
  const path = await socketPath(root);
  try {
    if ((await probe(path.path)) !== 'live') return null;
  } finally {
    await path.done();
  }
  const pid = Number((await readFile(join(root, LOCK_FILE), 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 0 ? pid : 0;
}

/** Binds the lock socket at `path`, replacing a dead owner's leftover; the listening server. */
async function bindLock(root: string, path: string): Promise<Server> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const bound = await listen(path);
    if (!(bound instanceof Error)) return bound;
    if (errnoCode(bound) !== 'EADDRINUSE') throw ioError(`cannot lock data folder ${root} (bind ${path})`, bound);
    const state = await probe(path);
    if (state === 'live') {
      const pid = (await readFile(join(root, LOCK_FILE), 'utf8').catch(() => '')).trim() || 'unknown';
      throw new LexiconsError(ErrorCode.IO, `data folder ${root} is in use by process ${pid} (${join(root, LOCK_SOCKET)} accepts connections); stop it first`);
    }
    if (state instanceof Error) throw ioError(`cannot lock data folder ${root}: cannot tell whether ${join(root, LOCK_SOCKET)} is held`, state);
    // 'stale' (its process is gone) or 'gone' (removed meanwhile): remove it and bind again.
    await unlink(path).catch((err: unknown) => {
      if (!isNotFound(err)) throw ioError(`cannot lock data folder ${root} (remove the stale ${join(root, LOCK_SOCKET)})`, err);
    });
  }
  throw new LexiconsError(ErrorCode.IO, `cannot lock data folder ${root}: its lock socket kept changing (another process starting on it?)`);
}

/** Whether something accepts on the socket at `path` ('stale': refused, 'gone': no file). */
function probe(path: string): Promise<'live' | 'stale' | 'gone' | Error> {
  return new Promise((resolve) => {
    const client = connect(path);
    client.once('connect', () => {
      client.destroy();
      resolve('live');
    });
    client.once('error', (err) => {
      const code = errnoCode(err);
      resolve(code === 'ECONNREFUSED' ? 'stale' : code === 'ENOENT' ? 'gone' : err);
    });
  });
}

/** A listening server at `path` that accepts and drops every connection, or the bind error. */
function listen(path: string): Promise<Server | Error> {
  return new Promise((resolve) => {
    const server = createServer((socket) => socket.destroy());
    const onError = (err: Error) => resolve(err);
    server.once('error', onError);
    server.listen(path, () => {
      server.off('error', onError);
      server.on('error', () => undefined); // a failed accept must not crash the process
      server.unref(); // the lock never keeps the process alive
      resolve(server);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

interface SocketPath {
  readonly path: string;
  done(): Promise<void>;
}

/**
 * The lock socket's path: `root/lexicons.lock.sock` when it fits in a socket address, else (Linux)
 * the same file reached through a descriptor of `root`, `/proc/self/fd/<fd>/lexicons.lock.sock`,
 * kept open until `done()`.
 */
async function socketPath(root: string): Promise<SocketPath> {
  const direct = join(root, LOCK_SOCKET);
  if (Buffer.byteLength(direct) <= MAX_SOCKET_PATH) return { path: direct, done: async () => undefined };
  if (process.platform !== 'linux') {
    throw new LexiconsError(ErrorCode.IO, `cannot lock data folder ${root}: its path is too long for the lock socket (at most ${MAX_SOCKET_PATH - LOCK_SOCKET.length - 1} bytes here)`);
  }
  let dir;
  try {
    dir = await open(root, 'r');
  } catch (err) {
    throw ioError(`cannot lock data folder ${root}`, err);
  }
  const handle = dir;
  return { path: `/proc/self/fd/${handle.fd}/${LOCK_SOCKET}`, done: () => handle.close() };
}

/** Runs `take` while holding the folder's takeover gate (Linux; elsewhere, directly). */
async function withGate<T>(root: string, take: () => Promise<T>): Promise<T> {
  if (process.platform !== 'linux') return take();
  let id;
  try {
    id = await stat(root, { bigint: true });
  } catch (err) {
    throw ioError(`cannot lock data folder ${root}`, err);
  }
  const name = `\0lexicons-folder-lock/${id.dev}/${id.ino}`;
  const deadline = Date.now() + GATE_WAIT_MS;
  let gate: Server | Error;
  while ((gate = await listen(name)) instanceof Error) {
    if (errnoCode(gate) !== 'EADDRINUSE') throw ioError(`cannot lock data folder ${root} (gate)`, gate);
    if (Date.now() > deadline) throw new LexiconsError(ErrorCode.IO, `cannot lock data folder ${root}: another process kept taking its lock for ${GATE_WAIT_MS / 1000} s`);
    await delay(2); // another process is taking this folder's lock right now: it takes ms
  }
  try {
    return await take();
  } finally {
    await closeServer(gate);
  }
}
