/**
 * @module client/options
 * The client's options, its states and their events, and the part of the WebSocket API it uses.
 * Type-only; no Node types.
 */
import type { ClientError } from './errors.js';
import type { HeaderData } from './types.js';

/** The part of the WebSocket API the client uses: the browser's `WebSocket` and the `ws` package both fit. */
export interface WebSocketLike {
  readonly protocol: string;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketClass = new (url: string, protocols?: string | string[]) => WebSocketLike;

export type ClientState = 'disconnected' | 'connecting' | 'open' | 'closed';

/** What `onState` handlers receive, one event per transition. */
export type StateEvent =
  | { readonly state: 'connecting'; readonly attempt: number }
  /** Admitted; `resumed`: the server restored the previous session (auth, channels, keyed calls) without running the Headers. */
  | { readonly state: 'open'; readonly id: string; readonly resumed: boolean }
  /** The connection was lost (or not made); the next attempt starts in `delayMs`. */
  | { readonly state: 'disconnected'; readonly code: number; readonly reason: string; readonly error?: ClientError; readonly attempt: number; readonly delayMs: number }
  /** Stopped: `close()` (no error), `AUTH_FAILED`, `RECONNECT_FAILED`, a server without `lexicons.v1`, or a failing `headers` function. */
  | { readonly state: 'closed'; readonly code: number; readonly reason: string; readonly error?: ClientError };

export interface ReconnectOptions {
  /** Cap of the first retry's delay; each further attempt doubles the cap (full jitter below it). Default 500. */
  baseDelayMs?: number;
  /** Largest delay between attempts. Default 20000. */
  maxDelayMs?: number;
  /** Reconnect attempts in a row (none reaching `open`) before the client stops with `RECONNECT_FAILED`. Default: unlimited. */
  maxAttempts?: number;
}

export interface ClientOptions<T = unknown> {
  /** The server's address: `ws://host:port/` or `wss://...` (in a page: `${location.origin.replace(/^http/, 'ws')}/`). */
  url: string;
  /**
   * Header data sent in the `$connect` frame (never in the URL): `{ Login: { email, password } }`.
   * A function is called at every (re)connect: e.g. Register on the first connection, Login after.
   */
  headers?: HeaderData<T> | (() => HeaderData<T> | Promise<HeaderData<T>>);
  /** The WebSocket class; default `globalThis.WebSocket` (browsers). In Node 20: `import WebSocket from 'ws'`. */
  WebSocket?: WebSocketClass;
  /** Default per-call timeout in ms (`call(..., { timeoutMs })` overrides it). Default 15000. */
  timeoutMs?: number;
  /** A connection attempt not admitted (`$connected`) within this many ms is given up and retried. Default 15000. */
  connectTimeoutMs?: number;
  /** Reconnect backoff (exponential, full jitter), or `false` to stop after the first lost connection. */
  reconnect?: ReconnectOptions | false;
  /** Most calls sent in one list frame (keep it at most the server's `limits.maxCallsPerFrame`). Default 100. */
  maxCallsPerFrame?: number;
  /** Connect at once (default), or wait for `connect()`. */
  autoConnect?: boolean;
}
