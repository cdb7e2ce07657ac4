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
  jobId: number;
  connection: ConnectionSnapshot;
  queries: LiveJobQuery[];
  /**
   * The pks each table's rows were written with by the commits since the queries' states (by
   * table id), for the incremental path; null: not known (every query is evaluated whole).
   */
  changed: Record<number, string[]> | null;
  /** Every commit up to this id was reported to the main thread: `changed` is complete at a snapshot up to it. */
  upTo: number;
  /** The commit every non-null `state` reflects (the connection's last refresh). */
  at: number;
}

export interface LiveJobQuery {
  /** The client's id of the subscription. */
  id: string;
  name: string;
  args: Record<string, unknown>;
  state: LiveState | null;
}

/**
 * A live query's result as the worker keeps it between refreshes (held by the main thread, opaque
 * there). `deps`: what evaluating it read (a refresh skips it while no commit wrote any of that);
 * `spec`, `specDeps` and `epoch`: a declarative form's text, what reading it whole read, and its
 * table's compaction epoch then (the incremental path); `acc`: an aggregate's accumulators.
 */
export type LiveState = (
  | { form: 'rows'; rows: Array<Record<string, unknown> & { pk: string }> }
  | { form: 'groups'; groups: Record<string, Record<string, number | null>>; acc?: Record<string, GroupAcc> }
  | { form: 'value'; value: unknown }
) & { deps?: WrittenKeys; spec?: string; specDeps?: WrittenKeys; epoch?: number };

/** An aggregate group's accumulators: its rows `n`, and per field read `[numbers, sum, min, max, non-integers]` (workers/live-aggregate.ts). */
export interface GroupAcc {
  n: number;
  f: Record<string, [number, number, number, number, number]>;
}

/** One query's outcome: its new state (none: not evaluated, the last one holds) and its `$live` item text (none: unchanged), or the error that ends it. */
export type LiveOutcome = { ok: true; state: LiveState | undefined; item: string | undefined } | { ok: false; item: string };

/** A refresh's outcome: the snapshot it read at, an outcome per query (job order), what it read. */
export interface LiveResult extends BatchResult {
  snapshot: number;
  outcomes: LiveOutcome[];
  deps: WrittenKeys;
  paths: LivePaths;
}

/**
 * How a refresh's queries got their results (`/metrics` `lexicons_live_evaluations_total`):
 * `skipped`: untouched since their last result, not evaluated; `incremental`: a declarative form
 * advanced from the written rows; `fallback`: a declarative form read whole because the written
 * rows were not known (too many, a table compacted, a worker died); `rerun`: evaluated whole by
 * design (a first result, a general body, a top-k that changed, a changed spec).
 */
export interface LivePaths {
  skipped: number;
  incremental: number;
  fallback: number;
  rerun: number;
}
