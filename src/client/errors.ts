/**
 * @module client/errors
 * The one error class of the client: `code` is a server {@link WireCode} (or an app's own code
 * thrown by a Signal), or a {@link ClientCode} for what happened on the client's side.
 */

/** Codes of errors the client raises itself (the server's codes are in `WireCode`). */
export const ClientCode = {
  /** No outcome within the call's `timeoutMs` (it may still have run on the server). */
  CALL_TIMEOUT: 'CALL_TIMEOUT',
  /** The connection was lost after the call was sent and before its outcome (it may have run). */
  CONNECTION_LOST: 'CONNECTION_LOST',
  /** The client was closed (`close()`, or it stopped reconnecting) before the call's outcome. */
  CLOSED: 'CLOSED',
  /** The call's `signal` was aborted. */
  ABORTED: 'ABORTED',
  /** `reconnect.maxAttempts` consecutive connection attempts failed; the client stopped. */
  RECONNECT_FAILED: 'RECONNECT_FAILED',
  /** The `headers` function threw; the client stopped. */
  HEADERS_FAILED: 'HEADERS_FAILED',
} as const;
export type ClientCode = (typeof ClientCode)[keyof typeof ClientCode];

/** A refused or failed call (or connection): the server's `code` and messages, or a {@link ClientCode}. */
export class ClientError extends Error {
  /** A `WireCode`, an app code, or a `ClientCode`. */
  readonly code: string;
  /** Every message of the `Errors` item (`message` joins them). */
  readonly messages: readonly string[];

  constructor(code: string, messages: string | readonly string[]) {
    const list = typeof messages === 'string' ? [messages] : messages;
    super(list.join('; '));
    this.name = 'ClientError';
    this.code = code;
    this.messages = list;
  }
}
