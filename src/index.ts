/**
 * @module lexicons
 * The public API: everything an application imports. Hand-picked; nothing else is public.
 */
export { Server } from './server.js';
export type { ServerOptions, ServerLimits, DurabilityOptions, RunningServer, RunOverrides, LogStatus, HookContext } from './server.js';
export {
  Signal,
  Header,
  Channel,
  Task,
  ModelManager,
  SignalManager,
  HeaderManager,
  ChannelManager,
  TaskManager,
} from './components.js';
export type { Connection, ServerHandle, SignalContext, HeaderContext, TaskContext, SignalResponse, Json, ExecuteArgsMismatch, ChannelAuthContext, ChannelHistory, SlowClientPolicy, PresenceMember } from './components.js';
export type { ChannelRule, ChannelRules } from './channel-rules.js';
export { LiveQuery, LiveQueryManager, live, MAX_LIVE_QUERIES_PER_CONNECTION, MAX_LIVE_ROWS } from './live-query.js';
export type { LiveContext, LiveFilters, RowsSpec, AggregateSpec, LiveSpec, Aggregate, RowsOptions, AggregateOptions, LiveResultOf } from './live-query.js';
export type { InferArgs, InputArgs } from './typing.js';
export { Model, field } from './storage/schema.js';
export type { Row, CreateInput, Field, FieldOptions } from './storage/schema.js';
export type { Db, Filters, RecordOf, AnyRecord, Target } from './storage/api.js';
export { JsonRows } from './storage/json-rows.js';
export { RawJson } from './json-text.js';
export type { Utf8Piece } from './json-pieces.js';
export { Database } from './database.js';
export type { DatabaseOpenOptions, OpenDatabase } from './database.js';
export { LexiconsError, ErrorCode, isLexiconsError, SignalError } from './errors.js';
export { WireCode, SUBPROTOCOL, SLOW_CONSUMER_CLOSE } from './wire.js';
export { utils } from './utils.js';
// Types that the signatures above name (options, results, base classes), so users can name them too
// (test/package/public-types.test.ts checks that none is missing).
export type { SignalSet, HeaderSet, LiveSet, ResolvedServerOptions, Components } from './server.js';
export type { ClusterOptions, OpsOptions, TlsOptions, ResolvedOps } from './ops-options.js';
export type { StaticOption, StaticSettings } from './static-option.js';
export type { StaticOptions } from './main/static.js';
export type { Manager, ExecutionContext, TaskClass, TaskKind, TaskBase, StartupTask, ShutdownTask, IntervalTask } from './components.js';
export type { ArgFields } from './typing.js';
export type { ModelClass, Schema, TableSchema, FieldSchema, FieldKind, ScalarKind, ScalarValue, StrOptions } from './storage/schema.js';
export type { StoreStats } from './storage/api.js';
export type { FsyncPolicy } from './storage/wal.js';
export type { RecoveryReport } from './storage/recovery.js';
export type { LoadReport, TableLoadReport } from './storage/persist.js';
export type { SegmentScan } from './storage/wal-format.js';
export type { SerializedError } from './errors.js';
