/**
 * @module main/socket-connection
 * {@link SocketConnection}: a connection's state on the main thread, next to its uWS socket:
 * identity, `auth`, channels, the queue of units waiting for the pool, whether a batch is in
 * flight, and the rate limiter. (Its worker-side counterpart, the `ws` user code sees, is
 * workers/handles.ts `ConnectionHandle`, built from a `ConnectionSnapshot` of this state.)
 *
 * uWS lifetime rules apply: the socket is valid from `open` to `close` only; after close,
 * nothing touches it (`state === 'closed'`). Sends outside uWS callbacks are corked.
 */
import { randomUUID } from 'node:crypto';
import type { HttpResponse, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import type { Json } from '../components.js';
import type { LexiconsError } from '../errors.js';
import type { ChannelPositionRef, ConnectionSnapshot, Unit } from '../job-contract.js';
import { SLOW_CONSUMER_CLOSE } from '../wire.js';
import type { CatchUp } from './catch-up.js';
import type { Session } from './sessions.js';

export type SocketState = 'upgrading' | 'open' | 'closed';

/** A pending upgrade, completed asynchronously once the Headers ran in the pool. */
export interface PendingUpgrade {
  res: HttpResponse;
  key: string;
  protocol: string;
  extensions: string;
  context: us_socket_context_t;
  aborted: boolean;
}

/**
 * A lexicons.v1 connection's admission (main/v1-admission.ts): it is upgraded at once and admitted
 * by its first frame, `{"$connect": {...}}`.
 */
export interface V1Session {
  /** Header data of the upgrade request (HTTP headers, URL query), merged with the frame's. */
  readonly headerData: Record<string, string>;
  /** `awaiting` the `$connect` frame; `admitting` (it came: later frames are dropped until `$connected`). */
  phase: 'awaiting' | 'admitting';
  /** Closes the connection when no `$connect` came in time. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The `$connected` frame after the id: `,"limits":{...}}}]`. */
  readonly connectedTail: string;
}

/** uWS's per-socket user data. */
export interface SocketUserData {
  connection: SocketConnection;
}

/** `WebSocket.send` status: the frame was dropped (backpressure limit). */
export const SEND_DROPPED = 2;

/** The close reason of a subscriber over `limits.maxBackpressureBytes` (code {@link SLOW_CONSUMER_CLOSE}, 4008). */
export const SLOW_CONSUMER_REASON = 'slow consumer: reconnect and recover';

/**
 * Token bucket: `rate` frames per second, bursts up to `rate`. Frames over the limit are
 * refused; more refusals than `rate` within one second is abuse (the connection is closed).
 */
export class RateLimiter {
  readonly #rate: number;
  #tokens: number;
  #last: number;
  #windowStart: number;
  #refused = 0;

  constructor(rate: number, now = Date.now()) {
    this.#rate = rate;
    this.#tokens = rate;
    this.#last = now;
    this.#windowStart = now;
  }

  /** 'ok', 'limited' (refuse this frame), or 'abuse' (close the connection). */
  take(now = Date.now()): 'ok' | 'limited' | 'abuse' {
    this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 'ok';
    }
    if (now - this.#windowStart > 1000) {
      this.#windowStart = now;
      this.#refused = 0;
    }
    this.#refused++;
    return this.#refused > Math.max(10, this.#rate) ? 'abuse' : 'limited';
  }
}

export class SocketConnection {
  readonly id = randomUUID();
  readonly address: string;
  auth: Json | undefined = undefined;
  /** `ws.meta`: public, shown in presence. */
  meta: Json | undefined = undefined;
  readonly channels = new Set<string>();
  /** The lexicons.v1 session (resume token, keyed calls, presence identity); kept after close. */
  session: Session | null = null;
  /** The client's positions in history channels it has not joined yet (`$connect.positions`). */
  positions: Map<string, ChannelPositionRef> | null = null;
  /** Its `$connect` asked to resume with a token that was refused (`$connected` says `"resumed": false`). */
  resumeRefused = false;
  /** History channels whose recovery is still being sent (main/catch-up.ts): not live in them yet. */
  catchUp: Map<string, CatchUp> | null = null;
  /** Bytes buffered for this socket beyond which it is a slow consumer. */
  readonly maxBackpressure: number;
  /** The uWS socket, from `open` to `close`. */
  socket: WebSocket<SocketUserData> | null = null;
  state: SocketState = 'upgrading';
  upgrade: PendingUpgrade | null = null;
  /** Set when the connection is refused: on open it gets the Errors frame and close 1008. */
  rejection: LexiconsError | null = null;
  /** Admitted (Headers, gate, anonymous policy passed); frames are only accepted from then on. */
  admitted = false;
  /** The upgrade waits for a pool job (Headers or onConnect); admission comes as an effect. */
  viaPool = false;
  /** Set for a lexicons.v1 connection (it selected the subprotocol). */
  v1: V1Session | null = null;
  readonly queue: Unit[] = [];
  /** Arrival time (performance.now()) of each unit in {@link queue}, same order (lexicons_queue_wait_seconds). */
  readonly queuedAt: number[] = [];
  /** A batch holding units of this connection is in flight. */
  busy = false;
  readonly limiter: RateLimiter;
  readonly connectedAt = Date.now();

  constructor(address: string, messagesPerSecond: number, maxBackpressure = Infinity) {
    this.address = address;
    this.limiter = new RateLimiter(messagesPerSecond);
    this.maxBackpressure = maxBackpressure;
  }

  /** Whether `bytes` more fit within the backpressure limit. */
  fits(bytes: number): boolean {
    const socket = this.socket;
    return socket !== null && (this.maxBackpressure === Infinity || socket.getBufferedAmount() + bytes <= this.maxBackpressure);
  }

  /** Over the backpressure limit: closed with 4008 (the close frame goes after what is buffered). */
  #overLimit(socket: WebSocket<SocketUserData>): boolean {
    if (this.maxBackpressure === Infinity || socket.getBufferedAmount() <= this.maxBackpressure) return false;
    socket.end(SLOW_CONSUMER_CLOSE, SLOW_CONSUMER_REASON);
    return true;
  }

  get open(): boolean {
    return this.state === 'open' && this.socket !== null;
  }

  /** Sends a text frame; false when closed or dropped (backpressure limit). */
  send(text: string): boolean {
    const socket = this.socket;
    if (this.state !== 'open' || !socket || this.#overLimit(socket)) return false;
    let status = 0;
    socket.cork(() => {
      status = socket.send(text, false);
    });
    return status !== SEND_DROPPED;
  }

  /** Sends several text frames in one cork (one write for the lot). */
  sendMany(texts: readonly string[]): void {
    const socket = this.socket;
    if (this.state !== 'open' || !socket || this.#overLimit(socket)) return;
    socket.cork(() => {
      for (const text of texts) if (socket.send(text, false) === SEND_DROPPED) break;
    });
  }

  /** Graceful close with a code and reason; the close handler runs synchronously. */
  end(code: number, reason: string): void {
    const socket = this.socket;
    if (this.state !== 'open' || !socket) return;
    socket.end(code, reason);
  }

  snapshot(): ConnectionSnapshot {
    const snapshot: ConnectionSnapshot = { id: this.id, address: this.address, auth: this.auth, channels: [...this.channels], v1: this.v1 !== null };
    if (this.meta !== undefined) snapshot.meta = this.meta;
    if (this.positions !== null && this.positions.size > 0) snapshot.positions = Object.fromEntries(this.positions);
    return snapshot;
  }
}
