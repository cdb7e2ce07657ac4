/**
 * @module storage/store-handles
 * What one thread hands another so that both open the same shared-memory store: the
 * SharedArrayBuffers, a fingerprint of the schema they were laid out for, and the hash seed of the
 * indexes (so that all threads of a process hash alike). `SharedStore.attach`
 * refuses handles of another version or schema, naming the first difference.
 */
import { ErrorCode, LexiconsError } from '../errors.js';
import { randomHashSeed } from './indexes.js';
import type { Schema } from './schema.js';

/** Everything a worker needs to attach: structured-cloneable (SharedArrayBuffers, numbers, strings). */
export interface StoreHandles {
  readonly version: number;
  /** JSON description of the schema the buffers were laid out for. */
  readonly fingerprint: string;
  readonly maxBytesPerBuffer: number;
  /** The indexes' hash seed (a uint32, random per store, never persisted: see indexes.ts). */
  readonly hashSeed: number;
  readonly control: SharedArrayBuffer;
  /** The key stamps of row-level read sets (read-set.ts): 2 MiB. */
  readonly stamps: SharedArrayBuffer;
  /** Per table (schema order), its buffers in allocation order. */
  readonly tables: readonly (readonly SharedArrayBuffer[])[];
}

/** The layout version of {@link StoreHandles} (attach refuses any other). */
export const HANDLES_VERSION = 3;

/** The schema's fingerprint: what decides the buffers' layout, as JSON. */
export function describeSchema(schema: Schema): string {
  return JSON.stringify(
    schema.tables.map((t) => ({
      table: t.name,
      fields: t.fields.map((f) => ({ name: f.name, kind: f.kind, element: f.element ?? null, ref: f.ref ?? null, nullable: f.nullable, unique: f.unique, indexed: f.indexed, dictionary: f.dictionary })),
    })),
  );
}

/** The first difference between two fingerprints, for the attach error. */
export function schemaMismatch(stored: string, given: string): string {
  const a = JSON.parse(stored) as Array<{ table: string; fields: unknown[] }>;
  const b = JSON.parse(given) as Array<{ table: string; fields: unknown[] }>;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (!x || !y || x.table !== y.table) return `table #${i}: store has ${x?.table ?? 'none'}, schema has ${y?.table ?? 'none'}`;
    for (let j = 0; j < Math.max(x.fields.length, y.fields.length); j++) {
      const fx = JSON.stringify(x.fields[j] ?? null);
      const fy = JSON.stringify(y.fields[j] ?? null);
      if (fx !== fy) return `table ${x.table}, field #${j}: store has ${fx}, schema has ${fy}`;
    }
  }
  return 'unknown difference';
}

/** Dictionary-encoded columns of the schema (each has an entry count in the control block). */
export function dictCount(schema: Schema): number {
  return schema.tables.reduce((n, t) => n + t.fields.filter((f) => f.dictionary).length, 0);
}

/** Refuses handles that are not {@link StoreHandles} of this version for `schema` (SharedStore.attach). */
export function checkHandles(schema: Schema, handles: StoreHandles): void {
  if (!handles || handles.version !== HANDLES_VERSION || !(handles.control instanceof SharedArrayBuffer) || !(handles.stamps instanceof SharedArrayBuffer) || !Number.isInteger(handles.hashSeed)) {
    throw new LexiconsError(ErrorCode.OPTION, 'SharedStore.attach: handles are not StoreHandles of this lexicons version');
  }
  const given = describeSchema(schema);
  if (given !== handles.fingerprint) {
    throw new LexiconsError(ErrorCode.SCHEMA, `SharedStore.attach: the schema does not match the store (${schemaMismatch(handles.fingerprint, given)})`);
  }
}

export interface StoreOptions {
  /** Rows per table the buffers are first sized for (they grow). Default 1024. */
  initialRows?: number;
  /** Largest size any single buffer may grow to. Default 1 GiB. */
  maxBytesPerBuffer?: number;
  /**
   * Commit id the store starts at (its first commit gets this + 1). Default 0. A store recovered
   * from a data folder starts after the last logged commit so that commit ids stay monotonic across
   * restarts (see recovery.ts).
   */
  initialCommitId?: number;
  /**
   * The indexes' hash seed (a uint32). Default: random, which is what a server wants (clients
   * cannot craft keys that collide); a fixed seed is for tests.
   */
  hashSeed?: number;
}

const DEFAULT_MAX_BYTES = 1 << 30;

/** The options of SharedStore.create, checked (OPTION errors naming the option), with their defaults. */
export function checkStoreOptions(options: StoreOptions): { rows: number; max: number; initial: number; seed: number } {
  const rows = options.initialRows ?? 1024;
  if (!Number.isInteger(rows) || rows < 1) throw new LexiconsError(ErrorCode.OPTION, 'options.initialRows must be a positive integer');
  const max = options.maxBytesPerBuffer ?? DEFAULT_MAX_BYTES;
  if (!Number.isInteger(max) || max < 1024) throw new LexiconsError(ErrorCode.OPTION, 'options.maxBytesPerBuffer must be an integer >= 1024');
  const initial = options.initialCommitId ?? 0;
  if (!Number.isSafeInteger(initial) || initial < 0) throw new LexiconsError(ErrorCode.OPTION, 'options.initialCommitId must be a non-negative safe integer');
  const seed = options.hashSeed ?? randomHashSeed();
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new LexiconsError(ErrorCode.OPTION, 'options.hashSeed must be an integer from 0 to 4294967295');
  return { rows, max, initial, seed };
}
