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

/** The error of a first frame that is not `$connect`. */
export const EXPECTED_CONNECT = 'expected {"$connect": {...}} as the first frame';
export const BAD_CONNECT_HEADERS = '$connect.headers must be an object of header data: {"Login": {...}}';

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
export function parseConnectFrame(text: string, names: ReadonlyMap<string, string>): Record<string, string> | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return EXPECTED_CONNECT;
  }
  const connect = isPlainObject(value) ? value[Frame.CONNECT] : undefined;
  if (!isPlainObject(connect)) return EXPECTED_CONNECT;
  const headers = connect.headers;
  const data: Record<string, string> = {};
  if (headers === undefined) return data;
  if (!isPlainObject(headers)) return BAD_CONNECT_HEADERS;
  for (const key of Object.keys(headers)) {
    const name = names.get(key.toLowerCase());
    if (name !== undefined) data[name] = JSON.stringify(headers[key]);
  }
  return data;
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
    this.#admit(conn, { ...session.headerData, ...parsed });
  }

  #admit(conn: SocketConnection, headerData: Record<string, string>): void {
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
        admitConnection(hub, conn);
    }
  }
}
