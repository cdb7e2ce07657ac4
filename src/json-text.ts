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
 * so the JSON text is the same either way.
 */
const NONCE = `\u0000lexicons-raw-${Array.from(crypto.getRandomValues(new Uint32Array(4)), (n) => n.toString(36)).join('')}-`;

/** Texts of the RawJson values met by the running {@link jsonText} (null: none runs). */
let queued: string[] | null = null;

/** A value whose JSON text is already known. */
export abstract class RawJson {
  /** The JSON text of this value. */
  abstract jsonText(): string;

  /** For `JSON.stringify`: a placeholder inside {@link jsonText}, else the parsed value. */
  toJSON(): unknown {
    if (queued === null) return JSON.parse(this.jsonText()) as unknown;
    return `${NONCE}${queued.push(this.jsonText()) - 1}`;
  }
}

/** `JSON.stringify(value)` with the text of every {@link RawJson} in it spliced in as is. */
export function jsonText(value: unknown): string | undefined {
  if (value instanceof RawJson) return value.jsonText();
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
  let text: string | undefined;
  let raws: string[];
  try {
    text = JSON.stringify(value);
  } finally {
    raws = queued;
    queued = null;
  }
  if (raws.length === 0 || text === undefined) return text;
  const parts: string[] = [];
  let from = 0;
  for (let i = 0; i < raws.length; i++) {
    const literal = JSON.stringify(`${NONCE}${i}`);
    const at = text.indexOf(literal, from);
    if (at < 0) throw new Error('json-text: a RawJson placeholder went missing (was its toJSON result altered?)');
    parts.push(text.slice(from, at), raws[i]!);
    from = at + literal.length;
  }
  parts.push(text.slice(from));
  return parts.join('');
}
