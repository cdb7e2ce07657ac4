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
export type { InferArgs, InputArgs } from './typing.js';
export { Model, field } from './storage/schema.js';
export type { Row, CreateInput, Field, FieldOptions } from './storage/schema.js';
export type { Db, Filters, RecordOf, AnyRecord, Target } from './storage/api.js';
export { Database } from './database.js';
export type { DatabaseOpenOptions, OpenDatabase } from './database.js';
export { LexiconsError, ErrorCode, isLexiconsError, SignalError } from './errors.js';
export { WireCode, SUBPROTOCOL, SLOW_CONSUMER_CLOSE } from './wire.js';
export { utils } from './utils.js';
