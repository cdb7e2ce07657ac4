/**
 * @module workers/context
 * What user code sees in a worker (`ws`, `sv`) and the recorder behind them. Nothing here
 * touches a socket: every effect is recorded, in call order, and returned with the job result;
 * the main thread applies the effects after the transaction committed. A call that fails is
 * rolled back to its savepoint, and so are its recorded effects and connection state
 * ({@link Recorder.mark} / {@link Recorder.restore}).
 */
import type { Connection, Json, ServerHandle } from '../components.js';
import { ErrorCode, LexiconsError } from '../errors.js';
import { errorItemText, type CallId } from '../protocol.js';
import type { ConnSnapshot, Effect, LogEntry } from './jobs.js';

/** Response items of consecutive calls of one unit to the same channels share one frame. */
interface ItemsRecord {
  t: 'items';
  unit: number;
  key: string;
  ch: string[];
  items: string[];
}
/** Errors of consecutive calls of one unit to one caller share one frame. */
interface ErrorsRecord {
  t: 'errs';
  unit: number;
  c: string;
  items: string[];
}
type Rec = Effect | ItemsRecord | ErrorsRecord;

export interface Mark {
  length: number;
  inner: number;
  conn: WorkerConnection | undefined;
  connState: ConnState | undefined;
  view: ChannelViewState;
}

/** Channels known to this worker: declared ones, the run-time registry cache, this job's changes. */
export class ChannelView {
  readonly declared: ReadonlySet<string>;
  runtime: ReadonlySet<string> = new Set();
  runtimeVersion = -1;
  state: ChannelViewState = { created: new Set(), dropped: new Set() };

  constructor(declared: Iterable<string>) {
    this.declared = new Set(declared);
  }

  exists(name: string): boolean {
    if (this.state.dropped.has(name)) return false;
    return this.declared.has(name) || this.state.created.has(name) || this.runtime.has(name);
  }

  resetJob(): void {
    this.state = { created: new Set(), dropped: new Set() };
  }
}

/** Copy-on-write, so a mark is O(1). */
export interface ChannelViewState {
  created: ReadonlySet<string>;
  dropped: ReadonlySet<string>;
}

export class Recorder {
  readonly #records: Rec[] = [];
  readonly logs: LogEntry[] = [];
  /** Channels subscribed during the current call, checked before the call completes. */
  pendingSubscriptions: string[] = [];
  readonly view: ChannelView;

  constructor(view: ChannelView) {
    this.view = view;
  }

  push(effect: Effect): void {
    this.#records.push(effect);
  }

  /** Adds a response item for channels (deduplicated; none: nothing is sent). */
  respond(unit: number, text: string, channels: readonly string[]): void {
    const ch = [...new Set(channels)];
    if (ch.length === 0) return;
    const key = ch.length === 1 ? ch[0]! : [...ch].sort().join('\u0000');
    const last = this.#records.at(-1);
    if (last?.t === 'items' && last.unit === unit && last.key === key) last.items.push(text);
    else this.#records.push({ t: 'items', unit, key, ch, items: [text] });
  }

  /** Adds an error for the caller of `unit`. */
  error(unit: number, conn: string, message: string, id?: CallId): void {
    const text = errorItemText([message], id);
    const last = this.#records.at(-1);
    if (last?.t === 'errs' && last.unit === unit && last.c === conn) last.items.push(text);
    else this.#records.push({ t: 'errs', unit, c: conn, items: [text] });
  }

  log(status: LogEntry['status'], data: Record<string, unknown>): void {
    this.logs.push({ status, data });
  }

  mark(conn?: WorkerConnection): Mark {
    const last = this.#records.at(-1);
    this.pendingSubscriptions = [];
    return {
      length: this.#records.length,
      inner: last && (last.t === 'items' || last.t === 'errs') ? last.items.length : 0,
      conn,
      connState: conn?.state(),
      view: this.view.state,
    };
  }

  restore(mark: Mark): void {
    this.#records.length = mark.length;
    const last = this.#records.at(-1);
    if (last && (last.t === 'items' || last.t === 'errs')) last.items.length = mark.inner;
    if (mark.conn && mark.connState) mark.conn.restore(mark.connState);
    this.view.state = mark.view;
    this.pendingSubscriptions = [];
  }

  /** Drops the subscriptions a connection made since `from` (a rejected connection keeps none). */
  dropSubscriptions(conn: string, from: number): void {
    for (let i = this.#records.length - 1; i >= from; i--) {
      const r = this.#records[i]!;
      if (r.t === 'sub' && r.c === conn) this.#records.splice(i, 1);
    }
  }

  get length(): number {
    return this.#records.length;
  }

  /** The ordered effects, with merged items serialized into their frames. */
  effects(): Effect[] {
    return this.#records.map((r): Effect => {
      if (r.t === 'items') return { t: 'pub', ch: r.ch, text: `[${r.items.join(',')}]` };
      if (r.t === 'errs') return { t: 'send', c: r.c, text: `[${r.items.join(',')}]` };
      return r;
    });
  }
}

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

export interface ConnState {
  auth: Json | undefined;
  channels: ReadonlySet<string>;
  closed: boolean;
}

/** `ws` in a worker: the connection's state as of the batch, plus recorded effects. */
export class WorkerConnection implements Connection {
  readonly id: string;
  readonly address: string;
  #auth: Json | undefined;
  #channels: ReadonlySet<string>;
  #closed = false;
  readonly #rec: Recorder;

  constructor(snapshot: ConnSnapshot, rec: Recorder) {
    this.id = snapshot.id;
    this.address = snapshot.address;
    this.#auth = snapshot.auth;
    this.#channels = new Set(snapshot.channels);
    this.#rec = rec;
  }

  get pk(): string {
    return this.id;
  }

  get auth(): Json | undefined {
    return this.#auth;
  }

  set auth(value: Json | undefined) {
    const v = toJson(value);
    this.#auth = v;
    this.#rec.push({ t: 'auth', c: this.id, v });
  }

  get channels(): readonly string[] {
    return [...this.#channels];
  }

  send(payload: Json): void {
    const text = JSON.stringify(payload === undefined ? null : payload);
    this.#rec.push({ t: 'send', c: this.id, text });
  }

  subscribe(channel: string): void {
    assertChannelName(channel);
    if (this.#channels.has(channel)) return;
    this.#channels = new Set(this.#channels).add(channel);
    this.#rec.pendingSubscriptions.push(channel);
    this.#rec.push({ t: 'sub', c: this.id, ch: channel });
  }

  unsubscribe(channel: string): void {
    assertChannelName(channel);
    if (!this.#channels.has(channel)) return;
    const next = new Set(this.#channels);
    next.delete(channel);
    this.#channels = next;
    this.#rec.push({ t: 'unsub', c: this.id, ch: channel });
  }

  close(code = 1000, reason = ''): void {
    if (code !== 1000 && (code < 3000 || code > 4999)) {
      throw new LexiconsError(ErrorCode.BAD_ARGUMENTS, `close code must be 1000 or 3000-4999, got ${code}`);
    }
    this.#closed = true;
    this.#rec.push({ t: 'close', c: this.id, code, reason: String(reason) });
  }

  get closed(): boolean {
    return this.#closed;
  }

  state(): ConnState {
    return { auth: this.#auth, channels: this.#channels, closed: this.#closed };
  }

  restore(state: ConnState): void {
    this.#auth = state.auth;
    this.#channels = state.channels;
    this.#closed = state.closed;
  }

  toJSON(): Record<string, unknown> {
    return { id: this.id, auth: this.#auth, address: this.address, channels: this.channels };
  }
}

/** What `sv.info()` returns, fetched from the main thread over the control plane. */
export interface ServerInfo {
  connections: number;
  channels: Record<string, number>;
}

/** `sv` in a worker. */
export class WorkerServer implements ServerHandle {
  readonly #rec: Recorder;
  readonly #info: () => Promise<ServerInfo>;

  constructor(rec: Recorder, info: () => Promise<ServerInfo>) {
    this.#rec = rec;
    this.#info = info;
  }

  broadcast(payload: Json, channels: readonly string[]): void {
    if (!Array.isArray(channels)) throw new LexiconsError(ErrorCode.BAD_ARGUMENTS, 'sv.broadcast(payload, channels): channels must be a list of channel names');
    for (const ch of channels) assertChannelName(ch);
    const ch = [...new Set(channels)];
    if (ch.length === 0) return;
    this.#rec.push({ t: 'pub', ch, text: JSON.stringify(payload === undefined ? null : payload) });
  }

  createChannel(name: string): void {
    assertChannelName(name);
    const view = this.#rec.view;
    if (view.exists(name)) return;
    const created = new Set(view.state.created).add(name);
    const dropped = new Set(view.state.dropped);
    dropped.delete(name);
    view.state = { created, dropped };
    this.#rec.push({ t: 'mkch', ch: name });
  }

  dropChannel(name: string): void {
    assertChannelName(name);
    const view = this.#rec.view;
    if (view.declared.has(name)) throw new LexiconsError(ErrorCode.BAD_ARGUMENTS, `Channel [${name}] is declared and cannot be dropped`);
    const created = new Set(view.state.created);
    created.delete(name);
    view.state = { created, dropped: new Set(view.state.dropped).add(name) };
    this.#rec.push({ t: 'rmch', ch: name });
  }

  info(): Promise<ServerInfo> {
    return this.#info();
  }
}
