/**
 * @module storage/arrow-snapshot
 * Binary snapshots: one Arrow IPC file per table (`<Table>.arrow`), holding the rows visible at a
 * snapshot commit id, live versions only, in the table's own column layout (pk first, then the
 * fields in declaration order; no hidden columns). This module writes them; loading them is
 * arrow-snapshot-load.ts.
 *
 * Writing reads the shared columns at the snapshot without any lock (MVCC): when the visible rows
 * are one contiguous run of slots (a table without updates or deletes), every body buffer is a
 * view over the SharedArrayBuffers themselves; otherwise the live runs are gathered (copies of the
 * runs, offsets rebased). Nothing is converted to rows.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import * as arrow from 'apache-arrow';
import { ipcFileChunks, type BatchBody, type BodyBuffer } from './arrow-ipc.js';
import { BoolValues, DictValues, Float64Values, Int64Values, ListValues, Utf8Values, type Bitmap, type Values } from './column-values.js';
import { ioError } from './file-system.js';
import type { GrowBuf } from './grow-buf.js';
import type { ControlBlock } from './layout.js';
import type { SharedTable } from './table.js';
import { ENCODING_KEY, ENCODING_UUID, UuidValues } from './uuid-values.js';

/** What a snapshot file holds, as recorded in the manifest. */
export interface ArrowFileInfo {
  readonly rows: number;
  readonly bytes: number;
  readonly crc32: number;
}

// -- the schema of a table's file --------------------------------------------------------------

/**
 * A column's field in a snapshot file: its Arrow type, except pk and ref columns, whose stored
 * bytes are written as they are (Binary, field metadata `lexicons.encoding: uuid16+utf8`:
 * uuid-values.ts). A file of the previous format (pk and refs as Utf8) differs in type, so it takes
 * the generic load, which packs its UUIDs.
 */
function fileField(name: string, values: Values, nullable: boolean): arrow.Field {
  if (values instanceof UuidValues) return new arrow.Field(name, values.fileType, nullable, new Map([[ENCODING_KEY, ENCODING_UUID]]));
  return new arrow.Field(name, values.type, nullable);
}

/** The Arrow schema of `t`'s snapshot files: pk (not null), then every field. */
export function arrowSchemaOf(t: SharedTable, metadata?: Map<string, string>): arrow.Schema {
  const fields: arrow.Field[] = [fileField('pk', t.pk, false)];
  t.schema.fields.forEach((f, k) => fields.push(fileField(f.name, t.columns[k]!.values, f.nullable)));
  return new arrow.Schema(fields, metadata);
}

/** A field as the fast load compares it with the table's (name, type, nullability). */
export function describeField(f: arrow.Field): string {
  return `${f.name}:${String(f.type)}:${f.nullable}`;
}

// -- gathering the visible rows ----------------------------------------------------------------

/** Slot ranges [starts[i], ends[i]) in order. */
interface Runs {
  readonly starts: readonly number[];
  readonly ends: readonly number[];
  readonly total: number;
}

/** The slots of `t` visible at `snapshot`, as runs of consecutive slots. */
function visibleRuns(t: SharedTable, control: ControlBlock, snapshot: number): Runs {
  let rows = t.rowCount();
  while (rows > 0 && t.beginOf(rows - 1) > snapshot) rows--; // commits after the snapshot (slots are in commit order)
  if (control.deadVersions(t.id) === 0) return { starts: [0], ends: [rows], total: rows };
  const starts: number[] = [];
  const ends: number[] = [];
  let total = 0;
  for (let v = 0; v < rows; v++) {
    if (!t.isVisible(v, snapshot)) continue;
    if (ends.length > 0 && ends[ends.length - 1] === v) ends[ends.length - 1] = v + 1;
    else {
      starts.push(v);
      ends.push(v + 1);
    }
    total++;
  }
  return { starts, ends, total };
}

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, b) => {
  let n = 0;
  for (let x = b; x; x >>= 1) n += x & 1;
  return n;
});

/** The bits of the runs, packed from bit 0 (a fresh bitmap), and how many are set. */
function gatherBits(bits: Bitmap, runs: Runs): { bytes: Uint8Array; ones: number } {
  const out = new Uint8Array((runs.total + 7) >> 3);
  const src = bits.buf.u8(0);
  if (runs.starts.length === 1 && runs.starts[0] === 0) {
    out.set(src.subarray(0, out.length));
    if (runs.total & 7) out[out.length - 1]! &= (1 << (runs.total & 7)) - 1;
  } else {
    let k = 0;
    for (let r = 0; r < runs.starts.length; r++) {
      for (let v = runs.starts[r]!, end = runs.ends[r]!; v < end; v++, k++) {
        if ((src[v >> 3]! >> (v & 7)) & 1) out[k >> 3]! |= 1 << (k & 7);
      }
    }
  }
  let ones = 0;
  for (let i = 0; i < out.length; i++) ones += POPCOUNT[out[i]!]!;
  return { bytes: out, ones };
}

/** Fixed-width values of the runs: a view per run when there is one, else one gathered copy. */
function gatherFixed(buf: GrowBuf, width: number, runs: Runs): BodyBuffer {
  if (runs.starts.length === 1) {
    const a = runs.starts[0]!;
    return [new Uint8Array(buf.buffer, a * width, (runs.ends[0]! - a) * width)];
  }
  const out = new Uint8Array(runs.total * width);
  let pos = 0;
  for (let r = 0; r < runs.starts.length; r++) {
    const a = runs.starts[r]!;
    const len = (runs.ends[r]! - a) * width;
    out.set(new Uint8Array(buf.buffer, a * width, len), pos);
    pos += len;
  }
  return [out];
}

/** Offsets of the runs rebased to start at 0, and the runs of the child slots (bytes, list items) they cover. */
function gatherOffsets(offsets: GrowBuf, runs: Runs): { buffer: BodyBuffer; child: Runs } {
  const last = runs.starts.length === 0 ? 0 : runs.ends[runs.ends.length - 1]!;
  const off = new Int32Array(offsets.buffer, 0, last + 1);
  if (runs.starts.length === 1 && runs.starts[0] === 0) {
    return { buffer: [new Uint8Array(offsets.buffer, 0, (runs.total + 1) * 4)], child: { starts: [0], ends: [off[runs.total]!], total: off[runs.total]! } };
  }
  const out = new Int32Array(runs.total + 1);
  const starts: number[] = [];
  const ends: number[] = [];
  let k = 0;
  let base = 0;
  for (let r = 0; r < runs.starts.length; r++) {
    const a = runs.starts[r]!;
    const b = runs.ends[r]!;
    const shift = base - off[a]!;
    for (let v = a; v < b; v++) out[k++] = off[v]! + shift;
    if (off[b]! > off[a]!) {
      starts.push(off[a]!);
      ends.push(off[b]!);
    }
    base += off[b]! - off[a]!;
  }
  out[k] = base;
  return { buffer: [new Uint8Array(out.buffer)], child: { starts, ends, total: base } };
}

/** A value store's buffers over the runs, plus the nodes of its children (list items). */
function gatherValues(values: Values, runs: Runs, nodes: Array<{ length: number; nullCount: number }>, buffers: BodyBuffer[]): void {
  if (values instanceof Int64Values || values instanceof Float64Values) buffers.push(gatherFixed(values.buf, 8, runs));
  else if (values instanceof DictValues) buffers.push(gatherFixed(values.buf, 4, runs));
  else if (values instanceof BoolValues) buffers.push([gatherBits(values.bits, runs).bytes]);
  else if (values instanceof Utf8Values || values instanceof UuidValues) {
    const { buffer, child } = gatherOffsets(values.offsets, runs);
    buffers.push(buffer, gatherFixed(values.data, 1, child));
  } else if (values instanceof ListValues) {
    const { buffer, child } = gatherOffsets(values.offsets, runs);
    buffers.push(buffer);
    nodes.push({ length: child.total, nullCount: 0 });
    buffers.push([]); // the items have no validity (never null)
    gatherValues(values.child, child, nodes, buffers);
  } else throw new Error('unknown value store');
}

/** The dictionary batches, schema and record batch of `t` at `snapshot` (bodies are views where possible). */
export function tableBatches(t: SharedTable, control: ControlBlock, snapshot: number): { schema: arrow.Schema; dictionaries: Array<{ id: number; values: BatchBody }>; batch: BatchBody } {
  const runs = visibleRuns(t, control, snapshot);
  const nodes: Array<{ length: number; nullCount: number }> = [{ length: runs.total, nullCount: 0 }];
  const buffers: BodyBuffer[] = [[]];
  gatherValues(t.pk, runs, nodes, buffers);
  const dictionaries: Array<{ id: number; values: BatchBody }> = [];
  for (const column of t.columns) {
    const validity = gatherBits(column.validity, runs);
    const nullCount = runs.total - validity.ones;
    nodes.push({ length: runs.total, nullCount });
    buffers.push(nullCount === 0 ? [] : [validity.bytes]);
    gatherValues(column.values, runs, nodes, buffers);
    const values = column.values;
    if (values instanceof DictValues) {
      const count = values.entries();
      const dictNodes = [{ length: count, nullCount: 0 }];
      const dictBuffers: BodyBuffer[] = [[]];
      gatherValues(values.dict, { starts: [0], ends: [count], total: count }, dictNodes, dictBuffers);
      dictionaries.push({ id: values.type.id, values: { length: count, nodes: dictNodes, buffers: dictBuffers } });
    }
  }
  const metadata = new Map([
    ['lexicons.table', t.schema.name],
    ['lexicons.commitId', String(snapshot)],
  ]);
  return { schema: arrowSchemaOf(t, metadata), dictionaries, batch: { length: runs.total, nodes, buffers } };
}

/**
 * Writes `t` at `snapshot` to `path` (created or truncated, then fsynced; synchronous: run it in
 * the snapshot thread). Returns the rows, bytes and CRC-32 of the file.
 */
export function writeTableFile(t: SharedTable, control: ControlBlock, snapshot: number, path: string): ArrowFileInfo {
  const { schema, dictionaries, batch } = tableBatches(t, control, snapshot);
  const { chunks, bytes } = ipcFileChunks(schema, dictionaries, batch);
  let fd: number;
  try {
    fd = openSync(path, 'w', 0o644);
  } catch (err) {
    throw ioError(`cannot create ${path}`, err);
  }
  let crc = 0;
  try {
    for (const chunk of chunks) {
      crc = crc32(chunk, crc);
      for (let done = 0; done < chunk.byteLength; ) done += writeSync(fd, chunk, done, chunk.byteLength - done);
    }
    fsyncSync(fd);
  } catch (err) {
    throw ioError(`cannot write ${path}`, err);
  } finally {
    closeSync(fd);
  }
  return { rows: batch.length, bytes, crc32: crc };
}
