/**
 * @module item-text
 * Editing the JSON text of one frame item without parsing it, shared by the workers (packing
 * effects) and the main thread (recoveries, keyed outcomes): add `"$id"` (a call's tag) or
 * `"$off"` (a history item's offsets) before the closing brace.
 */
import { Frame } from './wire.js';

/** A JSON object's text with `"$id": idText` added (`{}` too); anything else as is. */
export function tagItem(text: string, idText: string): string {
  if (text.charCodeAt(0) !== 0x7b || text.charCodeAt(text.length - 1) !== 0x7d) return text;
  return text.length === 2 ? `{"${Frame.ID}":${idText}}` : `${text.slice(0, -1)},"${Frame.ID}":${idText}}`;
}

/** `text` (a JSON object) with `"$off": offText` added before its closing brace. */
export function withOffsets(text: string, offText: string): string {
  return `${text.slice(0, -1)},"${Frame.OFF}":${offText}}`;
}

/** `{"Public":17}`: one channel's offset of an item. */
export function offText(channel: string, offset: number): string {
  return `{${JSON.stringify(channel)}:${offset}}`;
}
