/**
 * @module static-option
 * The `static` Server option (and `lexicons start --static DIR`): a folder of static files the
 * server serves on its own port (main/static.ts serveStatic). Its shape is checked when the Server
 * is built, the folder when a run starts (both with exact messages), before anything listens.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ErrorCode, LexiconsError } from './errors.js';
import type { StaticOptions } from './main/static.js';

/** A folder path, or the folder with how it is served. */
export type StaticOption = string | ({ dir: string } & StaticOptions);

/** The option resolved: an absolute folder and its serving options. */
export interface StaticSettings extends StaticOptions {
  dir: string;
}

const KEYS = ['dir', 'prefix', 'cacheControl', 'maxFileBytes', 'index'];

function optionError(message: string): LexiconsError {
  return new LexiconsError(ErrorCode.OPTION, message);
}

/** Checks the option's shape and resolves its folder against the working directory. */
export function resolveStaticOption(value: StaticOption | undefined): StaticSettings | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') {
    if (value.trim() === '') throw optionError('static must be a folder path, got ""');
    return { dir: resolve(value) };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || typeof value.dir !== 'string' || value.dir.trim() === '') {
    throw optionError(`static must be a folder path or { dir, prefix?, cacheControl?, maxFileBytes?, index? }, got ${JSON.stringify(value) ?? String(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!KEYS.includes(key)) throw optionError(`static.${key} is not a known option (known: ${KEYS.join(', ')})`);
  }
  return { ...value, dir: resolve(value.dir) };
}

/** Checks, when a run starts, that the folder is a readable directory. `name`: `static` or `--static`. */
export function checkStaticOption(settings: StaticSettings, name: string): void {
  let isDirectory = false;
  try {
    isDirectory = statSync(settings.dir).isDirectory();
  } catch {
    // missing or unreadable: the message below
  }
  if (!isDirectory) throw optionError(`${name}: ${settings.dir} is not a readable directory`);
}
