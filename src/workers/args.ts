/**
 * @module workers/args
 * `static args` of Signals and Headers: field builders (the same as Model fields) that check the
 * arguments a client sent before `execute` runs. Undeclared arguments pass through untouched
 * (the original's `**kwargs`); a declared argument that is missing gets its default, or null when
 * nullable, or is an error.
 */
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import type { Field, FieldKind, FieldSchema, ScalarKind } from '../storage/schema.js';
import { coerceValue } from '../storage/schema.js';

export interface ArgSpec {
  readonly component: string;
  readonly fields: readonly FieldSchema[];
}

function fieldSchema(component: string, name: string, f: Field<any, any>): FieldSchema {
  if (typeof f !== 'object' || f === null || typeof f.kind !== 'string') {
    throw new LexiconsError(ErrorCode.SCHEMA, `${component}: static args.${name} is not a field declaration (use field.str(), field.int(), ...)`);
  }
  const o = f.options ?? {};
  const nullable = o.nullable ?? (f.kind === 'ref' || f.kind === 'set');
  const has = Object.prototype.hasOwnProperty.call(o, 'default');
  const dflt = o.default as unknown;
  const makeDefault = has
    ? typeof dflt === 'function'
      ? (dflt as () => unknown)
      : () => (Array.isArray(dflt) ? [...dflt] : dflt)
    : () => undefined;
  return {
    name,
    kind: f.kind as FieldKind,
    element: f.element as ScalarKind | undefined,
    ref: typeof f.target === 'string' ? f.target : undefined,
    nullable,
    unique: false,
    indexed: false,
    dictionary: false,
    secret: o.secret === true,
    was: [],
    transform: o.transform,
    makeDefault,
  };
}

/** Compiles a component's `static args` (or returns undefined when it declares none). */
export function compileArgs(component: string, args: Record<string, Field<any, any>> | undefined): ArgSpec | undefined {
  if (args === undefined || args === null) return undefined;
  if (typeof args !== 'object') throw new LexiconsError(ErrorCode.SCHEMA, `${component}: static args must be an object of field declarations`);
  return { component, fields: Object.entries(args).map(([name, f]) => fieldSchema(component, name, f)) };
}

/**
 * Returns the checked arguments (transforms applied, defaults filled) or throws a BAD_ARGUMENTS
 * error naming the argument, e.g. `[CreateChatMessage] argument channel: expected str, got number 5`.
 */
export function checkArgs(spec: ArgSpec | undefined, input: Record<string, unknown>): Record<string, unknown> {
  if (spec === undefined) return input;
  const out: Record<string, unknown> = { ...input };
  for (const f of spec.fields) {
    let value = input[f.name];
    if (value === undefined) {
      value = f.makeDefault();
      if (value === undefined) {
        if (!f.nullable) throw badArgument(spec.component, f.name, 'is required');
        out[f.name] = null;
        continue;
      }
    }
    try {
      out[f.name] = coerceValue(spec.component, f, value);
    } catch (err) {
      const message = messageOf(err);
      const prefix = `${spec.component}.${f.name}: `;
      throw badArgument(spec.component, f.name, message.startsWith(prefix) ? message.slice(prefix.length) : message);
    }
  }
  return out;
}

function badArgument(component: string, name: string, problem: string): LexiconsError {
  return new LexiconsError(ErrorCode.BAD_ARGUMENTS, `[${component}] argument ${name}: ${problem}`);
}
