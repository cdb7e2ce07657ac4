/**
 * @module storage/filters
 * Filters (`field`, `field__op`, `ref__field[__op]`, `_sort`, `_limit`, `_where`) compiled into
 * predicates on columns, once per call, before the read path (query.ts) evaluates them. Unknown
 * fields and operators raise NOT_FOUND naming them; bad option values raise TYPE.
 */
import { ErrorCode, LexiconsError } from '../errors.js';
import type { Filters } from './api.js';
import type { TableSchema } from './schema.js';

const OPS = new Set(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'in', 'nin', 'f', 're', 'max', 'min']);

/** A predicate on one column (k = field index, -1 = pk). */
export interface Cond {
  readonly k: number;
  readonly name: string;
  readonly op: string;
  readonly value: unknown;
  readonly test: (v: unknown) => boolean;
}

export interface Parsed {
  readonly conds: Cond[];
  /** Through-reference filters, grouped per reference field: `author__name` -> {name: ...}. */
  readonly refs: Array<{ k: number; name: string; target: string; sub: Filters }>;
  readonly extremes: Array<{ k: number; name: string; op: 'max' | 'min' }>;
  readonly sort: Array<{ name: string; desc: boolean }>;
  readonly limit: number | undefined;
  readonly where: ((row: Record<string, unknown>) => boolean) | undefined;
}

/** A record given as a filter value stands for its pk. */
export function normalize(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && typeof (value as { pk?: unknown }).pk === 'string') {
    return (value as { pk: string }).pk;
  }
  return value;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => x === b[i]);
  }
  return a === b;
}

function members(table: string, key: string, value: unknown): Set<unknown> {
  if (value instanceof Set) return new Set([...value].map(normalize));
  if (Array.isArray(value)) return new Set(value.map(normalize));
  throw new LexiconsError(ErrorCode.TYPE, `${table}.${key}: expected an array or Set, got ${typeof value}`);
}

function makeTest(table: string, key: string, op: string, raw: unknown): (v: unknown) => boolean {
  const value = normalize(raw);
  switch (op) {
    case 'eq':
      return (v) => sameValue(v, value);
    case 'ne':
      return (v) => !sameValue(v, value);
    case 'gt':
      return (v) => v !== null && (v as number) > (value as number);
    case 'lt':
      return (v) => v !== null && (v as number) < (value as number);
    case 'ge':
      return (v) => v !== null && (v as number) >= (value as number);
    case 'le':
      return (v) => v !== null && (v as number) <= (value as number);
    case 'in': {
      const set = members(table, key, raw);
      return (v) => set.has(v);
    }
    case 'nin': {
      const set = members(table, key, raw);
      return (v) => !set.has(v);
    }
    case 'f':
      return (v) => (typeof v === 'string' ? v.includes(String(value)) : Array.isArray(v) ? v.includes(value) : false);
    case 're': {
      const re = raw instanceof RegExp ? new RegExp(raw.source, raw.flags.replace(/[gy]/g, '')) : new RegExp(String(raw));
      return (v) => v !== null && re.test(Array.isArray(v) ? v.join(',') : String(v));
    }
    default:
      throw new LexiconsError(ErrorCode.NOT_FOUND, `${table}: unknown filter operator ${op} in ${key}`);
  }
}

/** Per table: the filter keys that are a bare field name (or `pk`), to its field index (-1: pk). */
const plainKeys = new WeakMap<TableSchema, Map<string, number>>();

function plainFields(table: TableSchema): Map<string, number> {
  let keys = plainKeys.get(table);
  if (keys === undefined) {
    keys = new Map([['pk', -1]]);
    // A name with `__` is left to the general path, which reads it as field + operator.
    table.fields.forEach((f, k) => {
      if (!f.name.includes('__') && !keys!.has(f.name)) keys!.set(f.name, k);
    });
    plainKeys.set(table, keys);
  }
  return keys;
}

/** Compiles filters for a table; unknown fields/operators raise NOT_FOUND naming them. */
export function parseFilters(table: TableSchema, filters: Filters | undefined): Parsed {
  const parsed = { conds: [] as Cond[], refs: [] as Parsed['refs'], extremes: [] as Parsed['extremes'], sort: [] as Parsed['sort'], limit: undefined as number | undefined, where: undefined as Parsed['where'] };
  if (!filters) return parsed;
  const fieldIndex = (name: string): number => {
    if (name === 'pk') return -1;
    const k = table.fields.findIndex((f) => f.name === name);
    if (k < 0) throw new LexiconsError(ErrorCode.NOT_FOUND, `${table.name}: unknown field ${name}`);
    return k;
  };
  for (const [key, value] of Object.entries(filters)) {
    if (value === undefined) continue;
    if (key === '_sort') {
      for (const s of Array.isArray(value) ? value : [value]) {
        const desc = String(s).startsWith('-');
        const name = desc ? String(s).slice(1) : String(s);
        fieldIndex(name);
        parsed.sort.push({ name, desc });
      }
      continue;
    }
    if (key === '_limit') {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
        throw new LexiconsError(ErrorCode.TYPE, `${table.name}: _limit must be a non-negative integer`);
      }
      parsed.limit = value;
      continue;
    }
    if (key === '_where') {
      if (typeof value !== 'function') throw new LexiconsError(ErrorCode.TYPE, `${table.name}: _where must be a function`);
      parsed.where = value as Parsed['where'];
      continue;
    }
    const plain = plainFields(table).get(key);
    if (plain !== undefined) {
      // `field: value` (the common case, e.g. db.get by a unique field): no split, no field search.
      parsed.conds.push({ k: plain, name: key, op: 'eq', value: normalize(value), test: makeTest(table.name, key, 'eq', value) });
      continue;
    }
    const parts = key.split('__');
    const name = parts[0]!;
    const k = fieldIndex(name);
    const f = k >= 0 ? table.fields[k]! : undefined;
    if (parts.length === 1 || (parts.length === 2 && OPS.has(parts[1]!))) {
      const op = parts[1] ?? 'eq';
      if (op === 'max' || op === 'min') {
        if (value) parsed.extremes.push({ k, name, op });
        continue;
      }
      parsed.conds.push({ k, name, op, value: normalize(value), test: makeTest(table.name, key, op, value) });
    } else if (f?.kind === 'ref') {
      let ref = parsed.refs.find((r) => r.k === k);
      if (!ref) parsed.refs.push((ref = { k, name, target: f.ref!, sub: {} }));
      ref.sub[parts.slice(1).join('__')] = value;
    } else {
      throw new LexiconsError(ErrorCode.NOT_FOUND, `${table.name}: unknown filter operator ${parts.slice(1).join('__')} in ${key}`);
    }
  }
  return parsed;
}
