/**
 * @module storage/schema
 * Models as the user writes them, and their compiled, validated form.
 *
 * A Model is a class whose name is the table name and whose static attributes are the fields.
 * TypeScript types are erased at run time, so each field is declared by a runtime value built with
 * {@link field}; the record type is inferred from those values with {@link Row}.
 *
 * @example
 * class User extends Model {
 *   static email = field.str({ unique: true });
 *   static password = field.str({ transform: (raw) => encrypt(raw) }); // hashed on write
 * }
 * class ChatMessage extends Model {
 *   static author = field.ref(() => User);
 *   static channel = field.str({ dictionary: true, index: true });
 *   static content = field.str();
 *   static timestamp = field.float();
 * }
 * type ChatMessageRow = Row<typeof ChatMessage>; // { pk: string; author: string | null; ... }
 */
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';

export type ScalarKind = 'str' | 'int' | 'float' | 'bool';
export type FieldKind = ScalarKind | 'list' | 'set' | 'ref';

/** Value type of each scalar kind (used for list/set elements too). */
export interface ScalarValue {
  str: string;
  int: number;
  float: number;
  bool: boolean;
}

export interface FieldOptions<T> {
  /** Value (or factory, called per row) used when a create omits the field. */
  default?: T | (() => T);
  /** Whether null is a legal value. Default: false, except `ref` and `set` (true, as the original). */
  nullable?: boolean;
  /** No two live rows may hold the same non-null value. Implies an index. */
  unique?: boolean;
  /** Keep a hash index so equality lookups on this field are O(1). */
  index?: boolean;
  /**
   * Transform applied to every value written (create and update), before type checks: the
   * equivalent of the seed's password property whose setter hashes the raw value.
   */
  transform?: (value: any) => T;
  /**
   * A secret (a password hash, a token): shown masked on the admin page and in the server's logs,
   * and never the sort key of an admin view. Stored and read like any other value.
   */
  secret?: boolean;
  /**
   * The field's former name(s): `lexicons migrate` renames a stored column of that name to this
   * field (its values kept) instead of dropping one column and adding another.
   * @example static displayName = field.str({ was: 'name' });
   */
  was?: string | readonly string[];
}

export interface StrOptions extends FieldOptions<string> {
  /** Store as an Arrow Dictionary<Int32, Utf8> column: pays off for low-cardinality strings. */
  dictionary?: boolean;
}

/** A field declaration: a runtime value standing in for an erased TypeScript type. */
export interface Field<T = unknown, K extends FieldKind = FieldKind, D extends boolean = boolean> {
  readonly kind: K;
  /** Element kind for list/set. */
  readonly element?: ScalarKind;
  /** Referenced model (thunk, to allow cycles) or its table name, for `ref`. */
  readonly target?: (() => ModelClass) | string;
  readonly options: FieldOptions<T> & { dictionary?: boolean };
  /** Phantom: carries the value type for {@link Row}. Never set at run time. */
  readonly __type?: T;
  /** Phantom: whether the declaration has a `default` (a Signal argument may then be omitted). Never set. */
  readonly __default?: D;
}

function make<T, K extends FieldKind, D extends boolean>(kind: K, options: FieldOptions<T> & { dictionary?: boolean } = {}, extra: Partial<Field<T, K>> = {}): Field<T, K, D> {
  return Object.freeze({ kind, options: Object.freeze({ ...options }), ...extra }) as Field<T, K, D>;
}

/** Field builders. Nullable fields get `| null` in the inferred row type. */
export const field = {
  str: <O extends StrOptions>(options?: O) => make<Nullable<string, O>, 'str', HasDefault<O>>('str', options as FieldOptions<Nullable<string, O>>),
  int: <O extends FieldOptions<number>>(options?: O) => make<Nullable<number, O>, 'int', HasDefault<O>>('int', options as FieldOptions<Nullable<number, O>>),
  float: <O extends FieldOptions<number>>(options?: O) => make<Nullable<number, O>, 'float', HasDefault<O>>('float', options as FieldOptions<Nullable<number, O>>),
  bool: <O extends FieldOptions<boolean>>(options?: O) => make<Nullable<boolean, O>, 'bool', HasDefault<O>>('bool', options as FieldOptions<Nullable<boolean, O>>),
  /** An ordered list of scalars (default element: str). */
  list: <E extends ScalarKind = 'str', O extends FieldOptions<ScalarValue[E][]> = {}>(element?: E, options?: O) =>
    make<Nullable<ScalarValue[E][], O>, 'list', HasDefault<O>>('list', options as FieldOptions<Nullable<ScalarValue[E][], O>>, { element: element ?? 'str' }),
  /** A set of scalars, stored deduplicated in insertion order; read back as an array. Nullable by default. */
  set: <E extends ScalarKind = 'str', O extends FieldOptions<ScalarValue[E][]> = {}>(element?: E, options?: O) =>
    make<NullableDefaultTrue<ScalarValue[E][], O>, 'set', HasDefault<O>>('set', options as FieldOptions<NullableDefaultTrue<ScalarValue[E][], O>>, { element: element ?? 'str' }),
  /** A reference to another Model, stored as the referenced row's pk. Nullable by default. */
  ref: <O extends FieldOptions<string>>(target: (() => ModelClass) | string, options?: O) =>
    make<NullableDefaultTrue<string, O>, 'ref', HasDefault<O>>('ref', options as FieldOptions<NullableDefaultTrue<string, O>>, { target }),
};

type Nullable<T, O> = O extends { nullable: true } ? T | null : T;
type NullableDefaultTrue<T, O> = O extends { nullable: false } ? T : T | null;
type HasDefault<O> = O extends { default: unknown } ? true : false;

/** Base class of all Models. Static attributes built with {@link field} are the fields. */
export class Model {
  /** Optional table name; defaults to the class name. */
  static table?: string;
}

export type ModelClass = typeof Model & Function;

/** The values of an object's {@link Field} members (a Model's fields, a Signal's `static args`). */
export type FieldValues<M> = {
  -readonly [K in keyof M as M[K] extends Field<any, any> ? K : never]: M[K] extends Field<infer T, any> ? T : never;
};

/** The record type of a Model: its fields plus `pk`. */
export type Row<M> = { pk: string } & FieldValues<M>;

/** Fields a create accepts: all optional (defaults apply), `pk` may be given. */
export type CreateInput<M> = Partial<Row<M>>;

// ---------------------------------------------------------------------------------------------
// Compiled schema

export interface FieldSchema {
  readonly name: string;
  readonly kind: FieldKind;
  readonly element: ScalarKind | undefined;
  /** Referenced table name (resolved), for `ref`. */
  readonly ref: string | undefined;
  readonly nullable: boolean;
  readonly unique: boolean;
  /** unique implies indexed. */
  readonly indexed: boolean;
  readonly dictionary: boolean;
  /** `secret: true`: masked on the admin page and in logs. */
  readonly secret: boolean;
  /** Former names (`was`), for `lexicons migrate` (absent: none). */
  readonly was?: readonly string[];
  readonly transform: ((value: any) => unknown) | undefined;
  /** Returns a fresh default value for a new row (null when nullable and no default). */
  readonly makeDefault: () => unknown;
}

export interface TableSchema {
  readonly name: string;
  /** User fields, in declaration order (pk is implicit and not listed). */
  readonly fields: readonly FieldSchema[];
  readonly byName: ReadonlyMap<string, FieldSchema>;
  readonly model: ModelClass | undefined;
}

export interface Schema {
  readonly tables: readonly TableSchema[];
  readonly byName: ReadonlyMap<string, TableSchema>;
}

const TYPE_DEFAULTS: Record<FieldKind, () => unknown> = {
  str: () => '',
  int: () => 0,
  float: () => 0,
  bool: () => false,
  list: () => [],
  set: () => null,
  ref: () => null,
};

const RESERVED = new Set(['pk', 'table', 'prototype', 'length', 'name']);
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function isField(value: unknown): value is Field {
  return typeof value === 'object' && value !== null && 'kind' in value && 'options' in value;
}

export function tableNameOf(model: ModelClass | string): string {
  if (typeof model === 'string') return model;
  return Object.prototype.hasOwnProperty.call(model, 'table') && model.table ? model.table : model.name;
}

/** Table names starting with this (any case) belong to lexicons' system tables (history-tables.ts). */
export const SYSTEM_TABLE_PREFIX = 'lexicons_';

/** Whether `name` is reserved for a system table. */
export function isSystemTableName(name: string): boolean {
  return name.toLowerCase().startsWith(SYSTEM_TABLE_PREFIX);
}

/**
 * Validates Models and compiles them into a {@link Schema}. Fails with a SCHEMA error naming the
 * model and field for: unknown field types, references to unregistered models, duplicate table
 * names, table names reserved for system tables (`lexicons_*`), reserved or invalid field names,
 * and bad options.
 */
export function compileSchema(models: Iterable<ModelClass>): Schema {
  return compileModels(models, false);
}

/**
 * {@link compileSchema}, and with `system` the lexicons_* names are allowed (history-tables.ts
 * compiles its own Models this way; user Models never go through here with `system`).
 */
export function compileModels(models: Iterable<ModelClass>, system: boolean): Schema {
  const list = [...models];
  const names = new Map<string, ModelClass>();
  for (const model of list) {
    if (typeof model !== 'function') throw schemaError(`Model ${String(model)} is not a class`);
    const name = tableNameOf(model);
    if (!IDENT.test(name)) throw schemaError(`Model ${name}: table name must be an identifier`);
    if (!system && isSystemTableName(name)) throw schemaError(`Model ${name}: table names starting with ${SYSTEM_TABLE_PREFIX} are reserved for lexicons' system tables (rename the Model or set static table)`);
    if (names.has(name)) throw schemaError(`Duplicate table name ${name}: two models are named ${name}`);
    names.set(name, model);
  }
  const tables: TableSchema[] = [];
  for (const model of list) {
    const tableName = tableNameOf(model);
    const fields: FieldSchema[] = [];
    for (const key of Object.getOwnPropertyNames(model)) {
      if (key === 'prototype' || key === 'length' || key === 'name' || key === 'table') continue;
      const value = (model as unknown as Record<string, unknown>)[key];
      if (!isField(value)) {
        if (typeof value === 'function') continue; // static helper methods are not fields
        throw schemaError(`Model ${tableName}, field ${key}: not a field declaration (use field.str(), field.int(), ...)`);
      }
      fields.push(compileField(tableName, key, value, names));
    }
    // Inherited fields from a parent Model that is not itself Model.
    let parent = Object.getPrototypeOf(model) as ModelClass | null;
    // Stops at Function.prototype too: a Model from another copy of lexicons has a different
    // `Model` base, and reading `caller`/`arguments` off Function.prototype throws.
    while (parent && parent !== Model && parent !== Function.prototype && typeof parent === 'function') {
      for (const key of Object.getOwnPropertyNames(parent)) {
        if (key === 'prototype' || key === 'length' || key === 'name' || key === 'table') continue;
        const value = (parent as unknown as Record<string, unknown>)[key];
        if (isField(value) && !fields.some((f) => f.name === key)) fields.push(compileField(tableName, key, value, names));
      }
      parent = Object.getPrototypeOf(parent) as ModelClass | null;
    }
    const byName = new Map(fields.map((f) => [f.name, f]));
    const formerly = new Map<string, string>();
    for (const f of fields) {
      for (const old of f.was ?? []) {
        if (byName.has(old)) throw schemaError(`Model ${tableName}, field ${f.name}: was: '${old}' names a field the Model still has`);
        const other = formerly.get(old);
        if (other !== undefined) throw schemaError(`Model ${tableName}: fields ${other} and ${f.name} both say was: '${old}'`);
        formerly.set(old, f.name);
      }
    }
    tables.push({ name: tableName, fields, byName, model });
  }
  return { tables, byName: new Map(tables.map((t) => [t.name, t])) };
}

function compileField(table: string, name: string, f: Field, models: Map<string, ModelClass>): FieldSchema {
  const where = `Model ${table}, field ${name}`;
  if (RESERVED.has(name) || !IDENT.test(name) || name.includes('__')) {
    throw schemaError(`${where}: invalid or reserved field name (pk is automatic; names may not contain "__")`);
  }
  if (!(f.kind in TYPE_DEFAULTS)) throw schemaError(`${where}: unknown field type ${JSON.stringify(f.kind)}`);
  const o = f.options ?? {};
  if ((f.kind === 'list' || f.kind === 'set') && !['str', 'int', 'float', 'bool'].includes(f.element ?? '')) {
    throw schemaError(`${where}: unknown ${f.kind} element type ${JSON.stringify(f.element)}`);
  }
  let ref: string | undefined;
  if (f.kind === 'ref') {
    let target: unknown;
    try {
      target = typeof f.target === 'function' ? (f.target as () => ModelClass)() : f.target;
    } catch (err) {
      throw schemaError(`${where}: reference target could not be resolved (${messageOf(err)})`);
    }
    ref = typeof target === 'string' ? target : typeof target === 'function' ? tableNameOf(target as ModelClass) : undefined;
    if (!ref || !models.has(ref)) throw schemaError(`${where}: references unregistered model ${ref ?? String(target)}`);
  }
  if (o.dictionary && f.kind !== 'str') throw schemaError(`${where}: dictionary applies to str fields only`);
  if (o.unique && (f.kind === 'list' || f.kind === 'set')) throw schemaError(`${where}: ${f.kind} fields cannot be unique`);
  if (o.index && (f.kind === 'list' || f.kind === 'set')) throw schemaError(`${where}: ${f.kind} fields cannot be indexed`);
  if (o.transform !== undefined && typeof o.transform !== 'function') throw schemaError(`${where}: transform must be a function`);
  if (o.secret !== undefined && typeof o.secret !== 'boolean') throw schemaError(`${where}: secret must be a boolean`);
  const was = o.was === undefined ? [] : typeof o.was === 'string' ? [o.was] : Array.isArray(o.was) ? [...(o.was as readonly unknown[])] : null;
  if (was === null || was.some((w) => typeof w !== 'string' || !IDENT.test(w) || w === name || RESERVED.has(w))) {
    throw schemaError(`${where}: was must be a former field name (an identifier other than ${name}) or a list of them`);
  }
  const nullable = o.nullable ?? (f.kind === 'ref' || f.kind === 'set');
  const hasDefault = Object.prototype.hasOwnProperty.call(o, 'default');
  const dflt = o.default;
  const makeDefault = hasDefault
    ? typeof dflt === 'function'
      ? (dflt as () => unknown)
      : () => (Array.isArray(dflt) ? [...dflt] : dflt) // mutable defaults are never shared
    : nullable
      ? () => null
      : TYPE_DEFAULTS[f.kind];
  return {
    name,
    kind: f.kind,
    element: f.element,
    ref,
    nullable,
    unique: !!o.unique,
    indexed: !!o.unique || !!o.index,
    dictionary: !!o.dictionary,
    secret: o.secret === true,
    was: was as string[],
    transform: o.transform,
    makeDefault,
  };
}

function schemaError(message: string): LexiconsError {
  return new LexiconsError(ErrorCode.SCHEMA, message);
}

// ---------------------------------------------------------------------------------------------
// Value checks (exact, as the original: an int is not a bool, a float must be finite)

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (value instanceof Set) return 'Set';
  const t = typeof value;
  if (t === 'string') return `string ${JSON.stringify((value as string).length > 40 ? (value as string).slice(0, 40) + '…' : value)}`;
  if (t === 'number' || t === 'boolean') return `${t} ${String(value)}`;
  return t;
}

/** Whether `value` is a valid value of a scalar kind (list/set elements too). */
export function isScalar(kind: ScalarKind, value: unknown): boolean {
  switch (kind) {
    case 'str':
      return typeof value === 'string';
    case 'int':
      return typeof value === 'number' && Number.isSafeInteger(value);
    case 'float':
      return typeof value === 'number' && Number.isFinite(value);
    case 'bool':
      return typeof value === 'boolean';
  }
}

/**
 * Applies the field's transform and checks the type; returns the value to store.
 * Sets are deduplicated (insertion order kept); a `ref` accepts a record and stores its pk.
 * Throws a TYPE error naming table, field, expected type and the value.
 */
export function coerceValue(table: string, f: FieldSchema, input: unknown): unknown {
  let value: unknown = input === undefined ? null : input;
  if (value !== null && f.transform) value = f.transform(value);
  const fail = (expected: string): never => {
    throw new LexiconsError(ErrorCode.TYPE, `${table}.${f.name}: expected ${expected}, got ${describe(value)}`);
  };
  if (value === null) {
    if (!f.nullable) fail(`${f.kind}${f.element ? `<${f.element}>` : ''} (field is not nullable)`);
    return null;
  }
  switch (f.kind) {
    case 'str':
    case 'int':
    case 'float':
    case 'bool':
      if (!isScalar(f.kind, value)) fail(f.kind === 'int' ? 'int (a safe integer)' : f.kind);
      return value;
    case 'ref': {
      const pk = typeof value === 'object' && value !== null && typeof (value as { pk?: unknown }).pk === 'string' ? (value as { pk: string }).pk : value;
      if (typeof pk !== 'string') fail(`reference to ${f.ref} (a pk string or a record)`);
      return pk;
    }
    case 'list':
    case 'set': {
      const items = value instanceof Set ? [...value] : value;
      if (!Array.isArray(items)) fail(`${f.kind}<${f.element}>`);
      const arr = items as unknown[];
      for (const item of arr) if (!isScalar(f.element!, item)) fail(`${f.kind}<${f.element}> element, found ${describe(item)} in`);
      return f.kind === 'set' ? [...new Set(arr)] : [...arr];
    }
  }
}

const noTransform = new WeakMap<FieldSchema, FieldSchema>();

/**
 * The field without its transform (cached per field): values read back from saved data (CSV
 * loads, log replay) are already transformed and are only checked with {@link coerceValue}.
 */
export function withoutTransform(f: FieldSchema): FieldSchema {
  let g = noTransform.get(f);
  if (!g) noTransform.set(f, (g = { ...f, transform: undefined }));
  return g;
}
