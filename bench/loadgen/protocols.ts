/**
 * @module bench/loadgen/protocols
 * The two wire dialects the generator speaks over its raw WebSocket:
 * - `lexicons` (also spoken by bench/peers/uws-raw.ts): a call is `{"Signal":{...}}`, a response
 *   frame is `[{"Signal":payload}]`, errors come as `[{"Errors":[...]}]`.
 * - `socketio`: Engine.IO v4 + Socket.IO v5 packets over a plain WebSocket transport: open packet
 *   `0{...}`, namespace connect `40`, events `42["Signal",payload]`, ping `2` answered by pong `3`.
 */
import { OPCODE, encodeFrame } from './ws-frame.js';
import type { RawWsConnection } from './ws-client.js';

export type ProtocolName = 'lexicons' | 'socketio';

/** What a received frame is, for counting. */
export const FRAME = { APP: 0, ERROR: 1, CONTROL: 2 } as const;

export interface Protocol {
  readonly name: ProtocolName;
  /** Request target of the upgrade, with extra query parameters (already URL-encoded). */
  path(query: string): string;
  /** Text of one call frame; `args` is JSON text that may hold template slots. */
  call(signal: string, args: string): string;
  /** Bytes every response frame of `signal` starts with. */
  responsePrefix(signal: string): Buffer;
  /**
   * Classify a frame; handles control traffic itself (Socket.IO ping/pong), answering on `conn`.
   * Returns one of {@link FRAME}.
   */
  classify(conn: RawWsConnection, buf: Buffer, start: number, end: number): number;
  /** Resolve once the connection may send calls (Socket.IO: after the namespace connect ack). */
  ready(conn: RawWsConnection, timeoutMs: number): Promise<void>;
}

const LEX_ERRORS = Buffer.from('[{"Errors"');

export const lexiconsProtocol: Protocol = {
  name: 'lexicons',
  path: (query) => (query === '' ? '/' : `/?${query}`),
  call: (signal, args) => `{"${signal}":${args}}`,
  responsePrefix: (signal) => Buffer.from(`[{"${signal}"`),
  classify(_conn, buf, start, end) {
    return startsWith(buf, start, end, LEX_ERRORS) ? FRAME.ERROR : FRAME.APP;
  },
  ready: () => Promise.resolve(),
};

const SIO_PING = encodeFrame('3');
const SIO_CONNECT = encodeFrame('40');
const CH_0 = 0x30;
const CH_2 = 0x32;
const CH_4 = 0x34;

export const socketioProtocol: Protocol = {
  name: 'socketio',
  path: (query) => `/socket.io/?EIO=4&transport=websocket${query === '' ? '' : `&${query}`}`,
  call: (signal, args) => `42["${signal}",${args}]`,
  responsePrefix: (signal) => Buffer.from(`42["${signal}"`),
  classify(conn, buf, start, end) {
    const n = end - start;
    const c0 = buf[start]!;
    if (c0 === CH_4 && n >= 2) {
      const c1 = buf[start + 1]!;
      if (c1 === CH_2) return FRAME.APP; // EVENT
      if (c1 === CH_4) return FRAME.ERROR; // CONNECT_ERROR
      return FRAME.CONTROL; // CONNECT ack, DISCONNECT, ...
    }
    if (c0 === CH_2 && n === 1) {
      // Engine.IO ping: answer at once (the server closes the session after pingTimeout).
      conn.sendRaw(SIO_PING);
      conn.flush();
    }
    return FRAME.CONTROL;
  },
  ready(conn, timeoutMs) {
    return new Promise((resolve, reject) => {
      const previous = conn.onMessage;
      const previousClose = conn.onClose;
      const timer = setTimeout(() => finish(new Error(`Socket.IO connect not acknowledged within ${timeoutMs} ms`)), timeoutMs);
      const finish = (error: Error | null) => {
        clearTimeout(timer);
        conn.onMessage = previous;
        conn.onClose = previousClose;
        if (error) reject(error);
        else resolve();
      };
      conn.onClose = () => finish(new Error(`connection closed before the Socket.IO connect ack (close code ${conn.closeCode})`));
      conn.onMessage = (buf, start, end, opcode) => {
        if (opcode !== OPCODE.TEXT || end === start) return;
        const c0 = buf[start]!;
        if (c0 === CH_0) {
          conn.sendRaw(SIO_CONNECT); // open packet received: connect to the main namespace
          conn.flush();
        } else if (c0 === CH_4 && buf[start + 1] === CH_0) {
          finish(null);
        } else if (c0 === CH_4 && buf[start + 1] === CH_4) {
          finish(new Error(`Socket.IO connect refused: ${buf.toString('utf8', start + 2, end)}`));
        } else if (c0 === CH_2 && end - start === 1) {
          conn.sendRaw(SIO_PING);
          conn.flush();
        }
      };
    });
  },
};

export function protocolByName(name: ProtocolName): Protocol {
  return name === 'socketio' ? socketioProtocol : lexiconsProtocol;
}

export function startsWith(buf: Buffer, start: number, end: number, prefix: Buffer): boolean {
  const n = prefix.length;
  if (end - start < n) return false;
  for (let i = 0; i < n; i++) if (buf[start + i] !== prefix[i]) return false;
  return true;
}

/** Position just after the result of the last successful {@link scanNumber}. */
export let scanEnd = 0;

/**
 * Find `marker` in `buf[from, end)` and read the non-negative integer after it (spaces and
 * leading zeros allowed). Returns -1 when the marker or the digits are missing.
 */
export function scanNumber(buf: Buffer, from: number, end: number, marker: Buffer): number {
  const m0 = marker[0]!;
  const n = marker.length;
  const last = end - n;
  outer: for (let i = from; i <= last; i++) {
    if (buf[i] !== m0) continue;
    for (let j = 1; j < n; j++) if (buf[i + j] !== marker[j]) continue outer;
    let p = i + n;
    while (p < end && buf[p] === 0x20) p++;
    let v = 0;
    const digits = p;
    for (; p < end; p++) {
      const d = buf[p]! - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
    }
    if (p === digits) return -1;
    scanEnd = p;
    return v;
  }
  return -1;
}
