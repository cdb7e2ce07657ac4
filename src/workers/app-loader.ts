/**
 * @module workers/app-loader
 * Loads the user's app module (the module that exports the Server definition), in the main
 * thread and in every worker. TypeScript app modules are loaded through tsx's register API.
 */
import { existsSync, statSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import { Server } from '../server.js';

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.tsx']);
const CANDIDATE_EXTENSIONS = ['.js', '.mjs', '.ts', '.mts', '.cjs'];

export function isTypeScript(path: string): boolean {
  return TS_EXTENSIONS.has(extname(path));
}

/**
 * Resolves an app path as the CLI accepts it: a file, a file without extension (`./main` finds
 * `main.js`, `main.mjs`, `main.ts`, ...), or a folder holding one of `main.*` / `index.*`.
 */
export function resolveAppPath(app: string, cwd: string = process.cwd()): string {
  const base = resolve(cwd, app);
  const isFile = (p: string) => existsSync(p) && statSync(p).isFile();
  if (isFile(base)) return base;
  for (const ext of CANDIDATE_EXTENSIONS) if (isFile(base + ext)) return base + ext;
  if (existsSync(base) && statSync(base).isDirectory()) {
    for (const name of ['main', 'index']) for (const ext of CANDIDATE_EXTENSIONS) if (isFile(resolve(base, name + ext))) return resolve(base, name + ext);
  }
  throw new LexiconsError(ErrorCode.OPTION, `app module not found: ${app} (looked for ${base} and ${base}{${CANDIDATE_EXTENSIONS.join(',')}})`);
}

let tsxRegistered = false;

/** Registers tsx's ESM loader in this thread (idempotent). */
export async function registerTypeScript(): Promise<void> {
  if (tsxRegistered) return;
  const api = (await import('tsx/esm/api')) as { register: () => unknown };
  api.register();
  tsxRegistered = true;
}

function looksLikeServer(value: unknown): value is Server {
  if (value instanceof Server) return true;
  // A Server from another copy of lexicons (e.g. an app importing the package by name).
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Server).resolve === 'function' &&
    typeof (value as Server).components === 'object' &&
    (value as Server).components !== null &&
    (value as Server).components.signals instanceof Map
  );
}

/** Finds the exported Server: `default`, then `server`, then the only other export that is one. */
export function findServer(module: Record<string, unknown>, path: string, preferred?: string): { server: Server; exportName: string } {
  if (preferred !== undefined) {
    const value = module[preferred];
    if (looksLikeServer(value)) return { server: value, exportName: preferred };
  }
  for (const name of ['default', 'server']) {
    const value = module[name];
    if (looksLikeServer(value)) return { server: value, exportName: name };
  }
  const found = Object.entries(module).filter(([, value]) => looksLikeServer(value));
  if (found.length === 1) return { server: found[0]![1] as Server, exportName: found[0]![0] };
  if (found.length > 1) {
    throw new LexiconsError(ErrorCode.OPTION, `${path} exports several Servers (${found.map(([n]) => n).join(', ')}); export the one to run as \`server\` or default`);
  }
  throw new LexiconsError(ErrorCode.OPTION, `${path} does not export a Server (export const server = new Server({...}))`);
}

/** Imports the app module and returns its Server. */
export async function loadApp(appPath: string, preferred?: string): Promise<{ server: Server; exportName: string }> {
  if (isTypeScript(appPath)) await registerTypeScript();
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(appPath).href)) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof LexiconsError) throw err;
    throw new LexiconsError(ErrorCode.OPTION, `could not load app module ${appPath}: ${messageOf(err)}`, { cause: err });
  }
  return findServer(module, appPath, preferred);
}
