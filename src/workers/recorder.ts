/**
 * @module workers/recorder
 * The recorder behind `ws` and `sv` in a worker: effects are recorded in call order and returned
 * with the job result; the main thread applies them after the commit. A call that fails is
 * rolled back to its savepoint, and so are its recorded effects and connection state
 * ({@link Recorder.mark} / {@link Recorder.restore}). Response items of consecutive calls of one
 * unit to the same channels are merged into one frame, as are consecutive errors to one caller.
 */
import { errorItemText, type CallId } from '../protocol.js';
import type { ConnectionHandleState, ConnectionHandle } from './handles.js';
import { OP_EFFECT, OP_PUBLISH, OP_SEND, OP_WORDS, writeOp, type Effect, type LogEntry, type PackedEffects } from '../job-contract.js';

/** Scratch space for the UTF-8 bytes of a batch's frames (grown, reused by every batch of the thread). */
let scratch = Buffer.allocUnsafeSlow(64 * 1024);

/** Response items of consecutive calls of one unit to the same channels share one frame. */
interface ResponsesRecord {
  kind: 'responses';
  unit: number;
  /** The channels as one string, to compare runs. */
  key: string;
  channels: string[];
  items: string[];
}
/** Errors of consecutive calls of one unit to one caller share one frame. */
interface ErrorsRecord {
  kind: 'errors';
  unit: number;
  connectionId: string;
  items: string[];
}
/** What the recorder holds: effects, and the two kinds of merged frames. */
type RecordedEffect = Effect | ResponsesRecord | ErrorsRecord;

export interface Mark {
  length: number;
  inner: number;
  connection: ConnectionHandle | undefined;
  connectionState: ConnectionHandleState | undefined;
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
  readonly #records: RecordedEffect[] = [];
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
    const unique = [...new Set(channels)];
    if (unique.length === 0) return;
    const key = unique.length === 1 ? unique[0]! : [...unique].sort().join('\u0000');
    const last = this.#records.at(-1);
    if (last?.kind === 'responses' && last.unit === unit && last.key === key) last.items.push(text);
    else this.#records.push({ kind: 'responses', unit, key, channels: unique, items: [text] });
  }

  /** Adds an error for the caller of `unit`. */
  error(unit: number, connectionId: string, message: string, id?: CallId): void {
    const text = errorItemText([message], id);
    const last = this.#records.at(-1);
    if (last?.kind === 'errors' && last.unit === unit && last.connectionId === connectionId) last.items.push(text);
    else this.#records.push({ kind: 'errors', unit, connectionId, items: [text] });
  }

  log(status: LogEntry['status'], data: Record<string, unknown>): void {
    this.logs.push({ status, data });
  }

  mark(connection?: ConnectionHandle): Mark {
    const last = this.#records.at(-1);
    if (this.pendingSubscriptions.length > 0) this.pendingSubscriptions = [];
    return {
      length: this.#records.length,
      inner: last && (last.kind === 'responses' || last.kind === 'errors') ? last.items.length : 0,
      connection,
      connectionState: connection?.state(),
      view: this.view.state,
    };
  }

  restore(mark: Mark): void {
    this.#records.length = mark.length;
    const last = this.#records.at(-1);
    if (last && (last.kind === 'responses' || last.kind === 'errors')) last.items.length = mark.inner;
    if (mark.connection && mark.connectionState) mark.connection.restore(mark.connectionState);
    this.view.state = mark.view;
    if (this.pendingSubscriptions.length > 0) this.pendingSubscriptions = [];
  }

  /** Drops the subscriptions a connection made since `from` (a rejected connection keeps none). */
  dropSubscriptions(connectionId: string, from: number): void {
    for (let i = this.#records.length - 1; i >= from; i--) {
      const r = this.#records[i]!;
      if (r.kind === 'subscribe' && r.connectionId === connectionId) this.#records.splice(i, 1);
    }
  }

  get length(): number {
    return this.#records.length;
  }

  /** The ordered effects, with merged items serialized into their frames. */
  effects(): Effect[] {
    return this.#records.map((r): Effect => {
      if (r.kind === 'responses') return { kind: 'publish', channels: r.channels, text: `[${r.items.join(',')}]` };
      if (r.kind === 'errors') return { kind: 'send', connectionId: r.connectionId, text: `[${r.items.join(',')}]` };
      return r;
    });
  }

  /**
   * The ordered effects packed for the main thread ({@link PackedEffects}): sends to the job's
   * connections and publishes become op triples over UTF-8 bytes; anything else (or a send to a
   * connection outside the job) an {@link OP_EFFECT} entry.
   */
  pack(connections: readonly ConnectionHandle[]): PackedEffects {
    const records = this.#records;
    const ops = new Int32Array(records.length * OP_WORDS);
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
      if (r.kind === 'send' || r.kind === 'errors') {
        let connectionIndex = -1;
        if (connections.length === 1) connectionIndex = connections[0]!.id === r.connectionId ? 0 : -1;
        else {
          if (index === undefined) {
            index = new Map();
            for (let k = 0; k < connections.length; k++) index.set(connections[k]!.id, k);
          }
          connectionIndex = index.get(r.connectionId) ?? -1;
        }
        const text = r.kind === 'send' ? r.text : `[${r.items.join(',')}]`;
        if (connectionIndex >= 0) writeOp(ops, at, OP_SEND, connectionIndex, write(text));
        else writeOp(ops, at, OP_EFFECT, extra.push({ kind: 'send', connectionId: r.connectionId, text } satisfies Effect) - 1, 0);
      } else if (r.kind === 'responses' || r.kind === 'publish') {
        const channelsAt = extra.push(r.channels) - 1;
        writeOp(ops, at, OP_PUBLISH, channelsAt, write(r.kind === 'publish' ? r.text : `[${r.items.join(',')}]`));
      } else {
        writeOp(ops, at, OP_EFFECT, extra.push(r) - 1, 0);
      }
      at += OP_WORDS;
    }
    const packedBytes = new Uint8Array(bytes);
    packedBytes.set(scratch.subarray(0, bytes));
    return { ops, bytes: packedBytes, extra };
  }
}
