/**
 * @module main/v1-admission
 * Admission of lexicons.v1 clients (docs/protocol.md "lexicons.v1"). A client that offers the
 * `lexicons.v1` subprotocol is upgraded at once after the request checks (trust, origin, 431;
 * main/upgrade.ts decideUpgrade) and the server answers only that subprotocol. Its first frame
 * must be `{"$connect": {"headers": {"Login": {...}}}}`: the header data in it is merged with the
 * request's (URL query, HTTP headers; the frame wins on the same name), then the same admission as
 * an upgrade applies (main/upgrade.ts decideAdmission: the login-attempt limiter per address, the
 * `anonymous` policy, the Headers in the pool). Admitted: what the Headers sent, then
 * `[{"$connected": {"id": ..., "limits": {...}}}]` (main/effects.ts admitConnection).
 *
 * Refusals are an Errors item with a code, then close 1008: RATE_LIMITED (login attempts),
 * AUTH_FAILED (Headers, gate, anonymous policy), PROTOCOL (a first frame that is not `$connect`).
 * Frames after `$connect` and before `$connected` are dropped, never executed; no `$connect`
 * within `limits.connectTimeoutSeconds` closes with 1008.
 *
 * `$connect` may also carry `"positions"` (the client's last seen `{epoch, offset}` per history
 * channel: a join recovers from them, main/recovery.ts) and `"resume"` (a session's token,
 * main/sessions.ts). A valid token restores the session's `auth`, `meta` and channels without
 * running the Headers; `$connected` then says `"resumed": true`. An invalid one (used, expired,
 * unknown, another address) admits through the Headers as usual, with `"resumed": false`.
 */
import type { ServerLimits } from '../server.js';
import { UNIT_CONNECT } from '../job-contract.js';
import { CloseCode, closeReason, errorFrame } from '../protocol.js';
import { Frame, SUBPROTOCOL, WireCode } from '../wire.js';
import type { Dispatcher } from './dispatch.js';
import { admitConnection, rejectConnection } from './effects.js';
import type { Hub } from './hub.js';
import type { SocketConnection, V1Session } from './socket-connection.js';
import { decideAdmission, type UpgradePolicy } from './upgrade.js';
import type { ChannelPositionRef } from '../job-contract.js';
import { restoreChannels } from './membership.js';
import { positionOf } from './recovery.js';

/** The error of a first frame that is not `$connect`. */
export const EXPECTED_CONNECT = 'expected {"$connect": {...}} as the first frame';
export const BAD_CONNECT_HEADERS = '$connect.headers must be an object of header data: {"Login": {...}}';
export const BAD_CONNECT_POSITIONS = '$connect.positions must be an object {"Channel": {"epoch": "...", "offset": 42}}';
export const BAD_CONNECT_RESUME = '$connect.resume must be the token string of a $connected frame';

/** A `$connect` frame, read. */
export interface ConnectRequest {
  /** Header data keyed by declared Header name, each value as JSON text. */
  headerData: Record<string, string>;
  positions: Map<string, ChannelPositionRef> | null;
  resume: string | undefined;
}

/** Whether a `Sec-WebSocket-Protocol` request header offers lexicons.v1. */
export function offersV1(header: string): boolean {
  if (header === '') return false;
  for (const offered of header.split(',')) if (offered.trim() === SUBPROTOCOL) return true;
  return false;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The header data of a `$connect` frame, keyed by the declared Header names (matched
 * case-insensitively; others ignored), each value as JSON text (decoded in the worker exactly as
 * a query parameter is); or the error message of a frame that is not `$connect`.
 */
export function parseConnectFrame(text: string, names: ReadonlyMap<string, string>): ConnectRequest | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return EXPECTED_CONNECT;
  }
  const connect = isPlainObject(value) ? value[Frame.CONNECT] : undefined;
  if (!isPlainObject(connect)) return EXPECTED_CONNECT;
  const { headers, positions, resume } = connect;
  const request: ConnectRequest = { headerData: {}, positions: null, resume: undefined };
  if (headers !== undefined) {
    if (!isPlainObject(headers)) return BAD_CONNECT_HEADERS;
    for (const key of Object.keys(headers)) {
      const name = names.get(key.toLowerCase());
      if (name !== undefined) request.headerData[name] = JSON.stringify(headers[key]);
    }
  }
  if (positions !== undefined) {
    if (!isPlainObject(positions)) return BAD_CONNECT_POSITIONS;
    request.positions = new Map();
    for (const [channel, raw] of Object.entries(positions)) {
      const position = positionOf(raw);
      if (position === undefined) return BAD_CONNECT_POSITIONS;
      request.positions.set(channel, position);
    }
  }
  if (resume !== undefined) {
    if (typeof resume !== 'string' || resume.length > 128) return BAD_CONNECT_RESUME;
    request.resume = resume;
  }
  return request;
}

export interface V1AdmissionDeps {
  hub: Hub;
  dispatcher: Dispatcher;
  /** The upgrade policy (its login-attempt limiter is shared with upgrades). */
  policy: UpgradePolicy;
  limits: Required<ServerLimits>;
  accepting: () => boolean;
}

export class V1Admission {
  readonly #deps: V1AdmissionDeps;
  /** Declared Header names by lower-case name. */
  readonly #names: ReadonlyMap<string, string>;
  readonly #connectedTail: string;

  constructor(deps: V1AdmissionDeps) {
    this.#deps = deps;
    this.#names = new Map(deps.policy.headerNames.map((name) => [name.toLowerCase(), name]));
    const { maxCallsPerFrame, maxMessageBytes } = deps.limits;
    this.#connectedTail = `,"limits":${JSON.stringify({ maxCallsPerFrame, maxMessageBytes })}}}]`;
  }

  /** The session of a v1 connection being upgraded, with the request's header data. */
  session(headerData: Record<string, string>): V1Session {
    return { headerData, phase: 'awaiting', timer: undefined, connectedTail: this.#connectedTail };
  }

  /** The socket is open: `$connect` must come within `limits.connectTimeoutSeconds`. */
  opened(conn: SocketConnection): void {
    const session = conn.v1!;
    const seconds = this.#deps.limits.connectTimeoutSeconds;
    session.timer = setTimeout(() => {
      session.timer = undefined;
      if (session.phase !== 'awaiting') return;
      this.#deps.hub.log('PROTOCOL-ERROR', { connection: conn.id, address: conn.address, message: `no $connect within ${seconds} s` });
      conn.end(CloseCode.POLICY, `no $connect within ${seconds} s`);
    }, seconds * 1000);
  }

  closed(conn: SocketConnection): void {
    const session = conn.v1!;
    clearTimeout(session.timer);
    session.timer = undefined;
  }

  /**
   * A frame of a connection not admitted yet: the first one must be `$connect`; later ones (until
   * `$connected`) are dropped. The message is valid only during the uWS callback: read here.
   */
  frame(conn: SocketConnection, message: ArrayBuffer, isBinary: boolean): void {
    const session = conn.v1!;
    if (session.phase !== 'awaiting') return;
    session.phase = 'admitting';
    this.closed(conn);
    const { hub, limits } = this.#deps;
    if (message.byteLength > limits.maxMessageBytes) {
      conn.end(CloseCode.TOO_BIG, `message too big (limit ${limits.maxMessageBytes} bytes)`);
      return;
    }
    if (!this.#deps.accepting()) {
      conn.send(errorFrame(['Server is shutting down'], WireCode.SHUTTING_DOWN));
      conn.end(CloseCode.GOING_AWAY, 'server shutting down');
      return;
    }
    const parsed = isBinary ? EXPECTED_CONNECT : parseConnectFrame(Buffer.from(message).toString('utf8'), this.#names);
    if (typeof parsed === 'string') {
      hub.metrics.errorsTotal++;
      hub.log('PROTOCOL-ERROR', { connection: conn.id, address: conn.address, message: parsed });
      conn.send(errorFrame([parsed], WireCode.PROTOCOL));
      conn.end(CloseCode.POLICY, closeReason(parsed));
      return;
    }
    conn.positions = parsed.positions;
    if (parsed.resume !== undefined && this.#resume(conn, parsed.resume)) return;
    this.#admit(conn, { ...session.headerData, ...parsed.headerData }, parsed.resume === undefined ? undefined : false);
  }

  /** A valid resume token: the session's auth, meta and channels on this connection, no Headers. */
  #resume(conn: SocketConnection, token: string): boolean {
    const { hub } = this.#deps;
    const resumed = hub.sessions.resume(token, conn);
    if (resumed === undefined) return false;
    const { session, previous } = resumed;
    // A connection still holding the session (its network died unnoticed) gives it up.
    previous?.end(CloseCode.POLICY, 'session resumed on another connection');
    admitConnection(hub, conn, true);
    restoreChannels(hub, conn, session.channels);
    return true;
  }

  #admit(conn: SocketConnection, headerData: Record<string, string>, resumed: false | undefined): void {
    conn.resumeRefused = resumed === false;
    const { hub, policy } = this.#deps;
    const decision = decideAdmission(conn.address, headerData, policy);
    switch (decision.kind) {
      case 'limited': {
        const perMinute = policy.authAttemptsPerMinute;
        const message = `Too many login attempts: over ${perMinute} per minute from this address (retry in ${Math.ceil(60 / perMinute)} s)`;
        hub.log('LIMIT', { address: conn.address, message: `login attempts over ${perMinute} per minute: $connect refused` });
        hub.metrics.connectionsRejected++;
        conn.send(errorFrame([message], WireCode.RATE_LIMITED));
        conn.end(CloseCode.POLICY, closeReason(message));
        return;
      }
      case 'anonymous':
        hub.log('HEADER-CHECK-FAILED', { connection: conn.id, address: conn.address, reason: 'no header data' });
        rejectConnection(hub, conn, `no credentials (send one of the headers ${policy.headerNames.join(', ')} in the $connect frame)`);
        return;
      case 'viaPool':
        this.#deps.dispatcher.enqueue(conn, { kind: UNIT_CONNECT, headerData: decision.headerData });
        return;
      case 'admit':
        admitConnection(hub, conn, resumed);
    }
  }
}
