/**
 * @module workers/recorded
 * What the recorder (recorder.ts) holds: its records (effects and the two kinds of merged frames),
 * the outcomes of calls with `$key`, and its marks (a call's savepoint, a unit's start).
 */
import type { Effect } from '../job-contract.js';
import type { JsonText } from '../json-pieces.js';
import type { ChannelViewState } from './channel-view.js';
import type { ConnectionHandle, ConnectionHandleState } from './handles.js';
import type { ItemText } from './stamped.js';

/** Response items of consecutive calls of one unit to the same channels share one frame. */
export interface ResponsesRecord {
  kind: 'responses';
  unit: number;
  /** The channels as one string, to compare runs. */
  key: string;
  channels: string[];
  /** The caller, when it gets its tagged copy in its reply frame instead (calls with `$id`). */
  except: string | undefined;
  items: ItemText[];
}
/** Items for one caller (errors, outcomes of calls with `$id`) of consecutive calls of one unit share one frame. */
export interface ReplyRecord {
  kind: 'reply';
  unit: number;
  connectionId: string;
  items: ItemText[];
}
/** The outcome of a call with `$key` (not an effect: it rides along in `PackedEffects.keyed`). */
export interface KeyedRecord {
  kind: 'keyed';
  connectionId: string;
  key: string;
  items: ItemText[];
}
/** `ws.send`: its text may be in pieces (json-pieces.ts), decoded only where a string is needed. */
export interface SendRecord {
  kind: 'send';
  connectionId: string;
  text: JsonText;
}
/** What the recorder holds: effects (a send's text possibly in pieces), and the two kinds of merged frames. */
export type RecordedEffect = Exclude<Effect, { kind: 'send' }> | SendRecord | ResponsesRecord | ReplyRecord;

export interface Mark {
  length: number;
  inner: number;
  /** Publications recorded in the transaction so far. */
  published: number;
  /** Held items of the running call with `$id`. */
  callItems: number;
  connection: ConnectionHandle | undefined;
  connectionState: ConnectionHandleState | undefined;
  view: ChannelViewState;
}

/** {@link Recorder.unitMark}. */
export interface UnitMark {
  mark: Mark;
  keyed: number;
  logs: number;
}
