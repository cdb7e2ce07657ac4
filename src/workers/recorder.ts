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
 * Calls without `$id` never touch that state (the hot path allocates nothing more). A call with
 * `$key` also leaves its outcome (untagged) for the session's replays (`keyed`).
 *
 * History channels (docs/channels.md): every item published to one is also recorded in the
 * transaction (`txn.publish`, one publication per item and history channel), inside the call's
 * savepoint. Its offsets are known only after the commit, so such an item is held as a
 * {@link Stamped} item and gets its `"$off": {"Public": 17}` when the effects are packed; its
 * frame becomes an OP_PUBLISH_HISTORY op carrying the offset ranges, which the main thread
 * delivers in offset order.
 *
 * Texts of sends and responses are {@link JsonText}: `db.queryJson` rows in them stay UTF-8 bytes
 * (json-pieces.ts) that {@link Recorder.pack} copies into the packed bytes as they are; a string
 * is decoded only where one is needed (history publications, `$key` outcomes, effects as objects).
 */
import { ErrorCode, LexiconsError } from '../errors.js';
import { errorItemText, type CallId } from '../protocol.js';
import { jsonPieces, jsonText } from '../json-text.js';
import { tagText, textOf, type JsonText } from '../json-pieces.js';
import type { Publication, Txn } from '../storage/api.js';
import { Frame } from '../wire.js';
import { tagItem } from '../item-text.js';
import type { ChannelView } from './channel-view.js';
import type { KeyedRecord, Mark, RecordedEffect, UnitMark } from './recorded.js';

export type { Mark, UnitMark } from './recorded.js';
import type { ConnectionHandleState, ConnectionHandle } from './handles.js';
import { frameText, historyFrames, isStamped, itemText, type ItemText } from './stamped.js';
import {
  OP_EFFECT,
  OP_PUBLISH,
  OP_PUBLISH_EXCEPT,
  OP_PUBLISH_HISTORY,
  OP_SEND,
  OP_WORDS,
  writeOp,
  type Effect,
  type HistoryPublish,
  type KeyedOutcome,
  type LogEntry,
  type PackedEffects,
  type WorkerRecovery,
} from '../job-contract.js';

/** Scratch space for the UTF-8 bytes of a batch's frames (grown, reused by every batch of the thread). */
let scratch = Buffer.allocUnsafeSlow(64 * 1024);

export class Recorder {
  readonly #records: RecordedEffect[] = [];
  /** Outcomes of calls with `$key` (recorded after each call succeeded or failed, outside savepoints). */
  readonly #keyedRecords: KeyedRecord[] = [];
  /** The caller of the running call with `$id` (undefined: none runs). */
  #callConnection: string | undefined = undefined;
  /** That call's `$id` as JSON text. */
  #callIdText = '';
  /** That call's `$key`, if any. */
  #callKey: string | undefined = undefined;
  /** That call's items so far, untagged (reused). */
  readonly #callItems: ItemText[] = [];
  /** Publications recorded in the transaction(s) of this job (the index of the next one). */
  #published = 0;
  /** The transaction the running step writes to (set by the steppers); publications go there. */
  txn: Txn | undefined = undefined;
  /** The job's committed publications, in order (set after each commit). */
  publications: Publication[] = [];
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
  respond(unit: number, text: JsonText, channels: readonly string[], except?: string): ItemText {
    const unique = [...new Set(channels)];
    if (unique.length === 0) return text;
    const item = this.#stamp(text, unique);
    const key = unique.length === 1 ? unique[0]! : [...unique].sort().join('\u0000');
    const last = this.#records.at(-1);
    if (last?.kind === 'responses' && last.unit === unit && last.key === key && last.except === except) last.items.push(item);
    else this.#records.push({ kind: 'responses', unit, key, channels: unique, except, items: [item] });
    return item;
  }

  /** The item, recorded as a publication of each history channel among `channels` (then Stamped: a string, the history keeps it). */
  #stamp(item: JsonText, channels: readonly string[]): ItemText {
    const txn = this.txn;
    if (txn === undefined || !this.view.rules.anyHistory) return item;
    const text = textOf(item);
    const first = this.#published;
    for (const channel of channels) if (txn.publish(channel, text)) this.#published++;
    const count = this.#published - first;
    return count === 0 ? item : { text, first, count };
  }

  /**
   * `sv.broadcast(payload, channels)`: the payload as given; to history channels, a list of
   * items (an object alone is one item), each one publication, sent as one list frame.
   */
  broadcast(payload: unknown, channels: string[]): void {
    const rules = this.view.rules;
    const history = rules.anyHistory ? channels.filter((channel) => rules.rule(channel).history !== null) : [];
    if (history.length === 0) {
      this.#records.push({ kind: 'publish', channels, text: jsonText(payload) as string });
      return;
    }
    const items = Array.isArray(payload) ? payload : [payload];
    if (items.length === 0) return;
    const texts = items.map((item) => {
      if (typeof item !== 'object' || item === null || Array.isArray(item)) {
        throw new LexiconsError(ErrorCode.BAD_ARGUMENTS, `sv.broadcast to history channel [${history[0]}]: the payload must be a list of items {"Name": ...} (each one is a publication with its offset)`);
      }
      return jsonText(item) as string;
    });
    const key = [...channels].sort().join('\u0000');
    // unit NaN: a broadcast never shares a frame with another record.
    this.#records.push({ kind: 'responses', unit: NaN, key, channels, except: undefined, items: texts.map((text) => this.#stamp(text, channels)) });
  }

  /** `sv.resetHistory(channel)`: in the running transaction (applied at its commit). */
  resetHistory(channel: string): void {
    if (this.txn === undefined || this.view.rules.rule(channel).history === null) {
      throw new LexiconsError(ErrorCode.BAD_ARGUMENTS, `sv.resetHistory: channel [${channel}] keeps no history (declare static history on its Channel class)`);
    }
    this.txn.resetHistory(channel);
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
  beginCall(connectionId: string, id: CallId, key?: string): void {
    this.#callConnection = connectionId;
    this.#callIdText = JSON.stringify(id);
    this.#callKey = key;
    this.#callItems.length = 0;
  }

  /** Whether `connectionId` is the caller of a running call with `$id` (its list sends are tagged). */
  inCall(connectionId: string): boolean {
    return this.#callConnection === connectionId;
  }

  /** Adds one item (JSON text, or the Stamped item of its publication) to the running call's outcome. */
  callItem(item: ItemText): void {
    this.#callItems.push(item);
  }

  /** `ws.send(payload)`: a list's items go to the running call's outcome when it is the caller's; anything else is sent as given. */
  send(connectionId: string, payload: unknown): void {
    if (this.#callConnection === connectionId && Array.isArray(payload)) {
      for (const item of payload) this.callItem(jsonPieces(item === undefined ? null : item) ?? 'null');
      return;
    }
    this.#records.push({ kind: 'send', connectionId, text: jsonPieces(payload === undefined ? null : payload) as JsonText });
  }

  /** The call with `$id` succeeded: its tagged items (or `$ok`) join its caller's reply frame. */
  endCall(unit: number): void {
    const connectionId = this.#callConnection;
    if (connectionId === undefined) return;
    this.#callConnection = undefined;
    const items = this.#callItems;
    if (items.length === 0) items.push(`{"${Frame.OK}":true}`);
    const idText = this.#callIdText;
    const tagged = items.map((item) => (isStamped(item) ? { ...item, id: idText } : tagText(item, idText)));
    const last = this.#records.at(-1);
    if (last?.kind === 'reply' && last.unit === unit && last.connectionId === connectionId) {
      for (let i = 0; i < tagged.length; i++) last.items.push(tagged[i]!);
    } else this.#records.push({ kind: 'reply', unit, connectionId, items: tagged });
    if (this.#callKey !== undefined) this.#keyedRecords.push({ kind: 'keyed', connectionId, key: this.#callKey, items: [...items] });
    items.length = 0;
  }

  /** The call with `$id` failed: its held items are dropped; its error item is its outcome. */
  failCall(unit: number, connectionId: string, message: string, code: string, id: CallId): void {
    const key = this.#callConnection === connectionId ? this.#callKey : undefined;
    this.#callConnection = undefined;
    this.#callItems.length = 0;
    const item = errorItemText([message], code);
    this.#reply(unit, connectionId, tagItem(item, JSON.stringify(id)));
    if (key !== undefined) this.#keyedRecords.push({ kind: 'keyed', connectionId, key, items: [item] });
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
      published: this.#published,
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
    this.#published = mark.published;
    if (mark.connection && mark.connectionState) mark.connection.restore(mark.connectionState);
    this.view.state = mark.view;
    if (this.pendingSubscriptions.length > 0) this.pendingSubscriptions = [];
  }

  /** A mark at the start of a unit, for {@link rewind}: also the `$key` outcomes and logs so far. */
  unitMark(connection: ConnectionHandle): UnitMark {
    return { mark: this.mark(connection), keyed: this.#keyedRecords.length, logs: this.logs.length };
  }

  /**
   * Back to the start of a unit (the units from it on re-run after a rebase, execute-batch.ts);
   * connections of later units are restored by the caller, last unit first.
   */
  rewind(at: UnitMark): void {
    this.restore(at.mark);
    this.#keyedRecords.length = at.keyed;
    this.logs.length = at.logs;
  }

  /** Adds what the joining call read of a history channel to its subscribe effect (workers/batch-context.ts). */
  attachRecovery(connectionId: string, channel: string, recovery: WorkerRecovery): void {
    for (let i = this.#records.length - 1; i >= 0; i--) {
      const r = this.#records[i]!;
      if (r.kind === 'subscribe' && r.connectionId === connectionId && r.channel === channel) {
        this.#records[i] = { ...r, recovery };
        return;
      }
    }
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

  /** The outcomes of the calls with `$key`, their items final but untagged. */
  #keyed(indexOf: (connectionId: string) => number): KeyedOutcome[] | undefined {
    let out: KeyedOutcome[] | undefined;
    for (const r of this.#keyedRecords) {
      const connection = indexOf(r.connectionId);
      if (connection >= 0) (out ??= []).push({ connection, key: r.key, items: r.items.map((item) => textOf(itemText(item, this.publications))) });
    }
    return out;
  }

  /** The ordered effects, with merged items serialized into their frames. */
  effects(): Effect[] {
    const out: Effect[] = [];
    for (const r of this.#records) {
      if (r.kind === 'responses') {
        if (isStamped(r.items[0]!)) {
          for (const frame of historyFrames(r.items, this.publications)) {
            out.push({ kind: 'publish', channels: r.channels, text: frame.text, ...(r.except === undefined ? {} : { except: r.except }), history: frame.ranges });
          }
          continue;
        }
        const text = textOf(frameText(r.items, this.publications));
        out.push(r.except === undefined ? { kind: 'publish', channels: r.channels, text } : { kind: 'publish', channels: r.channels, text, except: r.except });
      } else if (r.kind === 'reply') out.push({ kind: 'send', connectionId: r.connectionId, text: textOf(frameText(r.items, this.publications)) });
      else if (r.kind === 'send' && typeof r.text !== 'string') out.push({ kind: 'send', connectionId: r.connectionId, text: r.text.text() });
      else out.push(r as Effect);
    }
    return out;
  }

  /**
   * The ordered effects packed for the main thread ({@link PackedEffects}): sends to the job's
   * connections and publishes become op triples over UTF-8 bytes; anything else (or a send to a
   * connection outside the job) an {@link OP_EFFECT} entry.
   */
  pack(connections: readonly ConnectionHandle[]): PackedEffects {
    const records = this.#records;
    let opCount = records.length;
    for (const r of records) if (r.kind === 'responses' && r.items.length > 1 && isStamped(r.items[0]!)) opCount += r.items.length - 1;
    let ops = new Int32Array(opCount * OP_WORDS);
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
    const write = (text: JsonText): number => {
      // At most 3 bytes per UTF-16 code unit; a text in pieces: its pieces' bytes as they are.
      const most = typeof text === 'string' ? text.length * 3 : text.maxBytes();
      if (bytes + most > scratch.length) {
        const grown = Buffer.allocUnsafeSlow(Math.max(scratch.length * 2, bytes + most));
        scratch.copy(grown, 0, 0, bytes);
        scratch = grown;
      }
      const n = typeof text === 'string' ? scratch.write(text, bytes, 'utf8') : text.write(scratch, bytes);
      bytes += n;
      return n;
    };
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.kind === 'send' || r.kind === 'reply') {
        const connectionIndex = indexOf(r.connectionId);
        const text = r.kind === 'send' ? r.text : frameText(r.items, this.publications);
        if (connectionIndex >= 0) writeOp(ops, at, OP_SEND, connectionIndex, write(text));
        else writeOp(ops, at, OP_EFFECT, extra.push({ kind: 'send', connectionId: r.connectionId, text: textOf(text) } satisfies Effect) - 1, 0);
      } else if (r.kind === 'responses' && isStamped(r.items[0]!)) {
        const except = r.except === undefined ? -1 : indexOf(r.except);
        const frames = historyFrames(r.items, this.publications);
        for (let f = 0; f < frames.length; f++) {
          const frame = frames[f]!;
          if (f > 0) at += OP_WORDS;
          const target = extra.push({ channels: r.channels, except, ranges: frame.ranges } satisfies HistoryPublish) - 1;
          writeOp(ops, at, OP_PUBLISH_HISTORY, target, write(frame.text));
        }
      } else if (r.kind === 'responses' && r.except !== undefined && indexOf(r.except) >= 0) {
        const at2 = extra.push({ channels: r.channels, except: indexOf(r.except) }) - 1;
        writeOp(ops, at, OP_PUBLISH_EXCEPT, at2, write(frameText(r.items, this.publications)));
      } else if (r.kind === 'responses' || r.kind === 'publish') {
        const channelsAt = extra.push(r.channels) - 1;
        writeOp(ops, at, OP_PUBLISH, channelsAt, write(r.kind === 'publish' ? r.text : frameText(r.items, this.publications)));
      } else {
        writeOp(ops, at, OP_EFFECT, extra.push(r) - 1, 0);
      }
      at += OP_WORDS;
    }
    if (at < ops.length) ops = ops.subarray(0, at);
    const packedBytes = new Uint8Array(bytes);
    packedBytes.set(scratch.subarray(0, bytes));
    const keyed = this.#keyed(indexOf);
    return keyed === undefined ? { ops, bytes: packedBytes, extra } : { ops, bytes: packedBytes, extra, keyed };
  }
}
