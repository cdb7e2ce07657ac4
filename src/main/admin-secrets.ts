/**
 * @module main/admin-secrets
 * Fields declared `secret: true` (`field.str({ secret: true })`: password hashes, tokens) are
 * masked wherever the server shows data: rows on the admin page ({@link maskRow}) and the log
 * ({@link maskingLog}: a value under a key named like a secret field, at any depth, and the value
 * quoted by the storage errors that name a secret field, `User.password: value "..." already
 * exists` / `expected str, got number 5`).
 */
import type { Schema } from '../storage/schema.js';
import type { LogFn } from './log.js';

/** What a secret value is shown as. */
export const MASK = '••••••';

/** Per table, the names of its secret fields (tables without any are absent). */
export function secretFields(schema: Schema): ReadonlyMap<string, ReadonlySet<string>> {
  const out = new Map<string, Set<string>>();
  for (const t of schema.tables) {
    const names = t.fields.filter((f) => f.secret).map((f) => f.name);
    if (names.length > 0) out.set(t.name, new Set(names));
  }
  return out;
}

/** The row with its secret fields' non-null values replaced by {@link MASK}. */
export function maskRow(row: Record<string, unknown>, secrets: ReadonlySet<string> | undefined): Record<string, unknown> {
  if (secrets === undefined) return row;
  const out: Record<string, unknown> = { ...row };
  for (const name of secrets) if (out[name] !== null && out[name] !== undefined) out[name] = MASK;
  return out;
}

/** Nesting below which log data is not walked (log data is small and flat). */
const MAX_DEPTH = 6;

/**
 * Wraps `log` so that secret values never reach it (nor the `onLog` hook behind it). The
 * identity when the schema has no secret field; otherwise each event's data is copied with the
 * secrets masked (events are per connection, lifecycle step or failure, never per call).
 */
export function maskingLog(log: LogFn, schema: Schema): LogFn {
  const secrets = secretFields(schema);
  if (secrets.size === 0) return log;
  const names = new Set<string>();
  const quoted: RegExp[] = [];
  for (const [table, fields] of secrets) {
    for (const name of fields) {
      names.add(name);
      const where = `${escape(table)}\\.${escape(name)}`;
      quoted.push(new RegExp(`(${where}: (?:value|expected [^,]*, got(?: string| number| boolean)?)) ("(?:[^"\\\\]|\\\\.)*"|\\S+)`, 'g'));
    }
  }
  const text = (s: string): string => {
    let out = s;
    for (const re of quoted) out = out.replace(re, `$1 ${MASK}`);
    return out;
  };
  const walk = (value: unknown, depth: number): unknown => {
    if (typeof value === 'string') return text(value);
    if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value;
    if (Array.isArray(value)) return value.map((v) => walk(v, depth + 1));
    if (value instanceof Error) return value;
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) out[key] = names.has(key) && v !== null && v !== undefined ? MASK : walk(v, depth + 1);
    return out;
  };
  return (status, data) => log(status, walk(data, 0) as Record<string, unknown>);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
