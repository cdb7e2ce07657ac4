/**
 * @module workers/handles
 * What user code sees in a worker: `ws` ({@link ConnectionHandle}, the public `Connection`) and
 * `sv` ({@link WorkerServerHandle}, the public `ServerHandle`). A ConnectionHandle starts from
 * the `ConnectionSnapshot` the main thread sent of its `SocketConnection`. Nothing here touches a
 * socket: every effect goes to the job's {@link Recorder} and reaches the main thread with the
 * result, after the commit.
 */
import type { Connection, Json, PresenceMember, ServerHandle } from '../components.js';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { ChannelPositionRef, ConnectionSnapshot } from '../job-contract.js';
import type { Recorder } from './recorder.js';

export function assertChannelName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 256) {
    throw new LexiconsError(ErrorCode.BAD_ARGUMENTS, `channel name must be a non-empty string of at most 256 characters, got ${JSON.stringify(name) ?? String(name)}`);
  }
}

/** A JSON copy of a value (records carry methods that cannot cross threads). */
export function toJson(value: unknown): Json | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  const text = JSON.stringify(value);
  return text === undefined ? undefined : (JSON.parse(text) as Json);
}

export interface ConnectionHandleState {
  auth: Json | undefined;
  meta: Json | undefined;
  channels: ReadonlySet<string>;
  closed: boolean;
}

/** Largest `ws.meta`, serialized. */
export const MAX_META_BYTES = 1024;

/** `ws` in a worker: the connection's state as of the batch, plus recorded effects. */
export class ConnectionHandle implements Connection {
  readonly id: string;
  readonly address: string;
  /** The connection speaks lexicons.v1 (its error items carry a `code`). */
  readonly v1: boolean;
  /** Positions the client sent for history channels (a join recovers from them). */
  readonly positions: Readonly<Record<string, ChannelPositionRef>> | undefined;
  #auth: Json | undefined;
  #meta: Json | undefined;
  #channels: ReadonlySet<string>;
  #closed = false;
  readonly #recorder: Recorder;

  constructor(snapshot: ConnectionSnapshot, recorder: Recorder) {
    this.id = snapshot.id;
    this.address = snapshot.address;
    this.v1 = snapshot.v1 === true;
    this.positions = snapshot.positions;
    this.#auth = snapshot.auth;
    this.#meta = snapshot.meta;
    this.#channels = new Set(snapshot.channels);
    this.#recorder = recorder;
  }

  get pk(): string {
    return this.id;
  }

  get auth(): Json | undefined {
    return this.#auth;
  }

  set auth(value: Json | undefined) {
    const auth = toJson(value);
    this.#auth = auth;
    this.#recorder.push({ kind: 'auth', connectionId: this.id, auth });
  }

  get meta(): Json | undefined {
    return this.#meta;
  }

  set meta(value: Json | undefined) {
    const meta = toJson(value);
    const bytes = meta === undefined ? 0 : Buffer.byteLength(JSON.stringify(meta));
    if (bytes > MAX_META_BYTES) throw new LexiconsError(ErrorCode.BAD_ARGUMENTS, `ws.meta must be at most ${MAX_META_BYTES} bytes of JSON, got ${bytes}`);
    this.#meta = meta;
    this.#recorder.push({ kind: 'meta', connectionId: this.id, meta });
  }

  get channels(): readonly string[] {
    return [...this.#channels];
  }

  /** Whether the connection is in `channel` (as of this call). */
  isSubscribed(channel: string): boolean {
    return this.#channels.has(channel);
  }

  send(payload: Json): void {
    this.#recorder.send(this.id, payload);
  }

  subscribe(channel: string): void {
    assertChannelName(channel);
    if (this.#channels.has(channel)) return;
    this.#channels = new Set(this.#channels).add(channel);
    this.#recorder.pendingSubscriptions.push(channel);
    this.#recorder.push({ kind: 'subscribe', connectionId: this.id, channel });
  }

  unsubscribe(channel: string): void {
    assertChannelName(channel);
    if (!this.#channels.has(channel)) return;
    const next = new Set(this.#channels);
    next.delete(channel);
    this.#channels = next;
    this.#recorder.push({ kind: 'unsubscribe', connectionId: this.id, channel });
  }

  close(code = 1000, reason = ''): void {
    if (code !== 1000 && (code < 3000 || code > 4999)) {
      throw new LexiconsError(ErrorCode.BAD_ARGUMENTS, `close code must be 1000 or 3000-4999, got ${code}`);
    }
    this.#closed = true;
    this.#recorder.push({ kind: 'close', connectionId: this.id, code, reason: String(reason) });
  }

  get closed(): boolean {
    return this.#closed;
  }

  state(): ConnectionHandleState {
    return { auth: this.#auth, meta: this.#meta, channels: this.#channels, closed: this.#closed };
  }

  restore(state: ConnectionHandleState): void {
    this.#auth = state.auth;
    this.#meta = state.meta;
    this.#channels = state.channels;
    this.#closed = state.closed;
  }

  toJSON(): Record<string, unknown> {
    return { id: this.id, auth: this.#auth, meta: this.#meta, address: this.address, channels: this.channels };
  }
}

/** What `sv.info()` returns, fetched from the main thread over the control plane. */
export interface ServerInfo {
  connections: number;
  channels: Record<string, number>;
}

/** The main thread's answers `sv` reads over the control plane. */
export interface MainQueries {
  info(): Promise<ServerInfo>;
  presence(channel: string, countOnly: boolean): Promise<PresenceMember[] | number>;
}

/** `sv` in a worker. */
export class WorkerServerHandle implements ServerHandle {
  readonly #recorder: Recorder;
  readonly #main: MainQueries;

  constructor(recorder: Recorder, main: MainQueries) {
    this.#recorder = recorder;
    this.#main = main;
  }

  broadcast(payload: Json, channels: readonly string[]): void {
    if (!Array.isArray(channels)) throw new LexiconsError(ErrorCode.BAD_ARGUMENTS, 'sv.broadcast(payload, channels): channels must be a list of channel names');
    for (const name of channels) assertChannelName(name);
    const unique = [...new Set(channels)];
    if (unique.length === 0) return;
    this.#recorder.broadcast(payload === undefined ? null : payload, unique);
  }

  presence(channel: string): Promise<PresenceMember[]>;
  presence(channel: string, options: { countOnly: true }): Promise<number>;
  presence(channel: string, options?: { countOnly?: boolean }): Promise<PresenceMember[] | number> {
    assertChannelName(channel);
    return this.#main.presence(channel, options?.countOnly === true);
  }

  resetHistory(channel: string): void {
    assertChannelName(channel);
    this.#recorder.resetHistory(channel);
  }

  createChannel(name: string): void {
    assertChannelName(name);
    const view = this.#recorder.view;
    if (view.exists(name)) return;
    const created = new Set(view.state.created).add(name);
    const dropped = new Set(view.state.dropped);
    dropped.delete(name);
    view.state = { created, dropped };
    this.#recorder.push({ kind: 'createChannel', channel: name });
  }

  dropChannel(name: string): void {
    assertChannelName(name);
    const view = this.#recorder.view;
    if (view.declared.has(name)) throw new LexiconsError(ErrorCode.BAD_ARGUMENTS, `Channel [${name}] is declared and cannot be dropped`);
    const created = new Set(view.state.created);
    created.delete(name);
    view.state = { created, dropped: new Set(view.state.dropped).add(name) };
    this.#recorder.push({ kind: 'dropChannel', channel: name });
  }

  info(): Promise<ServerInfo> {
    return this.#main.info();
  }
}
