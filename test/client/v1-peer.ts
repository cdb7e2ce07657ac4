/**
 * PROTOCOL STAND-IN, NOT LEXICONS. A tiny WebSocket peer (the `ws` package's WebSocketServer on
 * 127.0.0.1, port 0) that speaks the `lexicons.v1` frames of the design (docs: protocol-v1 design,
 * issue #9) so the client's own logic (correlation, timeouts, reconnect, replay, refused auth,
 * backoff) can be tested against a real socket. The client's scenarios run against lexicons itself
 * (test/client/server-*.test.ts); this stand-in only serves what the real server never does:
 * outcomes out of call order and duplicated outcome frames.
 *
 * What it does, per the design: selects `lexicons.v1`; expects `{"$connect": {...}}` first (else
 * a PROTOCOL error and close 1008); runs `auth` on the headers (refusal: an AUTH_FAILED error item
 * and close 1008); sends what the "Headers" send, then `[{"$connected": {"id": ...}}]`; drops
 * frames sent before admission (and counts them); answers each call with `$id` with one frame:
 * its tagged items, an error item with a code, or `$ok`.
 */
import { EventEmitter, once } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

/** What a stand-in Signal answers: items for its caller, an error, `$ok`, or nothing at all. */
export type Outcome = { items: Record<string, unknown>[] } | { error: { code: string; message: string } } | 'ok' | 'none';

export interface PeerCall {
  name: string;
  args: Record<string, unknown>;
  id: unknown;
  /** 1-based number of the connection it came on. */
  connection: number;
}

export interface PeerOptions {
  /** Decides admission from the `$connect` headers: true, or the refusal's error (code and message). */
  auth?: (headers: Record<string, unknown>) => true | { code: string; message: string };
  /** Stand-in Signals; unknown names get UNKNOWN_SIGNAL. */
  signals?: Record<string, (args: Record<string, unknown>, peer: PeerConnection) => Outcome | Promise<Outcome>>;
  /** Run calls of one connection one after the other (as lexicons does), or all at once. Default true. */
  ordered?: boolean;
  /** Send every outcome frame twice (a client must settle once and ignore the copy). */
  duplicate?: boolean;
  /** Hold admission until `admit()` is called for the connection (tests of frames sent too early). */
  holdAdmission?: boolean;
  /** Never answer `$connect` (connect-timeout tests). */
  silent?: boolean;
}

export interface PeerConnection {
  readonly number: number;
  readonly socket: WebSocket;
  /** The upgrade request's path and query (credentials must never be there). */
  readonly url: string;
  readonly headers: Record<string, unknown> | undefined;
  admitted: boolean;
  /** Frames received before admission (must be dropped, never executed). */
  early: number;
  admit(): void;
}

export class V1Peer extends EventEmitter {
  readonly #wss: WebSocketServer;
  readonly #options: PeerOptions;
  readonly connections: PeerConnection[] = [];
  readonly calls: PeerCall[] = [];
  /** Text frames received after admission, per connection number. */
  readonly frames = new Map<number, number>();
  port = 0;

  private constructor(wss: WebSocketServer, options: PeerOptions) {
    super();
    this.#wss = wss;
    this.#options = options;
    wss.on('connection', (socket, req) => this.#accept(socket, req.url ?? ''));
  }

  static async start(options: PeerOptions = {}, port = 0): Promise<V1Peer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port, handleProtocols: (protocols) => (protocols.has('lexicons.v1') ? 'lexicons.v1' : false) });
    const peer = new V1Peer(wss, options);
    await once(wss, 'listening');
    peer.port = (wss.address() as AddressInfo).port;
    return peer;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  /** Sends a frame to every admitted connection (a broadcast or push). */
  push(frame: unknown): void {
    for (const c of this.connections) if (c.admitted && c.socket.readyState === c.socket.OPEN) c.socket.send(JSON.stringify(frame));
  }

  /** Drops every connection without a close frame (the client sees 1006), as a crashed server would. */
  dropAll(): void {
    for (const c of this.connections) c.socket.terminate();
  }

  /** Resolves with the `count`-th call named `name` (already received, or the next ones). */
  async waitForCall(name: string, count = 1): Promise<PeerCall> {
    for (;;) {
      const seen = this.calls.filter((c) => c.name === name);
      if (seen.length >= count) return seen[count - 1]!;
      await once(this, 'call');
    }
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  #accept(socket: WebSocket, url: string): void {
    const number = this.connections.length + 1;
    let queue: Promise<void> = Promise.resolve();
    const peer = this;
    const conn: PeerConnection = {
      number,
      socket,
      url,
      headers: undefined,
      admitted: false,
      early: 0,
      admit() {
        if (conn.admitted || socket.readyState !== socket.OPEN) return;
        const headers = conn.headers ?? {};
        // What the "Headers" send before $connected, as the chat example's Login does.
        for (const name of Object.keys(headers)) socket.send(JSON.stringify([{ [name]: { ok: true } }]));
        conn.admitted = true;
        socket.send(JSON.stringify([{ $connected: { id: randomUUID() } }]));
        peer.emit('admitted', conn);
      },
    };
    this.connections.push(conn);
    this.emit('connection', conn);
    let first = true;
    socket.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString();
      if (first) {
        first = false;
        let value: unknown;
        try {
          value = JSON.parse(text);
        } catch {
          value = undefined;
        }
        const connect = isObject(value) ? value.$connect : undefined;
        if (!isObject(connect)) {
          socket.send(JSON.stringify([{ Errors: ['expected {"$connect": {...}} as the first frame'], code: 'PROTOCOL' }]));
          socket.close(1008, 'expected $connect');
          return;
        }
        (conn as { headers: Record<string, unknown> }).headers = isObject(connect.headers) ? connect.headers : {};
        this.emit('connect-frame', conn);
        if (this.#options.silent) return;
        const verdict = this.#options.auth ? this.#options.auth(conn.headers!) : true;
        if (verdict !== true) {
          socket.send(JSON.stringify([{ Errors: [`Authentication failed: ${verdict.message}`], code: verdict.code }]));
          socket.close(1008, `Authentication failed: ${verdict.message}`);
          return;
        }
        if (!this.#options.holdAdmission) conn.admit();
        return;
      }
      if (!conn.admitted) {
        conn.early++;
        return;
      }
      this.frames.set(number, (this.frames.get(number) ?? 0) + 1);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        socket.send(JSON.stringify([{ Errors: ['Malformed JSON'], code: 'PROTOCOL' }]));
        return;
      }
      for (const item of Array.isArray(value) ? value : [value]) {
        const run = () => this.#run(conn, item);
        if (this.#options.ordered === false) void run();
        else queue = queue.then(run);
      }
    });
  }

  async #run(conn: PeerConnection, item: unknown): Promise<void> {
    if (!isObject(item)) return;
    const name = Object.keys(item).find((k) => k !== '$id');
    if (name === undefined) return;
    const id = item.$id;
    const args = isObject(item[name]) ? (item[name] as Record<string, unknown>) : {};
    this.calls.push({ name, args, id, connection: conn.number });
    this.emit('call', this.calls[this.calls.length - 1]);
    const signal = this.#options.signals?.[name];
    let outcome: Outcome;
    try {
      outcome = signal ? await signal(args, conn) : { error: { code: 'UNKNOWN_SIGNAL', message: `No signal [${name}]` } };
    } catch (err) {
      outcome = { error: { code: 'EXECUTION', message: (err as Error).message } };
    }
    if (outcome === 'none' || conn.socket.readyState !== conn.socket.OPEN) return;
    const tag = (o: Record<string, unknown>) => (id === undefined ? o : { ...o, $id: id });
    const frame =
      outcome === 'ok'
        ? id === undefined
          ? undefined
          : [{ $ok: true, $id: id }]
        : 'error' in outcome
          ? [tag({ Errors: [outcome.error.message], code: outcome.error.code })]
          : outcome.items.map(tag);
    if (!frame) return;
    const text = JSON.stringify(frame);
    conn.socket.send(text);
    if (this.#options.duplicate) conn.socket.send(text);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
