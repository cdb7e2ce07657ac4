/**
 * @module storage/snapshot-files
 * Writing the binary snapshot files of every table in a thread of their own (one per process, kept
 * between snapshots), so that the main thread keeps serving while they are written (the reads are
 * lock-free: MVCC at the snapshot id).
 * The thread opens the store from its handles alone: the tables' layout comes from the schema
 * fingerprint the handles carry, so the thread needs neither the app nor its Models.
 *
 * @example
 * const tables = await writeSnapshotFiles({ handles: store.handles, snapshot: id, files: { ChatMessage: 'data/ChatMessage.arrow.next' } });
 * // { ChatMessage: { rows, bytes, crc32 } }
 */
import { Worker } from 'node:worker_threads';
import { ErrorCode, LexiconsError, type SerializedError } from '../errors.js';
import { writeTableFile, type ArrowFileInfo } from './arrow-snapshot.js';
import { GrowBuf } from './grow-buf.js';
import { ControlBlock } from './layout.js';
import type { FieldKind, FieldSchema, ScalarKind, TableSchema } from './schema.js';
import { HANDLES_VERSION, type StoreHandles } from './store-handles.js';
import { SharedTable } from './table.js';

/** The job of a snapshot thread (its workerData). */
export interface SnapshotJob {
  readonly handles: StoreHandles;
  readonly snapshot: number;
  /** Table name -> the path to write its file to. */
  readonly files: Readonly<Record<string, string>>;
}

export type SnapshotThreadResult = { ok: true; tables: Record<string, ArrowFileInfo> } | { ok: false; error: SerializedError };

interface FingerprintTable {
  table: string;
  fields: Array<{ name: string; kind: FieldKind; element: ScalarKind | null; ref: string | null; nullable: boolean; unique: boolean; indexed: boolean; dictionary: boolean }>;
}

/** The tables of a store, opened from its handles (layout from the fingerprint; no defaults, no transforms). */
export function tablesOfHandles(handles: StoreHandles): SharedTable[] {
  if (handles?.version !== HANDLES_VERSION) throw new LexiconsError(ErrorCode.OPTION, 'snapshot thread: handles are not StoreHandles of this lexicons version');
  const described = JSON.parse(handles.fingerprint) as FingerprintTable[];
  const dicts = described.reduce((n, t) => n + t.fields.filter((f) => f.dictionary).length, 0);
  const control = new ControlBlock(handles.control, described.length, dicts);
  let dictBase = 0;
  return described.map((d, id) => {
    const fields: FieldSchema[] = d.fields.map((f) => ({ ...f, element: f.element ?? undefined, ref: f.ref ?? undefined, secret: false, transform: undefined, makeDefault: () => null }));
    const schema: TableSchema = { name: d.table, fields, byName: new Map(fields.map((f) => [f.name, f])), model: undefined };
    const list = handles.tables[id] ?? [];
    let next = 0;
    const table = new SharedTable(schema, id, control, (label) => {
      const sab = list[next++];
      if (!(sab instanceof SharedArrayBuffer)) throw new LexiconsError(ErrorCode.OPTION, `snapshot thread: missing buffer for ${label}`);
      return new GrowBuf(sab, label);
    }, 1, dictBase);
    dictBase += fields.filter((f) => f.dictionary).length;
    return table;
  });
}

/** Writes the job's files, synchronously (the body of the snapshot thread; callable inline too). */
export function writeSnapshotJob(job: SnapshotJob): Record<string, ArrowFileInfo> {
  const tables = tablesOfHandles(job.handles);
  const out: Record<string, ArrowFileInfo> = {};
  for (const t of tables) {
    const path = job.files[t.schema.name];
    if (path !== undefined) out[t.schema.name] = writeTableFile(t, t.control, job.snapshot, path);
  }
  return out;
}

/** The thread's entry: the compiled sibling, or (running from the TypeScript sources) a bootstrap registering tsx. */
const THREAD = new URL(import.meta.url.endsWith('.ts') ? './snapshot-thread-ts.mjs' : './snapshot-thread.js', import.meta.url);

/** A job of the snapshot thread and its answer. */
export interface SnapshotRequest {
  readonly id: number;
  readonly job: SnapshotJob;
}
export interface SnapshotAnswer {
  readonly id: number;
  readonly result: SnapshotThreadResult;
}

interface Waiting {
  resolve(tables: Record<string, ArrowFileInfo>): void;
  reject(err: unknown): void;
}

/**
 * The process's snapshot thread, started by the first snapshot and kept (its start costs more CPU
 * than writing a million rows: loading apache-arrow and our modules, ~0.2-0.4 s). It is unref'd
 * while idle, so it never keeps the process alive.
 */
class SnapshotThread {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, Waiting>();
  #next = 1;
  #dead = false;

  constructor(onGone: () => void) {
    this.#worker = new Worker(THREAD);
    this.#worker.unref();
    this.#worker.on('message', ({ id, result }: SnapshotAnswer) => {
      const w = this.#waiting.get(id);
      this.#waiting.delete(id);
      if (this.#waiting.size === 0) this.#worker.unref();
      if (result.ok) w?.resolve(result.tables);
      else w?.reject(LexiconsError.fromJSON(result.error));
    });
    const fail = (err: LexiconsError): void => {
      if (this.#dead) return;
      this.#dead = true;
      onGone();
      for (const w of this.#waiting.values()) w.reject(err);
      this.#waiting.clear();
    };
    this.#worker.on('error', (err) => fail(new LexiconsError(ErrorCode.IO, `the snapshot thread failed: ${err.message}`, { cause: err })));
    this.#worker.on('exit', (code) => fail(new LexiconsError(ErrorCode.IO, `the snapshot thread exited with code ${code}`)));
  }

  run(job: SnapshotJob): Promise<Record<string, ArrowFileInfo>> {
    return new Promise((resolve, reject) => {
      const id = this.#next++;
      this.#waiting.set(id, { resolve, reject });
      this.#worker.ref(); // a snapshot in flight keeps the process alive
      this.#worker.postMessage({ id, job } satisfies SnapshotRequest);
    });
  }
}

let thread: SnapshotThread | null = null;

/**
 * Writes the job's files in the snapshot thread and resolves with what each holds; rejects with
 * the thread's error (an IO LexiconsError naming the file, typically). The thread only reads
 * shared memory and writes files: it never takes the commit lock.
 */
export function writeSnapshotFiles(job: SnapshotJob): Promise<Record<string, ArrowFileInfo>> {
  const t = (thread ??= new SnapshotThread(() => {
    thread = null;
  }));
  return t.run(job);
}
