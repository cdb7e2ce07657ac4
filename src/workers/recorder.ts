/**
 * @module workers/recorder
 * The recorder behind `ws` and `sv` in a worker: effects are recorded in call order and returned
 * with the job result; the main thread applies them after the commit. A call that fails is
 * rolled back to its savepoint, and so are its recorded effects and connection state
 * ({@link Recorder.mark} / {@link Recorder.restore}). Response items of consecutive calls of one
 * unit to the same channels are merged into one frame, as are consecutive errors to one caller.
 */
import { errorItemText, type CallId } from '../protocol.js';
import type { ConnState, WorkerConnection } from './context.js';
import type { Effect, LogEntry } from './jobs.js';

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
