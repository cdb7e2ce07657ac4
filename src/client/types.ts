/**
 * @module client/types
 * The client's types, derived from the server's definitions (`createClient<typeof server>`):
 * Signal names, their arguments (from `static args`) and reply types (from `this.response`), and
 * the `headers` option (from the Headers' `static args`). Type-only; no Node types.
 *
 * `T` may be `typeof server` (a `Server`), `typeof signals` (a `SignalManager`), or a record of
 * Signal classes such as a module namespace (`typeof import('./signals.js')`). Names are only
 * known when the classes are keyed by name: `new SignalManager({ A, B })`, not `new
 * SignalManager(A, B)` (TypeScript has no literal type for a class name); otherwise, and when `T`
 * is omitted, the client is untyped: any name, any arguments, `unknown` replies.
 */
import type { ClientError } from './errors.js';
import type { HeaderLike, InputOf, NamedComponents, ReplyOf, SignalLike } from '../typing.js';
import type { LiveResultOf } from '../live-query.js';

/** A live query class, structurally (its instances have `query`). */
type LiveLike = abstract new (...args: any) => { query(...args: any): unknown };

/** The components of kind `Key` (`'~signals'`/`'~headers'`) of T, keyed by name; undefined when not known. */
type Components<T, Key extends string, Like> = unknown extends T
  ? undefined
  : Key extends keyof T
    ? T extends { readonly [K in Key]?: infer S } ? NamedComponents<NonNullable<S>, Like> : undefined
    : NamedComponents<T, Like>;

type Signals<T> = Components<T, '~signals', SignalLike>;
type Lives<T> = Components<T, '~live', LiveLike>;
type Headers<T> = Components<T, '~headers', HeaderLike>;

/** The Signal names a client of T may call (`string` when untyped). */
export type SignalName<T> = Signals<T> extends Record<string, unknown> ? keyof Signals<T> & string : string;

/** The arguments of a call to Signal N. */
export type CallArgs<T, N> = Signals<T> extends Record<string, unknown> ? (N extends keyof Signals<T> ? InputOf<Signals<T>[N]> : never) : Record<string, unknown>;

/** What a call to Signal N resolves with (`unknown` when untyped or answered with `ws.send`). */
export type Reply<T, N> = Signals<T> extends Record<string, unknown> ? (N extends keyof Signals<T> ? ReplyOf<Signals<T>[N]> : unknown) : unknown;

/** The live query names a client of T may subscribe to (`string` when untyped). */
export type LiveName<T> = Lives<T> extends Record<string, unknown> ? keyof Lives<T> & string : string;

/** The arguments of live query N. */
export type LiveArgs<T, N> = Lives<T> extends Record<string, unknown> ? (N extends keyof Lives<T> ? InputOf<Lives<T>[N]> : never) : Record<string, unknown>;

/** What live query N materializes: `{ rows }`, `{ groups }` or `{ value }` (all three, untyped, when unknown). */
export type LiveShape<T, N> = Lives<T> extends Record<string, unknown> ? (N extends keyof Lives<T> ? LiveResultOf<Lives<T>[N]> : never) : { rows: Array<{ pk: string } & Record<string, unknown>>; groups: Record<string, Record<string, number | null>>; value: unknown };

/** The names `on` suggests: the Signals' names and `Errors` (any other item name is accepted too). */
export type PushName<T> = SignalName<T> | 'Errors' | (string & {});

/** The payload of a received item named N: `string[]` for `Errors`, the Signal's reply type, else `unknown`. */
export type Push<T, N> = N extends 'Errors' ? string[] : N extends SignalName<T> ? Exclude<Reply<T, N>, undefined> : unknown;

/** Header data sent in `$connect`: `{ Login: { email, password } }`, typed by the Headers' `static args` when known. */
export type HeaderData<T> = Headers<T> extends Record<string, unknown> ? { [K in keyof Headers<T>]?: InputOf<Headers<T>[K]> } : Record<string, unknown>;

/** One received item: `{"Name": payload}` plus `"$id"` (when it answers a call) and `"code"` (on `Errors`). */
export type Item = { readonly [key: string]: unknown };

/** Per-call options. */
export interface CallOptions {
  /** Milliseconds until the call rejects with `CALL_TIMEOUT`, counted from `call()` (waiting for a connection included). Default: the client's `timeoutMs`. */
  timeoutMs?: number;
  /**
   * Re-send this call, in order with the other replayed calls, after every reconnect (after
   * `$connected`, before calls that waited): for calls that set up connection state, such as
   * subscriptions. The promise settles once, on the first outcome; later outcomes reach `on`
   * handlers only. A replayed call stops being replayed when its first outcome is a server error,
   * or when its `signal` aborts.
   */
  replay?: boolean;
  /**
   * Exactly once across a dropped connection: if the connection drops before the outcome, the
   * call is re-sent with its idempotency key (`$key`) once the session is resumed, and the server
   * answers a call it already ran with the stored outcome instead of running it again. When the
   * session cannot be resumed (`resumed: false`: the grace period passed, the server restarted),
   * it rejects with `CONNECTION_LOST` (it may have run). For calls that change data
   * (`CreateChatMessage`); `replay` calls are re-sent with their key too.
   */
  resend?: boolean;
  /** Aborting rejects the call with `ABORTED` (if not yet settled) and stops its replay. */
  signal?: AbortSignalLike;
}

/** The part of `AbortSignal` the client uses (browsers and Node have it). */
export interface AbortSignalLike {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** The rest parameters of `call`: the arguments may be left out when every one is optional. */
export type CallRest<A> = {} extends A ? [args?: A, options?: CallOptions] : [args: A, options?: CallOptions];

/** Internal: a call's `$id` on the wire. */
export type CallId = number;

/** Internal: a call until it settles (client/client.ts). */
export interface Pending {
  readonly name: string;
  /** `{"Name":{...args}` without the closing brace: the `$id` is appended per send. */
  readonly head: string;
  readonly replay: boolean;
  /** Re-sent with its key after a resumed reconnect while unsettled (`resend`). */
  readonly resend: boolean;
  /** Its idempotency key (`$key`): a replay with the same key in the same session runs once. */
  key: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: ClientError) => void;
  readonly timer: ReturnType<typeof setTimeout>;
  readonly signal: AbortSignalLike | undefined;
  readonly onAbort: () => void;
  /** The `$id` of its latest send. */
  id: CallId | undefined;
  done: boolean;
}
