/**
 * @module workers/stamped
 * Items published to history channels, held by the recorder until the commit assigned their
 * offsets ({@link Stamped}), then written out: each with its `"$off"`, a caller's copy with its
 * `"$id"`, and a publish split into frames whose offsets are contiguous per channel (one
 * commit's), each with its offset ranges for the main thread's ordered delivery.
 */
import type { HistoryRange } from '../job-contract.js';
import type { Publication } from '../storage/api.js';
import { tagItem, withOffsets } from '../item-text.js';
import { JsonPieces, TextBuilder, textOf, type JsonText } from '../json-pieces.js';

/**
 * An item published to history channels: its text, and its publications (indexes `first` ..
 * `first + count - 1` in the job's committed publications, one per history channel). `id`: the
 * `$id` text of a caller's tagged copy.
 */
export interface Stamped {
  readonly text: string;
  readonly first: number;
  readonly count: number;
  readonly id?: string;
}
/** A recorded item: plain text (a string, or in pieces: json-pieces.ts), or stamped (history). */
export type ItemText = JsonText | Stamped;

/** Whether an item is stamped (published to history channels). */
export function isStamped(item: ItemText): item is Stamped {
  return typeof item !== 'string' && !(item instanceof JsonPieces);
}

/** One frame of a history publish and the offset ranges it carries. */
export interface HistoryFrame {
  readonly text: string;
  readonly ranges: HistoryRange[];
}

/** `{"Public":17,"Room":3}`: the offsets of a stamped item. */
function offsetsText(stamped: Stamped, publications: readonly Publication[]): string {
  let text = '{';
  for (let k = 0; k < stamped.count; k++) {
    const p = publications[stamped.first + k]!;
    text += `${k > 0 ? ',' : ''}${JSON.stringify(p.channel)}:${p.offset}`;
  }
  return `${text}}`;
}

/** An item's final text: with its offsets and, for a caller's copy, its `$id`. */
export function itemText(item: ItemText, publications: readonly Publication[]): JsonText {
  if (!isStamped(item)) return item;
  const text = withOffsets(item.text, offsetsText(item, publications));
  return item.id === undefined ? text : tagItem(text, item.id);
}

/** A frame's text, `[item,...]`: in pieces when an item is. */
export function frameText(items: readonly ItemText[], publications: readonly Publication[]): JsonText {
  const out = new TextBuilder().add('[');
  for (let i = 0; i < items.length; i++) {
    if (i > 0) out.add(',');
    out.add(itemText(items[i]!, publications));
  }
  return out.add(']').done();
}

/**
 * The items of a history publish split into frames whose offsets are contiguous per channel
 * (one commit's), each with its offset ranges.
 */
export function historyFrames(items: readonly ItemText[], publications: readonly Publication[]): HistoryFrame[] {
  const frames: HistoryFrame[] = [];
  let from = 0;
  for (let i = 1; i <= items.length; i++) {
    const prev = items[i - 1] as Stamped;
    const next = items[i] as Stamped | undefined;
    if (next !== undefined && follows(prev, next, publications)) continue;
    const head = items[from] as Stamped;
    const ranges: HistoryRange[] = [];
    for (let k = 0; k < head.count; k++) {
      const p = publications[head.first + k]!;
      ranges.push({ channel: p.channel, epoch: p.epoch, first: p.offset, last: publications[prev.first + k]!.offset });
    }
    frames.push({ text: textOf(frameText(items.slice(from, i), publications)), ranges });
    from = i;
  }
  return frames;
}

/** Whether `next`'s offsets are `prev`'s + 1 in every channel. */
function follows(prev: Stamped, next: Stamped, publications: readonly Publication[]): boolean {
  if (prev.count !== next.count) return false;
  for (let k = 0; k < prev.count; k++) {
    const a = publications[prev.first + k]!;
    const b = publications[next.first + k]!;
    if (a.channel !== b.channel || b.offset !== a.offset + 1) return false;
  }
  return true;
}
