/**
 * @module main/sessions
 * Sessions of lexicons.v1 connections (docs/channels.md "Session resume", "Exactly-once calls"),
 * in main-thread memory (a restart forgets them; history positions still work).
 *
 * Every admitted v1 connection has a session; `$connected` hands out its resume token (32 random
 * bytes, base64url), a fresh one each time. The token is bound to the client address and is
 * single use; after the connection closed it stays valid for `limits.resumeGraceSeconds`, then
 * the session expires: its presence memberships end and its keyed outcomes are forgotten. A clean
 * close (1000, 1001) ends the session at once. `$connect` with a valid token restores `auth`,
 * `meta` and the channels without running the Headers (main/v1-admission.ts).
 *
 * Keyed calls: a call with `$key` is registered when its frame is queued; its outcome (the items
 * of its terminal frame, untagged) is kept for the last {@link MAX_KEYED_OUTCOMES} keys. A call
 * replayed with a key already known is not run again: it is answered with the kept outcome,
 * tagged with its own `$id`, or, while the first is still queued or running, when that one
 * finishes. A key whose call ended without an outcome (its job failed before the commit) is
 * forgotten, and the replays that waited for it run.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Json } from '../components.js';
import { scanCallKeys } from '../call-ids.js';
import { tagItem } from '../item-text.js';
import type { SocketConnection } from './socket-connection.js';

/** Keyed outcomes a session keeps (the oldest go first). */
export const MAX_KEYED_OUTCOMES = 256;

/** A replay waiting for the first run of its key. */
interface Waiter {
  readonly conn: SocketConnection;
  /** The replay's `$id` as JSON text. */
  readonly idText: string;
  /** The replay's call, as JSON text (run if the first run ends without an outcome). */
  readonly callText: string;
}

interface KeyState {
  /** The outcome's items, untagged; undefined while the first run is queued or running. */
  outcome: string[] | undefined;
  waiters: Waiter[];
}

export interface Session {
  /** Stable across resumes: the presence member id. */
  readonly id: string;
  token: string;
  readonly address: string;
  /** The connection it runs on, or null while none (in its grace period). */
  conn: SocketConnection | null;
  /** What a resume restores (saved when its connection closes). */
  auth: Json | undefined;
  meta: Json | undefined;
  channels: string[];
  timer: ReturnType<typeof setTimeout> | undefined;
  readonly keys: Map<string, KeyState>;
  /** Keys with an outcome, oldest first (for eviction). */
  readonly done: string[];
}

export interface SessionHooks {
  /** The session ended (expired, or closed cleanly): its presence memberships end. */
  expired(session: Session): void;
  /** Runs a replayed call whose first run ended without an outcome. */
  run(conn: SocketConnection, callText: string, keys: string[]): void;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export class Sessions {
  readonly #byToken = new Map<string, Session>();
  readonly #graceMs: number;
  readonly #hooks: SessionHooks;
  readonly #live = new Set<Session>();

  constructor(graceSeconds: number, hooks: SessionHooks) {
    this.#graceMs = graceSeconds * 1000;
    this.#hooks = hooks;
  }

  /** Live sessions (connected or in their grace period). */
  get size(): number {
    return this.#live.size;
  }

  /** A new session for an admitted v1 connection. */
  open(conn: SocketConnection): Session {
    const session: Session = { id: randomUUID(), token: '', address: conn.address, conn, auth: undefined, meta: undefined, channels: [], timer: undefined, keys: new Map(), done: [] };
    conn.session = session;
    this.#live.add(session);
    return session;
  }

  /** A fresh resume token for the session (the previous one stops working). */
  issue(session: Session): string {
    if (session.token !== '') this.#byToken.delete(session.token);
    session.token = randomBytes(32).toString('base64url');
    this.#byToken.set(session.token, session);
    return session.token;
  }

  /**
   * The session of a token, taken over by `conn`, or undefined (unknown, used, expired, or from
   * another address). The token is used up either way; a connection still holding the session is
   * detached from it (returned as `previous`, for the caller to close).
   */
  resume(token: string, conn: SocketConnection): { session: Session; previous: SocketConnection | null } | undefined {
    const session = this.#byToken.get(token);
    if (session === undefined) return undefined;
    this.#byToken.delete(token);
    session.token = '';
    if (session.address !== conn.address) return undefined;
    clearTimeout(session.timer);
    session.timer = undefined;
    const previous = session.conn !== null && session.conn !== conn ? session.conn : null;
    if (previous !== null) this.#save(session, previous);
    session.conn = conn;
    conn.session = session;
    conn.auth = session.auth;
    conn.meta = session.meta;
    return { session, previous };
  }

  #save(session: Session, conn: SocketConnection): void {
    session.auth = conn.auth;
    session.meta = conn.meta;
    session.channels = [...conn.channels];
  }

  /** The session's connection closed: clean (1000/1001) ends it now; else its grace period starts. */
  closed(conn: SocketConnection, clean: boolean): void {
    const session = conn.session;
    if (session === null || session.conn !== conn) return;
    this.#save(session, conn);
    session.conn = null;
    if (clean) return this.end(session);
    session.timer = setTimeout(() => this.end(session), this.#graceMs);
    session.timer.unref();
  }

  /** Ends a session: no resume, no replays; presence memberships end. */
  end(session: Session): void {
    clearTimeout(session.timer);
    session.timer = undefined;
    if (session.token !== '') this.#byToken.delete(session.token);
    session.token = '';
    this.#live.delete(session);
    session.keys.clear();
    session.done.length = 0;
    this.#hooks.expired(session);
    session.channels = [];
  }

  /**
   * A frame of a connection with a session: its keyed calls are registered; calls replaying a
   * known key are answered (or wait) instead of running. Returns the frame to run (the text as
   * is when nothing was replayed) with its keys, or null when none of its calls is left to run.
   */
  filter(conn: SocketConnection, text: string): { text: string; keys: string[] | undefined } | null {
    const session = conn.session;
    if (session === null) return { text, keys: undefined };
    const keys = scanCallKeys(text);
    if (keys.length === 0) return { text, keys: undefined };
    if (!keys.some((key) => session.keys.has(key))) {
      for (const key of keys) session.keys.set(key, { outcome: undefined, waiters: [] });
      return { text, keys };
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return { text, keys: undefined }; // malformed: the worker answers each call
    }
    const calls = Array.isArray(value) ? value : [value];
    const remaining: unknown[] = [];
    const running: string[] = [];
    for (const call of calls) {
      const key = isObject(call) && typeof call.$key === 'string' ? call.$key : undefined;
      const state = key === undefined ? undefined : session.keys.get(key);
      if (state === undefined || !isObject(call)) {
        remaining.push(call);
        if (key !== undefined) {
          session.keys.set(key, { outcome: undefined, waiters: [] });
          running.push(key);
        }
        continue;
      }
      const idText = JSON.stringify(call.$id ?? null);
      if (state.outcome !== undefined) conn.send(`[${state.outcome.map((item) => tagItem(item, idText)).join(',')}]`);
      else state.waiters.push({ conn, idText, callText: JSON.stringify(call) });
    }
    if (remaining.length === 0) return null;
    return { text: JSON.stringify(Array.isArray(value) ? remaining : remaining[0]), keys: running.length > 0 ? running : undefined };
  }

  /** A keyed call's outcome came (its batch committed): kept, and sent to the replays waiting for it. */
  complete(session: Session, key: string, items: string[]): void {
    const state = session.keys.get(key);
    if (state === undefined || state.outcome !== undefined) return;
    state.outcome = items;
    session.done.push(key);
    for (const waiter of state.waiters) waiter.conn.send(`[${items.map((item) => tagItem(item, waiter.idText)).join(',')}]`);
    state.waiters = [];
    while (session.done.length > MAX_KEYED_OUTCOMES) session.keys.delete(session.done.shift()!);
  }

  /** Keys whose call ended without an outcome: forgotten; the replays that waited run now. */
  release(session: Session, keys: readonly string[]): void {
    for (const key of keys) {
      const state = session.keys.get(key);
      if (state === undefined || state.outcome !== undefined) continue;
      session.keys.delete(key);
      const [first, ...rest] = state.waiters;
      if (first === undefined) continue;
      // The first replay runs; the others wait for its outcome.
      session.keys.set(key, { outcome: undefined, waiters: rest });
      this.#hooks.run(first.conn, first.callText, [key]);
    }
  }

  /** Every session ends (shutdown). */
  clear(): void {
    for (const session of this.#live) {
      clearTimeout(session.timer);
      session.timer = undefined;
    }
    this.#live.clear();
    this.#byToken.clear();
  }
}
