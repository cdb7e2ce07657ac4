/**
 * @module main/connection
 * Per-socket state on the main thread: identity, `auth`, channels, the queue of work units
 * waiting for the pool, whether a batch is in flight, and the rate limiter.
 *
 * uWS lifetime rules apply: the WebSocket is valid from `open` to `close` only; after close,
 * nothing touches it (`state === 'closed'`). Sends outside uWS callbacks are corked.
 */
import { randomUUID } from 'node:crypto';
import type { HttpResponse, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import type { Json } from '../components.js';
import type { Unit } from '../job-contract.js';

export type ConnState = 'upgrading' | 'open' | 'closed';

/** A pending upgrade, completed asynchronously once the Headers ran in the pool. */
export interface PendingUpgrade {
  res: HttpResponse;
  key: string;
  protocol: string;
  extensions: string;
  context: us_socket_context_t;
  aborted: boolean;
}

export interface UserData {
  conn: Conn;
}

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

export class Conn {
  readonly id = randomUUID();
  readonly address: string;
  auth: Json | undefined = undefined;
  readonly channels = new Set<string>();
  ws: WebSocket<UserData> | null = null;
  state: ConnState = 'upgrading';
  upgrade: PendingUpgrade | null = null;
  /** Set when the connection is refused: on open it gets the Errors frame and close 1008. */
  rejection: string | null = null;
  /** Admitted (Headers, gate, anonymous policy passed); frames are only accepted from then on. */
  admitted = false;
  /** The upgrade waits for a pool job (Headers or onConnect); admission comes as an effect. */
  viaPool = false;
  readonly queue: Unit[] = [];
  /** A batch holding units of this connection is in flight. */
  busy = false;
  readonly limiter: RateLimiter;
  readonly connectedAt = Date.now();

  constructor(address: string, messagesPerSecond: number) {
    this.address = address;
    this.limiter = new RateLimiter(messagesPerSecond);
  }

  get open(): boolean {
    return this.state === 'open' && this.ws !== null;
  }

  /** Sends a text frame; false when closed or dropped (backpressure limit). */
  send(text: string): boolean {
    const ws = this.ws;
    if (this.state !== 'open' || !ws) return false;
    let status = 0;
    ws.cork(() => {
      status = ws.send(text, false);
    });
    return status !== 2;
  }

  /** Sends several text frames in one cork (one write for the lot). */
  sendMany(texts: readonly string[]): void {
    const ws = this.ws;
    if (this.state !== 'open' || !ws) return;
    ws.cork(() => {
      for (const text of texts) if (ws.send(text, false) === 2) break;
    });
  }

  /** Graceful close with a code and reason; the close handler runs synchronously. */
  end(code: number, reason: string): void {
    const ws = this.ws;
    if (this.state !== 'open' || !ws) return;
    ws.end(code, reason);
  }

  snapshot(): { id: string; address: string; auth: Json | undefined; channels: string[] } {
    return { id: this.id, address: this.address, auth: this.auth, channels: [...this.channels] };
  }
}
