/**
 * @module components
 * The building blocks a user writes: Signals, Headers, Channels and Tasks, and the managers that
 * collect them (as in the seed). These are plain definitions: the runtime (main thread and
 * worker pool) reads them; nothing here touches sockets or threads.
 *
 * @example
 * class CreateChatMessage extends Signal {
 *   static args = { channel: field.str(), content: field.str() };
 *   execute({ channel, content, db, ws }: SignalContext<{ channel: string; content: string }>) {
 *     const message = db.create(ChatMessage, { channel, content, author: ws.auth as string, timestamp: Date.now() / 1000 });
 *     return this.response(message.toDict(), [channel]);
 *   }
 * }
 */
import type { Db } from './storage/api.js';
import type { Field, ModelClass } from './storage/schema.js';

/** JSON-serializable payload. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

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
}

export interface ExecutionContext {
  db: Db;
  sv: ServerHandle;
}

/** What `execute` receives: the call's arguments plus `db`, `ws` and `sv`. */
export type SignalContext<A = Record<string, unknown>> = A & ExecutionContext & { ws: Connection };
export type HeaderContext<A = Record<string, unknown>> = A & ExecutionContext & { ws: Connection };
export type TaskContext = ExecutionContext;

/** A signal's result: the payload and the channels to broadcast it on. */
export interface SignalResponse {
  readonly payload: Json;
  readonly channels: readonly string[];
}

/**
 * A named server function a client calls over the socket: `{"ClassName": {...args}}`.
 * Optional `static args` declares argument types with the same builders as Model fields;
 * arguments that do not match are rejected before `execute` runs.
 */
export abstract class Signal {
  static args?: Record<string, Field<any, any>>;
  /** Set by the runtime to the class name (or static `signalName`). */
  static signalName?: string;

  abstract execute(context: SignalContext<any>): SignalResponse | undefined | void | Promise<SignalResponse | undefined | void>;

  /** Builds the response: `payload` goes as `[{Name: payload}]` to subscribers of `channels`. */
  response(payload: Json, channels: readonly string[] = []): SignalResponse {
    return { payload, channels: [...channels] };
  }
}

/** Authentication run on connection data; returns whether this header admits the connection. */
export abstract class Header {
  static args?: Record<string, Field<any, any>>;
  static headerName?: string;
  abstract execute(context: HeaderContext<any>): boolean | Promise<boolean>;
}

/** A broadcast group, declared as a class; the class name is the channel name. */
export class Channel {
  static channelName?: string;
}

abstract class TaskBase {
  /** Lower runs first (0 is a real priority, unlike the original). */
  priority = 0;
  abstract execute(context: TaskContext): unknown;
}

abstract class StartupTask extends TaskBase {
  static readonly kind = 'startup';
}
abstract class ShutdownTask extends TaskBase {
  static readonly kind = 'shutdown';
}
abstract class IntervalTask extends TaskBase {
  static readonly kind = 'interval';
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
class Manager<C extends Function> implements Iterable<C> {
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

export class ModelManager extends Manager<ModelClass> {}
export class SignalManager extends Manager<typeof Signal> {}
export class HeaderManager extends Manager<typeof Header> {}
export class ChannelManager extends Manager<typeof Channel> {}
export class TaskManager extends Manager<TaskClass> {}
