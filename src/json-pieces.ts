/**
 * @module json-pieces
 * JSON text kept in pieces on its way to the wire: strings, and the UTF-8 bytes of {@link RawJson}
 * values that hold their text as bytes (`db.queryJson` rows). The worker's recorder copies such
 * bytes straight into the packed frame bytes it hands the main thread (workers/recorder.ts
 * `pack`), instead of decoding them to a string here and encoding the frame to UTF-8 again there.
 * Where a frame's text is needed as a string (history publications, `$key` outcomes, effects sent
 * by object), {@link textOf} decodes it once.
 *
 * The bytes are the same either way: a piece's text is, by definition, its RawJson's `jsonText()`
 * (test/workers/reply-bytes.test.ts compares both paths byte for byte).
 */
import { tagItem } from './item-text.js';
import { Frame } from './wire.js';

/**
 * The UTF-8 bytes of a JSON text, frozen when the value was serialized (a later change to its
 * RawJson, e.g. `rows.reverse()` after `ws.send(rows)`, does not change what is sent).
 */
export interface Utf8Piece {
  /** Bytes {@link writeTo} writes. */
  readonly byteLength: number;
  /** Writes the bytes at `at` (the caller made room for {@link byteLength}). */
  writeTo(target: Buffer, at: number): void;
  /** The text, decoded. */
  text(): string;
}

/** `parts[0] pieces[0] parts[1] ... pieces[n-1] parts[n]`. */
export class JsonPieces {
  readonly parts: readonly string[];
  readonly pieces: readonly Utf8Piece[];
  #text: string | undefined = undefined;

  constructor(parts: readonly string[], pieces: readonly Utf8Piece[]) {
    this.parts = parts;
    this.pieces = pieces;
  }

  /** The whole text (decoded once, kept). */
  text(): string {
    if (this.#text === undefined) {
      let text = this.parts[0]!;
      for (let i = 0; i < this.pieces.length; i++) text += this.pieces[i]!.text() + this.parts[i + 1]!;
      this.#text = text;
    }
    return this.#text;
  }

  /** At least the bytes {@link write} writes (3 per UTF-16 code unit of the strings). */
  maxBytes(): number {
    let n = 0;
    for (let i = 0; i < this.parts.length; i++) n += this.parts[i]!.length * 3;
    for (let i = 0; i < this.pieces.length; i++) n += this.pieces[i]!.byteLength;
    return n;
  }

  /** Writes the text as UTF-8 at `at` (room for {@link maxBytes} made by the caller); the bytes written. */
  write(target: Buffer, at: number): number {
    let p = at;
    const parts = this.parts;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (part.length > 0) p += target.write(part, p, 'utf8');
      if (i < this.pieces.length) {
        const piece = this.pieces[i]!;
        piece.writeTo(target, p);
        p += piece.byteLength;
      }
    }
    return p - at;
  }
}

/** JSON text: a string, or in pieces. */
export type JsonText = string | JsonPieces;

/** The text as a string. */
export function textOf(text: JsonText): string {
  return typeof text === 'string' ? text : text.text();
}

/**
 * Builds a text from strings and texts (string or pieces), left to right: a string when no piece
 * was added (the strings concatenated as before), else {@link JsonPieces}.
 */
export class TextBuilder {
  #tail = '';
  #parts: string[] | null = null;
  #pieces: Utf8Piece[] | null = null;

  add(text: JsonText): this {
    if (typeof text === 'string') {
      this.#tail += text;
      return this;
    }
    const n = text.pieces.length;
    if (n === 0) {
      this.#tail += text.parts[0]!;
      return this;
    }
    const parts = (this.#parts ??= []);
    const pieces = (this.#pieces ??= []);
    parts.push(this.#tail + text.parts[0]!);
    pieces.push(text.pieces[0]!);
    for (let i = 1; i < n; i++) {
      parts.push(text.parts[i]!);
      pieces.push(text.pieces[i]!);
    }
    this.#tail = text.parts[n]!;
    return this;
  }

  /** Adds a piece's bytes. */
  addPiece(piece: Utf8Piece): this {
    (this.#parts ??= []).push(this.#tail);
    (this.#pieces ??= []).push(piece);
    this.#tail = '';
    return this;
  }

  done(): JsonText {
    if (this.#parts === null) return this.#tail;
    return new JsonPieces([...this.#parts, this.#tail], this.#pieces!);
  }
}

/** `prefix + text + suffix`. */
export function wrapText(prefix: string, text: JsonText, suffix: string): JsonText {
  if (typeof text === 'string') return prefix + text + suffix;
  return new TextBuilder().add(prefix).add(text).add(suffix).done();
}

/** {@link tagItem} of a text in pieces: `"$id"` added before an object's closing brace. */
export function tagText(text: JsonText, idText: string): JsonText {
  if (typeof text === 'string') return tagItem(text, idText);
  const parts = text.parts;
  const last = parts[parts.length - 1]!;
  // An item that starts or ends with a piece's bytes: decoded (queryJson rows are an array, left as is).
  if (parts[0]!.length === 0 || last.length === 0) return tagItem(text.text(), idText);
  if (parts[0]!.charCodeAt(0) !== 0x7b || last.charCodeAt(last.length - 1) !== 0x7d) return text;
  return new JsonPieces([...parts.slice(0, -1), `${last.slice(0, -1)},"${Frame.ID}":${idText}}`], text.pieces);
}
