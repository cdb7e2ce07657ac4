/**
 * @module main/call-replies
 * Error replies the main thread sends for frames that never ran: frames refused before they are
 * parsed (binary, shutting down, over the rate limit, queue full) and frames of a job whose worker
 * failed (time limit, crash). Each call with `$id` in such a frame still gets its terminal error
 * item; a frame without `$id`s gets one untagged item, as before.
 *
 * The rule for refused frames (docs/protocol.md): their `$id`s are read only when the frame holds
 * at most {@link MAX_ID_SCAN_BYTES} bytes, with a scanner that returns at once for a frame without
 * `"$id"` (src/call-ids.ts), so a flood of refused frames costs little more than refusing them.
 * A frame of a failed job is read whatever its size (failures are rare and already expensive).
 */
import { MAX_ID_SCAN_BYTES, scanCallIds } from '../call-ids.js';
import { errorItemsFrame, type CallId } from '../protocol.js';
import type { SocketConnection } from './socket-connection.js';

const NO_IDS: readonly CallId[] = [];
const ID_KEY = Buffer.from('"$id"');

/** The `$id`s of a refused frame's calls (the uWS message, valid only during its callback). */
export function refusedFrameIds(message: ArrayBuffer): readonly CallId[] {
  if (message.byteLength > MAX_ID_SCAN_BYTES) return NO_IDS;
  const bytes = Buffer.from(message);
  if (bytes.indexOf(ID_KEY) < 0) return NO_IDS;
  return scanCallIds(bytes.toString('utf8'));
}

/** Refuses a frame that was not parsed: one error item per `$id` in it (or one untagged item). */
export function refuseFrame(conn: SocketConnection, message: ArrayBuffer, reason: string, code: string): void {
  conn.send(errorItemsFrame(reason, code, refusedFrameIds(message), conn.v1 !== null));
}

/** The error of a frame whose job failed (its text is known): one item per `$id` in it. */
export function failFrame(conn: SocketConnection, text: string, reason: string, code: string): void {
  conn.send(errorItemsFrame(reason, code, scanCallIds(text), conn.v1 !== null));
}
