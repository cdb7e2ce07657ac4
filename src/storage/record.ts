/**
 * @module storage/record
 * Records handed to user code: plain objects of pk + fields with non-enumerable
 * `toDict()` / `_to_dict()` (a JSON-ready copy, arrays copied). Mutating a record does not write
 * to the database; use `db.update`.
 */
import type { AnyRecord } from './api.js';

function toDict(this: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(this)) {
    const value = this[key];
    out[key] = Array.isArray(value) ? [...value] : value instanceof Set ? [...value] : value;
  }
  return out;
}

const methods: PropertyDescriptorMap = {
  toDict: { value: toDict, enumerable: false, writable: true, configurable: true },
  _to_dict: { value: toDict, enumerable: false, writable: true, configurable: true },
};

/** Adds the non-enumerable toDict/_to_dict methods to a plain row object (in place). */
export function makeRecord(row: { pk: string } & Record<string, unknown>): AnyRecord {
  return Object.defineProperties(row, methods) as AnyRecord;
}

/** A fresh record copy of row values (so callers cannot mutate a transaction's write buffer). */
export function recordFrom(row: { pk: string } & Record<string, unknown>): AnyRecord {
  const copy: { pk: string } & Record<string, unknown> = { pk: row.pk };
  for (const key of Object.keys(row)) {
    const value = row[key];
    copy[key] = Array.isArray(value) ? [...value] : value;
  }
  return makeRecord(copy);
}
