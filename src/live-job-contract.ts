/**
 * @module live-job-contract
 * The part of the job contract (job-contract.ts) that live-query refreshes add: the refresh job a
 * worker runs for one connection's live queries, the state the main thread keeps for each query
 * between refreshes (opaque there), and the refresh's result. docs/live-queries.md.
 */
import type { BatchResult, ConnectionSnapshot } from './job-contract.js';
import type { WrittenKeys } from './storage/api.js';

/**
 * A live-query refresh (docs/live-queries.md): every live query of ONE connection evaluated in
 * one transaction at the latest commit. `state` is each query's last result as the worker sent it
 * (null: a new subscription, its first result is sent whole).
 */
export interface LiveJob {
  kind: 'live';
  slot: number;
  connection: ConnectionSnapshot;
  queries: LiveJobQuery[];
  /**
   * The pks each table's rows were written with by the commits since the queries' states (by
   * table id), for the incremental path; null: not known (every query is evaluated whole).
   */
  changed: Record<number, string[]> | null;
  /** Every commit up to this id was reported to the main thread: `changed` is complete at a snapshot up to it. */
  upTo: number;
}

export interface LiveJobQuery {
  /** The client's id of the subscription. */
  id: string;
  name: string;
  args: Record<string, unknown>;
  state: LiveState | null;
}

/** A live query's result as the worker keeps it between refreshes (held by the main thread, opaque there). */
export type LiveState =
  /** `spec` and `specDeps`: the declarative form's text and what reading it whole read (the incremental path). */
  | { form: 'rows'; rows: Array<Record<string, unknown> & { pk: string }>; spec?: string; specDeps?: WrittenKeys }
  | { form: 'groups'; groups: Record<string, Record<string, number | null>> }
  | { form: 'value'; value: unknown };

/** One query's outcome: its new state and its `$live` item text (none: unchanged), or the error that ends it. */
export type LiveOutcome = { ok: true; state: LiveState; item: string | undefined } | { ok: false; item: string };

/** A refresh's outcome: the snapshot it read at, an outcome per query (job order), what it read. */
export interface LiveResult extends BatchResult {
  snapshot: number;
  outcomes: LiveOutcome[];
  deps: WrittenKeys;
}
