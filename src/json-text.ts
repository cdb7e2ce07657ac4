/**
 * @module json-text
 * JSON text with pieces already serialized spliced in: {@link RawJson} values (a query's rows as
 * JSON, `db.queryJson`) are written by {@link jsonText} as their text, without being parsed back or
 * built as objects. Everything a worker sends (`ws.send`, `sv.publish`, Signal responses) is
 * serialized here, once, on the worker.
 *
 * How: `JSON.stringify` calls each RawJson's `toJSON`, which, while {@link jsonText} runs, answers
 * a placeholder string (a NUL character, a per-process random nonce, a counter) and queues its
 * text; the placeholders are then replaced, left to right, by the queued texts. User strings
 * cannot forge a placeholder: they would need the nonce (a 128-bit random number never sent).
 * Outside jsonText (user code calling `JSON.stringify` itself), `toJSON` answers the parsed value,
 * so the JSON text is the same either way. {@link jsonPieces} does the same but keeps the bytes of
 * RawJson values that hold bytes (`db.queryJson` rows) as pieces of the text (json-pieces.ts).
 */
import { JsonPieces, TextBuilder, type JsonText, type Utf8Piece } from './json-pieces.js';

const NONCE = `\u0000lexicons-raw-${Array.from(crypto.getRandomValues(new Uint32Array(4)), (n) => n.toString(36)).join('')}-`;

/** Texts (or, for {@link jsonPieces}, bytes) of the RawJson values met by the running serialization (null: none runs). */
let queued: Array<string | Utf8Piece> | null = null;
/** Whether the running serialization keeps RawJson bytes as pieces ({@link jsonPieces}). */
let keepBytes = false;

/** A value whose JSON text is already known. */
export abstract class RawJson {
  /** The JSON text of this value. */
  abstract jsonText(): string;

  /**
   * The same text as UTF-8 bytes, frozen now, when this value holds it as bytes (written into a
   * reply frame without being decoded, json-pieces.ts); null (this default): it does not.
   */
  utf8Piece(): Utf8Piece | null {
    return null;
  }

  /** For `JSON.stringify`: a placeholder inside {@link jsonText}, else the parsed value. */
  toJSON(): unknown {
    if (queued === null) return JSON.parse(this.jsonText()) as unknown;
    const piece = keepBytes ? this.utf8Piece() : null;
    return `${NONCE}${queued.push(piece ?? this.jsonText()) - 1}`;
  }
}

/** `JSON.stringify(value)` with the text of every {@link RawJson} in it spliced in as is. */
export function jsonText(value: unknown): string | undefined {
  return serialize(value, false) as string | undefined;
}

/**
 * {@link jsonText}, with the bytes of RawJson values that hold bytes (`db.queryJson` rows) kept as
 * pieces: the recorder writes them into the reply frame as they are (a string when there are none).
 */
export function jsonPieces(value: unknown): JsonText | undefined {
  return serialize(value, true);
}

function serialize(value: unknown, bytes: boolean): JsonText | undefined {
  if (value instanceof RawJson) {
    const piece = bytes ? value.utf8Piece() : null;
    return piece === null ? value.jsonText() : new JsonPieces(['', ''], [piece]);
  }
  if (queued !== null) {
    // Nested (a toJSON calling us): plain JSON.stringify, RawJson values parsed.
    const outer = queued;
    queued = null;
    try {
      return JSON.stringify(value);
    } finally {
      queued = outer;
    }
  }
  queued = [];
  keepBytes = bytes;
  let text: string | undefined;
  let raws: Array<string | Utf8Piece>;
  try {
    text = JSON.stringify(value);
  } finally {
    raws = queued;
    queued = null;
  }
  if (raws.length === 0 || text === undefined) return text;
  const out = new TextBuilder();
  let from = 0;
  for (let i = 0; i < raws.length; i++) {
    const literal = JSON.stringify(`${NONCE}${i}`);
    const at = text.indexOf(literal, from);
    if (at < 0) throw new Error('json-text: a RawJson placeholder went missing (was its toJSON result altered?)');
    out.add(text.slice(from, at));
    const raw = raws[i]!;
    if (typeof raw === 'string') out.add(raw);
    else out.addPiece(raw);
    from = at + literal.length;
  }
  return out.add(text.slice(from)).done();
}
