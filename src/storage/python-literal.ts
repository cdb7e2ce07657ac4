/**
 * @module storage/python-literal
 * A parser for the Python literals pandas wrote into list and set cells of the original lexicons'
 * CSV files: a list, set or tuple of str, int, float, bool and None, as Python's repr() writes
 * them (`['a', 'b']`, `{1, 2}`, `set()`, `(True,)`, escapes such as `\\n`, `\\x41`, `\\u00e9`).
 * It only parses: it never evaluates anything.
 */

const PY_ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\', "'": "'", '"': '"', n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b', f: '\f', v: '\v', '\n': '',
};

/** Parses a Python list/set/tuple literal of scalars; throws with the offset of the problem. */
export function parseLiteral(text: string): unknown[] {
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`${what} at offset ${i}`);
  };
  const ws = (): void => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const str = (): string => {
    const q = text[i++]!;
    let out = '';
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text[i++]!;
      if (c === q) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = text[i++] ?? fail('unterminated escape');
      const simple = PY_ESCAPES[e];
      if (simple !== undefined) out += simple;
      else if (e === 'x' || e === 'u' || e === 'U') {
        const len = e === 'x' ? 2 : e === 'u' ? 4 : 8;
        const hex = text.slice(i, i + len);
        if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) fail(`bad \\${e} escape`);
        const cp = parseInt(hex, 16);
        if (cp > 0x10ffff) fail('code point out of range');
        out += String.fromCodePoint(cp);
        i += len;
      } else if (e >= '0' && e <= '7') {
        let oct = e;
        while (oct.length < 3 && text[i]! >= '0' && text[i]! <= '7') oct += text[i++];
        out += String.fromCodePoint(parseInt(oct, 8));
      } else out += `\\${e}`; // Python keeps unknown escapes literally
    }
  };
  const scalar = (): unknown => {
    const c = text[i];
    if (c === "'" || c === '"') return str();
    if ((c === 'u' || c === 'U') && (text[i + 1] === "'" || text[i + 1] === '"')) {
      i++;
      return str();
    }
    const m = /^(?:True|False|None|[+-]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
    if (!m) return fail(`unexpected ${JSON.stringify(text.slice(i, i + 10))}`);
    i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    return Number(m[0].replaceAll('_', ''));
  };
  ws();
  if (text.startsWith('set()', i)) {
    i += 5;
    ws();
    if (i < text.length) fail('trailing text');
    return [];
  }
  const open = text[i];
  const close = open === '[' ? ']' : open === '{' ? '}' : open === '(' ? ')' : fail('expected [, { or (');
  i++;
  const items: unknown[] = [];
  ws();
  while (text[i] !== close) {
    items.push(scalar());
    ws();
    if (text[i] === ',') {
      i++;
      ws();
    } else if (text[i] !== close) fail(`expected , or ${close}`);
  }
  i++;
  ws();
  if (i < text.length) fail('trailing text');
  if (open === '{' && items.length === 0) fail('{} is a dict, not a set');
  return items;
}
