/**
 * @module protocol
 * The wire protocol, shared by the main thread and the workers (see docs/protocol.md).
 *
 * A client sends text frames holding JSON: one call `{"SignalName": {...args}}` or a list of
 * calls `[{"A": {...}}, {"B": {...}}]`. A call may carry a correlation id `"$id"` (string or
 * number): every item of its outcome for the caller then carries it, in one terminal frame
 * (workers/recorder.ts). Responses are JSON lists of `{"SignalName": payload}` items; errors go
 * to the caller only as `[{"Errors": [...], "code": "..."}]` (the `code`, a {@link WireCode}, on
 * calls with `$id` and on `lexicons.v1` connections: v0 frames stay as they were).
 *
 * Parsing happens in the worker threads (it is CPU work); the main thread only checks size,
 * opcode and rate. Every inbound value is checked with small `assert*` functions before dispatch.
 */
import { ErrorCode, LexiconsError, messageOf, SignalError } from './errors.js';
import { scanCallIds } from './call-ids.js';
import { Frame, WireCode } from './wire.js';
import { jsonPieces } from './json-text.js';
import { wrapText, type JsonText } from './json-pieces.js';

/** WebSocket close codes used by the server. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  /** Authentication failed, rate limit abuse. */
  POLICY: 1008,
  /** Frame larger than `limits.maxMessageBytes` (sent by uWS itself). */
  TOO_BIG: 1009,
  INTERNAL: 1011,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Key of the error item in a response list. */
export const ERRORS_KEY = Frame.ERRORS;
/** Key of the optional correlation id in a call object. */
export const CALL_ID_KEY = Frame.ID;

export type CallId = string | number;

/** Key of the optional idempotency key in a call object (docs/channels.md "Exactly-once calls"). */
export const CALL_KEY_KEY = Frame.KEY;
/** Longest `$key` accepted. */
export const MAX_CALL_KEY_LENGTH = 128;

/** One parsed call. */
export interface Call {
  readonly name: string;
  readonly args: Record<string, unknown>;
  readonly id: CallId | undefined;
  /** Its idempotency key (`$key`), when it has one. */
  readonly key?: string;
}

/** Reserved argument names: `execute` receives these from the server, never from the client. */
export const RESERVED_ARGS: ReadonlySet<string> = new Set(['db', 'ws', 'sv']);

function protocolError(message: string): LexiconsError {
  return new LexiconsError(ErrorCode.PROTOCOL, message);
}

function argumentsError(message: string): LexiconsError {
  return new LexiconsError(ErrorCode.BAD_ARGUMENTS, message);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Asserts a decoded frame is a call object or a non-empty list of them. */
export function assertFrameShape(value: unknown, maxCalls: number): asserts value is Record<string, unknown> | Record<string, unknown>[] {
  if (Array.isArray(value)) {
    if (value.length === 0) throw protocolError('Empty call list: send {"SignalName": {...}} or a list of them');
    if (value.length > maxCalls) throw protocolError(`Too many calls in one frame: ${value.length} (limit ${maxCalls})`);
    return;
  }
  if (!isPlainObject(value)) {
    throw protocolError('Frame must be a JSON object {"SignalName": {...}} or a list of them');
  }
}

/** Asserts one call item is `{"Name": {...args}}` (plus an optional `$id`) and returns it parsed. */
export function parseCall(item: unknown, index: number | undefined): Call {
  const where = index === undefined ? 'Call' : `Call ${index + 1}`;
  if (!isPlainObject(item)) throw protocolError(`${where} must be an object {"SignalName": {...}}`);
  let name: string | undefined;
  for (const key in item) {
    if (key !== CALL_ID_KEY && key !== CALL_KEY_KEY) {
      name = key;
      break;
    }
  }
  const rawId = item[CALL_ID_KEY];
  const id = typeof rawId === 'string' || (typeof rawId === 'number' && Number.isFinite(rawId)) ? rawId : undefined;
  if (rawId !== undefined && id === undefined) throw protocolError(`${where}: ${CALL_ID_KEY} must be a string or a number`);
  const key = item[CALL_KEY_KEY];
  if (key !== undefined && !(typeof key === 'string' && key.length > 0 && key.length <= MAX_CALL_KEY_LENGTH)) {
    throw withId(protocolError(`${where}: ${CALL_KEY_KEY} must be a string of 1 to ${MAX_CALL_KEY_LENGTH} characters`), id);
  }
  if (name === undefined) throw withId(protocolError(`${where} names no signal`), id);
  const args = item[name];
  const keyed = key === undefined ? {} : { key: key as string };
  if (args === null || args === undefined) return { name, args: {}, id, ...keyed };
  if (!isPlainObject(args)) throw withId(argumentsError(`Arguments of [${name}] must be an object`), id);
  for (const reserved of RESERVED_ARGS) {
    if (Object.prototype.hasOwnProperty.call(args, reserved)) throw withId(argumentsError(`Argument name ${reserved} is reserved (db, ws and sv are given by the server)`), id);
  }
  return { name, args, id, ...keyed };
}

/** The error a caller gets for a call of a signal the server does not define. */
export function unknownSignalError(name: string): LexiconsError {
  return new LexiconsError(ErrorCode.UNKNOWN_SIGNAL, `No signal [${name}]`);
}

/** Why a connection was refused (no credentials, Headers or gate said no): Errors frame + close 1008. */
export function authenticationError(reason: string): LexiconsError {
  return new LexiconsError(ErrorCode.AUTH, `Authentication failed: ${reason}`);
}

/** A protocol error that knows the correlation id of its call. */
export interface CallError extends LexiconsError {
  callId?: CallId;
}

/**
 * A frame-level protocol error (malformed JSON, too many calls) with the `$id`s of the frame's
 * calls that could still be read, so each of them gets its terminal error.
 */
export interface FrameError extends LexiconsError {
  callIds?: CallId[];
}

function withId(err: LexiconsError, id: CallId | undefined): LexiconsError {
  if (id !== undefined) (err as CallError).callId = id;
  return err;
}

/**
 * Parses one text frame into its calls. Frame-level problems (malformed JSON, wrong shape) throw
 * a PROTOCOL error; a malformed item inside a list is returned as an Error in its slot so the
 * other calls of the list still run.
 */
export function parseFrame(text: string, maxCalls: number): Array<Call | LexiconsError> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const error: FrameError = protocolError(`Malformed JSON: ${messageOf(err)}`);
    error.callIds = scanCallIds(text); // what a well-formed prefix still tells
    throw error;
  }
  try {
    assertFrameShape(value, maxCalls);
  } catch (err) {
    if (Array.isArray(value)) (err as FrameError).callIds = value.map(idOf).filter((id): id is CallId => id !== undefined);
    throw err;
  }
  if (!Array.isArray(value)) return [safeParseCall(value, undefined)];
  return value.map((item, i) => safeParseCall(item, i));
}

function safeParseCall(item: unknown, index: number | undefined): Call | LexiconsError {
  try {
    return parseCall(item, index);
  } catch (err) {
    return err as LexiconsError;
  }
}

/** A call item's valid `$id`, if any. */
function idOf(item: unknown): CallId | undefined {
  if (!isPlainObject(item)) return undefined;
  const id = item[CALL_ID_KEY];
  return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) ? id : undefined;
}

/**
 * The text of one response item `{"Name": payload}` (in pieces when the payload holds queryJson
 * rows: json-pieces.ts). Throws when the payload is not JSON-serializable.
 */
export function itemText(name: string, payload: unknown): JsonText {
  const body = jsonPieces(payload === undefined ? null : payload) ?? 'null';
  return wrapText(`{${JSON.stringify(name)}:`, body, '}');
}

/**
 * The text of one error item `{"Errors": [...], "code": "...", "$id": ...}`: `code` when given,
 * `$id` when the call had one.
 */
export function errorItemText(messages: readonly string[], code?: string, id?: CallId): string {
  let text = `{"${ERRORS_KEY}":${JSON.stringify(messages)}`;
  if (code !== undefined) text += `,"${Frame.CODE}":${JSON.stringify(code)}`;
  if (id !== undefined) text += `,"${CALL_ID_KEY}":${JSON.stringify(id)}`;
  return `${text}}`;
}

/** The `$live` item that refuses or ends a live query: `{"$live": {"id": "L1", "error": {"code": "...", "message": "..."}}}`. */
export function liveErrorItem(id: string, code: string, message: string): string {
  return JSON.stringify({ [Frame.LIVE]: { id, error: { code, message } } });
}

/** A whole error frame `[{"Errors": [...], ...}]`. */
export function errorFrame(messages: readonly string[], code?: string, id?: CallId): string {
  return `[${errorItemText(messages, code, id)}]`;
}

/**
 * One error item per `$id` (the terminal outcome of each of those calls), or, with none, one
 * untagged item as before. `v1`: the connection speaks lexicons.v1 (untagged items carry the
 * code only then: v0 frames stay as they were).
 */
export function errorItemsFrame(message: string, code: string, ids: readonly CallId[], v1: boolean): string {
  if (ids.length === 0) return errorFrame([message], v1 ? code : undefined);
  let text = '[';
  for (let i = 0; i < ids.length; i++) text += (i > 0 ? ',' : '') + errorItemText([message], code, ids[i]);
  return `${text}]`;
}

/** The internal codes raised on purpose that have a wire code of their own (everything else is EXECUTION). */
const WIRE_CODES: Partial<Record<ErrorCode, WireCode>> = {
  [ErrorCode.PROTOCOL]: WireCode.PROTOCOL,
  [ErrorCode.UNKNOWN_SIGNAL]: WireCode.UNKNOWN_SIGNAL,
  [ErrorCode.BAD_ARGUMENTS]: WireCode.BAD_ARGUMENTS,
  [ErrorCode.CHANNEL_NOT_FOUND]: WireCode.CHANNEL_NOT_FOUND,
  [ErrorCode.CHANNEL_FORBIDDEN]: WireCode.CHANNEL_FORBIDDEN,
  [ErrorCode.TIMEOUT]: WireCode.TIMEOUT,
  [ErrorCode.IO]: WireCode.NOT_SAVED,
  [ErrorCode.AUTH]: WireCode.AUTH_FAILED,
};

/**
 * The {@link WireCode} (or an app's {@link SignalError} code) of anything thrown while running a
 * call; what was not raised on purpose is `EXECUTION`.
 */
export function wireCodeOf(err: unknown): string {
  if (err instanceof SignalError) return err.code;
  return (err instanceof LexiconsError && WIRE_CODES[err.code]) || WireCode.EXECUTION;
}

/** Close reasons must fit in a control frame (123 bytes of UTF-8). */
export function closeReason(reason: string): string {
  let out = reason;
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}

/**
 * Decodes header data (an HTTP header value or a query parameter) as the original did: JSON;
 * if that fails, single quotes replaced by double quotes; if still not JSON, `{header: raw}`.
 * A JSON value that is not an object is also passed as `{header: value}`.
 */
export function decodeHeaderValue(raw: string): Record<string, unknown> {
  for (const candidate of [raw, raw.replace(/'/g, '"')]) {
    try {
      const value: unknown = JSON.parse(candidate);
      if (isPlainObject(value)) return value;
      return { header: value };
    } catch {
      // try the next form; the last resort is the raw string below
    }
  }
  return { header: raw };
}
