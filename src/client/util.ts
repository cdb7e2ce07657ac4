/**
 * @module client/util
 * Small helpers of the client's engine: checked options, frames of calls within the limits, item
 * names and errors, and reporting a handler's exception without breaking the client.
 */
import { Frame } from '../wire.js';
import { ClientError } from './errors.js';
import type { ClientOptions, ReconnectOptions, WebSocketClass } from './options.js';

/** Bytes of a string in UTF-8 (JSON text has no lone surrogates). */
export function utf8Length(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) n += c > 0x7ff && (c < 0xd800 || c > 0xdfff) ? 2 : 1;
  }
  return n;
}

/** A handler's exception must not break the client: it is reported like an uncaught error. */
export function report(err: unknown): void {
  setTimeout(() => {
    throw err;
  }, 0);
}

/** Runs every handler with the event; one that throws is reported, the others still run. */
export function emit<E>(handlers: ReadonlySet<(event: E) => void>, event: E): void {
  for (const handler of handlers) {
    try {
      handler(event);
    } catch (err) {
      report(err);
    }
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The item's name: its first key that is not `$id` or `code`. */
export function itemName(item: Record<string, unknown>): string | undefined {
  for (const key in item) if (key !== Frame.ID && key !== Frame.CODE) return key;
  return undefined;
}

export function errorOf(item: Record<string, unknown>): ClientError {
  const raw = item[Frame.ERRORS];
  const messages = Array.isArray(raw) ? raw.map(String) : [String(raw)];
  return new ClientError(typeof item[Frame.CODE] === 'string' ? (item[Frame.CODE] as string) : 'UNKNOWN', messages);
}

export function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0)) throw new TypeError(`createClient: ${name} must be a positive number, got ${String(value)}`);
  return value;
}

/** The checked options of a client (exact messages for each wrong one). */
export interface Settings {
  readonly url: string;
  readonly WebSocket: WebSocketClass;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxCallsPerFrame: number;
  readonly reconnect: Required<ReconnectOptions> | false;
}

export function settingsOf(options: ClientOptions): Settings {
  if (!isObject(options) || typeof options.url !== 'string') throw new TypeError('createClient: options.url must be a ws:// or wss:// URL string');
  const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
  if (typeof WS !== 'function') throw new TypeError('createClient: no WebSocket class: pass options.WebSocket (in Node 20, the ws package: import WebSocket from "ws")');
  const r = options.reconnect;
  return {
    url: options.url,
    WebSocket: WS,
    timeoutMs: positive('timeoutMs', options.timeoutMs, 15_000),
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, 15_000),
    maxCallsPerFrame: positive('maxCallsPerFrame', options.maxCallsPerFrame, 100),
    reconnect:
      r === false
        ? false
        : {
            baseDelayMs: positive('reconnect.baseDelayMs', r?.baseDelayMs, 500),
            maxDelayMs: positive('reconnect.maxDelayMs', r?.maxDelayMs, 20_000),
            maxAttempts: positive('reconnect.maxAttempts', r?.maxAttempts, Infinity),
          },
  };
}

/**
 * Call texts as frames of at most `calls` calls and `bytes` bytes of UTF-8 (a list frame; a
 * single call as an object, never split).
 */
export function frames(texts: readonly string[], calls: number, bytes: number): string[] {
  const out: string[] = [];
  let chunk: string[] = [];
  let size = 1; // the list's `[`, then each call and its `,` or `]`
  const close = () => out.push(chunk.length === 1 ? chunk[0]! : `[${chunk.join(',')}]`);
  for (const text of texts) {
    const n = utf8Length(text) + 1;
    if (chunk.length > 0 && (chunk.length === calls || size + n > bytes)) {
      close();
      chunk = [];
      size = 1;
    }
    chunk.push(text);
    size += n;
  }
  if (chunk.length > 0) close();
  return out;
}
