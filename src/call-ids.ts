/**
 * @module call-ids
 * Reads the `$id`s of a frame's calls without parsing the frame: for frames refused before they
 * are parsed (main thread: rate limit, queue full, binary, shutting down; only frames of at most
 * {@link MAX_ID_SCAN_BYTES}) and frames whose JSON is malformed (worker), so that every call with
 * an `$id` still gets its terminal error item.
 *
 * Why a scanner and not JSON.parse: it allocates nothing but the ids, skips string contents with
 * the native `indexOf`, and returns at once for a frame without `"$id"` (every v0 frame), so a
 * flood of refused frames stays cheap. It takes only `$id` keys of the calls themselves (depth 1
 * of an object frame, depth 2 of a list frame), never one nested in arguments, and stops where a
 * malformed frame stops making sense. A key spelled with escapes (`"\u0024id"`) is not seen.
 */
import { MAX_ID_SCAN_BYTES } from './wire.js';

export { MAX_ID_SCAN_BYTES };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_LIST = 0x5b;
const CLOSE_LIST = 0x5d;
const ID_KEY = '"$id"';
const KEY_KEY = '"$key"';

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

/** Index of the quote closing the string that opens at `start`, or -1. */
function stringEnd(text: string, start: number): number {
  let from = start + 1;
  for (;;) {
    const q = text.indexOf('"', from);
    if (q < 0) return -1;
    let backslashes = 0;
    for (let k = q - 1; text.charCodeAt(k) === BACKSLASH; k--) backslashes++;
    if (backslashes % 2 === 0) return q;
    from = q + 1;
  }
}

/** A JSON string or finite number at `i` (as `parseCall` accepts), or undefined. */
function idValue(text: string, i: number): string | number | undefined {
  const c = text.charCodeAt(i);
  if (c === QUOTE) {
    const end = stringEnd(text, i);
    if (end < 0) return undefined;
    try {
      return JSON.parse(text.slice(i, end + 1)) as string;
    } catch {
      return undefined;
    }
  }
  let j = i;
  while (j < text.length && /[-+.eE0-9]/.test(text[j]!)) j++;
  if (j === i) return undefined;
  const n = Number(text.slice(i, j));
  return Number.isFinite(n) ? n : undefined;
}

/** The `$id`s of the calls of a frame's text, in order (none: an empty list). */
export function scanCallIds(text: string): Array<string | number> {
  return scanCallField(text, ID_KEY);
}

/**
 * The `$key`s (idempotency keys, strings) of the calls of a frame's text, in order: the main thread
 * registers them for a session's replays (main/sessions.ts). Same rules as {@link scanCallIds}.
 */
export function scanCallKeys(text: string): string[] {
  return scanCallField(text, KEY_KEY).filter((key): key is string => typeof key === 'string');
}

function scanCallField(text: string, field: string): Array<string | number> {
  const ids: Array<string | number> = [];
  if (text.indexOf(field) < 0) return ids;
  let i = skipSpace(text, 0);
  const first = text.charCodeAt(i);
  const callDepth = first === OPEN_OBJECT ? 1 : first === OPEN_LIST ? 2 : -1;
  if (callDepth < 0) return ids;
  let depth = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (end < 0) break;
      if (depth === callDepth && end - i === field.length - 1 && text.startsWith(field, i)) {
        const colon = skipSpace(text, end + 1);
        if (text.charCodeAt(colon) === COLON) {
          const id = idValue(text, skipSpace(text, colon + 1));
          if (id !== undefined) ids.push(id);
        }
      }
      i = end + 1;
      continue;
    }
    if (c === OPEN_OBJECT || c === OPEN_LIST) depth++;
    else if (c === CLOSE_OBJECT || c === CLOSE_LIST) {
      depth--;
      if (depth === 0) break; // the frame's value ended
    }
    i++;
  }
  return ids;
}
