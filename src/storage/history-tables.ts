/**
 * @module storage/history-tables
 * The two system tables of per-channel publication history, and {@link withHistory}, which adds
 * them to a compiled schema. They are compiled like Models, so they live in shared memory, go
 * through the write-ahead log, snapshots, CSV files (`lexicons_channel.csv`,
 * `lexicons_publication.csv`) and `lexicons check` like any table; user Models cannot take their
 * names (`lexicons_*` is reserved, schema.ts) and user code cannot write them (transaction-db.ts).
 *
 * - `lexicons_channel`: one row per channel that ever kept history. pk = the channel name (unique
 *   by construction; the design's `name` column IS the pk, a second copy would cost bytes in every
 *   version, and every publishing commit writes one). `epoch`: random id of the channel's history;
 *   `offset`: the last offset assigned; `oldest`: the lowest offset still retained (`offset + 1`
 *   when none is). `oldest` is not in the design: it lets the committer trim and a reader find the
 *   retained range in O(1) instead of walking the channel's rows.
 * - `lexicons_publication`: one row per retained publication. pk = `<offset>@<channel>` (so a
 *   reader finds offset o of a channel with one pk-index probe), `channel` (dictionary-encoded,
 *   indexed), `offset`, `time` (ms since the Unix epoch, taken at commit), `text` (the published
 *   item exactly as given).
 *
 * @example
 * const schema = withHistory(compileSchema(models)); // main thread, workers, `lexicons check`: the same
 * const { store, wal } = await openDataFolder(schema, dir);
 */
import { ErrorCode, LexiconsError } from '../errors.js';
import type { LoadReport } from './persist.js';
import { compileModels, field, Model, type Schema, type TableSchema } from './schema.js';
import type { Manifest } from './snapshot.js';

export const CHANNEL_TABLE = 'lexicons_channel';
export const PUBLICATION_TABLE = 'lexicons_publication';

class LexiconsChannel extends Model {
  static override table = CHANNEL_TABLE;
  static epoch = field.str({ dictionary: true });
  static offset = field.int();
  static oldest = field.int();
}

class LexiconsPublication extends Model {
  static override table = PUBLICATION_TABLE;
  static channel = field.str({ dictionary: true, index: true });
  static offset = field.int();
  static time = field.float();
  static text = field.str();
}

let compiled: readonly TableSchema[] | undefined;

/**
 * `schema` with the history tables appended (after the user's tables, so the user tables keep
 * their ids and buffer order). Every thread and tool opening the data must use the same form:
 * a store created with it refuses to be attached with the plain schema, and the log of a store
 * with history cannot be replayed without it.
 */
export function withHistory(schema: Schema): Schema {
  if (hasHistory(schema)) return schema;
  compiled ??= compileModels([LexiconsChannel, LexiconsPublication], true).tables;
  const tables = [...schema.tables, ...compiled];
  return { tables, byName: new Map(tables.map((t) => [t.name, t])) };
}

/** Whether the schema has the history tables. */
export function hasHistory(schema: Schema): boolean {
  return schema.byName.has(CHANNEL_TABLE) && schema.byName.has(PUBLICATION_TABLE);
}

/** The pk of a publication row. */
export function publicationPk(channel: string, offset: number): string {
  return `${offset}@${channel}`;
}

/** The error of a history call on a store without the tables. */
export function historyDisabled(what: string): LexiconsError {
  return new LexiconsError(ErrorCode.OPTION, `${what}: this store keeps no channel history (create it with withHistory(schema))`);
}

/**
 * Whether the history CSV files just loaded are older than the snapshot: the manifest's snapshot
 * did not write them (history was off then), yet they exist, left by an earlier snapshot. The
 * log records in between were not kept, so every channel's history is incomplete: new epochs.
 */
export function historyFilesStale(manifest: Manifest | null, load: LoadReport): boolean {
  if (manifest === null || CHANNEL_TABLE in manifest.tables) return false;
  return load.tables.some((t) => (t.table === CHANNEL_TABLE || t.table === PUBLICATION_TABLE) && t.file !== null);
}
