/**
 * @module workers/recorder
 * The recorder behind `ws` and `sv` in a worker: effects are recorded in call order and returned
 * with the job result; the main thread applies them after the commit. A call that fails is
 * rolled back to its savepoint, and so are its recorded effects and connection state
 * ({@link Recorder.mark} / {@link Recorder.restore}). Response items of consecutive calls of one
 * unit to the same channels are merged into one frame, as are consecutive items for one caller
 * (errors, and the outcomes of calls with `$id`).
 *
 * Calls with `$id` ({@link Recorder.beginCall} .. {@link Recorder.endCall}): the items of the
 * call's list `ws.send`s, and the caller's copy of its response, are held until the call
 * succeeded, tagged with its `$id`, then added at once to the caller's reply frame, so the caller
 * gets ONE terminal frame per call (its items, an error item, or `{"$ok": true, "$id": ...}`).
 * Calls without `$id` never touch that state (the hot path allocates nothing more).
 */
import { errorItemText, type CallId } from '../protocol.js';
import { jsonText } from '../json-text.js';
import { Frame } from '../wire.js';
import type { ConnectionHandleState, ConnectionHandle } from './handles.js';
import { OP_EFFECT, OP_PUBLISH, OP_PUBLISH_EXCEPT, OP_SEND, OP_WORDS, writeOp, type Effect, type LogEntry, type PackedEffects } from '../job-contract.js';

/** Scratch space for the UTF-8 bytes of a batch's frames (grown, reused by every batch of the thread). */
let scratch = Buffer.allocUnsafeSlow(64 * 1024);

/** Response items of consecutive calls of one unit to the same channels share one frame. */
interface ResponsesRecord {
  kind: 'responses';
  unit: number;
  /** The channels as one string, to compare runs. */
  key: string;
  channels: string[];
  /** The caller, when it gets its tagged copy in its reply frame instead (calls with `$id`). */
  except: string | undefined;
  items: string[];
}
/** Items for one caller (errors, outcomes of calls with `$id`) of consecutive calls of one unit share one frame. */
interface ReplyRecord {
  kind: 'reply';
  unit: number;
  connectionId: string;
  items: string[];
}
/** What the recorder holds: effects, and the two kinds of merged frames. */
type RecordedEffect = Effect | ResponsesRecord | ReplyRecord;

/** A JSON object's text with `"$id": idText` added (`{}` too); anything else as is. */
export function tagItem(text: string, idText: string): string {
  if (text.charCodeAt(0) !== 0x7b || text.charCodeAt(text.length - 1) !== 0x7d) return text;
  return text.length === 2 ? `{"${Frame.ID}":${idText}}` : `${text.slice(0, -1)},"${Frame.ID}":${idText}}`;
}

export interface Mark {
  length: number;
  inner: number;
  /** Held items of the running call with `$id`. */
  callItems: number;
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
  /** The caller of the running call with `$id` (undefined: none runs). */
  #callConnection: string | undefined = undefined;
  /** That call's `$id` as JSON text. */
  #callIdText = '';
  /** That call's tagged items so far (reused). */
  readonly #callItems: string[] = [];
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

  /**
   * Adds a response item for channels (deduplicated; none: nothing is sent). `except`: the caller,
   * left out of the publish because it gets its tagged copy in its reply frame.
   */
  respond(unit: number, text: string, channels: readonly string[], except?: string): void {
    const unique = [...new Set(channels)];
    if (unique.length === 0) return;
    const key = unique.length === 1 ? unique[0]! : [...unique].sort().join('\u0000');
    const last = this.#records.at(-1);
    if (last?.kind === 'responses' && last.unit === unit && last.key === key && last.except === except) last.items.push(text);
    else this.#records.push({ kind: 'responses', unit, key, channels: unique, except, items: [text] });
  }

  /** Adds an error item for the caller of `unit` (`code`: see protocol.ts errorItemText). */
  error(unit: number, connectionId: string, message: string, code?: string, id?: CallId): void {
    this.#reply(unit, connectionId, errorItemText([message], code, id));
  }

  #reply(unit: number, connectionId: string, item: string): void {
    const last = this.#records.at(-1);
    if (last?.kind === 'reply' && last.unit === unit && last.connectionId === connectionId) last.items.push(item);
    else this.#records.push({ kind: 'reply', unit, connectionId, items: [item] });
  }

  /** A call with `$id` starts: its items for its caller are held and tagged (see the module comment). */
  beginCall(connectionId: string, id: CallId): void {
    this.#callConnection = connectionId;
    this.#callIdText = JSON.stringify(id);
    this.#callItems.length = 0;
  }

  /** Whether `connectionId` is the caller of a running call with `$id` (its list sends are tagged). */
  inCall(connectionId: string): boolean {
    return this.#callConnection === connectionId;
  }

  /** Adds the JSON text of one item to the running call's outcome, tagged with its `$id`. */
  callItem(text: string): void {
    this.#callItems.push(tagItem(text, this.#callIdText));
  }

  /** `ws.send(payload)`: a list's items go to the running call's outcome when it is the caller's; anything else is sent as given. */
  send(connectionId: string, payload: unknown): void {
    if (this.#callConnection === connectionId && Array.isArray(payload)) {
      for (const item of payload) this.callItem(jsonText(item === undefined ? null : item) ?? 'null');
      return;
    }
    this.#records.push({ kind: 'send', connectionId, text: jsonText(payload === undefined ? null : payload) as string });
  }

  /** The call with `$id` succeeded: its tagged items (or `$ok`) join its caller's reply frame. */
  endCall(unit: number): void {
    const connectionId = this.#callConnection;
    if (connectionId === undefined) return;
    this.#callConnection = undefined;
    const items = this.#callItems;
    if (items.length === 0) {
      this.#reply(unit, connectionId, `{"${Frame.OK}":true,"${Frame.ID}":${this.#callIdText}}`);
      return;
    }
    const last = this.#records.at(-1);
    if (last?.kind === 'reply' && last.unit === unit && last.connectionId === connectionId) {
      for (let i = 0; i < items.length; i++) last.items.push(items[i]!);
    } else this.#records.push({ kind: 'reply', unit, connectionId, items: [...items] });
    items.length = 0;
  }

  /** The call with `$id` failed: its held items are dropped (its error item follows). */
  dropCall(): void {
    this.#callConnection = undefined;
    this.#callItems.length = 0;
  }

  log(status: LogEntry['status'], data: Record<string, unknown>): void {
    this.logs.push({ status, data });
  }

  mark(connection?: ConnectionHandle): Mark {
    const last = this.#records.at(-1);
    if (this.pendingSubscriptions.length > 0) this.pendingSubscriptions = [];
    return {
      length: this.#records.length,
      inner: last && (last.kind === 'responses' || last.kind === 'reply') ? last.items.length : 0,
      callItems: this.#callItems.length,
      connection,
      connectionState: connection?.state(),
      view: this.view.state,
    };
  }

  restore(mark: Mark): void {
    this.#records.length = mark.length;
    const last = this.#records.at(-1);
    if (last && (last.kind === 'responses' || last.kind === 'reply')) last.items.length = mark.inner;
    if (this.#callItems.length > mark.callItems) this.#callItems.length = mark.callItems;
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
      if (r.kind === 'responses') {
        const text = `[${r.items.join(',')}]`;
        return r.except === undefined ? { kind: 'publish', channels: r.channels, text } : { kind: 'publish', channels: r.channels, text, except: r.except };
      }
      if (r.kind === 'reply') return { kind: 'send', connectionId: r.connectionId, text: `[${r.items.join(',')}]` };
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
    const indexOf = (connectionId: string): number => {
      if (connections.length === 1) return connections[0]!.id === connectionId ? 0 : -1;
      if (index === undefined) {
        index = new Map();
        for (let k = 0; k < connections.length; k++) index.set(connections[k]!.id, k);
      }
      return index.get(connectionId) ?? -1;
    };
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
      if (r.kind === 'send' || r.kind === 'reply') {
        const connectionIndex = indexOf(r.connectionId);
        const text = r.kind === 'send' ? r.text : `[${r.items.join(',')}]`;
        if (connectionIndex >= 0) writeOp(ops, at, OP_SEND, connectionIndex, write(text));
        else writeOp(ops, at, OP_EFFECT, extra.push({ kind: 'send', connectionId: r.connectionId, text } satisfies Effect) - 1, 0);
      } else if (r.kind === 'responses' && r.except !== undefined && indexOf(r.except) >= 0) {
        const at2 = extra.push({ channels: r.channels, except: indexOf(r.except) }) - 1;
        writeOp(ops, at, OP_PUBLISH_EXCEPT, at2, write(`[${r.items.join(',')}]`));
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
