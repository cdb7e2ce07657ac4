/**
 * @module storage/arrow
 * Apache Arrow views of committed rows.
 *
 * Zero-copy when possible: if the table has no superseded or deleted version (its dead-version
 * count is 0: the append-mostly case, or right after a compaction), every slot below the
 * snapshot's row count is a live row, and the column buffers already are Arrow buffers (validity
 * bitmaps, Int32 offsets, values), so the Arrow vectors are views over the SharedArrayBuffers
 * themselves (SharedStore.toArrow pins the slots until such a view is garbage collected, so no
 * compaction rewrites them: reclaim.ts). Except the pk and ref columns: they hold UUIDs in 16
 * binary bytes (uuid-values.ts), so their Utf8 vectors are copies, made when the view is built
 * (about 40 bytes per row each).
 *
 * Otherwise (updates or deletes happened) the live rows at the snapshot are gathered into fresh,
 * non-shared buffers with the same column code, and the Arrow Table views those. Hidden columns
 * (begin, next, flags) are never included; a `pk` Utf8 column comes first.
 */
import * as arrow from 'apache-arrow';
import { GrowBuf } from './grow-buf.js';
import { ControlBlock } from './layout.js';
import { SharedTable } from './table.js';

function viewOf(t: SharedTable, length: number): arrow.Table {
  const vectors: Record<string, arrow.Vector> = { pk: arrow.makeVector(t.pk.arrowData(length)) };
  t.schema.fields.forEach((f, k) => {
    vectors[f.name] = arrow.makeVector(t.columns[k]!.arrowData(length));
  });
  return new arrow.Table(vectors);
}

/**
 * An Arrow Table of the rows of `t` visible at the latest snapshot.
 * @param maxBytes per-buffer limit for gathered copies.
 */
export function tableToArrow(t: SharedTable, control: ControlBlock, maxBytes: number): arrow.Table {
  const snapshot = control.commitId();
  const rows = t.rowCount();
  const dead = control.deadVersions(t.id);
  let length = rows;
  while (length > 0 && t.beginOf(length - 1) > snapshot) length--; // commits newer than the snapshot
  if (dead === 0) return viewOf(t, length);

  const live: number[] = [];
  for (let v = 0; v < length; v++) if (t.isVisible(v, snapshot)) live.push(v);
  const dicts = t.schema.fields.filter((f) => f.dictionary).length;
  const tmpControl = ControlBlock.allocate(1, dicts);
  const alloc = (label: string, bytes: number): GrowBuf => GrowBuf.allocate(bytes, maxBytes, label, false);
  const copy = new SharedTable(t.schema, 0, tmpControl, alloc, Math.max(1, live.length), 0);
  live.forEach((v, i) => {
    const row = t.readRow(v);
    copy.writeVersion(i, row.pk, row);
  });
  return viewOf(copy, live.length);
}
