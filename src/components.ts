/**
 * @module components
 * The building blocks a user writes: Signals, Headers, Channels and Tasks, and the managers that
 * collect them (as in the seed). These are plain definitions: the runtime (main thread and
 * worker pool) reads them; nothing here touches sockets or threads.
 *
 * Types flow from the definitions (src/typing.ts): `SignalContext<typeof CreateChatMessage>`
 * gives `execute` the arguments its `static args` declare, and a manager built from a record
 * (`new SignalManager({ A, B })`) keeps its classes' names and types for `createClient<typeof
 * server>`. TypeScript does not type a method's parameters from its base class, so `execute`
 * names its own class once; the managers reject (at compile time) an `execute` annotated with
 * arguments its `static args` do not give.
 *
 * @example
 * class CreateChatMessage extends Signal {
 *   static override args = { channel: field.str(), content: field.str() };
 *   execute({ channel, content, db, ws }: SignalContext<typeof CreateChatMessage>) {
 *     const message = db.create(ChatMessage, { channel, content, author: ws.auth as string, timestamp: Date.now() / 1000 });
 *     return this.response(message.toDict(), [channel]);
 *   }
 * }
 * const signals = new SignalManager({ CreateChatMessage }); // or new SignalManager(CreateChatMessage)
 */
import { ErrorCode, LexiconsError } from './errors.js';
import type { RawJson } from './json-text.js';
import type { Db } from './storage/api.js';
import type { ModelClass } from './storage/schema.js';
import type { ArgFields, ArgsOf, ComponentClass, ComponentSet } from './typing.js';

/** JSON values; a {@link RawJson} (e.g. `db.queryJson` rows) is written as its text. */
export type Json = null | boolean | number | string | RawJson | Json[] | { [key: string]: Json };

/**
 * The connection as seen by Signals, Headers and hooks (`ws`). Effects (`send`, `subscribe`,
 * `auth` changes, `close`) take effect after the transaction commits, in call order.
 */
export interface Connection {
  /** Unique id of this connection (UUID4 string, as the original's `ws.pk`). */
  readonly id: string;
  /** Same as {@link id}: the original's name. */
  readonly pk: string;
  /** Set by a Header or Signal (e.g. the logged-in user's pk); null until then. */
  auth: Json | undefined;
  /** Remote address of the client. */
  readonly address: string;
  /** Sends one payload to this connection only (a JSON text frame). */
  send(payload: Json): void;
  /** Joins a channel (idempotent: a connection is in a channel at most once). */
  subscribe(channel: string): void;
  /** Leaves a channel (no error when not subscribed). */
  unsubscribe(channel: string): void;
  /** Channels this connection is in, as of the start of this execution. */
  readonly channels: readonly string[];
  /**
   * A small public JSON value (at most 1 KiB serialized) other members see in presence
   * (`static presence = true` channels), e.g. `{ user: pk, name }`; null until set. Kept across a
   * session resume. Never put secrets here (`auth` is the private one).
   */
  meta: Json | undefined;
  /** Closes the connection after the current call (code 1000 by default). */
  close(code?: number, reason?: string): void;
}

/** The server as seen by Signals, Headers, Tasks and hooks (`sv`). */
export interface ServerHandle {
  /** Sends `[{Name: payload}]`-style payloads as given to every subscriber of the channels. */
  broadcast(payload: Json, channels: readonly string[]): void;
  /** Creates a channel at run time (idempotent). */
  createChannel(name: string): void;
  /** Drops a run-time channel; its subscribers leave it. */
  dropChannel(name: string): void;
  /** Live server figures from the main thread (connections, channel sizes); async (comlink). */
  info(): Promise<{ connections: number; channels: Record<string, number> }>;
  /**
   * The members of a presence channel (`static presence = true`): one per session, with its
   * `ws.meta`; `{ countOnly: true }` gives only their number. Async, read from the main thread.
   */
  presence(channel: string): Promise<PresenceMember[]>;
  presence(channel: string, options: { countOnly: true }): Promise<number>;
  /**
   * Deletes the retained history of a history channel and gives it a new epoch (at commit, with
   * this call's other writes); clients recovering from an older position get `recovered: false`.
   */
  resetHistory(channel: string): void;
}

/** A member of a presence channel: a session (stable across resumes) and its public `meta`. */
export interface PresenceMember {
  id: string;
  meta: Json | undefined;
}

export interface ExecutionContext {
  db: Db;
  sv: ServerHandle;
}

/** `A` itself, or the arguments inferred from `static args` when `A` is a component class. */
type ArgsFor<A> = 0 extends 1 & A ? A : A extends ComponentClass ? ArgsOf<A> : A;

/**
 * What `execute` receives: the call's arguments plus `db`, `ws` and `sv`. `A` is the Signal's own
 * class (`SignalContext<typeof MySignal>`: the arguments its `static args` declare, defaults
 * filled in) or the arguments' type written out (`SignalContext<{ channel: string }>`).
 */
export type SignalContext<A = Record<string, unknown>> = ArgsFor<A> & ExecutionContext & { ws: Connection };
/** What a Header's `execute` receives; `A` as for {@link SignalContext} (`HeaderContext<typeof Login>`). */
export type HeaderContext<A = Record<string, unknown>> = ArgsFor<A> & ExecutionContext & { ws: Connection };
export type TaskContext = ExecutionContext;

/** A signal's result: the payload and the channels to broadcast it on. */
export interface SignalResponse<P extends Json = Json> {
  readonly payload: P;
  readonly channels: readonly string[];
}

/**
 * A named server function a client calls over the socket: `{"ClassName": {...args}}`.
 * Optional `static args` declares argument types with the same builders as Model fields;
 * arguments that do not match are rejected before `execute` runs.
 */
export abstract class Signal {
  static args?: ArgFields;
  /** Set by the runtime to the class name (or static `signalName`). */
  static signalName?: string;

  abstract execute(context: SignalContext<any>): SignalResponse | undefined | void | Promise<SignalResponse | undefined | void>;

  /**
   * Builds the response: `payload` goes as `[{Name: payload}]` to subscribers of `channels`. Its
   * type is the reply type a typed client infers for this Signal.
   */
  response<P extends Json>(payload: P, channels: readonly string[] = []): SignalResponse<P> {
    return { payload, channels: [...channels] };
  }
}

/** Authentication run on connection data; returns whether this header admits the connection. */
export abstract class Header {
  static args?: ArgFields;
  static headerName?: string;
  abstract execute(context: HeaderContext<any>): boolean | Promise<boolean>;
}

/** How much history a channel keeps: the last `size` publications and/or those younger than `maxAgeSeconds`. */
export interface ChannelHistory {
  size?: number;
  maxAgeSeconds?: number;
}

/** What a Channel's `authorize` receives: the calling transaction's `db`, the joining connection, the channel's name. */
export interface ChannelAuthContext {
  db: Db;
  ws: Connection;
  channel: string;
}

/** What happens to a subscriber that cannot keep up (over `limits.maxBackpressureBytes`). */
export type SlowClientPolicy = 'disconnect' | 'drop';

/**
 * A broadcast group, declared as a class; the class name is the channel name. Static members set
 * its rules (defaults: none of them, today's behaviour); docs/channels.md.
 *
 * @example
 * class Public extends Channel {
 *   static override history = { size: 1000, maxAgeSeconds: 86_400 }; // offsets, recovery after reconnect
 *   static override presence = true;                                  // who is in it
 * }
 * class Room extends Channel {
 *   static override pattern = 'room:*'; // rules for run-time channels (sv.createChannel('room:42'))
 *   static override authorize({ db, ws, channel }: ChannelAuthContext) {
 *     return db.get(Member, { room: channel.slice(5), user: ws.auth as string }) !== null;
 *   }
 * }
 */
export class Channel {
  static channelName?: string;
  /** Keep the last publications with offsets, so reconnecting clients recover what they missed. */
  static history?: ChannelHistory;
  /** Track members (sessions with their `ws.meta`) and tell subscribers who joins and leaves. */
  static presence?: boolean;
  /** `disconnect` (default): close a subscriber over the backpressure limit; `drop`: skip items for it, it recovers the gap. */
  static slowClient?: SlowClientPolicy;
  /**
   * Rules for run-time channels whose names match (`*` matches any run of characters): such a
   * class declares no channel of its own name. Exact names win over patterns; the first matching
   * pattern wins.
   */
  static pattern?: string;
  /**
   * Runs in the worker, inside the calling transaction, when a Signal calls `ws.subscribe(name)`;
   * false refuses the call with `CHANNEL_FORBIDDEN` (`Not allowed to join [name]`).
   */
  static authorize?(context: ChannelAuthContext): boolean | Promise<boolean>;
}

export abstract class TaskBase {
  /** Lower runs first (0 is a real priority, unlike the original). */
  priority = 0;
  abstract execute(context: TaskContext): unknown;
}

export abstract class StartupTask extends TaskBase {
  static readonly kind = 'startup';
  /**
   * Cluster mode (docs/cluster.md): startup tasks run once per cluster start, on the node that
   * holds the lease when it starts (the first node up); `static everyNode = true` runs it on every
   * node as it starts (e.g. a task about the node itself).
   */
  static everyNode = false;
}
export abstract class ShutdownTask extends TaskBase {
  static readonly kind = 'shutdown';
}
export abstract class IntervalTask extends TaskBase {
  static readonly kind = 'interval';
  /**
   * Cluster mode (docs/cluster.md): an interval task runs on one node at a time (the lease
   * holder); `static everyNode = true` runs it on every node (e.g. a task about the node itself).
   */
  static everyNode = false;
  /** Seconds between runs; `set()` (or its later name `timer()`) may compute it dynamically. */
  interval = 60;
  /** Returns the next interval in seconds; re-read after every run. */
  set(): number {
    return this.interval;
  }
  timer(): number {
    return this.set();
  }
}

/** Tasks: subclass `Task.Startup`, `Task.Interval` or `Task.Shutdown`. */
export const Task = { Startup: StartupTask, Shutdown: ShutdownTask, Interval: IntervalTask } as const;
export type Task = StartupTask | ShutdownTask | IntervalTask;
export type TaskKind = 'startup' | 'shutdown' | 'interval';
export type TaskClass = (abstract new () => Task) & { kind: TaskKind };

/** Name of a component class: `static signalName`/`headerName`/`channelName`/`table`, else the class name. */
export function componentName(cls: Function & { signalName?: string; headerName?: string; channelName?: string }): string {
  return cls.signalName ?? cls.headerName ?? cls.channelName ?? cls.name;
}

/** An ordered collection of component classes, as in the seed: `new SignalManager(A, B)`. */
export class Manager<C extends Function> implements Iterable<C> {
  readonly #items: C[] = [];
  constructor(...items: C[]) {
    for (const item of items) this.add(item);
  }
  add(...items: C[]): this {
    for (const item of items) if (!this.#items.includes(item)) this.#items.push(item);
    return this;
  }
  get size(): number {
    return this.#items.length;
  }
  [Symbol.iterator](): Iterator<C> {
    return this.#items[Symbol.iterator]();
  }
}

/**
 * The classes of `new SignalManager({ A, B })` (a record keyed by name) or `new SignalManager(A, B)`.
 * A record key must be the component's name (class name, or its static `signalName`/`headerName`).
 */
function listOf<C extends Function>(kind: string, items: readonly unknown[]): C[] {
  const [first] = items;
  if (items.length !== 1 || typeof first !== 'object' || first === null) return items as C[];
  return Object.entries(first).map(([key, item]) => {
    const name = typeof item === 'function' ? componentName(item) : String(item);
    if (name !== key) throw new LexiconsError(ErrorCode.OPTION, `${kind}: key ${key} holds ${name}; a key must be the component's name`);
    return item as C;
  });
}

/** An error type standing in for a class whose `execute` is annotated with arguments its `static args` do not give. */
export type ExecuteArgsMismatch = 'execute is annotated with arguments its static args do not give: annotate it with SignalContext<typeof ThisClass>';

/** C when its `execute` accepts the context its `static args` give, else {@link ExecuteArgsMismatch}. */
type CheckExecute<C, Ctx> = C extends abstract new (...args: any) => { execute(context: infer P, ...rest: any): any } ? ([Ctx] extends [P] ? C : ExecuteArgsMismatch) : C;
type CheckedSignals<S> = { [K in keyof S]: CheckExecute<S[K], SignalContext<S[K]>> };
type CheckedHeaders<S> = { [K in keyof S]: CheckExecute<S[K], HeaderContext<S[K]>> };

export class ModelManager extends Manager<ModelClass> {}

/**
 * The app's Signals. Built from a record (`new SignalManager({ Subscribe, CreateChatMessage })`),
 * it keeps their names and types for `createClient<typeof server>`; built from a list
 * (`new SignalManager(Subscribe, CreateChatMessage)`), the types keep the classes but not their
 * names (TypeScript has no literal type for a class name). Either way, a Signal whose `execute`
 * is annotated with arguments its `static args` do not give is a compile error here.
 */
export class SignalManager<const S extends ComponentSet<typeof Signal> = ComponentSet<typeof Signal>> extends Manager<typeof Signal> {
  /** Phantom: the Signals' types (read by `createClient<typeof server>`). Never set. */
  declare readonly '~signals'?: S;
  constructor(signals: S & CheckedSignals<S>);
  constructor(...signals: S & readonly (typeof Signal)[] & CheckedSignals<S>);
  constructor(...items: unknown[]) {
    super(...listOf<typeof Signal>('SignalManager', items));
  }
}

/** The app's Headers; a record (`new HeaderManager({ Login, Register })`) keeps names and types, as {@link SignalManager}. */
export class HeaderManager<const S extends ComponentSet<typeof Header> = ComponentSet<typeof Header>> extends Manager<typeof Header> {
  /** Phantom: the Headers' types (read by `createClient<typeof server>` for its `headers` option). Never set. */
  declare readonly '~headers'?: S;
  constructor(headers: S & CheckedHeaders<S>);
  constructor(...headers: S & readonly (typeof Header)[] & CheckedHeaders<S>);
  constructor(...items: unknown[]) {
    super(...listOf<typeof Header>('HeaderManager', items));
  }
}

export class ChannelManager extends Manager<typeof Channel> {}
export class TaskManager extends Manager<TaskClass> {}
