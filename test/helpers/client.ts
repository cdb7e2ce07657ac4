/**
 * A WebSocket test client (the `ws` package) with `next()`-style awaiting of frames: every
 * wait is event-driven and bounded in time. Disposable: `await using c = await
 * TestClient.connect(url)` closes it when the scope ends; `TestClient.many` opens a group.
 */
import WebSocket from 'ws';

export interface ConnectOptions {
  /** HTTP headers of the upgrade request (e.g. `{ Login: JSON.stringify({...}) }`). */
  headers?: Record<string, string>;
  /** Query parameters (values are JSON-encoded unless strings). */
  query?: Record<string, unknown>;
  /** Subprotocols offered (`lexicons.v1`). */
  protocols?: string | string[];
  timeoutMs?: number;
  /** More options of the `ws` client (e.g. `localAddress`, TLS `ca`). */
  ws?: WebSocket.ClientOptions;
}

export interface Closed {
  code: number;
  reason: string;
}

/** How often a wait checks its deadline. */
const TICK_MS = 50;
/** A check later than this after the previous one means this process was not running: the excess does not count. */
const MAX_TICK_MS = 100;
/** Event-loop turns a wait lets pass after its deadline before it gives up. */
const GRACE_TURNS = 10;

/**
 * Calls `expire` once `ms` of time this process was running have passed, then
 * {@link GRACE_TURNS} event-loop turns; returns a cancel function.
 *
 * Why not one setTimeout: the server under test runs on this thread. When the process is not
 * scheduled for a while (a loaded CI machine), wall time passes while neither the server's main
 * thread nor the client can do anything; on waking, the timers phase runs before the poll phase
 * reads the worker's result and the reply. So the deadline counts only time the loop was
 * responsive (a check that comes more than {@link MAX_TICK_MS} late counts as MAX_TICK_MS), and
 * at the deadline the wait still lets a few turns (each after a poll phase) deliver what is there.
 */
export function expireAfter(ms: number, expire: () => void): () => void {
  let cancelled = false;
  let left = ms;
  let last = performance.now();
  let turns = 0;
  const turn = (): void => {
    if (cancelled) return;
    if (++turns < GRACE_TURNS) setImmediate(turn);
    else expire();
  };
  const timer = setInterval(() => {
    const now = performance.now();
    left -= Math.min(now - last, MAX_TICK_MS);
    last = now;
    if (left > 0) return;
    clearInterval(timer);
    turn();
  }, Math.min(TICK_MS, ms));
  return () => {
    cancelled = true;
    clearInterval(timer);
  };
}

/** Clients opened together by {@link TestClient.many}, closed together at dispose. */
export type TestClients = TestClient[] & AsyncDisposable;

export class TestClient implements AsyncDisposable {
  readonly ws: WebSocket;
  readonly #frames: unknown[] = [];
  readonly #waiters: Array<(frame: unknown) => void> = [];
  readonly closed: Promise<Closed>;
  /** Every frame received, in order (parsed JSON, or the raw string when not JSON). */
  readonly received: unknown[] = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data, isBinary) => {
      const text = data.toString();
      let frame: unknown = text;
      if (!isBinary) {
        try {
          frame = JSON.parse(text);
        } catch {
          frame = text;
        }
      }
      this.received.push(frame);
      const waiter = this.#waiters.shift();
      if (waiter) waiter(frame);
      else this.#frames.push(frame);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static url(base: string, query?: Record<string, unknown>): string {
    if (!query) return base;
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) params.set(k, typeof v === 'string' ? v : JSON.stringify(v));
    return `${base}${base.includes('?') ? '&' : '?'}${params.toString()}`;
  }

  /** Opens a connection; rejects with `HTTP <status>` when the upgrade is refused. */
  static connect(base: string, options: ConnectOptions = {}): Promise<TestClient> {
    const ws = new WebSocket(TestClient.url(base, options.query), options.protocols ?? [], { ...options.ws, headers: options.headers });
    const client = new TestClient(ws);
    return new Promise((resolve, reject) => {
      const cancel = expireAfter(options.timeoutMs ?? 5000, () => {
        ws.terminate();
        reject(new Error(`connect timed out after ${options.timeoutMs ?? 5000} ms`));
      });
      ws.once('open', () => {
        cancel();
        resolve(client);
      });
      ws.once('unexpected-response', (_req, res) => {
        cancel();
        reject(new Error(`HTTP ${res.statusCode}`));
        ws.terminate();
      });
      ws.once('error', (err) => {
        cancel();
        reject(err);
      });
    });
  }

  /**
   * Opens `count` connections at once (options per index when a function); if one fails, the
   * others are closed and its error is thrown.
   */
  static async many(base: string, count: number, options: ConnectOptions | ((i: number) => ConnectOptions) = {}): Promise<TestClients> {
    const settled = await Promise.allSettled(Array.from({ length: count }, (_, i) => TestClient.connect(base, typeof options === 'function' ? options(i) : options)));
    const clients = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const group = Object.assign(clients, {
      async [Symbol.asyncDispose]() {
        await Promise.all(clients.map((c) => c[Symbol.asyncDispose]()));
      },
    });
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) {
      await group[Symbol.asyncDispose]();
      throw failed.reason;
    }
    return group;
  }

  /** Sends a value as JSON (a string is sent as is). */
  send(value: unknown): void {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  /** The next frame. */
  next(timeoutMs = 5000): Promise<unknown> {
    const frame = this.#frames.shift();
    if (frame !== undefined) return Promise.resolve(frame);
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const waiter = (f: unknown) => {
        cancel();
        resolve(f);
      };
      const cancel = expireAfter(timeoutMs, () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        const state = ['connecting', 'open', 'closing', 'closed'][this.ws.readyState];
        reject(new Error(`no frame within ${timeoutMs} ms (waited ${Math.round(performance.now() - started)} ms; socket ${state}; received so far: ${JSON.stringify(this.received).slice(0, 500)})`));
      });
      this.#waiters.push(waiter);
    });
  }

  /** Sends a call and returns the next frame. */
  async call(value: unknown, timeoutMs = 5000): Promise<unknown> {
    this.send(value);
    return this.next(timeoutMs);
  }

  /** Frames not yet consumed by next(). */
  get pending(): readonly unknown[] {
    return this.#frames;
  }

  close(code = 1000): Promise<Closed> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code);
    return this.closed;
  }

  /** Resolves when closed (by either side), bounded in time. */
  waitClosed(timeoutMs = 5000): Promise<Closed> {
    let cancel: (() => void) | undefined;
    return Promise.race([
      this.closed,
      new Promise<never>((_, reject) => {
        cancel = expireAfter(timeoutMs, () => reject(new Error(`not closed within ${timeoutMs} ms`)));
      }),
    ]).finally(() => cancel?.());
  }

  /** Closes with 1000 unless closed already; drops the socket if the handshake takes over 5 s. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    void this.close();
    try {
      await this.waitClosed();
    } catch {
      this.ws.terminate();
    }
  }
}
