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
import { OP_EFFECT, OP_PUB, OP_SEND, type Effect, type LogEntry, type PackedEffects } from './jobs.js';

/** Scratch space for the UTF-8 bytes of a batch's frames (grown, reused by every batch of the thread). */
let scratch = Buffer.allocUnsafeSlow(64 * 1024);

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
    if (this.pendingSubscriptions.length > 0) this.pendingSubscriptions = [];
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
    if (this.pendingSubscriptions.length > 0) this.pendingSubscriptions = [];
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

  /**
   * The ordered effects packed for the main thread ({@link PackedEffects}): sends to the job's
   * connections and publishes become op triples over UTF-8 bytes; anything else (or a send to a
   * connection outside the job) an {@link OP_EFFECT} entry.
   */
  pack(conns: readonly WorkerConnection[]): PackedEffects {
    const records = this.#records;
    const ops = new Int32Array(records.length * 3);
    const extra: unknown[] = [];
    let index: Map<string, number> | undefined;
    let at = 0;
    let bytes = 0;
    const write = (text: string): number => {
      // At most 3 bytes per UTF-16 code unit.
      if (bytes + text.length * 3 > scratch.length) {
        const grown = Buffer.allocUnsafeSlow(Math.max(scratch.length * 2, bytes + text.length * 3));
        scratch.copy(grown, 0, 0, bytes);
        scratch = grown;
      }
      const n = scratch.write(text, bytes, 'utf8');
      bytes += n;
      return n;
    };
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.t === 'send' || r.t === 'errs') {
        let c = -1;
        if (conns.length === 1) c = conns[0]!.id === r.c ? 0 : -1;
        else {
          if (index === undefined) {
            index = new Map();
            for (let k = 0; k < conns.length; k++) index.set(conns[k]!.id, k);
          }
          c = index.get(r.c) ?? -1;
        }
        const text = r.t === 'send' ? r.text : `[${r.items.join(',')}]`;
        if (c >= 0) {
          ops[at] = OP_SEND;
          ops[at + 1] = c;
          ops[at + 2] = write(text);
        } else {
          ops[at] = OP_EFFECT;
          ops[at + 1] = extra.push({ t: 'send', c: r.c, text } satisfies Effect) - 1;
        }
      } else if (r.t === 'items' || r.t === 'pub') {
        ops[at] = OP_PUB;
        ops[at + 1] = extra.push(r.ch) - 1;
        ops[at + 2] = write(r.t === 'pub' ? r.text : `[${r.items.join(',')}]`);
      } else {
        ops[at] = OP_EFFECT;
        ops[at + 1] = extra.push(r) - 1;
      }
      at += 3;
    }
    const out = new Uint8Array(bytes);
    out.set(scratch.subarray(0, bytes));
    return { ops, out, extra };
  }
}
