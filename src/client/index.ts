/**
 * @module lexicons/client
 * The lexicons client for browsers and Node 20: `import { createClient } from 'lexicons/client'`.
 * Typed from the server's own definitions, dependency-free, no Node built-ins (it uses the
 * browser's WebSocket, or the class passed as `WebSocket`, e.g. the `ws` package's). docs/client.md.
 *
 * @example
 * import { createClient } from 'lexicons/client';
 * import type { server } from './main.js'; // types only: nothing of the server is bundled
 *
 * const client = createClient<typeof server>({ url: 'ws://localhost:5000', headers: { Login: { email, password } } });
 * client.onState((e) => console.log(e.state));
 * client.on('CreateChatMessage', (message) => render(message));
 * client.onChannel((e) => e.type === 'stale' && refetch(e.channel)); // missed items could not be recovered
 * await client.call('Subscribe', { channel: 'Public' }, { replay: true });
 * const sent = await client.call('CreateChatMessage', { channel: 'Public', content: 'hi' }, { resend: true });
 */
import { Engine } from './client.js';
import type { ChannelEvent, Member, Position } from './channels.js';
import type { ClientOptions, ClientState, StateEvent } from './options.js';
import type { CallArgs, CallRest, Item, LiveArgs, LiveName, LiveShape, Push, PushName, Reply, SignalName } from './types.js';
import type { LiveView } from './live.js';

export { WireCode, SUBPROTOCOL } from '../wire.js';
export { ClientError, ClientCode } from './errors.js';
export type { ClientOptions, ClientState, ReconnectOptions, StateEvent, WebSocketClass, WebSocketLike } from './options.js';
export type { ChannelEvent, Member, Position } from './channels.js';
export type { LiveEvent, LiveGroups, LiveRow, LiveView } from './live.js';
export type { AbortSignalLike, CallArgs, CallOptions, HeaderData, Item, LiveArgs, LiveName, LiveShape, Push, PushName, Reply, SignalName } from './types.js';

/** A lexicons client; `T` is `typeof server` (or a SignalManager, or a record of Signal classes) for typed calls. */
export interface Client<T = unknown> {
  /** `disconnected`, `connecting`, `open` (admitted: `$connected` received) or `closed` (stopped). */
  readonly state: ClientState;
  /** The server's id of the current connection (from `$connected`); undefined unless open. */
  readonly connectionId: string | undefined;
  /**
   * Calls Signal `name`; resolves with the payload of its reply item named `name` (undefined when
   * the server acknowledged it with `$ok`, or answered only with other names), rejects with a
   * {@link ClientError} carrying the server's code (or `CALL_TIMEOUT`, `CONNECTION_LOST`,
   * `ABORTED`, `CLOSED`). Settles exactly once. Made while not open, it waits (up to its timeout).
   */
  call<N extends SignalName<T>>(name: N, ...rest: CallRest<CallArgs<T, N>>): Promise<Reply<T, N>>;
  /**
   * Runs `handler` for every received item named `name` (pushes, broadcasts, and replies to
   * calls alike; `Errors` items too). Returns the function that removes it.
   */
  on<N extends PushName<T>>(name: N, handler: (payload: Push<T, N>, item: Item) => void): () => void;
  /**
   * Subscribes to live query `name` (docs/live-queries.md): a view of its result the server keeps
   * current (`rows`, `groups` or `value`, typed from the query), with change events and
   * `close()`. It subscribes again after every reconnect (a fresh whole result follows).
   */
  live<N extends LiveName<T>>(name: N, ...rest: LiveRest<LiveArgs<T, N>>): LiveView<LiveShape<T, N>>;
  /** Runs `handler` at every state change. Returns the function that removes it. */
  onState(handler: (event: StateEvent) => void): () => void;
  /**
   * Runs `handler` at every channel event (docs/channels.md): `subscribed` (a history channel
   * joined or recovered, with `recovered` and `wasRecovering`), `stale` (missed items could not be
   * recovered: refetch that channel's state), `unsubscribed`, `presence` (members changed).
   * Returns the function that removes it.
   */
  onChannel(handler: (event: ChannelEvent) => void): () => void;
  /** The last delivered (epoch, offset) per history channel (sent in `$connect` on reconnect). */
  readonly positions: Readonly<Record<string, Position>>;
  /** The members of a presence channel this connection is in (empty otherwise). */
  presence(channel: string): Member[];
  /** Connects now (also during a reconnect delay, or again after `closed`, e.g. with new headers). */
  connect(): void;
  /** Closes the connection (1000) and stops reconnecting; unsettled calls reject with `CLOSED`. */
  close(): void;
}

/** The rest parameters of `live`: the arguments may be left out when every one is optional. */
type LiveRest<A> = {} extends A ? [args?: A] : [args: A];

/** Creates a client and (unless `autoConnect: false`) starts connecting. */
export function createClient<T = unknown>(options: ClientOptions<T>): Client<T> {
  return new Engine(options as ClientOptions) as unknown as Client<T>;
}
